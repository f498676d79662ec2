//! The cron trigger: ticks on time, a fresh instance per tick, a hanging job stopped at
//! its timeout with overlapping ticks skipped, failures logged and the next tick run,
//! and grants held exactly as for HTTP components.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::{Running, TestApp, up_fails};

/// The unix milliseconds of every `job tick` line the component `component` logged.
fn ticks(logs: &str, component: &str) -> Vec<u64> {
    logs.lines()
        .filter(|l| l.contains(&format!("component={component}")))
        .filter_map(|l| l.split("job tick ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn ticks_arrive_on_time_in_a_cron_only_app() {
    let server = Running::start(TestApp::new(
        r#"
[app]
name = "cronapp"
[component.job]
source = "{{JOB}}"
[[trigger.cron]]
schedule = "* * * * * *"
component = "job"
"#,
    ));
    assert!(
        server.wait_until(Duration::from_secs(20), |l| ticks(l, "job").len() >= 4),
        "fewer than 4 ticks in 20 s; logs:\n{}",
        server.logs()
    );
    let t = ticks(&server.logs(), "job");
    // Every second, on the second (coarse bounds: a loaded CI machine is slow to start
    // an instance, never early).
    for pair in t.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((200..=2500).contains(&gap), "ticks {t:?}: gap {gap} ms");
    }
    for ms in &t {
        assert!(
            ms % 1000 < 900,
            "tick at {ms} is not near the start of a second: {t:?}"
        );
    }
}

#[test]
fn a_hanging_job_is_stopped_at_its_timeout_and_ticks_meanwhile_are_skipped() {
    let server = Running::start(TestApp::new(
        r#"
[app]
name = "hangapp"
[component.hang]
source = "{{JOB}}"
environment = { JOB_MODE = "hang" }
limits = { timeout = "1500ms" }
[[trigger.cron]]
schedule = "* * * * * *"
component = "hang"
"#,
    ));
    let stopped = |l: &str| {
        l.lines()
            .filter(|l| l.contains("component=hang") && l.contains("Timeout"))
            .count()
    };
    assert!(
        server.wait_until(Duration::from_secs(20), |l| stopped(l) >= 2),
        "the hanging job was not stopped twice; logs:\n{}",
        server.logs()
    );
    let logs = server.logs();
    assert!(
        logs.contains("tick skipped: the previous run is still going"),
        "no tick was skipped while the job hung; logs:\n{logs}"
    );
    // Each stopped run started again later: the trigger did not die with the job.
    assert!(logs.matches("job hanging").count() >= 2, "logs:\n{logs}");
}

#[test]
fn a_failing_job_is_logged_and_the_next_tick_runs() {
    let server = Running::start(TestApp::new(
        r#"
[app]
name = "failapp"
[component.fail]
source = "{{JOB}}"
environment = { JOB_MODE = "fail" }
[[trigger.cron]]
schedule = "* * * * * *"
component = "fail"
"#,
    ));
    let failed = |l: &str| {
        l.lines()
            .filter(|l| l.contains("component=fail") && l.contains("guest failed"))
            .count()
    };
    assert!(
        server.wait_until(Duration::from_secs(20), |l| failed(l) >= 3),
        "logs:\n{}",
        server.logs()
    );
    assert!(server.logs().contains("job failed on purpose"));
}

#[test]
fn a_job_that_fails_after_a_denial_says_what_it_was_denied() {
    let server = Running::start(TestApp::new(
        r#"
[app]
name = "deniedapp"
[component.denied]
source = "{{JOB}}"
environment = { JOB_MODE = "denied-then-fail", JOB_URL = "http://127.0.0.1:9/secret" }
[[trigger.cron]]
schedule = "* * * * * *"
component = "denied"
"#,
    ));
    let failed_after_denial = |l: &str| {
        l.lines().any(|l| {
            l.contains("component=denied")
                && l.contains("guest failed")
                && l.contains(
                    "the guest had been denied outbound HTTP to http://127.0.0.1:9/secret",
                )
        })
    };
    assert!(
        server.wait_until(Duration::from_secs(20), failed_after_denial),
        "logs:\n{}",
        server.logs()
    );
}

/// A one-shot HTTP server on a free port that answers 200 to every request.
fn http_ok_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    port
}

