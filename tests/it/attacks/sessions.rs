//! A session flood: one key opening sessions without end is stopped at
//! `server.limits.max_sessions_per_caller` with a clear error, other keys
//! are still served, and ending a session makes room again.
use super::{normal_call_served, open_session, rss_kib};
use crate::auth::{PROTOCOL, initialize, start_with_keys};

/// RSS growth allowed for the refused flood (KiB).
const FLOOD_RSS_KIB: u64 = 16 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_flood_stops_at_the_per_caller_cap() {
    let ([alice, bob], gw) = start_with_keys(
        [("alice", "demo"), ("bob", "demo")],
        "[server.limits]\nmax_sessions_per_caller = 20\n",
    )
    .await;
    let key = [("X-API-Key", alice.secret.as_str())];
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(open_session(&gw, "/mcp", &key).await);
    }
    let (at_cap, _) = rss_kib(gw.pid());
    for _ in 0..200 {
        let refused = initialize(&gw, "/mcp", &key).await;
        assert_eq!(refused.status(), 429);
        let text = refused.text().await.unwrap();
        assert!(text.contains("max_sessions_per_caller"), "{text}");
    }
    let (after, _) = rss_kib(gw.pid());
    eprintln!("session flood: RSS {at_cap} KiB at the cap, {after} KiB after 200 refused");
    assert!(after < at_cap + FLOOD_RSS_KIB);
    normal_call_served(&gw, &[("X-API-Key", bob.secret.as_str())]).await;

    let ended = gw
        .http()
        .delete(gw.url("/mcp"))
        .header("X-API-Key", &alice.secret)
        .header("mcp-session-id", &sessions[0])
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .unwrap();
    // 200, as the reference SDK servers answer: the Python client logs
    // "Session termination failed" for anything but 200 and 204.
    assert_eq!(ended.status(), 200);
    normal_call_served(&gw, &key).await;
}
