//! The store-backed [`CredentialStore`]: keys and projects from the config
//! file plus the management store, as one immutable index swapped whole.
//! The request path reads it without a lock or a query; every API write
//! swaps in a fresh index before it answers, so a revocation holds on the
//! very next request. Writes made elsewhere (another replica on the same
//! PostgreSQL, the CLI) arrive through [`super::follow`]: the store's
//! change feed on PostgreSQL, a poll each second on SQLite.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::auth::grants::Grant;
use crate::auth::keys::KeyHash;
use crate::auth::store::{CredentialStore, KeyRecord};
use crate::config::auth::{ADMIN_PROJECT, AuthConfig, KeyEntry, ProjectConfig};
use crate::store::named::PROJECTS;
use crate::store::{Store, StoreError, keys, users};

/// How often writes made outside this process are picked up (SQLite).
const POLL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Index {
    keys: HashMap<KeyHash, KeyRecord>,
    grants: HashMap<String, Arc<Grant>>,
    any_key: bool,
}

/// Keys and grants from the config file and the store.
pub struct LiveCredentials {
    index: ArcSwap<Index>,
    file: ArcSwap<AuthConfig>,
    /// Digest of what the index was built from: an unchanged one skips the
    /// rebuild, and the generation moves only when it changes, so the poll
    /// does not flush verified credentials.
    /// Held through a whole reload: reloads run one after another, so one
    /// that read the store earlier cannot store its index over a later one.
    digest: tokio::sync::Mutex<[u8; 32]>,
    /// See [`CredentialStore::generation`].
    generation: AtomicU64,
}

impl LiveCredentials {
    /// An index of `file`'s keys and projects plus the store's.
    pub async fn load(file: &AuthConfig, store: &Store) -> Result<Arc<Self>, StoreError> {
        let credentials = Arc::new(Self {
            index: ArcSwap::default(),
            file: ArcSwap::from_pointee(file.clone()),
            digest: tokio::sync::Mutex::new([0; 32]),
            generation: AtomicU64::new(0),
        });
        credentials.reload(store).await?;
        Ok(credentials)
    }

    /// Replaces the file part (after a config reload) and rebuilds.
    pub async fn set_file(&self, file: &AuthConfig, store: &Store) -> Result<(), StoreError> {
        self.file.store(Arc::new(file.clone()));
        self.reload(store).await
    }

    /// The config file's `[auth]`.
    pub fn file(&self) -> Arc<AuthConfig> {
        self.file.load_full()
    }

    /// Rebuilds the index from the file and the store; nothing to do when
    /// they read the same as for the current index.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let mut last = self.digest.lock().await;
        let file = self.file.load_full();
        let stored_keys = keys::all(store).await?;
        let stored_projects = PROJECTS.all(store).await?;
        // A disabled management user's keys are refused everywhere, as revoked.
        let disabled: Vec<String> = users::all(store)
            .await?
            .into_iter()
            .filter(|user| user.status != "active")
            .map(|user| user.name)
            .collect();
        let digest = source_digest(&file, &stored_keys, &stored_projects, &disabled);
        if *last == digest {
            // Same sources, same index: the poll costs three reads, no rebuild.
            return Ok(());
        }
        let mut projects: BTreeMap<String, ProjectConfig> = BTreeMap::new();
        for record in stored_projects.into_iter().filter(|r| r.enabled) {
            match serde_json::from_value(record.definition) {
                Ok(project) => {
                    projects.insert(record.name, project);
                }
                Err(err) => {
                    tracing::error!(project = %record.name, %err, "stored project is unreadable; its keys are refused");
                }
            }
        }
        // The file wins over a stored project of the same name.
        projects.extend(file.projects.clone());
        let mut grants: HashMap<String, Arc<Grant>> = projects
            .iter()
            .map(|(name, project)| (name.clone(), Arc::new(Grant::from_config(project))))
            .collect();
        grants.insert(ADMIN_PROJECT.to_owned(), Arc::new(Grant::all()));
        let mut index = Index {
            keys: HashMap::new(),
            grants,
            any_key: false,
        };
        for entry in file.keys.iter().chain(&stored_keys) {
            if disabled.contains(&entry.user) && !entry.revoked {
                index_key(
                    &mut index,
                    &KeyEntry {
                        revoked: true,
                        ..entry.clone()
                    },
                );
            } else {
                index_key(&mut index, entry);
            }
        }
        self.index.store(Arc::new(index));
        *last = digest;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Reloads every [`POLL`] until `shutdown`.
    pub fn spawn_poll(self: &Arc<Self>, store: Store, shutdown: CancellationToken) {
        let credentials = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {
                        let Some(credentials) = credentials.upgrade() else { return };
                        if let Err(err) = credentials.reload(&store).await {
                            tracing::warn!(%err, "credentials not refreshed from the store");
                        }
                    }
                }
            }
        });
    }
}

