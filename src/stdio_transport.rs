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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
    let reader = fast(std::io::stdin().as_fd(), |fd| {
        tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
    });
    let writer = fast(std::io::stdout().as_fd(), |fd| {
        tokio::net::unix::pipe::Sender::from_owned_fd(fd)
    });
    (
        reader.map_or_else(|| Either::Right(tokio::io::stdin()), Either::Left),
        writer.map_or_else(|| Either::Right(tokio::io::stdout()), Either::Left),
    )
}

/// A duplicate of the standard stream `fd` driven by the reactor: through
/// `pipe` when it is a pipe, as a socket when it is one; `None` otherwise.
fn fast<P>(
    fd: BorrowedFd<'_>,
    pipe: impl FnOnce(OwnedFd) -> std::io::Result<P>,
) -> Option<Either<P, tokio::net::UnixStream>> {
    let fd = fd.try_clone_to_owned().ok()?;
    let kind = std::fs::File::from(fd.try_clone().ok()?)
        .metadata()
        .ok()?
        .file_type();
    if kind.is_fifo() {
        pipe(fd).ok().map(Either::Left)
    } else if kind.is_socket() {
        let stream = std::os::unix::net::UnixStream::from(fd);
        stream.set_nonblocking(true).ok()?;
        tokio::net::UnixStream::from_std(stream)
            .ok()
            .map(Either::Right)
    } else {
        None
    }
}
