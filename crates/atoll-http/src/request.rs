//! The per-request path, top to bottom:
//!
//! route (over the route table of the current snapshot of the live apps) -> admit
//! (per-component permit, else 503) -> size check (413) -> fresh `Store` with limits ->
//! instantiate from the warm pooled slot -> call `incoming-handler` -> stream the
//! response -> drop the store.
//!
//! The guest's run (`atoll_runtime::Admission::run_guest`, shared with every trigger)
//! holds the concurrency permit, enforces the wall-clock timeout and logs a failure
//! once, with the app, component and reason. It is polled in the connection's task until
//! the response is ready, and moved to its own task only if it is still running then,
//! so the body can stream while it writes. [`respond`] turns the outcome into a status.
//!
//! Costs per request beyond the guest: a route-table load (`arc-swap`, no lock), five
//! `Arc` clones (the target, twice: here and in the guest's future; the admission; the
//! semaphore permit; the lane, which needs the component if the run moves), the
//! body-cap flag and two oneshots, the boxed guest future, and the fairness checks
//! (a few relaxed loads at admission, a thread-local read around each poll), and the
//! metrics (six clock reads, the route `Arc`, a read lock and a short scan for the
//! request's label set, a few relaxed atomic adds); the only lock is that read lock,
//! uncontended but for the first request of a label set. Under callgrind the whole
//! request (hello guest, keep-alive) cost the same instructions as before the runtime
//! core existed (106.3k vs 106.2k), before the metrics. Tracing off (`HttpConfig::tracer`
//! unset) costs a branch here and one in each host call; on, the server span is opened
//! after routing and ended by the `Record` guard.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use atoll_capabilities::CapabilityView;
use atoll_capabilities::trace::{self, Tracer};
use atoll_engine::FailureKind;
use atoll_runtime::metrics::{HTTP_METHODS, failure_kind_label};
use atoll_runtime::{DeniedBefore, Outcome, Refused};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use atoll_capabilities::record::{
    Body as RecordedBody, Message as RecordedMessage, Recording, Tape,
};
use http_body_util::BodyExt;

use crate::Taping;
use crate::body::{GuardedBody, LimitedBody};
use crate::routes::Target;
use crate::server::ServerState;

/// What the server sends: the guest's streamed body, or a short body of our own.
pub type ServerBody = Either<GuardedBody<HyperOutgoingBody>, Full<Bytes>>;

pub(crate) async fn handle(
    state: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<ServerBody>, Infallible> {
    let started = std::time::Instant::now();
    if let Some(ready) = &state.config.health
        && let Some(probe) = req.uri().path().strip_prefix("/.atoll/")
    {
        match probe {
            "live" => return Ok(plain(StatusCode::OK, "live\n")),
            "ready" if ready.load(std::sync::atomic::Ordering::Acquire) => {
                return Ok(plain(StatusCode::OK, "ready\n"));
            }
            "ready" => return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")),
            _ => {}
        }
    }
    let host = req
        .uri()
        .host()
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok());
    let (target, route) = {
        let routes = state.routes.load();
        match routes.route(host, req.uri().path()) {
            Some((t, r)) => (t.clone(), r.clone()),
            None => {
                state.config.metrics.unrouted();
                return Ok(plain(StatusCode::NOT_FOUND, "no route matches this path\n"));
            }
        }
    };
    let method = method_index(req.method());
    let trace = state
        .config
        .tracer
        .as_ref()
        .map(|tracer| server_span(tracer, &req, &target, &route, method));
    let mut record = Record {
        metrics: target.component.metrics().clone(),
        route,
        method,
        started,
        status: None,
        trace,
        failure: None,
    };
    let response = handle_routed(&state, target, req, &mut record).await;
    record.status = Some(response.status().as_u16());
    Ok(response)
}

/// The request's server span (`{method} {route}`), a child of the caller's
/// `traceparent` if it sent a valid one, carrying its `tracestate`.
fn server_span(
    tracer: &Tracer,
    req: &Request<Incoming>,
    target: &Target,
    route: &Arc<str>,
    method: u8,
) -> (Tracer, opentelemetry::Context) {
    let parent = req
        .headers()
        .get("traceparent")
        .and_then(|v| trace::parse_traceparent(v.as_bytes()))
        .map(|cx| {
            trace::with_tracestate(
                cx,
                req.headers()
                    .get_all("tracestate")
                    .iter()
                    .map(|v| v.as_bytes()),
            )
        });
    let method = HTTP_METHODS[usize::from(method)];
    let name = if method == "_OTHER" {
        format!("HTTP {route}")
    } else {
        format!("{method} {route}")
    };
    let component = &target.component;
    let cx = tracer.start(
        name,
        SpanKind::Server,
        parent,
        vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route.clone()),
            KeyValue::new("url.path", req.uri().path().to_owned()),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("atoll.app", component.app_name().clone()),
            KeyValue::new("atoll.component", component.name().clone()),
        ],
    );
    (tracer.clone(), cx)
}

