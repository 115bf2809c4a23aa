//! Rug-pull pins: the SHA-256 of each tool's canonical definition when first
//! seen. A later definition with another hash is a change that stays
//! pending until an operator approves it (re-pinning) or the upstream
//! reverts to the pinned one.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// What a newly listed definition means against its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    /// First sight: now pinned.
    New,
    /// Same as pinned.
    Unchanged,
    /// Differs from the pin and is not approved.
    Changed,
}

#[derive(Debug)]
struct Pin {
    pinned: String,
    current: String,
}

/// Where pins outlive the process (the gateway's management store), so an
/// approved or withheld rug pull survives a restart. A callback, so this
/// crate knows nothing of databases.
pub trait PinSink: Send + Sync + std::fmt::Debug {
    /// `tool` of `server` is now pinned to `hash` (first sight or approval).
    fn pinned(&self, server: &str, tool: &str, hash: &str);
}

/// Most tool pins kept (all upstreams together).
pub const MAX_PINS: usize = 100_000;

/// Pins of every upstream's tools; keyed by (server, tool name).
#[derive(Debug, Default)]
pub struct PinStore {
    pins: Mutex<HashMap<(String, String), Pin>>,
    sink: OnceLock<Arc<dyn PinSink>>,
    /// Whether reaching [`MAX_PINS`] was logged (once, not per tool).
    full_logged: std::sync::atomic::AtomicBool,
}

impl PinStore {
    /// Loads pins kept from earlier runs and reports every new pin to `sink`.
    pub fn persist(
        &self,
        kept: impl IntoIterator<Item = (String, String, String)>,
        sink: Arc<dyn PinSink>,
    ) {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        for (server, tool, hash) in kept {
            pins.entry((server, tool)).or_insert(Pin {
                pinned: hash.clone(),
                current: hash,
            });
        }
        let _ = self.sink.set(sink);
    }

    fn report(&self, server: &str, tool: &str, hash: &str) {
        if let Some(sink) = self.sink.get() {
            sink.pinned(server, tool, hash);
        }
    }

    /// Records the latest definition hash of a tool and compares it to the pin.
    /// Past [`MAX_PINS`] pins in all, a new tool is not pinned (and says
    /// [`PinCheck::New`] each time): pins are never dropped, because a
    /// removed tool coming back changed must still be caught, so the map is
    /// bounded by refusing new entries instead.
    pub fn observe(&self, server: &str, tool: &str, hash: String) -> PinCheck {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        let full = pins.len() >= MAX_PINS;
        match pins.get_mut(&(server.to_owned(), tool.to_owned())) {
            None if full => {
                if !self
                    .full_logged
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        server,
                        max = MAX_PINS,
                        "tool pin limit reached; new tools are not pinned"
                    );
                }
                PinCheck::New
            }
            None => {
                self.report(server, tool, &hash);
                pins.insert(
                    (server.to_owned(), tool.to_owned()),
                    Pin {
                        pinned: hash.clone(),
                        current: hash,
                    },
                );
                PinCheck::New
            }
            Some(pin) => {
                pin.current = hash;
                if pin.current == pin.pinned {
                    PinCheck::Unchanged
                } else {
                    PinCheck::Changed
                }
            }
        }
    }

    /// Pins the latest definition of a changed tool; `false` when nothing was pending.
    pub fn approve(&self, server: &str, tool: &str) -> bool {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        match pins.get_mut(&(server.to_owned(), tool.to_owned())) {
            Some(pin) if pin.current != pin.pinned => {
                pin.pinned = pin.current.clone();
                self.report(server, tool, &pin.pinned);
                true
            }
            _ => false,
        }
    }

    /// Takes in pins another process wrote to the shared store, without
    /// reporting them back: an unknown tool is pinned as stored, a pin that
    /// moved is followed. Returns the tools whose pending change is exactly
    /// the stored pin (approved elsewhere), for the caller to approve here
    /// too so that their flags are lifted.
    pub fn adopt(
        &self,
        kept: impl IntoIterator<Item = (String, String, String)>,
    ) -> Vec<(String, String)> {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        let mut approved = Vec::new();
        for (server, tool, hash) in kept {
            let full = pins.len() >= MAX_PINS;
            match pins.get_mut(&(server.clone(), tool.clone())) {
                None if full => {}
                None => {
                    pins.insert(
                        (server, tool),
                        Pin {
                            pinned: hash.clone(),
                            current: hash,
                        },
                    );
                }
                Some(pin) if pin.pinned == hash => {}
                Some(pin) if pin.current == hash => approved.push((server, tool)),
                Some(pin) => pin.pinned = hash,
            }
        }
        approved
    }

    /// Replaces every pin with `kept` (a restored or reset store); new pins
    /// are still reported to the sink.
    pub fn replace(&self, kept: impl IntoIterator<Item = (String, String, String)>) {
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        pins.clear();
        for (server, tool, hash) in kept.into_iter().take(MAX_PINS) {
            pins.insert(
                (server, tool),
                Pin {
                    pinned: hash.clone(),
                    current: hash,
                },
            );
        }
    }

    /// The pinned and latest hashes of a tool.
    pub fn hashes(&self, server: &str, tool: &str) -> Option<(String, String)> {
        let pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        pins.get(&(server.to_owned(), tool.to_owned()))
            .map(|pin| (pin.pinned.clone(), pin.current.clone()))
    }
}

