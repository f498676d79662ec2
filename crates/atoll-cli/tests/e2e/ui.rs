//! Golden-file tests of what `atoll up` prints for a bad app. Each `tests/ui/*.toml` is
//! a manifest run in a directory that also holds every test program (`hello.wasm`, ...)
//! and every file of `tests/fixtures`; the `.err` beside it is the expected output from `error:` on, with the
//! app directory shown as `$DIR`. `BLESS=1` rewrites the `.err` files.
//! Pure manifest errors have their own fixtures in `atoll-manifest/tests/ui`.

use std::path::Path;
use std::process::Command;

use crate::common::*;

fn run_fixture(manifest: &str) -> (bool, String) {
    let app = TestApp::new(manifest);
    // Fixtures name files relative to the app, so messages (and their underlines) are the
    // same on every machine: copy the test programs and fixture files in.
    for (name, path) in test_programs_artifacts::ALL {
        std::fs::copy(path, app.path().join(format!("{name}.wasm"))).expect("copy program");
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for entry in std::fs::read_dir(&fixtures).expect("fixtures") {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, app.path().join(p.file_name().expect("name"))).expect("copy fixture");
    }
    let out = Command::new(BIN)
        .arg("up")
        .arg(app.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("ATOLL_HOME", shared_home())
        .env("ATOLL_LOG", "warn")
        .output()
        .expect("run atoll");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let from_error = stderr
        .find("error")
        .map(|i| &stderr[i..])
        .unwrap_or(&stderr);
    let dir = app.path().display().to_string();
    (out.status.success(), from_error.replace(&dir, "$DIR"))
}

#[test]
fn component_errors_match_their_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let bless = std::env::var_os("BLESS").is_some();
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/ui")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 6);
    let mut failures = Vec::new();
    for path in fixtures {
        let manifest = std::fs::read_to_string(&path).expect("fixture");
        let (ok, actual) = run_fixture(&manifest);
        assert!(!ok, "{} should fail", path.display());
        let err_path = path.with_extension("err");
        if bless {
            std::fs::write(&err_path, &actual).expect("bless");
            continue;
        }
        let expected = std::fs::read_to_string(&err_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "BLESS=1 to update:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_directory_without_a_manifest_says_what_to_do() {
    let dir = tempfile::tempdir().expect("temp");
    let out = Command::new(BIN)
        .arg("up")
        .arg(dir.path())
        .env("ATOLL_HOME", shared_home())
        .output()
        .expect("run atoll");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read manifest"), "{stderr}");
    assert!(stderr.contains("atoll.toml"), "{stderr}");
    assert!(stderr.contains("-f"), "{stderr}");
}

#[test]
fn a_failing_build_command_shows_its_output() {
    let (ok, out) = run_fixture(
        r#"
[app]
name = "broken"

[component.web]
source = "out/web.wasm"
build = { command = "echo compiling web; echo 'error: expected one of 7 tokens' >&2; exit 3" }

[[trigger.http]]
route = "/..."
component = "web"
"#,
    );
    assert!(!ok);
    assert!(out.contains("the build of component `web` failed"), "{out}");
    assert!(out.contains("error: expected one of 7 tokens"), "{out}");
}
