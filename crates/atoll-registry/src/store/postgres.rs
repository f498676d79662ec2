//! The PostgreSQL metadata store (`atoll registry serve --db postgres://...`).
//!
//! Three tables in one schema (`atoll_registry` unless told otherwise, so a database can
//! hold several registries, or tests can use one schema each). One connection, shared
//! behind a mutex: writes are serialized by the server anyway, and reads are single
//! indexed lookups. No TLS: use it on loopback or a private network.

use tokio::sync::Mutex;

use super::{Commit, Namespace, Release, db_err, from_json, to_json};

/// A database error with its causes (tokio-postgres puts the server's message in the
/// source, e.g. "db error: relation ... does not exist").
fn pg_err(e: impl std::error::Error) -> Error {
    Error::Database { reason: chain(&e) }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
use crate::Error;

/// The PostgreSQL store.
pub struct PgStore {
    client: Mutex<tokio_postgres::Client>,
    schema: String,
}

impl PgStore {
    /// Connect to `url` and create `schema` and its tables when missing. Must be called
    /// inside a tokio runtime (the connection runs as a task on it).
    pub async fn connect(url: &str, schema: &str) -> Result<Self, Error> {
        let valid = !schema.is_empty()
            && schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_lowercase())
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::Database {
                reason: format!(
                    "schema name `{schema}` must be lowercase letters, digits and _ (at most 63), starting with a letter"
                ),
            });
        }
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| Error::Database {
                reason: format!(
                    "could not connect to PostgreSQL: {}; check the --db URL and that the server is running",
                    chain(&e)
                ),
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::error!("PostgreSQL connection ended: {e}");
            }
        });
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.log (idx BIGINT PRIMARY KEY, entry BYTEA NOT NULL);
                 CREATE TABLE IF NOT EXISTS {schema}.releases (
                     package TEXT NOT NULL, version TEXT NOT NULL, row_json BYTEA NOT NULL,
                     PRIMARY KEY (package, version));
                 CREATE TABLE IF NOT EXISTS {schema}.namespaces (
                     namespace TEXT PRIMARY KEY, row_json BYTEA NOT NULL);"
            ))
            .await
            .map_err(pg_err)?;
        Ok(Self {
            client: Mutex::new(client),
            schema: schema.to_string(),
        })
    }

    /// Drop the schema and everything in it (for tests and deliberate resets).
    pub async fn drop_schema(self) -> Result<(), Error> {
        let client = self.client.lock().await;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .map_err(pg_err)
    }

    pub(super) async fn entries(&self) -> Result<Vec<Vec<u8>>, Error> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!("SELECT idx, entry FROM {}.log ORDER BY idx", self.schema),
                &[],
            )
            .await
            .map_err(pg_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for (expected, row) in rows.iter().enumerate() {
            let idx: i64 = row.try_get(0).map_err(pg_err)?;
            if idx != expected as i64 {
                return Err(db_err(format!("log has a gap at entry {expected}")));
            }
            out.push(row.try_get::<_, Vec<u8>>(1).map_err(pg_err)?);
        }
        Ok(out)
    }

    pub(super) async fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, Error> {
        let Ok(idx) = i64::try_from(index) else {
            return Ok(None);
        };
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                &format!("SELECT entry FROM {}.log WHERE idx = $1", self.schema),
                &[&idx],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg_err))
            .transpose()
    }

    pub(super) async fn commit(&self, commit: &Commit) -> Result<(), Error> {
        let s = &self.schema;
        let mut client = self.client.lock().await;
        let txn = client.transaction().await.map_err(pg_err)?;
        txn.batch_execute(&format!("LOCK TABLE {s}.log IN EXCLUSIVE MODE"))
            .await
            .map_err(pg_err)?;
        let len: i64 = txn
            .query_one(&format!("SELECT count(*) FROM {s}.log"), &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(pg_err)?;
        let first = i64::try_from(commit.first_index).map_err(pg_err)?;
        if len != first {
            return Err(db_err(format!(
                "log has {len} entries, the commit expected {first}"
            )));
        }
        for (i, entry) in commit.entries.iter().enumerate() {
            let idx = first + i as i64;
            txn.execute(
                &format!("INSERT INTO {s}.log (idx, entry) VALUES ($1, $2)"),
                &[&idx, entry],
            )
            .await
            .map_err(pg_err)?;
        }
        if let Some(ns) = &commit.namespace {
            txn.execute(
                &format!(
                    "INSERT INTO {s}.namespaces (namespace, row_json) VALUES ($1, $2)
                     ON CONFLICT (namespace) DO UPDATE SET row_json = EXCLUDED.row_json"
                ),
                &[&ns.namespace, &to_json(ns)],
            )
            .await
            .map_err(pg_err)?;
        }
        if let Some(r) = &commit.release {
            txn.execute(
                &format!(
                    "INSERT INTO {s}.releases (package, version, row_json) VALUES ($1, $2, $3)
                     ON CONFLICT (package, version) DO UPDATE SET row_json = EXCLUDED.row_json"
                ),
                &[&r.package, &r.version, &to_json(r)],
            )
            .await
            .map_err(pg_err)?;
        }
        txn.commit().await.map_err(pg_err)
    }

    pub(super) async fn release(
        &self,
        package: &str,
        version: &str,
    ) -> Result<Option<Release>, Error> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                &format!(
                    "SELECT row_json FROM {}.releases WHERE package = $1 AND version = $2",
                    self.schema
                ),
                &[&package, &version],
            )
            .await
            .map_err(pg_err)?;
        match row {
            Some(row) => from_json(&row.try_get::<_, Vec<u8>>(0).map_err(pg_err)?).map(Some),
            None => Ok(None),
        }
    }

    pub(super) async fn releases(&self, package: Option<&str>) -> Result<Vec<Release>, Error> {
        let client = self.client.lock().await;
        let rows =
            match package {
                Some(p) => client
                    .query(
                        &format!(
                            "SELECT row_json FROM {}.releases WHERE package = $1 ORDER BY version",
                            self.schema
                        ),
                        &[&p],
                    )
                    .await,
                None => {
                    client
                        .query(
                            &format!(
                                "SELECT row_json FROM {}.releases ORDER BY package, version",
                                self.schema
                            ),
                            &[],
                        )
                        .await
                }
            }
            .map_err(pg_err)?;
        rows.iter()
            .map(|row| from_json(&row.try_get::<_, Vec<u8>>(0).map_err(pg_err)?))
            .collect()
    }

    pub(super) async fn namespace(&self, namespace: &str) -> Result<Option<Namespace>, Error> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                &format!(
                    "SELECT row_json FROM {}.namespaces WHERE namespace = $1",
                    self.schema
                ),
                &[&namespace],
            )
            .await
            .map_err(pg_err)?;
        match row {
            Some(row) => from_json(&row.try_get::<_, Vec<u8>>(0).map_err(pg_err)?).map(Some),
            None => Ok(None),
        }
    }
}

