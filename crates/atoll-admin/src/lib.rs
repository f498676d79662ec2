//! The admin server of `atoll up --admin ADDR`: what runs, for the operator.
//!
//! - `GET /metrics`: the process's [`Metrics`] in the Prometheus text format
//!   ([`prometheus`]).
//! - `GET /`: a dashboard (HTML, JS and CSS embedded in the binary; no CDN, works
//!   offline): per app and component, requests, errors and latency percentiles over the
//!   last minute and the last five, limits hit, refusals, instances live, what the
//!   component is granted; the recent failures with their reason (the guest's frames, a
//!   capability denied before it); the live log tail ([`logtail`]).
//! - `GET /api/state`: the same as JSON; `GET /events`: server-sent events, a `state`
//!   every second and each new `log` line.
//!
//! Read-only (only GET and HEAD), and refusing what a web page elsewhere could make a
//! browser send: a `Host` that is not an address or `localhost` (DNS rebinding), an
//! `Origin` that is not the admin server's own, `Sec-Fetch-Site: cross-site` or
//! `same-site`. The binary binds it to loopback unless told otherwise.
//!
//! A host with more to say than its guests' counts (a fleet node: its readiness, the
//! control plane, desired and served versions) adds it with an [`Extension`]: its
//! families are appended to `/metrics`, its state appears in `/api/state`.
//!
//! Not for: changing anything (no reload, no stop), or serving guests; counting is
//! `atoll-runtime`'s ([`Metrics`]), this crate only reads.

pub mod logtail;
pub mod prometheus;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atoll_runtime::metrics::{
    ComponentSnapshot, FAILURE_KINDS, HistogramSnapshot, MetricsSnapshot, REFUSAL_REASONS,
    failure_kind_label,
};
use atoll_runtime::{LiveApps, Metrics};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{Either, Full};
use serde_json::{Value, json};

pub use logtail::LogTail;

/// How often the history takes a snapshot, and how much it keeps.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// The longest window the dashboard shows.
pub const HISTORY: Duration = Duration::from_secs(300);
/// Connections the admin server keeps open at once (event streams included).
pub const MAX_CONNECTIONS: usize = 64;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const DASHBOARD_JS: &str = include_str!("../assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../assets/dashboard.css");

/// What a host adds to the admin endpoints beside the guests' counts.
pub trait Extension: Send + Sync + 'static {
    /// The key its state has in `/api/state` (e.g. `fleet`).
    fn key(&self) -> &'static str;
    /// Its state now, as JSON.
    fn state(&self) -> Value;
    /// Its metric families, appended to `/metrics`: each whole under its `# HELP` and
    /// `# TYPE` ([`prometheus::family`]), names not used by the guests' families.
    fn prometheus(&self, out: &mut String);
}

/// What the admin server reads.
#[derive(Clone)]
pub struct Admin {
    metrics: Metrics,
    apps: LiveApps,
    tail: Option<LogTail>,
    extension: Option<Arc<dyn Extension>>,
    history: Arc<Mutex<VecDeque<(Instant, MetricsSnapshot)>>>,
    started: SystemTime,
}

impl Admin {
    /// An admin view of `apps` and the `metrics` their loader counts into; `tail`, if the
    /// binary installed its layer.
    pub fn new(metrics: Metrics, apps: LiveApps, tail: Option<LogTail>) -> Self {
        Self {
            metrics,
            apps,
            tail,
            extension: None,
            history: Arc::new(Mutex::new(VecDeque::new())),
            started: SystemTime::now(),
        }
    }

    /// Add the host's own metrics and state.
    pub fn with_extension(mut self, extension: Arc<dyn Extension>) -> Self {
        self.extension = Some(extension);
        self
    }

