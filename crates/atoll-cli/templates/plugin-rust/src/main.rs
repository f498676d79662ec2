//! {{name}}: a record transform for the example plugin host. Each record (a JSON
//! object) gets a `"plugin"` field set to the `PLUGIN_TAG` the host's policy grants;
//! anything that is not a JSON object is dropped with a reason.
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "acme:transform/transform" });
}

use bindings::acme::transform::host;
use bindings::exports::acme::transform::transformer::Guest;

struct Plugin;

impl Guest for Plugin {
    fn transform(record: String) -> Result<Vec<String>, String> {
        let mut value: serde_json::Value =
            serde_json::from_str(&record).map_err(|e| format!("not JSON: {e}"))?;
        let object = value.as_object_mut().ok_or("not a JSON object")?;
        // Granted by the host's policy; unset unless it is.
        let tag = std::env::var("PLUGIN_TAG").unwrap_or_else(|_| "untagged".into());
        object.insert("plugin".into(), serde_json::Value::String(tag));
        host::log("tagged a record");
        Ok(vec![value.to_string()])
    }
}

bindings::export!(Plugin with_types_in bindings);

// The host calls the export above; a component built as a program needs a `main`.
fn main() {}
