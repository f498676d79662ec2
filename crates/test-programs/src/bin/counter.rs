//! Increments a global counter and answers with it. With a fresh instance per request the
//! answer is always 1; any reuse of instance state would show up as 2, 3, ...
//! With `?grow=1` it also grows its memory by 8 MiB (past the 4 MiB a pool slot keeps
//! resident) and reports whether any page of the grown region held a previous request's
//! canary before it writes its own.
use std::sync::atomic::{AtomicU64, Ordering};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

static COUNT: AtomicU64 = AtomicU64::new(0);
static mut SCRATCH: [u8; 65536] = [0; 65536];

struct Counter;
impl Guest for Counter {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
        // Dirty a data page too, and report whether it was already dirty.
        // SAFETY: single-threaded guest; nothing else touches SCRATCH.
        let was_dirty = unsafe {
            let p = &raw mut SCRATCH;
            let was = (*p)[4096] != 0;
            (*p)[4096] = 0xAA;
            was
        };
        let grown = if test_programs::query(&req, "grow").is_some() {
            match grown_region_was_dirty() {
                Some(dirty) => format!(" grown_dirty={dirty}"),
                None => " grow_failed".to_string(),
            }
        } else {
            String::new()
        };
        test_programs::respond(
            out,
            200,
            "text/plain",
            format!("count={n} dirty={was_dirty}{grown}\n").as_bytes(),
        );
    }
}
/// Grow memory by 8 MiB and check one byte in each of its pages: a fresh instance starts
/// at the same size every time, so the region sits at the same addresses as in the
/// previous request, which left 0xBB in every page of it.
fn grown_region_was_dirty() -> Option<bool> {
    const PAGES: usize = 128;
    let old = core::arch::wasm32::memory_grow(0, PAGES);
    if old == usize::MAX {
        return None;
    }
    let base = old * 65536;
    let mut dirty = false;
    for page in 0..PAGES {
        // SAFETY: the region was just added by memory.grow; the allocator does not know
        // of it, so nothing else in this instance reads or writes it.
        unsafe {
            let p = (base + page * 65536 + 100) as *mut u8;
            dirty |= p.read_volatile() != 0;
            p.write_volatile(0xBB);
        }
    }
    Some(dirty)
}

wasip2::http::proxy::export!(Counter);
fn main() {}
