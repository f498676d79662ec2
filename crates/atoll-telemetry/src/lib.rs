//! OpenTelemetry export for the `atoll` binary: the spans the triggers and host calls
//! open (through [`atoll_capabilities::trace`]) and the runtime's metrics, sent over
//! OTLP (HTTP/protobuf or gRPC) to a collector.
//!
//! Configured only by the standard environment, and off unless an endpoint is set:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
//! `_METRICS_ENDPOINT` for one signal), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`,
//! the default, or `grpc`; per signal too), `OTEL_SERVICE_NAME` (default `atoll`),
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` (`otlp`
//! or `none`), `OTEL_SDK_DISABLED`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`,
//! `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
//! `OTEL_METRIC_EXPORT_INTERVAL`, and the exporter's own (`_HEADERS`, `_TIMEOUT`, ...).
//!
//! Never on a request's critical section: a finished span goes into a bounded queue with
//! one `try_send` and a task exports batches; a full queue or a failed export drops
//! spans and counts them ([`atoll_runtime::metrics::SpanCounts`], shown on `/metrics`).
//! Counters are read from [`atoll_runtime::Metrics`] at export time; only the three
//! histograms are recorded per observation ([`atoll_runtime::metrics::Observer`]).
//!
//! Not for embedders who bring their own OpenTelemetry setup: they give the triggers a
//! [`atoll_capabilities::trace::Tracer`] of their own provider.
//!
//! TLS: an `https://` endpoint is verified against the webpki roots (Mozilla's), plus
//! the CA in `OTEL_EXPORTER_OTLP_CERTIFICATE` (or `_TRACES_` / `_METRICS_CERTIFICATE`),
//! a PEM file read and checked at start. HTTP/protobuf goes through `hyper-rustls`
//! (ring, TLS 1.2 and 1.3, HTTP/1.1), gRPC through tonic's own rustls. Client
//! certificates (mutual TLS) are not built in: setting `_CLIENT_KEY` or
//! `_CLIENT_CERTIFICATE` stops the start with a message. Dependencies for it, all
//! already in the tree through wasmtime-wasi-http and reqwest: `rustls` and
//! `webpki-roots`, `hyper-rustls`, `opentelemetry-http` (its hyper client, given the
//! TLS connector).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use atoll_runtime::Metrics;
use atoll_runtime::metrics::{
    ComponentMetrics, FAILURE_KINDS, REFUSAL_REASONS, failure_kind_label,
};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

mod tls;

/// What went wrong setting telemetry up: an `OTEL_*` value atoll cannot honour.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A variable has a value atoll does not support.
    #[error("{var}={value} is not supported: {help}")]
    Unsupported {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What to set instead.
        help: &'static str,
    },
    /// A CA file named by `OTEL_EXPORTER_OTLP_*CERTIFICATE` cannot be used.
    #[error("{var}={path}: {why}")]
    Certificate {
        /// The variable.
        var: String,
        /// The file it names.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The exporter could not be built (a malformed endpoint, say).
    #[error("cannot set up the OTLP {signal} exporter: {source}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// Why.
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// How one signal is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`, the spec's default).
    HttpProtobuf,
    /// OTLP/gRPC (`grpc`).
    Grpc,
}

/// Batching of spans, from `OTEL_BSP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Longest a finished span waits before its batch is sent (`OTEL_BSP_SCHEDULE_DELAY`, ms; 5000).
    pub delay: Duration,
    /// Spans waiting at most; more are dropped and counted (`OTEL_BSP_MAX_QUEUE_SIZE`; 2048).
    pub queue: usize,
    /// Spans per export at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`; 512).
    pub batch: usize,
}

/// TLS to a collector at an `https://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// Extra CA certificates to trust (PEM), from `OTEL_EXPORTER_OTLP_*CERTIFICATE`,
    /// beside the webpki roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The export timeout (`OTEL_EXPORTER_OTLP_*TIMEOUT`, ms; 10000).
    pub timeout: Duration,
}

