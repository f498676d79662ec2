//! Run a component's `build` command when its `source` is missing or older than the
//! files it watches (`atoll build --force`: always), with a spinner while it runs (on a
//! terminal), its time in a row per component, and the tool's output streamed with
//! `-v` or shown whole when it fails.

use std::io::IsTerminal;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use atoll_manifest::{App, BuildConfig, Component};

/// `atoll build`: run the build command of every component of an app.
#[derive(clap::Args)]
pub struct BuildCommand {
    /// The app directory, with an atoll.toml [default: .].
    #[arg(conflicts_with = "file")]
    dir: Option<std::path::PathBuf>,
    /// The manifest file (instead of DIR/atoll.toml).
    #[arg(short = 'f', long = "file")]
    file: Option<std::path::PathBuf>,
    /// Build every component, up to date or not.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    oci: super::oci::OciArgs,
}

impl BuildCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let path = super::manifest_path(self.dir.as_deref(), self.file.as_deref());
        let app = atoll_manifest::load(&path)?;
        // One row per component: what happened and how long it took.
        let mut rows: Vec<(String, String, Option<Duration>)> = Vec::new();
        for component in app.components.values() {
            let Some(build) = &component.build else {
                let source = component.path().map_or_else(
                    || component.source_written.clone(),
                    |p| p.display().to_string(),
                );
                rows.push((
                    component.name.clone(),
                    format!("no build command ({source})"),
                    None,
                ));
                continue;
            };
            let reason = if self.force {
                Some("--force".to_string())
            } else {
                needs_build(component, build)?
            };
            match reason {
                Some(reason) => {
                    let took = run_build(component, build, &reason)?;
                    rows.push((
                        component.name.clone(),
                        format!("built ({reason})"),
                        Some(took),
                    ));
                }
                None => rows.push((component.name.clone(), "up to date".to_string(), None)),
            }
        }
        let n_built = rows.iter().filter(|r| r.2.is_some()).count();
        if super::verbosity() > super::Verbosity::Quiet {
            let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
            for (name, what, took) in &rows {
                let took = took
                    .map(|t| format!("{:>8.2}s  ", t.as_secs_f64()))
                    .unwrap_or_else(|| format!("{:>8}   ", "-"));
                eprintln!("  {name:width$}  {took}{what}");
            }
        }
        tracing::info!("built {n_built} component(s) of app `{}`", app.name);
        // Then compose what has dependencies, as `atoll up` will (pulling and pinning
        // OCI dependencies first), so a wrong composition fails here.
        super::oci::ensure_sources(&app, &self.oci)?;
        let home = super::share::atoll_home();
        let resolved = atoll_runtime::resolve_packages(&app, &home)?;
        let pinned = atoll_runtime::resolve_dependencies(&app, &home)?;
        for component in app.components.values() {
            if let Some((bytes, wiring)) = compose(&app, component, &resolved, &pinned)? {
                for w in &wiring {
                    tracing::info!(component = %component.name, "composed: {} <- {}", w.import, w.dependency);
                }
                tracing::info!(component = %component.name, "composed component: {} bytes", bytes.len());
            }
        }
        Ok(())
    }
}

/// `component` composed with its dependencies (`None` without any), reading each
/// component's file from its path or, for a package or OCI source, from `resolved`.
pub fn compose(
    app: &App,
    component: &Component,
    resolved: &std::collections::BTreeMap<String, atoll_runtime::ResolvedSource>,
    pinned: &std::collections::BTreeMap<(String, String), std::path::PathBuf>,
) -> anyhow::Result<Option<(Vec<u8>, Vec<atoll_runtime::compose::Wiring>)>> {
    if component.dependencies.is_empty() {
        return Ok(None);
    }
    let file_of = |name: &str| {
        let c = app.components.get(name)?;
        match c.path() {
            Some(p) => Some(p.to_path_buf()),
            None => resolved.get(name).map(|r| r.path.clone()),
        }
    };
    let main = file_of(&component.name)
        .with_context(|| format!("component `{}` has no resolved source", component.name))?;
    let bytes = atoll_runtime::read_component(app, component, &main)?;
    let composed = atoll_runtime::compose::compose_from_files(
        app,
        component,
        bytes,
        file_of,
        |d| {
            pinned
                .get(&(component.name.clone(), d.import.clone()))
                .cloned()
        },
        super::up::default_cache_dir().as_deref(),
    )?;
    Ok(Some(composed))
}

/// Build every component of `app` that needs it.
pub fn build_stale(app: &App) -> anyhow::Result<()> {
    for component in app.components.values() {
        let Some(build) = &component.build else {
            continue;
        };
        if let Some(reason) = needs_build(component, build)? {
            run_build(component, build, &reason)?;
        }
    }
    Ok(())
}

