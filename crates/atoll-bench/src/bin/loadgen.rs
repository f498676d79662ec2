//! Fixed-rate load: `loadgen URL RATE SECONDS [CONNECTIONS]` sends RATE requests per
//! second in total over CONNECTIONS keep-alive connections (default 32) for SECONDS, and
//! prints one JSON line: sent, ok, errors, achieved rate, and latency percentiles in
//! microseconds, measured from each request's *scheduled* time (corrects for
//! coordinated omission: a server that stalls is charged for the queue it causes).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send one GET on `stream` and read the whole response; true on a 200.
/// Plain HTTP/1.1 over a raw socket: a hyper client costs several times more CPU per
/// request, and the load generator shares the machine with the server.
async fn one(stream: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> std::io::Result<bool> {
    stream.write_all(req).await?;
    buf.clear();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let ok = head.starts_with("http/1.1 200");
    let len: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    // Without a length the body is chunked; these small bodies end with the last chunk.
    let complete = |buf: &[u8]| match len {
        Some(n) => buf.len() >= head_end + n,
        None => buf[head_end..].ends_with(b"0\r\n\r\n"),
    };
    while !complete(buf) {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(ok)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: loadgen URL RATE SECONDS [CONNECTIONS]");
        std::process::exit(2);
    }
    let url: http::Uri = args[1].parse().expect("a URL");
    let rate: f64 = args[2].parse().expect("a rate");
    let secs: f64 = args[3].parse().expect("seconds");
    let conns: usize = args.get(4).and_then(|c| c.parse().ok()).unwrap_or(32);
    let authority = url.authority().expect("URL with host:port").to_string();
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\n\r\n").into_bytes();
    let per_conn_interval = Duration::from_secs_f64(conns as f64 / rate);
    let total = (rate * secs) as usize;
    let start = Instant::now() + Duration::from_millis(50);

    let mut tasks = Vec::new();
    for c in 0..conns {
        let (authority, request) = (authority.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut stream = None;
            let mut buf = Vec::with_capacity(4096);
            let offset = per_conn_interval.mul_f64(c as f64 / conns as f64);
            let mut i = 0usize;
            while i * conns + c < total {
                let scheduled = start + offset + per_conn_interval.mul_f64(i as f64);
                i += 1;
                tokio::time::sleep_until(scheduled.into()).await;
                if stream.is_none() {
                    match TcpStream::connect(&authority).await {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            stream = Some(s);
                        }
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    }
                }
                let Some(s) = stream.as_mut() else { continue };
                match one(s, &request, &mut buf).await {
                    Ok(true) => lat.push(scheduled.elapsed().as_micros() as u64),
                    Ok(false) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        stream = None;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        all[((all.len() as f64 - 1.0) * p).round() as usize]
    };
    println!(
        "{{\"sent\":{},\"ok\":{},\"errors\":{},\"rate\":{:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        all.len() as u64 + errors,
        all.len(),
        errors,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        all.last().copied().unwrap_or(0)
    );
}
