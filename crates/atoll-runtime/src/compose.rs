//! Composition: a component's `[component.NAME.dependencies]` instantiated inside it with
//! `wac-graph`, so the loader sees one component. Each dependency's exports satisfy the
//! imports its entry names; everything else the dependencies import becomes an import of
//! the composed component, served by the host like the component's own.
//!
//! The host cannot tell a dependency's host calls from the component's, so a dependency
//! would get the component's grants through any import they share. Unless its entry says
//! `inherit_capabilities = true`, a dependency that imports an interface through which it
//! would get one of the component's capabilities (outbound HTTP when hosts are allowed,
//! key-value when stores are, files, config variables, environment variables) is
//! refused here, at load, with the reason: no capability reaches a dependency unless the
//! manifest says so.
//!
//! Dependencies come from another component of the app, a local file, or (resolved
//! offline through `atoll.lock` by `packages.rs`) a registry package or an OCI artifact.
//!
//! Not for: fetching dependencies (the binary pulls and pins them first), or
//! dependencies of dependencies (a dependency is used as its bytes are).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atoll_manifest::{App, Component, Dependency, DependencySource, Diagnostic};
use sha2::{Digest as _, Sha256};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

/// One dependency with its bytes, ready to compose.
pub struct ResolvedDependency<'a> {
    /// The manifest entry.
    pub entry: &'a Dependency,
    /// What it is, for messages: `component auth` or the file's path.
    pub label: String,
    /// The dependency's component bytes.
    pub bytes: Vec<u8>,
}

/// What a composition wired: for `atoll inspect` and the load log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    /// The import of the component, with its version.
    pub import: String,
    /// The dependency that satisfies it (its label).
    pub dependency: String,
}

/// The interface name without `@version`.
fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

/// The `ns:pkg` of an interface name.
fn package_of(name: &str) -> &str {
    let base = unversioned(name);
    base.split_once('/').map_or(base, |(p, _)| p)
}

/// Whether the manifest key `selector` names `import`: the exact versioned name, the
/// name without version, or its package.
fn selects(selector: &str, import: &str) -> bool {
    let version = |name: &str| name.split_once('@').map(|(_, v)| v.to_string());
    selector == import
        || (!selector.contains('@') && selector == unversioned(import))
        || (!selector.contains('/')
            && package_of(selector) == package_of(import)
            && (!selector.contains('@') || version(selector) == version(import)))
}

/// The component's grants that a dependency importing `import` would get too, if any.
fn shared_grant(component: &Component, import: &str) -> Option<&'static str> {
    let g = &component.grants;
    let base = unversioned(import);
    if base == "wasi:http/outgoing-handler" && !g.allowed_outbound_hosts.is_empty() {
        return Some("allowed_outbound_hosts");
    }
    if base.starts_with("wasi:keyvalue/") && !g.key_value_stores.is_empty() {
        return Some("key_value_stores");
    }
    if base.starts_with("fermyon:spin/") && !g.key_value_stores.is_empty() {
        return Some("key_value_stores");
    }
    if base.starts_with("wasi:filesystem/") && !g.files.is_empty() {
        return Some("files");
    }
    if (base.starts_with("wasi:config/") || base == "fermyon:spin/variables")
        && !g.variables.is_empty()
    {
        return Some("variables");
    }
    if base == "wasi:cli/environment" && !component.environment.is_empty() {
        return Some("environment");
    }
    None
}

