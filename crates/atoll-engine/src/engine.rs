//! The process-wide engine: configuration, epoch ticker, linker, and component loading.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atoll_capabilities::ComponentCapabilities;
use atoll_manifest::Limits;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::check::{ComponentKind, inspect_bytes};
use crate::component::{InstanceState, LoadedComponent};
use crate::error::{LoadError, error_chain};

/// How often the epoch advances while guests run. A running guest yields to its
/// scheduler at every tick (so a loop is held at most a tick by one poll, and a
/// computing guest can be moved off it), and one that runs past its deadline is stopped
/// within a tick of it.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);
/// How often it advances while no instance is alive: an idle server wakes 100 times a
/// second, not 1000. A guest that starts meanwhile sees its first tick up to this late.
const IDLE_TICK: Duration = Duration::from_millis(10);

/// Operator settings for the engine (not the app's: those are in the manifest).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled components are cached; `None` compiles in memory every start.
    pub cache_dir: Option<PathBuf>,
    /// Instances alive at once across all components (the pool's size).
    pub max_instances: u32,
    /// Count fuel (`Config::consume_fuel`), so a store can be given a budget of wasm
    /// instructions ([`LoadedComponent::set_fuel`]). Costs every guest some speed
    /// (~10-20% on compute-bound code), so it is off unless an embedder asks for it.
    pub fuel: bool,
    /// While other guests are being served, pause a guest that has run more than 30 ms
    /// of CPU in one call for 190 ms after each tick it runs, so it gets a small share of
    /// a core (`THROTTLE`). Off by default: the HTTP server moves such guests to its slow
    /// lane at the lowest OS priority instead (atoll-runtime's `fairness`), which uses
    /// idle CPU that a sleep would waste. For an embedder with no lane of its own.
    pub throttle_heavy: bool,
    /// Bytes of linear memory all live instances may hold together; `None`: half of
    /// the machine's physical memory (`/proc/meminfo`), or 4 GiB where that cannot be
    /// read. Growth past it fails (the request gets a 503), and admission refuses new
    /// instances once it is nearly spent, so many tenants' memory bombs at once cannot
    /// get the process killed by the kernel's OOM killer.
    pub memory_total: Option<u64>,
    /// How a pooled instance's memory is made clean again after a request: the fast
    /// `PAGEMAP_SCAN` reset where the machine supports it ([`MemoryResetMode::Auto`]), or
    /// always the slower zeroing one ([`MemoryResetMode::Zeroing`]; `[limits]
    /// memory_reset = "zeroing"` in the runtime config), which is what a machine
    /// without the scan gets, so that path can be run and tested anywhere.
    pub memory_reset: MemoryResetMode,
}

/// Which reset a pooled instance's memory gets between requests ([`EngineConfig::memory_reset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryResetMode {
    /// `PAGEMAP_SCAN` on Linux 6.7+ without swap, zeroing otherwise.
    #[default]
    Auto,
    /// Zeroing and decommitting, whatever the machine supports.
    Zeroing,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_instances: 1000,
            fuel: false,
            throttle_heavy: false,
            memory_total: None,
            memory_reset: MemoryResetMode::Auto,
        }
    }
}

/// Whether a component came from the compile cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a precompiled artifact from the cache directory.
    Hit,
    /// Compiled now, and stored the artifact for next time.
    Compiled,
    /// Compiled now; no cache directory was usable.
    Uncached,
}

/// A hook that adds an embedder's host functions to the engine's linker.
pub type LinkHook = Box<dyn FnOnce(&mut Linker<InstanceState>) -> wasmtime::Result<()> + Send>;

/// Builds an [`Engine`]: the operator's [`EngineConfig`], plus host functions of the
/// embedder's own (linked after WASI, wasi-http and atoll's capabilities).
pub struct EngineBuilder {
    config: EngineConfig,
    links: Vec<LinkHook>,
}

impl EngineBuilder {
    /// The operator's settings it will build with, to change before [`build`](Self::build).
    pub fn config_mut(&mut self) -> &mut EngineConfig {
        &mut self.config
    }

