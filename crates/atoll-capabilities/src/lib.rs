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
//!   exist), stages glob file mounts into a directory of this load's own, and gets the
//!   key-value backends from the process's [`Backends`] registry (opening them on first
//!   use only, so a reload shares the redb file and the connections of the version it
//!   replaces). Errors name the manifest line.
//! - **prepare** ([`ComponentCapabilities::prepare`] and
//!   [`ComponentCapabilities::prepare_wasi`]): per instance, on the request path. Never
//!   blocks; costs a few `Arc` clones and two small boxes (stdout/stderr), plus one
//!   `open` per mounted directory for components that have `files`.
//!
//! Without an app manifest, [`ComponentCapabilities::builder`] grants capabilities one
//! by one (an embedder's plugin host); `configure` builds every component through it.
//! Either way, what is not granted is denied.
//!
//! Key types: [`AppCapabilities`] (the configured app), [`ComponentCapabilities`] (one
//! component's grants, shared by all its instances), [`InstanceCapabilities`] (what one
//! store carries), [`RuntimeConfig`], [`Backends`], and the [`Backend`] trait with the
//! stores an embedder can use directly ([`MemoryBackend`]). The [`inspect`] module
//! describes grants without enforcing them, for `atoll inspect`.
//!
//! Interface versions: `wasi:config/store` `0.2.0-rc.1` and `0.2.0-draft-2024-09-27`,
//! `wasi:keyvalue` `0.2.0-draft` and `0.2.0-draft2`, `wasi:logging` `0.1.0-draft`: what
//! guests built for wasmtime, wasmCloud and Spin 3 import. The WIT is vendored in `wit/`.
//!
//! Cargo features, all on by default (the `atoll` binary turns them on; the workspace
//! dependency turns them off, so an embedder picks): `redis`, `postgres` and `nats`, one
//! key-value client each. Without one, the runtime config still parses a store of that
//! type, and configuring an app that uses it fails with [`CapabilityError::NotBuilt`].
//! redb and memory stores are always built.
//!
//! Dependencies beyond wasmtime and tokio, and why: `redb` (the embedded store: a
//! maintained, pure-Rust, ACID single-file database, so the default needs no service),
//! `redis` (feature `redis`: the ecosystem's Redis client; its `ConnectionManager`
//! reconnects by itself), `tokio-postgres` (feature `postgres`: the rust-postgres
//! project's async client; no pool needed since one connection pipelines), `async-nats`
//! (feature `nats`: the NATS maintainers' client, JetStream KV built in; default features
//! off because they assume NATS 2.10+), `futures-util` and `hex` (feature `nats`: streams
//! of NATS keys, key encoding), `glob` (file-mount patterns, already in the workspace).
//! All build on rustc 1.95.

#![deny(missing_docs)]

mod config;
mod error;
mod files;
pub mod inspect;
mod keyvalue;
mod logging;
mod logs;
mod outbound;
pub mod record;
mod runtime_config;
mod sockets;
#[cfg(test)]
mod tests;
pub mod trace;
mod variables;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use atoll_manifest::{AllowedHost, App};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

pub use error::CapabilityError;
pub use keyvalue::{
    Backend, BackendError, Backends, BoxFut, CasVersion, KeyValueGrants, LIST_PAGE, MAX_BATCH,
    MAX_KEY_BYTES, MAX_VALUE_BYTES, MemoryBackend, OP_TIMEOUT,
};
pub use logs::{MAX_LINE, MAX_PER_REQUEST};
pub use outbound::OutboundHttp;
pub use runtime_config::{
    FairnessConfig, LanePriority, OutboundConfig, RuntimeConfig, StoreConfig,
};
pub use variables::{ENV_PREFIX, env_name};

use crate::logs::{GuestOutput, LogTarget, Stream};
use crate::outbound::OutboundPolicy;

/// Implemented by the store's data type, so host functions can reach the instance's
/// capabilities and its resource table.
pub trait CapabilityView: Send + 'static {
    /// The instance's capabilities and resource table.
    fn capabilities(&mut self) -> (&mut InstanceCapabilities, &mut ResourceTable);
}

/// Link phase: add `wasi:config/store`, `wasi:keyvalue` and `wasi:logging` to `linker`,
/// and replace `wasi:sockets`' entry points with ones that log their denial (after
/// wasmtime-wasi's own functions are linked). Once per engine.
pub fn add_to_linker<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    config::add_to_linker(linker)?;
    keyvalue::add_to_linker(linker)?;
    logging::add_to_linker(linker)?;
    sockets::add_to_linker(linker)?;
    Ok(())
}

