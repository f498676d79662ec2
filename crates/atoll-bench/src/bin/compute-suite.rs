//! The compute suite: every kernel of `bench/compute/kernels`, natively and in the
//! guest component built from the same code at the same opt-level, each guest call in
//! a fresh instance (as a request gets). Several guest builds can race at once
//! (`default=PATH simd128=PATH`: the target's defaults, and with `+simd128`, which
//! wasmtime runs). Rounds rotate which side goes first, so drift on a noisy machine hits
//! all; each side's figure is its median. Prints a table with each guest/native ratio
//! and the geometric means, and the verdict against the goal (geomean < 1.3x) for the
//! best build, and with `--json FILE` writes the same as JSON.
//!
//! `bench/compute/run` builds the guest and runs this in release; `--smoke` (sizes of
//! 1, one round) is what CI runs, for correctness only: every checksum must match.
//!
//! Usage: compute-suite [LABEL=]GUEST.wasm... [--rounds N] [--json FILE] [--smoke] [--only NAME]

use std::time::{Duration, Instant};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compute-suite: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Row {
    kernel: &'static str,
    size: u32,
    native: Duration,
    /// One median per guest build, in the order given.
    guests: Vec<Duration>,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut guests: Vec<(String, String)> = Vec::new();
    let mut rounds = 7usize;
    let mut json_out = None;
    let mut smoke = false;
    let mut only = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--rounds takes a positive number")?;
            }
            "--json" => json_out = Some(args.next().ok_or("--json takes a file")?),
            "--smoke" => smoke = true,
            "--only" => only = Some(args.next().ok_or("--only takes a kernel name")?),
            // LABEL=PATH, or a bare path labelled `guest`.
            other if !other.starts_with('-') => match other.split_once('=') {
                Some((label, path)) => guests.push((label.to_string(), path.to_string())),
                None => guests.push(("guest".to_string(), other.to_string())),
            },
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if guests.is_empty() {
        return Err(
            "usage: compute-suite [LABEL=]GUEST.wasm... [--rounds N] [--json FILE] [--smoke] [--only KERNEL]"
                .into(),
        );
    }
    if smoke {
        rounds = 1;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let runtime = atoll::Runtime::builder()
        .max_instances(1)
        .build()
        .map_err(|e| e.to_string())?;
    let limits = atoll::Limits::default()
        .memory(1 << 30)
        .deadline(Duration::from_secs(120))
        .max_instances(1);
    let mut plugins = Vec::new();
    for (label, path) in &guests {
        let plugin = rt
            .block_on(runtime.load_file(path, &atoll::Policy::deny_all(), &limits))
            .map_err(|e| format!("cannot load {path} ({label}): {e}"))?;
        plugins.push(plugin);
    }

    let mut rows = Vec::new();
    for &(kernel, default_size) in compute_kernels::KERNELS {
        if only.as_deref().is_some_and(|o| o != kernel) {
            continue;
        }
        let size = if smoke { 1 } else { default_size };
        let expected = compute_kernels::run(kernel, size).ok_or("unknown kernel")?;
        let wave_args = [format!("{kernel:?}"), size.to_string()];
        let wave_args: Vec<&str> = wave_args.iter().map(String::as_str).collect();
        let guest_once = |g: usize| -> Result<Duration, String> {
            let started = Instant::now();
            let out = rt
                .block_on(plugins[g].call_wave("run-kernel", &wave_args))
                .map_err(|e| format!("{kernel}: the guest ({}) failed: {e}", guests[g].0))?;
            let took = started.elapsed();
            if out != format!("ok({expected})") {
                return Err(format!(
                    "{kernel}: the guest ({}) answered {out}, native ok({expected}): the two sides do not compute the same",
                    guests[g].0
                ));
            }
            Ok(took)
        };
        let native_once = || {
            let started = Instant::now();
            std::hint::black_box(compute_kernels::run(
                std::hint::black_box(kernel),
                std::hint::black_box(size),
            ));
            started.elapsed()
        };
        // One warm-up each (page faults, lazy statics, the instance pool).
        if !smoke {
            native_once();
            for g in 0..plugins.len() {
                guest_once(g)?;
            }
        }
        let mut native = Vec::new();
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); plugins.len()];
        for round in 0..rounds {
            // Each round in another order: native first, then each guest first in turn.
            let sides = plugins.len() + 1;
            for step in 0..sides {
                match (round + step) % sides {
                    0 => native.push(native_once()),
                    g => times[g - 1].push(guest_once(g - 1)?),
                }
            }
        }
        let row = Row {
            kernel,
            size,
            native: median(native),
            guests: times.into_iter().map(median).collect(),
        };
        let shown: Vec<String> = row
            .guests
            .iter()
            .zip(&guests)
            .map(|(t, (label, _))| {
                format!(
                    "{label} {:>8.2} ms ({:.3}x)",
                    t.as_secs_f64() * 1e3,
                    ratio(*t, row.native)
                )
            })
            .collect();
        eprintln!(
            "{:<16} native {:>8.2} ms  {}",
            row.kernel,
            row.native.as_secs_f64() * 1e3,
            shown.join("  ")
        );
        rows.push(row);
    }
    let geomeans: Vec<f64> = (0..guests.len())
        .map(|g| {
            (rows
                .iter()
                .map(|r| ratio(r.guests[g], r.native).ln())
                .sum::<f64>()
                / rows.len().max(1) as f64)
                .exp()
        })
        .collect();
    let best = geomeans.iter().copied().fold(f64::INFINITY, f64::min);
    let met = best < 1.3;
    let labels: Vec<&str> = guests.iter().map(|(l, _)| l.as_str()).collect();
    println!(
        "| kernel | size | native (ms) | {} |",
        labels
            .iter()
            .map(|l| format!("{l}, fresh instance (ms) | {l} / native"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---:|---:|{}", "---:|---:|".repeat(labels.len()));
    for r in &rows {
        let cells: Vec<String> = r
            .guests
            .iter()
            .map(|t| format!("{:.2} | {:.3}", t.as_secs_f64() * 1e3, ratio(*t, r.native)))
            .collect();
        println!(
            "| {} | {} | {:.2} | {} |",
            r.kernel,
            r.size,
            r.native.as_secs_f64() * 1e3,
            cells.join(" | ")
        );
    }
    let gm: Vec<String> = geomeans.iter().map(|g| format!(" | **{g:.3}**")).collect();
    println!("| **geometric mean** | | |{}|", gm.join(" |"));
    println!(
        "\ngoal: geomean < 1.3x, best guest build ({rounds} rounds, medians): {}",
        if smoke {
            "not judged (smoke run: sizes of 1, one round)".to_string()
        } else if met {
            format!("met ({best:.3})")
        } else {
            format!("NOT met ({best:.3})")
        }
    );
    if let Some(path) = json_out {
        let kernels: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let g: serde_json::Map<String, serde_json::Value> = r
                    .guests
                    .iter()
                    .zip(&labels)
                    .map(|(t, l)| {
                        (
                            l.to_string(),
                            serde_json::json!({
                                "ms": t.as_secs_f64() * 1e3,
                                "ratio": ratio(*t, r.native),
                            }),
                        )
                    })
                    .collect();
                serde_json::json!({
                    "kernel": r.kernel,
                    "size": r.size,
                    "native_ms": r.native.as_secs_f64() * 1e3,
                    "guests": g,
                })
            })
            .collect();
        let gm: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .zip(&geomeans)
            .map(|(l, g)| (l.to_string(), serde_json::json!(g)))
            .collect();
        let report = serde_json::json!({
            "rounds": rounds,
            "smoke": smoke,
            "kernels": kernels,
            "geomean": gm,
            "goal": 1.3,
            "met": !smoke && met,
        });
        std::fs::write(&path, format!("{report:#}\n"))
            .map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(())
}

fn ratio(guest: Duration, native: Duration) -> f64 {
    guest.as_secs_f64() / native.as_secs_f64().max(1e-9)
}
