//! The live log tail: a `tracing` layer that keeps the process's last log lines (the
//! same events stderr gets, guest output included, already redacted by the
//! capabilities) and hands new ones to the dashboard's live connections.
//!
//! Costs nothing until it is installed (`atoll up --admin`); then one formatted string
//! per event that passes the filter (events are not per request at the default level).

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Lines kept for a dashboard that connects later.
pub const KEPT_LINES: usize = 500;

/// One log line.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Its number since start (increasing).
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`.
    pub level: &'static str,
    /// The app it concerns, if it names one.
    pub app: Option<String>,
    /// The component it concerns, if it names one.
    pub component: Option<String>,
    /// The message with its other fields (`key=value`).
    pub message: String,
}

/// The tail: clone it into the admin server; [`LogTail::layer`] goes into the subscriber.
#[derive(Debug, Clone)]
pub struct LogTail {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    lines: Mutex<VecDeque<LogLine>>,
    seq: AtomicU64,
    live: tokio::sync::broadcast::Sender<LogLine>,
}

impl Default for LogTail {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                lines: Mutex::new(VecDeque::with_capacity(KEPT_LINES)),
                seq: AtomicU64::new(0),
                live: tokio::sync::broadcast::channel(1024).0,
            }),
        }
    }
}

impl LogTail {
    /// The layer that feeds this tail.
    pub fn layer(&self) -> LogTailLayer {
        LogTailLayer { tail: self.clone() }
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> Vec<LogLine> {
        self.inner
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// New lines as they come (a slow reader misses some, and is told so by `Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LogLine> {
        self.inner.live.subscribe()
    }

    fn push(&self, mut line: LogLine) {
        // Numbered, kept and sent under one lock, so lines reach every reader in order.
        let mut lines = self.inner.lines.lock().unwrap_or_else(|e| e.into_inner());
        line.seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line.clone());
        let _ = self.inner.live.send(line);
    }
}

/// The `tracing` layer of a [`LogTail`].
#[derive(Debug)]
pub struct LogTailLayer {
    tail: LogTail,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogTailLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut v = Fields::default();
        event.record(&mut v);
        let mut message = v.message;
        if !v.rest.is_empty() {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(&v.rest);
        }
        self.tail.push(LogLine {
            seq: 0,
            at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            level: event.metadata().level().as_str(),
            app: v.app,
            component: v.component,
            message,
        });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    app: Option<String>,
    component: Option<String>,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "app" => self.app = Some(value),
            "component" => self.component = Some(value),
            name => {
                if !self.rest.is_empty() {
                    self.rest.push(' ');
                }
                let _ = write!(self.rest, "{name}={value}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn events_become_lines_with_their_app_and_component() {
        let tail = LogTail::default();
        let subscriber = tracing_subscriber::registry().with(tail.layer());
        let mut live = tail.subscribe();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(app = %"shop", component = %"web", kind = %"socket", "capability denied: {}", "tcp");
            tracing::info!("plain");
        });
        let lines = tail.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].level, "WARN");
        assert_eq!(lines[0].app.as_deref(), Some("shop"));
        assert_eq!(lines[0].component.as_deref(), Some("web"));
        assert_eq!(lines[0].message, "capability denied: tcp kind=socket");
        assert_eq!(lines[1].seq, 1);
        assert_eq!(
            live.try_recv().map(|l| l.message).ok().as_deref(),
            Some("capability denied: tcp kind=socket")
        );
    }
}
