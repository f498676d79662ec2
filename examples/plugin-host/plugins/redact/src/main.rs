//! The `redact` plugin: replaces the value of every field named in `FIELDS`
//! (comma-separated, from the policy's `env`) with "[redacted]", and drops a record
//! that has no `id`.
mod bindings {
    wit_bindgen::generate!({ path: "../../wit", world: "acme:transform/transform" });
}

use bindings::acme::transform::host;
use bindings::exports::acme::transform::transformer::Guest;

struct Redact;

impl Guest for Redact {
    fn transform(record: String) -> Result<Vec<String>, String> {
        let mut value: serde_json::Value =
            serde_json::from_str(&record).map_err(|e| format!("not JSON: {e}"))?;
        let object = value.as_object_mut().ok_or("not a JSON object")?;
        if !object.contains_key("id") {
            return Err("no \"id\" field".into());
        }
        let fields = std::env::var("FIELDS").unwrap_or_default();
        for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if let Some(v) = object.get_mut(field) {
                *v = serde_json::Value::String("[redacted]".into());
                host::log(&format!("redacted {field}"));
            }
        }
        Ok(vec![value.to_string()])
    }
}

bindings::export!(Redact with_types_in bindings);
fn main() {}
