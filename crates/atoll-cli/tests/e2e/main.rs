//! End-to-end tests: the real `atoll` binary, real components from `crates/test-programs`,
//! real HTTP over loopback.

mod admin;
mod call;
mod common;
mod compose;
mod cron;
mod fairness;
mod files;
mod flags;
mod fleet;
mod hostile;
mod inspect;
mod keyvalue;
mod languages;
mod lifecycle;
mod limits;
mod logs;
mod manners;
mod multi_app;
mod oci;
mod outbound;
mod record;
mod serve;
mod telemetry;
mod templates;
mod ui;
mod variables;
mod watch;
