//! The one place where stored definitions, which carry secrets (env values,
//! header values, OAuth client secrets and keys), are written and read.
//!
//! Secrets at rest: each secret value is sealed with AES-256-GCM (aws-lc-rs)
//! under the master key, as `bulwark:sealed:v1:KEYID:BASE64(nonce|ct|tag)`,
//! so the database file or a backup alone never shows one. The rest of a
//! definition stays readable JSON. The master key comes from
//! `BULWARK_MASTER_KEY` or `DATA_DIR/master.key` (created on first start,
//! mode 0600); the store remembers the key's id so a wrong key is refused at
//! start instead of surfacing as unreadable records. Clear-text secrets
//! written by earlier versions are sealed on start, and
//! [`rotate`] re-seals every secret under a new key in one transaction.
//!
//! Also how secrets are masked in every API answer, and how a masked value
//! sent back in an update keeps the stored secret.
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use zeroize::Zeroizing;

use super::{Store, StoreError};

/// What a masked secret reads as.
pub const MASK: &str = "****";
/// The environment variable holding the master key (32 bytes, base64 or hex).
pub const KEY_ENV: &str = "BULWARK_MASTER_KEY";
/// The key file's name under the data directory.
pub const KEY_FILE: &str = "master.key";
/// Where a rotation puts the new key until the store has switched to it.
const NEW_KEY_FILE: &str = "master.key.new";
/// The `store_meta` row naming the key the store's secrets are sealed under.
const KEY_ID_META: &str = "master_key_id";
/// Tables whose `definition` column holds sealed secrets.
const SEALED_TABLES: &[&str] = &["upstreams", "projects"];
const SEALED_PREFIX: &str = "bulwark:sealed:v1:";
const AAD: &[u8] = b"bulwark secret v1";
const KEY_LEN: usize = 32;

/// Why a secret could not be sealed or opened, or the key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// `BULWARK_MASTER_KEY` is not a key.
    #[error("{KEY_ENV} must be 32 bytes in base64 (44 characters) or hex (64 characters)")]
    BadEnvKey,
    /// The key file is unreadable, malformed or cannot be written.
    #[error("master key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A secret (or the whole store) is sealed under another key.
    #[error(
        "secrets are sealed under master key {found}, but the master key in use is {expected}: \
         set {KEY_ENV} or DATA_DIR/{KEY_FILE} to the key the store was written with"
    )]
    WrongKey {
        /// The id the sealed data names.
        found: String,
        /// The id of the key in use.
        expected: String,
    },
    /// A sealed value was altered or truncated.
    #[error("a sealed secret is damaged (altered or truncated)")]
    Damaged,
    /// The OS random source failed.
    #[error("no randomness available for sealing")]
    Random,
    /// The stored text is not a JSON definition.
    #[error("not a JSON definition: {0}")]
    Json(#[from] serde_json::Error),
}

/// Where the master key came from (a rotation writes the new one back there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `BULWARK_MASTER_KEY`.
    Env,
    /// A key file.
    File(PathBuf),
    /// Given in code (tests, a rotation's new key).
    Given,
}

