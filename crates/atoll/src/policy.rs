//! What a plugin may reach: the same grants, with the same meaning, as a component's
//! keys in `atoll.toml`, and applied by the same code (`atoll-capabilities`), so there is
//! one policy engine to audit. Nothing is granted unless the policy says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atoll_capabilities::{Backend, Backends, ComponentCapabilities, StoreConfig};
use serde::Deserialize;

use crate::Error;

/// A plugin's grants; [`Policy::deny_all`] (the default) grants nothing: no outbound
/// HTTP, no files, no environment variables, no config values, no key-value stores.
///
/// Built in code:
///
/// ```
/// let policy = atoll::Policy::deny_all()
///     .allow_outbound("https://api.example.com")
///     .env("MODE", "prod")
///     .variable("greeting", "hello")
///     .key_value("cache", std::sync::Arc::new(atoll::MemoryBackend::new()));
/// ```
///
/// or loaded from TOML or JSON, for an application that lets its admins write it:
///
/// ```
/// let policy: atoll::Policy = toml::from_str(r#"
///     allowed_outbound_hosts = ["https://api.example.com"]
///     env = { MODE = "prod" }
///     variables = { greeting = "hello" }
///     dirs = [{ host = "/srv/data", guest = "/data" }]
///     [key_value_stores.cache]
///     type = "memory"
/// "#).unwrap();
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Outbound HTTP the plugin may send, each `scheme://host[:port]` as in
    /// `allowed_outbound_hosts` of `atoll.toml` (`https://*.example.com`,
    /// `http://127.0.0.1:8080`). Checked against the resolved addresses too: a name that
    /// resolves to a private or loopback address is refused unless granted literally.
    pub allowed_outbound_hosts: Vec<String>,
    /// Environment variables the guest sees, and no others.
    pub env: BTreeMap<String, String>,
    /// Values the guest reads through `wasi:config/store`.
    pub variables: BTreeMap<String, String>,
    /// Like `variables`, for secret values (tokens, passwords): the guest reads them the
    /// same way, and they are replaced by `[redacted]` in the guest's log lines and in
    /// the outbound URLs logged for it, as `secret = true` variables are in atoll.toml.
    pub secrets: BTreeMap<String, String>,
    /// Host directories the guest may read, read-only, each at an absolute guest path;
    /// neither `..` nor a symlink leads out of one. A relative host path is taken from
    /// the directory of the policy file ([`Policy::from_file`]), else the working
    /// directory.
    pub dirs: Vec<DirGrant>,
    /// Key-value stores the guest may open through `wasi:keyvalue`, by label (its data is
    /// kept under the namespace `<plugin name>/<label>`, so plugins with different names
    /// never see each other's), and where each lives (`type = "memory"`, `"redb"` with a `path`, `"redis"` / `"postgres"` /
    /// `"nats"` with a `url` when those features are on).
    pub key_value_stores: BTreeMap<String, StoreConfig>,
    /// Stores granted in code, on a backend of the application's own.
    #[serde(skip)]
    backends: Vec<(String, Arc<dyn Backend>)>,
    /// Where relative paths resolve from.
    #[serde(skip)]
    base_dir: Option<PathBuf>,
}

