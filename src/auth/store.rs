//! Where credentials live. [`CredentialStore`] is the seam: today the
//! [`FileStore`] reads keys from `[auth]` in the config plus the keys file;
//! the management store replaces it later without touching the request path.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use serde::{Deserialize, Serialize};

use super::grants::Grant;
use super::keys::{KeyError, KeyHash};
use crate::config::auth::{ADMIN_PROJECT, AuthConfig, KeyEntry};

/// How often the keys file is checked for changes (revocations, new keys).
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// A stored key, without its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Public key id.
    pub id: String,
    /// The key's user.
    pub user: String,
    /// The key's project.
    pub project: String,
    /// Revoked keys are refused.
    pub revoked: bool,
}

impl From<&KeyEntry> for KeyRecord {
    fn from(entry: &KeyEntry) -> Self {
        Self {
            id: entry.id.clone(),
            user: entry.user.clone(),
            project: entry.project.clone(),
            revoked: entry.revoked,
        }
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The keys file could not be read or written.
    #[error("keys file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A stored key is malformed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Resolves credentials to who they belong to and what they may use.
pub trait CredentialStore: Send + Sync {
    /// The key with this hash, if any (revoked keys included, flagged).
    fn resolve(&self, hash: &KeyHash) -> Option<KeyRecord>;
    /// The grant of `project`; `None` for an unknown project.
    fn grant(&self, project: &str) -> Option<Arc<Grant>>;
    /// True when at least one key exists (revoked or not).
    fn has_keys(&self) -> bool;
    /// Changes whenever keys or grants may have changed: identities cached
    /// under an older generation are resolved again, so a revocation or a
    /// grant change holds on the very next request.
    fn generation(&self) -> u64;
}

/// The keys file: `[[keys]]` entries, hashes only.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// Stored keys.
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
}

const KEYS_FILE_HEADER: &str = "# Bulwark API keys, managed by `bulwark key`.\n\
# Only SHA-256 hashes are stored; a key is shown once, when it is created.\n\n";

impl KeysFile {
    /// Reads `path`; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(err) => return Err(file_error(path, err)),
        };
        toml::from_str(&text).map_err(|err| file_error(path, err))
    }

    /// Writes `path` atomically (temp file + rename), readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|err| file_error(path, err))?;
        }
        let text = toml::to_string(self).map_err(|err| file_error(path, err))?;
        let tmp = path.with_extension("toml.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|err| file_error(&tmp, err))?;
        file.write_all(KEYS_FILE_HEADER.as_bytes())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|err| file_error(&tmp, err))?;
        std::fs::rename(&tmp, path).map_err(|err| file_error(path, err))
    }
}

fn file_error(path: &Path, err: impl std::fmt::Display) -> StoreError {
    StoreError::File {
        path: path.display().to_string(),
        message: err.to_string(),
    }
}

type KeyIndex = HashMap<KeyHash, KeyRecord>;

fn index(entries: &[KeyEntry]) -> Result<KeyIndex, KeyError> {
    entries
        .iter()
        .map(|entry| Ok((KeyHash::parse(&entry.hash, &entry.id)?, entry.into())))
        .collect()
}

/// Keys from the config and the keys file; projects from the config.
pub struct FileStore {
    config_keys: KeyIndex,
    file: Arc<KeysFileWatch>,
    /// When the keys file is next checked, in ms since `epoch`: one atomic
    /// load per request until then, and the one request that claims the
    /// check hands it to a blocking thread.
    next_check_ms: AtomicU64,
    epoch: Instant,
    grants: HashMap<String, Arc<Grant>>,
}

/// The keys file and its latest good contents, read without a lock.
struct KeysFileWatch {
    path: PathBuf,
    keys: ArcSwap<FileKeys>,
    /// Bumped on every reload (see [`CredentialStore::generation`]).
    generation: AtomicU64,
}

#[derive(Default)]
struct FileKeys {
    modified: Option<SystemTime>,
    keys: KeyIndex,
}

impl KeysFileWatch {
    /// Reloads the file when its mtime changed. A file that became
    /// unreadable keeps the last good keys (and says so).
    fn reload_if_changed(&self) {
        if modified(&self.path) == self.keys.load().modified {
            return;
        }
        match load_file_keys(&self.path) {
            Ok(keys) => {
                self.keys.store(Arc::new(keys));
                self.generation.fetch_add(1, Ordering::Release);
                tracing::info!(path = %self.path.display(), "keys file reloaded");
            }
            Err(err) => tracing::error!(%err, "keys file not reloaded; keeping the previous keys"),
        }
    }
}

