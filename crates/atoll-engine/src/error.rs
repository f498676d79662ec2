//! Errors from building the engine and loading components. Structured, so the layer that
//! knows where a component came from (a manifest line, an embedder's plugin name) can say
//! so: `atoll-runtime` turns them into located manifest diagnostics.

/// Why a component could not be loaded, or the engine not built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file")]
    NotWasm,
    /// WebAssembly, but malformed.
    #[error("malformed WebAssembly: {0}")]
    Malformed(String),
    /// A core module, not a component. `wasip1` is true when it imports
    /// `wasi_snapshot_preview1` (built for `wasm32-wasip1`).
    #[error("{}", if *wasip1 { "a core module built for wasip1, not a component" } else { "a core WebAssembly module, not a component" })]
    CoreModule {
        /// Imports `wasi_snapshot_preview1`.
        wasip1: bool,
    },
    /// The component did not compile.
    #[error("failed to compile: {0}")]
    Compile(String),
    /// The component imports something the engine does not provide.
    #[error("cannot be linked: {0}")]
    Link(String),
    /// The engine could not be configured (for example the machine refused the virtual
    /// memory the instance pool needs), or an embedder's link hook failed.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
}

impl LoadError {
    /// What to do about it, in one line.
    pub fn help(&self) -> &'static str {
        match self {
            LoadError::NotWasm => "point `source` at the .wasm file your build produces",
            LoadError::Malformed(_) => "rebuild it; `wasm-tools validate` shows more detail",
            LoadError::CoreModule { wasip1: true } => {
                "build with `--target wasm32-wasip2` (Rust) or adapt it: `wasm-tools component new module.wasm --adapt wasi_snapshot_preview1.proxy.wasm -o component.wasm`"
            }
            LoadError::CoreModule { wasip1: false } => {
                "build a component (`cargo build --target wasm32-wasip2`) or wrap the module with `wasm-tools component new`"
            }
            LoadError::Compile(_) => {
                "check that it is a valid component for WASI 0.2 (wasm-tools validate)"
            }
            LoadError::Link(_) => {
                "atoll provides WASI 0.2 (wasi:http/proxy, wasi:cli, wasi:filesystem, wasi:clocks, wasi:random, wasi:io, wasi:sockets, wasi:config/store, wasi:keyvalue (0.2.0-draft, 0.2.0-draft2), wasi:logging); remove imports of other interfaces"
            }
            LoadError::Engine(_) => {
                "check the machine's virtual memory limits (ulimit -v), or the host functions an embedder links"
            }
        }
    }
}

/// All messages of an error chain, joined, for one-line logs and diagnostics.
pub fn error_chain(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// A short reason for an I/O error, for messages.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}
