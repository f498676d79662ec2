//! The resolved app: what the runtime consumes after validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::diagnostic::{Diagnostic, SourceText, Span};
use crate::grants::{Grants, Variable};
use crate::schedule::Schedule;

/// Default memory limit of one instance.
pub const DEFAULT_MEMORY_LIMIT: u64 = 128 * 1024 * 1024;
/// Default wall-clock limit of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest memory limit a component may ask for (4 GiB); the engine can size its
/// instance pool from it.
pub const MAX_MEMORY: u64 = 4 * 1024 * 1024 * 1024;

/// A validated app.
#[derive(Debug, Clone)]
pub struct App {
    /// `[app] name`.
    pub name: String,
    /// `[app] version`.
    pub version: String,
    /// `[variables]`, in manifest order: the app's configuration and secrets.
    pub variables: Vec<Variable>,
    /// The directory the manifest is in; relative paths resolve against it.
    pub dir: PathBuf,
    /// Components by name, sorted.
    pub components: BTreeMap<String, Component>,
    /// Settings of the HTTP trigger that apply to the whole app.
    pub http: HttpSettings,
    /// Every trigger, in manifest order.
    pub triggers: Vec<Trigger>,
    /// Which manifest format the app was written in.
    pub kind: ManifestKind,
    /// Where `[app]` is written.
    pub(crate) app_span: Span,
    pub(crate) source: Arc<SourceText>,
}

impl App {
    /// The `[[trigger.http]]` triggers, in manifest order.
    pub fn http_triggers(&self) -> impl Iterator<Item = &HttpTrigger> {
        self.triggers.iter().filter_map(|t| match t {
            Trigger::Http(h) => Some(h),
            _ => None,
        })
    }

    /// The `[[trigger.cron]]` triggers, in manifest order.
    pub fn cron_triggers(&self) -> impl Iterator<Item = &CronTrigger> {
        self.triggers.iter().filter_map(|t| match t {
            Trigger::Cron(c) => Some(c),
            _ => None,
        })
    }

    /// Refuse to serve an app without triggers (nothing would ever run). Parsing accepts
    /// one, so `atoll build` and `atoll inspect` work on a set of plugins.
    pub fn check_triggers(&self) -> Result<(), Diagnostic> {
        if !self.triggers.is_empty() {
            return Ok(());
        }
        Err(
            Diagnostic::new("the app has no triggers, so nothing would ever run")
                .at(&self.source, self.app_span.clone())
                .key("trigger")
                .help(
                    "add `[[trigger.http]]` with `route = \"/...\"` and `component = \"NAME\"`, or `[[trigger.cron]]` with `schedule = \"0 * * * *\"` and `component = \"NAME\"`",
                ),
        )
    }

    /// The manifest file, as named in messages.
    pub fn manifest_path(&self) -> &std::path::Path {
        &self.source.path
    }

    /// A diagnostic that points into this app's manifest, for problems found after
    /// parsing (a missing or malformed `source`, a failed build).
    pub fn diagnostic(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(message).at(&self.source, span)
    }
}

/// The format of the manifest an [`App`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// `atoll.toml`.
    Atoll,
    /// Spin's `spin.toml` (manifest version 2): served as Spin serves it, with Spin's
    /// request headers (`spin-path-info`, ...) and `SPIN_VARIABLE_<NAME>` values.
    Spin,
}

/// One `[component.NAME]`.
#[derive(Debug, Clone)]
pub struct Component {
    /// The NAME in `[component.NAME]`.
    pub name: String,
    /// Where the component's code comes from.
    pub source: ComponentSource,
    /// `source` as the author wrote it (`name@version` for a package), for messages.
    pub source_written: String,
    /// Where `source` is written in the manifest, for later errors.
    pub source_span: Span,
    /// How to build `source`, if the author said.
    pub build: Option<BuildConfig>,
    /// The environment variables the guest sees, and no others.
    pub environment: Vec<(String, String)>,
    /// Resource limits, always set.
    pub limits: Limits,
    /// Capabilities beyond `environment`: config, outbound HTTP, key-value, files.
    pub grants: Grants,
    /// `[component.NAME.dependencies]`: components composed into this one, each
    /// satisfying some of its imports, in manifest order.
    pub dependencies: Vec<Dependency>,
}

