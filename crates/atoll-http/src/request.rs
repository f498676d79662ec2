//! The per-request path, top to bottom:
//!
//! route -> admit (per-component permit, else 503) -> size check (413) -> fresh `Store`
//! with limits -> instantiate from the warm pooled slot -> call `incoming-handler` ->
//! stream the response -> drop the store.
//!
//! The guest's run (one future) holds the concurrency permit, enforces the wall-clock
//! timeout and logs a failure once, with the app, component and reason. It is polled
//! in the connection's task until the response is ready, and moved to its own task only
//! if it is still running then, so the body can stream while it writes. This function
//! turns the outcome into a status code.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use atoll_engine::{FailureKind, classify_error};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::body::{GuardedBody, LimitedBody};
use crate::server::ServerState;

/// How long a failed request keeps holding its component's concurrency slot.
const FAILURE_PENALTY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the server sends: the guest's streamed body, or a short body of our own.
pub type ServerBody = Either<GuardedBody<HyperOutgoingBody>, Full<Bytes>>;

/// How one guest run ended (from the guest task's point of view).
enum Outcome {
    Finished,
    Failed(FailureKind, String),
    TimedOut,
}

pub(crate) async fn handle(
    state: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<ServerBody>, Infallible> {
    let apps = &state.apps;
    let host = req
        .uri()
        .host()
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok());
    let Some(index) = apps.route(host, req.uri().path()) else {
        return Ok(plain(StatusCode::NOT_FOUND, "no route matches this path\n"));
    };
    let component = &apps.components[index];

    // Admission: beyond the component's concurrency limit, answer at once.
    let Ok(permit) = component.permits.clone().try_acquire_owned() else {
        // Debug, not warn: under overload a line per refused request would flood the log.
        tracing::debug!(app = %component.app, component = %component.loaded.name(), "over the concurrency limit; answering 503");
        let mut resp = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the component is at its concurrency limit; retry shortly\n",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(resp);
    };

    let max_body = state.config.max_body_bytes;
    if let Some(len) = content_length(&req)
        && len > max_body
    {
        return Ok(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than this server accepts\n",
        ));
    }

    let exceeded = Arc::new(AtomicBool::new(false));
    let req = req.map(|b| LimitedBody::new(b, max_body, exceeded.clone()));

    let mut store = component.loaded.new_store();
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
            return Ok(plain(StatusCode::BAD_REQUEST, "malformed request\n"));
        }
    };

    let pre = component.loaded.pre().clone();
    let name = component.loaded.name().clone();
    let app_name = component.app.clone();
    let timeout = component.loaded.limits().timeout;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let exceeded_in_guest = exceeded.clone();
    let mut guest = Box::pin(async move {
        let run = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, guest_req, out)
                .await
        };
        let outcome = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(())) => Outcome::Finished,
            Ok(Err(e)) => Outcome::Failed(classify_error(&e), describe_failure(&e)),
            Err(_) => Outcome::TimedOut,
        };
        drop(store);
        let _ = done_tx.send(matches!(outcome, Outcome::Finished));
        // No penalty for failures the guest did not cause: a full instance pool, or a
        // client whose body went over the cap.
        let guest_caused = !matches!(
            outcome,
            Outcome::Finished | Outcome::Failed(FailureKind::Capacity, _)
        ) && !exceeded_in_guest.load(Ordering::Relaxed);
        if !guest_caused {
            drop(permit);
        } else {
            // A failed instance keeps its concurrency slot a while longer, so a component
            // that keeps trapping, timing out or exhausting memory is slowed down instead
            // of burning the machine's CPU on failures.
            tokio::spawn(async move {
                tokio::time::sleep(FAILURE_PENALTY).await;
                drop(permit);
            });
        }
        match &outcome {
            Outcome::Finished => {}
            Outcome::Failed(kind, reason) => {
                tracing::error!(app = %app_name, component = %name, kind = ?kind, "guest failed: {reason}")
            }
            Outcome::TimedOut => {
                tracing::error!(app = %app_name, component = %name, kind = ?FailureKind::Timeout, "guest exceeded its timeout of {timeout:?} and was stopped")
            }
        }
        outcome
    });

    // Run the guest right here first: most guests set the response, write the body and
    // return within this poll, which saves a task spawn and a cross-thread wake-up per
    // request. Only a guest still running when its response is ready (it streams, or
    // works after answering) moves to a task of its own, so the body can flow meanwhile.
    let first = tokio::select! {
        biased;
        outcome = &mut guest => First::Finished(outcome),
        response = &mut receiver => First::Response(response),
    };
    let response = match first {
        // The guest is done. If it failed, nothing has been sent yet: answer with the
        // failure rather than a response whose body would then be cut off.
        First::Finished(Outcome::Finished) => receiver.try_recv().map_err(|_| Outcome::Finished),
        First::Finished(failed) => Err(failed),
        First::Response(Ok(response)) => {
            tokio::spawn(guest);
            Ok(response)
        }
        // The outparam was dropped unset while the guest runs on: wait for its end.
        First::Response(Err(_)) => Err(guest.await),
    };
    if exceeded.load(Ordering::Relaxed) {
        return Ok(too_large());
    }
    Ok(match response {
        Ok(Ok(resp)) => resp.map(|body| {
            Either::Left(GuardedBody::new(
                body,
                done_rx,
                state.config.max_response_bytes,
                component.app.clone(),
                component.loaded.name().clone(),
            ))
        }),
        Ok(Err(code)) => {
            tracing::error!(app = %component.app, component = %component.loaded.name(), "guest answered with an error: {code:?}");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the component failed to handle the request\n",
            )
        }
        // The guest ended without calling `response-outparam.set`.
        Err(Outcome::Finished) => {
            tracing::error!(app = %component.app, component = %component.loaded.name(), "guest returned without setting a response");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the component returned without a response\n",
            )
        }
        Err(Outcome::TimedOut | Outcome::Failed(FailureKind::Timeout, _)) => plain(
            StatusCode::GATEWAY_TIMEOUT,
            "the component did not answer within its time limit\n",
        ),
        Err(Outcome::Failed(FailureKind::Capacity, _)) => {
            let mut resp = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at capacity; retry shortly\n",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            resp
        }
        Err(Outcome::Failed(..)) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the component failed to handle the request\n",
        ),
    })
}

/// Which of the guest's end and its response came first.
enum First {
    Finished(Outcome),
    Response(Result<GuestResponse, tokio::sync::oneshot::error::RecvError>),
}

type GuestResponse = Result<Response<HyperOutgoingBody>, ErrorCode>;

/// One line for the log: the root cause, then where in the guest it happened.
fn describe_failure(e: &wasmtime::Error) -> String {
    let cause = e.root_cause().to_string();
    match e.downcast_ref::<wasmtime::WasmBacktrace>() {
        Some(bt) => {
            let frames: Vec<String> = bt
                .frames()
                .iter()
                .take(4)
                .map(|f| f.func_name().unwrap_or("?").to_string())
                .collect();
            format!("{cause} (in {})", frames.join(" <- "))
        }
        None => cause,
    }
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
