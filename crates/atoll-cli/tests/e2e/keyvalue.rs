//! `wasi:keyvalue` on every backend: the embedded redb file, and the real Redis,
//! PostgreSQL and NATS JetStream servers on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

/// A name no earlier run used, since the servers keep data between runs.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{:x}", std::process::id(), nanos % 0xffff_ffff)
}

fn manifest(app: &str) -> String {
    format!(
        r#"
[app]
name = "{app}"

[component.kv]
source = "{{{{KV}}}}"
key_value_stores = ["default", "cache"]

[component.none]
source = "{{{{KV}}}}"

[component.spin]
source = "{{{{KV_SPIN}}}}"
key_value_stores = ["default"]

[[trigger.http]]
route = "/kv"
component = "kv"

[[trigger.http]]
route = "/none"
component = "none"

[[trigger.http]]
route = "/spin"
component = "spin"
"#
    )
}

fn start(app: TestApp, runtime_toml: Option<&str>) -> (Running, Option<tempfile::TempDir>) {
    match runtime_toml {
        None => (Running::start(app), None),
        Some(text) => {
            let dir = tempfile::tempdir().expect("temp");
            let rc = dir.path().join("runtime.toml");
            std::fs::write(&rc, text).expect("write");
            let running = Running::start_with(
                app,
                &shared_home(),
                &["--runtime-config", rc.to_str().expect("utf8")],
            );
            (running, Some(dir))
        }
    }
}

async fn op(c: &HttpClient, server: &Running, query: &str) -> (u16, String) {
    let r = get(c, &server.url(&format!("/kv?store=default&{query}"))).await;
    (r.status, r.text())
}

