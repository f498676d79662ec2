//! `atoll new`: every template, untouched, builds with `atoll build` and serves (HTTP:
//! `GET /` answers its greeting with 200) or runs (cron: its line in the log; plugin: a
//! record through the example plugin host). The guest toolchains are the real ones:
//! cargo with wasm32-wasip2, componentize-py from the repository's `.venv` (which
//! `.ci/run` installs), componentize-js from npm. Also `atoll build`'s manners: only
//! stale components rebuild, per-component timing, the whole output of a failed build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::*;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `PATH` with the repository's `.venv/bin` first (componentize-py), as a user who
/// activated the venv has it.
fn tool_path() -> String {
    let venv = Path::new(REPO).join(".venv/bin");
    let old = std::env::var("PATH").unwrap_or_default();
    format!("{}:{old}", venv.display())
}

fn atoll(args: &[&str], dir: &Path) -> Output {
    atoll_command()
        .args(args)
        .current_dir(dir)
        .env("PATH", tool_path())
        .env("ATOLL_HOME", shared_home())
        .env_remove("ATOLL_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run atoll")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `atoll new TEMPLATE NAME` in a fresh directory; returns it and the app's path.
fn new_app(template: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = atoll(&["new", template, name], tmp.path());
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "atoll new {template}: {stdout}{stderr}"
    );
    assert!(stderr.contains(&format!("created `{name}`")), "{stderr}");
    let dir = tmp.path().join(name);
    for f in ["atoll.toml", "README.md"] {
        assert!(dir.join(f).is_file(), "{template}: no {f}");
    }
    (tmp, dir)
}

/// `atoll build` in `dir`, which must build component `name` and report its time.
fn build(dir: &Path, name: &str) {
    let out = atoll(&["build"], dir);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "atoll build failed:\n{stdout}{stderr}"
    );
    let row = stderr
        .lines()
        .find(|l| l.trim_start().starts_with(name) && l.contains("built ("))
        .unwrap_or_else(|| panic!("no timing row for {name}:\n{stderr}"));
    let secs: f64 = row
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.strip_suffix('s'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no time in `{row}`"));
    assert!(secs > 0.0, "{row}");
}

