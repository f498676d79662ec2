//! `atoll add ns:name@^1.2`: resolve, download and verify a package, cache it, record it
//! in `atoll.lock`, and point a component of `atoll.toml` at it (editing the file in
//! place, comments and layout kept).

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
    /// The app directory (where atoll.toml and atoll.lock are).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The component to use the package as [default: the one already using it, else
    /// the package's name without its namespace].
    #[arg(long)]
    component: Option<String>,
    #[command(flatten)]
    registry: RegistryArg,
    /// Print JSON: package, version, sha256, publisher, lockfile, and the component (or
    /// dependency) of atoll.toml that now uses it.
    #[arg(long)]
    json: bool,
}

impl AddCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let spec = PackageSpec::parse(&self.spec)?;
        if let Some(name) = &self.component {
            atoll_manifest::check_name(name).map_err(|e| anyhow::anyhow!("--component: {e}"))?;
        }
        let lock_path = lockfile_path(&self.dir);
        // Read the lockfile and the manifest first, so a broken one fails before any
        // download, and nothing is written unless everything verified.
        let mut lock = Lockfile::load_or_default(&lock_path)?;
        let manifest_path = self.dir.join(atoll_manifest::MANIFEST_FILE);
        let manifest = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => Some(text.parse::<toml_edit::DocumentMut>().map_err(|e| {
                anyhow::anyhow!("{} is not valid TOML: {e}", manifest_path.display())
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot read {}: {e}",
                    manifest_path.display()
                ));
            }
        };
        // An app that already locks packages keeps using the registry they came from.
        let recorded = lock.packages.first().map(|p| p.registry.clone());
        let client = self.registry.client_or(recorded.as_deref())?;
        let added = runtime()?.block_on(client.add(&spec))?;
        let locked = added.locked.clone();
        lock.upsert(added.locked);
        // Suggest a caret requirement when none was typed.
        let req = if spec.req == VersionReq::STAR {
            format!("^{}", locked.version)
        } else {
            spec.req.to_string()
        };
        // Edit the manifest in memory first: if that fails, neither file is written.
        let edited = match manifest {
            Some(mut doc) => {
                let name =
                    use_in_manifest(&mut doc, &locked.name, &req, self.component.as_deref())?;
                Some((name, doc))
            }
            None => None,
        };
        lock.save(&lock_path)?;
        if !self.json {
            println!(
                "added {}@{} to {} (sha256 {}, publisher {})",
                locked.name,
                locked.version,
                lock_path.display(),
                locked.sha256,
                locked.publisher
            );
        }
        let used_by = match edited {
            Some((name, doc)) => {
                std::fs::write(&manifest_path, doc.to_string()).map_err(|e| {
                    anyhow::anyhow!("cannot write {}: {e}", manifest_path.display())
                })?;
                if !self.json {
                    println!(
                        "{name} in {} now uses {}@{req}",
                        manifest_path.display(),
                        locked.name
                    );
                }
                Some(name)
            }
            None => {
                if !self.json {
                    println!(
                        "use it in atoll.toml: source = {{ package = \"{}\", version = \"{req}\" }}",
                        locked.name
                    );
                }
                None
            }
        };
        if self.json {
            super::print_json(&serde_json::json!({
                "package": locked.name.to_string(),
                "version": locked.version.to_string(),
                "requirement": req,
                "sha256": locked.sha256.to_string(),
                "publisher": locked.publisher.to_string(),
                "lockfile": lock_path.display().to_string(),
                "used_by": used_by,
            }))?;
        }
        Ok(())
    }
}

/// Point a component at `package`: the one named `--component`, else a dependency or a
/// component already using the package, else a new `[component.NAME]` named after the
/// package. Returns what now uses it ("component `NAME`" or "dependency `…` of component
/// `NAME`").
fn use_in_manifest(
    doc: &mut toml_edit::DocumentMut,
    package: &str,
    req: &str,
    wanted: Option<&str>,
) -> anyhow::Result<String> {
    use toml_edit::{InlineTable, Item, Table, Value};
    let components = doc
        .entry("component")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| anyhow::anyhow!("`component` in atoll.toml is not a table"))?;
    let uses_package = |item: &Item| {
        item.get("source")
            .and_then(|s| s.get("package"))
            .and_then(|p| p.as_str())
            == Some(package)
    };
    // A dependency that names the package (`{ package = "…", version = "…" }` under
    // `[component.NAME.dependencies]`) is what uses it: update its version, add nothing.
    if wanted.is_none() {
        for (comp, item) in components.iter_mut() {
            let Some(deps) = item
                .get_mut("dependencies")
                .and_then(|d| d.as_table_like_mut())
            else {
                continue;
            };
            for (import, dep) in deps.iter_mut() {
                let Some(entry) = dep.as_table_like_mut() else {
                    continue;
                };
                if entry.get("package").and_then(|p| p.as_str()) == Some(package) {
                    entry.insert("version", Item::Value(Value::from(req)));
                    return Ok(format!(
                        "dependency `{}` of component `{}`",
                        import.get(),
                        comp.get()
                    ));
                }
            }
        }
    }
    let name = match wanted {
        Some(n) => n.to_string(),
        None => components
            .iter()
            .find(|(_, item)| uses_package(item))
            .map(|(k, _)| k.to_string())
            .unwrap_or_else(|| package.split(':').nth(1).unwrap_or(package).to_string()),
    };
    if wanted.is_none() {
        atoll_manifest::check_name(&name).map_err(|e| {
            anyhow::anyhow!(
                "cannot name a component after package `{package}`: {e}; choose a name with --component NAME"
            )
        })?;
    }
    let mut source = InlineTable::new();
    source.insert("package", Value::from(package));
    source.insert("version", Value::from(req));
    match components.get_mut(&name) {
        Some(existing) => {
            let is_other_path = existing.get("source").is_some_and(|s| s.as_str().is_some());
            if is_other_path && wanted.is_none() {
                anyhow::bail!(
                    "component `{name}` in atoll.toml already has a source of its own; choose the component with --component NAME"
                );
            }
            let table = existing.as_table_like_mut().ok_or_else(|| {
                anyhow::anyhow!("`component.{name}` in atoll.toml is not a table")
            })?;
            table.insert("source", Item::Value(Value::InlineTable(source)));
            // A registry package is not built here.
            table.remove("build");
        }
        None => {
            let mut t = Table::new();
            t.insert("source", Item::Value(Value::InlineTable(source)));
            components.insert(&name, Item::Table(t));
        }
    }
    Ok(format!("component `{name}`"))
}
