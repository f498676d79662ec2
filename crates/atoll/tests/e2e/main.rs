//! End-to-end tests: the real `atoll` binary, real components from `crates/test-programs`,
//! real HTTP over loopback.

mod common;
mod hostile;
mod languages;
mod lifecycle;
mod limits;
mod multi_app;
mod serve;
mod ui;