/// What the environment asks for: each signal on (with its protocol) or off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Traces, if exported.
    pub traces: Option<Protocol>,
    /// Metrics, if exported.
    pub metrics: Option<Protocol>,
    /// TLS for traces (an `https://` endpoint).
    pub traces_tls: Option<Tls>,
    /// TLS for metrics (an `https://` endpoint).
    pub metrics_tls: Option<Tls>,
    /// Span batching.
    pub batching: Batching,
}

impl Settings {
    /// Read the settings from `var` (the process environment: [`Settings::from_env`]).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, TelemetryError> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let off = Self {
            traces: None,
            metrics: None,
            traces_tls: None,
            metrics_tls: None,
            batching: batching(&set)?,
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(off);
        }
        let signal = |signal: &'static str,
                      exporter_var: &'static str|
         -> Result<Option<(Protocol, Option<Tls>)>, TelemetryError> {
            match set(exporter_var).as_deref().map(str::trim) {
                None | Some("otlp") => {}
                Some("none") => return Ok(None),
                Some(other) => {
                    return Err(TelemetryError::Unsupported {
                        var: exporter_var,
                        value: other.to_owned(),
                        help: "atoll exports `otlp` or `none`",
                    });
                }
            }
            let signal_endpoint = format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT");
            let endpoint = match set(&signal_endpoint) {
                Some(v) => (endpoint_var(signal), v),
                None => match set("OTEL_EXPORTER_OTLP_ENDPOINT") {
                    Some(v) => ("OTEL_EXPORTER_OTLP_ENDPOINT", v),
                    None => return Ok(None),
                },
            };
            let url = endpoint.1.trim();
            let tls = if url.starts_with("https://") {
                Some(tls_settings(&set, signal)?)
            } else if url.starts_with("http://") {
                None
            } else {
                return Err(TelemetryError::Unsupported {
                    var: endpoint.0,
                    value: endpoint.1,
                    help: "use an http:// or https:// endpoint",
                });
            };
            let (var_name, value) = match set(&format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")) {
                Some(v) => (signal_protocol_var(signal), v),
                None => match set("OTEL_EXPORTER_OTLP_PROTOCOL") {
                    Some(v) => ("OTEL_EXPORTER_OTLP_PROTOCOL", v),
                    None => return Ok(Some((Protocol::HttpProtobuf, tls))),
                },
            };
            match value.trim() {
                "http/protobuf" => Ok(Some((Protocol::HttpProtobuf, tls))),
                "grpc" => Ok(Some((Protocol::Grpc, tls))),
                other => Err(TelemetryError::Unsupported {
                    var: var_name,
                    value: other.to_owned(),
                    help: "use `http/protobuf` or `grpc` (http/json is not built in)",
                }),
            }
        };
        let traces = signal("TRACES", "OTEL_TRACES_EXPORTER")?;
        let metrics = signal("METRICS", "OTEL_METRICS_EXPORTER")?;
        Ok(Self {
            traces: traces.as_ref().map(|t| t.0),
            traces_tls: traces.and_then(|t| t.1),
            metrics: metrics.as_ref().map(|m| m.0),
            metrics_tls: metrics.and_then(|m| m.1),
            ..off
        })
    }

    /// Read the settings from the process environment.
    pub fn from_env() -> Result<Self, TelemetryError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Whether anything is exported.
    pub fn enabled(&self) -> bool {
        self.traces.is_some() || self.metrics.is_some()
    }
}

