//! The `bulwark` command line.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use bulwark::cli::client::{CliError, Remote};
use bulwark::cli::key::RemoteKeyCommand;
use bulwark::config::{Config, Sources};
use bulwark::telemetry::traces::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "bulwark",
    version,
    about = "A secure MCP gateway built as a supervised actor system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr: `text`, or `json` (one object per line, with
    /// `trace_id` and `span_id` inside a request).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "BULWARK_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
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
    /// Manage API keys: on a running gateway with --url / BULWARK_URL,
    /// else directly in the store (bootstrapping). Only hashes are stored.
    Key {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage upstreams on a running gateway (--url / BULWARK_URL).
    Upstream {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: bulwark::cli::upstream::UpstreamCommand,
    },
    /// Manage projects on a running gateway (--url / BULWARK_URL).
    Project {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: bulwark::cli::project::ProjectCommand,
    },
    /// Write a running gateway's whole store to FILE (secrets stay sealed).
    Backup {
        /// Where to write the backup (mode 0600).
        #[arg(long = "out", short = 'o')]
        out: PathBuf,
        #[command(flatten)]
        gateway: Gateway,
    },
    /// Replace a running gateway's store with a backup (validated first;
    /// a bad file changes nothing).
    Restore {
        /// A file written by `bulwark backup`.
        file: PathBuf,
        #[command(flatten)]
        gateway: Gateway,
    },
    /// Re-seal every stored secret under a new master key, in one
    /// transaction. Stop the gateway first. A new key comes from
    /// BULWARK_NEW_MASTER_KEY, else it is generated.
    RotateMasterKey {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Import another gateway's configuration into the store.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Manage management users on a running gateway (--url / BULWARK_URL; admin only).
    User {
        #[command(flatten)]
        remote: Remote,
        #[command(subcommand)]
        command: bulwark::cli::user::UserCommand,
    },
    /// Print the audit trail of a running gateway (--url / BULWARK_URL).
    Audit {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        args: bulwark::cli::audit::AuditArgs,
    },
}

#[derive(Subcommand)]
enum ImportSource {
    /// An Enkrypt Secure MCP Gateway config (enkrypt_mcp_config.json):
    /// servers, projects and API keys; prints what was and was not mapped.
    Enkrypt {
        /// The Enkrypt config file.
        file: PathBuf,
        /// Report what would be imported; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        config: ConfigFile,
    },
}

/// A running gateway (for commands whose `-o` names a file).
#[derive(Args)]
struct Gateway {
    /// The gateway's base URL, e.g. http://127.0.0.1:8000.
    #[arg(long, env = "BULWARK_URL")]
    url: Option<String>,
    /// An admin API key.
    #[arg(long = "api-key", env = "BULWARK_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

impl Gateway {
    fn remote(self) -> Remote {
        Remote {
            url: self.url,
            api_key: self.api_key,
            output: bulwark::cli::client::Output::Table,
        }
    }
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a key and print it once.
    Create {
        /// The project whose grant the key carries.
        #[arg(long)]
        project: String,
        /// The user the key belongs to.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Revoke a key by id.
    Revoke {
        /// The key id, as `bulwark key list` shows it.
        id: String,
        #[command(flatten)]
        config: ConfigFile,
    },
    /// List keys: ids, users, projects (never keys or hashes).
    List {
        #[command(flatten)]
        config: ConfigFile,
        /// Only keys of this project (with --url).
        #[arg(long)]
        project: Option<String>,
        /// `active` or `revoked` (with --url).
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one key (with --url).
    Show {
        /// The key id.
        id: String,
    },
    /// Delete a key (with --url).
    Remove {
        /// The key id.
        id: String,
    },
}

impl KeyCommand {
    /// The same verb against a running gateway.
    fn remote(self) -> RemoteKeyCommand {
        match self {
            Self::Create { project, user, .. } => RemoteKeyCommand::Create { project, user },
            Self::Revoke { id, .. } => RemoteKeyCommand::Revoke { id },
            Self::List {
                project, status, ..
            } => RemoteKeyCommand::List { project, status },
            Self::Show { id } => RemoteKeyCommand::Show { id },
            Self::Remove { id } => RemoteKeyCommand::Remove { id },
        }
    }
}

#[derive(Args)]
struct ConfigFile {
    /// A TOML config file layered over config/default.toml.
    #[arg(long, short = 'c', env = "BULWARK_CONFIG")]
    config: Option<PathBuf>,
}

impl ConfigFile {
    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&Sources {
            config_file: self.config.clone(),
            mcp_servers: None,
        })?)
    }
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
    /// Allow serving with authentication off on a non-loopback address.
    #[arg(long)]
    insecure: bool,
}

impl ConfigArgs {
    fn sources(&self) -> Sources {
        Sources {
            config_file: self.config.clone(),
            mcp_servers: self.mcp_servers.clone(),
        }
    }

    /// What the command line changes in a loaded config (again on reload).
    fn overrides(&self) -> bulwark::control::watch::Overrides {
        let (listen, insecure) = (self.listen.clone(), self.insecure);
        std::sync::Arc::new(move |config: &mut Config| {
            if let Some(listen) = &listen {
                config.server.listen.clone_from(listen);
            }
            config.auth.allow_insecure |= insecure;
        })
    }

    fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(&self.sources())?;
        self.overrides()(&mut config);
        Ok(config)
    }
}

