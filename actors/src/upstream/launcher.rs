//! Starting upstream processes without forking the gateway.
//!
//! A `fork` of the gateway copies its page tables while holding its memory
//! map's lock, and then every page the gateway writes until the child execs
//! takes a copy-on-write fault: with 100 upstreams added and removed, the
//! gateway's request threads pay hundreds of page faults per upstream
//! started (`benches/control_plane.rs`). `posix_spawn` (which glibc does with
//! `vfork` semantics) copies nothing, but runs no code in the child, so it
//! cannot set the parent-death signal the upstream must carry.
//!
//! So the gateway starts a launcher through `posix_spawn`:
//! `LAUNCHER __upstream-exec GATEWAY_PID PROGRAM ARGS…` sets the
//! parent-death signal, checks that the gateway is still its parent, and
//! execs the upstream's program in its place (same pid, same process group,
//! same pipes and environment). The launcher is `bulwark-launch` beside the
//! gateway's binary (small: loading it costs ~1 ms of CPU where the
//! gateway's own binary costs ~4.4 ms, paid once per upstream started), else
//! the gateway's binary itself. Without a launcher (a test binary of this
//! crate) processes are forked with a `pre_exec` hook instead.
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::sys::signal::Signal;

/// The first argument that makes the gateway binary act as the launcher.
pub const SUBCOMMAND: &str = "__upstream-exec";

static LAUNCHER: OnceLock<PathBuf> = OnceLock::new();

/// The small launcher's file name, looked for beside the gateway's binary.
pub const LAUNCHER_BINARY: &str = "bulwark-launch";

/// Starts upstream processes through `bulwark-launch` beside this binary
/// when it is there, else through this very binary (whose `main` must then
/// call [`exec_if_asked`] first thing).
pub fn use_launcher() {
    LAUNCHER.get_or_init(|| launcher_for(std::env::current_exe().ok().as_deref()));
}

/// `bulwark-launch` beside `exe` when it is there, else `exe` itself (as
/// `/proc/self/exe`, which still names it after an upgrade replaced the file).
fn launcher_for(exe: Option<&Path>) -> PathBuf {
    exe.map(|exe| exe.with_file_name(LAUNCHER_BINARY))
        .filter(|small| is_executable(small))
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// The launcher to start upstreams through, if the binary is one.
pub(super) fn launcher() -> Option<&'static Path> {
    LAUNCHER.get().map(PathBuf::as_path)
}

/// In a process started as the launcher: sets the parent-death signal and
/// execs the upstream's program, never returning. Returns at once when the
/// process was not started as the launcher.
pub fn exec_if_asked() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(SUBCOMMAND.as_ref()) {
        return;
    }
    let parent = args
        .next()
        .and_then(|pid| pid.to_str()?.parse::<u32>().ok());
    let Some(program) = args.next() else {
        launch_failed("no program to start");
    };
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        launch_failed("could not set the parent-death signal");
    }
    // The gateway died before the prctl: nobody would kill us later.
    if parent != Some(std::os::unix::process::parent_id()) {
        launch_failed("the gateway exited during spawn");
    }
    let rest: Vec<OsString> = args.collect();
    let err = std::process::Command::new(&program).args(rest).exec();
    launch_failed(&format!("{}: {err}", program.to_string_lossy()));
}

/// Ends the launcher with `why` on the upstream's stderr (its tail shows it).
fn launch_failed(why: &str) -> ! {
    eprintln!("process could not start: {why}");
    std::process::exit(127)
}

/// Where `command` is, as the upstream would find it: a path (relative to
/// `cwd`), or looked up on `path` (the upstream's `PATH`). The error is what
/// a spawn would have reported.
pub(super) fn resolve(
    command: &str,
    path: Option<&std::ffi::OsStr>,
    cwd: Option<&Path>,
) -> Result<PathBuf, std::io::Error> {
    if command.contains('/') {
        let candidate = match cwd {
            Some(cwd) => cwd.join(command),
            None => PathBuf::from(command),
        };
        return match std::fs::metadata(&candidate) {
            Ok(_) if is_executable(&candidate) => Ok(PathBuf::from(command)),
            Ok(_) => Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
            Err(err) => Err(err),
        };
    }
    std::env::split_paths(path.unwrap_or_default())
        .map(|dir| match cwd {
            Some(cwd) if dir.is_relative() => cwd.join(dir).join(command),
            _ => dir.join(command),
        })
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| std::io::Error::from_raw_os_error(nix::libc::ENOENT))
}

fn is_executable(candidate: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(candidate)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_launcher_is_used_when_it_sits_beside_the_gateway() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let gateway = dir.path().join("bulwark");
        let alone = launcher_for(Some(&gateway));
        assert_eq!(alone, PathBuf::from("/proc/self/exe"));
        let small = dir.path().join(LAUNCHER_BINARY);
        std::fs::write(&small, "").unwrap();
        // Not executable: not a launcher.
        assert_eq!(launcher_for(Some(&gateway)), alone);
        std::fs::set_permissions(&small, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(launcher_for(Some(&gateway)), small);
        assert_eq!(launcher_for(None), alone);
    }

    #[test]
    fn commands_resolve_on_the_upstreams_path_as_a_spawn_would() {
        let path = std::ffi::OsString::from("/nonexistent:/bin:/usr/bin");
        let sh = resolve("sh", Some(&path), None).unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        let missing = resolve("no-such-mcp-server", Some(&path), None).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let missing = resolve("/nonexistent/mcp-server", None, None).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "No such file or directory (os error 2)"
        );
        // A path is taken as given, relative to the working directory.
        assert_eq!(
            resolve("bin/sh", None, Some(Path::new("/"))).unwrap(),
            PathBuf::from("bin/sh")
        );
    }
}
