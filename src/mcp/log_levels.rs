//! Log levels per client session over one shared upstream session: the
//! upstream runs at the most verbose level any session asked for, and each
//! session receives only what its own `logging/setLevel` admits. Log lines
//! sent while no call is in flight go only to sessions whose grant includes
//! the server.
// Logging is deprecated by SEP-2577; clients still use it.
#![allow(deprecated)]
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use dashmap::DashMap;
use rmcp::model::LoggingLevel;

use crate::auth::grants::Grant;

/// `Debug` = 0 … `Emergency` = 7.
fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// One session's level; unset admits everything the upstream sends.
#[derive(Debug, Default)]
pub struct SessionLevel(AtomicU8);

impl SessionLevel {
    /// Records the session's `logging/setLevel`.
    pub fn set(&self, level: LoggingLevel) {
        self.0.store(rank(level) + 1, Ordering::Relaxed);
    }

    /// The level of one stateless (2026-07-28) request: what its `_meta`
    /// asked for, and without one no log lines at all.
    pub fn per_request(level: Option<LoggingLevel>) -> Self {
        /// Above every rank: admits nothing.
        const SILENT: u8 = 9;
        Self(AtomicU8::new(level.map_or(SILENT, |level| rank(level) + 1)))
    }

    /// Whether a line at `level` reaches this session.
    pub fn admits(&self, level: LoggingLevel) -> bool {
        match self.0.load(Ordering::Relaxed) {
            0 => true,
            set => rank(level) + 1 >= set,
        }
    }
}

/// Who may receive a server's log lines sent outside any call.
pub struct Audience {
    /// What the session's caller may use.
    pub grant: Arc<Grant>,
    /// The session's level.
    pub level: Arc<SessionLevel>,
}

/// The level each upstream was last set to (the most verbose asked).
#[derive(Default)]
pub struct UpstreamLevels {
    levels: DashMap<Arc<str>, u8>,
}

impl UpstreamLevels {
    /// Whether `server` must be set to `level`: only when more verbose than
    /// it already runs at, so no session makes another's logs quieter.
    pub fn lower_to(&self, server: &str, level: LoggingLevel) -> bool {
        let wanted = rank(level);
        let mut current = self.levels.entry(Arc::from(server)).or_insert(u8::MAX);
        if wanted < *current {
            *current = wanted;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_filter_and_the_upstream_only_gets_more_verbose() {
        let level = SessionLevel::default();
        assert!(level.admits(LoggingLevel::Debug));
        level.set(LoggingLevel::Warning);
        assert!(!level.admits(LoggingLevel::Info));
        assert!(level.admits(LoggingLevel::Error));
        let upstream = UpstreamLevels::default();
        assert!(upstream.lower_to("a", LoggingLevel::Error));
        assert!(upstream.lower_to("a", LoggingLevel::Debug));
        assert!(!upstream.lower_to("a", LoggingLevel::Error));
        assert!(upstream.lower_to("b", LoggingLevel::Error));
    }
}
