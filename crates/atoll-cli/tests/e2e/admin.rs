//! `atoll up --admin`: the metrics count exactly what was asked, Prometheus' own tools
//! accept and scrape them, the admin server refuses writes and other origins, and the
//! dashboard shows requests and failures live in a real browser (Debian's chromium).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::common::*;

const APP: &str = r#"
[app]
name = "admin"

[component.hello]
source = "{{HELLO}}"

[component.hostile]
source = "{{HOSTILE}}"
limits = { memory = "32MiB", timeout = "1s" }

[component.logs]
source = "{{LOGS}}"

[component.slow]
source = "{{SLOW}}"

[[trigger.http]]
route = "/slow/..."
component = "slow"

[[trigger.http]]
route = "/hello/..."
component = "hello"

[[trigger.http]]
route = "/logs/..."
component = "logs"

[[trigger.http]]
route = "/bad/..."
component = "hostile"
"#;

/// Start the app with `--admin 127.0.0.1:0`; the admin address from the log.
fn start() -> (Running, SocketAddr) {
    let server = Running::start_with(
        TestApp::new(APP),
        &shared_home(),
        &["--admin", "127.0.0.1:0"],
    );
    assert!(
        server.wait_for_log("admin: dashboard on http://", Duration::from_secs(10)),
        "{}",
        server.logs()
    );
    let logs = server.logs();
    let addr = logs
        .split("admin: dashboard on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no admin address in the log:\n{logs}"));
    (server, addr)
}

/// One request with exactly these headers, `connection: close`: (status, head, body).
fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the admin server");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

pub(super) fn metrics_text(admin: SocketAddr) -> String {
    let host = admin.to_string();
    let (status, head, body) = raw(admin, "GET", "/metrics", &[("host", &host)]);
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body
}

/// `name{labels}` -> value, for every sample line.
pub(super) fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

