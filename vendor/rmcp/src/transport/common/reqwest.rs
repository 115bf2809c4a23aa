#[cfg(feature = "transport-streamable-http-client-reqwest")]
mod streamable_http_client;
#[cfg(feature = "transport-streamable-http-client-reqwest")]
pub use streamable_http_client::{PostParts, post_message_to, post_message_with};