    /// Add host functions: `hook` gets the linker once, when the engine is built. Store
    /// data is [`InstanceState`]; an embedder reaches its own per-instance state through
    /// [`InstanceState::user_mut`].
    pub fn link(
        mut self,
        hook: impl FnOnce(&mut Linker<InstanceState>) -> wasmtime::Result<()> + Send + 'static,
    ) -> Self {
        self.links.push(Box::new(hook));
        self
    }

    /// Build the engine (see [`Engine::new`]).
    pub fn build(self) -> Result<Engine, LoadError> {
        Engine::build(self.config, self.links)
    }
}

/// What the engine needs to know of a component besides its bytes: a name for logs,
/// its limits and the environment its guest sees. No manifest needed.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    /// The component's name, for logs and errors.
    pub name: String,
    /// Memory, timeout and concurrency limits.
    pub limits: Limits,
    /// The environment variables the guest sees, and no others.
    pub environment: Vec<(String, String)>,
}

impl ComponentSpec {
    /// A spec with default limits and an empty environment.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            limits: Limits::default(),
            environment: Vec::new(),
        }
    }
}

/// One per process: a wasmtime engine, its linker, and the thread that advances epochs.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<InstanceState>,
    config: EngineConfig,
    pooling: bool,
    ticker_stop: Arc<AtomicBool>,
    cpu: Arc<crate::component::CpuShare>,
    budget: Arc<crate::component::MemoryBudget>,
}

impl Engine {
    /// Build the engine. Tries the pooling allocator first and falls back to on-demand
    /// allocation (slower per request) if the machine refuses the address space.
    pub fn new(config: EngineConfig) -> Result<Self, LoadError> {
        Self::build(config, Vec::new())
    }

    /// An [`EngineBuilder`], to add host functions of the embedder's own.
    pub fn builder(config: EngineConfig) -> EngineBuilder {
        EngineBuilder {
            config,
            links: Vec::new(),
        }
    }

    fn build(config: EngineConfig, links: Vec<LinkHook>) -> Result<Self, LoadError> {
        let reset = match config.memory_reset {
            MemoryResetMode::Auto => MemoryReset::for_this_machine(),
            MemoryResetMode::Zeroing => MemoryReset::Zeroing {
                reason: "memory_reset = \"zeroing\" was asked for",
            },
        };
        match reset {
            MemoryReset::PagemapScan => tracing::debug!(
                "instance memory is reset with PAGEMAP_SCAN: only the pages a request wrote"
            ),
            MemoryReset::Zeroing { reason } => tracing::warn!(
                "instance memory is reset by zeroing and decommitting, not with PAGEMAP_SCAN ({reason}); each request costs more CPU"
            ),
        }
        let (engine, pooling) = match wasmtime::Engine::new(&wasmtime_config(&config, true, reset))
        {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!(
                    "pooling allocator unavailable ({e}); falling back to on-demand instance allocation, which is slower per request"
                );
                let e = wasmtime::Engine::new(&wasmtime_config(&config, false, reset))
                    .map_err(|e| LoadError::Engine(e.to_string()))?;
                (e, false)
            }
        };

        let mut linker = Linker::new(&engine);
        // Real guests (wstd, componentize-py, jco) import wasi:cli, wasi:filesystem and
        // wasi:sockets. They are linked, and empty unless granted: no env vars beyond
        // the component's own, no preopens, every address denied. wasi:http's types and
        // outgoing-handler are linked for every component (outbound requests go through
        // the component's grants); serving `incoming-handler` is the HTTP trigger's.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        // wasi:config/store, wasi:keyvalue and wasi:logging: linked for every component;
        // config and key-value are empty unless the manifest grants keys or stores.
        atoll_capabilities::add_to_linker(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        for hook in links {
            hook(&mut linker).map_err(|e| LoadError::Engine(error_chain(&e)))?;
        }

        let cpu = Arc::new(crate::component::CpuShare::new(
            config.throttle_heavy,
            config.fuel,
        ));
        let alive = cpu.clone();
        let total = config.memory_total.map_or_else(default_memory_total, |t| {
            usize::try_from(t).unwrap_or(usize::MAX)
        });
        tracing::debug!("memory budget for all instances: {total} bytes");
        let budget = Arc::new(crate::component::MemoryBudget::new(total));
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone(), alive);

