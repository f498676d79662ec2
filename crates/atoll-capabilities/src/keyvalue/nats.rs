//! NATS JetStream key-value (`nats://host:port`), through `async-nats` (the NATS
//! maintainers' Rust client, which reconnects on its own). One JetStream KV bucket per
//! app and store label, named `atoll_<len(app)>_<app>_<label>` so no two (app, label)
//! pairs share a bucket; keys are hex-encoded, since NATS keys allow only a few
//! characters. `increment` is a compare-and-swap loop on the entry's revision.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use futures_util::StreamExt;

use super::{Backend, BackendError, BoxFut, CasVersion, parse_counter};

/// Rounds of compare-and-swap before `increment` gives up under contention.
const MAX_CAS_ROUNDS: usize = 10_000;
/// Most keys one store may hold for `list-keys` to page through them.
const MAX_LIST: usize = 100_000;

pub(crate) struct NatsBackend {
    url: String,
    js: tokio::sync::OnceCell<jetstream::Context>,
    stores: Mutex<HashMap<String, kv::Store>>,
}

fn failed(e: impl std::fmt::Display) -> BackendError {
    BackendError::new(format!("nats: {e}"))
}

fn bucket_name(ns: &str) -> String {
    let (app, label) = ns.split_once('/').unwrap_or((ns, ""));
    format!("atoll_{}_{app}_{label}", app.len())
}

fn encode(key: &str) -> String {
    // Never empty: NATS refuses empty keys.
    format!("k{}", hex::encode(key.as_bytes()))
}

fn decode(k: &str) -> Option<String> {
    String::from_utf8(hex::decode(k.strip_prefix('k')?).ok()?).ok()
}

impl NatsBackend {
    /// Check the URL; connecting waits for the first use.
    pub(crate) fn new(url: &str) -> Result<Self, BackendError> {
        if !url.starts_with("nats://") && !url.starts_with("tls://") {
            // Not quoted: the URL may hold a password.
            return Err(BackendError::new(
                "the URL must start with nats:// or tls://",
            ));
        }
        Ok(Self {
            url: url.to_string(),
            js: tokio::sync::OnceCell::new(),
            stores: Mutex::new(HashMap::new()),
        })
    }

    async fn store(&self, ns: &str) -> Result<kv::Store, BackendError> {
        if let Some(s) = self.stores.lock().ok().and_then(|m| m.get(ns).cloned()) {
            return Ok(s);
        }
        let js = self
            .js
            .get_or_try_init(|| async {
                let client = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(2))
                    .connect(self.url.as_str())
                    .await
                    .map_err(failed)?;
                Ok::<_, BackendError>(jetstream::new(client))
            })
            .await?;
        let name = bucket_name(ns);
        let store = match js.get_key_value(&name).await {
            Ok(s) => s,
            Err(_) => {
                // The bucket's stream, created directly: `create_key_value` first asks for
                // account info in the 2.10+ shape, which NATS 2.9 servers do not send.
                js.get_or_create_stream(stream::Config {
                    name: format!("KV_{name}"),
                    subjects: vec![format!("$KV.{name}.>")],
                    max_messages_per_subject: 1,
                    discard: stream::DiscardPolicy::New,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    storage: stream::StorageType::File,
                    num_replicas: 1,
                    ..Default::default()
                })
                .await
                .map_err(failed)?;
                js.get_key_value(&name).await.map_err(failed)?
            }
        };
        if let Ok(mut m) = self.stores.lock() {
            m.insert(ns.to_string(), store.clone());
        }
        Ok(store)
    }
}

impl Backend for NatsBackend {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let s = self.store(ns).await?;
            Ok(s.get(encode(key))
                .await
                .map_err(failed)?
                .map(|b| b.to_vec()))
        })
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let s = self.store(ns).await?;
            s.put(encode(key), value.into()).await.map_err(failed)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let s = self.store(ns).await?;
            s.delete(encode(key)).await.map_err(failed)?;
            Ok(())
        })
    }

    fn list<'a>(
        &'a self,
        ns: &'a str,
        offset: u64,
        limit: usize,
    ) -> BoxFut<'a, (Vec<String>, bool)> {
        Box::pin(async move {
            let s = self.store(ns).await?;
            let mut keys = s.keys().await.map_err(failed)?;
            let mut all = Vec::new();
            while let Some(k) = keys.next().await {
                if let Some(k) = decode(&k.map_err(failed)?) {
                    all.push(k);
                }
                if all.len() > MAX_LIST {
                    return Err(BackendError::new(format!(
                        "the store has more than {MAX_LIST} keys to list"
                    )));
                }
            }
            all.sort();
            let skip = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
            let more = all.len() - skip > limit;
            Ok((all.into_iter().skip(skip).take(limit).collect(), more))
        })
    }

    fn increment<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64) -> BoxFut<'a, i64> {
        Box::pin(async move {
            let s = self.store(ns).await?;
            let k = encode(key);
            for _ in 0..MAX_CAS_ROUNDS {
                let entry = s.entry(k.as_str()).await.map_err(failed)?;
                let live = entry
                    .as_ref()
                    .filter(|e| matches!(e.operation, kv::Operation::Put));
                let current = parse_counter(live.map(|e| e.value.as_ref()))?;
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| BackendError::new("the counter would overflow"))?;
                let value = next.to_string().into_bytes().into();
                let written = match &entry {
                    Some(e) => s.update(k.as_str(), value, e.revision).await.is_ok(),
                    None => s.create(k.as_str(), value).await.is_ok(),
                };
                if written {
                    return Ok(next);
                }
            }
            Err(BackendError::new("too much contention on the counter"))
        })
    }

    fn cas_read<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
    ) -> BoxFut<'a, (Option<Vec<u8>>, CasVersion)> {
        Box::pin(async move {
            let s = self.store(ns).await?;
            let entry = s.entry(encode(key)).await.map_err(failed)?;
            let revision = entry.as_ref().map_or(0, |e| e.revision);
            let value = entry
                .filter(|e| matches!(e.operation, kv::Operation::Put))
                .map(|e| e.value.to_vec());
            Ok((value, CasVersion::Revision(revision)))
        })
    }

    fn cas_write<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        seen: &'a CasVersion,
        value: Vec<u8>,
    ) -> BoxFut<'a, bool> {
        Box::pin(async move {
            let revision = seen.revision()?;
            let s = self.store(ns).await?;
            let k = encode(key);
            let written = if revision == 0 {
                s.create(k.as_str(), value.into()).await.is_ok()
            } else {
                s.update(k.as_str(), value.into(), revision).await.is_ok()
            };
            Ok(written)
        })
    }
}
