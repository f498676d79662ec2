//! The load generator against a real server on loopback: it sends exactly the requests
//! it is asked for, at the rate asked, and counts what fails instead of hanging.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kills the server when the test ends, pass or fail.
struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn native_hello() -> (Server, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_native-hello"))
        .arg(format!("127.0.0.1:{port}"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start native-hello");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "native-hello did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    (server, port)
}

/// Run loadgen and read its JSON line.
fn loadgen(url: &str, rate: u32, seconds: f64, connections: u32) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            url,
            &rate.to_string(),
            &seconds.to_string(),
            &connections.to_string(),
        ])
        .output()
        .expect("run loadgen");
    assert!(out.status.success(), "loadgen failed: {out:?}");
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

#[test]
fn sends_every_request_at_the_rate_asked() {
    let (_server, port) = native_hello();
    let r = loadgen(&format!("http://127.0.0.1:{port}/"), 2000, 1.0, 8);
    assert_eq!(r["sent"], 2000, "{r}");
    assert_eq!(r["ok"], 2000, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    let rate = r["rate"].as_f64().expect("rate");
    assert!((1600.0..2400.0).contains(&rate), "{r}");
    let (p50, p99) = (r["p50_us"].as_u64(), r["p99_us"].as_u64());
    assert!(p50 > Some(0) && p50 <= p99, "{r}");
}

#[test]
fn counts_refused_connections_as_errors_and_ends() {
    // Nobody listens on this port.
    let port = free_port();
    let started = Instant::now();
    let r = loadgen(&format!("http://127.0.0.1:{port}/"), 200, 0.5, 4);
    assert_eq!(r["sent"], 100, "{r}");
    assert_eq!(r["ok"], 0, "{r}");
    assert_eq!(r["errors"], 100, "{r}");
    assert!(started.elapsed() < Duration::from_secs(15));
}
