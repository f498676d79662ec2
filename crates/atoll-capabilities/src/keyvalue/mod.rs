//! `wasi:keyvalue` (`store`, `atomics`, `batch`) at `0.2.0-draft` (the version wasmtime
//! 48 vendors and wasmCloud guests use) and `0.2.0-draft2` (Spin 3, with compare-and-swap;
//! `draft2.rs`): the host functions, and the [`Backend`]s that hold the data.
//!
//! A component opens only the stores listed in its `key_value_stores`; any other label
//! gives `access-denied` (and a log line). Each store label maps to a backend in the
//! runtime config (`[key_value_store.LABEL]`), else to the embedded redb file under the
//! app's `.atoll/` directory. Keys are namespaced by app and label inside the backend,
//! so two apps sharing one server never see each other's keys. Values written by
//! `increment` are decimal text (`"4000"`), on every backend.
//!
//! Every backend call is bounded by [`OP_TIMEOUT`]: a backend that is down or hung gives
//! the guest `other(...)`, never a request stuck past its deadline. Backends reconnect
//! on their own when the server is back.
//!
//! Cost per instance: nothing (the grants are an `Arc` inside the component's
//! capabilities); opening a bucket is one resource-table entry.

mod backend;
mod draft2;
mod memory;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "postgres")]
mod postgres;
mod redb;
#[cfg(feature = "redis")]
mod redis;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use atoll_manifest::App;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

pub(crate) use backend::parse_counter;
pub use backend::{Backend, BackendError, BoxFut, CasVersion};
pub use memory::MemoryBackend;
pub use registry::Backends;

use crate::error::CapabilityError;
use crate::runtime_config::{RuntimeConfig, StoreConfig};
use crate::trace::HostSpan;
use crate::{CapabilityView, InstanceCapabilities};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue-draft",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => super::KvError,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// Longest a single backend call may take before the guest gets an error.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest key accepted; longer keys are refused before reaching a backend.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value accepted by `set`, so one guest cannot fill a shared backend at once.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Keys returned by one `list-keys` call; the cursor pages through the rest.
pub const LIST_PAGE: usize = 1000;
/// Keys one batch call may name.
pub const MAX_BATCH: usize = 1000;

/// A store a component may open.
pub(crate) struct GrantedStore {
    pub(crate) label: String,
    pub(crate) namespace: Arc<str>,
    pub(crate) backend: Arc<dyn Backend>,
}

/// The stores one component may open.
#[derive(Default)]
pub struct KeyValueGrants {
    pub(crate) stores: Vec<GrantedStore>,
}

impl KeyValueGrants {
    /// Grant `label`, backed by `backend` under the namespace `<app>/<label>`; a label
    /// granted twice keeps the last backend.
    pub(crate) fn grant(&mut self, app: &str, label: String, backend: Arc<dyn Backend>) {
        let namespace: Arc<str> = format!("{app}/{label}").into();
        self.stores.retain(|s| s.label != label);
        self.stores.push(GrantedStore {
            label,
            namespace,
            backend,
        });
    }
}

impl std::fmt::Debug for KeyValueGrants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.stores.iter().map(|s| &s.label))
            .finish()
    }
}

/// An open bucket (the `bucket` resource).
pub struct Bucket {
    /// The store's label, as the component's grant names it (for spans).
    label: Arc<str>,
    namespace: Arc<str>,
    backend: Arc<dyn Backend>,
}

/// The `wasi:keyvalue` error a guest sees. A label the component was not granted is
/// `access-denied` whether or not the runtime knows it (`no-such-store` would tell a
/// guest which stores other components have).
pub enum KvError {
    /// The component was not granted this store.
    AccessDenied,
    /// Anything else: a backend failure, a timeout, a refused key.
    Other(String),
}

impl From<wasmtime::component::ResourceTableError> for KvError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        KvError::Other(e.to_string())
    }
}

impl From<BackendError> for KvError {
    fn from(e: BackendError) -> Self {
        KvError::Other(e.into_message())
    }
}

