//! The official conformance suite: our OAuth client (`bulwark connect`)
//! under the client-credentials scenarios, and a remote upstream behind
//! `/mcp/{server}` under the server scenarios.
use std::process::Command;
use std::time::Duration;

use super::{DemoHttp, remote_upstream};
use crate::common::{Gateway, run_with_timeout};
use crate::gateway::HEAD;
use crate::gateway::conformance::{summary, tool};

fn client_scenario(scenario: &str) -> Option<String> {
    let tool = tool()?;
    let mut cmd = Command::new(tool);
    cmd.args(["client", "--command"])
        .arg(format!("{} connect", env!("CARGO_BIN_EXE_bulwark")))
        .args(["--scenario", scenario])
        .env("BULWARK_LOG", "warn");
    let finished = run_with_timeout(cmd, Duration::from_secs(300));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&finished.stdout),
        String::from_utf8_lossy(&finished.stderr)
    );
    assert!(finished.status.success(), "{scenario} failed:\n{output}");
    Some(output)
}

#[test]
fn connect_passes_client_credentials_basic() {
    if let Some(output) = client_scenario("auth/client-credentials-basic") {
        assert!(output.contains("OVERALL: PASSED"), "{output}");
        assert!(output.contains("0 failed"), "{output}");
    }
}

#[test]
fn connect_passes_client_credentials_jwt() {
    if let Some(output) = client_scenario("auth/client-credentials-jwt") {
        assert!(output.contains("OVERALL: PASSED"), "{output}");
        assert!(
            output.contains("client-credentials-jwt-verified"),
            "{output}"
        );
    }
}

#[tokio::test]
async fn a_remote_upstream_passes_every_server_scenario_through_the_gateway() {
    let Some(tool) = tool() else { return };
    let upstream = DemoHttp::start("conformance");
    let gw = Gateway::start(
        &format!(
            "{HEAD}{}",
            remote_upstream("conformance", &upstream.url(), "")
        ),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    let mut cmd = Command::new(tool);
    cmd.args(["server", "--url", &gw.url("/mcp/conformance")]);
    let finished = run_with_timeout(cmd, Duration::from_secs(600));
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&finished.stdout),
        String::from_utf8_lossy(&finished.stderr)
    );
    let scenarios = summary(&output);
    assert!(scenarios.len() >= 30, "too few scenarios ran:\n{output}");
    let failed: Vec<_> = scenarios.iter().filter(|(_, ok)| !ok).collect();
    assert!(failed.is_empty(), "failing: {failed:?}\n{output}");
}
