//! What every trigger does around a guest: admission (a per-component concurrency
//! permit, never a queue but for a failing component's bounded wait; see `fairness`)
//! and the guest's run (wall-clock timeout, failure classification, failure counts and
//! at most one log line per second per kind, and the failure penalty). A trigger
//! supplies only the world-specific part: instantiate with its typed pre and call its
//! export.
//!
//! Cost per run: one `Arc` clone of the component (the admission), one of its semaphore
//! (the owned permit), the timer of `tokio::time::timeout`. No locks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use atoll_engine::{FailureKind, classify_error};
use tokio::sync::OwnedSemaphorePermit;

use crate::app::ServedComponent;
use crate::fairness::{Lane, Standing};

/// How long a failed run keeps holding its component's concurrency slot, so a component
/// that keeps trapping, timing out or exhausting memory slows itself down instead of
/// burning the machine's CPU on failures.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// A component's failures of one kind are logged at most once per this window.
pub const LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

/// Failures of one component, by kind: counted always, logged once per [`LOG_WINDOW`].
/// A few relaxed atomics; nothing on the path of a run that succeeds.
#[derive(Debug)]
pub(crate) struct FailureLog {
    since: std::time::Instant,
    kinds: [KindLog; KINDS],
}

/// One kind's count, when it was last logged (ms after `since`, +1 so 0 means never),
/// and how many were not logged since.
#[derive(Debug, Default)]
struct KindLog {
    count: std::sync::atomic::AtomicU64,
    logged_at: std::sync::atomic::AtomicU64,
    left_out: std::sync::atomic::AtomicU64,
    /// A hash of the last logged reason's words (digits left out, so byte counts and
    /// addresses do not make every failure new): a different failure of the same kind
    /// is logged at once.
    last_reason: std::sync::atomic::AtomicU64,
}

/// A hash of `reason` without its digits.
fn reason_hash(reason: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in reason.chars().filter(|c| !c.is_ascii_digit()) {
        c.hash(&mut h);
    }
    h.finish()
}

const KINDS: usize = 7;

fn kind_index(kind: FailureKind) -> usize {
    match kind {
        FailureKind::Timeout => 0,
        FailureKind::MemoryLimit => 1,
        FailureKind::StackOverflow => 2,
        FailureKind::Trap => 3,
        FailureKind::Capacity => 4,
        FailureKind::NodeMemory => 5,
        FailureKind::Other => 6,
    }
}

impl Default for FailureLog {
    fn default() -> Self {
        Self {
            since: std::time::Instant::now(),
            kinds: Default::default(),
        }
    }
}

impl FailureLog {
    pub(crate) fn count(&self, kind: FailureKind) -> u64 {
        self.kinds[kind_index(kind)]
            .count
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Count a failure; `Some(left out since the last line)` if it is to be logged now:
    /// the first of its kind in the window, or one whose reason differs from the last
    /// logged.
    pub(crate) fn record(&self, kind: FailureKind, reason: &str) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let k = &self.kinds[kind_index(kind)];
        k.count.fetch_add(1, Relaxed);
        let hash = reason_hash(reason);
        if k.last_reason.swap(hash, Relaxed) != hash {
            let now = u64::try_from(self.since.elapsed().as_millis())
                .unwrap_or(u64::MAX)
                .saturating_add(1);
            k.logged_at.store(now, Relaxed);
            return Some(k.left_out.swap(0, Relaxed));
        }
        let now = u64::try_from(self.since.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = k.logged_at.load(Relaxed);
        let window = u64::try_from(LOG_WINDOW.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= window)
            && k.logged_at
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            return Some(k.left_out.swap(0, Relaxed));
        }
        k.left_out.fetch_add(1, Relaxed);
        None
    }
}

/// A component's concurrency permit, taken by [`ServedComponent::admit`]: the right to
/// run one instance now.
pub struct Admission {
    component: Arc<ServedComponent>,
    permit: OwnedSemaphorePermit,
    /// A failing component's slot (see `fairness`), held through the failure penalty.
    gate: Option<OwnedSemaphorePermit>,
    standing: Standing,
}

/// Why admission refused a request: the trigger answers 503 (cron skips the tick).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The component runs as many instances as its `max_concurrency`.
    Concurrency,
    /// The node's memory budget has no room for another instance.
    Memory,
    /// The component keeps failing: it runs few instances at a time, and none was free
    /// within the admission wait.
    Failing,
}

/// How one guest run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The call returned.
    Finished,
    /// The guest failed (a trap, a limit, the timeout, a full pool), with a one-line
    /// reason that has already been logged.
    Failed(FailureKind, String),
}