/// The TLS settings of `signal` (`TRACES` or `METRICS`): its CA file, read and parsed
/// now, and its timeout. Client certificates are refused.
fn tls_settings(
    set: &impl Fn(&str) -> Option<String>,
    signal: &str,
) -> Result<Tls, TelemetryError> {
    let pick = |suffix: &str| {
        let specific = format!("OTEL_EXPORTER_OTLP_{signal}_{suffix}");
        match set(&specific) {
            Some(v) => Some((specific, v)),
            None => {
                let general = format!("OTEL_EXPORTER_OTLP_{suffix}");
                set(&general).map(|v| (general, v))
            }
        }
    };
    for suffix in ["CLIENT_KEY", "CLIENT_CERTIFICATE"] {
        if let Some((var, path)) = pick(suffix) {
            return Err(TelemetryError::Certificate {
                var,
                path,
                why: "client certificates (mutual TLS) are not built in; terminate mutual TLS in a collector sidecar".into(),
            });
        }
    }
    let ca_pem = match pick("CERTIFICATE") {
        None => None,
        Some((var, path)) => {
            let fail = |why: String| TelemetryError::Certificate {
                var: var.clone(),
                path: path.clone(),
                why,
            };
            let pem =
                std::fs::read(path.trim()).map_err(|e| fail(format!("cannot read it: {e}")))?;
            let certs = tls::parse_pem(&pem).map_err(fail)?;
            if certs == 0 {
                return Err(fail("it holds no PEM certificate".into()));
            }
            Some(pem)
        }
    };
    let timeout = match pick("TIMEOUT") {
        None => Duration::from_secs(10),
        Some((_, v)) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| TelemetryError::Unsupported {
                var: if signal == "TRACES" {
                    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
                } else {
                    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"
                },
                value: v,
                help: "milliseconds, a whole number",
            })?,
    };
    Ok(Tls { ca_pem, timeout })
}

fn endpoint_var(signal: &str) -> &'static str {
    if signal == "TRACES" {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    } else {
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
    }
}

fn signal_protocol_var(signal: &str) -> &'static str {
    if signal == "TRACES" {
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    } else {
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
    }
}

fn batching(set: &impl Fn(&str) -> Option<String>) -> Result<Batching, TelemetryError> {
    let number =
        |var: &'static str, default: u64| -> Result<u64, TelemetryError> {
            match set(var) {
                None => Ok(default),
                Some(v) => v.trim().parse::<u64>().ok().filter(|n| *n > 0).ok_or(
                    TelemetryError::Unsupported {
                        var,
                        value: v,
                        help: "a positive whole number",
                    },
                ),
            }
        };
    let queue = usize::try_from(number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?).unwrap_or(usize::MAX);
    let batch = usize::try_from(number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?)
        .unwrap_or(usize::MAX)
        .min(queue);
    Ok(Batching {
        delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)?),
        queue,
        batch,
    })
}

/// Telemetry running: the tracer the triggers use, and what flushes it at the end.
pub struct Telemetry {
    tracer: Option<atoll_capabilities::trace::Tracer>,
    traces: Option<(SdkTracerProvider, mpsc::Sender<oneshot::Sender<()>>)>,
    meters: Option<SdkMeterProvider>,
}

