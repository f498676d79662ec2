//! Record and replay: everything non-deterministic one instance saw, kept on a [`Tape`]
//! while it runs and written out as a [`Recording`]; later played back to another build
//! of the component, offline.
//!
//! What is on the tape: each outbound HTTP request (method, URL, headers, body) with the
//! response or error it got; each key-value call with its answer; each config read; every
//! wall-clock and monotonic-clock reading; the bytes of secure and insecure random it
//! drew, and its insecure seed. The trigger adds the incoming request and the response
//! (`atoll-http`). Recording costs nothing unless a trigger puts a tape on an instance
//! ([`InstanceCapabilities::set_tape`](crate::InstanceCapabilities::set_tape)); with one,
//! each host call takes one short lock and a copy of what it returned.
//!
//! Replaying, nothing leaves the process: outbound requests are answered from the tape
//! (the grant check still runs, so a build that lost a grant is told so), key-value
//! calls never reach a backend, config reads give the recorded values. A call matches
//! the first recorded call not yet used with the same kind, target and key, so
//! concurrent calls may come back in another order. A call the recording does not have
//! fails in the guest with an error that says so (outbound HTTP: a connection error;
//! key-value and config: the interface's `other` error) and is listed in the
//! [`ReplayReport`]; clocks and random, which cannot fail, repeat their last recorded
//! value (zeros for random) once the recording runs out, and the report counts those reads.
//!
//! Redaction, before anything is written: `authorization`, `proxy-authorization`,
//! `cookie` and `set-cookie` header values become `[redacted]`, everywhere; so does the
//! value of every secret variable the component can read, in every string and body. A
//! replay therefore sees `[redacted]` where the original saw a secret.
//!
//! Not here: writing files (the trigger does), the HTTP request of the trigger itself,
//! files read from mounts (they are the app's, not the moment's), and stdin (none).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::keyvalue::{Backend, BackendError, BoxFut, CasVersion};

/// The recording format this build writes and reads.
pub const FORMAT: u32 = 1;

/// Bodies longer than this are left out of a recording (the size is kept); replaying a
/// call whose body was left out fails with a message saying so.
pub const MAX_RECORDED_BODY: usize = 16 << 20;

/// Header values never written to a recording.
pub const REDACTED_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Parts of a header name that mark it as carrying a credential (`x-api-key`,
/// `x-auth-token`, `x-session-id`...): its value is redacted like [`REDACTED_HEADERS`].
pub const CREDENTIAL_NAME_PARTS: [&str; 7] = [
    "auth", "token", "secret", "api-key", "apikey", "session", "cookie",
];

/// Whether a header's value is never written to a recording.
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    REDACTED_HEADERS.contains(&name.as_str())
        || CREDENTIAL_NAME_PARTS.iter().any(|p| name.contains(p))
}

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// A body: text when it is UTF-8, else base64; or only its length when it was too long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Body {
    /// UTF-8 bytes.
    Text {
        /// The bytes as text.
        text: String,
    },
    /// Other bytes.
    Base64 {
        /// The bytes, base64 (standard alphabet, padded).
        base64: String,
    },
    /// Left out: longer than [`MAX_RECORDED_BODY`].
    Omitted {
        /// Its length, or as much of it as was seen.
        omitted_bytes: u64,
    },
}

impl Default for Body {
    fn default() -> Self {
        Body::Text {
            text: String::new(),
        }
    }
}

impl Body {
    /// `bytes` as a recorded body.
    pub fn of(bytes: &[u8]) -> Self {
        if bytes.len() > MAX_RECORDED_BODY {
            return Body::Omitted {
                omitted_bytes: bytes.len() as u64,
            };
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Body::Text { text: text.into() },
            Err(_) => Body::Base64 {
                base64: BASE64.encode(bytes),
            },
        }
    }

    /// The bytes, or why they are not in the recording.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            Body::Text { text } => Ok(text.clone().into_bytes()),
            Body::Base64 { base64 } => BASE64
                .decode(base64)
                .map_err(|e| format!("a base64 body does not decode: {e}")),
            Body::Omitted { omitted_bytes } => Err(format!(
                "the body ({omitted_bytes} bytes) was longer than a recording keeps ({MAX_RECORDED_BODY} bytes)"
            )),
        }
    }

    fn redact(&mut self, secrets: &[String]) {
        let Ok(bytes) = self.bytes() else { return };
        let redacted = redact_bytes(&bytes, secrets);
        if redacted != bytes {
            *self = Body::of(&redacted);
        }
    }
}

