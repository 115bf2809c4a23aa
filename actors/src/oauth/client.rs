//! The client-credentials grant against one authorization server: builds the
//! request for the configured client authentication, retries what is worth
//! retrying (network errors, 5xx) with `backon`, and never what is not (4xx).
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::discovery::{self, Endpoints};
use super::error::TokenError;
use super::spec::{ClientAuth, OAuthSpec};

/// How long one token-endpoint request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of a `private_key_jwt` assertion.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// A token as the cache holds it.
#[derive(Clone)]
pub struct AccessToken {
    /// The bearer value; shared, never printed.
    pub value: Arc<str>,
    /// When it stops being valid; `None` when the server did not say.
    pub expires_at: Option<Instant>,
    /// When the next proactive refresh is due.
    pub refresh_at: Option<Instant>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// Still usable at `now`.
    pub fn is_valid(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// Everything needed to get tokens for one upstream.
pub struct TokenClient {
    /// Upstream name, for errors and logs.
    pub server: Arc<str>,
    /// The configuration.
    pub spec: OAuthSpec,
    /// The upstream's URL: for discovery and the default resource indicator.
    pub upstream_url: Option<String>,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorResponse {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

/// One attempt's failure: worth another try, or final.
enum Attempt {
    Retry(String),
    Fatal(TokenError),
}

impl TokenClient {
    /// Builds the client; fails on an unreadable client certificate.
    pub fn new(
        server: &str,
        spec: OAuthSpec,
        upstream_url: Option<String>,
    ) -> Result<Self, TokenError> {
        let server: Arc<str> = server.into();
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // Credentials must not follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            // Discovery follows URLs the upstream chose: never to link-local
            // or metadata addresses.
            .dns_resolver(super::outbound::GuardedResolver);
        if let Some(cert) = &spec.client_cert {
            let config = |reason: String| TokenError::Config {
                server: server.clone(),
                reason,
            };
            let mut pem = std::fs::read(&cert.cert).map_err(|err| {
                config(format!("client certificate {}: {err}", cert.cert.display()))
            })?;
            pem.extend(
                std::fs::read(&cert.key)
                    .map_err(|err| config(format!("client key {}: {err}", cert.key.display())))?,
            );
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|err| config(format!("client certificate: {err}")))?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|err| TokenError::Config {
            server: server.clone(),
            reason: err.to_string(),
        })?;
        Ok(Self {
            server,
            spec,
            upstream_url,
            http,
            endpoints: OnceCell::new(),
        })
    }

    /// The token and revocation endpoints: configured, or discovered once.
    async fn endpoints(&self) -> Result<&Endpoints, TokenError> {
        self.endpoints
            .get_or_try_init(|| async {
                match &self.spec.token_url {
                    Some(token) => Ok(Endpoints {
                        token: discovery::secure_url(&self.server, "token_url", token)?,
                        revocation: match &self.spec.revocation_url {
                            Some(url) => {
                                Some(discovery::secure_url(&self.server, "revocation_url", url)?)
                            }
                            None => None,
                        },
                        issuer: None,
                    }),
                    None => {
                        let upstream =
                            self.upstream_url
                                .as_deref()
                                .ok_or_else(|| TokenError::Discovery {
                                    server: self.server.clone(),
                                    reason: "token_url is required for a stdio upstream".into(),
                                })?;
                        discovery::discover(&self.http, &self.server, upstream).await
                    }
                }
            })
            .await
    }

    /// Runs the client-credentials grant, retrying network errors and 5xx
    /// with exponential backoff; a 4xx answer is final.
    pub async fn fetch(&self) -> Result<AccessToken, TokenError> {
        let endpoints = self.endpoints().await?;
        let attempt = || self.attempt(endpoints);
        let result = attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(3)
                    .with_jitter(),
            )
            .when(|err| matches!(err, Attempt::Retry(_)))
            .notify(|err, delay| {
                if let Attempt::Retry(reason) = err {
                    tracing::warn!(server = %self.server, %reason, ?delay, "token request failed; retrying");
                }
            })
            .await;
        match result {
            Ok(token) => Ok(token),
            Err(Attempt::Fatal(err)) => Err(err),
            Err(Attempt::Retry(reason)) => Err(TokenError::Unavailable {
                server: self.server.clone(),
                reason,
            }),
        }
    }

    async fn attempt(&self, endpoints: &Endpoints) -> Result<AccessToken, Attempt> {
        let mut form: Vec<(&'static str, String)> =
            vec![("grant_type", "client_credentials".into())];
        if !self.spec.scopes.is_empty() {
            form.push(("scope", self.spec.scopes.join(" ")));
        }
        if let Some(audience) = &self.spec.audience {
            form.push(("audience", audience.clone()));
        }
        if let Some(resource) = self.spec.resource.as_ref().or(self.upstream_url.as_ref()) {
            form.push(("resource", resource.clone()));
        }
        let request = self
            .authenticate(
                self.http.post(endpoints.token.clone()),
                &mut form,
                endpoints,
            )
            .map_err(Attempt::Fatal)?;
        let sent_at = Instant::now();
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|err| Attempt::Retry(describe_network_error(&err)))?;
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Attempt::Retry(format!("HTTP {status}")));
        }
        if !status.is_success() {
            let body: ErrorResponse = capped_json(response).await.unwrap_or_default();
            return Err(Attempt::Fatal(TokenError::Rejected {
                server: self.server.clone(),
                error: body.error.unwrap_or_else(|| format!("HTTP {status}")),
                description: body.error_description,
            }));
        }
        let body: TokenResponse = capped_json(response).await.map_err(|reason| {
            Attempt::Fatal(TokenError::InvalidResponse {
                server: self.server.clone(),
                reason,
            })
        })?;
        self.accept(body, sent_at).map_err(Attempt::Fatal)
    }

