//! The WIT world of a component, as the registry indexes it at publish time for
//! `atoll search --exports / --imports`: the names of its top-level imports and exports
//! (`wasi:http/incoming-handler@0.2.12`). Parsing only; nothing is compiled or run.

use serde::{Deserialize, Serialize};
use wasmparser::{Parser, Payload};

use crate::Error;

/// A component's top-level interface names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct World {
    /// Top-level export names.
    pub exports: Vec<String>,
    /// Top-level import names.
    pub imports: Vec<String>,
}

impl World {
    /// Read the world of the component in `bytes`; an error naming `what` when the
    /// bytes are not a well-formed component.
    pub fn of_component(what: &str, bytes: &[u8]) -> Result<Self, Error> {
        let not = |reason: String| Error::NotAComponent {
            what: what.to_string(),
            reason,
        };
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(not("it does not start with the wasm magic bytes".into()));
        }
        if !Parser::is_component(bytes) {
            return Err(not(
                "it is a core module; build for wasm32-wasip2, or wrap it with `wasm-tools component new`".into(),
            ));
        }
        let mut world = World::default();
        // parse_all flattens nested modules and components; depth 0 is the outer one.
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(|e| not(e.to_string()))? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentExportSection(reader) if depth == 0 => {
                    for export in reader {
                        let export = export.map_err(|e| not(e.to_string()))?;
                        world.exports.push(export.name.name.to_string());
                    }
                }
                Payload::ComponentImportSection(reader) if depth == 0 => {
                    for import in reader {
                        let import = import.map_err(|e| not(e.to_string()))?;
                        world.imports.push(import.name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(world)
    }
}

/// Whether an interface name matches a search term: the same name, or the same name
/// without its `@version` (`wasi:http/incoming-handler` matches
/// `wasi:http/incoming-handler@0.2.12`).
pub fn interface_matches(name: &str, query: &str) -> bool {
    name == query || name.split_once('@').is_some_and(|(bare, _)| bare == query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_a_real_component() {
        let bytes = std::fs::read(test_programs_artifacts::HELLO).expect("hello built");
        let world = World::of_component("hello.wasm", &bytes).expect("component");
        assert!(
            world
                .exports
                .iter()
                .any(|e| interface_matches(e, "wasi:http/incoming-handler")),
            "{world:?}"
        );
        assert!(
            world
                .imports
                .iter()
                .any(|i| i.starts_with("wasi:http/types@"))
        );
    }

    #[test]
    fn refuses_what_is_not_a_component() {
        let err = |b: &[u8]| World::of_component("x.wasm", b).map_err(|e| e.to_string());
        assert!(err(b"hello").is_err_and(|m| m.contains("magic")));
        assert!(err(b"\0asm\x01\0\0\0").is_err_and(|m| m.contains("core module")));
    }

    #[test]
    fn interface_names_match_with_or_without_version() {
        assert!(interface_matches(
            "wasi:http/incoming-handler@0.2.12",
            "wasi:http/incoming-handler"
        ));
        assert!(interface_matches("a:b/c@1.0.0", "a:b/c@1.0.0"));
        assert!(!interface_matches("a:b/cd@1.0.0", "a:b/c"));
    }
}
