//! The compute suite's workloads (`bench/compute`): deterministic, CPU-bound, each
//! returning a checksum so the native and guest runs can be checked equal. The same
//! code is compiled natively and into a guest component, at one opt-level.
//!
//! Library kernels (JSON, regex, DEFLATE) use the crates a real service would; SHA-256
//! is a portable implementation here (see [`Sha256`]); the numeric ones include three kernels of PolyBench/C 4.2 (floyd-warshall,
//! jacobi-2d, lu), ported line by line from their C loops to Rust, with PolyBench's
//! own initialisations.
//!
//! Not for: timing (the runner does it) or anything with I/O.

/// Every kernel: (name, default size); `size` scales the work roughly linearly.
pub const KERNELS: &[(&str, u32)] = &[
    ("sort", 4),
    ("sha256", 16),
    ("json", 4),
    ("regex", 4),
    ("deflate", 2),
    ("matmul", 160),
    ("floyd-warshall", 200),
    ("jacobi-2d", 20),
    ("lu", 200),
];

/// Run kernel `name` at `size`; `None` for an unknown name.
pub fn run(name: &str, size: u32) -> Option<u64> {
    Some(match name {
        "sort" => sort(size),
        "sha256" => sha256(size),
        "json" => json(size),
        "regex" => regex(size),
        "deflate" => deflate(size),
        "matmul" => matmul(size as usize),
        "floyd-warshall" => floyd_warshall(size as usize),
        "jacobi-2d" => jacobi_2d(size as usize),
        "lu" => lu(size as usize),
        _ => return None,
    })
}

/// xorshift64: the suite's deterministic input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fnv(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0000_0100_0000_01b3)
}

/// Fill 64 Ki words, sort them, fold them; `rounds` times.
fn sort(rounds: u32) -> u64 {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = vec![0u32; 64 * 1024];
    let mut h = 0xcbf2_9ce4_8422_2325;
    for _ in 0..rounds {
        for v in buf.iter_mut() {
            *v = rng.next() as u32;
        }
        buf.sort_unstable();
        for v in &buf {
            h = fnv(h, u64::from(*v));
        }
    }
    h
}

/// SHA-256 of `mib` MiB of pseudo-random bytes, in 64 KiB updates, with the portable
/// [`Sha256`] below on both sides.
fn sha256(mib: u32) -> u64 {
    let mut rng = Rng(7);
    let chunk: Vec<u8> = (0..64 * 1024).map(|_| rng.next() as u8).collect();
    let mut hasher = Sha256::new();
    for i in 0..mib * 16 {
        hasher.update(&chunk);
        hasher.update(&i.to_le_bytes());
    }
    let digest = hasher.finish();
    u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]))
}

/// SHA-256 (FIPS 180-4) in portable Rust. Not the `sha2` crate: natively it would use
/// the CPU's SHA instructions, which a guest cannot (so the ratio would be about the
/// hardware, not the code generator), and its `force-soft` feature would be unified
/// into every build of the workspace that includes this crate, atoll's own included.
pub struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    filled: usize,
    length: u64,
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

impl Sha256 {
    /// A hasher with the initial hash value.
    pub fn new() -> Self {
        Self {
            state: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            block: [0; 64],
            filled: 0,
            length: 0,
        }
    }

    /// Hash more input.
    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        while !data.is_empty() {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == 64 {
                let block = self.block;
                self.compress(&block);
                self.filled = 0;
            }
        }
    }

    /// Pad, and return the digest.
    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.length.wrapping_mul(8);
        self.update(&[0x80]);
        while self.filled != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }

    fn compress(&mut self, block: &[u8; 64]) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = self.state;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in self.state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

