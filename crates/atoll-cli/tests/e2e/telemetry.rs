//! OpenTelemetry: `atoll up` with the standard `OTEL_*` variables exports spans and
//! metrics to a real OTLP receiver started here (HTTP/protobuf, and gRPC through tonic),
//! which decodes the protobuf: the request's server span continues the caller's
//! `traceparent`, its outbound HTTP and key-value calls are child spans, the upstream gets
//! the client span's `traceparent`, and a collector that goes away and comes back costs
//! only dropped spans, counted on `/metrics`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

use crate::common::*;

/// A span as the receiver decoded it, with its resource's `service.name`.
#[derive(Debug, Clone)]
pub(super) struct Got {
    pub(super) service: String,
    pub(super) name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    trace_state: String,
    pub(super) attrs: HashMap<String, String>,
    status_code: i32,
    status_message: String,
}

fn value_text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attrs(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), value_text(&kv.value)))
        .collect()
}

/// One data point: its attributes, and its count (histogram) or value (sum), as text.
type Point = (HashMap<String, String>, String);

/// What the receiver has been sent.
#[derive(Default)]
pub(super) struct Received {
    spans: Mutex<Vec<Got>>,
    /// Metric name -> the attributes and count of each histogram point, or the value of
    /// each sum/gauge point, as text.
    metrics: Mutex<HashMap<String, Vec<Point>>>,
}

impl Received {
    fn add_spans(&self, req: ExportTraceServiceRequest) {
        let mut out = self.spans.lock().expect("lock");
        for rs in req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .map(|r| attrs(&r.attributes))
                .and_then(|a| a.get("service.name").cloned())
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    let status = s.status.clone().unwrap_or_default();
                    out.push(Got {
                        service: service.clone(),
                        name: s.name,
                        kind: s.kind,
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        trace_state: s.trace_state.clone(),
                        attrs: attrs(&s.attributes),
                        status_code: status.code,
                        status_message: status.message,
                    });
                }
            }
        }
    }

    fn add_metrics(&self, req: ExportMetricsServiceRequest) {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
        let mut out = self.metrics.lock().expect("lock");
        for rm in req.resource_metrics {
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    let points: Vec<Point> = match m.data {
                        Some(Data::Histogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| (attrs(&p.attributes), p.count.to_string()))
                            .collect(),
                        Some(Data::Sum(s)) => s
                            .data_points
                            .iter()
                            .map(|p| {
                                let v = match p.value {
                                    Some(N::AsInt(i)) => i.to_string(),
                                    Some(N::AsDouble(d)) => d.to_string(),
                                    None => String::new(),
                                };
                                (attrs(&p.attributes), v)
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    out.insert(m.name, points);
                }
            }
        }
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().expect("lock").clone()
    }

    /// Wait until `f` finds what it looks for among the spans received.
    pub(super) async fn wait_for<T>(&self, what: &str, f: impl Fn(&[Got]) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(t) = f(&self.spans()) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 20 s; spans received: {:#?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An OTLP/HTTP receiver on `at`: `/v1/traces` and `/v1/metrics`, protobuf bodies.
/// Stops (closing its listener) when the returned sender is dropped.
pub(super) async fn http_receiver(
    at: SocketAddr,
    received: Arc<Received>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    receiver(at, received, None).await
}

/// [`http_receiver`] over TLS with `acceptor`'s certificate (HTTPS).
async fn receiver(
    at: SocketAddr,
    received: Arc<Received>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = &mut stopped => return,
            };
            let Ok((stream, _)) = accepted else { return };
            let received = received.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let received = received.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let ok = match (path.as_str(), body) {
                            ("/v1/traces", Ok(b)) => ExportTraceServiceRequest::decode(b)
                                .map(|r| received.add_spans(r))
                                .is_ok(),
                            ("/v1/metrics", Ok(b)) => ExportMetricsServiceRequest::decode(b)
                                .map(|r| received.add_metrics(r))
                                .is_ok(),
                            _ => false,
                        };
                        let mut resp = http::Response::new(Full::new(Bytes::new()));
                        if !ok {
                            *resp.status_mut() = http::StatusCode::BAD_REQUEST;
                        }
                        resp.headers_mut().insert(
                            "content-type",
                            http::HeaderValue::from_static("application/x-protobuf"),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                }
            });
        }
    });
    (addr, stop)
}

