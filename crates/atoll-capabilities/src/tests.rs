//! Tests of the configure phase and the grants builder, across modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;

fn app_in(dir: &Path, manifest: &str) -> App {
    atoll_manifest::parse(manifest.to_string(), &dir.join("atoll.toml"), dir)
        .expect("valid manifest")
}

const WEB: &str = r#"
[app]
name = "shop"

[component.web]
source = "web.wasm"
key_value_stores = ["default"]
files = ["assets/**/*.css"]

[[trigger.http]]
route = "/..."
component = "web"
"#;

/// The only holder of component `name`'s capabilities.
fn take(app: AppCapabilities, name: &str) -> Arc<ComponentCapabilities> {
    app.into_components().remove(name).expect("configured")
}

fn backend(c: &ComponentCapabilities, label: &str) -> Arc<dyn Backend> {
    c.kv.stores
        .iter()
        .find(|s| s.label == label)
        .map(|s| s.backend.clone())
        .expect("granted")
}

fn staged(c: &ComponentCapabilities) -> PathBuf {
    c.mounts[0].host.clone()
}

/// A reload configures the app again while the first load is alive: both work, share
/// the redb file, and have their own staged files.
#[tokio::test]
async fn a_reload_shares_backends_and_stages_files_anew() {
    let dir = tempfile::tempdir().expect("temp");
    std::fs::create_dir_all(dir.path().join("assets/sub")).expect("mkdir");
    std::fs::write(dir.path().join("assets/site.css"), "v1").expect("write");
    std::fs::write(dir.path().join("assets/sub/x.css"), "x").expect("write");
    let app = app_in(dir.path(), WEB);
    let runtime = RuntimeConfig::default();
    let env = BTreeMap::new();
    let backends = Backends::default();

    let first = configure(&app, &runtime, &env, &backends)
        .await
        .expect("first load");
    std::fs::write(dir.path().join("assets/site.css"), "v2").expect("write");
    let second = configure(&app, &runtime, &env, &backends)
        .await
        .expect("second load, the first still alive");
    let (first, second) = (take(first, "web"), take(second, "web"));

    // One redb handle: writes of either load are seen by the other.
    let (b1, b2) = (backend(&first, "default"), backend(&second, "default"));
    assert!(Arc::ptr_eq(&b1, &b2));
    b1.set("shop/default", "k", b"1".to_vec())
        .await
        .expect("set");
    assert_eq!(
        b2.get("shop/default", "k").await.expect("get"),
        Some(b"1".to_vec())
    );
    b2.increment("shop/default", "n", 2).await.expect("incr");
    assert_eq!(b1.increment("shop/default", "n", 1).await.expect("incr"), 3);

    // Without the shared registry, the second open of the file fails: what the
    // registry is for.
    let e = configure(&app, &runtime, &env, &Backends::new())
        .await
        .expect_err("the file is open");
    assert!(
        matches!(&e, CapabilityError::KeyValue { label, .. } if label == "default"),
        "{e}"
    );

    // Each load has its own staged copy; the first keeps its files.
    let (d1, d2) = (staged(&first), staged(&second));
    assert_ne!(d1, d2);
    assert!(
        d1.starts_with(dir.path().join(".atoll/mounts")),
        "{}",
        d1.display()
    );
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).ok();
    assert_eq!(read(&d1, "assets/site.css").as_deref(), Some("v1"));
    assert_eq!(read(&d1, "assets/sub/x.css").as_deref(), Some("x"));
    assert_eq!(read(&d2, "assets/site.css").as_deref(), Some("v2"));

    // The last holder of the first load gone, its directory goes; the second stays.
    let instance = first.prepare();
    drop(first);
    assert!(d1.exists(), "an instance still holds the first load");
    drop(instance);
    // Removed on the blocking pool (the last holder may be an event loop).
    assert!(gone(&d1).await, "{} was not removed", d1.display());
    let lock = |d: &Path| {
        let name = d.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        d.with_file_name(format!("{name}.lock"))
    };
    assert!(gone(&lock(&d1)).await);
    assert!(lock(&d2).exists());
    assert_eq!(read(&d2, "assets/site.css").as_deref(), Some("v2"));
    drop(second);
    assert!(gone(&d2).await, "{} was not removed", d2.display());
    let left: Vec<_> = std::fs::read_dir(dir.path().join(".atoll/mounts"))
        .expect("mounts dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn abandoned_staging_is_removed_and_owned_staging_kept() {
    let dir = tempfile::tempdir().expect("temp");
    std::fs::create_dir_all(dir.path().join("assets")).expect("mkdir");
    std::fs::write(dir.path().join("assets/site.css"), "v1").expect("write");
    let mounts = dir.path().join(".atoll/mounts");
    // Left by a process that died: nobody holds the lock.
    std::fs::create_dir_all(mounts.join("web.1-2-3/assets")).expect("mkdir");
    std::fs::write(mounts.join("web.1-2-3.lock"), "").expect("write");
    // Owned by a live process (here, this test).
    std::fs::create_dir_all(mounts.join("web.4-5-6")).expect("mkdir");
    let held = std::fs::File::create(mounts.join("web.4-5-6.lock")).expect("lock file");
    held.lock().expect("lock");
    // Not ours to judge: no lock file (the layout of older versions).
    std::fs::create_dir_all(mounts.join("web/assets")).expect("mkdir");

    let app = app_in(dir.path(), WEB);
    let caps = configure(
        &app,
        &RuntimeConfig::default(),
        &BTreeMap::new(),
        &Backends::default(),
    )
    .await
    .expect("load");
    assert!(!mounts.join("web.1-2-3").exists());
    assert!(!mounts.join("web.1-2-3.lock").exists());
    assert!(mounts.join("web.4-5-6").exists());
    assert!(mounts.join("web").exists());
    drop(caps);
    drop(held);
}

