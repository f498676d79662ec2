//! Route a request path to a component: exact routes first, then the longest matching
//! prefix wildcard.

use std::collections::HashMap;

use atoll_manifest::Route;

/// A compiled routing table; values are indexes into the app's component list.
#[derive(Debug, Default, Clone)]
pub struct Router {
    exact: HashMap<String, usize>,
    /// Sorted longest prefix first, so the most specific wildcard wins.
    prefixes: Vec<(String, usize)>,
}

impl Router {
    /// Build from (route, target) pairs. Duplicates were refused by the manifest.
    pub fn new(routes: impl IntoIterator<Item = (Route, usize)>) -> Self {
        let mut r = Router::default();
        for (route, target) in routes {
            match route {
                Route::Exact(p) => {
                    r.exact.insert(p, target);
                }
                Route::Prefix(p) => r.prefixes.push((p, target)),
            }
        }
        r.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        r
    }

    /// The target for `path` (the URL path, without query), if any.
    pub fn route(&self, path: &str) -> Option<usize> {
        if let Some(t) = self.exact.get(path) {
            return Some(*t);
        }
        if path.len() > 1
            && let Some(stripped) = path.strip_suffix('/')
            && let Some(t) = self.exact.get(stripped)
        {
            return Some(*t);
        }
        self.prefixes
            .iter()
            .find(|(p, _)| {
                p.is_empty()
                    || (path.starts_with(p.as_str())
                        && matches!(path.as_bytes().get(p.len()), None | Some(b'/')))
            })
            .map(|(_, t)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, usize)]) -> Router {
        Router::new(
            routes
                .iter()
                .map(|(r, t)| (Route::parse(r).expect("valid route"), *t)),
        )
    }

    #[test]
    fn most_specific_wins() {
        let r = router(&[
            ("/...", 0),
            ("/api/...", 1),
            ("/api/users/...", 2),
            ("/api/health", 3),
        ]);
        assert_eq!(r.route("/"), Some(0));
        assert_eq!(r.route("/other"), Some(0));
        assert_eq!(r.route("/api"), Some(1));
        assert_eq!(r.route("/api/x"), Some(1));
        assert_eq!(r.route("/apix"), Some(0));
        assert_eq!(r.route("/api/users"), Some(2));
        assert_eq!(r.route("/api/users/7"), Some(2));
        assert_eq!(r.route("/api/health"), Some(3));
        assert_eq!(r.route("/api/health/"), Some(3));
        assert_eq!(r.route("/api/health/x"), Some(1));
    }

    #[test]
    fn no_match_is_none() {
        let r = router(&[("/hello", 0), ("/api/...", 1)]);
        assert_eq!(r.route("/"), None);
        assert_eq!(r.route("/hello/world"), None);
        assert_eq!(r.route("/ap"), None);
    }
}
