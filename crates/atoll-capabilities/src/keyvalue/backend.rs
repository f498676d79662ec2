//! The [`Backend`] trait: where a key-value store's data lives. Public, so an embedder
//! can supply its own store; atoll's own are redb, memory, and (behind Cargo features)
//! Redis, PostgreSQL and NATS.

use std::future::Future;
use std::pin::Pin;

/// A failure of a backend call, as the guest will see it (`other(message)`).
///
/// The message must never contain a stored value or a secret (a password in a URL):
/// the guest sees it, and the host logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    message: String,
}

impl BackendError {
    /// An error with this message (see the type's rule on what it may contain).
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message, owned.
    pub fn into_message(self) -> String {
        self.message
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}

impl From<String> for BackendError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for BackendError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// The future a [`Backend`] call returns.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// What a compare-and-swap compares against: what [`Backend::cas_read`] saw, handed
/// back to [`Backend::cas_write`] of the same backend.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CasVersion {
    /// The value read (`None`: absent). Used by backends without revisions; the write
    /// compares values.
    Value(Option<Vec<u8>>),
    /// The entry's revision (0: absent). Used by backends with revisions (NATS KV).
    Revision(u64),
}

impl CasVersion {
    /// The value this version holds, for backends that compare values; an error if it
    /// came from a backend with revisions (which the host never does: a bucket keeps
    /// one backend).
    pub fn value(&self) -> Result<Option<&[u8]>, BackendError> {
        match self {
            CasVersion::Value(v) => Ok(v.as_deref()),
            _ => Err(BackendError::new("a version from another backend")),
        }
    }

    /// The revision this version holds, for backends with revisions; an error if it
    /// came from a backend that compares values.
    pub fn revision(&self) -> Result<u64, BackendError> {
        match self {
            CasVersion::Revision(r) => Ok(*r),
            _ => Err(BackendError::new("a version from another backend")),
        }
    }
}

/// Where a key-value store's data lives. One value serves every store label configured
/// to it, for every app: an `Arc<dyn Backend>` is shared, and calls come concurrently
/// from many instances.
///
/// **Namespaces.** Every call names a namespace `ns`, `<app>/<label>` (app and label
/// names are lowercase ASCII letters, digits, `-` and `_`; an embedder's own may be
/// anything without NUL). An implementation must keep namespaces strictly apart: no
/// call in one namespace may read, list, change or delete a key of another, including
/// one whose name is a prefix of it (`a/default` and `ab/default`).
///
/// **What the caller checks.** Keys are at most [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES)
/// bytes and contain no NUL; values written by `set` are at most
/// [`MAX_VALUE_BYTES`](crate::MAX_VALUE_BYTES). A guest cannot reach a backend with
/// anything else, and a backend may rely on it.
///
/// **Timeouts.** The host bounds every call by [`OP_TIMEOUT`](crate::OP_TIMEOUT) and
/// drops the future when it expires, so an implementation needs no timeout of its own
/// for the guest's sake; it must, however, stay usable after a future is dropped at any
/// `await` (a half-done call may not poison later ones), and should make its own
/// reconnects bounded so one stalled server does not fail every later call.
///
/// **Errors** are [`BackendError`]s: messages the guest sees, which never contain a
/// value or a secret.
///
/// **Counters.** `increment` stores decimal text (`"4000"`), so a counter reads back the
/// same through `get` on every backend.
pub trait Backend: Send + Sync {
    /// The value of `key`, if present.
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>>;

    /// Set `key` to `value`, replacing any value.
    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>) -> BoxFut<'a, ()>;

    /// Remove `key`; removing an absent key is not an error.
    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, ()>;

    /// Whether `key` is present. By default a `get`.
    fn exists<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, bool> {
        Box::pin(async move { Ok(self.get(ns, key).await?.is_some()) })
    }

    /// Up to `limit` keys of `ns` in ascending byte order, skipping the first `offset`;
    /// and whether more follow. The host pages with `offset`, so the order must be
    /// stable while the keys do not change.
    fn list<'a>(
        &'a self,
        ns: &'a str,
        offset: u64,
        limit: usize,
    ) -> BoxFut<'a, (Vec<String>, bool)>;

    /// Add `delta` to the decimal number stored at `key` (0 if absent) and return the
    /// result. Atomic: concurrent increments of one key, from any number of callers and
    /// processes sharing the backend, all count. A value that is not a decimal number,
    /// or a result that overflows `i64`, is an error and changes nothing.
    fn increment<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64) -> BoxFut<'a, i64>;

    /// Read `key` for a later [`Backend::cas_write`]: its value, and what the write
    /// must find unchanged. By default the value itself is the version
    /// ([`CasVersion::Value`]); backends with revisions override this.
    fn cas_read<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFut<'a, (Option<Vec<u8>>, CasVersion)> {
        let read = self.get(ns, key);
        Box::pin(async move {
            let v = read.await?;
            Ok((v.clone(), CasVersion::Value(v)))
        })
    }

    /// Write `value` only if `key` is still as [`Backend::cas_read`] saw it (`seen`;
    /// for an absent key: still absent); `false`, and nothing written, if it changed.
    /// Atomic: the comparison and the write are one step against every other writer.
    fn cas_write<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        seen: &'a CasVersion,
        value: Vec<u8>,
    ) -> BoxFut<'a, bool>;
}

/// Parse a stored counter (absent: 0).
pub(crate) fn parse_counter(bytes: Option<&[u8]>) -> Result<i64, BackendError> {
    match bytes {
        None => Ok(0),
        Some(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .ok_or_else(|| BackendError::new("the value is not a decimal counter")),
    }
}
