//! JWT bearer tokens through `/mcp`: HS256 with a shared secret, ES256 keys
//! from a JWKS served on loopback (rotated to a new `kid` mid-test), and the
//! tokens that must be refused.
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};

use super::{config, initialize, listed, start};
use crate::common::peers;

pub const SECRET: &str = "jwt-shared-secret-for-the-auth-tests";
pub const SECRET_ENV: &str = "BULWARK_TEST_JWT_SECRET";
const ISSUER: &str = "https://idp.test";

pub fn claims(project: &str) -> Value {
    json!({
        "sub": "user-7", "project": project, "iss": ISSUER, "aud": "bulwark",
        "exp": get_current_timestamp() + 600,
    })
}

pub fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An ES256 key pair and its public JWK.
pub struct EcKey {
    kid: String,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl EcKey {
    pub fn new(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let public = pair.public_key().as_ref().to_vec();
        Self {
            kid: kid.into(),
            encoding: EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
            }),
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).unwrap()
    }
}

/// A JWKS endpoint on loopback, on its own thread (tests block on Python).
pub struct Jwks {
    pub url: String,
    pub keys: Arc<Mutex<Vec<Value>>>,
}

impl Jwks {
    pub fn serve(keys: Vec<Value>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let served = keys.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/jwks.json",
                    axum::routing::get(move || {
                        let keys = served.lock().unwrap().clone();
                        async move { axum::Json(json!({ "keys": keys })) }
                    }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Self {
            url: format!("http://{addr}/jwks.json"),
            keys,
        }
    }
}

/// `[auth.jwt]` with the shared secret from the environment and `jwks_url`.
pub fn jwt_section(jwks_url: &str) -> String {
    format!(
        "[auth.jwt]\nhs256_secret = \"${{{SECRET_ENV}}}\"\njwks_url = {jwks_url:?}\nissuer = {ISSUER:?}\naudience = [\"bulwark\"]\nleeway_secs = 0\njwks_min_refetch_secs = 0\n"
    )
}

fn bearer(token: &str) -> Value {
    json!({ "Authorization": format!("Bearer {token}") })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_and_rotated_jwks_tokens_are_accepted_and_bad_ones_refused() {
    let Some(peers) = peers() else { return };
    let first = EcKey::new("first");
    let jwks = Jwks::serve(vec![first.jwk.clone()]);
    let gw = crate::common::Gateway::builder(&config(&jwt_section(&jwks.url)))
        .with_auth()
        .env(SECRET_ENV, SECRET)
        .start();
    gw.wait_ready(std::time::Duration::from_secs(60)).await;

    // HS256: the project claim picks the grant.
    let mut session =
        peers.session_with_headers(gw.mcp_url(), &bearer(&hs256(&claims("demo"), SECRET)));
    let mut tools = listed(&session.list("tools"), "tools");
    tools.sort();
    assert_eq!(tools, ["echo__echo", "echo__request_count"]);
    let answer = session.call("echo__echo", json!({"message": "via HS256"}));
    assert_eq!(answer["result"]["text"], "via HS256", "{answer}");

    // ES256 from the JWKS, then the provider rotates to a new kid.
    let mut session =
        peers.session_with_headers(gw.mcp_url(), &bearer(&first.sign(&claims("admin"))));
    assert!(listed(&session.list("tools"), "tools").contains(&"other__add".to_owned()));
    let second = EcKey::new("second");
    *jwks.keys.lock().unwrap() = vec![second.jwk.clone()];
    let mut session =
        peers.session_with_headers(gw.mcp_url(), &bearer(&second.sign(&claims("demo"))));
    let answer = session.call("echo__echo", json!({"message": "via rotated JWKS"}));
    assert_eq!(answer["result"]["text"], "via rotated JWKS", "{answer}");

    let with = |key: &str, value: Value| {
        let mut c = claims("demo");
        c[key] = value;
        c
    };
    let refused = [
        (
            "wrong issuer",
            hs256(&with("iss", json!("https://evil.test")), SECRET),
        ),
        (
            "wrong audience",
            hs256(&with("aud", json!("other-service")), SECRET),
        ),
        (
            "expired",
            hs256(&with("exp", json!(get_current_timestamp() - 120)), SECRET),
        ),
        ("bad signature", hs256(&claims("demo"), "not-the-secret")),
        (
            "bad signature",
            EcKey {
                kid: "second".into(),
                ..EcKey::new("x")
            }
            .sign(&claims("demo")),
        ),
        (
            "no verification key",
            EcKey::new("never-published").sign(&claims("demo")),
        ),
    ];
    for (why, token) in &refused {
        let auth = format!("Bearer {token}");
        let response = initialize(&gw, "/mcp", &[("Authorization", &auth)]).await;
        assert_eq!(response.status(), 401, "{why}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("invalid_token"), "{challenge}");
        let body = response.text().await.unwrap();
        assert!(body.contains(why), "{why}: {body}");
    }
    // A valid token for a project the gateway does not know: 403.
    let unknown = hs256(&claims("ghost"), SECRET);
    let response = initialize(
        &gw,
        "/mcp",
        &[("Authorization", &format!("Bearer {unknown}"))],
    )
    .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_metadata_is_published_and_401s_point_at_it() {
    let toml = config(
        "[auth.oauth]\nresource = \"http://127.0.0.1:8000/mcp\"\nauthorization_servers = [\"https://idp.test\"]\nscopes_supported = [\"mcp\"]\n",
    );
    let gw = start(&toml).await;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let (status, document) = gw.get_json(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(document["resource"], "http://127.0.0.1:8000/mcp");
        assert_eq!(
            document["authorization_servers"],
            json!(["https://idp.test"])
        );
        assert_eq!(document["bearer_methods_supported"], json!(["header"]));
    }
    let response = initialize(&gw, "/mcp", &[]).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer resource_metadata=\"http://127.0.0.1:8000/.well-known/oauth-protected-resource\""
    );
}

/// One HTTP session, one `sub`, tokens naming two projects: each request gets
/// the grant of the project its own token names, in either order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_follows_the_project_of_each_requests_token() {
    use crate::attacks::{message, open_session, post_raw};
    let jwks = Jwks::serve(vec![]);
    let gw = crate::common::Gateway::builder(&config(&jwt_section(&jwks.url)))
        .with_auth()
        .env(SECRET_ENV, SECRET)
        .start();
    gw.wait_ready(std::time::Duration::from_secs(60)).await;
    let demo = format!("Bearer {}", hs256(&claims("demo"), SECRET));
    let admin = format!("Bearer {}", hs256(&claims("admin"), SECRET));
    let session = open_session(&gw, "/mcp", &[("Authorization", &demo)]).await;

    let add = |id: u64| {
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "other__add", "arguments": {"a": 2, "b": 3}}}))
        .unwrap()
    };
    let call = |id: u64, token: &str| {
        let headers = [("Authorization", token.to_owned())];
        let gw = &gw;
        let session = session.clone();
        let body = add(id);
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            post_raw(gw, "/mcp", Some(&session), &headers, body).await
        }
    };
    let answer = |(status, body): (u16, String)| {
        assert_eq!(status, 200, "{body}");
        message(&body)
    };
    let refused = answer(call(2, &demo).await);
    assert_eq!(refused["error"]["code"], -32004, "{refused}");
    let granted = answer(call(3, &admin).await);
    assert_eq!(granted["result"]["content"][0]["text"], "5", "{granted}");
    // The admin grant does not stick to the session.
    let refused = answer(call(4, &demo).await);
    assert_eq!(refused["error"]["code"], -32004, "{refused}");

    // Another subject is still refused on this session, whatever its project.
    let mut stranger = claims("admin");
    stranger["sub"] = json!("someone-else");
    let stranger = format!("Bearer {}", hs256(&stranger, SECRET));
    let (status, body) = call(5, &stranger).await;
    assert_eq!(status, 403, "{body}");
}
