//! Guest stdout/stderr: logged line by line, tagged with app and component, capped per
//! request.

use crate::common::*;

const APP: &str = r#"
[app]
name = "chatty"

[component.logs]
source = "{{LOGS}}"

[[trigger.http]]
route = "/..."
component = "logs"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_becomes_tagged_log_lines() {
    let server = Running::start(TestApp::new(APP));
    let c = client();
    let r = get(&c, &server.url("/?lines=3")).await;
    assert_eq!(r.status, 200);
    assert!(server.wait_for_log(
        "guest complaint on stderr",
        std::time::Duration::from_secs(10)
    ));
    let logs = server.logs();
    for i in 0..3 {
        let line = logs
            .lines()
            .find(|l| l.contains(&format!("guest line {i} on stdout")))
            .unwrap_or_else(|| panic!("line {i} missing:\n{logs}"));
        assert!(line.contains("app=chatty"), "{line}");
        assert!(line.contains("component=logs"), "{line}");
        assert!(line.contains("stream=stdout"), "{line}");
        assert!(line.contains("INFO"), "{line}");
    }
    let err = logs
        .lines()
        .find(|l| l.contains("guest complaint"))
        .expect("stderr line");
    assert!(
        err.contains("WARN") && err.contains("stream=stderr"),
        "{err}"
    );

    // wasi:logging: the guest's level and context; debug is below the default filter.
    get(&c, &server.url("/?structured=1")).await;
    assert!(server.wait_for_log("structured alarm", std::time::Duration::from_secs(10)));
    let logs = server.logs();
    let info = logs
        .lines()
        .find(|l| l.contains("structured hello"))
        .expect("info line");
    assert!(
        info.contains("INFO")
            && info.contains("context=checkout")
            && info.contains("component=logs"),
        "{info}"
    );
    let alarm = logs
        .lines()
        .find(|l| l.contains("structured alarm"))
        .expect("critical line");
    assert!(alarm.contains("ERROR"), "{alarm}");
    assert!(
        !logs.contains("structured detail"),
        "debug is filtered at ATOLL_LOG=info"
    );

    // A last line without a newline is logged when the instance ends.
    get(&c, &server.url("/?partial=1")).await;
    assert!(server.wait_for_log(
        "unterminated last words",
        std::time::Duration::from_secs(10)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_is_capped_per_request() {
    let server = Running::start(TestApp::new(APP));
    let c = client();
    // 200 KB without a newline: cut into lines of at most 4 KiB, and at most 64 KiB logged.
    let r = get(&c, &server.url("/?big=1")).await;
    assert_eq!(r.status, 200);
    assert!(server.wait_for_log(
        "bytes in one request; the rest is not logged",
        std::time::Duration::from_secs(10)
    ));
    let logs = server.logs();
    let xs: usize = logs
        .lines()
        .filter(|l| l.contains("xxxxxxxx"))
        .map(|l| {
            let n = l.chars().filter(|c| *c == 'x').count();
            assert!(n <= 4096 + 16, "a line longer than the cap: {n}");
            n
        })
        .sum();
    assert!(
        (60 * 1024..=64 * 1024 + 64).contains(&xs),
        "logged {xs} bytes of output"
    );
    // The server is fine afterwards.
    assert_eq!(get(&c, &server.url("/?lines=1")).await.status, 200);
}
