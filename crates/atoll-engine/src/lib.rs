//! The wasmtime side of atoll: one [`Engine`] per process, components compiled once and
//! cached on disk, and per-instance [`Store`](wasmtime::Store)s that carry limits and
//! exactly the capabilities a component was granted.
//!
//! Not for HTTP or any other trigger (serving, routing, status codes and which export a
//! component must have live in the triggers, `atoll-http` and `atoll-cron`), for
//! manifests (`atoll-manifest`; loading takes bytes and a [`ComponentSpec`], and errors
//! are a structured [`LoadError`] that `atoll-runtime` places at the manifest line), or
//! for terminal output.
//!
//! Key types:
//! - [`Engine`]: wraps `wasmtime::Engine` configured with the pooling allocator,
//!   copy-on-write memory images and epoch interruption, plus the epoch ticker thread and
//!   the linker every component is linked against.
//! - [`EngineBuilder`]: the same, with host functions of an embedder's own.
//! - [`LoadedComponent`]: a checked, compiled, pre-instantiated component of any world
//!   (a plain `InstancePre`, and its export names) with its limits;
//!   [`LoadedComponent::new_store`] builds the per-instance store in a few hundred
//!   nanoseconds.
//! - [`InstanceState`]: the data of one store: WASI context (environment from the
//!   manifest only, no preopens, no network), wasi-http context, resource table, limits,
//!   and an embedder's state slot.
//!
//! Costs: [`Engine::new`] reserves the pool's virtual address space (no memory is
//! committed); [`Engine::load`] compiles on a cache miss (seconds for big
//! guests) and otherwise mmaps the cached artifact (milliseconds).

mod cache;
mod check;
mod component;
mod engine;
mod error;

pub use check::{ComponentFile, ComponentKind, describe_bytes, inspect_bytes};
pub use component::{
    FailureKind, InstanceState, LoadedComponent, MemoryBudget, classify_error, guest_frames,
    thread_guest_ticks,
};
pub use engine::{
    CacheOutcome, ComponentSpec, EPOCH_TICK, Engine, EngineBuilder, EngineConfig, MemoryResetMode,
    fast_memory_reset,
};
pub use error::{LoadError, error_chain, io_reason};
