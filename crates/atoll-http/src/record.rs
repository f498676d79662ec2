//! The HTTP trigger's half of record and replay (`atoll_capabilities::record` has the
//! host calls'): with [`HttpConfig::taping`](crate::HttpConfig::taping) set, each
//! request's body is read whole before the guest starts and its response is read whole
//! before the client gets it (so a recording has both; a streaming response reaches the
//! client only when it ends), and the guest's instance runs on a tape.
//!
//! Recording (`atoll up --record DIR`, or `--record-failures`: only requests that end
//! in a 5xx, a guest failure or a cut-off body), each recording is written to
//! `DIR/<unix ms>-<n>-<app>-<component>.json`, atomically, off the request path's
//! critical section (on the blocking pool), redacted first. A recording that cannot be
//! written is logged; the request is answered anyway. Replaying (`atoll replay`), the
//! tape of the recording answers the guest's host calls and nothing is written.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use atoll_capabilities::record::{Body, Message, Recording, Tape};

/// Where a server's requests are taped.
#[derive(Clone, Debug)]
pub enum Taping {
    /// Record requests to a directory.
    Record(Arc<RecordTo>),
    /// Answer every request's host calls from this tape (one recording, replayed).
    Replay(Tape),
}

/// `--record DIR` / `--record-failures DIR`.
#[derive(Debug)]
pub struct RecordTo {
    dir: PathBuf,
    failures_only: bool,
    written: AtomicU64,
}

impl RecordTo {
    /// Record into `dir` (created if missing): every request, or only failed ones.
    pub fn new(dir: PathBuf, failures_only: bool) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            failures_only,
            written: AtomicU64::new(0),
        })
    }

    /// Whether only failed requests are recorded.
    pub fn failures_only(&self) -> bool {
        self.failures_only
    }

    /// Recordings written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Write `recording` (redacted with `secrets` first), in the background.
    pub(crate) fn write(self: &Arc<Self>, mut recording: Recording, secrets: Vec<String>) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            recording.redact(&secrets);
            let n = this.written.fetch_add(1, Ordering::Relaxed);
            let name = format!(
                "{}-{n}-{}-{}.json",
                recording.recorded_at_unix_ms,
                file_part(&recording.app),
                file_part(&recording.component)
            );
            let path = this.dir.join(&name);
            let tmp = this.dir.join(format!(".{name}.tmp"));
            let written = write_private(&tmp, &recording.to_json())
                .and_then(|()| std::fs::rename(&tmp, &path));
            match written {
                Ok(()) => tracing::info!(
                    app = %recording.app,
                    component = %recording.component,
                    "recorded {} {} to {}",
                    recording.request.method.as_deref().unwrap_or(""),
                    recording.request.uri.as_deref().unwrap_or(""),
                    path.display()
                ),
                Err(e) => {
                    this.written.fetch_sub(1, Ordering::Relaxed);
                    let _ = std::fs::remove_file(&tmp);
                    tracing::error!(
                        app = %recording.app,
                        "cannot write the recording {}: {e}; the request was answered but not recorded",
                        path.display()
                    );
                }
            }
        });
    }
}

/// Write `bytes` to a new file only its owner can read (a recording holds request
/// bodies, which may be personal data even with the secrets redacted).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // Not synced: a recording is for debugging, and a sync per request would cost more
    // than the request.
    file.write_all(bytes)
}

/// A name safe in a file name: letters, digits, `-` and `_`; anything else `_`.
fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The incoming request as recorded.
pub(crate) fn request_message(parts: &http::request::Parts, body: &[u8]) -> Message {
    Message {
        method: Some(parts.method.as_str().to_owned()),
        uri: Some(
            parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        ),
        status: None,
        headers: Message::headers_of(&parts.headers),
        body: Body::of(body),
    }
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
