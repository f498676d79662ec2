//! `atoll up`: load apps and serve their triggers (HTTP, cron) until SIGINT/SIGTERM;
//! with `--watch`, reload them on change (`watch.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use atoll_engine::{Engine, EngineConfig};
use atoll_http::{HttpConfig, RouteTable};
use atoll_runtime::{LiveApps, Loader};
use clap::Args;

/// Serve an app's triggers (HTTP, cron): a fresh, sandboxed instance per request or tick.
#[derive(Args)]
pub struct UpCommand {
    /// App directories, each with an atoll.toml [default: .], or an OCI reference
    /// (oci://HOST/REPO:TAG) of an HTTP component to serve as it is, at `/...`. Several
    /// apps share one process; apps with `hosts` are routed by the Host header.
    dirs: Vec<PathBuf>,
    /// A manifest file to serve (instead of, or besides, DIR/atoll.toml); repeatable.
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Largest request body accepted, e.g. 64MiB (larger gets 413).
    #[arg(long, default_value = "64MiB")]
    max_body: String,
    /// Largest response body sent, e.g. 1GiB; a guest writing more has its response
    /// aborted (connection closed, logged).
    #[arg(long, default_value = "1GiB")]
    max_response: String,
    /// Largest request head accepted, e.g. 64KiB (larger gets 431).
    #[arg(long, default_value = "64KiB")]
    max_headers: String,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Directory for compiled components [default: $ATOLL_HOME/cache, else ~/.cache/atoll].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The operator's runtime config: variable values, key-value backends, outbound
    /// HTTP limits (see README). Without it, stores are embedded files under DIR/.atoll.
    #[arg(long, value_name = "FILE")]
    runtime_config: Option<PathBuf>,
    /// Seconds a client gets to send a request head (and, on a new connection, its first
    /// bytes); slower ones are disconnected.
    #[arg(long, default_value_t = 10)]
    header_timeout: u64,
    /// Event-loop threads serving connections [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Let the OS move event loops between cores. By default, with one loop per core the
    /// process may use, loop i runs on core i only (any other number of loops floats).
    #[arg(long)]
    no_pin: bool,
    /// Reload on change: a change to atoll.toml, to a component's `source` (no build
    /// command) or to its `watch` files (rebuilt first) loads the new version and swaps
    /// it in; requests in flight finish on the old one. A version that fails to build or
    /// load is reported and the old one keeps serving.
    #[arg(long)]
    pub(crate) watch: bool,
    /// Serve the admin endpoints on ADDR (a port alone means 127.0.0.1:PORT): Prometheus
    /// metrics at /metrics, a live dashboard at /. Read-only; refuses cross-origin
    /// requests. Anyone who can reach ADDR can read it: keep it on loopback unless a
    /// firewall decides who can.
    #[arg(long, value_name = "ADDR")]
    pub(crate) admin: Option<String>,
    /// Record each request to DIR, one JSON file per request, with everything
    /// non-deterministic its guest saw (the request, outbound responses, key-value and
    /// config reads, clock and random values; secrets and credential headers redacted),
    /// for `atoll replay`. Request and response bodies are read whole while recording.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// With --record: only requests that fail (a 5xx, a trap, a timeout, a cut-off body).
    #[arg(long, requires = "record")]
    record_failures: bool,
    /// The log tail the binary installed for the dashboard (with --admin).
    #[arg(skip)]
    pub(crate) log_tail: Option<atoll_admin::LogTail>,
    #[command(flatten)]
    oci: super::oci::OciArgs,
}

