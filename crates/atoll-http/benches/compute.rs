//! Compute-heavy guest vs the same Rust code native: the shared workload in
//! `crates/test-programs/src/compute.rs`, natively and in the `compute` guest (one fresh
//! instance per call, as a request would get). Run with
//! `cargo bench -p atoll-http --bench compute`; compare the two medians.

#[allow(missing_docs)]
mod support;

#[allow(dead_code, missing_docs)]
#[path = "../../test-programs/src/compute.rs"]
mod compute;

use criterion::{Criterion, criterion_main};

const ROUNDS: u32 = 4;

fn bench(c: &mut Criterion) {
    let expected = format!("{:016x}\n", compute::workload(ROUNDS));
    let (_engine, guest) = support::load(test_programs_artifacts::COMPUTE);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let uri = format!("http://localhost/?rounds={ROUNDS}");

    let mut group = c.benchmark_group("compute workload");
    group.sample_size(30);
    group.bench_function("native", |b| {
        b.iter(|| std::hint::black_box(compute::workload(std::hint::black_box(ROUNDS))))
    });
    group.bench_function("guest (fresh instance)", |b| {
        b.iter(|| {
            let body = rt.block_on(support::request(&guest, &uri));
            assert_eq!(body, expected.as_bytes());
        })
    });
    group.finish();
}

mod group {
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
