//! The operator's runtime configuration (`atoll up --runtime-config runtime.toml`):
//! where variable values and key-value stores come from, and outbound HTTP limits. It
//! is kept apart from the app's manifest, so the same app runs on a laptop (no file:
//! embedded defaults) and in production (real services).
//!
//! ```toml
//! [variables]
//! api_token = "..."                 # lower priority than ATOLL_VARIABLE_API_TOKEN
//!
//! [key_value_store.default]
//! type = "redis"                     # redb (default), memory, redis, postgres, nats
//! url = "redis://127.0.0.1:6379"
//!
//! [outbound_http]
//! connect_timeout = "10s"
//! first_byte_timeout = "30s"
//! max_concurrent_requests = 16      # per instance
//! max_concurrent_requests_per_component = 256   # over all its instances
//! max_requests_per_second = 1000    # per component
//! allow_private_addresses = false   # true: allowed names may resolve to any address
//!
//! [limits]
//! memory_total = "8GiB"             # all instances together (default: half the RAM)
//! memory_reset = "auto"             # "zeroing": never the PAGEMAP_SCAN reset (slower)
//!
//! [fairness]                        # one tenant cannot starve the others (defaults shown)
//! demote_after = "2ms"              # CPU a request may use on an event loop, then the slow lane
//! slow_lane = "idle"                # the slow lane's OS priority: idle, nice (19) or off
//! window = "1s"                     # how far back a component's failures and heavy runs count
//! failure_budget = 10               # failures per window before a component is slowed down
//! heavy_after = 2                   # heavy runs per window before it starts on the slow lane
//! failing_concurrency = 2           # instances a failing component may run (default: cores)
//! admission_wait = "250ms"          # how long a slowed-down request waits before its 503
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::CapabilityError;

/// The parsed runtime configuration. `RuntimeConfig::default()` is what `atoll up` uses
/// without `--runtime-config`.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Variable values, by variable name.
    pub variables: BTreeMap<String, String>,
    /// Key-value stores by label; a label not listed uses the embedded store.
    pub key_value_stores: BTreeMap<String, StoreConfig>,
    /// Outbound HTTP limits.
    pub outbound_http: OutboundConfig,
    /// `[limits] memory_total`: bytes of linear memory all instances may hold together;
    /// `None`: the engine's default (half of the machine's memory).
    pub memory_total: Option<u64>,
    /// `[limits] memory_reset = "zeroing"`: reset instance memory by zeroing even where
    /// the faster `PAGEMAP_SCAN` reset works (`"auto"`, the default, picks the scan
    /// where it is safe).
    pub memory_reset_zeroing: bool,
    /// `[fairness]`: how one component is kept from starving the others.
    pub fairness: FairnessConfig,
    /// The file it was read from, for messages.
    pub path: Option<PathBuf>,
}

/// The OS priority of the slow lane's threads (`[fairness] slow_lane`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LanePriority {
    /// `SCHED_IDLE`: runs only on CPU time the event loops leave (the default).
    #[default]
    Idle,
    /// nice 19: a small share of a busy CPU (where `SCHED_IDLE` is unavailable).
    Nice,
    /// No slow lane: every guest runs on the event loop that took its request.
    Off,
}

/// `[fairness]`: the settings that keep one component from starving the others (see
/// `atoll-runtime`'s `fairness` module for the mechanism). The defaults need no tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairnessConfig {
    /// Guest CPU one request may use on an event loop before it moves to the slow lane.
    pub demote_after: Duration,
    /// The slow lane's priority, or no slow lane.
    pub slow_lane: LanePriority,
    /// How far back (one to two windows) a component's failures and heavy runs count.
    pub window: Duration,
    /// Guest-caused failures in a window, when they also outnumber its successes, after
    /// which a component is failing: few instances at a time, on the slow lane, and a
    /// request waits up to `admission_wait` for one before its 503.
    pub failure_budget: u32,
    /// Requests moved to the slow lane in a window after which a component's requests
    /// start there.
    pub heavy_after: u32,
    /// Instances a failing component may run at once; `None`: one per core.
    pub failing_concurrency: Option<u32>,
    /// How long a request to a failing component waits for an instance before its 503.
    pub admission_wait: Duration,
}

