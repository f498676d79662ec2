//! Sending one allowed outbound request: resolve the host once, let the caller check
//! every address, then connect to exactly those addresses (never resolving again), do
//! TLS for `https` with the URL's host as the server name, and speak HTTP/1.1.
//!
//! Not for deciding what is allowed: the grant check and the address policy are in
//! `mod.rs` and `addresses.rs`; this module only carries out the decision.
//!
//! Bounds: DNS, TCP connect, TLS and the HTTP handshake together get the connect
//! timeout; the response head the first-byte timeout; each body chunk the between-bytes
//! timeout. Cost per request: one `getaddrinfo` on tokio's blocking pool for a name, one
//! connection (no pooling: an instance lives for one request), and for `https` one TLS
//! handshake against the webpki roots (the `ClientConfig` is built once per process).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use wasmtime_wasi_http::{Error, WasiBody};

use crate::runtime_config::MAX_OUTBOUND_TIMEOUT;

/// Where a request goes, taken from its URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The host without brackets or a trailing dot, lowercase.
    pub(crate) host: String,
    /// The host as an IP address, when the URL names one.
    pub(crate) ip: Option<IpAddr>,
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

impl Target {
    /// Read the target of `uri`; `None` when it has no host.
    pub(crate) fn of(uri: &http::Uri) -> Option<Target> {
        let raw = uri.host()?;
        let unbracketed = raw
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(raw);
        let lower = unbracketed.to_ascii_lowercase();
        let host = lower.strip_suffix('.').unwrap_or(&lower).to_string();
        let tls = uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"));
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Some(Target {
            ip: host.parse().ok(),
            host,
            port,
            tls,
        })
    }
}

/// `now + d`, never panicking: a `d` that does not fit is cut to the longest timeout an
/// operator may set ([`MAX_OUTBOUND_TIMEOUT`], which the runtime config enforces anyway),
/// and past even that the deadline is `now` (the request times out rather than the
/// process panicking).
pub(crate) fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX_OUTBOUND_TIMEOUT))
        .unwrap_or(now)
}

/// The timeouts of one request, already clamped to the operator's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// For the lookup, connecting, TLS and the HTTP handshake together.
    pub(crate) connect: Duration,
    pub(crate) first_byte: Duration,
    pub(crate) between_bytes: Duration,
}

/// Where names are looked up: the system resolver in production ([`SystemResolver`]),
/// a scripted one in tests. Only [`resolve`] calls it, once per request.
pub(crate) trait Resolve: Send + Sync {
    /// Every address `host` resolves to, with `port`.
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>>;
}

