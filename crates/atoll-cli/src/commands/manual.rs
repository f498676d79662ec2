//! `atoll completions SHELL` and `atoll man`: shell completion scripts and man pages,
//! generated from the clap definitions (`clap_complete`, `clap_mangen`), so they never
//! drift from the commands.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Print a shell completion script.
#[derive(clap::Args)]
pub struct CompletionsCommand {
    /// The shell.
    shell: clap_complete::Shell,
}

impl CompletionsCommand {
    pub fn execute(self, mut cmd: clap::Command) -> Result<()> {
        clap_complete::generate(self.shell, &mut cmd, "atoll", &mut std::io::stdout());
        Ok(())
    }
}

/// Write man pages.
#[derive(clap::Args)]
pub struct ManCommand {
    /// The directory to write atoll.1 and atoll-SUBCOMMAND.1 into (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
}

impl ManCommand {
    pub fn execute(self, cmd: clap::Command) -> Result<()> {
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("cannot create {}", self.out.display()))?;
        // One page per command, named and with a synopsis by its full path
        // (`atoll-key-generate.1`: `atoll key generate [OPTIONS]`), global flags included.
        clap_mangen::generate_to(cmd.bin_name("atoll"), &self.out)
            .with_context(|| format!("cannot write the man pages to {}", self.out.display()))?;
        if super::verbosity() > super::Verbosity::Quiet {
            let n = std::fs::read_dir(&self.out)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
                        .count()
                })
                .unwrap_or(0);
            eprintln!("wrote {n} man pages to {}", self.out.display());
        }
        Ok(())
    }
}
