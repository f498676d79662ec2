//! Outbound HTTP: `allowed_outbound_hosts` against a real HTTP server on 127.0.0.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::common::*;

/// A real HTTP/1.1 server on 127.0.0.1 for the guest to call.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

async fn upstream_handle(
    req: http::Request<Incoming>,
    hits: Arc<AtomicUsize>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    let mut resp = http::Response::new(Full::new(Bytes::new()));
    match req.uri().path() {
        "/ok" => *resp.body_mut() = Full::new(Bytes::from_static(b"upstream ok")),
        "/redirect" => {
            *resp.status_mut() = http::StatusCode::FOUND;
            resp.headers_mut().insert(
                http::header::LOCATION,
                http::HeaderValue::from_static("http://169.254.169.254/latest/meta-data/"),
            );
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
        "/hold" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            *resp.body_mut() = Full::new(Bytes::from_static(b"held"));
        }
        "/" => *resp.body_mut() = Full::new(Bytes::from(format!("target {}", req.uri()))),
        _ => *resp.status_mut() = http::StatusCode::NOT_FOUND,
    }
    Ok(resp)
}

impl Upstream {
    async fn start() -> Self {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// The same server, listening on `ip` instead of 127.0.0.1.
    async fn start_on(ip: std::net::IpAddr) -> Self {
        let up = Self::start_at(SocketAddr::new(ip, 0)).await;
        assert_eq!(up.addr.ip(), ip);
        up
    }

    async fn start_at(at: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(at).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let h = h.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| upstream_handle(req, h.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn manifest(port: u16) -> String {
    format!(
        r#"
[app]
name = "caller"

[component.allowed]
source = "{{{{OUTBOUND}}}}"
allowed_outbound_hosts = ["http://127.0.0.1:{port}"]

[component.anyport]
source = "{{{{OUTBOUND}}}}"
allowed_outbound_hosts = ["http://127.0.0.1:*"]

[component.none]
source = "{{{{OUTBOUND}}}}"

[[trigger.http]]
route = "/allowed"
component = "allowed"

[[trigger.http]]
route = "/anyport"
component = "anyport"

[[trigger.http]]
route = "/none"
component = "none"
"#
    )
}

async fn call(c: &HttpClient, url: &str, target: &str, extra: &[(&str, &str)]) -> Reply {
    let mut req = http::Request::builder().uri(url).header("x-url", target);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = c
        .request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_granted_hosts_are_reachable() {
    let up = Upstream::start().await;
    let port = up.addr.port();
    let server = Running::start(TestApp::new(&manifest(port)));
    let c = client();
    let allowed = server.url("/allowed");

    let r = call(&c, &allowed, &format!("http://127.0.0.1:{port}/ok"), &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "status 200\nupstream ok")
    );
    assert_eq!(up.hits(), 1);

    // Wrong scheme, wrong port, names for the IP, other spellings of the IP, userinfo.
    let other_port = if port == 65535 { port - 1 } else { port + 1 };
    let denied = [
        format!("https://127.0.0.1:{port}/ok"),
        format!("http://127.0.0.1:{other_port}/ok"),
        format!("http://localhost:{port}/ok"),
        format!("http://2130706433:{port}/ok"),
        format!("http://0x7f.1:{port}/ok"),
        format!("http://017700000001:{port}/ok"),
        format!("http://127.1:{port}/ok"),
        format!("http://127.0.0.1.:{port}/ok"),
        format!("http://[::ffff:127.0.0.1]:{port}/ok"),
        format!("http://[::1]:{port}/ok"),
        format!("http://user:pw@127.0.0.1:{port}/ok"),
        format!("http://127.0.0.1:{port}@evil.example/ok"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ];
    for target in &denied {
        let r = call(&c, &allowed, target, &[]).await;
        assert_ne!(r.status, 200, "{target} was allowed: {}", r.text());
        assert!(
            r.text().contains("HttpRequestDenied"),
            "{target}: {}",
            r.text()
        );
    }
    assert_eq!(up.hits(), 1, "a denied request reached the server");
    assert!(server.wait_for_log("169.254.169.254", Duration::from_secs(5)));
    let line = server
        .logs()
        .lines()
        .find(|l| {
            l.contains("capability denied")
                && l.contains(&format!("http://127.0.0.1:{other_port}/ok"))
        })
        .map(String::from)
        .unwrap_or_else(|| panic!("no denial line:\n{}", server.logs()));
    assert!(
        line.contains("component=allowed") && line.contains("app=caller"),
        "{line}"
    );

    // No grant: nothing is reachable. A port wildcard: any port of that host.
    let r = call(
        &c,
        &server.url("/none"),
        &format!("http://127.0.0.1:{port}/ok"),
        &[],
    )
    .await;
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    let r = call(
        &c,
        &server.url("/anyport"),
        &format!("http://127.0.0.1:{port}/ok"),
        &[],
    )
    .await;
    assert_eq!(r.text(), "status 200\nupstream ok");
    assert_eq!(up.hits(), 2);
}

/// A URL with a query and no path (`http://host:port?a=b`, path-with-query `?a=b`) is a
/// legal request: it goes out as `GET /?a=b`, as wasmtime's default sender sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_without_a_path_is_sent_as_origin_form() {
    let up = Upstream::start().await;
    let port = up.addr.port();
    let server = Running::start(TestApp::new(&manifest(port)));
    let c = client();
    let r = call(
        &c,
        &server.url("/allowed"),
        &format!("http://127.0.0.1:{port}?a=b"),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "status 200\ntarget /?a=b")
    );
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed_and_are_rechecked() {
    let up = Upstream::start().await;
    let port = up.addr.port();
    let server = Running::start(TestApp::new(&manifest(port)));
    let c = client();
    let target = format!("http://127.0.0.1:{port}/redirect");
    // The host hands the 302 to the guest as is.
    let r = call(&c, &server.url("/allowed"), &target, &[]).await;
    assert_eq!(r.text(), "status 302\n");
    // A guest that follows it makes a new request, which is checked like any other.
    let r = call(&c, &server.url("/allowed"), &target, &[("x-follow", "1")]).await;
    assert_eq!(r.status, 502);
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    assert!(server.wait_for_log(
        "http://169.254.169.254/latest/meta-data/",
        Duration::from_secs(5)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_the_in_flight_cap_hold() {
    let up = Upstream::start().await;
    let port = up.addr.port();
    let runtime = tempfile::tempdir().expect("temp");
    let rc = runtime.path().join("runtime.toml");
    std::fs::write(
        &rc,
        "[outbound_http]\nfirst_byte_timeout = \"500ms\"\nmax_concurrent_requests = 2\n",
    )
    .expect("write");
    let server = Running::start_with(
        TestApp::new(&manifest(port)),
        &shared_home(),
        &["--runtime-config", rc.to_str().expect("utf8")],
    );
    let c = client();

    // The upstream takes 20 s; the operator's 500 ms first-byte timeout wins, even over a
    // guest that asks for 60 s.
    let started = Instant::now();
    let r = call(
        &c,
        &server.url("/allowed"),
        &format!("http://127.0.0.1:{port}/slow"),
        &[("x-first-byte-ms", "60000")],
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("Timeout"), "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    // Five at once with a cap of two: two go through, three fail at once.
    let r = call(
        &c,
        &server.url("/allowed"),
        &format!("http://127.0.0.1:{port}/hold"),
        &[("x-parallel", "5")],
    )
    .await;
    assert_eq!(r.text(), "ok 2 limited 3 other 0\n");
    // Each instance has its own slots.
    let r = call(
        &c,
        &server.url("/allowed"),
        &format!("http://127.0.0.1:{port}/hold"),
        &[("x-parallel", "2")],
    )
    .await;
    assert_eq!(r.text(), "ok 2 limited 0 other 0\n");
}

/// The component's caps hold over all its instances: requests in flight, and started
/// per second; excess fails at once with `connection-limit-reached`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_component_caps_in_flight_and_per_second() {
    let up = Upstream::start().await;
    let port = up.addr.port();
    let runtime = tempfile::tempdir().expect("temp");
    let c = client();
    for (config, expect) in [
        // Five at once, per-instance cap 16, component cap 3: three go through.
        (
            "max_concurrent_requests_per_component = 3\n",
            "ok 3 limited 2 other 0\n",
        ),
        // A rate of 2 per second: the first two of five go through.
        ("max_requests_per_second = 2\n", "ok 2 limited 3 other 0\n"),
    ] {
        let rc = runtime.path().join("runtime.toml");
        std::fs::write(&rc, format!("[outbound_http]\n{config}")).expect("write");
        let server = Running::start_with(
            TestApp::new(&manifest(port)),
            &shared_home(),
            &["--runtime-config", rc.to_str().expect("utf8")],
        );
        let r = call(
            &c,
            &server.url("/allowed"),
            &format!("http://127.0.0.1:{port}/hold"),
            &[("x-parallel", "5")],
        )
        .await;
        assert_eq!(r.text(), expect, "with {config}");
        assert!(
            server.wait_for_log(
                "outbound HTTP request refused: the component",
                Duration::from_secs(5)
            ),
            "{}",
            server.logs()
        );
    }
}

/// A host *name* other than `localhost` that resolves, offline, to loopback addresses
/// only: the machine's own hostname (127.0.0.1 or 127.0.1.1 in /etc/hosts on Debian
/// and in containers), else Debian's `ip6-localhost` / `ip6-loopback`. When there is
/// none, the test fails (it is not skipped: it would prove nothing) with what was tried
/// and how to fix the machine. The resolve-check-connect path itself is also covered
/// without any of this by the unit tests in `atoll-capabilities` (`outbound::tests`,
/// with a scripted resolver).
fn loopback_name() -> (String, std::net::IpAddr) {
    use std::net::ToSocketAddrs;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut tried = Vec::new();
    for name in [hostname.as_str(), "ip6-localhost", "ip6-loopback"] {
        if name.is_empty() || name == "localhost" || name.contains(|c: char| c.is_ascii_uppercase())
        {
            continue;
        }
        let ips: Vec<std::net::IpAddr> = match (name, 80).to_socket_addrs() {
            Ok(addrs) => addrs.map(|a| a.ip()).collect(),
            Err(e) => {
                tried.push(format!("`{name}`: {e}"));
                continue;
            }
        };
        if !ips.is_empty() && ips.iter().all(|ip| ip.is_loopback()) {
            return (name.to_string(), ips[0]);
        }
        tried.push(format!("`{name}` -> {ips:?}"));
    }
    panic!(
        "this test needs a host name other than `localhost` that resolves to loopback \
         addresses only, and none does here. Tried: {}. Fix: add `{}` to /etc/hosts. The \
         test is not skipped, since without such a name it would prove nothing about \
         resolved addresses.",
        tried.join("; "),
        if hostname.is_empty() {
            "::1 ip6-localhost".to_string()
        } else {
            format!("127.0.1.1 {hostname}")
        }
    );
}

fn named_manifest(name: &str, port: u16) -> String {
    format!(
        r#"
[app]
name = "rebind"

[component.named]
source = "{{{{OUTBOUND}}}}"
allowed_outbound_hosts = ["http://{name}:{port}"]

[component.local]
source = "{{{{OUTBOUND}}}}"
allowed_outbound_hosts = ["http://localhost:{port}"]

[component.tls]
source = "{{{{OUTBOUND}}}}"
allowed_outbound_hosts = ["https://127.0.0.1:{port}"]

[[trigger.http]]
route = "/named"
component = "named"

[[trigger.http]]
route = "/local"
component = "local"

[[trigger.http]]
route = "/tls"
component = "tls"
"#
    )
}

/// DNS rebinding, with the resolver this machine has: an allowed *name* that resolves to
/// a loopback address is refused after resolution, naming the address, and the server
/// behind it never sees the request. The operator's `allow_private_addresses` lets the
/// very same request through (so the denial was the address check, not a failed lookup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_to_a_private_address_is_denied() {
    let (name, ip) = loopback_name();
    let up = Upstream::start_on(ip).await;
    let port = up.addr.port();
    let target = format!("http://{name}:{port}/ok");

    let server = Running::start(TestApp::new(&named_manifest(&name, port)));
    let c = client();
    let r = call(&c, &server.url("/named"), &target, &[]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    assert_eq!(up.hits(), 0, "the denied request reached the server");
    let needle = format!("`{name}` resolves to {ip}, a loopback address");
    assert!(
        server.wait_for_log(&needle, Duration::from_secs(5)),
        "no `{needle}` in:\n{}",
        server.logs()
    );
    let line = server
        .logs()
        .lines()
        .find(|l| l.contains(&needle))
        .map(String::from)
        .unwrap_or_default();
    assert!(
        line.contains("capability denied")
            && line.contains("component=named")
            && line.contains(&format!("resolved={ip}"))
            && line.contains("kind=outbound_http"),
        "{line}"
    );

    drop(server);

    // The operator opts in: the same name now reaches the same server.
    let runtime = tempfile::tempdir().expect("temp");
    let rc = runtime.path().join("runtime.toml");
    std::fs::write(&rc, "[outbound_http]\nallow_private_addresses = true\n").expect("write");
    let hits_before = up.hits();
    let server = Running::start_with(
        TestApp::new(&named_manifest(&name, port)),
        &shared_home(),
        &["--runtime-config", rc.to_str().expect("utf8")],
    );
    let r = call(&c, &server.url("/named"), &target, &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "status 200\nupstream ok")
    );
    assert_eq!(up.hits(), hits_before + 1);
}

/// `localhost` grants keep working (only loopback answers are accepted for it), and an
/// `https` grant really speaks TLS: against a plain-HTTP server it fails in the TLS
/// handshake instead of sending the request in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localhost_is_reachable_and_https_means_tls() {
    let up = Upstream::start().await;
    let port = up.addr.port();
    let server = Running::start(TestApp::new(&named_manifest("localhost", port)));
    let c = client();
    let r = call(
        &c,
        &server.url("/local"),
        &format!("http://localhost:{port}/ok"),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "status 200\nupstream ok")
    );
    assert_eq!(up.hits(), 1);

    let r = call(
        &c,
        &server.url("/tls"),
        &format!("https://127.0.0.1:{port}/ok"),
        &[],
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("Tls"), "{}", r.text());
    assert_eq!(
        up.hits(),
        1,
        "a TLS request reached the server as plain HTTP"
    );
}
