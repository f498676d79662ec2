//! Fixed-rate load: `loadgen URL RATE SECONDS [CONNECTIONS]` sends RATE requests per
//! second in total over CONNECTIONS keep-alive connections (default 32) for SECONDS, and
//! prints one JSON line: sent, ok, errors, achieved rate, and latency percentiles in
//! microseconds, measured from each request's *scheduled* time (corrects for
//! coordinated omission: a server that stalls is charged for the queue it causes).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

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
    let per_conn_interval = Duration::from_secs_f64(conns as f64 / rate);
    let total = (rate * secs) as usize;
    let start = Instant::now() + Duration::from_millis(50);

    let mut tasks = Vec::new();
    for c in 0..conns {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // One client per task keeps one connection per task.
            let client = Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .build_http::<Empty<Bytes>>();
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let offset = per_conn_interval.mul_f64(c as f64 / conns as f64);
            let mut i = 0usize;
            loop {
                let scheduled = start + offset + per_conn_interval.mul_f64(i as f64);
                if i * conns + c >= total {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let req = http::Request::get(url.clone())
                    .body(Empty::new())
                    .expect("request");
                match client.request(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        let _ = resp.into_body().collect().await;
                        lat.push(scheduled.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
                i += 1;
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
