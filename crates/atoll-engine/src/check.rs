//! Cheap checks of a `.wasm` file before compiling it, so a wrong file gets a message
//! that says what it is and how to fix it, instead of a compiler error; and
//! [`describe_bytes`], the same look without compiling for `atoll inspect` (size,
//! sha256, WIT imports and exports, producers). Nothing here compiles or instantiates.

use sha2::{Digest, Sha256};
use wasmparser::{Parser, Payload};

use crate::error::LoadError;

/// What `atoll inspect` shows of a component file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentFile {
    /// Size in bytes.
    pub size: u64,
    /// The sha256 of the bytes, lowercase hex (the compile cache and the registry key by it).
    pub sha256: String,
    /// Top-level import names, e.g. `wasi:keyvalue/store@0.2.0-draft`, in file order.
    pub imports: Vec<String>,
    /// Top-level export names, e.g. `wasi:http/incoming-handler@0.2.0`.
    pub exports: Vec<String>,
    /// What built it, from the `producers` custom sections of the component and of the
    /// modules inside it (which language and toolchain): `(field, name, version)`, e.g.
    /// `("language", "Rust", "")` or `("processed-by", "rustc", "1.95.0 (...)")`, each
    /// once, in file order.
    pub producers: Vec<(String, String, String)>,
}

/// Every `producers` entry in `bytes`, nested modules included, each once.
fn producers(bytes: &[u8]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::CustomSection(section)) = payload else {
            continue;
        };
        let wasmparser::KnownCustom::Producers(reader) = section.as_known() else {
            continue;
        };
        for field in reader.into_iter().flatten() {
            for value in field.values.into_iter().flatten() {
                let entry = (
                    field.name.to_string(),
                    value.name.to_string(),
                    value.version.to_string(),
                );
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
    }
    out
}

/// Describe a component's bytes without compiling them (for `atoll inspect`): size,
/// sha256, imports and exports. Anything that is not a component is the same
/// [`LoadError`] that [`Engine::load`](crate::Engine::load) would give. Hashes the whole
/// file: milliseconds for a few MB.
pub fn describe_bytes(bytes: &[u8]) -> Result<ComponentFile, LoadError> {
    match inspect_bytes(bytes) {
        ComponentKind::Component { exports, imports } => Ok(ComponentFile {
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
            imports,
            exports,
            producers: producers(bytes),
        }),
        ComponentKind::NotWasm => Err(LoadError::NotWasm),
        ComponentKind::Malformed(e) => Err(LoadError::Malformed(e)),
        ComponentKind::CoreModule { wasip1 } => Err(LoadError::CoreModule { wasip1 }),
    }
}

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
