//! Parse and validate `atoll.toml` into a resolved [`App`].
//!
//! This crate turns what an author wrote into a model the runtime can trust: every key is
//! known, every value has the right type and range, routes are unique, cron schedules
//! parse, and each trigger names a component that exists. Problems come back as a [`Diagnostic`] that names the
//! file, line, column and dotted key, and says what to do.
//!
//! It is *not* for anything beyond reading the manifest file: it does not look at the
//! `.wasm` files (that is `atoll-engine`, which reports its findings through
//! [`App::diagnostic`] so they still point at the `source` line), run build commands, or
//! know about wasmtime, tokio or the network.
//!
//! Key types: [`App`] (the resolved app), [`Component`] with its [`ComponentSource`] (a
//! local path, or a registry package the runtime resolves through `atoll.lock`),
//! [`Limits`], and [`Trigger`]: [`HttpTrigger`] with its [`Route`] (the app-wide
//! [`HttpSettings`] sit in [`App::http`]) or [`CronTrigger`] with its [`Schedule`] (UTC,
//! 5 or 6 fields, parsed by `croner`).

mod diagnostic;
mod grants;
mod model;
mod parse;
mod schedule;
mod spin;
mod units;

pub use diagnostic::{Diagnostic, SourceText, Span, did_you_mean};
pub use grants::{
    AllowedHost, ConfigTemplate, Denial, FileMount, Grants, HostPattern, MountSource, PortPattern,
    TemplatePart, Variable, check_url, parse_template,
};
pub use model::*;
pub use parse::{MANIFEST_FILE, check_name, find_in, load, load_with_notes, parse};
pub use schedule::Schedule;
pub use spin::{SPIN_MANIFEST_FILE, to_atoll_toml};
pub use units::{parse_duration, parse_size};