#[tokio::test]
async fn stores_are_keyed_by_their_config() {
    let dir = tempfile::tempdir().expect("temp");
    let manifest = |name: &str| {
        format!(
            r#"
[app]
name = "{name}"

[component.c]
source = "c.wasm"
key_value_stores = ["scratch", "one", "two"]

[[trigger.http]]
route = "/..."
component = "c"
"#
        )
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    let (app_a, app_b) = (app_in(&a, &manifest("a")), app_in(&b, &manifest("b")));
    let shared = dir.path().join("shared.redb");
    let runtime = RuntimeConfig {
        key_value_stores: BTreeMap::from([
            ("scratch".to_string(), StoreConfig::Memory {}),
            (
                "one".to_string(),
                StoreConfig::Redb {
                    path: Some(shared.clone()),
                },
            ),
            // The same file by another spelling.
            (
                "two".to_string(),
                StoreConfig::Redb {
                    path: Some(dir.path().join("a/../shared.redb")),
                },
            ),
        ]),
        ..RuntimeConfig::default()
    };
    let backends = Backends::default();
    let env = BTreeMap::new();
    let ca = configure(&app_a, &runtime, &env, &backends)
        .await
        .expect("a");
    let cb = configure(&app_b, &runtime, &env, &backends)
        .await
        .expect("b");
    let (ca, cb) = (take(ca, "c"), take(cb, "c"));
    assert!(Arc::ptr_eq(
        &backend(&ca, "scratch"),
        &backend(&cb, "scratch")
    ));
    assert!(Arc::ptr_eq(&backend(&ca, "one"), &backend(&ca, "two")));
    assert!(Arc::ptr_eq(&backend(&ca, "one"), &backend(&cb, "one")));
    assert!(!Arc::ptr_eq(&backend(&ca, "one"), &backend(&ca, "scratch")));
    // One backend, namespaces apart.
    let ns: Vec<&str> = ca.kv.stores.iter().map(|s| &*s.namespace).collect();
    assert_eq!(ns, ["a/scratch", "a/one", "a/two"]);
    let m = backend(&ca, "scratch");
    m.set("a/scratch", "k", b"a".to_vec()).await.expect("set");
    assert_eq!(m.get("b/scratch", "k").await.expect("get"), None);

    // Only the registry holds them once the apps are gone.
    assert_eq!(backends.release_unused().await, 0);
    drop((ca, cb, m));
    assert_eq!(backends.release_unused().await, 2);
    assert!(format!("{backends:?}").contains("open: 0"));
}

#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn a_backend_left_out_of_the_build_is_named() {
    let dir = tempfile::tempdir().expect("temp");
    let app = app_in(
        dir.path(),
        "[app]\nname = \"a\"\n\n[component.c]\nsource = \"c.wasm\"\nkey_value_stores = [\"default\"]\n\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n",
    );
    let runtime = RuntimeConfig {
        key_value_stores: BTreeMap::from([(
            "default".to_string(),
            StoreConfig::Redis {
                url: "redis://:secret@127.0.0.1:6379".into(),
            },
        )]),
        ..RuntimeConfig::default()
    };
    let e = configure(&app, &runtime, &BTreeMap::new(), &Backends::default())
        .await
        .expect_err("not built");
    assert_eq!(
        e.to_string(),
        "key-value store `default`: this build of atoll has no `redis` support (Cargo feature `redis` of atoll-capabilities)"
    );
}

