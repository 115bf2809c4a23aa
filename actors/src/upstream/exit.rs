//! Why an upstream instance stopped, in words an operator can act on.
use std::fmt;
use std::process::ExitStatus;

/// The reason an upstream instance is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The process exited on its own with this status code.
    Exited(i32),
    /// The process was killed by a signal.
    Signaled(String),
    /// The process could not be started at all.
    SpawnFailed(String),
    /// The process is alive (or the remote server answers) but its MCP
    /// session ended or never started.
    SessionFailed(String),
    /// The connection to a remote upstream was refused or broke.
    ConnectionLost(String),
    /// The gateway stopped it on purpose.
    Stopped,
    /// It stopped answering and was killed (the escalation actor's verdict).
    Hung(String),
    /// Its OAuth token changed; it restarts to take the new one.
    TokenRotated,
}

impl ExitReason {
    /// Classifies a finished process.
    pub fn from_status(status: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        if let Some(code) = status.code() {
            return Self::Exited(code);
        }
        match status.signal() {
            Some(sig) => Self::Signaled(
                nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_else(|_| format!("signal {sig}")),
            ),
            None => Self::Exited(-1),
        }
    }
}

impl ExitReason {
    /// A bounded label for counting restarts (`exit`, `signal`, `hung`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Exited(_) => "exit",
            Self::Signaled(_) => "signal",
            Self::SpawnFailed(_) => "spawn_failed",
            Self::SessionFailed(_) => "session_failed",
            Self::ConnectionLost(_) => "connection_lost",
            Self::Stopped => "stopped",
            Self::Hung(_) => "hung",
            Self::TokenRotated => "token_rotation",
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(code) => write!(f, "process exited with status {code}"),
            Self::Signaled(sig) => write!(f, "process killed by {sig}"),
            Self::SpawnFailed(err) => write!(f, "process could not start: {err}"),
            Self::SessionFailed(err) => write!(f, "MCP session failed: {err}"),
            Self::Hung(reason) => write!(f, "declared hung and killed: {reason}"),
            Self::ConnectionLost(err) => write!(f, "connection lost: {err}"),
            Self::Stopped => f.write_str("stopped by the gateway"),
            Self::TokenRotated => f.write_str("restarted to take a new OAuth token"),
        }
    }
}
