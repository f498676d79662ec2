//! Walks the TOML tree by hand (instead of `serde`) so that every error can name the
//! exact key, its line and column, and suggest the key that was probably meant.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, SourceText, Span, did_you_mean};
use crate::grants::Variable;
use crate::model::*;
use crate::schedule::Schedule;
use crate::units::{parse_duration, parse_size};

/// The manifest file name looked for in an app directory.
pub const MANIFEST_FILE: &str = "atoll.toml";

/// Smallest memory limit that can run any real guest.
const MIN_MEMORY: u64 = 1024 * 1024;

/// Read and validate a manifest file: an `atoll.toml`, or a Spin `spin.toml` (told
/// apart by its `spin_manifest_version`). `path` is used as given in messages.
pub fn load(path: &Path) -> Result<App, Diagnostic> {
    load_with_notes(path).map(|(app, _)| app)
}

/// [`load`], with the notes on how atoll reads a Spin manifest differently from Spin
/// (none for an `atoll.toml`).
pub fn load_with_notes(path: &Path) -> Result<(App, Vec<String>), Diagnostic> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new(format!("cannot read manifest `{}`: {e}", path.display()))
            .help("run `atoll up` in a directory with an atoll.toml, or pass its path with `-f`")
    })?;
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let source = Arc::new(SourceText {
        path: path.to_path_buf(),
        text,
    });
    let (parsed, kind, notes) = parse_any(&source, &dir)?;
    Ok((parsed.into_app(&dir, kind, source), notes))
}

/// The manifest in `dir`: its `atoll.toml`, else its `spin.toml`, else (for the error
/// message) the `atoll.toml` that is missing.
pub fn find_in(dir: &Path) -> PathBuf {
    let atoll = dir.join(MANIFEST_FILE);
    if atoll.exists() {
        return atoll;
    }
    let spin = dir.join(crate::SPIN_MANIFEST_FILE);
    if spin.exists() { spin } else { atoll }
}

/// Validate manifest `text`. `display_path` names the file in messages; relative paths
/// in the manifest resolve against `dir`.
pub fn parse(text: String, display_path: &Path, dir: &Path) -> Result<App, Diagnostic> {
    let source = Arc::new(SourceText {
        path: display_path.to_path_buf(),
        text,
    });
    let (parsed, kind, _notes) = parse_any(&source, dir)?;
    Ok(parsed.into_app(dir, kind, source))
}

/// Parse either format: a Spin manifest says so at its top (`spin_manifest_version`) and
/// is read as Spin reads it; with the notes on how atoll's reading differs.
pub(crate) fn parse_any(
    source: &Arc<SourceText>,
    dir: &Path,
) -> Result<(Parsed, ManifestKind, Vec<String>), Diagnostic> {
    let table = toml_table(source)?;
    let cx = Cx {
        src: source,
        dir: dir.to_path_buf(),
    };
    if table.get_ref().contains_key("spin_manifest_version") {
        let (parsed, notes) = cx.spin_app(table.get_ref(), table.span())?;
        return Ok((parsed, ManifestKind::Spin, notes));
    }
    Ok((
        cx.app(table.get_ref(), table.span())?,
        ManifestKind::Atoll,
        Vec::new(),
    ))
}

/// Read the DeTable of `source` (a TOML syntax error located).
pub(crate) fn toml_table(source: &Arc<SourceText>) -> Result<Spanned<DeTable<'_>>, Diagnostic> {
    let text: &str = &source.text;
    DeTable::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        Diagnostic::new(format!("invalid TOML: {}", e.message().trim_end()))
            .at(source, span)
            .help("fix the TOML syntax at the marked place")
    })
}

impl Parsed {
    pub(crate) fn into_app(self, dir: &Path, kind: ManifestKind, source: Arc<SourceText>) -> App {
        App {
            name: self.name,
            version: self.version,
            variables: self.variables,
            dir: dir.to_path_buf(),
            components: self.components,
            http: HttpSettings { hosts: self.hosts },
            triggers: self.triggers,
            kind,
            app_span: self.app_span,
            source,
        }
    }
}

pub(crate) struct Parsed {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) hosts: Vec<String>,
    pub(crate) variables: Vec<Variable>,
    pub(crate) components: BTreeMap<String, Component>,
    pub(crate) triggers: Vec<Trigger>,
    pub(crate) app_span: Span,
}

