//! A loaded component and the per-instance store it runs in. Not for any one world:
//! a [`LoadedComponent`] holds a plain `InstancePre`, and each trigger (HTTP's
//! `ProxyPre`, cron's `CommandPre`, an embedder's `bindgen!` pre) builds its own typed
//! view over it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atoll_capabilities::{CapabilityView, ComponentCapabilities, InstanceCapabilities};
use atoll_manifest::Limits;
use wasmtime::component::{InstancePre, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::{ComponentSpec, EPOCH_TICK};

/// Most resources (streams, fields, bodies...) one instance may hold at once, so a guest
/// cannot grow host memory through handles.
const MAX_RESOURCES: usize = 10_000;
/// The most of the node's memory budget admission wants free for a new instance.
const ADMISSION_HEADROOM: usize = 16 << 20;
/// Most table elements one instance may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The data of one store: everything an instance can reach.
pub struct InstanceState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: InstanceLimits,
    /// What the manifest granted: config, outbound HTTP policy, key-value stores.
    caps: InstanceCapabilities,
    /// The embedder's own per-instance state, if it set one.
    user: Option<Box<dyn std::any::Any + Send>>,
}

impl InstanceState {
    /// The embedder's per-instance state given to [`LoadedComponent::new_store_with`],
    /// if it is a `U`. For host functions added through
    /// [`EngineBuilder::link`](crate::EngineBuilder::link).
    pub fn user_mut<U: 'static>(&mut self) -> Option<&mut U> {
        self.user.as_mut()?.downcast_mut()
    }

    /// The embedder's per-instance state of type `U`, for the getter of a `bindgen!`
    /// world's `add_to_linker`. A store that has none of that type (its plugin was
    /// loaded without state, or with another type, and imports these host functions
    /// anyway) gets `U::default()` in its place, so a guest can never make the host
    /// panic by importing host functions meant for another plugin: it reaches a fresh
    /// default state of its own, nothing the embedder gave others.
    pub fn user<U: Default + Send + 'static>(&mut self) -> &mut U {
        if self.user_mut::<U>().is_none() {
            tracing::debug!(
                "a guest called host functions whose state (`{}`) its store does not have; it gets a default one",
                std::any::type_name::<U>()
            );
            self.user = Some(Box::new(U::default()));
        }
        match self.user.as_mut().and_then(|u| u.downcast_mut::<U>()) {
            Some(u) => u,
            // Just stored above.
            None => unreachable!("the state was just set to a `U`"),
        }
    }

    /// Forget the capabilities refused so far (for an instance reused across calls).
    pub fn clear_denials(&mut self) {
        self.caps.clear_denials();
    }

    /// The first capability this instance was refused, if any (see
    /// [`InstanceCapabilities::first_denial`]).
    pub fn first_denial(&self) -> Option<&str> {
        self.caps.first_denial()
    }
}

impl CapabilityView for InstanceState {
    fn capabilities(&mut self) -> (&mut InstanceCapabilities, &mut ResourceTable) {
        (&mut self.caps, &mut self.table)
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            // Every outbound request goes through the component's allowed_outbound_hosts.
            hooks: self.caps.outbound_http(),
        }
    }
}

/// A component ready to run: checked, compiled and pre-instantiated (any world).
pub struct LoadedComponent {
    name: Arc<str>,
    pre: InstancePre<InstanceState>,
    exports: Vec<String>,
    limits: Limits,
    environment: Arc<[(String, String)]>,
    capabilities: Arc<ComponentCapabilities>,
    epoch_ticks: u64,
    cpu: Arc<CpuShare>,
    budget: Arc<MemoryBudget>,
}

impl LoadedComponent {
    pub(crate) fn new(
        component: &ComponentSpec,
        pre: InstancePre<InstanceState>,
        exports: Vec<String>,
        capabilities: Arc<ComponentCapabilities>,
        cpu: Arc<CpuShare>,
        budget: Arc<MemoryBudget>,
    ) -> Self {
        let tick = EPOCH_TICK.as_millis().max(1);
        // Round up, and never 0: a deadline of 0 would interrupt at once.
        let epoch_ticks = u64::try_from(component.limits.timeout.as_millis().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            name: component.name.as_str().into(),
            pre,
            exports,
            limits: component.limits.clone(),
            environment: component.environment.clone().into(),
            capabilities,
            epoch_ticks,
            cpu,
            budget,
        }
    }

