//! Which federated tool names carry the `server__` prefix. Each upstream has
//! a [`PrefixMode`]; for `conditional` and `never` upstreams the gateway
//! keeps their latest tool names (recorded whenever a list is read) and
//! derives one table for every caller: which bare names are exposed, by
//! whom, and which `never` collisions make the configuration invalid. Names
//! are global, not per caller, so a tool has one name for everyone (pinned
//! tools, rate limits and audit records agree).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub use crate::config::PrefixMode;

/// Two `never` upstreams exposing the same bare tool name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Collision {
    /// The bare tool name.
    pub tool: String,
    /// The two upstreams, in name order.
    pub servers: (Arc<str>, Arc<str>),
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "configuration error: upstreams '{}' and '{}' both expose the tool '{}' with prefix = \"never\"; set prefix = \"conditional\" (or \"always\") on one of them",
            self.servers.0, self.servers.1, self.tool
        )
    }
}

/// The derived name table.
#[derive(Debug, Default)]
struct Table {
    /// Bare names exposed without a prefix → their upstream.
    bare: HashMap<String, Arc<str>>,
    /// Collisions of `never` upstreams, by bare name.
    collisions: BTreeMap<String, Collision>,
}

/// Prefix modes, the recorded names of non-`always` upstreams, and the table.
#[derive(Debug, Default)]
pub struct ToolNames {
    modes: ArcSwap<HashMap<String, PrefixMode>>,
    /// Latest tool names of each non-`always` upstream (writes are rare: a
    /// changed list); the table is rebuilt from them.
    recorded: Mutex<BTreeMap<Arc<str>, BTreeSet<String>>>,
    table: ArcSwap<Table>,
}

impl ToolNames {
    /// Sets every upstream's mode (absent: `always`).
    pub fn set_modes(&self, modes: HashMap<String, PrefixMode>) {
        let modes: HashMap<String, PrefixMode> = modes
            .into_iter()
            .filter(|(_, mode)| *mode != PrefixMode::Always)
            .collect();
        self.modes.store(Arc::new(modes));
        let mut recorded = self.lock();
        let modes = self.modes.load();
        recorded.retain(|server, _| modes.contains_key(&**server));
        self.rebuild(&recorded);
    }

    /// `server`'s mode.
    pub fn mode(&self, server: &str) -> PrefixMode {
        self.modes.load().get(server).copied().unwrap_or_default()
    }

    /// Whether every upstream is `always` (the table is then empty).
    pub fn all_prefixed(&self) -> bool {
        self.modes.load().is_empty()
    }

    /// Servers whose names the table needs but has not recorded yet.
    pub fn unrecorded(&self) -> Vec<String> {
        // Every call asks: with no bare-name upstream, answer without the lock.
        if self.all_prefixed() {
            return Vec::new();
        }
        let recorded = self.lock();
        self.modes
            .load()
            .keys()
            .filter(|server| !recorded.contains_key(server.as_str()))
            .cloned()
            .collect()
    }