    fn sample(&self) {
        let now = Instant::now();
        let snapshot = self.metrics.snapshot();
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.push_back((now, snapshot));
        while history
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > HISTORY + SAMPLE_EVERY)
        {
            history.pop_front();
        }
    }

    /// The oldest kept snapshot taken no longer than `window` ago.
    fn baseline(&self, window: Duration) -> Option<(Instant, MetricsSnapshot)> {
        let now = Instant::now();
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history
            .iter()
            .find(|(at, _)| now.duration_since(*at) <= window)
            .cloned()
    }

    /// The dashboard's state: every app and component with its counts and grants, the
    /// recent failures, the process.
    pub fn state(&self) -> Value {
        let now = self.metrics.snapshot();
        let windows: Vec<(&str, Option<(Instant, MetricsSnapshot)>)> = vec![
            ("1m", self.baseline(Duration::from_secs(60))),
            ("5m", self.baseline(HISTORY)),
        ];
        let snapshot = self.apps.snapshot();
        let mut apps = Vec::new();
        for loaded in snapshot.apps() {
            let app = loaded.app();
            let mut components = Vec::new();
            for (name, served) in loaded.components() {
                let Some(manifest) = app.components.get(name) else {
                    continue;
                };
                let counts = now
                    .components
                    .iter()
                    .find(|c| c.app == app.name && c.component == *name);
                let routes: Vec<String> = app
                    .http_triggers()
                    .filter(|t| t.component == *name)
                    .map(|t| t.route.to_string())
                    .collect();
                let cron: Vec<String> = app
                    .cron_triggers()
                    .filter(|t| t.component == *name)
                    .map(|t| t.schedule.to_string())
                    .collect();
                let mut windowed = serde_json::Map::new();
                for (label, base) in &windows {
                    windowed.insert(
                        label.to_string(),
                        window(counts, base.as_ref(), &app.name, name),
                    );
                }
                let g = &manifest.grants;
                components.push(json!({
                    "name": name,
                    "routes": routes,
                    "cron": cron,
                    "totals": counts.map(totals),
                    "windows": windowed,
                    "limits": {
                        "memory_bytes": manifest.limits.memory,
                        "timeout_ms": u64::try_from(manifest.limits.timeout.as_millis()).unwrap_or(u64::MAX),
                        "max_concurrency": served.max_concurrency(),
                    },
                    "grants": {
                        "allowed_outbound_hosts": g.allowed_outbound_hosts.iter().map(|h| h.written.clone()).collect::<Vec<_>>(),
                        "key_value_stores": g.key_value_stores,
                        "files": g.files.iter().map(|f| f.destination.clone()).collect::<Vec<_>>(),
                        "variables": g.variables.iter().map(|v| v.key.clone()).collect::<Vec<_>>(),
                        "environment": manifest.environment.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
                    },
                }));
            }
            apps.push(json!({ "name": app.name, "components": components }));
        }
        let failures: Vec<Value> = self
            .metrics
            .recent_failures()
            .into_iter()
            .rev()
            .map(|f| {
                json!({
                    "at_ms": unix_ms(f.at),
                    "app": f.app,
                    "component": f.component,
                    "kind": f.kind,
                    "reason": f.reason,
                })
            })
            .collect();
        let mut state = json!({
            "uptime_s": self.started.elapsed().map_or(0, |d| d.as_secs()),
            "now_ms": unix_ms(SystemTime::now()),
            "apps": apps,
            "unrouted": now.unrouted,
            "failures_total": now.failures_total,
            "recent_failures": failures,
        });
        if let (Some(ext), Some(map)) = (&self.extension, state.as_object_mut()) {
            map.insert(ext.key().to_string(), ext.state());
        }
        state
    }

    /// The Prometheus text of the metrics now.
    pub fn prometheus(&self) -> String {
        let mut out = prometheus::render(
            &self.metrics.snapshot(),
            &prometheus::ProcessInfo {
                start_time_seconds: self
                    .started
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
                resident_bytes: resident_bytes(),
                version: env!("CARGO_PKG_VERSION"),
            },
        );
        if let Some(ext) = &self.extension {
            ext.prometheus(&mut out);
        }
        out
    }
}