/// An HTTP request or response as recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The method (requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The path and query (the incoming request) or the full URL (outbound requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The status (responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Headers in order, values as text (bytes that are not UTF-8 replaced).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(default)]
    pub body: Body,
}

impl Message {
    /// The headers of `map`, in order.
    pub fn headers_of(map: &http::HeaderMap) -> Vec<(String, String)> {
        map.iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    }

    /// The headers as a map (those that do not parse are left out).
    pub fn header_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_bytes(v.as_bytes()),
            ) {
                map.append(k, v);
            }
        }
        map
    }

    /// This message as a recording would hold it: credential headers and the
    /// `secrets` redacted (a replayed response, to compare with the recorded one).
    pub fn redacted(mut self, secrets: &[String]) -> Self {
        self.redact(&with_encoded(secrets));
        self
    }

    fn redact(&mut self, secrets: &[String]) {
        if let Some(uri) = &mut self.uri {
            *uri = redact_text(uri, secrets);
        }
        for (k, v) in &mut self.headers {
            if is_credential_header(k) {
                *v = REDACTED.into();
            } else {
                *v = redact_text(v, secrets);
            }
        }
        self.body.redact(secrets);
    }
}

/// A key-value call's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvAnswer {
    /// `get`: the value, if any.
    Value(Option<Body>),
    /// `set`, `delete`: done.
    Done,
    /// `exists`, `cas_write`: the answer.
    Bool(bool),
    /// `list`: a page of keys and whether more follow.
    Keys {
        /// The keys.
        keys: Vec<String>,
        /// Whether more follow.
        more: bool,
    },
    /// `increment`: the new count.
    Count(i64),
    /// `cas_read`: the value and, for backends with revisions, the revision.
    CasRead {
        /// The value, if any.
        value: Option<Body>,
        /// The revision (backends with revisions).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revision: Option<u64>,
    },
    /// The backend's error.
    Error(String),
}

/// One host call and what it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// An outbound HTTP request.
    Http {
        /// The request (method, URL, headers, body).
        request: Message,
        /// The response (its body as far as the guest read it), if one came.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<Message>,
        /// The error, if the request failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A key-value call.
    KeyValue {
        /// The store label.
        store: String,
        /// The operation: get, set, delete, exists, list, increment, cas_read, cas_write.
        op: String,
        /// The key (`list`: the offset).
        key: String,
        /// The value written (set, cas_write), for reading the recording.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Body>,
        /// What the backend answered.
        answer: KvAnswer,
    },
    /// A config read: one key, or all of them (`key` absent).
    Config {
        /// The key asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// The value (`None`: unset).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        /// Every key and value (`get_all`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        all: Option<Vec<(String, String)>>,
    },
}

impl Call {
    /// What a replayed call must match: its kind, target and key.
    pub fn key(&self) -> String {
        match self {
            Call::Http { request, .. } => format!(
                "outbound HTTP {} {}",
                request.method.as_deref().unwrap_or("GET"),
                request.uri.as_deref().unwrap_or("")
            ),
            Call::KeyValue { store, op, key, .. } => {
                format!("key-value {op} of `{key}` in store `{store}`")
            }
            Call::Config { key: Some(k), .. } => format!("config read of `{k}`"),
            Call::Config { key: None, .. } => "config read of every key".into(),
        }
    }

    fn redact(&mut self, secrets: &[String]) {
        match self {
            Call::Http {
                request,
                response,
                error,
            } => {
                request.redact(secrets);
                if let Some(r) = response {
                    r.redact(secrets);
                }
                if let Some(e) = error {
                    *e = redact_text(e, secrets);
                }
            }
            Call::KeyValue {
                key, value, answer, ..
            } => {
                *key = redact_text(key, secrets);
                if let Some(v) = value {
                    v.redact(secrets);
                }
                match answer {
                    KvAnswer::Value(Some(v)) | KvAnswer::CasRead { value: Some(v), .. } => {
                        v.redact(secrets)
                    }
                    KvAnswer::Keys { keys, .. } => {
                        for k in keys {
                            *k = redact_text(k, secrets);
                        }
                    }
                    KvAnswer::Error(e) => *e = redact_text(e, secrets),
                    _ => {}
                }
            }
            Call::Config { value, all, .. } => {
                if let Some(v) = value {
                    *v = redact_text(v, secrets);
                }
                for (_, v) in all.iter_mut().flatten() {
                    *v = redact_text(v, secrets);
                }
            }
        }
    }
}

