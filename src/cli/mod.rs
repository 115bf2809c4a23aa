//! The CLI verbs that talk to a running gateway's management API:
//! `bulwark upstream …`, `bulwark project …`, `bulwark key … --url`.
//!
//! - [`client`]: URL, key, output format; API errors as messages.
//! - [`output`]: table or JSON.
//! - [`upstream`], [`project`], [`key`]: one module per resource.
//! - [`system`]: `bulwark backup` and `bulwark restore`.
//! - [`upstream`], [`project`], [`key`], [`user`]: one module per resource;
//!   [`audit`]: the audit trail.
pub mod audit;
pub mod client;
pub mod key;
mod output;
pub mod project;
pub mod system;
pub mod upstream;
pub mod user;
