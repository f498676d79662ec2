//! The example plugin host end to end: its two plugins built from source (Rust with
//! cargo, Python with componentize-py), records through the real binary, a plugin's
//! error dropping only its record, and a plugin that never returns stopped at its
//! deadline while the host carries on.
//!
//! componentize-py comes from `.venv/bin` in the repository (`.ci/run` installs it) or
//! `$COMPONENTIZE_PY`; without it the Python half says so and is skipped, except in CI
//! (`CI=true`), where a missing tool is a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Build the Rust plugin; its path.
fn build_redact() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("redact");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--manifest-path",
    ])
    .arg(here().join("plugins/redact/Cargo.toml"))
    .env("CARGO_TARGET_DIR", &target);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo");
    assert!(status.success(), "building the redact plugin failed");
    target.join("wasm32-wasip2/release/redact.wasm")
}

fn componentize_py() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COMPONENTIZE_PY") {
        return Some(PathBuf::from(p));
    }
    let venv = here().join("../../.venv/bin/componentize-py");
    venv.exists().then_some(venv)
}

/// Build the Python plugin; its path, or `None` when componentize-py is not installed.
fn build_tag() -> Option<PathBuf> {
    let Some(tool) = componentize_py() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "componentize-py is missing in CI; .ci/run installs it into .venv"
        );
        eprintln!(
            "SKIPPED the Python plugin: componentize-py not installed (pip install componentize-py==0.25.1)"
        );
        return None;
    };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tag.wasm");
    let status = Command::new(tool)
        .arg("-d")
        .arg(here().join("wit"))
        .args([
            "-w",
            "acme:transform/transform",
            "componentize",
            "app",
            "-o",
        ])
        .arg(&out)
        .current_dir(here().join("plugins/tag"))
        .status()
        .expect("run componentize-py");
    assert!(status.success(), "componentize-py failed");
    Some(out)
}

/// Run the host with `config` on `input`: (stdout, stderr).
fn run(config: &str, input: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plugins.toml");
    std::fs::write(&path, config).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_plugin-host"))
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start plugin-host");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "plugin-host failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

const INPUT: &str = r#"{"id":1,"name":"Ada","email":"ada@example.com"}
{"name":"no id here"}
{"id":2,"name":"Bob","phone":"555-0100","items":["a","b"]}
{"id":3,"loop":true}
{"id":4}
"#;

#[test]
fn records_go_through_rust_and_python_plugins_under_their_policies() {
    let redact = build_redact();
    let redact_entry = format!(
        "[[plugin]]\nname = \"redact\"\nsource = {:?}\nlimits = {{ memory = \"32MiB\", deadline = \"1s\" }}\npolicy = {{ env = {{ FIELDS = \"email,phone\" }} }}\n",
        redact.display().to_string()
    );

    // The Rust plugin alone.
    let (out, err) = run(&redact_entry, INPUT);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}\n{err}");
    assert!(
        lines[0].contains(r#""email":"[redacted]""#) && lines[0].contains(r#""name":"Ada""#),
        "{out}"
    );
    assert!(lines[1].contains(r#""phone":"[redacted]""#), "{out}");
    assert!(
        err.contains("record 2: dropped by redact: no \"id\" field"),
        "{err}"
    );
    assert!(err.contains("[redact] redacted email"), "{err}");

    let Some(tag) = build_tag() else { return };
    let config = format!(
        "{redact_entry}\n[[plugin]]\nname = \"tag\"\nsource = {:?}\nlimits = {{ memory = \"256MiB\", deadline = \"2s\" }}\npolicy = {{ env = {{ TAG = \"checked\" }} }}\n",
        tag.display().to_string()
    );
    let (out, err) = run(&config, INPUT);
    let lines: Vec<&str> = out.lines().collect();
    // Ada, Bob split into two, and id 4; id 3 loops in Python and is stopped.
    assert_eq!(lines.len(), 4, "{out}\n{err}");
    assert!(
        lines.iter().all(|l| l.contains(r#""tag":"checked""#)),
        "{out}"
    );
    assert!(
        lines[1].contains(r#""item":"a""#) && lines[2].contains(r#""item":"b""#),
        "{out}"
    );
    assert!(lines[1].contains("[redacted]"), "{out}");
    assert!(lines[3].contains(r#""id":4"#), "{out}");
    assert!(
        err.contains("record 4: dropped by tag: the call ran past its deadline of 2s"),
        "{err}"
    );
    assert!(err.contains("[tag] split into 2"), "{err}");
}

#[test]
fn a_bad_config_is_a_clear_error() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plugin-host"))
        .args(["--config", "/no/such/plugins.toml"])
        .output()
        .expect("run");
    assert!(!child.status.success());
    let err = String::from_utf8_lossy(&child.stderr);
    assert!(err.contains("cannot read /no/such/plugins.toml"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plugins.toml");
    std::fs::write(
        &path,
        "[[plugin]]\nname = \"x\"\nsource = \"x.wasm\"\npolicy = { enviroment = {} }\n",
    )
    .expect("write");
    child = Command::new(env!("CARGO_BIN_EXE_plugin-host"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run");
    assert!(!child.status.success());
    let err = String::from_utf8_lossy(&child.stderr);
    assert!(
        err.contains("plugins.toml") && err.contains("enviroment"),
        "{err}"
    );
}
