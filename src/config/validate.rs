//! Checks a merged configuration and turns it into launch specs. Every error
//! names the field (`upstreams.NAME.FIELD`, or `mcpServers.NAME.FIELD` for a
//! server of the `mcpServers` file) and where the value came from.
use axum::http::{HeaderName, HeaderValue};
use bulwark_actors::oauth::is_allowed_endpoint;
use bulwark_actors::upstream::pool::MAX_INSTANCES;
use bulwark_actors::upstream::{
    HttpProtocol, HttpSpec, PoolSpec, StdioSpec, Strategy, Transport, UpstreamSpec,
};
use bulwark_supervisors::policy::RestartPolicy;

use super::{Config, ConfigError};

/// Validates names, addresses and policies.
pub fn check(config: &Config, origin: &str) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        message,
    };
    config
        .server
        .listen
        .parse::<std::net::SocketAddr>()
        .map_err(|err| invalid(format!("server.listen = {:?}: {err}", config.server.listen)))?;
    let separator = &config.server.tool_separator;
    if separator.is_empty() {
        return Err(invalid("server.tool_separator must not be empty".into()));
    }
    check_policy(&config.supervision, "supervision").map_err(invalid)?;
    config.cache.validate().map_err(invalid)?;
    config.telemetry.validate().map_err(invalid)?;
    if let Some(url) = config
        .auth
        .jwt
        .as_ref()
        .and_then(|jwt| jwt.jwks_url.as_deref())
    {
        crate::auth::jwt::jwks::check_url(url).map_err(|err| invalid(err.to_string()))?;
    }
    bulwark_actors::timeout::TimeoutPolicy::new(&config.timeouts, separator)
        .map_err(|err| invalid(err.to_string()))?;
    for (name, upstream) in &config.upstreams {
        // An upstream from the `mcpServers` file is that file's fault.
        let at = upstream.at(name);
        let invalid = |message: String| ConfigError::Invalid {
            origin: upstream.origin(origin).to_owned(),
            message,
        };
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(invalid(format!(
                "{at}: a server name may use only letters, digits, '-' and '_'"
            )));
        }
        if name == crate::mcp::gateway_tools::SERVER {
            return Err(invalid(format!(
                "{at}: the name is reserved for the gateway's own tools"
            )));
        }
        if name.contains(separator.as_str()) {
            return Err(invalid(format!(
                "{at}: the name contains the tool separator {separator:?}"
            )));
        }
        check_pool(&at, upstream).map_err(invalid)?;
        check_transport(&at, upstream).map_err(invalid)?;
        check_launch(&at, upstream).map_err(invalid)?;
        if let Some(policy) = &upstream.restart {
            check_policy(policy, &format!("{at}.restart")).map_err(invalid)?;
        }
    }
    super::virtual_servers::check(&config.virtual_servers, &config.upstreams, separator)
        .map_err(invalid)?;
    Ok(())
}

/// `instances`, `urls`, `strategy`, `weights` and `health`.
fn check_pool(at: &str, upstream: &super::UpstreamConfig) -> Result<(), String> {
    let remote = upstream.url.is_some() || !upstream.urls.is_empty();
    if upstream.url.is_some() && !upstream.urls.is_empty() {
        return Err(format!("{at}: `url` and `urls` exclude each other"));
    }
    if !upstream.urls.is_empty() && !upstream.command.trim().is_empty() {
        return Err(format!("{at}: `command` and `urls` exclude each other"));
    }
    let count = match upstream.instances {
        Some(_) if remote => {
            return Err(format!(
                "{at}.instances applies to command upstreams; a remote pool lists one URL per instance in `urls`"
            ));
        }
        Some(count) if !(1..=MAX_INSTANCES).contains(&count) => {
            return Err(format!(
                "{at}.instances = {count}: must be between 1 and {MAX_INSTANCES}"
            ));
        }
        Some(count) => count,
        None if upstream.urls.len() > MAX_INSTANCES => {
            return Err(format!(
                "{at}.urls lists {} URLs: at most {MAX_INSTANCES}",
                upstream.urls.len()
            ));
        }
        None => upstream.urls.len().max(1),
    };
    match (upstream.strategy, upstream.weights.len()) {
        (Strategy::Weighted, 0) => {
            return Err(format!(
                "{at}.weights: strategy = \"weighted\" needs one weight per instance"
            ));
        }
        (Strategy::Weighted, n) if n != count => {
            return Err(format!(
                "{at}.weights lists {n} weights for {count} instances"
            ));
        }
        (Strategy::Weighted, _) if upstream.weights.contains(&0) => {
            return Err(format!("{at}.weights must each be at least 1"));
        }
        (Strategy::Weighted, _) | (_, 0) => {}
        _ => {
            return Err(format!(
                "{at}.weights apply to strategy = \"weighted\" only"
            ));
        }
    }
    if let Some(health) = &upstream.health {
        if !(10..=3_600_000).contains(&health.interval_ms) {
            return Err(format!(
                "{at}.health.interval_ms must be between 10 and 3600000"
            ));
        }
        if health.timeout_ms == Some(0) {
            return Err(format!("{at}.health.timeout_ms must be at least 1"));
        }
        if health.failures == 0 || health.successes == 0 {
            return Err(format!(
                "{at}.health: failures and successes must each be at least 1"
            ));
        }
    }
    Ok(())
}

