//! # atoll: WebAssembly components as sandboxed plugins and libraries
//!
//! Run code you did not write (your users' plugins, a third-party parser) in-process,
//! at near-native speed, where it can reach **nothing it was not granted**: no files, no
//! network, no environment, no memory of yours. The same engine, policy and limits as
//! the atoll server (`atoll up`), as a library.
//!
//! - One [`Runtime`] per process (one engine, instance pool, epoch ticker, compile
//!   cache), many [`Plugin`]s.
//! - A [`Policy`] per plugin, deny-all by default, with the grants of `atoll.toml`
//!   (outbound hosts, key-value stores on any [`Backend`], read-only directories,
//!   environment, config variables); serde-loadable from TOML or JSON.
//! - [`Limits`] per plugin, always on: memory, a wall-clock deadline per call that covers
//!   async host calls too (a sync one that blocks is caught when it returns), optional fuel, a cap on live instances with a checkout timeout.
//! - Calls: **typed** through a world's bindings ([`bindgen!`], [`Plugin::with_instance`]),
//!   or **dynamic** for worlds known only at runtime ([`Plugin::call`] with [`Val`],
//!   [`Plugin::call_wave`] with WAVE text).
//! - Instances: a **fresh instance per call** by default (nothing leaks between calls),
//!   or a [`Pool`] of reused ones (state persists; documented as such).
//! - Errors: one [`Error`] enum that tells a deadline, fuel, memory, a trap (with the
//!   guest's backtrace), a denied capability, a link error and invalid input apart.
//! - Async first; every call has a `_blocking` twin for programs without a runtime.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), atoll::Error> {
//! # let path = test_programs_artifacts::TEXT; // a component exporting count-vowels
//! let runtime = atoll::Runtime::new()?;
//! let policy = atoll::Policy::deny_all().env("GREETING", "hi");
//! let limits = atoll::Limits::default()
//!     .memory(32 << 20)
//!     .deadline(std::time::Duration::from_millis(200));
//! let plugin = runtime.load_file(path, &policy, &limits).await?;
//! assert_eq!(plugin.call_wave("count-vowels", &[r#""hello world""#]).await?, "3");
//! # Ok(()) }
//! ```
//!
//! Not in this crate: serving HTTP or running cron jobs (`atoll-http`, `atoll-cron`,
//! the `atoll` binary), manifests (`atoll-manifest`).

// So `::atoll::...` paths in `bindgen!`'s output also resolve inside this crate.
extern crate self as atoll;

mod blocking;
mod error;
mod exports;
mod limits;
mod plugin;
mod policy;
mod pool;
mod runtime;

pub use atoll_capabilities::{Backend, BackendError, MemoryBackend, StoreConfig};
pub use error::Error;
pub use exports::Function;
pub use limits::{Limits, MAX_DEADLINE};
pub use plugin::Plugin;
pub use policy::{DirGrant, Policy};
pub use pool::Pool;
pub use runtime::{PluginBuilder, Runtime, RuntimeBuilder};
pub use wasmtime::component::Val;

/// The wasmtime this crate is built on (48.x), for the code [`bindgen!`] generates and
/// for host functions written against its `Linker`. Use it rather than a wasmtime
/// dependency of your own, so the versions always match.
pub use wasmtime;

/// The data of every plugin instance's store: WASI, the policy's grants, the limits,
/// and the host functions' state ([`Ctx::user`]).
pub type Ctx = atoll_engine::InstanceState;

/// Typed bindings for a WIT world, generated at compile time: wasmtime's `bindgen!`,
/// set up for atoll (generated code refers to `atoll::wasmtime`, so a crate that
/// depends only on `atoll` can use it; exports are async, as atoll's calls are).
/// Takes wasmtime's options (`path`, `world`, `inline`, `imports`, `with`, ...) except
/// `wasmtime_crate` and `exports`, which it sets. The crate must be reachable as
/// `atoll` (do not rename the dependency).
///
/// ```
/// # #![allow(missing_docs)]
/// atoll::bindgen!({ path: "../test-programs/wit-plugin", world: "acme:plugin/text-plugin" });
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), atoll::Error> {
/// # let runtime = atoll::Runtime::new()?;
/// # let (policy, limits) = (atoll::Policy::deny_all(), atoll::Limits::default());
/// let plugin = runtime.load_file(test_programs_artifacts::TEXT, &policy, &limits).await?;
/// let n = plugin
///     .with_instance(async |store, instance| {
///         let bindings = TextPlugin::new(&mut *store, instance)?;
///         bindings.acme_plugin_text().call_count_vowels(store, "hello").await
///     })
///     .await?;
/// assert_eq!(n, 2);
/// # Ok(()) }
/// ```
///
/// Imports of the world are host functions: implement the generated `Host` trait for
/// your state type, link it in [`RuntimeBuilder::link`] with
/// `add_to_linker::<_, atoll::wasmtime::component::HasSelf<MyState>>(linker, |c| c.user())`,
/// and give each plugin that state with [`PluginBuilder::state`].
#[macro_export]
macro_rules! bindgen {
    ({ $($options:tt)* }) => {
        $crate::wasmtime::component::bindgen!({
            // A path, not `$crate`: wasmtime's macro re-parses it as text.
            wasmtime_crate: ::atoll::wasmtime,
            exports: { default: async },
            $($options)*
        });
    };
}
