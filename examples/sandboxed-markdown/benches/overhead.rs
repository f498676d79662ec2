//! What the sandbox costs: the CommonMark spec's 652 examples rendered natively and
//! sandboxed, one call per example; the same examples concatenated into one document
//! (one call); the whole spec as one long document; and an empty one. The per-call cost
//! (a fresh instance, the checkout, the copies in and out) and the in-guest rendering
//! can so be told apart.
//!
//! Sandboxed calls are measured two ways: the crate's `render` (a fresh instance per
//! call, what the crate does), and a pool of reused instances built here with the same
//! component, world and limits (what the crate would do with an `atoll::Pool`).
//!
//! `cargo bench -p sandboxed-markdown` runs criterion, then prints medians of whole
//! passes over the corpus and the sandboxed/native ratios.
#![allow(missing_docs)] // the bindings `bindgen!` generates

#[path = "../tests/corpus/mod.rs"]
mod corpus;

use std::hint::black_box;
use std::time::{Duration, Instant};

use atoll::{Limits, Policy, Pool, Runtime};
use criterion::{BenchmarkId, Criterion};

atoll::bindgen!({ path: "wit", world: "acme:markdown/markdown" });

/// The crate's component, with a pool of reused instances instead of fresh ones.
struct Pooled {
    pool: Pool,
    indices: MarkdownIndices,
}

impl Pooled {
    fn new() -> Self {
        let plugin = Runtime::shared()
            .expect("runtime")
            .plugin(include_bytes!(concat!(env!("OUT_DIR"), "/markdown.wasm")).to_vec())
            .policy(Policy::deny_all())
            .limits(
                Limits::default()
                    .memory(sandboxed_markdown::MEMORY_LIMIT)
                    .deadline(sandboxed_markdown::DEADLINE),
            )
            .load_blocking()
            .expect("loads");
        let indices = MarkdownIndices::new(plugin.instance_pre()).expect("exports render");
        Self {
            pool: plugin.pool(),
            indices,
        }
    }

    fn render(&self, markdown: &str) -> Result<String, atoll::Error> {
        self.pool.with_instance_blocking(async |store, instance| {
            let exports = self.indices.load(&mut *store, instance)?;
            exports.call_render(store, markdown).await
        })
    }
}

/// One way to render a document.
type Render<'a> = Box<dyn Fn(&str) -> String + 'a>;

/// The ways to render a document.
struct Renderers {
    pooled: Pooled,
}

impl Renderers {
    fn all(&self) -> [(&'static str, Render<'_>); 3] {
        [
            ("native", Box::new(corpus::native)),
            (
                "sandboxed-fresh",
                Box::new(|md| sandboxed_markdown::render(md).expect("renders")),
            ),
            (
                "sandboxed-pooled",
                Box::new(|md| self.pooled.render(md).expect("renders")),
            ),
        ]
    }
}

/// The inputs: the examples, and two single documents.
struct Corpus {
    examples: Vec<String>,
    /// The examples concatenated (15 KB).
    concatenated: String,
    /// The whole spec, prose and all (205 KB): a long real document.
    spec: &'static str,
}

fn benches(c: &mut Criterion, renderers: &Renderers, corpus: &Corpus) {
    let examples = &corpus.examples;
    let mut group = c.benchmark_group("spec-examples");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(6));
    for (name, render) in renderers.all() {
        group.bench_function(BenchmarkId::new(name, "652 calls"), |b| {
            b.iter(|| {
                for md in examples {
                    black_box(render(black_box(md)));
                }
            })
        });
    }
    group.finish();

    for (group, doc) in [
        ("concatenated", corpus.concatenated.as_str()),
        ("whole-spec", corpus.spec),
    ] {
        let mut group = c.benchmark_group(group);
        group.sample_size(30);
        for (name, render) in renderers.all() {
            group.bench_function(BenchmarkId::new(name, "1 call"), |b| {
                b.iter(|| black_box(render(black_box(doc))))
            });
        }
        group.finish();
    }

    let mut group = c.benchmark_group("empty");
    for (name, render) in renderers.all() {
        group.bench_function(BenchmarkId::new(name, "1 call"), |b| {
            b.iter(|| black_box(render(black_box(""))))
        });
    }
    group.finish();
}

/// The median time of `passes` runs of `f`.
fn median(passes: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..passes)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[passes / 2]
}

/// Medians of whole passes, measured here rather than read back from criterion's files,
/// and the ratios the issue asks about.
fn summary(renderers: &Renderers, corpus: &Corpus) {
    let examples = &corpus.examples;
    let bytes: usize = examples.iter().map(String::len).sum();
    println!(
        "\nsummary: medians of 51 passes; {} examples ({bytes} bytes) one call each, \
         the same concatenated (one call), spec.txt whole ({} bytes, one call), an empty document",
        examples.len(),
        corpus.spec.len(),
    );
    let mut native = [Duration::ZERO; 3];
    for (name, render) in renderers.all() {
        let times = [
            median(51, || {
                for md in examples {
                    black_box(render(black_box(md)));
                }
            }),
            median(51, || {
                black_box(render(black_box(&corpus.concatenated)));
            }),
            median(51, || {
                black_box(render(black_box(corpus.spec)));
            }),
        ];
        let empty = median(51, || {
            for _ in 0..100 {
                black_box(render(black_box("")));
            }
        }) / 100;
        if name == "native" {
            native = times;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let x = |i: usize| times[i].as_secs_f64() / native[i].as_secs_f64();
        println!(
            "  {name:<17} examples {:>7.3} ms ({:>5.2}x, {:>5.2} us/call)   concatenated {:>6.3} ms ({:>4.2}x)   spec.txt {:>6.3} ms ({:>4.2}x)   empty {:>5.2} us",
            ms(times[0]),
            x(0),
            times[0].as_secs_f64() * 1e6 / examples.len() as f64,
            ms(times[1]),
            x(1),
            ms(times[2]),
            x(2),
            empty.as_secs_f64() * 1e6,
        );
    }
}

fn main() {
    let examples: Vec<String> = corpus::examples().into_iter().map(|e| e.markdown).collect();
    // Separate documents: a blank line and an HTML comment end any open block.
    let concatenated = examples.join("\n\n<!-- -->\n\n");
    let corpus = Corpus {
        examples,
        concatenated,
        spec: include_str!("../tests/commonmark/spec.txt"),
    };
    // The first call of the process compiles the component.
    let start = Instant::now();
    assert!(
        !sandboxed_markdown::render("*warm*")
            .expect("renders")
            .is_empty()
    );
    let first = start.elapsed();
    let renderers = Renderers {
        pooled: Pooled::new(),
    };
    for (_, render) in renderers.all() {
        assert!(!render("*warm*").is_empty());
    }

    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &renderers, &corpus);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` runs each bench once only,
    // and `--profile-time` is for a profiler, not for numbers.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        println!(
            "\nfirst call of the process (compiling the component): {:.0} ms",
            first.as_secs_f64() * 1e3
        );
        summary(&renderers, &corpus);
    }
}
