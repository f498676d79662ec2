//! The cron trigger: `[[trigger.cron]] schedule = "..." component = "..."` runs the
//! component in a fresh instance at every tick of the schedule (UTC), with the
//! component's limits and grants, through the same admission and guest run as every
//! trigger (`atoll-runtime`). The component is either a Spin cron component (it exports
//! `handle-cron-event` of `fermyon:spin-cron@2.0.0`, called with the tick's time in unix
//! seconds; an `error` result is a failed run) or a `wasi:cli/run` command (any
//! language's CLI program: its `main` once per tick; a non-zero exit is a failed run).
//!
//! A tick that finds the previous run of the same trigger still going is skipped and
//! logged, never queued; a failing run is logged (once, by the runtime) and the next
//! tick runs as usual; a run that panics frees its trigger all the same. The schedules follow the live apps: each change rebuilds them
//! (a run in flight finishes on its version, and still counts as "the previous run" for
//! the next tick of the same trigger).
//!
//! Not for: parsing schedules (`atoll-manifest`'s `Schedule`), loading apps or running
//! guests (`atoll-runtime`), HTTP.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use atoll_capabilities::CapabilityView;
use atoll_capabilities::trace::{self, Tracer};
use atoll_engine::InstanceState;
use atoll_manifest::{Diagnostic, Schedule};
use atoll_runtime::{LiveApps, Outcome, ServedComponent, Snapshot, source_diagnostic};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status};
use tokio::task::JoinSet;
use wasmtime_wasi::p2::bindings::CommandPre;

/// The export of a command.
const CLI_RUN: &str = "wasi:cli/run@0.2.";
/// The export of a Spin cron component.
const SPIN_CRON: &str = "handle-cron-event";

/// Bindings for Spin's cron world (`wit/spin-cron.wit`).
mod spin {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "fermyon:spin-cron/spin-cron",
        exports: { default: async },
    });
}

/// How a tick calls the component.
#[derive(Clone)]
enum Entry {
    /// `wasi:cli/run`.
    Command(CommandPre<InstanceState>),
    /// `handle-cron-event`.
    Spin(spin::SpinCronPre<InstanceState>),
}

/// A component behind a cron trigger that cannot run on a schedule.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CronError(Box<Diagnostic>);

impl CronError {
    /// The diagnostic, located at the component's `source`.
    pub fn diagnostic(&self) -> &Diagnostic {
        &self.0
    }
}

/// One trigger of one app version, ready to tick.
struct Job {
    app: Arc<str>,
    component: Arc<ServedComponent>,
    entry: Entry,
    schedule: Schedule,
    /// Whether a run is going and the last tick, shared across reloads.
    state: Arc<TriggerState>,
}

/// The cron trigger's check of a candidate set of apps: every component behind a cron
/// trigger exports `wasi:cli/run`. Errors are located at the component's `source`.
pub fn check(snapshot: &Snapshot) -> Result<(), CronError> {
    jobs(snapshot, &mut HashMap::new()).map(|_| ())
}

/// A trigger across reloads: app, component, schedule as written.
/// A trigger across reloads: app, component, schedule as written, and which of the
/// identical triggers of that app it is.
type RunningKey = (String, String, String, usize);

/// What a trigger keeps across reloads.
#[derive(Default)]
struct TriggerState {
    /// Set while a run of this trigger is going.
    running: AtomicBool,
    /// The last tick it fired (or skipped).
    last: std::sync::Mutex<Option<SystemTime>>,
}

/// A tick up to this late still fires (one due while a reload swapped the tickers).
const LATE: Duration = Duration::from_secs(1);

