//! The embedded metadata store: one redb file, `registry.redb`, in the data directory.
//!
//! Calls are synchronous and short (a read, or a write transaction with one fsync at
//! commit); the server calls them from its async handlers directly, which blocks one
//! runtime worker for about a millisecond per publish.

use std::path::Path;

use redb::{
    Database, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};

use super::{Commit, Namespace, Release, db_err, from_json, to_json};
use crate::Error;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Key: `package@version`.
const RELEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("releases");
const NAMESPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("namespaces");

/// The redb store.
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Open or create `dir/registry.redb`. Fails when another process has it open.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
        let path = dir.join("registry.redb");
        let db = Database::create(&path).map_err(|e| Error::Database {
            reason: format!(
                "could not open {}: {e} (is another `atoll registry serve` using this --data dir?)",
                path.display()
            ),
        })?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(LOG).map_err(db_err)?;
        txn.open_table(RELEASES).map_err(db_err)?;
        txn.open_table(NAMESPACES).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    pub(super) fn entries(&self) -> Result<Vec<Vec<u8>>, Error> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(LOG).map_err(db_err)?;
        let mut out = Vec::new();
        for (expected, row) in table.iter().map_err(db_err)?.enumerate() {
            let (k, v) = row.map_err(db_err)?;
            if k.value() != expected as u64 {
                return Err(db_err(format!("log has a gap at entry {expected}")));
            }
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    pub(super) fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, Error> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(LOG).map_err(db_err)?;
        Ok(table
            .get(index)
            .map_err(db_err)?
            .map(|v| v.value().to_vec()))
    }

    pub(super) fn commit(&self, commit: &Commit) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut log = txn.open_table(LOG).map_err(db_err)?;
            let len = log.len().map_err(db_err)?;
            if len != commit.first_index {
                // Dropping the transaction without commit aborts it.
                return Err(db_err(format!(
                    "log has {len} entries, the commit expected {}",
                    commit.first_index
                )));
            }
            for (i, entry) in commit.entries.iter().enumerate() {
                log.insert(commit.first_index + i as u64, entry.as_slice())
                    .map_err(db_err)?;
            }
            if let Some(ns) = &commit.namespace {
                let mut table = txn.open_table(NAMESPACES).map_err(db_err)?;
                table
                    .insert(ns.namespace.as_str(), to_json(ns).as_slice())
                    .map_err(db_err)?;
            }
            if let Some(release) = &commit.release {
                let mut table = txn.open_table(RELEASES).map_err(db_err)?;
                let key = format!("{}@{}", release.package, release.version);
                table
                    .insert(key.as_str(), to_json(release).as_slice())
                    .map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }

    pub(super) fn release(&self, package: &str, version: &str) -> Result<Option<Release>, Error> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RELEASES).map_err(db_err)?;
        let key = format!("{package}@{version}");
        match table.get(key.as_str()).map_err(db_err)? {
            Some(v) => from_json(v.value()).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn releases(&self, package: Option<&str>) -> Result<Vec<Release>, Error> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RELEASES).map_err(db_err)?;
        let mut out = Vec::new();
        let prefix = package.map(|p| format!("{p}@"));
        let rows = match &prefix {
            Some(p) => table.range(p.as_str()..).map_err(db_err)?,
            None => table.iter().map_err(db_err)?,
        };
        for row in rows {
            let (k, v) = row.map_err(db_err)?;
            if let Some(p) = &prefix
                && !k.value().starts_with(p.as_str())
            {
                break;
            }
            out.push(from_json(v.value())?);
        }
        Ok(out)
    }

    pub(super) fn namespace(&self, namespace: &str) -> Result<Option<Namespace>, Error> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(NAMESPACES).map_err(db_err)?;
        match table.get(namespace).map_err(db_err)? {
            Some(v) => from_json(v.value()).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Store, tests::exercise};
    use super::*;

    #[tokio::test]
    async fn redb_store_behaves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::Redb(RedbStore::open(dir.path()).expect("open"));
        exercise(&store).await;
        drop(store);
        // Reopening sees the same data.
        let store = RedbStore::open(dir.path()).expect("reopen");
        assert_eq!(store.entries().expect("entries").len(), 6);
    }
}