/// The method's index in `atoll_runtime::metrics::HTTP_METHODS`: a match on the
/// standard methods (no string comparison), else `_OTHER`.
fn method_index(method: &http::Method) -> u8 {
    match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::CONNECT => 5,
        http::Method::OPTIONS => 6,
        http::Method::TRACE => 7,
        http::Method::PATCH => 8,
        _ => 9,
    }
}

/// Counts a routed request when it is done with, answered or not: a client that goes
/// away before its response drops the request's future, and it is counted as 499.
struct Record {
    metrics: Arc<atoll_runtime::metrics::ComponentMetrics>,
    route: Arc<str>,
    method: u8,
    started: std::time::Instant,
    status: Option<u16>,
    /// The request's span, when tracing is on: ended here with the status and any failure.
    trace: Option<(Tracer, opentelemetry::Context)>,
    /// Why the request failed, if it did: a label (`trap`, `refused_concurrency`...)
    /// and the reason as the log gives it.
    failure: Option<(&'static str, String)>,
}

impl Drop for Record {
    fn drop(&mut self) {
        let status = self.status.unwrap_or(499);
        self.metrics
            .http_request(&self.route, self.method, status, self.started.elapsed());
        if let Some((_, cx)) = &self.trace {
            let span = trace::span_of(cx);
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            match (&self.failure, self.status) {
                (Some((kind, reason)), _) => {
                    span.set_attribute(KeyValue::new("error.type", *kind));
                    span.set_attribute(KeyValue::new("atoll.failure.kind", *kind));
                    span.set_status(Status::error(reason.clone()));
                }
                (None, None) => {
                    span.set_attribute(KeyValue::new("error.type", "client_closed"));
                    span.set_status(Status::error("the client went away before the response"));
                }
                (None, Some(s)) if s >= 500 => {
                    span.set_attribute(KeyValue::new("error.type", s.to_string()));
                    span.set_status(Status::error(s.to_string()));
                }
                (None, Some(_)) => {}
            }
            span.end();
        }
    }
}

/// A request routed to `target`: admission, the guest's run, the response.
async fn handle_routed(
    state: &ServerState,
    target: Arc<Target>,
    req: Request<Incoming>,
    record: &mut Record,
) -> Response<ServerBody> {
    let component = &target.component;

    // Admission: beyond the component's concurrency limit or the node's memory budget,
    // answer at once; a component that keeps failing makes its requests wait for one of
    // its few slots first (fairness, in atoll-runtime).
    let admission = match component.admit_waiting().await {
        Ok(a) => a,
        // Debug, not warn: under overload a line per refused request would flood the log.
        Err(refused) => {
            record.failure = Some((
                match refused {
                    Refused::Concurrency => "refused_concurrency",
                    Refused::Memory => "refused_memory",
                    Refused::Failing => "refused_failing",
                },
                format!("refused: {refused:?}"),
            ));
            tracing::debug!(app = %component.app_name(), component = %component.name(), ?refused, "answering 503");
            return unavailable(match refused {
                Refused::Concurrency => {
                    "the component is at its concurrency limit; retry shortly\n"
                }
                Refused::Memory => "the server's memory budget is spent; retry shortly\n",
                Refused::Failing => {
                    "the component keeps failing, so it is being slowed down; retry later\n"
                }
            });
        }
    };

    let max_body = state.config.max_body_bytes;
    if let Some(len) = content_length(&req)
        && len > max_body
    {
        return too_large();
    }

    if let Some(taping) = &state.config.taping {
        return taped(state, target, req, record, admission, taping).await;
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let req = req.map(|b| LimitedBody::new(b, max_body, exceeded.clone()));
    run(state, target, req, record, admission, exceeded, None).await
}

/// The guest's run for an admitted request: a fresh store (on `tape`, if taped), the
/// call, and the response.
async fn run<B>(
    state: &ServerState,
    target: Arc<Target>,
    req: Request<B>,
    record: &mut Record,
    admission: atoll_runtime::Admission,
    exceeded: Arc<AtomicBool>,
    tape: Option<&Tape>,
) -> Response<ServerBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let component = &target.component;
    let mut store = match tape {
        Some(tape) => component.loaded().new_store_taped(tape),
        None => component.loaded().new_store(),
    };
    if let Some((tracer, cx)) = &record.trace {
        let (caps, _) = store.data_mut().capabilities();
        caps.set_trace(trace::InstanceTrace::new(tracer.clone(), cx.clone()));
    }
    let (sender, mut receiver) = tokio::sync::oneshot::channel();
    let prepared = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .and_then(|req| {
            let out = store.data_mut().http().new_response_outparam(sender)?;
            Ok((req, out))
        });
    let (guest_req, out) = match prepared {
        Ok(v) => v,
        Err(e) => {
            tracing::debug!("bad request: {e}");
            return plain(StatusCode::BAD_REQUEST, "malformed request\n");
        }
    };

    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let exceeded_in_guest = exceeded.clone();
    let in_guest = target.clone();
    // The run starts on this loop, or on the slow lane for a heavy or failing component,
    // and moves there once it has used its share of this loop's CPU.
    let lane = admission.lane();
    let mut guest = lane.run(Box::pin(async move {
        // The store lives in this future: it is dropped when the call ends or is cut
        // off at the timeout, before the body guard hears the outcome.
        let run = move || async move {
            let t = std::time::Instant::now();
            let proxy = in_guest.proxy.instantiate_async(&mut store).await?;
            in_guest.component.metrics().instantiated(t.elapsed());
            let called = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, guest_req, out)
                .await;
            // A failure after a refused capability is often the guest's reaction to it.
            called.map_err(|e| match store.data().first_denial() {
                Some(denied) => e.context(DeniedBefore(denied.to_string())),
                None => e,
            })
        };
        // No penalty when the client's body went over the cap: not the guest's doing.
        let outcome = admission
            .run_guest(run, || exceeded_in_guest.load(Ordering::Relaxed))
            .await;
        let _ = done_tx.send(outcome == Outcome::Finished);
        outcome
    }));

