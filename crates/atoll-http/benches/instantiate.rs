//! In-process cost of one request's instance: `Store::new` with limits, instantiate the
//! hello component from its warm pooled slot, call `wasi:http/incoming-handler`, read
//! the response body, drop the store. No sockets: this is the floor under the server's
//! per-request cost. Beside it, the cost of starting and reaping a process, which is
//! what a process per request pays. Run with `cargo bench -p atoll-http --bench instantiate`.

#[allow(missing_docs)]
mod support;

use criterion::{Criterion, criterion_main};

fn bench(c: &mut Criterion) {
    // ATOLL_BENCH_WASM=path/to/component.wasm measures another hello-like component
    // (one that answers `Hello, world!\n`) in the same way.
    let wasm = std::env::var("ATOLL_BENCH_WASM")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| test_programs_artifacts::HELLO.to_string());
    let (_engine, hello) = support::load(&wasm);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    c.bench_function("instantiate+handle+drop hello", |b| {
        b.iter(|| {
            let body = rt.block_on(support::request(&hello, "http://localhost/"));
            assert_eq!(&body[..], b"Hello, world!\n");
        })
    });
    // The same request in parts, to see where its time goes: a store alone (atoll's
    // per-instance context and limits), then a store with an instance and no call.
    c.bench_function("part: new store + drop", |b| {
        b.iter(|| drop(hello.new_store()))
    });
    c.bench_function("part: new store + instantiate + drop", |b| {
        b.iter(|| {
            let mut store = hello.new_store();
            rt.block_on(hello.pre().instantiate_async(&mut store))
                .expect("instantiate");
        })
    });
    // The isolation unit of CGI-style serving, for comparison: start a process and wait
    // for it to exit (the smallest one there is, doing nothing).
    c.bench_function("spawn+wait a process (/bin/true)", |b| {
        b.iter(|| {
            let status = std::process::Command::new("/bin/true")
                .status()
                .expect("spawn /bin/true");
            assert!(status.success());
        })
    });
}

mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
