//! What the process counts about its guests, for the admin server (Prometheus
//! `/metrics`, the dashboard) and later exporters: per component, runs and failures by
//! kind, admission refusals by reason, instances live, histograms of the guest's run
//! and of instantiation; per HTTP route, method and status, a request-duration
//! histogram (recorded by the HTTP trigger); and the last failures with their reasons.
//!
//! Counts are kept per app and component name, not per loaded version: a reload keeps
//! them (a counter never goes back but when the process restarts). On the request path
//! a run costs a few relaxed atomic adds; an HTTP request adds one read lock
//! (uncontended: writers only add a label set never seen before) and a short scan.
//! Failures take a lock on the failure ring, off the path of a run that succeeds.
//!
//! Not for: exposition formats (the admin server writes Prometheus text from a
//! [`Metrics::snapshot`]), or anything the guest can name: every label value is the
//! operator's (app, component, route from the manifest) or bounded (method, status).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use atoll_engine::FailureKind;

/// Upper bounds of the histograms' buckets, in seconds (the last bucket is `+Inf`):
/// from 50 µs (an instance starts in ~10 µs, a hello request takes ~50 µs) to 10 s.
pub const BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

const BUCKET_NANOS: [u64; 17] = {
    let mut out = [0u64; 17];
    let mut i = 0;
    while i < 17 {
        out[i] = (BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

/// A latency histogram: counts per bucket (not cumulative) and the sum, in relaxed
/// atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 18],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Count one observation.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BUCKET_NANOS
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(BUCKET_NANOS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Its counts now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_nanos: self.sum_nanos.load(Relaxed),
        }
    }
}

/// A histogram's counts at one moment: `buckets[i]` observations fell in bucket `i`
/// (`BUCKETS[i]`, the last one `+Inf`), not cumulative.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket.
    pub buckets: [u64; 18],
    /// The sum of all observations, in nanoseconds.
    pub sum_nanos: u64,
}

impl HistogramSnapshot {
    /// How many observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// What was observed between `earlier` and this one.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            sum_nanos: self.sum_nanos.saturating_sub(earlier.sum_nanos),
        }
    }

    /// Add another's counts to this one.
    pub fn add(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_nanos += other.sum_nanos;
    }

    /// The `q` quantile (0..=1) in seconds, interpolated linearly inside its bucket as
    /// Prometheus' `histogram_quantile` does; `None` without observations. In the `+Inf`
    /// bucket it is the largest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (seen + n) as f64 >= rank {
                let Some(&upper) = BUCKETS.get(i) else {
                    return Some(BUCKETS[BUCKETS.len() - 1]);
                };
                let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
                let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * within);
            }
            seen += n;
        }
        Some(BUCKETS[BUCKETS.len() - 1])
    }
}

/// The failure kinds, in the order of [`ComponentSnapshot::failures`].
pub const FAILURE_KINDS: [FailureKind; 7] = [
    FailureKind::Timeout,
    FailureKind::MemoryLimit,
    FailureKind::StackOverflow,
    FailureKind::Trap,
    FailureKind::Capacity,
    FailureKind::NodeMemory,
    FailureKind::Other,
];

/// A failure kind as a label value (`timeout`, `memory_limit`, ...).
pub fn failure_kind_label(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Timeout => "timeout",
        FailureKind::MemoryLimit => "memory_limit",
        FailureKind::StackOverflow => "stack_overflow",
        FailureKind::Trap => "trap",
        FailureKind::Capacity => "capacity",
        FailureKind::NodeMemory => "node_memory",
        FailureKind::Other => "other",
    }
}

/// The refusal reasons, in the order of [`ComponentSnapshot::refusals`].
pub const REFUSAL_REASONS: [&str; 3] = ["concurrency", "memory", "failing"];

