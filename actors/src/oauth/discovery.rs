//! Finding the token endpoint when only the upstream URL is known: the
//! upstream's `401` `WWW-Authenticate` names its protected resource metadata
//! (RFC 9728), which names the authorization server, whose metadata
//! (RFC 8414, or OpenID discovery) names the token and revocation endpoints.
//!
//! The upstream is not trusted to steer this: the resource metadata is read
//! from the upstream's own origin only (a `resource_metadata` elsewhere is
//! ignored; set `token_url` to skip discovery), must name the upstream as its
//! `resource` (RFC 9728 §3.3), the authorization server metadata must name the
//! issuer it was fetched for (RFC 8414 §3.3), no request goes to a link-local
//! or metadata address ([`super::outbound`]), and bodies are capped.
use std::sync::Arc;

use serde::Deserialize;
use url::Url;

use super::error::TokenError;

/// The authorization server's endpoints this client uses.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Where tokens are issued.
    pub token: Url,
    /// Where tokens are revoked (RFC 7009), if the server supports it.
    pub revocation: Option<Url>,
    /// The server's issuer identifier: the audience of our JWT assertions.
    pub issuer: Option<String>,
}

/// Metadata documents are a few hundred bytes; more is refused unread.
const MAX_METADATA_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
struct ResourceMetadata {
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
}

#[derive(Deserialize)]
struct ServerMetadata {
    issuer: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
}

/// True for `https`, and for plain `http` on loopback only (OAuth 2.1).
pub fn is_allowed_endpoint(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(domain)) => domain == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// Parses `url` and insists on HTTPS (loopback excepted).
pub fn secure_url(server: &Arc<str>, what: &str, url: &str) -> Result<Url, TokenError> {
    let parsed = Url::parse(url).map_err(|err| TokenError::Discovery {
        server: server.clone(),
        reason: format!("{what} {url:?} is not a URL: {err}"),
    })?;
    if !is_allowed_endpoint(&parsed) {
        return Err(TokenError::Discovery {
            server: server.clone(),
            reason: format!("{what} {url} must use https (plain http only on loopback)"),
        });
    }
    if super::outbound::names_forbidden_host(&parsed) {
        return Err(TokenError::Discovery {
            server: server.clone(),
            reason: format!("{what} {url} is a link-local or metadata address"),
        });
    }
    Ok(parsed)
}

/// True when both URLs share scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// True when the resource identifier `resource` covers `upstream`: same
/// origin, and the upstream's path is the resource's path or below it.
fn covers(resource: &str, upstream: &Url) -> bool {
    let Ok(resource) = Url::parse(resource) else {
        return false;
    };
    let base = resource.path().trim_end_matches('/');
    let path = upstream.path().trim_end_matches('/');
    same_origin(&resource, upstream) && (path == base || path.starts_with(&format!("{base}/")))
}

/// RFC 8414 §3.3: identical, a trailing slash aside.
fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Walks from the upstream URL to the authorization server's endpoints.
pub async fn discover(
    http: &reqwest::Client,
    server: &Arc<str>,
    upstream: &str,
) -> Result<Endpoints, TokenError> {
    let fail = |reason: String| TokenError::Discovery {
        server: server.clone(),
        reason,
    };
    let upstream = Url::parse(upstream).map_err(|err| fail(format!("upstream URL: {err}")))?;
    if super::outbound::names_forbidden_host(&upstream) {
        return Err(fail(
            "the upstream is a link-local or metadata address".into(),
        ));
    }
    let challenge = probe_challenge(http, &upstream).await;
    let mut candidates = Vec::new();
    if let Some(url) = challenge.as_deref().and_then(resource_metadata_param) {
        let named = upstream.join(&url).map_err(|err| fail(err.to_string()))?;
        if same_origin(&named, &upstream) {
            candidates.push(named);
        } else {
            tracing::warn!(
                server = %server,
                origin = %named.origin().ascii_serialization(),
                "the upstream's challenge names resource metadata on another origin; ignored"
            );
        }
    }
    candidates.extend(well_known(&upstream, "oauth-protected-resource", true));
    let mut resource: Option<ResourceMetadata> = None;
    for url in &candidates {
        if let Some(found) = get_json::<ResourceMetadata>(http, url).await {
            resource = Some(found);
            break;
        }
    }
    let resource =
        resource.ok_or_else(|| fail("no protected resource metadata (RFC 9728) found".into()))?;
    match resource.resource.as_deref() {
        Some(named) if covers(named, &upstream) => {}
        Some(named) => {
            return Err(fail(format!(
                "the resource metadata is for {named:?}, not this upstream (RFC 9728 §3.3)"
            )));
        }
        None => return Err(fail("the resource metadata names no resource".into())),
    }
    let issuer = resource
        .authorization_servers
        .first()
        .ok_or_else(|| fail("the resource metadata names no authorization server".into()))?;
    let issuer_url = secure_url(server, "authorization server", issuer)?;
    let mut metadata = None;
    for url in authorization_metadata_urls(&issuer_url) {
        if let Some(found) = get_json::<ServerMetadata>(http, &url).await {
            metadata = Some(found);
            break;
        }
    }
    let metadata = metadata.ok_or_else(|| {
        fail(format!(
            "no authorization server metadata (RFC 8414) at {issuer}"
        ))
    })?;
    match metadata.issuer.as_deref() {
        Some(named) if same_issuer(named, issuer) => {}
        named => {
            return Err(fail(format!(
                "the authorization server metadata names issuer {named:?}, not {issuer:?} (RFC 8414 §3.3)"
            )));
        }
    }
    let token = metadata
        .token_endpoint
        .ok_or_else(|| fail("the authorization server metadata has no token_endpoint".into()))?;
    Ok(Endpoints {
        token: secure_url(server, "token endpoint", &token)?,
        revocation: metadata
            .revocation_endpoint
            .and_then(|url| secure_url(server, "revocation endpoint", &url).ok()),
        issuer: metadata.issuer.or_else(|| Some(issuer.clone())),
    })
}