fn check_transport(at: &str, upstream: &super::UpstreamConfig) -> Result<(), String> {
    if upstream.url.is_none() && !upstream.urls.is_empty() {
        // A remote pool: every URL must pass as `url` would.
        return upstream.urls.iter().try_for_each(|url| {
            let single = super::UpstreamConfig {
                url: Some(url.clone()),
                urls: Vec::new(),
                ..upstream.clone()
            };
            check_transport(at, &single).map_err(|err| err.replace(".url", ".urls"))
        });
    }
    let has_command = !upstream.command.trim().is_empty();
    match (upstream.kind, &upstream.url) {
        (Some(super::UpstreamKind::Stdio), Some(_)) => {
            return Err(format!(
                "{at}: type = \"stdio\" runs a `command`; a `url` needs type \"http\" or \"sse\""
            ));
        }
        (Some(kind @ (super::UpstreamKind::Http | super::UpstreamKind::Sse)), None) => {
            let kind = if kind == super::UpstreamKind::Sse {
                "sse"
            } else {
                "http"
            };
            return Err(format!("{at}: type = \"{kind}\" needs a `url`"));
        }
        _ => {}
    }
    match &upstream.url {
        None if !has_command => Err(format!("{at}: set `command` (stdio) or `url` (remote)")),
        None => {
            if !upstream.headers.is_empty() {
                return Err(format!("{at}.headers apply to remote (url) upstreams only"));
            }
            match (&upstream.oauth, &upstream.token_env) {
                (Some(oauth), _) if oauth.token_url.is_none() => Err(format!(
                    "{at}.oauth.token_url is required for a stdio upstream"
                )),
                (Some(_), None) => Err(format!(
                    "{at}.token_env names the variable that carries the token"
                )),
                (None, Some(_)) => Err(format!("{at}.token_env needs an [{at}.oauth] table")),
                _ => Ok(()),
            }
        }
        Some(_) if has_command => Err(format!("{at}: `command` and `url` exclude each other")),
        Some(url) => {
            let parsed = url::Url::parse(url)
                .map_err(|err| format!("{at}.url: {err} (URL not shown: it may carry a key)"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("{at}.url must be http or https"));
            }
            if upstream.token_env.is_some() {
                return Err(format!("{at}.token_env applies to stdio upstreams only"));
            }
            // Silently dropped, they would leave an operator believing a
            // remote server gets a key it never sees (`headers` carry those).
            let given: Vec<String> = (upstream.launch_settings().into_iter())
                .map(|key| format!("{at}.{key}"))
                .collect();
            if !given.is_empty() {
                return Err(format!(
                    "{} {} to stdio (command) upstreams only; a remote (url) upstream sends `headers`",
                    given.join(", "),
                    if given.len() == 1 { "applies" } else { "apply" }
                ));
            }
            if upstream.oauth.is_some() {
                if upstream
                    .headers
                    .keys()
                    .any(|h| h.eq_ignore_ascii_case("authorization"))
                {
                    return Err(format!(
                        "{at}: an Authorization header and oauth exclude each other"
                    ));
                }
                // OAuth 2.1: bearer tokens travel over TLS, loopback excepted.
                if !is_allowed_endpoint(&parsed) {
                    return Err(format!(
                        "{at}.url must use https to carry an OAuth token (plain http only on loopback)"
                    ));
                }
            }
            Ok(())
        }
    }
}

