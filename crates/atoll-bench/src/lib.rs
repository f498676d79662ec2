//! Peers and tools for the benchmark suite run by `bench/run`; not part of atoll itself.
//!
//! - `native-hello`: a native hyper "Hello, world!" server, the ceiling for any HTTP
//!   server on the machine (same hyper, tokio and socket settings as atoll).
//! - `cgi-hello`: a server that spawns a process per request and returns its output,
//!   what CGI-style process isolation costs.
//! - `loadgen`: a fixed-rate load generator that measures latency from each request's
//!   scheduled send time (so a stalled server cannot hide its queueing delay).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// Serve `handler` on `addr` with the same connection settings as atoll.
pub async fn serve<F, Fut>(addr: SocketAddr, handler: F) -> std::io::Result<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler().await) }
                });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The listen address from the first argument, default 127.0.0.1:3000.
pub fn addr_arg() -> SocketAddr {
    std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)))
}
