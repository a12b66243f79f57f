//! Accepting and serving HTTP/1.1 connections within bounds, so that slow,
//! idle or numerous clients cannot hold the daemon's file descriptors and
//! starve `/health`:
//!
//! - hyper's header-read timer: a request head must be complete within
//!   `http.header_read_timeout_s` of the connection opening or of the previous
//!   response, however slowly its bytes trickle in (slowloris);
//! - a keep-alive idle timer: a connection without a request in progress and
//!   without a byte of the next one is closed after `http.keep_alive_timeout_s`;
//! - a connection limit (`http.max_connections`, lowered to the open-file
//!   limit minus room for everything else): at the limit, the connection that
//!   has been without a request longest is closed for the new one (else the
//!   one reading a request body longest), so a health check gets in while
//!   idle or slow sockets are held; when every connection awaits an answer,
//!   accepting waits for one to finish;
//! - the body-read timer and the body byte budget live with the body
//!   (`body::read_body`).
//!
//! axum's `serve` sets none of these, so the loop is here; hyper and
//! hyper-util do the HTTP.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

use crate::config::Http;
use crate::http::peer;

/// File descriptors kept for everything but client connections: the model's
/// files, ONNX Runtime and GStreamer, logs, the listener, and a few accepts.
const FD_HEADROOM: u64 = 128;

/// hyper's read buffer per connection: the largest request head.
const HEAD_BUFFER: usize = 64 * 1024;

/// `http.max_connections`, lowered to fit the open-file limit with headroom.
pub fn connection_limit(configured: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        libc::RLIM_INFINITY
    };
    if soft == libc::RLIM_INFINITY {
        return configured;
    }
    let room = soft.saturating_sub(FD_HEADROOM).max(soft / 2).max(2);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// One connection's state, as the accept loop and its timers see it.
struct Conn {
    /// Requests inside the router or whose response is still being written.
    in_service: AtomicUsize,
    /// When the connection opened or its last response was written.
    idle_since: Mutex<Instant>,
    /// Bytes read when it became idle: more since means a request is arriving.
    read_at_idle: AtomicU64,
    read: Box<dyn Fn() -> u64 + Send + Sync>,
    reading_body: Box<dyn Fn() -> bool + Send + Sync>,
    /// Close it (to make room for a new one, or at shutdown).
    close: Notify,
    /// A request ended.
    went_idle: Notify,
}

impl Conn {
    fn last_idle(&self) -> Instant {
        *self.idle_since.lock()
    }

    fn idle_since(&self) -> Option<Instant> {
        (self.in_service.load(Ordering::SeqCst) == 0).then(|| self.last_idle())
    }

    /// Resolves once the connection has had no request and no byte of one for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let quiet = self
                .idle_since()
                .filter(|_| (self.read)() == self.read_at_idle.load(Ordering::SeqCst));
            match quiet {
                Some(since) if since.elapsed() >= limit => return,
                Some(since) => tokio::time::sleep_until((since + limit).into()).await,
                // Busy, or a request is arriving (hyper's header timer bounds
                // that): look again when a request ends or after `limit`.
                None => {
                    let _ = tokio::time::timeout(limit, self.went_idle.notified()).await;
                }
            }
        }
    }
}

/// Marks a request in service until dropped with its response body.
struct InService(Arc<Conn>);

impl InService {
    fn new(c: &Arc<Conn>) -> InService {
        c.in_service.fetch_add(1, Ordering::SeqCst);
        InService(c.clone())
    }
}

impl Drop for InService {
    fn drop(&mut self) {
        let c = &self.0;
        *c.idle_since.lock() = Instant::now();
        c.read_at_idle.store((c.read)(), Ordering::SeqCst);
        c.in_service.fetch_sub(1, Ordering::SeqCst);
        c.went_idle.notify_one();
    }
}

#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock()
    }

    /// Closes the connection without a request for longest, else the one that
    /// has been reading a request body longest (a slow body must not hold a
    /// slot against /health either); false if every one awaits an answer.
    fn close_idlest(&self) -> bool {
        let conns = self.lock();
        let idlest = conns
            .values()
            .filter_map(|c| match c.idle_since() {
                Some(t) => Some(((0, t), c)),
                None => (c.reading_body)().then(|| ((1, c.last_idle()), c)),
            })
            .min_by_key(|(rank, _)| *rank);
        match idlest {
            Some((_, c)) => {
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn close_idle(&self) {
        for c in self.lock().values() {
            if c.idle_since().is_some() {
                c.close.notify_one();
            }
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets the requests
/// in progress finish and returns when every connection is closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    http: &Http,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limit = connection_limit(http.max_connections);
    if limit < http.max_connections {
        tracing::warn!(
            configured = http.max_connections,
            effective = limit,
            "http.max_connections is above what the open-file limit allows (LimitNOFILE / ulimit -n); lowered"
        );
    }
    let slots = Arc::new(Semaphore::new(limit));
    let registry = Arc::new(Registry::default());
    let graceful = GracefulShutdown::new();
    let header_timeout = Duration::from_secs_f64(http.header_read_timeout_s);
    let keep_alive = Duration::from_secs_f64(http.keep_alive_timeout_s);
    let mut next_id = 0u64;
    let mut warned: Option<Instant> = None;
    // At most one warning per 10 s: a flood must not flood the journal too.
    let mut warn_now = move || {
        let now = Instant::now();
        let due = warned.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10));
        if due {
            warned = Some(now);
        }
        due
    };
    let stopped = |stop: &mut tokio::sync::watch::Receiver<bool>| {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };

    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors or memory: wait for some to be freed.
                    if warn_now() {
                        tracing::warn!(error = %e, "accept error");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                if !registry.close_idlest() && warn_now() {
                    tracing::warn!(
                        limit,
                        "every connection has a request in progress; the new one waits"
                    );
                }
                tokio::select! {
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    () = stopped(&mut stop) => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let (io, peer) = peer::split(stream);
        let id = next_id;
        next_id += 1;
        let conn = Arc::new(Conn {
            in_service: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            read_at_idle: AtomicU64::new(0),
            read: Box::new(io.counter()),
            reading_body: Box::new(io.reading_body()),
            close: Notify::new(),
            went_idle: Notify::new(),
        });
        registry.lock().insert(id, conn.clone());

        let service = {
            let app = app.clone();
            let conn = conn.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let busy = InService::new(&conn);
                req.extensions_mut().insert(ConnectInfo(remote));
                req.extensions_mut().insert(peer.clone());
                let app = app.clone();
                async move {
                    let resp = app.oneshot(req.map(Body::new)).await?;
                    // The request stays in service until hyper has written the
                    // body and drops it.
                    Ok::<_, std::convert::Infallible>(resp.map(|b| {
                        Body::new(b.map_frame(move |f| {
                            let _ = &busy;
                            f
                        }))
                    }))
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .half_close(true)
            .keep_alive(true)
            // Request heads are small; hyper's default (about 400 KiB) would
            // let each slow head hold that much.
            .max_buf_size(HEAD_BUFFER);
        let served = graceful.watch(builder.serve_connection(TokioIo::new(io), service));
        let registry = registry.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                r = served => if let Err(e) = r {
                    tracing::debug!(client = %remote, error = %e, "connection ended");
                },
                () = conn.close.notified() => {
                    tracing::debug!(client = %remote, "idle connection closed for a new one");
                }
                () = conn.idle_for(keep_alive) => {
                    tracing::debug!(client = %remote, "idle connection closed");
                }
            }
            registry.lock().remove(&id);
        });
    }
    drop(listener);
    registry.close_idle();
    graceful.shutdown().await;
    Ok(())
}
