//! A loaded app and how one is made: [`Loader::load`] takes a validated manifest
//! ([`App`]), resolves registry packages, configures the capabilities, reads, checks,
//! compiles (or loads from the cache) and pre-instantiates every component, and gives
//! each one its admission state. Every problem is a [`RuntimeError`] that points at the
//! manifest line it concerns.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use atoll_capabilities::{Backends, CapabilityError, ComponentCapabilities, RuntimeConfig};
use atoll_engine::{CacheOutcome, ComponentSpec, Engine, LoadError, LoadedComponent};
use atoll_manifest::{App, Component, ComponentSource, Diagnostic};
use tokio::sync::Semaphore;

/// Why an app could not be loaded. Nothing of a failed load is served.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A problem located in the manifest: a component file that is missing, not a
    /// component, does not compile or link, lacks the export its trigger needs, a
    /// package not locked...; the diagnostic names the file, line and key.
    #[error("{0}")]
    Manifest(Box<Diagnostic>),
    /// The app's grants could not be configured (a variable without a value, a mount
    /// outside the app, a backend that cannot be set up).
    #[error(transparent)]
    Capabilities(#[from] CapabilityError),
    /// A task of the loader failed (a compile task panicked).
    #[error("loading app `{app}` failed: {reason}")]
    Internal {
        /// The app.
        app: String,
        /// What happened.
        reason: String,
    },
}

impl From<Diagnostic> for RuntimeError {
    fn from(d: Diagnostic) -> Self {
        RuntimeError::Manifest(Box::new(d))
    }
}

/// One component as every trigger sees it: the loaded component and its admission
/// state (the concurrency permits belong to this version of the app, so swapping
/// another app never resets them).
pub struct ServedComponent {
    app: Arc<str>,
    loaded: LoadedComponent,
    pub(crate) permits: Arc<Semaphore>,
    max_concurrency: u32,
    pub(crate) fairness: Arc<crate::fairness::Fairness>,
    pub(crate) pressure: crate::fairness::Pressure,
    /// The slots of a failing component (`fairness`).
    pub(crate) gate: Arc<Semaphore>,
    /// Its counts (failures, refusals, runs, latencies), shared by every version.
    pub(crate) metrics: Arc<crate::metrics::ComponentMetrics>,
}

impl ServedComponent {
    /// How many of its runs have failed with `kind` (counts are kept by app and
    /// component name, so a reload keeps them).
    pub fn failures(&self, kind: atoll_engine::FailureKind) -> u64 {
        self.metrics.failures.count(kind)
    }

    /// Its counts, for a trigger to add what only it measures (instantiation, HTTP
    /// requests).
    pub fn metrics(&self) -> &Arc<crate::metrics::ComponentMetrics> {
        &self.metrics
    }

    /// The app this component belongs to.
    pub fn app_name(&self) -> &Arc<str> {
        &self.app
    }

    /// The component's name in the manifest.
    pub fn name(&self) -> &Arc<str> {
        self.loaded.name()
    }

    /// The loaded component (its `InstancePre`, limits, exports, grants).
    pub fn loaded(&self) -> &LoadedComponent {
        &self.loaded
    }

    /// Its concurrency limit (the manifest's `max_concurrency`, else the default).
    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    /// Instances running now (or held by a failure penalty).
    pub fn in_flight(&self) -> usize {
        (self.max_concurrency as usize).saturating_sub(self.permits.available_permits())
    }
}

/// Where a component's bytes came from, after resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSource {
    /// The file read.
    pub path: PathBuf,
    /// For a registry package, its locked version.
    pub locked_version: Option<String>,
}

/// An app ready to serve: the manifest, its components with their grants and admission
/// state. Immutable; a reload builds a new one. Requests in flight keep the `Arc` of the
/// version they started on, and its staged files and connections live as long as it.
pub struct LoadedApp {
    app: App,
    components: BTreeMap<String, Arc<ServedComponent>>,
    sources: BTreeMap<String, ResolvedSource>,
    load_id: u64,
    loaded_at: Instant,
}

