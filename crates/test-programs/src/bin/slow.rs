//! Sleeps `?ms=N` milliseconds (default 500) on the host clock, then answers. Used for the
//! concurrency limit and graceful shutdown tests. Prints `sleeping Nms` first, so a test
//! can wait for the request to be running (its stdout becomes a log line).
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Slow;
impl Guest for Slow {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let ms: u64 = test_programs::query(&req, "ms").and_then(|v| v.parse().ok()).unwrap_or(500);
        println!("sleeping {ms}ms");
        wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
        test_programs::respond(out, 200, "text/plain", format!("slept {ms}ms\n").as_bytes());
    }
}
wasip2::http::proxy::export!(Slow);
fn main() {}