/// Small blocks from jemalloc (feature `jemalloc`, on by default), large ones
/// from glibc (`bulwark::allocator`). Build without the feature
/// (`--no-default-features`) to look at allocations with heaptrack or
/// glibc's `MALLOC_*` variables, which do not see jemalloc's.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: bulwark::allocator::SplitBySize<tikv_jemallocator::Jemalloc> =
    bulwark::allocator::SplitBySize::new(tikv_jemallocator::Jemalloc);

/// jemalloc's options, read at its first allocation (`_RJEM_MALLOC_CONF`
/// in the environment still overrides them).
///
/// `tcache_gc_incr_bytes`: a thread's cache is swept once per 1 MiB it
/// allocates instead of per 64 KiB. A `tools/call` allocates ~25 KB on a
/// worker, so the default swept every few calls, flushing blocks that the
/// next call fetched back: ~10k instructions per call through the gateway,
/// 4% (callgrind, 253.0k → 243.0k). The caches stay bounded by their slot
/// counts; only how often they are trimmed changes.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: JemallocConf = JemallocConf(c"tcache_gc_incr_bytes:1048576".as_ptr());

/// A C string pointer jemalloc reads, as the `const char *` it expects.
#[cfg(feature = "jemalloc")]
#[repr(transparent)]
struct JemallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a static, immutable C string literal.
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code)]
unsafe impl Sync for JemallocConf {}

/// Keeps glibc's mmap threshold at its default (128 KiB,
/// `bulwark::allocator::LARGE_BLOCK`) instead of letting it climb. glibc
/// raises the threshold to the size of each large block freed (up to 32 MB),
/// so after one large tool result the next ones were carved from the malloc
/// arenas: a growing buffer was copied on each reallocation instead of
/// remapped, and the freed memory stayed with the process (payloads bench,
/// 10 MB result: 35 MB still held after the call). With a fixed threshold a
/// large block is mapped on its own and returned when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fixed_mmap_threshold() {
    const THRESHOLD: libc::c_int = bulwark::allocator::LARGE_BLOCK as libc::c_int;
    // SAFETY: `mallopt` only sets an allocator parameter, under the
    // allocator's own lock; it takes no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_mmap_threshold() {}

fn main() -> anyhow::Result<()> {
    // Started as an upstream's launcher: becomes the upstream, never returns.
    bulwark_actors::upstream::launcher::exec_if_asked();
    // `BULWARK_UPSTREAM_SPAWN=fork` (or no /proc): upstreams are forked with
    // a pre_exec hook instead, as before the launcher (e.g. to compare).
    let fork = std::env::var_os("BULWARK_UPSTREAM_SPAWN").is_some_and(|how| how == "fork");
    if !fork && std::path::Path::new("/proc/self/exe").exists() {
        bulwark_actors::upstream::launcher::use_launcher();
    }
    fixed_mmap_threshold();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = cli.log_format;
    match cli.command {
        Command::Serve(args) => {
            let config = args.load()?;
            let tracing = traces::init(format, Some(&config.telemetry))?;
            let served = bulwark::serve::run(config, args.sources(), args.overrides()).await;
            tracing.shutdown().await;
            served
        }
        Command::Stdio(args) => {
            let config = args.load()?;
            let tracing = traces::init(format, Some(&config.telemetry))?;
            let served = bulwark::stdio::run(config).await;
            tracing.shutdown().await;
            if let Err(err) = &served
                && err.is::<bulwark::stdio::Revoked>()
            {
                eprintln!("Error: {err}");
                std::process::exit(1);
            }
            served
        }
        Command::Connect(args) => {
            let _tracing = traces::init(format, None)?;
            bulwark::connect::run(*args).await
        }
        Command::DemoServer(args) => bulwark::demo::run(args).await,
        Command::Key { remote, command } if remote.url.is_some() => {
            exit_on(bulwark::cli::key::run(&remote, command.remote()).await)
        }
        Command::Key { command, .. } => key(command).await,
        Command::Upstream { remote, command } => {
            exit_on(bulwark::cli::upstream::run(&remote, command).await)
        }
        Command::Project { remote, command } => {
            exit_on(bulwark::cli::project::run(&remote, command).await)
        }
        Command::Backup { out, gateway } => {
            exit_on(bulwark::cli::system::backup(&gateway.remote(), &out).await)
        }
        Command::Restore { file, gateway } => {
            exit_on(bulwark::cli::system::restore(&gateway.remote(), &file).await)
        }
        Command::RotateMasterKey { config } => rotate_master_key(&config.load()?).await,
        Command::Import {
            source:
                ImportSource::Enkrypt {
                    file,
                    dry_run,
                    config,
                },
        } => import_enkrypt(&config.load()?, &file, dry_run).await,
        Command::User { remote, command } => {
            exit_on(bulwark::cli::user::run(&remote, command).await)
        }
        Command::Audit { remote, args } => exit_on(bulwark::cli::audit::run(&remote, args).await),
    }
}

