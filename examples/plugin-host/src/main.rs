//! `plugin-host`: an example of a program that lets its users extend it, on the `atoll`
//! crate. It reads JSON records, one per line, on stdin, runs each through the plugins
//! its config lists (in order; a plugin returns zero or more records for each one, or an
//! error that drops it) and writes what comes out on stdout, like Redpanda's data
//! transforms. Plugins are components of the world in `wit/transform.wit`, in any
//! language (here Rust and Python); each runs sandboxed under the policy and limits its
//! config entry gives, in a fresh instance per record, so one plugin's bug or hostile
//! input costs that record, never the host.
//!
//! ```text
//! plugin-host [--config plugins.toml] < records.jsonl > out.jsonl
//! ```
//!
//! Not a stream processor: no batching, no offsets, no parallelism; it shows the
//! embedding, not a product.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use atoll::wasmtime::component::HasSelf;

mod bindings {
    #![allow(missing_docs)]
    atoll::bindgen!({ path: "wit", world: "acme:transform/transform" });
}

/// The config file: the plugins, in the order records go through them.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    plugin: Vec<PluginEntry>,
}

/// One plugin: its component, what it may reach, what it may use.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginEntry {
    name: String,
    source: PathBuf,
    #[serde(default)]
    policy: atoll::Policy,
    #[serde(default)]
    limits: atoll::Limits,
}

/// The host functions' state: which plugin is calling, for its log lines.
#[derive(Default)]
struct HostState {
    plugin: String,
}

impl bindings::acme::transform::host::Host for HostState {
    fn log(&mut self, message: String) {
        eprintln!("[{}] {}", self.plugin, message.escape_debug());
    }
}

struct Loaded {
    name: String,
    plugin: atoll::Plugin,
    indices: bindings::TransformIndices,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut config_path = PathBuf::from("plugins.toml");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config_path = args.next().ok_or("--config needs a file")?.into(),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: plugin-host [--config FILE] < in.jsonl"
                ));
            }
        }
    }
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("cannot read {}: {e}", config_path.display()))?;
    let config: Config =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let base = config_path.parent().unwrap_or(Path::new("."));

    let runtime = atoll::Runtime::builder()
        .link(|linker| {
            bindings::acme::transform::host::add_to_linker::<_, HasSelf<HostState>>(linker, |c| {
                c.user::<HostState>()
            })
        })
        .build()
        .map_err(|e| e.to_string())?;
    let mut plugins = Vec::new();
    for entry in config.plugin {
        let path = base.join(&entry.source);
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("plugin {}: cannot read {}: {e}", entry.name, path.display()))?;
        let name = entry.name.clone();
        let plugin = runtime
            .plugin(bytes)
            .name(&entry.name)
            .policy(entry.policy)
            .limits(entry.limits)
            .state(move || HostState {
                plugin: name.clone(),
            })
            .load_blocking()
            .map_err(|e| format!("plugin {}: {e}", entry.name))?;
        let indices = bindings::TransformIndices::new(plugin.instance_pre())
            .map_err(|e| format!("plugin {} is not a transform: {e}", entry.name))?;
        plugins.push(Loaded {
            name: entry.name,
            plugin,
            indices,
        });
    }

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut records = vec![line];
        for p in &plugins {
            let mut next = Vec::new();
            for record in records {
                match transform(p, record) {
                    Ok(more) => next.extend(more),
                    Err(why) => eprintln!("record {}: dropped by {}: {why}", n + 1, p.name),
                }
            }
            records = next;
        }
        for r in records {
            writeln!(out, "{r}").map_err(|e| format!("cannot write stdout: {e}"))?;
        }
    }
    Ok(())
}

/// One record through one plugin, in a fresh instance.
fn transform(p: &Loaded, record: String) -> Result<Vec<String>, String> {
    let result = p.plugin.with_instance_blocking(async |store, instance| {
        let t = p.indices.load(&mut *store, instance)?;
        t.acme_transform_transformer()
            .call_transform(store, &record)
            .await
    });
    match result {
        Ok(Ok(records)) => Ok(records),
        Ok(Err(plugin_says)) => Err(plugin_says),
        Err(e) => Err(e.to_string()),
    }
}
