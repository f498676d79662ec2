//! Serving: hello, routing, bodies, HTTP/2, and what a guest can see.

use bytes::Bytes;

use crate::common::*;

const ROUTES: &str = r#"
[app]
name = "routes"

[component.hello]
source = "{{HELLO}}"

[component.info]
source = "{{INFO}}"

[component.echo]
source = "{{ECHO}}"

[[trigger.http]]
route = "/hello"
component = "hello"

[[trigger.http]]
route = "/api/..."
component = "info"

[[trigger.http]]
route = "/api/exact"
component = "hello"

[[trigger.http]]
route = "/echo"
component = "echo"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_and_routing() {
    let server = Running::start(TestApp::new(ROUTES));
    let c = client();

    let r = get(&c, &server.url("/hello")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello, world!\n");
    assert_eq!(
        get(&c, &server.url("/hello/")).await.status,
        200,
        "a trailing slash matches the exact route"
    );

    // Wildcard: the prefix itself and everything below it, with the query passed through.
    let r = get(&c, &server.url("/api/users/7?x=1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "info Method::Get /api/users/7?x=1\n");
    assert_eq!(
        get(&c, &server.url("/api")).await.text(),
        "info Method::Get /api\n"
    );

    // The exact route is more specific than the wildcard that also covers it.
    assert_eq!(
        get(&c, &server.url("/api/exact")).await.text(),
        "Hello, world!\n"
    );

    // No match: 404, from atoll, not a guest.
    for path in ["/", "/hello/world", "/apix", "/nothing"] {
        let r = get(&c, &server.url(path)).await;
        assert_eq!(r.status, 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_and_h2c() {
    let server = Running::start(TestApp::new(ROUTES));
    // Many requests over one HTTP/1.1 connection: a raw one, which fails if the server
    // closes it (a pooled client would reconnect and hide that).
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let mut conn = RawConn::open(addr);
        for i in 0..50 {
            let (status, headers, body) = conn.get("/hello");
            assert_eq!(
                (status, body.as_str()),
                (200, "Hello, world!\n"),
                "request {i}"
            );
            assert!(
                !headers
                    .iter()
                    .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close")),
                "request {i} asked to close the connection: {headers:?}"
            );
        }
    })
    .await
    .expect("keep-alive client");
    // Then over HTTP/2 (prior knowledge): one connection, many streams.
    let c = h2_client();
    for _ in 0..50 {
        let r = get(&c, &server.url("/hello")).await;
        assert_eq!((r.status, r.text().as_str()), (200, "Hello, world!\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_streams_large_bodies() {
    let server = Running::start(TestApp::new(ROUTES));
    let c = client();
    let r = send(
        &c,
        "POST",
        &server.url("/echo"),
        Bytes::from_static(b"ping"),
    )
    .await
    .expect("echo");
    assert_eq!((r.status, r.text().as_str()), (200, "ping"));

    // 10 MiB of non-repeating bytes, both ways, over HTTP/1.1 and HTTP/2.
    let big: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big = Bytes::from(big);
    for c in [client(), h2_client()] {
        let r = send(&c, "POST", &server.url("/echo"), big.clone())
            .await
            .expect("echo 10 MiB");
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), big.len());
        assert!(r.body == big, "echoed body differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_sees_only_what_the_manifest_grants() {
    let server = Running::start(TestApp::new(
        r#"
[app]
name = "env"

[component.env]
source = "{{ENV}}"
environment = { GREETING = "hi", LOG_LEVEL = "debug" }

[[trigger.http]]
route = "/..."
component = "env"
"#,
    ));
    let r = get(&client(), &server.url("/")).await;
    assert_eq!(r.status, 200);
    let body = r.text();
    let env: Vec<&str> = body.lines().filter(|l| l.starts_with("env ")).collect();
    // Exactly the manifest's variables, nothing of the host's (the test sets
    // ATOLL_TEST_SECRET on the server process; HOME and PATH are set too).
    assert_eq!(
        env,
        vec!["env GREETING=hi", "env LOG_LEVEL=debug"],
        "{body}"
    );
    for absent in ["HOME", "PATH", "ATOLL_TEST_SECRET", "hunter2", "ATOLL_HOME"] {
        assert!(
            !body.contains(absent),
            "{absent} leaked into the guest: {body}"
        );
    }
    assert!(body.contains("args 0\n"), "{body}");
    // No files.
    assert!(body.contains("preopens 0\n"), "{body}");
    assert!(body.contains("std_fs_root false\n"), "{body}");

    // No network: the test listens on TCP and UDP, the guest tries both and a name
    // lookup. Nothing arrives, each attempt fails in the guest, and each is logged.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("tcp listener");
    tcp.set_nonblocking(true).expect("nonblocking");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    udp.set_nonblocking(true).expect("nonblocking");
    let (tcp_port, udp_port) = (
        tcp.local_addr().expect("addr").port(),
        udp.local_addr().expect("addr").port(),
    );
    // The same listeners do receive from an ordinary client, so "nothing arrived" below
    // is about the guest, not the sockets.
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("udp client")
        .send_to(b"probe", ("127.0.0.1", udp_port))
        .expect("send");
    let _probe = std::net::TcpStream::connect(("127.0.0.1", tcp_port)).expect("connect");
    let mut buf = [0u8; 64];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (mut accepted, mut received) = (false, false);
    while !(accepted && received) && std::time::Instant::now() < deadline {
        accepted |= tcp.accept().is_ok();
        received |= udp.recv_from(&mut buf).is_ok();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(accepted && received, "the test's own probes did not arrive");

    let r = get(
        &client(),
        &server.url(&format!("/?tcp={tcp_port}&udp={udp_port}&lookup=localhost")),
    )
    .await;
    let body = r.text();
    for line in ["tcp denied", "udp denied", "lookup denied"] {
        assert!(
            body.contains(line),
            "expected `{line}`: {body}\n{}",
            server.logs()
        );
    }
    // The guest's attempts were over before it answered: a connection it made would be
    // in the accept queue now, and a datagram in the socket's buffer.
    assert!(tcp.accept().is_err(), "the guest reached the TCP listener");
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "the guest's UDP datagram arrived"
    );
    for what in [
        "a TCP socket",
        "a UDP socket",
        "a name lookup of `localhost`",
    ] {
        assert!(
            server.wait_until(std::time::Duration::from_secs(5), |logs| logs.lines().any(
                |l| {
                    l.contains("capability denied")
                        && l.contains(what)
                        && l.contains("app=env")
                        && l.contains("component=env")
                        && l.contains("kind=socket")
                }
            )),
            "no denial line for {what}:\n{}",
            server.logs()
        );
    }
}
