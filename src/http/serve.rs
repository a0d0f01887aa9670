//! The accept loop of both ports, with the bounds warp's own server lacks:
//! slow or greedy clients cannot take the compute down.
//!
//! - A request's head must arrive within [`Limits::header_timeout`], counted
//!   from when the connection is ready for it (hyper's header-read timeout):
//!   a client that sends nothing, or its headers a byte at a time, and an
//!   idle keep-alive connection, are closed.
//! - A response that makes no progress for [`Limits::idle_timeout`] (a
//!   reader that stopped reading) closes its connection; a request body that
//!   stalls as long is refused ([`super::router`]).
//! - At most [`Limits::max_connections`] connections per port, and never more
//!   than the descriptor limit leaves room for ([`connection_cap`]). When the
//!   cap is reached, a new connection takes the place of the connection idle
//!   the longest (one between requests, or still sending its head): a prober
//!   or the control plane connecting afresh is always served while idle
//!   connections fill the port. Only when every connection is in the middle
//!   of a request is the newcomer answered 503 at once.
//!
//! Each request carries its caller's address ([`Peer`]) for the loopback rule
//! of [`crate::auth`].

use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// The bounds on the connections of each port (`--http-*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a request's head may take to arrive (also how long a
    /// keep-alive connection may stay idle).
    pub header_timeout: Duration,
    /// How long a response may make no progress, or a request body send nothing.
    pub idle_timeout: Duration,
    /// Connections per port, at most (lowered to fit the descriptor limit).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 128,
        }
    }
}

/// Descriptors kept for everything else compute_ctl opens (its listeners,
/// its children's pipes, its postgres connections), outside both ports' caps.
pub const FDS_KEPT: u64 = 64;

/// The cap of one port: `wanted`, lowered so that both ports full leave
/// [`FDS_KEPT`] descriptors of the soft `RLIMIT_NOFILE`; at least 8.
pub fn connection_cap(wanted: usize) -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .unwrap_or(1024);
    let room = usize::try_from(soft.saturating_sub(FDS_KEPT) / 2).unwrap_or(usize::MAX);
    wanted.min(room).max(8)
}

/// The caller of a request, as its TCP connection says (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// What the accept loop knows of one connection.
struct Slot {
    /// Requests in progress (head received, response not fully written).
    busy: usize,
    /// Since when it has had no request in progress.
    idle_since: Instant,
    /// Closes it at once (taken when it is evicted).
    evict: Option<oneshot::Sender<()>>,
}

/// The connections of one port.
#[derive(Default)]
struct Registry {
    slots: Mutex<HashMap<u64, Slot>>,
    next: AtomicU64,
}

impl Registry {
    fn add(&self, evict: oneshot::Sender<()>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Slot {
            busy: 0,
            idle_since: Instant::now(),
            evict: Some(evict),
        };
        self.slots.lock().insert(id, slot);
        id
    }

    fn remove(&self, id: u64) {
        self.slots.lock().remove(&id);
    }

    fn len(&self) -> usize {
        self.slots.lock().len()
    }

    /// Closes the connection idle the longest; false when every one is busy.
    fn evict_one(&self) -> bool {
        let mut slots = self.slots.lock();
        let oldest = slots
            .iter()
            .filter(|(_, s)| s.busy == 0)
            .min_by_key(|(_, s)| s.idle_since)
            .map(|(id, _)| *id);
        let Some(id) = oldest else { return false };
        if let Some(slot) = slots.remove(&id) {
            if let Some(evict) = slot.evict {
                let _ = evict.send(());
            }
        }
        true
    }

    fn set_busy(&self, id: u64, delta: isize) {
        if let Some(slot) = self.slots.lock().get_mut(&id) {
            slot.busy = slot.busy.saturating_add_signed(delta);
            if slot.busy == 0 {
                slot.idle_since = Instant::now();
            }
        }
    }
}

/// A request in progress on connection `id`, until its response's body is
/// written (or dropped).
struct Busy {
    registry: Arc<Registry>,
    id: u64,
}

