//! The embedding tests' plugin (`wit-plugin/world.wit`): typed values of every kind,
//! hostile functions (a loop, unbounded memory, deep recursion), calls into the host, and
//! each capability (files, env, outbound HTTP, key-value) so the tests can check that
//! nothing is granted unless the policy says so.
mod bindings {
    wit_bindgen::generate!({ path: "wit-plugin", world: "acme:plugin/plugin" });
}

use std::cell::{Cell, RefCell};

use bindings::acme::plugin::host;
use bindings::exports::acme::plugin::api::{Color, Guest, GuestAccumulator, Perms, Point, Shape};
use test_programs::bindings::wasi::keyvalue::store;

struct Plugin;

static mut COUNTER: u32 = 0;
static mut BUFFER: [u8; 8] = *b"pristine";

thread_local! {
    static HOARD: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

impl Guest for Plugin {
    type Accumulator = Accumulator;

    fn count_vowels(s: String) -> u32 {
        s.chars().filter(|c| "aeiouAEIOU".contains(*c)).count() as u32
    }

    fn manhattan(p: Point) -> u32 {
        p.x.unsigned_abs() + p.y.unsigned_abs()
    }

    fn describe(s: Shape, c: Color, p: Perms) -> String {
        let shape = match s {
            Shape::Circle(r) => format!("circle r={r}"),
            Shape::Rect(p) => format!("rect {}x{}", p.x, p.y),
            Shape::Empty => "empty".into(),
        };
        let color = match c {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
        };
        let mut perms = String::new();
        for (flag, ch) in [(Perms::READ, 'r'), (Perms::WRITE, 'w'), (Perms::EXEC, 'x')] {
            perms.push(if p.contains(flag) { ch } else { '-' });
        }
        format!("{shape} {color} {perms}")
    }

    fn sum(xs: Vec<i64>) -> i64 {
        xs.iter().sum()
    }

    fn first_word(s: String) -> Option<String> {
        s.split_whitespace().next().map(String::from)
    }

    fn parse_num(s: String) -> Result<i32, String> {
        s.trim().parse().map_err(|e| format!("{s:?} is not a number: {e}"))
    }

    fn spin() {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    fn grow(mib: u32) -> u32 {
        let mut held = Vec::new();
        for _ in 0..mib {
            let mut block = vec![0u8; 1 << 20];
            for i in (0..block.len()).step_by(4096) {
                block[i] = 1;
            }
            held.push(block);
        }
        std::hint::black_box(&held);
        held.len() as u32
    }

    fn recurse(depth: u32) -> u32 {
        if depth == 0 {
            return 0;
        }
        // Not a tail call: the result is used after the call returns.
        let below = Self::recurse(std::hint::black_box(depth - 1));
        std::hint::black_box(below) + 1
    }

    fn nap(ms: u64) {
        host::sleep(ms);
    }

    fn bump(by: u32) -> u32 {
        host::bump(by)
    }

    fn block_then_spin(ms: u64) {
        host::block(ms);
        Self::spin();
    }

    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
    }

    fn write_file(path: String, contents: String) -> Result<(), String> {
        std::fs::write(&path, contents).map_err(|e| format!("{path}: {e}"))
    }

    fn get_env(name: String) -> Option<String> {
        std::env::var(name).ok()
    }

    fn all_env() -> Vec<String> {
        std::env::vars().map(|(k, v)| format!("{k}={v}")).collect()
    }

    fn fetch(url: String) -> Result<u16, String> {
        test_programs::get(&url)
    }

    fn must_fetch(url: String) -> u16 {
        match test_programs::get(&url) {
            Ok(status) => status,
            Err(e) => panic!("fetch {url} failed: {e}"),
        }
    }

    fn kv_get(label: String, key: String) -> Result<Option<String>, String> {
        let bucket = store::open(&label).map_err(|e| format!("open {label}: {e:?}"))?;
        let v = bucket.get(&key).map_err(|e| format!("get {key}: {e:?}"))?;
        Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn kv_set(label: String, key: String, value: String) -> Result<(), String> {
        let bucket = store::open(&label).map_err(|e| format!("open {label}: {e:?}"))?;
        bucket.set(&key, value.as_bytes()).map_err(|e| format!("set {key}: {e:?}"))
    }

    fn next() -> u32 {
        // SAFETY: a component instance is single-threaded.
        unsafe {
            COUNTER += 1;
            COUNTER
        }
    }

    fn scribble() -> String {
        // SAFETY: a component instance is single-threaded.
        unsafe {
            let before = String::from_utf8_lossy(&*std::ptr::addr_of!(BUFFER)).into_owned();
            BUFFER = *b"SCRIBBLE";
            before
        }
    }

    fn hoard(kib: u32) -> u32 {
        HOARD.with(|h| {
            let mut h = h.borrow_mut();
            h.push(vec![7u8; kib as usize * 1024]);
            h.iter().map(|b| b.len() / 1024).sum::<usize>() as u32
        })
    }
}

struct Accumulator {
    total: Cell<i64>,
}

impl GuestAccumulator for Accumulator {
    fn new(start: i64) -> Self {
        Self { total: Cell::new(start) }
    }
    fn add(&self, x: i64) {
        self.total.set(self.total.get() + x);
    }
    fn total(&self) -> i64 {
        self.total.get()
    }
}

bindings::export!(Plugin with_types_in bindings);
fn main() {}
