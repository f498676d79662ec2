//! Per-call overhead of a trivial export (count the vowels of a short string, Extism's
//! own example plugin) through the `atoll` crate: a fresh instance per call and a pooled
//! instance, typed (bindgen) and dynamic (`Val`), beside the same function called
//! natively. Run with `cargo bench -p atoll --bench call`.
#![allow(missing_docs)] // the bindings `bindgen!` generates

use std::hint::black_box;
use std::sync::Arc;

use atoll::{Limits, Policy, Runtime, Val};
use criterion::{Criterion, criterion_group, criterion_main};

atoll::bindgen!({ path: "../test-programs/wit-plugin", world: "acme:plugin/text-plugin" });

const INPUT: &str = "Hello, World!";

fn native_count_vowels(s: &str) -> u32 {
    s.chars().filter(|c| "aeiouAEIOU".contains(*c)).count() as u32
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Runtime::new().expect("runtime");
    let bytes = std::fs::read(test_programs_artifacts::TEXT).expect("text plugin built");
    let plugin = rt
        .block_on(runtime.load(bytes, &Policy::deny_all(), &Limits::default()))
        .expect("load");
    let indices = Arc::new(TextPluginIndices::new(plugin.instance_pre()).expect("indices"));
    let pool = plugin.pool();

    c.bench_function("native count_vowels", |b| {
        b.iter(|| native_count_vowels(black_box(INPUT)))
    });

    let typed = async |store: &mut atoll::wasmtime::Store<atoll::Ctx>,
                       instance: &atoll::wasmtime::component::Instance| {
        let w = indices.load(&mut *store, instance)?;
        w.acme_plugin_text().call_count_vowels(store, INPUT).await
    };
    c.bench_function("fresh instance, typed", |b| {
        b.iter(|| {
            let n = rt.block_on(plugin.with_instance(typed)).expect("call");
            assert_eq!(n, 3);
        })
    });
    c.bench_function("pooled instance, typed", |b| {
        b.iter(|| {
            let n = rt.block_on(pool.with_instance(typed)).expect("call");
            assert_eq!(n, 3);
        })
    });
    let args = [Val::String(INPUT.into())];
    c.bench_function("fresh instance, dynamic (Val)", |b| {
        b.iter(|| {
            let out = rt
                .block_on(plugin.call("count-vowels", &args))
                .expect("call");
            assert_eq!(out, [Val::U32(3)]);
        })
    });
    c.bench_function("pooled instance, dynamic (Val)", |b| {
        b.iter(|| {
            let out = rt.block_on(pool.call("count-vowels", &args)).expect("call");
            assert_eq!(out, [Val::U32(3)]);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