impl Busy {
    fn new(registry: Arc<Registry>, id: u64) -> Busy {
        registry.set_busy(id, 1);
        Busy { registry, id }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.registry.set_busy(self.id, -1);
    }
}

/// A response body that keeps its request counted as in progress.
struct Tracked<B> {
    body: B,
    _busy: Busy,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, noting since when a write has been waiting for the peer to
/// read (0: none is), in milliseconds after `epoch`.
struct Watched {
    tcp: TcpStream,
    epoch: Instant,
    write_blocked_since: Arc<AtomicU64>,
}

impl Watched {
    fn note_write<T>(&self, poll: &Poll<T>) {
        match poll {
            Poll::Pending => {
                let now = self.epoch.elapsed().as_millis().max(1);
                let now = u64::try_from(now).unwrap_or(u64::MAX);
                let _ = self.write_blocked_since.compare_exchange(
                    0,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(_) => self.write_blocked_since.store(0, Ordering::Relaxed),
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.note_write(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.note_write(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.tcp).poll_flush(cx);
        self.note_write(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Serves `filter` on `listener` within `limits` until `stop` turns true;
/// then lets the connections finish their requests (graceful).
pub async fn run(
    listener: TcpListener,
    filter: BoxedFilter<(Response,)>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let cap = connection_cap(limits.max_connections);
    let registry = Arc::new(Registry::default());
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks as we go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok((tcp, peer)) => {
                if registry.len() >= cap && !registry.evict_one() {
                    tokio::spawn(refuse(tcp));
                    continue;
                }
                let (evict, evicted) = oneshot::channel();
                let id = registry.add(evict);
                connections.spawn(connection(
                    tcp,
                    Peer(peer),
                    filter.clone(),
                    limits,
                    (registry.clone(), id, evicted),
                    stop.clone(),
                ));
            }
            Err(e) => {
                // Out of descriptors: give up the idlest connection and retry.
                let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                let freed = out_of_fds && registry.evict_one();
                tracing::warn!("accepting an HTTP connection: {e}");
                let pause = if freed { 10 } else { 100 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
    while connections.join_next().await.is_some() {}
}

/// Serves one connection: hyper's HTTP/1 with the header timeout, a watchdog for stalled responses, eviction and graceful stop.
async fn connection(
    tcp: TcpStream,
    peer: Peer,
    filter: BoxedFilter<(Response,)>,
    limits: Limits,
    (registry, id, mut evicted): (Arc<Registry>, u64, oneshot::Receiver<()>),
    mut stop: watch::Receiver<bool>,
) {
    let epoch = Instant::now();
    let blocked = Arc::new(AtomicU64::new(0));
    let io = Watched {
        tcp,
        epoch,
        write_blocked_since: blocked.clone(),
    };
    let service = {
        let registry = registry.clone();
        let svc = warp::service(filter);
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer);
            let busy = Busy::new(registry.clone(), id);
            let mut svc = svc.clone();
            async move {
                let resp = tower_service::Service::call(&mut svc, req).await?;
                Ok::<_, Infallible>(resp.map(|body| Tracked { body, _busy: busy }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let tick = (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut watchdog = tokio::time::interval(tick);
    let mut stopping = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(target: "http", "connection from {}: {e}", peer.0);
                }
                break;
            }
            _ = &mut evicted => {
                tracing::debug!(target: "http", "connection from {} closed for a newer one", peer.0);
                break;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = watchdog.tick() => {
                let since = blocked.load(Ordering::Relaxed);
                let stalled = since != 0
                    && epoch.elapsed().saturating_sub(Duration::from_millis(since)) >= limits.idle_timeout;
                if stalled {
                    tracing::warn!(
                        target: "http",
                        "closing the connection from {}: it read nothing of its response for {:?}",
                        peer.0, limits.idle_timeout
                    );
                    break;
                }
            }
        }
    }
    registry.remove(id);
}

/// The answer to a connection beyond the cap while every other is busy.
async fn refuse(mut tcp: TcpStream) {
    let body = r#"{"error":"too many connections; retry shortly"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