/// Why `component` must be built, or `None` if its `source` is up to date.
fn needs_build(component: &Component, build: &BuildConfig) -> anyhow::Result<Option<String>> {
    // A registry package has no `build` (the manifest refuses it).
    let Some(source) = component.path() else {
        return Ok(None);
    };
    let built = match std::fs::metadata(source).and_then(|m| m.modified()) {
        Ok(t) => t,
        Err(_) => {
            return Ok(Some(format!(
                "not built yet: {} does not exist",
                component.source_written
            )));
        }
    };
    for path in watched_files(component, build)? {
        if modified(&path).is_some_and(|m| m > built) {
            return Ok(Some(format!("{} changed", path.display())));
        }
    }
    Ok(None)
}

/// The files `build.watch` matches now (relative to the build's `workdir`).
pub fn watched_files(
    component: &Component,
    build: &BuildConfig,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for pattern in &build.watch {
        // The directory is literal (it may hold `[`, `*` or `?`); only the pattern globs.
        let dir = glob::Pattern::escape(&build.workdir.to_string_lossy());
        let full = Path::new(&dir).join(pattern);
        let full = full.to_string_lossy();
        let paths = glob::glob(&full).with_context(|| {
            format!(
                "invalid watch pattern `{pattern}` in component `{}`",
                component.name
            )
        })?;
        out.extend(paths.flatten());
    }
    Ok(out)
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Run `build`'s command; returns how long it took. Its output (stdout and stderr, in
/// the order written) streams to stderr with `--verbose`, and is shown whole if the
/// build fails.
fn run_build(component: &Component, build: &BuildConfig, reason: &str) -> anyhow::Result<Duration> {
    tracing::info!(component = %component.name, "building ({reason}): {}", build.command);
    let stream = super::verbosity() >= super::Verbosity::Debug;
    let spinner = if !stream
        && super::verbosity() > super::Verbosity::Quiet
        && std::io::stderr().is_terminal()
    {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        s.set_message(format!("building {}: {}", component.name, build.command));
        s.enable_steady_tick(Duration::from_millis(100));
        Some(s)
    } else {
        None
    };
    let started = std::time::Instant::now();
    // One pipe for both streams, so the log keeps the tool's own order.
    let (reader, writer) =
        std::io::pipe().context("cannot create a pipe for the build's output")?;
    let writer2 = writer
        .try_clone()
        .context("cannot create a pipe for the build's output")?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&build.command)
        .current_dir(&build.workdir)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .with_context(|| format!("cannot run the build command of `{}`", component.name))?;
    let mut log = String::new();
    {
        use std::io::BufRead as _;
        let mut reader = std::io::BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    if stream {
                        eprint!("  {} | {text}", component.name);
                    }
                    log.push_str(&text);
                }
            }
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for the build command of `{}`", component.name))?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if !status.success() {
        let hint = if log.contains("target may not be installed") {
            "the Rust target is missing: run `rustup target add wasm32-wasip2` (`atoll doctor` checks it)"
        } else if status.code() == Some(127) {
            "a program the build runs is missing: `atoll doctor` checks the toolchains"
        } else {
            "fix the build; its whole output is above"
        };
        // The whole output, unless it streamed already (-v).
        let shown = if stream {
            String::new()
        } else {
            format!("{}\n", log.trim_end())
        };
        bail!(
            "the build of component `{}` failed ({status}): `{}` in {}\n{shown}{hint}",
            component.name,
            build.command,
            build.workdir.display(),
        );
    }
    let took = started.elapsed();
    tracing::info!(component = %component.name, "built in {:.1?}", took);
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An app directory whose name has glob characters is taken literally.
    #[test]
    fn watch_patterns_glob_only_below_a_literal_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("app[1]");
        std::fs::create_dir_all(dir.join("src")).expect("mkdir");
        std::fs::write(
            dir.join("atoll.toml"),
            r#"
[app]
name = "globby"

[component.web]
source = "out.wasm"
build = { command = "true", watch = ["src/*.rs"] }

[[trigger.http]]
route = "/..."
component = "web"
"#,
        )
        .expect("manifest");
        std::fs::write(dir.join("out.wasm"), b"old").expect("source");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.join("src/lib.rs"), b"// newer").expect("watched file");
        let app = atoll_manifest::load(&dir.join("atoll.toml")).expect("manifest loads");
        let component = &app.components["web"];
        let build = component.build.as_ref().expect("build config");
        let why = needs_build(component, build).expect("patterns are valid");
        assert!(
            why.as_deref()
                .is_some_and(|w| w.ends_with("lib.rs changed")),
            "{why:?}"
        );
    }
}
