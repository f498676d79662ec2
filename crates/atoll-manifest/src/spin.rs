//! Spin's manifest, `spin.toml` (manifest version 2), read into the same [`App`] an
//! `atoll.toml` becomes, so a Spin app runs under `atoll up` unchanged.
//!
//! Every key Spin defines is either understood or refused with a message that names the
//! key and its line: nothing is dropped silently. Where atoll reads a key differently
//! from Spin (limits Spin does not have, the variables' environment prefix, a duplicate
//! route), the difference is a note that `atoll import` writes as a comment.
//!
//! It is *not* a Spin runtime: the Spin interfaces a component imports are linked by
//! `atoll-capabilities`, and Spin's request headers are added by `atoll-http`.

use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Span};
use crate::model::*;
use crate::parse::{Cx, Parsed, check_name, join};
use crate::schedule::Schedule;

/// The file name Spin looks for.
pub const SPIN_MANIFEST_FILE: &str = "spin.toml";

/// Component keys Spin defines that atoll does not serve yet, with what to do instead.
/// Each is refused when it asks for something (a non-empty list or table).
const UNSUPPORTED_COMPONENT_KEYS: &[(&str, &str)] = &[
    (
        "sqlite_databases",
        "atoll has no SQLite interface yet; use `key_value_stores`, or keep this app on Spin",
    ),
    (
        "ai_models",
        "atoll has no LLM interface; keep this app on Spin",
    ),
    (
        "dependencies",
        "compose it with `atoll.toml`'s `[component.NAME.dependencies]` (run `atoll import`)",
    ),
    (
        "profile",
        "atoll has no build profiles; write the profile's `source` and `build` into the component",
    ),
    (
        "targets",
        "atoll checks a component's imports itself at load; remove `targets`",
    ),
];