/// HTTP methods as the OTel conventions name them; any other is `_OTHER`, so a client
/// cannot make up label values.
pub const HTTP_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// The status codes a label names exactly; any other is counted under its class
/// (`HttpKey::status` 1 to 5, shown as `1xx` to `5xx`), so a guest that answers with
/// codes of its choosing cannot grow the number of series.
/// 499 is what the HTTP trigger records for a client that went away before its response
/// (nginx's convention).
pub const HTTP_STATUS_CODES: [u16; 32] = [
    200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409,
    410, 412, 413, 415, 422, 429, 431, 499, 500, 501, 502, 503, 504,
];

/// `status` if it is one of [`HTTP_STATUS_CODES`], else its class (1 to 5; 5 for codes
/// outside 100..=599).
pub fn status_label(status: u16) -> u16 {
    if HTTP_STATUS_CODES.contains(&status) {
        status
    } else {
        match status / 100 {
            c @ 1..=5 => c,
            _ => 5,
        }
    }
}

/// One HTTP label set of a component: route, method index (into [`HTTP_METHODS`]),
/// status code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HttpKey {
    /// The route as the manifest wrote it.
    pub route: Arc<str>,
    /// Index into [`HTTP_METHODS`].
    pub method: u8,
    /// The response's status code, or its class (1 to 5) for a code outside
    /// [`HTTP_STATUS_CODES`].
    pub status: u16,
}

impl HttpKey {
    /// The status's label value: `404`, or `4xx` for a class.
    pub fn status_label(&self) -> String {
        if self.status < 10 {
            format!("{}xx", self.status)
        } else {
            self.status.to_string()
        }
    }

    /// Whether the status is a server error.
    pub fn is_server_error(&self) -> bool {
        self.status >= 500 || self.status == 5
    }

    /// The method's label value.
    pub fn method_label(&self) -> &'static str {
        HTTP_METHODS[usize::from(self.method).min(HTTP_METHODS.len() - 1)]
    }
}

/// The index of `method` in [`HTTP_METHODS`].
pub fn method_index(method: &str) -> u8 {
    HTTP_METHODS[..HTTP_METHODS.len() - 1]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(HTTP_METHODS.len() - 1) as u8
}

/// Told of each observation as it is counted, for a host whose telemetry aggregates on
/// its own (OpenTelemetry's histograms, in `atoll-telemetry`). Set once per process with
/// [`Metrics::set_observer`]; without one, counting costs one atomic load more.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// An HTTP request of `component`, with the status it was answered (499: the client
    /// went away) and its duration to the response head. `method` is from [`HTTP_METHODS`].
    fn http_request(
        &self,
        component: &ComponentMetrics,
        route: &Arc<str>,
        method: &'static str,
        status: u16,
        took: Duration,
    );
    /// An instantiation of `component`.
    fn instantiated(&self, component: &ComponentMetrics, took: Duration);
    /// A run of `component` ended: `ok`, `cancelled` or the failure kind's label.
    fn run(&self, component: &ComponentMetrics, outcome: &'static str, took: Duration);
}

type ObserverSlot = Arc<std::sync::OnceLock<Arc<dyn Observer>>>;

/// What is counted about one component (by app and component name, across reloads).
#[derive(Debug)]
pub struct ComponentMetrics {
    app: Arc<str>,
    component: Arc<str>,
    observer: ObserverSlot,
    pub(crate) failures: crate::run::FailureLog,
    pub(crate) refusals: [AtomicU64; 3],
    finished: AtomicU64,
    cancelled: AtomicU64,
    live: AtomicI64,
    run: Histogram,
    instantiate: Histogram,
    http: RwLock<Vec<(HttpKey, Arc<Histogram>)>>,
    events: Arc<FailureRing>,
    denials: Mutex<Denials>,
}

/// The denial counts of every loaded version of a component: those still loaded, and
/// the sum of the ones gone (folded in when a new version is adopted).
#[derive(Debug, Default)]
struct Denials {
    versions: Vec<Arc<atoll_capabilities::DenialCounts>>,
    retired: [u64; 4],
}

impl ComponentMetrics {
    /// The app.
    pub fn app(&self) -> &Arc<str> {
        &self.app
    }

