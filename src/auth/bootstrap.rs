//! Secure by default: a first start with authentication on and no
//! credentials anywhere creates an admin key, stores only its hash and hands
//! the key back to be printed once.
use std::path::Path;

use super::keys::{self, NewKey};
use super::store::{KeysFile, StoreError};
use crate::config::Config;
use crate::config::auth::{ADMIN_PROJECT, KeyEntry};

/// Why the admin key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Reading or writing the keys file failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness for the key.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
}

/// Creates the admin key when `config` has auth on and no credentials
/// (no config keys, no keys in the keys file, no JWT). `None` otherwise.
pub fn admin_key_if_needed(config: &Config) -> Result<Option<NewKey>, BootstrapError> {
    let auth = &config.auth;
    if !auth.enabled || auth.jwt.is_some() || !auth.keys.is_empty() {
        return Ok(None);
    }
    let path = super::keys_file(config);
    if !KeysFile::load(&path)?.keys.is_empty() {
        return Ok(None);
    }
    let key = add_key(&path, "admin", ADMIN_PROJECT)?;
    tracing::info!(id = %key.id, path = %path.display(), "created the admin API key");
    Ok(Some(key))
}

/// Generates a key for `user` in `project` and appends its hash to `path`.
pub fn add_key(path: &Path, user: &str, project: &str) -> Result<NewKey, BootstrapError> {
    let mut file = KeysFile::load(path)?;
    let key = keys::generate()?;
    file.keys.push(KeyEntry {
        id: key.id.clone(),
        hash: key.hash.to_stored(),
        user: user.to_owned(),
        project: project.to_owned(),
        revoked: false,
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs()),
    });
    file.save(path)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut config: Config = toml::from_str("").unwrap();
        config.server.data_dir = Some(dir.to_owned());
        config
    }

    #[test]
    fn first_start_creates_one_admin_key_stored_as_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let key = admin_key_if_needed(&config).unwrap().unwrap();
        let text = std::fs::read_to_string(dir.path().join("keys.toml")).unwrap();
        assert!(!text.contains(&key.secret), "{text}");
        assert!(text.contains(&key.hash.to_stored()));
        assert!(text.contains("project = \"admin\""));
        // The second start finds the key and creates nothing.
        assert!(admin_key_if_needed(&config).unwrap().is_none());
    }

    #[test]
    fn nothing_is_created_with_auth_off_or_a_jwt_source() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.auth.enabled = false;
        assert!(admin_key_if_needed(&config).unwrap().is_none());
        config.auth.enabled = true;
        config.auth.jwt = Some(Default::default());
        assert!(admin_key_if_needed(&config).unwrap().is_none());
        assert!(!dir.path().join("keys.toml").exists());
    }
}
