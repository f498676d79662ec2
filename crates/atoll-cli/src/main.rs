//! `atoll`: build, share and run sandboxed WebAssembly components.
//!
//! A thin shell over the library crates: it parses arguments, sets up logging, and calls
//! one `commands::<verb>::execute`. Anything a library user would want lives in the
//! crates, not here.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Build, share and run sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "atoll", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    /// Only warnings and errors on stderr (no progress, no info lines).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More detail on stderr: -v for debug lines, -vv for trace (ATOLL_LOG overrides both).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// The exit codes, documented in `atoll --help`, the man page and the README.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a runtime failure (a build command failed, a registry or backend is unreachable, ...)
  2  a usage error (an unknown flag, a missing argument)
  3  a manifest error (atoll.toml or spin.toml: the message names file, line and key)
  4  a component error (a file that is missing, not a component, or does not compile or link)

Examples:
  atoll new http-rust hello && cd hello && atoll up
  atoll inspect target/wasm32-wasip2/release/hello.wasm
  atoll doctor";

#[derive(Subcommand)]
enum Command {
    /// Serve an app's triggers (HTTP, cron): a fresh, sandboxed instance per request or tick.
    Up(commands::up::UpCommand),
    /// `atoll up --watch`: serve, and reload on every change to the app.
    Watch(commands::up::UpCommand),
    /// Run a stateless fleet node: serve every deployed app, converging on the desired
    /// state in NATS JetStream.
    Node(commands::fleet::NodeCommand),
    /// Deploy an app to a fleet: stage it on every live node, then commit (zero downtime).
    Deploy(commands::fleet::DeployCommand),
    /// Show a fleet: each app's desired version and what every live node serves.
    Status(commands::fleet::StatusCommand),
    /// Make an app's previous version current again on every fleet node.
    Rollback(commands::fleet::RollbackCommand),
    /// Replay a request recorded by `atoll up --record` against the current build of its
    /// component, offline, and show how the response differs.
    Replay(commands::replay::ReplayCommand),
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
    /// Create a new app from a template (`atoll new --list` shows them).
    New(commands::new::NewCommand),
    /// Check this machine, the toolchains and the app for what atoll needs, and say how
    /// to fix what is missing.
    Doctor(commands::doctor::DoctorCommand),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completions(commands::manual::CompletionsCommand),
    /// Write man pages (atoll.1 and one per subcommand), generated from these definitions.
    Man(commands::manual::ManCommand),
}

