//! What an upstream's OAuth client is: credentials, scopes and endpoints.
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// The default margin before expiry at which a token is fetched anew.
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// A secret string: compared and hashed, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// How the client proves who it is at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with id and secret.
    SecretBasic(Secret),
    /// `client_secret_post`: id and secret in the form body.
    SecretPost(Secret),
    /// `private_key_jwt` (RFC 7523): a signed assertion.
    PrivateKeyJwt {
        /// The PEM private key (PKCS#8, or PKCS#1/SEC1 for RSA/EC).
        key_pem: Secret,
        /// JWS algorithm, e.g. `ES256` or `RS256`.
        algorithm: String,
    },
}

/// OAuth 2.x client-credentials settings of one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSpec {
    /// The client's id at the authorization server.
    pub client_id: String,
    /// How the client authenticates.
    pub auth: ClientAuth,
    /// Scopes to request; a token granted fewer is refused.
    pub scopes: Vec<String>,
    /// `audience` parameter (for servers that want one).
    pub audience: Option<String>,
    /// RFC 8707 resource indicator; defaults to the upstream URL.
    pub resource: Option<String>,
    /// The token endpoint; discovered from the upstream when unset.
    pub token_url: Option<String>,
    /// The RFC 7009 revocation endpoint; discovered when unset.
    pub revocation_url: Option<String>,
    /// How long before expiry a token is fetched anew.
    pub refresh_before: Duration,
    /// RFC 8705 mutual TLS: client certificate and key (PEM files).
    pub client_cert: Option<ClientCert>,
}

/// A client certificate for mutual TLS at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// PEM certificate (chain).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl OAuthSpec {
    /// Client-secret credentials sent with HTTP Basic, everything else default.
    pub fn basic(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            auth: ClientAuth::SecretBasic(Secret::new(secret)),
            scopes: Vec::new(),
            audience: None,
            resource: None,
            token_url: None,
            revocation_url: None,
            refresh_before: DEFAULT_REFRESH_BEFORE,
            client_cert: None,
        }
    }

    /// Values to mask wherever text reaches an operator.
    pub fn secrets(&self) -> Vec<&str> {
        match &self.auth {
            ClientAuth::SecretBasic(secret) | ClientAuth::SecretPost(secret) => {
                vec![secret.expose()]
            }
            ClientAuth::PrivateKeyJwt { key_pem, .. } => vec![key_pem.expose()],
        }
    }

    /// A digest of everything that decides which token the server issues,
    /// so two configurations never share a cached token.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        let mut field = |value: &str| {
            hash.update((value.len() as u64).to_le_bytes());
            hash.update(value.as_bytes());
        };
        field(&self.client_id);
        match &self.auth {
            ClientAuth::SecretBasic(secret) => {
                field("basic");
                field(secret.expose());
            }
            ClientAuth::SecretPost(secret) => {
                field("post");
                field(secret.expose());
            }
            ClientAuth::PrivateKeyJwt { key_pem, algorithm } => {
                field("jwt");
                field(key_pem.expose());
                field(algorithm);
            }
        }
        for scope in &self.scopes {
            field(scope);
        }
        for value in [&self.audience, &self.resource, &self.token_url] {
            field(value.as_deref().unwrap_or(""));
        }
        hash.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let spec = OAuthSpec::basic("client", "s3cr3t-value");
        let shown = format!("{spec:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("client"), "{shown}");
    }

    #[test]
    fn fingerprint_changes_with_credentials_and_scopes() {
        let a = OAuthSpec::basic("client", "one");
        let b = OAuthSpec::basic("client", "two");
        let mut c = a.clone();
        c.scopes.push("read".into());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }
}
