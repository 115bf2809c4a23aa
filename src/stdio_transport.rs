//! Stdin and stdout as an MCP transport that does not go through tokio's
//! blocking thread pool.
//!
//! `tokio::io::stdin()`/`stdout()` run every read and write as a blocking task
//! on another thread, one at a time: two thread hand-offs per message, which
//! caps a stdio server at a few thousand messages a second however many
//! calls are in flight. When a parent launched us with pipes (as the gateway
//! launches its upstreams) or sockets (as Node's `child_process` does), the
//! same descriptors can be driven by the reactor instead. Anything else (a
//! terminal, a file) keeps tokio's portable stdio.
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;

use tokio_util::either::Either;

/// Stdin for reading.
pub type Reader =
    Either<Either<tokio::net::unix::pipe::Receiver, tokio::net::UnixStream>, tokio::io::Stdin>;
/// Stdout for writing.
pub type Writer =
    Either<Either<tokio::net::unix::pipe::Sender, tokio::net::UnixStream>, tokio::io::Stdout>;

/// Stdin and stdout, non-blocking where they are pipes or sockets. Must be
/// called inside a tokio runtime.
pub fn stdio() -> (Reader, Writer) {
    (reader(), writer())
}

/// What kind of descriptor a standard stream is.
enum Kind {
    Pipe,
    Socket,
    Other,
}

fn kind(fd: &OwnedFd) -> Kind {
    let Ok(meta) = std::fs::File::from(match fd.try_clone() {
        Ok(clone) => clone,
        Err(_) => return Kind::Other,
    })
    .metadata() else {
        return Kind::Other;
    };
    let kind = meta.file_type();
    if kind.is_fifo() {
        Kind::Pipe
    } else if kind.is_socket() {
        Kind::Socket
    } else {
        Kind::Other
    }
}

/// A socket stream from a standard stream's duplicate, in non-blocking mode.
fn socket(fd: OwnedFd) -> Option<tokio::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(stream).ok()
}

fn reader() -> Reader {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok();
    let fast = fd.and_then(|fd| match kind(&fd) {
        Kind::Pipe => tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
            .ok()
            .map(Either::Left),
        Kind::Socket => socket(fd).map(Either::Right),
        Kind::Other => None,
    });
    fast.map_or_else(|| Either::Right(tokio::io::stdin()), Either::Left)
}

fn writer() -> Writer {
    let fd = std::io::stdout().as_fd().try_clone_to_owned().ok();
    let fast = fd.and_then(|fd| match kind(&fd) {
        Kind::Pipe => tokio::net::unix::pipe::Sender::from_owned_fd(fd)
            .ok()
            .map(Either::Left),
        Kind::Socket => socket(fd).map(Either::Right),
        Kind::Other => None,
    });
    fast.map_or_else(|| Either::Right(tokio::io::stdout()), Either::Left)
}
