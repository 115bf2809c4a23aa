//! Built-in demo upstream MCP servers, served over stdio or streamable HTTP.
//! (placeholder: being written)
use clap::Args;

/// Arguments of `bulwark demo-server`.
#[derive(Debug, Args)]
pub struct DemoServerArgs {
    /// Which demo server to run.
    pub kind: String,
}

/// Runs a demo server until its transport closes.
pub async fn run(_args: DemoServerArgs) -> anyhow::Result<()> {
    Ok(())
}
