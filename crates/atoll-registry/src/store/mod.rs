//! Where the server keeps its metadata: the log entries, one row per release and one
//! per claimed namespace. Blobs are not here; they are files named by their sha256 (see
//! [`crate::server`]).
//!
//! Two backends behind one enum, [`Store`]: [`redb`](RedbStore) (embedded, the default:
//! zero services) and [`PostgreSQL`](PgStore) (`--db postgres://...`). The store applies
//! no policy: ownership, immutability and signatures are checked by the server before
//! it calls [`Store::commit`], which appends log entries and updates rows in one
//! transaction. Tests use that to play a malicious server.
//!
//! One server process per database: the server keeps the leaf hashes in memory and
//! serializes writes itself, so two servers writing one PostgreSQL schema would race.

mod postgres;
mod redb;

pub use self::postgres::PgStore;
pub use self::redb::RedbStore;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::wit::World;

/// The metadata row of one published version. Only the log entry at `log_index` is
/// signed; clients check that these fields agree with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// `namespace:name`.
    pub package: String,
    /// Semver version.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Key id of the publisher.
    pub publisher: String,
    /// Position of the release record in the log.
    pub log_index: u64,
    /// Hidden from resolution (still fetchable).
    pub yanked: bool,
    /// The component's WIT world, indexed at publish time.
    pub world: World,
}

/// Who owns a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// The namespace.
    pub namespace: String,
    /// The claiming key, hex.
    pub key: String,
    /// Position of the claim record in the log.
    pub claim_index: u64,
    /// The keys that may publish now (the claiming key, plus grants, minus revocations).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Positions of the claim and of every key grant and revocation, in log order.
    #[serde(default)]
    pub history: Vec<u64>,
}

impl Namespace {
    /// A freshly claimed namespace.
    pub fn claimed(namespace: &str, key: &str, claim_index: u64) -> Self {
        Self {
            namespace: namespace.to_string(),
            key: key.to_string(),
            claim_index,
            keys: vec![key.to_string()],
            history: vec![claim_index],
        }
    }

    /// Whether `key` (hex) may publish in the namespace now.
    pub fn allows(&self, key: &str) -> bool {
        if self.keys.is_empty() {
            // Rows written before key rotation existed.
            return self.key == key;
        }
        self.keys.iter().any(|k| k == key)
    }
}

/// One atomic change: log entries appended at `first_index` (which must be the current
/// log length, or the commit fails), and rows written.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// Where the first entry goes; the current number of entries.
    pub first_index: u64,
    /// Leaf bytes to append, in order.
    pub entries: Vec<Vec<u8>>,
    /// A namespace row to insert or replace.
    pub namespace: Option<Namespace>,
    /// A release row to insert or replace.
    pub release: Option<Release>,
}

/// The metadata database.
pub enum Store {
    /// Embedded redb file.
    Redb(RedbStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

impl Store {
    /// Every log entry, in order.
    pub async fn entries(&self) -> Result<Vec<Vec<u8>>, Error> {
        match self {
            Store::Redb(s) => s.entries(),
            Store::Postgres(s) => s.entries().await,
        }
    }

    /// The log entry at `index`.
    pub async fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Store::Redb(s) => s.entry(index),
            Store::Postgres(s) => s.entry(index).await,
        }
    }

    /// Apply `commit` atomically.
    pub async fn commit(&self, commit: &Commit) -> Result<(), Error> {
        match self {
            Store::Redb(s) => s.commit(commit),
            Store::Postgres(s) => s.commit(commit).await,
        }
    }

    /// The release row of `package@version`.
    pub async fn release(&self, package: &str, version: &str) -> Result<Option<Release>, Error> {
        match self {
            Store::Redb(s) => s.release(package, version),
            Store::Postgres(s) => s.release(package, version).await,
        }
    }

    /// All release rows of `package`.
    pub async fn releases(&self, package: &str) -> Result<Vec<Release>, Error> {
        match self {
            Store::Redb(s) => s.releases(Some(package)),
            Store::Postgres(s) => s.releases(Some(package)).await,
        }
    }

