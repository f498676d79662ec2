//! Shared by the benches: load a test program and run one request through a fresh instance
//! in process, the way `request.rs` does, minus the sockets.

use std::sync::Arc;

use atoll_capabilities::ComponentCapabilities;
use atoll_engine::{ComponentSpec, Engine, EngineConfig, InstanceState, LoadedComponent};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// The same allocator as the `atoll` binary, so the benches measure what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A loaded component and its HTTP view, as the HTTP trigger holds them.
pub struct Guest {
    loaded: LoadedComponent,
    proxy: ProxyPre<InstanceState>,
}

impl Guest {
    /// A fresh store, as for a request.
    pub fn new_store(&self) -> Store<InstanceState> {
        self.loaded.new_store()
    }

    /// The `incoming-handler` view.
    pub fn pre(&self) -> &ProxyPre<InstanceState> {
        &self.proxy
    }
}

/// An engine with atoll's default configuration and one loaded component, granted
/// nothing (as a manifest without grants).
pub fn load(wasm_path: &str) -> (Engine, Guest) {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    eprintln!("pooling allocator: {}", engine.is_pooling());
    let bytes = std::fs::read(wasm_path).expect("read component");
    let caps = Arc::new(ComponentCapabilities::deny_all("bench", "c"));
    let (loaded, _) = engine
        .load(&ComponentSpec::new("c"), &bytes, caps)
        .expect("load component");
    let proxy = ProxyPre::new(loaded.instance_pre().clone()).expect("an HTTP component");
    (engine, Guest { loaded, proxy })
}

/// Store + instantiate + call `incoming-handler` + read the body + drop.
pub async fn request(component: &Guest, uri: &str) -> Bytes {
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
