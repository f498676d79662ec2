//! The listener: accepts connections, serves HTTP/1.1 (keep-alive) and HTTP/2 (h2c, by
//! prior knowledge) on them, and shuts down gracefully.
//!
//! Threading: one acceptor (in the caller's runtime) hands each accepted connection to
//! one of `workers` event loops, each a thread with its own current-thread tokio runtime
//! (the one with the fewest open connections gets it). A connection, its requests and
//! their guest instances then stay on that thread: no work stealing, so no cross-thread
//! wake-ups on the per-request path. With one loop per core, loop i is pinned to core i
//! (`affinity.rs`). Each loop sends its connections' small writes together after each
//! pass over its ready tasks (`cork.rs`). Guests cannot hog a loop: they yield at every epoch
//! tick and long runners are throttled (see `atoll-engine`'s `CpuShare`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use arc_swap::ArcSwap;
use atoll_runtime::LiveApps;

use crate::routes::RouteTable;

/// Operator settings of the HTTP trigger.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request head (request line + headers) accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// Largest request body accepted; larger gets 413.
    pub max_body_bytes: u64,
    /// Largest response body sent; a guest writing more has its response aborted.
    pub max_response_bytes: u64,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// Connections open at once; beyond this, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Event-loop threads serving connections (default: one per core).
    pub workers: usize,
    /// Pin each event loop to a core of its own when there is exactly one loop per core
    /// the process may use (see `affinity.rs`). Otherwise they float: with fewer loops
    /// than cores, so that several processes on one big machine do not all crowd the
    /// first cores; with more, so that the scheduler can spread them.
    pub pin_workers: bool,
    /// Where requests are counted: by app, component, route, method and status (the
    /// loader's metrics, so the admin server sees them with the guests' runs); requests
    /// no route matched are counted here too.
    pub metrics: atoll_runtime::Metrics,
    /// Where request spans go, if anywhere: one server span per routed request (a child
    /// of the caller's `traceparent`), with its host calls as children. Off by default.
    pub tracer: Option<atoll_capabilities::trace::Tracer>,
    /// With a flag, the server itself answers `GET /.atoll/live` (200 while the process
    /// serves) and `GET /.atoll/ready` (200 while the flag is set, else 503) before any
    /// route, for load balancers and Kubernetes probes (`atoll node`). Off by default, so
    /// an app served by `atoll up` may own those paths.
    pub health: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Record each request with what its guest saw (`atoll up --record`), or answer its
    /// host calls from a recording (`atoll replay`); see `record.rs`. Off by default.
    pub taping: Option<crate::Taping>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            max_header_bytes: 64 * 1024,
            max_body_bytes: 64 * 1024 * 1024,
            max_response_bytes: 1 << 30,
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            workers: cores,
            pin_workers: true,
            metrics: atoll_runtime::Metrics::default(),
            tracer: None,
            health: None,
            taping: None,
        }
    }
}

pub(crate) struct ServerState {
    /// The routes over the live apps' current snapshot; replaced when they change.
    pub(crate) routes: ArcSwap<RouteTable>,
    pub(crate) config: HttpConfig,
}

/// An accepted connection on its way to a worker, with its connection slot.
type Handoff = (std::net::TcpStream, OwnedSemaphorePermit);

/// The acceptor's view of one worker.
struct Worker {
    connections: Arc<AtomicUsize>,
    sender: mpsc::UnboundedSender<Handoff>,
    done: oneshot::Receiver<()>,
}

/// Serve the HTTP triggers of `apps` on `listener` until `shutdown` completes; then stop
/// accepting, let in-flight requests finish (up to `shutdown_grace`), and return. A
/// change to `apps` takes effect for the requests that start after it (the route table
/// is rebuilt from each new snapshot); requests in flight finish on the version they
/// started on. Check a set with [`RouteTable::build`] before committing it: a set that
/// does not build here is logged and the previous routes stay.
pub async fn serve(
    listener: TcpListener,
    apps: LiveApps,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace;
    // One builder for all workers and connections: a connection's task holds a reference.
    let builder = Arc::new(http_builder(&config));
    // Subscribed before the first table is built, so a change in between is not missed.
    let changes = apps.subscribe();
    let table = RouteTable::build(&apps.snapshot())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let state = Arc::new(ServerState {
        routes: ArcSwap::from_pointee(table),
        config,
    });
    let follower = tokio::spawn(follow(apps, changes, state.clone()));
    let count = state.config.workers.max(1);
    let cpus = crate::affinity::allowed_cpus();
    let pin = state.config.pin_workers && cpus.len() == count;
    let mut workers = Vec::new();
    for i in 0..count {
        let cpu = if pin { cpus.get(i).copied() } else { None };
        workers.push(start_worker(i, cpu, state.clone(), builder.clone())?);
    }
    // A cap on open connections, so a flood of idle ones cannot exhaust file descriptors.
    let connections = Arc::new(Semaphore::new(state.config.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        tokio::select! {
            accepted = accept(&listener, &connections) => {
                let (stream, permit) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Nagle would hold small responses back by up to 40 ms.
                let _ = stream.set_nodelay(true);
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("cannot hand a connection to a worker: {e}");
                        continue;
                    }
                };
                // The least busy worker takes it. Relaxed is enough: a stale count only
                // makes the balance a little less even.
                let Some(worker) = workers
                    .iter()
                    .min_by_key(|w| w.connections.load(Ordering::Relaxed))
                else {
                    break;
                };
                worker.connections.fetch_add(1, Ordering::Relaxed);
                if worker.sender.send((stream, permit)).is_err() {
                    worker.connections.fetch_sub(1, Ordering::Relaxed);
                    tracing::error!("a worker thread has stopped; refusing the connection");
                }
            }
            () = &mut shutdown => break,
        }
    }
    // New connections are refused from here on; each worker drains its own.
    drop(listener);
    tracing::info!("shutting down: waiting up to {grace:?} for in-flight requests");
    let mut waiting = Vec::new();
    for worker in workers {
        drop(worker.sender);
        waiting.push(worker.done);
    }
    for done in waiting {
        let _ = done.await;
    }
    follower.abort();
    Ok(())
}