fn jobs(
    snapshot: &Snapshot,
    running: &mut HashMap<RunningKey, Arc<TriggerState>>,
) -> Result<Vec<Job>, CronError> {
    let mut out = Vec::new();
    let mut keys = Vec::new();
    for loaded in snapshot.apps() {
        let app = loaded.app();
        for trigger in app.cron_triggers() {
            let (Some(component), Some(manifest)) = (
                loaded.component(&trigger.component),
                app.components.get(&trigger.component),
            ) else {
                continue;
            };
            let entry = entry_of(app, manifest, component)?;
            let mut key = (
                app.name.clone(),
                trigger.component.clone(),
                trigger.schedule.to_string(),
                0,
            );
            while keys.contains(&key) {
                key.3 += 1;
            }
            let state = running.entry(key.clone()).or_default().clone();
            keys.push(key);
            out.push(Job {
                app: component.app_name().clone(),
                component: component.clone(),
                entry,
                schedule: trigger.schedule.clone(),
                state,
            });
        }
    }
    // Triggers that are gone forget their state (runs in flight hold their own `Arc`).
    running.retain(|k, _| keys.contains(k));
    Ok(out)
}

fn entry_of(
    app: &atoll_manifest::App,
    manifest: &atoll_manifest::Component,
    component: &ServedComponent,
) -> Result<Entry, CronError> {
    let loaded = component.loaded();
    let name = &manifest.name;
    let shown = &manifest.source_written;
    let at = |msg: String| CronError(Box::new(source_diagnostic(app, manifest, msg)));
    // A Spin cron component built as a binary exports `wasi:cli/run` too; its handler wins.
    if loaded.exports().iter().any(|e| e == SPIN_CRON) {
        return spin::SpinCronPre::new(loaded.instance_pre().clone())
            .map(Entry::Spin)
            .map_err(|e| {
                at(format!(
                    "component `{name}` (`{shown}`) exports `handle-cron-event`, but not as Spin's cron world `fermyon:spin-cron@2.0.0` has it: {}",
                    atoll_engine::error_chain(&e)
                ))
            });
    }
    if !loaded.exports_starting_with(CLI_RUN) {
        let has = loaded.what_it_exports();
        return Err(at(format!(
            "component `{name}` (`{shown}`) does not export wasi:cli/run or Spin's handle-cron-event, so it cannot run on a schedule; {has}"
        ))
        .help_owned("a cron component is a command, a program with `main` (for Rust: a binary crate built with `--target wasm32-wasip2`), or a Spin cron component (`#[cron_component]` of spin-cron-sdk)"));
    }
    CommandPre::new(loaded.instance_pre().clone())
        .map(Entry::Command)
        .map_err(|e| {
            at(format!(
                "component `{name}` does not export a usable wasi:cli/run: {}",
                atoll_engine::error_chain(&e)
            ))
        })
}

impl CronError {
    fn help_owned(self, help: &str) -> Self {
        CronError(Box::new(self.0.help(help.to_string())))
    }
}

/// Run the cron triggers of `apps` until `shutdown` completes, following every change
/// of the live set. Then no tick starts, and the runs in flight get up to `grace` to
/// finish (they are cut off with the runtime after that). With a `tracer`, each run is
/// a span (`cron <schedule>`, a new trace) with its host calls as children.
pub async fn run(
    apps: LiveApps,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    tracer: Option<Tracer>,
) {
    let mut changes = apps.subscribe();
    let mut running: HashMap<RunningKey, Arc<TriggerState>> = HashMap::new();
    let runs = Arc::new(Runs::default());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tickers = JoinSet::new();
    loop {
        // A set that does not schedule (only an embedder that skipped `check` can store
        // one) keeps the previous tickers.
        match jobs(&apps.snapshot(), &mut running) {
            Ok(jobs) => {
                // The old version's tickers stop here; the runs they started go on.
                tickers.abort_all();
                for job in jobs {
                    tickers.spawn(tick_forever(job, runs.clone(), tracer.clone()));
                }
            }
            Err(e) => tracing::error!(
                "cannot schedule the new set of apps, keeping the previous schedules: {e}"
            ),
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                tracing::debug!("cron schedules rebuilt for the new set of apps");
            }
            () = &mut shutdown => break,
        }
    }
    tickers.abort_all();
    if tokio::time::timeout(grace, runs.all_done()).await.is_err() {
        tracing::warn!("cron runs did not finish within {grace:?}; stopping them");
    }
}