impl std::fmt::Debug for LoadedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedApp")
            .field("name", &self.app.name)
            .field("load_id", &self.load_id)
            .field("components", &self.components.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LoadedApp {
    /// The app's name.
    pub fn name(&self) -> &str {
        &self.app.name
    }

    /// The validated manifest it was loaded from.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// A component by name.
    pub fn component(&self, name: &str) -> Option<&Arc<ServedComponent>> {
        self.components.get(name)
    }

    /// Every component, by name.
    pub fn components(&self) -> &BTreeMap<String, Arc<ServedComponent>> {
        &self.components
    }

    /// Where each component's bytes came from.
    pub fn sources(&self) -> &BTreeMap<String, ResolvedSource> {
        &self.sources
    }

    /// A number unique to this load within the process (increasing), for logs.
    pub fn load_id(&self) -> u64 {
        self.load_id
    }

    /// When this version finished loading.
    pub fn loaded_at(&self) -> Instant {
        self.loaded_at
    }
}

/// Loads apps. One per process (or per reload loop): it holds what every load shares,
/// the engine, the operator's runtime config, the `ATOLL_VARIABLE_*` values, the
/// process-wide key-value backends (so a reload reuses the redb handle and the
/// connections) and the user's home for registry packages.
#[derive(Clone)]
pub struct Loader {
    engine: Arc<Engine>,
    runtime: Arc<RuntimeConfig>,
    env_variables: Arc<BTreeMap<String, String>>,
    backends: Backends,
    #[cfg(feature = "registry")]
    home: Option<atoll_registry::AtollHome>,
    default_max_concurrency: u32,
    fairness: Arc<crate::fairness::Fairness>,
    metrics: crate::metrics::Metrics,
}

static LOADS: AtomicU64 = AtomicU64::new(1);

/// The concurrency limit of a component whose manifest sets none: 100 per core, at
/// most 1000.
pub fn default_max_concurrency() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores * 100).unwrap_or(1000).min(1000)
}

impl Loader {
    /// A loader over `engine` with the operator's `runtime` config and the process's
    /// `ATOLL_VARIABLE_*` variables (only the binary reads the environment).
    pub fn new(
        engine: Arc<Engine>,
        runtime: RuntimeConfig,
        env_variables: BTreeMap<String, String>,
    ) -> Self {
        Self {
            engine,
            fairness: Arc::new(crate::fairness::Fairness::new(runtime.fairness.clone())),
            runtime: Arc::new(runtime),
            env_variables: Arc::new(env_variables),
            backends: Backends::default(),
            #[cfg(feature = "registry")]
            home: None,
            default_max_concurrency: default_max_concurrency(),
            metrics: crate::metrics::Metrics::default(),
        }
    }

    /// Count into `metrics` (by default the loader has its own); the admin server and
    /// the triggers read the same.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The metrics every component this loader loads counts into.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Resolve `source = { package, version }` against this home's verified cache.
    #[cfg(feature = "registry")]
    pub fn with_home(mut self, home: atoll_registry::AtollHome) -> Self {
        self.home = Some(home);
        self
    }

