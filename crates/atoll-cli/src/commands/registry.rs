//! `atoll registry serve`: run a component registry.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use atoll_registry::server::{Database, Server, ServerConfig};
use clap::{Args, Subcommand};

/// Run a component registry.
#[derive(Args)]
pub struct RegistryCommand {
    #[command(subcommand)]
    action: RegistryAction,
}

#[derive(Subcommand)]
enum RegistryAction {
    /// Serve the registry HTTP API (see docs/registry-api.md).
    Serve(ServeArgs),
    /// Download a registry's whole log and check every entry against its rules.
    Audit(AuditArgs),
}

#[derive(Args)]
struct AuditArgs {
    #[command(flatten)]
    registry: super::share::RegistryArg,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory for blobs, the server's log key and the embedded database
    /// [default: $ATOLL_HOME/registry, else ~/.local/share/atoll/registry].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Keep metadata in PostgreSQL instead of the embedded database, e.g.
    /// postgres://postgres@127.0.0.1:5432/registry.
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// PostgreSQL schema for the registry's tables.
    #[arg(long, default_value = "atoll_registry")]
    db_schema: String,
    /// Largest component accepted, e.g. 64MiB.
    #[arg(long, default_value = "64MiB")]
    max_upload: String,
}

impl RegistryCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let args = match self.action {
            RegistryAction::Serve(args) => args,
            RegistryAction::Audit(args) => return audit(args),
        };
        // Check flags before binding anything.
        let listen: SocketAddr = args.listen.parse().with_context(|| {
            format!(
                "--listen `{}` is not an address like 127.0.0.1:8080",
                args.listen
            )
        })?;
        let database = match args.db {
            None => Database::Embedded,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres {
                    url,
                    schema: args.db_schema,
                }
            }
            Some(url) => anyhow::bail!(
                "--db `{url}` is not a PostgreSQL URL; use postgres://user@host:port/database, or leave --db out for the embedded database"
            ),
        };
        let max_upload = atoll_manifest::parse_size(&args.max_upload)
            .map_err(|e| anyhow::anyhow!("--max-upload: {e}"))?;
        let data = args.data.unwrap_or_else(default_data_dir);
        let mut config = ServerConfig::new(listen, &data);
        config.database = database.clone();
        config.max_upload_bytes = max_upload;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(async move {
            let server = Server::bind(config).await.with_context(|| {
                format!(
                    "cannot start the registry on {listen} with data in {}",
                    data.display()
                )
            })?;
            let addr = server.local_addr()?;
            let db = match &database {
                Database::Embedded => format!("{}", data.join("registry.redb").display()),
                Database::Postgres { schema, .. } => format!("PostgreSQL, schema {schema}"),
            };
            tracing::info!(
                "registry serving on http://{addr} (data {}, metadata in {db})",
                data.display()
            );
            println!("http://{addr}");
            server.run(super::up::shutdown_signal()).await?;
            tracing::info!("stopped");
            anyhow::Ok(())
        })
    }
}

fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let client = args.registry.client()?;
    let report = super::share::runtime()?.block_on(client.audit())?;
    println!(
        "audited {} log entries of {}: {} namespaces, {} releases, {} yanks, {} key changes; every entry follows the rules and the log extends the one this client saw",
        report.size,
        client.url(),
        report.n_namespaces,
        report.n_releases,
        report.n_yanks,
        report.n_key_changes
    );
    Ok(())
}

fn default_data_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("ATOLL_HOME") {
        return PathBuf::from(home).join("registry");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("atoll/registry");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/atoll/registry"),
        None => PathBuf::from("atoll-registry"),
    }
}
