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
    /// The app directory cannot be resolved (it was removed, or is unreadable).
    #[error("cannot resolve the app directory {}: {source}", path.display())]
    AppDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A store names a backend this build was compiled without.
    #[error(
        "key-value store `{label}`: this build of atoll has no `{feature}` support (Cargo feature `{feature}` of atoll-capabilities)"
    )]
    NotBuilt {
        /// The store's label.
        label: String,
        /// The backend, which is also the name of the Cargo feature that adds it.
        feature: &'static str,
    },
    /// A grant given to [`ComponentCapabilitiesBuilder`](crate::ComponentCapabilitiesBuilder)
    /// is invalid.
    #[error("invalid grant `{grant}`: {reason}")]
    InvalidGrant {
        /// The grant as given (never a config value).
        grant: String,
        /// What is wrong.
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