impl Telemetry {
    /// Start exporting what `settings` asks for, counting into `metrics`. Call inside a
    /// Tokio runtime (the export tasks run on it). `None` when nothing is exported.
    pub fn start(settings: &Settings, metrics: &Metrics) -> Result<Option<Self>, TelemetryError> {
        if !settings.enabled() {
            return Ok(None);
        }
        if settings.traces_tls.is_some() || settings.metrics_tls.is_some() {
            // tonic's TLS takes the process's default provider, which rustls cannot pick
            // by itself when the binary links more than one: ring, as everywhere else.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let resource = resource();
        let mut out = Self {
            tracer: None,
            traces: None,
            meters: None,
        };
        if let Some(protocol) = settings.traces {
            use opentelemetry_otlp::{WithHttpConfig as _, WithTonicConfig as _};
            let builder = opentelemetry_otlp::SpanExporter::builder();
            let tls = settings.traces_tls.as_ref();
            let exporter = match (protocol, tls) {
                (Protocol::HttpProtobuf, None) => builder.with_http().build(),
                (Protocol::HttpProtobuf, Some(t)) => builder
                    .with_http()
                    .with_http_client(tls::http_client(t))
                    .build(),
                (Protocol::Grpc, None) => builder.with_tonic().build(),
                (Protocol::Grpc, Some(t)) => builder
                    .with_tonic()
                    .with_tls_config(tls::grpc_config(t))
                    .build(),
            }
            .map_err(|source| TelemetryError::Exporter {
                signal: "traces",
                source,
            })?;
            let (processor, flush) =
                Batcher::start(exporter, &resource, settings.batching, metrics.clone());
            let provider = SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(resource.clone())
                .build();
            let tracer = provider.tracer("atoll");
            out.tracer = Some(atoll_capabilities::trace::Tracer::new(
                opentelemetry::global::BoxedTracer::new(Box::new(tracer)),
            ));
            out.traces = Some((provider, flush));
            tracing::info!(?protocol, "exporting traces over OTLP");
        }
        if let Some(protocol) = settings.metrics {
            use opentelemetry_otlp::{WithHttpConfig as _, WithTonicConfig as _};
            let builder = opentelemetry_otlp::MetricExporter::builder();
            let tls = settings.metrics_tls.as_ref();
            let exporter = match (protocol, tls) {
                (Protocol::HttpProtobuf, None) => builder.with_http().build(),
                (Protocol::HttpProtobuf, Some(t)) => builder
                    .with_http()
                    .with_http_client(tls::http_client(t))
                    .build(),
                (Protocol::Grpc, None) => builder.with_tonic().build(),
                (Protocol::Grpc, Some(t)) => builder
                    .with_tonic()
                    .with_tls_config(tls::grpc_config(t))
                    .build(),
            }
            .map_err(|source| TelemetryError::Exporter {
                signal: "metrics",
                source,
            })?;
            let reader = opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
            let provider = SdkMeterProvider::builder()
                .with_reader(reader)
                .with_resource(resource)
                .build();
            let meter = provider.meter("atoll");
            // Set once per process; a second `start` (tests) keeps the first observer.
            let _ = metrics.set_observer(Arc::new(Recorder::new(&meter)));
            observe_counts(&meter, metrics);
            out.meters = Some(provider);
            tracing::info!(?protocol, "exporting metrics over OTLP");
        }
        Ok(Some(out))
    }

    /// The tracer for the triggers, when traces are exported.
    pub fn tracer(&self) -> Option<atoll_capabilities::trace::Tracer> {
        self.tracer.clone()
    }

    /// Send what is queued and stop: spans waiting go out (within `timeout`), the
    /// metrics are collected and sent one last time.
    pub async fn shutdown(self, timeout: Duration) {
        if let Some((provider, flush)) = self.traces {
            let (ack, done) = oneshot::channel();
            if flush.send(ack).await.is_ok() && tokio::time::timeout(timeout, done).await.is_err() {
                tracing::warn!("spans still queued after {timeout:?}: dropped at exit");
            }
            drop(provider);
        }
        if let Some(provider) = self.meters {
            // The SDK's shutdown blocks until the reader's task has exported.
            let stopped = tokio::task::spawn_blocking(move || provider.shutdown());
            match tokio::time::timeout(timeout, stopped).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!("last metrics export failed: {e}"),
                _ => tracing::warn!("last metrics export did not finish within {timeout:?}"),
            }
        }
    }
}

/// `service.name` from `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`, else `atoll`;
/// with the rest of `OTEL_RESOURCE_ATTRIBUTES`.
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let builder = Resource::builder();
    let builder = if named {
        builder
    } else {
        builder.with_service_name("atoll")
    };
    builder
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The span processor: finished spans into a bounded buffer, a task exporting batches.
///
/// Not the SDK's `BatchSpanProcessor`: it counts the spans it drops only in a log line at
/// shutdown, and a dead collector must be visible while it is dead. Not a channel
/// either: a channel wakes its receiver for every span (a futex and a context switch per
/// request, measured at about 40% of a hello request's throughput); the buffer wakes the
/// task once per full batch, and the task also wakes every `delay`.
#[derive(Debug)]
struct Batcher {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Finished spans waiting for the export task; at most `batching.queue`.
    spans: std::sync::Mutex<Vec<SpanData>>,
    /// Told when the buffer holds a full batch.
    full: tokio::sync::Notify,
    batching: Batching,
    metrics: Metrics,
}

impl Shared {
    /// Up to one batch of spans, oldest first.
    fn take_batch(&self) -> Vec<SpanData> {
        let mut spans = self.spans.lock().unwrap_or_else(|e| e.into_inner());
        let n = spans.len().min(self.batching.batch);
        spans.drain(..n).collect()
    }
}

