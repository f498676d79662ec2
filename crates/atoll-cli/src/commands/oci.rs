//! OCI registries from the command line: `atoll push`, `atoll pull oci://…`, the
//! `source = "oci://…"` components of an app (pulled into the blob cache and pinned by
//! digest in atoll.lock before `atoll up` loads the app), and `atoll up oci://…` (a bare
//! HTTP component served from a registry).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use atoll_oci::{Client, ClientOptions, Credentials, OciError, OciRef};
use atoll_registry::AtollHome;
use atoll_registry::hash::Digest;
use atoll_registry::lockfile::{LOCKFILE, LockedOci, Lockfile};
use clap::Args;

use super::share::{atoll_home, runtime};

/// `--insecure`, shared by every command that talks to an OCI registry.
#[derive(Args, Clone, Debug, Default)]
pub struct OciArgs {
    /// Talk plain HTTP to a registry that is not on a loopback address (loopback
    /// registries always may). Anyone on the path can read and change what is sent.
    #[arg(long)]
    pub insecure: bool,
}

impl OciArgs {
    /// A client with credentials from the Docker config (`$DOCKER_CONFIG/config.json`,
    /// else `~/.docker/config.json`).
    pub fn client(&self) -> Client {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        let credentials = dir.map(Credentials::docker_config).unwrap_or_default();
        if self.insecure {
            tracing::warn!(
                "--insecure: plain HTTP to non-loopback registries; credentials from the Docker config go to them in the clear"
            );
        }
        Client::new(ClientOptions {
            insecure: self.insecure,
            credentials,
        })
    }
}

/// An OCI error as the user should see it: what happened, then what to do.
pub fn user_error(e: OciError) -> anyhow::Error {
    let help = e.help();
    anyhow::anyhow!("{e}\n  help: {help}")
}

/// Whether a command-line argument is an OCI reference.
pub fn is_oci(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| s.starts_with(OciRef::SCHEME))
}

/// Push a component to an OCI registry, in the CNCF Wasm artifact layout (wkg's).
#[derive(Args)]
#[command(
    after_help = "Example:\n  atoll push target/wasm32-wasip2/release/hello.wasm oci://127.0.0.1:5000/acme/hello:1.0"
)]
pub struct PushCommand {
    /// The component (.wasm) to push.
    path: PathBuf,
    /// Where: oci://HOST[:PORT]/REPOSITORY:TAG.
    reference: String,
    /// A manifest annotation KEY=VALUE (repeatable), e.g.
    /// org.opencontainers.image.source=https://github.com/acme/hello.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    #[command(flatten)]
    oci: OciArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl PushCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let reference = OciRef::parse(&self.reference).map_err(user_error)?;
        let bytes = std::fs::read(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        // The engine's check gives the precise reason (core module, wasip1, not wasm).
        if let Err(e) = atoll_engine::describe_bytes(&bytes) {
            anyhow::bail!(
                "{} cannot be pushed: it is {e}\n  help: push the .wasm component your build produces (e.g. `cargo build --target wasm32-wasip2` writes one under target/wasm32-wasip2/)",
                self.path.display(),
            );
        }
        let mut annotations = BTreeMap::new();
        for a in &self.annotations {
            let (k, v) = a
                .split_once('=')
                .with_context(|| format!("--annotation `{a}` is not KEY=VALUE"))?;
            annotations.insert(k.to_string(), v.to_string());
        }
        let title = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let client = self.oci.client();
        let pushed = runtime()?
            .block_on(client.push(&reference, bytes, title, annotations))
            .map_err(user_error)?;
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "reference": reference.to_string(),
                    "pinned": pushed.reference.to_string(),
                    "digest": pushed.digest,
                    "layer": pushed.layer_digest,
                })
            );
        } else {
            println!("pushed {reference}");
            println!("  digest {}", pushed.digest);
            println!("  pin    {}", pushed.reference);
        }
        Ok(())
    }
}

/// `atoll pull oci://…`: the component at `reference`, verified, written to `output`
/// (default `NAME.wasm` in the current directory).
pub fn pull_to_file(
    reference: &str,
    output: Option<PathBuf>,
    oci: &OciArgs,
    json: bool,
) -> anyhow::Result<()> {
    let reference = OciRef::parse(reference).map_err(user_error)?;
    let pulled = runtime()?
        .block_on(oci.client().pull(&reference))
        .map_err(user_error)?;
    let output = output.unwrap_or_else(|| PathBuf::from(format!("{}.wasm", reference.name())));
    write_new(&output, &pulled.bytes)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "reference": reference.to_string(),
                "digest": pulled.digest,
                "layer": pulled.layer_digest,
                "output": output.display().to_string(),
                "size": pulled.bytes.len(),
                "exports": pulled.exports,
                "imports": pulled.imports,
            })
        );
    } else {
        println!("pulled {reference} -> {}", output.display());
        println!("  digest {}", pulled.digest);
        println!("  size   {} bytes", pulled.bytes.len());
        if !pulled.exports.is_empty() {
            println!("  exports {}", pulled.exports.join(", "));
        }
    }
    Ok(())
}

