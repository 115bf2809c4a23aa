//! API keys: `bk_` + 32 random bytes (base64url), stored only as a SHA-256
//! hash. A fast hash is right here: the key is high-entropy, so there is no
//! dictionary to slow down, and every request pays for the check.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every key starts with this, so scanners and humans recognise it.
pub const KEY_PREFIX: &str = "bk_";
const KEY_BYTES: usize = 32;
const ID_BYTES: usize = 6;
const HASH_SCHEME: &str = "sha256:";

/// Why a key could not be made or a hash not read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The OS random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// A stored hash is not `sha256:` + 64 hex digits.
    #[error("key '{id}': hash must be 'sha256:' followed by 64 hex digits")]
    BadHash {
        /// The key whose hash is malformed.
        id: String,
    },
}

/// A SHA-256 digest of a key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHash(…)")
    }
}

impl KeyHash {
    /// The hash of a presented key.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// Reads `sha256:HEX` as stored in the config or keys file.
    pub fn parse(stored: &str, id: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadHash { id: id.to_owned() };
        let hex = stored.strip_prefix(HASH_SCHEME).ok_or_else(bad)?;
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }

    /// `sha256:HEX`, the stored form.
    pub fn to_stored(&self) -> String {
        let mut out = String::with_capacity(HASH_SCHEME.len() + 64);
        out.push_str(HASH_SCHEME);
        for byte in self.0 {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    /// Constant-time equality: the lookup already matched on the digest;
    /// this re-check keeps the final comparison free of timing signal.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// A newly generated key: the secret (shown once) and what is stored.
pub struct NewKey {
    /// The key itself; print once, never store or log.
    pub secret: String,
    /// Its public id.
    pub id: String,
    /// Its hash.
    pub hash: KeyHash,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Generates a fresh key from the OS random source.
pub fn generate() -> Result<NewKey, KeyError> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes).map_err(|err| KeyError::Random(err.to_string()))?;
    let mut id_bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut id_bytes).map_err(|err| KeyError::Random(err.to_string()))?;
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let id = format!("k_{}", URL_SAFE_NO_PAD.encode(id_bytes));
    let hash = KeyHash::of(&secret);
    Ok(NewKey { secret, id, hash })
}

/// True when `token` has the shape of one of our keys (not a JWT).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_prefixed_long_and_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.secret.starts_with("bk_"));
        assert_eq!(a.secret.len(), 3 + 43);
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.id, b.id);
        assert!(!a.id.contains(&a.secret[3..10]));
        assert_eq!(KeyHash::of(&a.secret), a.hash);
    }

    #[test]
    fn hashes_round_trip_through_the_stored_form() {
        let key = generate().unwrap();
        let stored = key.hash.to_stored();
        assert!(
            stored.starts_with("sha256:") && stored.len() == 71,
            "{stored}"
        );
        assert!(!stored.contains(&key.secret));
        let parsed = KeyHash::parse(&stored, &key.id).unwrap();
        assert!(parsed.matches(&key.hash));
        assert!(!parsed.matches(&KeyHash::of("bk_other")));
    }

    #[test]
    fn malformed_hashes_are_rejected_naming_the_key() {
        for bad in ["md5:00", "sha256:zz", &format!("sha256:{}", "g".repeat(64))] {
            let err = KeyHash::parse(bad, "k9").unwrap_err().to_string();
            assert!(err.contains("k9"), "{err}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = generate().unwrap();
        let shown = format!("{key:?} {:?}", key.hash);
        assert!(!shown.contains(&key.secret), "{shown}");
    }
}
