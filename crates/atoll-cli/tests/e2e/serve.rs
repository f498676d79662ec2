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
    // Many requests over one pooled HTTP/1.1 connection, then over HTTP/2 (prior knowledge).
    for c in [client(), h2_client()] {
        for _ in 0..50 {
            let r = get(&c, &server.url("/hello")).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.text(), "Hello, world!\n");
        }
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
    // No files and no network.
    assert!(body.contains("preopens 0\n"), "{body}");
    assert!(body.contains("std_fs_root false\n"), "{body}");
    assert!(body.contains("std_net false\n"), "{body}");
}