        Ok(Self {
            engine,
            linker,
            config,
            pooling,
            ticker_stop,
            cpu,
            budget,
        })
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// The operator's settings it was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The memory budget all its instances share.
    pub fn memory_budget(&self) -> &Arc<crate::component::MemoryBudget> {
        &self.budget
    }

    /// Whether the pooling allocator is in use.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// Check, compile (or load from the compile cache) and pre-instantiate a component
    /// from its bytes, with the capabilities granted to it
    /// ([`ComponentCapabilities::deny_all`] grants nothing). Any world: what the
    /// component must export is for its trigger to check ([`LoadedComponent::exports`],
    /// [`LoadedComponent::instance_pre`]). Compiling takes seconds for big guests on a
    /// cache miss; run it off the request path.
    pub fn load(
        &self,
        spec: &ComponentSpec,
        bytes: &[u8],
        capabilities: Arc<ComponentCapabilities>,
    ) -> Result<(LoadedComponent, CacheOutcome), LoadError> {
        let exports = match inspect_bytes(bytes) {
            ComponentKind::NotWasm => return Err(LoadError::NotWasm),
            ComponentKind::Malformed(e) => return Err(LoadError::Malformed(e)),
            ComponentKind::CoreModule { wasip1 } => return Err(LoadError::CoreModule { wasip1 }),
            ComponentKind::Component { exports, .. } => exports,
        };
        let (compiled, outcome) = self.compile_cached(bytes).map_err(LoadError::Compile)?;
        let pre = self
            .linker
            .instantiate_pre(&compiled)
            .map_err(|e| LoadError::Link(error_chain(&e)))?;
        Ok((
            LoadedComponent::new(
                spec,
                pre,
                exports,
                capabilities,
                self.cpu.clone(),
                self.budget.clone(),
            ),
            outcome,
        ))
    }

    fn compile_cached(&self, bytes: &[u8]) -> Result<(Component, CacheOutcome), String> {
        match &self.config.cache_dir {
            Some(dir) => crate::cache::load_or_compile(&self.engine, dir, bytes),
            None => Component::new(&self.engine, bytes)
                .map(|c| (c, CacheOutcome::Uncached))
                .map_err(|e| error_chain(&e)),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn wasmtime_config(config: &EngineConfig, pooling: bool, reset: MemoryReset) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.consume_fuel(config.fuel);
    c.epoch_interruption(true);
    // Traps in logs carry a short backtrace; longer ones only cost on the error path.
    c.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(16));
    c.max_wasm_stack(1 << 20);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances.max(1);
        pool.total_component_instances(n)
            // A component such as a wstd guest holds a handful of core instances.
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(8))
            .total_stacks(n)
            .max_memory_size(atoll_manifest_max_memory())
            // One instance cannot take a large share of the pool's slots.
            .max_memories_per_component(16)
            .max_tables_per_component(64)
            .max_core_instances_per_component(64)
            .max_unused_warm_slots(n.min(256))
            .table_keep_resident(256 << 10)
            // Keep up to 4 MiB of a memory slot resident between instances (see docs/benchmarks.md)
            // instead of madvising it away: madvise costs TLB-shootdown IPIs now and page
            // faults on the next request.
            .linear_memory_keep_resident(4 << 20)
            // Find the pages a request wrote with PAGEMAP_SCAN and reset only those.
            // Without it, the kept part is zeroed whole with memset, whether written or
            // not: the hello guest's instance takes 28 us in process instead of 10.8 us
            // (madvising it all instead: 21 us single-threaded, but with IPIs to every
            // core serving requests).
            .pagemap_scan(match reset {
                MemoryReset::PagemapScan => Enabled::Auto,
                MemoryReset::Zeroing { .. } => Enabled::No,
            })
            // No batching of decommits. With the pagemap reset above, a request's
            // memory and tables need no madvise at all, but each deallocation still
            // queues an empty range: batched, those became one `process_madvise`
            // syscall per ~5 requests (16 empty ranges each, seen with strace), and
            // the slots waited in the queue, so the next request took a colder slot.
            // Unbatched, an empty range costs no syscall and the slot is reused at
            // once (~3 us less CPU per request in `atoll up` under load). A guest that
            // dirties more than it may keep resident is madvised at once instead.
            .decommit_batch_size(1);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// The largest memory limit a manifest may set (4 GiB), so every limit fits a pool slot.
fn atoll_manifest_max_memory() -> usize {
    usize::try_from(atoll_manifest::MAX_MEMORY).unwrap_or(usize::MAX)
}

/// Half of the machine's physical memory, or 4 GiB if `/proc/meminfo` cannot be read.
fn default_memory_total() -> usize {
    let mem_total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        kib.checked_mul(1024)
    });
    mem_total.map_or(4 << 30, |b| b / 2)
}

