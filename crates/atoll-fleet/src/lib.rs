//! Fleet mode: many stateless `atoll node`s behind any load balancer, each serving every
//! deployed app, converging on a desired state kept in NATS JetStream.
//!
//! Every node reconciles itself (there is no central reconciler): it watches the desired
//! state of each app (`atoll_apps`), fetches the version's blobs, verifies each against
//! its sha256, compiles it beside what it serves, reports it staged, and swaps it in when
//! a deploy commits (one compare-and-swap write). A periodic anti-entropy pass re-reads
//! every app, so a missed watch event cannot leave a node behind for long. Nothing is
//! ever unloaded because the control plane is unreachable: a node serves what it has
//! (from memory, or at start from its state directory) and catches up on reconnect.
//!
//! - [`control`]: the connection and the buckets (desired state, version records, node
//!   heartbeats, blobs);
//! - [`bundle`]: an app as shipped (a version record and its blobs), and a node's disk;
//! - [`node`]: the node (loading, the watch, heartbeats, the swap, `/.atoll/ready`);
//! - [`deploy`]: `deploy` (upload, stage, commit, wait), `rollback` and `status`;
//! - `metrics` (feature `admin`): the node's families on the admin server.
//!
//! Not here: building components and pulling packages (the binary runs builds and
//! resolves package and OCI references before [`bundle::bundle_with`]),
//! serving itself (`atoll-http`, `atoll-cron`), placement (every node holds every app),
//! and key-value data, which lives in the backends a node's runtime config names: a node
//! refuses an app whose stores would be embedded files on its own disk.

pub mod bundle;
pub mod control;
pub mod deploy;
#[cfg(feature = "admin")]
mod metrics;
pub mod node;
pub mod records;

pub use control::{Control, ControlConfig};
pub use deploy::{DeployOutcome, DeployReport, Status};
pub use node::{Node, NodeConfig};
pub use records::{AppState, NodeReport, VersionRecord};

/// What went wrong in the fleet, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// NATS did not answer: nothing was changed.
    #[error(
        "control plane unavailable: cannot reach NATS JetStream at {url} ({reason}); nothing was changed. Check that nats-server runs with -js there, or pass --nats"
    )]
    Unavailable {
        /// The URL tried.
        url: String,
        /// Why.
        reason: String,
    },
    /// A JetStream call failed after connecting.
    #[error("control plane error: {0}")]
    Store(String),
    /// A version record named by the desired state is missing.
    #[error("version {version} of app `{app}` has no record in the control plane; deploy it again")]
    MissingVersion {
        /// The app.
        app: String,
        /// The version id.
        version: String,
    },
    /// Bytes do not match the sha256 they are stored under.
    #[error(
        "{what} does not match its sha256 (expected {expected}, got {actual}): refused; deploy again to upload intact bytes"
    )]
    Tampered {
        /// What was checked.
        what: String,
        /// The sha256 it is named by.
        expected: String,
        /// The sha256 of the bytes.
        actual: String,
    },
    /// Something in the app the fleet cannot ship yet.
    #[error("app `{app}`: `{key}` cannot be deployed to a fleet: {why}")]
    Unsupported {
        /// The app.
        app: String,
        /// The manifest key.
        key: String,
        /// Why, and what to do.
        why: String,
    },
    /// Reading the app to deploy failed.
    #[error("{0}")]
    Bundle(String),
    /// A node's state directory could not be written.
    #[error("state directory: {0}")]
    Disk(String),
    /// Loading a version on a node failed (the manifest, a component, a route check).
    #[error("{0}")]
    Load(String),
    /// Another deploy changed the app first.
    #[error(
        "another deploy of app `{app}` is in progress or just committed ({detail}); nothing was changed by this one. Run `atoll status` and retry"
    )]
    Conflict {
        /// The app.
        app: String,
        /// What was found.
        detail: String,
    },
    /// A deploy did not finish.
    #[error("{0}")]
    Deploy(String),
}