    /// The component.
    pub fn component(&self) -> &Arc<str> {
        &self.component
    }

    /// Count one instantiation (a trigger measures it: where it happens is its part).
    pub fn instantiated(&self, took: Duration) {
        self.instantiate.observe(took);
        if let Some(o) = self.observer.get() {
            o.instantiated(self, took);
        }
    }

    /// Count one HTTP request that reached this component, from its arrival to its
    /// response head (503s and 413s of admission included).
    /// `method` is its index in [`HTTP_METHODS`] ([`method_index`]).
    pub fn http_request(&self, route: &Arc<str>, method: u8, status: u16, took: Duration) {
        let method = method.min(HTTP_METHODS.len() as u8 - 1);
        if let Some(o) = self.observer.get() {
            o.http_request(self, route, HTTP_METHODS[usize::from(method)], status, took);
        }
        let status = status_label(status);
        let found = {
            let list = self.http.read().unwrap_or_else(|e| e.into_inner());
            list.iter()
                .find(|(k, _)| {
                    k.status == status && k.method == method && Arc::ptr_eq(&k.route, route)
                })
                .map(|(_, h)| h.clone())
        };
        let histogram = match found {
            Some(h) => h,
            None => {
                let mut list = self.http.write().unwrap_or_else(|e| e.into_inner());
                let key = HttpKey {
                    route: route.clone(),
                    method,
                    status,
                };
                // Another route `Arc` with the same text (after a reload) is the same label set.
                match list.iter().find(|(k, _)| *k == key) {
                    Some((_, h)) => h.clone(),
                    None => {
                        let h = Arc::new(Histogram::default());
                        list.push((key, h.clone()));
                        h
                    }
                }
            }
        };
        histogram.observe(took);
    }

    /// A run started: counted live until its [`Run`] ends or is dropped.
    pub(crate) fn run_started(self: &Arc<Self>) -> Run {
        self.live.fetch_add(1, Relaxed);
        Run {
            metrics: self.clone(),
            started: std::time::Instant::now(),
            ended: false,
        }
    }

    /// Record a failure in the ring of recent ones: a failed run's (kind from
    /// [`failure_kind_label`]), or one that was not a failed run, a guest that answered
    /// an error or returned without a response (the HTTP trigger's 500s).
    pub fn failed_otherwise(&self, kind: &'static str, reason: &str) {
        self.events.push(FailureEvent {
            at: SystemTime::now(),
            app: self.app.to_string(),
            component: self.component.to_string(),
            kind,
            reason: reason.to_string(),
        });
    }

    /// Count the denials of a newly loaded version too (its capabilities count them).
    pub fn adopt_denials(&self, counts: Arc<atoll_capabilities::DenialCounts>) {
        let mut d = self.denials.lock().unwrap_or_else(|e| e.into_inner());
        let Denials { versions, retired } = &mut *d;
        versions.retain(|v| {
            // Only these metrics hold it: that version is gone and counts no more.
            if Arc::strong_count(v) == 1 {
                for (r, n) in retired.iter_mut().zip(v.snapshot()) {
                    *r += n;
                }
                false
            } else {
                true
            }
        });
        versions.push(counts);
    }

    fn denials(&self) -> [u64; 4] {
        let d = self.denials.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = d.retired;
        for v in &d.versions {
            for (o, n) in out.iter_mut().zip(v.snapshot()) {
                *o += n;
            }
        }
        out
    }

    /// Its counts now.
    pub fn snapshot(&self) -> ComponentSnapshot {
        let mut http: Vec<(HttpKey, HistogramSnapshot)> = self
            .http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, h)| (k.clone(), h.snapshot()))
            .collect();
        http.sort_by(|a, b| a.0.cmp(&b.0));
        ComponentSnapshot {
            app: self.app.to_string(),
            component: self.component.to_string(),
            finished: self.finished.load(Relaxed),
            cancelled: self.cancelled.load(Relaxed),
            failures: FAILURE_KINDS.map(|k| self.failures.count(k)),
            refusals: std::array::from_fn(|i| self.refusals[i].load(Relaxed)),
            live: self.live.load(Relaxed).max(0) as u64,
            denials: self.denials(),
            run: self.run.snapshot(),
            instantiate: self.instantiate.snapshot(),
            http,
        }
    }
}

