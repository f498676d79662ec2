//! The core every atoll trigger and embedder shares: "a set of loaded apps, swapped
//! atomically, served by triggers".
//!
//! - [`Loader`] turns a validated manifest ([`atoll_manifest::App`]) into a
//!   [`LoadedApp`]: registry packages resolved (feature `registry`), capabilities
//!   configured against process-wide key-value [`Backends`](atoll_capabilities::Backends)
//!   (so a reload reuses connections and the redb handle), each component read, checked,
//!   compiled or loaded from the cache, pre-instantiated, and given its admission state
//!   ([`ServedComponent`]). Errors point at the manifest line ([`RuntimeError`]).
//! - [`LiveApps`]: the set of `Arc<LoadedApp>` a process serves, swapped in one step;
//!   requests in flight keep the version they started on; subscribers are told of each
//!   change and rebuild their own index.
//! - [`ServedComponent::admit`] and [`Admission::run_guest`]: admission (concurrency
//!   permit, never a queue but for a failing component's bounded wait) and the guest
//!   run (timeout, failure classification, one log line per failure, failure penalty),
//!   the same for every trigger.
//! - Fairness between components ([`Lane`], [`Standing`], the `fairness` module): a
//!   guest that computes moves off the event loops to a slow lane at the lowest OS
//!   priority; a component whose runs are heavy starts there; one that keeps failing runs
//!   few instances at a time and its requests wait before their 503.
//! - [`Metrics`]: what the process counts about its guests, by app and component name
//!   (kept across reloads): runs, failures by kind, refusals, instances live, latency
//!   histograms, HTTP requests by route, method and status, the last failures with their
//!   reasons. The admin server reads it.
//!
//! Not for: any one trigger (HTTP routing and status codes are `atoll-http`'s, cron
//! schedules `atoll-cron`'s, and each checks the export its world needs), parsing
//! manifests (`atoll-manifest`), compiling (`atoll-engine`), watching files or running
//! builds (the binary), or reading the process environment (the caller passes
//! `ATOLL_VARIABLE_*` values and the user's home in).
//!
//! Dependencies beyond atoll's own crates: `arc-swap` (the live set), tokio (the
//! semaphore and timers), and with `registry` the registry client crate and semver.

mod app;
pub mod compose;
mod fairness;
mod live;
pub mod metrics;
#[cfg(feature = "registry")]
mod packages;
mod run;

pub use app::{
    LoadedApp, Loader, ResolvedSource, RuntimeError, ServedComponent, default_max_concurrency,
    load_diagnostic, read_component, source_diagnostic,
};
pub use fairness::{Lane, Laned, Standing};
pub use live::{LiveApps, Snapshot};
pub use metrics::Metrics;
#[cfg(feature = "registry")]
pub use packages::{resolve_dependencies, resolve_packages};
pub use run::{Admission, DeniedBefore, FAILURE_PENALTY, Outcome, Refused};
