//! The HTTP trigger's index over a snapshot of the live apps: how a request finds its
//! component, by `Host` for apps that declare `hosts`, else by path among the apps that
//! declare none; and for each routed component its `ProxyPre` (the typed view of the
//! `incoming-handler` export). Rebuilt from every new snapshot of
//! [`LiveApps`](atoll_runtime::LiveApps); [`RouteTable::build`] is also the HTTP
//! trigger's check of a candidate set before it goes live.

use std::collections::HashMap;
use std::sync::Arc;

use atoll_engine::InstanceState;
use atoll_manifest::{Diagnostic, Route};
use atoll_runtime::{ServedComponent, Snapshot, source_diagnostic};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::router::Router;

/// The export every component behind an HTTP route must have.
const INCOMING_HANDLER: &str = "wasi:http/incoming-handler@0.2.";

/// Two apps claim the same route for the same host (or both for any host).
#[derive(Debug, thiserror::Error)]
#[error(
    "apps `{first}` and `{second}` both serve route `{route}`{}; give one of them `hosts = [...]` under [app], or change a route",
    host.as_ref().map(|h| format!(" on host `{h}`")).unwrap_or_default()
)]
pub struct RouteConflict {
    /// The app that claimed the route first.
    pub first: String,
    /// The app that claimed it again.
    pub second: String,
    /// The route.
    pub route: String,
    /// The host, when both apps declare it.
    pub host: Option<String>,
}

/// Why a set of apps cannot be served over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Two apps claim the same route.
    #[error(transparent)]
    Conflict(#[from] RouteConflict),
    /// A component behind a route cannot serve HTTP (located at its `source`).
    #[error("{0}")]
    NotHttp(Box<Diagnostic>),
}

impl RouteError {
    /// The located diagnostic, when the problem is a component's.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            RouteError::NotHttp(d) => Some(d),
            RouteError::Conflict(_) => None,
        }
    }
}

/// A routed component: its admission state and instances, and its HTTP view.
pub(crate) struct Target {
    pub(crate) component: Arc<ServedComponent>,
    pub(crate) proxy: ProxyPre<InstanceState>,
    /// The manifest of its app, for recordings.
    pub(crate) manifest: Arc<std::path::Path>,
}

/// Routes over one snapshot of the live apps.
pub struct RouteTable {
    pub(crate) targets: Vec<Arc<Target>>,
    /// Per route (what the routers point at): its target and the route as the manifest
    /// wrote it (the `http_route` of the metrics).
    routes: Vec<(usize, Arc<str>)>,
    default_router: Router,
    host_routers: HashMap<String, Router>,
    generation: u64,
}

impl RouteTable {
    /// Index `snapshot`: check that every component behind a route exports
    /// `wasi:http/incoming-handler` (a located diagnostic if not), and refuse
    /// overlapping routes between apps that would receive the same requests.
    pub fn build(snapshot: &Snapshot) -> Result<Self, RouteError> {
        let mut targets: Vec<Arc<Target>> = Vec::new();
        let mut routes: Vec<(usize, Arc<str>)> = Vec::new();
        // Per router key (None = no host), the routes claimed so far and by which app.
        let mut claims: HashMap<Option<String>, Vec<(Route, usize, String)>> = HashMap::new();
        for loaded in snapshot.apps() {
            let app = loaded.app();
            let keys: Vec<Option<String>> = if app.http.hosts.is_empty() {
                vec![None]
            } else {
                app.http.hosts.iter().cloned().map(Some).collect()
            };
            // One target per component, however many routes reach it.
            let mut index_of: HashMap<&str, usize> = HashMap::new();
            for trigger in app.http_triggers() {
                let name = trigger.component.as_str();
                let index = match index_of.get(name) {
                    Some(i) => *i,
                    None => {
                        let (Some(component), Some(manifest)) =
                            (loaded.component(name), app.components.get(name))
                        else {
                            // The manifest checked that every trigger names a component.
                            continue;
                        };
                        let proxy = http_view(app, manifest, component)?;
                        targets.push(Arc::new(Target {
                            component: component.clone(),
                            proxy,
                            manifest: app.manifest_path().into(),
                        }));
                        index_of.insert(name, targets.len() - 1);
                        targets.len() - 1
                    }
                };
                routes.push((index, trigger.route.to_string().into()));
                let slot = routes.len() - 1;
                for key in &keys {
                    let list = claims.entry(key.clone()).or_default();
                    if let Some((_, _, first)) = list.iter().find(|(r, _, _)| *r == trigger.route) {
                        return Err(RouteConflict {
                            first: first.clone(),
                            second: app.name.clone(),
                            route: trigger.route.to_string(),
                            host: key.clone(),
                        }
                        .into());
                    }
                    list.push((trigger.route.clone(), slot, app.name.clone()));
                }
            }
        }
        let mut default_router = Router::default();
        let mut host_routers = HashMap::new();
        for (key, routes) in claims {
            let router = Router::new(routes.into_iter().map(|(r, i, _)| (r, i)));
            match key {
                None => default_router = router,
                Some(host) => {
                    host_routers.insert(host, router);
                }
            }
        }
        Ok(Self {
            targets,
            routes,
            default_router,
            host_routers,
            generation: snapshot.generation(),
        })
    }

