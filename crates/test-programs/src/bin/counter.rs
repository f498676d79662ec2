//! Increments a global counter and answers with it. With a fresh instance per request the
//! answer is always 1; any reuse of instance state would show up as 2, 3, ...
use std::sync::atomic::{AtomicU64, Ordering};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

static COUNT: AtomicU64 = AtomicU64::new(0);
static mut SCRATCH: [u8; 65536] = [0; 65536];

struct Counter;
impl Guest for Counter {
    fn handle(_req: IncomingRequest, out: ResponseOutparam) {
        let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        // Dirty a data page too, and report whether it was already dirty.
        // SAFETY: single-threaded guest; nothing else touches SCRATCH.
        let was_dirty = unsafe {
            let p = &raw mut SCRATCH;
            let was = (*p)[4096] != 0;
            (*p)[4096] = 0xAA;
            was
        };
        test_programs::respond(out, 200, "text/plain", format!("count={n} dirty={was_dirty}\n").as_bytes());
    }
}
wasip2::http::proxy::export!(Counter);
fn main() {}
