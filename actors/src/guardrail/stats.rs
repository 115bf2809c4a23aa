//! Guardrail counters for operators.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use super::verdict::{Direction, GuardrailBlock};

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

/// Blocks of one (policy, direction, detector).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockCount {
    /// The policy's name (`pin_tools`/`tool_poisoning` for tool blocks).
    pub policy: String,
    /// `input`, `output` or `tools`.
    pub direction: &'static str,
    /// The detector that fired.
    pub detector: String,
    /// Blocks since start.
    pub count: u64,
}

/// Most (policy, direction, detector) rows kept; later ones share
/// [`OVERFLOW`]. Policies come from configuration and detectors from a
/// fixed set plus remote providers' categories, so this is a safety net.
pub const MAX_BLOCK_SERIES: usize = 256;
/// The policy and detector name of rows past [`MAX_BLOCK_SERIES`].
pub const OVERFLOW: &str = "(other)";

type BlockKey = (String, &'static str, String);

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Blocks by (policy, direction, detector): the breakdown of `blocked`.
    blocks: Mutex<BTreeMap<BlockKey, u64>>,
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
    pub(crate) fn block(&self, block: &GuardrailBlock) {
        add(&self.blocked, 1);
        let direction = match block.direction {
            Direction::Input => "input",
            Direction::Output => "output",
            Direction::Tools => "tools",
        };
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = (block.policy_name.clone(), direction, block.detector.clone());
        if blocks.len() >= MAX_BLOCK_SERIES && !blocks.contains_key(&key) {
            key = (OVERFLOW.to_owned(), direction, OVERFLOW.to_owned());
        }
        *blocks.entry(key).or_default() += 1;
    }

    pub(crate) fn block_counts(&self) -> Vec<BlockCount> {
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        blocks
            .iter()
            .map(|((policy, direction, detector), count)| BlockCount {
                policy: policy.clone(),
                direction,
                detector: detector.clone(),
                count: *count,
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn block(policy: &str, detector: &str) -> GuardrailBlock {
        GuardrailBlock {
            policy_name: policy.into(),
            direction: Direction::Input,
            detector: detector.into(),
            provider: "local".into(),
        }
    }

    #[test]
    fn blocks_are_counted_by_policy_direction_and_detector_within_a_cap() {
        let counters = Counters::default();
        counters.block(&block("p", "secrets"));
        counters.block(&block("p", "secrets"));
        for i in 0..MAX_BLOCK_SERIES + 10 {
            counters.block(&block("many", &format!("d{i}")));
        }
        let rows = counters.block_counts();
        assert_eq!(
            rows.len(),
            MAX_BLOCK_SERIES + 1,
            "capped, plus one overflow row"
        );
        let secrets = rows.iter().find(|r| r.detector == "secrets").unwrap();
        assert_eq!(
            (secrets.policy.as_str(), secrets.direction, secrets.count),
            ("p", "input", 2)
        );
        let overflow = rows.iter().find(|r| r.policy == OVERFLOW).unwrap();
        assert_eq!(overflow.count, 11);
        assert_eq!(counters.snapshot().blocked, (MAX_BLOCK_SERIES + 12) as u64);
    }
}
