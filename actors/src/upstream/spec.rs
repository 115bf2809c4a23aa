//! What an upstream is: the fixed configuration one `UpstreamActor` runs.
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::pool::PoolSpec;
use crate::oauth::OAuthSpec;

/// One upstream MCP server: its name, how to reach it, and how to get it a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    /// The server's name, unique in the gateway; prefixes its federated names.
    pub name: String,
    /// A child process over stdio, or a remote streamable HTTP endpoint.
    pub transport: Transport,
    /// OAuth client credentials for this upstream, when it wants a token.
    pub oauth: Option<OAuthSpec>,
    /// How many instances run and how calls are spread over them.
    pub pool: PoolSpec,
}

/// How the gateway talks to an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio(StdioSpec),
    /// A remote server speaking streamable HTTP.
    Http(HttpSpec),
}

/// How to launch one stdio upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioSpec {
    /// Program to run (a path, or a name looked up on `PATH`).
    pub command: String,
    /// Arguments passed to the program.
    pub args: Vec<String>,
    /// The only environment the process gets besides `PATH` and `HOME`:
    /// upstreams never inherit the gateway's secrets.
    pub env: BTreeMap<String, String>,
    /// Working directory; the gateway's own when unset.
    pub cwd: Option<PathBuf>,
    /// With OAuth: the variable that carries the access token into the
    /// process (it is restarted when the token changes).
    pub token_env: Option<String>,
}

/// Where a remote upstream lives.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpSpec {
    /// The streamable HTTP endpoint, e.g. `https://example.com/mcp`.
    pub url: String,
    /// Static headers sent with every request (values may be secrets).
    pub headers: BTreeMap<String, String>,
    /// Which HTTP transport the server speaks.
    pub protocol: HttpProtocol,
}

/// The HTTP transports of MCP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpProtocol {
    /// Streamable HTTP (2025-03-26 and later): one endpoint, POST and GET.
    #[default]
    Streamable,
    /// The legacy HTTP+SSE transport (2024-11-05): a GET event stream that
    /// names the endpoint messages are POSTed to.
    Sse,
    /// Streamable HTTP, or the legacy transport when the server refuses the
    /// `initialize` POST with a 4xx status other than an authorization or
    /// rate refusal: what the MCP specification asks of a client given a
    /// URL of either kind (an upstream whose configuration names no `type`).
    Detect,
}

impl HttpProtocol {
    /// Whether an `initialize` POST answered with `status` may mean the URL
    /// serves the legacy HTTP+SSE transport, when detecting. The
    /// specification says any 4xx (its examples: 405 from an SSE route that
    /// takes only GET, 404); 401, 403, 407 and 429 are about the caller, not
    /// the transport, and are reported as they are.
    pub fn is_legacy_answer(status: u16) -> bool {
        (400..500).contains(&status) && !matches!(status, 401 | 403 | 407 | 429)
    }
}

impl std::fmt::Debug for HttpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are often API keys.
        f.debug_struct("HttpSpec")
            .field("url", &self.masked_url())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl HttpSpec {
    /// The URL as logs may show it: user info and query values masked (they
    /// often carry API keys, e.g. `?api_key=…`).
    pub fn masked_url(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.url) else {
            return "(unparsable URL)".into();
        };
        if !url.username().is_empty() {
            let _ = url.set_username("****");
        }
        if url.password().is_some() {
            let _ = url.set_password(Some("****"));
        }
        if let Some(query) = url.query() {
            let masked: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, value)) if !value.is_empty() => format!("{name}=****"),
                    Some(_) => pair.to_owned(),
                    None if pair.is_empty() => String::new(),
                    None => "****".to_owned(),
                })
                .collect();
            url.set_query(Some(&masked.join("&")));
        }
        url.set_fragment(None);
        url.to_string()
    }
}

