//! Replays a load balancer may make of a `tools/call`, recognised across
//! replicas.
//!
//! A replica killed with SIGKILL keeps its listening socket for a few
//! milliseconds while the kernel tears it down: connections are accepted,
//! then reset. A load balancer cannot tell such a request (never read) from
//! one that died mid-call (which may have run), so replaying a `tools/call`
//! on another replica would risk running a tool twice, and not replaying it
//! fails calls that never reached a live process.
//!
//! With `[sessions] backend = "redis"`, a request carrying
//! [`ATTEMPT_HEADER`] (set once per client request by the load balancer,
//! kept on its replays: `deploy/local/replicas.sh` shows HAProxy's rules)
//! is claimed in the session directory before the gateway does anything
//! with it. The first replica to see it claims it and serves it; a replay
//! reaching another replica finds the claim and is answered
//! [`GatewayError::Replayed`] without running. So the load balancer may
//! replay every `tools/call` whose response never started: one that no
//! process read runs once, on the replica it is replayed to; one that a
//! replica saw fails as a call lost in flight does.
//!
//! A claim lasts [`LeaseTiming::ttl`] (a minute) and is renewed while its
//! call runs, so a replay that comes while the call is still running, or
//! within that time after the replica holding it died, finds it; a claim
//! costs Redis memory only for about a minute after its call.
use std::sync::Arc;
use std::time::Duration;

use axum::http::request::Parts;
use rmcp::RoleServer;
use rmcp::service::RequestContext;
use tokio_util::task::AbortOnDropHandle;

use super::directory::Directory;
use super::error::GatewayError;

/// The load balancer's id of one client request, the same on its replays.
pub static ATTEMPT_HEADER: axum::http::HeaderName =
    axum::http::HeaderName::from_static("bulwark-attempt");
/// Longest attempt id accepted (HAProxy's `%[uuid()]` is 36 characters).
const MAX_ATTEMPT_LEN: usize = 128;

/// How long a claim is kept, and how often a running call renews it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    /// How long a claim outlives its last renewal. A load balancer replays
    /// a request as soon as its connection fails, within moments of the
    /// replica dying; a minute leaves room for a slow one.
    pub ttl: Duration,
    /// How often a running call renews its claim: a few times per `ttl`, so
    /// one lost renewal does not let it lapse.
    pub renew_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            renew_every: Duration::from_secs(20),
        }
    }
}

/// A claimed attempt (or none: no header, no directory, or Redis down),
/// renewed in the background until dropped, when the call has ended. A task
/// beside the call rather than a wrapper around its future: the call's
/// future is large, and wrapping it cost every call (claimed or not) ~40k
/// instructions of copying (callgrind).
#[derive(Debug)]
#[must_use = "a claim is renewed only while it is held"]
pub struct Claim {
    /// Aborted when dropped; the claim then lapses [`LeaseTiming::ttl`]
    /// after the call ends (a replay of a call whose answer was lost on the
    /// way may still come).
    _renewal: Option<AbortOnDropHandle<()>>,
}

impl Claim {
    /// Nothing claimed: the call runs as it would without replicas.
    fn none() -> Self {
        Self { _renewal: None }
    }

    /// Renews `attempt`'s claim every `timing.renew_every` until dropped.
    fn renewed(directory: Arc<Directory>, attempt: String, timing: LeaseTiming) -> Self {
        let renewal = AbortOnDropHandle::new(tokio::spawn(async move {
            let every = timing.renew_every;
            let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                renewals.tick().await;
                if let Err(err) = directory.extend_attempt(&attempt, timing.ttl).await {
                    tracing::warn!(%err, "call attempt claim not renewed: a replay of this call after it lapses would run it again");
                }
            }
        }));
        Self {
            _renewal: Some(renewal),
        }
    }
}

/// Claims the request's attempt id, if it has one, before it is served:
/// `Err(Replayed)` when another replica (or this one) already saw it. When
/// Redis does not answer the call runs: a replay of it would then not be
/// recognised, which is what running without claims means.
pub async fn claim(
    directory: Option<&Arc<Directory>>,
    context: &RequestContext<RoleServer>,
) -> Result<Claim, GatewayError> {
    let (Some(directory), Some(attempt)) =
        (directory, attempt_id(context.extensions.get::<Parts>()))
    else {
        return Ok(Claim::none());
    };
    // Boxed: the store's round trip is a large future, and only replicas
    // behind a load balancer make it; every call's future stays small.
    Box::pin(claim_attempt(directory, attempt, LeaseTiming::default())).await
}

/// Claims `attempt` in `directory` for `timing.ttl`; see [`claim`].
pub async fn claim_attempt(
    directory: &Arc<Directory>,
    attempt: &str,
    timing: LeaseTiming,
) -> Result<Claim, GatewayError> {
    match directory.claim_attempt(attempt, timing.ttl).await {
        Ok(true) => Ok(Claim::renewed(
            directory.clone(),
            attempt.to_owned(),
            timing,
        )),
        Ok(false) => Err(GatewayError::Replayed),
        Err(err) => {
            tracing::warn!(%err, "call attempt not claimed: a replay of this call would run it again");
            Ok(Claim::none())
        }
    }
}

/// The attempt id of a request: [`ATTEMPT_HEADER`], when it is 1 to
/// [`MAX_ATTEMPT_LEN`] visible ASCII characters (anything else is ignored:
/// it cannot come from the load balancer's rule).
fn attempt_id(parts: Option<&Parts>) -> Option<&str> {
    let value = parts?.headers.get(&ATTEMPT_HEADER)?.to_str().ok()?;
    let valid = !value.is_empty()
        && value.len() <= MAX_ATTEMPT_LEN
        && value.bytes().all(|b| b.is_ascii_graphic());
    valid.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(value: &str) -> Parts {
        let (parts, ()) = axum::http::Request::builder()
            .header(&ATTEMPT_HEADER, value)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn only_a_plausible_header_is_an_attempt_id() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(attempt_id(Some(&parts(uuid))), Some(uuid));
        assert_eq!(attempt_id(Some(&parts(""))), None);
        assert_eq!(attempt_id(Some(&parts("a b"))), None);
        assert_eq!(attempt_id(Some(&parts(&"x".repeat(129)))), None);
        assert_eq!(attempt_id(None), None);
    }
}
