//! `CacheHandle`: what the request path holds. Reads go straight to the
//! backend; writes and invalidations are casts to the `CacheActor`.
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};

use crate::actor_slot::ActorSlot;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::actor::CacheMsg;
use super::config::{BackendKind, CacheConfig};
use super::epochs::Epochs;
use super::hints::Hints;
use super::key::CacheKey;
use super::kind::CacheKind;
use super::memory::{Entry, MemoryBackend};
use super::redis_backend::RedisBackend;
use super::scope::Scope;
use super::stats::{CacheStats, StatsSnapshot};

/// Why a cache could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The configuration is inconsistent.
    #[error("invalid cache configuration: {0}")]
    Config(String),
    /// The Redis URL does not parse (the URL itself is not repeated: it may hold a password).
    #[error("invalid cache.redis_url: {0}")]
    RedisUrl(String),
}

pub(crate) enum Backend {
    Memory(MemoryBackend),
    Redis(RedisBackend),
}

pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) stats: Arc<CacheStats>,
    pub(crate) config: CacheConfig,
    /// The running actor; replaced when the root restarts it.
    actor: ActorSlot<CacheMsg>,
    /// Bumped by every invalidation of an upstream; a fill that started
    /// before one is dropped, so a list fetched before `list_changed` can't
    /// be stored after it.
    epochs: Arc<Epochs>,
}

/// The cache as the request path sees it: cheap to clone, reads without
/// touching the actor.
#[derive(Clone)]
pub struct CacheHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheHandle")
            .field("backend", &self.shared.config.backend)
            .finish_non_exhaustive()
    }
}

impl CacheHandle {
    /// A handle on a new, empty cache. Nothing connects until a `CacheActor`
    /// starts with this handle; until then reads miss and writes are dropped.
    pub fn new(config: &CacheConfig) -> Result<Self, CacheError> {
        config.validate().map_err(CacheError::Config)?;
        let stats = Arc::new(CacheStats::default());
        let backend = match (config.backend, &config.redis_url) {
            (BackendKind::Redis, Some(url)) => Backend::Redis(
                RedisBackend::new(
                    url,
                    config.key_prefix.clone(),
                    config.op_timeout(),
                    config.outage_backoff(),
                    stats.clone(),
                )
                .map_err(|e| CacheError::RedisUrl(format!("{:?}", e.kind())))?,
            ),
            _ => Backend::Memory(MemoryBackend::new(
                config.max_entries,
                config.max_bytes,
                stats.clone(),
            )),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                backend,
                stats,
                config: config.clone(),
                actor: ActorSlot::default(),
                epochs: Arc::default(),
            }),
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn set_actor(&self, actor: Option<ActorRef<CacheMsg>>) {
        self.shared.actor.set(actor);
    }

    fn actor(&self) -> Option<ActorRef<CacheMsg>> {
        self.shared.actor.get()
    }

    fn cast(&self, msg: CacheMsg) {
        match self.actor() {
            // Fails only while the actor is being replaced: the entry is just not cached.
            Some(actor) => {
                let _ = actor.cast(msg);
            }
            None => tracing::debug!("cache actor not running; write dropped"),
        }
    }

