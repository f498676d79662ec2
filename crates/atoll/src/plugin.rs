//! A loaded plugin and its calls: a fresh instance per call (the default), typed through
//! a `bindgen!` world or dynamic through `Val` and WAVE text.

use std::sync::Arc;

use atoll_engine::{FailureKind, InstanceState, LoadedComponent, classify_error};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre, Val};

use crate::exports::{Function, list_functions};
use crate::runtime::Runtime;
use crate::{Error, Limits};

/// Makes the host functions' state for one instance.
pub(crate) type StateFn = Arc<dyn Fn() -> Box<dyn std::any::Any + Send> + Send + Sync>;

/// A checked, compiled and pre-linked component with its policy and limits: cheap to
/// clone (an `Arc`), `Send + Sync`, callable from many tasks at once (up to
/// [`Limits::max_instances`] instances run at a time; more calls wait their turn, up to
/// the checkout timeout).
///
/// Each call runs in a **fresh instance** unless it goes through a [`Pool`](crate::Pool):
/// no state of one call (globals, heap, data segments) can leak into the next.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), atoll::Error> {
/// # let runtime = atoll::Runtime::new()?;
/// # let (policy, limits) = (atoll::Policy::deny_all(), atoll::Limits::default());
/// # let plugin = runtime.load_file(test_programs_artifacts::TEXT, &policy, &limits).await?;
/// use atoll::Val;
/// // Dynamic: values as `Val`...
/// let out = plugin.call("count-vowels", &[Val::String("hello".into())]).await?;
/// assert_eq!(out, vec![Val::U32(2)]);
/// // ...or as WAVE text.
/// assert_eq!(plugin.call_wave("manhattan", &["{x: 3, y: -4}"]).await?, "7");
/// // Every export, with its signature.
/// for f in plugin.functions() {
///     println!("{f}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

pub(crate) struct PluginInner {
    /// Keeps the engine alive as long as the plugin.
    _runtime: Runtime,
    name: String,
    component: LoadedComponent,
    limits: Limits,
    permits: Arc<Semaphore>,
    state: Option<StateFn>,
    functions: Vec<Function>,
}

impl PluginInner {
    pub(crate) fn new(
        runtime: Runtime,
        name: String,
        component: LoadedComponent,
        limits: Limits,
        state: Option<StateFn>,
    ) -> Self {
        let functions = list_functions(component.instance_pre(), runtime.inner().engine.wasmtime());
        let permits = Arc::new(Semaphore::new(limits.max_instances as usize));
        Self {
            _runtime: runtime,
            name,
            component,
            limits,
            permits,
            state,
            functions,
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.inner.name)
            .field("limits", &self.inner.limits)
            .field("functions", &self.inner.functions.len())
            .finish_non_exhaustive()
    }
}

/// The right to have one live instance of a plugin.
pub(crate) struct Checkout {
    _permit: OwnedSemaphorePermit,
}