/// An unauthenticated MCP request; a protected server answers `401` with
/// its challenge.
async fn probe_challenge(http: &reqwest::Client, upstream: &Url) -> Option<String> {
    let response = http
        .post(upstream.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/json, text/event-stream",
        )
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "ping"}))
        .send()
        .await
        .ok()?;
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return None;
    }
    response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// The `resource_metadata` parameter of a `Bearer` challenge.
pub fn resource_metadata_param(challenge: &str) -> Option<String> {
    let at = challenge.find("resource_metadata=")?;
    let rest = &challenge[at + "resource_metadata=".len()..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([',', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_owned())
}

/// `/.well-known/NAME` for `url`: path-suffixed first (RFC 9728/8414 §3),
/// then at the root.
fn well_known(url: &Url, name: &str, with_root: bool) -> Vec<Url> {
    let path = url.path().trim_end_matches('/');
    let mut out = Vec::new();
    let mut at = url.clone();
    at.set_query(None);
    at.set_fragment(None);
    if !path.is_empty() {
        at.set_path(&format!("/.well-known/{name}{path}"));
        out.push(at.clone());
    }
    if with_root || path.is_empty() {
        at.set_path(&format!("/.well-known/{name}"));
        out.push(at);
    }
    out
}

fn authorization_metadata_urls(issuer: &Url) -> Vec<Url> {
    let mut urls = well_known(issuer, "oauth-authorization-server", false);
    urls.extend(well_known(issuer, "openid-configuration", false));
    let path = issuer.path().trim_end_matches('/');
    if !path.is_empty() {
        let mut appended = issuer.clone();
        appended.set_path(&format!("{path}/.well-known/openid-configuration"));
        urls.push(appended);
    }
    urls
}

async fn get_json<T: for<'de> Deserialize<'de>>(http: &reqwest::Client, url: &Url) -> Option<T> {
    if super::outbound::names_forbidden_host(url) {
        return None;
    }
    let response = http.get(url.clone()).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body = crate::http_body::read_capped(response, MAX_METADATA_BODY)
        .await
        .ok()?;
    serde_json::from_slice(&body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resource_metadata_from_a_challenge() {
        let header = r#"Bearer error="invalid_token", resource_metadata="http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(
            resource_metadata_param(header).as_deref(),
            Some("http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(resource_metadata_param("Bearer realm=\"x\""), None);
    }

    #[test]
    fn https_is_required_except_on_loopback() {
        for ok in [
            "https://auth.example.com/token",
            "http://localhost:8080/token",
            "http://127.0.0.1/token",
            "http://[::1]:1/token",
        ] {
            assert!(is_allowed_endpoint(&Url::parse(ok).unwrap()), "{ok}");
        }
        for bad in ["http://auth.example.com/token", "ftp://127.0.0.1/x"] {
            assert!(!is_allowed_endpoint(&Url::parse(bad).unwrap()), "{bad}");
        }
    }

    #[test]
    fn metadata_urls_follow_rfc_8414_path_insertion() {
        let urls: Vec<String> =
            authorization_metadata_urls(&Url::parse("https://as.example.com/tenant1").unwrap())
                .into_iter()
                .map(String::from)
                .collect();
        assert_eq!(
            urls,
            [
                "https://as.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://as.example.com/.well-known/openid-configuration/tenant1",
                "https://as.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        let root: Vec<String> =
            authorization_metadata_urls(&Url::parse("https://as.example.com").unwrap())
                .into_iter()
                .map(String::from)
                .collect();
        assert_eq!(
            root,
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration",
            ]
        );
    }
}
