//! Golden-file tests: each `ui/*.toml` is a broken manifest; the `.err` file beside it
//! holds the exact message `atoll` prints. Run with `BLESS=1` to rewrite the `.err` files
//! after an intended change of wording, then review the diff.

use std::path::Path;

#[test]
fn every_fixture_gives_its_expected_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let bless = std::env::var_os("BLESS").is_some();
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/ui exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    fixtures.sort();
    assert!(
        fixtures.len() >= 15,
        "expected the fixture set, found {}",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for toml_path in &fixtures {
        let text = std::fs::read_to_string(toml_path).expect("fixture readable");
        let name = toml_path.file_name().expect("file name");
        // What `atoll up` prints: parsing, then the check that there is something to
        // serve.
        let actual = match atoll_manifest::parse(text, Path::new(name), &dir)
            .and_then(|app| app.check_triggers())
        {
            Ok(()) => "(no error)\n".to_string(),
            Err(d) => d.to_string(),
        };
        let err_path = toml_path.with_extension("err");
        if bless {
            std::fs::write(&err_path, &actual).expect("write .err");
            continue;
        }
        let expected = std::fs::read_to_string(&err_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                toml_path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ (BLESS=1 to update):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_good_manifest_resolves() {
    let text = r#"
[app]
name = "shop"
version = "0.3.0"

[component.api]
source = "api.wasm"
environment = { LOG_LEVEL = "info" }
limits = { memory = "64MiB", timeout = "10s", max_concurrency = 200 }
build = { command = "cargo build", watch = ["src/**/*.rs"] }

[[trigger.http]]
route = "/api/..."
component = "api"

[[trigger.http]]
route = "/health"
component = "api"
"#;
    let app = atoll_manifest::parse(
        text.into(),
        Path::new("atoll.toml"),
        Path::new("/apps/shop"),
    )
    .expect("valid manifest");
    assert_eq!(app.name, "shop");
    assert_eq!(app.version, "0.3.0");
    let api = &app.components["api"];
    assert_eq!(
        api.source,
        atoll_manifest::ComponentSource::Path("/apps/shop/api.wasm".into())
    );
    assert_eq!(api.path(), Some(Path::new("/apps/shop/api.wasm")));
    assert!(api.package().is_none());
    assert_eq!(
        api.environment,
        vec![("LOG_LEVEL".to_string(), "info".to_string())]
    );
    assert_eq!(api.limits.memory, 64 << 20);
    assert_eq!(api.limits.timeout, std::time::Duration::from_secs(10));
    assert_eq!(api.limits.max_concurrency, Some(200));
    let build = api.build.as_ref().expect("build config");
    assert_eq!(build.command, "cargo build");
    assert_eq!(build.watch, vec!["src/**/*.rs".to_string()]);
    let http: Vec<_> = app.http_triggers().collect();
    assert_eq!(http.len(), 2);
    assert_eq!(http[0].route, atoll_manifest::Route::Prefix("/api".into()));
    assert_eq!(app.triggers.len(), 2);
    assert_eq!(app.cron_triggers().count(), 0);
    assert!(app.http.hosts.is_empty());
    // Integers in any TOML radix mean what they say.
    let text = "[app]\nname = \"a\"\n[component.c]\nsource = \"c.wasm\"\nlimits = { memory = 0x4000000, max_concurrency = 0o20 }\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n";
    let app = atoll_manifest::parse(text.into(), Path::new("atoll.toml"), Path::new("/x"))
        .expect("valid");
    assert_eq!(app.components["c"].limits.memory, 64 << 20);
    assert_eq!(app.components["c"].limits.max_concurrency, Some(16));
    // Limits default when not given.
    let text = "[app]\nname = \"a\"\n[component.c]\nsource = \"c.wasm\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n";
    let app = atoll_manifest::parse(text.into(), Path::new("atoll.toml"), Path::new("/x"))
        .expect("valid");
    assert_eq!(
        app.components["c"].limits,
        atoll_manifest::Limits::default()
    );
}

#[test]
fn capability_grants_resolve() {
    use atoll_manifest::{HostPattern, MountSource, PortPattern, TemplatePart};
    let text = r#"
[app]
name = "shop"

[variables]
greeting = { default = "hello" }
api_token = { required = true, secret = true }

[component.api]
source = "api.wasm"
allowed_outbound_hosts = ["https://payments.example.com", "http://127.0.0.1:*", "https://*.example.com:8443"]
key_value_stores = ["default", "cache", "default"]
variables = { greeting = "{{ greeting }}", token = "Bearer {{api_token}}" }
files = [{ source = "static", destination = "/static" }, "assets/**/*.css"]

[component.plain]
source = "plain.wasm"

[[trigger.http]]
route = "/api/..."
component = "api"

[[trigger.http]]
route = "/..."
component = "plain"
"#;
    let app = atoll_manifest::parse(
        text.into(),
        Path::new("atoll.toml"),
        Path::new("/apps/shop"),
    )
    .expect("valid manifest");
    assert_eq!(app.variables.len(), 2);
    let token = app
        .variables
        .iter()
        .find(|v| v.name == "api_token")
        .expect("declared");
    assert!(token.required && token.secret && token.default.is_none());
    let g = &app.components["api"].grants;
    assert_eq!(g.allowed_outbound_hosts.len(), 3);
    assert_eq!(g.allowed_outbound_hosts[0].port, PortPattern::Exact(443));
    assert_eq!(g.allowed_outbound_hosts[1].port, PortPattern::Any);
    assert_eq!(
        g.allowed_outbound_hosts[2].host,
        HostPattern::Subdomains(".example.com".into())
    );
    assert_eq!(
        g.key_value_stores,
        vec!["default".to_string(), "cache".to_string()]
    );
    let token_tpl = g
        .variables
        .iter()
        .find(|t| t.key == "token")
        .expect("template");
    assert_eq!(
        token_tpl.parts,
        vec![
            TemplatePart::Literal("Bearer ".into()),
            TemplatePart::Variable("api_token".into())
        ]
    );
    assert_eq!(g.files[0].source, MountSource::Dir("static".into()));
    assert_eq!(g.files[0].destination, "/static");
    assert_eq!(
        g.files[1].source,
        MountSource::Glob("assets/**/*.css".into())
    );
    // Deny by default: no keys means no grants.
    let plain = &app.components["plain"].grants;
    assert!(plain.variables.is_empty() && plain.allowed_outbound_hosts.is_empty());
    assert!(plain.key_value_stores.is_empty() && plain.files.is_empty());
}

#[test]
fn a_package_source_resolves() {
    let text = r#"
[app]
name = "shop"
hosts = ["Shop.Example.com."]

[component.auth]
source = { package = "acme:auth", version = "^1.2" }

[[trigger.http]]
route = "/auth/..."
component = "auth"
"#;
    let app = atoll_manifest::parse(text.into(), Path::new("atoll.toml"), Path::new("/x"))
        .expect("valid manifest");
    let auth = &app.components["auth"];
    let package = auth.package().expect("a package source");
    assert_eq!(package.name, "acme:auth");
    assert_eq!(package.version, "^1.2");
    assert!(auth.path().is_none());
    assert_eq!(auth.source_written, "acme:auth@^1.2");
    assert_eq!(app.http.hosts, vec!["shop.example.com".to_string()]);
}

#[test]
fn cron_triggers_resolve() {
    use atoll_manifest::Trigger;
    use std::time::{Duration, UNIX_EPOCH};
    // Cron only: a valid app with no HTTP trigger.
    let text = r#"
[app]
name = "jobs"

[component.job]
source = "job.wasm"

[[trigger.cron]]
schedule = "*/5 * * * * *"
component = "job"

[[trigger.cron]]
schedule = "0 3 * * *"
component = "job"
"#;
    let app = atoll_manifest::parse(text.into(), Path::new("atoll.toml"), Path::new("/x"))
        .expect("a cron-only app is valid");
    assert_eq!(app.http_triggers().count(), 0);
    let cron: Vec<_> = app.cron_triggers().collect();
    assert_eq!(cron.len(), 2);
    assert_eq!(cron[0].component, "job");
    assert_eq!(cron[0].schedule.to_string(), "*/5 * * * * *");
    assert_eq!(&text[cron[0].span.clone()], "\"*/5 * * * * *\"");
    // 1970-01-01T00:00:03Z -> :05; 00:00:00 -> 03:00:00.
    let after = UNIX_EPOCH + Duration::from_secs(3);
    assert_eq!(
        cron[0].schedule.next_after(after),
        Some(UNIX_EPOCH + Duration::from_secs(5))
    );
    assert_eq!(
        cron[1].schedule.next_after(after),
        Some(UNIX_EPOCH + Duration::from_secs(3 * 3600))
    );

    // One component may serve a route and a schedule; `triggers` keeps manifest order
    // across kinds.
    let text = r#"
[app]
name = "both"

[component.api]
source = "api.wasm"

[[trigger.cron]]
schedule = "@hourly"
component = "api"

[[trigger.http]]
route = "/..."
component = "api"

[[trigger.cron]]
schedule = "0 0 * * *"
component = "api"
"#;
    let app = atoll_manifest::parse(text.into(), Path::new("atoll.toml"), Path::new("/x"))
        .expect("valid manifest");
    let kinds: Vec<&str> = app
        .triggers
        .iter()
        .map(|t| match t {
            Trigger::Http(_) => "http",
            Trigger::Cron(_) => "cron",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["cron", "http", "cron"]);
    assert!(app.triggers.iter().all(|t| t.component() == "api"));
    let http = app.http_triggers().next().expect("one HTTP trigger");
    assert_eq!(&text[http.span.clone()], "\"/...\"");
}
