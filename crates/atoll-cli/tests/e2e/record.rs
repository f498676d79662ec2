//! Record and replay: `atoll up --record` in front of a real upstream HTTP server and a
//! Redis server of the test's own; `atoll replay` with both stopped, against the build
//! that was recorded and against a fixed one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::common::*;

const TOKEN: &str = "tok-s3cret-4417";

/// The price service: `/price/apple` is `250`, `/price/pear` is `2.50`; it keeps the
/// `x-api-key` values it was sent.
struct Prices {
    addr: SocketAddr,
    keys: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn price(
    req: http::Request<Incoming>,
    keys: Arc<Mutex<Vec<String>>>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    if let Some(k) = req.headers().get("x-api-key") {
        keys.lock()
            .expect("keys")
            .push(String::from_utf8_lossy(k.as_bytes()).into_owned());
    }
    let body: &'static [u8] = match req.uri().path() {
        "/price/apple" => b"250\n",
        "/price/pear" => b"2.50\n",
        _ => b"no such item\n",
    };
    Ok(http::Response::new(Full::new(Bytes::from_static(body))))
}

impl Prices {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let keys = Arc::new(Mutex::new(Vec::new()));
        let k = keys.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let k = k.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| price(req, k.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, keys, task }
    }

    /// Stop listening: nothing answers on its port afterwards.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn manifest(upstream: SocketAddr, program: &str) -> String {
    format!(
        r#"
[app]
name = "shop"

[variables]
upstream = {{ required = true }}
token = {{ required = true, secret = true }}

[component.checkout]
source = "{{{{{program}}}}}"
allowed_outbound_hosts = ["http://{upstream}"]
key_value_stores = ["default"]
variables = {{ upstream = "{{{{ upstream }}}}", token = "{{{{ token }}}}" }}

[component.kv]
source = "{{{{KV}}}}"
key_value_stores = ["default"]

[[trigger.http]]
route = "/kv/..."
component = "kv"

[[trigger.http]]
route = "/..."
component = "checkout"
"#
    )
}

fn envs(upstream: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("ATOLL_VARIABLE_UPSTREAM", format!("http://{upstream}")),
        ("ATOLL_VARIABLE_TOKEN", TOKEN.to_string()),
    ]
}

