//! Body wrappers on the request path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error as HttpError;

/// A request body that fails once more than `limit` bytes have arrived, and records that
/// it did, so the server can answer 413 even for chunked bodies that carry no
/// `content-length`. The guest sees a read error at that point; nothing past the limit
/// is buffered.
pub struct LimitedBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl<B> LimitedBody<B> {
    /// Wrap `inner`; `exceeded` is set when the limit is crossed.
    pub fn new(inner: B, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
            exceeded,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<HttpError>,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.exceeded.store(true, Ordering::Relaxed);
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(HttpError::HttpRequestBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The guest's response body, held open at its end until the guest's call has returned,
/// and failed if that call failed.
///
/// Without this, a guest that traps or times out after `response-outparam.set` would have
/// its body end as if complete (its store, and with it the body's sender, is simply
/// dropped), and a client could take a truncated response for a whole one. With it, the
/// connection is aborted instead (HTTP/1.1: no final chunk; HTTP/2: stream reset).
///
/// It also caps the body's size: past `limit` bytes the response is aborted the same way
/// and the overrun logged once, so a guest streaming without end is stopped by bytes as
/// well as by its timeout.
pub struct GuardedBody<B> {
    inner: B,
    guest_ok: Option<tokio::sync::oneshot::Receiver<bool>>,
    remaining: u64,
    /// App and component, for the log line when the cap is hit.
    who: Option<(Arc<str>, Arc<str>)>,
}

impl<B> GuardedBody<B> {
    /// Wrap `inner`; `guest_ok` resolves to whether the guest's call succeeded; `limit`
    /// caps the bytes sent; `app` and `component` name the guest in the log.
    pub fn new(
        inner: B,
        guest_ok: tokio::sync::oneshot::Receiver<bool>,
        limit: u64,
        app: Arc<str>,
        component: Arc<str>,
    ) -> Self {
        Self {
            inner,
            guest_ok: Some(guest_ok),
            remaining: limit,
            who: Some((app, component)),
        }
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                if n > this.remaining {
                    if let Some((app, component)) = this.who.take() {
                        tracing::error!(%app, %component, "response body over the server's cap (--max-response); aborting the response");
                    }
                    this.remaining = 0;
                    return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(None))));
                }
                this.remaining -= n;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                let Some(rx) = this.guest_ok.as_mut() else {
                    return Poll::Ready(None);
                };
                match Pin::new(rx).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(result) => {
                        this.guest_ok = None;
                        if result == Ok(true) {
                            Poll::Ready(None)
                        } else {
                            Poll::Ready(Some(Err(HttpError::HttpResponseIncomplete)))
                        }
                    }
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.guest_ok.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
