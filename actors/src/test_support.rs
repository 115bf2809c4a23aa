//! Test helpers shared by the actor modules' unit tests: real services are
//! required only when `BULWARK_REQUIRE_SERVICES=1` (as in `tests/it/common`).
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const REQUIRE_ENV: &str = "BULWARK_REQUIRE_SERVICES";

/// Prints `SKIP: …` (the caller then returns), or panics when services are required.
pub(crate) fn skip(reason: &str) {
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{REQUIRE_ENV}=1 but {reason}");
    }
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    eprintln!("SKIP: {test}: {reason}");
}

/// Redis on 127.0.0.1:6379, or `None` after a `SKIP:` line.
pub(crate) fn require_redis() -> Option<SocketAddr> {
    let addr: SocketAddr = "127.0.0.1:6379".parse().unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        return Some(addr);
    }
    skip("redis is not reachable on 127.0.0.1:6379");
    None
}
