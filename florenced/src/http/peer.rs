//! One client connection's socket, shared by hyper (which reads requests and
//! writes responses through `PeerIo`) and the request handler (which asks
//! `Peer::disconnected` whether the client is still there).
//!
//! A client that half-closes (shuts down its sending side after a complete
//! request, as `curl` with some options, netcat and many scripts do) is still
//! waiting for its answer; one that closed its socket or died is not. Both
//! look the same to a server that only reads: a FIN. hyper runs with
//! `half_close(true)` so a FIN alone cancels nothing; when a FIN arrives while
//! an answer is pending, `disconnected` sends an interim `100 Continue` (RFC
//! 9110 §15.2: an HTTP/1.1 client must accept a 1xx it did not expect; the
//! clients that do no more than that, like Python's http.client, skip
//! exactly 100). A half-closed client reads it and waits on; the kernel of
//! a client that closed answers it with a reset, which is an actual
//! disconnect. No crate does this: hyper offers no 1xx on the server side.

use parking_lot::Mutex;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The probe: an interim response that carries nothing.
const PROBE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

struct Shared {
    stream: TcpStream,
    /// Bytes read from the client so far (the connection's idle clock uses it).
    read: AtomicU64,
    /// Handlers reading a request body: the connection may be closed for a
    /// new one when none is without a request.
    reading_body: AtomicUsize,
    /// The probe went out (once per connection is enough).
    probed: AtomicBool,
    /// hyper has written since its last completed flush: a response is partly
    /// out, so nothing may be written between its bytes.
    dirty: AtomicBool,
    /// Serialises hyper's writes with the probe, and holds what of the probe a
    /// full send buffer refused: it goes out before hyper's next bytes.
    write: Mutex<Vec<u8>>,
}

enum Probe {
    Sent,
    /// An earlier wait of this connection sent it.
    Already,
    /// The socket refused it: the client is gone.
    Failed,
    /// A response is partly out; nothing may go between its bytes.
    NotNow,
}

/// The socket as hyper sees it.
pub struct PeerIo(Arc<Shared>);

/// The socket as a handler sees it (a request extension).
#[derive(Clone)]
pub struct Peer(Arc<Shared>);

pub fn split(stream: TcpStream) -> (PeerIo, Peer) {
    let shared = Arc::new(Shared {
        stream,
        read: AtomicU64::new(0),
        reading_body: AtomicUsize::new(0),
        probed: AtomicBool::new(false),
        dirty: AtomicBool::new(false),
        write: Mutex::new(Vec::new()),
    });
    (PeerIo(shared.clone()), Peer(shared))
}

impl Shared {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Vec<u8>> {
        self.write.lock()
    }

    /// Writes what is left of a probe; Ready(Ok) once nothing is left.
    fn poll_pending_probe(&self, cx: &mut Context<'_>, left: &mut Vec<u8>) -> Poll<io::Result<()>> {
        while !left.is_empty() {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(left) {
                Ok(n) => {
                    left.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl PeerIo {
    /// Bytes read from the client so far.
    pub fn counter(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let shared = self.0.clone();
        move || shared.read.load(Ordering::SeqCst)
    }

    /// Whether a handler is reading a request body now.
    pub fn reading_body(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let shared = self.0.clone();
        move || shared.reading_body.load(Ordering::SeqCst) > 0
    }
}

/// Marks a request body as being read until dropped.
pub struct ReadingBody(Arc<Shared>);

impl Drop for ReadingBody {
    fn drop(&mut self) {
        self.0.reading_body.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for PeerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let s = &self.0;
        loop {
            ready!(s.stream.poll_read_ready(cx))?;
            match s.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    s.read.fetch_add(n as u64, Ordering::SeqCst);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for PeerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let s = &self.0;
        let mut left = s.lock();
        ready!(s.poll_pending_probe(cx, &mut left))?;
        s.dirty.store(true, Ordering::SeqCst);
        loop {
            ready!(s.stream.poll_write_ready(cx))?;
            match s.stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let s = &self.0;
        let mut left = s.lock();
        ready!(s.poll_pending_probe(cx, &mut left))?;
        s.dirty.store(true, Ordering::SeqCst);
        loop {
            ready!(s.stream.poll_write_ready(cx))?;
            match s.stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// hyper flushes once its own buffer is empty: nothing of a response is
    /// held back any more.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let s = &self.0;
        let mut left = s.lock();
        ready!(s.poll_pending_probe(cx, &mut left))?;
        s.dirty.store(false, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.0.stream);
        // SAFETY: shutdown(2) on the descriptor this value owns; it stays open.
        let rc = unsafe { libc::shutdown(fd, libc::SHUT_WR) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOTCONN) {
                return Poll::Ready(Err(e));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Peer {
    /// Marks the request's body as being read while the guard lives.
    pub fn reading_body(&self) -> ReadingBody {
        self.0.reading_body.fetch_add(1, Ordering::SeqCst);
        ReadingBody(self.0.clone())
    }

    /// Resolves when the client has actually gone away (reset, or closed and
    /// then reset by the probe); never for a client that only half-closed, or
    /// when that cannot be told (an HTTP/1.0 client, which may not be sent a
    /// 1xx; bytes of a next request already waiting).
    pub async fn disconnected(&self, http11: bool) {
        let s = &self.0;
        let mut byte = [0u8; 1];
        match s.stream.peek(&mut byte).await {
            Err(_) => return,
            Ok(0) if http11 => {}
            Ok(_) => return std::future::pending().await,
        }
        match self.probe() {
            Probe::Sent | Probe::Already => {}
            Probe::Failed => return,
            Probe::NotNow => return std::future::pending().await,
        }
        // A client that is gone resets the connection on the probe's arrival.
        loop {
            match s.stream.ready(Interest::ERROR).await {
                Err(_) => return,
                Ok(r) if r.is_error() => return,
                Ok(_) => {}
            }
            if matches!(s.stream.take_error(), Ok(Some(_)) | Err(_)) {
                return;
            }
        }
    }

    /// Sends the probe unless a response is partly out. What a full send
    /// buffer refuses goes out before hyper's next bytes.
    fn probe(&self) -> Probe {
        let s = &self.0;
        let mut left = s.lock();
        if s.probed.load(Ordering::SeqCst) {
            return Probe::Already;
        }
        if s.dirty.load(Ordering::SeqCst) || !left.is_empty() {
            return Probe::NotNow;
        }
        s.probed.store(true, Ordering::SeqCst);
        match s.stream.try_write(PROBE) {
            Ok(n) => {
                left.extend_from_slice(&PROBE[n..]);
                Probe::Sent
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                left.extend_from_slice(PROBE);
                Probe::Sent
            }
            Err(_) => Probe::Failed,
        }
    }
}
