//! The change feed of a shared PostgreSQL store: every committed write to a
//! table the gateway holds in memory is announced on [`CHANNEL`] by a
//! trigger (migration 3), and [`listen`] turns those announcements into
//! [`Change`]s for the control plane. Nothing is sent from Rust, so writes
//! made by any path (API, restore, another version, plain SQL) are seen.
//! SQLite has no feed: one process owns its file.
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The notification channel the triggers write to.
pub const CHANNEL: &str = "bulwark_changes";

/// First wait before listening again after the connection failed.
const RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest wait between attempts.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// What another writer changed, by what the gateway rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Stored upstreams: reconcile the tree.
    Upstreams,
    /// Keys, projects or users: rebuild the credential index.
    Credentials,
    /// Guardrail pins (a tool approved elsewhere).
    Pins,
    /// Notifications may have been missed (the listener reconnected):
    /// reload everything.
    Everything,
}

impl Change {
    /// The change a trigger's payload (`TABLE WRITER`) stands for; `None`
    /// for a table the gateway does not hold or a write of `own` (this
    /// process applied it already).
    pub fn of_payload(payload: &str, own: &str) -> Option<Self> {
        let (table, writer) = payload.split_once(' ').unwrap_or((payload, ""));
        if writer == own {
            return None;
        }
        match table {
            "upstreams" => Some(Self::Upstreams),
            "api_keys" | "projects" | "users" => Some(Self::Credentials),
            "guardrail_pins" => Some(Self::Pins),
            _ => None,
        }
    }
}

/// A database URL (it may hold a password): never shown. With it, the id
/// this process writes under (`bulwark.writer` on its connections).
#[derive(Clone)]
pub struct ListenUrl {
    url: std::sync::Arc<str>,
    writer: std::sync::Arc<str>,
}

impl ListenUrl {
    pub(super) fn new(url: &str, writer: &str) -> Self {
        Self {
            url: url.into(),
            writer: writer.into(),
        }
    }
}

/// A fresh writer id: random hex, safe to put in a `SET` statement.
pub(super) fn writer_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Unique enough among processes sharing one database.
        bytes =
            (u64::from(std::process::id()) ^ crate::store::now_ms().cast_unsigned()).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Debug for ListenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenUrl(****)")
    }
}

impl super::Store {
    /// Starts listening for other writers' changes; `None` on SQLite. The
    /// receiver sees [`Change::Everything`] whenever the listening
    /// connection was (re)established, since anything before it was missed.
    pub fn changes(&self, shutdown: CancellationToken) -> Option<mpsc::Receiver<Change>> {
        let url = self.listen_url.clone()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(listen(url, tx, shutdown));
        Some(rx)
    }
}

/// Listens until `shutdown` or until nobody receives, reconnecting with backoff.
async fn listen(url: ListenUrl, tx: mpsc::Sender<Change>, shutdown: CancellationToken) {
    let mut retry = RETRY_MIN;
    loop {
        let session = tokio::select! {
            () = shutdown.cancelled() => return,
            session = follow(&url, &tx) => session,
        };
        match session {
            Ok(Ended::ReceiverGone) => return,
            Ok(Ended::ConnectionLost) => {
                retry = RETRY_MIN;
                tracing::warn!(
                    "store change feed: connection lost; listening again (full reload follows)"
                );
            }
            Err(err) => {
                tracing::warn!(%err, retry_ms = retry.as_millis(), "store change feed unavailable; other replicas' changes arrive with the periodic reload until it is back");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Why one listening session ended without an error.
enum Ended {
    ConnectionLost,
    ReceiverGone,
}

/// One listening connection: announces a full reload once it listens, then
/// forwards each notification.
async fn follow(url: &ListenUrl, tx: &mpsc::Sender<Change>) -> Result<Ended, sqlx::Error> {
    let mut listener = PgListener::connect(&url.url).await?;
    // A lost connection ends this session (and the caller announces a full
    // reload) instead of being re-established behind our back.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    tracing::info!(channel = CHANNEL, "following store changes");
    if tx.send(Change::Everything).await.is_err() {
        return Ok(Ended::ReceiverGone);
    }
    loop {
        let Some(notification) = listener.try_recv().await? else {
            return Ok(Ended::ConnectionLost);
        };
        let Some(change) = Change::of_payload(notification.payload(), &url.writer) else {
            continue;
        };
        if tx.send(change).await.is_err() {
            return Ok(Ended::ReceiverGone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_the_part_and_own_writes_are_skipped() {
        assert_eq!(
            Change::of_payload("api_keys ab12", "cd34"),
            Some(Change::Credentials)
        );
        assert_eq!(
            Change::of_payload("upstreams ", "cd34"),
            Some(Change::Upstreams)
        );
        assert_eq!(
            Change::of_payload("guardrail_pins", "cd34"),
            Some(Change::Pins)
        );
        assert_eq!(Change::of_payload("api_keys cd34", "cd34"), None);
        assert_eq!(Change::of_payload("audit_log ab12", "cd34"), None);
    }
}
