//! Per-plugin limits: memory, a wall-clock deadline per call, optional fuel, and how
//! many instances may be alive at once.

use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// What one plugin may use. Every limit is always on; the defaults are 128 MiB of memory
/// per instance, a 10 s deadline per call, no fuel budget, one instance per core, and a
/// checkout that waits up to the deadline for a free instance.
///
/// Loadable from TOML or JSON (sizes and durations as text or numbers of bytes and
/// milliseconds), so an application's admins can write them:
///
/// ```
/// let limits: atoll::Limits = toml::from_str(r#"
///     memory = "64MiB"
///     deadline = "250ms"
///     fuel = 100_000_000
///     max_instances = 8
/// "#).unwrap();
/// assert_eq!(limits.memory, 64 << 20);
/// # assert_eq!(limits.deadline, std::time::Duration::from_millis(250));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Bytes of linear memory one instance may use, all its memories together.
    #[serde(deserialize_with = "size")]
    pub memory: u64,
    /// Wall-clock time one call may take, from checkout to result: guest code and the
    /// host calls it makes (async host functions are cancelled at the deadline; a
    /// synchronous one that blocks is noticed when it returns, within one epoch tick).
    #[serde(deserialize_with = "duration")]
    pub deadline: Duration,
    /// Wasm instructions (about) one call may run, when the runtime counts fuel
    /// ([`RuntimeBuilder::fuel`](crate::RuntimeBuilder::fuel)). `None`: no budget.
    pub fuel: Option<u64>,
    /// Instances of the plugin alive at once (calls in flight, plus a pool's idle
    /// instances); a call beyond it waits for one to be free.
    pub max_instances: u32,
    /// How long a call waits for a free instance before [`Error::Busy`]. `None`: up to
    /// the deadline.
    #[serde(deserialize_with = "opt_duration")]
    pub checkout_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: 128 << 20,
            deadline: Duration::from_secs(10),
            fuel: None,
            max_instances: std::thread::available_parallelism()
                .map_or(2, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
            checkout_timeout: None,
        }
    }
}

impl Limits {
    /// Set the memory limit, in bytes.
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }

    /// Set the wall-clock deadline of each call.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Set a fuel budget per call (needs a runtime built with fuel on).
    pub fn fuel(mut self, fuel: impl Into<Option<u64>>) -> Self {
        self.fuel = fuel.into();
        self
    }

    /// Set how many instances may be alive at once.
    pub fn max_instances(mut self, n: u32) -> Self {
        self.max_instances = n;
        self
    }

    /// Set how long a call waits for a free instance.
    pub fn checkout_timeout(mut self, wait: Duration) -> Self {
        self.checkout_timeout = Some(wait);
        self
    }

    /// How long a call waits for a free instance.
    pub(crate) fn checkout_wait(&self) -> Duration {
        self.checkout_timeout.unwrap_or(self.deadline)
    }

    /// Check the values: a limit of zero, or more than the engine can give, is refused.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let invalid = |message: String| Err(Error::InvalidInput { message });
        if self.memory == 0 || self.memory > atoll_manifest::MAX_MEMORY {
            return invalid(format!(
                "Limits::memory is {} bytes; it must be between 1 and {} (4 GiB)",
                self.memory,
                atoll_manifest::MAX_MEMORY
            ));
        }
        if self.deadline.is_zero() || self.deadline > MAX_DEADLINE {
            return invalid(format!(
                "Limits::deadline is {:?}; it must be more than zero and at most {MAX_DEADLINE:?}",
                self.deadline
            ));
        }
        if self.max_instances == 0 {
            return invalid(
                "Limits::max_instances is 0; a plugin needs at least one instance".into(),
            );
        }
        if self.fuel == Some(0) {
            return invalid("Limits::fuel is 0; leave it unset for no budget".into());
        }
        if self.checkout_timeout.is_some_and(|d| d > MAX_DEADLINE) {
            return invalid(format!("Limits::checkout_timeout is over {MAX_DEADLINE:?}"));
        }
        Ok(())
    }

    /// The limits the engine keeps per store.
    pub(crate) fn engine_limits(&self) -> atoll_manifest::Limits {
        atoll_manifest::Limits {
            memory: self.memory,
            timeout: self.deadline,
            max_concurrency: Some(self.max_instances),
        }
    }
}

/// The longest deadline (and checkout wait) a plugin may have: longer ones are surely a
/// mistake, and a duration this size still fits next to an `Instant`.
pub const MAX_DEADLINE: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Number(u64),
}

fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match TextOrNumber::deserialize(d)? {
        TextOrNumber::Number(n) => Ok(n),
        TextOrNumber::Text(t) => atoll_manifest::parse_size(&t).map_err(serde::de::Error::custom),
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match TextOrNumber::deserialize(d)? {
        TextOrNumber::Number(ms) => Ok(Duration::from_millis(ms)),
        TextOrNumber::Text(t) => {
            atoll_manifest::parse_duration(&t).map_err(serde::de::Error::custom)
        }
    }
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_from_toml_and_json_and_refuse_nonsense() {
        let l: Limits =
            toml::from_str("memory = 1048576\ndeadline = 50\ncheckout_timeout = \"2s\"")
                .expect("parses");
        assert_eq!(l.memory, 1 << 20);
        assert_eq!(l.deadline, Duration::from_millis(50));
        assert_eq!(l.checkout_timeout, Some(Duration::from_secs(2)));
        let l: Limits = serde_json::from_str(r#"{"memory": "2MiB", "fuel": 1000}"#).expect("json");
        assert_eq!((l.memory, l.fuel), (2 << 20, Some(1000)));
        let e = toml::from_str::<Limits>("memroy = 1").expect_err("typo");
        assert!(e.to_string().contains("unknown field `memroy`"), "{e}");
        let e = toml::from_str::<Limits>("deadline = \"soon\"").expect_err("bad duration");
        assert!(e.to_string().contains("deadline"), "{e}");
        assert!(Limits::default().memory(0).check().is_err());
        assert!(Limits::default().memory(5 << 30).check().is_err());
        assert!(Limits::default().deadline(Duration::ZERO).check().is_err());
        assert!(Limits::default().max_instances(0).check().is_err());
        assert!(Limits::default().check().is_ok());
    }
}
