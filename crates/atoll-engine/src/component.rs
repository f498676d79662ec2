//! A loaded component and the per-instance store it runs in.

use std::sync::Arc;

use atoll_capabilities::{CapabilityView, ComponentCapabilities, InstanceCapabilities};
use atoll_manifest::{Component as ManifestComponent, Limits};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::EPOCH_TICK;

/// Most resources (streams, fields, bodies...) one instance may hold at once, so a guest
/// cannot grow host memory through handles.
const MAX_RESOURCES: usize = 10_000;
/// Most table elements one instance may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The data of one store: everything an instance can reach.
pub struct InstanceState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// What the manifest granted: config, outbound HTTP policy, key-value stores.
    caps: InstanceCapabilities,
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

/// A component ready to serve: checked, compiled and pre-instantiated.
pub struct LoadedComponent {
    name: Arc<str>,
    pre: ProxyPre<InstanceState>,
    limits: Limits,
    environment: Arc<[(String, String)]>,
    capabilities: Arc<ComponentCapabilities>,
    epoch_ticks: u64,
}

impl LoadedComponent {
    pub(crate) fn new(
        component: &ManifestComponent,
        pre: ProxyPre<InstanceState>,
        capabilities: Arc<ComponentCapabilities>,
    ) -> Self {
        let tick = EPOCH_TICK.as_millis().max(1);
        // Round up, and never 0: a deadline of 0 would interrupt at once.
        let epoch_ticks = u64::try_from(component.limits.timeout.as_millis().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            name: component.name.as_str().into(),
            pre,
            limits: component.limits.clone(),
            environment: component.environment.clone().into(),
            capabilities,
            epoch_ticks,
        }
    }

    /// The component's name in the manifest.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The pre-instantiated component.
    pub fn pre(&self) -> &ProxyPre<InstanceState> {
        &self.pre
    }

    /// A fresh store for one instance: the manifest's environment and nothing else from
    /// the host, the capabilities the manifest grants (guest output to the log, config,
    /// outbound HTTP policy, read-only mounts, key-value stores), memory and table limits,
    /// and an epoch deadline at the component's timeout.
    pub fn new_store(&self) -> Store<InstanceState> {
        let mut wasi = WasiCtx::builder();
        // The only environment a guest sees is the manifest's `environment`: the host's
        // own variables (HOME, PATH, secrets) never reach it.
        wasi.envs(&self.environment);
        // Prepare phase of the capabilities: a few Arc clones, two small boxes for
        // stdout/stderr, and one `open` per mounted directory (only if `files` is set).
        self.capabilities.configure_wasi(&mut wasi);
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(self.limits.memory).unwrap_or(usize::MAX))
            .table_elements(MAX_TABLE_ELEMENTS)
            .trap_on_grow_failure(true)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let state = InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table,
            limits,
            caps: self.capabilities.prepare(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.epoch_ticks);
        store.epoch_deadline_trap();
        store
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
    /// Something else went wrong around the guest.
    Other,
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
    let msg = e.to_string();
    if msg.contains("forcing trap when growing memory") {
        return FailureKind::MemoryLimit;
    }
    for cause in e.chain() {
        if cause.is::<wasmtime::PoolConcurrencyLimitError>() {
            return FailureKind::Capacity;
        }
        let s = cause.to_string();
        if s.contains("forcing trap when growing memory") {
            return FailureKind::MemoryLimit;
        }
    }
    FailureKind::Other
}