/// The backends of one app, by label.
pub(crate) struct AppStores {
    by_label: Vec<(String, Arc<dyn Backend>)>,
}

impl AppStores {
    /// The backend of `label`, if some component of the app uses it.
    pub(crate) fn backend(&self, label: &str) -> Option<Arc<dyn Backend>> {
        self.by_label
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, b)| b.clone())
    }
}

/// Configure phase: get a backend from `backends` for every store label some component
/// of `app` uses (the runtime config's `[key_value_store.LABEL]`, else the embedded redb
/// file).
pub(crate) async fn configure_app(
    app: &App,
    runtime: &RuntimeConfig,
    backends: &Backends,
) -> Result<AppStores, CapabilityError> {
    let mut labels: Vec<&String> = app
        .components
        .values()
        .flat_map(|c| c.grants.key_value_stores.iter())
        .collect();
    labels.sort();
    labels.dedup();
    let embedded = StoreConfig::Redb { path: None };
    let mut by_label = Vec::with_capacity(labels.len());
    for label in labels {
        let config = runtime.key_value_stores.get(label).unwrap_or(&embedded);
        let backend = backends.get_or_open(app, label, config).await?;
        by_label.push((label.clone(), backend));
    }
    Ok(AppStores { by_label })
}

/// The view host functions get: the instance's grants and its resource table.
pub(crate) struct KeyValueView<'a> {
    pub(crate) caps: &'a mut InstanceCapabilities,
    pub(crate) table: &'a mut ResourceTable,
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueView<'a>;
}

pub(crate) fn add_to_linker<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn view<T: CapabilityView>(t: &mut T) -> KeyValueView<'_> {
        let (caps, table) = t.capabilities();
        KeyValueView { caps, table }
    }
    store::add_to_linker::<T, HasKeyValue>(linker, view::<T>)?;
    atomics::add_to_linker::<T, HasKeyValue>(linker, view::<T>)?;
    batch::add_to_linker::<T, HasKeyValue>(linker, view::<T>)?;
    draft2::add_to_linker(linker)?;
    Ok(())
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::Other(format!(
            "keys are limited to {MAX_KEY_BYTES} bytes"
        )));
    }
    if key.contains('\0') {
        return Err(KvError::Other("keys may not contain NUL".into()));
    }
    Ok(())
}

/// Run a backend call under [`OP_TIMEOUT`].
async fn bounded<T>(fut: BoxFut<'_, T>) -> Result<T, KvError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(r) => r.map_err(KvError::from),
        Err(_) => Err(KvError::Other(format!(
            "the key-value backend did not answer within {OP_TIMEOUT:?}"
        ))),
    }
}

