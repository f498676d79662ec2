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

# A component that can read the secret and names a store after it.
[component.kvleak]
source = "{{KV}}"
variables = { token = "{{ api_token }}" }

[[trigger.http]]
route = "/kvleak"
component = "kvleak"

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
    // Asking for a key it has no variable for is a denial, logged with its kind.
    assert!(
        server.wait_until(std::time::Duration::from_secs(10), |logs| logs.lines().any(
            |l| {
                l.contains("capability denied")
                    && l.contains("config key `greeting`")
                    && l.contains("component=bare")
                    && l.contains("kind=config")
            }
        )),
        "{}",
        server.logs()
    );

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

/// A guest that can read a secret tries to get it into the operator's logs at their
/// edges: split by the 4 KiB line cut, cut short by the 64 KiB cap, through
/// wasi:logging's message and context, as the error it answers with, and as the label
/// of a store it is refused. No part of the secret reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_logs_at_their_edges() {
    let server = Running::start_with_env(
        TestApp::new(APP),
        &shared_home(),
        &[],
        &[("ATOLL_VARIABLE_API_TOKEN", SECRET)],
    );
    let c = client();
    for how in ["straddle", "cap", "logging", "error"] {
        let r = get(&c, &server.url(&format!("/config?leak={how}&key=token"))).await;
        let expected = if how == "error" { 500 } else { 200 };
        assert_eq!(r.status, expected, "{how}: {}", r.text());
    }
    let r = get(
        &c,
        &server.url(&format!("/kvleak?store=store-{SECRET}&op=get&key=k")),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (403, "access-denied"));
    // Each attempt did reach the log, redacted.
    for (what, needle) in [
        ("straddle", " after the straddle"),
        ("cap", "guest output over 65536 bytes"),
        ("logging", "llllllllllllllllllllllllllllllllBearer "),
        ("logging context", "the context is cut"),
        ("logging context", "the context is the secret"),
        ("error", "guest answered with an error"),
        ("store", "may not open key-value store `store-[redacted]`"),
    ] {
        assert!(
            server.wait_for_log(needle, std::time::Duration::from_secs(10)),
            "{what}: no `{needle}` line:\n{}",
            tail(&server.logs())
        );
    }
    let logs = server.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("guest answered with an error") && l.contains("[redacted]")),
        "{}",
        tail(&logs)
    );
    // No piece of the secret (16 bytes) is left anywhere: every 4-byte window of it,
    // but the two inside the word "token", which the logs may use for other reasons.
    for i in 0..=SECRET.len() - 4 {
        let fragment = &SECRET[i..i + 4];
        if ["toke", "oken"].contains(&fragment) {
            continue;
        }
        if let Some(line) = logs.lines().find(|l| l.contains(fragment)) {
            panic!("`{fragment}` of the secret is in the log: {}", tail(line));
        }
    }
}

/// The end of a long text, for a readable failure message.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(2000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