impl Batcher {
    fn start<E: SpanExporter + 'static>(
        mut exporter: E,
        resource: &Resource,
        batching: Batching,
        metrics: Metrics,
    ) -> (Self, mpsc::Sender<oneshot::Sender<()>>) {
        exporter.set_resource(resource);
        let shared = Arc::new(Shared {
            spans: std::sync::Mutex::new(Vec::with_capacity(batching.batch)),
            full: tokio::sync::Notify::new(),
            batching,
            metrics,
        });
        let (flush, flushes) = mpsc::channel(1);
        tokio::spawn(export_loop(exporter, shared.clone(), flushes));
        (Self { shared }, flush)
    }
}

impl SpanProcessor for Batcher {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let shared = &self.shared;
        let len = {
            let mut spans = shared.spans.lock().unwrap_or_else(|e| e.into_inner());
            if spans.len() >= shared.batching.queue {
                drop(spans);
                shared
                    .metrics
                    .spans()
                    .dropped_queue_full
                    .fetch_add(1, Relaxed);
                return;
            }
            spans.push(span);
            spans.len()
        };
        if len == shared.batching.batch {
            shared.full.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        // Flushing is async ([`Telemetry::shutdown`]); the SDK's sync call has nothing to wait on.
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Send batches: when one is full, every `delay`, and on a flush (everything buffered).
/// A failed export (after the exporter's own retries) drops its spans, counted; the
/// first failure and the recovery are logged, not each attempt.
async fn export_loop<E: SpanExporter>(
    exporter: E,
    shared: Arc<Shared>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let mut failing = false;
    let mut ticker = tokio::time::interval(shared.batching.delay);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let counts = shared.metrics.spans();
    let mut export = async |batch: Vec<SpanData>| {
        if batch.is_empty() {
            return false;
        }
        let n = batch.len() as u64;
        match exporter.export(batch).await {
            Ok(()) => {
                counts.exported.fetch_add(n, Relaxed);
                if std::mem::replace(&mut failing, false) {
                    tracing::info!(
                        "the trace collector answers again; {} spans were dropped while it did not",
                        counts.dropped_export_failed.load(Relaxed)
                            + counts.dropped_queue_full.load(Relaxed)
                    );
                }
            }
            Err(e) => {
                counts.dropped_export_failed.fetch_add(n, Relaxed);
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        "cannot export spans: {e}; they are dropped (and counted in atoll_telemetry_spans_total) until the collector answers"
                    );
                }
            }
        }
        true
    };
    loop {
        let flush = tokio::select! {
            () = shared.full.notified() => None,
            _ = ticker.tick() => None,
            ack = flushes.recv() => match ack {
                Some(ack) => Some(ack),
                None => return,
            },
        };
        // Everything buffered now, a batch at a time (new spans wait for the next wake).
        let mut left = shared.spans.lock().unwrap_or_else(|e| e.into_inner()).len();
        while left > 0 {
            let batch = shared.take_batch();
            left = left.saturating_sub(batch.len());
            if !export(batch).await {
                break;
            }
        }
        if let Some(ack) = flush {
            let _ = ack.send(());
        }
    }
}

/// The histograms, recorded as the runtime counts (the counters are read at export).
#[derive(Debug)]
struct Recorder {
    http: Histogram<f64>,
    instantiation: Histogram<f64>,
    run: Histogram<f64>,
}

/// Seconds, the runtime's own histogram bounds.
fn boundaries() -> Vec<f64> {
    atoll_runtime::metrics::BUCKETS.to_vec()
}

impl Recorder {
    fn new(meter: &Meter) -> Self {
        Self {
            http: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("HTTP requests that reached a component, to the response head.")
                .with_boundaries(boundaries())
                .build(),
            instantiation: meter
                .f64_histogram("atoll.instantiation.duration")
                .with_unit("s")
                .with_description("Instantiating a component for one request or tick.")
                .with_boundaries(boundaries())
                .build(),
            run: meter
                .f64_histogram("atoll.guest.run.duration")
                .with_unit("s")
                .with_description("Guest runs (instantiate and call), by outcome.")
                .with_boundaries(boundaries())
                .build(),
        }
    }
}

