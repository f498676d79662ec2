//! The wasmtime side of atoll: one [`Engine`] per process, components compiled once and
//! cached on disk, and per-instance [`Store`](wasmtime::Store)s that carry limits and
//! exactly the capabilities a component was granted.
//!
//! Not for HTTP (serving, routing, status codes live in `atoll-http`), for parsing
//! manifests (`atoll-manifest`), or for terminal output.
//!
//! Key types:
//! - [`Engine`]: wraps `wasmtime::Engine` configured with the pooling allocator,
//!   copy-on-write memory images and epoch interruption, plus the epoch ticker thread and
//!   the linker every component is linked against.
//! - [`LoadedComponent`]: a checked, compiled, pre-instantiated component (its
//!   `ProxyPre`) with its limits; [`LoadedComponent::new_store`] builds the per-request
//!   store in a few hundred nanoseconds.
//! - [`InstanceState`]: the data of one store: WASI context (environment from the
//!   manifest only, no preopens, no network), wasi-http context, resource table, limits.
//!
//! Costs: [`Engine::new`] reserves the pool's virtual address space (no memory is
//! committed); [`Engine::load_component`] compiles on a cache miss (seconds for big
//! guests) and otherwise mmaps the cached artifact (milliseconds).

mod cache;
mod check;
mod component;
mod engine;
mod error;

pub use check::{ComponentFile, ComponentKind, describe_component, inspect_bytes};
pub use component::{FailureKind, InstanceState, LoadedComponent, classify_error};
pub use engine::{CacheOutcome, Engine, EngineConfig};
pub use error::LoadError;

/// The wasmtime types the HTTP trigger needs, re-exported so both sides agree on one version.
pub use wasmtime;
pub use wasmtime_wasi;
pub use wasmtime_wasi_http;
