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
    let verifier = JwtVerifier::new(&config());
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
    let verifier = JwtVerifier::new(&config);

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
    let verifier = JwtVerifier::new(&config);
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
