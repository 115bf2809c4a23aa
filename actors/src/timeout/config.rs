//! The `[timeouts]` configuration section, and [`TimeoutPolicy`], the same
//! rules resolved into lookups cheap enough for the hot path.
//!
//! ```toml
//! [timeouts]
//! reset_on_progress = false   # progress notifications push the deadline back
//! max_total_secs = 300        # ... but never past this (default 5 × deadline)
//!
//! [timeouts.thresholds]       # fractions of the deadline
//! warn = 0.8
//! timeout = 1.0
//! fail = 1.2
//!
//! [timeouts.deadlines]        # seconds per operation kind
//! tool_execution = 60
//!
//! [timeouts.upstreams.slow]
//! reset_on_progress = true
//! [timeouts.upstreams.slow.deadlines]
//! tool_execution = 5
//!
//! [timeouts.tools."slow__slow"]   # tool_execution of one tool
//! deadline_secs = 2.5
//! ```
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::kind::OpKind;

/// How many deadlines long an operation that keeps reporting progress may run
/// when `max_total_secs` is not set.
const DEFAULT_MAX_TOTAL_FACTOR: u32 = 5;

/// The `[timeouts]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Deadline per operation kind.
    pub deadlines: Deadlines,
    /// Escalation points as fractions of the deadline.
    pub thresholds: Thresholds,
    /// Whether progress from the upstream restarts the deadline.
    pub reset_on_progress: bool,
    /// Longest an operation may run however much progress it reports.
    pub max_total_secs: Option<f64>,
    /// Overrides per upstream.
    pub upstreams: BTreeMap<String, UpstreamTimeouts>,
    /// Overrides of `tool_execution` per federated tool (`server__tool`).
    pub tools: BTreeMap<String, ToolTimeouts>,
}

/// One value per operation kind: deadlines in seconds ([`Deadlines`]), or
/// an upstream's overrides of some of them ([`PartialDeadlines`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    bound(deserialize = "T: Deserialize<'de>, PerKind<T>: Default")
)]
pub struct PerKind<T> {
    /// Operations without a kind of their own.
    pub default: T,
    /// Guardrail checks.
    pub guardrail: T,
    /// Authentication.
    pub auth: T,
    /// `tools/call`.
    pub tool_execution: T,
    /// List operations.
    pub discovery: T,
    /// Cache operations.
    pub cache: T,
    /// Pings and connection attempts.
    pub connectivity: T,
}

/// Deadline in seconds per kind.
pub type Deadlines = PerKind<f64>;

/// Deadlines an upstream overrides; unset kinds keep the global deadline.
pub type PartialDeadlines = PerKind<Option<f64>>;

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            default: 30.0,
            guardrail: 15.0,
            auth: 10.0,
            tool_execution: 60.0,
            discovery: 20.0,
            cache: 5.0,
            connectivity: 2.0,
        }
    }
}

impl Default for PartialDeadlines {
    fn default() -> Self {
        Self {
            default: None,
            guardrail: None,
            auth: None,
            tool_execution: None,
            discovery: None,
            cache: None,
            connectivity: None,
        }
    }
}

impl<T: Copy> PerKind<T> {
    /// The value of `kind`.
    pub fn get(&self, kind: OpKind) -> T {
        match kind {
            OpKind::Default => self.default,
            OpKind::Guardrail => self.guardrail,
            OpKind::Auth => self.auth,
            OpKind::ToolExecution => self.tool_execution,
            OpKind::Discovery => self.discovery,
            OpKind::Cache => self.cache,
            OpKind::Connectivity => self.connectivity,
        }
    }
}

/// Escalation points as fractions of the deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Log a warning and count it.
    pub warn: f64,
    /// Cancel the operation; the caller gets a timeout error.
    pub timeout: f64,
    /// Declare the instance hung unless it answers a ping by then.
    pub fail: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            warn: 0.8,
            timeout: 1.0,
            fail: 1.2,
        }
    }
}

/// `[timeouts.upstreams.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamTimeouts {
    /// Deadlines of this upstream's operations.
    pub deadlines: PartialDeadlines,
    /// Overrides the global `reset_on_progress`.
    pub reset_on_progress: Option<bool>,
    /// Overrides the global `max_total_secs`.
    pub max_total_secs: Option<f64>,
}

/// `[timeouts.tools."server__tool"]`: the `tool_execution` limits of one tool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolTimeouts {
    /// The tool's deadline.
    pub deadline_secs: Option<f64>,
    /// Overrides the upstream's or global `reset_on_progress`.
    pub reset_on_progress: Option<bool>,
    /// Overrides the upstream's or global `max_total_secs`.
    pub max_total_secs: Option<f64>,
}