    /// Every release row (search scans them: fine for thousands of releases; an index
    /// table is the next step).
    pub async fn all_releases(&self) -> Result<Vec<Release>, Error> {
        match self {
            Store::Redb(s) => s.releases(None),
            Store::Postgres(s) => s.releases(None).await,
        }
    }

    /// The owner of `namespace`.
    pub async fn namespace(&self, namespace: &str) -> Result<Option<Namespace>, Error> {
        match self {
            Store::Redb(s) => s.namespace(namespace),
            Store::Postgres(s) => s.namespace(namespace).await,
        }
    }
}

pub(crate) fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Database {
        reason: e.to_string(),
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs of strings and integers cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Database {
        reason: format!("a stored row does not parse: {e}"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn release(package: &str, version: &str, log_index: u64) -> Release {
        Release {
            package: package.into(),
            version: version.into(),
            sha256: crate::Digest::of(version.as_bytes()).to_hex(),
            size: 3,
            publisher: "ed25519:00".into(),
            log_index,
            yanked: false,
            world: World::default(),
        }
    }

    /// The same checks for every backend.
    pub(crate) async fn exercise(store: &Store) {
        assert!(store.entries().await.expect("entries").is_empty());
        let ns = Namespace::claimed("acme", "k", 0);
        store
            .commit(&Commit {
                first_index: 0,
                entries: vec![b"claim".to_vec(), b"r1".to_vec()],
                namespace: Some(ns.clone()),
                release: Some(release("acme:auth", "1.0.0", 1)),
            })
            .await
            .expect("first commit");
        // A commit at a stale index is refused and changes nothing.
        let stale = Commit {
            first_index: 1,
            entries: vec![b"x".to_vec()],
            namespace: None,
            release: Some(release("acme:auth", "9.0.0", 1)),
        };
        assert_eq!(
            store.commit(&stale).await.map_err(|e| e.code()),
            Err("database")
        );
        assert_eq!(
            store.release("acme:auth", "9.0.0").await.expect("get"),
            None
        );
        store
            .commit(&Commit {
                first_index: 2,
                entries: vec![b"r2".to_vec()],
                namespace: None,
                release: Some(release("acme:auth", "1.1.0", 2)),
            })
            .await
            .expect("second commit");
        store
            .commit(&Commit {
                first_index: 3,
                entries: vec![b"r3".to_vec()],
                namespace: None,
                release: Some(release("acme:authz", "0.1.0", 3)),
            })
            .await
            .expect("third commit");
        assert_eq!(
            store.entries().await.expect("entries"),
            [
                b"claim".to_vec(),
                b"r1".to_vec(),
                b"r2".to_vec(),
                b"r3".to_vec()
            ]
        );
        assert_eq!(store.entry(2).await.expect("entry"), Some(b"r2".to_vec()));
        assert_eq!(store.entry(9).await.expect("entry"), None);
        assert_eq!(store.namespace("acme").await.expect("ns"), Some(ns.clone()));
        assert_eq!(store.namespace("other").await.expect("ns"), None);
        // Namespace rows are replaced (key grants and revocations).
        let mut rotated = ns.clone();
        rotated.keys.push("k2".into());
        rotated.history.push(4);
        store
            .commit(&Commit {
                first_index: 4,
                entries: vec![b"grant".to_vec()],
                namespace: Some(rotated.clone()),
                release: None,
            })
            .await
            .expect("grant");
        assert_eq!(store.namespace("acme").await.expect("ns"), Some(rotated));
        let versions: Vec<String> = store
            .releases("acme:auth")
            .await
            .expect("releases")
            .into_iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(versions.len(), 2, "{versions:?}");
        assert_eq!(store.all_releases().await.expect("all").len(), 3);
        let mut yanked = release("acme:auth", "1.0.0", 1);
        yanked.yanked = true;
        store
            .commit(&Commit {
                first_index: 5,
                entries: vec![b"yank".to_vec()],
                namespace: None,
                release: Some(yanked.clone()),
            })
            .await
            .expect("yank");
        assert_eq!(
            store.release("acme:auth", "1.0.0").await.expect("get"),
            Some(yanked)
        );
    }
}