/// Serve the app in `dir` and check that `GET /` answers the template's greeting.
async fn serves_greeting(dir: &Path, name: &str) {
    let server = Running::start_command(
        Vec::new(),
        &[dir.to_path_buf()],
        &shared_home(),
        &[],
        &[("PATH", &tool_path())],
    );
    let c = client();
    let r = get(&c, &server.url("/")).await;
    assert_eq!(r.status, 200, "{}", server.logs());
    assert_eq!(r.text(), format!("Hello from {name}!\n"));
    let r = get(&c, &server.url("/nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "not found\n");
}

#[test]
fn new_lists_the_templates_and_refuses_bad_input_without_writing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = atoll(&["new", "--list"], tmp.path());
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for t in [
        "http-rust",
        "http-python",
        "http-js",
        "cron-rust",
        "plugin-rust",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(t) && l.len() > t.len() + 5),
            "{t} missing or without a description:\n{stdout}"
        );
    }
    let out = atoll(&["new", "--list", "--json"], tmp.path());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert_eq!(list.as_array().map(Vec::len), Some(5), "{list}");

    // An unknown template: a suggestion, the list, nothing written.
    let out = atoll(&["new", "http-rsut", "x"], tmp.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("did you mean `http-rust`?"), "{stderr}");
    // A bad name: what is allowed.
    let out = atoll(&["new", "http-rust", "Bad Name"], tmp.path());
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("lowercase letters"), "{stderr}");
    // A name cargo reserves, for a Rust template.
    let out = atoll(&["new", "http-rust", "deps"], tmp.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cargo reserves it"), "{stderr}");
    // A directory with something in it is left alone.
    std::fs::create_dir(tmp.path().join("taken")).expect("mkdir");
    std::fs::write(tmp.path().join("taken/mine.txt"), "keep").expect("write");
    let out = atoll(&["new", "http-rust", "taken"], tmp.path());
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("not empty"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("taken"))
        .expect("read")
        .collect();
    assert_eq!(left.len(), 1);
    let entries: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rust_builds_serves_and_rebuilds_only_when_stale() {
    let (_tmp, dir) = new_app("http-rust", "webby");
    build(&dir, "webby");
    // Up to date: nothing runs.
    let out = atoll(&["build"], &dir);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("webby") && l.contains("up to date")),
        "{stderr}"
    );
    assert!(!stderr.contains("built ("), "{stderr}");
    // A changed watched file makes it stale again; --force rebuilds regardless.
    std::thread::sleep(Duration::from_millis(20));
    let main_rs = dir.join("src/main.rs");
    let src = std::fs::read_to_string(&main_rs).expect("main.rs");
    std::fs::write(&main_rs, src.replace("Hello from", "Hello again from")).expect("edit");
    let out = atoll(&["build"], &dir);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("main.rs changed"), "{stderr}");
    let out = atoll(&["build", "--force"], &dir);
    let (_, stderr) = text(&out);
    assert!(stderr.contains("built (--force)"), "{stderr}");
    std::fs::write(&main_rs, src).expect("restore");
    // `atoll up` rebuilds the stale component, then serves it.
    serves_greeting(&dir, "webby").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_python_builds_and_serves() {
    let (_tmp, dir) = new_app("http-python", "pyweb");
    build(&dir, "pyweb");
    serves_greeting(&dir, "pyweb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_js_builds_and_serves() {
    let (_tmp, dir) = new_app("http-js", "jsweb");
    build(&dir, "jsweb");
    serves_greeting(&dir, "jsweb").await;
}

#[test]
fn cron_rust_builds_and_runs_on_its_schedule() {
    let (_tmp, dir) = new_app("cron-rust", "ticker");
    build(&dir, "ticker");
    let server = Running::start_command(
        Vec::new(),
        std::slice::from_ref(&dir),
        &shared_home(),
        &[],
        &[],
    );
    // Every 5 seconds: two runs within 15 s, each its own line.
    assert!(
        server.wait_until(Duration::from_secs(15), |l| l
            .matches("ticker ran at ")
            .count()
            >= 2),
        "fewer than 2 runs in 15 s:\n{}",
        server.logs()
    );
}

#[test]
fn plugin_rust_builds_and_runs_in_the_example_host() {
    let (_tmp, dir) = new_app("plugin-rust", "tagger");
    build(&dir, "tagger");
    // The example host, built beside `atoll` by `cargo test --workspace`.
    let host = Path::new(BIN).with_file_name("plugin-host");
    assert!(
        host.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p plugin-host` first)",
        host.display()
    );
    let mut child = Command::new(&host)
        .arg("--config")
        .arg(dir.join("plugins.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run plugin-host");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"{\"id\":1}\n[1,2]\n{\"id\":2,\"x\":\"y\"}\n")
            .expect("records");
    }
    let out = child.wait_with_output().expect("plugin-host output");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout, "{\"id\":1,\"plugin\":\"tagger\"}\n{\"id\":2,\"plugin\":\"tagger\",\"x\":\"y\"}\n",
        "{stderr}"
    );
    assert!(
        stderr.contains("record 2: dropped by tagger: not a JSON object"),
        "{stderr}"
    );
    // A plugin has nothing to serve: `atoll up` says so, pointing at the manifest.
    let out = atoll(&["up", "--listen", "127.0.0.1:0"], &dir);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the app has no triggers") && stderr.contains("atoll.toml:"),
        "{stderr}"
    );
}

#[test]
fn a_failed_build_shows_all_its_output_and_verbose_streams_it() {
    let app = TestApp::new(
        r#"
[app]
name = "broken"
[component.web]
source = "out.wasm"
build = { command = "echo first-line; for i in $(seq 1 60); do echo filler $i; done; echo to-stderr >&2; exit 3" }
[[trigger.http]]
route = "/..."
component = "web"
"#,
    );
    let out = atoll(&["build"], app.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The whole output, in order, with the exit status.
    let first = stderr.find("first-line").expect("first line shown");
    let last = stderr.find("to-stderr").expect("stderr shown");
    assert!(first < last, "{stderr}");
    assert!(stderr.contains("filler 30"), "{stderr}");
    assert!(stderr.contains("exit status: 3"), "{stderr}");
    // -v streams each line as it comes, prefixed with the component.
    let out = atoll(&["build", "-v"], app.path());
    let (_, stderr) = text(&out);
    assert!(stderr.contains("web | first-line"), "{stderr}");
    assert!(stderr.contains("web | to-stderr"), "{stderr}");
    // -q: nothing but the error.
    let out = atoll(&["build", "-q"], app.path());
    let (_, stderr) = text(&out);
    assert!(!stderr.contains("INFO"), "{stderr}");
    assert!(stderr.contains("failed"), "{stderr}");
}
