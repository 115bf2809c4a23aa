//! A minimal W3C WebDriver client over reqwest, driving headless Chromium
//! through `chromedriver` (Debian packages `chromium` and `chromium-driver`).
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use nix::sys::signal::{Signal, killpg};
use serde_json::{Value, json};

use crate::common::{Captured, drain, free_port, pid_of, skip};

/// The key W3C WebDriver uses for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser binary (`BULWARK_CHROMIUM` overrides).
fn chromium() -> PathBuf {
    std::env::var_os("BULWARK_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The driver binary (`BULWARK_CHROMEDRIVER` overrides).
fn chromedriver() -> PathBuf {
    std::env::var_os("BULWARK_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// A running chromedriver; killed (with its browsers) on drop.
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    stderr: Captured,
}

impl Driver {
    /// Starts chromedriver, or `None` after a `SKIP:` line when Chromium or
    /// the driver is missing (a failure under `BULWARK_REQUIRE_SERVICES=1`).
    pub async fn start() -> Option<Driver> {
        for (what, path) in [("chromium", chromium()), ("chromedriver", chromedriver())] {
            if !path.is_file() {
                skip(&format!(
                    "{what} not found at {} (apt-get install chromium chromium-driver)",
                    path.display()
                ));
                return None;
            }
        }
        let port = free_port();
        let mut cmd = Command::new(chromedriver());
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn chromedriver");
        let stderr = drain(child.stderr.take());
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await;
            if let Ok(response) = status
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return Some(driver);
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within 20s: {}",
                driver.stderr.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless browser window of `width` × `height`.
    pub async fn session(&self, width: u32, height: u32) -> Session {
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            format!("--window-size={width},{height}"),
        ]);
        let body = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium(), "args": args },
            }}
        });
        let url = format!("{}/session", self.base);
        let answer = send(&self.http, reqwest::Method::POST, &url, Some(&body)).await;
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}\n{}", self.stderr.text()))
            .to_owned();
        Session {
            http: self.http.clone(),
            url: format!("{}/session/{id}", self.base),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = killpg(pid_of(&self.child), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// One browser window.
pub struct Session {
    http: reqwest::Client,
    /// `…/session/{id}`
    url: String,
}

impl Session {
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}{path}", self.url);
        send(&self.http, method, &url, body).await
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(&json!({ "url": url })))
            .await;
    }

    /// The element matching `css`; panics when there is none.
    pub async fn find(&self, css: &str) -> String {
        let body = json!({ "using": "css selector", "value": css });
        let found = self
            .command(reqwest::Method::POST, "/element", Some(&body))
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    /// Types `text` into the element.
    pub async fn type_into(&self, element: &str, text: &str) {
        let path = format!("/element/{element}/value");
        self.command(reqwest::Method::POST, &path, Some(&json!({ "text": text })))
            .await;
    }

    /// Clicks the element (a real pointer click).
    pub async fn click(&self, element: &str) {
        let path = format!("/element/{element}/click");
        self.command(reqwest::Method::POST, &path, Some(&json!({})))
            .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click_on(&self, css: &str) {
        let element = self.find(css).await;
        self.click(&element).await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.command(reqwest::Method::POST, "/execute/sync", Some(&body))
            .await
    }

    /// Polls `script` until `done` holds for its value; panics after `timeout`
    /// with `what` and the last value.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(script).await;
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {timeout:?}; last value {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let shot = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().expect("base64 screenshot"))
            .unwrap()
    }

    /// Closes the window (and its browser).
    pub async fn close(self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}

/// Sends one WebDriver command; panics on an error answer. Returns `value`.
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Value {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {url}: {status} {answer}");
    answer["value"].clone()
}