/// A test CA and a certificate it signed for 127.0.0.1 (openssl): (CA file, cert PEM,
/// key PEM).
fn test_certificates(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=atoll test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    let read = |f: &str| std::fs::read(dir.join(f)).expect("read");
    (dir.join("ca.pem"), read("leaf.pem"), read("leaf.key"))
}

fn tls_acceptor(cert: &[u8], key: &[u8]) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_slice(key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

struct GrpcTraces(Arc<Received>);

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add_spans(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC trace receiver on `at` (tonic); stops when the sender is dropped.
async fn grpc_receiver(
    at: SocketAddr,
    received: Arc<Received>,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    grpc_receiver_tls(at, received, None).await
}

/// [`grpc_receiver`], over TLS with this identity (cert PEM, key PEM) if given.
async fn grpc_receiver_tls(
    at: SocketAddr,
    received: Arc<Received>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut builder = tonic::transport::Server::builder();
        if let Some((cert, key)) = identity {
            builder = builder
                .tls_config(
                    tonic::transport::ServerTlsConfig::new()
                        .identity(tonic::transport::Identity::from_pem(cert, key)),
                )
                .expect("server TLS");
        }
        let _ = builder
            .add_service(TraceServiceServer::new(GrpcTraces(received)))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            )
            .await;
    });
    (addr, stop, task)
}