/// Hex SHA-256 of `definition` serialized with object keys sorted, so the
/// hash does not depend on the upstream's key order.
pub fn definition_hash(definition: &Value) -> String {
    let mut hasher = Sha256::new();
    write_canonical(definition, &mut hasher);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write_canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            hasher.update(b"{");
            for (key, item) in entries {
                hasher.update(Value::String(key.clone()).to_string().as_bytes());
                hasher.update(b":");
                write_canonical(item, hasher);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                write_canonical(item, hasher);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hash_ignores_key_order_but_not_content() {
        let a = json!({"name": "t", "description": "d", "inputSchema": {"type": "object"}});
        let b: Value = serde_json::from_str(
            r#"{"inputSchema":{"type":"object"},"description":"d","name":"t"}"#,
        )
        .unwrap();
        assert_eq!(definition_hash(&a), definition_hash(&b));
        assert_eq!(definition_hash(&a).len(), 64);
        let c = json!({"name": "t", "description": "d2", "inputSchema": {"type": "object"}});
        assert_ne!(definition_hash(&a), definition_hash(&c));
    }

    #[test]
    fn adopting_stored_pins_learns_new_ones_and_reports_approvals_made_elsewhere() {
        let pins = PinStore::default();
        assert_eq!(pins.observe("s", "changed", "h1".into()), PinCheck::New);
        assert_eq!(pins.observe("s", "changed", "h2".into()), PinCheck::Changed);
        assert_eq!(pins.observe("s", "quiet", "q1".into()), PinCheck::New);
        let approved = pins.adopt([
            ("s".into(), "changed".into(), "h2".into()),
            ("s".into(), "quiet".into(), "q2".into()),
            ("s".into(), "unknown".into(), "u1".into()),
        ]);
        // The pending change was approved elsewhere: the caller approves it here.
        assert_eq!(approved, [("s".to_owned(), "changed".to_owned())]);
        assert_eq!(pins.observe("s", "changed", "h2".into()), PinCheck::Changed);
        assert!(pins.approve("s", "changed"));
        // A pin that moved elsewhere is followed, an unknown one taken in.
        assert_eq!(pins.observe("s", "quiet", "q2".into()), PinCheck::Unchanged);
        assert_eq!(
            pins.observe("s", "unknown", "u1".into()),
            PinCheck::Unchanged
        );
    }

    #[test]
    fn past_max_pins_new_tools_are_not_pinned_and_old_pins_still_hold() {
        let pins = PinStore::default();
        for i in 0..MAX_PINS {
            assert_eq!(
                pins.observe("s", &format!("t{i}"), "h".into()),
                PinCheck::New
            );
        }
        // Full: a new tool is not kept, so it says New every time.
        assert_eq!(pins.observe("s", "extra", "h".into()), PinCheck::New);
        assert_eq!(pins.observe("s", "extra", "h2".into()), PinCheck::New);
        assert_eq!(pins.pins.lock().unwrap().len(), MAX_PINS);
        // A pinned tool that changes is still caught.
        assert_eq!(pins.observe("s", "t0", "evil".into()), PinCheck::Changed);
    }

    #[test]
    fn replace_swaps_every_pin() {
        let pins = PinStore::default();
        pins.observe("s", "old", "h1".into());
        pins.replace([("s".into(), "t".into(), "h2".into())]);
        assert_eq!(pins.hashes("s", "old"), None);
        assert_eq!(pins.observe("s", "t", "h2".into()), PinCheck::Unchanged);
        assert_eq!(pins.observe("s", "t", "h3".into()), PinCheck::Changed);
    }

    #[test]
    fn change_stays_pending_until_approved_or_reverted() {
        let pins = PinStore::default();
        assert_eq!(pins.observe("s", "t", "h1".into()), PinCheck::New);
        assert_eq!(pins.observe("s", "t", "h1".into()), PinCheck::Unchanged);
        assert!(!pins.approve("s", "t"));
        assert_eq!(pins.observe("s", "t", "h2".into()), PinCheck::Changed);
        assert_eq!(pins.observe("s", "t", "h2".into()), PinCheck::Changed);
        assert_eq!(pins.observe("s", "t", "h1".into()), PinCheck::Unchanged);
        assert_eq!(pins.observe("s", "t", "h2".into()), PinCheck::Changed);
        assert!(pins.approve("s", "t"));
        assert_eq!(pins.observe("s", "t", "h2".into()), PinCheck::Unchanged);
        assert_eq!(pins.hashes("s", "t"), Some(("h2".into(), "h2".into())));
        assert_eq!(pins.observe("other", "t", "h1".into()), PinCheck::New);
    }
}
