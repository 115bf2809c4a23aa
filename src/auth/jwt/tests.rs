//! JWT verification against real tokens: HS256, and ES256 keys served as a
//! JWKS over loopback HTTP, including rotation to a new `kid`.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};

use super::*;

const SECRET: &str = "test-shared-secret-of-some-length";

fn config() -> JwtConfig {
    JwtConfig {
        hs256_secret: Some(SECRET.into()),
        issuer: Some("https://idp.test".into()),
        audience: vec!["bulwark".into()],
        leeway_secs: 0,
        ..JwtConfig::default()
    }
}

fn claims() -> Value {
    json!({
        "sub": "user-1",
        "project": "demo",
        "iss": "https://idp.test",
        "aud": "bulwark",
        "exp": get_current_timestamp() + 300,
    })
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn hs256_tokens_are_checked_for_signature_issuer_audience_and_expiry() {
    let verifier = JwtVerifier::new(&config()).unwrap();
    let ok = verifier.verify(&hs256(&claims(), SECRET)).await.unwrap();
    assert_eq!(
        ok,
        Claims {
            subject: "user-1".into(),
            user: "user-1".into(),
            project: "demo".into()
        }
    );
    let with = |key: &str, value: Value| {
        let mut c = claims();
        c[key] = value;
        hs256(&c, SECRET)
    };
    let cases = [
        (hs256(&claims(), "another-secret"), "bad signature"),
        (with("iss", json!("https://evil.test")), "wrong issuer"),
        (with("aud", json!("someone-else")), "wrong audience"),
        (with("exp", json!(get_current_timestamp() - 60)), "expired"),
        (
            with("nbf", json!(get_current_timestamp() + 3600)),
            "not valid yet",
        ),
    ];
    for (token, why) in cases {
        let err = verifier.verify(&token).await.unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
        assert!(!err.to_string().contains(&token[..20]), "{err}");
    }
    let mut no_project = claims();
    no_project.as_object_mut().unwrap().remove("project");
    assert!(matches!(
        verifier.verify(&hs256(&no_project, SECRET)).await,
        Err(JwtError::MissingClaim(claim)) if claim == "project"
    ));
    assert!(matches!(
        verifier.verify("not-a-jwt").await,
        Err(JwtError::Malformed)
    ));
}

/// An ES256 signing key and its public JWK.
struct EcKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn ec_key(kid: &str) -> EcKey {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let public = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    EcKey {
        kid: kid.into(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
        }),
    }
}

fn es256(key: &EcKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    encode(&header, claims, &key.encoding).unwrap()
}

