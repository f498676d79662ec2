//! `atoll`: build, share and run sandboxed WebAssembly components.
//!
//! A thin shell over the library crates: it parses arguments, sets up logging, and calls
//! one `commands::<verb>::execute`. Anything a library user would want lives in the
//! crates, not here.

mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build, share and run sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "atoll", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve an app's triggers (HTTP, cron): a fresh, sandboxed instance per request or tick.
    Up(commands::up::UpCommand),
    /// `atoll up --watch`: serve, and reload on every change to the app.
    Watch(commands::up::UpCommand),
    /// Call an exported function of any component once; arguments and result in WAVE.
    Call(commands::call::CallCommand),
    /// Run the build command of every component of an app.
    Build(commands::build::BuildCommand),
    /// Show each component's imports, exports, size, sha256, routes, and what the
    /// manifest grants it.
    Inspect(commands::inspect::InspectCommand),
    /// Manage the ed25519 keys that sign what you publish.
    Key(commands::key::KeyCommand),
    /// Sign a component and publish it to a registry.
    Publish(commands::publish::PublishCommand),
    /// Hide a published version from resolution (lockfiles keep working).
    Yank(commands::yank::YankCommand),
    /// Resolve, verify and download a package, and record it in atoll.lock.
    Add(commands::add::AddCommand),
    /// Download and verify every package in atoll.lock, or one component from an OCI
    /// registry (`atoll pull oci://HOST/REPO:TAG`).
    Pull(commands::pull::PullCommand),
    /// Push a component to an OCI registry (the CNCF Wasm layout `wkg` reads).
    Push(commands::oci::PushCommand),
    /// Find packages by name, or by the interfaces they export or import.
    Search(commands::search::SearchCommand),
    /// Run a component registry.
    Registry(commands::registry::RegistryCommand),
}

/// mimalloc instead of glibc's malloc: per-request instances allocate many small, short-lived
/// objects (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // The dashboard's log tail sees what stderr gets, from the first line on.
    let tail = match &mut cli.command {
        Command::Up(cmd) | Command::Watch(cmd) if cmd.admin.is_some() => {
            let tail = atoll_admin::LogTail::default();
            cmd.log_tail = Some(tail.clone());
            Some(tail)
        }
        _ => None,
    };
    init_logging(tail);
    let result = match cli.command {
        Command::Up(cmd) => cmd.execute(),
        Command::Watch(mut cmd) => {
            cmd.watch = true;
            cmd.execute()
        }
        Command::Call(cmd) => cmd.execute(),
        Command::Build(cmd) => cmd.execute(),
        Command::Inspect(cmd) => cmd.execute(),
        Command::Key(cmd) => cmd.execute(),
        Command::Publish(cmd) => cmd.execute(),
        Command::Yank(cmd) => cmd.execute(),
        Command::Add(cmd) => cmd.execute(),
        Command::Pull(cmd) => cmd.execute(),
        Command::Push(cmd) => cmd.execute(),
        Command::Search(cmd) => cmd.execute(),
        Command::Registry(cmd) => cmd.execute(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Print an error chain the way a user can act on it. Manifest diagnostics render with
/// their file, line and help already.
fn report(e: &anyhow::Error) {
    let color = std::io::stderr().is_terminal();
    let prefix = if color {
        "\x1b[1;31merror\x1b[0m"
    } else {
        "error"
    };
    let mut chain = e.chain();
    let first = chain.next().map(|c| c.to_string()).unwrap_or_default();
    eprint!("{prefix}: {first}");
    if !first.ends_with('\n') {
        eprintln!();
    }
    for cause in chain {
        eprintln!("  caused by: {cause}");
    }
}

fn init_logging(tail: Option<atoll_admin::LogTail>) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_env("ATOLL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn,hyper=warn,h2=warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // The filter goes outermost: a callsite it disables is then never asked about again
    // (`Interest::never`, cached), as with `fmt().with_env_filter()`. Inside it, a layer
    // such as the `Option` of the tail would otherwise make every disabled callsite
    // "sometimes" and cost a filter check per event and span, wasmtime-wasi's per host
    // call included.
    match tail {
        Some(tail) => tracing_subscriber::registry()
            .with(fmt)
            .with(tail.layer())
            .with(filter)
            .init(),
        None => tracing_subscriber::registry().with(fmt).with(filter).init(),
    }
}