    /// Records `server`'s current tool names (a no-op for `always` upstreams
    /// and for an unchanged list).
    pub fn record<'a>(&self, server: &str, names: impl IntoIterator<Item = &'a str>) {
        if self.mode(server) == PrefixMode::Always {
            return;
        }
        let names: BTreeSet<String> = names.into_iter().map(str::to_owned).collect();
        let mut recorded = self.lock();
        if recorded.get(server) == Some(&names) {
            return;
        }
        recorded.insert(Arc::from(server), names);
        self.rebuild(&recorded);
    }

    /// Forgets `server`'s names (it was removed or replaced).
    pub fn forget(&self, server: &str) {
        let mut recorded = self.lock();
        if recorded.remove(server).is_some() {
            self.rebuild(&recorded);
        }
    }

    /// Whether `server`'s `tool` is exposed under its bare name.
    pub fn is_bare(&self, server: &str, tool: &str) -> bool {
        match self.mode(server) {
            PrefixMode::Always => false,
            PrefixMode::Never => true,
            PrefixMode::Conditional => self
                .table
                .load()
                .bare
                .get(tool)
                .is_some_and(|owner| **owner == *server),
        }
    }

    /// The upstream exposing bare name `name`: `Ok(None)` when none does,
    /// `Err` when two `never` upstreams collide on it.
    pub fn owner(&self, name: &str) -> Result<Option<Arc<str>>, Collision> {
        let table = self.table.load();
        if let Some(collision) = table.collisions.get(name) {
            return Err(collision.clone());
        }
        Ok(table.bare.get(name).cloned())
    }

    /// The collisions among `servers` (all of them when `None`).
    pub fn collisions(&self, servers: Option<&[Arc<str>]>) -> Vec<Collision> {
        self.table
            .load()
            .collisions
            .values()
            .filter(|c| {
                servers.is_none_or(|servers| {
                    servers.contains(&c.servers.0) || servers.contains(&c.servers.1)
                })
            })
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Arc<str>, BTreeSet<String>>> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rebuild(&self, recorded: &BTreeMap<Arc<str>, BTreeSet<String>>) {
        let modes = self.modes.load();
        let mut claims: BTreeMap<&str, Vec<(&Arc<str>, PrefixMode)>> = BTreeMap::new();
        for (server, names) in recorded {
            let mode = modes.get(&**server).copied().unwrap_or_default();
            for name in names {
                claims.entry(name).or_default().push((server, mode));
            }
        }
        let mut table = Table::default();
        for (name, claimants) in claims {
            let never: Vec<&Arc<str>> = claimants
                .iter()
                .filter(|(_, mode)| *mode == PrefixMode::Never)
                .map(|(server, _)| *server)
                .collect();
            match (never.as_slice(), claimants.as_slice()) {
                ([first, second, ..], _) => {
                    let collision = Collision {
                        tool: name.to_owned(),
                        servers: ((*first).clone(), (*second).clone()),
                    };
                    tracing::error!(%collision, "tool name collision");
                    table.collisions.insert(name.to_owned(), collision);
                }
                ([only], _) | ([], [(only, _)]) => {
                    table.bare.insert(name.to_owned(), (*only).clone());
                }
                // Conditional upstreams sharing a name: all keep the prefix.
                ([], _) => {}
            }
        }
        self.table.store(Arc::new(table));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(modes: &[(&str, PrefixMode)]) -> ToolNames {
        let names = ToolNames::default();
        names.set_modes(
            modes
                .iter()
                .map(|(server, mode)| ((*server).to_owned(), *mode))
                .collect(),
        );
        names
    }

    #[test]
    fn conditional_names_keep_the_prefix_only_when_they_collide() {
        let names = names(&[
            ("a", PrefixMode::Conditional),
            ("b", PrefixMode::Conditional),
        ]);
        names.record("a", ["echo", "only_a"]);
        names.record("b", ["echo", "only_b"]);
        assert!(names.is_bare("a", "only_a") && names.is_bare("b", "only_b"));
        assert!(!names.is_bare("a", "echo") && !names.is_bare("b", "echo"));
        assert_eq!(names.owner("only_b").unwrap().as_deref(), Some("b"));
        assert_eq!(names.owner("echo").unwrap(), None);
        names.forget("b");
        assert!(names.is_bare("a", "echo"));
    }

    #[test]
    fn never_wins_over_conditional_and_two_nevers_collide() {
        let names = names(&[
            ("a", PrefixMode::Never),
            ("b", PrefixMode::Conditional),
            ("c", PrefixMode::Never),
        ]);
        names.record("a", ["echo"]);
        names.record("b", ["echo"]);
        assert!(names.is_bare("a", "echo") && !names.is_bare("b", "echo"));
        assert!(names.collisions(None).is_empty());
        names.record("c", ["echo"]);
        let err = names.owner("echo").unwrap_err().to_string();
        assert!(
            err.contains("'a' and 'c'") && err.contains("'echo'"),
            "{err}"
        );
        assert_eq!(names.collisions(Some(&[Arc::from("b")])).len(), 0);
        assert_eq!(names.collisions(Some(&[Arc::from("c")])).len(), 1);
    }

    #[test]
    fn always_upstreams_are_not_recorded() {
        let names = names(&[("a", PrefixMode::Conditional)]);
        names.record("z", ["echo"]);
        names.record("a", ["echo"]);
        assert!(names.is_bare("a", "echo"));
        assert!(!names.is_bare("z", "echo"));
        assert_eq!(names.unrecorded(), Vec::<String>::new());
    }
}
