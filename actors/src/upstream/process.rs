//! The upstream's OS process: spawned alone in its own process group with only
//! the environment its config names, and killed with its whole group.
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use super::exit::ExitReason;
use super::spec::StdioSpec;

/// Variables every upstream gets from the gateway; nothing else is inherited.
const INHERITED_ENV: [&str; 2] = ["PATH", "HOME"];

/// A spawned upstream process and its pipes.
pub struct Spawned {
    /// The child; awaiting it reaps the process.
    pub child: Child,
    /// Process id, equal to the process group id.
    pub pgid: i32,
    /// The child's stdin (our MCP writes).
    pub stdin: ChildStdin,
    /// The child's stdout (our MCP reads).
    pub stdout: ChildStdout,
    /// The child's stderr, captured into the tail.
    pub stderr: ChildStderr,
}

/// Starts the process in a new process group, so that killing the group also
/// reaches grandchildren (`npx` → `node`).
pub fn spawn(spec: &StdioSpec) -> Result<Spawned, ExitReason> {
    let mut command = Command::new(&spec.command);
    command
        .args(&spec.args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A backstop only: the actor kills the whole group itself.
        .kill_on_drop(true);
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.envs(&spec.env);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    let mut child = command
        .spawn()
        .map_err(|err| ExitReason::SpawnFailed(format!("{}: {err}", spec.command)))?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| {
            ExitReason::SpawnFailed("process exited before it could be tracked".into())
        })?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ExitReason::SpawnFailed("stdio pipes missing".into()));
    };
    Ok(Spawned {
        child,
        pgid,
        stdin,
        stdout,
        stderr,
    })
}

/// Sends `signal` to every process in the group; a group already gone is fine.
pub fn signal_group(pgid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(err) => tracing::warn!(pgid, %err, ?signal, "could not signal process group"),
    }
}

/// How long a stopping upstream gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);