impl Cx<'_> {
    /// A whole `spin.toml`, and the notes on where atoll's reading differs from Spin's.
    pub(crate) fn spin_app(
        &self,
        root: &DeTable<'_>,
        root_span: Span,
    ) -> Result<(Parsed, Vec<String>), Diagnostic> {
        let mut notes = Vec::new();
        self.check_keys(
            root,
            "",
            &[
                "spin_manifest_version",
                "application",
                "variables",
                "trigger",
                "component",
            ],
        )?;
        if let Some(v) = root.get("spin_manifest_version") {
            let version = v.get_ref().as_integer().map(|i| i.as_str().to_string());
            if version.as_deref() != Some("2") {
                return Err(self
                    .err(
                        v.span(),
                        "spin_manifest_version",
                        "only Spin manifest version 2 is supported",
                    )
                    .help("upgrade the manifest with `spin doctor` (Spin 2+), or rewrite it as `spin_manifest_version = 2`"));
            }
        }
        let app = root.get("application").ok_or_else(|| {
            Diagnostic::new("the Spin manifest has no `[application]` table")
                .at(self.src, root_span.start..root_span.start)
                .key("application")
                .help("add `[application]` with `name = \"my-app\"`")
        })?;
        let app_t = self.table(app, "application")?;
        self.check_keys(
            app_t,
            "application",
            &[
                "name",
                "version",
                "description",
                "authors",
                "targets",
                "trigger",
                "tool",
            ],
        )?;
        let name_v = app_t.get("name").ok_or_else(|| {
            self.err(
                app.span(),
                "application.name",
                "`[application]` has no `name`",
            )
            .help("add `name = \"my-app\"` under `[application]`")
        })?;
        let name = self.string(name_v, "application.name")?;
        check_name(name).map_err(|m| self.err(name_v.span(), "application.name", m))?;
        let version = match app_t.get("version") {
            Some(v) => self.string(v, "application.version")?.to_string(),
            None => "0.0.0".to_string(),
        };
        for key in ["description"] {
            if let Some(v) = app_t.get(key) {
                self.string(v, &join("application", key))?;
            }
        }
        if let Some(v) = app_t.get("authors") {
            let arr = v
                .get_ref()
                .as_array()
                .ok_or_else(|| self.type_err(v, "application.authors", "an array of strings"))?;
            for a in arr.iter() {
                self.string(a, "application.authors")?;
            }
        }
        if let Some(v) = app_t.get("targets") {
            notes.push(format!(
                "`[application] targets` ({}) is Spin's deployment-compatibility check; atoll checks each component's imports when it loads it",
                self.src.text[v.span()].trim()
            ));
        }
        let mut base = String::new();
        if let Some(t) = app_t.get("trigger") {
            let tt = self.table(t, "application.trigger")?;
            self.check_keys(tt, "application.trigger", &["http"])?;
            if let Some(h) = tt.get("http") {
                let ht = self.table(h, "application.trigger.http")?;
                self.check_keys(ht, "application.trigger.http", &["base"])?;
                if let Some(b) = ht.get("base") {
                    let key = "application.trigger.http.base";
                    let written = self.string(b, key)?;
                    if !written.starts_with('/') || written.contains(['?', '#', ':']) {
                        return Err(self
                            .err(b.span(), key, format!("base `{written}` is not a path"))
                            .help("write it like `/api`, or remove it (Spin deprecates `base`)"));
                    }
                    base = written.trim_end_matches('/').to_string();
                    if !base.is_empty() {
                        notes.push(format!(
                            "Spin's deprecated `[application.trigger.http] base = \"{written}\"` is written into each route"
                        ));
                    }
                }
            }
        }

        let variables = match root.get("variables") {
            Some(v) => self.variables(v)?,
            None => Vec::new(),
        };
        if !variables.is_empty() {
            notes.push("variables are set with ATOLL_VARIABLE_<NAME> (atoll also reads Spin's SPIN_VARIABLE_<NAME> for a spin.toml) or a runtime config's `[variables]`".to_string());
        }

        let mut components = BTreeMap::new();
        if let Some(c) = root.get("component") {
            let ct = self.table(c, "component")?;
            for (k, v) in ct.iter() {
                let comp = self.spin_component(k, v, &variables, &mut notes)?;
                components.insert(comp.name.clone(), comp);
            }
        }
        if components.is_empty() {
            return Err(Diagnostic::new("the Spin app has no components")
                .at(self.src, app.span())
                .key("component")
                .help(
                    "add a `[component.NAME]` table with `source = \"path/to/component.wasm\"`",
                ));
        }
        notes.push("Spin sets no per-component limits; atoll's defaults apply (128 MiB of memory and 30 s per request); add `limits = { memory, timeout, max_concurrency }` to change them".to_string());

        let mut triggers = Vec::new();
        if let Some(t) = root.get("trigger") {
            let tt = self.table(t, "trigger")?;
            for (k, v) in tt.iter() {
                let kind: &str = k.get_ref();
                match kind {
                    "http" => triggers.extend(
                        self.spin_http_triggers(v, &base, &components)?
                            .into_iter()
                            .map(Trigger::Http),
                    ),
                    "cron" => triggers.extend(
                        self.spin_cron_triggers(v, &components)?
                            .into_iter()
                            .map(Trigger::Cron),
                    ),
                    other => {
                        return Err(self
                            .err(
                                k.span(),
                                &join("trigger", other),
                                format!("atoll does not support Spin's `{other}` trigger yet"),
                            )
                            .help("atoll serves `[[trigger.http]]` and `[[trigger.cron]]`; keep this trigger on Spin, or remove it"));
                    }
                }
            }
        }
        triggers.sort_by_key(|t| t.span().start);
        Ok((
            Parsed {
                name: name.to_string(),
                version,
                hosts: Vec::new(),
                variables,
                components,
                triggers,
                app_span: app.span(),
            },
            notes,
        ))
    }

    fn spin_component(
        &self,
        k: &Spanned<std::borrow::Cow<'_, str>>,
        v: &Spanned<DeValue<'_>>,
        variables: &[crate::Variable],
        notes: &mut Vec<String>,
    ) -> Result<Component, Diagnostic> {
        let name: &str = k.get_ref();
        let path = format!("component.{name}");
        check_name(name).map_err(|m| self.err(k.span(), &path, format!("component {m}")))?;
        let t = self.table(v, &path)?;
        self.check_keys(
            t,
            &path,
            &[
                "description",
                "source",
                "files",
                "exclude_files",
                "allowed_outbound_hosts",
                "allowed_http_hosts",
                "key_value_stores",
                "sqlite_databases",
                "ai_models",
                "environment",
                "variables",
                "build",
                "targets",
                "tool",
                "dependencies_inherit_configuration",
                "dependencies",
                "profile",
            ],
        )?;
        if let Some(d) = t.get("description") {
            self.string(d, &join(&path, "description"))?;
        }
        for (key, help) in UNSUPPORTED_COMPONENT_KEYS {
            if let Some(val) = t.get(*key)
                && !is_empty(val.get_ref())
            {
                return Err(self
                    .err(
                        val.span(),
                        &join(&path, key),
                        format!("atoll does not support Spin's `{key}` yet"),
                    )
                    .help(*help));
            }
        }
        if let Some(val) = t.get("allowed_http_hosts") {
            return Err(self
                .err(
                    val.span(),
                    &join(&path, "allowed_http_hosts"),
                    "`allowed_http_hosts` is Spin 1's key; Spin 2 and atoll read `allowed_outbound_hosts`",
                )
                .help("rename it to `allowed_outbound_hosts` and give each host a scheme, e.g. \"https://api.example.com\""));
        }
        if let Some(val) = t.get("dependencies_inherit_configuration")
            && val.get_ref().as_bool() != Some(false)
        {
            return Err(self
                .err(
                    val.span(),
                    &join(&path, "dependencies_inherit_configuration"),
                    "`dependencies_inherit_configuration` has no effect without `dependencies`, which atoll reads only from atoll.toml",
                )
                .help("remove it, or run `atoll import` and write the dependencies in atoll.toml"));
        }

        let source_key = join(&path, "source");
        let source_v = t.get("source").ok_or_else(|| {
            self.err(
                k.span(),
                &source_key,
                format!("component `{name}` has no `source`"),
            )
            .help("add `source = \"path/to/component.wasm\"`")
        })?;
        let (source, source_written) = match source_v.get_ref() {
            DeValue::String(s) if !s.is_empty() => (
                ComponentSource::Path(self.dir.join(s.as_ref())),
                s.to_string(),
            ),
            DeValue::Table(st) if st.contains_key("url") => {
                return Err(self
                    .err(
                        source_v.span(),
                        &source_key,
                        "atoll does not download `source = { url, digest }` yet",
                    )
                    .help("download the file, check it against the digest (`sha256sum`), and point `source` at it"));
            }
            DeValue::Table(_) => {
                return Err(self
                    .err(
                        source_v.span(),
                        &source_key,
                        "atoll does not fetch Spin registry packages (`source = { package, version }`)",
                    )
                    .help("fetch it with `wkg get`, and point `source` at the file; or publish it to an OCI registry and run `atoll import`, then write `source = \"oci://...\"`"));
            }
            _ => {
                return Err(self
                    .type_err(source_v, &source_key, "a path to a .wasm file")
                    .help("write `source = \"target/wasm32-wasip2/release/app.wasm\"`"));
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
        let grants = self.grants(t, &path, variables)?;
        if let Some(x) = t.get("exclude_files")
            && !is_empty(x.get_ref())
        {
            if !grants.files.is_empty() {
                return Err(self
                    .err(
                        x.span(),
                        &join(&path, "exclude_files"),
                        "atoll does not support `exclude_files` yet",
                    )
                    .help("narrow the `files` globs so they leave these files out, and remove `exclude_files`"));
            }
            notes.push(format!(
                "`{path}.exclude_files` is left out: the component mounts no `files`, so it excludes nothing"
            ));
        }
        Ok(Component {
            name: name.to_string(),
            source,
            source_written,
            source_span: source_v.span(),
            build,
            environment,
            limits: Limits::default(),
            grants,
            dependencies: Vec::new(),
        })
    }

    fn spin_http_triggers(
        &self,
        h: &Spanned<DeValue<'_>>,
        base: &str,
        components: &BTreeMap<String, Component>,
    ) -> Result<Vec<HttpTrigger>, Diagnostic> {
        let arr = h.get_ref().as_array().ok_or_else(|| {
            self.type_err(h, "trigger.http", "an array of tables")
                .help("write each trigger as `[[trigger.http]]` (double brackets)")
        })?;
        let mut out: Vec<HttpTrigger> = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            let path = format!("trigger.http[{i}]");
            let t = self.table(item, &path)?;
            self.check_keys(
                t,
                &path,
                &[
                    "id",
                    "route",
                    "component",
                    "executor",
                    "static_response",
                    "components",
                    "dependencies",
                ],
            )?;
            if let Some(id) = t.get("id") {
                self.string(id, &join(&path, "id"))?;
            }
            for key in ["static_response", "components", "dependencies"] {
                if let Some(v) = t.get(key)
                    && (key == "static_response" || !is_empty(v.get_ref()))
                {
                    return Err(self
                        .err(
                            v.span(),
                            &join(&path, key),
                            format!("atoll does not support `{key}` on an HTTP trigger yet"),
                        )
                        .help("serve the route from a component instead"));
                }
            }
            if let Some(e) = t.get("executor") {
                let key = join(&path, "executor");
                let et = self.table(e, &key)?;
                let kind = et.get("type").and_then(|v| v.get_ref().as_str());
                if !matches!(kind, Some("http" | "spin")) || et.len() != 1 {
                    return Err(self
                        .err(
                            e.span(),
                            &key,
                            "atoll runs HTTP components only (`executor = { type = \"http\" }`); WAGI is not supported",
                        )
                        .help("rebuild the component against wasi:http, or remove `executor`"));
                }
            }
            let route_key = join(&path, "route");
            let route_v = t.get("route").ok_or_else(|| {
                self.err(item.span(), &route_key, "this HTTP trigger has no `route`")
                    .help("add `route = \"/...\"` (everything) or an exact path like `route = \"/hello\"`")
            })?;
            let written = match route_v.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Table(rt) => {
                    let private = rt.get("private").and_then(|p| p.get_ref().as_bool());
                    return Err(match private {
                        Some(true) => self
                            .err(
                                route_v.span(),
                                &route_key,
                                "atoll has no private routes (Spin's service chaining) yet",
                            )
                            .help("give it a route, or call its code as a composition dependency from atoll.toml"),
                        _ => self
                            .err(
                                route_v.span(),
                                &route_key,
                                "a route table must be `{ private = true }`",
                            )
                            .help("write the route as a path string, like `route = \"/...\"`"),
                    });
                }
                _ => return Err(self.type_err(route_v, &route_key, "a path string")),
            };
            if written.split('/').any(|seg| seg.starts_with(':')) {
                return Err(self
                    .err(
                        route_v.span(),
                        &route_key,
                        format!("route `{written}` has a named segment (`:name`), which atoll does not match yet"),
                    )
                    .help("use a wildcard such as `/users/...` and read the segment from the path in the component"));
            }
            // Spin's trailing `/*` is its `/...`.
            let spin_route = match written.strip_suffix("/*") {
                Some(prefix) => format!("{prefix}/..."),
                None => written.clone(),
            };
            let full = if base.is_empty() {
                spin_route
            } else if spin_route == "/" {
                base.to_string()
            } else {
                format!("{base}{spin_route}")
            };
            let route = Route::parse(&full).map_err(|m| {
                self.err(route_v.span(), &route_key, m)
                    .help("write an exact path (`/hello`) or a wildcard (`/api/...`)")
            })?;
            if let Some(first) = out.iter().find(|t| t.route == route) {
                let (line, col) = self.src.line_col(first.span.start);
                return Err(self
                    .err(route_v.span(), &route_key, format!("duplicate route `{route}`"))
                    .note(format!(
                        "first defined at {}:{line}:{col}; Spin would let the later one win, atoll refuses the ambiguity",
                        self.src.path.display()
                    ))
                    .help("remove one of them"));
            }
            let component = self.spin_trigger_component(t, item, &path, "HTTP", components)?;
            out.push(HttpTrigger {
                route,
                component,
                span: route_v.span(),
            });
        }
        Ok(out)
    }

    fn spin_cron_triggers(
        &self,
        c: &Spanned<DeValue<'_>>,
        components: &BTreeMap<String, Component>,
    ) -> Result<Vec<CronTrigger>, Diagnostic> {
        const FORMS: &str = "write 6 fields with seconds first (`0 */5 * * * *`: every 5 minutes), as Spin's cron trigger does, or 5 without; times are UTC";
        let arr = c.get_ref().as_array().ok_or_else(|| {
            self.type_err(c, "trigger.cron", "an array of tables")
                .help("write each trigger as `[[trigger.cron]]` (double brackets)")
        })?;
        let mut out = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            let path = format!("trigger.cron[{i}]");
            let t = self.table(item, &path)?;
            self.check_keys(t, &path, &["id", "cron_expression", "component"])?;
            let key = join(&path, "cron_expression");
            let sched_v = t.get("cron_expression").ok_or_else(|| {
                self.err(
                    item.span(),
                    &key,
                    "this cron trigger has no `cron_expression`",
                )
                .help(FORMS)
            })?;
            let written = self.string(sched_v, &key)?;
            let schedule = Schedule::parse(written)
                .map_err(|m| self.err(sched_v.span(), &key, m).help(FORMS))?;
            let component = self.spin_trigger_component(t, item, &path, "cron", components)?;
            out.push(CronTrigger {
                schedule,
                component,
                span: sched_v.span(),
            });
        }
        Ok(out)
    }

    fn spin_trigger_component(
        &self,
        t: &DeTable<'_>,
        item: &Spanned<DeValue<'_>>,
        path: &str,
        kind: &str,
        components: &BTreeMap<String, Component>,
    ) -> Result<String, Diagnostic> {
        if let Some(c) = t.get("component")
            && c.get_ref().as_table().is_some()
        {
            return Err(self
                .err(
                    c.span(),
                    &join(path, "component"),
                    "atoll does not read a component written inline in a trigger yet",
                )
                .help(
                    "move it to its own `[component.NAME]` table and write `component = \"NAME\"`",
                ));
        }
        self.trigger_component(t, item, path, kind, components)
    }
}

