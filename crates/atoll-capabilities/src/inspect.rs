//! What each component of an app is granted, as plain data a person or a script can
//! read (`atoll inspect`): its config keys with their values resolved by the same
//! providers as [`configure`](crate::configure) (secret ones withheld), the backend
//! behind each key-value store label, and how its WIT imports and its grants line up
//! (an interface imported but not granted, or granted but never imported).
//!
//! Not for enforcing anything (the configure and prepare phases do that), and no I/O:
//! nothing here connects to a backend, opens a mount or reads the environment (the
//! binary passes `ATOLL_VARIABLE_*` in, as for `configure`).
//!
//! Key types: [`ConfigEntry`] with its [`ShownValue`], [`StoreEntry`], [`ImportFinding`].

use std::collections::BTreeMap;

use atoll_manifest::{App, Component, TemplatePart};

use crate::runtime_config::RuntimeConfig;
use crate::variables;

/// A config value as it may be shown. A secret is never carried here, so it cannot be
/// printed by mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShownValue {
    /// The rendered value; no secret variable went into it.
    Plain(String),
    /// The template references a secret variable: the value is withheld.
    Secret,
    /// A variable the template references has no value from any provider (`atoll up`
    /// would refuse to start). Holds that variable's name.
    Missing(String),
}

/// One `wasi:config/store` key a component sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key the guest asks for.
    pub key: String,
    /// The template as written, e.g. `Bearer {{ api_token }}` (names only, no values).
    pub template: String,
    /// What the guest would get.
    pub value: ShownValue,
}

/// The config keys of `component`, rendered with the values of `app`'s variables from the
/// providers `configure` uses: `env` (the process's `ATOLL_VARIABLE_*` variables), then
/// `runtime`'s `[variables]`, then the default. A key whose template references a secret
/// variable is [`ShownValue::Secret`], whatever else it holds.
pub fn config_entries(
    app: &App,
    component: &Component,
    runtime: &RuntimeConfig,
    env: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let mut entries = Vec::new();
    for template in &component.grants.variables {
        let mut written = String::new();
        let mut text = String::new();
        let mut secret = false;
        let mut missing = None;
        for part in &template.parts {
            match part {
                TemplatePart::Literal(l) => {
                    written.push_str(l);
                    text.push_str(l);
                }
                TemplatePart::Variable(name) => {
                    written.push_str(&format!("{{{{ {name} }}}}"));
                    let var = app.variables.iter().find(|v| &v.name == name);
                    secret |= var.is_some_and(|v| v.secret);
                    match var.and_then(|v| variables::lookup(v, runtime, env)) {
                        Some(value) => text.push_str(value),
                        None => {
                            missing.get_or_insert_with(|| name.clone());
                        }
                    }
                }
            }
        }
        let value = match (missing, secret) {
            (Some(name), _) => ShownValue::Missing(name),
            (None, true) => ShownValue::Secret,
            (None, false) => ShownValue::Plain(text),
        };
        entries.push(ConfigEntry {
            key: template.key.clone(),
            template: written,
            value,
        });
    }
    entries
}

/// An app variable that no provider gives a value: `atoll up` refuses to start. Found for
/// every declared variable, whether or not a component's template uses it (`atoll up`
/// resolves them all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsetVariable {
    /// The variable's name in `[variables]`.
    pub name: String,
    /// The environment variable that would set it (`ATOLL_VARIABLE_...`).
    pub env: String,
    /// What it means, and how to set it.
    pub message: String,
}

/// The variables of `app` with no value from `env`, `runtime` or a default, in manifest
/// order: the ones `atoll up` would stop on.
pub fn unset_variables(
    app: &App,
    runtime: &RuntimeConfig,
    env: &BTreeMap<String, String>,
) -> Vec<UnsetVariable> {
    app.variables
        .iter()
        .filter(|v| variables::lookup(v, runtime, env).is_none())
        .map(|v| UnsetVariable {
            name: v.name.clone(),
            env: variables::env_name(&v.name),
            message: format!(
                "variable `{}` has no value: `atoll up` will refuse to start; {}",
                v.name,
                variables::how_to_set(&v.name, runtime)
            ),
        })
        .collect()
}

/// One granted key-value store and where its data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEntry {
    /// The label in `key_value_stores`.
    pub label: String,
    /// The backend's kind as the runtime config sets it (`redis`, `postgres`, ...; no
    /// URL, which may hold a password), or the embedded store.
    pub backend: String,
}

