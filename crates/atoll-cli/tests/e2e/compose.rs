//! Composition: `[component.NAME.dependencies]` wires real components from
//! `crates/test-programs` (a handler importing `acme:auth/verify` and `acme:fmt/format`,
//! an auth component and a formatting component) into one, served end to end; a
//! dependency gets no capability unless the manifest grants it; and each way a
//! composition can be wrong says so at the manifest line.

use crate::common::{Reply, Running, TestApp, client, get_with_headers, up_fails};

/// GET `path` with alice's token (the one the auth component accepts).
pub(crate) async fn as_alice(server: &Running, path: &str) -> Reply {
    get_with_headers(
        &client(),
        &server.url(path),
        &[("authorization", "Bearer letmein-alice")],
    )
    .await
}

fn app(dependencies: &str, grants: &str) -> TestApp {
    TestApp::new(&format!(
        r#"
[app]
name = "composed"

[component.api]
source = "{{{{COMPOSE_HANDLER}}}}"
{grants}

[component.api.dependencies]
{dependencies}

[component.auth]
source = "{{{{COMPOSE_AUTH}}}}"

[[trigger.http]]
route = "/..."
component = "api"
"#
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_composed_with_auth_and_formatting_components_is_served() {
    let composed = app(
        r#""acme:auth/verify" = { component = "auth" }
"acme:fmt" = { path = "{{COMPOSE_FMT}}" }"#,
        "",
    );
    // `atoll inspect` shows the graph, and the composition's imports: no acme:* left.
    let out = crate::common::atoll_command()
        .args(["inspect", "--json"])
        .arg(composed.path())
        .env("ATOLL_HOME", crate::common::shared_home())
        .output()
        .expect("run atoll inspect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let api = report["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == "api")
        .expect("api")
        .clone();
    let wiring: Vec<(String, String)> = api["composed"]
        .as_array()
        .expect("composed")
        .iter()
        .map(|w| {
            (
                w["import"].as_str().unwrap_or_default().to_string(),
                w["dependency"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(wiring.len(), 2, "{api}");
    assert_eq!(
        wiring[0],
        (
            "acme:auth/verify@1.0.0".to_string(),
            "component `auth`".to_string()
        )
    );
    assert_eq!(wiring[1].0, "acme:fmt/format@1.0.0");
    let imports: Vec<&str> = api["imports"]
        .as_array()
        .expect("imports")
        .iter()
        .filter_map(|i| i.as_str())
        .collect();
    assert!(
        imports.iter().all(|i| !i.starts_with("acme:")),
        "{imports:?}"
    );
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:http/types")),
        "{imports:?}"
    );

    // `atoll build` composes too, so a wrong composition fails before anything serves.
    let out = crate::common::atoll_command()
        .arg("build")
        .arg(composed.path())
        .env("ATOLL_HOME", crate::common::shared_home())
        .output()
        .expect("run atoll build");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("composed: acme:auth/verify@1.0.0 <- component `auth`"),
        "{log}"
    );

    let server = Running::start(composed);
    let c = client();
    let ok = as_alice(&server, "/hello").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), "Hello, alice! (formatted by acme:fmt)\n");
    let refused = get_with_headers(
        &c,
        &server.url("/hello"),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.text(), "who are you?\n");
    let logs = server.logs();
    assert!(
        logs.contains("composed: acme:auth/verify@1.0.0 <- component `auth`"),
        "{logs}"
    );
    assert!(
        logs.contains("composed: acme:fmt/format@1.0.0 <- `"),
        "{logs}"
    );

    // The composition is cached by its inputs: one `.wasm` with its wiring beside it.
    let cached = crate::common::shared_home().join("cache/composed");
    let wirings: Vec<String> = std::fs::read_dir(&cached)
        .expect("a composition cache")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "wiring"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    assert!(
        wirings
            .iter()
            .any(|w| w.contains("acme:auth/verify@1.0.0\tcomponent `auth`")),
        "{wirings:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_its_dependencies_the_handler_does_not_load() {
    let bare = TestApp::new(
        r#"
[app]
name = "bare"
[component.api]
source = "{{COMPOSE_HANDLER}}"
[[trigger.http]]
route = "/..."
component = "api"
"#,
    );
    let (ok, stderr) = up_fails(&bare, &[], &[]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("acme:auth/verify@1.0.0"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_gets_no_capability_it_was_not_granted() {
    // The component has no outbound grant: the dependency's request is denied by the
    // host (not merely unanswered: nothing listens there, which would be another error).
    let server = Running::start(app(
        r#""acme:auth/verify" = { component = "auth" }
"acme:fmt/format" = { path = "{{COMPOSE_FMT_GREEDY}}" }"#,
        "",
    ));
    let reply = as_alice(&server, "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.text(),
        "Hello, alice! (greedy: refused: ErrorCode::HttpRequestDenied)\n"
    );
    drop(server);

    // The component may call out; its dependency would share that grant through the
    // same import, so it is refused at load unless the manifest says to share.
    let outbound = r#"allowed_outbound_hosts = ["http://127.0.0.1:9"]"#;
    let (ok, stderr) = up_fails(
        &app(
            r#""acme:auth/verify" = { component = "auth" }
"acme:fmt/format" = { path = "{{COMPOSE_FMT_GREEDY}}" }"#,
            outbound,
        ),
        &[],
        &[],
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("imports `wasi:http/outgoing-handler@0.2.12`, through which it would get component `api`'s `allowed_outbound_hosts`"),
        "{stderr}"
    );
    assert!(stderr.contains("inherit_capabilities = true"), "{stderr}");
    assert!(
        stderr.contains("atoll.toml:"),
        "names the manifest line: {stderr}"
    );

    // Shared on purpose: the request leaves (and finds nothing listening).
    let server = Running::start(app(
        r#""acme:auth/verify" = { component = "auth" }
"acme:fmt/format" = { path = "{{COMPOSE_FMT_GREEDY}}", inherit_capabilities = true }"#,
        outbound,
    ));
    let reply = as_alice(&server, "/").await;
    assert_eq!(
        reply.text(),
        "Hello, alice! (greedy: refused: ErrorCode::ConnectionRefused)\n"
    );
}

#[test]
fn each_wrong_composition_says_what_is_wrong() {
    let cases: [(&str, &[&str]); 4] = [
        (
            // No import for it.
            r#""acme:auth/verify" = { component = "auth" }
"acme:fmt" = { path = "{{COMPOSE_FMT}}" }
"acme:billing/charge" = { path = "{{COMPOSE_FMT}}" }"#,
            &[
                "component `api` has no import `acme:billing/charge` for this dependency to satisfy",
                "its non-WASI imports are: acme:auth/verify@1.0.0, acme:fmt/format@1.0.0",
            ],
        ),
        (
            // Two for one import.
            r#""acme:auth/verify" = { component = "auth" }
"acme:auth" = { path = "{{COMPOSE_AUTH}}" }
"acme:fmt" = { path = "{{COMPOSE_FMT}}" }"#,
            &[
                "import `acme:auth/verify@1.0.0` of component `api` is satisfied by two dependencies",
            ],
        ),
        (
            // Another version.
            r#""acme:auth/verify@2.0.0" = { component = "auth" }
"acme:fmt" = { path = "{{COMPOSE_FMT}}" }"#,
            &[
                "imports `acme:auth/verify@1.0.0`, not `acme:auth/verify@2.0.0`: incompatible interface versions",
            ],
        ),
        (
            // A dependency that exports something else.
            r#""acme:auth/verify" = { path = "{{COMPOSE_FMT}}" }
"acme:fmt" = { path = "{{COMPOSE_FMT}}" }"#,
            &[
                "does not export `acme:auth/verify@1.0.0`, which component `api` imports",
                "it exports: acme:fmt/format@1.0.0",
            ],
        ),
    ];
    for (deps, wanted) in cases {
        let wrong = app(deps, "");
        let built = crate::common::atoll_command()
            .arg("build")
            .arg(wrong.path())
            .env("ATOLL_HOME", crate::common::shared_home())
            .output()
            .expect("run atoll build");
        let build_err = String::from_utf8_lossy(&built.stderr);
        assert!(!built.status.success(), "{deps}: atoll build composed it");
        assert!(
            build_err.contains(wanted[0]),
            "{deps}: atoll build said {build_err}"
        );
        let (ok, stderr) = up_fails(&wrong, &[], &[]);
        assert!(!ok, "{deps}: started");
        for w in wanted {
            assert!(stderr.contains(w), "{deps}: wanted `{w}` in:\n{stderr}");
        }
        assert!(
            stderr.contains("atoll.toml:"),
            "{deps}: no manifest line in {stderr}"
        );
    }
}

/// The component's environment variables reach a dependency (through
/// `wasi:cli/environment`, which Rust's std imports) only if it inherits them.
#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_sees_the_components_environment_only_if_it_inherits() {
    let environment = r#"environment = { API_TOKEN = "s3cret-value" }"#;
    let (ok, stderr) = up_fails(
        &app(
            r#""acme:auth/verify" = { component = "auth" }
"acme:fmt" = { path = "{{COMPOSE_FMT}}" }"#,
            environment,
        ),
        &[],
        &[],
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("imports `wasi:cli/environment@0.2.6`, through which it would get component `api`'s `environment`"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-value"), "{stderr}");

    let server = Running::start(app(
        r#""acme:auth/verify" = { component = "auth", inherit_capabilities = true }
"acme:fmt" = { path = "{{COMPOSE_FMT}}", inherit_capabilities = true }"#,
        environment,
    ));
    let reply = as_alice(&server, "/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Hello, alice! (formatted by acme:fmt)\n");
}
