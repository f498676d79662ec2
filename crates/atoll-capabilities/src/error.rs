//! Errors of the configure phase (app load). The request path has none: there a denied
//! capability is an error value the guest sees, plus a log line.

use std::path::PathBuf;

use atoll_manifest::Diagnostic;

/// Why an app's capabilities could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// A problem the manifest can point at (a missing required variable, a mount source
    /// outside the app directory...): the diagnostic names file, line and key.
    #[error("{0}")]
    Manifest(Box<Diagnostic>),
    /// The runtime config file is unreadable or invalid.
    #[error("runtime config `{}`: {reason}", path.display())]
    RuntimeConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong, without quoting the file (it may hold secrets).
        reason: String,
    },
    /// A key-value backend could not be set up.
    #[error("key-value store `{label}` ({backend}): {reason}")]
    KeyValue {
        /// The store's label.
        label: String,
        /// Which backend.
        backend: String,
        /// What failed, and what to do.
        reason: String,
    },
}

impl From<Diagnostic> for CapabilityError {
    fn from(d: Diagnostic) -> Self {
        CapabilityError::Manifest(Box::new(d))
    }
}
