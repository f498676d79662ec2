//! Outbound HTTP on a tape ([`crate::record`]): recorded requests go out as usual with
//! their bodies copied as they stream (neither side is buffered, so recording changes no
//! timing a guest could see beyond the copy); replayed ones never leave the process.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use wasmtime_wasi_http::WasiBody;

use crate::record::{Answer, Body, Call, MAX_RECORDED_BODY, Message, Tape};

use super::{IoFuture, SendFuture};

/// The call a request is recorded as (its response not yet known).
pub(super) fn call_of<B>(request: &http::Request<B>) -> Call {
    Call::Http {
        request: Message {
            method: Some(request.method().as_str().to_owned()),
            uri: Some(request.uri().to_string()),
            headers: Message::headers_of(request.headers()),
            ..Message::default()
        },
        response: None,
        error: None,
    }
}

/// A body passed through as it is, with a copy of its bytes (up to
/// [`MAX_RECORDED_BODY`]) handed to `done` when it ends or is dropped.
pub(super) struct Tee {
    inner: WasiBody,
    kept: Vec<u8>,
    seen: u64,
    done: Option<Box<dyn FnOnce(Body) + Send>>,
}

impl Tee {
    pub(super) fn new(inner: WasiBody, done: impl FnOnce(Body) + Send + 'static) -> Self {
        Self {
            inner,
            kept: Vec::new(),
            seen: 0,
            done: Some(Box::new(done)),
        }
    }

    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            let body = if self.seen > self.kept.len() as u64 {
                Body::Omitted {
                    omitted_bytes: self.seen,
                }
            } else {
                Body::of(&self.kept)
            };
            done(body);
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.finish();
    }
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.kept.len() + data.len() <= MAX_RECORDED_BODY {
                        this.kept.extend_from_slice(data);
                    }
                }
            }
            Poll::Ready(None) => this.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Record `request` on `tape` (its body as the upstream reads it) and return it with
/// the call's index, for [`record_outcome`].
pub(super) fn record_request(
    tape: &Tape,
    request: http::Request<WasiBody>,
) -> (http::Request<WasiBody>, usize) {
    let i = tape.push(call_of(&request));
    let t = tape.clone();
    let request = request.map(|b| {
        Tee::new(b, move |body| {
            t.update(i, |c| {
                if let Call::Http { request, .. } = c {
                    request.body = body;
                }
            })
        })
        .boxed_unsync()
    });
    (request, i)
}

/// Record the response (its body as the guest reads it) or the error of call `i`.
pub(super) fn record_outcome(
    tape: &Tape,
    i: usize,
    sent: wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>,
) -> wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)> {
    match sent {
        Ok((resp, io)) => {
            let head = Message {
                status: Some(resp.status().as_u16()),
                headers: Message::headers_of(resp.headers()),
                ..Message::default()
            };
            tape.update(i, |c| {
                if let Call::Http { response, .. } = c {
                    *response = Some(head);
                }
            });
            let t = tape.clone();
            let resp = resp.map(|b| {
                Tee::new(b, move |body| {
                    t.update(i, |c| {
                        if let Call::Http {
                            response: Some(r), ..
                        } = c
                        {
                            r.body = body;
                        }
                    })
                })
                .boxed_unsync()
            });
            Ok((resp, io))
        }
        Err(e) => {
            let name = error_name(&e);
            tape.update(i, |c| {
                if let Call::Http { error, .. } = c {
                    *error = Some(name);
                }
            });
            Err(e)
        }
    }
}

/// The error's variant (`ConnectionRefused`), as recorded; [`error_back`] reverses it.
fn error_name(e: &wasmtime_wasi_http::Error) -> String {
    let debug = format!("{e:?}");
    let end = debug.find(['(', ' ', '{']).unwrap_or(debug.len());
    match &debug[..end] {
        name @ ("DnsTimeout"
        | "DestinationNotFound"
        | "DestinationUnavailable"
        | "ConnectionRefused"
        | "ConnectionTerminated"
        | "ConnectionTimeout"
        | "ConnectionReadTimeout"
        | "ConnectionLimitReached"
        | "HttpRequestDenied"
        | "HttpRequestUriInvalid"
        | "HttpResponseIncomplete"
        | "HttpResponseTimeout"
        | "HttpProtocolError"
        | "TlsCertificateError") => name.to_owned(),
        _ => e.to_string(),
    }
}

fn error_back(name: &str) -> wasmtime_wasi_http::Error {
    use wasmtime_wasi_http::Error as E;
    match name {
        "DnsTimeout" => E::DnsTimeout,
        "DestinationNotFound" => E::DestinationNotFound,
        "DestinationUnavailable" => E::DestinationUnavailable,
        "ConnectionRefused" => E::ConnectionRefused,
        "ConnectionTerminated" => E::ConnectionTerminated,
        "ConnectionTimeout" => E::ConnectionTimeout,
        "ConnectionReadTimeout" => E::ConnectionReadTimeout,
        "ConnectionLimitReached" => E::ConnectionLimitReached,
        "HttpRequestDenied" => E::HttpRequestDenied,
        "HttpRequestUriInvalid" => E::HttpRequestUriInvalid,
        "HttpResponseIncomplete" => E::HttpResponseIncomplete,
        "HttpResponseTimeout" => E::HttpResponseTimeout,
        "HttpProtocolError" => E::HttpProtocolError,
        "TlsCertificateError" => E::TlsCertificateError,
        other => E::Connect(std::io::Error::other(format!(
            "replay: the recorded request failed: {other}"
        ))),
    }
}

fn full(bytes: Vec<u8>) -> WasiBody {
    http_body_util::Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Answer `request` from the tape: the recorded response or error, or a connection
/// error naming the call the recording does not have. The guest's request body is
/// read and dropped, so its writes succeed as they did.
pub(super) fn replay(tape: &Tape, request: http::Request<WasiBody>) -> SendFuture {
    let answer = tape.answer(&call_of(&request).key());
    let body = request.into_body();
    tokio::spawn(async move {
        let _ = body.collect().await;
    });
    let connect_error =
        |why: String| wasmtime_wasi_http::Error::Connect(std::io::Error::other(why));
    let result = match answer {
        Answer::Replayed(Call::Http {
            response: Some(m), ..
        }) => m
            .body
            .bytes()
            .map_err(|why| connect_error(format!("replay: {why}")))
            .map(|bytes| {
                let mut resp = http::Response::new(full(bytes));
                *resp.status_mut() = http::StatusCode::from_u16(m.status.unwrap_or(200))
                    .unwrap_or(http::StatusCode::OK);
                *resp.headers_mut() = m.header_map();
                let io: IoFuture = Box::new(async { Ok(()) });
                (resp, io)
            }),
        Answer::Replayed(Call::Http { error: Some(e), .. }) => Err(error_back(&e)),
        Answer::Replayed(_) => Err(connect_error(
            "replay: the recorded call has neither a response nor an error".into(),
        )),
        Answer::Missing(why) => Err(connect_error(why)),
        Answer::Live => Err(connect_error("replay: not a replaying tape".into())),
    };
    Box::new(async move { result })
}
