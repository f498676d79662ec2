//! In-process cost of one request's instance: `Store::new` with limits, instantiate the
//! hello component from its warm pooled slot, call `wasi:http/incoming-handler`, read
//! the response body, drop the store. No sockets: this is the floor under the server's
//! per-request cost. Run with `cargo bench -p atoll-http --bench instantiate`.

use std::path::Path;

use atoll_engine::{Engine, EngineConfig};
use bytes::Bytes;
use criterion::{Criterion, criterion_main};
use http_body_util::{BodyExt, Empty};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

fn bench(c: &mut Criterion) {
    let manifest = format!(
        "[app]\nname = \"bench\"\n[component.hello]\nsource = {:?}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n",
        test_programs_artifacts::HELLO
    );
    let app = atoll_manifest::parse(manifest, Path::new("atoll.toml"), Path::new("."))
        .expect("bench manifest");
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    eprintln!("pooling allocator: {}", engine.is_pooling());
    let (hello, _) = engine
        .load_component(&app, &app.components["hello"])
        .expect("load hello");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    c.bench_function("instantiate+handle+drop hello", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut store = hello.new_store();
                let req = hyper::Request::builder()
                    .uri("http://localhost/")
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let (tx, rx) = tokio::sync::oneshot::channel();
                let req = store
                    .data_mut()
                    .http()
                    .new_incoming_request(Scheme::Http, req)
                    .expect("incoming request");
                let out = store
                    .data_mut()
                    .http()
                    .new_response_outparam(tx)
                    .expect("outparam");
                let proxy = hello
                    .pre()
                    .instantiate_async(&mut store)
                    .await
                    .expect("instantiate");
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
                    .expect("handle");
                let resp = rx.await.expect("response set").expect("not an error");
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                assert_eq!(&body[..], b"Hello, world!\n");
                drop(store);
            })
        })
    });
}

mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