impl FileStore {
    /// Reads `[auth]` and the keys file at `keys_file`.
    pub fn open(config: &AuthConfig, keys_file: PathBuf) -> Result<Self, StoreError> {
        let mut grants: HashMap<String, Arc<Grant>> = config
            .projects
            .iter()
            .map(|(name, project)| (name.clone(), Arc::new(Grant::from_config(project))))
            .collect();
        grants
            .entry(ADMIN_PROJECT.to_owned())
            .or_insert_with(|| Arc::new(Grant::all()));
        let epoch = Instant::now();
        let store = Self {
            config_keys: index(&config.keys)?,
            file: Arc::new(KeysFileWatch {
                keys: ArcSwap::from_pointee(load_file_keys(&keys_file)?),
                path: keys_file,
                generation: AtomicU64::new(0),
            }),
            next_check_ms: AtomicU64::new(millis(RELOAD_CHECK)),
            epoch,
            grants,
        };
        Ok(store)
    }

    /// Picks up a changed keys file, at most once per [`RELOAD_CHECK`]: the
    /// request that finds the check due hands it to a blocking thread (or
    /// runs it itself outside a runtime) and goes on with the current keys.
    fn refresh(&self) {
        let now = millis(self.epoch.elapsed());
        let due = self.next_check_ms.load(Ordering::Relaxed);
        if now < due
            || self
                .next_check_ms
                .compare_exchange(
                    due,
                    now + millis(RELOAD_CHECK),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let file = self.file.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || file.reload_if_changed())),
            Err(_) => file.reload_if_changed(),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_file_keys(path: &Path) -> Result<FileKeys, StoreError> {
    let modified = modified(path);
    let keys = index(&KeysFile::load(path)?.keys)?;
    Ok(FileKeys { modified, keys })
}

impl CredentialStore for FileStore {
    fn resolve(&self, hash: &KeyHash) -> Option<KeyRecord> {
        self.refresh();
        let found = |index: &KeyIndex| {
            index
                .get_key_value(hash)
                .filter(|(stored, _)| stored.matches(hash))
                .map(|(_, record)| record.clone())
        };
        found(&self.config_keys).or_else(|| found(&self.file.keys.load().keys))
    }

    fn grant(&self, project: &str) -> Option<Arc<Grant>> {
        self.grants.get(project).cloned()
    }

    fn has_keys(&self) -> bool {
        self.refresh();
        !self.config_keys.is_empty() || !self.file.keys.load().keys.is_empty()
    }

    fn generation(&self) -> u64 {
        self.file.generation.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys;
    use crate::config::auth::ProjectConfig;

    fn entry(id: &str, key: &keys::NewKey, project: &str, revoked: bool) -> KeyEntry {
        KeyEntry {
            id: id.into(),
            hash: key.hash.to_stored(),
            user: "alice".into(),
            project: project.into(),
            revoked,
            created_at: None,
        }
    }

    #[test]
    fn resolves_keys_from_config_and_file_and_sees_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let in_config = keys::generate().unwrap();
        let in_file = keys::generate().unwrap();
        let mut config = AuthConfig::default();
        config.keys.push(entry("c1", &in_config, "demo", false));
        config
            .projects
            .insert("demo".into(), ProjectConfig::default());
        KeysFile {
            keys: vec![entry("f1", &in_file, "demo", false)],
        }
        .save(&path)
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&in_file.secret));

        let store = FileStore::open(&config, path.clone()).unwrap();
        assert_eq!(store.resolve(&in_config.hash).unwrap().id, "c1");
        assert!(!store.resolve(&in_file.hash).unwrap().revoked);
        assert!(store.resolve(&KeyHash::of("bk_unknown")).is_none());
        assert!(store.grant("demo").is_some());
        assert!(store.grant(ADMIN_PROJECT).unwrap().allows_server("any"));
        assert!(store.grant("nope").is_none());

        KeysFile {
            keys: vec![entry("f1", &in_file, "demo", true)],
        }
        .save(&path)
        .unwrap();
        // Force the next lookup to look at the file again.
        store.next_check_ms.store(0, Ordering::Relaxed);
        // mtime granularity may hide a same-second rewrite: make it visibly newer.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(store.resolve(&in_file.hash).unwrap().revoked);
    }

    #[test]
    fn a_missing_keys_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(&AuthConfig::default(), dir.path().join("none.toml")).unwrap();
        assert!(!store.has_keys());
    }
}
