//! `Host` and `Origin` checks for every route (`/mcp…` and `/api/…`): a page
//! on another site must not reach the gateway through the browser, whether
//! by DNS rebinding (a foreign `Host`) or by a cross-site request (a foreign
//! `Origin`).
//!
//! Default: `Host` must be one of `server.allowed_hosts`; a request carrying
//! an `Origin` must come from one of `server.allowed_origins`, or, when that
//! list is empty, from a page on one of the allowed hosts. `"*"` in
//! `allowed_origins` accepts any origin; an empty `allowed_hosts` any host.
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The allowed hosts and origins.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// Allowed `(host, port)` pairs, lowercased; no port allows any.
    hosts: Vec<(String, Option<String>)>,
    origins: Vec<String>,
}

impl OriginPolicy {
    /// A policy from `server.allowed_hosts` and `server.allowed_origins`.
    pub fn new(hosts: &[String], origins: &[String]) -> Arc<Self> {
        let lower = |list: &[String]| {
            list.iter()
                .map(|item| item.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect()
        };
        let hosts: Vec<String> = lower(hosts);
        Arc::new(Self {
            // Split once here: every request's `Host` is checked.
            hosts: (hosts.iter())
                .map(|allowed| {
                    let (host, port) = split_authority(allowed);
                    (host.to_owned(), port.map(str::to_owned))
                })
                .collect(),
            origins: lower(origins),
        })
    }

    fn host_allowed(&self, authority: &str) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let (host, port) = split_authority(authority);
        self.hosts.iter().any(|(allowed_host, allowed_port)| {
            allowed_host.eq_ignore_ascii_case(host)
                && (allowed_port.is_none() || allowed_port.as_deref() == port)
        })
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self
            .origins
            .iter()
            .any(|allowed| allowed == "*" || *allowed == origin)
        {
            return true;
        }
        if !self.origins.is_empty() {
            return false;
        }
        // No list: same-site pages only, i.e. served from an allowed host.
        match origin.split_once("://") {
            Some(("http" | "https", authority)) => {
                !self.hosts.is_empty() && self.host_allowed(authority)
            }
            _ => false,
        }
    }

    /// Why `headers` are refused, if they are.
    pub fn refusal(&self, headers: &HeaderMap) -> Option<&'static str> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if !self.hosts.is_empty() && !host.is_some_and(|host| self.host_allowed(host)) {
            return Some("the Host header is not an allowed host");
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|origin| self.origin_allowed(origin));
            if !allowed {
                return Some("the Origin header is not an allowed origin");
            }
        }
        None
    }
}

/// `(host, port)` of `host[:port]` or `[v6]:port`, without brackets; a
/// bare IPv6 address has no port.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':'));
    }
    match authority.split_once(':') {
        Some((host, port)) if !port.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

/// The layer: 403 for a foreign `Host` or `Origin`.
/// `/health` and `/ready` answer any `Host`: probes use the pod's address.
pub async fn layer(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let probe = matches!(request.uri().path(), "/health" | "/ready");
    if let Some(reason) = policy.refusal(request.headers()).filter(|_| !probe) {
        tracing::warn!(path = %crate::front::clip(request.uri().path(), 100), reason, "request refused");
        let body = json!({ "error": "forbidden", "message": reason });
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            map.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        map
    }

    #[test]
    fn default_policy_admits_local_pages_only() {
        let hosts = [
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let policy = OriginPolicy::new(&hosts, &[]);
        assert_eq!(policy.refusal(&headers("127.0.0.1:8000", None)), None);
        assert_eq!(policy.refusal(&headers("[::1]:8000", None)), None);
        assert_eq!(
            policy.refusal(&headers("localhost:1", Some("http://localhost:3000"))),
            None
        );
        assert!(policy.refusal(&headers("evil.example", None)).is_some());
        assert!(
            policy
                .refusal(&headers("127.0.0.1:8000", Some("https://evil.example")))
                .is_some()
        );
        assert!(
            policy
                .refusal(&headers("127.0.0.1:8000", Some("null")))
                .is_some()
        );
        assert!(policy.refusal(&HeaderMap::new()).is_some());
    }

    #[test]
    fn hosts_match_without_case_and_ports_when_given() {
        let policy = OriginPolicy::new(
            &["Gateway.Example:8443".to_owned(), "[::1]".to_owned()],
            &[],
        );
        assert_eq!(policy.refusal(&headers("gateway.EXAMPLE:8443", None)), None);
        assert!(
            policy
                .refusal(&headers("gateway.example:8000", None))
                .is_some()
        );
        assert!(policy.refusal(&headers("gateway.example", None)).is_some());
        assert_eq!(policy.refusal(&headers("[::1]:9", None)), None);
        assert_eq!(
            policy.refusal(&headers("[::1]:9", Some("HTTPS://GATEWAY.example:8443/"))),
            None
        );
        assert!(
            policy
                .refusal(&headers("gateway.example.evil:8443", None))
                .is_some()
        );
    }

    #[test]
    fn configured_origins_and_wildcards() {
        let policy = OriginPolicy::new(&[], &["https://app.example".to_owned()]);
        assert_eq!(
            policy.refusal(&headers("any.example", Some("https://app.example"))),
            None
        );
        assert!(
            policy
                .refusal(&headers("any.example", Some("https://evil.example")))
                .is_some()
        );
        let open = OriginPolicy::new(&[], &["*".to_owned()]);
        assert_eq!(
            open.refusal(&headers("x", Some("https://evil.example"))),
            None
        );
    }
}