/// The stores `component` may open, with their backends under `runtime`.
pub fn store_entries(component: &Component, runtime: &RuntimeConfig) -> Vec<StoreEntry> {
    component
        .grants
        .key_value_stores
        .iter()
        .map(|label| StoreEntry {
            label: label.clone(),
            backend: match runtime.key_value_stores.get(label) {
                Some(store) => store.to_string(),
                None => "the embedded redb store".to_string(),
            },
        })
        .collect()
}

/// How an import and the grants disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// Imported, and the manifest grants nothing for it: calls fail or see nothing.
    NotGranted,
    /// Imported, and atoll never grants it (`wasi:sockets`: every address is denied).
    NeverGranted,
    /// Granted, but the component does not import the interface: the grant is unused.
    Unused,
}

impl FindingKind {
    /// A stable, lowercase name for scripts (`not_granted`, `never_granted`, `unused`).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::NotGranted => "not_granted",
            FindingKind::NeverGranted => "never_granted",
            FindingKind::Unused => "unused",
        }
    }
}

/// One mismatch between a component's imports and its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFinding {
    /// What kind of mismatch.
    pub kind: FindingKind,
    /// The imports concerned (empty for [`FindingKind::Unused`]).
    pub interfaces: Vec<String>,
    /// The manifest key that grants this capability, e.g. `key_value_stores`.
    pub grant: &'static str,
    /// What it means at run time, and what to do.
    pub message: String,
}

/// A capability that is off unless the manifest grants it, and the imports that use it.
struct Gated {
    /// Import names (without `@version`) that need the grant.
    prefixes: &'static [&'static str],
    grant: &'static str,
    /// The effect of calling it without the grant.
    denied: &'static str,
}

const GATED: &[Gated] = &[
    Gated {
        prefixes: &["wasi:keyvalue/"],
        grant: "key_value_stores",
        denied: "calls will be denied (access-denied)",
    },
    Gated {
        prefixes: &["wasi:http/outgoing-handler"],
        grant: "allowed_outbound_hosts",
        denied: "calls will be denied (HTTP-request-denied)",
    },
    Gated {
        prefixes: &["wasi:config/store"],
        grant: "variables",
        denied: "the guest sees no keys",
    },
    Gated {
        prefixes: &["wasi:filesystem/preopens"],
        grant: "files",
        denied: "the guest sees no directories",
    },
];

