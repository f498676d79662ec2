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

fn full_key(ns: &str, key: &str) -> String {
    format!("{ns}\0{key}")
}

impl RedbBackend {
    pub(crate) async fn open(path: &Path) -> Result<Self, BackendError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| BackendError(format!("cannot create {}: {e}", dir.display())))?;
            }
            let db = Database::create(&path)
                .map_err(|e| BackendError(format!("cannot open {}: {e}", path.display())))?;
            let txn = db.begin_write()?;
            txn.open_table(TABLE)?;
            txn.commit()?;
            Ok(Self { db: Arc::new(db) })
        })
        .await
        .map_err(|e| BackendError(format!("the store's open task failed: {e}")))?
    }

    fn run<'a, T: Send + 'static>(
        &'a self,
        f: impl FnOnce(&Database) -> Result<T, BackendError> + Send + 'static,
    ) -> BoxFut<'a, T> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&db))
                .await
                .map_err(|e| BackendError(format!("the store task failed: {e}")))?
        })
    }
}

impl Backend for RedbBackend {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        let k = full_key(ns, key);
        self.run(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(TABLE)?;
            Ok(table.get(k.as_str())?.map(|v| v.value().to_vec()))
        })
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>) -> BoxFut<'a, ()> {
        let k = full_key(ns, key);
        self.run(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TABLE)?;
                table.insert(k.as_str(), value.as_slice())?;
            }
            txn.commit()?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        let k = full_key(ns, key);
        self.run(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TABLE)?;
                table.remove(k.as_str())?;
            }
            txn.commit()?;
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
            let txn = db.begin_read()?;
            let table = txn.open_table(TABLE)?;
            let mut keys = Vec::new();
            let mut more = false;
            for entry in table.range(start.as_str()..end.as_str())?.skip(skip) {
                let (k, _) = entry?;
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
            let txn = db.begin_write()?;
            let next;
            {
                let mut table = txn.open_table(TABLE)?;
                let current = parse_counter(table.get(k.as_str())?.as_ref().map(|v| v.value()))?;
                next = current
                    .checked_add(delta)
                    .ok_or_else(|| BackendError("the counter would overflow".into()))?;
                table.insert(k.as_str(), next.to_string().as_bytes())?;
            }
            txn.commit()?;
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
        let CasVersion::Value(expected) = seen.clone() else {
            return Box::pin(async { Err(BackendError("a version from another backend".into())) });
        };
        self.run(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TABLE)?;
                let current = table.get(k.as_str())?.map(|v| v.value().to_vec());
                if current != expected {
                    return Ok(false);
                }
                table.insert(k.as_str(), value.as_slice())?;
            }
            txn.commit()?;
            Ok(true)
        })
    }
}
