//! `atoll up`: load an app and serve its HTTP triggers until SIGINT/SIGTERM.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use atoll_engine::{CacheOutcome, Engine, EngineConfig};
use atoll_http::{HttpApp, HttpConfig};
use clap::Args;

/// Serve an app's HTTP triggers: a fresh, sandboxed instance per request.
#[derive(Args)]
pub struct UpCommand {
    /// The app directory (with an atoll.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// A manifest file to use instead of DIR/atoll.toml.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Largest request body accepted, e.g. 64MiB (larger gets 413).
    #[arg(long, default_value = "64MiB")]
    max_body: String,
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
}

impl UpCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let started = Instant::now();
        let manifest_path = self
            .file
            .clone()
            .unwrap_or_else(|| self.dir.join(atoll_manifest::MANIFEST_FILE));
        let max_body = atoll_manifest::parse_size(&self.max_body)
            .map_err(|e| anyhow::anyhow!("--max-body: {e}"))?;
        let max_headers = atoll_manifest::parse_size(&self.max_headers)
            .map_err(|e| anyhow::anyhow!("--max-headers: {e}"))?;
        let http_config = HttpConfig {
            max_body_bytes: max_body,
            max_header_bytes: usize::try_from(max_headers)?,
            shutdown_grace: std::time::Duration::from_secs(self.shutdown_grace),
            ..HttpConfig::default()
        };
        let addr: std::net::SocketAddr = self.listen.parse().with_context(|| {
            format!(
                "--listen `{}` is not an address like 127.0.0.1:3000",
                self.listen
            )
        })?;

        let runtime_config = match &self.runtime_config {
            Some(p) => atoll_capabilities::RuntimeConfig::load(p)?,
            None => atoll_capabilities::RuntimeConfig::default(),
        };
        // Only the binary reads the process environment; app variables come from
        // ATOLL_VARIABLE_<NAME>.
        let env_variables: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(atoll_capabilities::ENV_PREFIX))
            .collect();

        let app = atoll_manifest::load(&manifest_path)?;
        super::build::build_stale(&app)?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(async move {
            // Bind before compiling, so a taken port fails fast.
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}; is another server using it? pick another with --listen"))?;
            let local = listener.local_addr()?;

            let engine = Engine::new(EngineConfig {
                cache_dir: Some(self.cache_dir.clone().unwrap_or_else(default_cache_dir)),
                ..EngineConfig::default()
            })?;
            let capabilities =
                atoll_capabilities::configure(&app, &runtime_config, &env_variables).await?;
            let mut loaded = Vec::new();
            for component in app.components.values() {
                let t = Instant::now();
                let granted = capabilities
                    .component(&component.name)
                    .context("capabilities were configured for every component")?;
                let (c, outcome) = engine.load_component_with(&app, component, granted)?;
                let how = match outcome {
                    CacheOutcome::Hit => "loaded from the compile cache",
                    CacheOutcome::Compiled => "compiled and cached",
                    CacheOutcome::Uncached => "compiled (no cache)",
                };
                tracing::info!(component = %component.name, "{how} in {:.1?}", t.elapsed());
                loaded.push(c);
            }
            let http_app = Arc::new(HttpApp::new(&app, loaded, &http_config));
            tracing::info!(
                "serving app `{}` {} on http://{local} (ready in {:.1?})",
                app.name,
                app.version,
                started.elapsed()
            );
            for t in &app.http_triggers {
                tracing::info!("  http://{local}{} -> {}", t.route, t.component);
            }
            atoll_http::serve(listener, http_app, http_config, shutdown_signal()).await?;
            tracing::info!("stopped");
            anyhow::Ok(())
        })
    }
}

fn default_cache_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("ATOLL_HOME") {
        return PathBuf::from(home).join("cache");
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(xdg).join("atoll");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/atoll"),
        None => std::env::temp_dir().join("atoll-cache"),
    }
}

async fn shutdown_signal() {
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
