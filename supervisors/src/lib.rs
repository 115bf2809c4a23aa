//! Bulwark's supervision tree.
//!
//! ```text
//! RootSupervisor
//! ├── GuardrailActor, CacheActor, EscalationActor   shared, started first
//! ├── ServerSupervisor "echo"      restart policy, circuit, probes (per instance)
//! │   └── UpstreamActor            one process group + one MCP session
//! ├── ServerSupervisor "search"    a pool: `instances = 3` or `urls = [...]`
//! │   ├── UpstreamActor #0         each with its own status and restart history
//! │   ├── UpstreamActor #1
//! │   └── UpstreamActor #2
//! ├── ServerSupervisor "time"
//! │   └── UpstreamActor
//! └── …one ServerSupervisor per configured upstream
//! ```
//!
//! - [`policy`]: the restart policy (intensity window, backoff with jitter).
//! - [`server`]: `ServerSupervisor`, restarts each instance of one upstream.
//! - [`root`]: `RootSupervisor`, starts and restarts server supervisors.
//! - [`registry`]: configured upstreams and their live status.
//! - [`control`]: the typed add/remove/restart commands of the control plane.
//! - [`shared`]: how the root starts and restarts the shared actors.
//!
//! Supervisors know neither HTTP nor MCP wire details; they start actors,
//! watch them die, and decide what happens next.
pub mod control;
pub mod policy;
pub mod registry;
pub mod root;
pub mod server;
pub mod shared;
