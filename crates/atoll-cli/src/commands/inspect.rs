//! `atoll inspect`: what each component of an app is (size, sha256, WIT imports and
//! exports, what built it), which routes reach it, and what the manifest grants it,
//! with variables resolved as `atoll up` would; or, given a `.wasm` file, that
//! component alone. Secret values are never printed.
//!
//! The facts come from the libraries: `atoll_runtime::read_component` and `atoll_engine::describe_bytes` (the file),
//! `atoll_capabilities::inspect` (config values, stores, imports against grants) and the
//! manifest's model; this file only gathers and prints them. The `--json` shape is
//! documented in the README; `format` changes when a field changes meaning or goes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use atoll_capabilities::inspect::{
    ConfigEntry, ImportFinding, ShownValue, StoreEntry, UnsetVariable, config_entries,
    import_findings, store_entries, unset_variables,
};
use atoll_engine::ComponentFile;
use atoll_manifest::{App, Component, MountSource, PackageSource};
use clap::Args;
use serde_json::{Value, json};

/// Version of the `--json` output.
const JSON_FORMAT: u32 = 1;

/// Show each component's imports, exports, size, sha256, producers, routes and grants;
/// or, given a `.wasm` file, what that component is.
#[derive(Args)]
pub struct InspectCommand {
    /// The app directory, with an atoll.toml [default: .]; or a component file
    /// (`atoll inspect hello.wasm`), shown on its own.
    #[arg(conflicts_with = "file")]
    dir: Option<PathBuf>,
    /// The manifest file (instead of DIR/atoll.toml).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Only this component.
    #[arg(long, value_name = "NAME")]
    component: Option<String>,
    /// Print JSON (the shape is documented in the README) instead of text.
    #[arg(long)]
    json: bool,
    /// The runtime config `atoll up` would use: variable values and store backends.
    #[arg(long, value_name = "FILE")]
    runtime_config: Option<PathBuf>,
}

/// Everything shown about one component.
struct Report<'a> {
    component: &'a Component,
    /// The registry package the component came from, and its locked version.
    locked: Option<(&'a PackageSource, String)>,
    /// The OCI reference the component came from, and the manifest digest locked.
    oci: Option<(&'a str, String)>,
    /// What its dependencies satisfy (empty without dependencies).
    composed: Vec<atoll_runtime::compose::Wiring>,
    /// The file read (for a package, the verified blob in the cache).
    path: std::path::PathBuf,
    file: ComponentFile,
    routes: Vec<String>,
    /// The schedules of the cron triggers that run it (UTC).
    schedules: Vec<String>,
    config: Vec<ConfigEntry>,
    stores: Vec<StoreEntry>,
    findings: Vec<ImportFinding>,
    max_concurrency: u32,
}

impl InspectCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        if let Some(missing) = self
            .dir
            .as_deref()
            .filter(|p| !p.exists() && p.extension().is_some_and(|e| e == "wasm"))
        {
            return Err(super::ComponentError(format!(
                "{} does not exist: give the path of a component file (or of an app directory)",
                missing.display()
            ))
            .into());
        }
        if let Some(file) = self.dir.as_deref().filter(|p| p.is_file()) {
            if self.component.is_some() || self.runtime_config.is_some() {
                anyhow::bail!(
                    "--component and --runtime-config are for an app; `{}` is a component file, shown on its own",
                    file.display()
                );
            }
            return write_stdout(&bare(file, self.json)?);
        }
        let path = super::manifest_path(self.dir.as_deref(), self.file.as_deref());
        let app = atoll_manifest::load(&path)?;
        let resolved = atoll_runtime::resolve_packages(&app, &super::share::atoll_home())?;
        let dependency_paths =
            atoll_runtime::resolve_dependencies(&app, &super::share::atoll_home())?;
        let runtime = match &self.runtime_config {
            Some(p) => atoll_capabilities::RuntimeConfig::load(p)?,
            None => atoll_capabilities::RuntimeConfig::default(),
        };
        // Only the binary reads the environment; the same providers as `atoll up`.
        let env_variables: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(atoll_capabilities::ENV_PREFIX))
            .collect();

        let selected: Vec<&Component> = match &self.component {
            None => app.components.values().collect(),
            Some(name) => match app.components.get(name) {
                Some(c) => vec![c],
                None => {
                    let names: Vec<&str> = app.components.keys().map(String::as_str).collect();
                    let hint = match atoll_manifest::did_you_mean(name, &names) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("its components are: {}", names.join(", ")),
                    };
                    anyhow::bail!(
                        "app `{}` ({}) has no component `{name}`; {hint}",
                        app.name,
                        app.manifest_path().display()
                    );
                }
            },
        };
        let default_concurrency = atoll_runtime::default_max_concurrency();
        let mut reports = Vec::new();
        for component in selected {
            let (path, locked, oci) = match (component.path(), component.package()) {
                (Some(p), _) => (p.to_path_buf(), None, None),
                (None, package) => {
                    let r = resolved
                        .get(&component.name)
                        .context("every package was resolved or refused")?;
                    let locked = package.zip(r.locked_version.clone());
                    let oci = component.oci().zip(r.locked_version.clone());
                    (r.path.clone(), locked, oci)
                }
            };
            let mut bytes = atoll_runtime::read_component(&app, component, &path)?;
            // With dependencies: what `atoll up` serves is the composition, so its imports
            // are the ones shown (and checked against the grants).
            let mut composed = Vec::new();
            if let Some((b, wiring)) =
                super::build::compose(&app, component, &resolved, &dependency_paths)?
            {
                bytes = b;
                composed = wiring;
            }
            let file = atoll_engine::describe_bytes(&bytes)
                .map_err(|e| atoll_runtime::load_diagnostic(&app, component, &e))?;
            let routes = app
                .http_triggers()
                .filter(|t| t.component == component.name)
                .map(|t| t.route.to_string())
                .collect();
            let schedules = app
                .cron_triggers()
                .filter(|t| t.component == component.name)
                .map(|t| t.schedule.to_string())
                .collect();
            reports.push(Report {
                component,
                locked,
                oci,
                composed,
                path,
                findings: import_findings(component, &file.imports),
                file,
                routes,
                schedules,
                config: config_entries(&app, component, &runtime, &env_variables),
                stores: store_entries(component, &runtime),
                max_concurrency: component
                    .limits
                    .max_concurrency
                    .unwrap_or(default_concurrency),
            });
        }

        // Every declared variable, used by a template or not: `atoll up` resolves them all.
        let unset = unset_variables(&app, &runtime, &env_variables);
        let out = if self.json {
            let mut s = serde_json::to_string_pretty(&to_json(&app, &unset, &reports))
                .context("cannot encode the report as JSON")?;
            s.push('\n');
            s
        } else {
            to_text(&app, &unset, &reports)
        };
        write_stdout(&out)
    }
}