/// Read `component`'s dependencies (another component's file from `path_of`, or the
/// entry's path) and compose them into `main`, the bytes of its source.
///
/// `pinned` gives the verified cached file of a dependency from a registry package or an
/// OCI artifact (see `resolve_dependencies`).
///
/// With `cache`, the result is kept under `cache/composed/`, named by the sha256 of the
/// inputs (the component's and each dependency's bytes, the imports they are wired to,
/// and whether each inherits), so the same inputs are composed once.
pub fn compose_from_files(
    app: &App,
    component: &Component,
    main: Vec<u8>,
    path_of: impl Fn(&str) -> Option<PathBuf>,
    pinned: impl Fn(&Dependency) -> Option<PathBuf>,
    cache: Option<&Path>,
) -> Result<(Vec<u8>, Vec<Wiring>), Diagnostic> {
    let mut deps = Vec::new();
    for d in &component.dependencies {
        let (label, bytes) = match &d.source {
            DependencySource::Package(_) | DependencySource::Oci(_) => {
                let label = match &d.source {
                    DependencySource::Package(p) => format!("package `{}`", p.name),
                    DependencySource::Oci(r) => format!("`{r}`"),
                    _ => String::new(),
                };
                let Some(path) = pinned(d) else {
                    return Err(app
                        .diagnostic(
                            d.span.clone(),
                            format!("dependency {label} is not resolved: this loader has no registry home"),
                        )
                        .key(format!("component.{}.dependencies.{}", component.name, d.import))
                        .help("give the loader the user's home (`Loader::with_home`), or use a `path` dependency"));
                };
                let bytes = std::fs::read(&path).map_err(|e| {
                    app.diagnostic(
                        d.span.clone(),
                        format!(
                            "cannot read {}, the cached {label}: {}",
                            path.display(),
                            atoll_engine::io_reason(&e)
                        ),
                    )
                    .help("run `atoll pull` to fetch what atoll.lock names")
                })?;
                (label, bytes)
            }
            DependencySource::Component(name) => {
                let other = app.components.get(name).zip(path_of(name));
                let Some((other, path)) = other else {
                    return Err(app
                        .diagnostic(
                            d.span.clone(),
                            format!("dependency component `{name}` has no resolved source"),
                        )
                        .key(format!(
                            "component.{}.dependencies.{}",
                            component.name, d.import
                        )));
                };
                (
                    format!("component `{name}`"),
                    crate::app::read_component(app, other, &path)?,
                )
            }
            DependencySource::Path(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    app.diagnostic(
                        d.span.clone(),
                        format!(
                            "cannot read `{}`, dependency `{}` of component `{}`: {}",
                            path.display(),
                            d.import,
                            component.name,
                            atoll_engine::io_reason(&e)
                        ),
                    )
                    .key(format!("component.{}.dependencies.{}", component.name, d.import))
                    .help("fix the path (it is relative to the manifest), or build the dependency first")
                })?;
                (format!("`{}`", path.display()), bytes)
            }
        };
        deps.push(ResolvedDependency {
            entry: d,
            label,
            bytes,
        });
    }
    let Some(cache) = cache else {
        return compose(app, component, main, deps);
    };
    let key = inputs_digest(component, &main, &deps);
    let dir = cache.join("composed");
    let wasm = dir.join(format!("{key}.wasm"));
    let wires = dir.join(format!("{key}.wiring"));
    if let (Ok(bytes), Ok(text)) = (std::fs::read(&wasm), std::fs::read_to_string(&wires)) {
        let wiring: Vec<Wiring> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(import, dependency)| Wiring {
                import: import.to_string(),
                dependency: dependency.to_string(),
            })
            .collect();
        // Every dependency wires at least one import; an empty list is a broken entry.
        if !wiring.is_empty() {
            tracing::debug!(component = %component.name, "composition from the cache ({key})");
            return Ok((bytes, wiring));
        }
    }
    let (bytes, wiring) = compose(app, component, main, deps)?;
    // The cache is an optimisation: a failure to write it is logged, never fatal.
    let text: String = wiring
        .iter()
        .map(|w| format!("{}\t{}\n", w.import, w.dependency))
        .collect();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| write_new(&wasm, &bytes))
        .and_then(|()| write_new(&wires, text.as_bytes()));
    if let Err(e) = written {
        tracing::warn!(component = %component.name, "cannot cache the composition in {}: {e}", dir.display());
    }
    Ok((bytes, wiring))
}

