//! `bulwark key …`: create, revoke and list API keys in the keys file.
use super::bootstrap::{self, BootstrapError};
use super::keys::NewKey;
use super::store::{KeysFile, StoreError};
use crate::config::Config;
use crate::config::auth::{ADMIN_PROJECT, KeyEntry};

/// Why a key command failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The project is not in `[auth.projects]`.
    #[error("project '{0}' is not configured: add [auth.projects.{0}] to the config first")]
    UnknownProject(String),
    /// No key by that id.
    #[error("no key with id '{0}' in the keys file")]
    UnknownKey(String),
    /// The key is declared in the config, which the CLI does not rewrite.
    #[error("key '{0}' is declared in the config file: set `revoked = true` on it there")]
    InConfig(String),
    /// The keys file could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key could not be generated or stored.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
}

/// Creates a key for `user` in `project`; the caller prints it once.
pub fn create(config: &Config, project: &str, user: &str) -> Result<NewKey, ManageError> {
    if project != ADMIN_PROJECT && !config.auth.projects.contains_key(project) {
        return Err(ManageError::UnknownProject(project.to_owned()));
    }
    Ok(bootstrap::add_key(
        &super::keys_file(config),
        user,
        project,
    )?)
}

/// Marks key `id` revoked; the running gateway notices within a second.
pub fn revoke(config: &Config, id: &str) -> Result<(), ManageError> {
    let path = super::keys_file(config);
    let mut file = KeysFile::load(&path)?;
    let Some(entry) = file.keys.iter_mut().find(|k| k.id == id) else {
        if config.auth.keys.iter().any(|k| k.id == id) {
            return Err(ManageError::InConfig(id.to_owned()));
        }
        return Err(ManageError::UnknownKey(id.to_owned()));
    };
    entry.revoked = true;
    file.save(&path)?;
    Ok(())
}

/// Every key (config first, then the keys file), without hashes.
pub fn list(config: &Config) -> Result<Vec<KeyEntry>, ManageError> {
    let mut keys = config.auth.keys.clone();
    keys.extend(KeysFile::load(&super::keys_file(config))?.keys);
    for key in &mut keys {
        key.hash.clear();
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_revoke_list_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut config: Config =
            toml::from_str("[auth.projects.demo]\nupstreams = [\"echo\"]\n").unwrap();
        config.server.data_dir = Some(dir.path().to_owned());
        assert!(matches!(
            create(&config, "nope", "alice"),
            Err(ManageError::UnknownProject(_))
        ));
        let key = create(&config, "demo", "alice").unwrap();
        let listed = list(&config).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, key.id);
        assert!(listed[0].hash.is_empty());
        revoke(&config, &key.id).unwrap();
        let file = KeysFile::load(&dir.path().join("keys.toml")).unwrap();
        assert!(file.keys[0].revoked);
        assert!(matches!(
            revoke(&config, "k_none"),
            Err(ManageError::UnknownKey(_))
        ));
    }
}