fn totals(c: &ComponentSnapshot) -> Value {
    let http = c.http_total();
    let mut failures = serde_json::Map::new();
    for (kind, n) in FAILURE_KINDS.iter().zip(c.failures) {
        failures.insert(failure_kind_label(*kind).to_string(), n.into());
    }
    let mut refusals = serde_json::Map::new();
    for (reason, n) in REFUSAL_REASONS.iter().zip(c.refusals) {
        refusals.insert(reason.to_string(), n.into());
    }
    let mut denials = serde_json::Map::new();
    for (kind, n) in atoll_capabilities::DENIAL_KINDS.iter().zip(c.denials) {
        denials.insert(kind.to_string(), n.into());
    }
    json!({
        "denials": denials,
        "requests": http.count(),
        "errors": c.http_errors(),
        "runs_ok": c.finished,
        "cancelled": c.cancelled,
        "failures": failures,
        "refusals": refusals,
        "live": c.live,
    })
}

/// Requests, errors and latency percentiles between `base` and now.
fn window(
    now: Option<&ComponentSnapshot>,
    base: Option<&(Instant, MetricsSnapshot)>,
    app: &str,
    component: &str,
) -> Value {
    let Some(now) = now else {
        return json!({ "requests": 0, "errors": 0, "rate": 0.0 });
    };
    let earlier = base.and_then(|(_, s)| {
        s.components
            .iter()
            .find(|c| c.app == app && c.component == component)
    });
    let total_now = now.http_total();
    let (requests, errors): (HistogramSnapshot, u64) = match earlier {
        Some(e) => (
            total_now.since(&e.http_total()),
            now.http_errors().saturating_sub(e.http_errors()),
        ),
        None => (total_now, now.http_errors()),
    };
    let seconds = base.map_or(0.0, |(at, _)| at.elapsed().as_secs_f64());
    let ms = |q: f64| requests.quantile(q).map(|s| (s * 1e6).round() / 1e3);
    json!({
        "requests": requests.count(),
        "errors": errors,
        "rate": if seconds > 0.5 { requests.count() as f64 / seconds } else { 0.0 },
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
        "seconds": seconds,
    })
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The process's resident set size, from `/proc/self/statm`.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0)?)
}

/// Serve the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    admin: Admin,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        tracing::warn!(
            "the admin server on {local} is not on loopback: anyone who can reach it sees the dashboard, the log tail and the metrics"
        );
    }
    let sampler = {
        let admin = admin.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                admin.sample();
            }
        })
    };
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("admin accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Beyond the cap a connection is closed at once: the admin server is for a few
        // dashboards and a scraper, and must not be a way to hold the process's memory.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("admin: {MAX_CONNECTIONS} connections open, closing a new one");
            drop(stream);
            continue;
        };
        let admin = admin.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(handle(&admin, local, req)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            // A client gets 10 s for each request head, idle keep-alive included; an
            // event stream, once answered, lives as long as its client reads it.
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(io, service)
                .await
            {
                tracing::debug!("admin connection ended: {e}");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    sampler.abort();
    connections.abort_all();
    Ok(())
}

type AdminBody = Either<Full<Bytes>, EventStream>;

fn handle<B>(admin: &Admin, local: SocketAddr, req: Request<B>) -> Response<AdminBody> {
    if let Err((status, why)) = check(&req, local) {
        return text(status, "text/plain; charset=utf-8", why.to_string());
    }
    let mut resp = match req.uri().path() {
        "/" | "/index.html" => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            INDEX_HTML.to_string(),
        ),
        "/dashboard.js" => text(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            DASHBOARD_JS.to_string(),
        ),
        "/dashboard.css" => text(
            StatusCode::OK,
            "text/css; charset=utf-8",
            DASHBOARD_CSS.to_string(),
        ),
        "/metrics" => text(StatusCode::OK, prometheus::CONTENT_TYPE, admin.prometheus()),
        "/api/state" => text(
            StatusCode::OK,
            "application/json",
            admin.state().to_string(),
        ),
        "/events" => events(admin),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".to_string(),
        ),
    };
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    if req.method() == Method::HEAD {
        *resp.body_mut() = Either::Left(Full::new(Bytes::new()));
    }
    resp
}

