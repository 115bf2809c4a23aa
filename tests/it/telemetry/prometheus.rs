//! A real Prometheus (Debian package `prometheus`) scrapes a running
//! gateway; `promtool` checks the shipped alert rules. Skipped visibly
//! without them unless `BULWARK_REQUIRE_SERVICES=1`.
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Gateway, drain, free_port, peers, pid_of, repo_root, skip};
use crate::gateway::{HEAD, demo_upstream};

/// `name` on `PATH`, if installed.
fn installed(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// A Prometheus server on loopback, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    log: crate::common::Captured,
}

impl Prometheus {
    /// Scrapes `target` (`host:port`) every second with `token` as bearer.
    fn start(binary: &Path, target: &str, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: bulwark\n    metrics_path: /metrics\n    \
                 authorization:\n      credentials: {token}\n    \
                 static_configs:\n      - targets: ['{target}']\n",
                rules = repo_root().join("deploy/prometheus/alerts.yml").display(),
            ),
        )
        .unwrap();
        let port = free_port();
        let mut child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start prometheus");
        let log = drain(child.stderr.take());
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            log,
        }
    }

    /// `GET /api/v1/query?query=…`: the result vector (empty until scraped).
    async fn query(&self, http: &reqwest::Client, query: &str) -> Vec<Value> {
        let url = url::Url::parse_with_params(
            &format!("{}/api/v1/query", self.base),
            &[("query", query)],
        )
        .expect("query URL");
        let response = http.get(url).send().await;
        let Ok(response) = response else {
            return Vec::new();
        };
        let body: Value = response.json().await.unwrap_or_default();
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `query` until `cond` holds on its result; panics after `timeout`.
    async fn wait(
        &self,
        http: &reqwest::Client,
        query: &str,
        timeout: Duration,
        cond: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let result = self.query(http, query).await;
            if cond(&result) {
                return result;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus query {query} never matched: {result:?}\n--- prometheus log\n{}",
                self.log.text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(pid_of(&self.child), nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn sample_value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let Some(promtool) = installed("promtool") else {
        skip("promtool is not installed (Debian package `prometheus`)");
        return;
    };
    let rules = repo_root().join("deploy/prometheus/alerts.yml");
    let out = Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(&rules)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check rules failed:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_grafana_dashboard_queries_exported_metrics() {
    let path = repo_root().join("deploy/grafana/bulwark.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{} panels", panels.len());
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                expr.contains("bulwark_") || expr.contains("mcp_server_operation_duration"),
                "panel {} queries no Bulwark metric: {expr}",
                panel["title"]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_gateway() {
    let Some(peers) = peers() else { return };
    let Some(prometheus) = installed("prometheus") else {
        skip("prometheus is not installed (Debian package `prometheus`)");
        return;
    };
    let token = "prometheus-scrape-token-5678";
    let toml = format!(
        "{HEAD}[telemetry]\nmetrics_token = \"{token}\"\n{}",
        demo_upstream("echo", "\"echo\""),
    );
    let gw = Gateway::builder(&toml).with_auth().start();
    gw.wait_ready(Duration::from_secs(60)).await;
    let key = gw
        .stdout
        .text()
        .lines()
        .find(|l| l.starts_with("bk_"))
        .map(|l| l.trim().to_owned())
        .expect("admin key");
    let target = gw.base_url().trim_start_matches("http://").to_owned();
    let server = Prometheus::start(&prometheus, &target, token);
    let http = reqwest::Client::new();

    // The scrape succeeds: the exposition parses for Prometheus itself.
    server
        .wait(&http, "up{job=\"bulwark\"}", Duration::from_secs(60), |r| {
            r.first().map(sample_value) == Some(1.0)
        })
        .await;
    let ready = server
        .wait(
            &http,
            "bulwark_upstream_state{state=\"ready\",bulwark_upstream=\"echo\"}",
            Duration::from_secs(30),
            |r| !r.is_empty(),
        )
        .await;
    assert_eq!(sample_value(&ready[0]), 1.0, "{ready:?}");

    // A call shows up in Prometheus with the semantic-convention labels.
    let mut session = peers.session_with_headers(gw.mcp_url(), &json!({"X-API-Key": key}));
    assert_eq!(
        session.call("echo__echo", json!({"message": "hi"}))["ok"],
        true
    );
    let calls = server
        .wait(
            &http,
            "mcp_server_operation_duration_seconds_count{mcp_method_name=\"tools/call\",gen_ai_tool_name=\"echo\"}",
            Duration::from_secs(30),
            |r| r.first().map(sample_value) == Some(1.0),
        )
        .await;
    assert_eq!(calls[0]["metric"]["bulwark_upstream"], "echo", "{calls:?}");

    // The shipped alert rules load and evaluate against these series.
    let rules: Value = http
        .get(format!("{}/api/v1/rules", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let groups = rules["data"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let health: Vec<_> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["name"].clone(),
                r["health"].clone(),
                r["lastError"].clone(),
            )
        })
        .collect();
    assert!(health.len() >= 5, "alert rules loaded: {health:?}");
    session.quit();
}