/// One entry of `[component.NAME.dependencies]`.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// What it satisfies, as written: an imported interface (`acme:auth/verify`, with or
    /// without `@version`) or every import from a package (`acme:auth`).
    pub import: String,
    /// Where the dependency's code comes from.
    pub source: DependencySource,
    /// Share the component's grants with the dependency (Spin's
    /// `dependencies_inherit_configuration`). Off: a dependency that imports an
    /// interface through which it would get one of the component's capabilities is
    /// refused at load.
    pub inherit_capabilities: bool,
    /// Where the entry is written, for later errors.
    pub span: Span,
}

/// Where a dependency comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencySource {
    /// `{ component = "NAME" }`: another component of the app (its `source`, built by its
    /// `build`), instantiated inside this one; its own grants do not apply there.
    Component(String),
    /// `{ path = "auth.wasm" }`: a local file, absolute (resolved against the manifest's
    /// directory).
    Path(PathBuf),
    /// `{ package, version }`: a registry package, pinned in `atoll.lock` (by `atoll add`).
    Package(PackageSource),
    /// `"oci://…"` or `{ oci = "oci://…" }`: an OCI artifact, pinned by digest in
    /// `atoll.lock` on first use, as a component `source` is.
    Oci(String),
}

impl Component {
    /// The registry package, when `source = { package, version }`.
    pub fn package(&self) -> Option<&PackageSource> {
        match &self.source {
            ComponentSource::Package(p) => Some(p),
            ComponentSource::Path(_) | ComponentSource::Oci(_) => None,
        }
    }

    /// The `oci://` reference, when `source` is one.
    pub fn oci(&self) -> Option<&str> {
        match &self.source {
            ComponentSource::Oci(r) => Some(r),
            ComponentSource::Path(_) | ComponentSource::Package(_) => None,
        }
    }

    /// The `.wasm` file, when `source` is a path.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            ComponentSource::Path(p) => Some(p),
            ComponentSource::Package(_) | ComponentSource::Oci(_) => None,
        }
    }
}

/// A component's `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A local `.wasm` file: the absolute path (resolved against the manifest's directory).
    Path(PathBuf),
    /// `source = { package, version }`: resolved through `atoll.lock` by the runtime.
    Package(PackageSource),
    /// `source = "oci://HOST/REPOSITORY:TAG"` (or `@sha256:…`): an artifact in an OCI
    /// registry, pulled and locked by digest in `atoll.lock` by the binary; the runtime
    /// reads the locked, verified copy.
    Oci(String),
}

/// `source = { package = "ns:name", version = "^1.2" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSource {
    /// `namespace:name`.
    pub name: String,
    /// A semver requirement, e.g. `^1.2`.
    pub version: String,
}

/// `build = { command, workdir, watch }`.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// A shell command line.
    pub command: String,
    /// Directory to run it in (the app directory unless set).
    pub workdir: PathBuf,
    /// Glob patterns, relative to `workdir`, whose files trigger a rebuild when newer than
    /// `source`.
    pub watch: Vec<String>,
    /// Where `build` is written, for errors.
    pub span: Span,
}

/// `limits = { memory, timeout, max_concurrency }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of linear memory one instance may use (all memories together).
    pub memory: u64,
    /// Wall-clock time one request may take, response body included.
    pub timeout: Duration,
    /// Requests handled at once; beyond this the server answers 503. `None` means the
    /// runtime picks a default sized to the machine.
    pub max_concurrency: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory: DEFAULT_MEMORY_LIMIT,
            timeout: DEFAULT_TIMEOUT,
            max_concurrency: None,
        }
    }
}

/// Settings of the HTTP trigger that apply to the whole app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpSettings {
    /// `[app] hosts`: when set, the app receives only requests whose `Host` is one of
    /// these (lowercase, no trailing dot); when empty, requests for any other host.
    pub hosts: Vec<String>,
}