/// Configure phase: check every component's grants of `app` and set up what they need.
/// `env_variables` holds the process's `ATOLL_VARIABLE_*` environment variables (only
/// the binary reads the environment). `backends` is the process's registry of key-value
/// backends: pass the same one to every load, so loads share backends instead of
/// opening them again (a second open of a redb file fails while the first is alive).
///
/// Glob file mounts are copied into a directory of this load's own, removed when the
/// last [`ComponentCapabilities`] holding it drops.
pub async fn configure(
    app: &App,
    runtime: &RuntimeConfig,
    env_variables: &BTreeMap<String, String>,
    backends: &Backends,
) -> Result<AppCapabilities, CapabilityError> {
    let values = variables::resolve(app, runtime, env_variables)?;
    let stores = keyvalue::configure_app(app, runtime, backends).await?;
    let mut components = BTreeMap::new();
    for component in app.components.values() {
        let (config, secrets) = variables::render(component, &values);
        let (mounts, staged) = files::configure(app, component)?;
        let mut builder = ComponentCapabilities::builder(&app.name, &component.name)
            .outbound_config(runtime.outbound_http);
        builder.allowed = component.grants.allowed_outbound_hosts.clone();
        builder.config = config;
        builder.secrets = secrets;
        builder.mounts = mounts;
        builder.staged = staged;
        for label in &component.grants.key_value_stores {
            // `configure_app` opened a backend for every label a component uses.
            if let Some(backend) = stores.backend(label) {
                builder = builder.key_value(label.clone(), backend);
            }
        }
        components.insert(component.name.clone(), Arc::new(builder.build()));
    }
    Ok(AppCapabilities { components })
}

/// An app's configured capabilities, per component.
#[derive(Debug)]
pub struct AppCapabilities {
    components: BTreeMap<String, Arc<ComponentCapabilities>>,
}

impl AppCapabilities {
    /// The grants of component `name`, if the app has it.
    pub fn component(&self, name: &str) -> Option<Arc<ComponentCapabilities>> {
        self.components.get(name).cloned()
    }

    /// Every component's grants, by component name: one entry for each component of the
    /// app that was configured.
    pub fn into_components(self) -> BTreeMap<String, Arc<ComponentCapabilities>> {
        self.components
    }
}

/// The kinds of denial counted by [`DenialCounts`], in its order.
pub const DENIAL_KINDS: [&str; 4] = ["outbound_http", "socket", "config", "key_value"];

/// A component's capability denials by kind ([`DENIAL_KINDS`]), every one counted
/// (the log lines are capped per instance; the counts are not). Shared by its
/// instances; `ComponentCapabilities::denial_counts` hands it to whoever reports it.
#[derive(Debug, Default)]
pub struct DenialCounts {
    counts: [std::sync::atomic::AtomicU64; 4],
}

