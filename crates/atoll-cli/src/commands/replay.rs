//! `atoll replay FILE`: run a request recorded by `atoll up --record` against the
//! current build of its component, with every host call answered from the recording,
//! offline, and show the response and how it differs from the recorded one.
//!
//! The app is loaded as `atoll up` loads it (the manifest the recording names, or `-f`),
//! except that every key-value store is an empty in-memory one (the recording answers
//! every key-value call; no backend is contacted) and a required variable without a
//! value gets a placeholder (config reads come from the recording too). The request goes
//! through the real HTTP trigger, on a listener on 127.0.0.1 that lives for this one
//! request, so routing, limits and the response path are those of `atoll up`.
//!
//! Exit code: 0 when the replayed response is the recorded one and the guest made
//! exactly the recorded host calls; 1 otherwise (the differences are printed).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use atoll_capabilities::record::{Body, Message, Recording, ReplayReport, Tape};
use atoll_capabilities::{RuntimeConfig, StoreConfig};
use atoll_engine::Engine;
use atoll_runtime::{LiveApps, Loader};
use clap::Args;
use http_body_util::BodyExt;

/// Replay a recorded request against the current build of its component, offline.
#[derive(Args)]
pub struct ReplayCommand {
    /// A recording written by `atoll up --record DIR`.
    file: PathBuf,
    /// The app's manifest [default: the one the recording names].
    #[arg(short = 'f', long = "file", value_name = "MANIFEST")]
    manifest: Option<PathBuf>,
    /// A runtime config for variable values (key-value stores are never opened).
    #[arg(long, value_name = "FILE")]
    runtime_config: Option<PathBuf>,
    /// Directory for compiled components [default: as for atoll up].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Print the result as JSON (recorded and replayed responses, the report).
    #[arg(long)]
    json: bool,
}

/// What a replay found, for `--json`.
#[derive(serde::Serialize)]
struct Outcome {
    identical: bool,
    app: String,
    component: String,
    recorded: Option<Message>,
    replayed: Message,
    report: ReplayReport,
}

/// Headers the server sets itself, left out of the comparison.
const SERVER_HEADERS: [&str; 4] = ["date", "content-length", "transfer-encoding", "connection"];

impl ReplayCommand {
    pub fn execute(self) -> anyhow::Result<()> {
        let bytes = std::fs::read(&self.file)
            .with_context(|| format!("cannot read the recording {}", self.file.display()))?;
        let recording = Recording::from_json(&bytes)
            .map_err(|e| super::UsageError(format!("{}: {e}", self.file.display())))?;
        let manifest = match (&self.manifest, &recording.manifest) {
            (Some(m), _) | (None, Some(m)) => m.clone(),
            (None, None) => {
                return Err(super::UsageError(format!(
                    "{} does not name its app's manifest; give it with -f",
                    self.file.display()
                ))
                .into());
            }
        };
        let app = atoll_manifest::load(&manifest)?;
        if !app.components.contains_key(&recording.component) {
            anyhow::bail!(
                "the app in {} has no component `{}`, which served the recorded request; give the manifest that has it with -f",
                manifest.display(),
                recording.component
            );
        }
        super::build::build_stale(&app)?;

        let mut runtime_config = match &self.runtime_config {
            Some(p) => RuntimeConfig::load(p)?,
            None => RuntimeConfig::default(),
        };
        let env_variables: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(atoll_capabilities::ENV_PREFIX))
            .collect();
        for c in app.components.values() {
            for label in &c.grants.key_value_stores {
                runtime_config
                    .key_value_stores
                    .insert(label.clone(), StoreConfig::Memory {});
            }
        }
        for v in &app.variables {
            let set = runtime_config.variables.contains_key(&v.name)
                || env_variables.contains_key(&atoll_capabilities::env_name(&v.name));
            if v.required && !set {
                runtime_config
                    .variables
                    .insert(v.name.clone(), "[not read in a replay]".into());
            }
        }
        let tape = Tape::replaying(&recording)
            .map_err(|e| super::UsageError(format!("{}: {e}", self.file.display())))?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let cache_dir = self.cache_dir.clone().or_else(super::up::default_cache_dir);
        let mut secrets: Option<Vec<String>> = None;
        let component_name = recording.component.clone();
        let replayed = runtime.block_on(async {
            let engine = Arc::new(Engine::new(super::up::engine_config(
                &runtime_config,
                cache_dir,
            ))?);
            let loader = Loader::new(engine, runtime_config, env_variables);
            let loaded = Arc::new(loader.load(app).await?);
            secrets = loaded
                .component(&component_name)
                .map(|c| c.loaded().capabilities().secrets().to_vec());
            let live = LiveApps::new(vec![loaded]);
            super::up::check_triggers(&live.snapshot())?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .context("cannot listen on 127.0.0.1 for the replay")?;
            let addr = listener.local_addr()?;
            let config = atoll_http::HttpConfig {
                workers: 1,
                pin_workers: false,
                shutdown_grace: std::time::Duration::from_secs(1),
                taping: Some(atoll_http::Taping::Replay(tape.clone())),
                ..atoll_http::HttpConfig::default()
            };
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(atoll_http::serve(listener, live, config, async {
                let _ = stop_rx.await;
            }));
            let replayed = send(addr, &recording.request).await;
            let _ = stop_tx.send(());
            let _ = server.await;
            replayed
        });
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        // As the recording holds it (a `set-cookie` redacted there is redacted here too),
        // so the comparison is like for like. The secrets are the component's own.
        let secrets = secrets.unwrap_or_default();
        let replayed = replayed?.redacted(&secrets);