impl Plugin {
    pub(crate) fn new(inner: PluginInner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Every function it exports (top level and in its exported interfaces), in export
    /// order; `Display` shows `pkg:name/iface@ver#func: func(a: t) -> r`.
    pub fn functions(&self) -> &[Function] {
        &self.inner.functions
    }

    /// The function `name`: its plain name when only one export has it
    /// (`count-vowels`), else qualified (`acme:x/api@1.0.0#count-vowels`).
    pub fn function(&self, name: &str) -> Result<&Function, Error> {
        crate::exports::find(&self.inner.functions, name)
    }

    /// The pre-linked component, for a world's typed pre (`MyWorldPre::new`), e.g. to
    /// look its export indices up once instead of per call.
    pub fn instance_pre(&self) -> &InstancePre<InstanceState> {
        self.inner.component.instance_pre()
    }

    /// Call `function` with `args` in a fresh instance; the results, one `Val` each.
    /// Arguments are checked against the function's parameter types first: a wrong
    /// count or type is [`Error::InvalidInput`] naming the parameter.
    pub async fn call(&self, function: &str, args: &[Val]) -> Result<Vec<Val>, Error> {
        let f = self.function(function)?.clone();
        f.check_args(args)?;
        self.with_instance(async |store, instance| f.invoke(store, instance, args).await)
            .await
    }

    /// [`Plugin::call`] with arguments and results as WAVE text (`"hi"`, `5`,
    /// `{x: 3, y: -4}`, `some("a")`, `ok(1)`, `[1, 2]`): one text per parameter; the
    /// results joined by `, ` (a single result as itself, none as the empty string).
    pub async fn call_wave(&self, function: &str, args: &[&str]) -> Result<String, Error> {
        let f = self.function(function)?.clone();
        let vals = f.parse_args(args)?;
        let out = self
            .with_instance(async |store, instance| f.invoke(store, instance, &vals).await)
            .await?;
        crate::exports::to_wave(&out)
    }

    /// Run `f` on a fresh instance: the way to make typed calls through a world's
    /// bindings. The whole of `f` (instantiation included) is bounded by the deadline;
    /// the instance is dropped afterwards.
    ///
    /// See [`bindgen!`](crate::bindgen) for a typed call; any closure works:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), atoll::Error> {
    /// # let runtime = atoll::Runtime::new()?;
    /// # let (policy, limits) = (atoll::Policy::deny_all(), atoll::Limits::default());
    /// # let plugin = runtime.load_file(test_programs_artifacts::TEXT, &policy, &limits).await?;
    /// let exports = plugin
    ///     .with_instance(async |store, instance| {
    ///         Ok(instance.get_func(&mut *store, "shout").is_some())
    ///     })
    ///     .await?;
    /// assert!(exports);
    /// # Ok(()) }
    /// ```
    pub async fn with_instance<R>(
        &self,
        f: impl AsyncFnOnce(&mut Store<InstanceState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        let _checkout = self.checkout().await?;
        let mut store = self.new_store();
        let pre = self.inner.component.instance_pre();
        let run = tokio::time::timeout(self.inner.limits.deadline, async {
            let instance = pre.instantiate_async(&mut store).await?;
            f(&mut store, &instance).await
        })
        .await;
        self.outcome(run, &store)
    }

    /// Wait (up to the checkout timeout) for the right to one more live instance.
    pub(crate) async fn checkout(&self) -> Result<Checkout, Error> {
        self.checkout_within(self.inner.limits.checkout_wait())
            .await
    }

    /// [`checkout`](Self::checkout), waiting at most `wait`.
    pub(crate) async fn checkout_within(
        &self,
        wait: std::time::Duration,
    ) -> Result<Checkout, Error> {
        match tokio::time::timeout(wait, self.inner.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Checkout { _permit: permit }),
            Ok(Err(_)) => Err(Error::Runtime(
                "the plugin's instance limit was closed".into(),
            )),
            Err(_) => Err(Error::Busy {
                waited: self.inner.limits.checkout_wait(),
                max_instances: self.inner.limits.max_instances,
            }),
        }
    }

    /// A store for one instance: the policy's grants, the limits, the host state.
    pub(crate) fn new_store(&self) -> Store<InstanceState> {
        let mut store = match &self.inner.state {
            Some(make) => self.inner.component.new_store_with(make()),
            None => self.inner.component.new_store(),
        };
        self.arm(&mut store);
        store
    }

    /// Give a store a call's budget: the deadline (counted from now) and the fuel; and
    /// forget what an earlier call on it was refused.
    pub(crate) fn arm(&self, store: &mut Store<InstanceState>) {
        self.inner.component.reset_deadline(store);
        store.data_mut().clear_denials();
        if let Some(fuel) = self.inner.limits.fuel {
            self.inner.component.set_fuel(store, fuel);
        }
    }

    pub(crate) fn component(&self) -> &LoadedComponent {
        &self.inner.component
    }

    /// Turn a call's result into the crate's error, with what the store saw.
    pub(crate) fn outcome<R>(
        &self,
        run: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
        store: &Store<InstanceState>,
    ) -> Result<R, Error> {
        let error = match run {
            Ok(Ok(r)) => return Ok(r),
            Err(_) => Error::Deadline {
                limit: self.inner.limits.deadline,
            },
            Ok(Err(e)) => self.classify(&e),
        };
        let error = match store.data().first_denial() {
            Some(capability) if matches!(error, Error::Trap { .. }) => Error::Denied {
                capability: capability.to_string(),
                cause: Box::new(error),
            },
            _ => error,
        };
        tracing::debug!(plugin = %self.inner.name, "call failed: {error}");
        Err(error)
    }

    fn classify(&self, e: &wasmtime::Error) -> Error {
        if let Some(bad) = e.downcast_ref::<crate::exports::BadArguments>() {
            return Error::InvalidInput {
                message: bad.0.clone(),
            };
        }
        let trap = e.downcast_ref::<wasmtime::Trap>().copied();
        if trap == Some(wasmtime::Trap::OutOfFuel) {
            return Error::Fuel {
                limit: self.inner.limits.fuel.unwrap_or(0),
            };
        }
        match classify_error(e) {
            FailureKind::Timeout => Error::Deadline {
                limit: self.inner.limits.deadline,
            },
            FailureKind::MemoryLimit => Error::Memory {
                limit: self.inner.limits.memory,
                detail: e.root_cause().to_string(),
            },
            FailureKind::Capacity => Error::PoolFull,
            FailureKind::NodeMemory => Error::Memory {
                limit: self.inner.component.memory_budget().total() as u64,
                detail: e.root_cause().to_string(),
            },
            FailureKind::StackOverflow | FailureKind::Trap => Error::Trap {
                code: trap,
                message: trap_message(e),
                backtrace: atoll_engine::guest_frames(e, 12),
            },
            // Not a trap: a host function's error, or the embedder's closure's.
            _ => Error::Host {
                message: atoll_engine::error_chain(e),
            },
        }
    }
}

/// The trap's own message, without the backtrace wasmtime adds to its text.
fn trap_message(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(t) => t.to_string(),
        None => e.root_cause().to_string(),
    }
}

/// An export index looked up once per plugin.
pub(crate) type ExportIndex = ComponentExportIndex;
