//! The embedded store: one redb file (by default `<app>/.atoll/kv.redb`), no server.
//! redb is an ACID, pure-Rust key-value file store that is actively maintained; write
//! transactions are serialized, which makes `increment` atomic. Its calls block, so they
//! run on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Backend, BackendError, BoxFut, CasVersion, parse_counter};

/// One table; keys are `namespace NUL key` (keys may not contain NUL).
const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("atoll_kv");

pub(crate) struct RedbBackend {
    db: Arc<Database>,
}

/// redb's errors as [`BackendError`]s (their messages name no values).
trait OrFail<T> {
    fn or_fail(self) -> Result<T, BackendError>;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self) -> Result<T, BackendError> {
        self.map_err(|e| BackendError::new(e.to_string()))
    }
}

fn full_key(ns: &str, key: &str) -> String {
    format!("{ns}\0{key}")
}

impl RedbBackend {
    pub(crate) async fn open(path: &Path) -> Result<Self, BackendError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    BackendError::new(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let db = Database::create(&path)
                .map_err(|e| BackendError::new(format!("cannot open {}: {e}", path.display())))?;
            let txn = db.begin_write().or_fail()?;
            txn.open_table(TABLE).or_fail()?;
            txn.commit().or_fail()?;
            Ok(Self { db: Arc::new(db) })
        })
        .await
        .map_err(|e| BackendError::new(format!("the store's open task failed: {e}")))?
    }

    fn run<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&Database) -> Result<T, BackendError> + Send + 'static,
    ) -> BoxFut<'a, T> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&db))
                .await
                .map_err(|e| BackendError::new(format!("the store task failed: {e}")))?
        })
    }
}

impl Backend for RedbBackend {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        let k = full_key(ns, key);
        self.run(move |db| {
            let txn = db.begin_read().or_fail()?;
            let table = txn.open_table(TABLE).or_fail()?;
            Ok(table.get(k.as_str()).or_fail()?.map(|v| v.value().to_vec()))
        })
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>) -> BoxFut<'a, ()> {
        let k = full_key(ns, key);
        self.run(move |db| {
            let txn = db.begin_write().or_fail()?;
            {
                let mut table = txn.open_table(TABLE).or_fail()?;
                table.insert(k.as_str(), value.as_slice()).or_fail()?;
            }
            txn.commit().or_fail()?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        let k = full_key(ns, key);
        self.run(move |db| {
            let txn = db.begin_write().or_fail()?;
            {
                let mut table = txn.open_table(TABLE).or_fail()?;
                table.remove(k.as_str()).or_fail()?;
            }
            txn.commit().or_fail()?;
            Ok(())
        })
    }

    fn list<'a>(
        &'a self,
        ns: &'a str,
        offset: u64,
        limit: usize,
    ) -> BoxFut<'a, (Vec<String>, bool)> {
        let start = format!("{ns}\0");
        let end = format!("{ns}\u{1}");
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        self.run(move |db| {
            let txn = db.begin_read().or_fail()?;
            let table = txn.open_table(TABLE).or_fail()?;
            let mut keys = Vec::new();
            let mut more = false;
            for entry in table
                .range(start.as_str()..end.as_str())
                .or_fail()?
                .skip(skip)
            {
                let (k, _) = entry.or_fail()?;
                if keys.len() == limit {
                    more = true;
                    break;
                }
                let full = k.value();
                keys.push(full[start.len()..].to_string());
            }
            Ok((keys, more))
        })
    }

    fn increment<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64) -> BoxFut<'a, i64> {
        let k = full_key(ns, key);
        self.run(move |db| {
            let txn = db.begin_write().or_fail()?;
            let next;
            {
                let mut table = txn.open_table(TABLE).or_fail()?;
                let current =
                    parse_counter(table.get(k.as_str()).or_fail()?.as_ref().map(|v| v.value()))?;
                next = current
                    .checked_add(delta)
                    .ok_or_else(|| BackendError::new("the counter would overflow"))?;
                table
                    .insert(k.as_str(), next.to_string().as_bytes())
                    .or_fail()?;
            }
            txn.commit().or_fail()?;
            Ok(next)
        })
    }

    fn cas_write<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        seen: &'a CasVersion,
        value: Vec<u8>,
    ) -> BoxFut<'a, bool> {
        let k = full_key(ns, key);
        let expected = match seen.value() {
            Ok(v) => v.map(<[u8]>::to_vec),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        self.run(move |db| {
            let txn = db.begin_write().or_fail()?;
            {
                let mut table = txn.open_table(TABLE).or_fail()?;
                let current = table.get(k.as_str()).or_fail()?.map(|v| v.value().to_vec());
                if current != expected {
                    return Ok(false);
                }
                table.insert(k.as_str(), value.as_slice()).or_fail()?;
            }
            txn.commit().or_fail()?;
            Ok(true)
        })
    }
}
