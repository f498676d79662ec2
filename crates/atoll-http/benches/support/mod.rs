//! Shared by the benches: load a test program and run one request through a fresh instance
//! in process, the way `request.rs` does, minus the sockets.

use std::path::Path;

use atoll_engine::{Engine, EngineConfig, LoadedComponent};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// The same allocator as the `atoll` binary, so the benches measure what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An engine with atoll's default configuration and one loaded component.
pub fn load(wasm_path: &str) -> (Engine, LoadedComponent) {
    let manifest = format!(
        "[app]\nname = \"bench\"\n[component.c]\nsource = {wasm_path:?}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n"
    );
    let app = atoll_manifest::parse(manifest, Path::new("atoll.toml"), Path::new("."))
        .expect("bench manifest");
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    eprintln!("pooling allocator: {}", engine.is_pooling());
    let (component, _) = engine
        .load_component(&app, &app.components["c"])
        .expect("load component");
    (engine, component)
}

/// Store + instantiate + call `incoming-handler` + read the body + drop.
pub async fn request(component: &LoadedComponent, uri: &str) -> Bytes {
    let mut store = component.new_store();
    let req = hyper::Request::builder()
        .uri(uri)
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
    let proxy = component
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
    resp.into_body().collect().await.expect("body").to_bytes()
}