    // Run the guest right here first: most guests set the response, write the body and
    // return within this poll, which saves a task spawn and a cross-thread wake-up per
    // request. Only a guest still running when its response is ready (it streams, or
    // works after answering) moves to a task of its own, so the body can flow meanwhile.
    let first = tokio::select! {
        biased;
        outcome = &mut guest => Ended::Guest(outcome),
        response = &mut receiver => Ended::Response(response),
    };
    let response = match first {
        // The guest is done. If it failed, nothing has been sent yet: answer with the
        // failure rather than a response whose body would then be cut off.
        Ended::Guest(Outcome::Finished) => receiver.try_recv().map_err(|_| Outcome::Finished),
        Ended::Guest(failed) => Err(failed),
        Ended::Response(Ok(response)) => {
            tokio::spawn(guest);
            Ok(response)
        }
        // The outparam was dropped unset while the guest runs on: wait for its end.
        Ended::Response(Err(_)) => Err(guest.await),
    };
    if exceeded.load(Ordering::Relaxed) {
        return too_large();
    }
    respond(response, state, component, done_rx, &mut record.failure)
}

/// A request on a tape (`record.rs`): its body read whole, the guest run on the tape,
/// the response read whole; recorded (unless only failures are and it did not fail).
async fn taped(
    state: &ServerState,
    target: Arc<Target>,
    req: Request<Incoming>,
    record: &mut Record,
    admission: atoll_runtime::Admission,
    taping: &Taping,
) -> Response<ServerBody> {
    let recorded_at = crate::record::now_ms();
    let exceeded = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let limited = LimitedBody::new(body, state.config.max_body_bytes, exceeded.clone());
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) if exceeded.load(Ordering::Relaxed) => return too_large(),
        Err(e) => {
            tracing::debug!("cannot read a request body: {e}");
            return plain(
                StatusCode::BAD_REQUEST,
                "the request body could not be read\n",
            );
        }
    };
    let request = crate::record::request_message(&parts, &body);
    let tape = match taping {
        Taping::Record(_) => Tape::recording(),
        Taping::Replay(tape) => tape.clone(),
    };
    let req = Request::from_parts(parts, Full::new(body));
    let response = run(
        state,
        target.clone(),
        req,
        record,
        admission,
        exceeded,
        Some(&tape),
    )
    .await;
    let (head, body) = response.into_parts();
    let (body, cut) = match body.collect().await {
        Ok(b) => (b.to_bytes(), None),
        Err(e) => (Bytes::new(), Some(e.to_string())),
    };
    let response = match &cut {
        None => Response::from_parts(head, Either::Right(Full::new(body.clone()))),
        Some(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the component failed while writing its response\n",
        ),
    };
    if let Taping::Record(to) = taping {
        let failure = match (&record.failure, &cut) {
            (Some((kind, reason)), _) => Some(format!("{kind}: {reason}")),
            (None, Some(cut)) => Some(format!("the response body was cut off: {cut}")),
            (None, None) => None,
        };
        let status = response.status().as_u16();
        if !to.failures_only() || failure.is_some() || status >= 500 {
            let host = tape.take_recorded();
            let component = &target.component;
            let recording = Recording {
                atoll_recording: atoll_capabilities::record::FORMAT,
                recorded_at_unix_ms: recorded_at,
                app: component.app_name().to_string(),
                component: component.name().to_string(),
                manifest: Some(target.manifest.to_path_buf()),
                request,
                response: Some(RecordedMessage {
                    status: Some(status),
                    headers: RecordedMessage::headers_of(response.headers()),
                    body: RecordedBody::of(if cut.is_some() { &[] } else { &body }),
                    ..RecordedMessage::default()
                }),
                failure,
                calls: host.calls,
                wall_clock: host.wall_clock,
                monotonic_clock: host.monotonic_clock,
                random: host.random,
            };
            to.write(
                recording,
                component.loaded().capabilities().secrets().to_vec(),
            );
        }
    }
    response
}