    fn accept(&self, body: TokenResponse, sent_at: Instant) -> Result<AccessToken, TokenError> {
        if body
            .token_type
            .as_deref()
            .is_some_and(|kind| !kind.eq_ignore_ascii_case("bearer"))
        {
            return Err(TokenError::InvalidResponse {
                server: self.server.clone(),
                reason: format!("token_type {:?} is not Bearer", body.token_type),
            });
        }
        if body.access_token.is_empty() {
            return Err(TokenError::InvalidResponse {
                server: self.server.clone(),
                reason: "empty access_token".into(),
            });
        }
        // No `scope` in the answer means the requested scopes were granted (RFC 6749 §5.1).
        if let Some(granted) = &body.scope {
            let granted: Vec<&str> = granted.split_whitespace().collect();
            let missing: Vec<String> = self
                .spec
                .scopes
                .iter()
                .filter(|scope| !granted.contains(&scope.as_str()))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(TokenError::MissingScopes {
                    server: self.server.clone(),
                    missing,
                });
            }
        }
        // Lifetimes count from when we asked, so network time never stretches them.
        let expires_at = body
            .expires_in
            .map(|secs| sent_at + Duration::from_secs(secs));
        let refresh_at = body.expires_in.map(|secs| {
            let lifetime = Duration::from_secs(secs);
            // A token shorter-lived than the margin is refreshed at half-life.
            let early = if self.spec.refresh_before < lifetime {
                self.spec.refresh_before
            } else {
                lifetime / 2
            };
            sent_at + (lifetime - early)
        });
        Ok(AccessToken {
            value: body.access_token.into(),
            expires_at,
            refresh_at,
        })
    }

    /// Adds the configured client authentication to a token-endpoint request.
    fn authenticate(
        &self,
        mut request: reqwest::RequestBuilder,
        form: &mut Vec<(&'static str, String)>,
        endpoints: &Endpoints,
    ) -> Result<reqwest::RequestBuilder, TokenError> {
        match &self.spec.auth {
            ClientAuth::SecretBasic(secret) => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before Basic.
                request = request.basic_auth(
                    form_encode(&self.spec.client_id),
                    Some(form_encode(secret.expose())),
                );
            }
            ClientAuth::SecretPost(secret) => {
                form.push(("client_id", self.spec.client_id.clone()));
                form.push(("client_secret", secret.expose().to_owned()));
            }
            ClientAuth::PrivateKeyJwt { key_pem, algorithm } => {
                // The audience is the issuer (SEP-1046), else the token endpoint (RFC 7523).
                let audience = endpoints
                    .issuer
                    .clone()
                    .unwrap_or_else(|| endpoints.token.to_string());
                let assertion = self.assertion(key_pem.expose(), algorithm, &audience)?;
                form.push(("client_id", self.spec.client_id.clone()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
        }
        Ok(request)
    }

    /// A signed RFC 7523 client assertion.
    fn assertion(
        &self,
        key_pem: &str,
        algorithm: &str,
        audience: &str,
    ) -> Result<String, TokenError> {
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        let config = |reason: String| TokenError::Config {
            server: self.server.clone(),
            reason,
        };
        let alg: Algorithm = algorithm
            .parse()
            .map_err(|_| config(format!("unknown signing algorithm {algorithm:?}")))?;
        let pem = key_pem.as_bytes();
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(config(
                    "private_key_jwt needs an asymmetric algorithm".into(),
                ));
            }
            _ => EncodingKey::from_rsa_pem(pem),
        }
        // The key error says only that the PEM is unusable, never its content.
        .map_err(|err| config(format!("private key: {err}")))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = AssertionClaims {
            iss: &self.spec.client_id,
            sub: &self.spec.client_id,
            aud: audience,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
            jti: format!("{:032x}", rand::random::<u128>()),
        };
        jsonwebtoken::encode(&Header::new(alg), &claims, &key)
            .map_err(|err| config(format!("signing the client assertion: {err}")))
    }

    /// RFC 7009: tells the server a token is no longer needed. Best effort.
    pub async fn revoke(&self, token: &str) -> bool {
        let Ok(endpoints) = self.endpoints().await else {
            return false;
        };
        let Some(url) = endpoints.revocation.clone() else {
            return false;
        };
        let mut form: Vec<(&'static str, String)> = vec![
            ("token", token.to_owned()),
            ("token_type_hint", "access_token".into()),
        ];
        let Ok(request) = self.authenticate(self.http.post(url), &mut form, endpoints) else {
            return false;
        };
        match request.form(&form).send().await {
            Ok(response) if response.status().is_success() => true,
            Ok(response) => {
                tracing::warn!(server = %self.server, status = %response.status(), "token revocation refused");
                false
            }
            Err(err) => {
                tracing::warn!(server = %self.server, err = %describe_network_error(&err), "token revocation failed");
                false
            }
        }
    }
}

/// Token responses are small; a larger body is refused unread.
const MAX_TOKEN_BODY: usize = 64 * 1024;

async fn capped_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, String> {
    let body = crate::http_body::read_capped(response, MAX_TOKEN_BODY)
        .await
        .map_err(|err| err.to_string())?;
    serde_json::from_slice(&body).map_err(|err| err.to_string())
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A reqwest error without its URL's query (which could carry a secret).
pub(crate) fn describe_network_error(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_decode() {
        "unreadable response"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let at = err
        .url()
        .map(|url| format!(" at {}{}", url.origin().ascii_serialization(), url.path()))
        .unwrap_or_default();
    if cause.is_empty() {
        format!("{kind}{at}")
    } else {
        format!("{kind}{at}: {cause}")
    }
}
