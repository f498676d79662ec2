//! The set of apps one server serves, and how a request finds its component: by `Host`
//! for apps that declare `hosts`, else by path among the apps that declare none.

use std::collections::HashMap;
use std::sync::Arc;

use atoll_engine::LoadedComponent;
use atoll_manifest::{App, Route};
use tokio::sync::Semaphore;

use crate::router::Router;
use crate::server::HttpConfig;

/// One component as the server sees it: its instances and its concurrency permits.
pub struct ServedComponent {
    pub(crate) app: Arc<str>,
    pub(crate) loaded: LoadedComponent,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) max_concurrency: u32,
}

impl ServedComponent {
    /// The app this component belongs to.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Requests this component is handling right now.
    pub fn in_flight(&self) -> usize {
        self.max_concurrency as usize - self.permits.available_permits()
    }
}

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

/// Every app a server serves, with their components flattened into one list that the
/// routers index into.
pub struct AppSet {
    pub(crate) components: Vec<ServedComponent>,
    default_router: Router,
    host_routers: HashMap<String, Router>,
    names: Vec<String>,
}

impl AppSet {
    /// Build from validated apps and their loaded components (matched by name). Refuses
    /// overlapping routes between apps that would receive the same requests.
    pub fn new(
        apps: Vec<(&App, Vec<LoadedComponent>)>,
        config: &HttpConfig,
    ) -> Result<Self, RouteConflict> {
        let mut components = Vec::new();
        // Per router key (None = no host), the routes claimed so far and by which app.
        let mut claims: HashMap<Option<String>, Vec<(Route, usize, String)>> = HashMap::new();
        let mut names = Vec::new();
        for (app, loaded) in apps {
            let app_name: Arc<str> = app.name.as_str().into();
            names.push(app.name.clone());
            let base = components.len();
            for loaded in loaded {
                let max = loaded
                    .limits()
                    .max_concurrency
                    .unwrap_or(config.default_max_concurrency)
                    .max(1);
                components.push(ServedComponent {
                    app: app_name.clone(),
                    permits: Arc::new(Semaphore::new(max as usize)),
                    max_concurrency: max,
                    loaded,
                });
            }
            let keys: Vec<Option<String>> = if app.http.hosts.is_empty() {
                vec![None]
            } else {
                app.http.hosts.iter().cloned().map(Some).collect()
            };
            for trigger in app.http_triggers() {
                let Some(offset) = components[base..]
                    .iter()
                    .position(|c| &**c.loaded.name() == trigger.component.as_str())
                else {
                    continue;
                };
                for key in &keys {
                    let list = claims.entry(key.clone()).or_default();
                    if let Some((_, _, first)) = list.iter().find(|(r, _, _)| *r == trigger.route) {
                        return Err(RouteConflict {
                            first: first.clone(),
                            second: app.name.clone(),
                            route: trigger.route.to_string(),
                            host: key.clone(),
                        });
                    }
                    list.push((trigger.route.clone(), base + offset, app.name.clone()));
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
            components,
            default_router,
            host_routers,
            names,
        })
    }

    /// The names of the apps, in the order given.
    pub fn app_names(&self) -> &[String] {
        &self.names
    }

    /// The component index for a request to `host` (from `Host` or the URI authority,
    /// any port and letter case) and `path`.
    pub(crate) fn route(&self, host: Option<&str>, path: &str) -> Option<usize> {
        if !self.host_routers.is_empty()
            && let Some(host) = host
        {
            let name = normalize_host(host);
            if let Some(router) = self.host_routers.get(name.as_ref()) {
                return router.route(path);
            }
        }
        self.default_router.route(path)
    }
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
