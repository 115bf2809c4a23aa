//! Built-in demo upstream MCP servers, served over stdio or streamable HTTP.
//!
//! `bulwark demo-server KIND` runs one of:
//! - [`echo`]: `echo`/`add`/`request_count` tools, one resource, one prompt.
//! - [`slow`]: a `slow` tool that reports progress and honours cancellation
//!   (`--serial`: one at a time), a `hang` tool that makes the whole server
//!   stop answering (ping too), and `whoami` (pid and calls answered).
//! - [`crash`]: tools and options that kill the process on purpose.
//! - [`conformance`]: the fixture the official MCP conformance suite expects.
//! - [`hostile`]: `leaky`, `poisoned`, `rugpull`, `injector` and `huge`, which
//!   misbehave the way attacks do, for the guardrails; `chaos`, which breaks
//!   the transport and process contract, for the runtime.
//! - [`traced`]: a `trace_context` tool reporting the W3C trace context it got.
//! - [`catalog`]: seventeen office-suite tools for tool search and naming.
//!
//! Only stderr is used for logging: in stdio mode stdout is the MCP channel.

pub mod catalog;
pub mod common;
pub mod conformance;
pub mod crash;
pub mod echo;
pub mod hostile;
pub mod slow;
pub mod traced;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rmcp::{
    ServerHandler, ServiceExt,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};

/// Which demo server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoKind {
    /// Echo/add tools, a greeting resource and a greeting prompt.
    Echo,
    /// A slow tool with progress notifications and cancellation; a hang tool.
    Slow,
    /// Tools and options that make the process exit on purpose.
    Crash,
    /// The fixture for the official MCP conformance suite's server scenarios.
    Conformance,
    /// Returns PII and secrets in outputs; `echo_args` returns its arguments.
    Leaky,
    /// Tools with poisoned descriptions and schemas next to clean ones.
    Poisoned,
    /// A tool whose definition turns malicious when `mutate` is called.
    Rugpull,
    /// Returns prompt-injection text in tool output.
    Injector,
    /// Returns outputs of `--size-bytes` bytes.
    Huge,
    /// Logs, elicits and samples in the middle of a call.
    Chatty,
    /// Breaks the transport or process contract (`--chaos MODE`), stdio only.
    Chaos,
    /// Reports the trace context (`_meta.traceparent`, `traceparent` header) it got.
    Traced,
    /// Seventeen distinct office-suite tools; `learn_tool` adds one more.
    Catalog,
}

impl DemoKind {
    /// The kind's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Slow => "slow",
            Self::Crash => "crash",
            Self::Conformance => "conformance",
            Self::Leaky => "leaky",
            Self::Poisoned => "poisoned",
            Self::Rugpull => "rugpull",
            Self::Injector => "injector",
            Self::Huge => "huge",
            Self::Chatty => "chatty",
            Self::Chaos => "chaos",
            Self::Traced => "traced",
            Self::Catalog => "catalog",
        }
    }
}

/// Arguments of `bulwark demo-server`.
#[derive(Debug, Clone, Args)]
pub struct DemoServerArgs {
    /// Which demo server to run.
    #[arg(value_enum)]
    pub kind: DemoKind,
    /// Serve streamable HTTP at `http://ADDR/mcp` instead of stdio (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// `slow`: default sleep of the `slow` tool in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub delay_ms: u64,
    /// `slow`: run one `slow` call at a time, as a single-threaded server
    /// does (others wait their turn); pool benchmarks use it.
    #[arg(long)]
    pub serial: bool,
    /// `crash`: exit with code 3 while handling the Nth `tools/call`.
    #[arg(long, value_name = "N")]
    pub crash_after: Option<u64>,
    /// `crash`: exit with code 2 before serving anything.
    #[arg(long)]
    pub die_at_start: bool,
    /// `huge`: size of `big_output`'s result in bytes.
    #[arg(long, default_value_t = hostile::huge::DEFAULT_SIZE_BYTES)]
    pub size_bytes: usize,
    /// `echo`: put `ttlMs` and `cacheScope` on every list and read result,
    /// as `TTL_MS:public` or `TTL_MS:private` (SEP-2549).
    #[arg(long, value_name = "TTL_MS:SCOPE", value_parser = parse_cache_hints)]
    pub cache_hints: Option<(u64, rmcp::model::CacheScope)>,
    /// `catalog`: list exactly N tools, the catalog's cut or filled up with
    /// generated ones (at least the three echo tools).
    #[arg(long, value_name = "N")]
    pub tools: Option<usize>,
    /// `conformance`: tools per `tools/list` page (all in one page when unset).
    #[arg(long, value_name = "N")]
    pub tools_page_size: Option<usize>,
    /// `chaos`: how to misbehave.
    #[arg(long, value_enum, default_value = "stderr-garbage")]
    pub chaos: hostile::chaos::ChaosMode,
}

