//! `atoll pull`: fetch exactly what `atoll.lock` names into the local cache, verifying
//! each package.

use std::path::PathBuf;

use atoll_registry::Lockfile;
use atoll_registry::lockfile::lockfile_path;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::share::{RegistryArg, runtime};

/// Download and verify every package in atoll.lock.
#[derive(Args)]
pub struct PullCommand {
    /// The app directory (with atoll.lock).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    #[command(flatten)]
    registry: RegistryArg,
}

impl PullCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let lock_path = lockfile_path(&self.dir);
        let lock = Lockfile::load(&lock_path)?;
        if lock.packages.is_empty() {
            println!("{} locks no packages; nothing to pull", lock_path.display());
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
