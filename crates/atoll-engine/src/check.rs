//! Cheap checks of a `.wasm` file before compiling it, so a wrong file gets a message
//! that says what it is and how to fix it, instead of a compiler error.

use wasmparser::{Parser, Payload};

/// What a file turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentKind {
    /// A component; its top-level export and import names.
    Component {
        /// Names of the top-level exports, e.g. `wasi:http/incoming-handler@0.2.12`.
        exports: Vec<String>,
        /// Names of the top-level imports.
        imports: Vec<String>,
    },
    /// A core module. `wasip1` is true when it imports `wasi_snapshot_preview1`.
    CoreModule {
        /// Imports `wasi_snapshot_preview1` (built for `wasm32-wasip1`).
        wasip1: bool,
    },
    /// Not WebAssembly at all.
    NotWasm,
    /// WebAssembly, but malformed.
    Malformed(String),
}

/// Look at `bytes` without compiling them.
pub fn inspect_bytes(bytes: &[u8]) -> ComponentKind {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return ComponentKind::NotWasm;
    }
    if !wasmparser::Parser::is_component(bytes) {
        let mut wasip1 = false;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload {
                Ok(Payload::ImportSection(reader)) => {
                    for imports in reader {
                        match imports {
                            Ok(imports) => {
                                for imp in imports {
                                    if let Ok((_, imp)) = imp
                                        && imp.module.starts_with("wasi_snapshot_preview1")
                                    {
                                        wasip1 = true;
                                    }
                                }
                            }
                            Err(e) => return ComponentKind::Malformed(e.to_string()),
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => return ComponentKind::Malformed(e.to_string()),
            }
        }
        return ComponentKind::CoreModule { wasip1 };
    }
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    // Nested modules and components are flattened by `parse_all`; only depth 0 is the
    // outer component's own interface.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload {
            Ok(Payload::ModuleSection { .. } | Payload::ComponentSection { .. }) => depth += 1,
            Ok(Payload::End(_)) => depth = depth.saturating_sub(1),
            Ok(Payload::ComponentExportSection(reader)) if depth == 0 => {
                for e in reader {
                    match e {
                        Ok(e) => exports.push(e.name.name.to_string()),
                        Err(e) => return ComponentKind::Malformed(e.to_string()),
                    }
                }
            }
            Ok(Payload::ComponentImportSection(reader)) if depth == 0 => {
                for i in reader {
                    match i {
                        Ok(i) => imports.push(i.name.name.to_string()),
                        Err(e) => return ComponentKind::Malformed(e.to_string()),
                    }
                }
            }
            Ok(_) => {}
            Err(e) => return ComponentKind::Malformed(e.to_string()),
        }
    }
    ComponentKind::Component { exports, imports }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_files_apart() {
        assert_eq!(
            inspect_bytes(b"hello world, not wasm"),
            ComponentKind::NotWasm
        );
        // The smallest core module: magic + version 1.
        assert_eq!(
            inspect_bytes(b"\0asm\x01\0\0\0"),
            ComponentKind::CoreModule { wasip1: false }
        );
    }

    #[test]
    fn reads_a_real_components_interface() {
        let bytes = std::fs::read(test_programs_artifacts::HELLO).expect("hello built");
        match inspect_bytes(&bytes) {
            ComponentKind::Component { exports, imports } => {
                assert!(
                    exports
                        .iter()
                        .any(|e| e.starts_with("wasi:http/incoming-handler@0.2")),
                    "{exports:?}"
                );
                assert!(
                    imports.iter().any(|i| i.starts_with("wasi:http/types@")),
                    "{imports:?}"
                );
            }
            other => panic!("expected a component, got {other:?}"),
        }
    }
}
