//! The official MCP conformance suite against `/mcp/conformance`: our demo
//! conformance server behind the gateway's transparent proxy.
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::{HEAD, demo_upstream};
use crate::common::{Gateway, repo_root, run_with_timeout, skip};

/// `$BULWARK_CONFORMANCE_TOOL`, else the shared tool next to the checkout,
/// else the workplace's shared copy.
pub(crate) fn tool() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("BULWARK_CONFORMANCE_TOOL") {
        Some(path) => vec![PathBuf::from(path)],
        None => vec![
            repo_root().join("../shared/tools/conformance"),
            PathBuf::from("/work/shared/tools/conformance"),
        ],
    };
    let Some(path) = candidates.iter().find(|path| path.exists()) else {
        skip(&format!("conformance tool not found at {candidates:?}"));
        return None;
    };
    installed(path);
    Some(path.clone())
}

/// The suite's versions the tests run: 0.1.16, and the 2026-07-28 one.
const VERSIONS: [&str; 2] = ["0.1.16", "0.2.0-alpha.12"];

/// Installs every version the tests run, once per test process and before
/// any test runs the tool: the tool installs a version on its first use,
/// and an install inside a test mixed npm's output into the scenario
/// summary, or raced another test's install of the same version.
fn installed(tool: &std::path::Path) {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let result = INSTALLED.get_or_init(|| VERSIONS.iter().try_for_each(|v| install(tool, v)));
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// Installs `version` (`list` installs it on first use). An install
/// interrupted earlier leaves `node_modules` half written and `list`
/// failing; a clean reinstall fixes that.
fn install(tool: &std::path::Path, version: &str) -> Result<(), String> {
    let list = || {
        let mut cmd = Command::new(tool);
        cmd.arg("list").env("BULWARK_CONFORMANCE_VERSION", version);
        run_with_timeout(cmd, Duration::from_secs(600))
    };
    if list().status.success() {
        return Ok(());
    }
    // Where the tool installs (`BULWARK_CONFORMANCE_DIR`, by default
    // `~/.cache/bulwark-conformance`), one directory per version.
    let root = std::env::var_os("BULWARK_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/bulwark-conformance"))
        });
    if let Some(root) = root {
        let _ = std::fs::remove_dir_all(root.join(version));
    }
    let finished = list();
    if finished.status.success() {
        return Ok(());
    }
    Err(format!(
        "installing conformance {version} failed:\n{}{}",
        String::from_utf8_lossy(&finished.stdout),
        String::from_utf8_lossy(&finished.stderr)
    ))
}

async fn run_suite(version: &str, extra: &[&str]) -> String {
    let gw = Gateway::start(
        &format!("{HEAD}{}", demo_upstream("conformance", "\"conformance\"")),
        &[],
    );
    gw.wait_ready(Duration::from_secs(60)).await;
    let Some(tool) = tool() else {
        return String::new();
    };
    let mut cmd = Command::new(tool);
    cmd.args(["server", "--url", &gw.url("/mcp/conformance")])
        .args(extra)
        .env("BULWARK_CONFORMANCE_VERSION", version);
    let finished = run_with_timeout(cmd, Duration::from_secs(600));
    format!(
        "{}{}",
        String::from_utf8_lossy(&finished.stdout),
        String::from_utf8_lossy(&finished.stderr)
    )
}

/// Scenario lines of the summary: (name, passed).
pub(crate) fn summary(output: &str) -> Vec<(String, bool)> {
    output
        .lines()
        .filter_map(|line| {
            let (mark, rest) = line.split_once(' ')?;
            let name = rest.split(':').next()?.trim().to_owned();
            match mark {
                "✓" => Some((name, true)),
                "✗" => Some((name, false)),
                _ => None,
            }
        })
        .collect()
}

#[tokio::test]
async fn conformance_0_1_16_passes_every_scenario_through_the_gateway() {
    let output = run_suite(VERSIONS[0], &[]).await;
    if output.is_empty() {
        return;
    }
    let scenarios = summary(&output);
    // The pinned suite's every server scenario.
    assert_eq!(scenarios.len(), 30, "scenarios ran:\n{output}");
    let failed: Vec<_> = scenarios.iter().filter(|(_, ok)| !ok).collect();
    assert!(failed.is_empty(), "failing: {failed:?}\n{output}");
    assert!(output.contains(" 0 failed"), "{output}");
}

#[tokio::test]
async fn conformance_2026_07_28_fails_only_the_listed_scenarios() {
    let output = run_suite(VERSIONS[1], &["--requirements", "2026-07-28"]).await;
    if output.is_empty() {
        return;
    }
    let expected_file = repo_root().join("tests/conformance/expected-failures-2026-07-28.txt");
    let expected: Vec<String> = std::fs::read_to_string(&expected_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split('#').next())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let scenarios = summary(&output);
    // 37 required for 2026-07-28, 10 of the tasks extension, 3 pending.
    assert_eq!(scenarios.len(), 50, "scenarios ran:\n{output}");
    let unexpected: Vec<_> = scenarios
        .iter()
        .filter(|(name, ok)| !ok && !expected.contains(name))
        .map(|(name, _)| name.clone())
        .collect();
    assert!(
        unexpected.is_empty(),
        "failing but not in {}: {unexpected:?}\n{output}",
        expected_file.display()
    );
    // A listed scenario that passes now is a stale entry: the file must say what fails.
    let stale: Vec<_> = scenarios
        .iter()
        .filter(|(name, ok)| *ok && expected.contains(name))
        .map(|(name, _)| name.clone())
        .collect();
    assert!(
        stale.is_empty(),
        "passing but listed in {}: {stale:?}",
        expected_file.display()
    );
    // The pending scenarios pass too: JSON Schema 2020-12 input schemas, and
    // SEP-2243's `Mcp-Method` / `Mcp-Name` and the demo's `x-mcp-header`
    // tool with its `Mcp-Param-*` headers checked by the gateway.
    for pending in [
        "json-schema-2020-12",
        "http-header-validation",
        "http-custom-header-server-validation",
    ] {
        assert!(
            scenarios.iter().any(|(name, ok)| name == pending && *ok),
            "{pending} did not pass:\n{output}"
        );
    }
    // The tasks extension, proxied to the demo server's tasks: every scenario passes.
    let tasks: Vec<_> = scenarios
        .iter()
        .filter(|(name, _)| name.starts_with("tasks-"))
        .collect();
    assert!(tasks.len() >= 10, "tasks scenarios missing:\n{output}");
    assert!(tasks.iter().all(|(_, ok)| *ok), "{tasks:?}\n{output}");
}