/// The master key: an AEAD key and its public id. Never printed or logged.
pub struct MasterKey {
    key: LessSafeKey,
    id: String,
    source: KeySource,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; KEY_LEN], source: KeySource) -> Self {
        let digest = Sha256::new()
            .chain_update(b"bulwark master key id\0")
            .chain_update(bytes)
            .finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        // 32 bytes is AES-256's key length, so this cannot fail.
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map(LessSafeKey::new)
            .unwrap_or_else(|_| unreachable!("AES-256 takes 32-byte keys"));
        Self { key, id, source }
    }

    /// A fresh random key and its bytes (to be written somewhere safe).
    pub fn generate() -> Result<(Self, Zeroizing<[u8; KEY_LEN]>), SecretsError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| SecretsError::Random)?;
        Ok((Self::from_bytes(&bytes, KeySource::Given), bytes))
    }

    /// The key from `BULWARK_MASTER_KEY`, else `DATA_DIR/master.key`
    /// (created with mode 0600 when absent).
    pub fn load(data_dir: &Path) -> Result<Self, SecretsError> {
        if let Ok(text) = std::env::var(KEY_ENV)
            && !text.trim().is_empty()
        {
            let bytes = decode_key(&text).ok_or(SecretsError::BadEnvKey)?;
            return Ok(Self::from_bytes(&bytes, KeySource::Env));
        }
        let path = data_dir.join(KEY_FILE);
        match read_key_file(&path)? {
            Some(key) => Ok(key),
            None => {
                let (_, bytes) = Self::generate()?;
                match write_key_file(&path, &bytes) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "created the master key file (mode 0600): back it up apart from the database");
                        Ok(Self::from_bytes(&bytes, KeySource::File(path)))
                    }
                    // Another process sharing the data directory created it
                    // first: its key is the one, and the file is complete.
                    Err(err) => read_key_file(&path)?.ok_or(err),
                }
            }
        }
    }

    /// The key's public id (a hash prefix; reveals nothing of the key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the key came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    fn seal_value(&self, value: &Value) -> Result<Value, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretsError::Random)?;
        let mut data = Zeroizing::new(value.to_string().into_bytes());
        let mut sealed = nonce.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut *data,
            )
            .map_err(|_| SecretsError::Damaged)?;
        sealed.extend_from_slice(&data);
        Ok(Value::String(format!(
            "{SEALED_PREFIX}{}:{}",
            self.id,
            STANDARD.encode(sealed)
        )))
    }

    fn open_value(&self, sealed: &str) -> Result<Value, SecretsError> {
        let (id, body) = sealed.split_once(':').ok_or(SecretsError::Damaged)?;
        if id != self.id {
            return Err(SecretsError::WrongKey {
                found: id.to_owned(),
                expected: self.id.clone(),
            });
        }
        let bytes = STANDARD.decode(body).map_err(|_| SecretsError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretsError::Damaged);
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretsError::Damaged)?;
        let mut data = Zeroizing::new(data.to_vec());
        let clear = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut data)
            .map_err(|_| SecretsError::Damaged)?;
        Ok(serde_json::from_slice(clear)?)
    }
}

fn decode_key(text: &str) -> Option<[u8; KEY_LEN]> {
    let text = text.trim();
    let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..KEY_LEN)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        STANDARD.decode(text).ok()?
    };
    let bytes = Zeroizing::new(bytes);
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).ok()
}

/// The key in `path`, or `None` when there is no such file.
fn read_key_file(path: &Path) -> Result<Option<MasterKey>, SecretsError> {
    let bad = |message: String| SecretsError::KeyFile {
        path: path.display().to_string(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(bad(err.to_string())),
    };
    warn_if_exposed(path);
    let bytes = decode_key(&text)
        .ok_or_else(|| bad("not a 32-byte key in base64 or hex".into()))
        .map(Zeroizing::new)?;
    Ok(Some(MasterKey::from_bytes(
        &bytes,
        KeySource::File(path.to_owned()),
    )))
}

fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the master key file is readable by others: chmod 600 it");
    }
}

/// Writes a new key file with mode 0600, never over an existing one. The
/// key is written and synced under a private name first and then linked
/// into place, so a reader never sees a partial file.
fn write_key_file(path: &Path, bytes: &[u8; KEY_LEN]) -> Result<(), SecretsError> {
    let bad = |err: std::io::Error| SecretsError::KeyFile {
        path: path.display().to_string(),
        message: err.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(bad)?;
    }
    let mut staging = path.as_os_str().to_owned();
    let nonce = getrandom::u64().unwrap_or_default();
    staging.push(format!(".{}-{nonce:016x}.tmp", std::process::id()));
    let staging = std::path::PathBuf::from(staging);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)?;
        let text = Zeroizing::new(format!("{}\n", STANDARD.encode(bytes)));
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        // Fails when the file exists: never overwritten.
        std::fs::hard_link(&staging, path)
    })();
    let _ = std::fs::remove_file(&staging);
    written.map_err(bad)
}

/// The stored text of a definition: its secrets sealed under `key`.
pub fn seal(key: &MasterKey, definition: &Value) -> Result<String, SecretsError> {
    let mut sealed = definition.clone();
    try_for_each_secret(&mut sealed, |value| {
        if !is_sealed(value) {
            *value = key.seal_value(value)?;
        }
        Ok(())
    })?;
    Ok(sealed.to_string())
}

