//! The live dashboard (`/ui`, issue 11): its feed over HTTP, and the page
//! itself in headless Chromium against the real binary — log in with a key,
//! watch an upstream killed with SIGKILL go restarting → ready, restart it
//! from its button.
mod webdriver;

use std::time::Duration;

use serde_json::{Value, json};

use crate::auth::TestKey;
use crate::common::{Gateway, cmdline, descendants, kill9, peers, repo_root, wait_until};
use crate::gateway::{HEAD, demo_upstream};
use webdriver::Driver;

/// An admin key and one `echo` demo upstream whose second crash in a minute
/// waits 2 s before its restart, so `restarting` lasts long enough to see.
fn config(admin: &TestKey) -> String {
    format!(
        "{HEAD}{}[upstreams.echo.restart]\nmax_restarts = 20\nwindow_secs = 60\n\
         backoff_min_ms = 2000\nbackoff_max_ms = 2000\nprobe_interval_secs = 3600\n\n{}",
        demo_upstream("echo", "\"echo\""),
        admin.entry("root", "admin", false),
    )
}

async fn start(admin: &TestKey) -> Gateway {
    let gw = Gateway::builder(&config(admin)).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;
    gw
}

/// The pid of the `echo` demo process under the gateway.
fn echo_pid(gw: &Gateway) -> Option<i32> {
    descendants(gw.pid())
        .into_iter()
        .find(|&pid| cmdline(pid).is_some_and(|c| c.contains("demo-server echo")))
}

