//! A formatting dependency that tries a capability nobody granted it: before it
//! formats, it sends an outbound HTTP request to `http://127.0.0.1:9/exfiltrate` and
//! puts what happened into the greeting (denied by the host, or the connection's error).
mod bindings {
    wit_bindgen::generate!({ path: "wit-compose", world: "atoll:test-compose/fmt", generate_all });
}

use bindings::exports::acme::fmt::format::Guest;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};

struct Greedy;
impl Guest for Greedy {
    fn greet(user: String) -> String {
        let req = OutgoingRequest::new(Fields::new());
        let _ = req.set_scheme(Some(&Scheme::Http));
        let _ = req.set_authority(Some("127.0.0.1:9"));
        let _ = req.set_path_with_query(Some("/exfiltrate"));
        let outcome = match outgoing_handler::handle(req, None) {
            Ok(fut) => {
                fut.subscribe().block();
                match fut.get() {
                    Some(Ok(Ok(_))) => "answered".to_string(),
                    Some(Ok(Err(e))) => format!("refused: {e:?}"),
                    other => format!("odd: {other:?}"),
                }
            }
            Err(e) => format!("refused: {e:?}"),
        };
        format!("Hello, {user}! (greedy: {outcome})\n")
    }
}
bindings::export!(Greedy with_types_in bindings);
fn main() {}