/// Build a JSON document of 2,000 records, then serialize and parse it back `rounds`
/// times (the shape of an API's request and response bodies).
fn json(rounds: u32) -> u64 {
    let mut rng = Rng(11);
    let records: Vec<serde_json::Value> = (0..2000)
        .map(|i| {
            let r = rng.next();
            serde_json::json!({
                "id": i,
                "name": format!("user-{r:x}"),
                "score": (r % 10_000) as f64 / 7.0,
                "active": r.is_multiple_of(3),
                "tags": ["alpha", "beta", format!("t{}", r % 97)],
                "address": { "city": format!("city-{}", r % 500), "zip": format!("{:05}", r % 100_000) },
            })
        })
        .collect();
    let mut doc = serde_json::Value::Array(records);
    let mut h = 0xcbf2_9ce4_8422_2325;
    for _ in 0..rounds {
        let text = serde_json::to_string(&doc).unwrap_or_default();
        h = fnv(h, text.len() as u64);
        doc = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    }
    fnv(h, doc.as_array().map_or(0, Vec::len) as u64)
}

/// Count matches of three patterns over ~1 MB of generated log text, `rounds` times.
fn regex(rounds: u32) -> u64 {
    const WORDS: &[&str] = &[
        "error",
        "warning",
        "request",
        "handled",
        "in",
        "ms",
        "user",
        "login",
        "failed",
        "timeout",
        "connecting",
        "to",
        "upstream",
        "retrying",
        "cache",
        "miss",
        "hit",
    ];
    let mut rng = Rng(13);
    let mut text = String::with_capacity(1 << 20);
    while text.len() < 1 << 20 {
        let n = rng.next();
        text.push_str(WORDS[(n % WORDS.len() as u64) as usize]);
        match n % 11 {
            0 => text.push_str(&format!(" id={} ", n % 100_000)),
            1 => text.push_str(&format!(" user{}@example.com ", n % 1000)),
            2 => text.push_str(&format!(" 10.0.{}.{} ", n % 256, (n >> 8) % 256)),
            3 => text.push('\n'),
            _ => text.push(' '),
        }
    }
    let patterns = [
        r"\b[a-z]+ing\b",
        r"[a-z0-9]+@[a-z]+\.[a-z]{2,}",
        r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b",
    ];
    let compiled: Vec<regex::Regex> = patterns
        .iter()
        .filter_map(|p| regex::Regex::new(p).ok())
        .collect();
    let mut h = 0xcbf2_9ce4_8422_2325;
    for _ in 0..rounds {
        for re in &compiled {
            h = fnv(h, re.find_iter(&text).count() as u64);
        }
    }
    h
}

/// DEFLATE (level 6) `mib` MiB of text-like data and inflate it back.
fn deflate(mib: u32) -> u64 {
    let mut rng = Rng(17);
    let words: [&[u8]; 8] = [
        b"atoll ",
        b"component ",
        b"request ",
        b"sandbox ",
        b"wasm ",
        b"instance ",
        b"memory ",
        b"fresh ",
    ];
    let mut data = Vec::with_capacity((mib as usize) << 20);
    while data.len() < (mib as usize) << 20 {
        let n = rng.next();
        data.extend_from_slice(words[(n % 8) as usize]);
        if n.is_multiple_of(5) {
            data.extend_from_slice(&n.to_le_bytes()[..3]);
        }
    }
    let packed = miniz_oxide::deflate::compress_to_vec(&data, 6);
    let unpacked = miniz_oxide::inflate::decompress_to_vec(&packed).unwrap_or_default();
    let same = u64::from(unpacked == data);
    fnv(fnv(0xcbf2_9ce4_8422_2325, packed.len() as u64), same)
}

/// Dense n x n f64 matrix multiply (i-k-j order), checksum of the result's bits.
fn matmul(n: usize) -> u64 {
    let a: Vec<f64> = (0..n * n)
        .map(|i| ((i * 7 + 3) % 101) as f64 / 101.0)
        .collect();
    let b: Vec<f64> = (0..n * n)
        .map(|i| ((i * 13 + 5) % 97) as f64 / 97.0)
        .collect();
    let mut c = vec![0.0f64; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, v| fnv(h, v.to_bits()))
}

