//! `atoll up --watch`: new versions swap in under load, with no failed request; a bad
//! version is reported and the old one keeps serving; key-value data survives a reload.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Running, TestApp, client, get, send, shared_home};

const HELLO_BODY: &str = "Hello, world!\n";

/// Which version answered `GET /`.
fn version_of(body: &str) -> &'static str {
    if body == HELLO_BODY {
        "hello"
    } else if body.starts_with("info ") {
        "info"
    } else {
        "other"
    }
}

fn artifact(version: &str) -> &'static str {
    match version {
        "hello" => test_programs_artifacts::HELLO,
        _ => test_programs_artifacts::INFO,
    }
}

/// Replace `dest` with `src`: through a temporary file and a rename (as build tools and
/// editors do), or in place (truncate and write).
fn replace(dest: &Path, src: &str, by_rename: bool) {
    let bytes = std::fs::read(src).expect("read artifact");
    if by_rename {
        let tmp = dest.with_extension("tmp");
        std::fs::write(&tmp, &bytes).expect("write temp");
        std::fs::rename(&tmp, dest).expect("rename");
    } else {
        std::fs::write(dest, &bytes).expect("write in place");
    }
}

/// Poll `url` on a client of its own until `live(body)` holds; how long that took since
/// `changed`. Fails the test after 60 s, with the server's logs.
async fn until_live(
    server: &Running,
    url: &str,
    changed: Instant,
    what: &str,
    live: impl Fn(&str) -> bool,
) -> Duration {
    let c = client();
    loop {
        if live(&get(&c, url).await.text()) {
            return changed.elapsed();
        }
        assert!(
            changed.elapsed() < Duration::from_secs(60),
            "{what} never went live; logs:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const MANIFEST: &str = r#"
[app]
name = "watched"
[component.web]
source = "app.wasm"
[[trigger.http]]
route = "/..."
component = "web"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_versions_swap_in_under_load_with_no_failed_request() {
    let app = TestApp::new(MANIFEST);
    let wasm = app.path().join("app.wasm");
    replace(&wasm, test_programs_artifacts::HELLO, false);
    let server = Running::start_with(app, &shared_home(), &["--watch"]);
    let url = server.url("/");
    assert_eq!(get(&client(), &url).await.text(), HELLO_BODY);

    // Load: 4 keep-alive clients in a loop, counting what they get.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failures, url) = (stop.clone(), ok.clone(), failures.clone(), url.clone());
        load.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match send(&c, "GET", &url, bytes::Bytes::new()).await {
                    Ok(r) if r.status == 200 && version_of(&r.text()) != "other" => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        failures
                            .lock()
                            .expect("lock")
                            .push(format!("{} {}", r.status, r.text()))
                    }
                    Err(e) => failures.lock().expect("lock").push(e),
                }
            }
        }));
    }

    let dir = wasm.parent().expect("app dir").to_path_buf();
    let mut times = Vec::new();
    let mut current = "hello";
    for swap in 0..6 {
        let next = if current == "hello" { "info" } else { "hello" };
        let by_rename = swap % 2 == 0;
        let changed = Instant::now();
        replace(&dir.join("app.wasm"), artifact(next), by_rename);
        // Poll on a client of its own until the new version answers.
        let what = format!("swap {swap} to {next}");
        let live_after = until_live(&server, &url, changed, &what, |b| version_of(b) == next).await;
        times.push(live_after);
        current = next;
        // Let the load run on the new version a little.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A bad version (not WebAssembly) is refused and the current one keeps serving.
    std::fs::write(dir.join("app.wasm"), b"this is not wasm").expect("write garbage");
    assert!(
        server.wait_for_log("reload failed", Duration::from_secs(30)),
        "no reload failure reported; logs:\n{}",
        server.logs()
    );
    assert!(server.logs().contains("is not a WebAssembly file"));
    assert_eq!(version_of(&get(&client(), &url).await.text()), current);
    // The next good change goes live.
    let next = if current == "hello" { "info" } else { "hello" };
    replace(&dir.join("app.wasm"), artifact(next), true);
    let changed = Instant::now();
    times.push(
        until_live(
            &server,
            &url,
            changed,
            "the version after the bad one",
            |b| version_of(b) == next,
        )
        .await,
    );

    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("load task");
    }
    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "{} failed requests during the swaps (of {} ok): {:?}",
        failures.len(),
        ok.load(Ordering::Relaxed),
        &failures[..failures.len().min(10)]
    );
    assert!(ok.load(Ordering::Relaxed) > 100, "too little load ran");
    eprintln!("time from change to live, per swap: {times:?}");
    // The first two swaps may compile a version for the first time; after that both are
    // in the compile cache, and a change is live within a second.
    for (i, t) in times.iter().enumerate().skip(2) {
        assert!(
            *t < Duration::from_secs(1),
            "swap {i} went live {t:?} after the change; logs:\n{}",
            server.logs()
        );
    }
}

