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
    /// Its denials, counted by kind (every one, logged or not).
    pub(crate) denials: Arc<crate::DenialCounts>,
}

impl LogTarget {
    /// The tags and the secrets to hide. What is hidden: each secret; its escaped form
    /// (as `{:?}` of a guest's error shows it); and each line of 8 bytes or more of a
    /// secret that spans lines (a PEM key), since output is logged line by line. Longest
    /// first, so a secret that contains another is hidden whole.
    pub(crate) fn new(app: Arc<str>, component: Arc<str>, secrets: Vec<String>) -> Self {
        let mut hidden: Vec<String> = Vec::new();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            let escaped = secret.escape_debug().to_string();
            if escaped != secret {
                hidden.push(escaped);
            }
            if secret.contains('\n') {
                hidden.extend(
                    secret
                        .lines()
                        .map(|l| l.trim_end_matches('\r'))
                        .filter(|l| l.len() >= 8)
                        .map(str::to_string),
                );
            }
            hidden.push(secret);
        }
        hidden.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        hidden.dedup();
        Self {
            app,
            component,
            secrets: hidden,
            denials: Arc::default(),
        }
    }

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

    /// `text` cut to at most `max` bytes where no secret is split (on a character
    /// boundary), redacted, with a secret's cut-off beginning hidden too.
    pub(crate) fn redact_short(&self, text: &str, max: usize) -> String {
        if text.len() <= max {
            return self.redact(text).into_owned();
        }
        let mut cut = self.safe_cut(text.as_bytes(), max).min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.redact_cut_off(&text[..cut]).into_owned()
    }

    /// A name a guest chose (a store label, a config key, a host to look up), ready for
    /// a log line: at most 256 bytes, secrets redacted, escaped.
    pub(crate) fn quote(&self, text: &str) -> String {
        const MAX: usize = 256;
        let cut = self.safe_cut(text.as_bytes(), MAX);
        let piece = String::from_utf8_lossy(&text.as_bytes()[..cut]);
        let mut quoted = self
            .redact_cut_off_if(&piece, cut < text.len())
            .escape_debug()
            .to_string();
        if cut < text.len() {
            quoted.push_str("...");
        }
        quoted
    }

    fn redact_cut_off_if<'t>(&self, text: &'t str, cut_off: bool) -> std::borrow::Cow<'t, str> {
        if cut_off {
            self.redact_cut_off(text)
        } else {
            self.redact(text)
        }
    }

    /// Bytes of the longest secret (0 without secrets).
    pub(crate) fn longest_secret(&self) -> usize {
        self.secrets.iter().map(String::len).max().unwrap_or(0)
    }

    /// Where to cut `text` near `want` bytes so that no secret straddles the cut (each
    /// piece is then redacted whole). `text` must hold at least
    /// [`longest_secret`](Self::longest_secret) bytes past `want`, or all there is, so a
    /// secret running past `want` is seen. The cut moves left to the start of any
    /// secret it would split; when that leaves nothing (a secret longer than `want`,
    /// or overlapping secrets from the very start), it moves right, past the end of the
    /// secrets that straddle `want`, so that piece is longer than `want` instead.
    pub(crate) fn safe_cut(&self, text: &[u8], want: usize) -> usize {
        if want >= text.len() {
            return text.len();
        }
        let straddling = |cut: usize| {
            self.secrets
                .iter()
                .map(String::as_bytes)
                .filter(|s| s.len() >= 2)
                .flat_map(move |s| {
                    (cut.saturating_sub(s.len() - 1)..cut)
                        .filter(move |&start| text[start..].starts_with(s))
                        .map(move |start| (start, start + s.len()))
                })
        };
        let mut cut = want;
        loop {
            match straddling(cut).map(|(start, _)| start).min() {
                None => return cut,
                Some(0) => break,
                Some(start) => cut = start,
            }
        }
        // Rightwards: past every secret that straddles the cut, until none does.
        let mut cut = want;
        for _ in 0..64 {
            match straddling(cut).map(|(_, end)| end).max() {
                None => return cut,
                Some(end) => cut = end.min(text.len()),
            }
            if cut == text.len() {
                return cut;
            }
        }
        cut
    }

    /// `text` redacted, with a trailing beginning of a secret (the text was cut off
    /// there, so the rest may follow unseen) also replaced.
    pub(crate) fn redact_cut_off<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let redacted = self.redact(text);
        let partial = self
            .secrets
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                (1..s.len())
                    .rev()
                    .filter(|n| s.is_char_boundary(*n))
                    .find(|n| redacted.ends_with(&s[..*n]))
            })
            .max();
        match partial {
            Some(n) => {
                let keep = redacted.len() - n;
                std::borrow::Cow::Owned(format!("{}[redacted]", &redacted[..keep]))
            }
            None => redacted,
        }
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
                #[cfg(test)]
                sink: None,
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
    /// Tests read the lines here instead of from the log.
    #[cfg(test)]
    sink: Option<Vec<String>>,
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
        // A long line is cut into pieces of at most MAX_LINE, never inside a secret:
        // a piece is cut off only once the bytes after the cut could hold the longest
        // secret, and the cut moves before any secret it would split.
        let lookahead = self.target.longest_secret();
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let (text, complete) = match chunk.strip_suffix(b"\n") {
                Some(t) => (t, true),
                None => (chunk, false),
            };
            self.line.extend_from_slice(text);
            // A line still being written is cut only where the bytes after the cut can
            // hold the longest secret, so a secret across the cut is seen whole.
            while !complete && self.line.len() >= MAX_LINE + lookahead {
                let cut = self.target.safe_cut(&self.line, MAX_LINE);
                let rest = self.line.split_off(cut);
                self.emit();
                self.line = rest;
            }
            if complete {
                self.flush_all(LogTarget::redact);
            }
        }
        if self.truncated {
            // The cap may have cut a secret short: its beginning is not logged either.
            self.flush_all(LogTarget::redact_cut_off);
            let (app, component) = (&*self.target.app, &*self.target.component);
            tracing::warn!(
                app = %app,
                component = %component,
                "guest output over {MAX_PER_REQUEST} bytes in one request; the rest is not logged"
            );
        }
    }

    fn emit(&mut self) {
        self.emit_with(LogTarget::redact)
    }

    /// Log what is buffered, which no more bytes of this line follow: redacted whole
    /// first, then cut into pieces of at most [`MAX_LINE`] (a cut can then only split
    /// the `[redacted]` marker, never a secret).
    fn flush_all(&mut self, redact: for<'t> fn(&LogTarget, &'t str) -> std::borrow::Cow<'t, str>) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        let text = redact(&self.target, text.trim_end_matches('\r')).into_owned();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let mut cut = rest.len().min(MAX_LINE);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (piece, tail) = rest.split_at(cut);
            self.log(piece);
            rest = tail;
        }
    }

    fn emit_with(&mut self, redact: for<'t> fn(&LogTarget, &'t str) -> std::borrow::Cow<'t, str>) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        let text = redact(&self.target, text.trim_end_matches('\r')).into_owned();
        self.log(&text);
    }

    /// One log line of this stream.
    fn log(&mut self, text: &str) {
        #[cfg(test)]
        if let Some(sink) = &mut self.sink {
            sink.push(text.to_string());
            return;
        }
        let (app, component) = (&*self.target.app, &*self.target.component);
        match self.stream {
            Stream::Stdout => {
                tracing::info!(app = %app, component = %component, stream = %"stdout", "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(app = %app, component = %component, stream = %"stderr", "{text}")
            }
        }
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        // A last line without a newline is still worth seeing.
        self.flush_all(LogTarget::redact);
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
        let target = LogTarget::new(
            "a".into(),
            "c".into(),
            vec!["hunter2".into(), String::new()],
        );
        assert_eq!(
            target.redact("token=hunter2 and hunter2"),
            "token=[redacted] and [redacted]"
        );
        assert!(matches!(
            target.redact("nothing here"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    fn target(secrets: &[&str]) -> LogTarget {
        LogTarget::new(
            "a".into(),
            "c".into(),
            secrets.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn a_cut_never_splits_a_secret() {
        let t = target(&["hunter2", "s3cr3t-Zq9-token"]);
        // The secret across byte 10: the cut moves to its start.
        let text = b"0123456789hunter2 and more";
        assert_eq!(t.safe_cut(text, 12), 10);
        // Nothing to split: the cut stays.
        assert_eq!(t.safe_cut(text, 5), 5);
        assert_eq!(t.safe_cut(text, 17), 17);
        // Shorter than the cut: all of it.
        assert_eq!(t.safe_cut(b"short", 100), 5);
        // Two secrets overlapping across the cut: before both.
        let t2 = target(&["abcd", "cdef"]);
        assert_eq!(t2.safe_cut(b"xxabcdefyy", 5), 2);
        // A secret of one repeated letter from the start: no cut to the left, so the
        // piece runs past the secrets instead.
        let t3 = target(&["aaaa"]);
        assert_eq!(t3.safe_cut(b"aaaaaaaaaa", 6), 10);
        assert_eq!(t3.safe_cut(b"aaaaaaaaaabbbbbbbbbb", 6), 10);
        // A secret longer than the piece: the piece holds it whole.
        let t4 = target(&["0123456789abcdef"]);
        assert_eq!(t4.safe_cut(b"0123456789abcdef and more", 8), 16);
    }

    #[test]
    fn a_secret_inside_another_escaped_or_across_lines_is_hidden() {
        let t = target(&["pass", "password123", "multi\nline secret value\nend"]);
        assert_eq!(
            t.redact("x password123 y pass"),
            "x [redacted] y [redacted]"
        );
        // As `{:?}` shows it, with the newline escaped.
        assert_eq!(
            t.redact(&format!("{:?}", "multi\nline secret value\nend")),
            "\"[redacted]\""
        );
        // Line by line, as output is logged: the long line is hidden on its own.
        assert_eq!(t.redact("line secret value"), "[redacted]");
    }

    #[test]
    fn a_secret_cut_short_is_hidden_too() {
        let t = target(&["hunter2"]);
        assert_eq!(t.redact_cut_off("token=hunt"), "token=[redacted]");
        assert_eq!(t.redact_cut_off("token=hunter2"), "token=[redacted]");
        assert_eq!(t.redact_cut_off("nothing"), "nothing");
    }

    #[test]
    fn names_are_quoted_short_and_redacted() {
        let t = target(&["hunter2"]);
        assert_eq!(t.quote("my-hunter2-store"), "my-[redacted]-store");
        assert_eq!(t.quote("a\nb"), "a\\nb");
        let long = format!("{}hunter2", "x".repeat(252));
        let q = t.quote(&long);
        assert!(!q.contains("hunt") && q.ends_with("..."), "{q}");
        assert!(q.len() < 270, "{}", q.len());
    }

    /// A line buffer that collects what it would log.
    fn buffer(secrets: &[&str]) -> LineBuffer {
        LineBuffer {
            target: Arc::new(target(secrets)),
            stream: Stream::Stdout,
            line: Vec::new(),
            logged: 0,
            truncated: false,
            sink: Some(Vec::new()),
        }
    }

    const SECRET: &str = "s3cr3t-Zq9-token";

    fn assert_no_piece_of_the_secret(lines: &[String]) {
        for line in lines {
            for fragment in ["s3cr3", "3cr3t", "Zq9", "-token"] {
                assert!(!line.contains(fragment), "`{fragment}` logged: {line:?}");
            }
        }
    }

    #[test]
    fn a_secret_across_the_line_cut_is_redacted() {
        for split in [1, 7, 4089, 4090, 4095, 4096, 5000, 100_000] {
            let mut text = "x".repeat(4090);
            text.push_str(SECRET);
            text.push_str(" and the rest ");
            text.push_str(&"y".repeat(5000));
            text.push('\n');
            let mut b = buffer(&[SECRET]);
            for chunk in text.as_bytes().chunks(split) {
                b.write(chunk);
            }
            let lines = b.sink.take().unwrap_or_default();
            assert!(lines.len() >= 3, "split {split}: {} lines", lines.len());
            assert!(lines.iter().all(|l| l.len() <= MAX_LINE), "split {split}");
            assert_no_piece_of_the_secret(&lines);
            // (A cut may split the marker itself, never the secret.)
            assert_eq!(
                lines.concat().matches("[redacted]").count(),
                1,
                "split {split}"
            );
        }
    }

    #[test]
    fn a_secret_cut_by_the_cap_after_a_long_line_is_redacted() {
        // The last line is already longer than MAX_LINE when the cap cuts the secret.
        for long in [4090, 4095, 4097, 4100] {
            let mut b = buffer(&[SECRET]);
            let line = format!("{}\n", "z".repeat(99));
            let mut written = 0;
            while written + line.len() <= MAX_PER_REQUEST - long - 5 {
                b.write(line.as_bytes());
                written += line.len();
            }
            b.write("z".repeat(MAX_PER_REQUEST - long - 5 - written).as_bytes());
            b.write(b"\n");
            b.write("w".repeat(long - 1).as_bytes());
            b.write(format!("{SECRET}\n").as_bytes());
            let lines = b.sink.take().unwrap_or_default();
            assert_no_piece_of_the_secret(&lines);
            assert!(lines.iter().all(|l| l.len() <= MAX_LINE), "{long}");
        }
    }

    #[test]
    fn a_secret_longer_than_a_line_is_redacted() {
        let long_secret = "k".repeat(5000) + "-end-of-the-key";
        let mut b = buffer(&[&long_secret]);
        b.write(format!("key: {long_secret} (done)\n").as_bytes());
        let lines = b.sink.take().unwrap_or_default();
        assert!(
            lines
                .iter()
                .all(|l| !l.contains("kkkkkkkk") && !l.contains("end-of-the-key")),
            "{:?}",
            lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert!(lines.concat().contains("[redacted]"));
    }

    #[test]
    fn a_secret_cut_by_the_per_request_cap_is_redacted() {
        for before in [5, 1, SECRET.len() - 1] {
            let mut b = buffer(&[SECRET]);
            // Lines up to `before` bytes short of the cap, then the secret.
            let line = format!("{}\n", "z".repeat(99));
            let mut written = 0;
            while written + line.len() <= MAX_PER_REQUEST - before {
                b.write(line.as_bytes());
                written += line.len();
            }
            b.write("w".repeat(MAX_PER_REQUEST - before - written).as_bytes());
            b.write(format!("{SECRET}\n").as_bytes());
            let lines = b.sink.take().unwrap_or_default();
            assert_no_piece_of_the_secret(&lines);
            assert!(
                lines.last().is_some_and(|l| l.ends_with("[redacted]")),
                "{:?}",
                lines.last()
            );
        }
    }
}