/// The random bytes an instance drew.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RandomDraws {
    /// `wasi:random/random`, in order (base64).
    pub secure: String,
    /// `wasi:random/insecure`, in order (base64).
    pub insecure: String,
    /// `wasi:random/insecure-seed`'s value (hex).
    pub insecure_seed: String,
}

/// Everything one request saw that was not in the component: the file `atoll up
/// --record` writes and `atoll replay` reads (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The format ([`FORMAT`]).
    pub atoll_recording: u32,
    /// When the request came (milliseconds since the Unix epoch).
    pub recorded_at_unix_ms: u64,
    /// The app.
    pub app: String,
    /// The component that served it.
    pub component: String,
    /// The app's manifest when it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<std::path::PathBuf>,
    /// The incoming request.
    pub request: Message,
    /// The response the client got, if the guest gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Message>,
    /// Why the request failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Each host call, in the order they were made.
    #[serde(default)]
    pub calls: Vec<Call>,
    /// Wall-clock readings (seconds, nanoseconds since the epoch), in order.
    #[serde(default)]
    pub wall_clock: Vec<(u64, u32)>,
    /// Monotonic-clock readings (nanoseconds), in order.
    #[serde(default)]
    pub monotonic_clock: Vec<u64>,
    /// Random bytes drawn.
    #[serde(default)]
    pub random: RandomDraws,
}

impl Recording {
    /// A recording from its JSON, checked for a format this build reads.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a recording (invalid JSON: {e})"))?;
        match v.get("atoll_recording").and_then(|f| f.as_u64()) {
            Some(f) if f == u64::from(FORMAT) => {}
            Some(f) => {
                return Err(format!(
                    "recording format {f}, but this atoll reads format {FORMAT}; replay it with the atoll that wrote it"
                ));
            }
            None => return Err("not a recording (no `atoll_recording` field)".into()),
        }
        serde_json::from_value(v).map_err(|e| format!("a malformed recording: {e}"))
    }

    /// The recording as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Redact secrets (and the credential headers, [`REDACTED_HEADERS`]) everywhere.
    /// `secrets` are the values to hide.
    pub fn redact(&mut self, secrets: &[String]) {
        let secrets = &with_encoded(secrets);
        self.request.redact(secrets);
        if let Some(r) = &mut self.response {
            r.redact(secrets);
        }
        if let Some(f) = &mut self.failure {
            *f = redact_text(f, secrets);
        }
        for c in &mut self.calls {
            c.redact(secrets);
        }
    }
}

/// Each secret, and its percent-encoded form where that differs (a secret in a URL or a
/// form body).
fn with_encoded(secrets: &[String]) -> Vec<String> {
    let mut all: Vec<String> = Vec::with_capacity(secrets.len() * 2);
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        let encoded: String = s
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        if encoded != *s {
            all.push(encoded);
        }
        all.push(s.clone());
    }
    // Longest first, so a secret that contains another is hidden whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    all
}

fn redact_text(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    out
}

fn redact_bytes(bytes: &[u8], secrets: &[String]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        let needle = s.as_bytes();
        let mut next = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if out[i..].starts_with(needle) {
                next.extend_from_slice(REDACTED.as_bytes());
                i += needle.len();
            } else {
                next.push(out[i]);
                i += 1;
            }
        }
        out = next;
    }
    out
}

/// The host side of a recording, as a tape holds it ([`Tape::take_recorded`]).
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Each host call, in order.
    pub calls: Vec<Call>,
    /// Wall-clock readings.
    pub wall_clock: Vec<(u64, u32)>,
    /// Monotonic-clock readings.
    pub monotonic_clock: Vec<u64>,
    /// Random bytes drawn.
    pub random: RandomDraws,
}

/// What a replay found beyond the response: calls the guest made that the recording
/// does not have, recorded calls it never made, and clock or random reads past the end
/// of the recording.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Host calls the guest made that the recording does not have.
    pub missing: Vec<String>,
    /// Recorded host calls the guest did not make.
    pub unused: Vec<String>,
    /// Reads past the end of the recording, by source (`wall_clock`, `monotonic_clock`,
    /// `secure_random`, `insecure_random`).
    pub overruns: BTreeMap<String, u64>,
}

