//! The upstream's OS process: spawned alone in its own process group with only
//! the environment its config names, and killed with its whole group.
//!
//! Three layers make sure no upstream outlives what owns it: the actor ends
//! the group politely in `post_stop`; a [`ProcessGroup`] guard SIGKILLs it
//! when dropped (ractor skips `post_stop` for a killed actor, but still drops
//! its state); and the child carries a parent-death signal, so even a
//! `kill -9` of the gateway takes it down, while the group [`watchdog`]
//! takes down the rest of its group.
//!
//! [`watchdog`]: super::watchdog
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
    /// The process group; dropping it kills the group.
    pub group: ProcessGroup,
    /// The child's stdin (our MCP writes).
    pub stdin: ChildStdin,
    /// The child's stdout (our MCP reads).
    pub stdout: ChildStdout,
    /// The child's stderr, captured into the tail.
    pub stderr: ChildStderr,
}

/// Starts the process in a new process group, so that killing the group also
/// reaches grandchildren (`npx` → `node`): through the [`launcher`] when the
/// binary is one (no fork of the gateway), else by a fork. Either happens on
/// the [`forker`] thread, never on a runtime worker.
///
/// [`launcher`]: super::launcher
pub async fn spawn(spec: &StdioSpec) -> Result<Spawned, ExitReason> {
    let runtime = tokio::runtime::Handle::current();
    let spec = spec.clone();
    let (reply, spawned) = tokio::sync::oneshot::channel();
    forker::run(Box::new(move || {
        // The child's pipes and reaping belong to the caller's runtime.
        let _entered = runtime.enter();
        let _ = reply.send(spawn_here(&spec));
    }))?;
    spawned
        .await
        .map_err(|_| ExitReason::SpawnFailed("the process spawner stopped".into()))?
}

/// Forks every upstream process from one thread that lives as long as the
/// gateway. The parent-death signal follows the thread that forked the
/// child, so that thread must never exit; and a fork copies the gateway's
/// page tables (the `pre_exec` hook rules out `posix_spawn`), which on a
/// runtime worker would stall the other upstreams' calls queued there.
mod forker {
    use std::sync::OnceLock;
    use std::sync::mpsc::{Sender, channel};

    use super::ExitReason;

    type Job = Box<dyn FnOnce() + Send>;

    /// Runs `job` on the forker thread (started on first use).
    pub(super) fn run(job: Job) -> Result<(), ExitReason> {
        static FORKER: OnceLock<Option<Sender<Job>>> = OnceLock::new();
        let sender = FORKER.get_or_init(|| {
            let (sender, jobs) = channel::<Job>();
            let started = std::thread::Builder::new()
                .name("bulwark-forker".into())
                .spawn(move || {
                    for job in jobs {
                        // One failed spawn must not take the thread (and so
                        // every later spawn) with it; its caller sees the
                        // reply dropped.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            started.ok().map(|_| sender)
        });
        let unavailable = || ExitReason::SpawnFailed("no process spawner thread".into());
        sender
            .as_ref()
            .ok_or_else(unavailable)?
            .send(job)
            .map_err(|_| unavailable())
    }
}

fn spawn_here(spec: &StdioSpec) -> Result<Spawned, ExitReason> {
    let mut command = match super::launcher::launcher() {
        // posix_spawn of the launcher: no fork of the gateway.
        Some(launcher) => {
            let path = spec
                .env
                .get("PATH")
                .map(std::ffi::OsString::from)
                .or_else(|| std::env::var_os("PATH"));
            let program =
                super::launcher::resolve(&spec.command, path.as_deref(), spec.cwd.as_deref())
                    .map_err(|err| ExitReason::SpawnFailed(format!("{}: {err}", spec.command)))?;
            let mut command = Command::new(launcher);
            command
                .arg(super::launcher::SUBCOMMAND)
                .arg(std::process::id().to_string())
                .arg(program);
            command
        }
        None => {
            let mut command = Command::new(&spec.command);
            die_with_parent(&mut command);
            command
        }
    };
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
    super::watchdog::watch(pgid);
    Ok(Spawned {
        child,
        group: ProcessGroup(pgid),
        stdin,
        stdout,
        stderr,
    })
}

/// An upstream's process group, SIGKILLed when the guard is dropped.
#[derive(Debug)]
pub struct ProcessGroup(i32);

impl ProcessGroup {
    /// The group id (the leader's pid).
    pub fn id(&self) -> i32 {
        self.0
    }

    /// Sends `signal` to every process in the group.
    pub fn signal(&self, signal: Signal) {
        signal_group(self.0, signal);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // Grandchildren may outlive the leader; a group already gone is fine.
        signal_group(self.0, Signal::SIGKILL);
        super::watchdog::release(self.0);
    }
}

/// Without a launcher: asks the kernel to SIGKILL the child when the
/// gateway dies, however it dies. The signal follows the thread that forked the child; upstreams are
/// spawned from the [`forker`] thread, which lives as long as the process.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The gateway died before the prctl: nobody would kill us later.
            if std::os::unix::process::parent_id() != parent {
                return Err(std::io::Error::other("the gateway exited during spawn"));
            }
            Ok(())
        });
    }
}

/// Sends `signal` to every process in the group; a group already gone is fine.
fn signal_group(pgid: i32, signal: Signal) {
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(err) => tracing::warn!(pgid, %err, ?signal, "could not signal process group"),
    }
}

/// How long a stopping upstream gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use tokio::io::AsyncBufReadExt;

    use super::*;

    /// Whether `pid` is gone or a zombie (dead, not yet reaped).
    fn dead(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
    }

    #[tokio::test]
    async fn dropping_the_group_guard_kills_the_process_and_its_grandchildren() {
        // What a killed actor leaves: its state dropped, `post_stop` skipped.
        let spec = StdioSpec {
            command: "sh".into(),
            args: vec!["-c".into(), "sleep 300 & echo $!; wait".into()],
            env: Default::default(),
            cwd: None,
            token_env: None,
        };
        let Ok(mut spawned) = spawn(&spec).await else {
            panic!("sh did not start");
        };
        let mut stdout = tokio::io::BufReader::new(spawned.stdout).lines();
        let grandchild: i32 = stdout
            .next_line()
            .await
            .ok()
            .flatten()
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("no grandchild pid"));
        assert!(!dead(grandchild));
        drop(spawned.group);
        let status = tokio::time::timeout(Duration::from_secs(10), spawned.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(Signal::SIGKILL as i32)
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !dead(grandchild) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "grandchild {grandchild} outlived its group"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
