//! Increments a global counter and answers with it. With a fresh instance per request the
//! answer is always 1; any reuse of instance state would show up as 2, 3, ...
//! Every request also checks, then dirties, three other kinds of state, and reports
//! whether it found the previous request's marks:
//! - `tag`: a non-zero static in the data segment (`"pristine"` in the module's image; a
//!   reset must copy the image back, not zero the page),
//! - `heap`: a 64 KiB heap block (the allocator hands out the same address each time),
//! - `stack`: 16 KiB of stack, deeper than the rest of the request reaches.
//!
//! With `?again=1` it runs those checks a second time in the same instance, where they
//! must find the first pass's marks: the probes' own self-test.
//!
//! With `?grow=1` it also grows its memory by 8 MiB (past the 4 MiB a pool slot keeps
//! resident) and reports whether any page of the grown region held a previous request's
//! canary before it writes its own.
use std::sync::atomic::{AtomicU64, Ordering};
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

static COUNT: AtomicU64 = AtomicU64::new(0);
static mut SCRATCH: [u8; 65536] = [0; 65536];
/// Initialised data: lives in the data segment, so its page holds the image's bytes.
static mut TAG: [u8; 8] = *b"pristine";
/// What a request leaves behind in the heap and on the stack.
const CANARY: [u8; 8] = *b"leftover";

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
        let mut marks = probe_and_mark();
        if test_programs::query(&req, "again").is_some() {
            marks = format!("{marks} again: {}", probe_and_mark());
        }
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
            format!("count={n} dirty={was_dirty} {marks}{grown}\n")
                .as_bytes(),
        );
    }
}
/// Check the data-segment tag, the heap block and the stack for marks, then mark them.
fn probe_and_mark() -> String {
    // SAFETY: single-threaded guest; nothing else touches TAG.
    let tag = unsafe {
        let p = &raw mut TAG;
        let was = core::ptr::read_volatile(p);
        core::ptr::write_volatile(p, *b"dirtied!");
        was
    };
    let tag = String::from_utf8_lossy(&tag).into_owned();
    let heap = if heap_was_dirty() { "dirty" } else { "clean" };
    let stack = if stack_was_dirty() { "dirty" } else { "clean" };
    format!("tag={tag} heap={heap} stack={stack}")
}

/// Allocate 64 KiB, look for a previous request's canary in it, fill it with the canary
/// and free it (a second call gets the same block back).
fn heap_was_dirty() -> bool {
    const SIZE: usize = 64 * 1024;
    let Ok(layout) = std::alloc::Layout::from_size_align(SIZE, 8) else {
        return false;
    };
    // SAFETY: the layout is non-zero; the block is read and written only inside its
    // bounds, with volatile accesses (its bytes are whatever the memory held).
    unsafe {
        let p = std::alloc::alloc(layout);
        if p.is_null() {
            return false;
        }
        let mut dirty = false;
        for i in (0..SIZE).step_by(8) {
            let word = core::ptr::read_volatile(p.add(i).cast::<[u8; 8]>());
            dirty |= word == CANARY;
            core::ptr::write_volatile(p.add(i).cast::<[u8; 8]>(), CANARY);
        }
        std::alloc::dealloc(p, layout);
        dirty
    }
}

/// Look for a previous request's canary in 16 KiB of this frame, then fill it.
#[inline(never)]
fn stack_was_dirty() -> bool {
    let mut frame = core::mem::MaybeUninit::<[[u8; 8]; 2048]>::uninit();
    let base = frame.as_mut_ptr().cast::<[u8; 8]>();
    let mut dirty = false;
    for i in 0..2048 {
        // SAFETY: inside the frame's array; volatile, as the bytes are whatever the
        // stack held.
        unsafe {
            dirty |= core::ptr::read_volatile(base.add(i)) == CANARY;
            core::ptr::write_volatile(base.add(i), CANARY);
        }
    }
    core::hint::black_box(&frame);
    dirty
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
