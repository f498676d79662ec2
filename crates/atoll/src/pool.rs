//! Pooled instances: reused across calls, for hosts that call a plugin often and keep
//! no secrets in it between calls.

use std::sync::Mutex;

use tokio::sync::Notify;

use atoll_engine::InstanceState;
use wasmtime::Store;
use wasmtime::component::{Instance, Val};

use crate::plugin::Checkout;
use crate::{Error, Plugin};

/// Instances of one plugin kept warm and **reused across calls**: a call skips
/// instantiation, but whatever the guest keeps (globals, heap, data segments, files it
/// wrote to memory) **persists** into the next call on the same instance. Use it for
/// plugins whose state is theirs to keep (caches, counters), not to isolate one caller's
/// data from another's: that is what fresh instances ([`Plugin::call`]) are for.
///
/// `Send + Sync`: share it between tasks (`Arc<Pool>`). At most
/// [`Limits::max_instances`](crate::Limits::max_instances) instances are alive, idle ones
/// included (they count against the plugin's fresh calls too: a fresh call waits while a
/// pool keeps the plugin's instances idle); a pool call that finds none free waits for
/// one to be returned or a permit to be released, up to the checkout timeout, then
/// fails with [`Error::Busy`]. An instance
/// whose call failed (trap, deadline, limit) is dropped, never reused. Each call gets the
/// full deadline and fuel budget again.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), atoll::Error> {
/// # let runtime = atoll::Runtime::new()?;
/// # let (policy, limits) = (atoll::Policy::deny_all(), atoll::Limits::default());
/// # let plugin = runtime.load_file(test_programs_artifacts::TEXT, &policy, &limits).await?;
/// let pool = plugin.pool();
/// for word in ["apple", "kiwi"] {
///     let n = pool.call_wave("count-vowels", &[&format!("{word:?}")]).await?;
///     println!("{word}: {n}");
/// }
/// # Ok(()) }
/// ```
pub struct Pool {
    plugin: Plugin,
    idle: Mutex<Vec<Warm>>,
    /// Told each time an instance goes back to `idle`, so a caller waiting for one
    /// takes it instead of waiting for a permit that idle instances hold.
    returned: Notify,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("plugin", &self.plugin.name())
            .field("idle", &self.idle_count())
            .finish()
    }
}

/// An idle instance and its right to be alive.
struct Warm {
    store: Store<InstanceState>,
    instance: Instance,
    checkout: Checkout,
}

/// What a checkout got.
enum Got {
    Idle(Warm),
    New(Checkout),
}

impl Plugin {
    /// A pool of reused instances of this plugin (see [`Pool`]).
    pub fn pool(&self) -> Pool {
        Pool {
            plugin: self.clone(),
            idle: Mutex::new(Vec::new()),
            returned: Notify::new(),
        }
    }
}

impl Pool {
    /// How many instances are idle now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }

    /// Run `f` on an idle instance, or a new one (see [`Plugin::with_instance`]).
    pub async fn with_instance<R>(
        &self,
        f: impl AsyncFnOnce(&mut Store<InstanceState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        let plugin = &self.plugin;
        let deadline = plugin.limits().deadline;
        let (mut store, instance, checkout) = match self.checkout().await? {
            Got::Idle(w) => (w.store, Some(w.instance), w.checkout),
            Got::New(checkout) => (plugin.new_store(), None, checkout),
        };
        plugin.arm(&mut store);
        let pre = plugin.component().instance_pre();
        let run = tokio::time::timeout(deadline, async {
            let instance = match instance {
                Some(i) => i,
                None => pre.instantiate_async(&mut store).await?,
            };
            let r = f(&mut store, &instance).await?;
            Ok((r, instance))
        })
        .await;
        match plugin.outcome(run, &store) {
            Ok((r, instance)) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(Warm {
                        store,
                        instance,
                        checkout,
                    });
                }
                self.returned.notify_one();
                Ok(r)
            }
            Err(e) => {
                // The instance may be left mid-call: drop it, then its right to exist,
                // so no other instance starts while it is still alive.
                drop(store);
                drop(checkout);
                Err(e)
            }
        }
    }

    /// An idle instance, or the right to make one, whichever comes first within the
    /// checkout timeout.
    async fn checkout(&self) -> Result<Got, Error> {
        let wait = self.plugin.limits().checkout_wait();
        let until = tokio::time::Instant::now() + wait;
        loop {
            // Register for a return before looking, so one that happens in between is
            // not missed.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(w) = self.idle.lock().ok().and_then(|mut i| i.pop()) {
                return Ok(Got::Idle(w));
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                got = self.plugin.checkout_within(left) => return got.map(Got::New),
                () = &mut returned => continue,
            }
        }
    }

    /// [`Plugin::call`] on a pooled instance.
    pub async fn call(&self, function: &str, args: &[Val]) -> Result<Vec<Val>, Error> {
        let f = self.plugin.function(function)?.clone();
        f.check_args(args)?;
        self.with_instance(async |store, instance| f.invoke(store, instance, args).await)
            .await
    }

    /// [`Plugin::call_wave`] on a pooled instance.
    pub async fn call_wave(&self, function: &str, args: &[&str]) -> Result<String, Error> {
        let f = self.plugin.function(function)?.clone();
        let vals = f.parse_args(args)?;
        let out = self
            .with_instance(async |store, instance| f.invoke(store, instance, &vals).await)
            .await?;
        crate::exports::to_wave(&out)
    }
}