/// A loopback JWKS endpoint whose key set the test swaps, counting fetches.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn jwks_server(keys: Vec<Value>) -> JwksServer {
    let keys = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (served, counted) = (keys.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let keys = served.lock().unwrap().clone();
            async move { axum::Json(json!({ "keys": keys })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    JwksServer { url, keys, fetches }
}

#[tokio::test]
async fn jwks_keys_verify_tokens_and_a_rotated_kid_is_fetched() {
    let first = ec_key("first");
    let server = jwks_server(vec![first.jwk.clone()]).await;
    let mut config = config();
    config.hs256_secret = None;
    config.jwks_url = Some(server.url.clone());
    config.jwks_min_refetch_secs = 0;
    let verifier = JwtVerifier::new(&config).unwrap();

    assert_eq!(
        verifier
            .verify(&es256(&first, &claims()))
            .await
            .unwrap()
            .project,
        "demo"
    );
    assert_eq!(
        verifier
            .verify(&es256(&first, &claims()))
            .await
            .unwrap()
            .subject,
        "user-1"
    );
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "the JWKS is cached"
    );

    // The provider rotates: a token with the new kid triggers one refetch.
    let second = ec_key("second");
    *server.keys.lock().unwrap() = vec![second.jwk.clone()];
    assert!(verifier.verify(&es256(&second, &claims())).await.is_ok());
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);

    // A key the JWKS never had: a signature by it under a known kid fails.
    let forged = EcKey {
        kid: "second".into(),
        ..ec_key("x")
    };
    let err = verifier
        .verify(&es256(&forged, &claims()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad signature"), "{err}");
    let mut wrong_issuer = claims();
    wrong_issuer["iss"] = json!("https://evil.test");
    assert!(
        verifier
            .verify(&es256(&second, &wrong_issuer))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unknown_kids_refetch_no_more_often_than_the_floor() {
    let known = ec_key("known");
    let server = jwks_server(vec![known.jwk.clone()]).await;
    let mut config = config();
    config.jwks_url = Some(server.url.clone());
    config.jwks_min_refetch_secs = 3600;
    let verifier = JwtVerifier::new(&config).unwrap();
    assert!(verifier.verify(&es256(&known, &claims())).await.is_ok());
    for _ in 0..5 {
        let stranger = ec_key("made-up");
        assert!(matches!(
            verifier.verify(&es256(&stranger, &claims())).await,
            Err(JwtError::UnknownKey)
        ));
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
}

fn jwks_config(url: &str) -> JwtConfig {
    JwtConfig {
        hs256_secret: None,
        jwks_url: Some(url.into()),
        jwks_min_refetch_secs: 0,
        ..config()
    }
}

#[test]
fn jwks_must_be_https_except_on_loopback() {
    for url in [
        "http://idp.example/jwks.json",
        "http://10.0.0.1/jwks.json",
        "ftp://127.0.0.1/jwks.json",
        "not a url",
    ] {
        assert!(
            JwtVerifier::new(&jwks_config(url)).is_err(),
            "{url} must be refused"
        );
    }
    for url in [
        "https://idp.example/jwks.json",
        "http://127.0.0.1:9/jwks.json",
        "http://[::1]:9/jwks.json",
        "http://localhost:9/jwks.json",
    ] {
        assert!(JwtVerifier::new(&jwks_config(url)).is_ok(), "{url}");
    }
}

/// Serves `app` on loopback and returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn jwks_redirects_are_not_followed_and_oversized_sets_are_refused() {
    let key = ec_key("k");
    let followed = Arc::new(AtomicUsize::new(0));
    let counted = followed.clone();
    let jwk = key.jwk.clone();
    let padding = "x".repeat(1024 * 1024);
    let app = axum::Router::new()
        .route(
            "/moved",
            axum::routing::get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [(axum::http::header::LOCATION, "/jwks.json")],
                )
            }),
        )
        .route(
            "/jwks.json",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let jwk = jwk.clone();
                async move { axum::Json(json!({ "keys": [jwk] })) }
            }),
        )
        .route(
            "/huge.json",
            axum::routing::get(move || {
                let body = json!({ "keys": [], "padding": padding.clone() });
                async move { axum::Json(body) }
            }),
        );
    let base = serve(app).await;

    let verifier = JwtVerifier::new(&jwks_config(&format!("{base}/moved"))).unwrap();
    assert!(matches!(
        verifier.verify(&es256(&key, &claims())).await,
        Err(JwtError::KeysUnavailable)
    ));
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );

    let verifier = JwtVerifier::new(&jwks_config(&format!("{base}/huge.json"))).unwrap();
    assert!(matches!(
        verifier.verify(&es256(&key, &claims())).await,
        Err(JwtError::KeysUnavailable)
    ));

    // The same key served directly is accepted.
    let verifier = JwtVerifier::new(&jwks_config(&format!("{base}/jwks.json"))).unwrap();
    assert!(verifier.verify(&es256(&key, &claims())).await.is_ok());
}

/// On a single-threaded runtime the loopback server only runs when the test
/// awaits something that yields: a token verified from stale keys returns
/// before the refresh request has even reached the server.
#[tokio::test(flavor = "current_thread")]
async fn stale_keys_keep_serving_while_one_refresh_runs_in_the_background() {
    let old = ec_key("old");
    let server = jwks_server(vec![old.jwk.clone()]).await;
    let mut config = jwks_config(&server.url);
    config.jwks_ttl_secs = 0; // every use finds the keys stale
    let verifier = JwtVerifier::new(&config).unwrap();
    assert!(verifier.verify(&es256(&old, &claims())).await.is_ok());
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // The provider rotates; the stale set still verifies at once, three times,
    // and no verification waited for a fetch.
    let new = ec_key("new");
    *server.keys.lock().unwrap() = vec![new.jwk.clone()];
    for _ in 0..3 {
        assert!(verifier.verify(&es256(&old, &claims())).await.is_ok());
    }
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "a verification waited for the refresh"
    );

    // The one background refresh lands: the rotated-out key stops verifying.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.fetches.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background refresh"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Err(err) = verifier.verify(&es256(&old, &claims())).await {
            assert!(matches!(err, JwtError::UnknownKey), "{err}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the refresh never landed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(verifier.verify(&es256(&new, &claims())).await.is_ok());
}
