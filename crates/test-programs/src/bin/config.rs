//! `wasi:config/store`: `GET /?key=K` answers the value of config key K (404 if unset);
//! `GET /` lists every key the guest can see (names only). `?print=K` also writes the
//! value to stdout (to check that secrets are redacted from logs). `?leak=HOW&key=K` tries
//! to get K's value into the host's logs at their edges: `straddle` (stdout, across the
//! 4 KiB line cut), `cap` (stdout, cut by the 64 KiB per-request cap), `logging`
//! (wasi:logging, across its cut, and as its context) and `error` (answered as the error
//! the host logs). (A refused store label: the `kv` guest, which takes the label from
//! the query.)
use test_programs::bindings::wasi::config::store;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Config;
impl Guest for Config {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        if let Some(how) = test_programs::query(&req, "leak") {
            let key = test_programs::query(&req, "key").unwrap_or_default();
            let secret = store::get(&key).ok().flatten().unwrap_or_default();
            return leak(&how, &secret, out);
        }
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
fn leak(how: &str, secret: &str, out: ResponseOutparam) {
    use std::io::Write;
    let mut stdout = std::io::stdout();
    match how {
        "straddle" => {
            // The value's middle at the cut, written in pieces.
            let _ = stdout.write_all("x".repeat(4096 - secret.len() / 2).as_bytes());
            let (a, b) = secret.split_at(secret.len() / 2);
            let _ = stdout.write_all(a.as_bytes());
            let _ = stdout.flush();
            let _ = stdout.write_all(b.as_bytes());
            let _ = stdout.write_all(b" after the straddle\n");
        }
        "cap" => {
            // Lines up to 64 KiB less half the value, then the value: the cap falls
            // in its middle.
            let upto = 65536 - secret.len() / 2;
            let line = format!("{}\n", "z".repeat(99));
            let mut written = 0;
            while written + line.len() <= upto {
                let _ = stdout.write_all(line.as_bytes());
                written += line.len();
            }
            let _ = stdout.write_all("w".repeat(upto - written).as_bytes());
            let _ = stdout.write_all(format!("{secret} past the cap\n").as_bytes());
        }
        "logging" => {
            use test_programs::bindings::wasi::logging::logging::{log, Level};
            let half = secret.len() / 2;
            log(Level::Warn, "edge", &format!("{}{secret} across the cut", "l".repeat(4096 - half)));
            log(Level::Warn, &format!("{}{secret}", "c".repeat(256 - half)), "the context is cut");
            log(Level::Warn, secret, "the context is the secret");
        }
        "error" => {
            use wasip2::http::types::ErrorCode;
            let _ = stdout.flush();
            ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(format!("failed with {secret}")))));
            return;
        }
        _ => {}
    }
    let _ = stdout.flush();
    test_programs::respond(out, 200, "text/plain", b"leaked?\n");
}

wasip2::http::proxy::export!(Config);
fn main() {}
