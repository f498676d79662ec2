//! Paths of the guest components in `crates/test-programs`, compiled to `wasm32-wasip2`
//! by this crate's build script. Tests and benches depend on this crate instead of
//! building guests themselves, so each guest is built once per test run.

include!(concat!(env!("OUT_DIR"), "/programs.rs"));
