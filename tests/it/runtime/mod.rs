//! Runtime hardening (issue 15): hostile upstreams, supervision
//! correctness and lifecycle, against the real binary.
mod hostile;
mod lifecycle;
mod notifications;

use crate::gateway::demo_upstream;

/// A `[upstreams.NAME]` table running the `chaos` demo server in `mode`.
pub fn chaos_upstream(name: &str, mode: &str) -> String {
    demo_upstream(name, &format!("\"chaos\", \"--chaos\", \"{mode}\""))
}