/// Rebuild the route table from every new snapshot of `apps`. Requests that already
/// hold a target keep it (and with it their app's version).
async fn follow(
    apps: LiveApps,
    mut changes: tokio::sync::watch::Receiver<u64>,
    state: Arc<ServerState>,
) {
    while changes.changed().await.is_ok() {
        let snapshot = apps.snapshot();
        if snapshot.generation() == state.routes.load().generation() {
            continue;
        }
        match RouteTable::build(&snapshot) {
            Ok(table) => {
                state.routes.store(Arc::new(table));
                tracing::debug!(
                    generation = snapshot.generation(),
                    "HTTP routes rebuilt for the new set of apps"
                );
            }
            Err(e) => tracing::error!(
                "the new set of apps cannot be served over HTTP, keeping the previous routes: {e}"
            ),
        }
    }
}

fn http_builder(config: &HttpConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .max_buf_size(config.max_header_bytes.max(8192))
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        // An idle or stalled HTTP/2 peer is pinged, and dropped if it does not answer.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    builder
}

/// Start worker `index` (pinned to `cpu` if given): a thread running a current-thread
/// runtime that serves the connections the acceptor sends it, until the acceptor hangs
/// up; then it lets its in-flight requests finish (up to the grace period) and signals
/// `done`.
fn start_worker(
    index: usize,
    cpu: Option<usize>,
    state: Arc<ServerState>,
    builder: Arc<auto::Builder<TokioExecutor>>,
) -> std::io::Result<Worker> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (sender, mut receiver) = mpsc::unbounded_channel::<Handoff>();
    let (done_tx, done) = oneshot::channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    std::thread::Builder::new()
        .name(format!("atoll-http-{index}"))
        .spawn(move || {
            if let Some(cpu) = cpu {
                match crate::affinity::pin_current_thread(cpu) {
                    Ok(()) => tracing::debug!("event loop {index} pinned to CPU {cpu}"),
                    Err(e) => {
                        tracing::debug!("event loop {index} not pinned to CPU {cpu}: {e}")
                    }
                }
            }
            runtime.block_on(async move {
                let graceful = GracefulShutdown::new();
                let flusher = crate::cork::Flusher::start();
                while let Some((stream, permit)) = receiver.recv().await {
                    let stream = match tokio::net::TcpStream::from_std(stream) {
                        Ok(s) => s,
                        Err(e) => {
                            count.fetch_sub(1, Ordering::Relaxed);
                            tracing::warn!("cannot serve an accepted connection: {e}");
                            continue;
                        }
                    };
                    let state = state.clone();
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    let count = count.clone();
                    let flusher = flusher.clone();
                    tokio::spawn(async move {
                        let limit = state.config.header_read_timeout;
                        if await_protocol(&stream, limit).await {
                            let service = hyper::service::service_fn(move |req| {
                                crate::request::handle(state.clone(), req)
                            });
                            // The connection's slot goes with its stream: one that lingers
                            // after hyper is done with it (cork.rs) still counts.
                            let stream = crate::cork::CorkedStream::new(stream, flusher, permit);
                            let conn = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .into_owned();
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!("connection ended with an error: {e}");
                            }
                        }
                        count.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                let grace = state.config.shutdown_grace;
                if tokio::time::timeout(grace, graceful.shutdown())
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        worker = index,
                        "in-flight requests did not finish within {grace:?}; closing them"
                    );
                }
            });
            let _ = done_tx.send(());
        })?;
    Ok(Worker {
        connections,
        sender,
        done,
    })
}

/// The first bytes of every HTTP/2 connection (prior knowledge).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Wait, at most `limit`, until the client has sent enough to tell HTTP/1 from HTTP/2:
/// the whole HTTP/2 preface, or a first byte that departs from it. Only peeks: hyper
/// reads the bytes again. hyper-util's own protocol sniffing has no timer, so without
/// this a client that sends nothing, or part of the preface, would hold its connection
/// slot forever; after it, HTTP/1's header timeout and HTTP/2's pings take over.
/// False when the client is too slow or hangs up.
async fn await_protocol(stream: &tokio::net::TcpStream, limit: Duration) -> bool {
    // A limit too far out to add (an absurd --header-timeout) waits a day instead.
    let now = tokio::time::Instant::now();
    let deadline = now
        .checked_add(limit)
        .unwrap_or(now + Duration::from_secs(86_400));
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return false,
        };
        if n == 0 {
            return false;
        }
        if n == H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] {
            return true;
        }
        // Part of the preface so far; peek sees the same bytes until more arrive.
        if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(5)))
            .await
            .is_err()
        {
            return false;
        }
    }
}

/// Wait for a connection slot, then accept one connection.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, OwnedSemaphorePermit)> {
    let permit = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("connection slots closed"))?;
    let (stream, _peer) = listener.accept().await?;
    Ok((stream, permit))
}