/// A run in progress: live until it ends ([`Run::ended`]) or is dropped unended (its
/// trigger gave up on it, e.g. an HTTP client went away before the response), which
/// counts it as cancelled.
pub(crate) struct Run {
    metrics: Arc<ComponentMetrics>,
    started: std::time::Instant,
    ended: bool,
}

impl Run {
    /// The run ended: returned (`None`) or failed.
    pub(crate) fn ended(mut self, failure: Option<(FailureKind, &str)>) {
        self.ended = true;
        let m = &self.metrics;
        let took = self.started.elapsed();
        m.run.observe(took);
        if let Some(o) = m.observer.get() {
            let outcome = failure.map_or("ok", |(kind, _)| failure_kind_label(kind));
            o.run(m, outcome, took);
        }
        match failure {
            None => {
                m.finished.fetch_add(1, Relaxed);
            }
            Some((kind, reason)) => m.failed_otherwise(failure_kind_label(kind), reason),
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let m = &self.metrics;
        if !self.ended {
            let took = self.started.elapsed();
            m.run.observe(took);
            m.cancelled.fetch_add(1, Relaxed);
            if let Some(o) = m.observer.get() {
                o.run(m, "cancelled", took);
            }
        }
        m.live.fetch_sub(1, Relaxed);
    }
}

/// One component's counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSnapshot {
    /// The app.
    pub app: String,
    /// The component.
    pub component: String,
    /// Runs that returned (the guest's answer may still be an error response).
    pub finished: u64,
    /// Runs their trigger dropped before they ended (an HTTP client that went away).
    pub cancelled: u64,
    /// Failed runs by kind, in the order of [`FAILURE_KINDS`].
    pub failures: [u64; 7],
    /// Admission refusals by reason, in the order of [`REFUSAL_REASONS`].
    pub refusals: [u64; 3],
    /// Instances running now.
    pub live: u64,
    /// Capability denials by kind, in the order of `atoll_capabilities::DENIAL_KINDS`.
    pub denials: [u64; 4],
    /// Guest runs (instantiate, call, and for HTTP the body while it streams).
    pub run: HistogramSnapshot,
    /// Instantiations.
    pub instantiate: HistogramSnapshot,
    /// HTTP requests by label set.
    pub http: Vec<(HttpKey, HistogramSnapshot)>,
}

impl ComponentSnapshot {
    /// All its HTTP requests in one histogram.
    pub fn http_total(&self) -> HistogramSnapshot {
        let mut out = HistogramSnapshot::default();
        for (_, h) in &self.http {
            out.add(h);
        }
        out
    }

    /// Its HTTP requests answered with a 5xx.
    pub fn http_errors(&self) -> u64 {
        self.http
            .iter()
            .filter(|(k, _)| k.is_server_error())
            .map(|(_, h)| h.count())
            .sum()
    }
}

/// A failure, for the dashboard's list of recent ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureEvent {
    /// When it happened.
    pub at: SystemTime,
    /// The app.
    pub app: String,
    /// The component.
    pub component: String,
    /// Its kind (`trap`, `timeout`, `memory_limit`, ..., `error_response`).
    pub kind: &'static str,
    /// The reason as logged: the cause, where in the guest, and a capability that was
    /// denied before it, if one was.
    pub reason: String,
}

/// How many failures the ring keeps.
pub const RECENT_FAILURES: usize = 100;

#[derive(Debug, Default)]
struct FailureRing {
    events: Mutex<VecDeque<FailureEvent>>,
    total: AtomicU64,
}