impl UpCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let started = Instant::now();
        // `atoll up oci://HOST/REPO:TAG`: a bare HTTP component, pulled and served as is.
        let mut manifest_paths: Vec<PathBuf> = Vec::new();
        for d in &self.dirs {
            manifest_paths.push(match d.to_str() {
                Some(r) if super::oci::is_oci(d) => super::oci::bare_app(r, &self.oci)?,
                _ => d.join(atoll_manifest::MANIFEST_FILE),
            });
        }
        manifest_paths.extend(self.files.iter().cloned());
        if manifest_paths.is_empty() {
            manifest_paths.push(PathBuf::from(atoll_manifest::MANIFEST_FILE));
        }
        let max_body = atoll_manifest::parse_size(&self.max_body)
            .map_err(|e| anyhow::anyhow!("--max-body: {e}"))?;
        let max_headers = atoll_manifest::parse_size(&self.max_headers)
            .map_err(|e| anyhow::anyhow!("--max-headers: {e}"))?;
        let max_response = atoll_manifest::parse_size(&self.max_response)
            .map_err(|e| anyhow::anyhow!("--max-response: {e}"))?;
        let http_config = HttpConfig {
            max_body_bytes: max_body,
            max_response_bytes: max_response,
            max_header_bytes: usize::try_from(max_headers)?,
            shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace),
            ..HttpConfig::default()
        };
        let http_config = HttpConfig {
            workers: self.workers.unwrap_or(http_config.workers).max(1),
            pin_workers: !self.no_pin,
            header_read_timeout: std::time::Duration::from_secs(self.header_timeout.max(1)),
            ..http_config
        };
        let admin_addr = admin_address(self.admin.as_deref())?;
        let addr: std::net::SocketAddr = self.listen.parse().map_err(|_| {
            super::UsageError(format!(
                "--listen `{}` is not an address like 127.0.0.1:3000",
                self.listen
            ))
        })?;

        // OpenTelemetry: only the standard OTEL_* variables, read (and checked) up front.
        let telemetry_settings = atoll_telemetry::Settings::from_env()
            .context("the OpenTelemetry settings (OTEL_* environment variables) are not usable")?;

        let runtime_config = match &self.runtime_config {
            Some(p) => atoll_capabilities::RuntimeConfig::load(p)?,
            None => atoll_capabilities::RuntimeConfig::default(),
        };
        // Only the binary reads the process environment; app variables come from
        // ATOLL_VARIABLE_<NAME>.
        let env_variables: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(atoll_capabilities::ENV_PREFIX))
            .collect();

        let mut apps = Vec::new();
        for path in &manifest_paths {
            let app = atoll_manifest::load(path)?;
            app.check_triggers()?;
            if let Some(other) = apps
                .iter()
                .find(|a: &&atoll_manifest::App| a.name == app.name)
            {
                anyhow::bail!(
                    "two apps are named `{}` ({} and {}); app names must be unique within one server",
                    app.name,
                    other.manifest_path().display(),
                    app.manifest_path().display()
                );
            }
            apps.push(app);
        }
        // Stamped before anything is built or loaded: a change from here on is seen.
        let watched = self
            .watch
            .then(|| super::watch::initial(&manifest_paths, &apps));
        for app in &apps {
            super::build::build_stale(app)?;
            super::oci::ensure_sources(app, &self.oci)?;
        }

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let result = runtime.block_on(async move {
            // Bind before compiling, so a taken port fails fast.
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}; is another server using it? pick another with --listen"))?;
            let local = listener.local_addr()?;
            let admin_listener = bind_admin(admin_addr).await?;
            let metrics = atoll_runtime::Metrics::default();
            let telemetry = atoll_telemetry::Telemetry::start(&telemetry_settings, &metrics)?;
            let taping = match &self.record {
                Some(dir) => {
                    let to = atoll_http::RecordTo::new(dir.clone(), self.record_failures)
                        .with_context(|| format!("cannot create the --record directory {}", dir.display()))?;
                    tracing::info!(
                        "recording {} requests to {}",
                        if self.record_failures { "failed" } else { "all" },
                        dir.display()
                    );
                    Some(atoll_http::Taping::Record(Arc::new(to)))
                }
                None => None,
            };
            let http_config = atoll_http::HttpConfig {
                metrics: metrics.clone(),
                tracer: telemetry.as_ref().and_then(|t| t.tracer()),
                taping,
                ..http_config
            };

            let engine = Arc::new(Engine::new(engine_config(
                &runtime_config,
                self.cache_dir.clone().or_else(default_cache_dir),
            ))?);
            let loader = Loader::new(engine, runtime_config, env_variables)
                .with_home(super::share::atoll_home())
                .with_metrics(metrics.clone());
            let mut loaded = Vec::new();
            for app in apps {
                loaded.push(Arc::new(loader.load(app).await?));
            }
            let live = LiveApps::new(loaded);
            let snapshot = live.snapshot();
            check_triggers(&snapshot)?;
            for app in snapshot.apps() {
                log_triggers(app.app(), local);
            }
            let names: Vec<&str> = snapshot.apps().iter().map(|a| a.name()).collect();
            tracing::info!(
                "serving app `{}` on http://{local} (ready in {:.1?})",
                names.join("`, `"),
                started.elapsed()
            );
            drop(snapshot);
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let stopped = move || {
                let mut rx = stop_rx.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            };
            let stopped_admin = stopped.clone();
            let cron = tokio::spawn(atoll_cron::run(
                live.clone(),
                stopped(),
                http_config.shutdown_grace,
                http_config.tracer.clone(),
            ));
            if let Some(admin_listener) = admin_listener {
                let admin = atoll_admin::Admin::new(metrics, live.clone(), self.log_tail.clone());
                spawn_admin(admin_listener, admin, stopped_admin())?;
            }
            if let Some(watched) = watched {
                tokio::spawn(super::watch::watch(
                    loader.clone(),
                    live.clone(),
                    watched,
                    local,
                    stopped(),
                ));
            }
            let signal = async move {
                shutdown_signal().await;
                let _ = stop_tx.send(true);
            };
            atoll_http::serve(listener, live, http_config, signal).await?;
            let _ = cron.await;
            if let Some(telemetry) = telemetry {
                telemetry.shutdown(std::time::Duration::from_secs(5)).await;
            }
            tracing::info!("stopped");
            anyhow::Ok(())
        });
        // A build that --watch started may still be running on the blocking pool: do not
        // wait for it on the way out (its child process is left to finish on its own).
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        result
    }
}

