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
use axum::http::request::Parts;
use rmcp::RoleServer;
use rmcp::service::RequestContext;

use super::directory::Directory;
use super::error::GatewayError;

/// The load balancer's id of one client request, the same on its replays.
pub const ATTEMPT_HEADER: &str = "bulwark-attempt";
/// Longest attempt id accepted (HAProxy's `%[uuid()]` is 36 characters).
const MAX_ATTEMPT_LEN: usize = 128;

/// Claims the request's attempt id, if it has one, before it is served:
/// `Err(Replayed)` when another replica (or this one) already saw it. When
/// Redis does not answer the call runs: a replay of it would then not be
/// recognised, which is what running without claims means.
pub async fn claim(
    directory: Option<&Directory>,
    context: &RequestContext<RoleServer>,
) -> Result<(), GatewayError> {
    let Some(directory) = directory else {
        return Ok(());
    };
    let Some(attempt) = attempt_id(context.extensions.get::<Parts>()) else {
        return Ok(());
    };
    match directory.claim_attempt(attempt).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(GatewayError::Replayed),
        Err(err) => {
            tracing::warn!(%err, "call attempt not claimed: a replay of this call would run it again");
            Ok(())
        }
    }
}

/// The attempt id of a request: [`ATTEMPT_HEADER`], when it is 1 to
/// [`MAX_ATTEMPT_LEN`] visible ASCII characters (anything else is ignored:
/// it cannot come from the load balancer's rule).
fn attempt_id(parts: Option<&Parts>) -> Option<&str> {
    let value = parts?.headers.get(ATTEMPT_HEADER)?.to_str().ok()?;
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
            .header(ATTEMPT_HEADER, value)
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