impl KeyValueView<'_> {
    fn bucket(&self, b: &Resource<Bucket>) -> Result<(Arc<str>, Arc<dyn Backend>), KvError> {
        let b = self.table.get(b)?;
        Ok((b.namespace.clone(), b.backend.clone()))
    }

    /// A span for one backend call on `bucket`, when the instance is traced.
    fn span(&self, op: &'static str, bucket: &Resource<Bucket>) -> Option<HostSpan> {
        let trace = self.caps.trace()?;
        let store = self.table.get(bucket).ok()?.label.clone();
        Some(trace.child(
            format!("key_value {op}"),
            opentelemetry::trace::SpanKind::Client,
            vec![
                opentelemetry::KeyValue::new("db.operation.name", op),
                opentelemetry::KeyValue::new("atoll.key_value.store", store.to_string()),
            ],
        ))
    }

    /// Run one backend call on `bucket` under [`OP_TIMEOUT`], traced, and log its failure.
    async fn call<T>(
        &mut self,
        op: &'static str,
        bucket: &Resource<Bucket>,
        fut: BoxFut<'_, T>,
    ) -> Result<T, KvError> {
        let span = self.span(op, bucket);
        let r = bounded(fut).await;
        if let (Some(span), Err(e)) = (&span, &r) {
            span.fail(match e {
                KvError::AccessDenied => "access denied".to_owned(),
                KvError::Other(m) => m.clone(),
            });
        }
        self.logged(op, r)
    }

    fn log_failure(&self, op: &str, e: &KvError) {
        if let KvError::Other(m) = e {
            let t = &self.caps.grants.target;
            tracing::warn!(app = %t.app, component = %t.component, "key-value {op} failed: {m}");
        }
    }

    /// Log a failed call once, and pass the result on.
    fn logged<T>(&self, op: &str, r: Result<T, KvError>) -> Result<T, KvError> {
        if let Err(e) = &r {
            self.log_failure(op, e);
        }
        r
    }

    fn open_bucket(&mut self, identifier: String) -> Result<Resource<Bucket>, KvError> {
        let granted = self
            .caps
            .grants
            .kv
            .stores
            .iter()
            .find(|s| s.label == identifier);
        match granted {
            Some(s) => {
                let label: Arc<str> = s.label.as_str().into();
                // Recorded or replayed: the backend seen through the instance's tape.
                let backend = match self.caps.tape() {
                    Some(tape) => Arc::new(crate::record::TapeBackend {
                        tape: tape.clone(),
                        store: label.clone(),
                        inner: s.backend.clone(),
                    }) as Arc<dyn Backend>,
                    None => s.backend.clone(),
                };
                Ok(self.table.push(Bucket {
                    label,
                    namespace: s.namespace.clone(),
                    backend,
                })?)
            }
            None => {
                let t = &self.caps.grants.target;
                // The label is the guest's choice: it may hold a secret it can read.
                let label = t.quote(&identifier);
                self.caps.deny(
                    "key_value",
                    &format!("key-value store `{label}`"),
                    &format!(
                        "the component may not open key-value store `{label}`; add it to key_value_stores"
                    ),
                );
                Err(KvError::AccessDenied)
            }
        }
    }

    async fn op_get(
        &mut self,
        bucket: &Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KvError> {
        check_key(&key)?;
        let (ns, backend) = self.bucket(bucket)?;
        self.call("get", bucket, backend.get(&ns, &key)).await
    }

    async fn op_set(
        &mut self,
        bucket: &Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        check_key(&key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::Other(format!(
                "values are limited to {MAX_VALUE_BYTES} bytes"
            )));
        }
        let (ns, backend) = self.bucket(bucket)?;
        self.call("set", bucket, backend.set(&ns, &key, value))
            .await
    }

    async fn op_delete(&mut self, bucket: &Resource<Bucket>, key: String) -> Result<(), KvError> {
        check_key(&key)?;
        let (ns, backend) = self.bucket(bucket)?;
        self.call("delete", bucket, backend.delete(&ns, &key)).await
    }

    async fn op_exists(&mut self, bucket: &Resource<Bucket>, key: String) -> Result<bool, KvError> {
        check_key(&key)?;
        let (ns, backend) = self.bucket(bucket)?;
        self.call("exists", bucket, backend.exists(&ns, &key)).await
    }

    async fn op_list(
        &mut self,
        bucket: &Resource<Bucket>,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<String>, bool), KvError> {
        let (ns, backend) = self.bucket(bucket)?;
        self.call("list-keys", bucket, backend.list(&ns, offset, limit))
            .await
    }

    async fn op_increment(
        &mut self,
        bucket: &Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, KvError> {
        check_key(&key)?;
        let (ns, backend) = self.bucket(bucket)?;
        self.call("increment", bucket, backend.increment(&ns, &key, delta))
            .await
    }
}

