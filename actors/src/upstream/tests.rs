//! The actor's own accounting across instances, against real processes.
use std::sync::Arc;
use std::time::Duration;

use ractor::Actor;

use super::{NoObserver, UpstreamActor, UpstreamArgs, UpstreamSpec, UpstreamStatus};

/// A server that reads its stdin to the end and never answers `initialize`
/// (like the `no-initialize` chaos upstream): each instance fails its
/// handshake, schedules the session grace, and exits on stdin EOF before
/// the grace fires, so that late message finds the instance stopped.
fn mute() -> UpstreamSpec {
    UpstreamSpec::stdio("mute", "sh", vec!["-c".into(), "cat >/dev/null".into()])
}

#[tokio::test]
async fn the_mailbox_depth_does_not_grow_with_restarts_of_a_mute_upstream() {
    let status = UpstreamStatus::new("mute");
    for instance in 1..=4 {
        let args = UpstreamArgs {
            spec: mute(),
            status: status.clone(),
            observer: Arc::new(NoObserver),
            tokens: None,
            handshake_timeout: Duration::from_millis(300),
        };
        let (_actor, ended) = Actor::spawn(None, UpstreamActor, args).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the instance never ended")
            .unwrap();
        // Each instance started after its predecessor's grace was scheduled,
        // and lasted longer than the grace: every late send has happened.
        assert_eq!(
            status.mailbox.depth(),
            0,
            "instance {instance} left its mailbox counted"
        );
    }
    assert!(
        status.mailbox.handled_total() >= 8,
        "two messages per instance at least"
    );
}

#[test]
fn a_handshake_error_names_the_cause_and_step_not_the_transport_type() {
    use rmcp::service::{ClientInitializeError, RoleClient};
    use rmcp::transport::async_rw::AsyncRwTransport;
    type Pipe = AsyncRwTransport<RoleClient, tokio::io::DuplexStream, tokio::io::DuplexStream>;
    let transport = |message: &str| {
        ClientInitializeError::transport::<Pipe>(
            std::io::Error::other(message.to_owned()),
            "send initialize request",
        )
    };
    assert!(transport("x").to_string().contains("AsyncRwTransport"));
    let shown = super::handshake_error(&transport("HTTP 405 Method Not Allowed"));
    assert_eq!(
        shown,
        "HTTP 405 Method Not Allowed, when send initialize request"
    );
    let both = ClientInitializeError::LegacyFallbackFailed {
        discover: Box::new(transport("HTTP 404")),
        fallback: Box::new(ClientInitializeError::ConnectionClosed("eof".into())),
    };
    let shown = super::handshake_error(&both);
    assert_eq!(
        shown,
        "discover: HTTP 404, when send initialize request; legacy initialize: connection closed: eof"
    );
    assert!(!shown.contains("AsyncRwTransport"), "{shown}");
}
