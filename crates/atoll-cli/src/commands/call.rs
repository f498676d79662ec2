//! `atoll call COMPONENT FUNCTION [ARG...]`: call any exported function of any
//! component once, arguments and result in WAVE, with nothing granted unless a flag or a
//! policy file grants it. A shell over the `atoll` library's dynamic calls.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

/// Call an exported function of a component; arguments and result in WAVE.
#[derive(Args)]
#[command(after_help = "\
Arguments are WAVE values, one per parameter: \"text\", 5, -3, 'c', true, [1, 2],
{x: 3, y: -4}, some(\"hi\"), none, ok(1), err(\"no\"), circle(2), {read, write}.
Quote them for your shell.

Examples:
  atoll call vowels.wasm count-vowels '\"hello\"'
  atoll call plugin.wasm --list
  atoll call --allow-outbound https://example.com fetch.wasm get '\"https://example.com/\"'
(flags go before the component: everything after the function is a WAVE argument)

Nothing is granted by default: no files, no network, no environment variables.")]
pub struct CallCommand {
    /// The component (.wasm).
    component: PathBuf,
    /// The function: its plain name when only one export has it, else
    /// `pkg:name/iface@version#function`.
    #[arg(required_unless_present = "list")]
    function: Option<String>,
    /// One WAVE value per parameter.
    #[arg(allow_hyphen_values = true)]
    args: Vec<String>,
    /// List the exported functions with their signatures, and exit.
    #[arg(long)]
    list: bool,
    /// Print JSON: `{"function", "result"}` (the result in WAVE), or with --list a list
    /// of signatures.
    #[arg(long)]
    json: bool,
    /// Give the guest an environment variable (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Let the guest read a host directory at a guest path, read-only (repeatable).
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Allow outbound HTTP to `scheme://host[:port]` (repeatable; `*` wildcards as in
    /// allowed_outbound_hosts).
    #[arg(long = "allow-outbound", value_name = "URL")]
    outbound: Vec<String>,
    /// Memory limit of the instance, e.g. `64MiB`.
    #[arg(long, value_name = "SIZE", default_value = "128MiB")]
    memory: String,
    /// Wall-clock limit of the call, host calls included, e.g. `500ms`, `30s`.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    timeout: String,
    /// Stop the call after about this many wasm instructions.
    #[arg(long, value_name = "UNITS")]
    fuel: Option<u64>,
    /// A policy file (TOML or JSON: allowed_outbound_hosts, env, variables, secrets, dirs,
    /// key_value_stores); the flags above add to it.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

impl CallCommand {
    /// Run it.
    pub fn execute(self) -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        rt.block_on(self.run())
    }

    async fn run(self) -> Result<()> {
        let policy = self.policy()?;
        let limits = self.limits()?;
        let runtime = atoll::Runtime::builder()
            .max_instances(4)
            .fuel(self.fuel.is_some())
            .build()?;
        if !self.component.exists() {
            return Err(super::ComponentError(format!(
                "cannot read {}: no such file; give the path of a component (.wasm)",
                self.component.display()
            ))
            .into());
        }
        let plugin = runtime
            .load_file(&self.component, &policy, &limits)
            .await
            .with_context(|| format!("cannot load {}", self.component.display()))?;
        if self.list {
            if self.json {
                let list: Vec<String> = plugin.functions().iter().map(|f| f.to_string()).collect();
                super::print_json(&list)?;
            } else {
                for f in plugin.functions() {
                    println!("{f}");
                }
            }
            return Ok(());
        }
        let Some(function) = &self.function else {
            bail!("name the function to call, or pass --list to see them");
        };
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let out = match plugin.call_wave(function, &args).await {
            Ok(out) => out,
            Err(e) => {
                let flag = match &e {
                    atoll::Error::Deadline { .. } => " (raise it with --timeout)",
                    atoll::Error::Memory { .. } => " (raise it with --memory)",
                    atoll::Error::Fuel { .. } => " (raise it with --fuel)",
                    atoll::Error::Denied { .. } => {
                        " (grant it with --allow-outbound, --dir, --env or --policy)"
                    }
                    _ => "",
                };
                return Err(anyhow::Error::new(e).context(format!("{function} failed{flag}")));
            }
        };
        if self.json {
            super::print_json(&serde_json::json!({
                "function": function,
                "result": if out.is_empty() { None } else { Some(&out) },
            }))?;
        } else if !out.is_empty() {
            println!("{out}");
        }
        Ok(())
    }

    fn policy(&self) -> Result<atoll::Policy> {
        let mut policy = match &self.policy {
            Some(p) => atoll::Policy::from_file(p)?,
            None => atoll::Policy::deny_all(),
        };
        for kv in &self.env {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--env {kv:?}: write it as KEY=VALUE");
            };
            policy = policy.env(k, v);
        }
        for d in &self.dirs {
            let Some((host, guest)) = d.split_once("::") else {
                bail!("--dir {d:?}: write it as HOST::GUEST, e.g. ./data::/data");
            };
            policy = policy.dir(host, guest);
        }
        for url in &self.outbound {
            policy = policy.allow_outbound(url);
        }
        Ok(policy)
    }

    fn limits(&self) -> Result<atoll::Limits> {
        let memory = atoll_manifest::parse_size(&self.memory)
            .map_err(|e| anyhow::anyhow!("--memory {:?}: {e}", self.memory))?;
        let deadline: Duration = atoll_manifest::parse_duration(&self.timeout)
            .map_err(|e| anyhow::anyhow!("--timeout {:?}: {e}", self.timeout))?;
        Ok(atoll::Limits::default()
            .memory(memory)
            .deadline(deadline)
            .fuel(self.fuel)
            .max_instances(1))
    }
}
