//! What the registry commands (`key`, `publish`, `yank`, `add`, `pull`, `search`) share:
//! where the user's keys and cache live, which registry to talk to, and a runtime.
//! The library (`atoll-registry`) never reads the environment; this module does.

use std::path::PathBuf;

use anyhow::Context as _;
use atoll_registry::AtollHome;
use atoll_registry::client::Client;
use clap::Args;

/// The `--registry` flag of every client command.
#[derive(Args, Clone)]
pub struct RegistryArg {
    /// Registry URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "ATOLL_REGISTRY", value_name = "URL")]
    registry: Option<String>,
}

impl RegistryArg {
    /// A client of the chosen registry, keeping its state in the user's home.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.client_or(None)
    }

    /// Like [`Self::client`], falling back to `default` (e.g. the registry recorded in
    /// the app's atoll.lock) when neither --registry nor ATOLL_REGISTRY is given, and
    /// then to `registry = "..."` in the user's config file.
    pub fn client_or(&self, default: Option<&str>) -> anyhow::Result<Client> {
        let home = atoll_home();
        let configured = user_registry(&home)?;
        let url = self
            .registry
            .as_deref()
            .or(default)
            .or(configured.as_deref())
            .with_context(|| {
                format!(
                    "no registry given: pass --registry http://HOST:PORT, set ATOLL_REGISTRY, or put registry = \"http://HOST:PORT\" in {}",
                    home.config_file().display()
                )
            })?;
        Ok(Client::new(url, home)?)
    }
}

/// `registry = "URL"` from the user's config file, if it has one.
fn user_registry(home: &AtollHome) -> anyhow::Result<Option<String>> {
    let path = home.config_file();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| anyhow::anyhow!("{} is not valid TOML: {e}", path.display()))?;
    match doc.get("registry") {
        None => Ok(None),
        Some(item) if item.is_str() => Ok(item.as_str().map(String::from)),
        Some(_) => Err(anyhow::anyhow!(
            "`registry` in {} must be a string like \"http://127.0.0.1:8080\"",
            path.display()
        )),
    }
}

/// `$ATOLL_HOME` for everything when set; else keys in `$XDG_CONFIG_HOME/atoll`
/// (`~/.config/atoll`) and blobs and tree heads in `$XDG_CACHE_HOME/atoll`
/// (`~/.cache/atoll`).
pub fn atoll_home() -> AtollHome {
    if let Some(home) = std::env::var_os("ATOLL_HOME") {
        return AtollHome::single(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let dir = |xdg: &str, fallback: &str| {
        std::env::var_os(xdg)
            .map(|d| PathBuf::from(d).join("atoll"))
            .or_else(|| home.as_ref().map(|h| h.join(fallback)))
            .unwrap_or_else(|| std::env::temp_dir().join("atoll"))
    };
    AtollHome::new(
        dir("XDG_CONFIG_HOME", ".config/atoll"),
        dir("XDG_CACHE_HOME", ".cache/atoll"),
    )
}

/// A small runtime for one client command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
