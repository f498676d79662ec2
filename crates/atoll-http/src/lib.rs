//! The HTTP trigger: a hyper server that routes each request to a component and runs it
//! in a fresh, limited instance.
//!
//! Not for compiling or configuring wasmtime (that is `atoll-engine`), or for reading
//! manifests (`atoll-manifest`); it takes an [`AppSet`] built from both.
//!
//! Key types: [`AppSet`] (the apps served, their components, and a [`Router`] per host), [`HttpConfig`] (caps and timeouts),
//! and [`serve`], which runs until its shutdown future completes. The per-request path
//! lives in one file, `request.rs`, so its cost stays visible.
//!
//! Status codes of our own: 404 no route; 413 body over the cap; 431 head over the cap
//! (from hyper); 503 with `retry-after` over a component's concurrency limit or when the
//! instance pool is full; 504 when a guest runs past its timeout; 500 when a guest traps,
//! runs out of memory or stack, or returns without a response.

mod affinity;
mod apps;
mod body;
mod cork;
mod request;
mod router;
mod server;

pub use apps::{AppSet, RouteConflict, ServedComponent};
pub use request::ServerBody;
pub use router::Router;
pub use server::{HttpConfig, serve};