/// The definition behind stored text, secrets opened. Clear-text secrets
/// (written before encryption at rest) read as they are.
pub fn unseal(key: &MasterKey, text: &str) -> Result<Value, SecretsError> {
    let mut definition: Value = serde_json::from_str(text)?;
    try_for_each_secret(&mut definition, |value| {
        if let Some(sealed) = value.as_str().and_then(|s| s.strip_prefix(SEALED_PREFIX)) {
            *value = key.open_value(sealed)?;
        }
        Ok(())
    })?;
    Ok(definition)
}

fn is_sealed(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.starts_with(SEALED_PREFIX))
}

/// True when stored `text` still holds a secret in clear.
fn has_clear_secret(text: &str) -> bool {
    let Ok(mut definition) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let mut clear = false;
    let _ = try_for_each_secret(&mut definition, |value| {
        clear |= !is_sealed(value);
        Ok(())
    });
    clear
}

/// Brings a freshly opened store and its key together: refuses a key the
/// store was not sealed under (finishing an interrupted rotation when the
/// new key file is what the store expects), then seals any clear-text
/// secrets left by earlier versions, in one transaction.
pub(super) async fn prepare(store: &mut Store, data_dir: &Path) -> Result<(), StoreError> {
    let recorded: Option<String> = sqlx::query("SELECT value FROM store_meta WHERE name = $1")
        .bind(KEY_ID_META)
        .fetch_optional(store.pool())
        .await?
        .map(|row| row.try_get("value"))
        .transpose()?;
    if let Some(recorded) = &recorded
        && recorded != store.key.id()
    {
        store.key = std::sync::Arc::new(finish_rotation(&store.key, recorded, data_dir)?);
    }
    let mut tx = store.begin_write().await?;
    let sealed = reseal(&mut tx, &store.key, &store.key, true).await?;
    set_key_id(&mut tx, store.key.id(), recorded.is_some()).await?;
    tx.commit().await?;
    if sealed > 0 {
        forget_old_pages(store).await?;
        tracing::info!(
            records = sealed,
            "sealed clear-text secrets under the master key"
        );
    }
    Ok(())
}

/// On SQLite, moves the write-ahead log into the database and empties it, so
/// the pages a re-sealing replaced (clear text, or the old key's) are gone
/// from disk; `secure_delete` already zeroed them in the database file.
async fn forget_old_pages(store: &Store) -> Result<(), sqlx::Error> {
    if store.backend() == super::Backend::Sqlite {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.pool())
            .await?;
    }
    Ok(())
}

/// The key a rotation left in `master.key.new` when the store already
/// switched to it; it replaces `master.key`.
fn finish_rotation(
    key: &MasterKey,
    recorded: &str,
    data_dir: &Path,
) -> Result<MasterKey, SecretsError> {
    let wrong = || SecretsError::WrongKey {
        found: recorded.to_owned(),
        expected: key.id().to_owned(),
    };
    let KeySource::File(path) = key.source() else {
        return Err(wrong());
    };
    let pending = data_dir.join(NEW_KEY_FILE);
    match read_key_file(&pending)? {
        Some(new) if new.id() == recorded => {
            std::fs::rename(&pending, path).map_err(|err| SecretsError::KeyFile {
                path: pending.display().to_string(),
                message: err.to_string(),
            })?;
            tracing::info!("finished an interrupted master key rotation");
            Ok(MasterKey {
                source: KeySource::File(path.clone()),
                ..new
            })
        }
        _ => Err(wrong()),
    }
}