fn write_stdout(out: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `atoll inspect | head` is fine.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// `atoll inspect FILE.wasm`: the component alone, no app around it.
fn bare(path: &std::path::Path, json: bool) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = atoll_engine::describe_bytes(&bytes).map_err(|e| {
        super::ComponentError(format!(
            "{} is not a component atoll can run: {e}\nhelp: {}",
            path.display(),
            e.help()
        ))
    })?;
    if json {
        let mut s = serde_json::to_string_pretty(&json!({
            "format": JSON_FORMAT,
            "file": path.display().to_string(),
            "size": file.size,
            "sha256": file.sha256,
            "exports": file.exports,
            "imports": file.imports,
            "producers": producers_json(&file),
            "wit": wit_world(&bytes),
        }))
        .context("cannot encode the report as JSON")?;
        s.push('\n');
        return Ok(s);
    }
    let mut s = String::new();
    let _ = writeln!(s, "component {}", path.display());
    field(&mut s, "size", &[format!("{} bytes", file.size)]);
    field(&mut s, "sha256", std::slice::from_ref(&file.sha256));
    field(&mut s, "exports", &or_none(file.exports.clone()));
    field(&mut s, "imports", &or_none(file.imports.clone()));
    field(&mut s, "built by", &or_none(producers_text(&file)));
    match wit_world(&bytes) {
        Some(wit) => {
            let _ = writeln!(s, "  wit:");
            for line in wit.lines() {
                let line = line.trim_end();
                if line.is_empty() {
                    s.push('\n');
                } else {
                    let _ = writeln!(s, "    {line}");
                }
            }
        }
        None => field(&mut s, "wit", &["(cannot be decoded)".to_string()]),
    }
    Ok(s)
}

/// The component's world as WIT text (`package root:component; world root { ... }`,
/// imports and exports by interface name), as `wasm-tools component wit` prints it; `None`
/// if wit-component cannot decode it.
fn wit_world(bytes: &[u8]) -> Option<String> {
    let decoded = wit_component::decode(bytes).ok()?;
    let resolve = decoded.resolve();
    let package = decoded.package();
    let mut printer = wit_component::WitPrinter::default();
    printer.print(resolve, package, &[]).ok()?;
    Some(printer.output.to_string())
}

/// The producers entries as JSON objects.
fn producers_json(file: &ComponentFile) -> Vec<Value> {
    file.producers
        .iter()
        .map(|(field, name, version)| json!({ "field": field, "name": name, "version": version }))
        .collect()
}