    /// Whether the node's memory budget has room for one more instance of this
    /// component: what is left covers its memory limit, or 16 MiB if the limit is
    /// larger (most instances use a small part of theirs). Admission asks before it
    /// instantiates, so a spent budget is a quick 503, not a trap mid-request.
    pub fn memory_has_room(&self) -> bool {
        let need = usize::try_from(self.limits.memory)
            .unwrap_or(usize::MAX)
            .min(ADMISSION_HEADROOM);
        let ok = self.budget.used().saturating_add(need) <= self.budget.total;
        if !ok {
            self.budget.refused.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// The node-wide memory budget it is charged to.
    pub fn memory_budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// The component's name in the manifest.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The pre-instantiated component, for a trigger's typed pre (`ProxyPre::new`,
    /// `CommandPre::new`, a `bindgen!` world's `...Pre::new`).
    pub fn instance_pre(&self) -> &InstancePre<InstanceState> {
        &self.pre
    }

    /// The names of its top-level exports, e.g. `wasi:http/incoming-handler@0.2.12`.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// Whether it exports an interface whose name starts with `prefix`
    /// (e.g. `wasi:http/incoming-handler@0.2.`).
    pub fn exports_starting_with(&self, prefix: &str) -> bool {
        self.exports.iter().any(|e| e.starts_with(prefix))
    }

    /// "it exports A, B" (or "it exports nothing"), for a trigger's message about a
    /// component that lacks the export it needs.
    pub fn what_it_exports(&self) -> String {
        if self.exports.is_empty() {
            "it exports nothing".to_string()
        } else {
            format!("it exports {}", self.exports.join(", "))
        }
    }

    /// The capabilities it was granted.
    pub fn capabilities(&self) -> &Arc<ComponentCapabilities> {
        &self.capabilities
    }

    /// A fresh store for one instance: the manifest's environment and nothing else from
    /// the host, the capabilities the manifest grants (guest output to the log, config,
    /// outbound HTTP policy, read-only mounts, key-value stores), memory and table limits,
    /// and an epoch deadline at the component's timeout.
    pub fn new_store(&self) -> Store<InstanceState> {
        self.store(None, None)
    }

    /// [`LoadedComponent::new_store`] with its host calls, clocks and random sources on
    /// `tape`: recorded, or played back from a recording (`atoll up --record`, `atoll
    /// replay`; see `atoll_capabilities::record`).
    pub fn new_store_taped(&self, tape: &atoll_capabilities::record::Tape) -> Store<InstanceState> {
        self.store(None, Some(tape))
    }

    /// [`LoadedComponent::new_store`], with the embedder's own per-instance state (see
    /// [`InstanceState::user_mut`]).
    pub fn new_store_with(&self, user: Box<dyn std::any::Any + Send>) -> Store<InstanceState> {
        self.store(Some(user), None)
    }

    fn store(
        &self,
        user: Option<Box<dyn std::any::Any + Send>>,
        tape: Option<&atoll_capabilities::record::Tape>,
    ) -> Store<InstanceState> {
        let mut wasi = WasiCtx::builder();
        // The only environment a guest sees is the manifest's `environment`: the host's
        // own variables (HOME, PATH, secrets) never reach it.
        wasi.envs(&self.environment);
        // Prepare phase of the capabilities: a few Arc clones, two small boxes for
        // stdout/stderr, and one `open` per mounted directory (only if `files` is set).
        self.capabilities.prepare_wasi(&mut wasi);
        if let Some(tape) = tape {
            tape.prepare_wasi(&mut wasi);
        }
        let limits = InstanceLimits {
            memory_limit: usize::try_from(self.limits.memory).unwrap_or(usize::MAX),
            memory_used: 0,
            budget: self.budget.clone(),
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table,
            limits,
            caps: self.capabilities.prepare(),
            user,
        };
        let mut state = state;
        if let Some(tape) = tape {
            state.caps.set_tape(tape.clone());
        }
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        if self.cpu.fuel {
            // Counting fuel is on for the engine: a store without a budget of its own
            // must not run dry (see `set_fuel`).
            let _ = store.set_fuel(u64::MAX);
        }
        self.reset_deadline(&mut store);
        store
    }

    /// Start the store's time budget again: the component's timeout, counted in epoch
    /// ticks of running guest code from now. [`new_store`](Self::new_store) does this;
    /// call it again before each call into an instance that is reused across calls.
    pub fn reset_deadline(&self, store: &mut Store<InstanceState>) {
        // Guest code yields to the scheduler every epoch tick, so a busy guest cannot hold
        // a worker thread (and the requests queued on it) for its whole timeout; a guest
        // that has run long is throttled while others wait (see `CpuShare`); at the
        // deadline it is interrupted with a trap. Host calls that block are bounded by the
        // caller's wall-clock timer instead.
        let mut account = CpuAccount::open(self.cpu.clone(), self.epoch_ticks);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| Ok(account.tick()));
    }

    /// Give the store a budget of `fuel` units (about one per wasm instruction); the
    /// guest traps with `Trap::OutOfFuel` when it is spent. Only if the engine counts
    /// fuel ([`EngineConfig::fuel`](crate::EngineConfig::fuel)); returns whether it does.
    pub fn set_fuel(&self, store: &mut Store<InstanceState>, fuel: u64) -> bool {
        self.cpu.fuel && store.set_fuel(fuel).is_ok()
    }
}

/// The memory limit of one instance, summed over all of its linear memories (a component
/// may embed several core modules, each with a memory of its own), and its table limit.
struct InstanceLimits {
    memory_limit: usize,
    memory_used: usize,
    /// The node-wide budget every growth is also charged to; given back on drop.
    budget: Arc<MemoryBudget>,
}

impl Drop for InstanceLimits {
    fn drop(&mut self) {
        self.budget.give_back(self.memory_used);
    }
}

/// The memory all live instances of an engine may hold together (their linear memories):
/// each growth is charged here as well as to its instance's own limit, and given back
/// when the instance is dropped, so the total stays under `total` whatever many tenants
/// do at once; admission also refuses a new instance when the budget is nearly spent
/// ([`LoadedComponent::memory_has_room`]). One atomic add per growth, one subtract per
/// instance.
#[derive(Debug)]
pub struct MemoryBudget {
    total: usize,
    used: AtomicUsize,
    refused: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        Self {
            total,
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Its size in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes held by live instances now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Growths and admissions refused so far because the budget was spent.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Take `n` bytes if they fit.
    fn try_take(&self, n: usize) -> bool {
        let ok = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(n).filter(|&t| t <= self.total)
            })
            .is_ok();
        if !ok {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    fn give_back(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// The node's memory budget is spent: growing would take the instances of this process
/// past the total the operator allows. Not the guest's fault alone; answered as capacity.
#[derive(Debug, thiserror::Error)]
#[error(
    "the node's memory budget is spent: growing by {grow} bytes would take all instances past {total} bytes (memory_total in the runtime config)"
)]
pub struct NodeMemoryExhausted {
    grow: usize,
    total: usize,
}

/// A guest tried to grow its memory past its limit; the instance traps.
#[derive(Debug, thiserror::Error)]
#[error(
    "memory limit reached: growing by {grow} bytes would bring the instance to {total} bytes, over its limit of {limit} bytes"
)]
pub struct MemoryLimitExceeded {
    grow: usize,
    total: usize,
    limit: usize,
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = desired.saturating_sub(current);
        let total = self.memory_used.saturating_add(grow);
        if total > self.memory_limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                grow,
                total,
                limit: self.memory_limit,
            }));
        }
        if !self.budget.try_take(grow) {
            return Err(wasmtime::Error::new(NodeMemoryExhausted {
                grow,
                total: self.budget.total,
            }));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// A guest that has run this many epoch ticks (of CPU, not waiting) in one request
/// counts as CPU-heavy (30 ms).
const HEAVY_AFTER_TICKS: u64 = 30;
/// While other requests are being served, a CPU-heavy guest sleeps this long after each
/// tick it runs, so it gets about a twentieth of a core and cannot starve light requests.
const THROTTLE: Duration = Duration::from_millis(190);

/// Shared by every store of an engine: how many instances are alive, how many of them
/// are CPU-heavy, and how many light ones have finished. Three relaxed atomic updates per
/// request.
#[derive(Debug)]
pub struct CpuShare {
    /// Whether heavy guests are throttled at all (`EngineConfig::throttle_heavy`).
    throttle: bool,
    /// Whether the engine counts fuel (`EngineConfig::fuel`).
    fuel: bool,
    alive: AtomicUsize,
    heavy: AtomicUsize,
    /// Light instances dropped so far. A heavy guest that sees it move between two of its
    /// ticks knows others are being served, even if none is alive at that instant (each
    /// event loop runs one instance at a time, so while a heavy guest runs, the requests
    /// queued behind it on its own loop have no instance yet).
    light_done: AtomicU64,
}

impl CpuShare {
    /// Whether any instance is alive (the epoch ticker slows down when none is).
    pub(crate) fn any_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn new(throttle: bool, fuel: bool) -> Self {
        Self {
            throttle,
            fuel,
            alive: AtomicUsize::new(0),
            heavy: AtomicUsize::new(0),
            light_done: AtomicU64::new(0),
        }
    }
}

std::thread_local! {
    /// Epoch ticks that guests polled on this thread have run through (counted the way
    /// the deadline counts them: running, not waiting). Read before and after a poll,
    /// it says how much CPU that poll's guest used, whatever else the thread did and
    /// however long the kernel kept it off the CPU meanwhile.
    static THREAD_TICKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Guest CPU, in epoch ticks ([`EPOCH_TICK`](crate::EPOCH_TICK)), used by guests polled
/// on the calling thread so far. The difference across one poll of a guest's future is
/// the CPU that poll used, in ticks; a poll that ends before a tick counts 0. A
/// thread-local read: cheap enough for every poll.
pub fn thread_guest_ticks() -> u64 {
    THREAD_TICKS.with(std::cell::Cell::get)
}

/// The calling thread's CPU time in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`, a system
/// call: read only at epoch ticks and yields, never per request).
fn thread_cpu_nanos() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec on this stack.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            let secs = u64::try_from(ts.tv_sec).ok()?;
            let nanos = u64::try_from(ts.tv_nsec).ok()?;
            return secs.checked_mul(1_000_000_000)?.checked_add(nanos);
        }
    }
    None
}

