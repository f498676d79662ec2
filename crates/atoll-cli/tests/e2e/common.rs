//! Test harness: writes an app into a temp dir, runs the real `atoll up` binary on a free
//! loopback port, and talks real HTTP to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub const BIN: &str = env!("CARGO_BIN_EXE_atoll");

/// A free port on 127.0.0.1 (nothing listens on it right after this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A shared compile cache for tests that do not test the cache itself, so each
/// component is compiled once per test run.
pub fn shared_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("atoll-home")
}

/// Replace `{{NAME}}` with the path of test program `name` and `{{FIXTURES}}` with the
/// fixtures dir.
pub fn expand(manifest: &str) -> String {
    let mut s = manifest.replace(
        "{{FIXTURES}}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"),
    );
    for (name, path) in test_programs_artifacts::ALL {
        s = s.replace(&format!("{{{{{}}}}}", name.to_uppercase()), path);
    }
    s
}

/// An app directory holding `atoll.toml`.
pub struct TestApp {
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub fn new(manifest: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("atoll.toml"), expand(manifest)).expect("write manifest");
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The `atoll` binary, without the `ATOLL_VARIABLE_*` variables of the environment the
/// tests run in: a developer's own settings must not change what a test sees. Tests
/// pass the ones they mean with `.env`.
pub fn atoll_command() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ATOLL_VARIABLE_") {
            c.env_remove(k);
        }
    }
    c
}

/// Run `atoll up` on `app` expecting it to fail at startup: (exit ok?, stderr). A server
/// that starts instead is killed after 60 s (and reported as a success).
pub fn up_fails(app: &TestApp, extra_args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let mut child = atoll_command()
        .arg("up")
        .arg(app.path())
        .args(["--listen", "127.0.0.1:0"])
        .args(extra_args)
        .envs(envs.iter().copied())
        .env("ATOLL_HOME", shared_home())
        .env("ATOLL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run atoll");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let start = Instant::now();
    let ok = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.success();
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (ok, reader.join().unwrap_or_default())
}

/// A running `atoll up`.
pub struct Running {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
    /// Kept so the app directories live as long as the server.
    _apps: Vec<TestApp>,
}

impl Running {
    pub fn start(app: TestApp) -> Self {
        Self::start_with(app, &shared_home(), &[])
    }

    pub fn start_with(app: TestApp, home: &Path, extra_args: &[&str]) -> Self {
        Self::start_full(vec![app], home, extra_args, &[])
    }

    /// Serve several apps from one process.
    pub fn start_apps(apps: Vec<TestApp>, home: &Path, extra_args: &[&str]) -> Self {
        Self::start_full(apps, home, extra_args, &[])
    }

    /// Start with extra environment variables (e.g. `ATOLL_VARIABLE_*`).
    pub fn start_with_env(
        app: TestApp,
        home: &Path,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        Self::start_full(vec![app], home, extra_args, envs)
    }

    fn start_full(
        apps: Vec<TestApp>,
        home: &Path,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let dirs: Vec<PathBuf> = apps.iter().map(|a| a.path().to_path_buf()).collect();
        Self::start_command(apps, &dirs, home, extra_args, envs)
    }

    /// `atoll up ARGS... --listen 127.0.0.1:0 EXTRA...` with `positional` as given (app
    /// directories, or nothing when `extra_args` names manifests with `-f`); `apps` are
    /// kept alive as long as the server.
    pub fn start_command(
        apps: Vec<TestApp>,
        positional: &[PathBuf],
        home: &Path,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let mut child = atoll_command()
            .arg("up")
            .args(positional)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .envs(envs.iter().copied())
            .env("ATOLL_HOME", home)
            .env("ATOLL_LOG", "info")
            .env("ATOLL_TEST_SECRET", "hunter2")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn atoll");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split(" on http://").nth(1)
                    && line.contains("serving app")
                {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                let mut l = sink.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(a) => a.parse().expect("address in log"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "atoll up did not start; logs:\n{}",
                    logs.lock().expect("log lock")
                );
            }
        };
        Self {
            child,
            addr,
            logs,
            _apps: apps,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("log lock").clone()
    }

    /// Wait until the logs contain `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_until(timeout, |logs| logs.contains(needle))
    }

    /// Wait until `f` holds of the logs so far, at most `timeout`.
    pub fn wait_until(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if f(&self.logs()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        signal(self.pid(), "TERM");
        self.wait_exit(timeout)
    }

    /// Wait for the process to exit (after a signal the test sent), at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: Bytes,
) -> Result<Reply, String> {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e:?}"))?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// GET with an explicit `Host` header.
pub async fn get_host(client: &HttpClient, url: &str, host: &str) -> Reply {
    get_with_headers(client, url, &[("host", host)]).await
}

/// GET with these extra headers.
pub async fn get_with_headers(client: &HttpClient, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = http::Request::builder().uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(client: &HttpClient, url: &str) -> Reply {
    send(client, "GET", url, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// One raw HTTP/1.1 connection, for tests that must know every request went over the
/// same TCP connection (a pooled client reconnects silently when the server closes).
pub struct RawConn {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub fn open(addr: SocketAddr) -> Self {
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// `GET path` on this connection: (status, lower-cased headers, body). Panics if the
    /// server closed the connection instead of answering.
    pub fn get(&mut self, path: &str) -> (u16, Vec<(String, String)>, String) {
        use std::io::Write;
        write!(
            self.stream,
            "GET {path} HTTP/1.1\r\nhost: atoll.test\r\n\r\n"
        )
        .expect("write request");
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill("the response head");
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let body = if let Some(len) = header("content-length") {
            let len: usize = len.parse().expect("content-length");
            while self.buf.len() < len {
                self.fill("the body");
            }
            self.buf.drain(..len).collect::<Vec<u8>>()
        } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    self.fill("a chunk size");
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    self.fill("a chunk");
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
            body
        } else {
            panic!("a response without a length on a keep-alive connection: {head:?}")
        };
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn fill(&mut self, what: &str) {
        use std::io::Read;
        let mut chunk = [0u8; 8192];
        let n = self
            .stream
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("reading {what}: {e}"));
        assert!(n > 0, "the server closed the connection before {what}");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}
