//! `[variables]` and `wasi:config/store`: resolving each variable's value once, at app
//! load, and rendering each component's `variables` templates into the config keys its
//! guest sees.
//!
//! Providers, highest priority first: the environment variable `ATOLL_VARIABLE_<NAME>`
//! (read by the binary and passed in; this crate never reads the process environment),
//! the runtime config's `[variables]`, the manifest's `default`. A `required` variable
//! with no value stops the app from loading, with an error that names it and says how
//! to set it, and never shows a value.

use std::collections::{BTreeMap, HashMap};

use atoll_manifest::{App, Component, TemplatePart, Variable};

use crate::error::CapabilityError;
use crate::runtime_config::RuntimeConfig;

/// The prefix of the environment variables that set app variables.
pub const ENV_PREFIX: &str = "ATOLL_VARIABLE_";

/// A variable's value. Its `Debug` never shows a secret.
#[derive(Clone)]
pub(crate) struct Value {
    pub(crate) text: String,
    pub(crate) secret: bool,
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.secret {
            f.write_str("[redacted]")
        } else {
            write!(f, "{:?}", self.text)
        }
    }
}

/// The environment variable that sets `name`.
pub fn env_name(name: &str) -> String {
    format!("{ENV_PREFIX}{}", name.to_ascii_uppercase())
}

/// Resolve every app variable. `env` holds the process's `ATOLL_VARIABLE_*` variables,
/// by their full name.
pub(crate) fn resolve(
    app: &App,
    runtime: &RuntimeConfig,
    env: &BTreeMap<String, String>,
) -> Result<HashMap<String, Value>, CapabilityError> {
    let mut out = HashMap::new();
    for var in &app.variables {
        match lookup(var, runtime, env) {
            Some(t) => {
                out.insert(
                    var.name.clone(),
                    Value {
                        text: t.clone(),
                        secret: var.secret,
                    },
                );
            }
            None => {
                return Err(app
                    .diagnostic(
                        var.span.clone(),
                        format!("variable `{}` is required but has no value", var.name),
                    )
                    .key(format!("variables.{}", var.name))
                    .help(how_to_set(&var.name, runtime))
                    .into());
            }
        }
    }
    Ok(out)
}

/// How to give `name` a value, for messages: the environment variable, or the runtime
/// config (the one in use, or `--runtime-config`).
pub(crate) fn how_to_set(name: &str, runtime: &RuntimeConfig) -> String {
    let runtime_hint = match &runtime.path {
        Some(p) => format!(
            "add `{name} = \"...\"` under `[variables]` in {}",
            p.display()
        ),
        None => format!(
            "pass a runtime config with `--runtime-config FILE` that sets `{name}` under `[variables]`"
        ),
    };
    format!(
        "set the environment variable {} before `atoll up`, or {runtime_hint}",
        env_name(name)
    )
}

/// The value of one variable from the first provider that sets it, if any.
pub(crate) fn lookup<'a>(
    var: &'a Variable,
    runtime: &'a RuntimeConfig,
    env: &'a BTreeMap<String, String>,
) -> Option<&'a String> {
    env.get(&env_name(&var.name))
        .or_else(|| runtime.variables.get(&var.name))
        .or(var.default.as_ref())
}

/// Render `component`'s templates: the config keys its guest sees, and the secret values
/// among them (to keep them out of its log lines).
pub(crate) fn render(
    component: &Component,
    values: &HashMap<String, Value>,
) -> (crate::config::ConfigValues, Vec<String>) {
    let mut config = crate::config::ConfigValues::new();
    let mut secrets = Vec::new();
    for template in &component.grants.variables {
        let mut text = String::new();
        for part in &template.parts {
            match part {
                TemplatePart::Literal(l) => text.push_str(l),
                TemplatePart::Variable(name) => {
                    // The manifest checked that every reference names a declared
                    // variable, and `resolve` gave each one a value.
                    if let Some(v) = values.get(name) {
                        text.push_str(&v.text);
                        if v.secret && !secrets.contains(&v.text) {
                            secrets.push(v.text.clone());
                        }
                    }
                }
            }
        }
        config.insert(template.key.clone(), text);
    }
    (config, secrets)
}
