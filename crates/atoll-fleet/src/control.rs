//! The control plane: a NATS connection and the JetStream buckets of the fleet, created
//! if missing.
//!
//! - `atoll_apps` (KV, history 16): `app.<name>` -> [`AppState`], compare-and-swap only;
//! - `atoll_versions` (KV, history 1): `ver.<app>.<id>` -> [`VersionRecord`], create only;
//! - `atoll_nodes` (KV, history 1, `max_age` [`NODE_EXPIRY`]): `node.<name>` -> [`NodeReport`];
//! - `atoll_blobs` (object store): `sha256-<hex>`, content-addressed, never overwritten.
//!
//! The key-value streams are created directly rather than through
//! `create_key_value`, which first asks for account information in the shape of NATS
//! 2.10+; this way NATS 2.9 servers (Debian's) work too.

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use crate::FleetError;
use crate::records::{AppState, NodeReport, VersionRecord, sha256_hex};

/// How long a node's heartbeat key lives after its last put (the `atoll_nodes` bucket's
/// `max_age`): a node killed without a goodbye is gone from `atoll status` this long
/// after its last heartbeat.
pub const NODE_EXPIRY: Duration = Duration::from_secs(10);
/// How often a node puts its report when nothing changed.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

const APPS: &str = "atoll_apps";
const VERSIONS: &str = "atoll_versions";
const NODES: &str = "atoll_nodes";
const BLOBS: &str = "atoll_blobs";

/// How to reach the control plane.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// `nats://host:port` (several, comma-separated, for a cluster).
    pub url: String,
    /// Replicas of each bucket when it is created (3 on a three-server cluster).
    pub replicas: usize,
}

impl ControlConfig {
    /// One server's URL, buckets with one replica.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            replicas: 1,
        }
    }
}

/// The fleet's buckets on one connection. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    client: async_nats::Client,
    apps: kv::Store,
    versions: kv::Store,
    nodes: kv::Store,
    blobs: object_store::ObjectStore,
}

/// One app's desired state and the revision it was read at (0: no entry yet).
#[derive(Debug, Clone)]
pub struct AppEntry {
    /// The state.
    pub state: AppState,
    /// Its revision, for the next compare-and-swap.
    pub revision: u64,
}

fn unavailable(url: &str, e: impl std::fmt::Display) -> FleetError {
    FleetError::Unavailable {
        url: url.to_string(),
        reason: e.to_string(),
    }
}

impl Control {
    /// Connect once, failing fast (for `deploy`, `status`, `rollback`): a server that
    /// does not answer within `timeout` is "control plane unavailable".
    pub async fn connect(config: &ControlConfig, timeout: Duration) -> Result<Self, FleetError> {
        let url = config.url.as_str();
        let client = tokio::time::timeout(
            timeout,
            async_nats::ConnectOptions::new()
                .connection_timeout(timeout)
                .ping_interval(Duration::from_secs(5))
                .connect(servers(url)),
        )
        .await
        .map_err(|_| unavailable(url, format!("no answer within {timeout:?}")))?
        .map_err(|e| unavailable(url, e))?;
        tokio::time::timeout(timeout, Self::open(client, config))
            .await
            .map_err(|_| unavailable(url, format!("JetStream did not answer within {timeout:?}")))?
    }