fn half_tick_nanos() -> u64 {
    u64::try_from(EPOCH_TICK.as_nanos() / 2).unwrap_or(u64::MAX)
}

/// One store's share of the CPU: its remaining ticks before the timeout, and whether
/// it counts as heavy. Owned by the store's epoch callback; dropped with the store.
struct CpuAccount {
    share: Arc<CpuShare>,
    ticks_left: u64,
    ticks_used: u64,
    heavy: bool,
    /// `CpuShare::light_done` at this account's previous tick.
    light_seen: u64,
    /// When the account was opened; `resumed` counts from here.
    base: Instant,
    /// Nanoseconds after `base` at which the guest last came back from a yield.
    resumed: Arc<AtomicU64>,
    /// The CPU time of the thread that resumed it then (`thread_cpu_nanos`), or
    /// `u64::MAX` before its first yield.
    resumed_cpu: Arc<AtomicU64>,
}

impl CpuAccount {
    fn open(share: Arc<CpuShare>, ticks: u64) -> Self {
        share.alive.fetch_add(1, Ordering::Relaxed);
        let light_seen = share.light_done.load(Ordering::Relaxed);
        Self {
            share,
            ticks_left: ticks,
            ticks_used: 0,
            heavy: false,
            light_seen,
            base: Instant::now(),
            resumed: Arc::new(AtomicU64::new(0)),
            resumed_cpu: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// Called by wasmtime each time the running guest sees the epoch advance.
    fn tick(&mut self) -> UpdateDeadline {
        // Count the tick only if the guest has been running since it last resumed: after
        // a host call that waited (key-value, outbound HTTP, a sleep), the first check
        // comes late, and waiting is not CPU.
        let now = self.base.elapsed();
        let since_resume =
            now.saturating_sub(Duration::from_nanos(self.resumed.load(Ordering::Relaxed)));
        if since_resume <= EPOCH_TICK * 3 / 2 {
            self.ticks_left = self.ticks_left.saturating_sub(1);
            self.ticks_used += 1;
            // For fairness, a tick counts only if the thread really ran the guest for at
            // least half of it since it resumed (CPU time, which a preempted thread
            // does not accumulate): wall time alone would call a short request heavy
            // whenever the kernel or the hypervisor paused its thread mid-run. The
            // first tick has no resume point yet and never counts. The callback runs on
            // the thread polling the guest, the thread that resumed it.
            let at_resume = self.resumed_cpu.load(Ordering::Relaxed);
            if at_resume != u64::MAX
                && let Some(now) = thread_cpu_nanos()
                && now.saturating_sub(at_resume) >= half_tick_nanos()
            {
                THREAD_TICKS.with(|t| t.set(t.get() + 1));
            }
        }
        if self.ticks_left == 0 {
            return UpdateDeadline::Interrupt;
        }
        if !self.heavy && self.ticks_used > HEAVY_AFTER_TICKS {
            self.heavy = true;
            self.share.heavy.fetch_add(1, Ordering::Relaxed);
        }
        let light_done = self.share.light_done.load(Ordering::Relaxed);
        let others_light = light_done != self.light_seen
            || self.share.alive.load(Ordering::Relaxed) > self.share.heavy.load(Ordering::Relaxed);
        self.light_seen = light_done;
        let (resumed, resumed_cpu, base) =
            (self.resumed.clone(), self.resumed_cpu.clone(), self.base);
        let pause = if self.heavy && others_light && self.share.throttle {
            Some(THROTTLE)
        } else {
            None
        };
        UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                match pause {
                    Some(d) => tokio::time::sleep(d).await,
                    // tokio's own yield puts the task behind the others that are ready.
                    None => tokio::task::yield_now().await,
                }
                let at = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                resumed.store(at, Ordering::Relaxed);
                resumed_cpu.store(thread_cpu_nanos().unwrap_or(u64::MAX), Ordering::Relaxed);
            }),
        )
    }
}

