//! A `wasi:cli/run` command for the cron trigger. What it does is set by the
//! `JOB_MODE` environment variable (from the manifest's `environment`):
//! - `tick` (default): prints `job tick <unix ms>`;
//! - `hang`: spins forever (the host must stop it at its timeout);
//! - `fail`: panics;
//! - `denied-then-fail`: asks for `JOB_URL` over outbound HTTP (not granted), then panics;
//! - `probe`: prints what it can reach: its environment, config key `greeting`, the
//!   file `/static/hello.txt`, and an outbound HTTP request to `JOB_URL`.
use test_programs::bindings::wasi::config::store;

fn main() {
    let mode = std::env::var("JOB_MODE").unwrap_or_else(|_| "tick".into());
    match mode.as_str() {
        "hang" => {
            println!("job hanging");
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "fail" => panic!("job failed on purpose"),
        "denied-then-fail" => {
            // An outbound request the job was not granted, then a failure.
            let url = std::env::var("JOB_URL").unwrap_or_else(|_| "http://127.0.0.1:9/".into());
            let _ = test_programs::get(&url);
            panic!("job failed after a denial");
        }
        "probe" => probe(),
        _ => {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            println!("job tick {ms}");
        }
    }
}

fn probe() {
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    println!("probe env {}", env.join(","));
    match store::get("greeting") {
        Ok(Some(v)) => println!("probe config {v}"),
        Ok(None) => println!("probe config unset"),
        Err(e) => println!("probe config error {e:?}"),
    }
    match std::fs::read_to_string("/static/hello.txt") {
        Ok(s) => println!("probe file {}", s.trim()),
        Err(e) => println!("probe file denied: {e}"),
    }
    if let Ok(url) = std::env::var("JOB_URL") {
        match test_programs::get(&url) {
            Ok(status) => println!("probe outbound {status}"),
            Err(e) => println!("probe outbound denied: {e}"),
        }
    }
}