/// A `[timeouts]` value that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid timeouts.{field}: {problem}")]
pub struct TimeoutConfigError {
    /// The offending field's path below `timeouts`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The limits of one operation, resolved from the configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpLimits {
    /// The deadline as configured (what the client's error names).
    pub deadline: Duration,
    /// When to warn, from the start (or last progress).
    pub warn_after: Duration,
    /// When to cancel, from the start (or last progress).
    pub timeout_after: Duration,
    /// When to declare the instance hung, from the start (or last progress).
    pub fail_after: Duration,
    /// Whether progress restarts the clock.
    pub reset_on_progress: bool,
    /// Cap on the time to cancellation, however much progress comes.
    pub max_total: Duration,
}

/// [`TimeoutsConfig`] resolved: every lookup the hot path makes is a hash
/// lookup, with no string building.
#[derive(Debug, Clone)]
pub struct TimeoutPolicy {
    global: TimeoutsConfig,
    upstreams: HashMap<String, UpstreamTimeouts>,
    /// Upstream → tool → limits, split from `server__tool` once.
    tools: HashMap<String, HashMap<String, ToolTimeouts>>,
}

impl TimeoutPolicy {
    /// Checks `config` and indexes it; `separator` splits `server__tool` names.
    pub fn new(config: &TimeoutsConfig, separator: &str) -> Result<Self, TimeoutConfigError> {
        validate(config)?;
        let mut tools: HashMap<String, HashMap<String, ToolTimeouts>> = HashMap::new();
        for (name, limits) in &config.tools {
            let Some((upstream, tool)) = name.split_once(separator) else {
                return Err(TimeoutConfigError {
                    field: format!("tools.\"{name}\""),
                    problem: format!("expected SERVER{separator}TOOL"),
                });
            };
            tools
                .entry(upstream.to_owned())
                .or_default()
                .insert(tool.to_owned(), limits.clone());
        }
        Ok(Self {
            global: config.clone(),
            upstreams: config
                .upstreams
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            tools,
        })
    }

    /// The limits of a `kind` operation on `upstream` (and `tool`, for
    /// `tool_execution`): tool overrides upstream overrides global.
    pub fn limits(&self, kind: OpKind, upstream: &str, tool: Option<&str>) -> OpLimits {
        let up = self.upstreams.get(upstream);
        let tl = match (kind, tool) {
            (OpKind::ToolExecution, Some(tool)) => {
                self.tools.get(upstream).and_then(|tools| tools.get(tool))
            }
            _ => None,
        };
        let deadline = tl
            .and_then(|t| t.deadline_secs)
            .or_else(|| up.and_then(|u| u.deadlines.get(kind)))
            .unwrap_or_else(|| self.global.deadlines.get(kind));
        let reset_on_progress = tl
            .and_then(|t| t.reset_on_progress)
            .or_else(|| up.and_then(|u| u.reset_on_progress))
            .unwrap_or(self.global.reset_on_progress);
        let max_total = tl
            .and_then(|t| t.max_total_secs)
            .or_else(|| up.and_then(|u| u.max_total_secs))
            .or(self.global.max_total_secs);
        let deadline = Duration::from_secs_f64(deadline);
        let t = &self.global.thresholds;
        OpLimits {
            deadline,
            warn_after: deadline.mul_f64(t.warn),
            timeout_after: deadline.mul_f64(t.timeout),
            fail_after: deadline.mul_f64(t.fail),
            reset_on_progress,
            max_total: max_total
                .map_or(deadline * DEFAULT_MAX_TOTAL_FACTOR, Duration::from_secs_f64),
        }
    }
}

