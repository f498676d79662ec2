//! Guests from other languages run unchanged. Python (componentize-py) imports wasi:cli,
//! wasi:filesystem and more besides wasi:http; atoll links them all, empty.
//!
//! componentize-py comes from `.venv/bin` in the repository (`.ci/run` installs it), from
//! `$COMPONENTIZE_PY`, or from `PATH`. Without it the test fails, saying how to install
//! it, unless `ATOLL_SKIP_PYTHON=1` asks to skip it (never in CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn componentize_py() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COMPONENTIZE_PY") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/componentize-py");
    if venv.exists() {
        return Some(venv);
    }
    Command::new("componentize-py")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("componentize-py"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_component_runs_unchanged() {
    let Some(tool) = componentize_py() else {
        let skip = std::env::var("ATOLL_SKIP_PYTHON").as_deref() == Ok("1")
            && std::env::var("CI").as_deref() != Ok("true");
        assert!(
            skip,
            "componentize-py is missing: `bash .ci/run` installs it, or run \
             `python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1`; \
             ATOLL_SKIP_PYTHON=1 skips this test (not in CI)"
        );
        eprintln!("SKIPPED (ATOLL_SKIP_PYTHON=1): the Python guest test");
        return;
    };
    let programs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-programs");
    let wit = programs.join("python/wit");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python");
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let wasm = out_dir.join("app.wasm");
    let status = Command::new(&tool)
        .arg("-d")
        .arg(&wit)
        .args(["-w", "wasi:http/proxy@0.2.12", "componentize", "app", "-o"])
        .arg(&wasm)
        .current_dir(programs.join("python"))
        .status()
        .expect("run componentize-py");
    assert!(status.success(), "componentize-py failed");

    let server = Running::start(TestApp::new(&format!(
        "[app]\nname = \"py\"\n[component.py]\nsource = {:?}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"py\"\n",
        wasm.display().to_string()
    )));
    let c = client();
    for path in ["/", "/a/b?c=d"] {
        let r = get(&c, &server.url(path)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("Hello from Python! {path}\n"));
    }
}
