//! Fleet mode end to end: a test-owned `nats-server -js` on a free port, three `atoll
//! node` processes, `atoll deploy` / `status` / `rollback`, and bounded load from a Rust
//! client spread over the nodes. Versions differ by an environment variable of the `env`
//! guest (its body names it), so every response says which version served it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{BIN, atoll_command, client, free_port, send, signal};

/// A nats-server of the test's own, file-backed, on a free port.
struct Nats {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nats {
    fn start() -> Self {
        let mut n = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        n.up();
        n
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian's nats-server package; .ci/run installs it)");
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One `atoll node` process.
struct Node {
    child: Option<Child>,
    name: String,
    port: u16,
    state: PathBuf,
    log: PathBuf,
    /// Flags and environment beyond the usual ones.
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

impl Node {
    fn start(nats: &str, name: &str, root: &Path) -> Self {
        Self::start_with(nats, name, root, &[], &[])
    }

    fn start_with(
        nats: &str,
        name: &str,
        root: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut n = Self {
            child: None,
            name: name.to_string(),
            port: free_port(),
            state: root.join(format!("{name}-state")),
            log: root.join(format!("{name}.log")),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        n.up(nats);
        n
    }

    fn up(&mut self, nats: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("node log");
        let child = atoll_command()
            .args([
                "node",
                "--nats",
                nats,
                "--name",
                &self.name,
                "--anti-entropy",
                "2",
            ])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--state")
            .arg(&self.state)
            .args(["--workers", "1", "--shutdown-grace", "5"])
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("ATOLL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run atoll node");
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "node {} did not start:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "KILL");
            let _ = c.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "TERM");
            let t = Instant::now();
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if t.elapsed() > Duration::from_secs(20) {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("node {} did not stop on SIGTERM", self.name);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An app directory whose `env` component sees `VERSION=<version>`.
fn app_dir(root: &Path, version: &str) -> PathBuf {
    let dir = root.join(format!("app-{version}"));
    std::fs::create_dir_all(&dir).expect("app dir");
    std::fs::write(
        dir.join("atoll.toml"),
        format!(
            "[app]\nname = \"demo\"\n\n[component.env]\nsource = \"{}\"\nenvironment = {{ VERSION = \"{version}\" }}\n\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"env\"\n",
            test_programs_artifacts::ENV
        ),
    )
    .expect("manifest");
    dir
}

/// Run an `atoll` subcommand to its end: (success, stdout, stderr).
fn atoll(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run atoll");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn deploy(dir: &Path, nats: &str) -> (bool, String, String) {
    atoll(&[
        "deploy",
        dir.to_str().expect("utf-8 path"),
        "--nats",
        nats,
        "--timeout",
        "60s",
    ])
}

fn status(nats: &str) -> serde_json::Value {
    let (ok, out, err) = atoll(&["status", "--nats", nats, "--json"]);
    assert!(ok, "atoll status failed: {err}");
    serde_json::from_str(&out).expect("status JSON")
}

/// The version a response body names (`env VERSION=v2` -> 2).
fn version_of(body: &str) -> Option<u32> {
    body.lines()
        .find_map(|l| l.strip_prefix("env VERSION=v"))
        .and_then(|v| v.trim().parse().ok())
}

async fn served_version(node: &Node) -> Option<u32> {
    let r = send(&client(), "GET", &node.url("/"), bytes::Bytes::new())
        .await
        .ok()?;
    (r.status == 200).then(|| version_of(&r.text())).flatten()
}

/// What a load run saw: per client (`node#i`: one client sends its requests one after
/// another), the versions of its responses in order; per node, its failures.
#[derive(Default, Debug)]
struct Seen {
    versions: BTreeMap<String, Vec<u32>>,
    failures: BTreeMap<String, Vec<String>>,
}

impl Seen {
    /// Every version a node answered with, over its clients.
    fn of_node(&self, node: &str) -> Vec<u32> {
        self.versions
            .iter()
            .filter(|(k, _)| k.split('#').next() == Some(node))
            .flat_map(|(_, v)| v.iter().copied())
            .collect()
    }
}

/// Bounded load: per node, two sequential keep-alive clients; a client that sees a
/// failure stops (a balancer takes a failing node out), so a killed node costs at most
/// its in-flight requests. Ends when `stop` is set, or after 120 s.
fn load(nodes: &[(String, u16)], stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Seen> {
    load_watched(nodes, stop, Arc::new(Mutex::new(Seen::default())))
}

/// [`load`], recording into `seen` as it goes.
fn load_watched(
    nodes: &[(String, u16)],
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinHandle<Seen> {
    let nodes = nodes.to_vec();
    tokio::spawn(async move {
        let mut tasks = Vec::new();
        for (name, port) in nodes {
            for i in 0..2 {
                let (name, stop, seen) = (name.clone(), stop.clone(), seen.clone());
                let client_key = format!("{name}#{i}");
                tasks.push(tokio::spawn(async move {
                    let c = client();
                    let url = format!("http://127.0.0.1:{port}/");
                    let t = Instant::now();
                    while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(120) {
                        let r = send(&c, "GET", &url, bytes::Bytes::new()).await;
                        let mut s = seen.lock().expect("lock");
                        match r {
                            Ok(r) if r.status == 200 && version_of(&r.text()).is_some() => {
                                let v = version_of(&r.text()).unwrap_or_default();
                                s.versions.entry(client_key.clone()).or_default().push(v);
                            }
                            Ok(r) => {
                                s.failures.entry(name.clone()).or_default().push(format!(
                                    "{}: {}",
                                    r.status,
                                    r.text()
                                ));
                                return;
                            }
                            Err(e) => {
                                s.failures.entry(name.clone()).or_default().push(e);
                                return;
                            }
                        }
                    }
                }));
            }
        }
        for t in tasks {
            let _ = t.await;
        }
        std::mem::take(&mut *seen.lock().expect("lock"))
    })
}

/// Wait until every node serves `version` (each node's own answer), or fail after 30 s.
async fn wait_all_serve(nodes: &[&Node], version: u32) {
    let t = Instant::now();
    for n in nodes {
        while served_version(n).await != Some(version) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "node {} does not serve v{version}:\n{}",
                n.name,
                n.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A request that starts after a response from the new version never gets the old one
/// (requests in flight may still finish on the old version, so only one client's
/// sequential requests are ordered).
fn assert_monotonic(seen: &Seen) {
    for (client, versions) in &seen.versions {
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "client {client} saw its node go back to an older version: {versions:?}"
        );
    }
}

fn node_names(status: &serde_json::Value) -> Vec<String> {
    status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_converges_deploys_under_load_and_refuses_what_does_not_verify() {
    let root = tempfile::tempdir().expect("temp");
    let nats = Nats::start();
    let url = nats.url();
    let nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| Node::start(&url, n, root.path()))
        .collect();
    // No app yet: once it has read the (empty) desired state, a node is ready.
    let t = Instant::now();
    loop {
        let r = send(
            &client(),
            "GET",
            &nodes[0].url("/.atoll/ready"),
            bytes::Bytes::new(),
        )
        .await
        .expect("ready");
        if r.status == 200 {
            assert_eq!(r.text(), "ready\n");
            break;
        }
        assert_eq!((r.status, r.text().as_str()), (503, "not ready\n"));
        assert!(t.elapsed() < Duration::from_secs(20), "{}", nodes[0].logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // v1 converges on every node.
    let (ok, out, err) = deploy(&app_dir(root.path(), "v1"), &url);
    assert!(ok, "deploy v1 failed:\n{out}\n{err}\n{}", nodes[0].logs());
    assert!(out.contains("deployed app demo"), "{out}");
    for n in &nodes {
        assert!(
            out.contains(&n.name),
            "the per-node table misses {}: {out}",
            n.name
        );
        assert_eq!(served_version(n).await, Some(1), "{}", n.logs());
    }

    // v2 under load: zero failed requests, and no node ever goes back to v1.
    let stop = Arc::new(AtomicBool::new(false));
    let ports: Vec<(String, u16)> = nodes.iter().map(|n| (n.name.clone(), n.port)).collect();
    let watched = Arc::new(Mutex::new(Seen::default()));
    let running = load_watched(&ports, stop.clone(), watched.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out, err) = deploy(&app_dir(root.path(), "v2"), &url);
    assert!(ok, "deploy v2 failed:\n{out}\n{err}");
    assert!(out.contains("converged"), "{out}");
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_all_serve(&refs, 2).await;
    // Load goes on until every node's clients have crossed the swap (bounded).
    let t = Instant::now();
    loop {
        let crossed = {
            let w = watched.lock().expect("lock");
            nodes.iter().all(|n| w.of_node(&n.name).contains(&2)) || !w.failures.is_empty()
        };
        if crossed || t.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let seen = running.await.expect("load");
    assert!(
        seen.failures.is_empty(),
        "requests failed during the deploy: {:?}",
        seen.failures
    );
    for n in &nodes {
        let v = seen.of_node(&n.name);
        assert!(
            v.contains(&1) && v.contains(&2),
            "node {} served {v:?}",
            n.name
        );
    }
    assert_monotonic(&seen);

    // Status: the desired version and every node up to date with it.
    let s = status(&url);
    let desired = s["apps"][0][1]["current"]
        .as_str()
        .expect("current")
        .to_string();
    assert_eq!(s["apps"][0][1]["epoch"], 2);
    let mut names = node_names(&s);
    names.sort();
    assert_eq!(names, ["n1", "n2", "n3"]);
    for n in s["nodes"].as_array().expect("nodes") {
        assert_eq!(
            n["apps"]["demo"]["version"].as_str(),
            Some(desired.as_str())
        );
        assert_eq!(n["ready"], true);
    }

    // A blob whose bytes do not match its sha256: every node refuses it, the deploy
    // reports each node's error, and v2 keeps serving.
    let config = atoll_fleet::ControlConfig::new(url.clone());
    let control = atoll_fleet::Control::connect(&config, Duration::from_secs(3))
        .await
        .expect("control plane");
    let v3 = app_dir(root.path(), "v3");
    let manifest = v3.join("atoll.toml");
    let app = atoll_manifest::load(&manifest).expect("manifest");
    let mut bundle =
        atoll_fleet::bundle::bundle(&app, &std::fs::read_to_string(&manifest).expect("read"))
            .expect("bundle");
    // Another component's bytes under this name (a name nobody uploaded before).
    let fake_sha = "0".repeat(64);
    let real = bundle.blobs.values().next().expect("a blob").clone();
    bundle.blobs.clear();
    bundle.blobs.insert(fake_sha.clone(), real);
    for c in bundle.record.components.values_mut() {
        c.sha256 = fake_sha.clone();
    }
    bundle.record.manifest = bundle.record.manifest.replace(
        &format!("{}.wasm", app_sha(&app)),
        &format!("{fake_sha}.wasm"),
    );
    let err = atoll_fleet::deploy::deploy(&control, &bundle, Duration::from_secs(30), "test")
        .await
        .expect_err("a tampered blob must not deploy");
    let message = err.to_string();
    assert!(
        message.contains("failed to stage on 3 node(s)"),
        "{message}"
    );
    for n in &nodes {
        assert!(message.contains(&n.name), "{message}");
    }
    assert!(message.contains("does not match its sha256"), "{message}");
    for n in &nodes {
        assert_eq!(served_version(n).await, Some(2), "{}", n.logs());
    }
    let s = status(&url);
    assert_eq!(s["apps"][0][1]["current"].as_str(), Some(desired.as_str()));
    assert!(
        s["apps"][0][1]["staged"].is_null(),
        "the failed stage was not cleared: {s}"
    );

    // Two concurrent deploys of one app: exactly one wins, the other is told to retry.
    let b3 = atoll_fleet::bundle::bundle(&app, &std::fs::read_to_string(&manifest).expect("read"))
        .expect("bundle");
    let v4 = app_dir(root.path(), "v4");
    let app4 = atoll_manifest::load(&v4.join("atoll.toml")).expect("manifest");
    let b4 = atoll_fleet::bundle::bundle(
        &app4,
        &std::fs::read_to_string(v4.join("atoll.toml")).expect("read"),
    )
    .expect("bundle");
    let timeout = Duration::from_secs(30);
    let (r3, r4) = tokio::join!(
        atoll_fleet::deploy::deploy(&control, &b3, timeout, "a"),
        atoll_fleet::deploy::deploy(&control, &b4, timeout, "b"),
    );
    let (won, lost) = match (&r3, &r4) {
        (Ok(_), Err(e)) => (3, e),
        (Err(e), Ok(_)) => (4, e),
        other => panic!("expected exactly one winner: {other:?}"),
    };
    assert!(
        matches!(lost, atoll_fleet::FleetError::Conflict { .. })
            && lost.to_string().contains("retry"),
        "{lost}"
    );
    wait_all_serve(&refs, won).await;

    // Rollback: the version before the winner, on every node.
    let (ok, out, err) = atoll(&["rollback", "demo", "--nats", &url]);
    assert!(ok, "rollback failed:\n{out}\n{err}");
    assert!(out.contains("rolled back app demo"), "{out}");
    wait_all_serve(&refs, 2).await;
}

/// The sha256 of the app's only component file.
fn app_sha(app: &atoll_manifest::App) -> String {
    let c = app.components.values().next().expect("a component");
    let atoll_manifest::ComponentSource::Path(p) = &c.source else {
        panic!("a path source")
    };
    atoll_fleet::records::sha256_hex(&std::fs::read(p).expect("read component"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_survives_a_killed_node_and_a_nats_restart() {
    let root = tempfile::tempdir().expect("temp");
    let mut nats = Nats::start();
    let url = nats.url();
    let mut nodes: Vec<Node> = ["k1", "k2", "k3"]
        .iter()
        .map(|n| Node::start(&url, n, root.path()))
        .collect();
    let (ok, out, err) = deploy(&app_dir(root.path(), "v1"), &url);
    assert!(ok, "deploy v1 failed:\n{out}\n{err}");

    // kill -9 one node under load: its clients fail (at most their in-flight requests),
    // the others see nothing; its heartbeat is gone within the expiry.
    let stop = Arc::new(AtomicBool::new(false));
    let ports: Vec<(String, u16)> = nodes.iter().map(|n| (n.name.clone(), n.port)).collect();
    let running = load(&ports, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_pid = nodes[2].pid();
    nodes[2].kill9();
    let killed_at = Instant::now();
    let expiry = atoll_fleet::control::NODE_EXPIRY + atoll_fleet::control::HEARTBEAT;
    loop {
        let names = node_names(&status(&url));
        if !names.contains(&"k3".to_string()) {
            break;
        }
        assert!(
            killed_at.elapsed() < expiry + Duration::from_secs(3),
            "node k3 (pid {killed_pid}) is still listed {:?} after its kill",
            killed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // nats-server restarts (same store) under load: nothing fails.
    nats.down();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // NATS down: deploy and status fail fast, saying so.
    let t = Instant::now();
    let (ok, _, err) = deploy(&app_dir(root.path(), "v2"), &url);
    assert!(!ok && err.contains("control plane unavailable"), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "deploy took {:?} to fail",
        t.elapsed()
    );
    nats.up();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = running.await.expect("load");
    let k3_failures = seen.failures.get("k3").map_or(0, Vec::len);
    assert!(
        k3_failures <= 2,
        "more failures than k3's two in-flight requests: {:?}",
        seen.failures
    );
    for n in ["k1", "k2"] {
        assert!(
            !seen.failures.contains_key(n),
            "{n} failed requests (kill of k3, NATS restart): {:?}",
            seen.failures
        );
        let answered = seen.of_node(n).len();
        assert!(answered > 10, "too little load on {n}: {answered}");
    }

    // After the restart the next deploy converges (the nodes' watches resumed).
    let (ok, out, err) = deploy(&app_dir(root.path(), "v2"), &url);
    assert!(
        ok,
        "deploy v2 after the NATS restart failed:\n{out}\n{err}\n{}",
        nodes[0].logs()
    );
    let live: Vec<&Node> = nodes.iter().take(2).collect();
    wait_all_serve(&live, 2).await;

    // A node started while NATS is down serves from its state directory, ready, and
    // joins once NATS is back.
    nodes[0].stop();
    nats.down();
    nodes[0].up(&url);
    assert_eq!(
        served_version(&nodes[0]).await,
        Some(2),
        "{}",
        nodes[0].logs()
    );
    let r = send(
        &client(),
        "GET",
        &nodes[0].url("/.atoll/ready"),
        bytes::Bytes::new(),
    )
    .await
    .expect("ready");
    assert_eq!(r.status, 200, "{}", nodes[0].logs());
    nats.up();
    let t = Instant::now();
    loop {
        let (ok, out, _) = atoll(&["status", "--nats", &url, "--json"]);
        if ok
            && let Ok(s) = serde_json::from_str::<serde_json::Value>(&out)
            && node_names(&s).contains(&"k1".to_string())
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "k1 did not rejoin:\n{}",
            nodes[0].logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Graceful stop deregisters at once (no waiting for the expiry).
    nodes[1].stop();
    let names = node_names(&status(&url));
    assert!(
        !names.contains(&"k2".to_string()),
        "k2 still listed after a graceful stop: {names:?}"
    );
}

/// One server of a three-server NATS cluster on loopback ports.
struct ClusterServer {
    child: Option<Child>,
    name: String,
    port: u16,
}

impl Drop for ClusterServer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn nats_cluster(root: &Path) -> Vec<ClusterServer> {
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let all_routes = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    (0..3)
        .map(|i| {
            let name = format!("s{i}");
            let port = free_port();
            let child = Command::new("nats-server")
                .args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-n",
                    &name,
                ])
                .args(["--cluster_name", "atoll"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", routes[i])])
                .args(["--routes", &all_routes])
                .arg("-sd")
                .arg(root.join(&name))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server");
            ClusterServer {
                child: Some(child),
                name,
                port,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_an_r3_nats_cluster_deploys_through_the_loss_of_its_stream_leader() {
    let root = tempfile::tempdir().expect("temp");
    let mut servers = nats_cluster(root.path());
    let url = servers
        .iter()
        .map(|s| format!("nats://127.0.0.1:{}", s.port))
        .collect::<Vec<_>>()
        .join(",");
    // The cluster elects its JetStream meta leader; the R3 buckets need all three peers.
    let config = atoll_fleet::ControlConfig {
        url: url.clone(),
        replicas: 3,
    };
    let t = Instant::now();
    let control = loop {
        match atoll_fleet::Control::connect(&config, Duration::from_secs(3)).await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "the NATS cluster never formed: {e}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let nodes: Vec<Node> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| Node::start(&url, n, root.path()))
        .collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    let deploy_r3 = |dir: &Path| {
        atoll(&[
            "deploy",
            dir.to_str().expect("utf-8"),
            "--nats",
            &url,
            "--replicas",
            "3",
            "--timeout",
            "60s",
        ])
    };
    let (ok, out, err) = deploy_r3(&app_dir(root.path(), "v1"));
    assert!(ok, "deploy v1 failed:\n{out}\n{err}");
    wait_all_serve(&refs, 1).await;

    // The leader of the desired-state stream, killed while v2 deploys under load.
    let js = async_nats::jetstream::new(control.client().clone());
    let info = js
        .get_stream("KV_atoll_apps")
        .await
        .expect("stream")
        .get_info()
        .await
        .expect("stream info");
    let leader = info
        .cluster
        .and_then(|c| c.leader)
        .expect("a stream leader");
    let stop = Arc::new(AtomicBool::new(false));
    let ports: Vec<(String, u16)> = nodes.iter().map(|n| (n.name.clone(), n.port)).collect();
    let running = load(&ports, stop.clone());
    let v2 = app_dir(root.path(), "v2");
    let deploying = {
        let (v2, url) = (v2.clone(), url.clone());
        std::thread::spawn(move || {
            atoll(&[
                "deploy",
                v2.to_str().expect("utf-8"),
                "--nats",
                &url,
                "--replicas",
                "3",
                "--timeout",
                "60s",
            ])
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let server = servers
        .iter_mut()
        .find(|s| s.name == leader)
        .expect("leader is ours");
    if let Some(mut c) = server.child.take() {
        signal(c.id(), "KILL");
        let _ = c.wait();
    }
    let (ok, out, err) = deploying.join().expect("deploy thread");
    // The deploy either went through the election, or failed saying what happened and
    // leaving one version everywhere; then the same deploy, run again, converges.
    if !ok {
        assert!(
            err.contains("control plane"),
            "a deploy failing during the election must say it was the control plane:\n{out}\n{err}"
        );
        let t = Instant::now();
        loop {
            let (ok, out, err) = deploy_r3(&v2);
            if ok {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "v2 never deployed after the leader's loss:\n{out}\n{err}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    wait_all_serve(&refs, 2).await;
    stop.store(true, Ordering::Relaxed);
    let seen = running.await.expect("load");
    assert!(
        seen.failures.is_empty(),
        "requests failed: {:?}",
        seen.failures
    );
    assert_monotonic(&seen);
}

/// `atoll node --admin` and `OTEL_*`: the guests' families and the node's own on
/// `/metrics` (accepted by promtool), the node's state in `/api/state`, server spans of
/// its requests at an OTLP receiver; with NATS gone the node says so and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_its_own_metrics_and_exports_spans() {
    use super::admin::{metrics_text, promtool_accepts, samples, value};
    use super::telemetry::{Received, http_receiver};

    let root = tempfile::tempdir().expect("temp");
    let mut nats = Nats::start();
    let url = nats.url();
    let received = Arc::new(Received::default());
    let (otlp, _receiver) =
        http_receiver("127.0.0.1:0".parse().expect("addr"), received.clone()).await;
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let otlp_url = format!("http://{otlp}");
    let node = Node::start_with(
        &url,
        "m1",
        root.path(),
        &["--admin", &admin.to_string()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_url.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "fleet-node"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "60000"),
        ],
    );
    // Deployed once the node is in the fleet (a deploy waits for the live nodes only).
    wait_listed(&url, &node);
    let (ok, out, err) = deploy(&app_dir(root.path(), "v1"), &url);
    assert!(ok, "deploy v1 failed:\n{out}\n{err}\n{}", node.logs());
    let st = status(&url);
    assert_eq!(st["apps"][0][0], "demo", "{st}");
    let v1 = st["apps"][0][1]["current"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no current version in the status: {st}"));
    for _ in 0..3 {
        assert_eq!(served_version(&node).await, Some(1), "{}", node.logs());
    }

    // The guests' families, counted as `atoll up --admin` counts them, and the node's.
    let text = metrics_text(admin);
    let s = samples(&text);
    let served = r#"http_server_request_duration_seconds_count{app="demo",component="env",http_route="/...",http_request_method="GET",http_response_status_code="200"}"#;
    assert_eq!(value(&s, served), 3.0, "{text}");
    assert_eq!(value(&s, "atoll_fleet_node_ready"), 1.0);
    assert_eq!(value(&s, "atoll_fleet_node_draining"), 0.0);
    assert_eq!(value(&s, "atoll_fleet_control_plane_connected"), 1.0);
    assert_eq!(value(&s, "atoll_fleet_swaps_total"), 1.0);
    assert_eq!(value(&s, "atoll_fleet_version_failures_total"), 0.0);
    let desired_epoch = value(&s, r#"atoll_fleet_app_desired_epoch{app="demo"}"#);
    assert!(desired_epoch >= 1.0, "{text}");
    assert_eq!(
        value(&s, r#"atoll_fleet_app_served_epoch{app="demo"}"#),
        desired_epoch
    );
    let short = &v1[..12];
    for state in ["desired", "served"] {
        let key = format!(
            r#"atoll_fleet_app_version_info{{app="demo",version="{short}",state="{state}"}}"#
        );
        assert_eq!(value(&s, &key), 1.0, "{text}");
    }
    assert!(
        text.contains(r#"atoll_fleet_app_load_seconds{app="demo",phase="compile"} "#),
        "{text}"
    );
    promtool_accepts(&text);

    // The same in the dashboard's state, under `fleet`.
    let state = admin_json(admin, "/api/state");
    assert_eq!(state["fleet"]["node"]["name"], "m1", "{state}");
    assert_eq!(
        state["fleet"]["node"]["apps"]["demo"]["version"],
        v1.as_str()
    );
    assert_eq!(state["fleet"]["desired"]["demo"]["version"], v1.as_str());
    assert_eq!(state["fleet"]["control_plane_connected"], true);
    assert_eq!(state["apps"][0]["name"], "demo", "{state}");

    // Each request is a server span of the node's service, naming the app.
    let span = received
        .wait_for("a server span of app demo from the node", |spans| {
            spans
                .iter()
                .find(|g| {
                    g.service == "fleet-node"
                        && g.attrs.get("atoll.app").map(String::as_str) == Some("demo")
                })
                .cloned()
        })
        .await;
    assert_eq!(
        span.attrs.get("atoll.component").map(String::as_str),
        Some("env"),
        "{span:#?}"
    );

    // NATS gone: the node says so on /metrics, stays ready and keeps serving v1.
    nats.down();
    let t = Instant::now();
    loop {
        let s = samples(&metrics_text(admin));
        if value(&s, "atoll_fleet_control_plane_connected") == 0.0 {
            assert_eq!(value(&s, "atoll_fleet_node_ready"), 1.0);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the node still reports a control plane 30 s after NATS stopped:\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_version(&node).await, Some(1), "{}", node.logs());

    // Back: a new session, and the next deploy is one more swap at a higher epoch.
    nats.up();
    let t = Instant::now();
    loop {
        let s = samples(&metrics_text(admin));
        // `status` may fail while JetStream is still starting: try again.
        let (ok, out, _) = atoll(&["status", "--nats", &url, "--json"]);
        let listed = ok
            && serde_json::from_str::<serde_json::Value>(&out)
                .is_ok_and(|st| node_names(&st).contains(&"m1".to_string()));
        if value(&s, "atoll_fleet_control_plane_connected") == 1.0 && listed {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the node did not rejoin within 30 s:\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out, err) = deploy(&app_dir(root.path(), "v2"), &url);
    assert!(ok, "deploy v2 failed:\n{out}\n{err}\n{}", node.logs());
    assert_eq!(served_version(&node).await, Some(2), "{}", node.logs());
    let s = samples(&metrics_text(admin));
    assert_eq!(value(&s, "atoll_fleet_control_plane_connected"), 1.0);
    assert!(value(&s, "atoll_fleet_control_plane_sessions_total") >= 2.0);
    assert_eq!(value(&s, "atoll_fleet_swaps_total"), 2.0);
    assert!(value(&s, r#"atoll_fleet_app_served_epoch{app="demo"}"#) > desired_epoch);
}

/// Wait until `node` is in the fleet's status (a deploy waits for the live nodes only).
fn wait_listed(url: &str, node: &Node) {
    let t = Instant::now();
    while !node_names(&status(url)).contains(&node.name) {
        assert!(t.elapsed() < Duration::from_secs(20), "{}", node.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// GET `path` on the admin server, as JSON.
fn admin_json(admin: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let out = super::telemetry::admin_get(admin, path);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
}

/// `files` mounts ship with a deploy: a node serves them as `atoll up` would (a
/// directory, a glob, nothing else of the app directory), and again from its state
/// directory after a restart with NATS down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_ships_mounted_files_and_serves_them_from_its_cache() {
    let root = tempfile::tempdir().expect("temp");
    let mut nats = Nats::start();
    let url = nats.url();
    let mut node = Node::start(&url, "f1", root.path());
    wait_listed(&url, &node);
    let dir = root.path().join("site");
    std::fs::create_dir_all(dir.join("static/sub")).expect("mkdir");
    std::fs::write(dir.join("static/index.html"), "<h1>hi</h1>").expect("write");
    std::fs::write(dir.join("static/sub/a.txt"), "nested").expect("write");
    std::fs::create_dir_all(dir.join("assets/deep")).expect("mkdir");
    std::fs::write(dir.join("assets/site.css"), "body{}").expect("write");
    std::fs::write(dir.join("assets/deep/more.css"), "p{}").expect("write");
    std::fs::write(dir.join("assets/notes.txt"), "not matched").expect("write");
    std::fs::write(dir.join("secret.txt"), "top secret").expect("write");
    std::fs::write(
        dir.join("atoll.toml"),
        format!(
            "[app]\nname = \"site\"\n\n[component.files]\nsource = \"{}\"\nfiles = [{{ source = \"static\", destination = \"/static\" }}, \"assets/**/*.css\"]\n\n[[trigger.http]]\nroute = \"/files\"\ncomponent = \"files\"\n",
            test_programs_artifacts::FILES
        ),
    )
    .expect("manifest");
    let (ok, out, err) = deploy(&dir, &url);
    assert!(ok, "deploy failed:\n{out}\n{err}\n{}", node.logs());

    let check = |node: &Node| {
        let base = node.url("/files");
        async move {
            let c = client();
            let read = |p: &str| format!("{base}?path={p}");
            for (path, body) in [
                ("/static/index.html", "<h1>hi</h1>"),
                ("/static/sub/a.txt", "nested"),
                ("/assets/site.css", "body{}"),
                ("/assets/deep/more.css", "p{}"),
            ] {
                let r = send(&c, "GET", &read(path), bytes::Bytes::new())
                    .await
                    .expect("request");
                assert_eq!((r.status, r.text().as_str()), (200, body), "{path}");
            }
            for hidden in [
                "/secret.txt",
                "/assets/notes.txt",
                "/atoll.toml",
                "/static/../secret.txt",
            ] {
                let r = send(&c, "GET", &read(hidden), bytes::Bytes::new())
                    .await
                    .expect("request");
                assert_eq!(r.status, 404, "{hidden} was readable: {}", r.text());
            }
        }
    };
    check(&node).await;

    // Restarted with NATS down: the same files, from the node's state directory.
    node.stop();
    nats.down();
    node.up(&url);
    let t = Instant::now();
    loop {
        let r = send(
            &client(),
            "GET",
            &node.url("/.atoll/ready"),
            bytes::Bytes::new(),
        )
        .await;
        if r.is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{}", node.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check(&node).await;
    assert!(
        node.logs().contains("from the state directory"),
        "{}",
        node.logs()
    );
}

/// A deploy that stages on one node and fails on another changes nothing, prints the
/// failing node's reason, and the node that staged it frees the compiled version (no
/// deploy names it any more) instead of keeping it in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_that_failed_elsewhere_is_dropped_by_the_nodes_that_staged_it() {
    let root = tempfile::tempdir().expect("temp");
    let nats = Nats::start();
    let url = nats.url();
    // Only s1 places the app's store in a server; s2 refuses the app (nodes keep no data).
    let config = root.path().join("runtime.toml");
    std::fs::write(
        &config,
        "[key_value_store.cache]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n",
    )
    .expect("runtime config");
    let config = config.to_str().expect("utf-8").to_string();
    let s1 = Node::start_with(&url, "s1", root.path(), &["--runtime-config", &config], &[]);
    let s2 = Node::start(&url, "s2", root.path());
    let t = Instant::now();
    loop {
        let names = node_names(&status(&url));
        if names.contains(&"s1".to_string()) && names.contains(&"s2".to_string()) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{}", s1.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = app_dir(root.path(), "kv");
    let manifest = std::fs::read_to_string(dir.join("atoll.toml")).expect("manifest");
    std::fs::write(
        dir.join("atoll.toml"),
        manifest.replace(
            "environment = ",
            "key_value_stores = [\"cache\"]\nenvironment = ",
        ),
    )
    .expect("manifest");
    let (ok, out, err) = deploy(&dir, &url);
    assert!(!ok, "the deploy should fail on s2:\n{out}");
    assert!(err.contains("failed to stage on 1 node(s)"), "{err}");
    assert!(err.contains("s2") && err.contains("keep no data"), "{err}");
    assert!(
        s1.logs().contains("staged version"),
        "s1 should have staged it:\n{}",
        s1.logs()
    );
    let t = Instant::now();
    loop {
        let st = status(&url);
        let s1_report = st["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["name"] == "s1")
            .cloned()
            .expect("s1 in the status");
        assert!(st["apps"][0][1]["current"].is_null(), "{st}");
        assert!(st["apps"][0][1]["staged"].is_null(), "{st}");
        if s1_report["staged"]
            .as_object()
            .is_some_and(|m| m.is_empty())
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "s1 still holds the stage no deploy names: {s1_report}\n{}",
            s1.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        s1.logs().contains("dropped staged version"),
        "{}",
        s1.logs()
    );
    drop(s2);
}

/// A composed app deploys: the `path` dependency ships as a blob, the `component` one is
/// the app's own, and the node composes them at load as `atoll up` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composed_app_deploys_with_its_dependencies() {
    let root = tempfile::tempdir().expect("temp");
    let nats = Nats::start();
    let url = nats.url();
    let node = Node::start(&url, "c1", root.path());
    wait_listed(&url, &node);
    let dir = root.path().join("composed");
    std::fs::create_dir_all(&dir).expect("dir");
    // The fmt dependency from a path relative to the app, as a user writes it.
    std::fs::copy(test_programs_artifacts::COMPOSE_FMT, dir.join("fmt.wasm")).expect("copy");
    std::fs::write(
        dir.join("atoll.toml"),
        format!(
            "[app]\nname = \"composed\"\n\n[component.api]\nsource = \"{}\"\n\n[component.api.dependencies]\n\"acme:auth/verify\" = {{ component = \"auth\" }}\n\"acme:fmt\" = {{ path = \"fmt.wasm\" }}\n\n[component.auth]\nsource = \"{}\"\n\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"api\"\n",
            test_programs_artifacts::COMPOSE_HANDLER,
            test_programs_artifacts::COMPOSE_AUTH
        ),
    )
    .expect("manifest");
    let (ok, out, err) = deploy(&dir, &url);
    assert!(ok, "deploy failed:\n{out}\n{err}\n{}", node.logs());
    let c = client();
    let ok = crate::common::get_with_headers(
        &c,
        &node.url("/hello"),
        &[("authorization", "Bearer letmein-alice")],
    )
    .await;
    assert_eq!(
        (ok.status, ok.text().as_str()),
        (200, "Hello, alice! (formatted by acme:fmt)\n"),
        "{}",
        node.logs()
    );
    let refused = crate::common::get_with_headers(
        &c,
        &node.url("/hello"),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (401, "who are you?\n")
    );
    assert!(
        node.logs().contains("composed: acme:fmt/format@1.0.0"),
        "{}",
        node.logs()
    );
}
