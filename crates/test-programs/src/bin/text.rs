//! A plugin with no host imports (world `text-plugin` in `wit-plugin/world.wit`), for
//! `atoll call`: plain and hostile functions, and the capabilities a flag can grant.
mod bindings {
    wit_bindgen::generate!({ path: "wit-plugin", world: "acme:plugin/text-plugin" });
}

use bindings::exports::acme::plugin::text::{Guest as Text, Point};

struct Plugin;

impl bindings::Guest for Plugin {
    fn shout(s: String) -> String {
        format!("{}!", s.to_uppercase())
    }
}

impl Text for Plugin {
    fn count_vowels(s: String) -> u32 {
        s.chars().filter(|c| "aeiouAEIOU".contains(*c)).count() as u32
    }

    fn manhattan(p: Point) -> u32 {
        p.x.unsigned_abs() + p.y.unsigned_abs()
    }

    fn first_word(s: String) -> Option<String> {
        s.split_whitespace().next().map(String::from)
    }

    fn spin() {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    fn grow(mib: u32) -> u32 {
        let held: Vec<Vec<u8>> = (0..mib).map(|_| vec![1u8; 1 << 20]).collect();
        std::hint::black_box(&held);
        held.len() as u32
    }

    fn fail(message: String) {
        panic!("{message}");
    }

    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
    }

    fn get_env(name: String) -> Option<String> {
        std::env::var(name).ok()
    }

    fn fetch(url: String) -> Result<u16, String> {
        test_programs::get(&url)
    }
}

bindings::export!(Plugin with_types_in bindings);
fn main() {}