/// The examples each subcommand's `--help` ends with, by command path; a command that
/// sets its own `after_help` keeps it (it holds its examples).
const EXAMPLES: &[(&str, &str)] = &[
    (
        "up",
        "atoll up                                 the app in ./atoll.toml on 127.0.0.1:3000\n  atoll up examples/hello --listen 0.0.0.0:8080\n  atoll up --watch                         reload on every change\n  atoll up oci://127.0.0.1:5000/acme/hello:1.0",
    ),
    (
        "node",
        "atoll node --nats nats://127.0.0.1:4222 --listen 0.0.0.0:8080 --state /var/lib/atoll\n  atoll node --nats nats://nats:4222 --name node-a --runtime-config runtime.toml --state ./state",
    ),
    (
        "deploy",
        "atoll deploy examples/hello --nats nats://127.0.0.1:4222\n  atoll deploy --nats nats://127.0.0.1:4222 --timeout 30s --json",
    ),
    (
        "status",
        "atoll status --nats nats://127.0.0.1:4222\n  atoll status --nats nats://127.0.0.1:4222 --json | jq .nodes",
    ),
    (
        "rollback",
        "atoll rollback hello --nats nats://127.0.0.1:4222",
    ),
    (
        "replay",
        "atoll up --record-failures --record recordings    record the requests that fail\n  atoll replay recordings/1764770000000-0-shop-checkout.json\n  atoll replay -f fixed/atoll.toml recording.json --json",
    ),
    (
        "watch",
        "atoll watch                              the same as atoll up --watch",
    ),
    (
        "build",
        "atoll build                              build what is stale in ./atoll.toml\n  atoll build --force                      rebuild every component\n  atoll build examples/hello -v            stream each build tool's output",
    ),
    (
        "inspect",
        "atoll inspect                            the app in ./atoll.toml\n  atoll inspect hello.wasm                 a bare component: its WIT world, size, sha256, producers\n  atoll inspect --json | jq .components",
    ),
    ("key", "atoll key generate\n  atoll key show"),
    ("key generate", "atoll key generate"),
    ("key show", "atoll key show"),
    ("key list", "atoll key list"),
    (
        "key grant",
        "atoll key grant --namespace acme PUBLIC_KEY_HEX --registry http://127.0.0.1:8080\n  (PUBLIC_KEY_HEX: the 64 hex digits `atoll key show` prints for the other key)",
    ),
    (
        "key revoke",
        "atoll key revoke --namespace acme PUBLIC_KEY_HEX --registry http://127.0.0.1:8080",
    ),
    (
        "publish",
        "atoll publish target/wasm32-wasip2/release/hello.wasm --package acme:hello --version 1.0.0 --registry http://127.0.0.1:8080",
    ),
    (
        "yank",
        "atoll yank acme:hello@1.0.0 --registry http://127.0.0.1:8080",
    ),
    (
        "add",
        "atoll add acme:hello@^1.0 --registry http://127.0.0.1:8080\n  atoll add acme:hello@1.2.0 --component greeter",
    ),
    (
        "search",
        "atoll search hello --registry http://127.0.0.1:8080\n  atoll search --exports wasi:http/incoming-handler --json",
    ),
    (
        "registry",
        "atoll registry serve --listen 127.0.0.1:8080 --data ./registry-data\n  atoll registry audit --registry http://127.0.0.1:8080",
    ),
    (
        "registry serve",
        "atoll registry serve --listen 127.0.0.1:8080 --data ./registry-data\n  atoll registry serve --db postgres://postgres@127.0.0.1:5432/test",
    ),
    (
        "registry audit",
        "atoll registry audit --registry http://127.0.0.1:8080",
    ),
    (
        "doctor",
        "atoll doctor                             this machine, and the app in . if there is one\n  atoll doctor examples/hello --listen 127.0.0.1:8080\n  atoll doctor --json",
    ),
    (
        "completions",
        "atoll completions bash > ~/.local/share/bash-completion/completions/atoll\n  atoll completions zsh > ~/.zfunc/_atoll\n  atoll completions fish > ~/.config/fish/completions/atoll.fish",
    ),
    (
        "man",
        "atoll man --out /usr/local/share/man/man1 && man atoll\n  atoll man --out target/man",
    ),
];

/// The command definitions with every subcommand's examples in place.
pub(crate) fn cli_command() -> clap::Command {
    fn add(cmd: clap::Command, path: &str) -> clap::Command {
        let mut cmd = cmd;
        if cmd.get_after_help().is_none()
            && let Some((_, ex)) = EXAMPLES.iter().find(|(p, _)| *p == path)
        {
            cmd = cmd.after_help(format!("Examples:\n  {ex}"));
        }
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        for name in names {
            let sub_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path} {name}")
            };
            cmd = cmd.mut_subcommand(name, |c| add(c, &sub_path));
        }
        cmd
    }
    add(<Cli as clap::CommandFactory>::command(), "")
}

