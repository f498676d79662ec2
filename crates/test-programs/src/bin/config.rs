//! `wasi:config/store`: `GET /?key=K` answers the value of config key K (404 if unset);
//! `GET /` lists every key the guest can see (names only). `?print=K` also writes the
//! value to stdout (to check that secrets are redacted from logs).
use test_programs::bindings::wasi::config::store;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Config;
impl Guest for Config {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        if let Some(k) = test_programs::query(&req, "print") {
            if let Ok(Some(v)) = store::get(&k) {
                println!("the value of {k} is {v}");
            }
        }
        match test_programs::query(&req, "key") {
            Some(k) => match store::get(&k) {
                Ok(Some(v)) => test_programs::respond(out, 200, "text/plain", v.as_bytes()),
                Ok(None) => test_programs::respond(out, 404, "text/plain", b"unset"),
                Err(e) => test_programs::respond(out, 500, "text/plain", format!("{e:?}").as_bytes()),
            },
            None => match store::get_all() {
                Ok(all) => {
                    let mut keys: Vec<String> = all.into_iter().map(|(k, _)| k).collect();
                    keys.sort();
                    test_programs::respond(out, 200, "text/plain", format!("keys {}\n", keys.join(",")).as_bytes())
                }
                Err(e) => test_programs::respond(out, 500, "text/plain", format!("{e:?}").as_bytes()),
            },
        }
    }
}
wasip2::http::proxy::export!(Config);
fn main() {}
