//! `[variables]` and `wasi:config/store`: defaults, providers, required, secret.

use crate::common::*;

const APP: &str = r#"
[app]
name = "configured"

[variables]
greeting = { default = "hello" }
region = { default = "eu" }
api_token = { required = true, secret = true }

[component.config]
source = "{{CONFIG}}"
variables = { greeting = "{{ greeting }}, world", token = "Bearer {{ api_token }}", where = "{{region}}" }

[component.bare]
source = "{{CONFIG}}"

[component.spin]
source = "{{KV_SPIN}}"
variables = { greeting = "{{ greeting }}, world" }

[[trigger.http]]
route = "/config"
component = "config"

[[trigger.http]]
route = "/bare"
component = "bare"

[[trigger.http]]
route = "/spin"
component = "spin"
"#;

const SECRET: &str = "s3cr3t-Zq9-token";
/// A secret that TOML reads as an integer when written without quotes.
pub(crate) const NUMERIC_SECRET: &str = "731904288165";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_keys_are_rendered_and_others_absent() {
    let runtime = tempfile::tempdir().expect("temp");
    let rc = runtime.path().join("runtime.toml");
    std::fs::write(&rc, "[variables]\nregion = \"us\"\ngreeting = \"hi\"\n").expect("write");
    let server = Running::start_with_env(
        TestApp::new(APP),
        &shared_home(),
        &["--runtime-config", rc.to_str().expect("utf8")],
        &[
            ("ATOLL_VARIABLE_API_TOKEN", SECRET),
            ("ATOLL_VARIABLE_GREETING", "howdy"),
        ],
    );
    let c = client();
    // Environment beats the runtime config, which beats the default.
    let r = get(&c, &server.url("/config?key=greeting")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "howdy, world"));
    let r = get(&c, &server.url("/config?key=where")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "us"));
    let r = get(&c, &server.url("/config?key=token")).await;
    assert_eq!(r.text(), format!("Bearer {SECRET}"));
    // Only the keys the component declares, never the variables themselves.
    assert_eq!(
        get(&c, &server.url("/config")).await.text(),
        "keys greeting,token,where\n"
    );
    assert_eq!(
        get(&c, &server.url("/config?key=api_token")).await.status,
        404
    );
    // The Spin 3 version of the interface (0.2.0-draft-2024-09-27) reads the same keys.
    let r = get(&c, &server.url("/spin?op=config&key=greeting")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "howdy, world"));
    assert_eq!(
        get(&c, &server.url("/spin?op=config&key=token"))
            .await
            .status,
        404
    );
    // A component without `variables` sees nothing.
    assert_eq!(get(&c, &server.url("/bare")).await.text(), "keys \n");
    assert_eq!(get(&c, &server.url("/bare?key=greeting")).await.status, 404);

    // A guest that prints a secret: the log shows it redacted.
    let r = get(&c, &server.url("/config?print=token")).await;
    assert_eq!(r.status, 200);
    assert!(server.wait_for_log(
        "the value of token is Bearer [redacted]",
        std::time::Duration::from_secs(10)
    ));
    assert!(
        !server.logs().contains(SECRET),
        "a secret reached the logs:\n{}",
        server.logs()
    );
}

#[test]
fn a_missing_required_variable_stops_startup() {
    let (ok, stderr) = up_fails(&TestApp::new(APP), &[], &[]);
    assert!(
        !ok,
        "atoll up started without a required variable:\n{stderr}"
    );
    assert!(
        stderr.contains("variable `api_token` is required but has no value"),
        "{stderr}"
    );
    assert!(stderr.contains("ATOLL_VARIABLE_API_TOKEN"), "{stderr}");
    assert!(stderr.contains("--runtime-config"), "{stderr}");
    assert!(stderr.contains("variables.api_token"), "{stderr}");
}

#[test]
fn secrets_never_appear_in_errors() {
    // The app fails to load for another reason (a missing source) after variables were
    // resolved; and a broken runtime config that holds the secret is reported without it.
    let runtime = tempfile::tempdir().expect("temp");
    let rc = runtime.path().join("runtime.toml");
    std::fs::write(&rc, format!("[variables]\napi_token = \"{SECRET}\nbroken")).expect("write");
    let (ok, stderr) = up_fails(
        &TestApp::new(APP),
        &["--runtime-config", rc.to_str().expect("utf8")],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("runtime.toml"), "{stderr}");
    assert!(stderr.contains(" at line "), "{stderr}");
    assert!(!stderr.contains(SECRET), "the secret leaked:\n{stderr}");

    // A secret written without quotes is a number or a boolean to TOML: the message says
    // so, with the line, and never shows the value (serde's own message would).
    for (value, kind) in [(NUMERIC_SECRET, "a number"), ("true", "a boolean")] {
        std::fs::write(&rc, format!("[variables]\n\napi_token = {value}\n")).expect("write");
        let (ok, stderr) = up_fails(
            &TestApp::new(APP),
            &["--runtime-config", rc.to_str().expect("utf8")],
            &[],
        );
        assert!(!ok);
        assert!(
            stderr.contains("variable `api_token` under [variables] must be a string")
                && stderr.contains(kind)
                && stderr.contains("quote it")
                && stderr.contains(" at line 3"),
            "{stderr}"
        );
        assert!(!stderr.contains(value), "the secret leaked:\n{stderr}");
    }

    let broken = APP.replace(
        "source = \"{{CONFIG}}\"\nvariables",
        "source = \"missing.wasm\"\nvariables",
    );
    let (ok, stderr) = up_fails(
        &TestApp::new(&broken),
        &[],
        &[("ATOLL_VARIABLE_API_TOKEN", SECRET)],
    );
    assert!(!ok);
    assert!(stderr.contains("missing.wasm"), "{stderr}");
    assert!(!stderr.contains(SECRET), "the secret leaked:\n{stderr}");
}
