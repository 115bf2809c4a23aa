//! Guardrail counters for operators.
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GuardrailStats {
    /// Inputs checked.
    pub inputs_checked: u64,
    /// Outputs checked.
    pub outputs_checked: u64,
    /// Calls refused.
    pub blocked: u64,
    /// Input values replaced by placeholders.
    pub redacted: u64,
    /// Output values masked.
    pub masked: u64,
    /// Remote provider failures and timeouts.
    pub provider_errors: u64,
    /// Tools flagged across tool-list scans.
    pub tools_flagged: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    inputs: AtomicU64,
    outputs: AtomicU64,
    blocked: AtomicU64,
    redacted: AtomicU64,
    masked: AtomicU64,
    provider_errors: AtomicU64,
    tools_flagged: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn input(&self) {
        add(&self.inputs, 1);
    }
    pub(crate) fn output(&self) {
        add(&self.outputs, 1);
    }
    pub(crate) fn block(&self) {
        add(&self.blocked, 1);
    }
    pub(crate) fn redacted(&self, n: usize) {
        add(&self.redacted, n);
    }
    pub(crate) fn masked(&self, n: usize) {
        add(&self.masked, n);
    }
    pub(crate) fn provider_error(&self) {
        add(&self.provider_errors, 1);
    }
    pub(crate) fn tools_flagged(&self, n: usize) {
        add(&self.tools_flagged, n);
    }

    pub(crate) fn snapshot(&self) -> GuardrailStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GuardrailStats {
            inputs_checked: get(&self.inputs),
            outputs_checked: get(&self.outputs),
            blocked: get(&self.blocked),
            redacted: get(&self.redacted),
            masked: get(&self.masked),
            provider_errors: get(&self.provider_errors),
            tools_flagged: get(&self.tools_flagged),
        }
    }
}
