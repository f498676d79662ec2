//! Guest stdout and stderr, as host log lines.
//!
//! Each line a guest writes becomes one `tracing` event at `info` (stdout) or `warn`
//! (stderr), tagged with the app and the component. Output is line-buffered, a line is
//! cut at [`MAX_LINE`] bytes, and each stream stops being logged after [`MAX_PER_REQUEST`]
//! bytes in one instance (one more line then says so), so a chatty or hostile guest
//! cannot flood the host's logs or memory. Values of the component's secret variables
//! are replaced by `[redacted]` before a line is logged.
//!
//! Cost: building a [`GuestOutput`] allocates nothing; the line buffer is created on the
//! first write, so a request that prints nothing pays nothing more.

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line logged; longer lines are cut into pieces of this size.
pub const MAX_LINE: usize = 4096;
/// Bytes of one stream (stdout or stderr) logged per instance; the rest is dropped, so
/// a guest cannot flood the host's logs.
pub const MAX_PER_REQUEST: usize = 64 * 1024;

/// Who is writing: the tags of every line, and the values to hide.
#[derive(Debug)]
pub(crate) struct LogTarget {
    pub(crate) app: Arc<str>,
    pub(crate) component: Arc<str>,
    /// Values of secret variables this component can read.
    pub(crate) secrets: Vec<String>,
}

impl LogTarget {
    /// `text` with every secret value this component can read replaced by
    /// `[redacted]`. Costs a scan per secret, only on lines that are logged.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let mut out = std::borrow::Cow::Borrowed(text);
        for secret in &self.secrets {
            if !secret.is_empty() && out.contains(secret.as_str()) {
                out = std::borrow::Cow::Owned(out.replace(secret.as_str(), "[redacted]"));
            }
        }
        out
    }
}

/// Which stream a [`GuestOutput`] is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// A guest's stdout or stderr for one instance.
pub(crate) struct GuestOutput {
    target: Arc<LogTarget>,
    stream: Stream,
    // Shared by every handle the guest opens on this stream (`get-stdout` may be called
    // many times), so the per-instance cap holds across them.
    buffer: OnceLock<Arc<Mutex<LineBuffer>>>,
}

impl GuestOutput {
    pub(crate) fn new(target: Arc<LogTarget>, stream: Stream) -> Self {
        Self {
            target,
            stream,
            buffer: OnceLock::new(),
        }
    }

    fn writer(&self) -> LogWriter {
        let buffer = self.buffer.get_or_init(|| {
            Arc::new(Mutex::new(LineBuffer {
                target: self.target.clone(),
                stream: self.stream,
                line: Vec::new(),
                logged: 0,
                truncated: false,
            }))
        });
        LogWriter(buffer.clone())
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
}

struct LineBuffer {
    target: Arc<LogTarget>,
    stream: Stream,
    line: Vec<u8>,
    /// Bytes taken so far (logged or buffered), for the per-instance cap.
    logged: usize,
    truncated: bool,
}

impl LineBuffer {
    fn write(&mut self, mut bytes: &[u8]) {
        if self.truncated {
            return;
        }
        let room = MAX_PER_REQUEST.saturating_sub(self.logged);
        if bytes.len() > room {
            bytes = &bytes[..room];
            self.truncated = true;
        }
        self.logged += bytes.len();
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let (text, complete) = match chunk.strip_suffix(b"\n") {
                Some(t) => (t, true),
                None => (chunk, false),
            };
            self.line.extend_from_slice(text);
            while self.line.len() > MAX_LINE {
                let rest = self.line.split_off(MAX_LINE);
                self.emit();
                self.line = rest;
            }
            if complete {
                self.emit();
            }
        }
        if self.truncated {
            self.emit();
            let (app, component) = (&*self.target.app, &*self.target.component);
            tracing::warn!(
                app = %app,
                component = %component,
                "guest output over {MAX_PER_REQUEST} bytes in one request; the rest is not logged"
            );
        }
    }

    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let text = self.target.redact(text.trim_end_matches('\r'));
        let (app, component) = (&*self.target.app, &*self.target.component);
        match self.stream {
            Stream::Stdout => {
                tracing::info!(app = %app, component = %component, stream = %"stdout", "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(app = %app, component = %component, stream = %"stderr", "{text}")
            }
        }
        self.line.clear();
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        // A last line without a newline is still worth seeing.
        self.emit();
    }
}

/// One handle on a guest stream. Writes never block: they go to the line buffer.
struct LogWriter(Arc<Mutex<LineBuffer>>);

impl LogWriter {
    fn write_bytes(&self, bytes: &[u8]) {
        // The lock is per instance and stream; only this instance's handles contend.
        match self.0.lock() {
            Ok(mut b) => b.write(bytes),
            Err(poisoned) => poisoned.into_inner().write(bytes),
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LogWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let target = LogTarget {
            app: "a".into(),
            component: "c".into(),
            secrets: vec!["hunter2".into(), String::new()],
        };
        assert_eq!(
            target.redact("token=hunter2 and hunter2"),
            "token=[redacted] and [redacted]"
        );
        assert!(matches!(
            target.redact("nothing here"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