impl ServedComponent {
    /// Admission without waiting: a permit if the component is under its concurrency
    /// limit, the node's memory budget has room for one more of its instances, and, if
    /// it is failing (see `fairness`), one of its few slots is free now.
    pub fn admit(self: &Arc<Self>) -> Result<Admission, Refused> {
        let standing = self.standing();
        let gate = match standing {
            Standing::Failing => match self.gate.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => return Err(self.refuse(Refused::Failing)),
            },
            _ => None,
        };
        self.admit_with(standing, gate)
    }

    /// Count a refusal and return it.
    fn refuse(&self, why: Refused) -> Refused {
        self.metrics.refusals[why as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        why
    }

    /// How many of its runs are on the slow lane now.
    pub fn on_slow_lane(&self) -> usize {
        self.pressure
            .on_slow
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many requests admission has refused for `why` (kept across reloads, as the
    /// failure counts are).
    pub fn refusals(&self, why: Refused) -> u64 {
        self.metrics.refusals[why as usize].load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Admission for a trigger that can hold a request back: as [`ServedComponent::admit`],
    /// but a request to a failing component waits up to the admission wait for one of its
    /// slots, so a client that ignores `retry-after` is slowed to the component's pace
    /// instead of being answered as fast as the server can refuse.
    pub async fn admit_waiting(self: &Arc<Self>) -> Result<Admission, Refused> {
        let standing = self.standing();
        let gate = match standing {
            Standing::Failing => {
                let wait = self.fairness.config.admission_wait;
                match tokio::time::timeout(wait, self.gate.clone().acquire_owned()).await {
                    Ok(Ok(p)) => Some(p),
                    _ => return Err(self.refuse(Refused::Failing)),
                }
            }
            _ => None,
        };
        self.admit_with(standing, gate)
    }

    fn admit_with(
        self: &Arc<Self>,
        standing: Standing,
        gate: Option<OwnedSemaphorePermit>,
    ) -> Result<Admission, Refused> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.refuse(Refused::Concurrency))?;
        if !self.loaded().memory_has_room() {
            return Err(self.refuse(Refused::Memory));
        }
        Ok(Admission {
            component: self.clone(),
            permit,
            gate,
            standing,
        })
    }

    /// Its standing from its recent pressure; a change is logged once.
    fn standing(&self) -> Standing {
        let (now, changed) = self.pressure.standing(&self.fairness, || {
            self.gate.available_permits() < self.fairness.failing_concurrency()
        });
        if changed {
            let (failed, heavy) = self.pressure.recent();
            let window = self.fairness.config.window;
            match now {
                Standing::Failing => {
                    tracing::warn!(app = %self.app_name(), component = %self.name(),
                    "component keeps failing ({failed} failures in the last {window:?} or two): it now runs at most {} instances at a time, on the slow lane, and requests wait up to {:?} for one before their 503",
                    self.fairness.failing_concurrency(), self.fairness.config.admission_wait)
                }
                Standing::Heavy => tracing::info!(app = %self.app_name(), component = %self.name(),
                    "component is CPU-heavy ({heavy} requests over {:?} of CPU in the last {window:?} or two): its requests start on the slow lane",
                    self.fairness.config.demote_after),
                Standing::Normal => {
                    tracing::info!(app = %self.app_name(), component = %self.name(),
                    "component is back to normal: its requests start on the event loops again")
                }
            }
        }
        now
    }
}

impl Admission {
    /// The component admitted.
    pub fn component(&self) -> &Arc<ServedComponent> {
        &self.component
    }

    /// Where this run starts (the slow lane for a heavy or failing component) and how it
    /// moves there: take it before the admission goes into the run, then wrap the run
    /// in [`Lane::run`].
    pub fn lane(&self) -> Lane {
        Lane {
            component: self.component.clone(),
            start_slow: self.standing != Standing::Normal,
        }
    }

    /// Run the guest: the future `run` returns instantiates and calls it (it owns the
    /// store, so the store is dropped when it ends or is cut off). Bounded by the component's timeout
    /// (response body included, when the trigger keeps polling until the body is done);
    /// a failure is classified and logged once with the app, component and reason. A
    /// failure the guest caused keeps the permit [`FAILURE_PENALTY`] longer; `excused`
    /// is asked after the run whether the failure was someone else's (an HTTP client
    /// whose body went over the cap). A full instance pool is never the guest's fault.
    pub async fn run_guest<F: Future<Output = wasmtime::Result<()>>>(
        self,
        run: impl FnOnce() -> F,
        excused: impl FnOnce() -> bool,
    ) -> Outcome {
        let component = &self.component;
        let timeout = component.loaded().limits().timeout;
        let run_record = component.metrics.run_started();
        // `run` is a closure, not a future: the guest's future (instantiate + call, a
        // large state machine) is then built in place inside the timer instead of being
        // carried, and copied, as an argument (callgrind: ~1,200 instructions of memcpy
        // per request when it was a future).
        let outcome = match tokio::time::timeout(timeout, run()).await {
            Ok(Ok(())) => Outcome::Finished,
            Ok(Err(e)) => Outcome::Failed(classify_error(&e), describe_failure(&e)),
            Err(_) => Outcome::Failed(
                FailureKind::Timeout,
                format!("guest exceeded its timeout of {timeout:?} and was stopped"),
            ),
        };
        let guest_caused = match &outcome {
            Outcome::Finished
            | Outcome::Failed(FailureKind::Capacity | FailureKind::NodeMemory, _) => false,
            Outcome::Failed(..) => !excused(),
        };
        if let Outcome::Failed(kind, reason) = &outcome {
            // Counted every time; logged once per window per kind, with how many like
            // it were left out, so a flood of failures is not a flood of log lines.
            if let Some(more) = component.metrics.failures.record(*kind, reason) {
                if more == 0 {
                    tracing::error!(app = %component.app_name(), component = %component.name(), kind = ?kind, "guest failed: {reason}");
                } else {
                    tracing::error!(app = %component.app_name(), component = %component.name(), kind = ?kind, "guest failed: {reason} (and {more} more failures of this kind in the last {:?}, not logged one by one)", LOG_WINDOW);
                }
            }
        }
        run_record.ended(match &outcome {
            Outcome::Finished => None,
            Outcome::Failed(kind, reason) => Some((*kind, reason.as_str())),
        });
        component
            .pressure
            .ended(&component.fairness, &outcome, guest_caused);
        let held = (self.permit, self.gate);
        if guest_caused {
            tokio::spawn(async move {
                tokio::time::sleep(FAILURE_PENALTY).await;
                drop(held);
            });
        } else {
            drop(held);
        }
        outcome
    }
}

/// Context a trigger adds to a guest's error when its instance had been refused a
/// capability before it failed (the failure is often the guest's reaction to it), so the
/// logged reason says so.
#[derive(Debug)]
pub struct DeniedBefore(pub String);

impl std::fmt::Display for DeniedBefore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the guest had been denied {}", self.0)
    }
}

