//! Registry packages (`source = { package, version }`) and OCI artifacts (`source =
//! "oci://…"`), for a component's `source` or one of its `dependencies`, resolved to the
//! file `atoll.lock` pins, verified against its sha256 in the user's blob cache.
//! Offline: one missing from the lockfile or the cache is an error that says which
//! command fetches it. The user's home is a parameter (only the binary reads
//! `ATOLL_HOME`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atoll_manifest::{App, DependencySource, Diagnostic, PackageSource};
use atoll_registry::{AtollHome, Lockfile, PackageName, lockfile::LOCKFILE};

use crate::app::{ResolvedSource, RuntimeError, source_diagnostic};

/// What a lookup needs: the lockfile, where it is, and the blob cache.
struct Pins<'a> {
    lock: Lockfile,
    lock_path: PathBuf,
    home: &'a AtollHome,
}

impl<'a> Pins<'a> {
    fn load(app: &App, home: &'a AtollHome) -> Result<Self, Diagnostic> {
        let lock_path = app.dir.join(LOCKFILE);
        let lock = Lockfile::load_or_default(&lock_path).map_err(|e| {
            Diagnostic::new(e.to_string())
                .help("fix or delete atoll.lock, then run `atoll add` for each package")
        })?;
        Ok(Self {
            lock,
            lock_path,
            home,
        })
    }

    /// The verified cached file `atoll.lock` pins for OCI `reference`.
    fn oci(
        &self,
        reference: &str,
        at: &dyn Fn(String) -> Diagnostic,
    ) -> Result<ResolvedSource, Diagnostic> {
        let fetch = "run `atoll pull` (or `atoll up`, which pulls and locks OCI sources first)";
        let Some(locked) = self.lock.get_oci(reference) else {
            return Err(at(format!(
                "`{reference}` is not pinned in {}",
                self.lock_path.display()
            ))
            .help(fetch));
        };
        let digest = locked.component_digest().map_err(|e| at(e.to_string()))?;
        let path = self
            .home
            .verified_blob(reference, &digest)
            .map_err(|e| at(format!("cannot use `{reference}`: {e}")))?
            .ok_or_else(|| {
                at(format!(
                    "`{reference}` ({}) is not in the local cache",
                    locked.digest
                ))
                .help(fetch)
            })?;
        Ok(ResolvedSource {
            path,
            locked_version: Some(locked.digest.clone()),
        })
    }

    /// The verified cached file `atoll.lock` pins for registry `package`.
    fn package(
        &self,
        package: &PackageSource,
        at: &dyn Fn(String) -> Diagnostic,
    ) -> Result<ResolvedSource, Diagnostic> {
        let name = PackageName::parse(&package.name).map_err(|e| at(e.to_string()))?;
        let add = format!("atoll add {}@{}", package.name, package.version);
        let dir = self.lock_path.parent().unwrap_or(Path::new("."));
        let Some(locked) = self.lock.get(&name) else {
            return Err(at(format!(
                "package `{}` is not in {}",
                package.name,
                self.lock_path.display()
            ))
            .help(format!("run `{add}` in {}", dir.display())));
        };
        let req = semver::VersionReq::parse(&package.version).map_err(|e| at(e.to_string()))?;
        let satisfied = semver::Version::parse(&locked.version).is_ok_and(|v| req.matches(&v));
        if !satisfied {
            return Err(at(format!(
                "atoll.lock pins `{}` at {}, which does not satisfy `{}`",
                package.name, locked.version, package.version
            ))
            .help(format!("run `{add}` to lock a matching version")));
        }
        let path =
            atoll_registry::client::resolve_locked(self.home, &self.lock_path, &self.lock, &name)
                .map_err(|e| {
                at(format!("cannot use package `{}`: {e}", package.name))
                    .help("run `atoll pull` to fetch what atoll.lock names")
            })?;
        Ok(ResolvedSource {
            path,
            locked_version: Some(locked.version.clone()),
        })
    }
}

/// The file and locked version of every component of `app` that comes from a package.
pub fn resolve_packages(
    app: &App,
    home: &AtollHome,
) -> Result<BTreeMap<String, ResolvedSource>, RuntimeError> {
    let mut resolved = BTreeMap::new();
    if app
        .components
        .values()
        .all(|c| c.package().is_none() && c.oci().is_none())
    {
        return Ok(resolved);
    }
    let pins = Pins::load(app, home)?;
    for component in app.components.values() {
        let at = |msg: String| source_diagnostic(app, component, msg);
        let found = if let Some(reference) = component.oci() {
            pins.oci(reference, &at)?
        } else if let Some(package) = component.package() {
            pins.package(package, &at)?
        } else {
            continue;
        };
        tracing::info!(app = %app.name, component = %component.name, "using {}@{} from {}", component.source_written, found.locked_version.as_deref().unwrap_or(""), found.path.display());
        resolved.insert(component.name.clone(), found);
    }
    Ok(resolved)
}

/// The file of every dependency that comes from a package or an OCI artifact, keyed by
/// (component, the dependency's import as written).
pub fn resolve_dependencies(
    app: &App,
    home: &AtollHome,
) -> Result<BTreeMap<(String, String), PathBuf>, RuntimeError> {
    let mut resolved = BTreeMap::new();
    let remote =
        |s: &DependencySource| matches!(s, DependencySource::Package(_) | DependencySource::Oci(_));
    if !app
        .components
        .values()
        .any(|c| c.dependencies.iter().any(|d| remote(&d.source)))
    {
        return Ok(resolved);
    }
    let pins = Pins::load(app, home)?;
    for component in app.components.values() {
        for d in &component.dependencies {
            let at = |msg: String| {
                app.diagnostic(d.span.clone(), format!("dependency `{}`: {msg}", d.import))
                    .key(format!(
                        "component.{}.dependencies.{}",
                        component.name, d.import
                    ))
            };
            let found = match &d.source {
                DependencySource::Package(p) => pins.package(p, &at)?,
                DependencySource::Oci(r) => pins.oci(r, &at)?,
                DependencySource::Component(_) | DependencySource::Path(_) => continue,
            };
            resolved.insert((component.name.clone(), d.import.clone()), found.path);
        }
    }
    Ok(resolved)
}