impl Drop for CpuAccount {
    fn drop(&mut self) {
        self.share.alive.fetch_sub(1, Ordering::Relaxed);
        if self.heavy {
            self.share.heavy.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.share.light_done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Why a guest failed, for the status code and the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Ran past its timeout.
    Timeout,
    /// Hit its memory limit.
    MemoryLimit,
    /// Overflowed its stack.
    StackOverflow,
    /// Any other trap (unreachable, a panic, out-of-bounds access...).
    Trap,
    /// The instance pool is full: the machine is at capacity.
    Capacity,
    /// The node's memory budget is spent (all instances together).
    NodeMemory,
    /// Something else went wrong around the guest.
    Other,
}

/// The guest's frames at a trap, innermost first, demangled, without the Rust panic and
/// abort machinery above the guest's own code (`std::`, `core::`, `__rustc`); at most
/// `max`. Empty when the error carries no wasm backtrace.
pub fn guest_frames(e: &wasmtime::Error, max: usize) -> Vec<String> {
    let Some(bt) = e.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return Vec::new();
    };
    bt.frames()
        .iter()
        .map(|f| match f.func_name() {
            Some(name) => format!("{:#}", rustc_demangle::demangle(name)),
            None => "?".to_string(),
        })
        .filter(|name| {
            !(name.starts_with("std::")
                || name.starts_with("core::")
                || name.starts_with("__rustc::")
                || name == "abort"
                || name.starts_with("__rust_"))
        })
        .take(max)
        .collect()
}

/// Classify an error from instantiating or calling a guest.
pub fn classify_error(e: &wasmtime::Error) -> FailureKind {
    if let Some(trap) = e.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => FailureKind::Timeout,
            Trap::StackOverflow => FailureKind::StackOverflow,
            _ => FailureKind::Trap,
        };
    }
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return FailureKind::Capacity;
    }
    for cause in e.chain() {
        if cause.is::<wasmtime::PoolConcurrencyLimitError>() {
            return FailureKind::Capacity;
        }
        if cause.is::<MemoryLimitExceeded>() {
            return FailureKind::MemoryLimit;
        }
        if cause.is::<NodeMemoryExhausted>() {
            return FailureKind::NodeMemory;
        }
    }
    FailureKind::Other
}