impl ReplayReport {
    /// Whether the guest made exactly the recorded calls.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unused.is_empty() && self.overruns.is_empty()
    }
}

#[derive(Default)]
struct Log {
    calls: Vec<Call>,
    wall: Vec<(u64, u32)>,
    mono: Vec<u64>,
    secure: Vec<u8>,
    insecure: Vec<u8>,
    seed: u128,
}

struct Replaying {
    calls: Vec<(Call, bool)>,
    wall: Vec<(u64, u32)>,
    wall_at: usize,
    mono: Vec<u64>,
    mono_at: usize,
    secure: Vec<u8>,
    secure_at: usize,
    insecure: Vec<u8>,
    insecure_at: usize,
    seed: u128,
    report: ReplayReport,
}

enum Mode {
    Record(Mutex<Log>),
    Replay(Mutex<Replaying>),
}

/// One instance's tape: recording what its host calls answer, or answering them from a
/// recording. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Tape(Arc<Mode>);

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_replay() {
            "Tape(replay)"
        } else {
            "Tape(record)"
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What `Tape::answer` gives a host call: record it after doing it for real, or this
/// recorded call.
// Lives on the stack for one host call; boxing the call would cost an allocation there.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Answer {
    Live,
    Replayed(Call),
    Missing(String),
}

impl Tape {
    /// A tape that records.
    pub fn recording() -> Self {
        Tape(Arc::new(Mode::Record(Mutex::new(Log {
            seed: u128::from_le_bytes(random_bytes::<16>()),
            ..Log::default()
        }))))
    }

    /// A tape that plays `recording` back.
    pub fn replaying(recording: &Recording) -> Result<Self, String> {
        let decode = |what: &str, s: &str| {
            BASE64
                .decode(s)
                .map_err(|e| format!("the recording's {what} random bytes do not decode: {e}"))
        };
        let seed = if recording.random.insecure_seed.is_empty() {
            0
        } else {
            u128::from_str_radix(&recording.random.insecure_seed, 16)
                .map_err(|e| format!("the recording's insecure seed is not hex: {e}"))?
        };
        Ok(Tape(Arc::new(Mode::Replay(Mutex::new(Replaying {
            calls: recording.calls.iter().map(|c| (c.clone(), false)).collect(),
            wall: recording.wall_clock.clone(),
            wall_at: 0,
            mono: recording.monotonic_clock.clone(),
            mono_at: 0,
            secure: decode("secure", &recording.random.secure)?,
            secure_at: 0,
            insecure: decode("insecure", &recording.random.insecure)?,
            insecure_at: 0,
            seed,
            report: ReplayReport::default(),
        })))))
    }

    /// Whether this tape plays a recording back.
    pub fn is_replay(&self) -> bool {
        matches!(*self.0, Mode::Replay(_))
    }

    /// Install the tape's clocks and random sources in a WASI context being built.
    pub fn prepare_wasi(&self, builder: &mut WasiCtxBuilder) {
        builder.wall_clock(TapeWallClock {
            tape: self.clone(),
            real: wasmtime_wasi::clocks::wall_clock(),
        });
        builder.monotonic_clock(TapeMonotonicClock {
            tape: self.clone(),
            real: wasmtime_wasi::clocks::monotonic_clock(),
        });
        builder.secure_random(TapeRandom {
            tape: self.clone(),
            secure: true,
        });
        builder.insecure_random(TapeRandom {
            tape: self.clone(),
            secure: false,
        });
        let seed = match &*self.0 {
            Mode::Record(log) => lock(log).seed,
            Mode::Replay(r) => lock(r).seed,
        };
        builder.insecure_random_seed(seed);
    }

    /// Record `call` (a recording tape; a replaying one ignores it).
    pub(crate) fn push(&self, call: Call) -> usize {
        match &*self.0 {
            Mode::Record(log) => {
                let mut log = lock(log);
                log.calls.push(call);
                log.calls.len() - 1
            }
            Mode::Replay(_) => 0,
        }
    }

    /// Change recorded call `i` (an outbound response's body, once it is read).
    pub(crate) fn update(&self, i: usize, f: impl FnOnce(&mut Call)) {
        if let Mode::Record(log) = &*self.0
            && let Some(c) = lock(log).calls.get_mut(i)
        {
            f(c);
        }
    }

