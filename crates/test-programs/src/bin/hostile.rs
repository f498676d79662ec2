//! A guest that misbehaves in the way its path asks for:
//! `.../loop` spins forever, `/sleep` blocks in a host call forever, `/alloc` allocates
//! without bound, `/trap` hits `unreachable`, `/stack` recurses until the wasm stack
//! overflows, `/shadow-stack` until the shadow stack in linear memory does, `/no-response` returns without setting a response, `/panic-after-headers`
//! sends headers and part of the body and then panics, `/denied-then-trap` asks for a
//! TCP socket (not granted) and panics when it is refused, `/ok` behaves.
use std::hint::black_box;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

struct Hostile;

/// Recursion that keeps everything in wasm locals: overflows the wasm stack.
#[allow(unconditional_recursion)]
fn recurse(n: u64) -> u64 {
    black_box(recurse(black_box(n + 1))).wrapping_add(n)
}

/// Recursion through an array on the shadow stack in linear memory: overflows that.
#[allow(unconditional_recursion)]
fn recurse_shadow(n: u64, pad: [u64; 16]) -> u64 {
    black_box(recurse_shadow(black_box(n + 1), black_box(pad)) + pad[0])
}

impl Guest for Hostile {
    fn handle(req: IncomingRequest, out: ResponseOutparam) {
        let path = test_programs::path(&req);
        // Match on the last segment so the guest works under any route prefix.
        match path.rsplit('/').next().unwrap_or("") {
            "loop" => {
                let mut i: u64 = 0;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            "sleep" => loop {
                wasip2::clocks::monotonic_clock::subscribe_duration(3_600 * 1_000_000_000).block();
            },
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    chunk[0] = 1;
                    hoard.push(black_box(chunk));
                }
            }
            "trap" => core::arch::wasm32::unreachable(),
            "stack" => {
                black_box(recurse(0));
            }
            "shadow-stack" => {
                black_box(recurse_shadow(0, [1; 16]));
            }
            "denied-then-trap" => {
                use wasip2::sockets::network::IpAddressFamily;
                let socket = wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4);
                if let Err(e) = socket {
                    panic!("no network for this guest: {e:?}");
                }
                test_programs::respond(out, 200, "text/plain", b"socket granted?\n");
            }
            "no-response" => {
                drop(out);
            }
            "panic-after-headers" => {
                let resp = OutgoingResponse::new(Fields::new());
                let body = resp.body().expect("body once");
                wasip2::http::types::ResponseOutparam::set(out, Ok(resp));
                test_programs::write_all(&body, b"partial body");
                panic!("guest panicked after sending headers");
            }
            _ => test_programs::respond(out, 200, "text/plain", b"ok\n"),
        }
    }
}
wasip2::http::proxy::export!(Hostile);
fn main() {}
