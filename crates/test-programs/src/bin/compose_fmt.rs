//! The composition tests' formatting dependency: exports `acme:fmt/format`.
mod bindings {
    wit_bindgen::generate!({ path: "wit-compose", world: "atoll:test-compose/fmt", generate_all });
}

use bindings::exports::acme::fmt::format::Guest;

struct Fmt;
impl Guest for Fmt {
    fn greet(user: String) -> String {
        format!("Hello, {user}! (formatted by acme:fmt)\n")
    }
}
bindings::export!(Fmt with_types_in bindings);
fn main() {}
