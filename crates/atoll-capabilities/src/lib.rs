//! The host side of what a component may touch beyond pure computation: its logs
//! (stdout/stderr, `wasi:logging`), its configuration and secrets (`wasi:config/store`), outbound HTTP
//! (`wasi:http/outgoing-handler` policy), read-only files (`wasi:filesystem` preopens)
//! and key-value stores (`wasi:keyvalue`). Deny by default: a component gets exactly
//! what its manifest grants, and everything else fails at call time with the
//! interface's own "denied" error.
//!
//! Not for: choosing backends (the operator's [`RuntimeConfig`] does), parsing the
//! manifest (`atoll-manifest`), building stores or the engine (`atoll-engine`, which
//! calls into this crate), or anything HTTP-serving.
//!
//! Each capability has three phases, matching their cost:
//! - **link** ([`add_to_linker`]): once per engine, adds the host functions.
//! - **configure** ([`configure`]): once per app load. Validates grants against the
//!   world (required variables have values, mount sources lie inside the app, stores
//!   exist), opens backend connection pools. Errors name the manifest line.
//! - **prepare** ([`ComponentCapabilities::prepare`] and
//!   [`ComponentCapabilities::configure_wasi`]): per instance, on the request path. Never
//!   blocks; costs a few `Arc` clones and two small boxes (stdout/stderr), plus one
//!   `open` per mounted directory for components that have `files`.
//!
//! Key types: [`AppCapabilities`] (the configured app), [`ComponentCapabilities`] (one
//! component's grants, shared by all its instances), [`InstanceCapabilities`] (what one
//! store carries), [`RuntimeConfig`]. The [`inspect`] module describes grants without
//! enforcing them, for `atoll inspect`.
//!
//! Interface versions: `wasi:config/store` `0.2.0-rc.1` and `0.2.0-draft-2024-09-27`,
//! `wasi:keyvalue` `0.2.0-draft` and `0.2.0-draft2`, `wasi:logging` `0.1.0-draft`: what
//! guests built for wasmtime, wasmCloud and Spin 3 import. The WIT is vendored in `wit/`.
//!
//! Dependencies beyond wasmtime and tokio, and why: `redb` (the embedded store: a
//! maintained, pure-Rust, ACID single-file database, so the default needs no service),
//! `redis` (the ecosystem's Redis client; its `ConnectionManager` reconnects by itself),
//! `tokio-postgres` (the rust-postgres project's async client; no pool needed since one
//! connection pipelines), `async-nats` (the NATS maintainers' client, JetStream KV
//! built in; default features off because they assume NATS 2.10+), `futures-util`
//! (streams of NATS keys), `glob` (file-mount patterns, already in the workspace). All
//! build on rustc 1.95.

#![deny(missing_docs)]

mod config;
mod error;
mod files;
pub mod inspect;
mod keyvalue;
mod logging;
mod logs;
mod outbound;
mod runtime_config;
mod variables;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use atoll_manifest::App;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

pub use error::CapabilityError;
pub use keyvalue::KeyValueGrants;
pub use logs::{MAX_LINE, MAX_PER_REQUEST};
pub use outbound::OutboundHttp;
pub use runtime_config::{OutboundConfig, RuntimeConfig, StoreConfig};
pub use variables::{ENV_PREFIX, env_name};

use crate::logs::{GuestOutput, LogTarget, Stream};
use crate::outbound::OutboundPolicy;

/// Implemented by the store's data type, so host functions can reach the instance's
/// capabilities and its resource table.
pub trait CapabilityView: Send + 'static {
    /// The instance's capabilities and resource table.
    fn capabilities(&mut self) -> (&mut InstanceCapabilities, &mut ResourceTable);
}

/// Link phase: add `wasi:config/store`, `wasi:keyvalue` and `wasi:logging` to `linker`.
/// Once per engine.
pub fn add_to_linker<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    config::add_to_linker(linker)?;
    keyvalue::add_to_linker(linker)?;
    logging::add_to_linker(linker)?;
    Ok(())
}