/// Reads from an open event stream until `events` complete `snapshot`
/// events arrived; returns their data.
async fn read_snapshots(response: &mut reqwest::Response, events: usize) -> Vec<Value> {
    let mut text = String::new();
    let mut found = Vec::new();
    while found.len() < events {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("an event within 10s")
            .expect("stream readable")
            .expect("stream still open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if block.lines().any(|l| l == "event: snapshot") {
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                    .collect();
                found.push(serde_json::from_str(&data.join("\n")).unwrap());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_needs_the_key_pushes_snapshots_and_ends_at_shutdown() {
    let admin = TestKey::new();
    let mut gw = start(&admin).await;

    // The page: served without a key (it holds no state), locked down by CSP.
    let page = gw.get("/ui").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN: {html}"
    );
    for asset in ["/ui/app.js", "/ui/app.css"] {
        assert!(html.contains(asset), "{asset}");
        let response = gw.get(asset).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.text().await.unwrap().is_empty(), "{asset}");
    }

    // The feed: the key is required, in a header.
    let refused = gw.get("/api/v1/actors/stream").await;
    assert_eq!(refused.status(), 401);
    let started = std::time::Instant::now();
    let mut stream = gw
        .http()
        .get(gw.url("/api/v1/actors/stream"))
        .bearer_auth(&admin.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(stream.headers()["x-accel-buffering"], "no");
    let snapshots = read_snapshots(&mut stream, 3).await;
    let first = &snapshots[0];
    let server = first["actors"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "server_supervisor" && c["name"] == "echo")
        .unwrap_or_else(|| panic!("no echo in {first}"));
    let upstream = &server["children"][0];
    assert_eq!(upstream["kind"], "upstream", "{upstream}");
    for field in [
        "state",
        "restarts",
        "calls_in_flight",
        "calls_finished",
        "mailbox_depth",
    ] {
        assert!(!upstream[field].is_null(), "{field} missing: {upstream}");
    }
    let cache = first["actors"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cache")
        .unwrap_or_else(|| panic!("no cache actor in {first}"));
    assert!(cache["cache"]["hits"].is_u64(), "{cache}");
    assert!(cache["uptime_secs"].is_f64(), "{cache}");
    assert!(first["guardrails"]["stats"]["blocked"].is_u64(), "{first}");
    assert_eq!(first["upstreams"][0]["name"], "echo", "{first}");
    // Three snapshots: the first at once, then at least one a second.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "3 snapshots took {:?}",
        started.elapsed()
    );

    // SIGTERM ends the open stream, so shutdown does not wait on it.
    gw.sigterm();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "stream still open 20s after SIGTERM");
    assert!(
        gw.wait_exit(Duration::from_secs(20)).is_some(),
        "gateway did not exit with a dashboard stream open{}",
        gw.logs()
    );
}

/// `state` and `restarts` of the `echo` upstream row, and the change log.
const ECHO_ROW: &str = r#"
    const row = document.querySelector('tr[data-kind="upstream"][data-name="echo"]');
    const server = document.querySelector('tr[data-kind="server_supervisor"][data-name="echo"]');
    const log = Array.from(document.querySelectorAll('#events li[data-name="echo"][data-kind="upstream"]'))
        .reverse().map((li) => li.dataset.from + '>' + li.dataset.to);
    return {
        state: row && row.dataset.state,
        restarts: server && Number(server.dataset.restarts),
        log,
        notice: document.getElementById('notice').textContent,
        calls_per_sec: row && row.children[6].textContent,
        p50: row && row.children[7].textContent,
        cache: document.getElementById('cache-ratio').textContent,
    };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_shows_a_killed_upstream_come_back_and_restarts_it() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let admin = TestKey::new();
    let gw = start(&admin).await;
    let browser = driver.session(1400, 900).await;
    let wait = Duration::from_secs(30);
    let shot_dir = repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&shot_dir).unwrap();

    // Log in: the key goes to sessionStorage, never into the URL.
    log_in(&browser, &gw, &admin.secret).await;
    browser
        .wait_for("echo ready", wait, ECHO_ROW, |v| v["state"] == "ready")
        .await;
    let stored = browser
        .eval("return [location.href, sessionStorage.getItem('bulwark.key')];")
        .await;
    assert!(
        !stored[0].as_str().unwrap().contains(&admin.secret),
        "{stored}"
    );
    assert_eq!(stored[1], admin.secret.as_str());
    let link = browser
        .eval("return document.getElementById('link').dataset.state;")
        .await;
    assert_eq!(link, "live");

    // Calls through the gateway show up as calls/s and latency.
    if let Some(peers) = peers() {
        let mut session = peers.session_with_headers(gw.mcp_url(), &admin.headers());
        for i in 0..20 {
            let answer = session.call("echo__echo", json!({"message": format!("hi {i}")}));
            assert_eq!(answer["ok"], true, "{answer}");
        }
        browser
            .wait_for("calls and latency", wait, ECHO_ROW, |v| {
                v["p50"].as_str().is_some_and(|p| p.starts_with('≤'))
                    && v["calls_per_sec"]
                        .as_str()
                        .and_then(|r| r.parse::<f64>().ok())
                        .is_some_and(|r| r > 0.0)
            })
            .await;
        std::fs::write(shot_dir.join("ui-calls.png"), browser.screenshot().await).unwrap();
        drop(session);
    }

    // `echo` comes from the config file: its Disable button is off.
    let read_only = browser
        .eval(r#"return document.querySelector('button[data-action="disable"][data-name="echo"]').disabled;"#)
        .await;
    assert_eq!(read_only, true);

    // First SIGKILL: restarted at once (restarts 1).
    let first = echo_pid(&gw).expect("echo process");
    kill9(first);
    browser
        .wait_for("restart after the first kill", wait, ECHO_ROW, |v| {
            // Logged even when it fell between two snapshots.
            v["restarts"] == 1
                && v["state"] == "ready"
                && v["log"].as_array().is_some_and(|l| !l.is_empty())
        })
        .await;

    // Second SIGKILL within the window: 2 s of backoff, seen as
    // `restarting` in the DOM, then `ready` again.
    let second = echo_pid(&gw).expect("restarted echo process");
    assert_ne!(first, second);
    kill9(second);
    browser
        .wait_for("restarting", wait, ECHO_ROW, |v| v["state"] == "restarting")
        .await;
    std::fs::write(
        shot_dir.join("ui-restarting.png"),
        browser.screenshot().await,
    )
    .unwrap();
    let seen = browser
        .wait_for("ready after the backoff", wait, ECHO_ROW, |v| {
            v["restarts"] == 2 && v["state"] == "ready"
        })
        .await;
    let log: Vec<&str> = seen["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let restarting = log
        .iter()
        .rposition(|change| change.ends_with(">restarting"))
        .unwrap_or_else(|| panic!("no change to restarting logged: {log:?}"));
    assert!(
        log[restarting..].iter().any(|c| c.ends_with(">ready")),
        "restarting never followed by ready: {log:?}"
    );

    // The Restart button: the API restarts it (a new process, ready again).
    let third = echo_pid(&gw).expect("echo process after the backoff");
    browser
        .click_on(r#"button[data-action="restart"][data-name="echo"]"#)
        .await;
    browser
        .wait_for("the restart answer", wait, ECHO_ROW, |v| {
            v["notice"]
                .as_str()
                .is_some_and(|n| n.contains("restart echo"))
        })
        .await;
    let notice = browser.eval(ECHO_ROW).await["notice"].clone();
    assert!(notice.as_str().unwrap().contains("done"), "{notice}");
    assert!(
        wait_until(wait, || echo_pid(&gw).is_some_and(|pid| pid != third)),
        "no new echo process after Restart"
    );
    browser
        .wait_for("ready after Restart", wait, ECHO_ROW, |v| {
            v["state"] == "ready"
        })
        .await;
    std::fs::write(
        shot_dir.join("ui-dashboard.png"),
        browser.screenshot().await,
    )
    .unwrap();
    browser.close().await;
}

/// Logs `browser` in at `/ui` with `key` and waits for the first snapshot.
async fn log_in(browser: &webdriver::Session, gw: &Gateway, key: &str) {
    browser.goto(&gw.url("/ui")).await;
    let field = browser.find("#key").await;
    browser.type_into(&field, key).await;
    browser.click_on("#login-submit").await;
    browser
        .wait_for(
            "the first snapshot",
            Duration::from_secs(30),
            "return document.querySelectorAll('#tree-body tr').length;",
            |n| n.as_u64().is_some_and(|n| n > 0),
        )
        .await;
}

/// `state` of the server row `name` and the actions it offers.
fn server_row(name: &str) -> String {
    format!(
        r#"const row = document.querySelector('tr[data-kind="server_supervisor"][data-name="{name}"]');
           return row && {{ state: row.dataset.state,
               actions: Array.from(row.querySelectorAll('button')).map((b) => b.dataset.action) }};"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_disables_enables_and_approves_a_changed_tool() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    let Some(peers) = peers() else {
        return;
    };
    let admin = TestKey::new();
    let config = format!(
        "{HEAD}[guardrails]\npin_tools = \"block\"\ntool_poisoning = \"flag\"\n{}\n{}",
        demo_upstream("rug", "\"rugpull\""),
        admin.entry("root", "admin", false),
    );
    let gw = Gateway::builder(&config).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;
    // An upstream made through the API (file ones are read-only there).
    let created = gw
        .http()
        .post(gw.url("/api/v1/upstreams"))
        .bearer_auth(&admin.secret)
        .json(&json!({
            "name": "spare",
            "command": env!("CARGO_BIN_EXE_bulwark"),
            "args": ["demo-server", "echo"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let browser = driver.session(1400, 900).await;
    let wait = Duration::from_secs(30);

    // A wrong key: refused, forgotten, the form shown again.
    browser.goto(&gw.url("/ui")).await;
    let field = browser.find("#key").await;
    browser.type_into(&field, &TestKey::new().secret).await;
    browser.click_on("#login-submit").await;
    let refused = r#"return { error: document.getElementById('login-error').textContent,
        form: !document.getElementById('login').hidden,
        stored: sessionStorage.getItem('bulwark.key') };"#;
    let shown = browser
        .wait_for("the refusal", wait, refused, |v| {
            v["error"].as_str().is_some_and(|e| e.contains("refused"))
        })
        .await;
    assert_eq!(
        (&shown["form"], &shown["stored"]),
        (&json!(true), &Value::Null),
        "{shown}"
    );

    log_in(&browser, &gw, &admin.secret).await;

    // Disable, then Enable, from the buttons.
    browser
        .wait_for("spare ready", wait, &server_row("spare"), |v| {
            v["state"] == "ready"
        })
        .await;
    browser
        .click_on(r#"button[data-action="disable"][data-name="spare"]"#)
        .await;
    browser
        .wait_for("spare disabled", wait, &server_row("spare"), |v| {
            v["state"] == "disabled" && v["actions"] == json!(["enable"])
        })
        .await;
    assert!(
        wait_until(wait, || !descendants(gw.pid()).into_iter().any(|pid| {
            cmdline(pid).is_some_and(|c| c.contains("demo-server echo"))
        })),
        "the disabled upstream's process still runs"
    );
    browser
        .click_on(r#"button[data-action="enable"][data-name="spare"]"#)
        .await;
    browser
        .wait_for("spare back", wait, &server_row("spare"), |v| {
            v["state"] == "ready"
        })
        .await;

    // A rug pull: the changed tool is flagged and its call blocked; Approve
    // from the page brings it back.
    let mut session = peers.session_with_headers(gw.mcp_url(), &admin.headers());
    session.list("tools"); // pins the definitions
    let answer = session.call("rug__mutate", json!({}));
    assert_eq!(answer["ok"], true, "{answer}");
    session.list("tools");
    let blocked = session.call("rug__fetch_url", json!({"url": "https://example.com"}));
    assert_ne!(blocked["ok"], true, "{blocked}");
    let flagged_row = r#"const row = document.querySelector('#flagged-body tr[data-server="rug"][data-tool="fetch_url"]');
        return { row: !!row, approve: !!(row && row.querySelector('button[data-action="approve"]')) };"#;
    browser
        .wait_for("the changed tool, flagged", wait, flagged_row, |v| {
            v["approve"] == true
        })
        .await;
    std::fs::create_dir_all(repo_root().join("target/test-artifacts")).unwrap();
    std::fs::write(
        repo_root().join("target/test-artifacts/ui-flagged.png"),
        browser.screenshot().await,
    )
    .unwrap();
    browser
        .click_on(r#"#flagged-body button[data-action="approve"]"#)
        .await;
    browser
        // Still flagged for its poisoned text (`tool_poisoning = "flag"`),
        // but no change is waiting any more.
        .wait_for("the approval", wait, flagged_row, |v| v["approve"] == false)
        .await;
    let listed = session.list("tools").to_string();
    assert!(
        listed.contains("rug__fetch_url"),
        "approved tool listed again: {listed}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admin_listen_the_dashboard_moves_there() {
    let admin_port = crate::common::free_port();
    let config = format!(
        "{HEAD}admin_listen = \"127.0.0.1:{admin_port}\"\n{}",
        demo_upstream("echo", "\"echo\"")
    );
    // `/ready` moves too: the admin listener is bound before the MCP URL is printed.
    let gw = Gateway::start(&config, &[]);
    let admin = format!("http://127.0.0.1:{admin_port}");
    for path in ["/ui", "/ui/app.js"] {
        let on_admin = gw
            .http()
            .get(format!("{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(on_admin.status(), 200, "{path} on admin_listen");
        assert_eq!(
            gw.get(path).await.status(),
            404,
            "{path} on the MCP listener"
        );
    }
    let mut stream = gw
        .http()
        .get(format!("{admin}/api/v1/actors/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let snapshot = &read_snapshots(&mut stream, 1).await[0];
    assert_eq!(snapshot["upstreams"][0]["name"], "echo", "{snapshot}");
}
