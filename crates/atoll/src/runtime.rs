//! The process's runtime: one engine (compiler, instance pool, epoch ticker, optional
//! compile cache) and the key-value backends it has opened, shared by every plugin.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use atoll_capabilities::Backends;
use atoll_engine::{ComponentSpec, Engine, EngineBuilder, EngineConfig, InstanceState};
use wasmtime::component::Linker;

use crate::plugin::{Plugin, PluginInner, StateFn};
use crate::{Error, Limits, Policy};

/// One per process (cheap to clone: an `Arc`): the engine every plugin shares, so a
/// plugin costs its compiled code and its instances, not an engine of its own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), atoll::Error> {
/// # let path = test_programs_artifacts::TEXT;
/// let runtime = atoll::Runtime::new()?;
/// let plugin = runtime
///     .load_file(path, &atoll::Policy::deny_all(), &atoll::Limits::default())
///     .await?;
/// let out = plugin.call_wave("count-vowels", &[r#""hello world""#]).await?;
/// assert_eq!(out, "3");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) backends: Backends,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", self.inner.engine.config())
            .field("pooling", &self.inner.engine.is_pooling())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Runtime`].
///
/// ```
/// # fn demo() -> Result<(), atoll::Error> {
/// let runtime = atoll::Runtime::builder()
///     .max_instances(64)
///     .fuel(true)
///     .link(|linker| {
///         linker
///             .instance("acme:app/host@1.0.0")?
///             .func_wrap("answer", |_ctx, (): ()| Ok((42u32,)))?;
///         Ok(())
///     })
///     .build()?;
/// # drop(runtime); Ok(()) }
/// ```
pub struct RuntimeBuilder {
    engine: EngineBuilder,
}

impl RuntimeBuilder {
    /// Cache compiled components in `dir` (keyed by their hash and the engine's
    /// settings), so a restart loads them in milliseconds instead of compiling again.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.engine.config_mut().cache_dir = Some(dir.into());
        self
    }

    /// Instances alive at once across all plugins (the instance pool's size; each slot
    /// reserves address space, not memory). Default 100.
    pub fn max_instances(mut self, n: u32) -> Self {
        self.engine.config_mut().max_instances = n;
        self
    }

    /// Bytes of linear memory all live instances of all plugins may hold together
    /// (default: half of the machine's physical memory). Past it, growth fails with
    /// [`Error::Memory`] and new calls wait, so no mix of plugins can get the process
    /// killed for memory.
    pub fn memory_total(mut self, bytes: u64) -> Self {
        self.engine.config_mut().memory_total = Some(bytes);
        self
    }

    /// Count fuel, so [`Limits::fuel`] can bound a call by instructions as well as by
    /// time. Off by default: it slows every guest down somewhat.
    pub fn fuel(mut self, on: bool) -> Self {
        self.engine.config_mut().fuel = on;
        self
    }

    /// Throttle a call that has run several epoch ticks of CPU while other calls are
    /// waiting, as the atoll server does for its tenants. Off by default: a library
    /// call is expected to run as fast as it can.
    pub fn throttle_heavy_calls(mut self, on: bool) -> Self {
        self.engine.config_mut().throttle_heavy = on;
        self
    }

    /// Add host functions: `hook` gets the linker once, when the runtime is built.
    /// Typed ones come from a world's `add_to_linker` ([`bindgen!`](crate::bindgen));
    /// their state is the plugin's ([`PluginBuilder::state`], reached with
    /// [`Ctx::user`](crate::Ctx::user)). Host functions may be sync or async
    /// (`func_wrap_async`, or `async` in the world's `imports`); an async one is
    /// cancelled at the call's deadline.
    ///
    /// Host functions are the embedder's own grant, outside the [`Policy`]: every plugin
    /// of this runtime that imports them can call them. A plugin loaded without state of
    /// the right type gets a default one of its own ([`Ctx::user`](crate::Ctx::user)),
    /// never another plugin's; give plugins that must not reach an interface at all a
    /// runtime without it.
    pub fn link(
        mut self,
        hook: impl FnOnce(&mut Linker<InstanceState>) -> wasmtime::Result<()> + Send + 'static,
    ) -> Self {
        self.engine = self.engine.link(hook);
        self
    }

    /// Build the runtime: configure the engine, reserve the instance pool, start the
    /// epoch ticker.
    pub fn build(self) -> Result<Runtime, Error> {
        let engine = self.engine.build()?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                backends: Backends::new(),
            }),
        })
    }
}

impl Runtime {
    /// A runtime with the defaults (see [`RuntimeBuilder`]).
    pub fn new() -> Result<Self, Error> {
        Self::builder().build()
    }