/// The PostgreSQL URL the tests use: `ATOLL_TEST_POSTGRES`, else the project machine's
/// server (127.0.0.1:5432, trust auth, database `test`).
#[cfg(test)]
pub(crate) fn test_url() -> String {
    std::env::var("ATOLL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema name no other test run uses.
#[cfg(test)]
pub(crate) fn unique_schema(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("atoll_test_{tag}_{}_{nanos}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::super::{Store, tests::exercise};
    use super::*;

    #[tokio::test]
    async fn postgres_store_behaves() {
        let schema = unique_schema("store");
        let store = PgStore::connect(&test_url(), &schema)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (set ATOLL_TEST_POSTGRES to use another)");
        let store = Store::Postgres(store);
        exercise(&store).await;
        let Store::Postgres(pg) = store else {
            unreachable!("built above")
        };
        // Reconnecting sees the same data.
        let again = PgStore::connect(&test_url(), &schema)
            .await
            .expect("reconnect");
        assert_eq!(again.entries().await.expect("entries").len(), 6);
        pg.drop_schema().await.expect("drop");
    }

    #[tokio::test]
    async fn refuses_unsafe_schema_names() {
        for bad in ["", "Upper", "a;drop table x", "1abc"] {
            let err = PgStore::connect(&test_url(), bad).await.map(|_| ());
            assert!(
                err.is_err_and(|e| e.to_string().contains("schema name")),
                "{bad}"
            );
        }
    }
}
