//! The Spin 3 versions: `wasi:keyvalue@0.2.0-draft2` and
//! `wasi:config/store@0.2.0-draft-2024-09-27`. `GET /?store=S&op=OP&key=K[&value=V][&by=N]`
//! with OP one of get, set, incr (signed), list (pages with string cursors), getmany,
//! casadd (add `by` to a decimal counter with compare-and-swap, retrying on conflict),
//! config (read config key K). 200 with the result, 403 access-denied, 500 other errors.
use test_programs::spin_bindings::wasi::config::store as config;
use test_programs::spin_bindings::wasi::keyvalue::{atomics, batch, store};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct KvSpin;

fn fail(out: ResponseOutparam, e: store::Error) {
    match e {
        store::Error::AccessDenied => test_programs::respond(out, 403, "text/plain", b"access-denied"),
        store::Error::NoSuchStore => test_programs::respond(out, 404, "text/plain", b"no-such-store"),
        store::Error::Other(m) => test_programs::respond(out, 500, "text/plain", format!("other: {m}").as_bytes()),
    }
}

fn cas_add(bucket: &store::Bucket, key: &str, by: i64) -> Result<(u16, String), store::Error> {
    let mut cas = atomics::Cas::new(bucket, key)?;
    for _ in 0..10_000 {
        let current: i64 = match cas.current()? {
            Some(v) => String::from_utf8_lossy(&v).parse().unwrap_or(0),
            None => 0,
        };
        let next = (current + by).to_string();
        match atomics::swap(cas, next.as_bytes()) {
            Ok(()) => return Ok((200, next)),
            Err(atomics::CasError::CasFailed(fresh)) => cas = fresh,
            Err(atomics::CasError::StoreError(e)) => return Err(e),
        }
    }
    Ok((500, "too many conflicts".into()))
}

impl Guest for KvSpin {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let q = |n: &str| test_programs::query(&req, n).unwrap_or_default();
        let (label, op, key, value) = (q("store"), q("op"), q("key"), q("value"));
        if op == "config" {
            return match config::get(&key) {
                Ok(Some(v)) => test_programs::respond(out, 200, "text/plain", v.as_bytes()),
                Ok(None) => test_programs::respond(out, 404, "text/plain", b"unset"),
                Err(e) => test_programs::respond(out, 500, "text/plain", format!("{e:?}").as_bytes()),
            };
        }
        let bucket = match store::open(&label) {
            Ok(b) => b,
            Err(e) => return fail(out, e),
        };
        let by: i64 = q("by").parse().unwrap_or(1);
        let result: Result<(u16, String), store::Error> = match op.as_str() {
            "get" => bucket.get(&key).map(|v| match v {
                Some(v) => (200, String::from_utf8_lossy(&v).into_owned()),
                None => (404, "not found".into()),
            }),
            "set" => bucket.set(&key, value.as_bytes()).map(|()| (200, "ok".into())),
            "incr" => atomics::increment(&bucket, &key, by).map(|n| (200, n.to_string())),
            "casadd" => cas_add(&bucket, &key, by),
            "list" => {
                let mut all = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    match bucket.list_keys(cursor.as_deref()) {
                        Ok(r) => {
                            all.extend(r.keys);
                            match r.cursor {
                                Some(c) => cursor = Some(c),
                                None => break Ok((200, { all.sort(); all.join(",") })),
                            }
                        }
                        Err(e) => break Err(e),
                    }
                }
            }
            "getmany" => {
                let keys: Vec<String> = key.split(',').map(String::from).collect();
                batch::get_many(&bucket, &keys).map(|vs| {
                    let parts: Vec<String> = vs
                        .into_iter()
                        .map(|(k, v)| match v {
                            Some(v) => format!("{k}={}", String::from_utf8_lossy(&v)),
                            None => format!("{k}=-"),
                        })
                        .collect();
                    (200, parts.join(","))
                })
            }
            other => Ok((400, format!("unknown op `{other}`"))),
        };
        match result {
            Ok((status, body)) => test_programs::respond(out, status, "text/plain", body.as_bytes()),
            Err(e) => fail(out, e),
        }
    }
}
wasip2::http::proxy::export!(KvSpin);
fn main() {}