impl Default for FairnessConfig {
    fn default() -> Self {
        Self {
            demote_after: Duration::from_millis(2),
            slow_lane: LanePriority::Idle,
            window: Duration::from_secs(1),
            failure_budget: 10,
            heavy_after: 2,
            failing_concurrency: None,
            admission_wait: Duration::from_millis(250),
        }
    }
}

impl std::fmt::Display for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Redb { path: Some(p) } => write!(f, "redb file {}", p.display()),
            StoreConfig::Redb { path: None } => f.write_str("the embedded redb store"),
            StoreConfig::Memory {} => f.write_str("memory"),
            StoreConfig::Redis { .. } => f.write_str("redis"),
            StoreConfig::Postgres { .. } => f.write_str("postgres"),
            StoreConfig::Nats { .. } => f.write_str("nats"),
        }
    }
}

/// Where one key-value store lives. Every type parses in every build; one whose client
/// this build leaves out (Cargo features `redis`, `postgres`, `nats`) fails when an app
/// that uses it is configured ([`CapabilityError::NotBuilt`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// A redb file (default: `<app dir>/.atoll/kv.redb`).
    Redb {
        /// The file; relative to the runtime config's directory.
        path: Option<PathBuf>,
    },
    /// In process memory ([`MemoryBackend`](crate::MemoryBackend)): kept across reloads,
    /// lost when the process exits. All `memory` stores share one backend, in which
    /// namespaces keep apps and labels apart.
    Memory {},
    /// A Redis server, `redis://host:port[/db]`.
    Redis {
        /// The server's URL.
        url: String,
    },
    /// A PostgreSQL database, `postgres://user@host:port/db`.
    Postgres {
        /// The connection URL.
        url: String,
    },
    /// NATS JetStream key-value buckets, `nats://host:port`.
    Nats {
        /// The server's URL.
        url: String,
    },
}

/// The longest any outbound timeout may be set to. Longer values are refused when the
/// runtime config loads: past this they are surely a typo, and a duration that does not
/// fit next to an `Instant` would panic where it is added to one.
pub const MAX_OUTBOUND_TIMEOUT: Duration = Duration::from_secs(3600);