    /// A [`RuntimeBuilder`] with the defaults.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            engine: Engine::builder(EngineConfig {
                cache_dir: None,
                max_instances: 100,
                fuel: false,
                throttle_heavy: false,
                memory_total: None,
                memory_reset: atoll_engine::MemoryResetMode::Auto,
            }),
        }
    }

    /// The process-wide runtime with the defaults, built on first use; what a sandboxed
    /// library uses, so every such library in a program shares one engine.
    pub fn shared() -> Result<Self, Error> {
        static SHARED: OnceLock<Result<Runtime, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Runtime::new().map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::Runtime)
    }

    /// Start loading a plugin from its bytes, to set its name, policy, limits and host
    /// state (see [`PluginBuilder`]).
    pub fn plugin(&self, bytes: impl Into<Vec<u8>>) -> PluginBuilder {
        PluginBuilder {
            runtime: self.clone(),
            bytes: bytes.into(),
            name: "plugin".into(),
            policy: Policy::deny_all(),
            limits: Limits::default(),
            state: None,
        }
    }

    /// Load a plugin from its bytes with `policy` and `limits`: check, compile (or take
    /// from the cache) and pre-link it. Compiling runs on tokio's blocking pool.
    pub async fn load(
        &self,
        bytes: impl Into<Vec<u8>>,
        policy: &Policy,
        limits: &Limits,
    ) -> Result<Plugin, Error> {
        self.plugin(bytes)
            .policy(policy.clone())
            .limits(limits.clone())
            .load()
            .await
    }

    /// [`Runtime::load`] from a file; the plugin is named after the file.
    pub async fn load_file(
        &self,
        path: impl Into<PathBuf>,
        policy: &Policy,
        limits: &Limits,
    ) -> Result<Plugin, Error> {
        let path = path.into();
        let bytes = read(&path)?;
        let name = path
            .file_stem()
            .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
        self.plugin(bytes)
            .name(name)
            .policy(policy.clone())
            .limits(limits.clone())
            .load()
            .await
    }

    pub(crate) fn inner(&self) -> &Arc<RuntimeInner> {
        &self.inner
    }
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        reason: atoll_engine::io_reason(&e),
    })
}

/// A plugin being set up ([`Runtime::plugin`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), atoll::Error> {
/// # let runtime = atoll::Runtime::new()?;
/// # let bytes = std::fs::read(test_programs_artifacts::TEXT).unwrap();
/// #[derive(Default)]
/// struct Counter { total: u32 }
/// let plugin = runtime
///     .plugin(bytes)
///     .name("transform")
///     .policy(atoll::Policy::deny_all().env("MODE", "strict"))
///     .limits(atoll::Limits::default().memory(32 << 20))
///     .state(Counter::default)
///     .load()
///     .await?;
/// assert_eq!(plugin.name(), "transform");
/// # Ok(()) }
/// ```
pub struct PluginBuilder {
    runtime: Runtime,
    bytes: Vec<u8>,
    name: String,
    policy: Policy,
    limits: Limits,
    state: Option<StateFn>,
}

impl PluginBuilder {
    /// Its name, in logs and errors (default `plugin`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// What it may reach (default: nothing).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Its limits (default: [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The host functions' state for each instance: `make` runs once per instance, and
    /// host functions reach the value with [`Ctx::user`](crate::Ctx::user). Share data
    /// between instances through an `Arc` the closure clones.
    pub fn state<U: Send + 'static>(
        mut self,
        make: impl Fn() -> U + Send + Sync + 'static,
    ) -> Self {
        self.state = Some(Arc::new(move || {
            Box::new(make()) as Box<dyn std::any::Any + Send>
        }));
        self
    }

    /// Check the limits, apply the policy, then check, compile and pre-link the
    /// component.
    pub async fn load(self) -> Result<Plugin, Error> {
        self.limits.check()?;
        let inner = self.runtime.inner().clone();
        if self.limits.fuel.is_some() && !inner.engine.config().fuel {
            return Err(Error::InvalidInput {
                message: format!(
                    "plugin {}: Limits::fuel is set, but this runtime does not count fuel; build it with RuntimeBuilder::fuel(true), or leave fuel unset",
                    self.name
                ),
            });
        }
        let caps = Arc::new(
            self.policy
                .capabilities(&self.name, &inner.backends)
                .await?,
        );
        let spec = ComponentSpec {
            name: self.name.clone(),
            limits: self.limits.engine_limits(),
            environment: self.policy.environment(),
        };
        let engine_owner = inner.clone();
        let bytes = self.bytes;
        let loaded =
            tokio::task::spawn_blocking(move || engine_owner.engine.load(&spec, &bytes, caps))
                .await
                .map_err(|e| Error::Runtime(format!("the compile task failed: {e}")))??
                .0;
        Ok(Plugin::new(PluginInner::new(
            self.runtime,
            self.name,
            loaded,
            self.limits,
            self.state,
        )))
    }
}
