//! Guests that misbehave fail alone: each gets its 5xx, is logged with the component
//! name and the reason, and a neighbour keeps getting 200s throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::common::*;

const APP: &str = r#"
[app]
name = "hostile"

[component.hostile]
source = "{{HOSTILE}}"
limits = { memory = "32MiB", timeout = "1s" }

# The same guest for the memory bomb, with time to reach its memory limit even on a
# loaded machine: it needs ~20-30 ms of CPU, and past 2 ms it moves to the slow lane,
# which runs only on CPU the event loops leave, so under a 1 s timeout a busy CI
# machine could time it out first.
[component.hostile-memory]
source = "{{HOSTILE}}"
limits = { memory = "32MiB", timeout = "20s" }

[component.hello]
source = "{{HELLO}}"

[[trigger.http]]
route = "/bad/..."
component = "hostile"

[[trigger.http]]
route = "/bomb/..."
component = "hostile-memory"

[[trigger.http]]
route = "/..."
component = "hello"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hostile_guest_fails_alone() {
    let server = Arc::new(Running::start(TestApp::new(APP)));

    // A neighbour that keeps asking for hello during every hostile case.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let neighbour = {
        let (stop, ok, bad, url) = (stop.clone(), ok.clone(), bad.clone(), server.url("/"));
        tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                match send(&c, "GET", &url, Bytes::new()).await {
                    Ok(r) if r.status == 200 && r.body.as_ref() == b"Hello, world!\n" => {
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => bad.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    let c = client();
    let cases: &[(&str, u16, &str)] = &[
        ("/bad/loop", 504, "Timeout"),
        ("/bad/sleep", 504, "exceeded its timeout"),
        ("/bomb/alloc", 500, "MemoryLimit"),
        ("/bad/trap", 500, "unreachable"),
        ("/bad/stack", 500, "StackOverflow"),
        ("/bad/shadow-stack", 500, "out of bounds memory access"),
        ("/bad/no-response", 500, "without setting a response"),
    ];
    for (path, status, reason) in cases {
        let before = ok.load(Ordering::Relaxed);
        let started = Instant::now();
        let r = get(&c, &server.url(path)).await;
        let took = started.elapsed();
        assert_eq!(r.status, *status, "{path}: {}", r.text());
        if *status == 504 {
            // Stopped at its 1 s limit, give or take scheduling.
            assert!(
                took >= Duration::from_millis(900) && took < Duration::from_secs(5),
                "{path} took {took:?}"
            );
        }
        assert!(
            server.wait_for_log(reason, Duration::from_secs(5)),
            "{path}: no log line with `{reason}`:\n{}",
            server.logs()
        );
        // The neighbour made progress while the hostile request ran (or right after).
        let deadline = Instant::now() + Duration::from_secs(5);
        while ok.load(Ordering::Relaxed) <= before + 5 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            ok.load(Ordering::Relaxed) > before + 5,
            "neighbour stalled during {path}"
        );
    }

    // Panic after the guest set its response and wrote part of the body: if atoll saw the
    // failure before sending anything the client gets a 500; if the headers were already
    // out, the body is cut short (an error). Never a response that looks complete.
    let r = send(
        &c,
        "GET",
        &server.url("/bad/panic-after-headers"),
        Bytes::new(),
    )
    .await;
    match r {
        Err(_) => {}
        Ok(r) if r.status == 500 => {}
        Ok(r) => panic!(
            "a truncated response looked complete: {} {:?}",
            r.status,
            r.text()
        ),
    }
    assert!(server.wait_for_log("component=hostile", Duration::from_secs(5)));

    // Every failure line names the component (hostile, or hostile-memory for the bomb).
    let logs = server.logs();
    let failures: Vec<&str> = logs.lines().filter(|l| l.contains("guest")).collect();
    assert!(failures.len() >= 7, "{logs}");
    assert!(
        failures.iter().all(|l| l.contains("component=hostile")),
        "{logs}"
    );

    // And the process is still healthy: hostile's well-behaved path works too.
    assert_eq!(get(&c, &server.url("/bad/ok")).await.status, 200);
    stop.store(true, Ordering::Relaxed);
    neighbour.await.expect("neighbour task");
    assert_eq!(bad.load(Ordering::Relaxed), 0, "the neighbour got errors");
    assert!(ok.load(Ordering::Relaxed) > 50);
}

/// What the counter guest answers from a fresh instance: nothing a previous request
/// wrote is visible (its counter, a zeroed static, the initialised data segment, the heap
/// and the stack).
const PRISTINE: &str = "count=1 dirty=false tag=pristine heap=clean stack=clean";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_instance_per_request() {
    fresh_instances(&[]).await;
}

/// The same, with the zeroing reset that machines without `PAGEMAP_SCAN` (or with swap
/// on) get, forced by the runtime config: that path runs on every machine too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_instance_per_request_with_the_zeroing_reset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("runtime.toml");
    std::fs::write(&config, "[limits]\nmemory_reset = \"zeroing\"\n").expect("write config");
    let server = fresh_instances(&["--runtime-config", config.to_str().expect("utf-8 path")]).await;
    // With pooling: without it there is no slot reuse, and the test would prove nothing.
    assert!(
        !server.logs().contains("pooling allocator unavailable"),
        "{}",
        server.logs()
    );
    assert!(
        server.logs().contains("reset by zeroing")
            && server
                .logs()
                .contains("memory_reset = \"zeroing\" was asked for"),
        "the zeroing reset was not used:\n{}",
        server.logs()
    );
}

async fn fresh_instances(args: &[&str]) -> Running {
    let server = Running::start_with(
        TestApp::new(
            r#"
[app]
name = "fresh"

[component.counter]
source = "{{COUNTER}}"

[component.hostile]
source = "{{HOSTILE}}"

[[trigger.http]]
route = "/bad/..."
component = "hostile"

[[trigger.http]]
route = "/..."
component = "counter"
"#,
        ),
        &shared_home(),
        args,
    );
    // The probes find their own marks when run twice in one instance, so a clean answer
    // below means the state was reset, not that the probes are blind.
    let c = client();
    assert_eq!(
        get(&c, &server.url("/?again=1")).await.text(),
        format!("{PRISTINE} again: tag=dirtied! heap=dirty stack=dirty\n")
    );
    // Globals and memory written by one request are never seen by the next: over one
    // keep-alive connection (a raw one, so a reconnect could not hide a reuse)...
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let mut conn = RawConn::open(addr);
        for _ in 0..50 {
            let (status, _, body) = conn.get("/");
            assert_eq!((status, body), (200, format!("{PRISTINE}\n")));
        }
    })
    .await
    .expect("keep-alive client");
    // ...and over many at once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = server.url("/");
        tasks.push(tokio::spawn(async move {
            let c = client();
            for _ in 0..25 {
                assert_eq!(get(&c, &url).await.text(), format!("{PRISTINE}\n"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    // Memory grown past what a pool slot keeps resident (decommitted on reset, not
    // scanned) is zero again for the next instance in the same slot.
    for _ in 0..20 {
        let r = get(&c, &server.url("/?grow=1")).await;
        assert_eq!(r.text(), format!("{PRISTINE} grown_dirty=false\n"));
    }
    // A trap does not poison the component: the next request gets a healthy instance.
    for _ in 0..10 {
        assert_eq!(get(&c, &server.url("/bad/trap")).await.status, 500);
        let ok = get(&c, &server.url("/bad/ok")).await;
        assert_eq!((ok.status, ok.text().as_str()), (200, "ok\n"));
    }
    server
}
