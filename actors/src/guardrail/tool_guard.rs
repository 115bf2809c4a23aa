//! Decides which of an upstream's tools are shown and callable, from the
//! poisoning scan and the rug-pull pins, and remembers what it flagged for
//! `tool_allowed`, approvals and the operator listing.
use std::collections::HashMap;
use std::sync::Mutex;

use arc_swap::ArcSwap;

use rmcp::model::Tool;
use serde::Serialize;

use super::config::{PinMode, PoisoningMode};
use super::detect::names;
use super::pins::{PinCheck, PinStore, definition_hash};
use super::tools::{self, ToolFlag};
use super::verdict::{Direction, GuardrailBlock};

/// What the gateway does with a flagged tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolAction {
    /// Still listed and callable; reported.
    Listed,
    /// Not listed and not callable.
    Withheld,
}

/// A tool the last scan of its upstream flagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlaggedTool {
    /// Upstream name.
    pub server: String,
    /// Tool name as the upstream lists it.
    pub tool: String,
    /// Why, sorted.
    pub flags: Vec<ToolFlag>,
    /// Listed or withheld.
    pub action: ToolAction,
    /// Hash of the approved definition (with pinning on).
    pub pinned_hash: Option<String>,
    /// Hash of the latest definition (with pinning on).
    pub current_hash: Option<String>,
}

/// The result of scanning one tool list.
#[derive(Debug, Clone)]
pub struct ToolScan {
    /// The tools to show the client.
    pub tools: Vec<Tool>,
    /// What was flagged, withheld or not.
    pub flagged: Vec<FlaggedTool>,
}

/// Flagged tools by server.
type Flagged = HashMap<String, Vec<FlaggedTool>>;

/// Pins and the flagged tools of every upstream's latest list.
#[derive(Debug, Default)]
pub struct ToolGuard {
    pins: PinStore,
    /// Read on every `tools/call` (lock-free); replaced whole by the rare
    /// writers (scans, approvals), which `write` serialises.
    flagged: ArcSwap<Flagged>,
    write: Mutex<()>,
}

/// A tool with its flags and its (pinned, latest) hashes.
type Entry = (Tool, Vec<ToolFlag>, Option<(String, String)>);

fn action(flags: &[ToolFlag], pin_tools: PinMode, poisoning: PoisoningMode) -> ToolAction {
    let hide_poisoned = matches!(poisoning, PoisoningMode::Hide | PoisoningMode::Block);
    let withheld = flags.iter().any(|flag| match flag {
        ToolFlag::DefinitionChanged => pin_tools == PinMode::Block,
        ToolFlag::UpstreamBlocked => true,
        poison => poison.is_poisoning() && hide_poisoned,
    });
    if withheld {
        ToolAction::Withheld
    } else {
        ToolAction::Listed
    }
}

impl ToolGuard {
    /// The rug-pull pins.
    pub fn pins(&self) -> &PinStore {
        &self.pins
    }
    /// Scans `tools` of `server`, pins new definitions, and keeps the ones to show.
    pub fn scan(
        &self,
        server: &str,
        tools: Vec<Tool>,
        pin_tools: PinMode,
        poisoning: PoisoningMode,
    ) -> ToolScan {
        let mut entries: Vec<Entry> = tools
            .into_iter()
            .map(|tool| {
                let definition = serde_json::to_value(&tool).unwrap_or_default();
                let mut flags = if poisoning == PoisoningMode::Off {
                    Vec::new()
                } else {
                    tools::scan(&definition)
                };
                let mut hashes = None;
                if pin_tools != PinMode::Off {
                    let hash = definition_hash(&definition);
                    if self.pins.observe(server, &tool.name, hash) == PinCheck::Changed {
                        flags.push(ToolFlag::DefinitionChanged);
                    }
                    hashes = self.pins.hashes(server, &tool.name);
                }
                (tool, flags, hashes)
            })
            .collect();
        if poisoning == PoisoningMode::Block
            && entries
                .iter()
                .any(|(_, flags, _)| flags.iter().any(|f| f.is_poisoning()))
        {
            for (_, flags, _) in &mut entries {
                flags.push(ToolFlag::UpstreamBlocked);
            }
        }
        let mut shown = Vec::with_capacity(entries.len());
        let mut flagged = Vec::new();
        for (tool, mut flags, hashes) in entries {
            flags.sort();
            flags.dedup();
            let action = action(&flags, pin_tools, poisoning);
            if !flags.is_empty() {
                let (pinned_hash, current_hash) = hashes.unzip();
                flagged.push(FlaggedTool {
                    server: server.to_owned(),
                    tool: tool.name.to_string(),
                    flags,
                    action,
                    pinned_hash,
                    current_hash,
                });
            }
            if action == ToolAction::Listed {
                shown.push(tool);
            }
        }
        self.update(|all| {
            if flagged.is_empty() {
                all.remove(server);
            } else {
                all.insert(server.to_owned(), flagged.clone());
            }
        });
        ToolScan {
            tools: shown,
            flagged,
        }
    }