/// PolyBench/C 4.2 `floyd-warshall`: all-pairs shortest paths on n nodes.
fn floyd_warshall(n: usize) -> u64 {
    // init_array: path[i][j] = i*j%7+1, and 999 where (i+j)%13 == 0 || %7 == 0 || %11 == 0.
    let mut path = vec![0i32; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut v = (i * j % 7 + 1) as i32;
            if (i + j) % 13 == 0 || (i + j) % 7 == 0 || (i + j) % 11 == 0 {
                v = 999;
            }
            path[i * n + j] = v;
        }
    }
    for k in 0..n {
        for i in 0..n {
            for j in 0..n {
                let through = path[i * n + k] + path[k * n + j];
                if through < path[i * n + j] {
                    path[i * n + j] = through;
                }
            }
        }
    }
    path.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, v| fnv(h, *v as u64))
}

/// PolyBench/C 4.2 `jacobi-2d`: `tsteps` steps of a 5-point stencil on a 400 x 400 grid.
fn jacobi_2d(tsteps: usize) -> u64 {
    let n = 400;
    let mut a = vec![0.0f64; n * n];
    let mut b = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (i as f64 * (j + 2) as f64 + 2.0) / n as f64;
            b[i * n + j] = (i as f64 * (j + 3) as f64 + 3.0) / n as f64;
        }
    }
    for _ in 0..tsteps {
        for i in 1..n - 1 {
            for j in 1..n - 1 {
                b[i * n + j] = 0.2
                    * (a[i * n + j]
                        + a[i * n + j - 1]
                        + a[i * n + j + 1]
                        + a[(i + 1) * n + j]
                        + a[(i - 1) * n + j]);
            }
        }
        for i in 1..n - 1 {
            for j in 1..n - 1 {
                a[i * n + j] = 0.2
                    * (b[i * n + j]
                        + b[i * n + j - 1]
                        + b[i * n + j + 1]
                        + b[(i + 1) * n + j]
                        + b[(i - 1) * n + j]);
            }
        }
    }
    a.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, v| fnv(h, v.to_bits()))
}

/// PolyBench/C 4.2 `lu`: LU decomposition in place of an n x n positive-definite matrix
/// (PolyBench's init: a lower-triangular matrix times its transpose).
fn lu(n: usize) -> u64 {
    let mut a = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            a[i * n + j] = (-(j as i64 % n as i64)) as f64 / n as f64 + 1.0;
        }
        for j in i + 1..n {
            a[i * n + j] = 0.0;
        }
        a[i * n + i] = 1.0;
    }
    // A = B * B^T, as PolyBench makes it positive semi-definite.
    let mut b = vec![0.0f64; n * n];
    for t in 0..n {
        for r in 0..n {
            for s in 0..n {
                b[r * n + s] += a[r * n + t] * a[s * n + t];
            }
        }
    }
    let mut a = b;
    for i in 0..n {
        for j in 0..i {
            for k in 0..j {
                a[i * n + j] -= a[i * n + k] * a[k * n + j];
            }
            a[i * n + j] /= a[j * n + j];
        }
        for j in i..n {
            for k in 0..i {
                a[i * n + j] -= a[i * n + k] * a[k * n + j];
            }
        }
    }
    a.iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, v| fnv(h, v.to_bits()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_matches_the_fips_test_vectors() {
        let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut h = super::Sha256::new();
        h.update(b"abc");
        assert_eq!(
            hex(h.finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = super::Sha256::new();
        for _ in 0..1000 {
            h.update(&[b'a'; 1000]);
        }
        assert_eq!(
            hex(h.finish()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        let mut h = super::Sha256::new();
        h.update(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
        assert_eq!(
            hex(h.finish()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn every_kernel_runs_and_is_deterministic() {
        for (name, _) in super::KERNELS {
            let a = super::run(name, 1).expect("known");
            assert_eq!(Some(a), super::run(name, 1), "{name}");
        }
        assert_eq!(super::run("nope", 1), None);
    }
}
