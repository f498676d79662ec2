//! Runs the shared CPU-bound workload (`?rounds=N`, default 4) and answers with its hash.
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Compute;
impl Guest for Compute {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let rounds: u32 = test_programs::query(&req, "rounds").and_then(|v| v.parse().ok()).unwrap_or(4);
        let h = test_programs::compute::workload(rounds);
        test_programs::respond(out, 200, "text/plain", format!("{h:016x}\n").as_bytes());
    }
}
wasip2::http::proxy::export!(Compute);
fn main() {}
