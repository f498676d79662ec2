//! `atoll publish PATH --package ns:name --version X`: sign a component and upload it.

use std::path::PathBuf;

use anyhow::Context as _;
use atoll_registry::PackageName;
use atoll_registry::name::parse_version;
use clap::Args;

use super::share::{RegistryArg, atoll_home, runtime};

/// Sign a component with your key and publish it.
#[derive(Args)]
pub struct PublishCommand {
    /// The component (.wasm) to publish.
    path: PathBuf,
    /// Package name, namespace:name (the first publish claims the namespace for your key).
    #[arg(long)]
    package: String,
    /// Semver version; published versions are immutable.
    #[arg(long)]
    version: String,
    /// Name of the key to sign with (see `atoll key list`).
    #[arg(long, default_value = "default")]
    key: String,
    #[command(flatten)]
    registry: RegistryArg,
    /// Print JSON: package, version, registry, log_index, key_id.
    #[arg(long)]
    json: bool,
}

impl PublishCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        // Check everything local before touching the network.
        let package = PackageName::parse(&self.package)?;
        let version = parse_version(&self.version)?;
        let key = atoll_home().load_key(&self.key)?;
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        atoll_registry::wit::World::of_component(&self.path.display().to_string(), &bytes)?;
        let client = self.registry.client()?;
        let log_index = runtime()?.block_on(client.publish(&key, &package, &version, bytes))?;
        if self.json {
            super::print_json(&serde_json::json!({
                "package": package.to_string(),
                "version": version.to_string(),
                "registry": client.url().to_string(),
                "log_index": log_index,
                "key_id": key.public().key_id().to_string(),
            }))?;
        } else {
            println!(
                "published {package}@{version} to {} (log entry {log_index}, signed by {})",
                client.url(),
                key.public().key_id()
            );
        }
        Ok(())
    }
}
