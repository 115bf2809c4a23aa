//! First end-to-end check of the real `bulwark serve` through the harness:
//! a Python client (official SDK) → gateway → `mcp-server-time` over stdio.

use std::time::Duration;

use serde_json::json;

use crate::common::{self, Gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_tool_call_reaches_stdio_upstream() {
    let Some(peers) = common::peers() else { return };
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[upstreams.time]\ncommand = {:?}\nargs = []\n",
        peers.mcp_server_time().display().to_string()
    );
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(30)).await;

    let url = gw.mcp_url().to_owned();
    let out = tokio::task::spawn_blocking({
        let peers = peers.clone();
        move || {
            peers.run_python(
                "probe_http.py",
                &[
                    &url,
                    "--call",
                    "time__get_current_time",
                    r#"{"timezone": "UTC"}"#,
                ],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(out["exitCode"], 0, "{out:#}{}", gw.logs());
    let tools = out["tools"].as_array().unwrap();
    assert!(
        tools.contains(&json!("time__get_current_time")),
        "{out:#}{}",
        gw.logs()
    );
    let step = &out["steps"][0];
    assert_eq!(step["ok"], true, "{out:#}{}", gw.logs());
    assert_eq!(step["result"]["isError"], false, "{out:#}");
    assert!(
        step["result"]["text"].as_str().unwrap().contains("UTC"),
        "{out:#}"
    );

    // The upstream runs as a child of the gateway and goes away with it.
    let pid = gw.pid();
    let kids = common::descendants(pid);
    assert!(
        kids.iter()
            .any(|&k| common::cmdline(k).is_some_and(|c| c.contains("mcp-server-time"))),
        "no mcp-server-time under the gateway: {kids:?}"
    );
    drop(gw);
    assert!(common::wait_until(Duration::from_secs(10), || kids
        .iter()
        .all(|&k| !common::alive(k))));
}