/// An upstream that records each request's `traceparent` and `tracestate` (`tp|ts`).
async fn upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let tp = req
                        .headers()
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let ts = req
                        .headers()
                        .get("tracestate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    s.lock().expect("lock").push(format!("{tp}|{ts}"));
                    async move {
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                            b"upstream ok",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

fn manifest(upstream: SocketAddr) -> String {
    format!(
        r#"
[app]
name = "traced"

[component.out]
source = "{{{{OUTBOUND}}}}"
allowed_outbound_hosts = ["http://{upstream}"]

[component.kv]
source = "{{{{KV}}}}"
key_value_stores = ["default"]

[component.bad]
source = "{{{{HOSTILE}}}}"

[component.job]
source = "{{{{JOB}}}}"
environment = {{ JOB_MODE = "fail" }}

[[trigger.cron]]
schedule = "* * * * * *"
component = "job"

[[trigger.http]]
route = "/out/..."
component = "out"

[[trigger.http]]
route = "/kv/..."
component = "kv"

[[trigger.http]]
route = "/bad/..."
component = "bad"
"#
    )
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const CALLER_STATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
/// `SpanKind` in OTLP: 2 server, 3 client.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
/// `Status.code` in OTLP: 2 error.
const ERROR: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_otlp_http_receiver_with_parent_links() {
    let received = Arc::new(Received::default());
    let (collector, _stop) =
        http_receiver("127.0.0.1:0".parse().expect("addr"), received.clone()).await;
    let (up, seen) = upstream().await;
    let endpoint = format!("http://{collector}");
    let server = Running::start_with_env(
        TestApp::new(&manifest(up)),
        &shared_home(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "atoll-e2e"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
        ],
    );
    let c = client();
    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let upstream_url = format!("http://{up}/");
    let r = get_with_headers(
        &c,
        &server.url("/out/x"),
        &[
            ("traceparent", &traceparent),
            ("tracestate", CALLER_STATE),
            ("x-url", &upstream_url),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("upstream ok"), "{}", r.text());
    let r = get(
        &c,
        &server.url("/kv/?store=default&op=set&key=traced&value=1"),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let r = get(&c, &server.url("/bad/trap")).await;
    assert_eq!(r.status, 500);

    // The server span continues the caller's trace, under the caller's span.
    let server_span = received
        .wait_for("server span of /out", |spans| {
            spans
                .iter()
                .find(|s| s.name == "GET /out/..." && s.kind == SERVER)
                .cloned()
        })
        .await;
    assert_eq!(server_span.trace_id, TRACE);
    assert_eq!(server_span.parent_span_id, CALLER_SPAN);
    assert_eq!(
        server_span.trace_state, CALLER_STATE,
        "the caller's tracestate"
    );
    assert_eq!(server_span.service, "atoll-e2e");
    for (k, v) in [
        ("http.request.method", "GET"),
        ("http.route", "/out/..."),
        ("url.path", "/out/x"),
        ("http.response.status_code", "200"),
        ("atoll.app", "traced"),
        ("atoll.component", "out"),
    ] {
        assert_eq!(
            server_span.attrs.get(k).map(String::as_str),
            Some(v),
            "{k}: {server_span:#?}"
        );
    }
    // The outbound request is its child, and the upstream was told so.
    let client_span = received
        .wait_for("client span of the outbound request", |spans| {
            spans
                .iter()
                .find(|s| s.kind == CLIENT && s.parent_span_id == server_span.span_id)
                .cloned()
        })
        .await;
    assert_eq!(client_span.name, "GET");
    assert_eq!(client_span.trace_id, TRACE);
    assert_eq!(
        client_span.attrs.get("server.port"),
        Some(&up.port().to_string())
    );
    assert_eq!(
        client_span
            .attrs
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    assert_eq!(
        seen.lock().expect("lock").as_slice(),
        [format!(
            "00-{TRACE}-{}-01|{CALLER_STATE}",
            client_span.span_id
        )],
        "the upstream's traceparent names the client span, and the caller's tracestate goes along"
    );

    // The key-value call is a child of its request's span (a new trace: no traceparent).
    let (kv_server, kv_call) = received
        .wait_for("key-value spans", |spans| {
            let server = spans
                .iter()
                .find(|s| s.name == "GET /kv/..." && s.kind == SERVER)?;
            let call = spans
                .iter()
                .find(|s| s.name == "key_value set" && s.parent_span_id == server.span_id)?;
            Some((server.clone(), call.clone()))
        })
        .await;
    assert_ne!(kv_server.trace_id, TRACE);
    assert!(kv_server.parent_span_id.is_empty(), "{kv_server:#?}");
    assert_eq!(kv_call.trace_id, kv_server.trace_id);
    assert_eq!(
        kv_call
            .attrs
            .get("atoll.key_value.store")
            .map(String::as_str),
        Some("default")
    );
    assert_eq!(
        kv_call.attrs.get("db.operation.name").map(String::as_str),
        Some("set")
    );

    // A trap: the span is an error with the failure kind and the reason.
    let bad = received
        .wait_for("the trap's span", |spans| {
            spans.iter().find(|s| s.name == "GET /bad/...").cloned()
        })
        .await;
    assert_eq!(bad.status_code, ERROR, "{bad:#?}");
    assert_eq!(
        bad.attrs.get("atoll.failure.kind").map(String::as_str),
        Some("trap")
    );
    assert_eq!(
        bad.attrs
            .get("http.response.status_code")
            .map(String::as_str),
        Some("500")
    );
    assert!(bad.status_message.contains("unreachable"), "{bad:#?}");

    // A cron run is a span of its own (a new trace), failed like the job.
    let tick = received
        .wait_for("a cron run's span", |spans| {
            spans.iter().find(|s| s.name == "cron * * * * * *").cloned()
        })
        .await;
    assert!(tick.parent_span_id.is_empty(), "{tick:#?}");
    assert_eq!(
        tick.attrs.get("atoll.trigger").map(String::as_str),
        Some("cron")
    );
    assert_eq!(
        tick.attrs.get("atoll.component").map(String::as_str),
        Some("job")
    );
    assert_eq!(tick.status_code, ERROR, "{tick:#?}");
    assert_eq!(
        tick.attrs.get("atoll.failure.kind").map(String::as_str),
        Some("trap")
    );

    // Metrics, under the semantic conventions' names and atoll's own.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let done = {
            let m = received.metrics.lock().expect("lock");
            let http = m.get("http.server.request.duration");
            let out_count = http.and_then(|points| {
                points
                    .iter()
                    .find(|(a, _)| a.get("http.route").map(String::as_str) == Some("/out/..."))
                    .map(|(a, n)| (a.get("http.response.status_code").cloned(), n.clone()))
            });
            let runs_trap = m.get("atoll.guest.runs").and_then(|points| {
                points
                    .iter()
                    .find(|(a, _)| {
                        a.get("atoll.component").map(String::as_str) == Some("bad")
                            && a.get("atoll.outcome").map(String::as_str) == Some("trap")
                    })
                    .map(|(_, n)| n.clone())
            });
            out_count == Some((Some("200".into()), "1".into()))
                && runs_trap.as_deref() == Some("1")
                && m.contains_key("atoll.instantiation.duration")
                && m.contains_key("atoll.instances.live")
                && m.contains_key("atoll.limit.hits")
        };
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics not received within 20 s: {:#?}",
            received.metrics.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
}

/// The admin `/metrics` value of `atoll_telemetry_spans_total{outcome=...}`.
fn span_count(admin: SocketAddr, outcome: &str) -> u64 {
    let body = admin_get(admin, "/metrics");
    let needle = format!("atoll_telemetry_spans_total{{outcome=\"{outcome}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in:\n{body}"))
}

pub(super) fn admin_get(admin: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(admin).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_collector_that_goes_away_costs_only_counted_spans() {
    let received = Arc::new(Received::default());
    let (collector, stop, task) =
        grpc_receiver("127.0.0.1:0".parse().expect("addr"), received.clone()).await;
    let (up, _seen) = upstream().await;
    let endpoint = format!("http://{collector}");
    let server = Running::start_with_env(
        TestApp::new(&manifest(up)),
        &shared_home(),
        &["--admin", "127.0.0.1:0"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
        ],
    );
    assert!(
        server.wait_for_log("admin: dashboard on http://", Duration::from_secs(10)),
        "{}",
        server.logs()
    );
    let logs = server.logs();
    let admin: SocketAddr = logs
        .split("admin: dashboard on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no admin address in the log:\n{logs}"));
    let c = client();
    let traced = |n: u32| format!("00-{TRACE}-{:016x}-01", 0x1000 + n);

    let r = get_with_headers(
        &c,
        &server.url("/kv/?store=default&op=get&key=x"),
        &[("traceparent", &traced(1))],
    )
    .await;
    assert_eq!(r.status, 404);
    received
        .wait_for("the first span over gRPC", |spans| {
            spans
                .iter()
                .find(|s| s.parent_span_id == format!("{:016x}", 0x1001))
                .map(|_| ())
        })
        .await;
    // Counted once the receiver has answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while span_count(admin, "exported") < 2 {
        assert!(
            Instant::now() < deadline,
            "server and key-value spans not counted as exported: {}",
            admin_get(admin, "/metrics")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The collector goes away: requests are answered as before, their spans dropped and counted.
    drop(stop);
    let _ = task.await;
    for n in 2..22 {
        let r = get_with_headers(
            &c,
            &server.url("/kv/?store=default&op=get&key=x"),
            &[("traceparent", &traced(n))],
        )
        .await;
        assert_eq!(r.status, 404, "request {n} during the outage: {}", r.text());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while span_count(admin, "dropped_queue_full") + span_count(admin, "dropped_export_failed") == 0
    {
        assert!(
            Instant::now() < deadline,
            "no dropped spans counted: {}",
            admin_get(admin, "/metrics")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 20 requests, 2 spans each, a queue of 4 behind an export that retries: some were
    // dropped for a full queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    while span_count(admin, "dropped_queue_full") == 0 {
        assert!(
            Instant::now() < deadline,
            "no span dropped for a full queue: {}",
            admin_get(admin, "/metrics")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        server.wait_for_log("cannot export spans", Duration::from_secs(10)),
        "{}",
        server.logs()
    );

    // It comes back on the same port: new spans arrive again.
    let (_again, _stop_again, _task_again) = grpc_receiver(collector, received.clone()).await;
    let want = format!("{:016x}", 0x1000 + 99);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get_with_headers(
            &c,
            &server.url("/kv/?store=default&op=get&key=x"),
            &[("traceparent", &traced(99))],
        )
        .await;
        assert_eq!(r.status, 404);
        if received.spans().iter().any(|s| s.parent_span_id == want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no span after the collector came back; logs:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        server.wait_for_log("the trace collector answers again", Duration::from_secs(10)),
        "{}",
        server.logs()
    );
    drop(server);
}

#[test]
fn otel_settings_atoll_cannot_honour_stop_it_with_the_variable_named() {
    let app = TestApp::new(&manifest("127.0.0.1:9".parse().expect("addr")));
    for (envs, says) in [
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ][..],
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported: use `http/protobuf` or `grpc`",
        ),
        (
            &[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.example:4318",
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/otel/client.key"),
            ][..],
            "OTEL_EXPORTER_OTLP_CLIENT_KEY=/etc/otel/client.key: client certificates (mutual TLS) are not built in",
        ),
        (
            &[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.example:4318",
                ),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
            ][..],
            "OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem: cannot read it",
        ),
    ] {
        let (ok, stderr) = up_fails(&app, &[], envs);
        assert!(!ok, "atoll up started with {envs:?}:\n{stderr}");
        assert!(stderr.contains("OTEL_* environment variables"), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// TLS to the collector: an `https://` endpoint, verified against the CA in
/// `OTEL_EXPORTER_OTLP_CERTIFICATE`, over HTTP/protobuf and over gRPC; without that CA
/// the same collector is not trusted and gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_collector_over_tls_that_trusts_only_its_ca() {
    // tonic's server takes the process's default provider; this process links two.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp");
    let (ca, cert, key) = test_certificates(dir.path());
    let ca = ca.to_str().expect("utf8").to_owned();
    let (up, _seen) = upstream().await;
    for protocol in ["http/protobuf", "grpc"] {
        let received = Arc::new(Received::default());
        let (collector, _stop, _task) = if protocol == "grpc" {
            let (a, s, t) = grpc_receiver_tls(
                "127.0.0.1:0".parse().expect("addr"),
                received.clone(),
                Some((cert.clone(), key.clone())),
            )
            .await;
            (a, s, Some(t))
        } else {
            let (a, s) = receiver(
                "127.0.0.1:0".parse().expect("addr"),
                received.clone(),
                Some(tls_acceptor(&cert, &key)),
            )
            .await;
            (a, s, None)
        };
        let endpoint = format!("https://{collector}");
        let mut server = Running::start_with_env(
            TestApp::new(&manifest(up)),
            &shared_home(),
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ],
        );
        let c = client();
        let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
        let r = get_with_headers(
            &c,
            &server.url("/kv/?store=default&op=get&key=x"),
            &[("traceparent", &traceparent)],
        )
        .await;
        assert_eq!(r.status, 404, "{}", r.text());
        let span = received
            .wait_for(&format!("the server span over TLS ({protocol})"), |spans| {
                spans
                    .iter()
                    .find(|s| s.parent_span_id == CALLER_SPAN && s.name.starts_with("GET "))
                    .cloned()
            })
            .await;
        assert_eq!(span.trace_id, TRACE, "{protocol}");
        server.terminate(Duration::from_secs(10));
    }

    // Without the CA the collector's certificate is not trusted: the export fails and
    // is logged, and the request is served all the same.
    let received = Arc::new(Received::default());
    let (collector, _stop) = receiver(
        "127.0.0.1:0".parse().expect("addr"),
        received.clone(),
        Some(tls_acceptor(&cert, &key)),
    )
    .await;
    let endpoint = format!("https://{collector}");
    let server = Running::start_with_env(
        TestApp::new(&manifest(up)),
        &shared_home(),
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let c = client();
    let r = get(&c, &server.url("/kv/?store=default&op=get&key=x")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        server.wait_for_log("cannot export spans", Duration::from_secs(20)),
        "no failed export logged:\n{}",
        server.logs()
    );
    assert!(
        received.spans().is_empty(),
        "an untrusted collector got spans"
    );
}