fn names(c: &ComponentMetrics) -> [KeyValue; 2] {
    [
        KeyValue::new("atoll.app", c.app().clone()),
        KeyValue::new("atoll.component", c.component().clone()),
    ]
}

impl atoll_runtime::metrics::Observer for Recorder {
    fn http_request(
        &self,
        c: &ComponentMetrics,
        route: &Arc<str>,
        method: &'static str,
        status: u16,
        took: Duration,
    ) {
        let [app, component] = names(c);
        self.http.record(
            took.as_secs_f64(),
            &[
                app,
                component,
                KeyValue::new("http.route", route.clone()),
                KeyValue::new("http.request.method", method),
                // The code itself: `http` bounds it to 100..=999.
                KeyValue::new("http.response.status_code", i64::from(status)),
            ],
        );
    }

    fn instantiated(&self, c: &ComponentMetrics, took: Duration) {
        self.instantiation.record(took.as_secs_f64(), &names(c));
    }

    fn run(&self, c: &ComponentMetrics, outcome: &'static str, took: Duration) {
        let [app, component] = names(c);
        self.run.record(
            took.as_secs_f64(),
            &[app, component, KeyValue::new("atoll.outcome", outcome)],
        );
    }
}

/// The counters and the live gauge, read from the runtime's counts at each export.
fn observe_counts(meter: &Meter, metrics: &Metrics) {
    fn labels(
        c: &atoll_runtime::metrics::ComponentSnapshot,
        key: &'static str,
        value: &'static str,
    ) -> [KeyValue; 3] {
        [
            KeyValue::new("atoll.app", c.app.clone()),
            KeyValue::new("atoll.component", c.component.clone()),
            KeyValue::new(key, value),
        ]
    }
    let m = metrics.clone();
    meter
        .u64_observable_counter("atoll.guest.runs")
        .with_description("Guest runs by outcome: ok, cancelled, or the failure kind.")
        .with_callback(move |o| {
            for c in m.snapshot().components {
                o.observe(c.finished, &labels(&c, "atoll.outcome", "ok"));
                o.observe(c.cancelled, &labels(&c, "atoll.outcome", "cancelled"));
                for (kind, n) in FAILURE_KINDS.iter().zip(c.failures) {
                    o.observe(n, &labels(&c, "atoll.outcome", failure_kind_label(*kind)));
                }
            }
        })
        .build();
    let m = metrics.clone();
    meter
        .u64_observable_counter("atoll.limit.hits")
        .with_description("Runs stopped by a limit: timeout, memory, stack, node_memory.")
        .with_callback(move |o| {
            for c in m.snapshot().components {
                for (limit, kind) in [
                    ("timeout", 0),
                    ("memory", 1),
                    ("stack", 2),
                    ("node_memory", 5),
                ] {
                    o.observe(c.failures[kind], &labels(&c, "atoll.limit", limit));
                }
            }
        })
        .build();
    let m = metrics.clone();
    meter
        .u64_observable_counter("atoll.admission.refusals")
        .with_description("Requests or ticks refused at admission, by reason.")
        .with_callback(move |o| {
            for c in m.snapshot().components {
                for (reason, n) in REFUSAL_REASONS.iter().zip(c.refusals) {
                    o.observe(n, &labels(&c, "atoll.reason", reason));
                }
            }
        })
        .build();
    let m = metrics.clone();
    meter
        .u64_observable_counter("atoll.capability.denials")
        .with_description("Capabilities a guest asked for and was refused, by kind.")
        .with_callback(move |o| {
            for c in m.snapshot().components {
                for (kind, n) in atoll_capabilities::DENIAL_KINDS.iter().zip(c.denials) {
                    o.observe(n, &labels(&c, "atoll.capability", kind));
                }
            }
        })
        .build();
    let m = metrics.clone();
    meter
        .i64_observable_up_down_counter("atoll.instances.live")
        .with_description("Instances running now.")
        .with_callback(move |o| {
            for c in m.snapshot().components {
                let [app, component, _] = labels(&c, "", "");
                o.observe(i64::try_from(c.live).unwrap_or(i64::MAX), &[app, component]);
            }
        })
        .build();
    let m = metrics.clone();
    meter
        .u64_observable_counter("atoll.http.unrouted_requests")
        .with_description("HTTP requests no route matched (404).")
        .with_callback(move |o| o.observe(m.snapshot().unrouted, &[]))
        .build();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn off_unless_an_endpoint_is_set() {
        let s = Settings::from_lookup(lookup(&[("OTEL_SERVICE_NAME", "x")])).expect("ok");
        assert!(!s.enabled());
        let s = Settings::from_lookup(lookup(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])).expect("ok");
        assert!(!s.enabled());
    }

    #[test]
    fn the_generic_endpoint_turns_both_signals_on_and_each_can_be_turned_off() {
        let s = Settings::from_lookup(lookup(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318",
        )]))
        .expect("ok");
        assert_eq!(s.traces, Some(Protocol::HttpProtobuf));
        assert_eq!(s.metrics, Some(Protocol::HttpProtobuf));
        let s = Settings::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]))
        .expect("ok");
        assert_eq!(s.traces, None);
        assert_eq!(s.metrics, Some(Protocol::HttpProtobuf));
        let s = Settings::from_lookup(lookup(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces",
        )]))
        .expect("ok");
        assert_eq!((s.traces, s.metrics), (Some(Protocol::HttpProtobuf), None));
        let s = Settings::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ]))
        .expect("ok");
        assert!(!s.enabled());
    }

    #[test]
    fn values_atoll_cannot_honour_are_errors_that_say_what_to_set() {
        let e = Settings::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]))
        .expect_err("json is not built");
        assert!(
            e.to_string()
                .contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json"),
            "{e}"
        );
        assert!(e.to_string().contains("grpc"), "{e}");
        let e = Settings::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
        ]))
        .expect_err("zipkin");
        assert!(e.to_string().contains("`otlp` or `none`"), "{e}");
        // https: TLS, with the webpki roots and any CA file named, read now.
        let s = Settings::from_lookup(lookup(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://collector.example:4318/v1/traces",
        )]))
        .expect("https");
        assert_eq!(
            s.traces_tls,
            Some(Tls {
                ca_pem: None,
                timeout: Duration::from_secs(10)
            })
        );
        assert_eq!(s.metrics_tls, None);
        let e = Settings::from_lookup(lookup(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector.example:4318",
            ),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ]))
        .expect_err("missing CA");
        assert!(
            e.to_string()
                .contains("OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem: cannot read it"),
            "{e}"
        );
        let not_pem = std::env::temp_dir().join(format!("atoll-not-pem-{}", std::process::id()));
        std::fs::write(&not_pem, "not a certificate").expect("write");
        let e = Settings::from_lookup(lookup(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector.example:4318",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                not_pem.to_str().expect("utf8"),
            ),
        ]))
        .expect_err("not PEM");
        let _ = std::fs::remove_file(&not_pem);
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = Settings::from_lookup(lookup(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector.example:4318",
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/key.pem"),
        ]))
        .expect_err("mTLS");
        assert!(e.to_string().contains("mutual TLS"), "{e}");
        let e = Settings::from_lookup(lookup(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ftp://collector.example",
        )]))
        .expect_err("scheme");
        assert!(e.to_string().contains("http:// or https://"), "{e}");
        let e = Settings::from_lookup(lookup(&[("OTEL_BSP_SCHEDULE_DELAY", "soon")]))
            .expect_err("not a number");
        assert!(
            e.to_string().contains("OTEL_BSP_SCHEDULE_DELAY=soon"),
            "{e}"
        );
        let s = Settings::from_lookup(lookup(&[
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
        ]))
        .expect("ok");
        assert_eq!(
            s.batching,
            Batching {
                delay: Duration::from_millis(200),
                queue: 10,
                batch: 10
            }
        );
    }
}
