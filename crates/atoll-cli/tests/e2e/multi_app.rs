//! Several apps in one process: by path, by `Host`, and refused when they overlap.

use std::process::Command;

use crate::common::*;

fn app(name: &str, hosts: Option<&str>, route: &str, program: &str) -> TestApp {
    let hosts = hosts
        .map(|h| format!("hosts = [\"{h}\"]\n"))
        .unwrap_or_default();
    TestApp::new(&format!(
        "[app]\nname = \"{name}\"\n{hosts}\n[component.web]\nsource = \"{{{{{program}}}}}\"\n\n[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"web\"\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_share_a_server_by_path_and_by_host() {
    let server = Running::start_apps(
        vec![
            app("hello-app", None, "/...", "HELLO"),
            app("info-app", None, "/info/...", "INFO"),
            app("shop", Some("shop.example.com"), "/...", "COUNTER"),
        ],
        &shared_home(),
        &[],
    );
    let c = client();
    // Apps without hosts split the path space.
    assert_eq!(get(&c, &server.url("/")).await.text(), "Hello, world!\n");
    assert_eq!(
        get(&c, &server.url("/info/x")).await.text(),
        "info Method::Get /info/x\n"
    );
    // An app with hosts gets exactly its hosts, whatever the case, port or trailing dot.
    for host in [
        "shop.example.com",
        "SHOP.Example.com:3000",
        "shop.example.com.",
    ] {
        let r = get_host(&c, &server.url("/info/x"), host).await;
        assert_eq!(
            r.text(),
            "count=1 dirty=false tag=pristine heap=clean stack=clean\n",
            "Host: {host}"
        );
    }
    // Any other host falls to the apps without hosts.
    let r = get_host(&c, &server.url("/"), "other.example.com").await;
    assert_eq!(r.text(), "Hello, world!\n");
    assert!(
        server.logs().contains("for hosts shop.example.com"),
        "{}",
        server.logs()
    );
}

fn up_fails(apps: &[&TestApp]) -> String {
    let out = Command::new(BIN)
        .arg("up")
        .args(apps.iter().map(|a| a.path()))
        .args(["--listen", "127.0.0.1:0"])
        .env("ATOLL_HOME", shared_home())
        .output()
        .expect("run atoll");
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn overlapping_routes_between_apps_are_refused_naming_both() {
    let a = app("alpha", None, "/api/...", "HELLO");
    let b = app("beta", None, "/api/...", "INFO");
    let err = up_fails(&[&a, &b]);
    assert!(
        err.contains("apps `alpha` and `beta` both serve route `/api/...`"),
        "{err}"
    );
    assert!(
        err.contains("hosts"),
        "the message says how to fix it: {err}"
    );

    // The same host claimed twice with the same route is refused too.
    let a = app("alpha", Some("x.example.com"), "/...", "HELLO");
    let b = app("beta", Some("x.example.com"), "/...", "INFO");
    let err = up_fails(&[&a, &b]);
    assert!(err.contains("on host `x.example.com`"), "{err}");

    // Two apps with one name cannot be told apart in logs.
    let a = app("same", None, "/a", "HELLO");
    let b = app("same", None, "/b", "INFO");
    let err = up_fails(&[&a, &b]);
    assert!(err.contains("two apps are named `same`"), "{err}");
}
