//! The runtime core against a real engine and a real component: loading, the live set
//! and its checked updates, admission and the guest run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atoll_capabilities::RuntimeConfig;
use atoll_engine::{Engine, EngineConfig, FailureKind};
use atoll_runtime::{LiveApps, LoadedApp, Loader, Outcome, RuntimeError};

fn manifest(name: &str, max_concurrency: u32, timeout: &str) -> atoll_manifest::App {
    let text = format!(
        "[app]\nname = \"{name}\"\n[component.web]\nsource = {:?}\nlimits = {{ max_concurrency = {max_concurrency}, timeout = \"{timeout}\" }}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n",
        test_programs_artifacts::HELLO
    );
    atoll_manifest::parse(text, Path::new("atoll.toml"), Path::new(".")).expect("manifest")
}

fn loader() -> Loader {
    let engine = Engine::new(EngineConfig::default()).expect("engine");
    Loader::new(
        Arc::new(engine),
        RuntimeConfig::default(),
        Default::default(),
    )
}

async fn load(loader: &Loader, name: &str) -> Arc<LoadedApp> {
    Arc::new(loader.load(manifest(name, 2, "200ms")).await.expect("load"))
}

#[tokio::test]
async fn the_live_set_swaps_whole_and_notifies() {
    let loader = loader();
    let live = LiveApps::new(vec![load(&loader, "a").await]);
    assert_eq!(live.generation(), 1);
    let mut changes = live.subscribe();
    let held = live.snapshot();

    let b = load(&loader, "b").await;
    assert_eq!(live.replace(b.clone()), 2);
    assert!(changes.has_changed().expect("sender alive"));
    assert_eq!(*changes.borrow_and_update(), 2);
    // A snapshot taken before keeps what it saw.
    assert_eq!(held.apps().len(), 1);
    assert_eq!(live.snapshot().apps().len(), 2);

    // A new version of `a` takes its place, in order; the old one is still held.
    let old_a = live.snapshot().get("a").cloned().expect("a");
    let new_a = load(&loader, "a").await;
    live.replace(new_a.clone());
    let snapshot = live.snapshot();
    let names: Vec<&str> = snapshot.apps().iter().map(|a| a.name()).collect();
    assert_eq!(names, ["a", "b"]);
    changes.borrow_and_update();
    assert_ne!(
        live.snapshot().get("a").expect("a").load_id(),
        old_a.load_id()
    );

    // A failed check changes nothing and notifies no one.
    let before = live.generation();
    let refused: Result<u64, &str> = live.update(|_| Err("refused"));
    assert_eq!(refused, Err("refused"));
    assert_eq!(live.generation(), before);
    assert!(!changes.has_changed().expect("sender alive"));

    assert!(live.remove("b").is_some());
    assert!(live.remove("b").is_none());
    assert_eq!(live.snapshot().apps().len(), 1);
}

#[tokio::test]
async fn admission_is_bounded_and_a_failure_keeps_its_slot_a_while() {
    let loader = loader();
    let app = load(&loader, "a").await;
    let web = app.component("web").expect("web").clone();
    assert_eq!(web.max_concurrency(), 2);
    let first = web.admit().expect("a first permit");
    let second = web.admit().expect("a second permit");
    assert!(
        matches!(web.admit(), Err(atoll_runtime::Refused::Concurrency)),
        "over max_concurrency, admission refuses at once"
    );
    assert_eq!(web.refusals(atoll_runtime::Refused::Concurrency), 1);
    assert_eq!(web.refusals(atoll_runtime::Refused::Failing), 0);
    drop(second);

    // A run past the component's timeout (200ms) fails as a timeout ...
    let outcome = first
        .run_guest(std::future::pending::<wasmtime::Result<()>>, || false)
        .await;
    assert!(
        matches!(outcome, Outcome::Failed(FailureKind::Timeout, _)),
        "{outcome:?}"
    );
    // ... and keeps its permit for the failure penalty, then gives it back.
    assert_eq!(web.in_flight(), 1);
    tokio::time::sleep(atoll_runtime::FAILURE_PENALTY + Duration::from_millis(300)).await;
    assert_eq!(web.in_flight(), 0);

    // A failure the guest did not cause gives the permit back at once.
    let p = web.admit().expect("permit");
    let outcome = p
        .run_guest(
            || async { Err(wasmtime::Error::msg("the client went away")) },
            || true,
        )
        .await;
    assert!(
        matches!(outcome, Outcome::Failed(FailureKind::Other, _)),
        "{outcome:?}"
    );
    assert_eq!(web.in_flight(), 0);

    let p = web.admit().expect("permit");
    assert_eq!(
        p.run_guest(|| async { Ok(()) }, || false).await,
        Outcome::Finished
    );
    assert_eq!(web.in_flight(), 0);
}

