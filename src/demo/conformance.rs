//! placeholder
pub type ConformanceServer = super::echo::EchoServer;