/// What the process spawn or the HTTP client would refuse later: NUL in the
/// command, its arguments or `cwd`, an empty `cwd`, environment variable
/// names that cannot be set, header names that are not HTTP tokens, two
/// headers whose names differ only in case, and header values no request
/// may carry. Values are never quoted: they may be secrets.
fn check_launch(at: &str, upstream: &super::UpstreamConfig) -> Result<(), String> {
    if upstream.command.contains('\0') {
        return Err(format!("{at}.command contains a NUL character"));
    }
    if let Some(index) = upstream.args.iter().position(|arg| arg.contains('\0')) {
        return Err(format!("{at}.args[{index}] contains a NUL character"));
    }
    if let Some(cwd) = &upstream.cwd {
        let bytes = cwd.as_os_str().as_encoded_bytes();
        if bytes.is_empty() {
            return Err(format!(
                "{at}.cwd is empty: leave it out to run in the gateway's working directory"
            ));
        }
        if bytes.contains(&0) {
            return Err(format!("{at}.cwd contains a NUL character"));
        }
    }
    for (name, value) in &upstream.env {
        check_env_name(name).map_err(|why| format!("{at}.env: variable name {name:?} {why}"))?;
        if value.contains('\0') {
            return Err(format!(
                "{at}.env.{name}: the value contains a NUL character (value not shown)"
            ));
        }
    }
    if let Some(name) = &upstream.token_env {
        check_env_name(name).map_err(|why| format!("{at}.token_env = {name:?}: {why}"))?;
    }
    let mut seen = std::collections::HashMap::new();
    for (name, value) in &upstream.headers {
        let Ok(parsed) = HeaderName::from_bytes(name.as_bytes()) else {
            return Err(format!(
                "{at}.headers: {name:?} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ));
        };
        if let Some(first) = seen.insert(parsed, name) {
            return Err(format!(
                "{at}.headers: {first:?} and {name:?} name the same header (header names ignore case)"
            ));
        }
        // `${VAR}` expands later (and is checked again then); what is
        // around it stays as written.
        if HeaderValue::from_str(value).is_err() {
            return Err(format!(
                "{at}.headers.{name}: {INVALID_HEADER_VALUE} (value not shown)"
            ));
        }
    }
    Ok(())
}

/// Why no header may carry a value.
const INVALID_HEADER_VALUE: &str =
    "the value contains a control character (CR, LF, NUL, …) that no HTTP header may carry";

/// Why `name` cannot be an environment variable's name, if it cannot.
fn check_env_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name.contains('=') {
        Err("contains '='")
    } else if name.contains('\0') {
        Err("contains a NUL character")
    } else {
        Ok(())
    }
}

/// A header value as `${VAR}` expansion of `template` made it; a
/// variable's value may bring a line break the file did not have. The
/// error names the variables (never their values), since one of them is
/// what needs fixing.
fn expanded_header_value(
    at: &str,
    name: &str,
    template: &str,
    value: String,
) -> Result<String, ConfigError> {
    if HeaderValue::from_str(&value).is_ok() {
        return Ok(value);
    }
    let mut variables: Vec<String> = Vec::new();
    for (var, _) in template
        .split("${")
        .skip(1)
        .filter_map(|after| after.split_once('}'))
    {
        let var = format!("${{{var}}}");
        if !variables.contains(&var) {
            variables.push(var);
        }
    }
    let expanded = match variables.len() {
        0 => "once expanded".to_owned(),
        1 => format!("once {} is expanded", variables[0]),
        _ => format!("once {} are expanded", variables.join(", ")),
    };
    Err(ConfigError::Invalid {
        origin: "environment".into(),
        message: format!(
            "{at}.headers.{name}: {expanded}, {INVALID_HEADER_VALUE} (value not shown)"
        ),
    })
}

fn check_policy(policy: &RestartPolicy, at: &str) -> Result<(), String> {
    if policy.backoff_min_ms > policy.backoff_max_ms {
        return Err(format!("{at}.backoff_min_ms is larger than backoff_max_ms"));
    }
    if policy.window_secs == 0 {
        return Err(format!("{at}.window_secs must be at least 1"));
    }
    if policy.handshake_timeout_secs == 0 {
        return Err(format!("{at}.handshake_timeout_secs must be at least 1"));
    }
    Ok(())
}

/// Launch specs of the enabled upstreams, with `{self}` and `${VAR}` resolved.
pub fn resolve_specs(config: &Config) -> Result<Vec<(UpstreamSpec, RestartPolicy)>, ConfigError> {
    let own_binary = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "bulwark".into());
    let mut specs = Vec::new();
    for (name, upstream) in config.upstreams.iter().filter(|(_, u)| u.enabled) {
        let at = upstream.at(name);
        let expand = |field: &str, value: &str| {
            expand_env(value).map_err(|var| ConfigError::Invalid {
                origin: "environment".into(),
                message: format!("{at}.{field}: environment variable {var} is not set"),
            })
        };
        let urls = upstream
            .urls
            .iter()
            .map(|url| expand("urls", url))
            .collect::<Result<Vec<_>, _>>()?;
        let pool = PoolSpec {
            instances: upstream.instances.unwrap_or(urls.len().max(1)),
            urls,
            strategy: upstream.strategy,
            weights: upstream.weights.clone(),
            affinity: upstream.affinity,
            health: upstream.health.clone(),
        };
        let transport = match upstream.url.as_ref().or(upstream.urls.first()) {
            Some(url) => Transport::Http(HttpSpec {
                protocol: match upstream.kind {
                    Some(super::UpstreamKind::Sse) => HttpProtocol::Sse,
                    Some(super::UpstreamKind::Http) => HttpProtocol::Streamable,
                    // No `type`: either, as the URL answers.
                    Some(super::UpstreamKind::Stdio) | None => HttpProtocol::Detect,
                },
                url: expand("url", url)?,
                headers: upstream
                    .headers
                    .iter()
                    .map(|(key, value)| {
                        let expanded = expand(&format!("headers.{key}"), value)?;
                        Ok((
                            key.clone(),
                            expanded_header_value(&at, key, value, expanded)?,
                        ))
                    })
                    .collect::<Result<_, ConfigError>>()?,
            }),
            None => {
                let command = if upstream.command == "{self}" {
                    own_binary.clone()
                } else {
                    expand("command", &upstream.command)?
                };
                let args = upstream
                    .args
                    .iter()
                    .map(|arg| expand("args", arg))
                    .collect::<Result<_, _>>()?;
                let env = upstream
                    .env
                    .iter()
                    .map(|(key, value)| Ok((key.clone(), expand(&format!("env.{key}"), value)?)))
                    .collect::<Result<_, ConfigError>>()?;
                Transport::Stdio(StdioSpec {
                    command,
                    args,
                    env,
                    cwd: upstream.cwd.clone(),
                    token_env: upstream.token_env.clone(),
                })
            }
        };
        let oauth = match &upstream.oauth {
            None => None,
            Some(oauth) => {
                let expand_field = |field: &str, value: &str| {
                    expand_env(value)
                        .map_err(|var| format!("{field}: environment variable {var} is not set"))
                };
                Some(
                    oauth
                        .to_spec(&expand_field)
                        .map_err(|message| ConfigError::Invalid {
                            origin: "environment".into(),
                            message: format!("{at}.{message}"),
                        })?,
                )
            }
        };
        specs.push((
            UpstreamSpec {
                name: name.clone(),
                transport,
                oauth,
                pool,
            },
            upstream
                .restart
                .clone()
                .unwrap_or_else(|| config.supervision.clone()),
        ));
    }
    Ok(specs)
}

