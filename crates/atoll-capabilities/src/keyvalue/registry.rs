//! [`Backends`]: the process's open key-value backends, keyed by what they were opened
//! from, so every app load that names the same store gets the same backend.
//!
//! Why: a reload configures the new version while the old one still serves. redb locks
//! its file, so opening it a second time fails (`DatabaseAlreadyOpen`); and a Redis,
//! PostgreSQL or NATS client per load would mean new connections for nothing. Keys: a
//! redb file by its canonical absolute path (the default `<app>/.atoll/kv.redb`
//! included, so two labels, two loads or two apps naming one file share it), a server by
//! its URL as written, and `memory` by itself (one in-memory store; namespaces keep apps
//! and labels apart in it as in any backend).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atoll_manifest::App;

use super::backend::{Backend, BackendError};
use super::memory::MemoryBackend;
use crate::error::CapabilityError;
use crate::runtime_config::StoreConfig;

/// What a backend was opened from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Redb(PathBuf),
    Memory,
    Redis(String),
    Postgres(String),
    Nats(String),
}

/// The process-wide registry of open key-value backends. Cheap to clone (one `Arc`);
/// clones share the backends. Create one per process (`Backends::default()`) and pass it
/// to every [`configure`](crate::configure): loads of the same app, and apps that name
/// the same store, then share one `Arc<dyn Backend>`, so a reload reuses the redb handle
/// and the connections instead of reopening them.
///
/// A backend stays open as long as the registry holds it, even after every app using
/// it is gone; [`Backends::release_unused`] closes those.
#[derive(Clone, Default)]
pub struct Backends {
    open: Arc<tokio::sync::Mutex<HashMap<Key, Arc<dyn Backend>>>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The count only: keys hold URLs, which may hold passwords.
        let mut d = f.debug_struct("Backends");
        match self.open.try_lock() {
            Ok(open) => d.field("open", &open.len()),
            Err(_) => d.field("open", &"(being changed)"),
        };
        d.finish()
    }
}

impl Backends {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drop the backends no configured app uses any more (only the registry holds
    /// them), closing their files and connections; returns how many. For a process that
    /// unloads apps; a reload does not need it.
    ///
    /// A redb file can stay locked a moment longer, while a store call that timed out
    /// still runs on the blocking pool.
    pub async fn release_unused(&self) -> usize {
        let mut open = self.open.lock().await;
        let before = open.len();
        open.retain(|_, b| Arc::strong_count(b) > 1);
        before - open.len()
    }

    /// The backend for `config` (`label`'s store in `app`), opened on first use.
    pub(crate) async fn get_or_open(
        &self,
        app: &App,
        label: &str,
        config: &StoreConfig,
    ) -> Result<Arc<dyn Backend>, CapabilityError> {
        self.open(label, config, &app.dir).await
    }

    /// The backend for `config`, opened on first use and shared with every later caller
    /// that asks for the same file or server. `label` names the store in errors; a redb
    /// store without a path lives in `<dir>/.atoll/kv.redb`.
    pub async fn open(
        &self,
        label: &str,
        config: &StoreConfig,
        dir: &Path,
    ) -> Result<Arc<dyn Backend>, CapabilityError> {
        let fail = |e: BackendError| CapabilityError::KeyValue {
            label: label.to_string(),
            backend: config.to_string(),
            reason: e.into_message(),
        };
        let key = match config {
            StoreConfig::Redb { path } => {
                let path = match path {
                    Some(p) => p.clone(),
                    None => dir.join(".atoll").join("kv.redb"),
                };
                Key::Redb(redb_key(&path).map_err(fail)?)
            }
            StoreConfig::Memory {} => Key::Memory,
            StoreConfig::Redis { url } => Key::Redis(url.clone()),
            StoreConfig::Postgres { url } => Key::Postgres(url.clone()),
            StoreConfig::Nats { url } => Key::Nats(url.clone()),
        };
        let mut open = self.open.lock().await;
        if let Some(b) = open.get(&key) {
            return Ok(b.clone());
        }
        let backend: Arc<dyn Backend> = match &key {
            Key::Redb(path) => Arc::new(super::redb::RedbBackend::open(path).await.map_err(fail)?),
            Key::Memory => Arc::new(MemoryBackend::new()),
            #[cfg(feature = "redis")]
            Key::Redis(url) => Arc::new(super::redis::RedisBackend::new(url).map_err(fail)?),
            #[cfg(not(feature = "redis"))]
            Key::Redis(_) => return Err(not_built(label, "redis")),
            #[cfg(feature = "postgres")]
            Key::Postgres(url) => {
                Arc::new(super::postgres::PostgresBackend::new(url).map_err(fail)?)
            }
            #[cfg(not(feature = "postgres"))]
            Key::Postgres(_) => return Err(not_built(label, "postgres")),
            #[cfg(feature = "nats")]
            Key::Nats(url) => Arc::new(super::nats::NatsBackend::new(url).map_err(fail)?),
            #[cfg(not(feature = "nats"))]
            Key::Nats(_) => return Err(not_built(label, "nats")),
        };
        open.insert(key, backend.clone());
        Ok(backend)
    }
}

/// `label` names a store whose client this build left out.
#[cfg(not(all(feature = "redis", feature = "postgres", feature = "nats")))]
fn not_built(label: &str, feature: &'static str) -> CapabilityError {
    CapabilityError::NotBuilt {
        label: label.to_string(),
        feature,
    }
}

/// The canonical absolute path of a redb file that may not exist yet: its directory is
/// created, then resolved (symlinks included); the file itself too if it exists.
fn redb_key(path: &Path) -> Result<PathBuf, BackendError> {
    if let Ok(p) = path.canonicalize() {
        return Ok(p);
    }
    let name = path
        .file_name()
        .ok_or_else(|| BackendError::new(format!("{} does not name a file", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| BackendError::new(format!("cannot create {}: {e}", dir.display())))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| BackendError::new(format!("cannot resolve {}: {e}", dir.display())))?;
    Ok(dir.join(name))
}