impl FailureRing {
    fn push(&self, event: FailureEvent) {
        self.total.fetch_add(1, Relaxed);
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == RECENT_FAILURES {
            events.pop_front();
        }
        events.push_back(event);
    }
}

/// A process's metrics: one [`ComponentMetrics`] per app and component name, and the
/// ring of recent failures. Cheap to clone (an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<MetricsInner>,
}

/// App name, component name.
type ComponentKey = (Arc<str>, Arc<str>);

#[derive(Debug, Default)]
struct MetricsInner {
    components: Mutex<BTreeMap<ComponentKey, Arc<ComponentMetrics>>>,
    events: Arc<FailureRing>,
    unrouted: AtomicU64,
    observer: ObserverSlot,
    spans: SpanCounts,
}

/// What became of the spans a telemetry exporter was given (counted by `atoll-telemetry`,
/// shown with the other metrics): a dead collector costs only dropped spans, and they are
/// counted here.
#[derive(Debug, Default)]
pub struct SpanCounts {
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans dropped because the export queue was full (the collector was slow or down).
    pub dropped_queue_full: AtomicU64,
    /// Spans dropped because their export failed (after the exporter's retries).
    pub dropped_export_failed: AtomicU64,
}

impl Metrics {
    /// The metrics of `component` of `app`, made on first use.
    pub fn component(&self, app: &Arc<str>, component: &Arc<str>) -> Arc<ComponentMetrics> {
        let mut map = self
            .inner
            .components
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry((app.clone(), component.clone()))
            .or_insert_with(|| {
                Arc::new(ComponentMetrics {
                    app: app.clone(),
                    component: component.clone(),
                    observer: self.inner.observer.clone(),
                    failures: Default::default(),
                    refusals: Default::default(),
                    finished: AtomicU64::new(0),
                    cancelled: AtomicU64::new(0),
                    live: AtomicI64::new(0),
                    run: Histogram::default(),
                    instantiate: Histogram::default(),
                    http: RwLock::new(Vec::new()),
                    events: self.inner.events.clone(),
                    denials: Mutex::default(),
                })
            })
            .clone()
    }

    /// Tell `observer` of every observation from now on (all components, those made
    /// before included). Once per process: false if one is set already.
    pub fn set_observer(&self, observer: Arc<dyn Observer>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// The exporter's span counts.
    pub fn spans(&self) -> &SpanCounts {
        &self.inner.spans
    }

    /// Count an HTTP request no route matched (404).
    pub fn unrouted(&self) {
        self.inner.unrouted.fetch_add(1, Relaxed);
    }

    /// Every component's counts, by app and component name, and the process's.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let components: Vec<Arc<ComponentMetrics>> = self
            .inner
            .components
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        MetricsSnapshot {
            components: components.iter().map(|c| c.snapshot()).collect(),
            unrouted: self.inner.unrouted.load(Relaxed),
            spans: [
                self.inner.spans.exported.load(Relaxed),
                self.inner.spans.dropped_queue_full.load(Relaxed),
                self.inner.spans.dropped_export_failed.load(Relaxed),
            ],
            failures_total: self.inner.events.total.load(Relaxed),
        }
    }