    /// For a call about to be made (its [`Call::key`]): make it for real (recording),
    /// or the recorded call to answer with, or why there is none (replaying; listed in
    /// the report).
    pub(crate) fn answer(&self, key: &str) -> Answer {
        match &*self.0 {
            Mode::Record(_) => Answer::Live,
            Mode::Replay(r) => {
                let mut r = lock(r);
                if let Some((call, used)) = r.calls.iter_mut().find(|(c, u)| !*u && c.key() == key)
                {
                    *used = true;
                    return Answer::Replayed(call.clone());
                }
                r.report.missing.push(key.to_owned());
                Answer::Missing(format!(
                    "replay: the guest made a call the recording does not have: {key}"
                ))
            }
        }
    }

    /// The calls recorded so far, with the clock and random readings, as a recording's
    /// host side (the caller fills in the rest).
    pub fn take_recorded(&self) -> Recorded {
        match &*self.0 {
            Mode::Record(log) => {
                let mut log = lock(log);
                let log = std::mem::take(&mut *log);
                Recorded {
                    calls: log.calls,
                    wall_clock: log.wall,
                    monotonic_clock: log.mono,
                    random: RandomDraws {
                        secure: BASE64.encode(&log.secure),
                        insecure: BASE64.encode(&log.insecure),
                        insecure_seed: format!("{:x}", log.seed),
                    },
                }
            }
            Mode::Replay(_) => Recorded::default(),
        }
    }

    /// What the replay found (empty for a recording tape).
    pub fn report(&self) -> ReplayReport {
        match &*self.0 {
            Mode::Record(_) => ReplayReport::default(),
            Mode::Replay(r) => {
                let r = lock(r);
                let mut report = r.report.clone();
                report.unused = r
                    .calls
                    .iter()
                    .filter(|(_, used)| !used)
                    .map(|(c, _)| c.key())
                    .collect();
                report
            }
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    wasmtime_wasi::thread_rng().fill_bytes(&mut b);
    b
}

struct TapeWallClock {
    tape: Tape,
    real: Box<dyn HostWallClock + Send>,
}

impl HostWallClock for TapeWallClock {
    fn resolution(&self) -> Duration {
        self.real.resolution()
    }

    fn now(&self) -> Duration {
        match &*self.tape.0 {
            Mode::Record(log) => {
                let now = self.real.now();
                lock(log).wall.push((now.as_secs(), now.subsec_nanos()));
                now
            }
            Mode::Replay(r) => {
                let mut r = lock(r);
                let at = r.wall_at;
                let (s, n) = match r.wall.get(at).copied() {
                    Some(v) => {
                        r.wall_at += 1;
                        v
                    }
                    None => {
                        *r.report.overruns.entry("wall_clock".into()).or_default() += 1;
                        r.wall.last().copied().unwrap_or_default()
                    }
                };
                // A hand-edited file must not overflow `Duration::new`.
                Duration::new(s, n.min(999_999_999))
            }
        }
    }
}

struct TapeMonotonicClock {
    tape: Tape,
    real: Box<dyn HostMonotonicClock + Send>,
}

impl HostMonotonicClock for TapeMonotonicClock {
    fn resolution(&self) -> u64 {
        self.real.resolution()
    }

    fn now(&self) -> u64 {
        match &*self.tape.0 {
            Mode::Record(log) => {
                let now = self.real.now();
                lock(log).mono.push(now);
                now
            }
            Mode::Replay(r) => {
                let mut r = lock(r);
                let at = r.mono_at;
                match r.mono.get(at).copied() {
                    Some(v) => {
                        r.mono_at += 1;
                        v
                    }
                    None => {
                        *r.report
                            .overruns
                            .entry("monotonic_clock".into())
                            .or_default() += 1;
                        r.mono.last().copied().unwrap_or_default()
                    }
                }
            }
        }
    }
}

/// Secure or insecure random: drawn from the thread's generator and kept (recording),
/// or given back from the recording (replaying).
struct TapeRandom {
    tape: Tape,
    secure: bool,
}

impl rand_core::TryRng for TapeRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        match &*self.tape.0 {
            Mode::Record(log) => {
                wasmtime_wasi::thread_rng().fill_bytes(dst);
                let mut log = lock(log);
                if self.secure {
                    log.secure.extend_from_slice(dst);
                } else {
                    log.insecure.extend_from_slice(dst);
                }
            }
            Mode::Replay(r) => {
                let mut r = lock(r);
                let r = &mut *r;
                let (bytes, at, name) = if self.secure {
                    (&r.secure, &mut r.secure_at, "secure_random")
                } else {
                    (&r.insecure, &mut r.insecure_at, "insecure_random")
                };
                let have = bytes.len().saturating_sub(*at).min(dst.len());
                dst[..have].copy_from_slice(&bytes[*at..*at + have]);
                dst[have..].fill(0);
                *at += have;
                if have < dst.len() {
                    *r.report.overruns.entry(name.into()).or_default() += 1;
                }
            }
        }
        Ok(())
    }
}

