//! Configuration: any TOML config file and any `mcpServers` JSON file are
//! loaded and validated (then turned into launch specs) without a panic;
//! what they cannot express is an error naming where it came from.
use std::io::Write;

use bulwark::config::{Config, Sources};

use super::assemble;

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
