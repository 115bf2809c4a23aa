//! Bulwark: a secure MCP gateway built as a supervised actor system.
//!
//! - [`auth`]: client authentication (API keys, JWT), grants, rate limits.
//! - [`config`]: layered configuration and `mcpServers` files.
//! - [`connect`]: `bulwark connect`, a one-shot client of a remote MCP server.
//! - [`runtime`]: starts and stops the supervision tree.
//! - [`front`]: the HTTP front below it: accept loop, timeouts, body bounds, Host/Origin.
//! - [`runtime`]: starts and stops the supervision tree; [`drain`]: calls
//!   in flight finish before shutdown cancels them.
//! - [`mcp`]: the MCP front door (federation, proxying, sessions).
//! - [`api`]: operator endpoints (health, readiness, the actor tree).
//! - [`govern`]: users, roles, logins and the audit trail of `/api/v1`.
//! - [`serve`] / [`stdio`]: the two ways to run the gateway.
//! - [`demo`]: built-in demo upstream MCP servers.
//! - [`mask`]: secret masking for operator-facing text.
//! - [`telemetry`]: metrics (`/metrics`, OTLP push), traces (OTLP export,
//!   W3C trace context) and the log format.
//! - [`enkrypt`]: importing an Enkrypt Secure MCP Gateway config.
//! - [`ui`]: the live dashboard at `/ui` and its event stream.
pub mod allocator;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connect;
pub mod control;
pub mod demo;
pub mod drain;
pub mod enkrypt;
pub mod front;
pub mod govern;
pub mod mask;
pub mod mcp;
pub mod probe;
pub mod runtime;
pub mod serve;
pub mod stdio;
pub mod stdio_transport;
pub mod store;
pub mod telemetry;
pub mod ui;