#[tokio::test]
async fn the_builder_grants_only_what_it_is_told() {
    let nothing = ComponentCapabilities::builder("app", "c").build();
    assert!(nothing.outbound.allowed.is_empty());
    assert!(nothing.config.is_empty() && nothing.mounts.is_empty());
    assert!(nothing.kv.stores.is_empty());

    let dir = tempfile::tempdir().expect("temp");
    let store: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let other: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let caps = ComponentCapabilities::builder("app", "c")
        .allow_outbound_str("https://*.example.com")
        .expect("valid")
        .allow_outbound(AllowedHost::parse("http://127.0.0.1:8080").expect("valid"))
        .config("region", "eu")
        .secret_config("token", "hunter2")
        .key_value("cache", other)
        .key_value("cache", store.clone())
        .key_value("default", store.clone())
        .mount_dir(dir.path(), "/static")
        .expect("a directory")
        .outbound_config(OutboundConfig {
            max_concurrent_requests: 3,
            ..OutboundConfig::default()
        })
        .build();
    assert_eq!(caps.outbound.allowed.len(), 2);
    assert_eq!(caps.outbound.config.max_concurrent_requests, 3);
    assert_eq!(caps.config["region"], "eu");
    assert_eq!(caps.config["token"], "hunter2");
    assert_eq!(caps.target.secrets, ["hunter2"]);
    assert_eq!(
        caps.target.redact("the token is hunter2"),
        "the token is [redacted]"
    );
    let granted: Vec<(&str, &str)> = caps
        .kv
        .stores
        .iter()
        .map(|s| (s.label.as_str(), &*s.namespace))
        .collect();
    assert_eq!(
        granted,
        [("cache", "app/cache"), ("default", "app/default")]
    );
    assert!(
        Arc::ptr_eq(&backend(&caps, "cache"), &store),
        "the last grant wins"
    );
    assert_eq!(caps.mounts[0].guest, "/static");
    let shown = format!("{caps:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("eu\""),
        "{shown}"
    );

    // Bad grants are refused up front.
    let e = ComponentCapabilities::builder("app", "c")
        .allow_outbound_str("example.com")
        .expect_err("no scheme");
    assert!(matches!(e, CapabilityError::InvalidGrant { .. }), "{e}");
    let e = ComponentCapabilities::builder("app", "c")
        .mount_dir(dir.path(), "static")
        .expect_err("relative guest path");
    assert!(e.to_string().contains("absolute"), "{e}");
    let e = ComponentCapabilities::builder("app", "c")
        .mount_dir(dir.path().join("missing"), "/m")
        .expect_err("no such directory");
    assert!(e.to_string().contains("cannot resolve"), "{e}");
}

#[test]
fn an_unresolvable_app_dir_is_not_a_runtime_config_error() {
    let dir = tempfile::tempdir().expect("temp");
    let gone = dir.path().join("gone");
    let app = app_in(&gone, WEB);
    let e = files::configure(&app, &app.components["web"]).expect_err("no dir");
    assert!(matches!(e, CapabilityError::AppDir { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("cannot resolve the app directory"),
        "{e}"
    );
}

#[test]
fn every_component_is_configured() {
    let dir = tempfile::tempdir().expect("temp");
    let app = app_in(
        dir.path(),
        "[app]\nname = \"a\"\n\n[component.x]\nsource = \"x.wasm\"\n\n[component.y]\nsource = \"y.wasm\"\n\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"x\"\n",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let caps = rt
        .block_on(configure(
            &app,
            &RuntimeConfig::default(),
            &BTreeMap::new(),
            &Backends::new(),
        ))
        .expect("load");
    let names: Vec<String> = caps.into_components().into_keys().collect();
    assert_eq!(names, ["x", "y"]);
}

/// Whether `path` disappears within 10 s.
async fn gone(path: &Path) -> bool {
    for _ in 0..1000 {
        if !path.exists() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}