/// One trigger: what makes the runtime call a component.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Trigger {
    /// `[[trigger.http]]`: a request on a route.
    Http(HttpTrigger),
    /// `[[trigger.cron]]`: a time on a schedule.
    Cron(CronTrigger),
}

impl Trigger {
    /// The name of the component the trigger calls.
    pub fn component(&self) -> &str {
        match self {
            Trigger::Http(h) => &h.component,
            Trigger::Cron(c) => &c.component,
        }
    }

    /// Where the trigger's main key (`route`, `schedule`) is written, for later errors.
    pub fn span(&self) -> Span {
        match self {
            Trigger::Http(h) => h.span.clone(),
            Trigger::Cron(c) => c.span.clone(),
        }
    }
}

/// One `[[trigger.http]]`.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The route pattern.
    pub route: Route,
    /// The component that handles it.
    pub component: String,
    /// Where `route` is written, for later errors.
    pub span: Span,
}

/// One `[[trigger.cron]]`.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    /// When to run, in UTC.
    pub schedule: Schedule,
    /// The component to run.
    pub component: String,
    /// Where `schedule` is written, for later errors.
    pub span: Span,
}

/// A route pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// `/hello` matches exactly `/hello`.
    Exact(String),
    /// `/api/...` matches `/api` and everything below `/api/`. The string is the prefix
    /// without the trailing `/...` (`/api`; the root wildcard `/...` is the empty string).
    Prefix(String),
}

impl Route {
    /// Parse a route as written in the manifest.
    pub fn parse(s: &str) -> Result<Route, String> {
        if !s.starts_with('/') {
            return Err(format!("route `{s}` must start with `/`"));
        }
        if s.contains(['?', '#']) {
            return Err(format!(
                "route `{s}` contains `?` or `#`; routes match the path only"
            ));
        }
        if let Some(prefix) = s.strip_suffix("/...") {
            if prefix.contains("...") {
                return Err(format!("route `{s}` may use `...` only once, at the end"));
            }
            return Ok(Route::Prefix(prefix.trim_end_matches('/').to_string()));
        }
        if s.contains("...") {
            return Err(format!(
                "route `{s}` uses `...` in the middle; a wildcard must be the last segment, as in `/api/...`"
            ));
        }
        let trimmed = if s.len() > 1 {
            s.trim_end_matches('/')
        } else {
            s
        };
        Ok(Route::Exact(trimmed.to_string()))
    }

    /// Does this route match `path` (no query)?
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Route::Exact(p) => {
                path == p
                    || (p.len() > 1
                        && path.len() == p.len() + 1
                        && path.starts_with(p.as_str())
                        && path.ends_with('/'))
            }
            Route::Prefix(p) => {
                p.is_empty()
                    || (path.starts_with(p.as_str())
                        && matches!(path.as_bytes().get(p.len()), None | Some(b'/')))
            }
        }
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Exact(p) => f.write_str(p),
            Route::Prefix(p) => write!(f, "{p}/..."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_as_documented() {
        let exact = Route::parse("/hello").unwrap();
        assert!(exact.matches("/hello"));
        assert!(exact.matches("/hello/"));
        assert!(!exact.matches("/hello/x"));
        assert!(!exact.matches("/hellox"));

        let prefix = Route::parse("/api/...").unwrap();
        assert!(prefix.matches("/api"));
        assert!(prefix.matches("/api/"));
        assert!(prefix.matches("/api/users/1"));
        assert!(!prefix.matches("/apix"));
        assert!(!prefix.matches("/"));

        let root = Route::parse("/...").unwrap();
        assert!(root.matches("/"));
        assert!(root.matches("/anything/at/all"));
        assert_eq!(root.to_string(), "/...");
    }

    #[test]
    fn bad_routes_are_refused() {
        assert!(Route::parse("hello").is_err());
        assert!(Route::parse("/a/.../b").is_err());
        assert!(Route::parse("/a?b").is_err());
    }
}