/// Configure phase: check every component's grants of `app` and set up what they need.
/// `env_variables` holds the process's `ATOLL_VARIABLE_*` environment variables (only
/// the binary reads the environment).
pub async fn configure(
    app: &App,
    runtime: &RuntimeConfig,
    env_variables: &BTreeMap<String, String>,
) -> Result<AppCapabilities, CapabilityError> {
    let values = variables::resolve(app, runtime, env_variables)?;
    let app_name: Arc<str> = app.name.as_str().into();
    let stores = keyvalue::configure_app(app, runtime).await?;
    let mut components = HashMap::new();
    for component in app.components.values() {
        let (config, secrets) = variables::render(component, &values);
        let target = Arc::new(LogTarget {
            app: app_name.clone(),
            component: component.name.as_str().into(),
            secrets,
        });
        let mounts = files::configure(app, component)?;
        let kv = stores.grants_for(component);
        components.insert(
            component.name.clone(),
            Arc::new(ComponentCapabilities {
                outbound: Arc::new(OutboundPolicy {
                    allowed: component.grants.allowed_outbound_hosts.clone(),
                    config: runtime.outbound_http,
                    target: target.clone(),
                    in_flight: Arc::default(),
                    rate: outbound::RateLimit::new(runtime.outbound_http.max_requests_per_second),
                }),
                target,
                config,
                mounts,
                kv,
            }),
        );
    }
    Ok(AppCapabilities { components })
}

/// An app's configured capabilities, per component.
pub struct AppCapabilities {
    components: HashMap<String, Arc<ComponentCapabilities>>,
}

impl AppCapabilities {
    /// The grants of component `name`, if the app has it.
    pub fn component(&self, name: &str) -> Option<Arc<ComponentCapabilities>> {
        self.components.get(name).cloned()
    }
}

/// One component's configured grants, shared by all its instances.
pub struct ComponentCapabilities {
    target: Arc<LogTarget>,
    config: config::ConfigValues,
    outbound: Arc<OutboundPolicy>,
    mounts: Vec<files::Mount>,
    kv: Arc<KeyValueGrants>,
}

impl std::fmt::Debug for ComponentCapabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Config values and secrets are left out on purpose.
        f.debug_struct("ComponentCapabilities")
            .field("app", &self.target.app)
            .field("component", &self.target.component)
            .field("allowed_outbound_hosts", &self.outbound.allowed.len())
            .field("mounts", &self.mounts)
            .finish_non_exhaustive()
    }
}

impl ComponentCapabilities {
    /// Grants nothing: no config keys, no outbound HTTP, no files, no stores. Guest
    /// output is still logged under `app` and `component`.
    pub fn deny_all(app: &str, component: &str) -> Self {
        let target = Arc::new(LogTarget {
            app: app.into(),
            component: component.into(),
            secrets: Vec::new(),
        });
        Self {
            outbound: Arc::new(OutboundPolicy {
                allowed: Vec::new(),
                config: OutboundConfig::default(),
                target: target.clone(),
                in_flight: Arc::default(),
                rate: outbound::RateLimit::new(OutboundConfig::default().max_requests_per_second),
            }),
            target,
            config: config::ConfigValues::new(),
            mounts: Vec::new(),
            kv: Arc::new(KeyValueGrants::default()),
        }
    }

    /// Prepare phase, WASI part: route the guest's stdout/stderr to the log and preopen
    /// its mounts read-only. Per instance; never blocks (one `open` per mount).
    pub fn configure_wasi(&self, builder: &mut WasiCtxBuilder) {
        builder.stdout(GuestOutput::new(self.target.clone(), Stream::Stdout));
        builder.stderr(GuestOutput::new(self.target.clone(), Stream::Stderr));
        for m in &self.mounts {
            if let Err(e) = builder.preopened_dir(&m.host, &m.guest, FsPerms::ReadOnly) {
                tracing::error!(
                    app = %self.target.app,
                    component = %self.target.component,
                    "cannot open mount {} -> {}: {e}; the guest will not see it",
                    m.host.display(),
                    m.guest
                );
            }
        }
    }

    /// Prepare phase: the per-instance state. Per instance; two `Arc` clones.
    pub fn prepare(self: &Arc<Self>) -> InstanceCapabilities {
        InstanceCapabilities {
            grants: self.clone(),
            outbound: OutboundHttp::new(self.outbound.clone()),
            logged: 0,
        }
    }
}

/// What one instance carries: its component's grants and its own outbound state.
pub struct InstanceCapabilities {
    grants: Arc<ComponentCapabilities>,
    outbound: OutboundHttp,
    /// Bytes of `wasi:logging` messages this instance has logged, for the cap.
    logged: usize,
}

impl InstanceCapabilities {
    /// The `wasi:http` hooks that check and send this instance's outbound requests.
    pub fn outbound_http(&mut self) -> &mut OutboundHttp {
        &mut self.outbound
    }
}