type Entry<'a, 'i> = (
    &'a Spanned<std::borrow::Cow<'i, str>>,
    &'a Spanned<DeValue<'i>>,
);

pub(crate) struct Cx<'s> {
    pub(crate) src: &'s Arc<SourceText>,
    pub(crate) dir: PathBuf,
}

impl Cx<'_> {
    pub(crate) fn err(&self, span: Span, key: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(message).at(self.src, span).key(key)
    }

    /// Refuse keys of `table` that are not in `known`.
    pub(crate) fn check_keys(
        &self,
        table: &DeTable<'_>,
        path: &str,
        known: &[&str],
    ) -> Result<(), Diagnostic> {
        for (k, _) in table.iter() {
            let name: &str = k.get_ref();
            if !known.contains(&name) {
                let full = join(path, name);
                let where_ = if path.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in `[{path}]`")
                };
                let mut d = self.err(k.span(), &full, format!("unknown key `{name}` {where_}"));
                d = match did_you_mean(name, known) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(format!("the keys allowed here are: {}", known.join(", "))),
                };
                return Err(d);
            }
        }
        Ok(())
    }

    pub(crate) fn table<'a, 'i>(
        &self,
        v: &'a Spanned<DeValue<'i>>,
        key: &str,
    ) -> Result<&'a DeTable<'i>, Diagnostic> {
        v.get_ref()
            .as_table()
            .ok_or_else(|| self.type_err(v, key, "a table"))
    }

    pub(crate) fn string<'a>(
        &self,
        v: &'a Spanned<DeValue<'_>>,
        key: &str,
    ) -> Result<&'a str, Diagnostic> {
        v.get_ref()
            .as_str()
            .ok_or_else(|| self.type_err(v, key, "a string"))
    }

    pub(crate) fn type_err(
        &self,
        v: &Spanned<DeValue<'_>>,
        key: &str,
        expected: &str,
    ) -> Diagnostic {
        self.err(
            v.span(),
            key,
            format!(
                "`{key}` must be {expected}, found {}",
                article(v.get_ref().type_str())
            ),
        )
    }

    fn app(&self, root: &DeTable<'_>, root_span: Span) -> Result<Parsed, Diagnostic> {
        self.check_keys(root, "", &["app", "variables", "component", "trigger"])?;

        let app = root.get("app").ok_or_else(|| {
            Diagnostic::new("the manifest has no `[app]` table")
                .at(self.src, root_span.start..root_span.start)
                .key("app")
                .help("start the file with `[app]` and `name = \"my-app\"`")
        })?;
        let app_t = self.table(app, "app")?;
        self.check_keys(app_t, "app", &["name", "version", "description", "hosts"])?;
        let name_v = app_t.get("name").ok_or_else(|| {
            self.err(app.span(), "app.name", "`[app]` has no `name`")
                .help("add `name = \"my-app\"` under `[app]`")
        })?;
        let name = self.string(name_v, "app.name")?;
        check_name(name).map_err(|m| self.err(name_v.span(), "app.name", m))?;
        let version = match app_t.get("version") {
            Some(v) => self.string(v, "app.version")?.to_string(),
            None => "0.0.0".to_string(),
        };
        if let Some(v) = app_t.get("description") {
            self.string(v, "app.description")?;
        }
        let hosts = match app_t.get("hosts") {
            Some(h) => self.hosts(h)?,
            None => Vec::new(),
        };

        let variables = match root.get("variables") {
            Some(v) => self.variables(v)?,
            None => Vec::new(),
        };

        let mut components = BTreeMap::new();
        if let Some(c) = root.get("component") {
            let ct = self.table(c, "component")?;
            for (k, v) in ct.iter() {
                let comp = self.component((k, v), &variables)?;
                components.insert(comp.name.clone(), comp);
            }
        }
        self.check_dependencies(&components)?;
        if components.is_empty() {
            return Err(Diagnostic::new("the app has no components")
                .at(self.src, app.span())
                .key("component")
                .help(
                    "add a `[component.NAME]` table with `source = \"path/to/component.wasm\"`",
                ));
        }

        let mut triggers = Vec::new();
        if let Some(t) = root.get("trigger") {
            let tt = self.table(t, "trigger")?;
            self.check_keys(tt, "trigger", &["http", "cron"])?;
            if let Some(h) = tt.get("http") {
                triggers.extend(
                    self.http_triggers(h, &components)?
                        .into_iter()
                        .map(Trigger::Http),
                );
            }
            if let Some(c) = tt.get("cron") {
                triggers.extend(
                    self.cron_triggers(c, &components)?
                        .into_iter()
                        .map(Trigger::Cron),
                );
            }
        }
        // Manifest order across kinds: each trigger's span lies inside its own table.
        triggers.sort_by_key(|t| t.span().start);
        // An app without triggers parses (`atoll build` and `atoll inspect` work on a
        // set of plugins); serving one is refused by `App::check_triggers`.
        Ok(Parsed {
            app_span: app.span(),
            name: name.to_string(),
            version,
            hosts,
            variables,
            components,
            triggers,
        })
    }

    fn hosts(&self, h: &Spanned<DeValue<'_>>) -> Result<Vec<String>, Diagnostic> {
        let arr = h
            .get_ref()
            .as_array()
            .ok_or_else(|| self.type_err(h, "app.hosts", "an array of host names"))?;
        let mut hosts: Vec<String> = Vec::new();
        for item in arr.iter() {
            let raw = self.string(item, "app.hosts")?;
            let host = raw.trim_end_matches('.').to_ascii_lowercase();
            let valid = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(self
                    .err(item.span(), "app.hosts", format!("`{raw}` is not a host name"))
                    .help("write bare host names like `shop.example.com`, without scheme, port or path"));
            }
            if hosts.contains(&host) {
                return Err(self.err(
                    item.span(),
                    "app.hosts",
                    format!("host `{raw}` is listed twice"),
                ));
            }
            hosts.push(host);
        }
        Ok(hosts)
    }

    fn component(
        &self,
        (k, v): Entry<'_, '_>,
        variables: &[Variable],
    ) -> Result<Component, Diagnostic> {
        let name: &str = k.get_ref();
        let path = format!("component.{name}");
        check_name(name).map_err(|m| self.err(k.span(), &path, format!("component {m}")))?;
        let t = self.table(v, &path)?;
        self.check_keys(
            t,
            &path,
            &[
                "source",
                "build",
                "environment",
                "limits",
                "description",
                "variables",
                "allowed_outbound_hosts",
                "key_value_stores",
                "files",
                "dependencies",
            ],
        )?;
        let source_v = t.get("source").ok_or_else(|| {
            self.err(
                k.span(),
                &join(&path, "source"),
                format!("component `{name}` has no `source`"),
            )
            .help("add `source = \"path/to/component.wasm\"`")
        })?;
        let source_key = join(&path, "source");
        let (source, source_written) = match source_v.get_ref() {
            DeValue::Table(pt) => {
                self.check_keys(pt, &source_key, &["package", "version"])?;
                let p = self.package_source(pt, source_v, &source_key)?;
                let written = format!("{}@{}", p.name, p.version);
                (ComponentSource::Package(p), written)
            }
            _ => {
                let source_str = self.string(source_v, &source_key).map_err(|d| {
                    d.help("give a path to a .wasm file, or `{ package = \"ns:name\", version = \"^1.0\" }`")
                })?;
                if source_str.is_empty() {
                    return Err(self
                        .err(source_v.span(), &source_key, "`source` is empty")
                        .help("give the path of a .wasm component, relative to the manifest"));
                }
                if let Some(rest) = source_str.strip_prefix("oci://") {
                    // The full grammar is atoll-oci's; here only its shape, so a typo is
                    // caught at the line it is on.
                    let well_formed = rest
                        .split_once('/')
                        .is_some_and(|(host, repo)| !host.is_empty() && !repo.is_empty());
                    if !well_formed {
                        return Err(self
                            .err(
                                source_v.span(),
                                &source_key,
                                format!("`{source_str}` names no registry host and repository"),
                            )
                            .help("write oci://HOST[:PORT]/REPOSITORY:TAG, e.g. oci://ghcr.io/acme/hello:1.0"));
                    }
                    (
                        ComponentSource::Oci(source_str.to_string()),
                        source_str.to_string(),
                    )
                } else {
                    (
                        ComponentSource::Path(self.dir.join(source_str)),
                        source_str.to_string(),
                    )
                }
            }
        };

        let build = match t.get("build") {
            Some(b) => Some(self.build(b, &join(&path, "build"))?),
            None => None,
        };

        let environment = match t.get("environment") {
            Some(e) => self.environment(e, &join(&path, "environment"))?,
            None => Vec::new(),
        };

        let limits = match t.get("limits") {
            Some(l) => self.limits(l, &join(&path, "limits"))?,
            None => Limits::default(),
        };

        if let ComponentSource::Package(_) | ComponentSource::Oci(_) = &source
            && let Some(b) = &build
        {
            return Err(self
                .err(
                    b.span.clone(),
                    &join(&path, "build"),
                    "a component from a registry package or an OCI artifact has no `build`",
                )
                .help("remove `build`, or point `source` at the file your build produces"));
        }

        let grants = self.grants(t, &path, variables)?;
        let dependencies = match t.get("dependencies") {
            Some(d) => self.dependencies(d, &join(&path, "dependencies"))?,
            None => Vec::new(),
        };

        Ok(Component {
            name: name.to_string(),
            source,
            source_written,
            source_span: source_v.span(),
            build,
            environment,
            limits,
            grants,
            dependencies,
        })
    }

    /// A component's `environment = { NAME = "value" }`, in manifest order.
    pub(crate) fn environment(
        &self,
        e: &Spanned<DeValue<'_>>,
        key: &str,
    ) -> Result<Vec<(String, String)>, Diagnostic> {
        let mut environment = Vec::new();
        {
            let key = key.to_string();
            let et = self.table(e, &key)?;
            for (ek, ev) in et.iter() {
                let ename: &str = ek.get_ref();
                let full = join(&key, ename);
                if ename.is_empty() || ename.contains(['=', '\0']) {
                    return Err(self
                        .err(
                            ek.span(),
                            &full,
                            format!("`{ename}` is not a valid environment variable name"),
                        )
                        .help("names may not be empty or contain `=` or NUL"));
                }
                let val = self.string(ev, &full)?;
                if val.contains('\0') {
                    return Err(self.err(
                        ev.span(),
                        &full,
                        "environment values may not contain NUL",
                    ));
                }
                environment.push((ename.to_string(), val.to_string()));
            }
        }
        Ok(environment)
    }

    /// `[component.NAME.dependencies]`: `"IMPORT" = { component = "NAME" }` or
    /// `{ path = "FILE.wasm" }`, each with an optional `inherit_capabilities`.
    fn dependencies(
        &self,
        v: &Spanned<DeValue<'_>>,
        path: &str,
    ) -> Result<Vec<Dependency>, Diagnostic> {
        let t = self.table(v, path)?;
        let mut out = Vec::new();
        for (k, dv) in t.iter() {
            let import: &str = k.get_ref();
            let key = join(path, import);
            let label = |l: &str| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            };
            let (base, version) = match import.split_once('@') {
                Some((b, v)) => (b, Some(v)),
                None => (import, None),
            };
            let (package, interface) = match base.split_once('/') {
                Some((p, i)) => (p, Some(i)),
                None => (base, None),
            };
            let well_formed = package
                .split_once(':')
                .is_some_and(|(ns, n)| label(ns) && label(n))
                && interface.is_none_or(label)
                && version.is_none_or(|v| semver::Version::parse(v).is_ok());
            if !well_formed {
                return Err(self
                    .err(
                        k.span(),
                        &key,
                        format!("`{import}` is not an interface or package name"),
                    )
                    .help("name an import the component has, e.g. \"acme:auth/verify\", \"acme:auth/verify@1.0.0\", or a whole package \"acme:auth\""));
            }
            let forms = "write `{ component = \"NAME\" }` (another component of this app), `{ path = \"dep.wasm\" }`, `{ package = \"ns:name\", version = \"^1\" }` (from the registry, locked by `atoll add`) or `\"oci://HOST/REPO:TAG\"`";
            // `"IMPORT" = "oci://…"`: the short form of `{ oci = "oci://…" }`.
            if let Some(reference) = dv.get_ref().as_str() {
                out.push(Dependency {
                    import: import.to_string(),
                    source: DependencySource::Oci(self.oci_reference(dv, reference, &key)?),
                    inherit_capabilities: false,
                    span: k.span(),
                });
                continue;
            }
            let dt = self.table(dv, &key).map_err(|d| d.help(forms))?;
            self.check_keys(
                dt,
                &key,
                &[
                    "component",
                    "path",
                    "package",
                    "version",
                    "oci",
                    "inherit_capabilities",
                ],
            )?;
            let given: Vec<&str> = ["component", "path", "package", "oci"]
                .into_iter()
                .filter(|f| dt.get(*f).is_some())
                .collect();
            if given.len() != 1 {
                return Err(self
                    .err(
                        dv.span(),
                        &key,
                        "a dependency needs exactly one of `component`, `path`, `package` and `oci`",
                    )
                    .help(forms));
            }
            if dt.get("version").is_some() && given[0] != "package" {
                return Err(self
                    .err(
                        dv.span(),
                        &join(&key, "version"),
                        "`version` goes with `package`",
                    )
                    .help(forms));
            }
            let source = match given[0] {
                "component" => {
                    let c = dt
                        .get("component")
                        .ok_or_else(|| self.err(dv.span(), &key, "no `component`"))?;
                    let name = self.string(c, &join(&key, "component"))?;
                    DependencySource::Component(name.to_string())
                }
                "path" => {
                    let p = dt
                        .get("path")
                        .ok_or_else(|| self.err(dv.span(), &key, "no `path`"))?;
                    let file = self.string(p, &join(&key, "path"))?;
                    if file.is_empty() {
                        return Err(self.err(p.span(), &join(&key, "path"), "`path` is empty"));
                    }
                    DependencySource::Path(self.dir.join(file))
                }
                "package" => DependencySource::Package(self.package_source(dt, dv, &key)?),
                _ => {
                    let o = dt
                        .get("oci")
                        .ok_or_else(|| self.err(dv.span(), &key, "no `oci`"))?;
                    let reference = self.string(o, &join(&key, "oci"))?;
                    DependencySource::Oci(self.oci_reference(o, reference, &join(&key, "oci"))?)
                }
            };
            let inherit_capabilities = match dt.get("inherit_capabilities") {
                Some(b) => b.get_ref().as_bool().ok_or_else(|| {
                    self.type_err(b, &join(&key, "inherit_capabilities"), "a boolean")
                })?,
                None => false,
            };
            out.push(Dependency {
                import: import.to_string(),
                source,
                inherit_capabilities,
                span: k.span(),
            });
        }
        Ok(out)
    }

    /// An `oci://HOST/REPOSITORY…` reference's shape (the full grammar is atoll-oci's).
    fn oci_reference(
        &self,
        v: &Spanned<DeValue<'_>>,
        written: &str,
        key: &str,
    ) -> Result<String, Diagnostic> {
        let well_formed = written
            .strip_prefix("oci://")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(host, repo)| !host.is_empty() && !repo.is_empty());
        if !well_formed {
            return Err(self
                .err(
                    v.span(),
                    key,
                    format!(
                        "`{written}` is not an oci:// reference with a registry host and repository"
                    ),
                )
                .help(
                    "write oci://HOST[:PORT]/REPOSITORY:TAG, e.g. oci://ghcr.io/acme/hello:1.0",
                ));
        }
        Ok(written.to_string())
    }

    /// Every `{ component = "NAME" }` names a component of the app, not itself, and no
    /// chain of them comes back to where it started.
    fn check_dependencies(
        &self,
        components: &BTreeMap<String, Component>,
    ) -> Result<(), Diagnostic> {
        for c in components.values() {
            for d in &c.dependencies {
                let DependencySource::Component(name) = &d.source else {
                    continue;
                };
                let key = format!("component.{}.dependencies.{}", c.name, d.import);
                if !components.contains_key(name) {
                    let names: Vec<&str> = components.keys().map(String::as_str).collect();
                    let d2 = self.err(
                        d.span.clone(),
                        &key,
                        format!(
                            "dependency `{}` names component `{name}`, which the app does not have",
                            d.import
                        ),
                    );
                    return Err(match did_you_mean(name, &names) {
                        Some(s) => d2.help(format!("did you mean `{s}`?")),
                        None => d2.help(format!("the app's components are: {}", names.join(", "))),
                    });
                }
            }
        }
        // A cycle: depth-first from each component over `component` dependencies.
        for start in components.values() {
            let mut stack: Vec<(String, Vec<String>)> =
                vec![(start.name.clone(), vec![start.name.clone()])];
            while let Some((at, trail)) = stack.pop() {
                let Some(c) = components.get(&at) else {
                    continue;
                };
                for d in &c.dependencies {
                    let DependencySource::Component(next) = &d.source else {
                        continue;
                    };
                    if *next == start.name {
                        let mut cycle = trail.clone();
                        cycle.push(next.clone());
                        // Point at the dependency of `start` the cycle leaves through.
                        let hop = trail.get(1).unwrap_or(next);
                        let first = start
                            .dependencies
                            .iter()
                            .find(|d| d.source == DependencySource::Component(hop.clone()))
                            .map(|d| (d.span.clone(), d.import.clone()));
                        let (span, import) =
                            first.unwrap_or((start.source_span.clone(), String::new()));
                        return Err(self
                            .err(
                                span,
                                &format!("component.{}.dependencies.{import}", start.name),
                                format!("the dependencies form a cycle: {}", cycle.join(" -> ")),
                            )
                            .help("a component cannot be composed into itself; break the cycle by removing one of these dependencies"));
                    }
                    if !trail.contains(next) {
                        let mut t = trail.clone();
                        t.push(next.clone());
                        stack.push((next.clone(), t));
                    }
                }
            }
        }
        Ok(())
    }

    fn package_source(
        &self,
        t: &DeTable<'_>,
        v: &Spanned<DeValue<'_>>,
        path: &str,
    ) -> Result<PackageSource, Diagnostic> {
        let pkg_v = t.get("package").ok_or_else(|| {
            self.err(
                v.span(),
                &join(path, "package"),
                "a package `source` needs `package`",
            )
            .help("write `source = { package = \"namespace:name\", version = \"^1.0\" }`")
        })?;
        let name = self.string(pkg_v, &join(path, "package"))?;
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        match name.split_once(':') {
            Some((ns, n)) if valid_label(ns) && valid_label(n) => {}
            _ => {
                return Err(self
                    .err(
                        pkg_v.span(),
                        &join(path, "package"),
                        format!("`{name}` is not a package name"),
                    )
                    .help(
                        "package names are `namespace:name`, lowercase letters, digits and `-`",
                    ));
            }
        }
        let version = match t.get("version") {
            Some(ver_v) => {
                let req = self.string(ver_v, &join(path, "version"))?;
                semver::VersionReq::parse(req).map_err(|e| {
                    self.err(
                        ver_v.span(),
                        &join(path, "version"),
                        format!("`{req}` is not a version requirement: {e}"),
                    )
                    .help("write a semver requirement such as `^1.2`, `~1.2.3` or `=1.2.3`")
                })?;
                req.to_string()
            }
            None => "*".to_string(),
        };
        Ok(PackageSource {
            name: name.to_string(),
            version,
        })
    }

    pub(crate) fn build(
        &self,
        b: &Spanned<DeValue<'_>>,
        path: &str,
    ) -> Result<BuildConfig, Diagnostic> {
        let t = self.table(b, path)?;
        self.check_keys(t, path, &["command", "workdir", "watch"])?;
        let cmd_v = t.get("command").ok_or_else(|| {
            self.err(b.span(), &join(path, "command"), "`build` has no `command`")
                .help("add `command = \"cargo build --target wasm32-wasip2 --release\"`")
        })?;
        // A list of commands (Spin writes them so) runs them in order, stopping at the
        // first that fails.
        let command = match cmd_v.get_ref().as_array() {
            Some(list) => {
                let mut parts = Vec::new();
                for item in list.iter() {
                    parts.push(self.string(item, &join(path, "command"))?.to_string());
                }
                parts.join(" && ")
            }
            None => self.string(cmd_v, &join(path, "command"))?.to_string(),
        };
        let command = command.as_str();
        if command.trim().is_empty() {
            return Err(self.err(
                cmd_v.span(),
                &join(path, "command"),
                "`build.command` is empty",
            ));
        }
        let workdir = match t.get("workdir") {
            Some(w) => {
                let key = join(path, "workdir");
                let w_str = self.string(w, &key)?;
                if Path::new(w_str).is_absolute() || w_str.split(['/', '\\']).any(|c| c == "..") {
                    return Err(self
                        .err(
                            w.span(),
                            &key,
                            format!("`workdir` `{w_str}` is outside the app directory"),
                        )
                        .help("give a path relative to the manifest, without `..`"));
                }
                self.dir.join(w_str)
            }
            None => self.dir.clone(),
        };
        let mut watch = Vec::new();
        if let Some(w) = t.get("watch") {
            let key = join(path, "watch");
            let arr = w
                .get_ref()
                .as_array()
                .ok_or_else(|| self.type_err(w, &key, "an array of glob patterns"))?;
            for item in arr.iter() {
                watch.push(self.string(item, &key)?.to_string());
            }
        }
        Ok(BuildConfig {
            command: command.to_string(),
            workdir,
            watch,
            span: b.span(),
        })
    }

    fn limits(&self, l: &Spanned<DeValue<'_>>, path: &str) -> Result<Limits, Diagnostic> {
        let t = self.table(l, path)?;
        self.check_keys(t, path, &["memory", "timeout", "max_concurrency"])?;
        let mut limits = Limits::default();
        if let Some(m) = t.get("memory") {
            let key = join(path, "memory");
            let bytes = match m.get_ref() {
                DeValue::String(s) => parse_size(s).map_err(|e| self.err(m.span(), &key, e))?,
                DeValue::Integer(i) => u64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
                    .map_err(|_| {
                        self.err(m.span(), &key, "memory must be a positive number of bytes")
                    })?,
                _ => return Err(self.type_err(m, &key, "a size like \"64MiB\"")),
            };
            if !(MIN_MEMORY..=MAX_MEMORY).contains(&bytes) {
                return Err(self
                    .err(
                        m.span(),
                        &key,
                        format!("memory limit {bytes} bytes is out of range"),
                    )
                    .help("use a value between 1MiB and 4GiB"));
            }
            limits.memory = bytes;
        }
        if let Some(d) = t.get("timeout") {
            let key = join(path, "timeout");
            let s = self.string(d, &key)?;
            let dur = parse_duration(s).map_err(|e| self.err(d.span(), &key, e))?;
            if dur.is_zero() || dur > std::time::Duration::from_secs(24 * 3600) {
                return Err(self
                    .err(d.span(), &key, format!("timeout `{s}` is out of range"))
                    .help("use a value between 1ms and 24h"));
            }
            limits.timeout = dur;
        }
        if let Some(c) = t.get("max_concurrency") {
            let key = join(path, "max_concurrency");
            let n = c
                .get_ref()
                .as_integer()
                .ok_or_else(|| self.type_err(c, &key, "a positive integer"))?;
            let n: u32 = u32::from_str_radix(&n.as_str().replace('_', ""), n.radix())
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    self.err(c.span(), &key, "`max_concurrency` is out of range")
                        .help("use an integer between 1 and 100000")
                })?;
            limits.max_concurrency = Some(n);
        }
        Ok(limits)
    }

    fn http_triggers(
        &self,
        h: &Spanned<DeValue<'_>>,
        components: &BTreeMap<String, Component>,
    ) -> Result<Vec<HttpTrigger>, Diagnostic> {
        let arr = h.get_ref().as_array().ok_or_else(|| {
            self.type_err(h, "trigger.http", "an array of tables")
                .help("write each trigger as `[[trigger.http]]` (double brackets)")
        })?;
        let mut seen: HashMap<Route, Span> = HashMap::new();
        let mut out = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            let path = format!("trigger.http[{i}]");
            let t = self.table(item, &path)?;
            self.check_keys(t, &path, &["route", "component"])?;
            let route_v = t.get("route").ok_or_else(|| {
                self.err(item.span(), &join(&path, "route"), "this HTTP trigger has no `route`")
                    .help("add `route = \"/...\"` (everything) or an exact path like `route = \"/hello\"`")
            })?;
            let route_key = join(&path, "route");
            let route_s = self.string(route_v, &route_key)?;
            let route = Route::parse(route_s).map_err(|m| {
                self.err(route_v.span(), &route_key, m)
                    .help("write an exact path (`/hello`) or a prefix wildcard (`/api/...`)")
            })?;
            if let Some(first) = seen.get(&route) {
                let (line, col) = self.src.line_col(first.start);
                return Err(self
                    .err(
                        route_v.span(),
                        &route_key,
                        format!("duplicate route `{route}`"),
                    )
                    .note(format!(
                        "first defined at {}:{line}:{col}",
                        self.src.path.display()
                    ))
                    .help(
                        "each route may be served by one component; remove or change one of them",
                    ));
            }
            seen.insert(route.clone(), route_v.span());

            let component = self.trigger_component(t, item, &path, "HTTP", components)?;
            out.push(HttpTrigger {
                route,
                component,
                span: route_v.span(),
            });
        }
        Ok(out)
    }

    fn cron_triggers(
        &self,
        c: &Spanned<DeValue<'_>>,
        components: &BTreeMap<String, Component>,
    ) -> Result<Vec<CronTrigger>, Diagnostic> {
        const FORMS: &str = "write 5 fields, `minute hour day-of-month month day-of-week` (`*/5 * * * *`: every 5 minutes), or 6 with seconds first (`*/5 * * * * *`: every 5 seconds); times are UTC";
        let arr = c.get_ref().as_array().ok_or_else(|| {
            self.type_err(c, "trigger.cron", "an array of tables")
                .help("write each trigger as `[[trigger.cron]]` (double brackets)")
        })?;
        let mut out = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            let path = format!("trigger.cron[{i}]");
            let t = self.table(item, &path)?;
            let key = join(&path, "schedule");
            if let Some((k, _)) = t.get_key_value("cron_expression") {
                return Err(self
                    .err(
                        k.span(),
                        &join(&path, "cron_expression"),
                        "unknown key `cron_expression` in a cron trigger",
                    )
                    .help("atoll names Spin's `cron_expression` `schedule`: write `schedule = \"...\"`"));
            }
            self.check_keys(t, &path, &["schedule", "component"])?;
            let sched_v = t.get("schedule").ok_or_else(|| {
                self.err(item.span(), &key, "this cron trigger has no `schedule`")
                    .help(format!("add `schedule = \"...\"`: {FORMS}"))
            })?;
            let written = self.string(sched_v, &key).map_err(|d| d.help(FORMS))?;
            let schedule = Schedule::parse(written)
                .map_err(|m| self.err(sched_v.span(), &key, m).help(FORMS))?;
            let component = self.trigger_component(t, item, &path, "cron", components)?;
            out.push(CronTrigger {
                schedule,
                component,
                span: sched_v.span(),
            });
        }
        Ok(out)
    }

    /// The `component` of the trigger table `t` at `path`, which must name a component.
    pub(crate) fn trigger_component(
        &self,
        t: &DeTable<'_>,
        item: &Spanned<DeValue<'_>>,
        path: &str,
        kind: &str,
        components: &BTreeMap<String, Component>,
    ) -> Result<String, Diagnostic> {
        let comp_key = join(path, "component");
        let comp_v = t.get("component").ok_or_else(|| {
            self.err(
                item.span(),
                &comp_key,
                format!("this {kind} trigger has no `component`"),
            )
            .help("add `component = \"NAME\"` naming a `[component.NAME]`")
        })?;
        let comp = self.string(comp_v, &comp_key)?;
        if !components.contains_key(comp) {
            let names: Vec<&str> = components.keys().map(String::as_str).collect();
            let d = self.err(
                comp_v.span(),
                &comp_key,
                format!("trigger names component `{comp}`, which is not defined"),
            );
            let d = match did_you_mean(comp, &names) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(format!(
                    "define `[component.{comp}]`, or use one of: {}",
                    names.join(", ")
                )),
            };
            return Err(d);
        }
        Ok(comp.to_string())
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn article(type_str: &str) -> String {
    match type_str {
        "integer" => "an integer".into(),
        "array" => "an array".into(),
        other => format!("a {other}"),
    }
}

/// App and component names: lowercase ASCII letters, digits, `-` and `_`, starting with
/// a letter; they show up in logs, paths and URLs. The error says what is allowed.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name `{name}` is not valid: use lowercase letters, digits, `-` and `_`, starting with a letter (at most 64)"
        ))
    }
}
