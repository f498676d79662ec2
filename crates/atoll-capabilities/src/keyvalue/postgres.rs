//! PostgreSQL (`postgres://user@host:port/db`), through `tokio-postgres` (the async
//! client of the rust-postgres project; no TLS: use it over loopback or a private
//! network). One table, `atoll_kv (namespace, key, value)`, created if missing;
//! `increment` is one upsert statement, atomic in the server. The connection is made
//! on first use and remade when it drops.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::{Backend, BackendError, BoxFut, CasVersion};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS atoll_kv (
    namespace text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (namespace, key))";

pub(crate) struct PostgresBackend {
    config: tokio_postgres::Config,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

fn failed(e: tokio_postgres::Error) -> BackendError {
    BackendError(format!("postgres: {e}"))
}

impl PostgresBackend {
    /// Check the URL; connecting waits for the first use.
    pub(crate) fn new(url: &str) -> Result<Self, BackendError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| BackendError(format!("invalid URL: {e}")))?;
        config.connect_timeout(Duration::from_secs(2));
        config.application_name("atoll");
        Ok(Self {
            config,
            client: tokio::sync::Mutex::new(None),
        })
    }

    async fn client(&self) -> Result<Arc<Client>, BackendError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(failed)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("postgres key-value connection closed: {e}");
            }
        });
        if let Err(e) = client.batch_execute(SCHEMA).await {
            // Two processes creating the table at once: one loses with a duplicate; the
            // table exists either way.
            client.batch_execute(SCHEMA).await.map_err(|_| failed(e))?;
        }
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }
}

impl Backend for PostgresBackend {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c
                .query_opt(
                    "SELECT value FROM atoll_kv WHERE namespace = $1 AND key = $2",
                    &[&ns, &key],
                )
                .await
                .map_err(failed)?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let c = self.client().await?;
            c.execute(
                "INSERT INTO atoll_kv (namespace, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value",
                &[&ns, &key, &value],
            )
            .await
            .map_err(failed)?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let c = self.client().await?;
            c.execute(
                "DELETE FROM atoll_kv WHERE namespace = $1 AND key = $2",
                &[&ns, &key],
            )
            .await
            .map_err(failed)?;
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
            let c = self.client().await?;
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
            let rows = c
                .query(
                    "SELECT key FROM atoll_kv WHERE namespace = $1 ORDER BY key OFFSET $2 LIMIT $3",
                    &[&ns, &offset, &fetch],
                )
                .await
                .map_err(failed)?;
            let mut keys: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let more = keys.len() > limit;
            keys.truncate(limit);
            Ok((keys, more))
        })
    }

    fn increment<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64) -> BoxFut<'a, i64> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = c
                .query_one(
                    "INSERT INTO atoll_kv (namespace, key, value) VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8'))
                     ON CONFLICT (namespace, key) DO UPDATE
                     SET value = convert_to((convert_from(atoll_kv.value, 'UTF8')::bigint + $3::bigint)::text, 'UTF8')
                     RETURNING convert_from(value, 'UTF8')::bigint",
                    &[&ns, &key, &delta],
                )
                .await
                .map_err(|e| BackendError(format!("postgres (is the value a decimal counter?): {e}")))?;
            Ok(row.get(0))
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
            let CasVersion::Value(expected) = seen else {
                return Err(BackendError("a version from another backend".into()));
            };
            let c = self.client().await?;
            let n = match expected {
                Some(old) => c
                    .execute(
                        "UPDATE atoll_kv SET value = $4 WHERE namespace = $1 AND key = $2 AND value = $3",
                        &[&ns, &key, old, &value],
                    )
                    .await
                    .map_err(failed)?,
                None => c
                    .execute(
                        "INSERT INTO atoll_kv (namespace, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&ns, &key, &value],
                    )
                    .await
                    .map_err(failed)?,
            };
            Ok(n == 1)
        })
    }
}
