//! The upstream launcher: a small binary beside `bulwark` that the gateway
//! `posix_spawn`s to start a stdio upstream (see
//! `bulwark_actors::upstream::launcher`). It only sets the parent-death
//! signal and execs the upstream; being small, it costs a fraction of what
//! loading the gateway's own binary (tens of MB, ~70k relocations) would for
//! every upstream started.
fn main() {
    bulwark_actors::upstream::launcher::exec_if_asked();
    eprintln!(
        "bulwark-launch starts upstream processes for the bulwark gateway; it is not run by hand"
    );
    std::process::exit(2);
}
