//! `atoll doctor`: checks what atoll and the templates need on this machine, and the app
//! in a directory if there is one, and says how to fix each thing that is missing.
//!
//! Checks: the Rust `wasm32-wasip2` target; each guest toolchain a template needs
//! (cargo, componentize-py, Node.js and npm); the manifest, its components' sources and
//! the programs their build commands run; that every key-value backend of the runtime
//! config answers a real request; that the listen address is free; the kernel features
//! the engine uses (`PAGEMAP_SCAN`, swap off). Each finding is `ok`, `warn` or `error`;
//! an `error` makes the exit code 1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

/// Check this machine, the toolchains and the app.
#[derive(clap::Args)]
pub struct DoctorCommand {
    /// The app directory, with an atoll.toml [default: .]; without one, only the
    /// machine is checked.
    #[arg(conflicts_with = "file")]
    dir: Option<PathBuf>,
    /// The manifest file (instead of DIR/atoll.toml).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// The runtime config whose backends must answer.
    #[arg(long, value_name = "FILE")]
    runtime_config: Option<PathBuf>,
    /// The address `atoll up` will listen on, checked free.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Error,
}

/// One thing checked.
#[derive(Serialize, Debug)]
pub struct Finding {
    /// What was checked, e.g. `rust-target`, `toolchain:python`, `backend:cache`.
    pub check: String,
    pub status: Status,
    /// What was found.
    pub message: String,
    /// How to fix it (absent when it is fine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn ok(check: impl Into<String>, message: impl Into<String>) -> Finding {
    Finding {
        check: check.into(),
        status: Status::Ok,
        message: message.into(),
        fix: None,
    }
}

fn bad(
    status: Status,
    check: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        check: check.into(),
        status,
        message: message.into(),
        fix: Some(fix.into()),
    }
}

impl DoctorCommand {
    pub fn execute(self) -> Result<()> {
        let mut findings = Vec::new();
        let manifest = super::manifest_path(self.dir.as_deref(), self.file.as_deref());
        let app = if self.file.is_some() || manifest.exists() {
            Some(check_manifest(&manifest, &mut findings))
        } else {
            findings.push(ok(
                "manifest",
                format!(
                    "no {} here: checking the machine only (`atoll new --list` to start an app)",
                    manifest.display()
                ),
            ));
            None
        };
        let app = app.flatten();
        // What the app builds with decides which toolchains are errors; without an app,
        // a missing toolchain only limits which templates work (a warning).
        let needs = app.as_ref().map(needed_toolchains);
        check_rust(&mut findings, needs.as_ref());
        check_python(&mut findings, needs.as_ref());
        check_js(&mut findings, needs.as_ref());
        if let Some(app) = &app {
            check_build_programs(app, &mut findings);
        }
        check_backends(self.runtime_config.as_deref(), app.as_ref(), &mut findings);
        check_listen(&self.listen, &mut findings);
        check_kernel(&mut findings);

        let failed = findings.iter().any(|f| f.status == Status::Error);
        if self.json {
            super::print_json(&serde_json::json!({
                "ok": !failed,
                "findings": findings,
            }))?;
        } else {
            print_text(&findings);
        }
        if failed {
            let n = findings
                .iter()
                .filter(|f| f.status == Status::Error)
                .count();
            anyhow::bail!("atoll doctor found {n} problem(s); each says how to fix it above");
        }
        Ok(())
    }
}

fn print_text(findings: &[Finding]) {
    let color = super::stdout_color();
    for f in findings {
        let (label, code) = match f.status {
            Status::Ok => ("ok   ", "32"),
            Status::Warn => ("warn ", "33"),
            Status::Error => ("error", "31"),
        };
        if f.status == Status::Ok && super::verbosity() == super::Verbosity::Quiet {
            continue;
        }
        let label = if color {
            format!("\x1b[1;{code}m{label}\x1b[0m")
        } else {
            label.to_string()
        };
        println!("{label} {}: {}", f.check, f.message);
        if let Some(fix) = &f.fix {
            println!("      fix: {fix}");
        }
    }
}

fn check_manifest(path: &Path, findings: &mut Vec<Finding>) -> Option<atoll_manifest::App> {
    match atoll_manifest::load(path) {
        Ok(app) => {
            findings.push(ok(
                "manifest",
                format!(
                    "{}: app `{}`, {} component(s)",
                    path.display(),
                    app.name,
                    app.components.len()
                ),
            ));
            for c in app.components.values() {
                if let Some(p) = c.path()
                    && !p.exists()
                {
                    if c.build.is_some() {
                        findings.push(ok(
                            format!("component:{}", c.name),
                            format!(
                                "{} is not built yet (`atoll up` or `atoll build` builds it)",
                                c.source_written
                            ),
                        ));
                    } else {
                        findings.push(bad(
                            Status::Error,
                            format!("component:{}", c.name),
                            format!("{} does not exist and there is no build command", c.source_written),
                            "build the component, or point `source` at the .wasm file your build writes",
                        ));
                    }
                }
            }
            Some(app)
        }
        Err(d) => {
            findings.push(bad(
                Status::Error,
                "manifest",
                d.to_string().trim_end().to_string(),
                d.help_text()
                    .unwrap_or("fix the manifest at the line shown")
                    .to_string(),
            ));
            None
        }
    }
}