/// Limits of outbound HTTP requests, the same for every component.
#[derive(Debug, Clone, Copy)]
pub struct OutboundConfig {
    /// Longest wait for a connection (a guest may ask for less, never more).
    pub connect_timeout: Duration,
    /// Longest wait for the response head after connecting.
    pub first_byte_timeout: Duration,
    /// Longest wait between two chunks of the response body.
    pub between_bytes_timeout: Duration,
    /// Requests one instance may have in flight at once; more fail with
    /// `connection-limit-reached` instead of queueing.
    pub max_concurrent_requests: usize,
    /// Requests all instances of one component may have in flight at once; more fail
    /// with `connection-limit-reached`.
    pub max_concurrent_requests_per_component: usize,
    /// Requests one component may start per second (a token bucket, full at start);
    /// more fail with `connection-limit-reached`.
    pub max_requests_per_second: u32,
    /// Whether an allowed host *name* may resolve to a non-public address (loopback,
    /// private, link-local...). Off by default, which stops DNS rebinding; an operator
    /// whose services live on a private network turns it on. IP literals in
    /// `allowed_outbound_hosts` work either way.
    pub allow_private_addresses: bool,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            between_bytes_timeout: Duration::from_secs(30),
            max_concurrent_requests: 16,
            max_concurrent_requests_per_component: 256,
            max_requests_per_second: 1000,
            allow_private_addresses: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Read as any TOML value, so a value of the wrong type is reported by our own
    /// message (serde's quotes the value it found, and these may be secrets).
    #[serde(default)]
    variables: BTreeMap<String, toml::Spanned<toml::Value>>,
    #[serde(default)]
    key_value_store: BTreeMap<String, StoreConfig>,
    #[serde(default)]
    outbound_http: RawOutbound,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    fairness: RawFairness,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFairness {
    demote_after: Option<String>,
    slow_lane: Option<String>,
    window: Option<String>,
    failure_budget: Option<u32>,
    heavy_after: Option<u32>,
    failing_concurrency: Option<u32>,
    admission_wait: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_total: Option<String>,
    memory_reset: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    connect_timeout: Option<String>,
    first_byte_timeout: Option<String>,
    between_bytes_timeout: Option<String>,
    max_concurrent_requests: Option<usize>,
    max_concurrent_requests_per_component: Option<usize>,
    max_requests_per_second: Option<u32>,
    allow_private_addresses: Option<bool>,
}

impl RuntimeConfig {
    /// Read and check a runtime config file.
    pub fn load(path: &Path) -> Result<Self, CapabilityError> {
        let bad = |reason: String| CapabilityError::RuntimeConfig {
            path: path.to_path_buf(),
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        Self::parse(&text, path)
    }

    /// Check the text of a runtime config; `path` is where it came from, for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, CapabilityError> {
        let bad = |reason: String| CapabilityError::RuntimeConfig {
            path: path.to_path_buf(),
            reason,
        };
        // The message names the line and column but never quotes the text: the file may
        // hold secrets.
        let at = |start: usize| {
            let before = text.get(..start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {col}")
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| at(s.start));
            bad(format!(
                "{}{}",
                scrub(e.message().trim_end()),
                at.unwrap_or_default()
            ))
        })?;
        let mut variables = BTreeMap::new();
        for (name, value) in raw.variables {
            let start = value.span().start;
            match value.into_inner() {
                toml::Value::String(s) => {
                    variables.insert(name, s);
                }
                other => {
                    // Only the kind, never the value: `db_password = 123456` is a secret.
                    return Err(bad(format!(
                        "variable `{name}` under [variables] must be a string, not {} (quote it: `{name} = \"...\"`){}",
                        kind_of(&other),
                        at(start)
                    )));
                }
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut key_value_stores = raw.key_value_store;
        for store in key_value_stores.values_mut() {
            if let StoreConfig::Redb { path: Some(p) } = store
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
        let mut outbound_http = OutboundConfig::default();
        let dur =
            |s: &Option<String>, key: &str, into: &mut Duration| -> Result<(), CapabilityError> {
                if let Some(s) = s {
                    let d = atoll_manifest::parse_duration(s)
                        .map_err(|e| bad(format!("outbound_http.{key}: {e}")))?;
                    if d.is_zero() {
                        return Err(bad(format!("outbound_http.{key} must be more than 0")));
                    }
                    if d > MAX_OUTBOUND_TIMEOUT {
                        return Err(bad(format!(
                            "outbound_http.{key} is `{s}`; it may be at most {}s (1h)",
                            MAX_OUTBOUND_TIMEOUT.as_secs()
                        )));
                    }
                    *into = d;
                }
                Ok(())
            };
        let o = &raw.outbound_http;
        dur(
            &o.connect_timeout,
            "connect_timeout",
            &mut outbound_http.connect_timeout,
        )?;
        dur(
            &o.first_byte_timeout,
            "first_byte_timeout",
            &mut outbound_http.first_byte_timeout,
        )?;
        dur(
            &o.between_bytes_timeout,
            "between_bytes_timeout",
            &mut outbound_http.between_bytes_timeout,
        )?;
        if let Some(n) = o.max_concurrent_requests {
            if n == 0 {
                return Err(bad(
                    "outbound_http.max_concurrent_requests must be at least 1".into(),
                ));
            }
            outbound_http.max_concurrent_requests = n;
        }
        if let Some(n) = o.max_concurrent_requests_per_component {
            if n == 0 {
                return Err(bad(
                    "outbound_http.max_concurrent_requests_per_component must be at least 1".into(),
                ));
            }
            outbound_http.max_concurrent_requests_per_component = n;
        }
        if let Some(n) = o.max_requests_per_second {
            if n == 0 {
                return Err(bad(
                    "outbound_http.max_requests_per_second must be at least 1".into(),
                ));
            }
            outbound_http.max_requests_per_second = n;
        }
        if let Some(allow) = o.allow_private_addresses {
            outbound_http.allow_private_addresses = allow;
        }
        let memory_total = match &raw.limits.memory_total {
            None => None,
            Some(s) => {
                let bytes = atoll_manifest::parse_size(s)
                    .map_err(|e| bad(format!("limits.memory_total: {e}")))?;
                if bytes < 1 << 20 {
                    return Err(bad(format!(
                        "limits.memory_total is `{s}`; it must be at least 1MiB"
                    )));
                }
                Some(bytes)
            }
        };
        let memory_reset_zeroing = match raw.limits.memory_reset.as_deref() {
            None | Some("auto") => false,
            Some("zeroing") => true,
            Some(other) => {
                return Err(bad(format!(
                    "limits.memory_reset is `{other}`; it must be \"auto\" or \"zeroing\""
                )));
            }
        };
        let fairness = fairness(&raw.fairness).map_err(bad)?;
        Ok(Self {
            variables,
            key_value_stores,
            outbound_http,
            memory_total,
            memory_reset_zeroing,
            fairness,
            path: Some(path.to_path_buf()),
        })
    }
}

/// Check `[fairness]` and fill in the defaults.
fn fairness(raw: &RawFairness) -> Result<FairnessConfig, String> {
    let mut f = FairnessConfig::default();
    let dur = |s: &Option<String>, key: &str, min: Duration, max: Duration, into: &mut Duration| {
        if let Some(s) = s {
            let d =
                atoll_manifest::parse_duration(s).map_err(|e| format!("fairness.{key}: {e}"))?;
            if d < min || d > max {
                return Err(format!(
                    "fairness.{key} is `{s}`; it must be between {min:?} and {max:?}"
                ));
            }
            *into = d;
        }
        Ok::<(), String>(())
    };
    dur(
        &raw.demote_after,
        "demote_after",
        Duration::from_micros(100),
        Duration::from_secs(10),
        &mut f.demote_after,
    )?;
    dur(
        &raw.window,
        "window",
        Duration::from_millis(10),
        Duration::from_secs(3600),
        &mut f.window,
    )?;
    dur(
        &raw.admission_wait,
        "admission_wait",
        Duration::ZERO,
        Duration::from_secs(60),
        &mut f.admission_wait,
    )?;
    if let Some(p) = &raw.slow_lane {
        f.slow_lane = match p.as_str() {
            "idle" => LanePriority::Idle,
            "nice" => LanePriority::Nice,
            "off" => LanePriority::Off,
            other => {
                return Err(format!(
                    "fairness.slow_lane is `{other}`; it must be `idle`, `nice` or `off`"
                ));
            }
        };
    }
    let at_least_one = |n: Option<u32>, key: &str| match n {
        Some(0) => Err(format!("fairness.{key} must be at least 1")),
        _ => Ok(n),
    };
    if let Some(n) = at_least_one(raw.failure_budget, "failure_budget")? {
        f.failure_budget = n;
    }
    if let Some(n) = at_least_one(raw.heavy_after, "heavy_after")? {
        f.heavy_after = n;
    }
    f.failing_concurrency = at_least_one(raw.failing_concurrency, "failing_concurrency")?;
    Ok(f)
}

/// The kind of a TOML value, for messages that must not show the value.
fn kind_of(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a number",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// A deserializer message without the value it found: serde writes ``invalid type:
/// integer `123456`, expected a string``, and anywhere in this file that value may be a
/// secret. The kind (`integer`) and what was expected stay.
fn scrub(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            let kind = found.split(['`', '"']).next().unwrap_or_default().trim();
            return format!("{prefix}{kind}, expected {expected}");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<RuntimeConfig, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("runtime.toml");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        RuntimeConfig::load(&path).map_err(|e| {
            e.to_string()
                .replace(&dir.path().display().to_string(), "$DIR")
        })
    }

    #[test]
    fn fairness_has_defaults_and_checked_settings() {
        let rc = load("").expect("empty");
        assert_eq!(rc.fairness, super::FairnessConfig::default());
        let rc = load(
            "[fairness]\ndemote_after = \"5ms\"\nslow_lane = \"nice\"\nfailure_budget = 3\nfailing_concurrency = 1\nadmission_wait = \"0s\"\n",
        )
        .expect("loads");
        assert_eq!(rc.fairness.demote_after, Duration::from_millis(5));
        assert_eq!(rc.fairness.slow_lane, super::LanePriority::Nice);
        assert_eq!(rc.fairness.failure_budget, 3);
        assert_eq!(rc.fairness.failing_concurrency, Some(1));
        assert_eq!(rc.fairness.admission_wait, Duration::ZERO);
        let e = load("[fairness]\nslow_lane = \"low\"\n").expect_err("bad lane");
        assert!(
            e.contains("fairness.slow_lane") && e.contains("idle"),
            "{e}"
        );
        let e = load("[fairness]\nfailure_budget = 0\n").expect_err("zero");
        assert!(e.contains("fairness.failure_budget"), "{e}");
        let e = load("[fairness]\ndemote_after = \"1h\"\n").expect_err("too long");
        assert!(e.contains("fairness.demote_after"), "{e}");
        let e = load("[fairness]\ndemote = \"1ms\"\n").expect_err("typo");
        assert!(e.contains("demote"), "{e}");
    }

    #[test]
    fn the_memory_total_is_a_size_of_at_least_a_mebibyte() {
        assert_eq!(load("").expect("empty").memory_total, None);
        let rc = load("[limits]\nmemory_total = \"8GiB\"\n").expect("loads");
        assert_eq!(rc.memory_total, Some(8 << 30));
        let e = load("[limits]\nmemory_total = \"1KiB\"\n").expect_err("too small");
        assert!(
            e.contains("limits.memory_total") && e.contains("1MiB"),
            "{e}"
        );
        let e = load("[limits]\nmemory_total = \"lots\"\n").expect_err("not a size");
        assert!(e.contains("limits.memory_total"), "{e}");
        let e = load("[limits]\nmemroy_total = \"1GiB\"\n").expect_err("typo");
        assert!(e.contains("memroy_total"), "{e}");
    }

    #[test]
    fn the_memory_reset_is_auto_unless_zeroing_is_asked_for() {
        assert!(!load("").expect("empty").memory_reset_zeroing);
        assert!(
            !load("[limits]\nmemory_reset = \"auto\"\n")
                .expect("auto")
                .memory_reset_zeroing
        );
        assert!(
            load("[limits]\nmemory_reset = \"zeroing\"\n")
                .expect("zeroing")
                .memory_reset_zeroing
        );
        let e = load("[limits]\nmemory_reset = \"scan\"\n").expect_err("unknown");
        assert!(
            e.contains("limits.memory_reset") && e.contains("zeroing"),
            "{e}"
        );
    }

    #[test]
    fn a_full_config_loads() {
        let rc = load(
            r#"
[variables]
token = "abc"

[key_value_store.default]
type = "redis"
url = "redis://127.0.0.1:6379"

[key_value_store.local]
type = "redb"
path = "data/kv.redb"

[key_value_store.scratch]
type = "memory"

[key_value_store.events]
type = "nats"
url = "nats://127.0.0.1:4222"

[outbound_http]
connect_timeout = "2s"
max_concurrent_requests = 4
max_concurrent_requests_per_component = 40
max_requests_per_second = 50
allow_private_addresses = true
"#,
        )
        .expect("valid");
        assert_eq!(rc.variables["token"], "abc");
        assert!(
            matches!(&rc.key_value_stores["default"], StoreConfig::Redis { url } if url == "redis://127.0.0.1:6379")
        );
        match &rc.key_value_stores["local"] {
            StoreConfig::Redb { path: Some(p) } => {
                assert!(p.is_absolute() && p.ends_with("data/kv.redb"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            rc.key_value_stores["scratch"],
            StoreConfig::Memory {}
        ));
        assert!(matches!(
            &rc.key_value_stores["events"],
            StoreConfig::Nats { .. }
        ));
        assert_eq!(rc.outbound_http.connect_timeout, Duration::from_secs(2));
        assert_eq!(rc.outbound_http.first_byte_timeout, Duration::from_secs(30));
        assert_eq!(rc.outbound_http.max_concurrent_requests, 4);
        assert_eq!(rc.outbound_http.max_concurrent_requests_per_component, 40);
        assert_eq!(rc.outbound_http.max_requests_per_second, 50);
        assert!(rc.outbound_http.allow_private_addresses);
        assert!(
            !RuntimeConfig::default()
                .outbound_http
                .allow_private_addresses
        );
    }

    #[test]
    fn mistakes_are_named_without_quoting_the_file() {
        let e = load("[key_value_store.default]\ntype = \"mongo\"\n").expect_err("unknown type");
        assert!(
            e.contains("$DIR/runtime.toml") && e.contains("mongo"),
            "{e}"
        );
        let e = load("[outbound_http]\nconnect_timeout = \"soon\"\n").expect_err("bad duration");
        assert!(e.contains("outbound_http.connect_timeout"), "{e}");
        for absurd in ["61m", "2h", "18446744073709551615h", "3601s"] {
            let e = load(&format!(
                "[outbound_http]\nconnect_timeout = \"{absurd}\"\n"
            ))
            .expect_err("too long");
            assert!(
                e.contains("outbound_http.connect_timeout") && e.contains("at most 3600s (1h)"),
                "{e}"
            );
        }
        let rc = load("[outbound_http]\nbetween_bytes_timeout = \"1h\"\n").expect("1h is allowed");
        assert_eq!(rc.outbound_http.between_bytes_timeout, MAX_OUTBOUND_TIMEOUT);
        let e = load("[outbound_http]\nmax_concurrent_requests = 0\n").expect_err("zero");
        assert!(e.contains("at least 1"), "{e}");
        let e =
            load("[outbound_http]\nallow_private_addresses = \"yes\"\n").expect_err("not a bool");
        assert!(e.contains("boolean") && e.contains(" at line 2"), "{e}");
        let e = load("[outbound_http]\nallow_private_address = true\n").expect_err("typo");
        assert!(e.contains("allow_private_address"), "{e}");
        let e = load("[key_value_store.m]\ntype = \"memory\"\nurl = \"x\"\n")
            .expect_err("memory takes no url");
        assert!(e.contains("url"), "{e}");
        let e = load("[varibles]\n").expect_err("unknown table");
        assert!(e.contains("varibles"), "{e}");
        // Values of the wrong type: the kind and the line, never the value.
        for (value, kind) in [
            ("123456", "a number"),
            ("987.654", "a number"),
            ("true", "a boolean"),
            ("[\"hunter2-secret\"]", "an array"),
            ("{ v = \"hunter2-secret\" }", "a table"),
        ] {
            let e = load(&format!("[variables]\nok = \"x\"\ntoken = {value}\n"))
                .expect_err("not a string");
            assert!(
                e.contains("variable `token`")
                    && e.contains(kind)
                    && e.contains("quote it")
                    && e.contains(" at line 3"),
                "{e}"
            );
            assert!(!e.contains(value) && !e.contains("hunter2"), "{e}");
        }
        // The same anywhere else in the file: serde's own message loses the value.
        let e = load("[outbound_http]\nmax_concurrent_requests = \"hunter2-secret\"\n")
            .expect_err("not a number");
        assert!(
            e.contains("invalid type: string, expected") && !e.contains("hunter2"),
            "{e}"
        );
        let e = load("[key_value_store.default]\ntype = \"redis\"\nurl = 8675309\n")
            .expect_err("not a string");
        assert!(e.contains("integer") && !e.contains("8675309"), "{e}");
        let e = load("[variables]\ntoken = \"hunter2-secret\nx").expect_err("broken");
        assert!(
            !e.contains("hunter2-secret") && e.contains(" at line "),
            "{e}"
        );
    }
}