    /// The last [`RECENT_FAILURES`] failures, oldest first.
    pub fn recent_failures(&self) -> Vec<FailureEvent> {
        self.inner
            .events
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

/// The process's counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Per component, by app then component name.
    pub components: Vec<ComponentSnapshot>,
    /// HTTP requests no route matched.
    pub unrouted: u64,
    /// Spans exported, dropped with the queue full, dropped by a failed export (zero
    /// without telemetry).
    pub spans: [u64; 3],
    /// Failures ever recorded in the ring (the ring keeps the last ones).
    pub failures_total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.observe(Duration::from_micros(40)); // bucket 0 (<= 50 µs)
        }
        for _ in 0..10 {
            h.observe(Duration::from_millis(3)); // (2.5 ms, 5 ms]
        }
        h.observe(Duration::from_secs(60)); // +Inf
        let s = h.snapshot();
        assert_eq!(s.count(), 101);
        assert_eq!(s.buckets[0], 90);
        assert_eq!(s.buckets[6], 10);
        assert_eq!(s.buckets[17], 1);
        let p50 = s.quantile(0.5).unwrap_or_default();
        assert!(p50 > 0.0 && p50 <= 0.00005, "{p50}");
        let p95 = s.quantile(0.95).unwrap_or_default();
        assert!(p95 > 0.0025 && p95 <= 0.005, "{p95}");
        assert_eq!(s.quantile(1.0), Some(10.0));
        assert_eq!(HistogramSnapshot::default().quantile(0.5), None);
        let later = {
            h.observe(Duration::from_millis(3));
            h.snapshot()
        };
        let d = later.since(&s);
        assert_eq!(d.count(), 1);
        assert_eq!(d.buckets[6], 1);
        assert_eq!(d.sum_nanos, 3_000_000);
    }

    #[test]
    fn denials_of_every_version_are_summed_and_gone_ones_folded() {
        use atoll_capabilities::DenialCounts;
        let m = Metrics::default();
        let c = m.component(&"app".into(), &"c".into());
        let v1 = Arc::new(DenialCounts::default());
        c.adopt_denials(v1.clone());
        v1.count("socket");
        v1.count("socket");
        v1.count("no such kind");
        let v2 = Arc::new(DenialCounts::default());
        c.adopt_denials(v2.clone());
        v2.count("config");
        assert_eq!(c.snapshot().denials, [0, 2, 1, 0]);
        // v1's version is gone: its counts are kept, its handle is not.
        drop(v1);
        let v3 = Arc::new(DenialCounts::default());
        c.adopt_denials(v3.clone());
        v3.count("outbound_http");
        assert_eq!(c.snapshot().denials, [1, 2, 1, 0]);
        let held = c
            .denials
            .lock()
            .map(|d| d.versions.len())
            .unwrap_or_default();
        assert_eq!(held, 2);
    }

    #[test]
    fn methods_are_bounded_and_label_sets_shared_across_route_arcs() {
        assert_eq!(HTTP_METHODS[usize::from(method_index("GET"))], "GET");
        assert_eq!(HTTP_METHODS[usize::from(method_index("BREW"))], "_OTHER");
        let m = Metrics::default();
        let c = m.component(&"app".into(), &"c".into());
        let route: Arc<str> = "/a/...".into();
        let same_text: Arc<str> = "/a/...".into();
        c.http_request(&route, method_index("GET"), 200, Duration::from_micros(10));
        c.http_request(
            &same_text,
            method_index("GET"),
            200,
            Duration::from_micros(10),
        );
        c.http_request(&route, method_index("GET"), 503, Duration::from_micros(10));
        // A code of the guest's own choosing is counted under its class.
        c.http_request(&route, method_index("GET"), 599, Duration::from_micros(10));
        c.http_request(&route, method_index("GET"), 598, Duration::from_micros(10));
        c.http_request(&route, method_index("GET"), 999, Duration::from_micros(10));
        let s = m.snapshot();
        assert_eq!(s.components.len(), 1);
        let http = &s.components[0].http;
        assert_eq!(http.len(), 3);
        assert_eq!(http[0].0.status_label(), "5xx");
        assert_eq!(http[0].1.count(), 3);
        assert_eq!(http[1].0.status, 200);
        assert_eq!(http[1].1.count(), 2);
        assert_eq!(s.components[0].http_errors(), 4);
        // The same names are the same metrics (a reload keeps its counts).
        assert!(Arc::ptr_eq(&c, &m.component(&"app".into(), &"c".into())));
        // A run dropped before it ended is cancelled, and no longer live.
        let run = c.run_started();
        assert_eq!(c.snapshot().live, 1);
        drop(run);
        let after = c.snapshot();
        assert_eq!((after.live, after.cancelled, after.finished), (0, 1, 0));
        c.run_started().ended(None);
        assert_eq!(c.snapshot().finished, 1);
    }
}
