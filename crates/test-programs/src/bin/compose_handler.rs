//! The composition tests' handler: `Authorization: Bearer TOKEN` is checked by the
//! `acme:auth/verify` dependency, and the greeting comes from `acme:fmt/format`. It has
//! no code of its own for either: composed without them, it does not load.
mod bindings {
    wit_bindgen::generate!({ path: "wit-compose", world: "atoll:test-compose/handler", generate_all });
}

use bindings::acme::auth::verify;
use bindings::acme::fmt::format;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Handler;
impl Guest for Handler {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let token = req
            .headers()
            .get("authorization")
            .into_iter()
            .find_map(|v| String::from_utf8(v).ok())
            .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
            .unwrap_or_default();
        match verify::check(&token) {
            Some(user) => {
                let body = format::greet(&user);
                test_programs::respond(out, 200, "text/plain", body.as_bytes());
            }
            None => test_programs::respond(out, 401, "text/plain", b"who are you?\n"),
        }
    }
}
wasip2::http::proxy::export!(Handler);
fn main() {}
