//! A tenant that floods cannot starve its neighbours: the slow lane and the failure
//! budget (atoll-runtime's `fairness`), end to end. Coarse on purpose (timing in tests
//! is noisy, and the tests share the machine); `bench/flood` measures the exact share.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::common::*;

const APP: &str = r#"
[app]
name = "tenants"

[component.good]
source = "{{HELLO}}"

[component.bad]
source = "{{HOSTILE}}"
limits = { memory = "32MiB", timeout = "200ms" }

[[trigger.http]]
route = "/bad/..."
component = "bad"

[[trigger.http]]
route = "/..."
component = "good"
"#;

/// Hello answers that `clients` keep-alive clients get in `span`; panics on any other
/// answer (the neighbour must never see an error).
async fn neighbour_throughput(url: &str, clients: usize, span: Duration) -> u64 {
    let ok = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + span;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (ok, url) = (ok.clone(), url.to_string());
            tokio::spawn(async move {
                let c = client();
                while Instant::now() < until {
                    let r = get(&c, &url).await;
                    assert_eq!(
                        r.status,
                        200,
                        "the neighbour got {}: {}",
                        r.status,
                        r.text()
                    );
                    assert_eq!(r.body.as_ref(), b"Hello, world!\n");
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("neighbour client");
    }
    ok.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_neighbour_keeps_being_served() {
    // One event loop: the hardest case (everything shares one thread).
    let server = Running::start_with(TestApp::new(APP), &shared_home(), &["--workers", "1"]);
    let url = server.url("/");
    let span = Duration::from_secs(2);
    neighbour_throughput(&url, 4, Duration::from_millis(300)).await;
    let calm = neighbour_throughput(&url, 4, span).await;

    // 20 connections that never back off: infinite loops into the timeout, memory bombs
    // into the memory limit, traps.
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let flood: Vec<_> = ["/bad/loop"; 8]
        .into_iter()
        .chain(["/bad/alloc"; 8])
        .chain(["/bad/trap"; 4])
        .map(|path| {
            let (stop, statuses, url) = (stop.clone(), statuses.clone(), server.url(path));
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let status = match send(&c, "GET", &url, Bytes::new()).await {
                        Ok(r) => r.status,
                        Err(_) => 0,
                    };
                    *statuses
                        .lock()
                        .expect("statuses")
                        .entry(status)
                        .or_default() += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flooded = neighbour_throughput(&url, 4, span).await;
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.expect("flood client");
    }

    // Before the slow lane and the failure budget the neighbour kept well under 1%.
    assert!(
        flooded * 2 >= calm,
        "the neighbour served {flooded} requests flooded vs {calm} calm"
    );
    // The hostile requests failed cleanly, each with a status of its own.
    let statuses = statuses.lock().expect("statuses").clone();
    assert!(
        statuses.keys().all(|s| [500, 503, 504].contains(s)),
        "hostile statuses: {statuses:?}"
    );
    assert!(
        statuses.contains_key(&503),
        "a flood that ignores retry-after is slowed down with 503s: {statuses:?}"
    );
    assert!(
        server.wait_for_log("component keeps failing", Duration::from_secs(5)),
        "{}",
        server.logs()
    );
    // And the process is fine: the hostile component's good path works again once its
    // failures age out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&client(), &server.url("/bad/ok")).await.status, 200);
    assert_eq!(get(&client(), &url).await.status, 200);
}

/// CPU seconds and scheduling policy of each of `pid`'s threads whose name starts with
/// `prefix` (from `/proc/PID/task/*/stat`).
fn threads_cpu(pid: u32, prefix: &str) -> Vec<(f64, u32)> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let Ok(stat) = std::fs::read_to_string(task.expect("task").path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // utime, stime: fields 14, 15 of stat(5); policy: field 41.
        out.push(((num(11) + num(12)) as f64 / tick, num(38) as u32));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_that_computes_moves_off_the_event_loop() {
    // One loop, and five guests that spin until their 2 s timeout. Before the slow lane
    // they spun on the loop itself, in slices round-robin with every other request.
    let app = TestApp::new(
        r#"
[app]
name = "compute"

[component.spin]
source = "{{HOSTILE}}"
limits = { timeout = "2s" }

[component.hello]
source = "{{HELLO}}"

[[trigger.http]]
route = "/spin/..."
component = "spin"

[[trigger.http]]
route = "/..."
component = "hello"
"#,
    );
    let server = Running::start_with(app, &shared_home(), &["--workers", "1"]);
    assert_eq!(get(&client(), &server.url("/")).await.status, 200);
    let loop_before: f64 = threads_cpu(server.pid(), "atoll-http")
        .iter()
        .map(|t| t.0)
        .sum();
    let spin = || {
        let url = server.url("/spin/loop");
        tokio::spawn(async move { get(&client(), &url).await.status })
    };
    let mut spinners: Vec<_> = (0..4).map(|_| spin()).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // They were moved: the component is heavy now, and its next request starts on the
    // slow lane.
    spinners.push(spin());
    // Meanwhile hello is answered (coarse: a loaded CI machine).
    let c = client();
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(get(&c, &server.url("/")).await.status, 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "a hello took {:?}",
            t.elapsed()
        );
    }
    for s in spinners {
        assert_eq!(s.await.expect("spinner"), 504);
    }
    // The spinning happened on the slow lane, at the idle priority, not on the loop.
    let on_loop = threads_cpu(server.pid(), "atoll-http")
        .iter()
        .map(|t| t.0)
        .sum::<f64>()
        - loop_before;
    let slow = threads_cpu(server.pid(), "atoll-slow");
    let on_slow: f64 = slow.iter().map(|t| t.0).sum();
    assert!(!slow.is_empty(), "no slow-lane threads");
    assert!(
        slow.iter().all(|t| t.1 == 5),
        "slow-lane threads not SCHED_IDLE (5): {slow:?}"
    );
    assert!(
        on_loop < 0.5 && on_slow > on_loop,
        "five 2 s spinners used {on_loop:.2} s of the event loop's CPU and {on_slow:.2} s of the slow lane's"
    );
    assert!(
        server.wait_for_log("component is CPU-heavy", Duration::from_secs(5)),
        "{}",
        server.logs()
    );
}
