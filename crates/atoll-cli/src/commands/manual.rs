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
        let mut written = 0;
        write_pages(
            &cmd.clone().bin_name("atoll"),
            "atoll",
            &self.out,
            &mut written,
        )?;
        if super::verbosity() > super::Verbosity::Quiet {
            eprintln!("wrote {written} man pages to {}", self.out.display());
        }
        Ok(())
    }
}

/// One page for `cmd` and one for each of its subcommands (`atoll-key-generate.1`).
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut usize,
) -> Result<()> {
    let cmd = cmd.clone().name(name.to_string());
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .context("cannot render a man page")?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
