//! Per-call time of Extism's Rust SDK calling `count_vowels("Hello, World!")`: one
//! plugin reused across calls (Extism's normal mode, an instance kept between calls), and
//! a new plugin instance per call from a compiled plugin (Extism's closest to atoll's
//! fresh instance). Prints medians of several timed batches, in ns per call, as
//! `name median_ns` lines for bench/extism/run to read.
use std::time::Instant;

use extism::{CompiledPlugin, Manifest, Plugin, PluginBuilder, Wasm};

const INPUT: &str = "Hello, World!";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time(batches: usize, per_batch: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..per_batch {
        f();
    }
    let mut out = Vec::new();
    for _ in 0..batches {
        let start = Instant::now();
        for _ in 0..per_batch {
            f();
        }
        out.push(start.elapsed().as_nanos() as f64 / per_batch as f64);
    }
    median(out)
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: extism-bench PLUGIN.wasm");
    let manifest = Manifest::new([Wasm::file(&path)]);
    let mut plugin = Plugin::new(&manifest, [], false).expect("plugin");
    let out: String = plugin.call("count_vowels", INPUT).expect("call");
    assert_eq!(out, "3");
    let reused = time(11, 20_000, || {
        let out: String = plugin.call("count_vowels", INPUT).expect("call");
        assert_eq!(out, "3");
    });
    println!("extism_reused_plugin {reused:.0}");

    let compiled = CompiledPlugin::new(PluginBuilder::new(manifest.clone())).expect("compile");
    let fresh = time(11, 2_000, || {
        let mut p = Plugin::new_from_compiled(&compiled).expect("instantiate");
        let out: String = p.call("count_vowels", INPUT).expect("call");
        assert_eq!(out, "3");
    });
    println!("extism_new_plugin_per_call {fresh:.0}");
}
