//! The group watchdog: one small `sh` process per gateway that holds the ids
//! of the live upstream process groups and SIGKILLs them all when the
//! gateway dies, however it dies (its stdin, our end of a pipe, then reads
//! EOF). The parent-death signal only reaches an upstream's leader; this
//! also reaches the grandchildren in its group (`npx` → `node`, forks).
//!
//! The watchdog runs in its own process group, so a Ctrl-C meant for the
//! gateway's group does not end it before it has done its job.
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Reads `+ PGID` / `- PGID` lines; at EOF kills every group still listed.
const SCRIPT: &str = r#"groups=" "
while read -r op pg; do
  case "$op" in
    +) groups="$groups$pg " ;;
    -) case "$groups" in *" $pg "*) groups="${groups%% $pg *} ${groups#* $pg }" ;; esac ;;
  esac
done
for pg in $groups; do kill -9 "-$pg" 2>/dev/null; done
"#;

struct Watchdog {
    /// Kept so the process is not reaped early; never waited on.
    _child: Child,
    stdin: ChildStdin,
}

fn watchdog() -> &'static Mutex<Option<Watchdog>> {
    static WATCHDOG: OnceLock<Mutex<Option<Watchdog>>> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        // A path: std then uses posix_spawn (vfork) instead of a fork.
        let spawned = Command::new("/bin/sh")
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .process_group(0)
            .spawn();
        Mutex::new(match spawned {
            Ok(mut child) => child.stdin.take().map(|stdin| Watchdog {
                _child: child,
                stdin,
            }),
            Err(err) => {
                tracing::warn!(%err, "no group watchdog: upstreams may outlive a killed gateway");
                None
            }
        })
    })
}

fn tell(line: &str) {
    let mut slot = watchdog().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dog) = slot.as_mut()
        && dog.stdin.write_all(line.as_bytes()).is_err()
    {
        tracing::warn!("group watchdog is gone: upstreams may outlive a killed gateway");
        *slot = None;
    }
}

/// Puts a new upstream process group under watch.
pub(super) fn watch(pgid: i32) {
    tell(&format!("+ {pgid}\n"));
}

/// Takes a group that has been killed off the watch list.
pub(super) fn release(pgid: i32) {
    tell(&format!("- {pgid}\n"));
}
