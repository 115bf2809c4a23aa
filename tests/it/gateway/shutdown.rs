//! Shutdown leaves no upstream process behind, grandchildren included.
use std::time::Duration;

use super::{HEAD, demo_pid, demo_upstream, gone_within};
use crate::common::{Gateway, peers, pids_with_cmdline_containing};

#[tokio::test]
async fn sigterm_stops_every_upstream_process() {
    let Some(peers) = peers() else { return };
    // server-everything is a node script: launched through `sh -c` it is a
    // grandchild of the gateway, the case that leaks without process groups.
    let marker = format!("bulwark-shutdown-test-{}", std::process::id());
    let toml = format!(
        "{HEAD}{}\n[upstreams.everything]\ncommand = \"sh\"\nargs = [\"-c\", \"exec 3>/dev/null; {} stdio {marker} ; true\"]\n",
        demo_upstream("echo", "\"echo\""),
        peers.server_everything().display(),
    );
    let mut gw = Gateway::start(&toml, &[]);
    gw.wait_ready(Duration::from_secs(90)).await;
    let echo_pid = demo_pid(&gw, "echo").await;
    let node_pids = pids_with_cmdline_containing(&marker);
    assert!(!node_pids.is_empty(), "server-everything should be running");

    gw.sigterm();
    let status = gw
        .wait_exit(Duration::from_secs(20))
        .expect("gateway exits on SIGTERM");
    assert!(status.success(), "clean exit: {status:?}");
    assert!(
        gone_within(echo_pid, Duration::from_secs(5)),
        "echo upstream survived"
    );
    for pid in node_pids {
        assert!(
            gone_within(pid, Duration::from_secs(5)),
            "pid {pid} of server-everything survived"
        );
    }
    assert!(pids_with_cmdline_containing(&marker).is_empty());
}