    /// Open (creating if missing) the buckets on an established connection.
    pub async fn open(
        client: async_nats::Client,
        config: &ControlConfig,
    ) -> Result<Self, FleetError> {
        let js = jetstream::new(client.clone());
        let url = config.url.as_str();
        let replicas = config.replicas.max(1);
        let apps = kv_bucket(&js, APPS, 16, Duration::ZERO, replicas)
            .await
            .map_err(|e| unavailable(url, e))?;
        let versions = kv_bucket(&js, VERSIONS, 1, Duration::ZERO, replicas)
            .await
            .map_err(|e| unavailable(url, e))?;
        let nodes = kv_bucket(&js, NODES, 1, NODE_EXPIRY, replicas)
            .await
            .map_err(|e| unavailable(url, e))?;
        let blobs = match js.get_object_store(BLOBS).await {
            Ok(b) => b,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: BLOBS.into(),
                    description: Some("atoll fleet: component blobs by sha256".into()),
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable(url, e))?,
        };
        Ok(Self {
            client,
            apps,
            versions,
            nodes,
            blobs,
        })
    }

    /// The connection, for its state.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The desired state of `app`, if any.
    pub async fn app(&self, app: &str) -> Result<Option<AppEntry>, FleetError> {
        let entry = self.apps.entry(app_key(app)).await.map_err(store)?;
        match entry {
            Some(e) if matches!(e.operation, kv::Operation::Put) => Ok(Some(AppEntry {
                state: decode(&e.value, "app state")?,
                revision: e.revision,
            })),
            _ => Ok(None),
        }
    }

    /// Every app's desired state (the anti-entropy pass and `atoll status`).
    pub async fn all_apps(&self) -> Result<Vec<(String, AppEntry)>, FleetError> {
        let mut out = Vec::new();
        for key in self.keys(&self.apps).await? {
            if let Some(name) = key.strip_prefix("app.")
                && let Some(e) = self.app(name).await?
            {
                out.push((name.to_string(), e));
            }
        }
        Ok(out)
    }

    /// Write `state` for `app` if its entry is still at `revision` (0: if it has none).
    /// `Ok(None)`: someone else wrote first; read again.
    pub async fn swap_app(
        &self,
        app: &str,
        state: &AppState,
        revision: u64,
    ) -> Result<Option<u64>, FleetError> {
        let bytes = serde_json::to_vec(state).map_err(|e| FleetError::Store(e.to_string()))?;
        let result = if revision == 0 {
            self.apps
                .create(app_key(app), bytes.into())
                .await
                .map_err(|e| {
                    if matches!(e.kind(), kv::CreateErrorKind::AlreadyExists) {
                        None
                    } else {
                        Some(e.to_string())
                    }
                })
        } else {
            self.apps
                .update(app_key(app), bytes.into(), revision)
                .await
                .map_err(|e| {
                    if matches!(e.kind(), kv::UpdateErrorKind::WrongLastRevision) {
                        None
                    } else {
                        Some(e.to_string())
                    }
                })
        };
        match result {
            Ok(rev) => Ok(Some(rev)),
            Err(None) => Ok(None),
            Err(Some(e)) => Err(FleetError::Store(e)),
        }
    }

    /// A watch of every app's desired state: first the current value of each, then each
    /// change.
    pub async fn watch_apps(&self) -> Result<kv::Watch, FleetError> {
        self.apps.watch_with_history("app.>").await.map_err(store)
    }

    /// Store a version record (create only; an identical record already there is fine).
    /// Returns its id.
    pub async fn put_version(&self, record: &VersionRecord) -> Result<String, FleetError> {
        let (bytes, id) = record.encode();
        let key = version_key(&record.app, &id);
        match self.versions.create(&key, bytes.into()).await {
            Ok(_) => Ok(id),
            Err(e) if matches!(e.kind(), kv::CreateErrorKind::AlreadyExists) => Ok(id),
            Err(e) => Err(FleetError::Store(e.to_string())),
        }
    }

    /// The version record `id` of `app`, checked against its id.
    pub async fn version(&self, app: &str, id: &str) -> Result<VersionRecord, FleetError> {
        let bytes = self
            .versions
            .get(version_key(app, id))
            .await
            .map_err(store)?
            .ok_or_else(|| FleetError::MissingVersion {
                app: app.to_string(),
                version: id.to_string(),
            })?;
        let actual = sha256_hex(&bytes);
        if actual != id {
            return Err(FleetError::Tampered {
                what: format!("the version record {}", crate::records::short(id)),
                expected: id.to_string(),
                actual,
            });
        }
        decode(&bytes, "version record")
    }

    /// Upload a blob under its sha256 unless one of that name and size is there.
    /// Returns whether it was uploaded.
    pub async fn put_blob(&self, sha256: &str, bytes: &[u8]) -> Result<bool, FleetError> {
        let name = blob_name(sha256);
        if let Ok(info) = self.blobs.info(&name).await
            && !info.deleted
            && info.size as u64 == bytes.len() as u64
        {
            return Ok(false);
        }
        let mut reader = bytes;
        self.blobs
            .put(name.as_str(), &mut reader)
            .await
            .map_err(store)?;
        Ok(true)
    }

    /// The bytes of the blob named by `sha256`, read whole (the caller checks them).
    pub async fn blob(&self, sha256: &str) -> Result<Vec<u8>, FleetError> {
        let mut object = self.blobs.get(blob_name(sha256)).await.map_err(|e| {
            FleetError::Store(format!(
                "blob sha256:{}: {e}",
                crate::records::short(sha256)
            ))
        })?;
        let mut out = Vec::new();
        object.read_to_end(&mut out).await.map_err(|e| {
            FleetError::Store(format!(
                "reading blob sha256:{}: {e}",
                crate::records::short(sha256)
            ))
        })?;
        Ok(out)
    }

    /// Put this node's report (its heartbeat).
    pub async fn put_node(&self, report: &NodeReport) -> Result<(), FleetError> {
        let bytes = serde_json::to_vec(report).map_err(|e| FleetError::Store(e.to_string()))?;
        self.nodes
            .put(node_key(&report.name), bytes.into())
            .await
            .map_err(store)?;
        Ok(())
    }

    /// Remove this node's report (a graceful stop).
    pub async fn remove_node(&self, name: &str) -> Result<(), FleetError> {
        self.nodes.purge(node_key(name)).await.map_err(store)
    }

    /// The reports of every node whose heartbeat has not expired.
    pub async fn nodes(&self) -> Result<Vec<NodeReport>, FleetError> {
        let mut out = Vec::new();
        for key in self.keys(&self.nodes).await? {
            if let Some(e) = self.nodes.entry(&key).await.map_err(store)?
                && matches!(e.operation, kv::Operation::Put)
            {
                out.push(decode(&e.value, "node report")?);
            }
        }
        out.sort_by(|a: &NodeReport, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The keys of `bucket`, from the stream's per-subject state, answered by the
    /// stream's leader: no consumer is created (a key listing through a consumer can
    /// wait on a cluster peer that just died, for as long as the cluster takes to mark
    /// it gone). Deleted keys are listed too; their entries are not puts.
    async fn keys(&self, bucket: &kv::Store) -> Result<Vec<String>, FleetError> {
        let prefix = format!("$KV.{}.", bucket.name);
        let mut subjects = bucket
            .stream
            .info_with_subjects(format!("{prefix}>"))
            .await
            .map_err(store)?;
        let mut out = std::collections::BTreeSet::new();
        while let Some(item) = subjects.next().await {
            let (subject, _) = item.map_err(store)?;
            if let Some(key) = subject.strip_prefix(&prefix) {
                out.insert(key.to_string());
            }
        }
        Ok(out.into_iter().collect())
    }
}

async fn kv_bucket(
    js: &jetstream::Context,
    name: &str,
    history: i64,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, String> {
    if let Ok(s) = js.get_key_value(name).await {
        return Ok(s);
    }
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: history,
        max_age,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    js.get_key_value(name).await.map_err(|e| e.to_string())
}

fn store(e: impl std::fmt::Display) -> FleetError {
    FleetError::Store(e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, FleetError> {
    serde_json::from_slice(bytes).map_err(|e| FleetError::Store(format!("a malformed {what}: {e}")))
}

/// The key of `app`'s desired state.
pub fn app_key(app: &str) -> String {
    format!("app.{app}")
}

fn version_key(app: &str, id: &str) -> String {
    format!("ver.{app}.{id}")
}

fn node_key(name: &str) -> String {
    format!("node.{name}")
}

fn blob_name(sha256: &str) -> String {
    format!("sha256-{sha256}")
}

/// The servers of a `--nats` value: one URL, or several separated by commas (a cluster).
pub fn servers(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `name` can be an app or node name in the control plane's keys: ASCII
/// letters, digits, `-` and `_`, at most 128 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