    /// The generation of the snapshot this table indexes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The target for a request to `host` (from `Host` or the URI authority, any port
    /// and letter case) and `path`, with the route that matched.
    pub(crate) fn route(
        &self,
        host: Option<&str>,
        path: &str,
    ) -> Option<(&Arc<Target>, &Arc<str>)> {
        let index = match host {
            Some(host) if !self.host_routers.is_empty() => {
                let name = normalize_host(host);
                match self.host_routers.get(name.as_ref()) {
                    Some(router) => router.route(path),
                    None => self.default_router.route(path),
                }
            }
            _ => self.default_router.route(path),
        }?;
        let (target, route) = self.routes.get(index)?;
        Some((self.targets.get(*target)?, route))
    }
}

/// The component's `incoming-handler` as a `ProxyPre`, or a diagnostic at its `source`
/// saying what it exports instead.
fn http_view(
    app: &atoll_manifest::App,
    manifest: &atoll_manifest::Component,
    component: &ServedComponent,
) -> Result<ProxyPre<InstanceState>, RouteError> {
    let loaded = component.loaded();
    let shown = &manifest.source_written;
    let name = &manifest.name;
    if !loaded.exports_starting_with(INCOMING_HANDLER) {
        let has = loaded.what_it_exports();
        return Err(RouteError::NotHttp(Box::new(
            source_diagnostic(
                app,
                manifest,
                format!(
                    "component `{name}` (`{shown}`) does not export wasi:http/incoming-handler, so it cannot serve HTTP; {has}"
                ),
            )
            .help("build it for the wasi:http/proxy world (for Rust: `wstd::http_server` or `wasip2::http::proxy::export!`), or give it a `[[trigger.cron]]` instead of a route if it is a command"),
        )));
    }
    ProxyPre::new(loaded.instance_pre().clone()).map_err(|e| {
        RouteError::NotHttp(Box::new(source_diagnostic(
            app,
            manifest,
            format!(
                "component `{name}` does not export a usable wasi:http/incoming-handler: {}",
                atoll_engine::error_chain(&e)
            ),
        )))
    })
}

/// `Shop.Example.com.:8080` -> `shop.example.com`; allocation only when the case differs.
fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let without_port = match host.rfind(':') {
        // Keep IPv6 literals (`[::1]`) intact apart from a port after the bracket.
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    let trimmed = without_port.trim_end_matches('.');
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn hosts_normalize() {
        assert_eq!(normalize_host("shop.example.com"), "shop.example.com");
        assert_eq!(normalize_host("Shop.Example.COM:8080"), "shop.example.com");
        assert_eq!(normalize_host("shop.example.com."), "shop.example.com");
        assert_eq!(normalize_host("[::1]:3000"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
    }
}