/// A store's backend seen through a tape: calls go to `inner` and are recorded, or are
/// answered from the recording without touching `inner`.
pub(crate) struct TapeBackend {
    pub(crate) tape: Tape,
    pub(crate) store: Arc<str>,
    pub(crate) inner: Arc<dyn Backend>,
}

impl TapeBackend {
    fn call(&self, op: &str, key: &str, value: Option<&[u8]>) -> Call {
        Call::KeyValue {
            store: self.store.to_string(),
            op: op.into(),
            key: key.into(),
            value: value.map(Body::of),
            answer: KvAnswer::Done,
        }
    }

    /// Run `live` for real and record its answer (`to_answer`), or answer from the tape
    /// (`from_answer`).
    async fn taped<T>(
        &self,
        call: Call,
        live: BoxFut<'_, T>,
        to_answer: impl FnOnce(&Result<T, BackendError>) -> KvAnswer,
        from_answer: impl FnOnce(KvAnswer) -> Option<Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let key = call.key();
        match self.tape.answer(&key) {
            Answer::Live => {
                let r = live.await;
                let mut call = call;
                if let Call::KeyValue { answer, .. } = &mut call {
                    *answer = match &r {
                        Err(e) => KvAnswer::Error(e.message().to_owned()),
                        ok => to_answer(ok),
                    };
                }
                self.tape.push(call);
                r
            }
            Answer::Replayed(Call::KeyValue { answer, .. }) => match answer {
                KvAnswer::Error(e) => Err(BackendError::new(e)),
                a => from_answer(a).unwrap_or_else(|| {
                    Err(BackendError::new(format!(
                        "replay: the recorded answer to the {key} does not fit the call"
                    )))
                }),
            },
            Answer::Replayed(_) => {
                Err(BackendError::new("replay: a recorded call of another kind"))
            }
            Answer::Missing(why) => Err(BackendError::new(why)),
        }
    }
}

fn body_bytes(b: Option<Body>) -> Option<Result<Option<Vec<u8>>, BackendError>> {
    Some(match b {
        None => Ok(None),
        Some(b) => b.bytes().map(Some).map_err(BackendError::new),
    })
}

