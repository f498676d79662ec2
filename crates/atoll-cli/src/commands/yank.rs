//! `atoll yank ns:name@1.2.0`: hide a version from resolution (existing lockfiles keep
//! fetching it).

use anyhow::Context as _;
use atoll_registry::PackageName;
use atoll_registry::name::parse_version;
use clap::Args;

use super::share::{RegistryArg, atoll_home, runtime};

/// Yank a published version.
#[derive(Args)]
pub struct YankCommand {
    /// namespace:name@version, e.g. acme:auth@1.2.0.
    spec: String,
    /// Name of the key to sign with.
    #[arg(long, default_value = "default")]
    key: String,
    #[command(flatten)]
    registry: RegistryArg,
    /// Print JSON: package, version.
    #[arg(long)]
    json: bool,
}

impl YankCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let (name, version) = self
            .spec
            .split_once('@')
            .context("give an exact version, e.g. acme:auth@1.2.0")?;
        let package = PackageName::parse(name)?;
        let version = parse_version(version)?;
        let key = atoll_home().load_key(&self.key)?;
        let client = self.registry.client()?;
        runtime()?.block_on(client.yank(&key, &package, &version))?;
        if self.json {
            super::print_json(&serde_json::json!({
                "package": package.to_string(),
                "version": version.to_string(),
                "yanked": true,
            }))?;
        } else {
            println!("yanked {package}@{version}");
        }
        Ok(())
    }
}
