//! The gateway's own tools, listed on `/mcp` next to the federated ones under
//! the reserved server name `bulwark` (`bulwark__list_servers`, …).
//!
//! This module holds what the tools are (names, schemas, argument types) and
//! the pure summaries they return; the handler runs them, because batch calls
//! and discovery go through the same access checks, guardrails and cache as
//! any other call.
use std::sync::Arc;

use bulwark_actors::upstream::UpstreamState;
use bulwark_supervisors::registry::ServerEntry;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::naming::Naming;

/// The reserved server name of the gateway's own tools.
pub const SERVER: &str = "bulwark";

/// Most calls one `call_tools` batch may carry.
pub const MAX_BATCH: usize = 32;

/// One of the gateway's own tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayTool {
    /// Servers the caller may use, with their state.
    ListServers,
    /// One server's tools, status, restarts and last error.
    ServerInfo,
    /// Tools of every (or one) server, from the cache or fresh.
    DiscoverTools,
    /// A batch of tool calls, each through the whole request path.
    CallTools,
    /// Cache statistics per kind.
    CacheStatus,
    /// Clears the cache: all, per server, per kind.
    CacheClear,
    /// Deadline tracking figures.
    TimeoutMetrics,
    /// Ranked search over the tools the caller may use.
    SearchTools,
}

impl GatewayTool {
    /// Every gateway tool, in listing order.
    pub const ALL: [Self; 8] = [
        Self::ListServers,
        Self::ServerInfo,
        Self::DiscoverTools,
        Self::CallTools,
        Self::CacheStatus,
        Self::CacheClear,
        Self::TimeoutMetrics,
        Self::SearchTools,
    ];

    /// The tool's name without the server prefix.
    pub fn name(self) -> &'static str {
        match self {
            Self::ListServers => "list_servers",
            Self::ServerInfo => "server_info",
            Self::DiscoverTools => "discover_tools",
            Self::CallTools => "call_tools",
            Self::CacheStatus => "cache_status",
            Self::CacheClear => "cache_clear",
            Self::TimeoutMetrics => "timeout_metrics",
            Self::SearchTools => "search_tools",
        }
    }

    /// The tool called `name` (without the server prefix).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tool| tool.name() == name)
    }

    /// Whether the tool changes gateway state (only `cache_clear` does).
    fn read_only(self) -> bool {
        !matches!(self, Self::CacheClear | Self::CallTools)
    }

    fn description(self) -> &'static str {
        match self {
            Self::ListServers => {
                "List the upstream MCP servers you may use, with their state (ready, starting, restarting, failed) and restart count."
            }
            Self::ServerInfo => {
                "Show one upstream server: its tools, state, restarts and last error."
            }
            Self::DiscoverTools => {
                "List the tools of every server you may use, or of one server; `fresh` asks the upstreams instead of the cache."
            }
            Self::CallTools => {
                "Call several tools in one request. Each call passes the same checks as a direct call; the result lists every call's outcome in order."
            }
            Self::CacheStatus => {
                "Show cache statistics per kind: hits, misses, entries, evictions, errors."
            }
            Self::CacheClear => {
                "Clear cached lists and results of the servers you may use: all of them or one server, every kind or one (tools, resources, resource_templates, prompts, tool_result)."
            }
            Self::TimeoutMetrics => {
                "Show deadline tracking per operation kind and per server: active, completed, warned, timed out, escalated, and latency."
            }
            Self::SearchTools => {
                "Search the tools you may use by what they do: ranked by relevance of their names, titles, descriptions and parameter names to `query`. Returns full definitions; call a found tool by its `name`."
            }
        }
    }

    fn schema(self) -> Arc<JsonObject> {
        match self {
            Self::ServerInfo => schema_of::<ServerInfoArgs>(),
            Self::DiscoverTools => schema_of::<DiscoverToolsArgs>(),
            Self::CallTools => schema_of::<CallToolsArgs>(),
            Self::CacheClear => schema_of::<CacheClearArgs>(),
            Self::SearchTools => schema_of::<SearchToolsArgs>(),
            Self::ListServers | Self::CacheStatus | Self::TimeoutMetrics => schema_of::<NoArgs>(),
        }
    }

    /// The tool's definition under its federated name.
    pub fn definition(self, naming: &Naming) -> Tool {
        Tool::new(
            naming.join(SERVER, self.name()),
            self.description(),
            self.schema(),
        )
        .annotate(
            ToolAnnotations::new()
                .read_only(self.read_only())
                .destructive(false)
                .open_world(false),
        )
    }
}