fn index_key(index: &mut Index, entry: &KeyEntry) {
    index.any_key = true;
    match KeyHash::parse(&entry.hash, &entry.id) {
        Ok(hash) => {
            index.keys.insert(hash, entry.into());
        }
        Err(err) => tracing::error!(key = %entry.id, %err, "stored key is malformed; ignored"),
    }
}

impl CredentialStore for LiveCredentials {
    fn resolve(&self, hash: &KeyHash) -> Option<KeyRecord> {
        self.index
            .load()
            .keys
            .get_key_value(hash)
            .filter(|(stored, _)| stored.matches(hash))
            .map(|(_, record)| record.clone())
    }

    fn grant(&self, project: &str) -> Option<Arc<Grant>> {
        self.index.load().grants.get(project).cloned()
    }

    fn has_keys(&self) -> bool {
        self.index.load().any_key
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// SHA-256 of everything an index is built from.
fn source_digest(
    file: &AuthConfig,
    stored_keys: &[KeyEntry],
    stored_projects: &[crate::store::named::Record],
    disabled_users: &[String],
) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [
        serde_json::to_vec(&file.keys),
        serde_json::to_vec(&file.projects),
        serde_json::to_vec(stored_keys),
        serde_json::to_vec(disabled_users),
    ] {
        hasher.update(part.unwrap_or_default());
        hasher.update([0]);
    }
    for record in stored_projects {
        hasher.update(record.name.as_bytes());
        hasher.update([u8::from(record.enabled)]);
        hasher.update(record.definition.to_string().as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum KeyCreateError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No random bytes.
    #[error(transparent)]
    Key(#[from] crate::auth::keys::KeyError),
}

/// Creates a key for `user` in `project` in the store (its hash only); the
/// caller shows the key once. The one place keys are made.
pub async fn create_key(
    store: &Store,
    user: &str,
    project: &str,
) -> Result<(crate::auth::keys::NewKey, KeyEntry), KeyCreateError> {
    let key = crate::auth::keys::generate()?;
    let entry = KeyEntry {
        id: key.id.clone(),
        hash: key.hash.to_stored(),
        user: user.to_owned(),
        project: project.to_owned(),
        revoked: false,
        created_at: u64::try_from(crate::store::now_ms() / 1000).ok(),
    };
    keys::insert(store, &entry).await?;
    Ok((key, entry))
}

/// First start with authentication on and no credential anywhere: creates
/// the admin key (in the store) for the caller to print once.
pub async fn bootstrap_admin(
    config: &crate::config::Config,
    store: &Store,
    credentials: &LiveCredentials,
) -> Result<Option<crate::auth::keys::NewKey>, KeyCreateError> {
    let auth = &config.auth;
    if !auth.enabled || auth.jwt.is_some() {
        return Ok(None);
    }
    // Read again: another replica on a shared store may have made one
    // since this start loaded the credentials (two starting at the same
    // moment may still both make one; each shows its own).
    credentials.reload(store).await?;
    if credentials.has_keys() {
        return Ok(None);
    }
    let (key, _) = create_key(store, "admin", ADMIN_PROJECT).await?;
    if let Err(err) = credentials.reload(store).await {
        forget_unshown_admin_key(store, &key.id).await;
        return Err(err.into());
    }
    tracing::info!(id = %key.id, "created the admin API key");
    Ok(Some(key))
}

/// Removes the bootstrap admin key `id` of a start that failed before
/// showing it: kept, it would stop the next start from making one, and
/// nobody would hold it.
pub async fn forget_unshown_admin_key(store: &Store, id: &str) {
    match keys::delete(store, id).await {
        Ok(_) => {
            tracing::info!(
                id,
                "removed the admin API key made by this failed start; the next start makes a new one"
            );
        }
        Err(err) => {
            tracing::error!(id, %err, "the admin API key made by this failed start could not be removed: create one with `bulwark key create` against the store");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unchanged_store_is_not_rebuilt_and_a_change_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Default::default(), dir.path()).await.unwrap();
        let credentials = LiveCredentials::load(&AuthConfig::default(), &store)
            .await
            .unwrap();
        let (index, generation) = (credentials.index.load_full(), credentials.generation());
        credentials.reload(&store).await.unwrap();
        assert!(Arc::ptr_eq(&index, &credentials.index.load_full()));
        assert_eq!(credentials.generation(), generation);

        let (key, _) = create_key(&store, "alice", ADMIN_PROJECT).await.unwrap();
        credentials.reload(&store).await.unwrap();
        assert!(credentials.generation() > generation);
        assert!(credentials.resolve(&key.hash).is_some());
    }
}
