//! `atoll pull`: fetch exactly what `atoll.lock` names into the local cache, verifying
//! each package.

use std::path::PathBuf;

use atoll_registry::Lockfile;
use atoll_registry::lockfile::lockfile_path;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::oci::OciArgs;
use super::share::{RegistryArg, runtime};

/// Download and verify every package in atoll.lock, or one component from an OCI registry.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  atoll pull                       # what atoll.lock names, into the cache\n  atoll pull oci://127.0.0.1:5000/acme/hello:1.0 --output hello.wasm"
)]
pub struct PullCommand {
    /// An OCI reference (oci://HOST/REPOSITORY:TAG or @sha256:…) to pull one component
    /// from; without it, everything atoll.lock names is fetched into the cache.
    reference: Option<String>,
    /// Where to write the pulled component [default: NAME.wasm, NAME the repository's
    /// last segment]. Only with a reference.
    #[arg(long, short = 'o', requires = "reference")]
    output: Option<PathBuf>,
    /// The app directory (with atoll.lock).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    registry: RegistryArg,
    #[command(flatten)]
    oci: OciArgs,
    /// Print the result as JSON (with a reference).
    #[arg(long, requires = "reference")]
    json: bool,
}

impl PullCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        if let Some(reference) = &self.reference {
            return super::oci::pull_to_file(reference, self.output, &self.oci, self.json);
        }
        let lock_path = lockfile_path(&self.dir);
        let lock = Lockfile::load(&lock_path)?;
        if lock.packages.is_empty() && lock.oci.is_empty() {
            println!("{} locks no packages; nothing to pull", lock_path.display());
            return Ok(());
        }
        super::oci::pull_locked(&lock, &self.oci)?;
        if lock.packages.is_empty() {
            return Ok(());
        }
        // Without --registry, use the registry the lockfile recorded (when it names one).
        let recorded = lock.packages[0].registry.as_str();
        let same = lock.packages.iter().all(|p| p.registry == recorded);
        let client = self.registry.client_or(same.then_some(recorded))?;
        let bar = ProgressBar::new(lock.packages.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
            bar.set_style(style);
        }
        let pulled = runtime()?.block_on(client.pull(&lock, &mut |p| {
            bar.set_message(format!("{}@{}", p.name, p.version));
            bar.inc(1);
        }));
        bar.finish_and_clear();
        for p in pulled? {
            let how = if p.downloaded { "downloaded" } else { "cached" };
            println!("{how} {}@{} -> {}", p.package, p.version, p.path.display());
        }
        Ok(())
    }
}
