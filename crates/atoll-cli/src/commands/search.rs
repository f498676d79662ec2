//! `atoll search TEXT | --exports IFACE | --imports IFACE`: find packages by name or by
//! the WIT interfaces they export or import.

use clap::Args;

use super::share::{RegistryArg, runtime};

/// Search the registry.
#[derive(Args)]
pub struct SearchCommand {
    /// Text to find in package names.
    text: Option<String>,
    /// Only packages exporting this interface (e.g. wasi:http/incoming-handler).
    #[arg(long, value_name = "IFACE")]
    exports: Option<String>,
    /// Only packages importing this interface (e.g. wasi:keyvalue/store).
    #[arg(long, value_name = "IFACE")]
    imports: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArg,
}

impl SearchCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let client = self.registry.client()?;
        let results = runtime()?.block_on(client.search(
            self.text.as_deref(),
            self.exports.as_deref(),
            self.imports.as_deref(),
        ))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
            return Ok(());
        }
        if results.is_empty() {
            eprintln!("no packages match");
        }
        for r in results {
            println!("{}@{}", r.package, r.version);
            for e in &r.world.exports {
                println!("  exports {e}");
            }
        }
        Ok(())
    }
}