#[tokio::test]
async fn a_new_version_keeps_the_permits_of_the_old_one() {
    let loader = loader();
    let old = load(&loader, "a").await;
    let held = old.component("web").expect("web").admit().expect("permit");
    let new = loader
        .load_replacing(manifest("a", 2, "200ms"), Some(&old))
        .await
        .expect("load");
    let web = new.component("web").expect("web");
    assert_eq!(
        web.in_flight(),
        1,
        "the old version's request counts against the new limit"
    );
    drop(held);
    assert_eq!(web.in_flight(), 0);
    // A changed limit starts afresh.
    let resized = loader
        .load_replacing(manifest("a", 5, "200ms"), Some(&old))
        .await
        .expect("load");
    assert_eq!(resized.component("web").expect("web").max_concurrency(), 5);
}

#[tokio::test]
async fn a_bad_component_is_a_located_error() {
    let loader = loader();
    let text = "[app]\nname = \"bad\"\n[component.web]\nsource = \"Cargo.toml\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n";
    let app = atoll_manifest::parse(
        text.to_string(),
        Path::new("atoll.toml"),
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
    .expect("manifest");
    let e = loader.load(app).await.expect_err("not wasm");
    let RuntimeError::Manifest(d) = &e else {
        panic!("expected a manifest diagnostic, got {e}");
    };
    let shown = d.to_string();
    assert!(
        shown.contains("`Cargo.toml` is not a WebAssembly file"),
        "{shown}"
    );
    assert!(shown.contains("atoll.toml:4:10"), "{shown}");
}

#[tokio::test]
async fn counts_are_kept_by_name_across_a_reload() {
    let loader = loader();
    let old = load(&loader, "a").await;
    let web = old.component("web").expect("web").clone();
    let p = web.admit().expect("permit");
    assert_eq!(
        p.run_guest(|| async { Ok(()) }, || false).await,
        Outcome::Finished
    );
    let p = web.admit().expect("permit");
    let failed = p
        .run_guest(|| async { Err(wasmtime::Error::msg("boom")) }, || true)
        .await;
    assert!(matches!(failed, Outcome::Failed(FailureKind::Other, _)));

    // The new version counts on from where the old one was.
    let new = loader
        .load_replacing(manifest("a", 2, "200ms"), Some(&old))
        .await
        .expect("load");
    let new_web = new.component("web").expect("web");
    assert!(Arc::ptr_eq(web.metrics(), new_web.metrics()));
    assert_eq!(new_web.failures(FailureKind::Other), 1);
    let p = new_web.admit().expect("permit");
    assert_eq!(
        p.run_guest(|| async { Ok(()) }, || false).await,
        Outcome::Finished
    );
    let snapshot = loader.metrics().snapshot();
    assert_eq!(snapshot.components.len(), 1);
    let c = &snapshot.components[0];
    assert_eq!((c.app.as_str(), c.component.as_str()), ("a", "web"));
    assert_eq!(c.finished, 2);
    assert_eq!(c.failures[6], 1, "{c:?}");
    assert_eq!(c.run.count(), 3);
    assert_eq!(c.live, 0);
    let recent = loader.metrics().recent_failures();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].kind, "other");
    assert!(recent[0].reason.contains("boom"), "{:?}", recent[0]);

    // Another app of the same component name counts apart.
    let b = load(&loader, "b").await;
    assert!(!Arc::ptr_eq(
        web.metrics(),
        b.component("web").expect("web").metrics()
    ));
}
