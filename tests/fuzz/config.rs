//! Configuration: any TOML config file and any `mcpServers` JSON file are
//! loaded and validated (then turned into launch specs) without a panic;
//! what they cannot express is an error naming where it came from.
use std::io::Write;

use bulwark::config::{Config, Sources};

use super::{assemble, draws};

const TOML: &[&str] = &[
    "[server]\n",
    "listen = \"127.0.0.1:0\"\n",
    "tool_separator = \"__\"\n",
    "[upstreams.a]\n",
    "command = \"x\"\n",
    "url = \"https://h/mcp?k=v\"\n",
    "args = [\"${HOME}\", \"{self}\"]\n",
    "[upstreams.a.restart]\n",
    "window_secs = 0\n",
    "[upstreams.a.oauth]\n",
    "client_id = \"c\"\n",
    "[auth.jwt]\n",
    "jwks_url = \"http://10.0.0.1/jwks\"\n",
    "[auth.rate_limits]\n",
    "per_key = { per_minute = 0, burst = 0 }\n",
    "[guardrails]\n",
    "[cache]\n",
    "=",
    "\"",
    "\n",
    "[",
    "]",
];

const MCP_SERVERS: &[&str] = &[
    r#"{"mcpServers":{"#,
    r#""a":{"command":"x","args":["y"]}"#,
    r#""b":{"url":"https://h/mcp","type":"sse"}"#,
    r#""c":{"url":"http://h","command":"x"}"#,
    r#""env":{"K":"${V}"}"#,
    "{",
    "}",
    ",",
    ":",
    "null",
];

fn file(text: &str, suffix: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn load(config: Option<&str>, mcp_servers: Option<&str>) {
    let config = config.map(|text| file(text, ".toml"));
    let servers = mcp_servers.map(|text| file(text, ".json"));
    let sources = Sources {
        config_file: config.as_ref().map(|f| f.path().to_owned()),
        mcp_servers: servers.as_ref().map(|f| f.path().to_owned()),
    };
    if let Ok(loaded) = Config::load(&sources) {
        let _ = bulwark::config::upstream_specs(&loaded);
    }
}

#[test]
fn config_toml() {
    bolero::check!()
        .with_type::<Vec<(u8, String)>>()
        .for_each(|parts| load(Some(&assemble(parts, TOML)), None));
}

#[test]
fn config_mcp_servers_json() {
    bolero::check!()
        .with_type::<Vec<(u8, String)>>()
        .for_each(|parts| load(None, Some(&assemble(parts, MCP_SERVERS))));
}

/// The sections of a config file in the order one is written, each with
/// its keys, each key with the lines it may take: values that fit and near
/// misses (a key the section does not have is refused too). Assembled text
/// almost never loads (7 non-empty files in 20,000), so validation went
/// unchecked; built files reach it.
type Section = (&'static str, &'static [&'static [&'static str]]);
const SECTIONS: &[Section] = &[
    (
        "[server]",
        &[
            &["listen = \"127.0.0.1:0\"", "listen = \"nowhere\""],
            &["tool_separator = \"__\"", "tool_separator = \"\""],
            &["allowed_hosts = [\"localhost\"]"],
            &["allowed_origins = [\"http://x\"]"],
            &["gateway_tools = false"],
            &["shutdown_grace_secs = 0"],
            &["admin_listen = \"127.0.0.1:0\""],
        ],
    ),
    (
        "[supervision]",
        &[
            &["max_restarts = 0", "max_restarts = 5"],
            &["window_secs = 0", "window_secs = 60"],
            &["backoff_min_ms = 100"],
            &["backoff_max_ms = 1", "backoff_max_ms = 30000"],
        ],
    ),
    (
        "[upstreams.a]",
        &[
            &["command = \"x\"", "command = \"{self}\""],
            &["url = \"https://h/mcp?k=v\"", "url = \"ftp://h\""],
            &["args = [\"${HOME}\", \"{self}\"]"],
            &["env = { K = \"${V}\" }"],
            &["enabled = false"],
            &["instances = 0", "instances = 2"],
            &["urls = [\"http://a/mcp\", \"http://b/mcp\"]"],
            &["weights = [1, 0]"],
            &["token_env = \"T\""],
            &["headers = { Authorization = \"x\" }"],
        ],
    ),
    (
        "[upstreams.a.restart]",
        &[
            &["max_restarts = 1"],
            &["window_secs = 0", "window_secs = 5"],
        ],
    ),
    // Its one required key always (left out, it hid every other check).
    ("[upstreams.a.oauth]\nclient_id = \"c\"", &[]),
    (
        "[upstreams.\"b c\"]",
        &[&["command = \"{self}\""], &["url = \"http://h\""]],
    ),
    ("[auth]", &[&["enabled = false", "enabled = true"]]),
    (
        "[auth.jwt]",
        &[&["jwks_url = \"http://10.0.0.1/jwks\"", "jwks_url = \"x\""]],
    ),
    (
        "[auth.rate_limits]",
        &[
            &[
                "per_key = { per_minute = 0, burst = 0 }",
                "per_key = { per_minute = 5 }",
            ],
            &["per_upstream = { per_minute = 1, burst = 2 }"],
        ],
    ),
    ("[guardrails]", &[]),
    ("[cache]", &[]),
    (
        "[telemetry]",
        &[
            &["metrics = false"],
            &["metrics_interval_secs = 0", "metrics_interval_secs = 15"],
            &["metrics_access = \"admin\"", "metrics_access = \"public\""],
        ],
    ),
];

/// A config file drawn from `bytes`: each section kept or not, each of its
/// keys left out or given one of its lines, in the order written.
fn built_toml(bytes: &[u8]) -> String {
    let mut next = draws(bytes);
    let mut text = String::new();
    for (header, keys) in SECTIONS {
        if !next().is_multiple_of(3) {
            continue;
        }
        text.push_str(header);
        text.push('\n');
        for lines in *keys {
            if let Some(line) = (next() % (lines.len() + 1)).checked_sub(1) {
                text.push_str(lines[line]);
                text.push('\n');
            }
        }
    }
    text
}

#[test]
fn config_toml_built() {
    bolero::check!()
        .with_type::<Vec<u8>>()
        .for_each(|bytes| load(Some(&built_toml(bytes)), None));
}
