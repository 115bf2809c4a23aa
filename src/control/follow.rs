//! Following writes made elsewhere: other replicas on the same PostgreSQL
//! (or the CLI, a restore, plain SQL). On PostgreSQL the store's change
//! feed ([`crate::store::changes`]) wakes the part that changed within
//! milliseconds, and a full reload every [`RESYNC`] is the safety net for
//! anything missed. On SQLite one process owns the file: the credential
//! index is polled each second, as it always was.
use std::sync::Arc;
use std::time::Duration;

use bulwark_actors::upstream::UpstreamObserver;
use rmcp::model::ServerNotification;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::ControlPlane;
use crate::store::changes::Change;
use crate::store::pins;

/// How often everything is reloaded on PostgreSQL whatever the feed said.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Starts following until `shutdown`.
pub fn spawn(control: Arc<ControlPlane>, shutdown: CancellationToken) {
    let Some(mut changes) = control.store.changes(shutdown.clone()) else {
        control
            .credentials
            .spawn_poll(control.store.clone(), shutdown);
        return;
    };
    // One worker per part, each woken through a `Notify`: a burst of
    // changes to one part coalesces into one reload, and a slow reconcile
    // does not hold back a key revocation.
    let upstreams = worker(&control, &shutdown, Part::Upstreams);
    let credentials = worker(&control, &shutdown, Part::Credentials);
    let guardrail_pins = worker(&control, &shutdown, Part::Pins);
    tokio::spawn(async move {
        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        loop {
            let change = tokio::select! {
                () = shutdown.cancelled() => return,
                _ = resync.tick() => Change::Everything,
                change = changes.recv() => match change {
                    Some(change) => change,
                    None => return,
                },
            };
            tracing::debug!(?change, "store changed");
            match change {
                Change::Upstreams => upstreams.notify_one(),
                Change::Credentials => credentials.notify_one(),
                Change::Pins => guardrail_pins.notify_one(),
                Change::Everything => {
                    credentials.notify_one();
                    upstreams.notify_one();
                    guardrail_pins.notify_one();
                }
            }
        }
    });
}

/// What one worker reloads.
#[derive(Debug, Clone, Copy)]
enum Part {
    Upstreams,
    Credentials,
    Pins,
}

/// A task that reloads `part` each time it is woken.
fn worker(control: &Arc<ControlPlane>, shutdown: &CancellationToken, part: Part) -> Arc<Notify> {
    let wake = Arc::new(Notify::new());
    let (control, shutdown, woken) = (Arc::downgrade(control), shutdown.clone(), wake.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = woken.notified() => {}
            }
            let Some(control) = control.upgrade() else {
                return;
            };
            if let Err(err) = reload(&control, part).await {
                tracing::warn!(?part, %err, "change made elsewhere not applied yet; retried at the next change or resync");
            }
        }
    });
    wake
}

async fn reload(control: &ControlPlane, part: Part) -> Result<(), super::ControlError> {
    match part {
        Part::Credentials => control.credentials.reload(&control.store).await?,
        Part::Upstreams => {
            control.reconcile().await?;
        }
        Part::Pins => {
            let kept = pins::all(&control.store).await?;
            let guardrails = &control.gateway.guardrails;
            for (server, tool) in guardrails.pins().adopt(kept) {
                if guardrails.approve_tool(&server, &tool) {
                    control.gateway.sessions.notification(
                        &server,
                        ServerNotification::ToolListChangedNotification(Default::default()),
                    );
                }
            }
        }
    }
    Ok(())
}