/// Which guest toolchains the app's build commands use.
fn needed_toolchains(app: &atoll_manifest::App) -> Vec<&'static str> {
    let mut out = Vec::new();
    for c in app.components.values() {
        let Some(b) = &c.build else { continue };
        let cmd = &b.command;
        if cmd.contains("cargo") && !out.contains(&"rust") {
            out.push("rust");
        }
        if cmd.contains("componentize-py") && !out.contains(&"python") {
            out.push("python");
        }
        if (cmd.contains("npm") || cmd.contains("node") || cmd.contains("componentize-js"))
            && !out.contains(&"js")
        {
            out.push("js");
        }
    }
    out
}

/// An error when the app needs `toolchain`, else a warning naming the templates.
fn missing(needs: Option<&Vec<&str>>, toolchain: &str) -> Status {
    match needs {
        Some(n) if n.contains(&toolchain) => Status::Error,
        _ => Status::Warn,
    }
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn check_rust(findings: &mut Vec<Finding>, needs: Option<&Vec<&str>>) {
    let status = missing(needs, "rust");
    let Some(version) = run("rustc", &["--version"]) else {
        findings.push(bad(
            status,
            "toolchain:rust",
            "rustc is not on PATH (the http-rust, cron-rust and plugin-rust templates need it)",
            "install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`",
        ));
        return;
    };
    if run("cargo", &["--version"]).is_none() {
        findings.push(bad(
            status,
            "toolchain:rust",
            "rustc is there but cargo is not on PATH",
            "install Rust with rustup (https://rustup.rs), which brings cargo",
        ));
        return;
    }
    findings.push(ok("toolchain:rust", version));
    let installed = run("rustc", &["--print", "sysroot"])
        .map(|root| Path::new(&root).join("lib/rustlib/wasm32-wasip2").is_dir())
        .unwrap_or(false);
    if installed {
        findings.push(ok("rust-target", "wasm32-wasip2 is installed"));
    } else {
        findings.push(bad(
            status,
            "rust-target",
            "the wasm32-wasip2 target is not installed: Rust components cannot be built",
            "rustup target add wasm32-wasip2",
        ));
    }
}

fn check_python(findings: &mut Vec<Finding>, needs: Option<&Vec<&str>>) {
    let status = missing(needs, "python");
    match run("componentize-py", &["--version"]) {
        Some(v) => findings.push(ok("toolchain:python", v)),
        None => findings.push(bad(
            status,
            "toolchain:python",
            "componentize-py is not on PATH (the http-python template needs it)",
            "python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1, then put .venv/bin on PATH",
        )),
    }
}

fn check_js(findings: &mut Vec<Finding>, needs: Option<&Vec<&str>>) {
    let status = missing(needs, "js");
    let Some(version) = run("node", &["--version"]) else {
        findings.push(bad(
            status,
            "toolchain:js",
            "node is not on PATH (the http-js template needs Node.js 18 or later and npm)",
            "install Node.js and npm (e.g. `apt-get install nodejs npm`, or https://nodejs.org)",
        ));
        return;
    };
    let major: Option<u32> = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok());
    if major.is_some_and(|m| m < 18) {
        findings.push(bad(
            status,
            "toolchain:js",
            format!("node {version} is too old for componentize-js"),
            "install Node.js 18 or later",
        ));
        return;
    }
    match run("npm", &["--version"]) {
        Some(npm) => findings.push(ok("toolchain:js", format!("node {version}, npm {npm}"))),
        None => findings.push(bad(
            status,
            "toolchain:js",
            format!("node {version} is there but npm is not on PATH"),
            "install npm (e.g. `apt-get install npm`)",
        )),
    }
}

/// Shell words that are not programs on PATH.
const BUILTINS: &[&str] = &[
    "cd", "exit", "true", "false", "echo", "export", "set", "unset", "test", "[", "[[", ":", ".",
    "source", "printf", "read", "if", "then", "else", "elif", "fi", "for", "while", "do", "done",
    "case", "esac", "{", "}", "(", ")", "!", "exec", "command", "type", "pwd",
];

/// The programs a shell command line runs: the first word of each simple command
/// (split at `&&`, `||`, `;`, `|` and braces), after any `VAR=value` words; shell
/// builtins and words with `$` are left out (they cannot be checked without running).
fn programs(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in command.split(['&', ';', '|', '{', '}', '(', ')', '\n']) {
        let mut words = part.split_whitespace().skip_while(|w| {
            w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        });
        let Some(first) = words.next() else { continue };
        // `[ -d x ] || npm install`: the test is a builtin; what follows it is its own part.
        if BUILTINS.contains(&first) || first.contains('$') || first.starts_with('-') {
            continue;
        }
        if !out.iter().any(|p| p == first) {
            out.push(first.to_string());
        }
    }
    out
}