/// The runs in flight, so shutdown can wait for them.
#[derive(Default)]
struct Runs {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Runs {
    async fn all_done(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held by a run: on drop (its end, or a panic) the trigger is free for its next tick
/// and the run no longer counts as in flight.
struct RunGuard {
    state: Arc<TriggerState>,
    runs: Arc<Runs>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.state.running.store(false, Ordering::Release);
        if self.runs.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.runs.idle.notify_waiters();
        }
    }
}

/// Sleep until each tick of `job`'s schedule and start a run, unless one is going.
async fn tick_forever(job: Job, runs: Arc<Runs>, tracer: Option<Tracer>) {
    let job = Arc::new(job);
    loop {
        let now = SystemTime::now();
        let Some(next) = next_tick(&job.schedule, &job.state, now) else {
            tracing::warn!(app = %job.app, component = %job.component.name(), schedule = %job.schedule, "the schedule has no future tick; this trigger stops");
            return;
        };
        let wait = next.duration_since(now).unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        if let Ok(mut last) = job.state.last.lock() {
            *last = Some(next);
        }
        let timestamp = next
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if job.state.running.swap(true, Ordering::AcqRel) {
            tracing::warn!(app = %job.app, component = %job.component.name(), schedule = %job.schedule, "tick skipped: the previous run is still going");
            continue;
        }
        runs.count.fetch_add(1, Ordering::AcqRel);
        let guard = RunGuard {
            state: job.state.clone(),
            runs: runs.clone(),
        };
        let admission = match job.component.admit() {
            Ok(a) => a,
            Err(refused) => {
                drop(guard);
                let why = match refused {
                    atoll_runtime::Refused::Concurrency => {
                        "the component is at its concurrency limit"
                    }
                    atoll_runtime::Refused::Memory => "the node's memory budget is spent",
                    atoll_runtime::Refused::Failing => {
                        "the component keeps failing and its few slots are taken"
                    }
                };
                tracing::warn!(app = %job.app, component = %job.component.name(), "tick skipped: {why}");
                continue;
            }
        };
        let run_job = job.clone();
        // A job that computes moves to the slow lane like any guest, so it cannot hold
        // the threads of this runtime.
        let lane = admission.lane();
        let tracer = tracer.clone();
        tokio::spawn(lane.run(Box::pin(async move {
            let _guard = guard;
            let mut store = run_job.component.loaded().new_store();
            let span = tracer.map(|tracer| {
                let component = &run_job.component;
                let cx = tracer.start(
                    format!("cron {}", run_job.schedule),
                    SpanKind::Internal,
                    None,
                    vec![
                        KeyValue::new("atoll.trigger", "cron"),
                        KeyValue::new("atoll.cron.schedule", run_job.schedule.to_string()),
                        KeyValue::new("atoll.app", component.app_name().to_string()),
                        KeyValue::new("atoll.component", component.name().to_string()),
                    ],
                );
                let (caps, _) = store.data_mut().capabilities();
                caps.set_trace(trace::InstanceTrace::new(tracer, cx.clone()));
                cx
            });
            let entry = run_job.entry.clone();
            let metrics = run_job.component.metrics().clone();
            let outcome = admission
                .run_guest(move || call(entry, store, timestamp, metrics), || false)
                .await;
            if let Some(cx) = span {
                let span = trace::span_of(&cx);
                if let Outcome::Failed(kind, reason) = &outcome {
                    let kind = atoll_runtime::metrics::failure_kind_label(*kind);
                    span.set_attribute(KeyValue::new("error.type", kind));
                    span.set_attribute(KeyValue::new("atoll.failure.kind", kind));
                    span.set_status(Status::error(reason.clone()));
                }
                span.end();
            }
            tracing::debug!(app = %run_job.app, component = %run_job.component.name(), ?outcome, "cron run ended");
            outcome
        })));
    }
}

/// The tick to wait for: the one after the last this trigger fired, if that is at most
/// [`LATE`] past (so a tick due while a reload swapped the tickers still fires, and a
/// clock that steps back never fires a tick twice), else the next after `now`.
fn next_tick(schedule: &Schedule, state: &TriggerState, now: SystemTime) -> Option<SystemTime> {
    let last = state.last.lock().ok().and_then(|l| *l);
    if let Some(last) = last
        && let Some(after_last) = schedule.next_after(last)
        && after_last.checked_add(LATE).is_some_and(|t| t >= now)
    {
        return Some(after_last);
    }
    schedule.next_after(now)
}

/// Instantiate and call the component once; the store lives in the returned future. A
/// failure after a refused capability says so (often the guest's reaction to it).
async fn call(
    entry: Entry,
    mut store: wasmtime::Store<InstanceState>,
    timestamp: u64,
    metrics: std::sync::Arc<atoll_runtime::metrics::ComponentMetrics>,
) -> wasmtime::Result<()> {
    let called = call_in(entry, &mut store, timestamp, metrics).await;
    called.map_err(|e| match store.data().first_denial() {
        Some(denied) => e.context(atoll_runtime::DeniedBefore(denied.to_string())),
        None => e,
    })
}

async fn call_in(
    entry: Entry,
    mut store: &mut wasmtime::Store<InstanceState>,
    timestamp: u64,
    metrics: std::sync::Arc<atoll_runtime::metrics::ComponentMetrics>,
) -> wasmtime::Result<()> {
    let started = std::time::Instant::now();
    match entry {
        Entry::Command(pre) => {
            let instance = pre.instantiate_async(&mut store).await?;
            metrics.instantiated(started.elapsed());
            match instance.wasi_cli_run().call_run(&mut store).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(())) => Err(wasmtime::Error::msg(
                    "the command's `run` returned an error (a non-zero exit)",
                )),
                // `std::process::exit(0)` ends a command as a success.
                Err(e)
                    if e.downcast_ref::<wasmtime_wasi::I32Exit>()
                        .is_some_and(|x| x.0 == 0) =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Entry::Spin(pre) => {
            let instance = pre.instantiate_async(&mut store).await?;
            metrics.instantiated(started.elapsed());
            let metadata = spin::fermyon::spin_cron::cron_types::Metadata { timestamp };
            match instance
                .call_handle_cron_event(&mut store, metadata)
                .await?
            {
                Ok(()) => Ok(()),
                Err(spin::fermyon::spin_cron::cron_types::Error::Other(reason)) => Err(
                    wasmtime::Error::msg(format!("handle-cron-event returned an error: {reason}")),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn a_tick_due_during_a_reload_still_fires_and_none_fires_twice() {
        let every_second = Schedule::parse("* * * * * *").expect("schedule");
        let state = TriggerState::default();
        // No tick yet: the next after now.
        assert_eq!(
            next_tick(&every_second, &state, at(100, 300)),
            Some(at(101, 0))
        );
        *state.last.lock().expect("lock") = Some(at(100, 0));
        // In time: the next one.
        assert_eq!(
            next_tick(&every_second, &state, at(100, 300)),
            Some(at(101, 0))
        );
        // 101 came while the tickers were swapped: it fires now, late.
        assert_eq!(
            next_tick(&every_second, &state, at(101, 400)),
            Some(at(101, 0))
        );
        // Long gone: not fired late, the next after now.
        assert_eq!(
            next_tick(&every_second, &state, at(105, 400)),
            Some(at(106, 0))
        );
        // The clock stepped back: 100 was fired, it is not fired again.
        assert_eq!(
            next_tick(&every_second, &state, at(98, 0)),
            Some(at(101, 0))
        );
    }
}