#[test]
fn cron_components_get_exactly_what_they_are_granted() {
    let port = http_ok_server();
    let app = TestApp::new(&format!(
        r#"
[app]
name = "grants"
[component.granted]
source = "{{{{JOB}}}}"
environment = {{ JOB_MODE = "probe", JOB_URL = "http://127.0.0.1:{port}/" }}
variables = {{ greeting = "hi" }}
files = [{{ source = "static", destination = "/static" }}]
allowed_outbound_hosts = ["http://127.0.0.1:{port}"]
[component.denied]
source = "{{{{JOB}}}}"
environment = {{ JOB_MODE = "probe", JOB_URL = "http://127.0.0.1:{port}/" }}
[[trigger.cron]]
schedule = "*/2 * * * * *"
component = "granted"
[[trigger.cron]]
schedule = "*/2 * * * * *"
component = "denied"
"#
    ));
    std::fs::create_dir(app.path().join("static")).expect("mkdir");
    std::fs::write(app.path().join("static/hello.txt"), "hello from a file\n").expect("write");
    let server = Running::start(app);
    let done = |l: &str| {
        ["granted", "denied"].iter().all(|c| {
            l.lines()
                .any(|x| x.contains(&format!("component={c}")) && x.contains("probe outbound"))
        })
    };
    assert!(
        server.wait_until(Duration::from_secs(20), done),
        "logs:\n{}",
        server.logs()
    );
    let logs = server.logs();
    let of = |c: &str| -> Vec<String> {
        logs.lines()
            .filter(|l| l.contains(&format!("component={c}")) && l.contains("probe "))
            .map(|l| l.split("probe ").nth(1).unwrap_or("").to_string())
            .collect()
    };
    let granted = of("granted");
    let denied = of("denied");
    let has = |lines: &[String], s: &str| lines.iter().any(|l| l.starts_with(s));
    // Only the manifest's environment, in either case.
    assert!(
        has(&granted, "env JOB_MODE,JOB_URL") || has(&granted, "env JOB_URL,JOB_MODE"),
        "{granted:?}"
    );
    assert!(
        has(&denied, "env JOB_MODE,JOB_URL") || has(&denied, "env JOB_URL,JOB_MODE"),
        "{denied:?}"
    );
    assert!(has(&granted, "config hi"), "{granted:?}");
    assert!(has(&granted, "file hello from a file"), "{granted:?}");
    assert!(has(&granted, "outbound 200"), "{granted:?}");
    assert!(has(&denied, "config unset"), "{denied:?}");
    assert!(has(&denied, "file denied"), "{denied:?}");
    assert!(
        has(
            &denied,
            "outbound denied: error ErrorCode::HttpRequestDenied"
        ),
        "{denied:?}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("capability denied") && l.contains("component=denied")),
        "no denial was logged; logs:\n{logs}"
    );
}

#[test]
fn a_component_that_is_not_a_command_cannot_be_scheduled() {
    let app = TestApp::new(
        r#"
[app]
name = "notcmd"
[component.lib]
source = "{{FIXTURES}}/empty-component.wasm"
[[trigger.cron]]
schedule = "* * * * * *"
component = "lib"
"#,
    );
    let (ok, stderr) = up_fails(&app, &[], &[]);
    assert!(!ok, "atoll up started; stderr:\n{stderr}");
    assert!(stderr.contains("does not export wasi:cli/run"), "{stderr}");
    assert!(stderr.contains("atoll.toml:5"), "{stderr}");
}

#[test]
fn a_spin_cron_component_gets_each_tick_and_its_errors_are_logged() {
    let server = Running::start(TestApp::new(
        r#"
[app]
name = "spincron"
[component.spin]
source = "{{SPIN_CRON}}"
[component.spinfail]
source = "{{SPIN_CRON}}"
environment = { JOB_MODE = "fail" }
[[trigger.cron]]
schedule = "* * * * * *"
component = "spin"
[[trigger.cron]]
schedule = "* * * * * *"
component = "spinfail"
"#,
    ));
    let stamps = |l: &str| -> Vec<u64> {
        l.lines()
            .filter(|l| l.contains("component=spin "))
            .filter_map(|l| l.split("spin cron tick ").nth(1))
            .filter_map(|r| r.split_whitespace().next()?.parse().ok())
            .collect()
    };
    assert!(
        server.wait_until(Duration::from_secs(20), |l| stamps(l).len() >= 2
            && l.contains(
                "handle-cron-event returned an error: spin cron job failed on purpose"
            )),
        "logs:\n{}",
        server.logs()
    );
    // The handler gets the tick's time in unix seconds, one second apart.
    let t = stamps(&server.logs());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(t.iter().all(|s| now.abs_diff(*s) < 60), "{t:?} vs {now}");
    // Scheduled seconds, one per tick (a tick may be skipped, never repeated).
    assert!(
        t.windows(2).all(|w| (1..=2).contains(&(w[1] - w[0]))),
        "{t:?}"
    );
}

#[test]
fn a_reload_rebuilds_the_schedules() {
    let manifest = |component: &str| {
        format!(
            r#"
[app]
name = "cronwatch"
[component.{component}]
source = "{{{{JOB}}}}"
[[trigger.cron]]
schedule = "* * * * * *"
component = "{component}"
"#
        )
    };
    let app = TestApp::new(&manifest("first"));
    let dir = app.path().to_path_buf();
    let server = Running::start_with(app, &crate::common::shared_home(), &["--watch"]);
    assert!(
        server.wait_until(Duration::from_secs(20), |l| !ticks(l, "first").is_empty()),
        "logs:\n{}",
        server.logs()
    );
    std::fs::write(
        dir.join("atoll.toml"),
        crate::common::expand(&manifest("second")),
    )
    .expect("write manifest");
    assert!(
        server.wait_until(Duration::from_secs(30), |l| ticks(l, "second").len() >= 2),
        "the new schedule never ticked; logs:\n{}",
        server.logs()
    );
    // The old trigger stopped with its version.
    let before = ticks(&server.logs(), "first").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        ticks(&server.logs(), "first").len(),
        before,
        "the old schedule still ticks"
    );
}