fn schema_of<T: JsonSchema>() -> Arc<JsonObject> {
    let schema = schemars::schema_for!(T);
    match serde_json::to_value(schema) {
        Ok(serde_json::Value::Object(object)) => Arc::new(object),
        _ => Arc::new(JsonObject::from_iter([(
            "type".to_owned(),
            serde_json::Value::String("object".into()),
        )])),
    }
}

/// Arguments of tools that take none.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Arguments of `server_info`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerInfoArgs {
    /// The server's configured name.
    pub server: String,
}

/// Arguments of `discover_tools`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiscoverToolsArgs {
    /// Only this server; all servers you may use when absent.
    #[serde(default)]
    pub server: Option<String>,
    /// Ask the upstreams rather than the cache.
    #[serde(default)]
    pub fresh: bool,
}

/// One call of a `call_tools` batch.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCall {
    /// The federated tool name, `server__tool`.
    pub name: String,
    /// The tool's arguments.
    #[serde(default)]
    pub arguments: Option<JsonObject>,
}

/// Arguments of `call_tools`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallToolsArgs {
    /// The calls, run concurrently; at most 32.
    pub calls: Vec<BatchCall>,
}

/// Arguments of `cache_clear`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheClearArgs {
    /// Only this server's entries.
    #[serde(default)]
    pub server: Option<String>,
    /// Only this kind: tools, resources, resource_templates, prompts, tool_result.
    #[serde(default)]
    pub kind: Option<String>,
}

/// Most results one `search_tools` call returns.
pub const MAX_SEARCH_LIMIT: usize = 50;

/// Arguments of `search_tools`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchToolsArgs {
    /// What the tool should do, in words (e.g. "create a GitHub issue").
    pub query: String,
    /// How many tools to return, best first; default 10, at most 50.
    #[serde(default = "default_search_limit")]
    pub limit: usize,
    /// Only this server's tools.
    #[serde(default)]
    pub server: Option<String>,
}

fn default_search_limit() -> usize {
    10
}

/// What `list_servers` says of one server.
#[derive(Debug, Serialize)]
pub struct ServerSummary {
    /// Configured name.
    pub name: String,
    /// Lifecycle state.
    pub state: UpstreamState,
    /// Restarts since the gateway started.
    pub restarts: u32,
    /// Calls waiting on it now.
    pub calls_in_flight: usize,
}

impl ServerSummary {
    /// The summary of `entry`.
    pub fn of(entry: &ServerEntry) -> Self {
        Self {
            name: entry.spec.name.clone(),
            state: entry.pool.state(),
            restarts: entry.pool.restarts(),
            calls_in_flight: entry.pool.in_flight(),
        }
    }
}

/// Whether federated `name` is the batch tool itself (which must not nest).
pub fn is_batch(name: &str, naming: &Naming) -> bool {
    naming
        .split(name)
        .is_ok_and(|(server, tool)| server == SERVER && tool == GatewayTool::CallTools.name())
}

/// Parses a gateway tool's arguments into `T`, naming the tool on failure.
pub fn parse_args<T: for<'de> Deserialize<'de>>(
    tool: GatewayTool,
    arguments: Option<JsonObject>,
) -> Result<T, rmcp::ErrorData> {
    let object = arguments.unwrap_or_default();
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|err| {
        rmcp::ErrorData::invalid_params(
            format!("invalid arguments for {SERVER}__{}: {err}", tool.name()),
            None,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_definitions_have_object_schemas() {
        let naming = Naming::new("__");
        for tool in GatewayTool::ALL {
            assert_eq!(GatewayTool::from_name(tool.name()), Some(tool));
            let definition = tool.definition(&naming);
            assert_eq!(definition.name, format!("bulwark__{}", tool.name()));
            assert_eq!(
                definition.input_schema.get("type"),
                Some(&serde_json::json!("object")),
                "{}",
                tool.name()
            );
        }
        assert_eq!(GatewayTool::from_name("nope"), None);
    }

    #[test]
    fn bad_arguments_name_the_tool() {
        let args = serde_json::json!({ "servr": "x" });
        let serde_json::Value::Object(object) = args else {
            unreachable!()
        };
        let err =
            parse_args::<DiscoverToolsArgs>(GatewayTool::DiscoverTools, Some(object)).unwrap_err();
        assert!(
            err.message.contains("bulwark__discover_tools"),
            "{}",
            err.message
        );
    }
}