fn parse_cache_hints(text: &str) -> Result<(u64, rmcp::model::CacheScope), String> {
    let (ttl, scope) = text
        .split_once(':')
        .ok_or_else(|| format!("expected TTL_MS:SCOPE, got {text:?}"))?;
    let ttl = ttl.parse().map_err(|err| format!("ttl {ttl:?}: {err}"))?;
    let scope = match scope {
        "public" => rmcp::model::CacheScope::Public,
        "private" => rmcp::model::CacheScope::Private,
        other => return Err(format!("scope {other:?}: expected public or private")),
    };
    Ok((ttl, scope))
}

/// Runs a demo server until its transport closes (stdio) or the process is stopped (HTTP).
pub async fn run(args: DemoServerArgs) -> anyhow::Result<()> {
    // The gateway keeps a stderr tail of its upstreams; tests look for this line.
    eprintln!(
        "demo-server {} started pid={}",
        args.kind.name(),
        std::process::id()
    );
    match args.kind {
        DemoKind::Echo => {
            let server =
                echo::EchoServer::<echo::NoExtras>::new().with_cache_hints(args.cache_hints);
            serve(server, args.http).await
        }
        DemoKind::Slow => {
            let server = slow::SlowServer::with_delay_ms(args.delay_ms);
            let server = if args.serial { server.serial() } else { server };
            serve(server, args.http).await
        }
        DemoKind::Crash => {
            if args.die_at_start {
                eprintln!("demo-server crash: --die-at-start, exiting with code 2");
                std::process::exit(2);
            }
            serve(
                crash::CrashServer::with_crash_after(args.crash_after),
                args.http,
            )
            .await
        }
        DemoKind::Conformance => {
            let server = conformance::ConformanceServer::new().with_page_size(args.tools_page_size);
            serve(server, args.http).await
        }
        DemoKind::Leaky => serve(hostile::leaky::LeakyServer::leaky(), args.http).await,
        DemoKind::Poisoned => serve(hostile::poisoned::PoisonedServer::poisoned(), args.http).await,
        DemoKind::Rugpull => serve(hostile::rugpull::RugPullServer::rugpull(), args.http).await,
        DemoKind::Injector => serve(hostile::injector::InjectorServer::injector(), args.http).await,
        DemoKind::Chatty => serve(hostile::chatty::ChattyServer::chatty(), args.http).await,
        DemoKind::Huge => {
            let server = hostile::huge::HugeServer::with_size_bytes(args.size_bytes);
            serve(server, args.http).await
        }
        DemoKind::Chaos => hostile::chaos::run(args.chaos).await,
        DemoKind::Traced => serve(traced::TracedServer::traced(), args.http).await,
        DemoKind::Catalog => {
            let server = match args.tools {
                Some(count) => catalog::CatalogServer::with_tool_count(count),
                None => catalog::CatalogServer::catalog(),
            };
            serve(server, args.http).await
        }
    }
}

/// Serves `handler` over stdio, or over streamable HTTP when `http` is set.
///
/// Over HTTP every session (and every stateless 2026-07-28 request) gets a clone
/// of `handler`, so state meant to outlive a session must sit behind an `Arc`.
async fn serve<H>(handler: H, http: Option<SocketAddr>) -> anyhow::Result<()>
where
    H: ServerHandler + Clone,
{
    match http {
        None => {
            let running = handler
                .serve(crate::stdio_transport::stdio())
                .await
                .context("stdio MCP handshake failed")?;
            running.waiting().await.context("stdio MCP service")?;
            Ok(())
        }
        Some(addr) => serve_http(handler, addr).await,
    }
}

async fn serve_http<H>(handler: H, addr: SocketAddr) -> anyhow::Result<()>
where
    H: ServerHandler + Clone,
{
    let sessions = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        sessions.clone(),
        StreamableHttpServerConfig::default(),
    );
    // Tests of session expiry: forget every session, as a server that
    // restarted or expired them would; the next request of each gets a 404.
    let drop_sessions = axum::routing::post(move || async move {
        let dropped = sessions.sessions.write().await.drain().count();
        eprintln!("demo-server: dropped {dropped} sessions");
        dropped.to_string()
    });
    let router = axum::Router::new()
        .nest_service("/mcp", service)
        .route("/demo/drop-sessions", drop_sessions);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr().context("reading bound address")?;
    eprintln!("listening on http://{bound}/mcp");
    // Keep-alive clients would stall on delayed ACKs without TCP_NODELAY.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("HTTP server")
}