/// Resolves `${VAR}` in guardrail provider keys and URLs, and checks that
/// policies name known providers (by compiling them once).
pub fn resolve_guardrail_env(config: &mut Config, origin: &str) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        message: format!("guardrails: {message}"),
    };
    config
        .guardrails
        .resolve_env(expand_env)
        .map_err(|err| invalid(err.to_string()))?;
    for name in config.guardrails.upstreams.keys() {
        if !config.upstreams.contains_key(name) {
            return Err(invalid(format!(
                "guardrails.upstreams.{name} names no configured upstream"
            )));
        }
    }
    Ok(())
}

/// Replaces `${VAR}` with the gateway's environment; the error is the missing name.
pub(crate) fn expand_env(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let var = &after[..end];
        out.push_str(&std::env::var(var).map_err(|_| var.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bulwark_actors::cache::{BackendKind, CacheKind};
    use bulwark_actors::timeout::OpKind;

    use super::*;
    use crate::config::Sources;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bulwark.toml");
        std::fs::write(&file, toml).unwrap();
        Config::load(&Sources {
            config_file: Some(file),
            mcp_servers: None,
        })
    }

    #[test]
    fn cache_and_timeouts_sections_load_through_the_config_layers() {
        let config = load(
            r#"
            [cache]
            backend = "redis"
            redis_url = "redis://127.0.0.1:6379"
            [cache.ttl_secs]
            tools = 60
            [cache.tools."Fs__Read_File"]
            ttl_secs = 30

            [timeouts]
            reset_on_progress = true
            [timeouts.deadlines]
            tool_execution = 5
            [timeouts.upstreams.slow.deadlines]
            discovery = 2.5
            [timeouts.tools."slow__hang"]
            deadline_secs = 1
            "#,
        )
        .unwrap();
        assert_eq!(config.cache.backend, BackendKind::Redis);
        assert_eq!(config.cache.ttl(CacheKind::Tools), Duration::from_secs(60));
        assert_eq!(
            config.cache.result_ttl("Fs__Read_File", None),
            Some(Duration::from_secs(30)),
            "tool names keep their case: {:?}",
            config.cache.tools
        );
        let policy = bulwark_actors::timeout::TimeoutPolicy::new(&config.timeouts, "__").unwrap();
        let limits = |kind, upstream, tool| policy.limits(kind, upstream, tool).deadline;
        assert_eq!(
            limits(OpKind::ToolExecution, "echo", None),
            Duration::from_secs(5)
        );
        assert_eq!(
            limits(OpKind::Discovery, "slow", None),
            Duration::from_millis(2500)
        );
        assert_eq!(
            limits(OpKind::ToolExecution, "slow", Some("hang")),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn bad_cache_and_timeouts_values_are_rejected() {
        let err = load("[cache]\nbackend = \"redis\"\n").unwrap_err();
        assert!(err.to_string().contains("redis_url"), "{err}");
        let err = load("[timeouts.deadlines]\nauth = 0\n").unwrap_err();
        assert!(err.to_string().contains("timeouts.deadlines.auth"), "{err}");
        let err = load("[cache]\nbackend = \"memcached\"\n").unwrap_err();
        assert!(err.to_string().contains("memcached"), "{err}");
    }

    #[test]
    fn expands_set_variables_and_names_missing_ones() {
        assert_eq!(
            expand_env("${HOME}/x").unwrap(),
            format!("{}/x", std::env::var("HOME").unwrap())
        );
        assert_eq!(expand_env("plain").unwrap(), "plain");
        assert_eq!(
            expand_env("${BULWARK_SURELY_UNSET_VAR}").unwrap_err(),
            "BULWARK_SURELY_UNSET_VAR"
        );
    }

    fn parse(upstreams: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(upstreams).map_err(|err| ConfigError::Invalid {
            origin: "test".into(),
            message: err.to_string(),
        })?;
        check(&config, "test")?;
        Ok(config)
    }

    #[test]
    fn remote_upstreams_resolve_with_headers_and_oauth() {
        let config = parse(
            r#"
            [upstreams.remote]
            url = "https://mcp.example.com/mcp"
            headers = { "X-Home" = "${HOME}" }
            [upstreams.remote.oauth]
            client_id = "gw"
            client_secret = "${HOME}"
            auth_method = "client_secret_post"
            scopes = ["read"]
            "#,
        )
        .unwrap();
        let (spec, _) = resolve_specs(&config).unwrap().remove(0);
        let home = std::env::var("HOME").unwrap();
        let Transport::Http(http) = &spec.transport else {
            panic!("not remote: {spec:?}");
        };
        assert_eq!(http.url, "https://mcp.example.com/mcp");
        assert_eq!(http.headers["X-Home"], home);
        let oauth = spec.oauth.as_ref().unwrap();
        assert_eq!(oauth.scopes, ["read"]);
        assert!(spec.secrets().contains(&home.as_str()));
        assert!(!format!("{spec:?}").contains(&home), "no secret in Debug");
    }

    #[test]
    fn remote_upstream_mistakes_name_the_field() {
        let cases = [
            (
                "[upstreams.a]\ncommand = \"x\"\nurl = \"https://e.com/mcp\"",
                "exclude each other",
            ),
            ("[upstreams.a]\nurl = \"ftp://e.com/mcp\"", "http or https"),
            (
                "[upstreams.a]\nurl = \"http://e.com/mcp\"\n[upstreams.a.oauth]\nclient_id = \"c\"\nclient_secret = \"s\"",
                "must use https",
            ),
            (
                "[upstreams.a]\ncommand = \"x\"\n[upstreams.a.oauth]\nclient_id = \"c\"\nclient_secret = \"s\"",
                "token_url is required",
            ),
            (
                "[upstreams.a]\ncommand = \"x\"\nheaders = { A = \"b\" }",
                "headers",
            ),
            (
                "[upstreams.a]\nurl = \"https://e.com/mcp\"\nenv = { API_KEY = \"k\" }",
                "upstreams.a.env applies to stdio (command) upstreams only",
            ),
            (
                "[upstreams.a]\nurl = \"https://e.com/mcp\"\nargs = [\"--port\", \"1\"]",
                "upstreams.a.args applies to stdio",
            ),
            (
                "[upstreams.a]\nurls = [\"https://e.com/mcp\"]\ncwd = \"/tmp\"",
                "upstreams.a.cwd applies to stdio",
            ),
            (
                "[upstreams.a]\nurl = \"https://e.com/mcp\"\nenv = { K = \"v\" }\ncwd = \"/tmp\"",
                "upstreams.a.env, upstreams.a.cwd apply to stdio",
            ),
            (
                "[upstreams.a]\ntype = \"sse\"\ncommand = \"x\"",
                "needs a `url`",
            ),
            (
                "[upstreams.a]\ntype = \"stdio\"\nurl = \"https://e.com/mcp\"",
                "type = \"stdio\"",
            ),
        ];
        for (toml, expected) in cases {
            let err = parse(toml).unwrap_err().to_string();
            assert!(err.contains("upstreams.a"), "{err}");
            assert!(err.contains(expected), "{toml}: {err}");
        }
    }

    #[test]
    fn type_sse_selects_the_legacy_transport() {
        let config = parse(
            "[upstreams.old]\ntype = \"sse\"\nurl = \"http://127.0.0.1:9/sse\"\n\
             [upstreams.new]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/mcp\"\n\
             [upstreams.either]\nurl = \"http://127.0.0.1:9/mcp\"",
        )
        .unwrap();
        let specs = resolve_specs(&config).unwrap();
        let protocol = |name: &str| match &specs
            .iter()
            .find(|(s, _)| s.name == name)
            .unwrap()
            .0
            .transport
        {
            Transport::Http(http) => http.protocol,
            other => panic!("not remote: {other:?}"),
        };
        assert_eq!(protocol("old"), HttpProtocol::Sse);
        assert_eq!(protocol("new"), HttpProtocol::Streamable);
        assert_eq!(protocol("either"), HttpProtocol::Detect);
    }

    #[test]
    fn pools_resolve_one_instance_per_url_or_count() {
        let config = parse(
            r#"
            [upstreams.local]
            command = "x"
            instances = 3
            strategy = "weighted"
            weights = [2, 1, 1]
            affinity = "session"
            [upstreams.local.health]
            interval_ms = 200
            [upstreams.remote]
            urls = ["https://a.example.com/mcp", "https://b.example.com/mcp"]
            strategy = "power_of_two_choices"
            "#,
        )
        .unwrap();
        let specs = resolve_specs(&config).unwrap();
        let local = &specs.iter().find(|(s, _)| s.name == "local").unwrap().0;
        assert_eq!(local.pool.instances, 3);
        assert_eq!(local.pool.weights, [2, 1, 1]);
        assert_eq!(local.pool.health.as_ref().unwrap().failures, 3);
        let remote = &specs.iter().find(|(s, _)| s.name == "remote").unwrap().0;
        assert_eq!(remote.pool.instances, 2);
        let Transport::Http(second) = remote.instance(1).transport else {
            panic!("not remote: {remote:?}");
        };
        assert_eq!(second.url, "https://b.example.com/mcp");
    }

    #[test]
    fn pool_mistakes_name_the_field() {
        let cases = [
            (
                "command = \"x\"\ninstances = 0",
                "instances = 0: must be between 1 and 64",
            ),
            ("command = \"x\"\ninstances = 65", "between 1 and 64"),
            (
                "url = \"https://e.com/mcp\"\ninstances = 2",
                "command upstreams",
            ),
            (
                "url = \"https://e.com/mcp\"\nurls = [\"https://f.com/mcp\"]",
                "`url` and `urls` exclude each other",
            ),
            (
                "command = \"x\"\nurls = [\"https://f.com/mcp\"]",
                "exclude each other",
            ),
            ("urls = [\"ftp://f.com/mcp\"]", "urls must be http or https"),
            (
                "command = \"x\"\ninstances = 2\nstrategy = \"weighted\"",
                "needs one weight",
            ),
            (
                "command = \"x\"\ninstances = 2\nstrategy = \"weighted\"\nweights = [1]",
                "1 weights for 2 instances",
            ),
            (
                "command = \"x\"\ninstances = 2\nweights = [1, 1]",
                "weighted\" only",
            ),
            (
                "command = \"x\"\n[upstreams.a.health]\ninterval_ms = 1",
                "health.interval_ms",
            ),
            (
                "command = \"x\"\n[upstreams.a.health]\nfailures = 0",
                "failures and successes",
            ),
        ];
        for (toml, expected) in cases {
            let err = parse(&format!("[upstreams.a]\n{toml}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("upstreams.a"), "{err}");
            assert!(err.contains(expected), "{toml}: {err}");
        }
        let err = parse("[upstreams.a]\ncommand = \"x\"\nstrategy = \"fastest\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("round_robin"), "{err}");
    }

    /// Loads an `mcpServers` file (and a TOML file beside it); the error,
    /// the JSON file's and the TOML file's paths.
    fn load_with_servers(
        toml: Option<&str>,
        json: &str,
    ) -> (Result<Config, ConfigError>, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let servers = dir.path().join("servers.json");
        std::fs::write(&servers, json).unwrap();
        let file = dir.path().join("bulwark.toml");
        if let Some(toml) = toml {
            std::fs::write(&file, toml).unwrap();
        }
        let result = Config::load(&Sources {
            config_file: toml.map(|_| file.clone()),
            mcp_servers: Some(servers.clone()),
        });
        (
            result,
            servers.display().to_string(),
            file.display().to_string(),
        )
    }

    #[test]
    fn a_toml_value_of_the_wrong_type_is_not_quoted() {
        let secret = "hunter2-not-shaped-like-a-key";
        let (result, _, toml_file) = load_with_servers(
            Some(&format!(
                "[upstreams.t]\ncommand = \"x\"\nenv = \"{secret}\"\n"
            )),
            r#"{"mcpServers": {}}"#,
        );
        let err = result.unwrap_err().to_string();
        assert!(err.contains(&toml_file), "{err}");
        assert!(err.contains("upstreams.t.env"), "{err}");
        assert!(err.contains("value not shown"), "{err}");
        assert!(!err.contains(secret), "{err}");
    }

    #[test]
    fn errors_about_an_mcp_servers_server_name_that_file() {
        let cases = [
            (
                None,
                r#"{"a.b": {"command": "x"}}"#,
                "mcpServers.a.b: a server name may use only",
            ),
            (
                None,
                r#"{"bulwark": {"command": "x"}}"#,
                "mcpServers.bulwark: the name is reserved",
            ),
            (
                None,
                r#"{"a": {"url": "ftp://h/mcp"}}"#,
                "mcpServers.a.url must be http or https",
            ),
            (
                None,
                r#"{"a": {"command": "x", "headers": {"K": "v"}}}"#,
                "mcpServers.a.headers apply to remote",
            ),
            (
                None,
                r#"{"a": {"type": "sse", "command": "x"}}"#,
                "mcpServers.a: type = \"sse\" needs a `url`",
            ),
            // The separator comes from the TOML file; the name that holds it from the JSON.
            (
                Some("[server]\ntool_separator = \"-\"\n"),
                r#"{"a-b": {"command": "x"}}"#,
                "mcpServers.a-b: the name contains the tool separator",
            ),
        ];
        for (toml, servers, expected) in cases {
            let (result, json_file, _) =
                load_with_servers(toml, &format!(r#"{{"mcpServers": {servers}}}"#));
            let err = result.unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid configuration ({json_file}): ")),
                "{err}"
            );
            assert!(err.contains(expected), "{servers}: {err}");
            assert!(
                !err.contains("upstreams.") && !err.contains("default.toml"),
                "{err}"
            );
        }
        // A TOML upstream's error still names the TOML file, a JSON file
        // beside it or not; so does a check that is not about an upstream.
        for (toml, field) in [
            ("[upstreams.t]\nurl = \"ftp://h/mcp\"\n", "upstreams.t.url"),
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ] {
            let (result, _, toml_file) =
                load_with_servers(Some(toml), r#"{"mcpServers": {"a": {"command": "x"}}}"#);
            let err = result.unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid configuration ({toml_file}): {field}")),
                "{err}"
            );
        }
        // Launch specs name the server as the file does.
        let (result, _, _) = load_with_servers(
            None,
            r#"{"mcpServers": {"a": {"command": "x", "env": {"K": "${BULWARK_SURELY_UNSET_VAR}"}}}}"#,
        );
        let err = resolve_specs(&result.unwrap()).unwrap_err().to_string();
        assert!(
            err.contains("mcpServers.a.env.K: environment variable BULWARK_SURELY_UNSET_VAR"),
            "{err}"
        );
    }

    #[test]
    fn launch_values_are_checked_at_load_in_both_files() {
        let secret = "s3cr3t-value";
        // (the upstream as TOML, the same as an mcpServers entry, the error)
        let cases = [
            (
                r#"url = "https://h/mcp"
                   headers = { "a b" = "x" }"#,
                r#"{"url": "https://h/mcp", "headers": {"a b": "x"}}"#,
                r#".headers: "a b" is not a valid HTTP header name"#,
            ),
            (
                r#"url = "https://h/mcp"
                   headers = { "" = "x" }"#,
                r#"{"url": "https://h/mcp", "headers": {"": "x"}}"#,
                r#".headers: "" is not a valid HTTP header name"#,
            ),
            (
                r#"url = "https://h/mcp"
                   headers = { X-K = "s3cr3t-value\r\nInjected: 1" }"#,
                r#"{"url": "https://h/mcp", "headers": {"X-K": "s3cr3t-value\r\nInjected: 1"}}"#,
                ".headers.X-K: the value contains a control character",
            ),
            (
                r#"url = "https://h/mcp"
                   headers = { X-K = "s3cr3t-value\u0000${HOME}" }"#,
                r#"{"url": "https://h/mcp", "headers": {"X-K": "s3cr3t-value\u0000${HOME}"}}"#,
                ".headers.X-K: the value contains a control character (CR, LF, NUL, …) that no HTTP header may carry (value not shown)",
            ),
            (
                r#"url = "https://h/mcp"
                   headers = { X-Key = "1", x-key = "2" }"#,
                r#"{"url": "https://h/mcp", "headers": {"X-Key": "1", "x-key": "2"}}"#,
                r#".headers: "X-Key" and "x-key" name the same header"#,
            ),
            (
                r#"command = "x"
                   env = { "" = "v" }"#,
                r#"{"command": "x", "env": {"": "v"}}"#,
                r#".env: variable name "" is empty"#,
            ),
            (
                r#"command = "x"
                   env = { "A=B" = "v" }"#,
                r#"{"command": "x", "env": {"A=B": "v"}}"#,
                r#".env: variable name "A=B" contains '='"#,
            ),
            (
                r#"command = "x"
                   env = { "A\u0000" = "v" }"#,
                r#"{"command": "x", "env": {"A\u0000": "v"}}"#,
                r#".env: variable name "A\0" contains a NUL"#,
            ),
            (
                r#"command = "x"
                   env = { K = "s3cr3t-value\u0000" }"#,
                r#"{"command": "x", "env": {"K": "s3cr3t-value\u0000"}}"#,
                ".env.K: the value contains a NUL character (value not shown)",
            ),
            (
                r#"command = "x"
                   cwd = """#,
                r#"{"command": "x", "cwd": ""}"#,
                ".cwd is empty",
            ),
            (
                r#"command = "x"
                   cwd = "/tmp/\u0000""#,
                r#"{"command": "x", "cwd": "/tmp/\u0000"}"#,
                ".cwd contains a NUL",
            ),
            (
                r#"command = "x\u0000""#,
                r#"{"command": "x\u0000"}"#,
                ".command contains a NUL",
            ),
            (
                r#"command = "x"
                   args = ["ok", "s3cr3t-value\u0000"]"#,
                r#"{"command": "x", "args": ["ok", "s3cr3t-value\u0000"]}"#,
                ".args[1] contains a NUL",
            ),
        ];
        for (toml, json, expected) in cases {
            let err = parse(&format!("[upstreams.a]\n{toml}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("upstreams.a{expected}")),
                "{toml}: {err}"
            );
            assert!(!err.contains(secret), "{toml}: {err}");
            let (result, json_file, _) =
                load_with_servers(None, &format!(r#"{{"mcpServers": {{"a": {json}}}}}"#));
            let err = result.unwrap_err().to_string();
            assert!(
                err.contains(&format!("({json_file}): mcpServers.a{expected}")),
                "{json}: {err}"
            );
            assert!(!err.contains(secret), "{json}: {err}");
        }
        let err = parse("[upstreams.a]\ncommand = \"x\"\ntoken_env = \"A=B\"\n[upstreams.a.oauth]\nclient_id = \"c\"\nclient_secret = \"s\"\ntoken_url = \"https://h/token\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("upstreams.a.token_env = \"A=B\": contains '='"),
            "{err}"
        );
        // What is fine stays fine.
        parse(
            "[upstreams.a]\nurl = \"https://h/mcp\"\nheaders = { Authorization = \"Bearer ${HOME}\", \"X-Tab\" = \"a\\tb\", \"X-Text\" = \"café\" }\n\
             [upstreams.b]\ncommand = \"x\"\ncwd = \"/tmp\"\nenv = { K = \"${HOME}\", lower_case = \"ü\" }",
        )
        .unwrap();
    }

    #[test]
    fn an_expanded_header_value_is_checked_again() {
        let err = expanded_header_value(
            "mcpServers.a",
            "X-K",
            "Bearer ${PART_ONE}-${PART_TWO}${PART_ONE} ${unclosed",
            "Bearer s3cr3t-value\r\nInjected: 1".into(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("mcpServers.a.headers.X-K: once ${PART_ONE}, ${PART_TWO} are expanded"),
            "{err}"
        );
        assert!(
            !err.contains("s3cr3t") && !err.contains("Injected"),
            "{err}"
        );
        assert_eq!(
            expanded_header_value("upstreams.a", "X-K", "Bearer ${T}", "Bearer abc".into())
                .unwrap(),
            "Bearer abc"
        );
    }
}