/// mimalloc instead of glibc's malloc: per-request instances allocate many small, short-lived
/// objects (see the workspace Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = cli_command().get_matches();
    let mut cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The dashboard's log tail sees what stderr gets, from the first line on.
    let tail = match &mut cli.command {
        Command::Up(cmd) | Command::Watch(cmd) if cmd.admin.is_some() => {
            let tail = atoll_admin::LogTail::default();
            cmd.log_tail = Some(tail.clone());
            Some(tail)
        }
        Command::Node(cmd) if cmd.admin.is_some() => {
            let tail = atoll_admin::LogTail::default();
            cmd.log_tail = Some(tail.clone());
            Some(tail)
        }
        _ => None,
    };
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else {
        match cli.verbose {
            0 => Verbosity::Normal,
            1 => Verbosity::Debug,
            _ => Verbosity::Trace,
        }
    };
    commands::set_verbosity(verbosity);
    init_logging(tail, verbosity);
    let result = match cli.command {
        Command::Up(cmd) => cmd.execute(),
        Command::Watch(mut cmd) => {
            cmd.watch = true;
            cmd.execute()
        }
        Command::Node(cmd) => cmd.execute(),
        Command::Deploy(cmd) => cmd.execute(),
        Command::Status(cmd) => cmd.execute(),
        Command::Rollback(cmd) => cmd.execute(),
        Command::Replay(cmd) => cmd.execute(),
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
        Command::New(cmd) => cmd.execute(),
        Command::Doctor(cmd) => cmd.execute(),
        Command::Completions(cmd) => cmd.execute(cli_command()),
        Command::Man(cmd) => cmd.execute(cli_command()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The documented exit code of a failure (see [`EXIT_CODES`]): 4 when a component is
/// at fault, 3 for the manifest, 1 otherwise (clap exits with 2 for usage errors).
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(d) = cause.downcast_ref::<atoll_manifest::Diagnostic>() {
            return if d.is_about_component() { 4 } else { 3 };
        }
        let located = match cause.downcast_ref::<atoll_runtime::RuntimeError>() {
            Some(atoll_runtime::RuntimeError::Manifest(d)) => Some(&**d),
            _ => None,
        }
        .or_else(|| cause.downcast_ref::<atoll_http::RouteError>()?.diagnostic())
        .or_else(|| {
            cause
                .downcast_ref::<atoll_cron::CronError>()
                .map(|e| e.diagnostic())
        });
        if let Some(d) = located {
            return if d.is_about_component() { 4 } else { 3 };
        }
        if cause.downcast_ref::<commands::UsageError>().is_some() {
            return 2;
        }
        if cause.downcast_ref::<atoll_engine::LoadError>().is_some()
            || cause.downcast_ref::<commands::ComponentError>().is_some()
            || matches!(
                cause.downcast_ref::<atoll::Error>(),
                Some(atoll::Error::Link { .. } | atoll::Error::InvalidComponent { .. })
            )
        {
            return 4;
        }
    }
    1
}

use commands::Verbosity;

/// Print an error chain the way a user can act on it. Manifest diagnostics render with
/// their file, line and help already.
fn report(e: &anyhow::Error) {
    let color = commands::stderr_color();
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

fn init_logging(tail: Option<atoll_admin::LogTail>, verbosity: Verbosity) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match verbosity {
        Verbosity::Quiet => "warn",
        Verbosity::Normal => "info,wasmtime=warn,cranelift=warn,hyper=warn,h2=warn,async_nats=warn",
        Verbosity::Debug => "debug,wasmtime=info,cranelift=warn,hyper=info,h2=info,rustls=info",
        Verbosity::Trace => "trace,cranelift=info",
    };
    let filter = EnvFilter::try_from_env("ATOLL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(commands::stderr_color())
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

#[cfg(test)]
mod tests {
    /// Shell words of one example command, single quotes removed.
    fn words(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '\'' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => {
                    if !word.is_empty() {
                        out.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
        out
    }

    /// Every `atoll ...` line of every command's help examples parses with the real
    /// definitions (the command itself, before a comment column, `&&`, `|` or `>`).
    #[test]
    fn every_help_example_parses() {
        fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
            if let Some(help) = cmd.get_after_help() {
                for line in help.to_string().lines() {
                    let line = line.trim_start();
                    if !line.starts_with("atoll ") {
                        continue;
                    }
                    let mut command = line.split("  ").next().unwrap_or(line);
                    for cut in [" && ", " | ", " > "] {
                        command = command.split(cut).next().unwrap_or(command);
                    }
                    out.push(command.trim().to_string());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, out);
            }
        }
        let cmd = super::cli_command();
        let mut examples = Vec::new();
        walk(&cmd, &mut examples);
        assert!(examples.len() >= 30, "{examples:?}");
        for example in &examples {
            let args = words(example);
            if let Err(e) = cmd.clone().try_get_matches_from(&args) {
                panic!("the example `{example}` does not parse: {e}");
            }
        }
        // A wrong example is caught: the parse is not a formality.
        let wrong = words("atoll call x.wasm f '\"a\"' --memory");
        assert!(cmd.clone().try_get_matches_from(&wrong).is_ok());
        assert!(
            cmd.clone()
                .try_get_matches_from(words("atoll key grant acme KEY"))
                .is_err()
        );
    }
}
