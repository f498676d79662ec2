//! How one component is kept from starving the others in one process: the slow lane,
//! and each component's recent pressure (failures, heavy runs), which admission reads.
//!
//! - **The slow lane.** A multi-thread tokio runtime whose threads run at the lowest OS
//!   priority (`SCHED_IDLE` by default), one per core. A guest whose request has used
//!   more than `demote_after` of CPU on an event loop is moved there at its next yield
//!   (guests yield at every epoch tick, 1 ms): the kernel then runs it only on CPU time
//!   the event loops leave, so a loop, and every short request on it, is never held
//!   longer than `demote_after` plus about two ticks by a guest that computes. CPU is
//!   counted in epoch ticks the thread's CPU clock confirms
//!   (`atoll_engine::thread_guest_ticks`), never in wall time: a short request whose
//!   thread the kernel or the hypervisor paused is not heavy. Moving is safe
//!   between polls: a wasmtime store and its fiber are `Send`, and the timers and
//!   sockets it opened on the loop keep working (their wake-ups cross threads).
//! - **Pressure.** Per component, over the last one to two `window`s: guest-caused
//!   failures, heavy runs (moved to the slow lane, or heavy there), and successes (only
//!   counted while there is something bad to weigh them against). A component with
//!   `heavy_after` heavy runs is *heavy*: its requests start on the slow lane. One with
//!   `failure_budget` failures that outnumber its successes is *failing*: besides
//!   starting on the slow lane, at most `failing_concurrency` of its instances run at
//!   once (each holds its slot through the failure penalty), and a request waits up to
//!   `admission_wait` for a slot before its 503, so a client that ignores `retry-after`
//!   costs the server one timer per `admission_wait`, not a request per answer.
//!   Components recover by themselves: the counts age out with the windows, and
//!   successes on the slow lane outweigh failures.
//!
//! The invariant (ARCHITECTURE.md): no request runs more than `demote_after` plus one
//! epoch tick of guest CPU on an event loop, except inside one instruction wasmtime
//! cannot interrupt (a bulk memory operation, bounded by the instance's memory limit);
//! a failing component is admitted at most `failing_concurrency` at a time.
//!
//! Cost on a request that finishes in its first poll (hello): five relaxed loads of its
//! component's counters at admission (all zero: no clock read), one of the gate's
//! permits, and a thread-local read before the poll. Not for: memory, which the engine's node-wide budget bounds.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Instant;

use atoll_capabilities::{FairnessConfig, LanePriority};
use atoll_engine::{EPOCH_TICK, FailureKind, thread_guest_ticks};

use crate::run::Outcome;

/// The process's slow lane, started on first use; `None` if it is off or could not be
/// started (then guests stay on their loops, as before it existed).
fn slow_lane(priority: LanePriority) -> Option<&'static tokio::runtime::Handle> {
    static LANE: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    if priority == LanePriority::Off {
        return None;
    }
    LANE.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("atoll-slow")
            .enable_all()
            .on_thread_start(move || lower_priority(priority))
            .build();
        match built {
            Ok(rt) => {
                tracing::debug!(threads, ?priority, "slow lane started");
                Some(rt)
            }
            Err(e) => {
                tracing::warn!(
                    "cannot start the slow lane ({e}); heavy guests stay on the event loops"
                );
                None
            }
        }
    })
    .as_ref()
    .map(|rt| rt.handle())
}