async fn rotate_master_key(config: &Config) -> anyhow::Result<()> {
    use bulwark::store::{Store, secrets};
    let data_dir = config.server.data_dir();
    let store = Store::open(&config.store, &data_dir).await?;
    let given = std::env::var("BULWARK_NEW_MASTER_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty());
    let rotated = secrets::rotate(&store, &data_dir, given.as_deref()).await?;
    store.close().await;
    eprintln!(
        "Re-sealed {} record(s) under the new master key {}.",
        rotated.records, rotated.id
    );
    match (&rotated.new_env_key, store.master_key().source()) {
        (Some(key), _) => {
            eprintln!(
                "The key came from {}: set it to this new key before the next start. It is shown only now:",
                secrets::KEY_ENV
            );
            println!("{}", key.as_str());
        }
        (None, secrets::KeySource::File(path)) => {
            eprintln!("The new key is in {}.", path.display());
        }
        (None, _) => eprintln!(
            "Set {} to the value of BULWARK_NEW_MASTER_KEY before the next start.",
            secrets::KEY_ENV
        ),
    }
    Ok(())
}

async fn import_enkrypt(
    config: &Config,
    file: &std::path::Path,
    dry_run: bool,
) -> anyhow::Result<()> {
    let report = bulwark::enkrypt::import(config, file, dry_run).await?;
    let verb = if dry_run { "Would import" } else { "Imported" };
    println!(
        "{verb} {} upstream(s), {} project(s), {} user(s), {} key(s) from {}.",
        report.upstreams.len(),
        report.projects.len(),
        report.users.len(),
        report.keys.len(),
        file.display()
    );
    for (title, items) in [
        ("Upstreams", &report.upstreams),
        ("Projects", &report.projects),
        ("Users", &report.users),
        ("Keys (ids)", &report.keys),
        ("Skipped", &report.skipped),
        ("Not mapped", &report.not_mapped),
    ] {
        if !items.is_empty() {
            println!("{title}:");
            for item in items {
                println!("  - {item}");
            }
        }
    }
    Ok(())
}

/// A management command's error: printed alone, exit status 1.
fn exit_on(result: Result<(), CliError>) -> anyhow::Result<()> {
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
    Ok(())
}

async fn key(command: KeyCommand) -> anyhow::Result<()> {
    use bulwark::auth::manage;
    use std::io::Write;
    let mut stdout = std::io::stdout();
    match command {
        KeyCommand::Create {
            project,
            user,
            config,
        } => {
            let key = manage::create(&config.load()?, &project, &user).await?;
            eprintln!(
                "Created key {} for user '{user}' in project '{project}'. It is shown only now:",
                key.id
            );
            writeln!(stdout, "{}", key.secret)?;
        }
        KeyCommand::Revoke { id, config } => {
            manage::revoke(&config.load()?, &id).await?;
            eprintln!("Revoked key {id}.");
        }
        KeyCommand::Show { .. } | KeyCommand::Remove { .. } => {
            anyhow::bail!("this key command needs a running gateway: pass --url or set BULWARK_URL")
        }
        KeyCommand::List { config, .. } => {
            writeln!(
                stdout,
                "{:<12} {:<16} {:<16} STATUS",
                "ID", "USER", "PROJECT"
            )?;
            for key in manage::list(&config.load()?).await? {
                let status = if key.revoked { "revoked" } else { "active" };
                writeln!(
                    stdout,
                    "{:<12} {:<16} {:<16} {status}",
                    key.id, key.user, key.project
                )?;
            }
        }
    }
    Ok(())
}