    /// The concurrency limit of components whose manifest sets none.
    pub fn with_default_max_concurrency(mut self, n: u32) -> Self {
        self.default_max_concurrency = n.max(1);
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The key-value backends shared by every load.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Load `app`: resolve packages, configure capabilities, load every component. Off
    /// the request path (compiles run on the blocking pool). On error nothing is kept.
    pub async fn load(&self, app: App) -> Result<LoadedApp, RuntimeError> {
        self.load_replacing(app, None).await
    }

    /// [`Loader::load`] for a new version of `previous`: each component that keeps its
    /// name and concurrency limit keeps its permits too, so the requests still running on
    /// the old version count against the limit of the new one (a reload never lets a
    /// component run more instances than its `max_concurrency`).
    pub async fn load_replacing(
        &self,
        app: App,
        previous: Option<&LoadedApp>,
    ) -> Result<LoadedApp, RuntimeError> {
        let sources = self.resolve_sources(&app)?;
        #[cfg(feature = "registry")]
        let dependency_paths = match &self.home {
            Some(home) => crate::packages::resolve_dependencies(&app, home)?,
            None => BTreeMap::new(),
        };
        #[cfg(not(feature = "registry"))]
        let dependency_paths: BTreeMap<(String, String), std::path::PathBuf> = BTreeMap::new();
        let capabilities =
            atoll_capabilities::configure(&app, &self.runtime, &self.env_variables, &self.backends)
                .await?;
        let mut granted = capabilities.into_components();
        let app_name: Arc<str> = app.name.as_str().into();
        let mut components = BTreeMap::new();
        for component in app.components.values() {
            let caps = granted.remove(&component.name).unwrap_or_else(|| {
                Arc::new(ComponentCapabilities::deny_all(&app.name, &component.name))
            });
            let source = sources
                .get(&component.name)
                .ok_or_else(|| RuntimeError::Internal {
                    app: app.name.clone(),
                    reason: format!("component `{}` has no resolved source", component.name),
                })?;
            let mut bytes = read_component(&app, component, &source.path)?;
            if !component.dependencies.is_empty() {
                let (composed, wiring) = crate::compose::compose_from_files(
                    &app,
                    component,
                    bytes,
                    |name| sources.get(name).map(|s| s.path.clone()),
                    |d| {
                        dependency_paths
                            .get(&(component.name.clone(), d.import.clone()))
                            .cloned()
                    },
                    self.engine.config().cache_dir.as_deref(),
                )?;
                for w in &wiring {
                    tracing::info!(app = %app.name, component = %component.name, "composed: {} <- {}", w.import, w.dependency);
                }
                bytes = composed;
            }
            let denials = caps.denial_counts().clone();
            let spec = ComponentSpec {
                name: component.name.clone(),
                limits: component.limits.clone(),
                environment: component.environment.clone(),
            };
            let t = Instant::now();
            let engine = self.engine.clone();
            let (loaded, outcome) =
                tokio::task::spawn_blocking(move || engine.load(&spec, &bytes, caps))
                    .await
                    .map_err(|e| RuntimeError::Internal {
                        app: app.name.clone(),
                        reason: format!(
                            "the compile task of component `{}` failed: {e}",
                            component.name
                        ),
                    })?
                    .map_err(|e| load_diagnostic(&app, component, &e))?;
            let how = match outcome {
                CacheOutcome::Hit => "loaded from the compile cache",
                CacheOutcome::Compiled => "compiled and cached",
                CacheOutcome::Uncached => "compiled (no cache)",
            };
            tracing::info!(app = %app.name, component = %component.name, "{how} in {:.1?}", t.elapsed());
            let max = component
                .limits
                .max_concurrency
                .unwrap_or(self.default_max_concurrency)
                .max(1);
            let permits = previous
                .and_then(|p| p.component(&component.name))
                .filter(|old| old.max_concurrency == max)
                .map_or_else(
                    || Arc::new(Semaphore::new(max as usize)),
                    |old| old.permits.clone(),
                );
            components.insert(
                component.name.clone(),
                Arc::new(ServedComponent {
                    app: app_name.clone(),
                    loaded,
                    permits,
                    max_concurrency: max,
                    fairness: self.fairness.clone(),
                    pressure: crate::fairness::Pressure::default(),
                    gate: Arc::new(Semaphore::new(self.fairness.failing_concurrency())),
                    metrics: {
                        let m = self
                            .metrics
                            .component(&app_name, &component.name.as_str().into());
                        m.adopt_denials(denials);
                        m
                    },
                }),
            );
        }
        Ok(LoadedApp {
            app,
            components,
            sources,
            load_id: LOADS.fetch_add(1, Ordering::Relaxed),
            loaded_at: Instant::now(),
        })
    }

    fn resolve_sources(&self, app: &App) -> Result<BTreeMap<String, ResolvedSource>, RuntimeError> {
        #[cfg(feature = "registry")]
        let packages = match &self.home {
            Some(home) => crate::packages::resolve_packages(app, home)?,
            None => BTreeMap::new(),
        };
        let mut out = BTreeMap::new();
        for component in app.components.values() {
            let resolved = match &component.source {
                ComponentSource::Path(path) => ResolvedSource {
                    path: path.clone(),
                    locked_version: None,
                },
                ComponentSource::Package(_) | ComponentSource::Oci(_) => {
                    #[cfg(feature = "registry")]
                    let found = packages.get(&component.name).cloned();
                    #[cfg(not(feature = "registry"))]
                    let found: Option<ResolvedSource> = None;
                    found.ok_or_else(|| {
                        app.diagnostic(
                            component.source_span.clone(),
                            format!(
                                "component `{}` comes from `{}`, and this loader has no registry home to resolve it from",
                                component.name, component.source_written
                            ),
                        )
                        .key(format!("component.{}.source", component.name))
                        .help("give the loader the user's home (`Loader::with_home`), or use a `source` path")
                    })?
                }
            };
            out.insert(component.name.clone(), resolved);
        }
        Ok(out)
    }
}

/// Read a component's file. A missing or unreadable file is a diagnostic at its
/// `source` that says what would produce it.
pub fn read_component(
    app: &App,
    component: &Component,
    path: &Path,
) -> Result<Vec<u8>, Diagnostic> {
    std::fs::read(path).map_err(|e| {
        // A path as the author wrote it; a package's file as resolved in the cache.
        let shown = match component.path() {
            None => path.display().to_string(),
            Some(_) => component.source_written.clone(),
        };
        let d = source_diagnostic(
            app,
            component,
            format!(
                "cannot read `{shown}`, the source of component `{}`: {}",
                component.name,
                atoll_engine::io_reason(&e)
            ),
        );
        match (&component.build, component.path()) {
            (_, None) => d.help("run `atoll pull` to fetch what atoll.lock names"),
            (Some(b), Some(_)) => d.help(format!(
                "run `atoll build` (it runs `{}`), or fix the path",
                b.command
            )),
            (None, Some(_)) => d.help(
                "build the component first (`atoll build` runs the manifest's `build` commands), or fix the path (it is relative to the manifest)",
            ),
        }
    })
}

/// A diagnostic at component `component`'s `source` line.
pub fn source_diagnostic(app: &App, component: &Component, message: String) -> Diagnostic {
    app.diagnostic(component.source_span.clone(), message)
        .key(format!("component.{}.source", component.name))
        .about_component()
}

/// The engine's structured error, placed at the component's `source` line.
pub fn load_diagnostic(app: &App, component: &Component, e: &LoadError) -> Diagnostic {
    let shown = &component.source_written;
    let message = match e {
        LoadError::Link(reason) => {
            format!("component `{}` cannot be linked: {reason}", component.name)
        }
        LoadError::Compile(reason) => format!("`{shown}` failed to compile: {reason}"),
        LoadError::NotWasm | LoadError::Malformed(_) | LoadError::CoreModule { .. } => {
            format!("`{shown}` is {}", article(e))
        }
        other => format!("component `{}` cannot be loaded: {other}", component.name),
    };
    source_diagnostic(app, component, message).help(e.help())
}

fn article(e: &LoadError) -> String {
    match e {
        LoadError::NotWasm => "not a WebAssembly file".to_string(),
        LoadError::Malformed(m) => format!("malformed WebAssembly: {m}"),
        other => other.to_string(),
    }
}