fn spawn_epoch_ticker(
    engine: wasmtime::Engine,
    stop: Arc<AtomicBool>,
    cpu: Arc<crate::component::CpuShare>,
) {
    let spawned = std::thread::Builder::new()
        .name("atoll-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(if cpu.any_alive() {
                    EPOCH_TICK
                } else {
                    IDLE_TICK
                });
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(
            "cannot start the epoch thread ({e}); guest timeouts will rely on wall-clock timers only"
        );
    }
}

/// Whether this machine gets the fast memory reset (`PAGEMAP_SCAN`: Linux 6.7+ and no
/// swap), or why not; what the engine logs at start, for `atoll doctor`.
pub fn fast_memory_reset() -> Result<(), &'static str> {
    match MemoryReset::for_this_machine() {
        MemoryReset::PagemapScan => Ok(()),
        MemoryReset::Zeroing { reason } => Err(reason),
    }
}

/// How a pooled instance's memory is returned to a clean state after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemoryReset {
    /// `PAGEMAP_SCAN` (Linux 6.7+) finds the pages the request wrote; only those are reset.
    PagemapScan,
    /// The slot's kept part is zeroed with memset and the rest decommitted: slower, but
    /// correct whatever the kernel and swap.
    Zeroing {
        /// Why the scan is not used, for the log.
        reason: &'static str,
    },
}