/// A read-only directory grant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the guest sees it (absolute, like `/data`).
    pub guest: String,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are left out: variables may hold secrets.
        f.debug_struct("Policy")
            .field("allowed_outbound_hosts", &self.allowed_outbound_hosts)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("variables", &self.variables.keys().collect::<Vec<_>>())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("dirs", &self.dirs)
            .field(
                "key_value_stores",
                &self
                    .key_value_stores
                    .keys()
                    .chain(self.backends.iter().map(|(l, _)| l))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Policy {
    /// Grants nothing.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Read a policy file: `.json` as JSON, anything else as TOML. Errors name the file,
    /// and the line and key for TOML.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: atoll_engine::io_reason(&e),
        })?;
        let invalid = |message: String| Error::InvalidInput {
            message: format!("{}: {message}", path.display()),
        };
        let mut policy: Policy = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| invalid(e.to_string()))?
        };
        policy.base_dir = path.parent().map(Path::to_path_buf);
        Ok(policy)
    }

    /// Allow outbound HTTP to `entry` (`scheme://host[:port]`).
    pub fn allow_outbound(mut self, entry: impl Into<String>) -> Self {
        self.allowed_outbound_hosts.push(entry.into());
        self
    }

    /// Let the guest see environment variable `key`.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Let the guest read config value `key` (`wasi:config/store`).
    pub fn variable(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.insert(key.into(), value.into());
        self
    }

    /// Let the guest read secret config value `key` (see [`Policy::secrets`]).
    pub fn secret(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(key.into(), value.into());
        self
    }

    /// Let the guest read host directory `host` at `guest`, read-only.
    pub fn dir(mut self, host: impl Into<PathBuf>, guest: impl Into<String>) -> Self {
        self.dirs.push(DirGrant {
            host: host.into(),
            guest: guest.into(),
        });
        self
    }

    /// Let the guest open key-value store `label`, kept in `backend` (any
    /// [`Backend`]: [`MemoryBackend`](crate::MemoryBackend), or the application's own).
    pub fn key_value(mut self, label: impl Into<String>, backend: Arc<dyn Backend>) -> Self {
        self.backends.push((label.into(), backend));
        self
    }

    /// Let the guest open key-value store `label`, configured as in a runtime config
    /// file (opened when the plugin loads; the same file or server is opened once per
    /// runtime).
    pub fn key_value_config(mut self, label: impl Into<String>, config: StoreConfig) -> Self {
        self.key_value_stores.insert(label.into(), config);
        self
    }

    /// The grants as the capabilities layer's, for one plugin.
    pub(crate) async fn capabilities(
        &self,
        plugin: &str,
        backends: &Backends,
    ) -> Result<ComponentCapabilities, Error> {
        let base = match &self.base_dir {
            Some(d) => d.clone(),
            None => std::env::current_dir().map_err(|e| {
                Error::Policy(format!(
                    "cannot read the working directory to resolve relative paths: {e}"
                ))
            })?,
        };
        // The plugin's name is its key-value namespace (`<name>/<label>`), as an app's
        // name is in atoll.toml: two plugins granted the same label on the same
        // backend see their own data only, unless they share a name.
        let mut b = ComponentCapabilities::builder(plugin, plugin);
        for entry in &self.allowed_outbound_hosts {
            b = b
                .allow_outbound_str(entry)
                .map_err(|e| Error::InvalidInput {
                    message: format!("allowed_outbound_hosts: {e}"),
                })?;
        }
        for (k, v) in &self.variables {
            b = b.config(k, v);
        }
        for (k, v) in &self.secrets {
            b = b.secret_config(k, v);
        }
        for d in &self.dirs {
            b = b
                .mount_dir(base.join(&d.host), &d.guest)
                .map_err(|e| Error::Policy(format!("dirs: {e}")))?;
        }
        for (label, config) in &self.key_value_stores {
            let backend = backends
                .open(label, config, &base)
                .await
                .map_err(|e| Error::Policy(format!("key_value_stores.{label}: {e}")))?;
            b = b.key_value(label, backend);
        }
        for (label, backend) in &self.backends {
            b = b.key_value(label, backend.clone());
        }
        Ok(b.build())
    }

    /// The environment the guest sees.
    pub(crate) fn environment(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_file_with_a_typo_names_the_file_line_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "env = { A = \"1\" }\nallowed_outbound_host = []\n").expect("write");
        let e = Policy::from_file(&path).expect_err("typo");
        let text = e.to_string();
        assert!(text.contains("policy.toml"), "{text}");
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("allowed_outbound_host"), "{text}");
        let json = dir.path().join("policy.json");
        std::fs::write(
            &json,
            r#"{"env": {"A": "1"}, "dirs": [{"host": ".", "guest": "/d"}]}"#,
        )
        .expect("write");
        let p = Policy::from_file(&json).expect("json");
        let shown = format!("{:?}", Policy::deny_all().secret("token", "hunter2"));
        assert!(
            shown.contains("token") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert_eq!(p.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(p.base_dir.as_deref(), Some(dir.path()));
    }
}