/// The producers entries, one line per field: `language: Rust`, `processed-by: rustc
/// 1.95.0, wit-component 0.240.0`.
fn producers_text(file: &ComponentFile) -> Vec<String> {
    let mut fields: Vec<(&str, Vec<String>)> = Vec::new();
    for (field, name, version) in &file.producers {
        let entry = if version.is_empty() {
            name.clone()
        } else {
            format!("{name} {version}")
        };
        match fields.iter_mut().find(|(f, _)| f == field) {
            Some((_, v)) => v.push(entry),
            None => fields.push((field, vec![entry])),
        }
    }
    fields
        .into_iter()
        .map(|(f, v)| format!("{f}: {}", v.join(", ")))
        .collect()
}

fn to_json(app: &App, unset: &[UnsetVariable], reports: &[Report<'_>]) -> Value {
    let components: Vec<Value> = reports
        .iter()
        .map(|r| {
            let c = r.component;
            let package = r.locked.as_ref().map(|(p, locked)| {
                json!({ "name": p.name, "version": p.version, "locked": locked })
            });
            let oci = r
                .oci
                .as_ref()
                .map(|(reference, digest)| json!({ "reference": reference, "digest": digest }));
            let path = r.path.display().to_string();
            let files: Vec<Value> = c
                .grants
                .files
                .iter()
                .map(|f| match &f.source {
                    MountSource::Dir(d) => {
                        json!({ "source": d, "destination": f.destination, "glob": false })
                    }
                    MountSource::Glob(g) => {
                        json!({ "source": g, "destination": f.destination, "glob": true })
                    }
                })
                .collect();
            let environment: serde_json::Map<String, Value> = c
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let variables: Vec<Value> = r
                .config
                .iter()
                .map(|e| {
                    let (value, secret, missing) = match &e.value {
                        ShownValue::Plain(v) => (Value::String(v.clone()), false, Value::Null),
                        ShownValue::Secret => (Value::Null, true, Value::Null),
                        ShownValue::Missing(var) => {
                            (Value::Null, false, Value::String(var.clone()))
                        }
                    };
                    json!({ "key": e.key, "template": e.template, "value": value, "secret": secret, "missing": missing })
                })
                .collect();
            let findings: Vec<Value> = r
                .findings
                .iter()
                .map(|f| {
                    json!({ "kind": f.kind.as_str(), "grant": f.grant, "interfaces": f.interfaces, "message": f.message })
                })
                .collect();
            json!({
                "name": c.name,
                "source": { "path": path, "written": c.source_written, "package": package, "oci": oci },
                "composed": r.composed.iter().map(|w| json!({ "import": w.import, "dependency": w.dependency })).collect::<Vec<_>>(),
                "size": r.file.size,
                "sha256": r.file.sha256,
                "exports": r.file.exports,
                "imports": r.file.imports,
                "producers": producers_json(&r.file),
                "routes": r.routes,
                "schedules": r.schedules,
                "grants": {
                    "allowed_outbound_hosts": c.grants.allowed_outbound_hosts.iter().map(|h| h.written.as_str()).collect::<Vec<_>>(),
                    "key_value_stores": r.stores.iter().map(|s| json!({ "label": s.label, "backend": s.backend })).collect::<Vec<_>>(),
                    "files": files,
                    "environment": environment,
                    "variables": variables,
                },
                "limits": {
                    "memory_bytes": c.limits.memory,
                    "timeout_ms": u64::try_from(c.limits.timeout.as_millis()).unwrap_or(u64::MAX),
                    "max_concurrency": r.max_concurrency,
                    "max_concurrency_is_default": c.limits.max_concurrency.is_none(),
                },
                "findings": findings,
            })
        })
        .collect();
    json!({
        "format": JSON_FORMAT,
        "app": {
            "name": app.name,
            "version": app.version,
            "manifest": app.manifest_path().display().to_string(),
            "hosts": app.http.hosts,
            "findings": unset
                .iter()
                .map(|u| json!({ "kind": "unset_variable", "variable": u.name, "env": u.env, "message": u.message }))
                .collect::<Vec<_>>(),
        },
        "components": components,
    })
}

fn to_text(app: &App, unset: &[UnsetVariable], reports: &[Report<'_>]) -> String {
    let mut s = String::new();
    let version = if app.version.is_empty() {
        String::new()
    } else {
        format!(" {}", app.version)
    };
    let _ = writeln!(
        s,
        "app {}{version} ({})",
        app.name,
        app.manifest_path().display()
    );
    if !app.http.hosts.is_empty() {
        let _ = writeln!(s, "hosts {}", app.http.hosts.join(", "));
    }
    if !unset.is_empty() {
        let _ = writeln!(s, "findings");
        for u in unset {
            let _ = writeln!(s, "  ! {}", u.message);
        }
    }
    for r in reports {
        let c = r.component;
        let _ = writeln!(s, "\ncomponent {}", c.name);
        let path = r.path.display().to_string();
        match (&r.locked, &r.oci) {
            (Some((p, locked)), _) => {
                field(
                    &mut s,
                    "package",
                    &[format!("{} {}, locked at {locked}", p.name, p.version)],
                );
                field(&mut s, "file", &[path]);
            }
            (None, Some((reference, digest))) => {
                field(&mut s, "oci", &[format!("{reference}, locked at {digest}")]);
                field(&mut s, "file", &[path]);
            }
            (None, None) => field(&mut s, "source", &[path]),
        }
        if !r.composed.is_empty() {
            let lines: Vec<String> = r
                .composed
                .iter()
                .map(|w| format!("{} <- {}", w.import, w.dependency))
                .collect();
            field(&mut s, "composed", &lines);
        }
        field(&mut s, "size", &[format!("{} bytes", r.file.size)]);
        field(&mut s, "sha256", std::slice::from_ref(&r.file.sha256));
        field(&mut s, "routes", &or_none(r.routes.clone()));
        if !r.schedules.is_empty() {
            let cron: Vec<String> = r.schedules.iter().map(|c| format!("{c} (UTC)")).collect();
            field(&mut s, "cron", &cron);
        }
        field(&mut s, "exports", &or_none(r.file.exports.clone()));
        field(&mut s, "imports", &or_none(r.file.imports.clone()));
        field(&mut s, "built by", &or_none(producers_text(&r.file)));
        let _ = writeln!(s, "  grants");
        let hosts = c
            .grants
            .allowed_outbound_hosts
            .iter()
            .map(|h| h.written.clone())
            .collect();
        sub(&mut s, "allowed_outbound_hosts", &or_none(hosts));
        let stores = r
            .stores
            .iter()
            .map(|st| format!("{} ({})", st.label, st.backend))
            .collect();
        sub(&mut s, "key_value_stores", &or_none(stores));
        let files = c
            .grants
            .files
            .iter()
            .map(|f| match &f.source {
                MountSource::Dir(d) => format!("{d} -> {} (read-only)", f.destination),
                MountSource::Glob(g) => {
                    format!("{g} -> {} (matching files, read-only)", f.destination)
                }
            })
            .collect();
        sub(&mut s, "files", &or_none(files));
        let env = c
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        sub(&mut s, "environment", &or_none(env));
        let vars = r
            .config
            .iter()
            .map(|e| match &e.value {
                ShownValue::Plain(v) => format!("{} = {v:?}", e.key),
                ShownValue::Secret => format!("{} = <secret>  ({})", e.key, e.template),
                ShownValue::Missing(var) => format!(
                    "{} = <missing: set {} or `{var}` in the runtime config>  ({})",
                    e.key,
                    atoll_capabilities::env_name(var),
                    e.template
                ),
            })
            .collect();
        sub(&mut s, "variables", &or_none(vars));
        let concurrency = if c.limits.max_concurrency.is_none() {
            format!("{} (default)", r.max_concurrency)
        } else {
            r.max_concurrency.to_string()
        };
        field(
            &mut s,
            "limits",
            &[format!(
                "memory {}, timeout {:?}, max_concurrency {concurrency}",
                size(c.limits.memory),
                c.limits.timeout
            )],
        );
        if !r.findings.is_empty() {
            let _ = writeln!(s, "  findings");
            for f in &r.findings {
                let what = if f.interfaces.is_empty() {
                    format!("`{}`", f.grant)
                } else {
                    f.interfaces.join(", ")
                };
                let _ = writeln!(s, "    ! {what}: {}", f.message);
            }
        }
    }
    s
}

fn or_none(items: Vec<String>) -> Vec<String> {
    if items.is_empty() {
        vec!["none".to_string()]
    } else {
        items
    }
}

/// `  name     first\n           second\n`.
fn field(s: &mut String, name: &str, lines: &[String]) {
    write_lines(s, 2, 10, name, lines);
}

/// A grant line, under `grants`.
fn sub(s: &mut String, name: &str, lines: &[String]) {
    write_lines(s, 4, 24, name, lines);
}

fn write_lines(s: &mut String, indent: usize, width: usize, name: &str, lines: &[String]) {
    for (idx, line) in lines.iter().enumerate() {
        let label = if idx == 0 { name } else { "" };
        let _ = writeln!(s, "{:indent$}{label:<width$}{line}", "");
    }
}

/// Bytes in the largest unit that divides them (as a manifest would say it).
fn size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (n, unit) in UNITS {
        if bytes >= n && bytes.is_multiple_of(n) {
            return format!("{}{unit}", bytes / n);
        }
    }
    format!("{bytes} bytes")
}
