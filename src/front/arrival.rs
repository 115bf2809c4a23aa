//! When a request reached the gateway: taken in the accept loop as soon as
//! hyper has read its headers, before the body is read, before the MCP
//! layers and before rmcp queues it for its session's worker. Deadlines
//! count from here, so the time a request waits in the gateway under load
//! counts toward its deadline instead of being added after it.
use tokio::time::Instant;

/// The instant a request's headers were read, in its extensions.
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

impl Arrival {
    /// Now: for the accept loop.
    pub fn now() -> Self {
        Self(Instant::now())
    }
}
