//! The compute suite's workloads (`bench/compute`): deterministic, CPU-bound, each
//! returning a checksum so the native and guest runs can be checked equal. The same
//! code is compiled natively and into a guest component, at one opt-level.
//!
//! Library kernels (sort, SHA-256, JSON, regex, DEFLATE) use the crates a real service
//! would; the numeric ones include three kernels of PolyBench/C 4.2 (floyd-warshall,
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

/// SHA-256 of `mib` MiB of pseudo-random bytes, in 64 KiB updates.
fn sha256(mib: u32) -> u64 {
    use sha2::{Digest, Sha256};
    let mut rng = Rng(7);
    let chunk: Vec<u8> = (0..64 * 1024).map(|_| rng.next() as u8).collect();
    let mut hasher = Sha256::new();
    for i in 0..mib * 16 {
        hasher.update(&chunk);
        hasher.update(i.to_le_bytes());
    }
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]))
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
    fn every_kernel_runs_and_is_deterministic() {
        for (name, _) in super::KERNELS {
            let a = super::run(name, 1).expect("known");
            assert_eq!(Some(a), super::run(name, 1), "{name}");
        }
        assert_eq!(super::run("nope", 1), None);
    }
}
