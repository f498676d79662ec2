//! Errors from building the engine and loading components.

use atoll_manifest::Diagnostic;

/// Why a component could not be loaded, or the engine not built.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A problem with what the manifest points at; the diagnostic names the file, line
    /// and key of the `source`, and says what to do.
    #[error("{0}")]
    Component(Box<Diagnostic>),
    /// The engine could not be configured (for example the machine refused the virtual
    /// memory the instance pool needs).
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
}

impl From<Diagnostic> for LoadError {
    fn from(d: Diagnostic) -> Self {
        LoadError::Component(Box::new(d))
    }
}
