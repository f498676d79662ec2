//! Fleet mode: `atoll node` (a stateless node of a fleet), `atoll deploy`, `atoll status`
//! and `atoll rollback` (the writers and readers of its desired state in NATS
//! JetStream). The work is `atoll_fleet`'s; this is flags, output and signals.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use atoll_engine::Engine;
use atoll_fleet::{ControlConfig, DeployOutcome};
use atoll_runtime::Loader;
use clap::Args;

/// How long `deploy`, `status` and `rollback` wait for NATS to answer before saying
/// the control plane is unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Args)]
pub struct NatsArgs {
    /// The control plane: NATS with JetStream (several URLs comma-separated for a cluster).
    #[arg(long, env = "ATOLL_NATS_URL", value_name = "URL")]
    nats: String,
    /// Replicas of each control-plane bucket, when it is created (3 on a NATS cluster).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
}

impl NatsArgs {
    fn config(&self) -> ControlConfig {
        ControlConfig {
            url: self.nats.clone(),
            replicas: self.replicas,
        }
    }
}

/// Run a stateless fleet node: serve every deployed app on one port, converging on the
/// desired state in NATS JetStream.
#[derive(Args)]
pub struct NodeCommand {
    #[command(flatten)]
    nats: NatsArgs,
    /// Address to serve HTTP on (every app, routed by host and path as `atoll up` does;
    /// `/.atoll/live` and `/.atoll/ready` for probes).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// The node's directory: verified blobs, versions, the compile cache and the last
    /// desired state it knew (served at start, before NATS answers). Disposable.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The node's name in the fleet [default: the host name and the port].
    #[arg(long, value_name = "ID")]
    name: Option<String>,
    /// The operator's runtime config: variables, key-value backends (a node keeps no
    /// data: every store an app uses must be redis, postgres or nats here), limits.
    #[arg(long, value_name = "FILE")]
    runtime_config: Option<PathBuf>,
    /// Seconds between full passes over the desired state (besides the watch).
    #[arg(long, default_value_t = 10)]
    anti_entropy: u64,
    /// Seconds to stay up, not ready, after SIGTERM before draining (so a load
    /// balancer stops sending first; Kubernetes' preStop does the same).
    #[arg(long, default_value_t = 0)]
    drain_delay: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
    /// Event-loop threads serving connections [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Serve the admin endpoints on ADDR (a port alone means 127.0.0.1:PORT): Prometheus
    /// metrics at /metrics (the guests' families, as `atoll up --admin`, and the node's:
    /// readiness, the control plane, desired and served epochs per app), a live
    /// dashboard at /. Read-only; refuses cross-origin requests. Anyone who can reach
    /// ADDR can read it: keep it on loopback or behind a network policy.
    #[arg(long, value_name = "ADDR")]
    pub(crate) admin: Option<String>,
    /// The log tail the binary installed for the dashboard (with --admin).
    #[arg(skip)]
    pub(crate) log_tail: Option<atoll_admin::LogTail>,
}

