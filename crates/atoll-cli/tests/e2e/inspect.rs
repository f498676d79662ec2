//! `atoll inspect`: the real binary on an app of real test components. What a component
//! imports and exports comes from the built `.wasm`; what it is granted from the
//! manifest and the same variable providers as `atoll up`; secrets never show.

use std::process::{Command, Output};

use crate::common::*;

const APP: &str = r#"
[app]
name = "inspected"
version = "1.2.3"

[variables]
greeting = { default = "hello" }
api_token = { required = true, secret = true }
db_password = { required = true, secret = true }

[component.config]
source = "{{CONFIG}}"
variables = { greeting = "{{ greeting }}, world", token = "Bearer {{ api_token }}", password = "{{ db_password }}" }
environment = { LOG_LEVEL = "debug" }
files = [{ source = "static", destination = "/static" }]
allowed_outbound_hosts = ["https://api.example.com", "http://127.0.0.1:*"]
limits = { memory = "64MiB", timeout = "10s", max_concurrency = 7 }

[component.kv]
source = "{{KV}}"

[[trigger.http]]
route = "/config/..."
component = "config"

[[trigger.http]]
route = "/settings"
component = "config"

[[trigger.http]]
route = "/kv"
component = "kv"
"#;

/// Set through ATOLL_VARIABLE_API_TOKEN.
const ENV_SECRET: &str = "env-s3cr3t-Kq81";
/// Set through the runtime config.
const FILE_SECRET: &str = "file-s3cr3t-Wx27";

/// An app dir with the manifest, its `static` mount, and a runtime config holding a
/// secret. The `TempDir`s are returned so they outlive the command.
fn setup(manifest: &str) -> (TestApp, tempfile::TempDir, String) {
    let app = TestApp::new(manifest);
    std::fs::create_dir_all(app.path().join("static")).expect("mkdir static");
    let runtime = tempfile::tempdir().expect("temp");
    let rc = runtime.path().join("runtime.toml");
    std::fs::write(
        &rc,
        format!("[variables]\ndb_password = \"{FILE_SECRET}\"\n\n[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://:{FILE_SECRET}@127.0.0.1:6379\"\n"),
    )
    .expect("write runtime config");
    let rc = rc.to_str().expect("utf8").to_string();
    (app, runtime, rc)
}

/// `atoll inspect` with no `ATOLL_VARIABLE_*` inherited from the developer's
/// environment: only what a test sets reaches it.
fn atoll_inspect() -> Command {
    let mut c = atoll_command();
    c.arg("inspect");
    c
}