impl DenialCounts {
    /// Count one denial of `kind` (one of [`DENIAL_KINDS`]; another is not counted).
    pub fn count(&self, kind: &str) {
        if let Some(i) = DENIAL_KINDS.iter().position(|k| *k == kind) {
            self.counts[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The counts now, in the order of [`DENIAL_KINDS`].
    pub fn snapshot(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.counts[i].load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// One component's configured grants, shared by all its instances.
pub struct ComponentCapabilities {
    target: Arc<LogTarget>,
    config: config::ConfigValues,
    outbound: Arc<OutboundPolicy>,
    mounts: Vec<files::Mount>,
    kv: Arc<KeyValueGrants>,
    /// The directory this load staged glob mounts into, removed when this drops (after
    /// the last instance: each holds an `Arc` of this).
    _staged: Option<files::StagedDir>,
}

impl std::fmt::Debug for ComponentCapabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Config values and secrets are left out on purpose.
        f.debug_struct("ComponentCapabilities")
            .field("app", &self.target.app)
            .field("component", &self.target.component)
            .field("allowed_outbound_hosts", &self.outbound.allowed.len())
            .field("mounts", &self.mounts)
            .field("key_value_stores", &self.kv)
            .finish_non_exhaustive()
    }
}

impl ComponentCapabilities {
    /// `text` with the value of every secret variable this component can read replaced
    /// by `[redacted]`: for anything the host logs that a guest chose (an error it
    /// answered with, a name it asked for).
    pub fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        self.target.redact(text)
    }

    /// The values a recording of this component hides: its secrets, in every form its
    /// log lines hide them ([`record::Recording::redact`]).
    pub fn secrets(&self) -> &[String] {
        &self.target.secrets
    }

    /// Its capability denials, counted by kind.
    pub fn denial_counts(&self) -> &Arc<DenialCounts> {
        &self.target.denials
    }

    /// `text` redacted and cut to at most `max` bytes (never inside a secret), for a
    /// log line about something a guest chose.
    pub fn redact_short(&self, text: &str, max: usize) -> String {
        self.target.redact_short(text, max)
    }

    /// Grants nothing: no config keys, no outbound HTTP, no files, no stores. Guest
    /// output is still logged under `app` and `component`.
    pub fn deny_all(app: &str, component: &str) -> Self {
        Self::builder(app, component).build()
    }

    /// Grant capabilities one by one, without an app manifest. Starts from nothing
    /// granted, like [`ComponentCapabilities::deny_all`]; guest output is logged under
    /// `app` and `component`, and key-value stores are namespaced `<app>/<label>`.
    pub fn builder(app: &str, component: &str) -> ComponentCapabilitiesBuilder {
        ComponentCapabilitiesBuilder {
            app: app.into(),
            component: component.into(),
            allowed: Vec::new(),
            outbound: OutboundConfig::default(),
            config: config::ConfigValues::new(),
            secrets: Vec::new(),
            mounts: Vec::new(),
            staged: None,
            kv: KeyValueGrants::default(),
        }
    }

    /// Prepare phase, WASI part: route the guest's stdout/stderr to the log and preopen
    /// its mounts read-only. Per instance; never blocks (one `open` per mount).
    pub fn prepare_wasi(&self, builder: &mut WasiCtxBuilder) {
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
            denied: None,
            denials_logged: 0,
            tape: None,
        }
    }
}

/// Builds a [`ComponentCapabilities`] grant by grant ([`ComponentCapabilities::builder`]).
/// Nothing is granted unless a method grants it.
pub struct ComponentCapabilitiesBuilder {
    app: Arc<str>,
    component: Arc<str>,
    allowed: Vec<AllowedHost>,
    outbound: OutboundConfig,
    config: config::ConfigValues,
    secrets: Vec<String>,
    mounts: Vec<files::Mount>,
    staged: Option<files::StagedDir>,
    kv: KeyValueGrants,
}

impl std::fmt::Debug for ComponentCapabilitiesBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Config values and secrets are left out on purpose.
        f.debug_struct("ComponentCapabilitiesBuilder")
            .field("app", &self.app)
            .field("component", &self.component)
            .field("allowed_outbound_hosts", &self.allowed.len())
            .field("config_keys", &self.config.len())
            .field("mounts", &self.mounts)
            .field("key_value_stores", &self.kv)
            .finish_non_exhaustive()
    }
}

impl ComponentCapabilitiesBuilder {
    /// Allow outbound HTTP requests to `host` (checked like a manifest's
    /// `allowed_outbound_hosts` entry, and against the resolved addresses).
    pub fn allow_outbound(mut self, host: AllowedHost) -> Self {
        self.allowed.push(host);
        self
    }

    /// [`allow_outbound`](Self::allow_outbound) with an entry written as in a manifest,
    /// `scheme://host[:port]` (`https://*.example.com`, `http://127.0.0.1:8080`).
    pub fn allow_outbound_str(self, entry: &str) -> Result<Self, CapabilityError> {
        let host = AllowedHost::parse(entry).map_err(|reason| CapabilityError::InvalidGrant {
            grant: entry.to_string(),
            reason,
        })?;
        Ok(self.allow_outbound(host))
    }

    /// The limits of outbound requests (default: [`OutboundConfig::default`]).
    pub fn outbound_config(mut self, config: OutboundConfig) -> Self {
        self.outbound = config;
        self
    }

