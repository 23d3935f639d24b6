//! A socket of this crate registered with tokio, so a task can wait for it to be readable.

use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

mod sealed {
    /// Implemented only by this crate's socket types (see [`super::Pollable`]).
    pub trait Sealed {}
}

/// A non-blocking socket of this crate that [`Async`] may register: it owns its descriptor
/// in a private field, never replaces or closes it while alive, and `as_raw_fd` always returns
/// it. Sealed, because registration relies on exactly that.
pub trait Pollable: AsRawFd + sealed::Sealed {}

macro_rules! pollable {
    ($($t:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Pollable for $t {}
    )*};
}

pollable!(
    crate::packet::ArpSocket,
    crate::packet::SnoopSocket,
    crate::icmp::IcmpSocket,
);

/// A [`Pollable`] socket registered with the current tokio runtime's reactor for readability.
/// Sends stay synchronous through [`Async::get_ref`] (they never wait: a full queue is an
/// error the caller may ignore).
#[derive(Debug)]
pub struct Async<T: Pollable> {
    fd: AsyncFd<T>,
}

impl<T: Pollable> Async<T> {
    /// Registers `sock`. Must be called inside a tokio runtime (tokio panics otherwise).
    #[allow(unsafe_code)]
    pub fn new(sock: T) -> io::Result<Self> {
        // SAFETY: `AsyncFd::register_with_interest` needs the descriptor `sock.as_raw_fd()`
        // returns to be open, to stay the same open descriptor until the AsyncFd is dropped or
        // `into_inner` is called, and to be what every later `as_raw_fd` returns. `T: Pollable`
        // is sealed to this crate's socket types, each of which owns its descriptor in a private
        // field set once at construction, offers no method that closes or replaces it, and
        // returns it from `as_raw_fd`. The AsyncFd is private to this struct, which hands out
        // only `&T` (never `&mut T`, so the socket cannot be swapped for another) and never
        // calls `into_inner`; dropping the AsyncFd deregisters before `T` closes the descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Self { fd })
    }

    /// The socket, for its non-waiting calls (sends).
    pub fn get_ref(&self) -> &T {
        self.fd.get_ref()
    }

    /// Waits until the socket is readable and runs `op` (a non-blocking receive) on it; when
    /// `op` would block, waits again. Returns `op`'s first result that is not `WouldBlock`.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| op(fd.get_ref())) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}