fn inspect(app: &TestApp, args: &[&str]) -> Output {
    atoll_inspect()
        .arg(app.path())
        .args(args)
        .env("ATOLL_HOME", shared_home())
        .env("ATOLL_VARIABLE_API_TOKEN", ENV_SECRET)
        .output()
        .expect("run atoll inspect")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn sha256_of(path: &str) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A line under `grants` in the text output.
fn grant(name: &str, value: &str) -> String {
    format!("    {name:<24}{value}")
}

fn assert_no_secret(what: &str, stdout: &str, stderr: &str) {
    for secret in [ENV_SECRET, FILE_SECRET] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{what}: a secret leaked\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}

#[test]
fn text_shows_the_real_interface_and_the_grants() {
    let (app, _rc_dir, rc) = setup(APP);
    let out = inspect(&app, &["--runtime-config", &rc]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_no_secret("text", &stdout, &stderr);

    let config_wasm = test_programs_artifacts::CONFIG;
    let size = std::fs::metadata(config_wasm).expect("built").len();
    // The interface, size and digest of the built component.
    for needle in [
        "app inspected 1.2.3 (",
        "component config",
        &format!("source    {config_wasm}"),
        &format!("size      {size} bytes"),
        &format!("sha256    {}", sha256_of(config_wasm)),
        "exports   wasi:cli/run@0.2.0\n            wasi:http/incoming-handler@0.2.",
        "wasi:config/store@0.2.0-rc.1",
        "routes    /config/...",
        "          /settings",
    ] {
        assert!(stdout.contains(needle), "no `{needle}` in:\n{stdout}");
    }
    // Grants, with variables resolved (a default; secrets withheld).
    for needle in [
        grant("allowed_outbound_hosts", "https://api.example.com"),
        grant("", "http://127.0.0.1:*"),
        grant("files", "static -> /static (read-only)"),
        grant("environment", "LOG_LEVEL=debug"),
        "greeting = \"hello, world\"".to_string(),
        "token = <secret>  (Bearer {{ api_token }})".to_string(),
        "password = <secret>  ({{ db_password }})".to_string(),
        "limits    memory 64MiB, timeout 10s, max_concurrency 7".to_string(),
    ] {
        assert!(stdout.contains(&needle), "no `{needle}` in:\n{stdout}");
    }

    // The kv guest imports wasi:keyvalue and is granted no store: flagged. Its grants are
    // empty and its limits are the defaults.
    let kv = stdout.split("component kv").nth(1).expect("kv section");
    for needle in [
        "wasi:keyvalue/store@0.2.0-draft",
        &grant("key_value_stores", "none"),
        "imported, not granted: calls will be denied (access-denied)",
        "limits    memory 128MiB, timeout 30s, max_concurrency ",
        "(default)",
    ] {
        assert!(kv.contains(needle), "no `{needle}` in kv:\n{kv}");
    }
    assert!(
        !stdout
            .split("component kv")
            .next()
            .unwrap_or_default()
            .contains("wasi:keyvalue"),
        "the config guest does not import wasi:keyvalue:\n{stdout}"
    );
}

#[test]
fn json_parses_and_matches_the_component() {
    let (app, _rc_dir, rc) = setup(APP);
    let out = inspect(&app, &["--json", "--runtime-config", &rc]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_no_secret("json", &stdout, &stderr);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    assert_eq!(v["format"], 1);
    assert_eq!(v["app"]["name"], "inspected");
    let components = v["components"].as_array().expect("components");
    assert_eq!(components.len(), 2);
    let config = &components[0];
    assert_eq!(config["name"], "config");
    assert_eq!(config["source"]["path"], test_programs_artifacts::CONFIG);
    assert_eq!(
        config["size"],
        std::fs::metadata(test_programs_artifacts::CONFIG)
            .expect("built")
            .len()
    );
    assert_eq!(
        config["sha256"].as_str(),
        Some(sha256_of(test_programs_artifacts::CONFIG).as_str())
    );
    let names = |key: &str| -> Vec<String> {
        config[key]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect()
    };
    assert!(
        names("imports").contains(&"wasi:config/store@0.2.0-rc.1".to_string()),
        "{config}"
    );
    assert!(
        names("exports")
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")),
        "{config}"
    );
    assert_eq!(names("routes"), ["/config/...", "/settings"]);
    let grants = &config["grants"];
    assert_eq!(
        grants["allowed_outbound_hosts"],
        serde_json::json!(["https://api.example.com", "http://127.0.0.1:*"])
    );
    assert_eq!(grants["environment"]["LOG_LEVEL"], "debug");
    assert_eq!(
        grants["files"][0],
        serde_json::json!({ "source": "static", "destination": "/static", "glob": false })
    );
    let var = |key: &str| {
        grants["variables"]
            .as_array()
            .expect("variables")
            .iter()
            .find(|e| e["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no variable {key}: {grants}"))
    };
    assert_eq!(var("greeting")["value"], "hello, world");
    assert_eq!(var("greeting")["secret"], false);
    assert_eq!(var("token")["value"], serde_json::Value::Null);
    assert_eq!(var("token")["secret"], true);
    assert_eq!(var("password")["secret"], true);
    assert_eq!(
        config["limits"],
        serde_json::json!({ "memory_bytes": 64 * 1024 * 1024, "timeout_ms": 10_000, "max_concurrency": 7, "max_concurrency_is_default": false })
    );
    // The config guest imports neither outgoing-handler nor the filesystem: both grants
    // are unused (and nothing it imports is ungranted).
    let findings: Vec<(String, String)> = config["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| (f["kind"].to_string(), f["grant"].to_string()))
        .collect();
    assert_eq!(
        findings,
        [
            (
                "\"unused\"".to_string(),
                "\"allowed_outbound_hosts\"".to_string()
            ),
            ("\"unused\"".to_string(), "\"files\"".to_string()),
        ],
        "{config}"
    );

    let kv = &components[1];
    let finding = kv["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["grant"] == "key_value_stores")
        .unwrap_or_else(|| panic!("no key-value finding: {kv}"));
    assert_eq!(finding["kind"], "not_granted");
    assert!(
        finding["interfaces"]
            .as_array()
            .expect("interfaces")
            .iter()
            .any(|i| i == "wasi:keyvalue/store@0.2.0-draft"),
        "{finding}"
    );
}

#[test]
fn non_secret_values_show_and_secrets_never_do() {
    // A non-secret variable set the same two ways does appear: the check above is not
    // passing because values are never printed.
    let manifest = APP
        .replace(
            "greeting = { default = \"hello\" }",
            "greeting = { default = \"hello\" }\nplain_env = { required = true }\nplain_file = { required = true }",
        )
        .replace(
            "password = \"{{ db_password }}\" }",
            "password = \"{{ db_password }}\", pe = \"{{ plain_env }}\", pf = \"{{ plain_file }}\" }",
        );
    let (app, rc_dir, rc) = setup(&manifest);
    let mut text_rc = std::fs::read_to_string(&rc).expect("read rc");
    text_rc = text_rc.replace(
        "[variables]\n",
        "[variables]\nplain_file = \"visible-from-file\"\n",
    );
    std::fs::write(&rc, text_rc).expect("write rc");
    for args in [
        vec!["--runtime-config", rc.as_str()],
        vec!["--json", "--runtime-config", rc.as_str()],
        vec!["--component", "config", "--runtime-config", rc.as_str()],
    ] {
        let out = atoll_inspect()
            .arg(app.path())
            .args(&args)
            .env("ATOLL_HOME", shared_home())
            .env("ATOLL_VARIABLE_API_TOKEN", ENV_SECRET)
            .env("ATOLL_VARIABLE_PLAIN_ENV", "visible-from-env")
            .output()
            .expect("run atoll inspect");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}\n{stdout}\n{stderr}");
        assert_no_secret(&format!("{args:?}"), &stdout, &stderr);
        assert!(
            stdout.contains("visible-from-env") && stdout.contains("visible-from-file"),
            "{args:?}: non-secret values are missing:\n{stdout}"
        );
    }
    drop(rc_dir);
}

/// A required variable that no template uses and no provider sets: `atoll up` refuses to
/// start, so inspect must not report a clean app. It lists the variable at app level, in
/// text and JSON, and the finding goes away once the variable is set.
#[test]
fn an_unset_variable_is_reported_even_when_no_template_uses_it() {
    let manifest = APP.replace(
        "db_password = { required = true, secret = true }",
        "db_password = { required = true, secret = true }\norphan = { required = true }",
    );
    let (app, _rc_dir, rc) = setup(&manifest);
    let needle = "variable `orphan` has no value: `atoll up` will refuse to start; set the environment variable ATOLL_VARIABLE_ORPHAN";

    let out = inspect(&app, &["--runtime-config", &rc]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let head = stdout.split("component ").next().unwrap_or_default();
    assert!(
        head.contains("findings\n  ! ") && head.contains(needle),
        "no app-level finding in:\n{stdout}"
    );

    let out = inspect(&app, &["--json", "--runtime-config", &rc]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    let findings = v["app"]["findings"].as_array().expect("app findings");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["kind"], "unset_variable");
    assert_eq!(findings[0]["variable"], "orphan");
    assert_eq!(findings[0]["env"], "ATOLL_VARIABLE_ORPHAN");
    assert!(
        findings[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(needle)),
        "{findings:?}"
    );

    // What inspect promised: `atoll up` with the same providers refuses to start.
    let (ok, up_stderr) = up_fails(
        &app,
        &["--runtime-config", &rc],
        &[("ATOLL_VARIABLE_API_TOKEN", ENV_SECRET)],
    );
    assert!(!ok, "{up_stderr}");
    assert!(
        up_stderr.contains("variable `orphan` is required but has no value"),
        "{up_stderr}"
    );

    // Set, the finding goes.
    let out = atoll_inspect()
        .arg(app.path())
        .args(["--json", "--runtime-config", &rc])
        .env("ATOLL_HOME", shared_home())
        .env("ATOLL_VARIABLE_API_TOKEN", ENV_SECRET)
        .env("ATOLL_VARIABLE_ORPHAN", "set")
        .output()
        .expect("run atoll inspect");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    assert_eq!(v["app"]["findings"], serde_json::json!([]), "{stdout}");
}

#[test]
fn secrets_stay_out_of_errors() {
    let (app, _rc_dir, rc) = setup(APP);
    // An unknown component, with secrets in both providers.
    let out = inspect(&app, &["--component", "confg", "--runtime-config", &rc]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("no component `confg`"), "{stderr}");
    assert!(stderr.contains("did you mean `config`?"), "{stderr}");
    assert_no_secret("unknown component", &stdout, &stderr);

    // A missing component file.
    let (app, _rc_dir2, rc) = setup(&APP.replace("{{KV}}", "target/missing.wasm"));
    let out = inspect(&app, &["--json", "--runtime-config", &rc]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("missing.wasm"), "{stderr}");
    assert!(stderr.contains("atoll build"), "{stderr}");
    assert!(stderr.contains("component.kv.source"), "{stderr}");
    assert_no_secret("missing file", &stdout, &stderr);

    // A broken runtime config holding a secret.
    std::fs::write(
        &rc,
        format!("[variables]\ndb_password = \"{FILE_SECRET}\nbroken"),
    )
    .expect("write");
    let out = inspect(&app, &["--runtime-config", &rc]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains(" at line "), "{stderr}");
    assert_no_secret("broken runtime config", &stdout, &stderr);

    // A secret written without quotes (TOML reads a number or a boolean): named by kind
    // and line, never shown, in text and JSON mode.
    for (value, kind) in [
        (crate::variables::NUMERIC_SECRET, "a number"),
        ("false", "a boolean"),
    ] {
        std::fs::write(&rc, format!("[variables]\ndb_password = {value}\n")).expect("write");
        for json in [false, true] {
            let mut args = vec!["--runtime-config", rc.as_str()];
            if json {
                args.insert(0, "--json");
            }
            let out = inspect(&app, &args);
            let (stdout, stderr) = text(&out);
            assert!(!out.status.success(), "{stdout}");
            assert!(
                stderr.contains("variable `db_password` under [variables] must be a string")
                    && stderr.contains(kind)
                    && stderr.contains(" at line 2"),
                "{stderr}"
            );
            assert!(
                !stdout.contains(value) && !stderr.contains(value),
                "the secret leaked\nstdout:\n{stdout}\nstderr:\n{stderr}"
            );
        }
    }
}

#[test]
fn a_missing_file_says_to_run_atoll_build() {
    let manifest = APP.replace(
        "source = \"{{KV}}\"",
        "source = \"target/kv.wasm\"\nbuild = { command = \"cp {{KV}} target/kv.wasm\" }",
    );
    let (app, _rc_dir, rc) = setup(&manifest);
    std::fs::create_dir_all(app.path().join("target")).expect("mkdir");
    let out = inspect(&app, &["--component", "kv", "--runtime-config", &rc]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("run `atoll build` (it runs `cp "),
        "{stderr}"
    );
    // `atoll build` runs it, and inspect then works.
    let built = Command::new(BIN)
        .arg("build")
        .arg(app.path())
        .output()
        .expect("run atoll build");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let out = inspect(&app, &["--component", "kv", "--runtime-config", &rc]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("component kv"), "{stdout}");
    assert!(!stdout.contains("component config"), "{stdout}");
}

#[test]
fn cron_schedules_show_with_their_component() {
    let app = TestApp::new(
        r#"
[app]
name = "scheduled"
[component.job]
source = "{{JOB}}"
[[trigger.cron]]
schedule = "*/5 * * * * *"
component = "job"
[[trigger.cron]]
schedule = "0 3 * * *"
component = "job"
"#,
    );
    let out = inspect(&app, &["--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    let job = &v["components"][0];
    assert_eq!(
        job["schedules"],
        serde_json::json!(["*/5 * * * * *", "0 3 * * *"])
    );
    assert_eq!(job["routes"], serde_json::json!([]));
    let out = inspect(&app, &[]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("*/5 * * * * * (UTC)"), "{stdout}");
}

#[test]
fn a_bare_component_file_is_shown_on_its_own() {
    let hello = test_programs_artifacts::HELLO;
    let out = atoll_inspect()
        .arg(hello)
        .output()
        .expect("run atoll inspect");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with(&format!("component {hello}\n")),
        "{stdout}"
    );
    assert!(stdout.contains(&sha256_of(hello)), "{stdout}");
    assert!(
        stdout.contains("wasi:http/incoming-handler@0.2."),
        "{stdout}"
    );
    // Built from Rust in this repository (with wasi-libc's C): the producers section
    // says so.
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("language: ") && l.contains("Rust")),
        "{stdout}"
    );
    assert!(stdout.contains("processed-by: "), "{stdout}");
    assert!(stdout.contains("rustc"), "{stdout}");

    let out = atoll_inspect()
        .arg(hello)
        .arg("--json")
        .output()
        .expect("run atoll inspect --json");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(v["format"], 1);
    assert_eq!(v["sha256"], sha256_of(hello));
    assert_eq!(
        v["size"].as_u64(),
        Some(std::fs::metadata(hello).expect("size").len())
    );
    let producers = v["producers"].as_array().expect("producers");
    assert!(
        producers
            .iter()
            .any(|p| p["field"] == "language" && p["name"] == "Rust"),
        "{stdout}"
    );

    // Not a component: what it is and what to do, on stderr, and a failure.
    let dir = tempfile::tempdir().expect("temp");
    let bogus = dir.path().join("notes.wasm");
    std::fs::write(&bogus, "not wasm at all").expect("write");
    let out = atoll_inspect().arg(&bogus).output().expect("run");
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("notes.wasm") && stderr.contains("help:"),
        "{stderr}"
    );
    // App-only flags are refused with a reason.
    let out = atoll_inspect()
        .arg(hello)
        .args(["--component", "x"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(text(&out).1.contains("component file"), "{}", text(&out).1);
}
