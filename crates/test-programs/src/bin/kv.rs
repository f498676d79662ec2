//! `wasi:keyvalue`: `GET /?store=S&op=OP&key=K[&value=V][&by=N]` with OP one of get, set,
//! delete, exists, incr, list, setmany, getmany. Answers 200 with the result, 404 for a
//! missing key, 403 for `access-denied`, 500 for any other error (with its message).
use test_programs::bindings::wasi::keyvalue::{atomics, batch, store};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Kv;

fn fail(out: ResponseOutparam, e: store::Error) {
    match e {
        store::Error::AccessDenied => test_programs::respond(out, 403, "text/plain", b"access-denied"),
        store::Error::NoSuchStore => test_programs::respond(out, 404, "text/plain", b"no-such-store"),
        store::Error::Other(m) => test_programs::respond(out, 500, "text/plain", format!("other: {m}").as_bytes()),
    }
}

impl Guest for Kv {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let q = |n: &str| test_programs::query(&req, n).unwrap_or_default();
        let (label, op, key, value) = (q("store"), q("op"), q("key"), q("value"));
        let bucket = match store::open(&label) {
            Ok(b) => b,
            Err(e) => return fail(out, e),
        };
        let result: Result<(u16, String), store::Error> = match op.as_str() {
            "get" => bucket.get(&key).map(|v| match v {
                Some(v) => (200, String::from_utf8_lossy(&v).into_owned()),
                None => (404, "not found".into()),
            }),
            "set" => bucket.set(&key, value.as_bytes()).map(|()| (200, "ok".into())),
            "delete" => bucket.delete(&key).map(|()| (200, "ok".into())),
            "exists" => bucket.exists(&key).map(|b| (200, b.to_string())),
            "incr" => {
                let by = q("by").parse().unwrap_or(1);
                atomics::increment(&bucket, &key, by).map(|n| (200, n.to_string()))
            }
            "list" => {
                let mut all = Vec::new();
                let mut cursor = None;
                loop {
                    match bucket.list_keys(cursor) {
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
            "setmany" => {
                let kvs: Vec<(String, Vec<u8>)> = key.split(',').map(|k| (k.to_string(), value.as_bytes().to_vec())).collect();
                batch::set_many(&bucket, &kvs).map(|()| (200, "ok".into()))
            }
            "getmany" => {
                let keys: Vec<String> = key.split(',').map(String::from).collect();
                batch::get_many(&bucket, &keys).map(|vs| {
                    let parts: Vec<String> = vs
                        .into_iter()
                        .map(|v| match v {
                            Some((k, v)) => format!("{k}={}", String::from_utf8_lossy(&v)),
                            None => "-".into(),
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
wasip2::http::proxy::export!(Kv);
fn main() {}