/// The secret-bearing parts of `url`, as they appear in it: the user info
/// (name and password) and every query value.
pub fn url_secrets(url: &str) -> Vec<&str> {
    let mut secrets = Vec::new();
    let without_fragment = url.split('#').next().unwrap_or(url);
    let (base, query) = match without_fragment.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (without_fragment, None),
    };
    if let Some((_, rest)) = base.split_once("://") {
        let authority = rest.split('/').next().unwrap_or(rest);
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            secrets.extend(userinfo.split(':').filter(|part| !part.is_empty()));
        }
    }
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some((_, value)) if !value.is_empty() => secrets.push(value),
            Some(_) => {}
            // A bare `?token` is a value too.
            None if !pair.is_empty() => secrets.push(pair),
            None => {}
        }
    }
    secrets
}

impl UpstreamSpec {
    /// A stdio upstream without OAuth.
    pub fn stdio(name: impl Into<String>, command: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            name: name.into(),
            transport: Transport::Stdio(StdioSpec {
                command: command.into(),
                args,
                env: BTreeMap::new(),
                cwd: None,
                token_env: None,
            }),
            oauth: None,
            pool: PoolSpec::default(),
        }
    }

    /// A remote streamable HTTP upstream without OAuth.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            transport: Transport::Http(HttpSpec {
                url: url.into(),
                headers: BTreeMap::new(),
                protocol: HttpProtocol::Streamable,
            }),
            oauth: None,
            pool: PoolSpec::default(),
        }
    }

    /// What instance `index` of the pool runs: the same server, at its own
    /// URL when the pool lists one per instance.
    pub fn instance(&self, index: usize) -> Self {
        let mut spec = self.clone();
        if let (Transport::Http(http), Some(url)) = (&mut spec.transport, self.pool.urls.get(index))
        {
            http.url.clone_from(url);
        }
        spec
    }

    /// Configured values that must never reach an operator's screen: env
    /// values, header values and OAuth secrets.
    pub fn secrets(&self) -> Vec<&str> {
        let mut secrets: Vec<&str> = match &self.transport {
            Transport::Stdio(stdio) => stdio.env.values().map(String::as_str).collect(),
            Transport::Http(http) => http
                .headers
                .values()
                .map(String::as_str)
                .chain(url_secrets(&http.url))
                .collect(),
        };
        if let Some(oauth) = &self.oauth {
            secrets.extend(oauth.secrets());
        }
        secrets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_answers_are_refusals_of_the_transport_not_of_the_caller() {
        for status in [400, 404, 405, 406, 410, 415] {
            assert!(HttpProtocol::is_legacy_answer(status), "{status}");
        }
        for status in [200, 202, 301, 401, 403, 407, 429, 500, 503] {
            assert!(!HttpProtocol::is_legacy_answer(status), "{status}");
        }
    }

    fn http(url: &str) -> HttpSpec {
        HttpSpec {
            protocol: HttpProtocol::Streamable,
            url: url.into(),
            headers: BTreeMap::new(),
        }
    }

    #[test]
    fn urls_are_logged_without_user_info_or_query_values() {
        let spec =
            http("https://user:hunter22@mcp.example.com/mcp?api_key=sk-live-123&x=&flag#frag");
        let masked = spec.masked_url();
        for secret in ["user", "hunter22", "sk-live-123"] {
            assert!(!masked.contains(secret), "{masked}");
        }
        assert_eq!(
            masked,
            "https://****:****@mcp.example.com/mcp?api_key=****&x=&****"
        );
        assert!(!format!("{spec:?}").contains("sk-live-123"));
        assert_eq!(
            http("https://mcp.example.com/mcp?key=mcp").masked_url(),
            "https://mcp.example.com/mcp?key=****"
        );

        let upstream = UpstreamSpec {
            transport: Transport::Http(spec),
            ..UpstreamSpec::stdio("remote", "x", Vec::new())
        };
        assert!(upstream.secrets().contains(&"sk-live-123"));
    }
}