/// Re-seals every stored definition under `to` (opened with `from`), or
/// only those holding a clear-text secret; how many it rewrote.
async fn reseal(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    from: &MasterKey,
    to: &MasterKey,
    only_clear: bool,
) -> Result<usize, StoreError> {
    let mut rewritten = 0usize;
    for table in SEALED_TABLES {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name, definition FROM {table}"
        )))
        .fetch_all(&mut **tx)
        .await?;
        for row in rows {
            let name: String = row.try_get("name")?;
            let text: String = row.try_get("definition")?;
            if only_clear && !has_clear_secret(&text) {
                continue;
            }
            let definition = unseal(from, &text)?;
            update_definition(tx, table, &name, &seal(to, &definition)?).await?;
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

async fn update_definition(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    name: &str,
    text: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET definition = $1 WHERE name = $2"
    )))
    .bind(text.to_owned())
    .bind(name.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn set_key_id(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    exists: bool,
) -> Result<(), sqlx::Error> {
    let sql = if exists {
        "UPDATE store_meta SET value = $2 WHERE name = $1"
    } else {
        // Two replicas starting at once on one database.
        "INSERT INTO store_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
    };
    sqlx::query(sql)
        .bind(KEY_ID_META)
        .bind(id.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The new key's id.
    pub id: String,
    /// Records re-sealed.
    pub records: usize,
    /// The new key in base64 when it came from the environment and was
    /// generated here (the operator must set it before the next start).
    pub new_env_key: Option<Zeroizing<String>>,
}

/// Re-seals every stored secret under a new key in one transaction.
/// With a key file, the new key is written next to it first and moved over
/// it once the transaction committed (a crash in between is finished on the
/// next start). With `BULWARK_MASTER_KEY`, the new key is `new_key` or a
/// generated one, returned once to be set in the environment.
/// The gateway must be stopped: a running one still seals with the old key.
pub async fn rotate(
    store: &Store,
    data_dir: &Path,
    new_key: Option<&str>,
) -> Result<Rotated, StoreError> {
    let bytes = match new_key {
        Some(text) => Zeroizing::new(decode_key(text).ok_or(SecretsError::BadEnvKey)?),
        None => MasterKey::generate()?.1,
    };
    let new = MasterKey::from_bytes(&bytes, KeySource::Given);
    let pending = data_dir.join(NEW_KEY_FILE);
    let file = match store.key.source() {
        KeySource::File(path) => {
            // A stale pending key from a rotation that never committed.
            let _ = std::fs::remove_file(&pending);
            write_key_file(&pending, &bytes)?;
            Some(path.clone())
        }
        _ => None,
    };
    let mut tx = store.begin_write().await?;
    let records = reseal(&mut tx, &store.key, &new, false).await?;
    set_key_id(&mut tx, new.id(), true).await?;
    tx.commit().await?;
    forget_old_pages(store).await?;
    let new_env_key = match file {
        Some(path) => {
            std::fs::rename(&pending, &path).map_err(|err| SecretsError::KeyFile {
                path: path.display().to_string(),
                message: err.to_string(),
            })?;
            None
        }
        None if new_key.is_none() => Some(Zeroizing::new(STANDARD.encode(bytes.as_slice()))),
        None => None,
    };
    tracing::info!(from = %store.key.id(), to = %new.id(), records, "rotated the master key");
    Ok(Rotated {
        id: new.id().to_owned(),
        records,
        new_env_key,
    })
}

/// Paths of secret values in an upstream definition: every value of these maps…
const SECRET_MAPS: &[&str] = &["env", "headers"];
/// …and these fields of its `oauth` table.
const SECRET_OAUTH_FIELDS: &[&str] = &["client_secret", "private_key"];

/// `definition` with every secret value replaced by [`MASK`].
pub fn mask_upstream(definition: &Value) -> Value {
    let mut masked = definition.clone();
    let _ = try_for_each_secret(&mut masked, |value| {
        *value = Value::String(MASK.into());
        Ok(())
    });
    masked
}

/// Where `update` still holds [`MASK`] (an operator sent back what they
/// read), puts back the secret stored in `current`.
pub fn keep_masked(update: &mut Value, current: &Value) {
    for map in SECRET_MAPS {
        if let Some(Value::Object(values)) = update.get_mut(*map) {
            for (key, value) in values.iter_mut() {
                if value == MASK
                    && let Some(old) = current.get(*map).and_then(|m| m.get(key))
                {
                    *value = old.clone();
                }
            }
        }
    }
    if let Some(Value::Object(oauth)) = update.get_mut("oauth") {
        for field in SECRET_OAUTH_FIELDS {
            if let Some(value) = oauth.get_mut(*field)
                && value == MASK
                && let Some(old) = current.get("oauth").and_then(|o| o.get(*field))
            {
                *value = old.clone();
            }
        }
    }
}

fn try_for_each_secret(
    definition: &mut Value,
    mut apply: impl FnMut(&mut Value) -> Result<(), SecretsError>,
) -> Result<(), SecretsError> {
    for map in SECRET_MAPS {
        if let Some(Value::Object(values)) = definition.get_mut(*map) {
            for value in values.values_mut() {
                apply(value)?;
            }
        }
    }
    if let Some(Value::Object(oauth)) = definition.get_mut("oauth") {
        for field in SECRET_OAUTH_FIELDS {
            if let Some(value) = oauth.get_mut(*field).filter(|v| !v.is_null()) {
                apply(value)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; KEY_LEN], KeySource::Given)
    }

    #[test]
    fn masks_secrets_and_keeps_them_when_sent_back_masked() {
        let stored = json!({
            "command": "x",
            "env": {"TOKEN": "s3cret-value"},
            "headers": {"Authorization": "Bearer abc"},
            "oauth": {"client_id": "id", "client_secret": "cs", "private_key": null},
        });
        let masked = mask_upstream(&stored);
        assert_eq!(masked["env"]["TOKEN"], MASK);
        assert_eq!(masked["headers"]["Authorization"], MASK);
        assert_eq!(masked["oauth"]["client_secret"], MASK);
        assert_eq!(masked["oauth"]["client_id"], "id");
        assert!(masked["oauth"]["private_key"].is_null());
        assert!(!masked.to_string().contains("s3cret"));

        let mut update = masked.clone();
        update["env"]["NEW"] = json!("new-value");
        keep_masked(&mut update, &stored);
        assert_eq!(update["env"]["TOKEN"], "s3cret-value");
        assert_eq!(update["env"]["NEW"], "new-value");
        assert_eq!(update["oauth"]["client_secret"], "cs");
        let key = key(7);
        assert_eq!(unseal(&key, &seal(&key, &update).unwrap()).unwrap(), update);
    }

    #[test]
    fn sealed_text_hides_secrets_and_refuses_tampering_and_other_keys() {
        let key = key(1);
        let definition = json!({
            "url": "https://example.test/mcp",
            "headers": {"Authorization": "Bearer very-secret-token"},
            "oauth": {"client_id": "id", "client_secret": "client-secret-value"},
        });
        let text = seal(&key, &definition).unwrap();
        assert!(!text.contains("very-secret-token"));
        assert!(!text.contains("client-secret-value"));
        assert!(text.contains("https://example.test/mcp"));
        assert!(!has_clear_secret(&text));
        assert!(has_clear_secret(&definition.to_string()));
        // Clear text from earlier versions still reads.
        assert_eq!(unseal(&key, &definition.to_string()).unwrap(), definition);

        let other = key_other();
        assert!(matches!(
            unseal(&other, &text),
            Err(SecretsError::WrongKey { .. })
        ));
        let mut tampered: Value = serde_json::from_str(&text).unwrap();
        let sealed = tampered["headers"]["Authorization"]
            .as_str()
            .unwrap()
            .to_owned();
        let flipped = format!(
            "{}{}",
            &sealed[..sealed.len() - 3],
            if sealed.ends_with("AAA") {
                "BBB"
            } else {
                "AAA"
            }
        );
        tampered["headers"]["Authorization"] = json!(flipped);
        assert!(matches!(
            unseal(&key, &tampered.to_string()),
            Err(SecretsError::Damaged)
        ));
    }

    fn key_other() -> MasterKey {
        key(2)
    }

    #[test]
    fn starts_racing_on_one_data_dir_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| MasterKey::load(dir.path()).unwrap().id().to_owned()))
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only master.key remains");
    }

    #[test]
    fn env_keys_read_as_base64_or_hex_and_key_files_are_private() {
        let hex = "11".repeat(KEY_LEN);
        let b64 = STANDARD.encode([0x11u8; KEY_LEN]);
        assert_eq!(decode_key(&hex), decode_key(&b64));
        assert!(decode_key("short").is_none());

        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let (_, bytes) = MasterKey::generate().unwrap();
        write_key_file(&path, &bytes).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_key_file(&path, &bytes).is_err(), "never overwritten");
        let read = read_key_file(&path).unwrap().unwrap();
        assert_eq!(
            read.id(),
            MasterKey::from_bytes(&bytes, KeySource::Given).id()
        );
    }
}