/// The behaviour every backend must have. `runtime_toml` configures the `default`
/// store; the `cache` store is put on the same backend.
async fn check_backend(runtime_toml: Option<&str>) {
    let runtime_toml = runtime_toml.map(|t| {
        format!(
            "{t}\n{}",
            t.replace("[key_value_store.default]", "[key_value_store.cache]")
        )
    });
    let runtime_toml = runtime_toml.as_deref();
    let a_name = unique("kva");
    let (a, _rc_a) = start(TestApp::new(&manifest(&a_name)), runtime_toml);
    let (b, _rc_b) = start(TestApp::new(&manifest(&unique("kvb"))), runtime_toml);
    let c = client();

    // Basic operations.
    assert_eq!(op(&c, &a, "op=get&key=k").await, (404, "not found".into()));
    assert_eq!(
        op(&c, &a, "op=set&key=k&value=v1").await,
        (200, "ok".into())
    );
    assert_eq!(op(&c, &a, "op=get&key=k").await, (200, "v1".into()));
    assert_eq!(op(&c, &a, "op=exists&key=k").await, (200, "true".into()));
    assert_eq!(op(&c, &a, "op=set&key=k2&value=v2").await.0, 200);
    assert_eq!(op(&c, &a, "op=list").await, (200, "k,k2".into()));
    assert_eq!(op(&c, &a, "op=delete&key=k2").await.0, 200);
    assert_eq!(op(&c, &a, "op=exists&key=k2").await, (200, "false".into()));
    assert_eq!(
        op(&c, &a, "op=list").await,
        (200, "k".into()),
        "a deleted key is listed"
    );
    assert_eq!(op(&c, &a, "op=setmany&key=m1,m2&value=x").await.0, 200);
    assert_eq!(
        op(&c, &a, "op=getmany&key=m1,nope,m2").await,
        (200, "m1=x,-,m2=x".into())
    );

    // The Spin 3 version (0.2.0-draft2) sees the same store.
    let spin = |q: &str| a.url(&format!("/spin?store=default&{q}"));
    assert_eq!(get(&c, &spin("op=get&key=k")).await.text(), "v1");
    assert_eq!(get(&c, &spin("op=list")).await.text(), "k,m1,m2");
    assert_eq!(
        get(&c, &spin("op=getmany&key=k,nope")).await.text(),
        "k=v1,nope=-"
    );
    assert_eq!(get(&c, &spin("op=incr&key=neg&by=-5")).await.text(), "-5");

    // Two apps on one backend never see each other's keys.
    assert_eq!(op(&c, &b, "op=get&key=k").await.0, 404);
    assert_eq!(op(&c, &b, "op=list").await, (200, "".into()));
    assert_eq!(op(&c, &b, "op=set&key=k&value=from-b").await.0, 200);
    assert_eq!(op(&c, &a, "op=get&key=k").await, (200, "v1".into()));
    // Tenant-prefix tricks are just keys: b names a's real namespace in its keys.
    for trick in [
        format!("../{a_name}/default/k"),
        format!("{a_name}/default/k"),
        format!("/{a_name}/default/k"),
        format!("..%2F{a_name}%2Fdefault%2Fk"),
    ] {
        assert_eq!(
            op(&c, &b, &format!("op=get&key={trick}")).await,
            (404, "not found".into()),
            "{trick}"
        );
    }
    assert_eq!(op(&c, &b, "op=list").await, (200, "k".into()));

    // Two labels of one app on one backend are two stores.
    let cache = |q: &str| a.url(&format!("/kv?store=cache&{q}"));
    assert_eq!(get(&c, &cache("op=get&key=k")).await.status, 404);
    assert_eq!(get(&c, &cache("op=set&key=k&value=c1")).await.status, 200);
    assert_eq!(get(&c, &cache("op=get&key=k")).await.text(), "c1");
    assert_eq!(get(&c, &cache("op=list")).await.text(), "k");
    assert_eq!(op(&c, &a, "op=get&key=k").await, (200, "v1".into()));
    assert_eq!(get(&c, &cache("op=delete&key=k")).await.status, 200);
    assert_eq!(op(&c, &a, "op=get&key=k").await, (200, "v1".into()));

    // Data is namespaced by app name and label: another `atoll up` of an app with the
    // same name on the same shared backend sees the same keys (as the nodes of a fleet
    // must). The embedded store is a file in each app's own directory, so it is not
    // shared that way.
    if runtime_toml.is_some() {
        let (twin, _rc_twin) = start(TestApp::new(&manifest(&a_name)), runtime_toml);
        assert_eq!(op(&c, &twin, "op=get&key=k").await, (200, "v1".into()));
    }

    // Deny by default: an ungranted label, and a component with no grant.
    let r = get(&c, &a.url("/kv?store=other&op=get&key=k")).await;
    assert_eq!((r.status, r.text().as_str()), (403, "access-denied"));
    let r = get(&c, &a.url("/none?store=default&op=get&key=k")).await;
    assert_eq!((r.status, r.text().as_str()), (403, "access-denied"));
    let r = get(&c, &a.url("/spin?store=other&op=get&key=k")).await;
    assert_eq!((r.status, r.text().as_str()), (403, "access-denied"));
    for component in ["kv", "none", "spin"] {
        assert!(
            a.wait_until(Duration::from_secs(5), |logs| logs.lines().any(|l| {
                l.contains("capability denied")
                    && l.contains(&format!("app={a_name}"))
                    && l.contains(&format!("component={component}"))
                    && l.contains("kind=key_value")
            })),
            "no key-value denial line for {component}:\n{}",
            a.logs()
        );
    }

    // Atomic increments under concurrency: 8 clients x 500.
    let started = Instant::now();
    all_ok(&c, a.url("/kv?store=default&op=incr&key=counter"), 8, 500).await;
    assert_eq!(op(&c, &a, "op=get&key=counter").await, (200, "4000".into()));
    eprintln!("4000 increments in {:?}", started.elapsed());

    // Compare-and-swap (draft2) under concurrency: 4 clients x 50 read-add-swap rounds.
    all_ok(
        &c,
        a.url("/spin?store=default&op=casadd&key=cas&by=1"),
        4,
        50,
    )
    .await;
    assert_eq!(op(&c, &a, "op=get&key=cas").await, (200, "200".into()));
    assert_eq!(
        op(&c, &a, "op=incr&key=k").await.0,
        500,
        "a non-numeric value cannot be incremented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_redb() {
    check_backend(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    check_backend(Some(
        "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    check_backend(Some(
        "[key_value_store.default]\ntype = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\n",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_jetstream() {
    check_backend(Some(
        "[key_value_store.default]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\n",
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_survives_a_restart() {
    let app = TestApp::new(&manifest(&unique("kvp")));
    let dir = app.path().to_path_buf();
    let mut server = Running::start(app);
    let c = client();
    assert_eq!(op(&c, &server, "op=set&key=kept&value=yes").await.0, 200);
    assert!(server.terminate(Duration::from_secs(30)).is_some());
    assert!(dir.join(".atoll/kv.redb").exists());
    let manifest_text = std::fs::read_to_string(dir.join("atoll.toml")).expect("manifest");
    // Same directory, new process.
    let again = TestApp {
        dir: tempfile::tempdir().expect("temp"),
    };
    std::fs::write(again.path().join("atoll.toml"), &manifest_text).expect("write");
    std::fs::create_dir_all(again.path().join(".atoll")).expect("mkdir");
    std::fs::copy(
        dir.join(".atoll/kv.redb"),
        again.path().join(".atoll/kv.redb"),
    )
    .expect("copy");
    drop(server);
    let server = Running::start(again);
    assert_eq!(
        op(&c, &server, "op=get&key=kept").await,
        (200, "yes".into())
    );
}

/// Point `type` at a port where nothing listens: the guest gets an error within the
/// backend timeout and other requests are served. Then, if `start` is given, bring a real
/// server up on that port and check the same atoll recovers.
async fn check_down_then_up(kind: &str, url: &str, start: Option<std::process::Command>) {
    let (server, _rc) = start_app_with_store(kind, url);
    let c = client();
    let started = Instant::now();
    let (status, body) = op(&c, &server, "op=set&key=k&value=v").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("other:"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // Other requests are served meanwhile.
    assert_eq!(
        get(&c, &server.url("/none?store=default&op=get&key=k"))
            .await
            .status,
        403
    );

    let Some(mut cmd) = start else { return };
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the backend server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        last = op(&c, &server, "op=set&key=k&value=v").await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let read = op(&c, &server, "op=get&key=k").await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(last.0, 200, "did not recover: {}", last.1);
    assert_eq!(read, (200, "v".into()));
}

fn start_app_with_store(kind: &str, url: &str) -> (Running, Option<tempfile::TempDir>) {
    start(
        TestApp::new(&manifest(&unique("kvd"))),
        Some(&format!(
            "[key_value_store.default]\ntype = \"{kind}\"\nurl = \"{url}\"\n"
        )),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_fast_and_recovers() {
    let port = free_port();
    let mut cmd = std::process::Command::new("redis-server");
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    check_down_then_up("redis", &format!("redis://127.0.0.1:{port}"), Some(cmd)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_fails_fast_and_recovers() {
    let port = free_port();
    let store = tempfile::tempdir().expect("temp");
    let mut cmd = std::process::Command::new("nats-server");
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path());
    check_down_then_up("nats", &format!("nats://127.0.0.1:{port}"), Some(cmd)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_fails_fast() {
    let port = free_port();
    check_down_then_up(
        "postgres",
        &format!("postgres://postgres@127.0.0.1:{port}/test"),
        None,
    )
    .await;
}

/// A PostgreSQL server owned by one test: its own data directory (a temp dir) and port,
/// so it can be stopped and started without touching the shared server on 5432. The
/// tests run as root and postgres refuses root, so as root its tools run as the
/// `postgres` user (`runuser`), which owns the data directory.
struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
    as_root: bool,
}

impl OwnPostgres {
    /// `initdb` a fresh cluster (trust auth, user `postgres`) on a free port.
    fn init() -> Self {
        let mut bins: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .collect();
        bins.sort();
        let bin = bins
            .pop()
            .expect("initdb and pg_ctl under /usr/lib/postgresql/*/bin");
        let as_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let dir = tempfile::tempdir().expect("temp");
        if as_root {
            let chown = std::process::Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(chown.success(), "chown postgres {}", dir.path().display());
        }
        let pg = Self {
            dir,
            bin,
            port: free_port(),
            as_root,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// A command running one of the server's tools, as `postgres` when we are root.
    fn command(&self, tool: &str) -> std::process::Command {
        let tool = self.bin.join(tool);
        if self.as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(tool);
            c
        } else {
            std::process::Command::new(tool)
        }
    }

    /// Run a tool; panics with its output if it fails.
    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start it on its port (loopback only) and wait until it accepts connections.
    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// Stop it the way a crash would: every backend killed, no clean shutdown.
    fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        // Never leave a server behind, even when the test failed half-way.
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A test-owned PostgreSQL goes down under a serving app (killed as in a crash) and comes
/// back on the same port: meanwhile the guest gets an error and the request a 5xx in
/// under 3 s (the backend timeout is 5 s), other requests are served, and afterwards the same atoll
/// process serves again with the data written before the outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_fast_and_recovers() {
    let pg = OwnPostgres::init();
    pg.start();
    let (server, _rc) = start_app_with_store("postgres", &pg.url());
    let c = client();
    assert_eq!(op(&c, &server, "op=incr&key=n").await, (200, "1".into()));
    assert_eq!(op(&c, &server, "op=incr&key=n").await, (200, "2".into()));
    assert_eq!(
        op(&c, &server, "op=set&key=kept&value=yes").await,
        (200, "ok".into())
    );

    pg.stop();
    // The first call meets the dead connection, the next ones a refused reconnect.
    for idx in 0..3 {
        let started = Instant::now();
        let (status, body) = op(&c, &server, "op=incr&key=n").await;
        let took = started.elapsed();
        assert!(
            (500..600).contains(&status),
            "call {idx} during the outage: {status} {body}"
        );
        assert!(body.starts_with("other:"), "{body}");
        // A stopped server closes the connection and refuses new ones: each call fails
        // at once, far below the 5 s backend timeout (the 3 s connect budget is the most
        // a reconnect can take).
        assert!(took < Duration::from_secs(3), "call {idx} took {took:?}");
    }
    assert_eq!(
        get(&c, &server.url("/none?store=default&op=get&key=k"))
            .await
            .status,
        403,
        "other requests are served during the outage"
    );

    pg.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        last = op(&c, &server, "op=get&key=kept").await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(last, (200, "yes".into()), "did not recover");
    // The counter kept its value: nothing written during the outage, nothing lost.
    assert_eq!(op(&c, &server, "op=incr&key=n").await, (200, "3".into()));
}

/// A TCP forwarder to the shared PostgreSQL whose connections can go silent: a frozen
/// connection keeps both sockets open but moves no more bytes, as after a network
/// partition or a lost NAT mapping, where no FIN or RST ever arrives. Connections
/// accepted after the freeze are forwarded normally.
struct Forwarder {
    port: u16,
    frozen: Arc<std::sync::Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>>,
    /// While set, new connections are accepted and then silent from the first byte (a
    /// server that accepts but never answers the startup, like one stopped with SIGSTOP).
    silence_new: Arc<std::sync::atomic::AtomicBool>,
}

impl Forwarder {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let frozen: Arc<std::sync::Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>> = Arc::default();
        let flags = frozen.clone();
        let silence_new: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let silent = silence_new.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let flag = Arc::new(std::sync::atomic::AtomicBool::new(
                    silent.load(std::sync::atomic::Ordering::SeqCst),
                ));
                flags.lock().expect("lock").push(flag.clone());
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, flag.clone()));
                tokio::spawn(pipe(sr, cw, flag));
            }
        });
        Self {
            port,
            frozen,
            silence_new,
        }
    }

    /// Make connections accepted from now on silent (`true`), or normal again.
    fn silence_new_connections(&self, on: bool) {
        self.silence_new
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every connection open now goes silent, for good.
    fn freeze_open_connections(&self) {
        for flag in self.frozen.lock().expect("lock").iter() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Copy bytes one way until `frozen`; then hold both ends open and copy nothing.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(std::sync::atomic::Ordering::SeqCst) {
            let _keep_open = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A PostgreSQL connection that goes silent without being closed (no FIN, no RST):
/// calls fail within the backend timeout, and the backend gives up on that connection
/// and opens a new one, instead of waiting on the dead one until the kernel times it out
/// minutes later. A server that accepts the new connection but never answers its startup
/// costs a call at most the connect budget (3 s), not the whole backend timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_silent_connection_is_replaced() {
    let fwd = Forwarder::start("127.0.0.1:5432".parse().expect("addr")).await;
    let (server, _rc) = start_app_with_store(
        "postgres",
        &format!("postgres://postgres@127.0.0.1:{}/test", fwd.port),
    );
    let c = client();
    assert_eq!(op(&c, &server, "op=incr&key=n").await, (200, "1".into()));

    fwd.freeze_open_connections();
    fwd.silence_new_connections(true);
    let started = Instant::now();
    let (status, body) = op(&c, &server, "op=incr&key=n").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "took {:?}",
        started.elapsed()
    );

    // The reconnect reaches a server that never answers the startup: the call fails
    // when the connect budget runs out, before the 5 s backend timeout.
    let started = Instant::now();
    let (status, body) = op(&c, &server, "op=get&key=n").await;
    let took = started.elapsed();
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("took more than 3s") && took < Duration::from_millis(4500),
        "took {took:?}: {body}"
    );

    // The next calls go over a new connection.
    fwd.silence_new_connections(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        last = op(&c, &server, "op=get&key=n").await;
        if last.0 == 200 {
            break;
        }
    }
    assert_eq!(
        last.0, 200,
        "still stuck on the silent connection: {}",
        last.1
    );
    // The increment sent into the frozen connection never reached the server.
    assert_eq!(last.1, "1");
    assert_eq!(op(&c, &server, "op=incr&key=n").await, (200, "2".into()));
}

/// The same silent connection under a component whose timeout (1 s) is shorter than
/// the backend's own stall limit (4 s): every call is dropped by the component timeout
/// before the backend gives up on its own, and still the connection is found dead (the
/// dropped call's probe gets no answer) and replaced, instead of hanging every later
/// call on it for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_silent_connection_is_replaced_under_a_short_component_timeout() {
    let fwd = Forwarder::start("127.0.0.1:5432".parse().expect("addr")).await;
    let short = manifest(&unique("kvshort")).replacen(
        "key_value_stores = [\"default\", \"cache\"]\n",
        "key_value_stores = [\"default\", \"cache\"]\nlimits = { timeout = \"1s\" }\n",
        1,
    );
    let (server, _rc) = start(
        TestApp::new(&short),
        Some(&format!(
            "[key_value_store.default]\ntype = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:{}/test\"\n",
            fwd.port
        )),
    );
    let c = client();
    assert_eq!(op(&c, &server, "op=incr&key=n").await, (200, "1".into()));

    fwd.freeze_open_connections();
    let started = Instant::now();
    let (status, body) = op(&c, &server, "op=incr&key=n").await;
    assert_ne!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the component timeout is 1 s; took {:?}",
        started.elapsed()
    );

    // Each call is cut at 1 s; within the probe's budget (what the first call had left of
    // the 4 s stall limit) the connection is marked dead and the next call reconnects.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = (0, String::new());
    while Instant::now() < deadline {
        last = op(&c, &server, "op=get&key=n").await;
        if last.0 == 200 {
            break;
        }
    }
    assert_eq!(
        last.0, 200,
        "still stuck on the silent connection: {}",
        last.1
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "replaced only after {:?}",
        started.elapsed()
    );
    assert_eq!(last.1, "1");
    assert_eq!(op(&c, &server, "op=incr&key=n").await, (200, "2".into()));
}

/// `clients` concurrent clients each GET `url` `rounds` times, one after another; every
/// answer must be 200.
async fn all_ok(c: &HttpClient, url: String, clients: usize, rounds: usize) {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                let r = get(&c, &url).await;
                assert_eq!(r.status, 200, "{}", r.text());
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
}
