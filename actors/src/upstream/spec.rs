//! What an upstream is: the fixed configuration one `UpstreamActor` runs.
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How to launch one stdio upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// The server's name, unique in the gateway; prefixes its federated names.
    pub name: String,
    /// Program to run (a path, or a name looked up on `PATH`).
    pub command: String,
    /// Arguments passed to the program.
    pub args: Vec<String>,
    /// The only environment the process gets besides `PATH` and `HOME`:
    /// upstreams never inherit the gateway's secrets.
    pub env: BTreeMap<String, String>,
    /// Working directory; the gateway's own when unset.
    pub cwd: Option<PathBuf>,
}
