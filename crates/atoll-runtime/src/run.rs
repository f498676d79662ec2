//! What every trigger does around a guest: admission (a per-component concurrency
//! permit, never a queue) and the guest's run (wall-clock timeout, failure
//! classification, one log line per failure, and the failure penalty). A trigger supplies
//! only the world-specific part: instantiate with its typed pre and call its export.
//!
//! Cost per run: one `Arc` clone of the component (the admission), one of its semaphore
//! (the owned permit), the timer of `tokio::time::timeout`. No locks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use atoll_engine::{FailureKind, classify_error};
use tokio::sync::OwnedSemaphorePermit;

use crate::app::ServedComponent;

/// How long a failed run keeps holding its component's concurrency slot, so a component
/// that keeps trapping, timing out or exhausting memory slows itself down instead of
/// burning the machine's CPU on failures.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// A component's concurrency permit, taken by [`ServedComponent::admit`]: the right to
/// run one instance now.
pub struct Admission {
    component: Arc<ServedComponent>,
    permit: OwnedSemaphorePermit,
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
    /// Admission: a permit if the component is under its concurrency limit and the
    /// node's memory budget has room for one more of its instances, else `None` at once
    /// (the trigger refuses: HTTP answers 503, cron skips the tick).
    pub fn admit(self: &Arc<Self>) -> Option<Admission> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        if !self.loaded().memory_has_room() {
            return None;
        }
        Some(Admission {
            component: self.clone(),
            permit,
        })
    }
}

impl Admission {
    /// The component admitted.
    pub fn component(&self) -> &Arc<ServedComponent> {
        &self.component
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
            tracing::error!(app = %component.app_name(), component = %component.name(), kind = ?kind, "guest failed: {reason}");
        }
        let permit = self.permit;
        if guest_caused {
            tokio::spawn(async move {
                tokio::time::sleep(FAILURE_PENALTY).await;
                drop(permit);
            });
        } else {
            drop(permit);
        }
        outcome
    }
}

/// One line for the log: the root cause, then where in the guest it happened.
fn describe_failure(e: &wasmtime::Error) -> String {
    let cause = e.root_cause().to_string();
    match e.downcast_ref::<wasmtime::WasmBacktrace>() {
        Some(bt) => {
            let frames: Vec<String> = bt
                .frames()
                .iter()
                .take(4)
                .map(|f| f.func_name().unwrap_or("?").to_string())
                .collect();
            format!("{cause} (in {})", frames.join(" <- "))
        }
        None => cause,
    }
}
