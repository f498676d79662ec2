//! Answers every request with `Hello, world!`.
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Hello;
impl Guest for Hello {
    fn handle(_req: IncomingRequest, out: ResponseOutparam) {
        test_programs::respond(out, 200, "text/plain", b"Hello, world!\n");
    }
}
wasip2::http::proxy::export!(Hello);
fn main() {}
