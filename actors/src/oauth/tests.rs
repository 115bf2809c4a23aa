//! The token actor against a real authorization server on loopback (axum):
//! single flight, retries, refusals, proactive refresh, discovery and
//! `private_key_jwt`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};

use super::*;

/// Test key pair (P-256), generated for these tests only.
const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHYNAB+lqZJGhN60P
wf8yAiEWmcwD3OOTYA/R6jGKIjChRANCAARkkTF9fWSjcmDsJPUc+8kqJb8ssNmX
5WrxedBZ9u4+TLGHCjdZMo+L2fqhhukG9G37taJINHVkUkAYFOVbrVIK
-----END PRIVATE KEY-----
";
const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZJExfX1ko3Jg7CT1HPvJKiW/LLDZ
l+Vq8XnQWfbuPkyxhwo3WTKPi9n6oYbpBvRt+7WiSDR1ZFJAGBTlW61SCg==
-----END PUBLIC KEY-----
";

/// A form as the server received it.
type FormFields = Vec<(String, String)>;

/// A loopback authorization server that counts token requests and answers
/// from a script, then with fresh tokens.
#[derive(Default)]
struct AuthServer {
    requests: AtomicUsize,
    script: Mutex<VecDeque<(StatusCode, Value)>>,
    expires_in: AtomicUsize,
    forms: Mutex<Vec<(Option<String>, FormFields)>>,
    base: Mutex<String>,
    revoked: Mutex<Vec<Vec<(String, String)>>>,
}

async fn token(
    State(server): State<Arc<AuthServer>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let n = server.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    server.forms.lock().unwrap().push((authorization, form));
    if let Some((status, body)) = server.script.lock().unwrap().pop_front() {
        return (status, Json(body)).into_response();
    }
    Json(json!({
        "access_token": format!("token-{n}"),
        "token_type": "Bearer",
        "expires_in": server.expires_in.load(Ordering::SeqCst),
    }))
    .into_response()
}

async fn revoke(
    State(server): State<Arc<AuthServer>>,
    Form(form): Form<Vec<(String, String)>>,
) -> StatusCode {
    server.revoked.lock().unwrap().push(form);
    StatusCode::OK
}

async fn protected(State(server): State<Arc<AuthServer>>) -> Response {
    let base = server.base.lock().unwrap().clone();
    (
        StatusCode::UNAUTHORIZED,
        [(
            "www-authenticate",
            format!(
                r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#
            ),
        )],
    )
        .into_response()
}

async fn resource_metadata(State(server): State<Arc<AuthServer>>) -> Json<Value> {
    let base = server.base.lock().unwrap().clone();
    Json(
        json!({"resource": format!("{base}/mcp"), "authorization_servers": [format!("{base}/as")]}),
    )
}

async fn server_metadata(State(server): State<Arc<AuthServer>>) -> Json<Value> {
    let base = server.base.lock().unwrap().clone();
    Json(json!({"issuer": format!("{base}/as"), "token_endpoint": format!("{base}/as/token")}))
}

async fn start_server(expires_in: usize) -> (Arc<AuthServer>, String) {
    let server = Arc::new(AuthServer::default());
    server.expires_in.store(expires_in, Ordering::SeqCst);
    let app = Router::new()
        .route("/token", post(token))
        .route("/as/token", post(token))
        .route("/revoke", post(revoke))
        .route("/mcp", post(protected))
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server/as",
            get(server_metadata),
        )
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *server.base.lock().unwrap() = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (server, base)
}

async fn source_for(spec: OAuthSpec, upstream: Option<String>) -> (Arc<Tokens>, TokenSource) {
    let tokens = Tokens::new();
    tokens.spawn(None).await.unwrap();
    let source = tokens.source("up", spec, upstream).unwrap();
    (tokens, source)
}

fn basic(base: &str) -> OAuthSpec {
    let mut spec = OAuthSpec::basic("client-1", "top-secret-value");
    spec.token_url = Some(format!("{base}/token"));
    spec
}