#[tokio::test]
async fn a_manifest_change_reloads_and_key_value_data_survives_it() {
    let manifest = |route: &str| {
        format!(
            r#"
[app]
name = "kvwatch"
[component.kv]
source = "{{{{KV}}}}"
key_value_stores = ["default"]
[[trigger.http]]
route = "{route}"
component = "kv"
"#
        )
    };
    let app = TestApp::new(&manifest("/a/..."));
    let dir = app.path().to_path_buf();
    let server = Running::start_with(app, &shared_home(), &["--watch"]);
    let c = client();
    for _ in 0..3 {
        let r = get(&c, &server.url("/a?store=default&op=incr&key=n&by=1")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // A broken manifest is reported with its line, and the old version keeps serving.
    std::fs::write(
        dir.join("atoll.toml"),
        "[app]\nname = \"kvwatch\"\nbogus = 1\n",
    )
    .expect("write manifest");
    assert!(
        server.wait_for_log("reload failed", Duration::from_secs(30)),
        "logs:\n{}",
        server.logs()
    );
    assert!(
        server.logs().contains("atoll.toml:3"),
        "logs:\n{}",
        server.logs()
    );
    assert_eq!(
        get(&c, &server.url("/a?store=default&op=get&key=n"))
            .await
            .text(),
        "3"
    );
    // Move the route: the new manifest goes live, the old route is gone, the data stays.
    std::fs::write(
        dir.join("atoll.toml"),
        crate::common::expand(&manifest("/b/...")),
    )
    .expect("write manifest");
    let changed = Instant::now();
    loop {
        let r = get(&c, &server.url("/b?store=default&op=incr&key=n&by=1")).await;
        if r.status == 200 {
            assert_eq!(r.text(), "4", "the counter was reset by the reload");
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(60),
            "the new manifest never went live; logs:\n{}",
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(&c, &server.url("/a?store=default&op=get&key=n"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_failed_build_keeps_the_old_version_and_only_changed_components_rebuild() {
    let app = TestApp::new(
        r#"
[app]
name = "builds"
[component.web]
source = "app.wasm"
build = { command = "cp next.wasm app.wasm", watch = ["web-src.txt"] }
[component.other]
source = "other.wasm"
build = { command = "touch other-was-built && cp app.wasm other.wasm", watch = ["other-src.txt"] }
[[trigger.http]]
route = "/..."
component = "web"
[[trigger.http]]
route = "/other"
component = "other"
"#,
    );
    let dir = app.path().to_path_buf();
    // Inputs first, outputs after: nothing is stale at start.
    std::fs::write(dir.join("web-src.txt"), "v1").expect("write");
    std::fs::write(dir.join("other-src.txt"), "v1").expect("write");
    std::thread::sleep(Duration::from_millis(20));
    replace(&dir.join("app.wasm"), test_programs_artifacts::HELLO, false);
    replace(
        &dir.join("other.wasm"),
        test_programs_artifacts::HELLO,
        false,
    );
    let server = Running::start_with(app, &shared_home(), &["--watch"]);
    let c = client();
    assert_eq!(get(&c, &server.url("/")).await.text(), HELLO_BODY);

    // The build fails (there is no next.wasm): reported, and hello keeps serving.
    std::fs::write(dir.join("web-src.txt"), "v2").expect("write");
    assert!(
        server.wait_for_log("reload failed", Duration::from_secs(30)),
        "logs:\n{}",
        server.logs()
    );
    assert!(
        server
            .logs()
            .contains("the build of component `web` failed"),
        "logs:\n{}",
        server.logs()
    );
    assert_eq!(get(&c, &server.url("/")).await.text(), HELLO_BODY);

    // Fixed: the next change builds and goes live; the other component was not rebuilt.
    replace(&dir.join("next.wasm"), test_programs_artifacts::INFO, false);
    std::fs::write(dir.join("web-src.txt"), "v3").expect("write");
    let changed = Instant::now();
    until_live(&server, &server.url("/"), changed, "the fixed build", |b| {
        version_of(b) == "info"
    })
    .await;
    assert!(
        !dir.join("other-was-built").exists(),
        "a component whose inputs did not change was rebuilt"
    );
    assert_eq!(get(&c, &server.url("/other")).await.text(), HELLO_BODY);
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_the_version_it_started_on() {
    let app = TestApp::new(MANIFEST);
    let wasm = app.path().join("app.wasm");
    replace(&wasm, test_programs_artifacts::SLOW, false);
    let server = Running::start_with(app, &shared_home(), &["--watch"]);
    let slow_url = server.url("/?ms=2000");
    let in_flight = tokio::spawn(async move { get(&client(), &slow_url).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    replace(&wasm, test_programs_artifacts::HELLO, true);
    let changed = Instant::now();
    until_live(&server, &server.url("/"), changed, "the new version", |b| {
        b == HELLO_BODY
    })
    .await;
    assert!(
        !in_flight.is_finished(),
        "the slow request ended before the swap"
    );
    let r = in_flight.await.expect("request task");
    assert_eq!((r.status, r.text().as_str()), (200, "slept 2000ms\n"));
}