/// Lower the calling thread's priority for the slow lane. Lowering needs no privilege.
fn lower_priority(priority: LanePriority) {
    #[cfg(target_os = "linux")]
    {
        let idle = || {
            // SAFETY: all-zero is a valid sched_param (priority 0, what SCHED_IDLE needs;
            // musl's has more fields than glibc's).
            let param: libc::sched_param = unsafe { std::mem::zeroed() };
            // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter.
            // The raw syscall, not libc's wrapper: musl's wrapper only returns ENOSYS.
            unsafe {
                libc::syscall(
                    libc::SYS_sched_setscheduler,
                    0,
                    libc::SCHED_IDLE,
                    &param as *const libc::sched_param,
                ) == 0
            }
        };
        let nice = || {
            // SAFETY: gettid has no preconditions; setpriority on our own thread id.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 19) == 0
            }
        };
        let ok = match priority {
            LanePriority::Idle => idle() || nice(),
            LanePriority::Nice => nice(),
            LanePriority::Off => true,
        };
        if !ok {
            tracing::warn!(
                "cannot lower the slow lane's priority: {}; heavy guests compete with the event loops",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

/// The fairness settings a component runs under, resolved once per load.
#[derive(Debug)]
pub(crate) struct Fairness {
    pub(crate) config: FairnessConfig,
    window_ms: u64,
    /// `demote_after` in epoch ticks (at least 1).
    demote_ticks: u64,
    failing_concurrency: usize,
    slow: Option<&'static tokio::runtime::Handle>,
}

impl Fairness {
    pub(crate) fn new(config: FairnessConfig) -> Self {
        let window_ms = u64::try_from(config.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let demote_ticks = u64::try_from(
            config
                .demote_after
                .as_micros()
                .div_ceil(EPOCH_TICK.as_micros().max(1)),
        )
        .unwrap_or(u64::MAX)
        .max(1);
        let failing_concurrency = config.failing_concurrency.map_or_else(
            || std::thread::available_parallelism().map_or(2, |n| n.get()),
            |n| n as usize,
        );
        Self {
            slow: slow_lane(config.slow_lane),
            config,
            window_ms,
            demote_ticks,
            failing_concurrency,
        }
    }

    /// Instances a failing component may run at once.
    pub(crate) fn failing_concurrency(&self) -> usize {
        self.failing_concurrency
    }
}

/// How a component is admitted now, from its recent pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its requests start on the event loop.
    Normal,
    /// Its recent requests used a lot of CPU: they start on the slow lane.
    Heavy,
    /// Its recent requests mostly failed: few at a time, on the slow lane.
    Failing,
}

const FAILED: usize = 0;
const HEAVY: usize = 1;
const OK: usize = 2;

/// One component's recent failures, heavy runs and successes, in two windows (the
/// current and the one before). Relaxed atomics; a race at a window's edge may lose a
/// count, which only blurs the edge.
#[derive(Debug)]
pub(crate) struct Pressure {
    since: Instant,
    /// The index of the window `current` counts (milliseconds since `since` / window).
    window: AtomicU64,
    current: [AtomicU32; 3],
    previous: [AtomicU32; 3],
    /// The standing last decided (`Standing as u8`; see `judge`).
    held: std::sync::atomic::AtomicU8,
    /// Runs of the component on the slow lane now.
    pub(crate) on_slow: AtomicUsize,
}

impl Default for Pressure {
    fn default() -> Self {
        Self {
            since: Instant::now(),
            window: AtomicU64::new(0),
            current: Default::default(),
            previous: Default::default(),
            held: std::sync::atomic::AtomicU8::new(Standing::Normal as u8),
            on_slow: AtomicUsize::new(0),
        }
    }
}

impl Pressure {
    /// Whether anything bad was counted in the two windows held (stale or not).
    fn any_bad(&self) -> bool {
        (self.current[FAILED].load(Relaxed)
            | self.current[HEAVY].load(Relaxed)
            | self.previous[FAILED].load(Relaxed)
            | self.previous[HEAVY].load(Relaxed))
            != 0
    }

    /// Move the windows on to now.
    fn roll(&self, f: &Fairness) {
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX) / f.window_ms;
        let held = self.window.load(Relaxed);
        if held >= now
            || self
                .window
                .compare_exchange(held, now, Relaxed, Relaxed)
                .is_err()
        {
            return;
        }
        for i in 0..3 {
            let was = self.current[i].swap(0, Relaxed);
            self.previous[i].store(if held + 1 == now { was } else { 0 }, Relaxed);
        }
    }

    fn count(&self, f: &Fairness, what: usize) {
        self.roll(f);
        self.current[what].fetch_add(1, Relaxed);
    }

    fn sum(&self, what: usize) -> u32 {
        self.current[what]
            .load(Relaxed)
            .saturating_add(self.previous[what].load(Relaxed))
    }

    /// The standing now, and whether it just changed (true for exactly one caller per
    /// change, for the log line). `gate_busy` says whether some of the component's
    /// failing slots are taken (a failing component whose runs are starved on the slow
    /// lane, so that they neither fail nor succeed, stays failing); asked only then.
    pub(crate) fn standing(
        &self,
        f: &Fairness,
        gate_busy: impl FnOnce() -> bool,
    ) -> (Standing, bool) {
        let held = self.held.load(Relaxed);
        if held == Standing::Normal as u8 && !self.any_bad() {
            return (Standing::Normal, false);
        }
        self.roll(f);
        let busy = held == Standing::Failing as u8 && gate_busy();
        let now = self.judge(f, held, busy);
        let changed = held != now as u8 && self.held.swap(now as u8, Relaxed) != now as u8;
        (now, changed)
    }

    /// The standing the counts call for, given the one held. Leaving a standing takes
    /// less than entering it, because a failing component admitted a few at a time
    /// cannot fail as often as it did, nor a heavy one started on the slow lane be moved
    /// there again, and neither must be let back onto the loops for that alone.
    fn judge(&self, f: &Fairness, held: u8, gate_busy: bool) -> Standing {
        let (failed, heavy, ok) = (self.sum(FAILED), self.sum(HEAVY), self.sum(OK));
        let failing = if held == Standing::Failing as u8 {
            (failed > 0 && failed >= ok) || (gate_busy && ok == 0)
        } else {
            failed >= f.config.failure_budget && failed >= ok
        };
        if failing {
            Standing::Failing
        } else if heavy >= f.config.heavy_after || (held != Standing::Normal as u8 && heavy > 0) {
            Standing::Heavy
        } else {
            Standing::Normal
        }
    }

    /// A run ended: count a guest-caused failure, or a success while there is anything
    /// bad to weigh it against.
    pub(crate) fn ended(&self, f: &Fairness, outcome: &Outcome, guest_caused: bool) {
        match outcome {
            Outcome::Failed(..) if guest_caused => self.count(f, FAILED),
            Outcome::Finished if self.any_bad() => self.count(f, OK),
            _ => {}
        }
    }

    /// Failures and heavy runs counted in the current and the previous window.
    pub(crate) fn recent(&self) -> (u32, u32) {
        (self.sum(FAILED), self.sum(HEAVY))
    }
}

/// Where an admitted run starts, and what it needs to move: given by
/// [`Admission::lane`](crate::Admission::lane) before the admission goes into the run.
#[derive(Clone)]
pub struct Lane {
    pub(crate) component: std::sync::Arc<crate::ServedComponent>,
    pub(crate) start_slow: bool,
}

impl Lane {
    /// Run `guest` (a boxed future that owns everything it uses, typically the trigger's
    /// whole run around [`Admission::run_guest`](crate::Admission::run_guest)) where the
    /// component's standing says, moving it to the slow lane once it has used more than
    /// `demote_after` of CPU here. Dropping the returned future stops the guest wherever
    /// it runs.
    pub fn run<F>(self, guest: Pin<Box<F>>) -> Laned<F>
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let mut laned = Laned {
            state: State::Here(guest),
            used: 0,
            component: self.component,
        };
        if self.start_slow {
            laned.move_to_slow_lane(false);
        }
        laned
    }
}

/// A guest's run, on the loop that took it or on the slow lane. See [`Lane::run`].
pub struct Laned<F: Future<Output = Outcome>> {
    state: State<F>,
    /// Guest CPU used on the loop so far, in epoch ticks.
    used: u64,
    component: std::sync::Arc<crate::ServedComponent>,
}

enum State<F: Future<Output = Outcome>> {
    Here(Pin<Box<F>>),
    There(tokio::task::JoinHandle<Outcome>),
    Moving,
}

impl<F: Future<Output = Outcome> + Send + 'static> Laned<F> {
    /// Hand the guest to the slow lane, if there is one; `demoted`: it got there by
    /// using its share here (a heavy run, counted now).
    fn move_to_slow_lane(&mut self, demoted: bool) {
        let fairness = &self.component.fairness;
        let Some(slow) = fairness.slow else {
            return;
        };
        let State::Here(guest) = std::mem::replace(&mut self.state, State::Moving) else {
            return;
        };
        if demoted {
            self.component.pressure.count(fairness, HEAVY);
        }
        self.component.pressure.on_slow.fetch_add(1, Relaxed);
        let measured = Measured {
            guest,
            used: self.used,
            counted: demoted,
            component: self.component.clone(),
        };
        self.state = State::There(slow.spawn(measured));
    }
}