#[tokio::test]
async fn a_hundred_concurrent_callers_share_one_token_request() {
    let (server, base) = start_server(3600).await;
    let (tokens, source) = source_for(basic(&base), None).await;
    let calls = (0..100).map(|_| {
        let source = source.clone();
        tokio::spawn(async move { source.bearer().await })
    });
    for call in futures::future::join_all(calls).await {
        assert_eq!(&*call.unwrap().unwrap(), "token-1");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    // Now served from the cache.
    assert_eq!(&*source.bearer().await.unwrap(), "token-1");
    let metrics = tokens.metrics.snapshot();
    assert_eq!(metrics.acquisitions, 1);
    assert!(metrics.hits >= 1, "{metrics:?}");
    assert_eq!(metrics.hits + metrics.misses, 101, "{metrics:?}");
    // client_secret_basic: credentials in the header, not the body.
    let forms = server.forms.lock().unwrap();
    let (authorization, form) = &forms[0];
    assert!(authorization.as_deref().unwrap().starts_with("Basic "));
    assert!(form.iter().all(|(k, _)| k != "client_secret"), "{form:?}");
    assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
}

#[tokio::test]
async fn a_5xx_is_retried_and_then_succeeds() {
    let (server, base) = start_server(3600).await;
    server
        .script
        .lock()
        .unwrap()
        .push_back((StatusCode::INTERNAL_SERVER_ERROR, json!({})));
    let (tokens, source) = source_for(basic(&base), None).await;
    assert_eq!(&*source.bearer().await.unwrap(), "token-2");
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(tokens.metrics.snapshot().failures, 0);
}

#[tokio::test]
async fn invalid_client_is_not_retried_and_says_why() {
    let (server, base) = start_server(3600).await;
    server.script.lock().unwrap().push_back((
        StatusCode::UNAUTHORIZED,
        json!({"error": "invalid_client", "error_description": "unknown client"}),
    ));
    let (tokens, source) = source_for(basic(&base), None).await;
    let err = source.bearer().await.unwrap_err();
    assert!(matches!(err, TokenError::Rejected { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("invalid_client") && text.contains("'up'"),
        "{text}"
    );
    assert!(!text.contains("top-secret-value"), "{text}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert_eq!(tokens.metrics.snapshot().failures, 1);
}

#[tokio::test]
async fn a_token_is_refreshed_before_it_expires() {
    let (server, base) = start_server(2).await;
    let mut spec = basic(&base);
    spec.refresh_before = Duration::from_secs(1);
    let (tokens, source) = source_for(spec, None).await;
    assert_eq!(&*source.bearer().await.unwrap(), "token-1");
    // Due one second before expiry; nobody asks for it in the meantime.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokens.metrics.snapshot().refreshes == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(&*source.bearer().await.unwrap(), "token-2");
}

#[tokio::test]
async fn invalidate_drops_only_the_refused_token() {
    let (server, base) = start_server(3600).await;
    let (_tokens, source) = source_for(basic(&base), None).await;
    let first = source.bearer().await.unwrap();
    source.invalidate("some-other-token");
    assert_eq!(source.bearer().await.unwrap(), first);
    source.invalidate(&first);
    assert_eq!(&*source.bearer().await.unwrap(), "token-2");
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_without_the_requested_scopes_is_refused() {
    let (server, base) = start_server(3600).await;
    server.script.lock().unwrap().push_back((
        StatusCode::OK,
        json!({"access_token": "narrow", "token_type": "Bearer", "scope": "read"}),
    ));
    let mut spec = basic(&base);
    spec.scopes = vec!["read".into(), "write".into()];
    let (_tokens, source) = source_for(spec, None).await;
    let err = source.bearer().await.unwrap_err();
    assert!(
        matches!(&err, TokenError::MissingScopes { missing, .. } if missing == &["write"]),
        "{err:?}"
    );
}

#[tokio::test]
async fn discovery_and_private_key_jwt() {
    let (server, base) = start_server(3600).await;
    let mut spec = OAuthSpec::basic("jwt-client", "");
    spec.auth = ClientAuth::PrivateKeyJwt {
        key_pem: Secret::new(EC_PRIVATE),
        algorithm: "ES256".into(),
    };
    spec.audience = Some("api://upstream".into());
    let upstream = format!("{base}/mcp");
    let (_tokens, source) = source_for(spec, Some(upstream.clone())).await;
    assert_eq!(&*source.bearer().await.unwrap(), "token-1");

    let forms = server.forms.lock().unwrap();
    let (_, form) = &forms[0];
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {form:?}"))
    };
    assert_eq!(field("resource"), upstream);
    assert_eq!(field("audience"), "api://upstream");
    assert_eq!(
        field("client_assertion_type"),
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[format!("{base}/as")]);
    let claims = jsonwebtoken::decode::<Value>(
        field("client_assertion"),
        &jsonwebtoken::DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap(),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["iss"], "jwt-client");
    assert_eq!(claims["sub"], "jwt-client");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 32));
}

#[tokio::test]
async fn plain_http_token_endpoints_are_refused_off_loopback() {
    let mut spec = OAuthSpec::basic("client", "secret");
    spec.token_url = Some("http://auth.example.com/token".into());
    let (_tokens, source) = source_for(spec, None).await;
    let err = source.bearer().await.unwrap_err().to_string();
    assert!(err.contains("must use https"), "{err}");
}

#[tokio::test]
async fn tokens_are_revoked_at_shutdown_where_supported() {
    let (server, base) = start_server(3600).await;
    let mut spec = basic(&base);
    spec.auth = ClientAuth::SecretPost(Secret::new("post-secret"));
    spec.revocation_url = Some(format!("{base}/revoke"));
    let (tokens, source) = source_for(spec, None).await;
    let token = source.bearer().await.unwrap();
    tokens.revoke_all().await;
    {
        let revoked = server.revoked.lock().unwrap();
        assert_eq!(revoked.len(), 1);
        assert!(revoked[0].contains(&("token".into(), token.to_string())));
        assert!(revoked[0].contains(&("client_secret".into(), "post-secret".into())));
    }
    // Revoked tokens leave the cache: the next call fetches a new one.
    assert_eq!(&*source.bearer().await.unwrap(), "token-2");
}

/// A scripted loopback server: each path answers a fixed status, optional
/// `WWW-Authenticate` and body (`{base}` stands for its own URL), and every
/// request is recorded.
struct Scripted {
    base: String,
    hits: Arc<Mutex<Vec<String>>>,
}

type Script = Vec<(&'static str, StatusCode, Option<String>, String)>;

async fn scripted(script: impl FnOnce(&str) -> Script) -> Scripted {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let script: Arc<Script> = Arc::new(script(&base));
    let hits = Arc::new(Mutex::new(Vec::new()));
    let seen = hits.clone();
    let app = Router::new().fallback(move |uri: axum::http::Uri| {
        let script = script.clone();
        seen.lock().unwrap().push(uri.path().to_owned());
        async move {
            match script.iter().find(|(path, ..)| *path == uri.path()) {
                Some((_, status, challenge, body)) => {
                    let mut response = (*status, body.clone()).into_response();
                    response
                        .headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    if let Some(challenge) = challenge {
                        response
                            .headers_mut()
                            .insert("www-authenticate", challenge.parse().unwrap());
                    }
                    response
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Scripted { base, hits }
}

impl Scripted {
    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}

/// An upstream at `{base}/mcp` whose 401 names `metadata_url`, serving
/// `resource` as its RFC 9728 document and `server` as its AS metadata.
fn hostile_upstream(metadata_url: Option<String>, resource: Value, server: Value) -> Script {
    let challenge = metadata_url.map(|url| format!(r#"Bearer resource_metadata="{url}""#));
    vec![
        ("/mcp", StatusCode::UNAUTHORIZED, challenge, String::new()),
        (
            "/.well-known/oauth-protected-resource/mcp",
            StatusCode::OK,
            None,
            resource.to_string(),
        ),
        (
            "/.well-known/oauth-authorization-server/as",
            StatusCode::OK,
            None,
            server.to_string(),
        ),
        (
            "/as/token",
            StatusCode::OK,
            None,
            json!({"access_token": "t", "token_type": "Bearer", "expires_in": 60}).to_string(),
        ),
    ]
}

async fn discovered_with(upstream: &Scripted) -> Result<Arc<str>, TokenError> {
    let spec = OAuthSpec::basic("client-1", "top-secret-value");
    let (_tokens, source) = source_for(spec, Some(format!("{}/mcp", upstream.base))).await;
    source.bearer().await
}

#[tokio::test]
async fn discovery_stays_on_the_upstreams_origin() {
    let elsewhere = scripted(|_| Vec::new()).await;
    let target = format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        elsewhere.base
    );
    let upstream = scripted(|base| {
        hostile_upstream(
            Some(target.clone()),
            json!({"resource": format!("{base}/mcp"), "authorization_servers": [format!("{base}/as")]}),
            json!({"issuer": format!("{base}/as"), "token_endpoint": format!("{base}/as/token")}),
        )
    })
    .await;
    // The challenge's foreign URL is ignored; the upstream's own well-known
    // document is used instead.
    assert_eq!(&*discovered_with(&upstream).await.unwrap(), "t");
    assert!(elsewhere.hits().is_empty(), "{:?}", elsewhere.hits());
}

#[tokio::test]
async fn resource_metadata_for_another_resource_is_refused() {
    let upstream = scripted(|base| {
        hostile_upstream(
            None,
            json!({"resource": "https://victim.example/mcp", "authorization_servers": [format!("{base}/as")]}),
            json!({"issuer": format!("{base}/as"), "token_endpoint": format!("{base}/as/token")}),
        )
    })
    .await;
    let err = discovered_with(&upstream).await.unwrap_err().to_string();
    assert!(err.contains("RFC 9728"), "{err}");
    assert!(!upstream.hits().iter().any(|p| p.contains("token")));

    let upstream = scripted(|base| {
        hostile_upstream(
            None,
            json!({"authorization_servers": [format!("{base}/as")]}),
            json!({"issuer": format!("{base}/as"), "token_endpoint": format!("{base}/as/token")}),
        )
    })
    .await;
    let err = discovered_with(&upstream).await.unwrap_err().to_string();
    assert!(err.contains("names no resource"), "{err}");
}

#[tokio::test]
async fn a_mismatched_issuer_never_gets_the_client_secret() {
    let thief = scripted(|_| {
        vec![(
            "/token",
            StatusCode::OK,
            None,
            json!({"access_token": "stolen", "token_type": "Bearer", "expires_in": 60}).to_string(),
        )]
    })
    .await;
    let upstream = scripted(|base| {
        hostile_upstream(
            None,
            json!({"resource": format!("{base}/mcp"), "authorization_servers": [format!("{base}/as")]}),
            json!({"issuer": "https://someone-else.example", "token_endpoint": format!("{}/token", thief.base)}),
        )
    })
    .await;
    let err = discovered_with(&upstream).await.unwrap_err().to_string();
    assert!(err.contains("RFC 8414"), "{err}");
    assert!(thief.hits().is_empty(), "{:?}", thief.hits());
}

#[tokio::test]
async fn oversized_metadata_and_link_local_endpoints_are_refused() {
    let upstream = scripted(|base| {
        hostile_upstream(
            None,
            json!({"resource": format!("{base}/mcp"), "authorization_servers": [format!("{base}/as")],
                "padding": "x".repeat(1024 * 1024)}),
            json!({"issuer": format!("{base}/as"), "token_endpoint": format!("{base}/as/token")}),
        )
    })
    .await;
    let err = discovered_with(&upstream).await.unwrap_err().to_string();
    assert!(err.contains("no protected resource metadata"), "{err}");

    for authorization_server in [
        "https://169.254.169.254/as",
        "https://[fe80::1]/as",
        "https://100.100.100.200/as",
    ] {
        let upstream = scripted(|base| {
            hostile_upstream(
                None,
                json!({"resource": format!("{base}/mcp"), "authorization_servers": [authorization_server]}),
                json!({}),
            )
        })
        .await;
        let err = discovered_with(&upstream).await.unwrap_err().to_string();
        assert!(err.contains("link-local or metadata"), "{err}");
    }

    let mut spec = OAuthSpec::basic("client", "secret");
    spec.token_url = Some("https://169.254.169.254/token".into());
    let (_tokens, source) = source_for(spec, None).await;
    let err = source.bearer().await.unwrap_err().to_string();
    assert!(err.contains("link-local or metadata"), "{err}");
}