impl NodeCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let addr: std::net::SocketAddr = self.listen.parse().map_err(|_| {
            super::UsageError(format!(
                "--listen `{}` is not an address like 127.0.0.1:3000",
                self.listen
            ))
        })?;
        let name = match &self.name {
            Some(n) if atoll_fleet::control::valid_name(n) => n.clone(),
            Some(n) => {
                return Err(super::UsageError(format!(
                    "--name `{n}`: a node name may hold only ASCII letters, digits, `-` and `_`"
                ))
                .into());
            }
            None => default_name(addr.port()),
        };
        let admin_addr = super::up::admin_address(self.admin.as_deref())?;
        // OpenTelemetry: only the standard OTEL_* variables, read (and checked) up front.
        let telemetry_settings = atoll_telemetry::Settings::from_env()
            .context("the OpenTelemetry settings (OTEL_* environment variables) are not usable")?;
        let state = atoll_fleet::bundle::StateDir::open(&self.state)?;
        let runtime_config = match &self.runtime_config {
            Some(p) => atoll_capabilities::RuntimeConfig::load(p)?,
            None => atoll_capabilities::RuntimeConfig::default(),
        };
        let env_variables: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(atoll_capabilities::ENV_PREFIX))
            .collect();
        let http_config = atoll_http::HttpConfig {
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            ..atoll_http::HttpConfig::default()
        };
        let http_config = atoll_http::HttpConfig {
            workers: self.workers.unwrap_or(http_config.workers).max(1),
            ..http_config
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let control = self.nats.config();
        let result = runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr}; is another server using it? pick another with --listen")
            })?;
            let local = listener.local_addr()?;
            let admin_listener = super::up::bind_admin(admin_addr).await?;
            let metrics = atoll_runtime::Metrics::default();
            let telemetry = atoll_telemetry::Telemetry::start(&telemetry_settings, &metrics)?;
            let tracer = telemetry.as_ref().and_then(|t| t.tracer());
            let engine = Arc::new(Engine::new(super::up::engine_config(
                &runtime_config,
                Some(state.cache_dir()),
            ))?);
            let stores = runtime_config.key_value_stores.clone();
            let loader = Loader::new(engine, runtime_config, env_variables).with_metrics(metrics.clone());
            let node = atoll_fleet::Node::start(atoll_fleet::NodeConfig {
                name: name.clone(),
                control,
                state,
                loader,
                stores,
                addr: local,
                anti_entropy: Duration::from_secs(self.anti_entropy.max(1)),
            })
            .await;
            let http_config = atoll_http::HttpConfig {
                metrics: metrics.clone(),
                tracer: tracer.clone(),
                health: Some(node.ready_flag()),
                ..http_config
            };
            tracing::info!("node `{name}` serving on http://{local} (probes: /.atoll/live, /.atoll/ready)");
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let stopped = move || {
                let mut rx = stop_rx.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            };
            let control_task = tokio::spawn(node.clone().run(stopped()));
            let cron = tokio::spawn(atoll_cron::run(
                node.live().clone(),
                stopped(),
                http_config.shutdown_grace,
                tracer,
            ));
            if let Some(admin_listener) = admin_listener {
                let admin = atoll_admin::Admin::new(metrics, node.live().clone(), self.log_tail.clone())
                    .with_extension(Arc::new(node.clone()));
                super::up::spawn_admin(admin_listener, admin, stopped())?;
            }
            let drain_delay = Duration::from_secs(self.drain_delay);
            let draining = node.clone();
            let signal = async move {
                super::up::shutdown_signal().await;
                // Not ready first, so a balancer stops sending; then drain.
                draining.begin_drain().await;
                if !drain_delay.is_zero() {
                    tracing::info!("not ready; draining in {drain_delay:?}");
                    tokio::time::sleep(drain_delay).await;
                }
            };
            atoll_http::serve(listener, node.live().clone(), http_config, signal).await?;
            let _ = stop_tx.send(true);
            let _ = cron.await;
            node.deregister().await;
            control_task.abort();
            if let Some(telemetry) = telemetry {
                telemetry.shutdown(Duration::from_secs(5)).await;
            }
            tracing::info!("stopped");
            anyhow::Ok(())
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
        result
    }
}

/// `<hostname>-<port>`, made a valid name.
fn default_name(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".into());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{host}-{port}")
}

/// Deploy an app to a fleet: upload it, stage it on every live node, commit, and wait
/// until every node serves it.
#[derive(Args)]
pub struct DeployCommand {
    /// The app directory [default: .].
    dir: Option<PathBuf>,
    /// The manifest file (instead of DIR/atoll.toml).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    #[command(flatten)]
    nats: NatsArgs,
    /// How long to wait for the nodes, e.g. 120s, 2m, 500ms.
    #[arg(long, default_value = "120s")]
    timeout: String,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    oci: super::oci::OciArgs,
}

impl DeployCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let timeout = parse_duration(&self.timeout)?;
        let path = super::manifest_path(self.dir.as_deref(), self.file.as_deref());
        let app = atoll_manifest::load(&path)?;
        app.check_triggers()?;
        super::build::build_stale(&app)?;
        // Package and OCI sources and dependencies resolve here, as `atoll up` resolves
        // them (pulled and pinned first); nodes get their bytes.
        super::oci::ensure_sources(&app, &self.oci)?;
        let home = super::share::atoll_home();
        let resolved = atoll_fleet::bundle::Resolved {
            sources: atoll_runtime::resolve_packages(&app, &home)?
                .into_iter()
                .map(|(component, r)| (component, r.path))
                .collect(),
            dependencies: atoll_runtime::resolve_dependencies(&app, &home)?,
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let bundle = atoll_fleet::bundle::bundle_with(&app, &text, &resolved)?;
        let config = self.nats.config();
        let outcome = block_on(async move {
            let control = atoll_fleet::Control::connect(&config, CONNECT_TIMEOUT).await?;
            anyhow::Ok(atoll_fleet::deploy::deploy(&control, &bundle, timeout, &who()).await?)
        })?;
        print_outcome(&outcome, self.json, "deployed")
    }
}

/// Make an app's previous version current again on every node (two phases, as a deploy).
#[derive(Args)]
pub struct RollbackCommand {
    /// The app's name.
    app: String,
    #[command(flatten)]
    nats: NatsArgs,
    /// How long to wait for the nodes, e.g. 120s, 2m.
    #[arg(long, default_value = "120s")]
    timeout: String,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl RollbackCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let timeout = parse_duration(&self.timeout)?;
        let config = self.nats.config();
        let app = self.app.clone();
        let outcome = block_on(async move {
            let control = atoll_fleet::Control::connect(&config, CONNECT_TIMEOUT).await?;
            anyhow::Ok(atoll_fleet::deploy::rollback(&control, &app, timeout, &who()).await?)
        })?;
        print_outcome(&outcome, self.json, "rolled back")
    }
}

