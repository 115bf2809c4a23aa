//! Configuration: any TOML config file and any `mcpServers` JSON file are
//! loaded and validated (then turned into launch specs) without a panic;
//! what they cannot express is an error naming where it came from.
use std::io::Write;

use bulwark::config::{Config, Sources};

use super::{assemble, built_object, draws};

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
    match Config::load(&sources) {
        Ok(loaded) => {
            let _ = bulwark::config::upstream_specs(&loaded);
        }
        // With no TOML file of its own, whatever is wrong is the `mcpServers`
        // file's, and the error says so (never `config/default.toml`'s
        // `upstreams.NAME`).
        Err(err) if config.is_none() => {
            if let Some(servers) = &servers {
                let err = err.to_string();
                assert!(err.contains(&servers.path().display().to_string()), "{err}");
                assert!(!err.contains("upstreams."), "{err}");
            }
        }
        Err(_) => {}
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

/// Which entries an `mcpServers` member belongs to: a command (stdio)
/// entry's, a remote (url) entry's, or either's.
const COMMAND: u8 = 1;
const URL: u8 = 2;
const EITHER: u8 = COMMAND | URL;

/// The members of an `mcpServers` entry: who has it, values that fit and
/// near misses (a wrong type, an empty or blank string, a bad URL, a
/// variable that is not set, a name no header or variable may have).
type Member = (
    &'static str,
    u8,
    &'static [&'static str],
    &'static [&'static str],
);
const MEMBERS: &[Member] = &[
    (
        "command",
        COMMAND,
        &[r#""x""#, r#""{self}""#, r#""uvx""#, r#""${HOME}/bin/x""#],
        &[
            r#""""#,
            r#"" ""#,
            r#""${BULWARK_FUZZ_UNSET}""#,
            r#""\u0000""#,
            "7",
            r#"["x"]"#,
            "null",
        ],
    ),
    (
        "args",
        COMMAND,
        &[
            "[]",
            r#"["mcp-server-time"]"#,
            r#"["${HOME}","{self}","${"]"#,
        ],
        &[
            r#""x""#,
            "[1]",
            "[{}]",
            "null",
            r#"["${BULWARK_FUZZ_UNSET}"]"#,
            r#"["${}"]"#,
            r#"["${\u0000}"]"#,
        ],
    ),
    (
        "env",
        COMMAND,
        &["{}", r#"{"TZ":"UTC"}"#, r#"{"K":"${HOME}"}"#],
        &[
            r#"{"K":1}"#,
            "[]",
            "null",
            r#"{"K":"${BULWARK_FUZZ_UNSET}"}"#,
            r#"{"":"","A=B":"${A=B}"}"#,
            r#"{"K":"1","\u004b":"2"}"#,
            r#"{"K":"\u0000"}"#,
        ],
    ),
    (
        "cwd",
        COMMAND,
        &[r#""/tmp""#, r#"".""#, "null"],
        &[r#""""#, "7"],
    ),
    (
        "url",
        URL,
        &[
            r#""https://h/mcp?k=v""#,
            r#""http://127.0.0.1:9/sse""#,
            r#""http://[::1]:8/mcp""#,
            r#""https://h/${HOME}""#,
        ],
        &[
            r#""ftp://h""#,
            r#""h/mcp""#,
            r#""""#,
            r#""http://""#,
            r#""http://[::1/""#,
            r#""file:///x""#,
            r#""${BULWARK_FUZZ_UNSET}""#,
            r#""https://h/${BULWARK_FUZZ_UNSET}""#,
            "7",
            "null",
        ],
    ),
    (
        "headers",
        URL,
        &[
            "{}",
            r#"{"Authorization":"Bearer ${HOME}"}"#,
            r#"{"X-Api-Key":"k"}"#,
        ],
        &[
            r#"{"X":1}"#,
            "[]",
            "null",
            r#"{"X":"${BULWARK_FUZZ_UNSET}"}"#,
            r#"{"a b\n":"\r\n"}"#,
            r#"{"X-K":"a\r\nb"}"#,
            r#"{"X-K":"a","x-k":"b"}"#,
            r#"{"X-K":"a","X-K":"b"}"#,
        ],
    ),
    (
        "type",
        EITHER,
        &[
            r#""stdio""#,
            r#""http""#,
            r#""sse""#,
            r#""streamable-http""#,
            r#""streamableHttp""#,
            r#""SSE""#,
            "null",
        ],
        &[r#""websocket""#, r#""""#, r#"" http""#, "1"],
    ),
    (
        "disabled",
        EITHER,
        &["false", "true"],
        &[r#""yes""#, "0", "null"],
    ),
];

/// Members other clients write (Cline, Roo Code, Windsurf: read, ignored
/// or refused), the TOML config's, a wrong case, and `command` spelt with
/// an escape.
const STRAY_MEMBERS: &[&str] = &[
    r#""autoApprove":[]"#,
    r#""alwaysAllow":["t"]"#,
    r#""timeout":60"#,
    r#""serverUrl":"https://h/mcp""#,
    r#""transportType":"sse""#,
    r#""disabledTools":[]"#,
    r#""watchPaths":["/tmp"]"#,
    r#""enabled":true"#,
    r#""instances":2"#,
    r#""Command":"x""#,
    r#""\u0063ommand":"x""#,
    r#""url":"https://h/mcp""#,
];

/// Server names: valid ones, and ones validation refuses (empty, a dot, a
/// space, the gateway's own, the tool separator, non-ASCII, an escape
/// that spells `a` again).
const SERVER_NAMES: &[&str] = &[
    "a",
    "time",
    "my-server_2",
    "B",
    "",
    "a.b",
    "a b",
    "bulwark",
    "a__b",
    "é",
    "\\u0061",
    "a\\\"b",
];

/// Keys and scalars of an entry that is any object at all.
const ENTRY_KEYS: &[&str] = &["command", "url", "args", "env", "headers", "type", "x"];
const ENTRY_SCALARS: &[&str] = &[
    r#""x""#,
    r#""https://h/mcp""#,
    r#""sse""#,
    "true",
    "1",
    "null",
];

/// A config file beside the `mcpServers` file, for the checks across the
/// two: a server defined in both, a separator inside names, a virtual
/// server and a guardrail policy naming a server.
const COMPANIONS: &[&str] = &[
    "[upstreams.a]\ncommand = \"x\"\n",
    "[server]\ntool_separator = \"-\"\n",
    "[[virtual_servers.v.tools]]\ntool = \"a__t\"\n",
    "[guardrails.upstreams.a]\n",
];

/// One server entry drawn from `next`: a command (stdio) entry, a remote
/// one or one with both or neither; its members in a drawn order, each
/// there or not (mostly there when the entry's kind has it, seldom when it
/// does not), with a value that fits or, a quarter of the time, a near
/// miss; now and then a stray member, or an entry that is any object.
fn built_entry(next: &mut impl FnMut() -> usize, out: &mut String) {
    let kind = match next() % 16 {
        0..=7 => COMMAND,
        8..=13 => URL,
        14 => EITHER,
        _ => {
            built_object(next, ENTRY_KEYS, ENTRY_SCALARS, out);
            return;
        }
    };
    let turn = next() % MEMBERS.len();
    let mut members = Vec::new();
    for (key, has, fits, misses) in MEMBERS.iter().cycle().skip(turn).take(MEMBERS.len()) {
        let there = if has & kind == 0 {
            next() % 8 == 7
        } else if matches!(*key, "command" | "url") {
            // What makes the entry what it is.
            next() % 8 != 7
        } else {
            next().is_multiple_of(2)
        };
        if there {
            let value = if next() % 4 == 3 {
                misses[next() % misses.len()]
            } else {
                fits[next() % fits.len()]
            };
            members.push(format!("\"{key}\":{value}"));
        }
    }
    if next() % 8 == 7 {
        members.push(STRAY_MEMBERS[next() % STRAY_MEMBERS.len()].to_owned());
    }
    out.push('{');
    out.push_str(&members.join(","));
    out.push('}');
}

/// An `mcpServers` file drawn from `bytes`: up to three named entries,
/// mostly inside the expected top level, now and then a near miss of it;
/// and maybe a config file beside it. (A draw past the input's end is 0,
/// which picks the plain choice each time.)
fn built_mcp_servers(bytes: &[u8]) -> (String, Option<&'static str>) {
    let mut next = draws(bytes);
    let mut servers = String::from("{");
    for at in 0..next() % 4 {
        if at > 0 {
            servers.push(',');
        }
        servers.push('"');
        servers.push_str(SERVER_NAMES[next() % SERVER_NAMES.len()]);
        servers.push_str("\":");
        built_entry(&mut next, &mut servers);
    }
    servers.push('}');
    let file = match next() % 16 {
        11 => format!(r#"{{"globalShortcut":"","mcpServers":{servers}}}"#),
        12 => format!(r#"{{"mcpservers":{servers}}}"#),
        13 => format!(r#"{{"mcpServers":{servers},"mcpServers":{{}}}}"#),
        14 => format!(r#"{{"mcpServers":[{servers}]}}"#),
        15 => format!(r#"{{"mcpServers":{servers}}} x"#),
        _ => format!(r#"{{"mcpServers":{servers}}}"#),
    };
    let config = (next() % 8).checked_sub(4).map(|at| COMPANIONS[at]);
    (file, config)
}

#[test]
fn config_mcp_servers_json_built() {
    bolero::check!().with_type::<Vec<u8>>().for_each(|bytes| {
        let (servers, config) = built_mcp_servers(bytes);
        load(config, Some(&servers));
    });
}
