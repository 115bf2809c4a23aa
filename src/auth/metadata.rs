//! MCP authorization discovery: RFC 9728 protected-resource metadata at
//! `/.well-known/oauth-protected-resource` (and its `/mcp`-suffixed form),
//! and the `WWW-Authenticate` challenge that points clients at it.
use axum::Router;
use axum::routing::get;
use serde_json::json;

use crate::config::auth::OAuthConfig;

/// Path of the metadata document.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The metadata routes; empty when OAuth is not configured.
pub fn routes(oauth: Option<&OAuthConfig>) -> Router {
    let Some(oauth) = oauth else {
        return Router::new();
    };
    let document = json!({
        "resource": oauth.resource,
        "authorization_servers": oauth.authorization_servers,
        "bearer_methods_supported": ["header"],
        "scopes_supported": oauth.scopes_supported,
    });
    let handler = move || {
        let document = document.clone();
        async move { axum::Json(document) }
    };
    // RFC 9728 §3.1 puts the resource's path after the well-known prefix.
    let suffixed = format!("{METADATA_PATH}{}", resource_path(&oauth.resource));
    let mut router = Router::new().route(METADATA_PATH, get(handler.clone()));
    if suffixed != METADATA_PATH {
        router = router.route(&suffixed, get(handler));
    }
    router
}

/// The `WWW-Authenticate` value of a 401; `invalid` adds RFC 6750's
/// `error="invalid_token"` for a credential that was presented but refused.
pub fn challenge(oauth: Option<&OAuthConfig>, invalid: bool) -> String {
    let mut params = Vec::new();
    if let Some(oauth) = oauth {
        params.push(format!(
            "resource_metadata=\"{}{METADATA_PATH}\"",
            origin(&oauth.resource)
        ));
    }
    if invalid {
        params.push("error=\"invalid_token\"".to_owned());
    }
    if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => &url[..after_scheme + slash],
        None => url,
    }
}

fn resource_path(url: &str) -> &str {
    let origin = origin(url);
    url[origin.len()..].trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth() -> OAuthConfig {
        OAuthConfig {
            resource: "http://127.0.0.1:8000/mcp".into(),
            authorization_servers: vec!["https://idp.example".into()],
            scopes_supported: vec![],
        }
    }

    #[test]
    fn challenge_points_at_the_metadata_of_the_resource_origin() {
        assert_eq!(
            challenge(Some(&oauth()), false),
            "Bearer resource_metadata=\"http://127.0.0.1:8000/.well-known/oauth-protected-resource\""
        );
        assert_eq!(challenge(None, false), "Bearer");
        assert_eq!(challenge(None, true), "Bearer error=\"invalid_token\"");
    }

    #[test]
    fn resource_paths_split_from_their_origin() {
        assert_eq!(origin("https://gw.example/mcp"), "https://gw.example");
        assert_eq!(resource_path("https://gw.example/mcp/"), "/mcp");
        assert_eq!(resource_path("https://gw.example"), "");
    }
}