impl<F: Future<Output = Outcome> + Send + 'static> Future for Laned<F> {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = &mut *self;
        if let State::Here(guest) = &mut this.state {
            // CPU, not wall time: a poll the kernel (or the hypervisor) interrupted is
            // not a heavy one.
            let (polled, ticks) = poll_counting(guest.as_mut(), cx);
            if let Poll::Ready(outcome) = polled {
                return Poll::Ready(outcome);
            }
            this.used += ticks;
            if this.used < this.component.fairness.demote_ticks {
                return Poll::Pending;
            }
            this.move_to_slow_lane(true);
        }
        match &mut this.state {
            State::There(task) => match Pin::new(task).poll(cx) {
                Poll::Ready(Ok(outcome)) => Poll::Ready(outcome),
                Poll::Ready(Err(e)) => Poll::Ready(Outcome::Failed(
                    FailureKind::Other,
                    format!("the guest's task on the slow lane ended abnormally: {e}"),
                )),
                Poll::Pending => Poll::Pending,
            },
            // No slow lane: it stays here.
            State::Here(_) => Poll::Pending,
            State::Moving => Poll::Ready(Outcome::Failed(
                FailureKind::Other,
                "the guest was lost while moving to the slow lane".into(),
            )),
        }
    }
}

impl<F: Future<Output = Outcome>> Drop for Laned<F> {
    fn drop(&mut self) {
        // Cut off (a timeout around it, a client gone): stop the guest on the lane too.
        if let State::There(task) = &self.state {
            task.abort();
        }
    }
}