/// `--admin ADDR`: an address, or a port alone meaning 127.0.0.1:PORT.
pub(crate) fn admin_address(admin: Option<&str>) -> anyhow::Result<Option<std::net::SocketAddr>> {
    let Some(a) = admin else { return Ok(None) };
    Ok(Some(match a.parse::<u16>() {
        Ok(port) => std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Err(_) => a.parse().map_err(|_| {
            super::UsageError(format!(
                "--admin `{a}` is not an address like 127.0.0.1:9090 (or a port)"
            ))
        })?,
    }))
}

/// Bind the admin address (before anything slow, so a taken port fails fast).
pub(crate) async fn bind_admin(
    addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(a) = addr else { return Ok(None) };
    Ok(Some(tokio::net::TcpListener::bind(a).await.with_context(
        || {
            format!(
                "cannot listen on {a} for --admin; is another server using it? pick another address"
            )
        },
    )?))
}

/// Serve the admin endpoints in the background until `stopped` resolves.
pub(crate) fn spawn_admin(
    listener: tokio::net::TcpListener,
    admin: atoll_admin::Admin,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!("admin: dashboard on http://{local}/, metrics on http://{local}/metrics");
    tokio::spawn(async move {
        let _ = atoll_admin::serve(listener, admin, stopped).await;
    });
    Ok(())
}

/// The engine for a server (`atoll up`, `atoll node`): the operator's memory settings,
/// the compile cache in `cache_dir`.
pub(crate) fn engine_config(
    runtime_config: &atoll_capabilities::RuntimeConfig,
    cache_dir: Option<PathBuf>,
) -> EngineConfig {
    EngineConfig {
        cache_dir,
        memory_total: runtime_config.memory_total,
        memory_reset: if runtime_config.memory_reset_zeroing {
            atoll_engine::MemoryResetMode::Zeroing
        } else {
            atoll_engine::MemoryResetMode::Auto
        },
        ..EngineConfig::default()
    }
}

/// Whether every trigger can serve `apps`: the HTTP routes (no conflicts, every routed
/// component an HTTP handler) and the cron schedules (every scheduled component runnable).
/// At start and before each reload's swap.
pub(crate) fn check_triggers(apps: &atoll_runtime::Snapshot) -> anyhow::Result<()> {
    RouteTable::build(apps)?;
    atoll_cron::check(apps)?;
    Ok(())
}

/// One line per trigger of `app`.
pub(crate) fn log_triggers(app: &atoll_manifest::App, local: std::net::SocketAddr) {
    let hosts = if app.http.hosts.is_empty() {
        String::new()
    } else {
        format!(" for hosts {}", app.http.hosts.join(", "))
    };
    for t in app.http_triggers() {
        tracing::info!(app = %app.name, "  http://{local}{} -> {}{hosts}", t.route, t.component);
    }
    for t in app.cron_triggers() {
        tracing::info!(app = %app.name, "  cron `{}` (UTC) -> {}", t.schedule, t.component);
    }
}

/// The compile cache directory, or `None` when the user has no home to keep one in (a
/// shared directory such as /tmp is never used: cached artifacts are native code).
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("ATOLL_HOME") {
        return Some(PathBuf::from(home).join("cache"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("atoll"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Some(PathBuf::from(home).join(".cache/atoll")),
        None => {
            tracing::warn!(
                "no HOME, ATOLL_HOME or --cache-dir: compiling components on every start"
            );
            None
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
            _ = term.recv() => tracing::info!("received SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
