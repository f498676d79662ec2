//! A deterministic CPU-bound workload, compiled both into the `compute` guest and natively
//! into the `compute` bench (`crates/atoll-http/benches/compute.rs` includes this file),
//! so the two run exactly the same Rust code.

/// Fill 64 Ki words from xorshift, sort them, and fold them with FNV-1a, `rounds` times.
pub fn workload(rounds: u32) -> u64 {
    let mut buf = vec![0u32; 64 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..rounds {
        for v in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *v = x as u32;
        }
        buf.sort_unstable();
        for v in &buf {
            h ^= u64::from(*v);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
