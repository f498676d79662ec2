//! Registry packages (`source = { package, version }`) and OCI artifacts (`source =
//! "oci://…"`) resolved to the file `atoll.lock` pins, verified against its sha256 in the
//! user's blob cache. Offline: a package
//! missing from the lockfile or the cache is an error that says which command fetches
//! it. The user's home is a parameter (only the binary reads `ATOLL_HOME`).

use std::collections::BTreeMap;

use atoll_manifest::App;
use atoll_registry::{AtollHome, Lockfile, PackageName, lockfile::LOCKFILE};

use crate::app::{ResolvedSource, RuntimeError, source_diagnostic};

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
    let lock_path = app.dir.join(LOCKFILE);
    let lock = Lockfile::load_or_default(&lock_path).map_err(|e| {
        atoll_manifest::Diagnostic::new(e.to_string())
            .help("fix or delete atoll.lock, then run `atoll add` for each package")
    })?;
    for component in app.components.values() {
        if let Some(reference) = component.oci() {
            let at = |msg: String| source_diagnostic(app, component, msg);
            let fetch = "run `atoll pull` (or `atoll up`, which pulls and locks OCI sources first)";
            let Some(locked) = lock.get_oci(reference) else {
                return Err(at(format!(
                    "`{reference}` is not pinned in {}",
                    lock_path.display()
                ))
                .help(fetch)
                .into());
            };
            let digest = locked.component_digest().map_err(|e| at(e.to_string()))?;
            let path = home
                .verified_blob(reference, &digest)
                .map_err(|e| at(format!("cannot use `{reference}`: {e}")))?
                .ok_or_else(|| {
                    at(format!(
                        "`{reference}` ({}) is not in the local cache",
                        locked.digest
                    ))
                    .help(fetch)
                })?;
            tracing::info!(app = %app.name, component = %component.name, "using {reference}@{} from {}", locked.digest, path.display());
            resolved.insert(
                component.name.clone(),
                ResolvedSource {
                    path,
                    locked_version: Some(locked.digest.clone()),
                },
            );
            continue;
        }
        let Some(package) = component.package() else {
            continue;
        };
        let at = |msg: String| source_diagnostic(app, component, msg);
        let name = PackageName::parse(&package.name).map_err(|e| at(e.to_string()))?;
        let add = format!("atoll add {}@{}", package.name, package.version);
        let Some(locked) = lock.get(&name) else {
            return Err(at(format!(
                "package `{}` is not in {}",
                package.name,
                lock_path.display()
            ))
            .help(format!("run `{add}` in {}", app.dir.display()))
            .into());
        };
        let req = semver::VersionReq::parse(&package.version).map_err(|e| at(e.to_string()))?;
        let satisfied = semver::Version::parse(&locked.version).is_ok_and(|v| req.matches(&v));
        if !satisfied {
            return Err(at(format!(
                "atoll.lock pins `{}` at {}, which does not satisfy `{}`",
                package.name, locked.version, package.version
            ))
            .help(format!("run `{add}` to lock a matching version"))
            .into());
        }
        let path = atoll_registry::client::resolve_locked(home, &lock_path, &lock, &name).map_err(
            |e| {
                at(format!("cannot use package `{}`: {e}", package.name))
                    .help("run `atoll pull` to fetch what atoll.lock names")
            },
        )?;
        tracing::info!(app = %app.name, component = %component.name, "using {}@{} from {}", package.name, locked.version, path.display());
        resolved.insert(
            component.name.clone(),
            ResolvedSource {
                path,
                locked_version: Some(locked.version.clone()),
            },
        );
    }
    Ok(resolved)
}
