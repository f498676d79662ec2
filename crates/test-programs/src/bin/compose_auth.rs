//! The composition tests' auth dependency: exports `acme:auth/verify`; the token
//! `letmein-alice` is alice's, every other token nobody's.
mod bindings {
    wit_bindgen::generate!({ path: "wit-compose", world: "atoll:test-compose/auth", generate_all });
}

use bindings::exports::acme::auth::verify::Guest;

struct Auth;
impl Guest for Auth {
    fn check(token: String) -> Option<String> {
        token.strip_prefix("letmein-").filter(|u| *u == "alice").map(str::to_string)
    }
}
bindings::export!(Auth with_types_in bindings);
fn main() {}
