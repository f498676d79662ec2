//! `wasi:keyvalue@0.2.0-draft2` (Spin 3's version): the same stores and backends as
//! `0.2.0-draft`, with string cursors, signed increments, batch `get-many` returning
//! every key, and compare-and-swap (`cas` + `swap`).

use wasmtime::component::{Linker, Resource};

use super::{
    Bucket, CasVersion, HasKeyValue, KeyValueView, KvError, LIST_PAGE, MAX_BATCH, MAX_VALUE_BYTES,
    bounded, check_key,
};
use crate::CapabilityView;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue-draft2",
        world: "wasi:keyvalue/imports",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::keyvalue::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
        trappable_error_type: {
            "wasi:keyvalue/store.error" => crate::keyvalue::KvError,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};

/// A `cas` handle: a key as it was read, for a later `swap`.
pub struct Cas {
    bucket: Bucket,
    key: String,
    current: Option<Vec<u8>>,
    seen: CasVersion,
}

pub(crate) fn add_to_linker<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn view<T: CapabilityView>(t: &mut T) -> KeyValueView<'_> {
        let (caps, table) = t.capabilities();
        KeyValueView { caps, table }
    }
    store::add_to_linker::<T, HasKeyValue>(linker, view::<T>)?;
    atomics::add_to_linker::<T, HasKeyValue>(linker, view::<T>)?;
    batch::add_to_linker::<T, HasKeyValue>(linker, view::<T>)?;
    Ok(())
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
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, KvError> {
        let offset = match cursor {
            None => 0,
            Some(c) => c
                .parse::<u64>()
                .map_err(|_| KvError::Other("not a cursor this store returned".into()))?,
        };
        let (keys, more) = self.op_list(&bucket, offset, LIST_PAGE).await?;
        let next = offset.saturating_add(keys.len() as u64);
        Ok(store::KeyResponse {
            keys,
            cursor: more.then(|| next.to_string()),
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
        delta: i64,
    ) -> Result<i64, KvError> {
        self.op_increment(&bucket, key, delta).await
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        if value.len() > MAX_VALUE_BYTES {
            let e = store::Error::Other(format!("values are limited to {MAX_VALUE_BYTES} bytes"));
            return Ok(Err(atomics::CasError::StoreError(e)));
        }
        let c = self.table.delete(cas)?;
        let backend = c.bucket.backend.clone();
        let ns = c.bucket.namespace.clone();
        match bounded(backend.cas_write(&ns, &c.key, &c.seen, value)).await {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // Changed since it was read: hand the guest a fresh handle to retry with.
                match bounded(backend.cas_read(&ns, &c.key)).await {
                    Ok((current, seen)) => {
                        let fresh = self.table.push(Cas {
                            bucket: c.bucket,
                            key: c.key,
                            current,
                            seen,
                        })?;
                        Ok(Err(atomics::CasError::CasFailed(fresh)))
                    }
                    Err(e) => Ok(Err(atomics::CasError::StoreError(self.convert(e)))),
                }
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(self.convert(e)))),
        }
    }
}

impl KeyValueView<'_> {
    fn convert(&mut self, e: KvError) -> store::Error {
        self.log_failure("swap", &e);
        match e {
            KvError::AccessDenied => store::Error::AccessDenied,
            KvError::Other(m) => store::Error::Other(m),
        }
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Resource<Cas>, KvError> {
        check_key(&key)?;
        let b = self.table.get(&bucket)?;
        let handle = Bucket {
            label: b.label.clone(),
            namespace: b.namespace.clone(),
            backend: b.backend.clone(),
        };
        let (current, seen) = bounded(handle.backend.cas_read(&handle.namespace, &key)).await?;
        Ok(self.table.push(Cas {
            bucket: handle,
            key,
            current,
            seen,
        })?)
    }

    async fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.table.get(&cas)?.current.clone())
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, KvError> {
        if keys.len() > MAX_BATCH {
            return Err(KvError::Other(format!(
                "a batch is limited to {MAX_BATCH} keys"
            )));
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let v = self.op_get(&bucket, key.clone()).await?;
            out.push((key, v));
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