        let report = tape.report();
        let same_response = recording
            .response
            .as_ref()
            .is_some_and(|r| comparable(r) == comparable(&replayed));
        let outcome = Outcome {
            identical: same_response && report.is_clean(),
            app: recording.app.clone(),
            component: recording.component.clone(),
            recorded: recording.response.clone(),
            replayed,
            report,
        };
        if self.json {
            super::print_json(&outcome)?;
        } else {
            print_human(&recording, &outcome);
        }
        if outcome.identical {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "the replay differs from the recording (see above)"
            ))
        }
    }
}

/// Status, headers (without those the server sets) and body, for comparing.
fn comparable(m: &Message) -> (Option<u16>, Vec<(String, String)>, Body) {
    let headers = m
        .headers
        .iter()
        .filter(|(k, _)| !SERVER_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    (m.status, headers, m.body.clone())
}

/// Send the recorded request to the replay server and read the whole response.
async fn send(addr: std::net::SocketAddr, request: &Message) -> anyhow::Result<Message> {
    let body = request
        .body
        .bytes()
        .map_err(|e| anyhow::anyhow!("cannot replay the request: its {e}"))?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .context("cannot reach the replay server")?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .context("cannot talk HTTP to the replay server")?;
    tokio::spawn(conn);
    let mut req = http::Request::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *req.method_mut() = request
        .method
        .as_deref()
        .unwrap_or("GET")
        .parse()
        .context("the recorded method is not a method")?;
    *req.uri_mut() = request
        .uri
        .as_deref()
        .unwrap_or("/")
        .parse()
        .context("the recorded path is not a path")?;
    let mut headers = request.header_map();
    for h in SERVER_HEADERS {
        headers.remove(h);
    }
    if !headers.contains_key(http::header::HOST) {
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    *req.headers_mut() = headers;
    let resp = sender
        .send_request(req)
        .await
        .context("the replay server did not answer")?;
    let status = resp.status().as_u16();
    let headers = Message::headers_of(resp.headers());
    let body = resp
        .into_body()
        .collect()
        .await
        .context("the replayed response's body was cut off")?
        .to_bytes();
    Ok(Message {
        status: Some(status),
        headers,
        body: Body::of(&body),
        ..Message::default()
    })
}

fn text_of(body: &Body) -> String {
    match body {
        Body::Text { text } => text.clone(),
        Body::Base64 { base64 } => format!("(binary, base64) {base64}"),
        Body::Omitted { omitted_bytes } => format!("({omitted_bytes} bytes, not recorded)"),
    }
}

fn print_human(recording: &Recording, outcome: &Outcome) {
    let req = &recording.request;
    println!(
        "replayed {} {} on component `{}` of app `{}`",
        req.method.as_deref().unwrap_or("GET"),
        req.uri.as_deref().unwrap_or("/"),
        outcome.component,
        outcome.app
    );
    let replayed = &outcome.replayed;
    println!(
        "response: {}",
        replayed.status.map_or("none".into(), |s| s.to_string())
    );
    for (k, v) in &replayed.headers {
        println!("{k}: {v}");
    }
    println!();
    print!("{}", text_of(&replayed.body));
    if !text_of(&replayed.body).ends_with('\n') {
        println!();
    }
    println!();
    match &outcome.recorded {
        None => println!("the recording has no response to compare with"),
        Some(recorded) if comparable(recorded) == comparable(replayed) => {
            println!("same response as recorded");
        }
        Some(recorded) => {
            println!("differs from the recorded response (- recorded, + replayed):");
            let (rs, rh, _) = comparable(recorded);
            let (ps, ph, _) = comparable(replayed);
            if rs != ps {
                println!("-status {}", rs.map_or("none".into(), |s| s.to_string()));
                println!("+status {}", ps.map_or("none".into(), |s| s.to_string()));
            }
            for h in rh.iter().filter(|h| !ph.contains(h)) {
                println!("-{}: {}", h.0, h.1);
            }
            for h in ph.iter().filter(|h| !rh.contains(h)) {
                println!("+{}: {}", h.0, h.1);
            }
            let (old, new) = (text_of(&recorded.body), text_of(&replayed.body));
            if old != new {
                print!("{}", line_diff(&old, &new));
            }
        }
    }
    let report = &outcome.report;
    for m in &report.missing {
        println!("not in the recording (the guest got an error): {m}");
    }
    for u in &report.unused {
        println!("recorded but not made this time: {u}");
    }
    for (source, n) in &report.overruns {
        println!("{source}: read {n} more time(s) than recorded (the last value repeated)");
    }
}

/// A line diff of two texts (longest common subsequence of lines), `-`/`+`/` ` prefixed.
fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Past this size a table would be too big: show both sides whole.
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        let mut out = String::new();
        for l in &a {
            out.push_str(&format!("-{l}\n"));
        }
        for l in &b {
            out.push_str(&format!("+{l}\n"));
        }
        return out;
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::line_diff;

    #[test]
    fn the_line_diff_keeps_common_lines_and_marks_the_rest() {
        assert_eq!(line_diff("a\nb\nc\n", "a\nx\nc\n"), " a\n-b\n+x\n c\n");
        assert_eq!(line_diff("", "new\n"), "+new\n");
        assert_eq!(line_diff("same\n", "same\n"), " same\n");
    }
}