/// Poll a guest once; with it, the epoch ticks of guest CPU that poll used.
fn poll_counting<F: Future>(guest: Pin<&mut F>, cx: &mut Context<'_>) -> (Poll<F::Output>, u64) {
    let before = thread_guest_ticks();
    let polled = guest.poll(cx);
    (polled, thread_guest_ticks().wrapping_sub(before))
}

/// A guest on the slow lane, its CPU still counted: a run that started there and
/// uses more than `demote_after` is a heavy run, which keeps its component heavy.
struct Measured<F> {
    guest: Pin<Box<F>>,
    used: u64,
    counted: bool,
    component: std::sync::Arc<crate::ServedComponent>,
}

impl<F> Drop for Measured<F> {
    fn drop(&mut self) {
        self.component.pressure.on_slow.fetch_sub(1, Relaxed);
    }
}

impl<F: Future<Output = Outcome>> Future for Measured<F> {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = &mut *self;
        let (polled, ticks) = poll_counting(this.guest.as_mut(), cx);
        if !this.counted {
            this.used += ticks;
            if this.used >= this.component.fairness.demote_ticks {
                this.counted = true;
                this.component
                    .pressure
                    .count(&this.component.fairness, HEAVY);
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn fairness(window: Duration) -> Fairness {
        Fairness::new(FairnessConfig {
            slow_lane: LanePriority::Off,
            window,
            ..FairnessConfig::default()
        })
    }

    fn fail(p: &Pressure, f: &Fairness, n: u32) {
        for _ in 0..n {
            p.ended(
                f,
                &Outcome::Failed(FailureKind::Trap, "unreachable".into()),
                true,
            );
        }
    }

    fn succeed(p: &Pressure, f: &Fairness, n: u32) {
        for _ in 0..n {
            p.ended(f, &Outcome::Finished, false);
        }
    }

    #[test]
    fn a_component_is_failing_once_its_failures_pass_the_budget_and_outnumber_its_successes() {
        let f = fairness(Duration::from_secs(60));
        let p = Pressure::default();
        assert_eq!(p.standing(&f, || false).0, Standing::Normal);
        fail(&p, &f, 9);
        assert_eq!(p.standing(&f, || false).0, Standing::Normal);
        // Failures the guest did not cause never count.
        p.ended(
            &f,
            &Outcome::Failed(FailureKind::Capacity, "pool".into()),
            false,
        );
        assert_eq!(p.standing(&f, || false).0, Standing::Normal);
        fail(&p, &f, 1);
        assert_eq!(p.standing(&f, || false).0, Standing::Failing);
        // Admitted a few at a time it fails less often, and stays failing while any
        // failure is not outweighed by successes...
        succeed(&p, &f, 9);
        assert_eq!(p.standing(&f, || false).0, Standing::Failing);
        // ... and leaves once successes outnumber them, busy or not.
        succeed(&p, &f, 2);
        assert_eq!(p.standing(&f, || true).0, Standing::Normal);
        // Runs starved on the slow lane neither fail nor succeed: with its slots taken
        // and no success, a failing component stays failing after its failures age out.
        let f = fairness(Duration::from_millis(10));
        let p = Pressure::default();
        fail(&p, &f, 10);
        assert_eq!(p.standing(&f, || false).0, Standing::Failing);
        std::thread::sleep(Duration::from_millis(35));
        assert_eq!(p.standing(&f, || true).0, Standing::Failing);
        assert_eq!(p.standing(&f, || false).0, Standing::Normal);
    }

    #[test]
    fn a_busy_component_that_mostly_succeeds_is_never_failing() {
        let f = fairness(Duration::from_secs(60));
        let p = Pressure::default();
        fail(&p, &f, 1);
        succeed(&p, &f, 1000);
        fail(&p, &f, 500);
        assert_eq!(p.standing(&f, || false).0, Standing::Normal);
    }

    #[test]
    fn heavy_runs_put_a_component_on_the_slow_lane_until_they_stop() {
        let f = fairness(Duration::from_secs(60));
        let p = Pressure::default();
        p.count(&f, HEAVY);
        assert_eq!(p.standing(&f, || false).0, Standing::Normal);
        p.count(&f, HEAVY);
        assert_eq!(p.standing(&f, || false).0, Standing::Heavy);
        // Once heavy, one heavy run in the windows keeps it so.
        assert_eq!(p.standing(&f, || false).0, Standing::Heavy);
    }

    #[test]
    fn pressure_ages_out_with_the_windows() {
        let f = fairness(Duration::from_millis(10));
        let p = Pressure::default();
        fail(&p, &f, 20);
        p.count(&f, HEAVY);
        p.count(&f, HEAVY);
        assert_eq!(p.standing(&f, || false).0, Standing::Failing);
        // Two windows later nothing is left.
        std::thread::sleep(Duration::from_millis(35));
        assert_eq!(p.standing(&f, || false).0, Standing::Normal);
        assert_eq!(p.recent(), (0, 0));
        // One window later, the previous window still counts.
        fail(&p, &f, 20);
        let w = p.window.load(Relaxed);
        while p.since.elapsed().as_millis() as u64 / 10 == w {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(p.standing(&f, || false).0, Standing::Failing);
    }
}
