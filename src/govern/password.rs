//! argon2id password hashes (PHC strings). Hashing and checking are slow on
//! purpose, so they run on the blocking pool, off the async workers.
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 12;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error("the password must be at least {MIN_LENGTH} characters")]
    TooShort,
    /// The hasher failed (no randomness for the salt, …).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The argon2id PHC string of `password`.
pub async fn hash(password: String) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| PasswordError::Hash(err.to_string()))
    })
    .await
    .map_err(|err| PasswordError::Hash(err.to_string()))?
}

/// True when `password` matches `phc`. With `phc = None` (no such user) a
/// check still runs against a fixed hash, so the answer takes as long.
pub async fn verify(password: String, phc: Option<String>) -> bool {
    let known = phc.is_some();
    let checked = tokio::task::spawn_blocking(move || {
        let phc = phc.unwrap_or_else(|| DUMMY.to_owned());
        PasswordHash::new(&phc).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    known && checked
}

/// argon2id of a random string nobody knows (for unknown users).
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_check_only_the_right_password() {
        let phc = hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify("correct horse battery".into(), Some(phc.clone())).await);
        assert!(!verify("wrong horse battery!".into(), Some(phc)).await);
        assert!(!verify("anything at all here".into(), None).await);
        assert!(matches!(
            hash("short".into()).await,
            Err(PasswordError::TooShort)
        ));
    }
}