/// An empty list or table (or `false`) asks for nothing.
fn is_empty(v: &DeValue<'_>) -> bool {
    match v {
        DeValue::Array(a) => a.is_empty(),
        DeValue::Table(t) => t.is_empty(),
        DeValue::Boolean(b) => !b,
        _ => false,
    }
}

/// Write `app` as an `atoll.toml` (what `atoll import` saves), with `notes` as comments
/// at the top. Reading the result back gives the same app: the same components, sources,
/// grants and triggers.
pub fn to_atoll_toml(app: &App, notes: &[String]) -> String {
    use std::fmt::Write as _;
    let rel = |p: &std::path::Path| -> String {
        let shown = p.strip_prefix(&app.dir).unwrap_or(p);
        match shown.to_str() {
            Some("") => ".".to_string(),
            Some(s) => s.to_string(),
            None => shown.display().to_string(),
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `atoll import` from {}.",
        app.manifest_path().display()
    );
    for note in notes {
        let _ = writeln!(out, "# - {note}");
    }
    let _ = writeln!(out, "\n[app]\nname = {}", quote(&app.name));
    let _ = writeln!(out, "version = {}", quote(&app.version));
    if !app.variables.is_empty() {
        let _ = writeln!(out, "\n[variables]");
        for v in &app.variables {
            let mut fields = Vec::new();
            if let Some(d) = &v.default {
                fields.push(format!("default = {}", quote(d)));
            }
            if v.required {
                fields.push("required = true".to_string());
            }
            if v.secret {
                fields.push("secret = true".to_string());
            }
            let _ = writeln!(out, "{} = {{ {} }}", v.name, fields.join(", "));
        }
    }
    for c in app.components.values() {
        let _ = writeln!(out, "\n[component.{}]", c.name);
        let source = match &c.source {
            ComponentSource::Path(p) => rel(p),
            ComponentSource::Oci(r) => r.clone(),
            ComponentSource::Package(p) => {
                let _ = writeln!(
                    out,
                    "source = {{ package = {}, version = {} }}",
                    quote(&p.name),
                    quote(&p.version)
                );
                String::new()
            }
        };
        if !source.is_empty() {
            let _ = writeln!(out, "source = {}", quote(&source));
        }
        if let Some(b) = &c.build {
            let mut fields = vec![format!("command = {}", quote(&b.command))];
            if b.workdir != app.dir {
                fields.push(format!("workdir = {}", quote(&rel(&b.workdir))));
            }
            if !b.watch.is_empty() {
                fields.push(format!("watch = {}", list(&b.watch)));
            }
            let _ = writeln!(out, "build = {{ {} }}", fields.join(", "));
        }
        if !c.environment.is_empty() {
            let pairs: Vec<String> = c
                .environment
                .iter()
                .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                .collect();
            let _ = writeln!(out, "environment = {{ {} }}", pairs.join(", "));
        }
        let g = &c.grants;
        if !g.variables.is_empty() {
            let pairs: Vec<String> = g
                .variables
                .iter()
                .map(|t| {
                    let text: String = t
                        .parts
                        .iter()
                        .map(|p| match p {
                            crate::TemplatePart::Literal(l) => l.clone(),
                            crate::TemplatePart::Variable(v) => format!("{{{{ {v} }}}}"),
                        })
                        .collect();
                    format!("{} = {}", t.key, quote(&text))
                })
                .collect();
            let _ = writeln!(out, "variables = {{ {} }}", pairs.join(", "));
        }
        if !g.allowed_outbound_hosts.is_empty() {
            let hosts: Vec<String> = g
                .allowed_outbound_hosts
                .iter()
                .map(|h| h.written.clone())
                .collect();
            let _ = writeln!(out, "allowed_outbound_hosts = {}", list(&hosts));
        }
        if !g.key_value_stores.is_empty() {
            let _ = writeln!(out, "key_value_stores = {}", list(&g.key_value_stores));
        }
        if !g.files.is_empty() {
            let mounts: Vec<String> = g
                .files
                .iter()
                .map(|m| match &m.source {
                    crate::MountSource::Glob(s) => quote(s),
                    crate::MountSource::Dir(s) => format!(
                        "{{ source = {}, destination = {} }}",
                        quote(s),
                        quote(&m.destination)
                    ),
                })
                .collect();
            let _ = writeln!(out, "files = [{}]", mounts.join(", "));
        }
    }
    for t in &app.triggers {
        match t {
            Trigger::Http(h) => {
                let _ = writeln!(
                    out,
                    "\n[[trigger.http]]\nroute = {}\ncomponent = {}",
                    quote(&h.route.to_string()),
                    quote(&h.component)
                );
            }
            Trigger::Cron(c) => {
                let _ = writeln!(
                    out,
                    "\n[[trigger.cron]]\nschedule = {}\ncomponent = {}",
                    quote(c.schedule.as_str()),
                    quote(&c.component)
                );
            }
        }
    }
    out
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const SPIN: &str = r#"#:schema https://schemas.spinframework.dev/spin/manifest-v2/latest.json
spin_manifest_version = 2

[application]
name = "shop"
version = "1.2.0"
authors = ["Ann <ann@example.com>"]
description = "A Spin app"

[application.trigger.http]
base = "/shop"

[variables]
api_token = { required = true, secret = true }
greeting = { default = "hi", description = "what to say" }

[[trigger.http]]
route = "/..."
component = "web"

[[trigger.http]]
id = "api"
route = "/api/*"
component = "api"
executor = { type = "http" }

[[trigger.cron]]
cron_expression = "0 */5 * * * *"
component = "api"

[component.web]
source = "web.wasm"
files = [{ source = "static", destination = "/static" }, "assets/*.css"]
exclude_files = []
allowed_outbound_hosts = []

[component.api]
source = "target/wasm32-wasip2/release/api.wasm"
allowed_outbound_hosts = ["https://api.example.com"]
key_value_stores = ["default"]
environment = { RUST_LOG = "info" }
variables = { token = "Bearer {{ api_token }}", hello = "{{ greeting }}!" }
sqlite_databases = []

[component.api.build]
command = ["cargo build --target wasm32-wasip2 --release", "echo built"]
watch = ["src/**/*.rs"]
"#;

    fn parse_spin(text: &str) -> Result<(App, Vec<String>), Diagnostic> {
        let dir = Path::new("/apps/shop");
        let source = std::sync::Arc::new(crate::SourceText {
            path: "spin.toml".into(),
            text: text.to_string(),
        });
        let (parsed, kind, notes) = crate::parse::parse_any(&source, dir)?;
        assert_eq!(kind, ManifestKind::Spin);
        Ok((parsed.into_app(dir, kind, source), notes))
    }

    #[test]
    fn a_spin_manifest_reads_as_spin_means_it() {
        let (app, notes) = parse_spin(SPIN).expect("parses");
        assert_eq!(app.name, "shop");
        assert_eq!(app.version, "1.2.0");
        assert_eq!(app.kind, ManifestKind::Spin);
        let routes: Vec<(String, &str)> = app
            .http_triggers()
            .map(|t| (t.route.to_string(), t.component.as_str()))
            .collect();
        assert_eq!(
            routes,
            [
                ("/shop/...".to_string(), "web"),
                ("/shop/api/...".to_string(), "api")
            ]
        );
        let cron: Vec<&str> = app.cron_triggers().map(|c| c.schedule.as_str()).collect();
        assert_eq!(cron, ["0 */5 * * * *"]);
        let api = &app.components["api"];
        assert_eq!(
            api.path(),
            Some(Path::new(
                "/apps/shop/target/wasm32-wasip2/release/api.wasm"
            ))
        );
        assert_eq!(
            api.build.as_ref().map(|b| b.command.as_str()),
            Some("cargo build --target wasm32-wasip2 --release && echo built")
        );
        assert_eq!(api.environment, [("RUST_LOG".into(), "info".into())]);
        assert_eq!(api.grants.key_value_stores, ["default"]);
        assert_eq!(
            api.grants.allowed_outbound_hosts[0].written,
            "https://api.example.com"
        );
        assert_eq!(api.grants.variables.len(), 2);
        assert_eq!(api.limits, Limits::default());
        assert_eq!(app.components["web"].grants.files.len(), 2);
        let token = app
            .variables
            .iter()
            .find(|v| v.name == "api_token")
            .expect("declared");
        assert!(token.required && token.secret);
        assert!(notes.iter().any(|n| n.contains("base")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("limits")), "{notes:?}");
    }

    #[test]
    fn the_import_reads_back_as_the_same_app() {
        let (spin, notes) = parse_spin(SPIN).expect("parses");
        let text = to_atoll_toml(&spin, &notes);
        assert!(
            text.starts_with("# Written by `atoll import` from spin.toml."),
            "{text}"
        );
        let atoll = crate::parse(
            text.clone(),
            Path::new("atoll.toml"),
            Path::new("/apps/shop"),
        )
        .unwrap_or_else(|d| panic!("{d}\n{text}"));
        assert_eq!(atoll.kind, ManifestKind::Atoll);
        assert_eq!(atoll.name, spin.name);
        assert_eq!(atoll.version, spin.version);
        assert_eq!(
            format!(
                "{:?}",
                atoll
                    .triggers
                    .iter()
                    .map(|t| (
                        t.component(),
                        match t {
                            Trigger::Http(h) => h.route.to_string(),
                            Trigger::Cron(c) => c.schedule.to_string(),
                        }
                    ))
                    .collect::<Vec<_>>()
            ),
            format!(
                "{:?}",
                spin.triggers
                    .iter()
                    .map(|t| (
                        t.component(),
                        match t {
                            Trigger::Http(h) => h.route.to_string(),
                            Trigger::Cron(c) => c.schedule.to_string(),
                        }
                    ))
                    .collect::<Vec<_>>()
            )
        );
        for (name, c) in &spin.components {
            let a = &atoll.components[name];
            assert_eq!(a.source, c.source);
            assert_eq!(a.environment, c.environment);
            assert_eq!(
                a.build.as_ref().map(|b| (&b.command, &b.workdir, &b.watch)),
                c.build.as_ref().map(|b| (&b.command, &b.workdir, &b.watch))
            );
            assert_eq!(
                a.grants.allowed_outbound_hosts,
                c.grants.allowed_outbound_hosts
            );
            assert_eq!(a.grants.key_value_stores, c.grants.key_value_stores);
            assert_eq!(
                format!("{:?}", a.grants.variables),
                format!("{:?}", c.grants.variables)
            );
            let mounts = |g: &crate::Grants| {
                g.files
                    .iter()
                    .map(|m| (m.source.clone(), m.destination.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(mounts(&a.grants), mounts(&c.grants));
        }
        assert_eq!(
            format!(
                "{:?}",
                atoll
                    .variables
                    .iter()
                    .map(|v| (&v.name, &v.default, v.required, v.secret))
                    .collect::<Vec<_>>()
            ),
            format!(
                "{:?}",
                spin.variables
                    .iter()
                    .map(|v| (&v.name, &v.default, v.required, v.secret))
                    .collect::<Vec<_>>()
            )
        );
    }

    /// Each unsupported key is refused at its own line, naming the key.
    #[test]
    fn what_atoll_cannot_serve_is_refused_at_its_key() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "sqlite_databases = []",
                "sqlite_databases = [\"default\"]",
                "component.api.sqlite_databases",
            ),
            (
                "exclude_files = []",
                "exclude_files = [\"static/secret\"]",
                "component.web.exclude_files",
            ),
            (
                "route = \"/api/*\"",
                "route = \"/api/:id\"",
                "trigger.http[1].route",
            ),
            (
                "route = \"/api/*\"",
                "route = { private = true }",
                "trigger.http[1].route",
            ),
            (
                "executor = { type = \"http\" }",
                "executor = { type = \"wagi\" }",
                "trigger.http[1].executor",
            ),
            (
                "id = \"api\"",
                "static_response = { status_code = 200 }",
                "trigger.http[1].static_response",
            ),
            (
                "source = \"web.wasm\"",
                "source = { url = \"https://example.com/web.wasm\", digest = \"sha256:00\" }",
                "component.web.source",
            ),
            (
                "[[trigger.cron]]",
                "[[trigger.redis]]\nchannel = \"x\"\ncomponent = \"api\"\n[[trigger.cron]]",
                "trigger.redis",
            ),
            (
                "spin_manifest_version = 2",
                "spin_manifest_version = 1",
                "spin_manifest_version",
            ),
            (
                "description = \"A Spin app\"",
                "descripton = \"A Spin app\"",
                "application.descripton",
            ),
            (
                "allowed_outbound_hosts = []",
                "allowed_http_hosts = [\"example.com\"]",
                "component.web.allowed_http_hosts",
            ),
            (
                "component = \"web\"",
                "component = { source = \"x.wasm\" }",
                "trigger.http[0].component",
            ),
        ];
        for (from, to, key) in cases {
            assert!(SPIN.contains(from), "{from}");
            let text = SPIN.replacen(from, to, 1);
            let d = parse_spin(&text).map(|_| ()).expect_err(to);
            let shown = d.to_string();
            assert!(shown.contains(key), "{to}: {shown}");
            let line = 1 + text[..text.find(to.lines().next().unwrap_or(to)).expect("in text")]
                .matches('\n')
                .count();
            assert!(
                shown.contains(&format!("spin.toml:{line}:")),
                "{to}: line {line}: {shown}"
            );
        }
    }
}