/// Every program a build command runs must be on PATH (or, given as a path, exist).
fn check_build_programs(app: &atoll_manifest::App, findings: &mut Vec<Finding>) {
    for c in app.components.values() {
        let Some(b) = &c.build else { continue };
        let missing: Vec<String> = programs(&b.command)
            .into_iter()
            .filter(|program| {
                if program.contains('/') {
                    !b.workdir.join(program).exists()
                } else {
                    !on_path(program)
                }
            })
            .collect();
        if missing.is_empty() {
            findings.push(ok(
                format!("build:{}", c.name),
                format!("the programs of `{}` are there", b.command),
            ));
        } else {
            let list = missing
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ");
            findings.push(bad(
                Status::Error,
                format!("build:{}", c.name),
                format!(
                    "the build command `{}` runs {list}, which is not on PATH",
                    b.command
                ),
                format!("install {list}, or put the directory that holds it on PATH"),
            ));
        }
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(program);
            std::fs::metadata(&p).is_ok_and(|m| m.is_file())
        })
    })
}

fn check_backends(
    runtime_config: Option<&Path>,
    app: Option<&atoll_manifest::App>,
    findings: &mut Vec<Finding>,
) {
    let Some(path) = runtime_config else {
        findings.push(ok(
            "backends",
            "no --runtime-config: key-value stores are embedded files, nothing to reach",
        ));
        return;
    };
    let config = match atoll_capabilities::RuntimeConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            findings.push(bad(
                Status::Error,
                "runtime-config",
                e.to_string(),
                "fix the runtime config at the key named",
            ));
            return;
        }
    };
    findings.push(ok("runtime-config", format!("{} parses", path.display())));
    let dir = app
        .map(|a| a.dir.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            findings.push(bad(
                Status::Error,
                "backends",
                format!("cannot start an async runtime: {e}"),
                "check the process limits (threads, file descriptors)",
            ));
            return;
        }
    };
    let backends = atoll_capabilities::Backends::new();
    for (label, store) in &config.key_value_stores {
        if matches!(
            store,
            atoll_capabilities::StoreConfig::Redb { .. }
                | atoll_capabilities::StoreConfig::Memory {}
        ) {
            findings.push(ok(
                format!("backend:{label}"),
                format!("{store}: in this process"),
            ));
            continue;
        }
        let probe = async {
            let backend = backends
                .open(label, store, &dir)
                .await
                .map_err(|e| e.to_string())?;
            backend
                .exists("atoll-doctor", "probe")
                .await
                .map_err(|e| e.to_string())
        };
        let answer = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), probe)
                .await
                .unwrap_or_else(|_| Err("no answer within 5 s".to_string()))
        });
        match answer {
            Ok(_) => findings.push(ok(format!("backend:{label}"), format!("{store} answers"))),
            Err(reason) => findings.push(bad(
                Status::Error,
                format!("backend:{label}"),
                format!("{store} does not answer: {reason}"),
                "start the server, or fix its url in the runtime config",
            )),
        }
    }
}

fn check_listen(listen: &str, findings: &mut Vec<Finding>) {
    let addr: std::net::SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => {
            findings.push(bad(
                Status::Error,
                "listen",
                format!("`{listen}` is not an address like 127.0.0.1:3000"),
                "pass --listen HOST:PORT",
            ));
            return;
        }
    };
    match std::net::TcpListener::bind(addr) {
        Ok(_) => findings.push(ok("listen", format!("{addr} is free"))),
        Err(e) => findings.push(bad(
            Status::Error,
            "listen",
            format!("cannot listen on {addr}: {e}"),
            format!(
                "stop what listens there (`ss -ltnp 'sport = :{}'` shows it), or use `atoll up --listen` with another port",
                addr.port()
            ),
        )),
    }
}

fn check_kernel(findings: &mut Vec<Finding>) {
    match atoll_engine::fast_memory_reset() {
        Ok(()) => findings.push(ok(
            "kernel",
            "PAGEMAP_SCAN is available and swap is off: instance memory is reset fast",
        )),
        Err(reason) => findings.push(bad(
            Status::Warn,
            "kernel",
            format!(
                "instance memory is reset by zeroing, which costs more CPU per request: {reason}"
            ),
            "run on Linux 6.7 or later with swap off (`swapoff -a`) for the fast reset",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::programs;

    #[test]
    fn the_programs_of_a_build_command_skip_builtins_and_assignments() {
        assert_eq!(programs("cargo build --release"), ["cargo"]);
        assert_eq!(
            programs("cd guest && RUSTFLAGS=-g cargo build; wasm-tools strip x.wasm"),
            ["cargo", "wasm-tools"]
        );
        assert_eq!(
            programs("{ [ -x node_modules/.bin/x ] || npm install; } && npm run build"),
            ["npm"]
        );
        assert_eq!(programs("exit 1"), Vec::<String>::new());
        assert_eq!(programs("./build.sh"), ["./build.sh"]);
    }
}
