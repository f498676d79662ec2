//! The in-memory store: a `BTreeMap` per namespace behind one mutex, for tests, for
//! embedders, and for an operator who wants a scratch store (`type = "memory"`). Data
//! lives as long as the backend (in `atoll up`, the process: reloads keep it) and is
//! lost at exit. No limit beyond [`MAX_VALUE_BYTES`](crate::MAX_VALUE_BYTES) per value:
//! it is RAM.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::backend::{Backend, BackendError, BoxFut, CasVersion, parse_counter};

type Namespaces = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// A [`Backend`] held in process memory. Every call takes one short lock and never
/// waits on anything else, so `increment` and `cas_write` are atomic.
#[derive(Default)]
pub struct MemoryBackend {
    data: Mutex<Namespaces>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Counts only: values may be secrets.
        let data = self.lock();
        f.debug_struct("MemoryBackend")
            .field("namespaces", &data.len())
            .field("keys", &data.values().map(BTreeMap::len).sum::<usize>())
            .finish()
    }
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Namespaces> {
        // No call panics while holding the lock, and each leaves the map whole even if
        // one did: a poisoned lock is still consistent.
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now<'a, T: Send + 'a>(r: Result<T, BackendError>) -> BoxFut<'a, T> {
        Box::pin(std::future::ready(r))
    }
}

impl Backend for MemoryBackend {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        let v = self.lock().get(ns).and_then(|m| m.get(key)).cloned();
        Self::now(Ok(v))
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>) -> BoxFut<'a, ()> {
        self.lock()
            .entry(ns.to_string())
            .or_default()
            .insert(key.to_string(), value);
        Self::now(Ok(()))
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        let mut data = self.lock();
        if let Some(m) = data.get_mut(ns) {
            m.remove(key);
            if m.is_empty() {
                data.remove(ns);
            }
        }
        Self::now(Ok(()))
    }

    fn exists<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, bool> {
        let found = self.lock().get(ns).is_some_and(|m| m.contains_key(key));
        Self::now(Ok(found))
    }

    fn list<'a>(
        &'a self,
        ns: &'a str,
        offset: u64,
        limit: usize,
    ) -> BoxFut<'a, (Vec<String>, bool)> {
        let data = self.lock();
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let mut keys = data.get(ns).into_iter().flat_map(|m| m.keys()).skip(skip);
        let page: Vec<String> = keys.by_ref().take(limit).cloned().collect();
        let more = keys.next().is_some();
        Self::now(Ok((page, more)))
    }

    fn increment<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64) -> BoxFut<'a, i64> {
        let mut data = self.lock();
        let m = data.entry(ns.to_string()).or_default();
        let r = parse_counter(m.get(key).map(Vec::as_slice)).and_then(|current| {
            let next = current
                .checked_add(delta)
                .ok_or_else(|| BackendError::new("the counter would overflow"))?;
            m.insert(key.to_string(), next.to_string().into_bytes());
            Ok(next)
        });
        Self::now(r)
    }

    fn cas_write<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        seen: &'a CasVersion,
        value: Vec<u8>,
    ) -> BoxFut<'a, bool> {
        let expected = match seen.value() {
            Ok(v) => v,
            Err(e) => return Self::now(Err(e)),
        };
        let mut data = self.lock();
        let current = data.get(ns).and_then(|m| m.get(key)).map(Vec::as_slice);
        if current != expected {
            return Self::now(Ok(false));
        }
        data.entry(ns.to_string())
            .or_default()
            .insert(key.to_string(), value);
        Self::now(Ok(true))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn keeps_namespaces_apart_and_pages() {
        let b = MemoryBackend::new();
        b.set("a/default", "k", b"1".to_vec()).await.expect("set");
        b.set("a/default", "l", b"2".to_vec()).await.expect("set");
        b.set("ab/default", "k", b"3".to_vec()).await.expect("set");
        assert_eq!(
            b.get("a/default", "k").await.expect("get"),
            Some(b"1".to_vec())
        );
        assert_eq!(b.get("a/other", "k").await.expect("get"), None);
        assert!(b.exists("ab/default", "k").await.expect("exists"));
        assert!(!b.exists("ab/default", "l").await.expect("exists"));
        let (keys, more) = b.list("a/default", 0, 1).await.expect("list");
        assert_eq!((keys, more), (vec!["k".to_string()], true));
        let (keys, more) = b.list("a/default", 1, 1).await.expect("list");
        assert_eq!((keys, more), (vec!["l".to_string()], false));
        let (keys, more) = b.list("a/default", 5, 10).await.expect("list");
        assert!(keys.is_empty() && !more);
        b.delete("a/default", "k").await.expect("delete");
        b.delete("a/default", "absent").await.expect("delete");
        assert_eq!(b.get("a/default", "k").await.expect("get"), None);
        assert_eq!(
            b.get("ab/default", "k").await.expect("get"),
            Some(b"3".to_vec())
        );
        let shown = format!("{b:?}");
        assert!(shown.contains("keys: 2") && !shown.contains('3'), "{shown}");
    }

    #[tokio::test]
    async fn counters_are_decimal_and_checked() {
        let b = MemoryBackend::new();
        assert_eq!(b.increment("a/x", "n", 5).await.expect("incr"), 5);
        assert_eq!(b.increment("a/x", "n", -7).await.expect("incr"), -2);
        assert_eq!(b.get("a/x", "n").await.expect("get"), Some(b"-2".to_vec()));
        b.set("a/x", "v", b"text".to_vec()).await.expect("set");
        assert!(b.increment("a/x", "v", 1).await.is_err());
        b.set("a/x", "big", i64::MAX.to_string().into_bytes())
            .await
            .expect("set");
        let e = b.increment("a/x", "big", 1).await.expect_err("overflow");
        assert!(e.message().contains("overflow"), "{e}");
        assert_eq!(
            b.get("a/x", "big").await.expect("get"),
            Some(i64::MAX.to_string().into_bytes()),
            "a failed increment changes nothing"
        );
    }

    #[tokio::test]
    async fn concurrent_increments_all_count() {
        let b = Arc::new(MemoryBackend::new());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        b.increment("a/x", "n", 1).await.expect("incr");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(b.get("a/x", "n").await.expect("get"), Some(b"800".to_vec()));
    }

    #[tokio::test]
    async fn compare_and_swap() {
        let b = MemoryBackend::new();
        let (cur, absent) = b.cas_read("a/x", "k").await.expect("read");
        assert_eq!(cur, None);
        assert!(
            b.cas_write("a/x", "k", &absent, b"1".to_vec())
                .await
                .expect("cas")
        );
        assert!(
            !b.cas_write("a/x", "k", &absent, b"2".to_vec())
                .await
                .expect("cas"),
            "no longer absent"
        );
        let (cur, seen) = b.cas_read("a/x", "k").await.expect("read");
        assert_eq!(cur, Some(b"1".to_vec()));
        b.set("a/x", "k", b"changed".to_vec()).await.expect("set");
        assert!(
            !b.cas_write("a/x", "k", &seen, b"x".to_vec())
                .await
                .expect("cas")
        );
        let (_, seen) = b.cas_read("a/x", "k").await.expect("read");
        assert!(
            b.cas_write("a/x", "k", &seen, b"x".to_vec())
                .await
                .expect("cas")
        );
        assert_eq!(b.get("a/x", "k").await.expect("get"), Some(b"x".to_vec()));
        let e = b
            .cas_write("a/x", "k", &CasVersion::Revision(3), b"y".to_vec())
            .await
            .expect_err("foreign version");
        assert!(e.message().contains("another backend"), "{e}");
    }
}
