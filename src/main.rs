use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bulwark", version, about = "A secure MCP gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a built-in demo MCP server (stdio by default).
    DemoServer(bulwark::demo::DemoServerArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::DemoServer(args) => bulwark::demo::run(args).await,
    }
}
