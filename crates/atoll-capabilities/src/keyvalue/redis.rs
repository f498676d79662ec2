//! Redis (`redis://host:port[/db]`), through the `redis` crate's `ConnectionManager`:
//! the official-ecosystem Rust client, which reconnects on its own after the server
//! comes back. Keys are `atoll/<app>/<label>/<key>`; `increment` is `INCRBY`, atomic on
//! the server.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Backend, BackendError, BoxFut, CasVersion};

/// Most keys one store may hold for `list-keys` to page through them.
const MAX_LIST: usize = 100_000;

pub(crate) struct RedisBackend {
    conn: ConnectionManager,
}

fn full_key(ns: &str, key: &str) -> String {
    format!("atoll/{ns}/{key}")
}

impl RedisBackend {
    /// Check the URL; the connection is made on first use, so a server that is down at
    /// start does not stop the app (its requests fail until it is back).
    pub(crate) fn new(url: &str) -> Result<Self, BackendError> {
        let client =
            redis::Client::open(url).map_err(|e| BackendError::new(format!("invalid URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(4)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| BackendError::new(format!("cannot set up the connection: {e}")))?;
        Ok(Self { conn })
    }
}

fn unavailable(e: redis::RedisError) -> BackendError {
    BackendError::new(format!("redis: {e}"))
}

impl Backend for RedisBackend {
    fn get<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, Option<Vec<u8>>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("GET")
                .arg(full_key(ns, key))
                .query_async::<Option<Vec<u8>>>(&mut conn)
                .await
                .map_err(unavailable)
        })
    }

    fn set<'a>(&'a self, ns: &'a str, key: &'a str, value: Vec<u8>) -> BoxFut<'a, ()> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("SET")
                .arg(full_key(ns, key))
                .arg(value)
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)
        })
    }

    fn delete<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, ()> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("DEL")
                .arg(full_key(ns, key))
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)
        })
    }

    fn exists<'a>(&'a self, ns: &'a str, key: &'a str) -> BoxFut<'a, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("EXISTS")
                .arg(full_key(ns, key))
                .query_async::<bool>(&mut conn)
                .await
                .map_err(unavailable)
        })
    }

    fn list<'a>(
        &'a self,
        ns: &'a str,
        offset: u64,
        limit: usize,
    ) -> BoxFut<'a, (Vec<String>, bool)> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let prefix = full_key(ns, "");
            // App names and labels have no glob characters, so the prefix is literal.
            let pattern = format!("{prefix}*");
            let mut cursor: u64 = 0;
            let mut all = Vec::new();
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                all.extend(
                    batch
                        .into_iter()
                        .filter_map(|k| k.strip_prefix(&prefix).map(String::from)),
                );
                if all.len() > MAX_LIST {
                    return Err(BackendError::new(format!(
                        "the store has more than {MAX_LIST} keys to list"
                    )));
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            all.sort();
            all.dedup();
            let skip = usize::try_from(offset).unwrap_or(usize::MAX).min(all.len());
            let more = all.len() - skip > limit;
            Ok((all.into_iter().skip(skip).take(limit).collect(), more))
        })
    }

    fn increment<'a>(&'a self, ns: &'a str, key: &'a str, delta: i64) -> BoxFut<'a, i64> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            redis::cmd("INCRBY")
                .arg(full_key(ns, key))
                .arg(delta)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)
        })
    }

    fn cas_write<'a>(
        &'a self,
        ns: &'a str,
        key: &'a str,
        seen: &'a CasVersion,
        value: Vec<u8>,
    ) -> BoxFut<'a, bool> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            let expected = seen.value()?;
            // Compare and set in one server-side script, atomic in Redis.
            const SCRIPT: &str = "local cur = redis.call('GET', KEYS[1]) \
                if ARGV[1] == '0' then if cur then return 0 end \
                elseif cur ~= ARGV[2] then return 0 end \
                redis.call('SET', KEYS[1], ARGV[3]) return 1";
            let (present, old): (&str, &[u8]) = match expected {
                Some(v) => ("1", v),
                None => ("0", b""),
            };
            let done: i64 = redis::cmd("EVAL")
                .arg(SCRIPT)
                .arg(1)
                .arg(full_key(ns, key))
                .arg(present)
                .arg(old)
                .arg(value)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            Ok(done == 1)
        })
    }
}
