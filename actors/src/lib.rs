//! Bulwark's actors. Each module owns one kind of actor and its messages.
//!
//! - [`upstream`]: `UpstreamActor`, which owns one upstream MCP server (a
//!   child process or a remote streamable HTTP session) and the single MCP
//!   client session to it, plus the shared handles the request path uses to
//!   call it without hopping through the actor.
//! - [`oauth`]: `TokenActor`, OAuth client-credentials tokens for upstreams.
//! - [`mailbox`]: mailbox-depth and message counters ractor does not keep.
pub mod mailbox;
pub mod oauth;
pub mod upstream;