impl store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvError> {
        self.open_bucket(identifier)
    }

    fn convert_error(&mut self, err: KvError) -> wasmtime::Result<store::Error> {
        Ok(match err {
            KvError::AccessDenied => store::Error::AccessDenied,
            KvError::Other(m) => store::Error::Other(m),
        })
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KvError> {
        self.op_get(&bucket, key).await
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KvError> {
        self.op_set(&bucket, key, value).await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KvError> {
        self.op_delete(&bucket, key).await
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, KvError> {
        self.op_exists(&bucket, key).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KvError> {
        let offset = cursor.unwrap_or(0);
        let (keys, more) = self.op_list(&bucket, offset, LIST_PAGE).await?;
        let next = offset.saturating_add(keys.len() as u64);
        Ok(store::KeyResponse {
            keys,
            cursor: more.then_some(next),
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, KvError> {
        let delta = i64::try_from(delta)
            .map_err(|_| KvError::Other("the increment is too large".into()))?;
        let v = self.op_increment(&bucket, key, delta).await?;
        u64::try_from(v).map_err(|_| KvError::Other("the counter is negative".into()))
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvError> {
        if keys.len() > MAX_BATCH {
            return Err(KvError::Other(format!(
                "a batch is limited to {MAX_BATCH} keys"
            )));
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let v = self.op_get(&bucket, key.clone()).await?;
            out.push(v.map(|v| (key, v)));
        }
        Ok(out)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvError> {
        if key_values.len() > MAX_BATCH {
            return Err(KvError::Other(format!(
                "a batch is limited to {MAX_BATCH} keys"
            )));
        }
        for (key, value) in key_values {
            self.op_set(&bucket, key, value).await?;
        }
        Ok(())
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), KvError> {
        if keys.len() > MAX_BATCH {
            return Err(KvError::Other(format!(
                "a batch is limited to {MAX_BATCH} keys"
            )));
        }
        for key in keys {
            self.op_delete(&bucket, key).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_before_any_backend() {
        assert!(check_key("user/42").is_ok());
        assert!(
            check_key("../other-app/default/k").is_ok(),
            "namespaced, so harmless"
        );
        assert!(matches!(check_key("a\0b"), Err(KvError::Other(m)) if m.contains("NUL")));
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(check_key(&long), Err(KvError::Other(m)) if m.contains("1024")));
    }

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_counter(None).ok(), Some(0));
        assert_eq!(parse_counter(Some(b"4000")).ok(), Some(4000));
        assert_eq!(parse_counter(Some(b"-5")).ok(), Some(-5));
        assert!(parse_counter(Some(b"v1")).is_err());
    }

    /// The embedded backend, for real, in a temp dir: namespaces, paging, counters, CAS.
    #[tokio::test]
    async fn the_embedded_backend_keeps_namespaces_apart() {
        let dir = tempfile::tempdir().expect("temp");
        let b = redb::RedbBackend::open(&dir.path().join("kv.redb"))
            .await
            .expect("open");
        b.set("a/default", "k", b"1".to_vec()).await.expect("set");
        b.set("a/default", "l", b"2".to_vec()).await.expect("set");
        b.set("ab/default", "k", b"3".to_vec()).await.expect("set");
        assert_eq!(
            b.get("a/default", "k").await.expect("get"),
            Some(b"1".to_vec())
        );
        assert_eq!(b.get("a/other", "k").await.expect("get"), None);
        let (keys, more) = b.list("a/default", 0, 1).await.expect("list");
        assert_eq!((keys, more), (vec!["k".to_string()], true));
        let (keys, more) = b.list("a/default", 1, 1).await.expect("list");
        assert_eq!((keys, more), (vec!["l".to_string()], false));
        assert_eq!(b.increment("a/default", "n", 5).await.expect("incr"), 5);
        assert_eq!(b.increment("a/default", "n", -7).await.expect("incr"), -2);
        let (cur, seen) = b.cas_read("a/default", "k").await.expect("read");
        assert_eq!(cur, Some(b"1".to_vec()));
        b.set("a/default", "k", b"changed".to_vec())
            .await
            .expect("set");
        assert!(
            !b.cas_write("a/default", "k", &seen, b"x".to_vec())
                .await
                .expect("cas")
        );
        let (_, seen) = b.cas_read("a/default", "k").await.expect("read");
        assert!(
            b.cas_write("a/default", "k", &seen, b"x".to_vec())
                .await
                .expect("cas")
        );
        assert_eq!(
            b.get("a/default", "k").await.expect("get"),
            Some(b"x".to_vec())
        );
    }
}
