//! `atoll add ns:name@^1.2`: resolve, download and verify a package, cache it, and
//! record it in `atoll.lock`.

use std::path::PathBuf;

use atoll_registry::Lockfile;
use atoll_registry::lockfile::lockfile_path;
use atoll_registry::resolve::{PackageSpec, VersionReq};
use clap::Args;

use super::share::{RegistryArg, runtime};

/// Add a registry package to the app's lockfile.
#[derive(Args)]
pub struct AddCommand {
    /// namespace:name, optionally @REQ (e.g. acme:auth@^1.2); newest by default.
    spec: String,
    /// The app directory (where atoll.lock is written).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    registry: RegistryArg,
}

impl AddCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let spec = PackageSpec::parse(&self.spec)?;
        let lock_path = lockfile_path(&self.dir);
        // Read the lockfile first, so a broken one fails before any download.
        let mut lock = Lockfile::load_or_default(&lock_path)?;
        let client = self.registry.client()?;
        let added = runtime()?.block_on(client.add(&spec))?;
        let locked = added.locked.clone();
        lock.upsert(added.locked);
        lock.save(&lock_path)?;
        println!(
            "added {}@{} to {} (sha256 {}, publisher {})",
            locked.name,
            locked.version,
            lock_path.display(),
            locked.sha256,
            locked.publisher
        );
        // Suggest a caret requirement when none was typed.
        let req = if spec.req == VersionReq::STAR {
            format!("^{}", locked.version)
        } else {
            spec.req.to_string()
        };
        println!(
            "use it in atoll.toml: source = {{ package = \"{}\", version = \"{req}\" }}",
            locked.name
        );
        Ok(())
    }
}