/// The recordings in `dir` once there are `n` of them (waits up to 20 s).
fn recordings(dir: &Path, n: usize) -> Vec<(PathBuf, serde_json::Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut found: Vec<(PathBuf, serde_json::Value)> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .filter_map(|p| {
                        let v = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
                        Some((p, v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if found.len() >= n || Instant::now() > deadline {
            found.sort_by(|a, b| a.0.cmp(&b.0));
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The recording of the checkout request for `item`.
fn recording_of(all: &[(PathBuf, serde_json::Value)], item: &str) -> (PathBuf, serde_json::Value) {
    all.iter()
        .find(|(_, v)| {
            v["component"] == "checkout"
                && v["request"]["uri"].as_str() == Some(&format!("/?item={item}"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no recording of item {item} among {all:?}"))
}

/// `atoll replay ARGS...`: (exit code, stdout, stderr).
fn replay(home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = atoll_command()
        .arg("replay")
        .args(args)
        .env("ATOLL_HOME", home)
        .output()
        .expect("run atoll replay");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn redis_server(port: u16) -> std::process::Child {
    std::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start redis-server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_request_replays_byte_identically_offline_and_a_fixed_build_differs() {
    let prices = Prices::start().await;
    let upstream = prices.addr;
    let redis_port = free_port();
    let mut redis = redis_server(redis_port);
    let app = TestApp::new(&manifest(upstream, "CHECKOUT"));
    let app_dir = app.path().to_path_buf();
    let rc = app_dir.join("runtime.toml");
    std::fs::write(
        &rc,
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{redis_port}\"\n"
        ),
    )
    .expect("runtime config");
    let rec_dir = tempfile::tempdir().expect("temp");
    let home = shared_home();
    let envs = envs(upstream);
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Running::start_with_env(
        app,
        &home,
        &[
            "--runtime-config",
            rc.to_str().expect("utf8"),
            "--record",
            rec_dir.path().to_str().expect("utf8"),
        ],
        &envs,
    );
    let c = client();
    // Redis may take a moment to listen: the stock is set once it answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(
            &c,
            &server.url("/kv/?store=default&op=set&key=stock:apple&value=3"),
        )
        .await;
        if r.status == 200 || Instant::now() > deadline {
            assert_eq!(r.status, 200, "{}", r.text());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = get(
        &c,
        &server.url("/kv/?store=default&op=set&key=stock:pear&value=2"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let apple = get_with_headers(
        &c,
        &server.url("/?item=apple"),
        &[
            ("authorization", "Bearer user-password-99"),
            ("cookie", "sid=cookie-value-77"),
        ],
    )
    .await;
    assert_eq!(apple.status, 200, "{}", apple.text());
    let apple_body = apple.text();
    assert!(
        apple_body.starts_with("3 x apple at 250 = 750 cents; at "),
        "{apple_body}"
    );
    let pear = get(&c, &server.url("/?item=pear")).await;
    assert_eq!(pear.status, 500, "{}", pear.text());
    assert_eq!(pear.text(), "cannot parse price `2.50`\n");

    // Every request was recorded (the two stock writes too); the upstream got the
    // real secret, the files never hold it, nor the caller's credentials.
    let all = recordings(rec_dir.path(), 4);
    assert_eq!(all.len(), 4, "{all:?}");
    assert!(
        prices.keys.lock().expect("keys").iter().all(|k| k == TOKEN),
        "the upstream got the real token"
    );
    for (path, _) in &all {
        let text = std::fs::read_to_string(path).expect("read");
        for secret in [TOKEN, "user-password-99", "cookie-value-77"] {
            assert!(
                !text.contains(secret),
                "{} holds {secret}:\n{text}",
                path.display()
            );
        }
    }
    #[cfg(unix)]
    for (path, _) in &all {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
    }
    let (apple_file, apple_rec) = recording_of(&all, "apple");
    let (pear_file, pear_rec) = recording_of(&all, "pear");
    let headers = apple_rec["request"]["headers"].as_array().expect("headers");
    for name in ["authorization", "cookie"] {
        let h = headers
            .iter()
            .find(|h| h[0] == name)
            .unwrap_or_else(|| panic!("no {name} header recorded"));
        assert_eq!(h[1], "[redacted]");
    }
    assert_eq!(apple_rec["response"]["body"]["text"], apple_body.as_str());
    let calls = apple_rec["calls"].as_array().expect("calls");
    let kinds: Vec<&str> = calls.iter().filter_map(|c| c["call"].as_str()).collect();
    assert_eq!(
        kinds,
        ["config", "config", "key_value", "http", "key_value"],
        "{calls:?}"
    );
    assert_eq!(calls[1]["value"], "[redacted]", "the secret config read");
    assert_eq!(calls[3]["response"]["body"]["text"], "250\n");
    let http_headers = calls[3]["request"]["headers"].as_array().expect("headers");
    assert!(
        http_headers
            .iter()
            .any(|h| h[0] == "x-api-key" && h[1] == "[redacted]"),
        "{http_headers:?}"
    );
    assert_eq!(apple_rec["wall_clock"].as_array().map(Vec::len), Some(1));
    assert_eq!(pear_rec["failure"], serde_json::Value::Null);

    // Everything the request touched goes away: the server, the upstream, Redis.
    server.terminate(Duration::from_secs(10));
    prices.stop().await;
    let _ = redis.kill();
    let _ = redis.wait();
    assert!(
        std::net::TcpStream::connect(upstream).is_err(),
        "the upstream still answers"
    );

    // Replayed offline, the recorded build answers byte for byte what it answered
    // then: the stock from Redis, the price from the upstream, the clock and the id.
    let (code, out, err) = replay(&home, &[apple_file.to_str().expect("utf8"), "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["identical"], true, "{out}");
    assert_eq!(v["replayed"]["status"], 200);
    assert_eq!(v["replayed"]["body"]["text"], apple_body.as_str());
    assert_eq!(v["report"]["missing"].as_array().map(Vec::len), Some(0));
    let (code, out, err) = replay(&home, &[pear_file.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("same response as recorded"), "{out}");

    // The fixed build, replayed on the failed request, answers the now-correct total.
    std::fs::write(
        app_dir.join("atoll.toml"),
        expand(&manifest(upstream, "CHECKOUT_FIXED")),
    )
    .expect("write the fixed manifest");
    let (code, out, err) = replay(&home, &[pear_file.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("response: 200"), "{out}");
    assert!(out.contains("-status 500\n+status 200"), "{out}");
    assert!(out.contains("-cannot parse price `2.50`"), "{out}");
    assert!(out.contains("+2 x pear at 250 = 500 cents; at "), "{out}");
    // It reads the clock and random, which the failed run never did: said, not hidden.
    assert!(out.contains("wall_clock: read 1 more time"), "{out}");
    assert!(err.contains("differs from the recording"), "{err}");

    // A call the recording does not have: the guest gets an error naming it.
    let mut edited = apple_rec.clone();
    edited["calls"]
        .as_array_mut()
        .expect("calls")
        .retain(|c| c["call"] != "http");
    let edited_file = rec_dir.path().join("edited.json");
    std::fs::write(&edited_file, serde_json::to_vec(&edited).expect("json")).expect("write");
    let (code, out, err) = replay(&home, &[edited_file.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{out}\n{err}");
    let missing = format!(
        "not in the recording (the guest got an error): outbound HTTP GET http://{upstream}/price/apple"
    );
    assert!(out.contains(&missing), "{out}");
    assert!(out.contains("response: 500"), "{out}");
    assert!(
        out.contains("replay: the guest made a call the recording does not have"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_failures_keeps_only_the_requests_that_failed() {
    let prices = Prices::start().await;
    let upstream = prices.addr;
    let app = TestApp::new(&manifest(upstream, "CHECKOUT"));
    let rec_dir = tempfile::tempdir().expect("temp");
    let envs = envs(upstream);
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let home = shared_home();
    let mut server = Running::start_with_env(
        app,
        &home,
        &[
            "--record",
            rec_dir.path().to_str().expect("utf8"),
            "--record-failures",
        ],
        &envs,
    );
    let c = client();
    assert_eq!(get(&c, &server.url("/?item=apple")).await.status, 200);
    assert_eq!(get(&c, &server.url("/?item=pear")).await.status, 500);
    assert_eq!(get(&c, &server.url("/?item=apple")).await.status, 200);
    // The failed request is recorded; wait for it, then check nothing else was.
    let found = recordings(rec_dir.path(), 1);
    assert_eq!(found.len(), 1, "{found:?}");
    std::thread::sleep(Duration::from_millis(300));
    let found = recordings(rec_dir.path(), 1);
    assert_eq!(found.len(), 1, "only the failed request: {found:?}");
    assert_eq!(found[0].1["request"]["uri"], "/?item=pear");
    assert_eq!(found[0].1["response"]["status"], 500);
    server.terminate(Duration::from_secs(10));
    prices.stop().await;

    // A file that is not a recording is refused, saying so (exit 2, a usage error).
    let bad = rec_dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"atoll_recording\": 7}").expect("write");
    let (code, out, err) = replay(&home, &[bad.to_str().expect("utf8")]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("recording format 7"), "{err}");
}
