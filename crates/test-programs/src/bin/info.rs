//! Answers with what it saw: method and path, so routing tests can tell who answered.
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Info;
impl Guest for Info {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let body = format!("info {:?} {}\n", req.method(), req.path_with_query().unwrap_or_default());
        test_programs::respond(out, 200, "text/plain", body.as_bytes());
    }
}
wasip2::http::proxy::export!(Info);
fn main() {}
