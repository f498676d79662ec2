//! One module per subcommand, each with an `execute()`.

pub mod add;
pub mod build;
pub mod call;
pub mod doctor;
pub mod fleet;
pub mod inspect;
pub mod key;
pub mod manual;
pub mod new;
pub mod oci;
pub mod publish;
pub mod pull;
pub mod registry;
pub mod replay;
pub mod search;
mod share;
pub mod up;
pub mod watch;
pub mod yank;

/// The manifest a single-app command works on: `-f FILE`, else `DIR/atoll.toml`, else
/// `./atoll.toml`.
pub(crate) fn manifest_path(
    dir: Option<&std::path::Path>,
    file: Option<&std::path::Path>,
) -> std::path::PathBuf {
    match (file, dir) {
        (Some(f), _) => f.to_path_buf(),
        (None, Some(d)) => d.join(atoll_manifest::MANIFEST_FILE),
        (None, None) => std::path::PathBuf::from(atoll_manifest::MANIFEST_FILE),
    }
}

/// How much goes to stderr: `--quiet`, default, `-v`, `-vv`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Verbosity {
    Quiet,
    Normal,
    Debug,
    Trace,
}

static VERBOSITY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);

/// Set once by `main` from the global flags.
pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, std::sync::atomic::Ordering::Relaxed);
}

/// The global `--quiet` / `--verbose` setting.
pub fn verbosity() -> Verbosity {
    match VERBOSITY.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        2 => Verbosity::Debug,
        _ => Verbosity::Trace,
    }
}

/// Whether stderr gets colors: a terminal, and neither `NO_COLOR` nor `TERM=dumb`
/// (<https://no-color.org>); `CLICOLOR_FORCE=1` forces them.
pub fn stderr_color() -> bool {
    use std::io::IsTerminal;
    colors_for(std::io::stderr().is_terminal())
}

/// The same for stdout (tables and findings a terminal shows in color).
pub fn stdout_color() -> bool {
    use std::io::IsTerminal;
    colors_for(std::io::stdout().is_terminal())
}

fn colors_for(terminal: bool) -> bool {
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    terminal
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").as_deref() != Ok("dumb")
}

/// Print `value` as pretty JSON on stdout, the `--json` of every command (a closed pipe,
/// as in `atoll ... --json | head`, is not an error).
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write as _;
    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// Arguments that parse but make no sense (an unknown template, a bad name, an address
/// that is not one): exit code 2, as clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A bad component given on the command line (not through a manifest): exit code 4.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ComponentError(pub String);