/// Which came first: the guest's end, or its response.
enum Ended {
    Guest(Outcome),
    Response(Result<GuestResponse, tokio::sync::oneshot::error::RecvError>),
}

type GuestResponse = Result<Response<HyperOutgoingBody>, ErrorCode>;

/// The one place a guest's response or failure becomes a status code.
fn respond(
    response: Result<GuestResponse, Outcome>,
    state: &ServerState,
    component: &atoll_runtime::ServedComponent,
    done: tokio::sync::oneshot::Receiver<bool>,
    failure: &mut Option<(&'static str, String)>,
) -> Response<ServerBody> {
    if let Err(Outcome::Failed(kind, reason)) = &response {
        *failure = Some((failure_kind_label(*kind), reason.clone()));
    }
    match response {
        Ok(Ok(resp)) => resp.map(|body| {
            Either::Left(GuardedBody::new(
                body,
                done,
                state.config.max_response_bytes,
                component.app_name().clone(),
                component.name().clone(),
            ))
        }),
        Ok(Err(code)) => {
            // The error's text is the guest's: it may hold a secret it can read.
            // (Redacted as `{:?}` shows it: secrets are hidden in their escaped form too.)
            let code = format!("{code:?}");
            let code = component.loaded().capabilities().redact_short(&code, 1024);
            tracing::error!(app = %component.app_name(), component = %component.name(), "guest answered with an error: {code}");
            let reason = format!("the guest answered with an error: {code}");
            component
                .metrics()
                .failed_otherwise("error_response", &reason);
            *failure = Some(("error_response", reason));
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the component failed to handle the request\n",
            )
        }
        // The guest ended without calling `response-outparam.set`.
        Err(Outcome::Finished) => {
            tracing::error!(app = %component.app_name(), component = %component.name(), "guest returned without setting a response");
            let reason = "the guest returned without setting a response";
            component.metrics().failed_otherwise("no_response", reason);
            *failure = Some(("no_response", reason.to_owned()));
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the component returned without a response\n",
            )
        }
        Err(Outcome::Failed(FailureKind::Timeout, _)) => plain(
            StatusCode::GATEWAY_TIMEOUT,
            "the component did not answer within its time limit\n",
        ),
        Err(Outcome::Failed(FailureKind::Capacity, _)) => {
            unavailable("the server is at capacity; retry shortly\n")
        }
        Err(Outcome::Failed(FailureKind::NodeMemory, _)) => {
            unavailable("the server's memory budget is spent; retry shortly\n")
        }
        Err(Outcome::Failed(..)) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the component failed to handle the request\n",
        ),
    }
}

/// 503 with `retry-after: 1`.
fn unavailable(body: &'static str) -> Response<ServerBody> {
    let mut resp = plain(StatusCode::SERVICE_UNAVAILABLE, body);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large() -> Response<ServerBody> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is larger than this server accepts\n",
    )
}

/// A short text response of our own.
pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<ServerBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use atoll_runtime::metrics::HTTP_METHODS;
    use http::Method;

    #[test]
    fn method_indexes_match_the_metric_labels() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::CONNECT,
            Method::OPTIONS,
            Method::TRACE,
            Method::PATCH,
        ] {
            assert_eq!(
                HTTP_METHODS[usize::from(super::method_index(&m))],
                m.as_str()
            );
        }
        let brew = Method::from_bytes(b"BREW").unwrap_or_default();
        assert_eq!(
            HTTP_METHODS[usize::from(super::method_index(&brew))],
            "_OTHER"
        );
    }
}
