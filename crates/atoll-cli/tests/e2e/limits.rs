//! Limits that are always on: concurrency (503 + retry-after), body and header caps.

use std::time::Duration;

use bytes::Bytes;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_concurrency_limit_is_503_not_a_queue() {
    let server = Running::start(TestApp::new(
        r#"
[app]
name = "busy"

[component.slow]
source = "{{SLOW}}"
limits = { max_concurrency = 2 }

[component.hello]
source = "{{HELLO}}"

[[trigger.http]]
route = "/slow"
component = "slow"

[[trigger.http]]
route = "/..."
component = "hello"
"#,
    ));
    // Two slow requests take both permits...
    let mut slow = Vec::new();
    for _ in 0..2 {
        let url = server.url("/slow?ms=3000");
        slow.push(tokio::spawn(async move { get(&client(), &url).await }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // ...so a third is refused at once, with a hint when to retry.
    let started = std::time::Instant::now();
    let r = get(&client(), &server.url("/slow?ms=10")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    // Not queued behind the slow ones, which hold their permits for 2 more seconds.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "503 should be immediate"
    );
    // Other components are not affected.
    assert_eq!(get(&client(), &server.url("/")).await.status, 200);
    for t in slow {
        assert_eq!(t.await.expect("slow request").status, 200);
    }
    // Permits come back when requests finish.
    assert_eq!(get(&client(), &server.url("/slow?ms=1")).await.status, 200);
}

const ECHO: &str = r#"
[app]
name = "caps"

[component.echo]
source = "{{ECHO}}"

[[trigger.http]]
route = "/..."
component = "echo"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_and_heads_431() {
    let server = Running::start_with(
        TestApp::new(ECHO),
        &shared_home(),
        &["--max-body", "1MiB", "--max-headers", "16KiB"],
    );
    let c = client();
    // At the cap: fine.
    let ok = Bytes::from(vec![b'a'; 1024 * 1024]);
    let r = send(&c, "POST", &server.url("/"), ok.clone())
        .await
        .expect("post");
    assert_eq!((r.status, r.body.len()), (200, ok.len()));
    // Over the cap with content-length: refused before the guest runs.
    let big = Bytes::from(vec![b'a'; 1024 * 1024 + 1]);
    let r = send(&c, "POST", &server.url("/"), big.clone())
        .await
        .expect("post");
    assert_eq!(r.status, 413);

    // Over the cap without content-length (chunked), to a guest that reads the whole body
    // before answering: the body is cut off at the cap and the answer is 413.
    let chunked = raw_request(
        server.addr,
        &format!(
            "POST /?mode=count HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            2 * 1024 * 1024,
            "b".repeat(2 * 1024 * 1024)
        ),
    );
    assert!(
        chunked.starts_with("HTTP/1.1 413"),
        "{}",
        &chunked[..chunked.len().min(200)]
    );
    // A guest that streams its answer has sent 200 before the cap is hit; then the
    // response is cut off (no final chunk), never completed as if all was well.
    let streamed = raw_request(
        server.addr,
        &format!(
            "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            2 * 1024 * 1024,
            "b".repeat(2 * 1024 * 1024)
        ),
    );
    assert!(
        streamed.starts_with("HTTP/1.1 200"),
        "{}",
        &streamed[..streamed.len().min(200)]
    );
    assert!(
        !streamed.ends_with("0\r\n\r\n"),
        "a cut-off body ended cleanly"
    );

    // A request head over the cap: 431.
    let r = raw_request(
        server.addr,
        &format!(
            "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "h".repeat(32 * 1024)
        ),
    );
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    // And the server is fine afterwards.
    let r = send(
        &c,
        "POST",
        &server.url("/"),
        Bytes::from_static(b"still here"),
    )
    .await
    .expect("post");
    assert_eq!(r.text(), "still here");
}

/// Send raw bytes and read what comes back until the server closes or 5 s pass.
fn raw_request(addr: std::net::SocketAddr, req: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // The server may answer and close before the whole body is written.
    let _ = s.write_all(req.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A client that connects and sends nothing, or only part of the HTTP/2 preface, or half
/// a request head, is disconnected after `--header-timeout`; others are served meanwhile.
#[tokio::test]
async fn slow_clients_are_disconnected_after_the_header_timeout() {
    use std::io::{Read, Write};
    let server = Running::start_with(
        TestApp::new(ECHO),
        &shared_home(),
        &["--header-timeout", "1"],
    );
    let started = std::time::Instant::now();
    let mut slow = Vec::new();
    for first in ["", "PRI * HTTP/2.0\r\n", "GET / HTTP/1.1\r\nhost: x\r\n"] {
        let mut s = std::net::TcpStream::connect(server.addr).expect("connect");
        s.write_all(first.as_bytes()).expect("write");
        s.set_read_timeout(Some(Duration::from_secs(8)))
            .expect("timeout");
        slow.push((first, s));
    }
    // Meanwhile, a normal client is served.
    let r = get(&client(), &server.url("/")).await;
    assert_eq!(r.status, 200);
    for (first, mut s) in slow {
        let mut out = Vec::new();
        let read = s.read_to_end(&mut out);
        let took = started.elapsed();
        assert!(
            read.is_ok()
                || matches!(read, Err(ref e) if e.kind() == std::io::ErrorKind::ConnectionReset),
            "connection that sent {first:?} was not closed by the server: {read:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "connection that sent {first:?} was closed only after {took:?}"
        );
        // Nothing was served on it, except perhaps a 408 to the half request head.
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "unexpected answer to {first:?}: {text}"
        );
    }
}

/// A response body over `--max-response` is aborted (never ended as if complete) and
/// logged; one under it arrives whole.
#[tokio::test]
async fn responses_over_the_cap_are_aborted() {
    let server = Running::start_with(
        TestApp::new(ECHO),
        &shared_home(),
        &["--max-response", "1MiB"],
    );
    let c = client();
    let small = Bytes::from(vec![b'a'; 512 * 1024]);
    let r = send(&c, "POST", &server.url("/"), small.clone())
        .await
        .expect("post under the cap");
    assert_eq!((r.status, r.body.len()), (200, small.len()));

    let big = Bytes::from(vec![b'b'; 2 * 1024 * 1024]);
    match send(&c, "POST", &server.url("/"), big.clone()).await {
        Err(e) => assert!(e.contains("body"), "{e}"),
        Ok(r) => panic!(
            "a {} byte response over a 1 MiB cap ended cleanly with status {}",
            r.body.len(),
            r.status
        ),
    }
    assert!(
        server.wait_for_log("over the server's cap", Duration::from_secs(5)),
        "{}",
        server.logs()
    );
    // The server goes on serving.
    let r = send(&client(), "POST", &server.url("/"), small.clone())
        .await
        .expect("post after");
    assert_eq!(r.body.len(), small.len());
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_memory_budget_bounds_all_instances_together() {
    // Each bomb may grow to its own limit (128 MiB by default); together, all instances
    // may hold 64 MiB.
    let app = TestApp::new(
        r#"
[app]
name = "bombs"

[component.bomb]
source = "{{HOSTILE}}"

[component.hello]
source = "{{HELLO}}"

[[trigger.http]]
route = "/bomb/..."
component = "bomb"

[[trigger.http]]
route = "/..."
component = "hello"
"#,
    );
    let config = app.path().join("runtime.toml");
    std::fs::write(&config, "[limits]\nmemory_total = \"64MiB\"\n").expect("write config");
    let config = config.display().to_string();
    let server = Running::start_with(app, &shared_home(), &["--runtime-config", &config]);
    let before = peak_rss(server.pid());

    let bombs: Vec<_> = (0..8)
        .map(|_| {
            let url = server.url("/bomb/alloc");
            tokio::spawn(async move { get(&client(), &url).await })
        })
        .collect();
    for b in bombs {
        let r = b.await.expect("bomb request");
        // The budget, not the bomb's own 128 MiB limit, stopped it: capacity, 503.
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(r.text().contains("memory budget"), "{}", r.text());
    }
    // The neighbour is served, so the budget was given back by every bomb.
    for _ in 0..5 {
        let r = get(&client(), &server.url("/")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Eight bombs of up to 128 MiB each, yet the process grew by about the budget.
    let grew = peak_rss(server.pid()).saturating_sub(before);
    assert!(grew < 160 << 20, "peak RSS grew by {} MiB", grew >> 20);
    assert!(
        server.logs().contains("memory budget is spent"),
        "{}",
        server.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failures_is_counted_but_logged_once_per_second() {
    let server = Running::start(TestApp::new(
        r#"
[app]
name = "noisy"

[component.bomb]
source = "{{HOSTILE}}"

[[trigger.http]]
route = "/..."
component = "bomb"
"#,
    ));
    let c = client();
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    for _ in 0..30 {
        let t = std::time::Instant::now();
        let r = get(&c, &server.url("/trap")).await;
        answers.push((r.status, t.elapsed(), r.text()));
    }
    // The first ten are the guest's own 500s. Then its failure budget (10 per window) is
    // spent: it runs a few instances at a time (each kept 1 s after it fails), and a
    // request waits for one (250 ms) before its 503, so a client that retries at once is
    // slowed to the component's pace instead of being refused as fast as the server can.
    assert!(answers[..10].iter().all(|a| a.0 == 500), "{answers:?}");
    assert!(
        answers.iter().all(|a| a.0 == 500 || a.0 == 503),
        "{answers:?}"
    );
    let slowed: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert!(!slowed.is_empty(), "{answers:?}");
    assert!(
        slowed
            .iter()
            .all(|a| a.1 >= Duration::from_millis(200) && a.2.contains("keeps failing")),
        "{slowed:?}"
    );
    assert_eq!(
        server.logs().matches("component keeps failing").count(),
        1,
        "{}",
        server.logs()
    );
    let lines = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("component=bomb") && l.contains("guest failed"))
            .count()
    };
    // 30 traps, but a line per second of them at most (plus one for a window edge).
    let allowed = started.elapsed().as_secs() as usize + 2;
    let logged = lines(&server.logs());
    assert!(
        (1..=allowed).contains(&logged),
        "{logged} lines for 30 failures in {:?}:\n{}",
        started.elapsed(),
        server.logs()
    );
    // After the window, the next failure's line says how many were left out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&c, &server.url("/trap")).await.status, 500);
    assert!(
        server.wait_for_log("more failures of this kind", Duration::from_secs(5)),
        "{}",
        server.logs()
    );
}