fn validate(config: &TimeoutsConfig) -> Result<(), TimeoutConfigError> {
    let positive = |field: String, value: f64| {
        if value.is_finite() && value > 0.0 && value < 1e9 {
            Ok(())
        } else {
            Err(TimeoutConfigError {
                field,
                problem: format!("{value} is not a positive number of seconds"),
            })
        }
    };
    for kind in OpKind::ALL {
        positive(format!("deadlines.{kind}"), config.deadlines.get(kind))?;
    }
    if let Some(max) = config.max_total_secs {
        positive("max_total_secs".into(), max)?;
    }
    for (name, up) in &config.upstreams {
        for kind in OpKind::ALL {
            if let Some(value) = up.deadlines.get(kind) {
                positive(format!("upstreams.{name}.deadlines.{kind}"), value)?;
            }
        }
        if let Some(max) = up.max_total_secs {
            positive(format!("upstreams.{name}.max_total_secs"), max)?;
        }
    }
    for (name, tool) in &config.tools {
        if let Some(value) = tool.deadline_secs {
            positive(format!("tools.\"{name}\".deadline_secs"), value)?;
        }
        if let Some(max) = tool.max_total_secs {
            positive(format!("tools.\"{name}\".max_total_secs"), max)?;
        }
    }
    let t = &config.thresholds;
    if !(0.0 < t.warn && t.warn <= t.timeout && t.timeout <= t.fail && t.fail < 100.0) {
        return Err(TimeoutConfigError {
            field: "thresholds".into(),
            problem: format!(
                "need 0 < warn <= timeout <= fail (got {}, {}, {})",
                t.warn, t.timeout, t.fail
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn defaults_match_the_design() {
        let policy = TimeoutPolicy::new(&TimeoutsConfig::default(), "__").unwrap();
        let expect = [
            (OpKind::Default, 30.0),
            (OpKind::Guardrail, 15.0),
            (OpKind::Auth, 10.0),
            (OpKind::ToolExecution, 60.0),
            (OpKind::Discovery, 20.0),
            (OpKind::Cache, 5.0),
            (OpKind::Connectivity, 2.0),
        ];
        for (kind, deadline) in expect {
            let limits = policy.limits(kind, "any", None);
            assert_eq!(limits.deadline, secs(deadline), "{kind}");
            assert_eq!(limits.warn_after, secs(deadline * 0.8), "{kind}");
            assert_eq!(limits.timeout_after, secs(deadline), "{kind}");
            assert_eq!(limits.fail_after, secs(deadline * 1.2), "{kind}");
            assert!(!limits.reset_on_progress);
            assert_eq!(limits.max_total, secs(deadline * 5.0));
        }
    }

    #[test]
    fn tool_overrides_upstream_overrides_global() {
        let config: TimeoutsConfig = serde_json::from_value(serde_json::json!({
            "max_total_secs": 100,
            "deadlines": {"tool_execution": 40},
            "upstreams": {"slow": {
                "deadlines": {"tool_execution": 5, "discovery": 3},
                "reset_on_progress": true
            }},
            "tools": {"slow__hang": {"deadline_secs": 1.5, "max_total_secs": 4}}
        }))
        .unwrap();
        let policy = TimeoutPolicy::new(&config, "__").unwrap();
        let global = policy.limits(OpKind::ToolExecution, "echo", Some("hang"));
        assert_eq!(
            (global.deadline, global.reset_on_progress),
            (secs(40.0), false)
        );
        assert_eq!(global.max_total, secs(100.0));
        let upstream = policy.limits(OpKind::ToolExecution, "slow", Some("slow"));
        assert_eq!(
            (upstream.deadline, upstream.reset_on_progress),
            (secs(5.0), true)
        );
        assert_eq!(
            policy.limits(OpKind::Discovery, "slow", None).deadline,
            secs(3.0)
        );
        let tool = policy.limits(OpKind::ToolExecution, "slow", Some("hang"));
        assert_eq!(tool.deadline, secs(1.5));
        assert_eq!(tool.max_total, secs(4.0));
        assert!(tool.reset_on_progress, "inherited from the upstream");
        // A tool's deadline is its execution's, not its guardrail check's.
        assert_eq!(
            policy
                .limits(OpKind::Guardrail, "slow", Some("hang"))
                .deadline,
            secs(15.0)
        );
    }

    #[test]
    fn bad_values_are_rejected_naming_the_field() {
        let bad = |json: serde_json::Value| {
            let config: TimeoutsConfig = serde_json::from_value(json).unwrap();
            TimeoutPolicy::new(&config, "__").unwrap_err().field
        };
        assert_eq!(
            bad(serde_json::json!({"deadlines": {"auth": 0}})),
            "deadlines.auth"
        );
        assert_eq!(
            bad(serde_json::json!({"upstreams": {"a": {"deadlines": {"cache": -1}}}})),
            "upstreams.a.deadlines.cache"
        );
        assert_eq!(
            bad(serde_json::json!({"tools": {"notool": {}}})),
            "tools.\"notool\""
        );
        assert_eq!(
            bad(serde_json::json!({"thresholds": {"warn": 1.1, "timeout": 1.0, "fail": 1.2}})),
            "thresholds"
        );
        assert!(
            serde_json::from_value::<TimeoutsConfig>(serde_json::json!({"deadline": {}})).is_err()
        );
        assert!(
            serde_json::from_value::<TimeoutsConfig>(
                serde_json::json!({"tools": {"a__b": {"deadline": 1}}})
            )
            .is_err()
        );
    }
}