/// `getaddrinfo`, on tokio's blocking pool.
pub(crate) struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// Resolve `target` once: its IP literal as is, or a name through `resolver`, within
/// `deadline`. The caller checks every address before [`send`] connects to them.
pub(crate) async fn resolve(
    resolver: &dyn Resolve,
    target: &Target,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, Error> {
    if let Some(ip) = target.ip {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let lookup = resolver.lookup(&target.host, target.port);
    let addrs: Vec<SocketAddr> = match tokio::time::timeout_at(deadline, lookup).await {
        Err(_) => return Err(Error::DnsTimeout),
        Ok(Err(e)) => {
            return Err(Error::DnsError {
                rcode: Some(format!("cannot resolve the host: {e}")),
                info_code: None,
            });
        }
        Ok(Ok(addrs)) => addrs,
    };
    if addrs.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    Ok(addrs)
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// Send `request` over a new connection to the first of `addrs` that accepts (each one
/// already checked by the caller; no name is resolved here). Connecting, TLS and the
/// HTTP handshake must finish by `deadline` (the one [`resolve`] had: the connect timeout
/// covers the lookup too). `hold` is kept until the connection is done (the in-flight
/// slot). Returns the response and the future that drives the rest of the connection, as
/// `WasiHttpHooks::send_request` does.
pub(crate) async fn send<H: Send + 'static>(
    mut request: http::Request<WasiBody>,
    target: &Target,
    addrs: &[SocketAddr],
    deadline: Instant,
    timeouts: Timeouts,
    hold: H,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let tcp = connect_any(addrs, deadline).await?;
    let stream: Box<dyn Stream> = if target.tls {
        let server_name = match target.ip {
            Some(ip) => ServerName::IpAddress(ip.into()),
            None => ServerName::try_from(target.host.clone()).map_err(|_| {
                Error::InternalError(Some(format!(
                    "`{}` is not a valid TLS server name",
                    target.host
                )))
            })?,
        };
        let connector = tokio_rustls::TlsConnector::from(tls_config()?);
        match tokio::time::timeout_at(deadline, connector.connect(server_name, tcp)).await {
            Err(_) => return Err(Error::ConnectionTimeout),
            Ok(Err(e)) => return Err(Error::Tls(e)),
            Ok(Ok(tls)) => Box::new(tls),
        }
    } else {
        Box::new(tcp)
    };
    let handshake = hyper::client::conn::http1::handshake::<_, WasiBody>(TokioIo::new(stream));
    let (mut sender, conn) = tokio::time::timeout_at(deadline, handshake)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;

    // On the wire the request line carries the path only (the authority is in `host`).
    *request.uri_mut() = origin_form(request.uri())?;

    // Drive the connection while waiting for the response head.
    let mut conn = Box::pin(conn);
    let mut conn_done = false;
    let response = {
        let send = sender.send_request(request);
        tokio::pin!(send);
        let wait = async {
            loop {
                tokio::select! {
                    response = &mut send => break response.map_err(Error::from),
                    finished = &mut conn, if !conn_done => {
                        conn_done = true;
                        // A clean end means the response is ready; poll `send` again.
                        if let Err(e) = finished {
                            break Err(Error::from(e));
                        }
                    }
                }
            }
        };
        tokio::time::timeout(timeouts.first_byte, wait)
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??
    };
    let between_bytes = timeouts.between_bytes;
    let response = response.map(|incoming| {
        TimedBody {
            incoming,
            gap: between_bytes,
            timer: Box::pin(tokio::time::sleep(between_bytes)),
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        let _hold = hold;
        if conn_done {
            return Ok(());
        }
        conn.await.map_err(|e| {
            if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }
        })
    });
    Ok((response, io))
}

/// The origin-form request target of `uri` (`/path?query`), built from its parsed path
/// and query rather than re-parsed from text: an empty path is `/`, a bare `?query` (legal
/// in a wasi:http `path-with-query`) becomes `/?query`, and anything not starting with
/// `/` or `?` is refused, so the request line can never become an absolute-form or
/// asterisk-form target.
pub(crate) fn origin_form(uri: &http::Uri) -> Result<http::Uri, Error> {
    let pq = uri.path_and_query().map_or("", |p| p.as_str());
    let target = if pq.is_empty() {
        http::uri::PathAndQuery::from_static("/")
    } else if pq.starts_with('/') {
        match uri.path_and_query() {
            Some(p) => p.clone(),
            None => http::uri::PathAndQuery::from_static("/"),
        }
    } else if pq.starts_with('?') {
        http::uri::PathAndQuery::try_from(format!("/{pq}"))
            .map_err(|_| Error::HttpRequestUriInvalid)?
    } else {
        return Err(Error::HttpRequestUriInvalid);
    };
    Ok(http::Uri::from(target))
}

/// Connect to the first address that accepts, in the resolver's order, before `deadline`.
async fn connect_any(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(Error::ConnectionTimeout),
            Ok(Ok(stream)) => {
                // Small requests and responses: do not wait for Nagle.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        Some(e) => Error::Connect(e),
        None => Error::DestinationNotFound,
    })
}

/// The client TLS settings: webpki's roots, ring as the crypto provider, TLS 1.2 and 1.3.
/// Built once per process.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Error::InternalError(Some(format!("TLS setup failed: {e}"))))
}

/// A response body that fails with `connection-read-timeout` when no frame arrives for
/// `gap`.
struct TimedBody {
    incoming: hyper::body::Incoming,
    gap: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer
                    .as_mut()
                    .reset(deadline(Instant::now(), this.gap));
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) if e.is_timeout() => {
                Poll::Ready(Some(Err(Error::HttpResponseTimeout)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: http::Uri) -> Result<String, Error> {
        origin_form(&uri).map(|u| u.to_string())
    }

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        assert_eq!(
            deadline(now, Duration::from_secs(2)),
            now + Duration::from_secs(2)
        );
        assert_eq!(deadline(now, Duration::MAX), now + MAX_OUTBOUND_TIMEOUT);
    }

    #[test]
    fn the_request_target_is_origin_form() {
        let full = |pq: &str| {
            http::Uri::builder()
                .scheme("http")
                .authority("127.0.0.1:8080")
                .path_and_query(pq)
                .build()
                .expect("valid URI")
        };
        assert_eq!(target(full("/a/b?c=d")).ok().as_deref(), Some("/a/b?c=d"));
        assert_eq!(target(full("?a=b")).ok().as_deref(), Some("/?a=b"));
        assert_eq!(target(full("/")).ok().as_deref(), Some("/"));
        assert_eq!(
            target("http://127.0.0.1:8080".parse().expect("uri"))
                .ok()
                .as_deref(),
            Some("/")
        );
        // Never an absolute-form or asterisk-form target: a path that does not start
        // with `/` or `?` is refused, whatever it looks like.
        let mut refused = Vec::new();
        for odd in ["*", "http://evil.example/x", "evil.example/x"] {
            let uri = http::Uri::from_parts({
                let mut p = http::uri::Parts::default();
                p.scheme = Some(http::uri::Scheme::HTTP);
                p.authority = Some(http::uri::Authority::from_static("127.0.0.1"));
                p.path_and_query = http::uri::PathAndQuery::try_from(odd).ok();
                p
            });
            if let Ok(uri) = uri
                && uri.path_and_query().is_some()
            {
                assert!(
                    matches!(target(uri.clone()), Err(Error::HttpRequestUriInvalid)),
                    "{uri}"
                );
                refused.push(odd);
            }
        }
        // At least one of them can be built as a path, so the check above really ran.
        assert!(!refused.is_empty(), "no odd path could be built");
    }
}