pub(super) fn value(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| {
        panic!("no sample `{key}` in:\n{}", {
            let mut keys: Vec<&String> = samples.keys().collect();
            keys.sort();
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
    })
}

/// Prometheus' own checker accepts `text` (no errors, no lint warnings).
pub(super) fn promtool_accepts(text: &str) {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; .ci/run installs it)");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const HELLO_GET: &str = r#"http_server_request_duration_seconds_count{app="admin",component="hello",http_route="/hello/...",http_request_method="GET",http_response_status_code="200"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_and_prometheus_scrapes_them() {
    let (server, admin) = start();
    let c = client();
    for _ in 0..5 {
        let r = get(&c, &server.url("/hello/x")).await;
        assert_eq!(r.status, 200);
    }
    for _ in 0..2 {
        let r = send(
            &c,
            "POST",
            &server.url("/hello/x"),
            Bytes::from_static(b"hi"),
        )
        .await
        .expect("post");
        assert_eq!(r.status, 200);
    }
    assert_eq!(get(&c, &server.url("/bad/trap")).await.status, 500);
    assert_eq!(get(&c, &server.url("/bad/loop")).await.status, 504);
    assert_eq!(get(&c, &server.url("/nowhere")).await.status, 404);
    // A refused socket: counted as a denial of its kind, and nothing else.
    assert_eq!(
        get(&c, &server.url("/bad/denied-then-trap")).await.status,
        500
    );
    // A method no convention names is `_OTHER`, not a label value a client made up.
    let r = send(&c, "BREW", &server.url("/hello/x"), Bytes::new())
        .await
        .expect("brew");
    assert_eq!(r.status, 200);

    let text = metrics_text(admin);
    let s = samples(&text);
    assert_eq!(value(&s, HELLO_GET), 5.0, "{text}");
    assert_eq!(value(&s, &HELLO_GET.replace("GET", "POST")), 2.0, "{text}");
    assert_eq!(
        value(&s, &HELLO_GET.replace("GET", "_OTHER")),
        1.0,
        "{text}"
    );
    assert!(!text.contains("BREW"), "{text}");
    let hostile = |method: &str, status: &str| {
        format!(
            r#"http_server_request_duration_seconds_count{{app="admin",component="hostile",http_route="/bad/...",http_request_method="{method}",http_response_status_code="{status}"}}"#
        )
    };
    assert_eq!(value(&s, &hostile("GET", "500")), 2.0);
    assert_eq!(value(&s, &hostile("GET", "504")), 1.0);
    assert_eq!(value(&s, "atoll_http_unrouted_requests_total"), 1.0);
    assert_eq!(
        value(
            &s,
            r#"atoll_guest_runs_total{app="admin",component="hello",outcome="ok"}"#
        ),
        8.0
    );
    assert_eq!(
        value(
            &s,
            r#"atoll_guest_runs_total{app="admin",component="hostile",outcome="trap"}"#
        ),
        2.0
    );
    let denied = |kind: &str| {
        format!(
            r#"atoll_capability_denials_total{{app="admin",component="hostile",kind="{kind}"}}"#
        )
    };
    assert_eq!(value(&s, &denied("socket")), 1.0, "{text}");
    assert_eq!(value(&s, &denied("outbound_http")), 0.0);
    assert_eq!(value(&s, &denied("config")), 0.0);
    assert_eq!(value(&s, &denied("key_value")), 0.0);
    assert_eq!(
        value(
            &s,
            r#"atoll_capability_denials_total{app="admin",component="hello",kind="socket"}"#
        ),
        0.0
    );
    assert_eq!(
        value(
            &s,
            r#"atoll_limit_hits_total{app="admin",component="hostile",limit="timeout"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            r#"atoll_limit_hits_total{app="admin",component="hello",limit="timeout"}"#
        ),
        0.0
    );
    assert_eq!(
        value(
            &s,
            r#"atoll_instantiation_duration_seconds_count{app="admin",component="hello"}"#
        ),
        8.0
    );
    // The timeout's run lasted its second; the hello runs far less.
    let hostile_sum = value(
        &s,
        r#"atoll_guest_run_duration_seconds_sum{app="admin",component="hostile"}"#,
    );
    assert!((0.9..10.0).contains(&hostile_sum), "{hostile_sum}");
    assert_eq!(
        value(&s, r#"atoll_instances_live{app="admin",component="hello"}"#),
        0.0
    );
    assert!(value(&s, "process_resident_memory_bytes") > 1e6);
    // Buckets are cumulative and end at the count.
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.starts_with(
                "http_server_request_duration_seconds_bucket{app=\"admin\",component=\"hello\"",
            ) && l.contains("http_request_method=\"GET\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect();
    assert_eq!(buckets.len(), 18, "{text}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last().copied(), Some(5.0));

    // A client that goes away while its guest runs: the request is counted as 499, its run
    // as cancelled, and no instance stays live.
    {
        let mut conn = TcpStream::connect(server.addr).expect("connect");
        write!(conn, "GET /slow/?ms=5000 HTTP/1.1\r\nhost: x\r\n\r\n").expect("send");
        assert!(
            server.wait_for_log("sleeping 5000ms", Duration::from_secs(10)),
            "{}",
            server.logs()
        );
        let live = r#"atoll_instances_live{app="admin",component="slow"}"#;
        assert_eq!(value(&samples(&metrics_text(admin)), live), 1.0);
    }
    let gone = r#"http_server_request_duration_seconds_count{app="admin",component="slow",http_route="/slow/...",http_request_method="GET",http_response_status_code="499"}"#;
    let cancelled = r#"atoll_guest_runs_total{app="admin",component="slow",outcome="cancelled"}"#;
    let deadline = Instant::now() + Duration::from_secs(4);
    let s = loop {
        let s = samples(&metrics_text(admin));
        if s.get(gone) == Some(&1.0) || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(value(&s, gone), 1.0);
    assert_eq!(value(&s, cancelled), 1.0);
    assert_eq!(
        value(&s, r#"atoll_instances_live{app="admin",component="slow"}"#),
        0.0
    );
    let text = metrics_text(admin);
    promtool_accepts(&text);

    // A real Prometheus scrapes it and answers a query with the same count.
    let prom = Prometheus::start(admin);
    let query = r#"sum(http_server_request_duration_seconds_count{app="admin",component="hello",http_request_method="GET"})"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        last = prom.query(query).unwrap_or(last);
        if last.contains("\"5\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the 5 requests; last answer: {last}\nits log:\n{}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let up = prom.query(r#"up{job="atoll"}"#).unwrap_or_default();
    assert!(up.contains("\"1\""), "{up}");
}

/// A Prometheus server of the test's own, scraping `target` every second.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: atoll\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let addr = free_addr();
        let log = std::fs::File::create(dir.path().join("log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's prometheus package; .ci/run installs it)");
        Self { child, addr, dir }
    }

    /// The JSON answer of an instant query, if Prometheus answered.
    fn query(&self, q: &str) -> Option<String> {
        let encoded: String = q
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let host = self.addr.to_string();
        let mut s = TcpStream::connect(self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /api/v1/query?query={encoded} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out.split_once("\r\n\r\n")?.1.to_string())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_server_is_read_only_and_refuses_other_origins() {
    let (_server, admin) = start();
    let host = admin.to_string();
    let own_origin = format!("http://{host}");

    let (status, head, body) = raw(admin, "GET", "/", &[("host", &host)]);
    assert_eq!(status, 200);
    assert!(body.contains("<title>atoll: what runs</title>"), "{body}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(head.contains("x-frame-options: deny"), "{head}");
    // Same-origin fetches (what the page itself does) pass.
    let (status, _, body) = raw(
        admin,
        "GET",
        "/api/state",
        &[
            ("host", &host),
            ("origin", &own_origin),
            ("sec-fetch-site", "same-origin"),
        ],
    );
    assert_eq!(status, 200);
    assert!(body.contains("\"name\":\"hello\""), "{body}");

    for method in ["POST", "PUT", "DELETE"] {
        let (status, _, body) = raw(
            admin,
            method,
            "/metrics",
            &[("host", &host), ("content-length", "0")],
        );
        assert_eq!(status, 405, "{method}: {body}");
        assert!(body.contains("read-only"), "{body}");
    }
    // DNS rebinding: a name that resolves to 127.0.0.1 for an attacker's page.
    let (status, _, body) = raw(
        admin,
        "GET",
        "/api/state",
        &[("host", &format!("rebind.attacker.example:{}", admin.port()))],
    );
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("hello"), "{body}");
    let (status, _, body) = raw(
        admin,
        "GET",
        "/api/state",
        &[("host", &host), ("origin", "http://attacker.example")],
    );
    assert_eq!(status, 403, "{body}");
    for (header, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "null"),
    ] {
        let (status, _, _) = raw(admin, "GET", "/events", &[("host", &host), (header, value)]);
        assert_eq!(status, 403, "{header}: {value}");
    }

    // The live stream: a `state` event within a few seconds.
    let mut s = TcpStream::connect(admin).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET /events HTTP/1.1\r\nhost: {host}\r\n\r\n").expect("send");
    let mut reader = BufReader::new(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if line.starts_with("event: state") {
            break;
        }
    }
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    assert!(
        seen.contains("event: log"),
        "the kept log lines come first: {seen}"
    );
    assert!(seen.contains("event: state"), "{seen}");
}

/// Where the dashboard's screenshot is kept (a test artifact).
fn screenshot_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir.join("dashboard.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_requests_and_failures_live_in_a_browser() {
    let browser_dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser"));
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix {}` (.ci/run does), and install Debian's chromium",
        browser_dir.display()
    );
    let (server, admin) = start();
    let c = client();
    for _ in 0..3 {
        assert_eq!(get(&c, &server.url("/hello/x")).await.status, 200);
    }
    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    let mut node = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .arg(format!("http://{admin}"))
        .arg("3")
        .arg(&shot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let stdout = node.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(90));
    if ready.as_deref() != Ok("READY") {
        let _ = node.kill();
        let out = node.wait_with_output().expect("node output");
        panic!(
            "the dashboard did not show the requests: {ready:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Now a failure, while the page is open: it must appear without a reload. And a guest
    // line of HTML with a script, which must show as text.
    let r = get(&c, &server.url("/logs/?html=1")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "logged\n"));
    assert!(
        server.wait_for_log("<b>bold guest</b>", Duration::from_secs(5)),
        "{}",
        server.logs()
    );
    assert_eq!(
        get(&c, &server.url("/bad/denied-then-trap")).await.status,
        500
    );
    node.stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("tell the browser script");
    let out = node.wait_with_output().expect("node");
    // Every line the script printed, once its stdout has closed.
    reader.join().expect("stdout reader");
    let said: Vec<String> = rx.try_iter().collect();
    assert!(
        out.status.success() && said.iter().any(|l| l == "OK"),
        "browser check failed: {said:?}\n{}\natoll's log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
