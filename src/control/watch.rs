//! The config file watch: saving the file (or SIGHUP) reloads it through
//! the same reconcile path as an API write. A file that does not parse or
//! validate changes nothing: the error (file, server, field) is logged and
//! the running state stays.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ControlPlane;
use crate::config::Config;

/// How often the files are compared with what was last applied. Polling
/// the content (not the mtime) also sees editors that save by renaming.
/// A change is applied only once two polls in a row read the same bytes:
/// a save that writes in place is seen half-written (often empty) at
/// times, and a truncated file that happens to parse must never be applied.
const POLL: Duration = Duration::from_millis(150);

/// Applies a freshly loaded configuration; `overrides` re-applies what the
/// command line changed (listen address and the like).
pub type Overrides = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// Watches the config sources and SIGHUP until `shutdown`.
pub fn spawn(control: Arc<ControlPlane>, overrides: Overrides, shutdown: CancellationToken) {
    let files: Vec<PathBuf> = [
        control.sources().config_file.clone(),
        control.sources().mcp_servers.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    tokio::spawn(async move {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGHUP");
                None
            }
        };
        let mut seen = contents(&files);
        let mut settling: Option<Contents> = None;
        let mut tick = tokio::time::interval(POLL);
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = hup => tracing::info!("SIGHUP: reloading the configuration"),
                _ = tick.tick() => {
                    let now = contents(&files);
                    if now == seen {
                        settling = None;
                        continue;
                    }
                    if settling.as_ref() != Some(&now) {
                        settling = Some(now);
                        continue;
                    }
                    settling = None;
                    seen = now;
                    tracing::info!("configuration file changed: reloading");
                }
            }
            reload(&control, &overrides).await;
        }
    });
}

/// Loads the sources again and applies them, or logs why not.
pub async fn reload(control: &ControlPlane, overrides: &Overrides) {
    // An empty file would load as the embedded defaults (the demo upstream)
    // and stop every configured upstream; it is far more often a save caught
    // between truncate and write than a wish to run the demo.
    let sources = control.sources();
    if let Some(empty) = [&sources.config_file, &sources.mcp_servers]
        .into_iter()
        .flatten()
        .find(|file| std::fs::read(file).is_ok_and(|bytes| bytes.trim_ascii().is_empty()))
    {
        tracing::error!(file = %empty.display(), "configuration not reloaded: the file is empty; the running state stays");
        return;
    }
    let mut config = match Config::load(control.sources()) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "configuration not reloaded; the running state stays");
            return;
        }
    };
    overrides(&mut config);
    config.warn_ignored_keys();
    match control.set_file_config(config).await {
        Ok(applied) => {
            tracing::info!(added = ?applied.added, removed = ?applied.removed, updated = ?applied.updated, "configuration reloaded")
        }
        Err(err) => {
            tracing::error!(error = %err, "configuration not applied; the running state stays")
        }
    }
}

/// The bytes of each watched file (`None` where it cannot be read).
type Contents = Vec<Option<Vec<u8>>>;

fn contents(files: &[PathBuf]) -> Contents {
    files.iter().map(|file| std::fs::read(file).ok()).collect()
}
