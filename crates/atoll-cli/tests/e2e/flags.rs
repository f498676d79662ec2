//! Every `atoll up` flag the README documents that no other test covers: `-f`,
//! `--cache-dir`, `--shutdown-grace`, `--workers` and `--no-pin`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::*;

const HELLO: &str = r#"
[app]
name = "flags"

[component.hello]
source = "{{HELLO}}"

[component.slow]
source = "{{SLOW}}"

[[trigger.http]]
route = "/slow"
component = "slow"

[[trigger.http]]
route = "/..."
component = "hello"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dash_f_serves_a_manifest_file_by_any_name() {
    // No atoll.toml in the directory: only the file given with -f.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("staging.toml");
    std::fs::write(&file, expand(HELLO)).expect("write manifest");
    let server = Running::start_command(
        Vec::new(),
        &[],
        &shared_home(),
        &["-f", file.to_str().expect("utf-8 path")],
        &[],
    );
    let r = get(&client(), &server.url("/hello/world")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "Hello, world!\n"));
    assert!(
        server.logs().contains("serving app `flags`"),
        "{}",
        server.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_dir_holds_the_compiled_components() {
    let cache = tempfile::tempdir().expect("temp dir");
    let cache_arg = cache.path().to_str().expect("utf-8 path").to_string();
    let args = ["--cache-dir", cache_arg.as_str()];
    let first = Running::start_with(TestApp::new(HELLO), &shared_home(), &args);
    assert!(
        first.logs().matches("compiled and cached").count() == 2,
        "both components are compiled into the new cache:\n{}",
        first.logs()
    );
    let entries = std::fs::read_dir(cache.path())
        .expect("the cache dir exists")
        .count();
    assert!(entries > 0, "nothing was written to --cache-dir");
    drop(first);
    // A second start with the same directory compiles nothing.
    let second = Running::start_with(TestApp::new(HELLO), &shared_home(), &args);
    assert_eq!(
        second
            .logs()
            .matches("loaded from the compile cache")
            .count(),
        2,
        "{}",
        second.logs()
    );
    assert!(!second.logs().contains("compiled and cached"));
    let r = get(&client(), &second.url("/hello/world")).await;
    assert_eq!(r.text(), "Hello, world!\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_grace_bounds_how_long_in_flight_requests_may_run() {
    let mut server = Running::start_with(
        TestApp::new(HELLO),
        &shared_home(),
        &["--shutdown-grace", "1"],
    );
    // A request that would take 20 s, well past the 1 s grace.
    let url = server.url("/slow?ms=20000");
    let in_flight =
        tokio::spawn(async move { send(&client(), "GET", &url, bytes::Bytes::new()).await });
    // Terminate once the guest is running (it logs a line as it starts).
    assert!(
        server.wait_for_log("sleeping 20000ms", Duration::from_secs(30)),
        "the slow request did not start:\n{}",
        server.logs()
    );
    let started = Instant::now();
    let (status, server) = tokio::task::spawn_blocking(move || {
        let status = server.terminate(Duration::from_secs(15));
        (status, server)
    })
    .await
    .expect("terminate");
    let took = started.elapsed();
    assert!(status.is_some(), "atoll did not exit:\n{}", server.logs());
    assert!(
        took < Duration::from_secs(10),
        "exit took {took:?} with a 1 s grace"
    );
    assert!(
        server
            .logs()
            .contains("waiting up to 1s for in-flight requests"),
        "{}",
        server.logs()
    );
    // The cut request did not get a clean answer.
    let r = in_flight.await.expect("client task");
    assert!(
        !matches!(&r, Ok(reply) if reply.status == 200),
        "the request outlived the grace period: {r:?}"
    );
}

/// The names of the threads of `pid` and the CPUs each may run on.
fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let path: PathBuf = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or("")
            .trim()
            .to_string();
        out.push((name.trim().to_string(), cpus));
    }
    out
}

/// CPUs this test process may use.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The CPU lists of the event loops of `pid`, once there are `n` of them that satisfy
/// `settled` (the loops start, and pin themselves, just after the server says it is
/// serving), or whatever there is after 10 s.
fn loops(pid: u32, n: usize, settled: impl Fn(&str) -> bool) -> Vec<String> {
    let read = || {
        let mut cpus: Vec<String> = threads(pid)
            .into_iter()
            .filter(|(name, _)| name.starts_with("atoll-http-"))
            .map(|(_, cpus)| cpus)
            .collect();
        cpus.sort();
        cpus
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cpus = read();
        if (cpus.len() == n && cpus.iter().all(|c| settled(c))) || Instant::now() > deadline {
            return cpus;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sets_the_number_of_event_loops() {
    // One loop more than cores: not one per core, so they float.
    let n = cpus() + 1;
    let workers = n.to_string();
    let server = Running::start_with(
        TestApp::new(HELLO),
        &shared_home(),
        &["--workers", workers.as_str()],
    );
    let all = threads(std::process::id())
        .first()
        .map(|(_, cpus)| cpus.clone())
        .unwrap_or_default();
    let more = loops(server.pid(), n, |c| c == all);
    assert_eq!(more.len(), n, "{:?}", threads(server.pid()));
    assert!(more.iter().all(|c| *c == all), "{more:?} vs {all}");
    // Every loop serves: many connections at once all get answers.
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let url = server.url("/hello/world");
        tasks.push(tokio::spawn(
            async move { get(&client(), &url).await.text() },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.expect("client"), "Hello, world!\n");
    }
    let one = Running::start_with(TestApp::new(HELLO), &shared_home(), &["--workers", "1"]);
    assert_eq!(loops(one.pid(), 1, |_| true).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_are_pinned_one_per_core_unless_no_pin() {
    let n = cpus();
    let all = threads(std::process::id())
        .first()
        .map(|(_, cpus)| cpus.clone())
        .unwrap_or_default();
    let single = |c: &str| !c.contains(',') && !c.contains('-');
    let pinned = Running::start(TestApp::new(HELLO));
    let loops_pinned = loops(pinned.pid(), n, single);
    assert_eq!(loops_pinned.len(), n, "one loop per core by default");
    let floating = Running::start_with(TestApp::new(HELLO), &shared_home(), &["--no-pin"]);
    let loops_floating = loops(floating.pid(), n, |c| c == all);
    assert_eq!(loops_floating.len(), n);
    // Pinned: each loop on one core of its own, every core used once.
    let mut distinct = loops_pinned.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), n, "{loops_pinned:?}");
    assert!(
        loops_pinned
            .iter()
            .all(|c| !c.contains(',') && !c.contains('-')),
        "a pinned loop may run on more than one core: {loops_pinned:?}"
    );
    // --no-pin: every loop may run anywhere this process may.
    assert!(
        loops_floating.iter().all(|c| *c == all),
        "{loops_floating:?} vs {all}"
    );
    if n == 1 {
        // On one core pinning and floating look the same; the counts above still hold.
        eprintln!("one CPU: pinned and floating loops cannot be told apart here");
    }
}
