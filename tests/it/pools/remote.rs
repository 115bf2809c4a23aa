//! `urls = [...]`: a remote upstream served by several endpoints, one
//! instance per URL; one endpoint going away fails none of the calls that
//! go to the others.
use std::collections::BTreeSet;
use std::time::Duration;

use super::{HEAD, all_ready, whoami};
use crate::common::{Gateway, PythonSession, peers};
use crate::remote::DemoHttp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_pool_spreads_over_its_urls_and_survives_one_going_away() {
    let Some(peers) = peers() else { return };
    let mut first = DemoHttp::start("slow");
    let second = DemoHttp::start("slow");
    let config = format!(
        "{HEAD}[upstreams.p]\nurls = [{:?}, {:?}]\n",
        first.url(),
        second.url()
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    all_ready(&gw, "p", 2).await;
    let mut session = PythonSession::start(&peers, &[gw.mcp_url()]);
    let seen: BTreeSet<i32> = (0..6).map(|_| whoami(&mut session, "p")).collect();
    assert_eq!(seen.len(), 2, "both endpoints take calls: {seen:?}");

    first.kill9();
    // At most the one call that finds the endpoint gone fails; every other
    // call goes to (and is answered by) the endpoint still there.
    let mut answered = BTreeSet::new();
    let mut failed = 0;
    for _ in 0..8 {
        let answer = session.call("p__whoami", serde_json::json!({}));
        match answer["result"]["text"].as_str() {
            Some(text) if answer["ok"] == true => {
                let report: serde_json::Value = serde_json::from_str(text).expect("json");
                answered.insert(report["pid"].as_i64().expect("pid"));
            }
            _ => failed += 1,
        }
    }
    assert!(failed <= 1, "{failed} calls failed");
    assert_eq!(answered.len(), 1, "{answered:?}");
}