impl Backend for TapeBackend {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        Box::pin(self.taped(
            self.call("get", key, None),
            self.inner.get(ns, key),
            |r| KvAnswer::Value(r.as_ref().ok().and_then(|v| v.as_deref().map(Body::of))),
            |a| match a {
                KvAnswer::Value(v) => body_bytes(v),
                _ => None,
            },
        ))
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>) -> BoxFut<'a, ()> {
        let call = self.call("set", key, Some(&value));
        Box::pin(self.taped(
            call,
            self.inner.set(ns, key, value),
            |_| KvAnswer::Done,
            |a| matches!(a, KvAnswer::Done).then_some(Ok(())),
        ))
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        Box::pin(self.taped(
            self.call("delete", key, None),
            self.inner.delete(ns, key),
            |_| KvAnswer::Done,
            |a| matches!(a, KvAnswer::Done).then_some(Ok(())),
        ))
    }

    fn exists<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, bool> {
        Box::pin(self.taped(
            self.call("exists", key, None),
            self.inner.exists(ns, key),
            |r| KvAnswer::Bool(matches!(r, Ok(true))),
            |a| match a {
                KvAnswer::Bool(b) => Some(Ok(b)),
                _ => None,
            },
        ))
    }

    fn list<'a>(
        &'a self,
        ns: &'a str,
        offset: u64,
        limit: usize,
    ) -> BoxFut<'a, (Vec<String>, bool)> {
        Box::pin(self.taped(
            self.call("list", &format!("offset {offset}"), None),
            self.inner.list(ns, offset, limit),
            |r| match r {
                Ok((keys, more)) => KvAnswer::Keys {
                    keys: keys.clone(),
                    more: *more,
                },
                Err(_) => KvAnswer::Done,
            },
            |a| match a {
                KvAnswer::Keys { keys, more } => Some(Ok((keys, more))),
                _ => None,
            },
        ))
    }

    fn increment<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64) -> BoxFut<'a, i64> {
        Box::pin(self.taped(
            self.call("increment", key, None),
            self.inner.increment(ns, key, delta),
            |r| KvAnswer::Count(*r.as_ref().unwrap_or(&0)),
            |a| match a {
                KvAnswer::Count(n) => Some(Ok(n)),
                _ => None,
            },
        ))
    }

    fn cas_read<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFut<'a, (Option<Vec<u8>>, CasVersion)> {
        Box::pin(self.taped(
            self.call("cas_read", key, None),
            self.inner.cas_read(ns, key),
            |r| match r {
                Ok((v, version)) => KvAnswer::CasRead {
                    value: v.as_deref().map(Body::of),
                    revision: match version {
                        CasVersion::Revision(n) => Some(*n),
                        CasVersion::Value(_) => None,
                    },
                },
                Err(_) => KvAnswer::Done,
            },
            |a| match a {
                KvAnswer::CasRead { value, revision } => Some(body_bytes(value)?.map(|v| {
                    let version = match revision {
                        Some(n) => CasVersion::Revision(n),
                        None => CasVersion::Value(v.clone()),
                    };
                    (v, version)
                })),
                _ => None,
            },
        ))
    }

    fn cas_write<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        seen: &'a CasVersion,
        value: Vec<u8>,
    ) -> BoxFut<'a, bool> {
        let call = self.call("cas_write", key, Some(&value));
        Box::pin(self.taped(
            call,
            self.inner.cas_write(ns, key, seen, value),
            |r| KvAnswer::Bool(matches!(r, Ok(true))),
            |a| match a {
                KvAnswer::Bool(b) => Some(Ok(b)),
                _ => None,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    #[test]
    fn bodies_are_text_base64_or_left_out() {
        assert_eq!(Body::of(b"hi"), Body::Text { text: "hi".into() });
        let bin = Body::of(&[0xff, 0, 1]);
        assert!(matches!(bin, Body::Base64 { .. }));
        assert_eq!(bin.bytes().expect("decodes"), [0xff, 0, 1]);
        let big = Body::of(&vec![b'a'; MAX_RECORDED_BODY + 1]);
        assert!(big.bytes().expect_err("left out").contains("longer than"));
        let json = serde_json::to_string(&bin).expect("json");
        assert_eq!(serde_json::from_str::<Body>(&json).expect("back"), bin);
    }

    #[test]
    fn credentials_and_secrets_are_redacted_everywhere() {
        let secret = "s3cret-token".to_string();
        let mut r = Recording {
            atoll_recording: FORMAT,
            recorded_at_unix_ms: 1,
            app: "a".into(),
            component: "c".into(),
            manifest: None,
            request: Message {
                method: Some("GET".into()),
                uri: Some("/?key=s3cret-token".into()),
                headers: vec![
                    ("Authorization".into(), "Bearer abc".into()),
                    ("cookie".into(), "id=1".into()),
                    ("x-note".into(), "has s3cret-token inside".into()),
                ],
                body: Body::of(b"\xffbinary s3cret-token"),
                ..Message::default()
            },
            response: None,
            failure: Some("failed near s3cret-token".into()),
            calls: vec![Call::Config {
                key: Some("token".into()),
                value: Some("s3cret-token".into()),
                all: None,
            }],
            wall_clock: vec![],
            monotonic_clock: vec![],
            random: RandomDraws::default(),
        };
        r.request
            .headers
            .push(("X-Auth-Token".into(), "tok-1".into()));
        r.request.headers.push(("x-note2".into(), "a/b+c=d".into()));
        r.request.uri = Some("/?key=s3cret-token&k2=a%2Fb%2Bc%3Dd".into());
        r.redact(&[secret, "a/b+c=d".into()]);
        let text = String::from_utf8(r.to_json()).expect("utf8");
        assert!(!text.contains("tok-1") && !text.contains("a%2Fb"), "{text}");
        assert!(!text.contains("a/b+c=d"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            !text.contains("Bearer abc") && !text.contains("id=1"),
            "{text}"
        );
        assert_eq!(
            r.request.body.bytes().expect("bytes"),
            b"\xffbinary [redacted]"
        );
        assert_eq!(Recording::from_json(&r.to_json()).expect("reads back"), r);
    }

    #[test]
    fn a_recording_of_another_format_or_none_is_refused_saying_which() {
        let e = Recording::from_json(br#"{"atoll_recording": 99}"#).expect_err("format");
        assert!(e.contains("format 99") && e.contains("format 1"), "{e}");
        let e = Recording::from_json(b"{}").expect_err("none");
        assert!(e.contains("no `atoll_recording`"), "{e}");
        let e = Recording::from_json(b"{").expect_err("json");
        assert!(e.contains("invalid JSON"), "{e}");
    }

    #[tokio::test]
    async fn key_value_calls_replay_without_the_backend_and_misses_are_reported() {
        let tape = Tape::recording();
        let live: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let b = TapeBackend {
            tape: tape.clone(),
            store: "default".into(),
            inner: live.clone(),
        };
        b.set("ns", "k", b"v1".to_vec()).await.expect("set");
        assert_eq!(b.get("ns", "k").await.expect("get"), Some(b"v1".to_vec()));
        assert_eq!(b.increment("ns", "n", 2).await.expect("incr"), 2);
        let calls = tape.take_recorded().calls;
        assert_eq!(calls.len(), 3);
        let rec = Recording {
            atoll_recording: FORMAT,
            recorded_at_unix_ms: 0,
            app: "a".into(),
            component: "c".into(),
            manifest: None,
            request: Message::default(),
            response: None,
            failure: None,
            calls,
            wall_clock: vec![(7, 8)],
            monotonic_clock: vec![],
            random: RandomDraws::default(),
        };

        // Replayed against an empty backend: the answers are the recorded ones.
        let replay = Tape::replaying(&rec).expect("tape");
        let empty: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let r = TapeBackend {
            tape: replay.clone(),
            store: "default".into(),
            inner: empty.clone(),
        };
        assert_eq!(r.get("ns", "k").await.expect("get"), Some(b"v1".to_vec()));
        assert_eq!(r.increment("ns", "n", 2).await.expect("incr"), 2);
        let e = r.get("ns", "other").await.expect_err("not recorded");
        assert!(e.message().contains("`other` in store `default`"), "{e}");
        assert_eq!(empty.get("ns", "k").await.expect("get"), None);
        let report = replay.report();
        assert_eq!(
            report.missing,
            ["key-value get of `other` in store `default`"]
        );
        assert_eq!(report.unused, ["key-value set of `k` in store `default`"]);
        assert!(!report.is_clean());
    }

    #[test]
    fn clocks_and_random_play_back_then_repeat_and_count_the_overrun() {
        let rec = Recording {
            atoll_recording: FORMAT,
            recorded_at_unix_ms: 0,
            app: "a".into(),
            component: "c".into(),
            manifest: None,
            request: Message::default(),
            response: None,
            failure: None,
            calls: vec![],
            wall_clock: vec![(10, 1), (11, 2)],
            monotonic_clock: vec![5],
            random: RandomDraws {
                secure: BASE64.encode([1u8, 2, 3]),
                insecure: String::new(),
                insecure_seed: "ff".into(),
            },
        };
        let tape = Tape::replaying(&rec).expect("tape");
        let wall = TapeWallClock {
            tape: tape.clone(),
            real: wasmtime_wasi::clocks::wall_clock(),
        };
        assert_eq!(wall.now(), Duration::new(10, 1));
        assert_eq!(wall.now(), Duration::new(11, 2));
        assert_eq!(wall.now(), Duration::new(11, 2));
        let mut rng = TapeRandom {
            tape: tape.clone(),
            secure: true,
        };
        let mut b = [9u8; 5];
        rand_core::TryRng::try_fill_bytes(&mut rng, &mut b).expect("fill");
        assert_eq!(b, [1, 2, 3, 0, 0]);
        let report = tape.report();
        assert_eq!(report.overruns["wall_clock"], 1);
        assert_eq!(report.overruns["secure_random"], 1);
    }
}
