//! The `chaos` demo server: upstreams that break the transport or the
//! process contract rather than the content, for the runtime's hardening
//! tests and the chaos soak (`--chaos MODE`).
//!
//! Modes built on the echo server (rmcp): `stderr-garbage`, `ignore-sigterm`,
//! `fork-grandchildren`. Modes that must break JSON-RPC itself speak it by
//! hand ([`raw`]): `stdout-garbage`, `huge-line`, `notify-flood`,
//! `wrong-ids`, `no-initialize`. Every mode that answers at all offers the
//! `echo` tool, so a test can tell whether it still serves.
use std::io::Write;

use clap::ValueEnum;

use crate::demo::echo::{EchoServer, NoExtras};

mod raw;

/// How a chaos upstream misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChaosMode {
    /// Invalid UTF-8, a 64 MiB line without newline, then a flood of lines
    /// on stderr; exits (like a SIGPIPE) if stderr breaks. Serves echo.
    StderrGarbage,
    /// Ignores SIGTERM and stdin EOF: only SIGKILL ends it. Serves echo.
    IgnoreSigterm,
    /// Forks two `sleep` grandchildren into its process group. Serves echo.
    ForkGrandchildren,
    /// Writes non-JSON and invalid UTF-8 lines on stdout between messages.
    StdoutGarbage,
    /// Writes one 100 MB line on stdout after the handshake.
    HugeLine,
    /// Floods notifications (list changes, logs, stray progress) after the handshake.
    NotifyFlood,
    /// Answers `initialize`, then every request under a wrong id.
    WrongIds,
    /// Reads everything and never answers, `initialize` included.
    NoInitialize,
}

/// What [`ChaosMode::StderrGarbage`] writes last, again and again: the test
/// finds it in the stderr tail once the garbage is through.
pub const STDERR_ALIVE: &str = "chaos: stderr still flowing";

/// Runs the chaos server in `mode` over stdio until it is killed or stdin closes.
pub async fn run(mode: ChaosMode) -> anyhow::Result<()> {
    match mode {
        ChaosMode::StderrGarbage => {
            std::thread::spawn(stderr_garbage);
            serve_echo().await
        }
        ChaosMode::IgnoreSigterm => {
            // Holding the stream replaces the default action: SIGTERM does nothing.
            let _term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let served = serve_echo().await;
            eprintln!("chaos: stdin closed; staying alive anyway ({served:?})");
            std::future::pending::<()>().await;
            Ok(())
        }
        ChaosMode::ForkGrandchildren => {
            for _ in 0..2 {
                let child = std::process::Command::new("sleep").arg("3600").spawn()?;
                eprintln!("chaos: grandchild pid={}", child.id());
            }
            serve_echo().await
        }
        ChaosMode::StdoutGarbage
        | ChaosMode::HugeLine
        | ChaosMode::NotifyFlood
        | ChaosMode::WrongIds
        | ChaosMode::NoInitialize => raw::serve(mode).await,
    }
}

async fn serve_echo() -> anyhow::Result<()> {
    use rmcp::ServiceExt as _;
    let running = EchoServer::<NoExtras>::new()
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}

/// The stderr part of [`ChaosMode::StderrGarbage`]; a broken pipe ends the
/// process as SIGPIPE would end most servers.
fn stderr_garbage() {
    let mut err = std::io::stderr().lock();
    let chunk = vec![b'x'; 1024 * 1024];
    let mut write = |bytes: &[u8]| {
        if err.write_all(bytes).and_then(|()| err.flush()).is_err() {
            std::process::exit(41);
        }
    };
    write(b"chaos: invalid utf-8 follows: \xff\xfe\xc3\x28 \xed\xa0\x80\n");
    for _ in 0..64 {
        write(&chunk);
    }
    write(b"\n");
    for i in 0..10_000 {
        write(format!("chaos: flood line {i}\n").as_bytes());
    }
    loop {
        write(format!("{STDERR_ALIVE}\n").as_bytes());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