/// Refuse writes and what another site could make a browser send.
fn check<B>(req: &Request<B>, local: SocketAddr) -> Result<(), (StatusCode, &'static str)> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "the admin server is read-only: only GET and HEAD\n",
        ));
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or((StatusCode::BAD_REQUEST, "a Host header is required\n"))?;
    if !host_is_address(host, local) {
        return Err((
            StatusCode::FORBIDDEN,
            "the Host header names neither an IP address nor localhost (refused against DNS rebinding); open the dashboard by its address\n",
        ));
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let own = format!("http://{host}");
        if origin.as_bytes() != own.as_bytes() {
            return Err((StatusCode::FORBIDDEN, "cross-origin requests are refused\n"));
        }
    }
    if let Some(site) = req.headers().get("sec-fetch-site")
        && (site == "cross-site" || site == "same-site")
    {
        return Err((StatusCode::FORBIDDEN, "cross-site requests are refused\n"));
    }
    Ok(())
}

/// `127.0.0.1:9090`, `[::1]:9090`, `localhost:9090` (the port must be the admin's own).
fn host_is_address(host: &str, local: SocketAddr) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !p.contains(']') => (n, Some(p)),
        _ => (host, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().ok() != Some(local.port())) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<AdminBody> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `text/event-stream`: the kept log lines, then a `state` every second and each new
/// `log` line, until the client goes away.
fn events(admin: &Admin) -> Response<AdminBody> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let admin = admin.clone();
    tokio::spawn(async move {
        let mut live = admin.tail.as_ref().map(|t| t.subscribe());
        if let Some(tail) = &admin.tail {
            for line in tail.lines() {
                if tx.send(log_event(&line)).await.is_err() {
                    return;
                }
            }
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let event = tokio::select! {
                _ = tick.tick() => sse("state", &admin.state().to_string()),
                line = async {
                    match live.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match line {
                    Ok(line) => log_event(&line),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        sse("lagged", &n.to_string())
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        live = None;
                        continue;
                    }
                },
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let mut resp = Response::new(Either::Right(EventStream { rx }));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp
}

fn log_event(line: &logtail::LogLine) -> Bytes {
    sse(
        "log",
        &json!({
            "seq": line.seq,
            "at_ms": line.at_ms,
            "level": line.level,
            "app": line.app,
            "component": line.component,
            "message": line.message,
        })
        .to_string(),
    )
}

/// One server-sent event; `data` is one line of JSON (no newline in it).
fn sse(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The body of `/events`: what the event task sends, until it stops or the client goes.
pub struct EventStream {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl http_body::Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap_or_default()
    }

    #[test]
    fn cross_origin_rebinding_and_writes_are_refused() {
        let local: SocketAddr = "127.0.0.1:9090".parse().unwrap_or_else(|_| unreachable!());
        let ok = |h: &[(&str, &str)]| check(&req(Method::GET, h), local).is_ok();
        assert!(ok(&[("host", "127.0.0.1:9090")]));
        assert!(ok(&[("host", "localhost:9090")]));
        assert!(ok(&[("host", "[::1]:9090")]));
        assert!(ok(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "http://127.0.0.1:9090"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(!ok(&[]));
        assert!(!ok(&[("host", "attacker.example:9090")]));
        assert!(!ok(&[("host", "127.0.0.1:9091")]));
        assert!(!ok(&[
            ("host", "127.0.0.1:9090"),
            ("origin", "http://attacker.example")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:9090"),
            ("sec-fetch-site", "cross-site")
        ]));
        let post = check(&req(Method::POST, &[("host", "127.0.0.1:9090")]), local);
        assert_eq!(post.map_err(|e| e.0), Err(StatusCode::METHOD_NOT_ALLOWED));
    }
}