    /// `Err` when the latest scan of `server` withheld `tool`. The refusal
    /// names the pin when pinning withholds a changed tool, poisoning otherwise.
    pub fn allowed(
        &self,
        server: &str,
        tool: &str,
        pin_tools: PinMode,
    ) -> Result<(), GuardrailBlock> {
        let flagged = self.flagged.load();
        if flagged.is_empty() {
            return Ok(());
        }
        let Some(entry) = flagged
            .get(server)
            .and_then(|tools| tools.iter().find(|t| t.tool == tool))
        else {
            return Ok(());
        };
        if entry.action == ToolAction::Listed {
            return Ok(());
        }
        let withheld_by_pin =
            pin_tools == PinMode::Block && entry.flags.contains(&ToolFlag::DefinitionChanged);
        let (policy_name, detector) = if withheld_by_pin {
            ("pin_tools", names::TOOL_CHANGED)
        } else {
            ("tool_poisoning", names::TOOL_POISONING)
        };
        Err(GuardrailBlock {
            policy_name: policy_name.into(),
            direction: Direction::Tools,
            detector: detector.into(),
            provider: super::config::LOCAL_PROVIDER.into(),
        })
    }

    /// Approves the changed definition of `tool`: re-pins it and lifts the
    /// rug-pull flag. `false` when no change was pending.
    pub fn approve(
        &self,
        server: &str,
        tool: &str,
        pin_tools: PinMode,
        poisoning: PoisoningMode,
    ) -> bool {
        if !self.pins.approve(server, tool) {
            return false;
        }
        let hashes = self.pins.hashes(server, tool);
        self.update(|flagged| {
            if let Some(tools) = flagged.get_mut(server) {
                for entry in tools.iter_mut().filter(|t| t.tool == tool) {
                    entry.flags.retain(|f| *f != ToolFlag::DefinitionChanged);
                    entry.action = action(&entry.flags, pin_tools, poisoning);
                    if let Some((pinned, current)) = hashes.clone() {
                        entry.pinned_hash = Some(pinned);
                        entry.current_hash = Some(current);
                    }
                }
                tools.retain(|t| !t.flags.is_empty());
                if tools.is_empty() {
                    flagged.remove(server);
                }
            }
        });
        true
    }

    /// Every flagged tool, by server then tool.
    pub fn flagged(&self) -> Vec<FlaggedTool> {
        let mut all: Vec<FlaggedTool> = self.flagged.load().values().flatten().cloned().collect();
        all.sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
        all
    }

    /// Applies `change` to a copy of the flagged tools and publishes it.
    fn update(&self, change: impl FnOnce(&mut Flagged)) {
        // Poisoned only if a holder panicked; the map is still consistent.
        let _write = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Flagged::clone(&self.flagged.load());
        change(&mut next);
        self.flagged.store(std::sync::Arc::new(next));
    }
}
