//! Bulwark: a secure MCP gateway built as a supervised actor system.
//!
//! - [`demo`]: built-in demo upstream MCP servers (echo, slow, crash, conformance).
pub mod demo;
pub mod mcp;
