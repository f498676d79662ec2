//! PostgreSQL (`postgres://user@host:port/db`), through `tokio-postgres` (the async
//! client of the rust-postgres project; no TLS: use it over loopback or a private
//! network). One table, `atoll_kv (namespace, key, value)`, created if missing;
//! `increment` is one upsert statement, atomic in the server.
//!
//! The connection is made on first use and remade when it drops, or when it stops
//! answering: a half-open connection after a partition or a lost NAT mapping is never
//! closed by itself, and without this every later call would wait on it until the
//! kernel gives up, minutes later. A connection is judged dead when a call gets no
//! answer within [`STALL`], or when a call dropped unfinished (the guest's own timeout,
//! a cancelled request, `OP_TIMEOUT`) is followed by a probe that gets none either (see
//! [`Pending`]). Reconnecting (TCP, startup and authentication, the table) is bounded
//! by [`CONNECT_BUDGET`], and the calls that queued behind a failed attempt fail at
//! once instead of each trying again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
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

/// The least time the probe after a dropped call gets (see [`Pending`]).
const PROBE_MIN: Duration = Duration::from_secs(1);

/// Connecting, starting up (authentication) and creating the table, together.
/// tokio-postgres' own `connect_timeout` covers the TCP connect only: a server that
/// accepts and then says nothing (stopped with SIGSTOP, overloaded) would otherwise hold
/// the connection mutex, and every call queued on it, for the whole `OP_TIMEOUT`.
const CONNECT_BUDGET: Duration = Duration::from_secs(3);

pub(crate) struct PostgresBackend {
    config: tokio_postgres::Config,
    client: tokio::sync::Mutex<Slot>,
}

/// The current connection, and when the last attempt to make one failed.
#[derive(Default)]
struct Slot {
    conn: Option<Arc<Conn>>,
    failed_at: Option<(Instant, String)>,
}

/// One connection, whether it is judged dead, and whether a probe is checking it.
struct Conn {
    client: Client,
    stalled: AtomicBool,
    probing: AtomicBool,
}

fn failed(e: tokio_postgres::Error) -> BackendError {
    BackendError::new(format!("postgres: {e}"))
}

/// Watches one call on a connection. If the call's future is dropped before it ends,
/// the connection may be dead (a silent connection is exactly what makes callers give
/// up), or it may be healthy and the caller merely impatient (a guest whose
/// `limits.timeout` is shorter than the query, a client that hung up).
///
/// Why not condemn the connection on every such drop: dropping a tokio-postgres query
/// leaves its connection usable (the connection task reads and discards the answer), so
/// ordinary cancellations would cost a reconnect each, and a stream of impatient
/// clients would churn connections. Why not condemn it only past some wait threshold:
/// a component whose timeout is below the threshold would then never mark a dead
/// connection, and every one of its later calls would hang on it, which is the failure
/// this guards against. So a drop starts a probe instead (`SELECT 1`, at most one per
/// connection at a time): the server answers requests of one connection in order, so
/// an answer proves the connection alive and leaves it in use; no answer within what
/// the dropped call had left of [`STALL`] (at least [`PROBE_MIN`]) marks it dead, as if
/// the call itself had waited. Cost: one round trip per cancellation, none otherwise.
struct Pending {
    conn: Arc<Conn>,
    started: Instant,
    done: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.done || self.conn.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let budget = STALL.saturating_sub(self.started.elapsed()).max(PROBE_MIN);
        let conn = self.conn.clone();
        let probe = async move {
            let answered = tokio::time::timeout(budget, conn.client.simple_query("SELECT 1"))
                .await
                .is_ok();
            if !answered {
                tracing::warn!(
                    "postgres key-value connection: no answer to a probe within {budget:?}; the next call reconnects"
                );
                conn.stalled.store(true, Ordering::Relaxed);
            }
            conn.probing.store(false, Ordering::Release);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(probe);
            }
            // No runtime to probe from (shutting down): do not trust the connection.
            Err(_) => self.conn.stalled.store(true, Ordering::Relaxed),
        }
    }
}

/// Await one call on `conn`, at most [`STALL`]; past that the connection is marked dead.
/// Dropped unfinished, it probes the connection ([`Pending`]).
async fn call<T>(
    conn: &Arc<Conn>,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    error: fn(tokio_postgres::Error) -> BackendError,
) -> Result<T, BackendError> {
    let mut pending = Pending {
        conn: conn.clone(),
        started: Instant::now(),
        done: false,
    };
    let result = tokio::time::timeout(STALL, fut).await;
    pending.done = true;
    match result {
        Ok(result) => result.map_err(error),
        Err(_) => {
            conn.stalled.store(true, Ordering::Relaxed);
            Err(BackendError::new(format!(
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
            .map_err(|e| BackendError::new(format!("invalid URL: {e}")))?;
        config.connect_timeout(Duration::from_secs(2));
        config.application_name("atoll");
        Ok(Self {
            config,
            client: tokio::sync::Mutex::new(Slot::default()),
        })
    }

    async fn client(&self) -> Result<Arc<Conn>, BackendError> {
        let queued = Instant::now();
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.conn.as_ref()
            && !c.client.is_closed()
            && !c.stalled.load(Ordering::Relaxed)
        {
            return Ok(c.clone());
        }
        // An attempt failed while this call waited for the lock: fail with it rather
        // than queue another full attempt behind it.
        if let Some((at, why)) = &slot.failed_at
            && *at >= queued
        {
            return Err(BackendError::new(why.clone()));
        }
        // Dropping a dead client ends its connection task.
        slot.conn = None;
        match tokio::time::timeout(CONNECT_BUDGET, self.connect()).await {
            Ok(Ok(conn)) => {
                slot.failed_at = None;
                slot.conn = Some(conn.clone());
                Ok(conn)
            }
            Ok(Err(e)) => {
                slot.failed_at = Some((Instant::now(), e.message().to_string()));
                Err(e)
            }
            Err(_) => {
                let why = format!(
                    "postgres: connecting, starting up and creating the table took more than {CONNECT_BUDGET:?}"
                );
                slot.failed_at = Some((Instant::now(), why.clone()));
                Err(BackendError::new(why))
            }
        }
    }

    /// Connect, start the connection task, and create the table if missing. Dropped
    /// midway, the client goes with it and its connection task ends.
    async fn connect(&self) -> Result<Arc<Conn>, BackendError> {
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
        Ok(Arc::new(Conn {
            client,
            stalled: AtomicBool::new(false),
            probing: AtomicBool::new(false),
        }))
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
                    BackendError::new(format!("postgres (is the value a decimal counter?): {e}"))
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
            let expected = seen.value()?;
            let c = self.client().await?;
            let n = match expected {
                Some(old) => {
                    call(
                        &c,
                        c.client.execute(
                            "UPDATE atoll_kv SET value = $4 WHERE namespace = $1 AND key = $2 AND value = $3",
                            &[&ns, &key, &old, &value],
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