/// Compare `component`'s WIT `imports` (as in the component binary, e.g.
/// `wasi:keyvalue/store@0.2.0-draft`) with its grants. `wasi:sockets` imports are
/// reported as never granted.
pub fn import_findings(component: &Component, imports: &[String]) -> Vec<ImportFinding> {
    let grants = &component.grants;
    let mut findings = Vec::new();
    for gated in GATED {
        let granted = match gated.grant {
            "key_value_stores" => !grants.key_value_stores.is_empty(),
            "allowed_outbound_hosts" => !grants.allowed_outbound_hosts.is_empty(),
            "variables" => !grants.variables.is_empty(),
            _ => !grants.files.is_empty(),
        };
        let using: Vec<String> = imports
            .iter()
            .filter(|i| gated.prefixes.iter().any(|p| i.starts_with(p)))
            .cloned()
            .collect();
        match (using.is_empty(), granted) {
            (false, false) => findings.push(ImportFinding {
                kind: FindingKind::NotGranted,
                interfaces: using,
                grant: gated.grant,
                message: format!(
                    "imported, not granted: {}; grant it with `{}` if the component needs it",
                    gated.denied, gated.grant
                ),
            }),
            (true, true) => findings.push(ImportFinding {
                kind: FindingKind::Unused,
                interfaces: Vec::new(),
                grant: gated.grant,
                message:
                    "granted, not imported: nothing in the component uses it; the grant can go"
                        .to_string(),
            }),
            _ => {}
        }
    }
    let sockets: Vec<String> = imports
        .iter()
        .filter(|i| i.starts_with("wasi:sockets/"))
        .cloned()
        .collect();
    if !sockets.is_empty() {
        findings.push(ImportFinding {
            kind: FindingKind::NeverGranted,
            interfaces: sockets,
            grant: "-",
            message: "imported, never granted: every socket address is denied; use wasi:http/outgoing-handler with allowed_outbound_hosts".to_string(),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(manifest: &str) -> App {
        atoll_manifest::parse(
            manifest.to_string(),
            std::path::Path::new("/app/atoll.toml"),
            std::path::Path::new("/app"),
        )
        .expect("valid manifest")
    }

    const APP: &str = r#"
[app]
name = "a"

[variables]
greeting = { default = "hello" }
token = { required = true, secret = true }
region = { required = true }
unused = { required = true, secret = true }

[component.c]
source = "c.wasm"
variables = { greet = "{{ greeting }}, world", auth = "Bearer {{ token }}", mixed = "{{ greeting }} {{ token }}", where = "{{ region }}" }
key_value_stores = ["default", "cache"]

[[trigger.http]]
route = "/..."
component = "c"
"#;

    #[test]
    fn values_come_from_the_providers_and_secrets_are_withheld() {
        let app = app(APP);
        let c = &app.components["c"];
        let mut runtime = RuntimeConfig::default();
        runtime.variables.insert("token".into(), "from-file".into());
        let env = BTreeMap::from([("ATOLL_VARIABLE_GREETING".to_string(), "howdy".to_string())]);
        let entries = config_entries(&app, c, &runtime, &env);
        let by_key = |k: &str| {
            entries
                .iter()
                .find(|e| e.key == k)
                .unwrap_or_else(|| panic!("no key {k}: {entries:?}"))
        };
        assert_eq!(
            by_key("greet").value,
            ShownValue::Plain("howdy, world".into())
        );
        assert_eq!(by_key("greet").template, "{{ greeting }}, world");
        assert_eq!(by_key("auth").value, ShownValue::Secret);
        assert_eq!(by_key("mixed").value, ShownValue::Secret);
        assert_eq!(by_key("where").value, ShownValue::Missing("region".into()));
        assert!(!format!("{entries:?}").contains("from-file"));
    }

    #[test]
    fn variables_without_a_value_are_found_even_when_no_template_uses_them() {
        let app = app(APP);
        let mut runtime = RuntimeConfig::default();
        runtime.variables.insert("token".into(), "from-file".into());
        let unset = unset_variables(&app, &runtime, &BTreeMap::new());
        let names: Vec<&str> = unset.iter().map(|u| u.name.as_str()).collect();
        // `greeting` has a default, `token` a runtime-config value; `unused` is in no
        // template and `atoll up` still requires it.
        assert_eq!(names, ["region", "unused"]);
        assert_eq!(unset[1].env, "ATOLL_VARIABLE_UNUSED");
        assert!(
            unset[1]
                .message
                .starts_with("variable `unused` has no value: `atoll up` will refuse to start; set the environment variable ATOLL_VARIABLE_UNUSED"),
            "{}",
            unset[1].message
        );
        let env = BTreeMap::from([
            ("ATOLL_VARIABLE_REGION".to_string(), "eu".to_string()),
            ("ATOLL_VARIABLE_UNUSED".to_string(), "x".to_string()),
        ]);
        assert_eq!(unset_variables(&app, &runtime, &env), []);
    }

    #[test]
    fn imports_are_compared_with_grants() {
        let app = app(APP);
        let c = &app.components["c"];
        let imports: Vec<String> = [
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:config/store@0.2.0-rc.1",
            "wasi:sockets/tcp@0.2.0",
            "wasi:cli/environment@0.2.0",
        ]
        .map(String::from)
        .to_vec();
        let findings = import_findings(c, &imports);
        let kinds: Vec<(FindingKind, &str)> = findings.iter().map(|f| (f.kind, f.grant)).collect();
        assert_eq!(
            kinds,
            [
                (FindingKind::Unused, "key_value_stores"),
                (FindingKind::NotGranted, "allowed_outbound_hosts"),
                (FindingKind::NeverGranted, "-"),
            ]
        );
        assert_eq!(findings[1].interfaces, ["wasi:http/outgoing-handler@0.2.0"]);
        assert!(findings[1].message.contains("calls will be denied"));

        let kv = ["wasi:keyvalue/store@0.2.0-draft".to_string()];
        let mut bare = app.components["c"].clone();
        bare.grants.key_value_stores.clear();
        bare.grants.variables.clear();
        let findings = import_findings(&bare, &kv);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, FindingKind::NotGranted);
        assert!(
            findings[0]
                .message
                .starts_with("imported, not granted: calls will be denied")
        );
    }

    #[test]
    fn stores_name_their_backend_without_urls() {
        let app = app(APP);
        let runtime = RuntimeConfig {
            key_value_stores: BTreeMap::from([(
                "default".to_string(),
                crate::StoreConfig::Redis {
                    url: "redis://:pw@127.0.0.1:6379".into(),
                },
            )]),
            ..RuntimeConfig::default()
        };
        let stores = store_entries(&app.components["c"], &runtime);
        assert_eq!(
            stores,
            [
                StoreEntry {
                    label: "default".into(),
                    backend: "redis".into()
                },
                StoreEntry {
                    label: "cache".into(),
                    backend: "the embedded redb store".into()
                },
            ]
        );
    }
}
