//! Saving the config file applies it through the same reconcile path; a
//! broken file changes nothing and says why. SIGHUP reloads it too.
use std::time::Duration;

use serde_json::json;

use super::saw_tools_changed;
use crate::common::{Gateway, peers};
use crate::gateway::{HEAD, demo_pid, demo_upstream, gone_within, wait_for_upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_the_config_file_applies_it_and_a_broken_one_changes_nothing() {
    let Some(peers) = peers() else { return };
    let base = format!(
        "{HEAD}{}{}",
        demo_upstream("echo", "\"echo\""),
        demo_upstream("slow", "\"slow\"")
    );
    let gw = Gateway::start(&base, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let echo_pid = demo_pid(&gw, "echo").await;
    let slow_pid = demo_pid(&gw, "slow").await;
    let mut session = peers.session(&[gw.mcp_url()]);
    session.list("tools");

    // Add one upstream by saving the file.
    let added = format!("{base}{}", demo_upstream("fresh", "\"echo\""));
    std::fs::write(gw.config_path(), &added).unwrap();
    assert!(
        saw_tools_changed(&mut session),
        "no list_changed after the save"
    );
    let answer = session.call("fresh__echo", json!({"message": "from the file"}));
    assert_eq!(answer["result"]["text"], "from the file", "{answer}");
    // Its own route is served at once too.
    let mut own = peers.session(&[gw.url("/mcp/fresh").as_str()]);
    let answer = own.call("echo", json!({"message": "own route"}));
    assert_eq!(answer["result"]["text"], "own route", "{answer}");
    assert_eq!(demo_pid(&gw, "echo").await, echo_pid);
    assert_eq!(demo_pid(&gw, "slow").await, slow_pid);

    // The API shows it as a file entry it cannot edit.
    let (status, fresh) = gw.get_json("/api/v1/upstreams/fresh").await;
    assert_eq!(
        (status.as_u16(), fresh["source"].as_str()),
        (200, Some("file")),
        "{fresh}"
    );

    // A broken file: nothing changes, the error names the file and field.
    let broken = format!("{added}[upstreams.bad]\nargs = [\"x\"]\n");
    std::fs::write(gw.config_path(), &broken).unwrap();
    assert!(
        gw.wait_for_log("upstreams.bad", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    assert!(
        gw.logs().contains("configuration not reloaded"),
        "{}",
        gw.logs()
    );
    let answer = session.call("fresh__echo", json!({"message": "still here"}));
    assert_eq!(answer["result"]["text"], "still here", "{answer}");

    // An empty file (a save caught half-way) would load as the embedded
    // defaults; it changes nothing either.
    std::fs::write(gw.config_path(), "").unwrap();
    assert!(
        gw.wait_for_log("the file is empty", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let answer = session.call("fresh__echo", json!({"message": "after empty"}));
    assert_eq!(answer["result"]["text"], "after empty", "{answer}");

    // Removing it from the file stops it; the others stay untouched.
    let fresh_pid = demo_pid(&gw, "fresh").await;
    std::fs::write(gw.config_path(), &base).unwrap();
    assert!(
        gone_within(fresh_pid, Duration::from_secs(15)),
        "fresh survives"
    );
    let (status, _) = gw.get_json("/api/v1/upstreams/fresh").await;
    assert_eq!(status.as_u16(), 404);
    let answer = own.call("echo", json!({"message": "gone"}));
    assert_eq!(answer["ok"], false, "its session outlived it: {answer}");
    assert_eq!(demo_pid(&gw, "echo").await, echo_pid);
    assert_eq!(demo_pid(&gw, "slow").await, slow_pid);

    // SIGHUP reloads too (here: an upstream disabled in the file).
    let disabled = base.replace("[upstreams.slow]\n", "[upstreams.slow]\nenabled = false\n");
    std::fs::write(gw.config_path(), &disabled).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        gone_within(slow_pid, Duration::from_secs(15)),
        "slow survives"
    );
    wait_for_upstream(&gw, "echo", Duration::from_secs(5), |n| {
        n["state"] == "ready"
    })
    .await;
    assert_eq!(demo_pid(&gw, "echo").await, echo_pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_an_unchanged_config_touches_nothing() {
    let config = format!("{HEAD}{}", demo_upstream("echo", "\"echo\""));
    let gw = Gateway::start(&config, &[]);
    gw.wait_ready(Duration::from_secs(60)).await;
    let echo_pid = demo_pid(&gw, "echo").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        gw.wait_for_log(
            "SIGHUP: reloading the configuration",
            Duration::from_secs(10)
        ),
        "{}",
        gw.logs()
    );
    let node = wait_for_upstream(&gw, "echo", Duration::from_secs(5), |n| {
        n["state"] == "ready"
    })
    .await;
    assert_eq!(node["restarts"], 0, "{node}");
    assert_eq!(demo_pid(&gw, "echo").await, echo_pid, "echo was restarted");
    assert!(
        !gw.logs().contains("applied upstream changes"),
        "a reload of the same file changed something{}",
        gw.logs()
    );
}