/// The sha256 (hex) naming a composition's inputs: everything the result and its
/// checks depend on, including which of the component's grants a dependency could share
/// (so adding a grant composes, and checks, again).
fn inputs_digest(component: &Component, main: &[u8], deps: &[ResolvedDependency<'_>]) -> String {
    let g = &component.grants;
    let grants = [
        !g.allowed_outbound_hosts.is_empty(),
        !g.key_value_stores.is_empty(),
        !g.files.is_empty(),
        !g.variables.is_empty(),
        !component.environment.is_empty(),
    ];
    let mut h = Sha256::new();
    h.update(b"atoll-compose-v2\n");
    h.update(grants.map(u8::from));
    h.update(Sha256::digest(main));
    for d in deps {
        h.update(d.entry.import.as_bytes());
        h.update(b"\t");
        h.update(d.label.as_bytes());
        h.update(if d.entry.inherit_capabilities {
            b"\t1\t"
        } else {
            b"\t0\t"
        });
        h.update(Sha256::digest(&d.bytes));
    }
    hex::encode(h.finalize())
}

/// Write through a temporary file, so a reader never sees half a file.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Compose `main` (the bytes of `component`'s source) with `deps`. Errors are
/// diagnostics at the dependency's line.
pub fn compose(
    app: &App,
    component: &Component,
    main: Vec<u8>,
    deps: Vec<ResolvedDependency<'_>>,
) -> Result<(Vec<u8>, Vec<Wiring>), Diagnostic> {
    let at = |d: &Dependency, message: String| {
        app.diagnostic(d.span.clone(), message).key(format!(
            "component.{}.dependencies.{}",
            component.name, d.import
        ))
    };
    let mut graph = CompositionGraph::new();
    let main_pkg =
        Package::from_bytes("atoll:main", None, main, graph.types_mut()).map_err(|e| {
            app.diagnostic(
                component.source_span.clone(),
                format!("`{}` cannot be composed: {e:#}", component.source_written),
            )
            .key(format!("component.{}.source", component.name))
        })?;
    let main_world = &graph.types()[main_pkg.ty()];
    let main_imports: Vec<String> = main_world.imports.keys().cloned().collect();
    let main_exports: Vec<String> = main_world.exports.keys().cloned().collect();

    // Which dependency satisfies which import: every entry must match at least one
    // import, and no import may be matched by two entries.
    let mut chosen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, d) in deps.iter().enumerate() {
        let matched: Vec<&String> = main_imports
            .iter()
            .filter(|imp| selects(&d.entry.import, imp))
            .collect();
        if matched.is_empty() {
            // Same interface, another version?
            let other_version = main_imports
                .iter()
                .find(|imp| unversioned(imp) == unversioned(&d.entry.import));
            let message = match other_version {
                Some(imp) => format!(
                    "component `{}` imports `{imp}`, not `{}`: incompatible interface versions",
                    component.name, d.entry.import
                ),
                None => format!(
                    "component `{}` has no import `{}` for this dependency to satisfy",
                    component.name, d.entry.import
                ),
            };
            let imports: Vec<&str> = main_imports
                .iter()
                .filter(|i| !i.starts_with("wasi:"))
                .map(String::as_str)
                .collect();
            return Err(at(d.entry, message).help(if imports.is_empty() {
                "it imports only WASI interfaces, which the host provides; remove this dependency"
                    .to_string()
            } else {
                format!("its non-WASI imports are: {}", imports.join(", "))
            }));
        }
        for imp in matched {
            if let Some(&j) = chosen.get(imp) {
                return Err(at(
                    d.entry,
                    format!(
                        "import `{imp}` of component `{}` is satisfied by two dependencies: `{}` ({}) and `{}` ({})",
                        component.name, deps[j].entry.import, deps[j].label, d.entry.import, d.label
                    ),
                )
                .help("keep one entry for each import"));
            }
            chosen.insert(imp.clone(), i);
        }
    }

    let main_id = graph.register_package(main_pkg).map_err(|e| {
        app.diagnostic(
            component.source_span.clone(),
            format!("`{}` cannot be composed: {e}", component.source_written),
        )
    })?;
    let mut dep_nodes = Vec::new();
    for (i, d) in deps.iter().enumerate() {
        let name = format!("atoll:dep{i}");
        let pkg =
            Package::from_bytes(&name, None, d.bytes.clone(), graph.types_mut()).map_err(|e| {
                at(
                    d.entry,
                    format!("dependency {} cannot be composed: {e:#}", d.label),
                )
                .help("a dependency must be a WebAssembly component")
            })?;
        let world = &graph.types()[pkg.ty()];
        // What it would get from the host that the component was granted.
        if !d.entry.inherit_capabilities {
            // Every import of a dependency is the host's: only the component's own
            // imports are wired to dependencies.
            for imp in world.imports.keys() {
                if let Some(grant) = shared_grant(component, imp) {
                    return Err(at(
                        d.entry,
                        format!(
                            "dependency {} imports `{imp}`, through which it would get component `{}`'s `{grant}`; a dependency gets no capability unless the manifest grants it",
                            d.label, component.name
                        ),
                    )
                    .help(format!(
                        "set `inherit_capabilities = true` on this dependency to share `{}`'s grants with it, or use a dependency that does not need `{imp}`",
                        component.name
                    )));
                }
            }
        }
        let exports: Vec<String> = world.exports.keys().cloned().collect();
        let id = graph.register_package(pkg).map_err(|e| {
            at(
                d.entry,
                format!("dependency {} cannot be composed: {e}", d.label),
            )
        })?;
        dep_nodes.push((id, exports));
    }

    // Instantiate each dependency that satisfies something, then the component.
    let mut instances = BTreeMap::new();
    let mut wiring = Vec::new();
    let main_inst = graph.instantiate(main_id);
    for (imp, &i) in &chosen {
        let d = &deps[i];
        let (id, exports) = &dep_nodes[i];
        let export = exports
            .iter()
            .find(|e| *e == imp)
            .or_else(|| exports.iter().find(|e| unversioned(e) == unversioned(imp)));
        let Some(export) = export.cloned() else {
            let list: Vec<&str> = exports
                .iter()
                .filter(|e| !e.starts_with("wasi:"))
                .map(String::as_str)
                .collect();
            return Err(at(
                d.entry,
                format!(
                    "dependency {} does not export `{imp}`, which component `{}` imports",
                    d.label, component.name
                ),
            )
            .help(if list.is_empty() {
                "it exports no interface of its own".to_string()
            } else {
                format!("it exports: {}", list.join(", "))
            }));
        };
        let inst = *instances.entry(i).or_insert_with(|| graph.instantiate(*id));
        let alias = graph.alias_instance_export(inst, &export).map_err(|e| {
            at(
                d.entry,
                format!("cannot use `{export}` of dependency {}: {e}", d.label),
            )
        })?;
        graph.set_instantiation_argument(main_inst, imp, alias).map_err(|e| {
            at(
                d.entry,
                format!(
                    "dependency {} exports `{export}`, which does not fit import `{imp}` of component `{}`: {e}",
                    d.label, component.name
                ),
            )
            .help("build both against the same version of the interface's WIT")
        })?;
        wiring.push(Wiring {
            import: imp.clone(),
            dependency: d.label.clone(),
        });
    }
    for export in &main_exports {
        let alias = graph
            .alias_instance_export(main_inst, export)
            .map_err(|e| {
                app.diagnostic(
                    component.source_span.clone(),
                    format!("cannot re-export `{export}`: {e}"),
                )
            })?;
        graph.export(alias, export).map_err(|e| {
            app.diagnostic(
                component.source_span.clone(),
                format!("cannot re-export `{export}`: {e}"),
            )
        })?;
    }
    let bytes = graph.encode(EncodeOptions::default()).map_err(|e| {
        app.diagnostic(
            component.source_span.clone(),
            format!("composing component `{}` with its dependencies failed: {e:#}", component.name),
        )
        .key(format!("component.{}.dependencies", component.name))
        .help("two parts import the same interface at types that do not merge, or a dependency is not a component; `atoll inspect` shows what each imports")
    })?;
    Ok((bytes, wiring))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_names_an_interface_a_version_of_it_or_its_package() {
        let import = "acme:auth/verify@1.0.0";
        assert!(selects("acme:auth/verify@1.0.0", import));
        assert!(selects("acme:auth/verify", import));
        assert!(selects("acme:auth", import));
        assert!(!selects("acme:auth/verify@2.0.0", import));
        assert!(!selects("acme:auth/other", import));
        assert!(!selects("acme:aut", import));
        assert!(selects("acme:auth@1.0.0", import));
        assert!(!selects("acme:auth@2.0.0", import));
        assert!(selects("acme:auth/verify", "acme:auth/verify"));
    }
}