/// One line for the log: the root cause, then where in the guest it happened, then a
/// capability denied before it.
fn describe_failure(e: &wasmtime::Error) -> String {
    let described = describe_cause(e);
    match e.downcast_ref::<DeniedBefore>() {
        Some(d) => format!("{described}; {d}"),
        None => described,
    }
}

fn describe_cause(e: &wasmtime::Error) -> String {
    let cause = e.root_cause().to_string();
    let frames = atoll_engine::guest_frames(e, 6);
    if frames.is_empty() {
        cause
    } else {
        format!("{cause} (in {})", frames.join(" <- "))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::{FailureKind, FailureLog, kind_index};

    #[test]
    fn failures_are_counted_always_and_logged_once_per_window_per_kind() {
        let log = FailureLog::default();
        assert_eq!(
            log.record(FailureKind::Trap, "wasm trap: unreachable"),
            Some(0)
        );
        for _ in 0..5 {
            assert_eq!(
                log.record(FailureKind::Trap, "wasm trap: unreachable"),
                None
            );
        }
        // Another kind has a window of its own.
        assert_eq!(log.record(FailureKind::Timeout, "timeout"), Some(0));
        assert_eq!(log.count(FailureKind::Trap), 6);
        assert_eq!(log.count(FailureKind::Timeout), 1);
        // Once the window has passed (here: as if the last line was never written), the
        // next is logged with the five left out.
        log.kinds[kind_index(FailureKind::Trap)]
            .logged_at
            .store(0, Ordering::Relaxed);
        assert_eq!(
            log.record(FailureKind::Trap, "wasm trap: unreachable"),
            Some(5)
        );
        assert_eq!(
            log.record(FailureKind::Trap, "wasm trap: unreachable"),
            None
        );
        // Another failure of the same kind is logged at once; the same one with other
        // numbers in it is not.
        assert_eq!(
            log.record(FailureKind::Trap, "out of bounds memory access"),
            Some(1)
        );
        assert_eq!(
            log.record(FailureKind::Trap, "out of bounds memory access"),
            None
        );
        let a = "memory limit reached: growing by 1048576 bytes would bring the instance to 33619968 bytes";
        let b = "memory limit reached: growing by 1048576 bytes would bring the instance to 33554432 bytes";
        assert_eq!(log.record(FailureKind::MemoryLimit, a), Some(0));
        assert_eq!(log.record(FailureKind::MemoryLimit, b), None);
    }
}
