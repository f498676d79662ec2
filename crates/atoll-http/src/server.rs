//! The listener: accepts connections, serves HTTP/1.1 (keep-alive) and HTTP/2 (h2c, by
//! prior knowledge) on them, and shuts down gracefully.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::apps::AppSet;

/// Operator settings of the HTTP trigger.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request head (request line + headers) accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// Largest request body accepted; larger gets 413.
    pub max_body_bytes: u64,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// Connections open at once; beyond this, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Concurrency limit for components whose manifest sets none.
    pub default_max_concurrency: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        Self {
            max_header_bytes: 64 * 1024,
            max_body_bytes: 64 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            default_max_concurrency: (cores * 100).min(1000),
        }
    }
}

pub(crate) struct ServerState {
    pub(crate) apps: Arc<AppSet>,
    pub(crate) config: HttpConfig,
}

/// Serve `apps` on `listener` until `shutdown` completes; then stop accepting, let
/// in-flight requests finish (up to `shutdown_grace`), and return.
pub async fn serve(
    listener: TcpListener,
    apps: Arc<AppSet>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace;
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
    let state = Arc::new(ServerState { apps, config });
    let graceful = GracefulShutdown::new();
    // A cap on open connections, so a flood of idle ones cannot exhaust file descriptors.
    let connections = Arc::new(tokio::sync::Semaphore::new(
        state.config.max_connections.max(1),
    ));
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
                let state = state.clone();
                let service = hyper::service::service_fn(move |req| {
                    crate::request::handle(state.clone(), req)
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Err(e) = conn.await {
                        tracing::debug!("connection ended with an error: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    // New connections are refused from here on.
    drop(listener);
    tracing::info!("shutting down: waiting up to {grace:?} for in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {grace:?}; closing them");
    }
    Ok(())
}

/// Wait for a connection slot, then accept one connection.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<tokio::sync::Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, tokio::sync::OwnedSemaphorePermit)> {
    let permit = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("connection slots closed"))?;
    let (stream, _peer) = listener.accept().await?;
    Ok((stream, permit))
}
