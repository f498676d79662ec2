//! PostgreSQL (`postgres://user@host:port/db`), through `tokio-postgres` (the async
//! client of the rust-postgres project; no TLS: use it over loopback or a private
//! network). One table, `atoll_kv (namespace, key, value)`, created if missing;
//! `increment` is one upsert statement, atomic in the server. The connection is made
//! on first use and remade when it drops, or when a call gets no answer within
//! [`STALL`] (a half-open connection after a partition or a lost NAT mapping is never
//! closed by itself: without this, every later call would wait on it until the kernel
//! gives up, minutes later).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::{Backend, BackendError, BoxFut, CasVersion};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS atoll_kv (
    namespace text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (namespace, key))";

/// A call with no answer for this long marks its connection dead, so the next call
/// reconnects. Below `OP_TIMEOUT`, so the guest's call still fails on time.
const STALL: Duration = Duration::from_secs(4);

pub(crate) struct PostgresBackend {
    config: tokio_postgres::Config,
    client: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

/// One connection, and whether a stalled call gave up on it.
struct Conn {
    client: Client,
    stalled: AtomicBool,
}

fn failed(e: tokio_postgres::Error) -> BackendError {
    BackendError(format!("postgres: {e}"))
}

/// Await one call on `conn`, at most [`STALL`]; past that the connection is marked dead.
async fn call<T>(
    conn: &Conn,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    error: fn(tokio_postgres::Error) -> BackendError,
) -> Result<T, BackendError> {
    match tokio::time::timeout(STALL, fut).await {
        Ok(result) => result.map_err(error),
        Err(_) => {
            conn.stalled.store(true, Ordering::Relaxed);
            Err(BackendError(format!(
                "postgres: no answer within {STALL:?}; the next call reconnects"
            )))
        }
    }
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

    async fn client(&self) -> Result<Arc<Conn>, BackendError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.client.is_closed()
            && !c.stalled.load(Ordering::Relaxed)
        {
            return Ok(c.clone());
        }
        // Dropping a dead client ends its connection task.
        *slot = None;
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
        let conn = Arc::new(Conn {
            client,
            stalled: AtomicBool::new(false),
        });
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

impl Backend for PostgresBackend {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = call(
                &c,
                c.client.query_opt(
                    "SELECT value FROM atoll_kv WHERE namespace = $1 AND key = $2",
                    &[&ns, &key],
                ),
                failed,
            )
            .await?;
            Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let c = self.client().await?;
            call(
                &c,
                c.client.execute(
                    "INSERT INTO atoll_kv (namespace, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&ns, &key, &value],
                ),
                failed,
            )
            .await?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let c = self.client().await?;
            call(
                &c,
                c.client.execute(
                    "DELETE FROM atoll_kv WHERE namespace = $1 AND key = $2",
                    &[&ns, &key],
                ),
                failed,
            )
            .await?;
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
            let rows = call(
                &c,
                c.client.query(
                    "SELECT key FROM atoll_kv WHERE namespace = $1 ORDER BY key OFFSET $2 LIMIT $3",
                    &[&ns, &offset, &fetch],
                ),
                failed,
            )
            .await?;
            let mut keys: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let more = keys.len() > limit;
            keys.truncate(limit);
            Ok((keys, more))
        })
    }

    fn increment<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64) -> BoxFut<'a, i64> {
        Box::pin(async move {
            let c = self.client().await?;
            let row = call(
                &c,
                c.client.query_one(
                    "INSERT INTO atoll_kv (namespace, key, value) VALUES ($1, $2, convert_to($3::bigint::text, 'UTF8'))
                     ON CONFLICT (namespace, key) DO UPDATE
                     SET value = convert_to((convert_from(atoll_kv.value, 'UTF8')::bigint + $3::bigint)::text, 'UTF8')
                     RETURNING convert_from(value, 'UTF8')::bigint",
                    &[&ns, &key, &delta],
                ),
                |e| {
                    BackendError(format!("postgres (is the value a decimal counter?): {e}"))
                },
            )
            .await?;
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
                Some(old) => {
                    call(
                        &c,
                        c.client.execute(
                            "UPDATE atoll_kv SET value = $4 WHERE namespace = $1 AND key = $2 AND value = $3",
                            &[&ns, &key, old, &value],
                        ),
                        failed,
                    )
                    .await?
                }
                None => {
                    call(
                        &c,
                        c.client.execute(
                            "INSERT INTO atoll_kv (namespace, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                            &[&ns, &key, &value],
                        ),
                        failed,
                    )
                    .await?
                }
            };
            Ok(n == 1)
        })
    }
}
