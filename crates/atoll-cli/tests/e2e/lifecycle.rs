//! Process lifecycle: the compile cache and graceful shutdown.

use std::time::Duration;

use crate::common::*;

const HELLO: &str = r#"
[app]
name = "cached"

[component.hello]
source = "{{HELLO}}"

[[trigger.http]]
route = "/..."
component = "hello"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_start_loads_from_the_compile_cache() {
    let home = tempfile::tempdir().expect("temp home");
    let first = Running::start_with(TestApp::new(HELLO), home.path(), &[]);
    assert!(
        first.logs().contains("compiled and cached"),
        "{}",
        first.logs()
    );
    assert_eq!(get(&client(), &first.url("/")).await.status, 200);
    drop(first);

    let artifacts: Vec<_> = std::fs::read_dir(home.path().join("cache"))
        .expect("cache dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "one artifact per component");

    let second = Running::start_with(TestApp::new(HELLO), home.path(), &[]);
    assert!(
        second.logs().contains("loaded from the compile cache"),
        "{}",
        second.logs()
    );
    assert!(
        !second.logs().contains("compiled and cached"),
        "{}",
        second.logs()
    );
    assert_eq!(
        get(&client(), &second.url("/")).await.text(),
        "Hello, world!\n"
    );

    // A corrupted artifact is not trusted: it is recompiled.
    drop(second);
    std::fs::write(artifacts[0].path(), b"garbage").expect("corrupt");
    let third = Running::start_with(TestApp::new(HELLO), home.path(), &[]);
    assert!(
        third.logs().contains("compiled and cached"),
        "{}",
        third.logs()
    );
    assert_eq!(get(&client(), &third.url("/")).await.status, 200);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_directory_others_can_write_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().expect("temp home");
    let cache = home.path().join("cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let server = Running::start_with(TestApp::new(HELLO), home.path(), &[]);
    assert!(
        server.logs().contains("not using the compile cache"),
        "{}",
        server.logs()
    );
    assert!(
        server.logs().contains("compiled (no cache)"),
        "{}",
        server.logs()
    );
    assert_eq!(get(&client(), &server.url("/")).await.status, 200);
    // Nothing was written into it.
    assert_eq!(std::fs::read_dir(&cache).expect("read cache").count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let mut server = Running::start(TestApp::new(
        r#"
[app]
name = "drain"

[component.slow]
source = "{{SLOW}}"

[[trigger.http]]
route = "/..."
component = "slow"
"#,
    ));
    let url = server.url("/?ms=2500");
    let in_flight = tokio::spawn(async move { get(&client(), &url).await });
    // The guest logs a line as it starts: from then on the request is in flight.
    assert!(
        server.wait_for_log("sleeping 2500ms", Duration::from_secs(30)),
        "{}",
        server.logs()
    );

    let addr = server.addr;
    signal(server.pid(), "TERM");
    // While draining, new connections are refused: the listener is closed before the
    // server logs that it is waiting.
    assert!(
        server.wait_for_log("shutting down: waiting up to", Duration::from_secs(10)),
        "{}",
        server.logs()
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit(Duration::from_secs(15));
        (status, server)
    });
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "a new connection was accepted during shutdown"
    );
    let r = in_flight.await.expect("in-flight request");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slept 2500ms\n");
    let (status, server) = status.await.expect("terminate");
    let status = status.expect("atoll exited after SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.logs()
    );
    assert!(server.logs().contains("received SIGTERM"));
}
