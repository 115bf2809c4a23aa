//! `bulwark key …` without a running gateway: create, revoke and list API
//! keys directly in the management store (for bootstrapping; a running
//! gateway picks the change up within a second).
use super::keys::NewKey;
use crate::config::Config;
use crate::config::auth::{ADMIN_PROJECT, KeyEntry};
use crate::control::credentials::{self, KeyCreateError};
use crate::store::{self, Store, StoreError};

/// Why a key command failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// The project is not configured anywhere.
    #[error(
        "project '{0}' is not configured: add [auth.projects.{0}] to the config or create it with `bulwark project add` first"
    )]
    UnknownProject(String),
    /// No key by that id.
    #[error("no key with id '{0}' in the store")]
    UnknownKey(String),
    /// The key is declared in the config, which the CLI does not rewrite.
    #[error("key '{0}' is declared in the config file: set `revoked = true` on it there")]
    InConfig(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key could not be generated or stored.
    #[error(transparent)]
    Create(#[from] KeyCreateError),
}

async fn open(config: &Config) -> Result<Store, ManageError> {
    let store = Store::open(&config.store, &config.server.data_dir()).await?;
    store::import::keys_file_once(&store, &super::keys_file(config)).await?;
    Ok(store)
}

/// Creates a key for `user` in `project`; the caller prints it once.
pub async fn create(config: &Config, project: &str, user: &str) -> Result<NewKey, ManageError> {
    let store = open(config).await?;
    let known = project == ADMIN_PROJECT
        || config.auth.projects.contains_key(project)
        || store::named::PROJECTS.get(&store, project).await?.is_some();
    if !known {
        return Err(ManageError::UnknownProject(project.to_owned()));
    }
    let (key, _) = credentials::create_key(&store, user, project).await?;
    store.close().await;
    Ok(key)
}

/// Marks key `id` revoked.
pub async fn revoke(config: &Config, id: &str) -> Result<(), ManageError> {
    if config.auth.keys.iter().any(|k| k.id == id) {
        return Err(ManageError::InConfig(id.to_owned()));
    }
    let store = open(config).await?;
    let found = store::keys::revoke(&store, id).await?;
    store.close().await;
    if found {
        Ok(())
    } else {
        Err(ManageError::UnknownKey(id.to_owned()))
    }
}

/// Every key (config first, then the store), without hashes.
pub async fn list(config: &Config) -> Result<Vec<KeyEntry>, ManageError> {
    let store = open(config).await?;
    let mut keys = config.auth.keys.clone();
    keys.extend(store::keys::all(&store).await?);
    store.close().await;
    for key in &mut keys {
        key.hash.clear();
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_revoke_list_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut config: Config =
            toml::from_str("[auth.projects.demo]\nupstreams = [\"echo\"]\n").unwrap();
        config.server.data_dir = Some(dir.path().to_owned());
        assert!(matches!(
            create(&config, "nope", "alice").await,
            Err(ManageError::UnknownProject(_))
        ));
        let key = create(&config, "demo", "alice").await.unwrap();
        let listed = list(&config).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, key.id);
        assert!(listed[0].hash.is_empty());
        revoke(&config, &key.id).await.unwrap();
        assert!(list(&config).await.unwrap()[0].revoked);
        assert!(matches!(
            revoke(&config, "k_none").await,
            Err(ManageError::UnknownKey(_))
        ));
    }
}