/// Show the fleet: each app's desired version, and per live node what it serves,
/// stages and failed on.
#[derive(Args)]
pub struct StatusCommand {
    #[command(flatten)]
    nats: NatsArgs,
    /// Print the status as JSON on stdout.
    #[arg(long)]
    json: bool,
}

impl StatusCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let config = self.nats.config();
        let status = block_on(async move {
            let control = atoll_fleet::Control::connect(&config, CONNECT_TIMEOUT).await?;
            anyhow::Ok(atoll_fleet::deploy::status(&control).await?)
        })?;
        if self.json {
            return super::print_json(&status);
        }
        let short = atoll_fleet::records::short;
        let mut out = String::new();
        if status.apps.is_empty() {
            out.push_str("no apps deployed\n");
        }
        for (name, state) in &status.apps {
            out.push_str(&format!(
                "app {name}: desired {} (epoch {}){}{}\n",
                state.current.as_deref().map_or("none (removed)", short),
                state.epoch,
                state
                    .previous
                    .as_deref()
                    .map_or(String::new(), |p| format!(", previous {}", short(p))),
                state
                    .staged
                    .as_deref()
                    .map_or(String::new(), |s| format!(", staging {}", short(s))),
            ));
            for node in &status.nodes {
                let served = node.apps.get(name).map(|s| s.version.as_str());
                let verdict = match (served, state.current.as_deref()) {
                    (Some(s), Some(c)) if s == c => "up to date".to_string(),
                    (Some(s), _) => format!("serving {} (behind)", short(s)),
                    (None, _) => "not loaded".to_string(),
                };
                out.push_str(&format!("  {:<24} {:<22} {verdict}", node.name, node.addr));
                if let Some(e) = node.errors.get(name) {
                    out.push_str(&format!("; error on {}: {}", short(&e.version), e.message));
                }
                out.push('\n');
            }
        }
        out.push_str(&format!("{} live node(s)", status.nodes.len()));
        if status.nodes.is_empty() {
            out.push_str(&format!(
                " (a node that stops sending heartbeats leaves this list after {}s)",
                atoll_fleet::control::NODE_EXPIRY.as_secs()
            ));
        }
        out.push('\n');
        for node in &status.nodes {
            out.push_str(&format!(
                "  {:<24} {:<22} {}{} in flight {}, rss {} MiB\n",
                node.name,
                node.addr,
                if node.ready { "ready" } else { "NOT READY" },
                if node.draining { " (draining)," } else { "," },
                node.in_flight,
                node.rss_bytes / (1024 * 1024)
            ));
        }
        print!("{out}");
        Ok(())
    }
}

fn print_outcome(outcome: &DeployOutcome, json: bool, verb: &str) -> anyhow::Result<()> {
    if json {
        return super::print_json(outcome);
    }
    let short = atoll_fleet::records::short;
    if outcome.already_current {
        println!(
            "app {} version {} was already current (epoch {}); {} node(s) serve it",
            outcome.app,
            short(&outcome.version),
            outcome.epoch,
            outcome.nodes.len()
        );
    } else {
        println!(
            "{verb} app {} version {} (epoch {}, was {}): staged on {} node(s) in {} ms, converged {} ms after the commit",
            outcome.app,
            short(&outcome.version),
            outcome.epoch,
            outcome.previous.as_deref().map_or("none", short),
            outcome.nodes.len(),
            outcome.stage_ms,
            outcome.convergence_ms
        );
    }
    if outcome.nodes.is_empty() {
        println!("no live nodes: nodes that start later load it");
    } else {
        println!(
            "  {:<24} {:<22} {:>9} {:>11} {:>13}",
            "NODE", "ADDRESS", "FETCH ms", "COMPILE ms", "SWAPPED +ms"
        );
        for n in &outcome.nodes {
            println!(
                "  {:<24} {:<22} {:>9} {:>11} {:>13}",
                n.node,
                n.addr,
                n.fetch_ms,
                n.compile_ms,
                n.swap_after_commit_ms
                    .map_or("-".to_string(), |m| m.to_string())
            );
        }
    }
    Ok(())
}

fn who() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let t = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let r = runtime.block_on(f);
    tracing::debug!("control plane call took {:.1?}", t.elapsed());
    r
}

/// `120s`, `2m`, `500ms`, or a number of seconds.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map_or((t, "s"), |i| t.split_at(i));
    let n: u64 = num.parse().map_err(|_| {
        super::UsageError(format!("`{text}` is not a duration like 120s, 2m or 500ms"))
    })?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => {
            return Err(super::UsageError(format!(
                "`{text}` is not a duration like 120s, 2m or 500ms"
            ))
            .into());
        }
    })
}