/// Write through a temporary file beside `path`, so a failed write leaves no half file.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.part-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Pull `reference` (by the digest `locked` pins, if any) into the blob cache; returns
/// the lock entry. A locked pin is pulled by digest and must give the locked bytes.
async fn fetch_into_cache(
    client: &Client,
    home: &AtollHome,
    written: &str,
    locked: Option<&LockedOci>,
) -> anyhow::Result<LockedOci> {
    let reference = OciRef::parse(written).map_err(user_error)?;
    let wanted = match locked {
        Some(l) => reference.by_digest(&l.digest),
        None => reference.clone(),
    };
    let pulled = client.pull(&wanted).await.map_err(user_error)?;
    let hex = pulled
        .layer_digest
        .strip_prefix("sha256:")
        .unwrap_or(&pulled.layer_digest)
        .to_string();
    if let Some(l) = locked
        && l.sha256 != hex
    {
        anyhow::bail!(
            "{written}: atoll.lock pins component sha256 {} at {}, but the registry's manifest by that digest holds sha256 {hex}\n  help: the registry changed what a digest names; do not use it, or delete the [[oci]] entry from atoll.lock to lock again",
            l.sha256,
            l.digest
        );
    }
    let digest = Digest::from_hex(written, &hex)?;
    home.put_blob(&digest, &pulled.bytes)?;
    Ok(LockedOci {
        reference: written.to_string(),
        digest: pulled.digest,
        sha256: hex,
    })
}

/// Make every `source = "oci://…"` component of `app` usable offline: pinned in
/// atoll.lock (pulled and locked on first use, like a new dependency) and its locked
/// bytes in the blob cache. What is already pinned and cached costs no network.
pub fn ensure_sources(app: &atoll_manifest::App, oci: &OciArgs) -> anyhow::Result<()> {
    // Component sources and dependencies alike.
    let mut references: Vec<&str> = app.components.values().filter_map(|c| c.oci()).collect();
    for c in app.components.values() {
        for d in &c.dependencies {
            if let atoll_manifest::DependencySource::Oci(r) = &d.source {
                references.push(r);
            }
        }
    }
    references.sort_unstable();
    references.dedup();
    if references.is_empty() {
        return Ok(());
    }
    let home = atoll_home();
    let lock_path = app.dir.join(LOCKFILE);
    let mut lock = Lockfile::load_or_default(&lock_path)?;
    let client = oci.client();
    let rt = runtime()?;
    let mut changed = false;
    for written in references {
        let locked = lock.get_oci(written).cloned();
        if let Some(l) = &locked {
            let digest = l.component_digest()?;
            if home.verified_blob(written, &digest)?.is_some() {
                continue;
            }
        }
        let entry = rt
            .block_on(fetch_into_cache(&client, &home, written, locked.as_ref()))
            .with_context(|| format!("app `{}` needs {written}", app.name))?;
        if locked.is_none() {
            tracing::info!(app = %app.name, "locked {written} at {}", entry.digest);
            lock.upsert_oci(entry);
            changed = true;
        }
    }
    if changed {
        lock.save(&lock_path)?;
    }
    Ok(())
}

/// Everything `atoll pull` (no reference) fetches for the `[[oci]]` pins of a lockfile.
pub fn pull_locked(lock: &Lockfile, oci: &OciArgs) -> anyhow::Result<()> {
    let home = atoll_home();
    let client = oci.client();
    let rt = runtime()?;
    for l in &lock.oci {
        let cached = home
            .verified_blob(&l.reference, &l.component_digest()?)?
            .is_some();
        if cached {
            println!("cached {} ({})", l.reference, l.digest);
            continue;
        }
        rt.block_on(fetch_into_cache(&client, &home, &l.reference, Some(l)))?;
        println!("downloaded {} ({})", l.reference, l.digest);
    }
    Ok(())
}

/// `atoll up oci://…`: pull the component and write a one-component app for it under the
/// cache (route `/...`, default limits, no grants); returns its manifest's path.
pub fn bare_app(written: &str, oci: &OciArgs) -> anyhow::Result<PathBuf> {
    let reference = OciRef::parse(written).map_err(user_error)?;
    let home = atoll_home();
    let pulled = runtime()?
        .block_on(oci.client().pull(&reference))
        .map_err(user_error)?;
    let hex = pulled
        .layer_digest
        .strip_prefix("sha256:")
        .unwrap_or(&pulled.layer_digest)
        .to_string();
    let blob = home.put_blob(&Digest::from_hex(written, &hex)?, &pulled.bytes)?;
    // A name the manifest accepts: the repository's last segment, lowercased, with
    // anything else turned into `-`.
    let mut name: String = reference
        .name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("app-{name}");
    }
    name.truncate(64);
    let dir = home.cache_dir().join("oci-apps").join(&hex);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let manifest = format!(
        "# Written by `atoll up {written}`: the component pulled from the registry, served as it is.\n\
         [app]\nname = \"{name}\"\n\n\
         [component.{name}]\nsource = {source}\n\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"{name}\"\n",
        // A JSON string is a valid TOML basic string (the same escapes).
        source = serde_json::Value::String(blob.display().to_string()),
    );
    let path = dir.join(atoll_manifest::MANIFEST_FILE);
    std::fs::write(&path, manifest).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(
        "pulled {reference} ({}) into {}",
        pulled.digest,
        blob.display()
    );
    Ok(path)
}