    /// Let the guest read config key `key` (`wasi:config/store`), with this value.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// [`config`](Self::config) for a secret value: it is also replaced by `[redacted]`
    /// in the guest's log lines and in the outbound URLs logged for it.
    pub fn secret_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() && !self.secrets.contains(&value) {
            self.secrets.push(value.clone());
        }
        self.config.insert(key.into(), value);
        self
    }

    /// Let the guest open key-value store `label`, kept in `backend` under the namespace
    /// `<app>/<label>`. Granting a label again replaces its backend.
    pub fn key_value(mut self, label: impl Into<String>, backend: Arc<dyn Backend>) -> Self {
        self.kv.grant(&self.app, label.into(), backend);
        self
    }

    /// Let the guest read the host directory `host` at the guest path `guest`
    /// (absolute, like `/static`), read-only; paths resolve beneath it, so neither `..`
    /// nor a symlink leads out. The directory is opened again for each instance.
    pub fn mount_dir(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
    ) -> Result<Self, CapabilityError> {
        let host = host.into();
        let guest = guest.into();
        let invalid = |reason: String| CapabilityError::InvalidGrant {
            grant: format!("{} -> {guest}", host.display()),
            reason,
        };
        if !guest.starts_with('/') {
            return Err(invalid("the guest path must be absolute".into()));
        }
        let resolved = host
            .canonicalize()
            .map_err(|e| invalid(format!("cannot resolve the directory: {e}")))?;
        if !resolved.is_dir() {
            return Err(invalid("not a directory".into()));
        }
        self.mounts.push(files::Mount {
            host: resolved,
            guest,
        });
        Ok(self)
    }

    /// The grants, ready for [`ComponentCapabilities::prepare`].
    pub fn build(self) -> ComponentCapabilities {
        let target = Arc::new(LogTarget::new(self.app, self.component, self.secrets));
        ComponentCapabilities {
            outbound: Arc::new(OutboundPolicy {
                allowed: self.allowed,
                config: self.outbound,
                target: target.clone(),
                in_flight: Arc::default(),
                rate: outbound::RateLimit::new(self.outbound.max_requests_per_second),
            }),
            target,
            config: self.config,
            mounts: self.mounts,
            kv: Arc::new(self.kv),
            _staged: self.staged,
        }
    }
}

/// What one instance carries: its component's grants and its own outbound state.
pub struct InstanceCapabilities {
    grants: Arc<ComponentCapabilities>,
    outbound: OutboundHttp,
    /// Bytes of `wasi:logging` messages this instance has logged, for the cap.
    logged: usize,
    /// The first key-value store, socket or config key this instance was refused.
    denied: Option<String>,
    /// `capability denied` lines this instance has logged for sockets, config keys and
    /// key-value stores.
    denials_logged: u8,
    /// Recording this instance's host calls, or answering them from a recording.
    tape: Option<record::Tape>,
}

impl InstanceCapabilities {
    /// The `wasi:http` hooks that check and send this instance's outbound requests.
    pub fn outbound_http(&mut self) -> &mut OutboundHttp {
        &mut self.outbound
    }

    /// Forget the denials recorded so far, for an instance reused across calls.
    pub fn clear_denials(&mut self) {
        self.outbound.denied = None;
        self.denied = None;
    }

    /// The guest asked for `what` (a noun phrase: "a TCP socket") and was refused:
    /// record it as the first denial unless one is, and log `capability denied:
    /// {message}` with `kind`, a few times per instance at most, so a guest retrying in
    /// a loop cannot flood the log.
    fn deny(&mut self, kind: &str, what: &str, message: &str) {
        self.grants.target.denials.count(kind);
        if self.denied.is_none() {
            self.denied = Some(what.to_string());
        }
        if self.denials_logged < sockets::MAX_LOGGED_PER_INSTANCE {
            self.denials_logged += 1;
            let t = &self.grants.target;
            tracing::warn!(
                app = %t.app,
                component = %t.component,
                kind = %kind,
                "capability denied: {message}"
            );
        }
    }

    /// The first capability this instance asked for and was refused (an outbound host,
    /// a key-value store, a socket or a config key not granted), as one line; `None` if
    /// none was, since the instance was made (or since
    /// [`clear_denials`](Self::clear_denials)). An embedder reports it with a failed call:
    /// the guest's trap is often its reaction to the refusal. (Files outside a mount and
    /// unset environment variables are not recorded: no host call is made for them, as
    /// a guest without preopens or variables answers those itself.)
    pub fn first_denial(&self) -> Option<&str> {
        self.outbound.denied.as_deref().or(self.denied.as_deref())
    }

    /// Trace this instance's host calls (outbound HTTP, key-value) as children of the
    /// trigger's span, and send its `traceparent` on outbound requests. Off unless set.
    pub fn set_trace(&mut self, trace: trace::InstanceTrace) {
        self.outbound.trace = Some(trace);
    }

    /// Record this instance's host calls on `tape` (outbound HTTP, key-value, config),
    /// or answer them from it ([`record`]). The tape's clocks and random sources are the
    /// WASI context's business: [`record::Tape::prepare_wasi`], when the store is built.
    pub fn set_tape(&mut self, tape: record::Tape) {
        self.outbound.tape = Some(tape.clone());
        self.tape = Some(tape);
    }

    pub(crate) fn tape(&self) -> Option<&record::Tape> {
        self.tape.as_ref()
    }

    pub(crate) fn trace(&self) -> Option<&trace::InstanceTrace> {
        self.outbound.trace.as_ref()
    }
}
