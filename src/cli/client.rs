//! The management API client the CLI verbs share: base URL and key from
//! flags or `BULWARK_URL` / `BULWARK_API_KEY`; every non-2xx answer becomes
//! a message naming the status, the field and the detail.
use clap::{Args, ValueEnum};
use reqwest::Method;
use serde_json::Value;

/// How results are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// Where the running gateway is and how to print.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The gateway's base URL, e.g. http://127.0.0.1:8000.
    #[arg(long, env = "BULWARK_URL", global = true)]
    pub url: Option<String>,
    /// An admin API key.
    #[arg(
        long = "api-key",
        env = "BULWARK_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub api_key: Option<String>,
    /// `table` (default) or `json`.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

/// Why a command failed; printed as is.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No URL.
    #[error("no gateway URL: pass --url or set BULWARK_URL (e.g. http://127.0.0.1:8000)")]
    NoUrl,
    /// The gateway could not be reached.
    #[error("cannot reach the gateway at {url}: {message}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        message: String,
    },
    /// The API refused.
    #[error("{0}")]
    Refused(String),
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
}

/// A connection to one gateway's management API.
pub struct Client {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `remote`.
    pub fn new(remote: &Remote) -> Result<Self, CliError> {
        let base = remote.url.clone().ok_or(CliError::NoUrl)?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            key: remote.api_key.clone().filter(|k| !k.trim().is_empty()),
            http: reqwest::Client::new(),
        })
    }

    /// `METHOD /api/v1/PATH` with an optional JSON body; the answer's JSON
    /// (`Null` for 204), or the problem as an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let url = format!("{}/api/v1/{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| CliError::Unreachable {
            url: self.base.clone(),
            message: err.to_string(),
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let detail = json
            .get("detail")
            .or_else(|| json.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or(text);
        let field = json
            .get("field")
            .and_then(Value::as_str)
            .map(|f| format!(" (field `{f}`)"))
            .unwrap_or_default();
        Err(CliError::Refused(format!("{status}{field}: {detail}")))
    }
}
