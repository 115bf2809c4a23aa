//! The `bulwark` command line.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use bulwark::config::{Config, Sources};

#[derive(Parser)]
#[command(
    name = "bulwark",
    version,
    about = "A secure MCP gateway built as a supervised actor system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over streamable HTTP (/mcp, /mcp/{server}) and the operator API.
    Serve(ConfigArgs),
    /// Serve the federated gateway over stdio (for clients that launch it).
    Stdio(ConfigArgs),
    /// Connect to a remote MCP server as the gateway would; list (and call) its tools.
    Connect(Box<bulwark::connect::ConnectArgs>),
    /// Run a built-in demo MCP server (stdio by default).
    DemoServer(bulwark::demo::DemoServerArgs),
}

#[derive(Args)]
struct ConfigArgs {
    /// A TOML config file layered over config/default.toml.
    #[arg(long, short = 'c', env = "BULWARK_CONFIG")]
    config: Option<PathBuf>,
    /// Upstreams from an mcpServers JSON file (Claude Desktop / Cursor format).
    #[arg(long)]
    mcp_servers: Option<PathBuf>,
    /// Listen address, overriding server.listen (serve only).
    #[arg(long)]
    listen: Option<String>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(&Sources {
            config_file: self.config.clone(),
            mcp_servers: self.mcp_servers.clone(),
        })?;
        if let Some(listen) = &self.listen {
            config.server.listen.clone_from(listen);
        }
        Ok(config)
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BULWARK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("BULWARK_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_tracing();
            bulwark::serve::run(args.load()?).await
        }
        Command::Stdio(args) => {
            init_tracing();
            bulwark::stdio::run(args.load()?).await
        }
        Command::Connect(args) => {
            init_tracing();
            bulwark::connect::run(*args).await
        }
        Command::DemoServer(args) => bulwark::demo::run(args).await,
    }
}