impl MemoryReset {
    /// Read the kernel release and the active swap areas of this machine.
    fn for_this_machine() -> Self {
        if !cfg!(target_os = "linux") {
            return Self::Zeroing {
                reason: "PAGEMAP_SCAN exists only on Linux",
            };
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok();
        let swaps = std::fs::read_to_string("/proc/swaps").ok();
        Self::choose(release.as_deref(), swaps.as_deref())
    }

    /// The scan needs Linux 6.7 or later, and no swap: a written page that was swapped
    /// out is not reported by the scan (wasmtime issue #14357), so it would keep one
    /// request's data for the next instance in that slot. `swaps` is `/proc/swaps`: a
    /// header line, then one line per active swap area.
    fn choose(release: Option<&str>, swaps: Option<&str>) -> Self {
        let Some(swaps) = swaps else {
            return Self::Zeroing {
                reason: "cannot read /proc/swaps to tell whether swap is on",
            };
        };
        if swaps.lines().skip(1).any(|l| !l.trim().is_empty()) {
            return Self::Zeroing {
                reason: "swap is on, and the scan misses written pages that were swapped out; turn swap off (swapoff -a) for the fast reset",
            };
        }
        let version = release.and_then(|r| {
            let mut parts = r.trim().split(|c: char| !c.is_ascii_digit());
            let major: u32 = parts.next()?.parse().ok()?;
            let minor: u32 = parts.next()?.parse().ok()?;
            Some((major, minor))
        });
        match version {
            Some(v) if v >= (6, 7) => Self::PagemapScan,
            Some(_) => Self::Zeroing {
                reason: "the kernel is older than Linux 6.7, which added PAGEMAP_SCAN",
            },
            None => Self::Zeroing {
                reason: "cannot read the kernel version",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryReset;

    const NO_SWAP: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";

    #[test]
    fn the_scan_needs_linux_6_7_and_no_swap() {
        assert_eq!(
            MemoryReset::choose(Some("6.18.44-fc-v669\n"), Some(NO_SWAP)),
            MemoryReset::PagemapScan
        );
        assert_eq!(
            MemoryReset::choose(Some("6.7.0"), Some(NO_SWAP)),
            MemoryReset::PagemapScan
        );
        let swap_on = format!(
            "{NO_SWAP}/swapfile                               file\t\t1048572\t\t0\t\t-2\n"
        );
        assert!(matches!(
            MemoryReset::choose(Some("6.18.44"), Some(&swap_on)),
            MemoryReset::Zeroing { reason } if reason.contains("swap is on")
        ));
        for old in ["6.6.30", "6.1.0-27-amd64", "5.15.0-105-generic"] {
            assert!(
                matches!(
                    MemoryReset::choose(Some(old), Some(NO_SWAP)),
                    MemoryReset::Zeroing { reason } if reason.contains("6.7")
                ),
                "{old}"
            );
        }
        assert!(matches!(
            MemoryReset::choose(Some("6.18"), None),
            MemoryReset::Zeroing { .. }
        ));
        assert!(matches!(
            MemoryReset::choose(None, Some(NO_SWAP)),
            MemoryReset::Zeroing { .. }
        ));
        assert!(matches!(
            MemoryReset::choose(Some("garbage"), Some(NO_SWAP)),
            MemoryReset::Zeroing { .. }
        ));
    }
}

#[cfg(test)]
mod builder_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use atoll_capabilities::ComponentCapabilities;

    use super::{ComponentSpec, Engine, EngineConfig, LoadError};

    #[test]
    fn link_hooks_run_and_their_failures_are_engine_errors() {
        let ran = Arc::new(AtomicBool::new(false));
        let seen = ran.clone();
        let engine = Engine::builder(EngineConfig::default())
            .link(move |linker| {
                seen.store(true, Ordering::Relaxed);
                linker
                    .instance("acme:plugin/host@1.0.0")?
                    .func_wrap("answer", |_, (): ()| Ok((42u32,)))?;
                Ok(())
            })
            .build()
            .expect("engine");
        assert!(ran.load(Ordering::Relaxed));
        drop(engine);
        let failed = Engine::builder(EngineConfig::default())
            .link(|_| Err(wasmtime::Error::msg("the embedder's hook failed")))
            .build();
        assert!(
            matches!(&failed, Err(LoadError::Engine(m)) if m.contains("the embedder's hook failed")),
            "{:?}",
            failed.err()
        );
    }

    #[test]
    fn each_store_carries_the_embedders_state() {
        let engine = Engine::new(EngineConfig::default()).expect("engine");
        let bytes = std::fs::read(test_programs_artifacts::HELLO).expect("hello built");
        let caps = Arc::new(ComponentCapabilities::deny_all("app", "c"));
        let (loaded, _) = engine
            .load(&ComponentSpec::new("c"), &bytes, caps)
            .expect("load");
        assert!(loaded.exports_starting_with("wasi:http/incoming-handler@0.2."));
        let mut store = loaded.new_store_with(Box::new(7u32));
        assert_eq!(store.data_mut().user_mut::<u32>().copied(), Some(7));
        assert_eq!(store.data_mut().user_mut::<String>(), None);
        let mut plain = loaded.new_store();
        assert_eq!(plain.data_mut().user_mut::<u32>(), None);
        // Not a component at all: a structured error, not a diagnostic.
        let e = engine
            .load(
                &ComponentSpec::new("c"),
                b"not wasm",
                Arc::new(ComponentCapabilities::deny_all("app", "c")),
            )
            .err();
        assert!(matches!(e, Some(LoadError::NotWasm)), "{e:?}");
    }
}
