//! `[upstreams.NAME.oauth]`: OAuth client credentials for one upstream, and
//! their conversion to the token actor's [`OAuthSpec`].
use std::path::PathBuf;
use std::time::Duration;

use bulwark_actors::oauth::{ClientAuth, ClientCert, DEFAULT_REFRESH_BEFORE, OAuthSpec, Secret};
use serde::Deserialize;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with client id and secret (the OAuth default).
    #[default]
    ClientSecretBasic,
    /// Client id and secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523).
    PrivateKeyJwt,
}

/// OAuth settings of one upstream; string values may be `${VAR}` references.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The client id.
    pub client_id: String,
    /// The client secret (`client_secret_basic` / `client_secret_post`).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Client authentication method.
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// PEM private key for `private_key_jwt` (or use `private_key_file`).
    #[serde(default)]
    pub private_key: Option<String>,
    /// File holding the PEM private key for `private_key_jwt`.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// JWS algorithm of the assertion.
    #[serde(default = "default_algorithm")]
    pub signing_algorithm: String,
    /// Scopes to request; a token without them is refused.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `audience` parameter of the token request.
    #[serde(default)]
    pub audience: Option<String>,
    /// RFC 8707 resource indicator; defaults to the upstream URL.
    #[serde(default)]
    pub resource: Option<String>,
    /// Token endpoint; discovered from the upstream when unset.
    #[serde(default)]
    pub token_url: Option<String>,
    /// RFC 7009 revocation endpoint; discovered when unset.
    #[serde(default)]
    pub revocation_url: Option<String>,
    /// Seconds before expiry at which a token is fetched anew.
    #[serde(default = "default_refresh_before")]
    pub refresh_before_secs: u64,
    /// Client certificate (PEM file) for mutual TLS (RFC 8705).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM file).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

fn default_algorithm() -> String {
    "RS256".into()
}

fn default_refresh_before() -> u64 {
    DEFAULT_REFRESH_BEFORE.as_secs()
}

impl OAuthConfig {
    /// The token actor's spec; `expand` resolves `${VAR}` in a named field.
    /// Errors name the field.
    pub fn to_spec(
        &self,
        expand: &dyn Fn(&str, &str) -> Result<String, String>,
    ) -> Result<OAuthSpec, String> {
        let secret = || -> Result<Secret, String> {
            let value = self
                .client_secret
                .as_deref()
                .ok_or("oauth.client_secret is required for this auth_method")?;
            Ok(Secret::new(expand("oauth.client_secret", value)?))
        };
        let auth = match self.auth_method {
            AuthMethod::ClientSecretBasic => ClientAuth::SecretBasic(secret()?),
            AuthMethod::ClientSecretPost => ClientAuth::SecretPost(secret()?),
            AuthMethod::PrivateKeyJwt => {
                let pem = match (&self.private_key, &self.private_key_file) {
                    (Some(pem), None) => expand("oauth.private_key", pem)?,
                    (None, Some(file)) => std::fs::read_to_string(file).map_err(|err| {
                        format!("oauth.private_key_file {}: {err}", file.display())
                    })?,
                    _ => {
                        return Err(
                            "private_key_jwt needs exactly one of oauth.private_key and oauth.private_key_file"
                                .into(),
                        );
                    }
                };
                ClientAuth::PrivateKeyJwt {
                    key_pem: Secret::new(pem),
                    algorithm: self.signing_algorithm.clone(),
                }
            }
        };
        let client_cert = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(ClientCert {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            _ => return Err("oauth.client_cert and oauth.client_key go together".into()),
        };
        let optional = |field: &str, value: &Option<String>| -> Result<Option<String>, String> {
            value.as_deref().map(|v| expand(field, v)).transpose()
        };
        Ok(OAuthSpec {
            client_id: expand("oauth.client_id", &self.client_id)?,
            auth,
            scopes: self.scopes.clone(),
            audience: optional("oauth.audience", &self.audience)?,
            resource: optional("oauth.resource", &self.resource)?,
            token_url: optional("oauth.token_url", &self.token_url)?,
            revocation_url: optional("oauth.revocation_url", &self.revocation_url)?,
            refresh_before: Duration::from_secs(self.refresh_before_secs),
            client_cert,
        })
    }
}
