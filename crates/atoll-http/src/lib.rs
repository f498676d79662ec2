//! The HTTP trigger: a hyper server that routes each request to a component and runs it
//! in a fresh, limited instance.
//!
//! Not for compiling or configuring wasmtime (that is `atoll-engine`), loading apps or
//! running guests (`atoll-runtime`: admission, timeout, failure penalty and logging are
//! shared with every trigger), or for reading manifests (`atoll-manifest`); it serves
//! the [`LiveApps`](atoll_runtime::LiveApps) it is given, and follows their changes.
//!
//! Key types: [`RouteTable`] (over one snapshot of the live apps: a [`Router`] per
//! host, and each routed component's `ProxyPre`; also the HTTP trigger's check of a
//! candidate set: every routed component must export `wasi:http/incoming-handler`, no
//! two apps may claim one route), [`HttpConfig`] (caps and timeouts), and [`serve`],
//! which runs until its shutdown future completes. The per-request path lives in one
//! file, `request.rs`, so its cost stays visible.
//!
//! Status codes of our own: 404 no route; 413 body over the cap; 431 head over the cap
//! (from hyper); 503 with `retry-after` over a component's concurrency limit or when the
//! instance pool is full; 504 when a guest runs past its timeout; 500 when a guest traps,
//! runs out of memory or stack, or returns without a response.

mod affinity;
mod body;
mod cork;
mod record;
mod request;
mod router;
mod routes;
mod server;

pub use record::{RecordTo, Taping};
pub use request::ServerBody;
pub use router::Router;
pub use routes::{RouteConflict, RouteError, RouteTable};
pub use server::{HttpConfig, serve};