    /// The configuration this cache runs with (TTLs, per-tool result rules).
    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }

    /// The default TTL of `kind`.
    pub fn ttl(&self, kind: CacheKind) -> Duration {
        self.shared.config.ttl(kind)
    }

    /// The cached value of `key`, counting a hit or a miss. Never fails: a
    /// backend error is a miss.
    pub async fn get(&self, key: &CacheKey) -> Option<Arc<Value>> {
        let found = self.read(key).await;
        if found.is_some() {
            self.shared.stats.hit(key.kind());
        } else {
            self.shared.stats.miss(key.kind());
        }
        found
    }

    /// The stored value of `key`, not counted. An invalidation sent to the
    /// actor hides its scope at once: the memory backend hides the entries
    /// itself, and on Redis the scope reads as missing until the actor has
    /// deleted it.
    async fn read(&self, key: &CacheKey) -> Option<Arc<Value>> {
        match &self.shared.backend {
            Backend::Memory(memory) => memory.get(key).await,
            Backend::Redis(_) if self.shared.epochs.held(key.upstream()) => None,
            Backend::Redis(redis) => redis.get(key).await,
        }
    }

    /// [`get`](Self::get), deserialised into `T`; a value of another shape is a miss.
    pub async fn get_as<T: DeserializeOwned>(&self, key: &CacheKey) -> Option<T> {
        let value = self.get(key).await?;
        T::deserialize(&*value).ok()
    }

    /// Stores `value` under `key` for its kind's TTL (through the actor).
    pub fn put(&self, key: CacheKey, value: Value) {
        let ttl = self.ttl(key.kind());
        self.put_with_ttl(key, value, ttl);
    }

    /// Stores `value` under `key` for `ttl` (e.g. a tool result's own TTL).
    pub fn put_with_ttl(&self, key: CacheKey, value: Value, ttl: Duration) {
        self.cast(CacheMsg::Put {
            key,
            value: Arc::new(value),
            ttl,
            epoch: None,
        });
    }

    /// The value of `key`, or the result of `fetch` (stored for the kind's TTL).
    /// On the memory backend concurrent callers for one key share one fetch.
    /// A fetch that overlaps an invalidation is returned but not stored.
    pub async fn get_or_fetch<F, E>(&self, key: CacheKey, fetch: F) -> Result<Arc<Value>, Arc<E>>
    where
        F: Future<Output = Result<Value, E>>,
        E: Send + Sync + 'static,
    {
        let kind = key.kind();
        let ttl = self.ttl(kind);
        let epoch = self.shared.epochs.of(key.upstream());
        match &self.shared.backend {
            Backend::Memory(memory) => {
                let (value, fresh) = memory.get_or_fetch(key.clone(), |_| ttl, fetch).await?;
                if fresh {
                    self.shared.stats.miss(kind);
                    self.drop_if_invalidated(&key, epoch);
                } else {
                    self.shared.stats.hit(kind);
                }
                Ok(value)
            }
            Backend::Redis(_) => {
                if let Some(value) = self.get(&key).await {
                    return Ok(value);
                }
                let value = Arc::new(fetch.await.map_err(Arc::new)?);
                self.cast(CacheMsg::Put {
                    key,
                    value: value.clone(),
                    ttl,
                    epoch: Some(epoch),
                });
                Ok(value)
            }
        }
    }

    /// Like [`get_or_fetch`](Self::get_or_fetch) for an MCP result that may
    /// carry caching hints ([`Hints`]): it is kept no longer than its
    /// `ttlMs` (not at all for `0`), and a `private` one only under
    /// `caller`'s own key ([`CacheKey::for_caller`]), so it is never served
    /// to anyone else. `fetch` runs at most twice: a second time when the
    /// shared fetch this call waited on turned out private to its caller.
    pub async fn get_or_fetch_hinted<F, Fut, E>(
        &self,
        key: CacheKey,
        caller: &str,
        fetch: F,
    ) -> Result<Arc<Value>, Arc<E>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Value, E>>,
        E: Send + Sync + 'static,
    {
        let kind = key.kind();
        let default = self.ttl(kind);
        let own = key.for_caller(caller);
        let epoch = self.shared.epochs.of(key.upstream());
        // Shared entries are never private; a private one lives only under `own`.
        for candidate in [&key, &own] {
            if let Some(value) = self.read(candidate).await {
                self.shared.stats.hit(kind);
                return Ok(value);
            }
        }
        self.shared.stats.miss(kind);
        let (value, fresh) = match &self.shared.backend {
            Backend::Memory(memory) => {
                let shared_ttl = |value: &Value| {
                    let hints = Hints::of(value);
                    if hints.private {
                        Duration::ZERO
                    } else {
                        hints.bound(default)
                    }
                };
                let (value, fresh) = memory
                    .get_or_fetch(key.clone(), shared_ttl, fetch())
                    .await?;
                if fresh {
                    self.drop_if_invalidated(&key, epoch);
                }
                (value, fresh)
            }
            Backend::Redis(_) => (Arc::new(fetch().await.map_err(Arc::new)?), true),
        };
        let hints = Hints::of(&value);
        if !hints.private {
            if matches!(self.shared.backend, Backend::Redis(_)) && !hints.bound(default).is_zero() {
                self.cast(CacheMsg::Put {
                    key,
                    value: value.clone(),
                    ttl: hints.bound(default),
                    epoch: Some(epoch),
                });
            }
            return Ok(value);
        }
        // Private: another caller's shared fetch is not this caller's answer.
        let (value, hints) = if fresh {
            (value, hints)
        } else {
            let value = Arc::new(fetch().await.map_err(Arc::new)?);
            let hints = Hints::of(&value);
            (value, hints)
        };
        let ttl = hints.bound(default);
        if !ttl.is_zero() {
            let key = if hints.private { own } else { key };
            match &self.shared.backend {
                // Stored before the answer, as a shared fill is: through the
                // actor, the caller's next identical request could come
                // first and fetch again.
                Backend::Memory(memory) => {
                    let entry = Entry {
                        value: value.clone(),
                        ttl,
                    };
                    memory.put(key.clone(), entry).await;
                    self.drop_if_invalidated(&key, epoch);
                }
                Backend::Redis(_) => self.cast(CacheMsg::Put {
                    key,
                    value: value.clone(),
                    ttl,
                    epoch: Some(epoch),
                }),
            }
        }
        Ok(value)
    }

    /// Takes a memory fill of `key` out again when its upstream was
    /// invalidated since the fill began (in `epoch`): the fill may hold what
    /// the invalidation removed.
    fn drop_if_invalidated(&self, key: &CacheKey, epoch: u64) {
        if self.shared.epochs.of(key.upstream()) != epoch {
            self.cast(CacheMsg::Invalidate(Scope::Key(key.clone()), None));
        }
    }

    /// Removes every entry in `scope` (through the actor). Fills already under
    /// way are not stored; on the memory backend reads stop seeing the
    /// entries before this returns.
    pub fn invalidate(&self, scope: Scope) {
        self.shared.epochs.bump(&scope);
        let hold = match &self.shared.backend {
            Backend::Memory(memory) => {
                memory.hide(&scope);
                None
            }
            // Reads of the scope miss until the actor has deleted it.
            Backend::Redis(_) => Some(self.shared.epochs.hold(&scope)),
        };
        self.cast(CacheMsg::Invalidate(scope, hold));
    }

    /// Removes every entry in `scope` and returns once they are gone (on
    /// Redis: or its operation timed out). For `list_changed`: clients are
    /// told only after this, so a re-list never reads the stale entry.
    pub async fn invalidate_now(&self, scope: Scope) {
        self.shared.epochs.bump(&scope);
        self.shared.invalidate(&scope).await;
        tracing::debug!(%scope, "cache invalidated");
    }

    /// The invalidation epoch of `upstream`.
    pub(crate) fn epoch(&self, upstream: &str) -> u64 {
        self.shared.epochs.of(upstream)
    }

    /// Waits until the actor has applied every write and invalidation sent
    /// before this call (tests, `cache_clear` answering after the fact).
    pub async fn flush(&self) {
        if let Some(actor) = self.actor() {
            let _ = actor
                .call(|reply: RpcReplyPort<()>| CacheMsg::Flush(reply), None)
                .await;
        }
    }

    /// Hits, misses, entries, evictions, expirations and errors per kind.
    pub fn stats(&self) -> StatsSnapshot {
        let count_entries = matches!(self.shared.backend, Backend::Memory(_));
        self.shared.stats.snapshot(count_entries)
    }

    /// Whether the backend answers: always in memory; a PING to Redis.
    pub async fn ping(&self) -> Result<(), String> {
        match &self.shared.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(redis) => redis.ping().await,
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> BackendKind {
        self.shared.config.backend
    }
}

impl Shared {
    pub(crate) async fn store(&self, key: CacheKey, value: Arc<Value>, ttl: Duration) {
        match &self.backend {
            Backend::Memory(memory) => memory.put(key, Entry { value, ttl }).await,
            Backend::Redis(redis) => redis.put(&key, &value, ttl).await,
        }
    }

    pub(crate) async fn invalidate(&self, scope: &Scope) {
        match &self.backend {
            Backend::Memory(memory) => memory.invalidate(scope).await,
            Backend::Redis(redis) => {
                if let Some(removed) = redis.invalidate(scope).await {
                    tracing::debug!(%scope, removed, "redis cache invalidated");
                }
            }
        }
    }
}
