//! Fixed-rate load: `loadgen URL RATE SECONDS [CONNECTIONS]` sends RATE requests per
//! second in total over CONNECTIONS keep-alive connections (default 32) for SECONDS, and
//! prints one JSON line: sent, ok, errors, achieved rate, and latency percentiles in
//! microseconds, measured from each request's *scheduled* time (corrects for
//! coordinated omission: a server that stalls is charged for the queue it causes).
//!
//! Pacing: a thread of its own releases the requests at their times, waking every 200 µs
//! at most with the kernel's high-resolution timers (1 µs timer slack), and hands them to
//! the connections round robin; the connections run on one async thread. (An async runtime's timer fires
//! on whole milliseconds and would send each millisecond's requests as one burst; the
//! queue such a burst makes would be the generator's doing, not the server's.) A request
//! that finds its connection idle counts from its release; one that has to wait for its
//! connection (the previous answer came late) counts from its nominal time.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Send one GET on `stream` and read the whole response; true on a 200.
/// Plain HTTP/1.1 over a raw socket: a hyper client costs several times more CPU per
/// request, and the load generator shares the machine with the server.
async fn one(stream: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> std::io::Result<bool> {
    stream.write_all(req).await?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
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
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(ok)
}

/// One request's times: when it was due, and when the pacer released it.
#[derive(Clone, Copy)]
struct Due {
    nominal: Instant,
    released: Instant,
}

/// The pacer wakes at most this often and releases every request due by then: a wake-up
/// per request would cost the generator more CPU than the server spends per request.
const QUANTUM: Duration = Duration::from_micros(200);

/// Release `total` requests at `interval` from `start`, round robin over `lanes`.
fn pace(lanes: Vec<mpsc::UnboundedSender<Due>>, start: Instant, interval: Duration, total: usize) {
    // The slack is in nanoseconds. Best effort: without it the pacing is 50 µs coarser.
    // SAFETY: PR_SET_TIMERSLACK only reads its integer argument.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    let mut i = 0;
    while i < total {
        let now = Instant::now();
        while i < total && start + interval.mul_f64(i as f64) <= now {
            let due = Due {
                nominal: start + interval.mul_f64(i as f64),
                released: now,
            };
            if lanes[i % lanes.len()].send(due).is_err() {
                return;
            }
            i += 1;
        }
        if i < total {
            let next = (start + interval.mul_f64(i as f64)).max(now + QUANTUM);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
}

/// One connection: send each request it is handed; latencies in µs, and errors.
async fn connection(
    authority: String,
    request: Vec<u8>,
    mut dues: mpsc::UnboundedReceiver<Due>,
) -> (Vec<u64>, u64) {
    let mut lat = Vec::new();
    let mut errors = 0u64;
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut idle_since = Instant::now();
    while let Some(due) = dues.recv().await {
        // Idle when it was released: count from the release. Busy: the request waited
        // for the previous answer, so the server is charged from the nominal time.
        let from = if idle_since <= due.released {
            due.released
        } else {
            due.nominal
        };
        if stream.is_none() {
            match TcpStream::connect(&authority).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                Err(_) => {
                    errors += 1;
                    idle_since = Instant::now();
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        match one(s, &request, &mut buf).await {
            Ok(true) => lat.push(from.elapsed().as_micros() as u64),
            Ok(false) => errors += 1,
            Err(_) => {
                errors += 1;
                stream = None;
            }
        }
        idle_since = Instant::now();
    }
    (lat, errors)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: loadgen URL RATE SECONDS [CONNECTIONS]");
        std::process::exit(2);
    }
    let url: http::Uri = args[1].parse().expect("a URL");
    let rate: f64 = args[2].parse().expect("a rate");
    let secs: f64 = args[3].parse().expect("seconds");
    let conns: usize = args
        .get(4)
        .and_then(|c| c.parse().ok())
        .unwrap_or(32)
        .max(1);
    let authority = url.authority().expect("URL with host:port").to_string();
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\n\r\n").into_bytes();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * secs) as usize;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut all, errors, elapsed) = runtime.block_on(async move {
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (tx, rx) = mpsc::unbounded_channel();
            lanes.push(tx);
            tasks.push(tokio::spawn(connection(
                authority.clone(),
                request.clone(),
                rx,
            )));
        }
        let start = Instant::now() + Duration::from_millis(50);
        let pacer = std::thread::spawn(move || pace(lanes, start, interval, total));
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.expect("connection task");
            all.extend(l);
            errors += e;
        }
        let _ = pacer.join();
        (all, errors, start.elapsed().as_secs_f64())
    });
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
