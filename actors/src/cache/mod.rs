//! The cache: upstream lists, credential resolutions and opt-in tool results,
//! in memory (moka) or in Redis shared by several gateway replicas.
//!
//! - [`CacheHandle`]: what the request path holds; `get` reads the backend
//!   directly, `put`/`invalidate` are casts to the actor; `invalidate_now`
//!   is awaited (before clients hear of a `list_changed`).
//! - [`CacheActor`]: owns writes, invalidation, expiry housekeeping and the
//!   Redis connection.
//! - [`CacheKey`]: namespaced, hashed keys ([`CacheKind`] + upstream + SHA-256).
//! - [`Scope`]: what an invalidation covers.
//! - [`Hints`]: a result's own `ttlMs` / `cacheScope` (SEP-2549), which
//!   bound its TTL and keep a `private` one to its caller.
//! - [`CacheConfig`]: the `[cache]` section; [`result_cacheable`] decides
//!   whether a tool's result may be cached.
//! - [`StatsSnapshot`]: hits, misses, entries, evictions, errors per kind.
//!
//! A backend failure is never an error to the caller: it is a miss.
mod actor;
mod config;
mod epochs;
mod handle;
mod hints;
mod key;
mod kind;
mod memory;
mod redis_backend;
mod scope;
mod stats;
#[cfg(test)]
mod tests;

pub use actor::{CacheActor, CacheArgs, CacheMsg, CacheState};
pub use config::{BackendKind, CacheConfig, KindTtls, ToolCacheConfig, result_cacheable};
pub use handle::{CacheError, CacheHandle};
pub use hints::Hints;
pub use key::{CacheKey, GLOBAL_SCOPE};
pub use kind::CacheKind;
pub use scope::Scope;
pub use stats::{KindStats, StatsSnapshot};
