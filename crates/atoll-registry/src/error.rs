//! The one error type of the registry crate. Each variant carries the package, value or
//! path involved; messages say what happened and, where there is one, what to do.
//! [`Error::code`] gives a stable, distinct code per failure for scripts and tests.

use std::path::PathBuf;

/// Everything that can go wrong in the registry, its client and its stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A package name that is not `namespace:name` in kebab-case.
    #[error(
        "`{name}` is not a package name: {reason}; use namespace:name in lowercase kebab-case, e.g. acme:auth"
    )]
    InvalidPackageName {
        /// The text given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A version that is not semver.
    #[error("`{version}` is not a valid version: {reason}; use semver, e.g. 1.2.0")]
    InvalidVersion {
        /// The text given.
        version: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A version requirement that semver cannot parse.
    #[error("`{req}` is not a version requirement: {reason}; use e.g. ^1.2, ~1.2.3, =1.0.0 or *")]
    InvalidVersionReq {
        /// The text given.
        req: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A hex value (digest, key, signature) that does not parse.
    #[error("{what} `{value}` is not valid hex: {reason}")]
    InvalidHex {
        /// What the value is.
        what: String,
        /// The value.
        value: String,
        /// The parse error.
        reason: String,
    },
    /// A key that is malformed.
    #[error("{what} is not a valid ed25519 key: {reason}")]
    InvalidKey {
        /// Which key.
        what: String,
        /// Why.
        reason: String,
    },
    /// The operating system's random source failed.
    #[error("could not read random bytes from the operating system: {reason}")]
    Random {
        /// The OS error.
        reason: String,
    },
    /// A signature did not verify.
    #[error(
        "signature check failed for the {what}: {reason}; the registry served data its publisher did not sign, nothing was installed"
    )]
    BadSignature {
        /// What was signed.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A log entry that does not parse.
    #[error("the registry served a log entry that does not parse: {reason}")]
    BadLogEntry {
        /// The parse error.
        reason: String,
    },
    /// A release signed by a key that does not own the namespace.
    #[error(
        "{package}@{version} is signed by key {key_id}, which does not own namespace `{namespace}` (owned by {owner}); refusing it, nothing was installed"
    )]
    NotNamespaceOwner {
        /// The package.
        package: String,
        /// The version.
        version: String,
        /// The namespace.
        namespace: String,
        /// The signing key.
        key_id: String,
        /// The key that claimed the namespace.
        owner: String,
    },
    /// The registry's key history of a namespace leaves out a key change its own log
    /// holds: a server hiding a revocation (or a grant).
    #[error(
        "the registry hides log entry {index} (a key {kind} in namespace `{namespace}`) from the namespace's key history; refusing {package}@{version}, nothing was installed"
    )]
    HiddenKeyChange {
        /// The package being resolved.
        package: String,
        /// The version being resolved.
        version: String,
        /// The namespace.
        namespace: String,
        /// The log entry left out.
        index: u64,
        /// "grant", "revocation" or "claim".
        kind: &'static str,
    },
    /// The registry's metadata says a version is not yanked, but its log holds the signed
    /// yank.
    #[error(
        "{package}@{version} was yanked by its publisher (log entry {index}), but the registry lists it as available; refusing to resolve {package}, nothing was installed"
    )]
    HiddenYank {
        /// The package.
        package: String,
        /// The version.
        version: String,
        /// The yank record's log entry.
        index: u64,
    },
    /// The registry's metadata says a version is yanked, but no signed yank of it is in
    /// the log: a yank only its publisher can make was invented.
    #[error(
        "the registry lists {package}@{version} as yanked, but its log holds no yank signed by the publisher; refusing to resolve {package}, nothing was installed"
    )]
    UnloggedYank {
        /// The package.
        package: String,
        /// The version.
        version: String,
    },
    /// The registry refused a publish because another key owns the namespace.
    #[error(
        "namespace `{namespace}` belongs to another key ({owner}); publish with that key, or choose another namespace"
    )]
    NamespaceOwned {
        /// The namespace.
        namespace: String,
        /// The owner's key id.
        owner: String,
    },
    /// The blob downloaded is not the one the publisher signed.
    #[error(
        "{package}@{version}: the downloaded component has sha256 {actual} but the publisher signed {expected}; the registry's copy was altered, nothing was installed"
    )]
    BlobDigestMismatch {
        /// The package.
        package: String,
        /// The version.
        version: String,
        /// The signed digest.
        expected: String,
        /// What was received.
        actual: String,
    },
    /// The blob was bigger than the signed size.
    #[error(
        "{package}@{version}: the registry sent more than the {size} bytes the publisher signed; refusing it, nothing was installed"
    )]
    BlobTooLarge {
        /// The package.
        package: String,
        /// The version.
        version: String,
        /// The signed size.
        size: u64,
    },
    /// The registry's metadata disagrees with the signed log record.
    #[error(
        "{package}@{version}: the registry's metadata says {field} {metadata} but the signed log record says {signed}; refusing it, nothing was installed"
    )]
    MetadataMismatch {
        /// The package.
        package: String,
        /// The version.
        version: String,
        /// Which field.
        field: String,
        /// The metadata value.
        metadata: String,
        /// The signed value.
        signed: String,
    },
    /// An inclusion proof failed.
    #[error(
        "{what} is not in the registry's signed log of size {size}: the inclusion proof does not verify; the registry may be showing you a different history, nothing was installed"
    )]
    NotInLog {
        /// What was checked.
        what: String,
        /// Tree size checked against.
        size: u64,
    },
    /// The log is shorter than one seen before.
    #[error(
        "{wanted}: registry {registry} rolled its log back: it now has {now} entries but this client saw {seen} before; refusing to trust it, nothing was installed (if the registry was really reset, delete {state} to start over)"
    )]
    LogRollback {
        /// What the client was fetching.
        wanted: String,
        /// The registry URL.
        registry: String,
        /// Size seen before.
        seen: u64,
        /// Size now.
        now: u64,
        /// Path of the saved tree head.
        state: PathBuf,
    },
    /// The log is not an extension of the one seen before.
    #[error(
        "{wanted}: registry {registry} forked its log: {reason}; it is showing a history that differs from the one this client saw, refusing to trust it, nothing was installed (if the registry was really reset, delete {state} to start over)"
    )]
    LogFork {
        /// What the client was fetching.
        wanted: String,
        /// The registry URL.
        registry: String,
        /// What differs.
        reason: String,
        /// Path of the saved tree head.
        state: PathBuf,
    },
    /// The tree head is older than the client accepts (a replayed, frozen view).
    #[error(
        "{wanted}: registry {registry} served a tree head signed {age_secs} s ago, older than the {max_secs} s this client accepts; it may be replaying an old view of its log (a freeze attack), nothing was installed"
    )]
    StaleTreeHead {
        /// What the client was fetching.
        wanted: String,
        /// The registry URL.
        registry: String,
        /// Age of the head.
        age_secs: u64,
        /// The limit.
        max_secs: u64,
    },
    /// A full audit of the log found an entry that breaks the registry's rules.
    #[error(
        "audit of registry {registry} failed at {at}: {reason}; its log breaks the registry's rules, do not trust packages from it and report it to its operator"
    )]
    AuditFailed {
        /// The registry URL.
        registry: String,
        /// Where: `log entry N`, or `the tree head`.
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry signs tree heads with a key other than the pinned one.
    #[error(
        "{wanted}: registry {registry} signs its log with key {served}, not {pinned} as before; refusing to trust it, nothing was installed (if the key really changed, delete {state})"
    )]
    ServerKeyChanged {
        /// What the client was fetching.
        wanted: String,
        /// The registry URL.
        registry: String,
        /// Pinned key id.
        pinned: String,
        /// Served key id.
        served: String,
        /// Path of the saved state.
        state: PathBuf,
    },
    /// The lockfile's digest differs from what the registry's signed record says.
    #[error(
        "{package}@{version}: atoll.lock says sha256 {locked} but the registry's signed record says {signed}; the lockfile was edited or the package changed, nothing was installed (run `atoll add {package}@={version}` to re-lock after checking why)"
    )]
    LockfileMismatch {
        /// The package.
        package: String,
        /// The version.
        version: String,
        /// The lockfile's digest.
        locked: String,
        /// The signed digest.
        signed: String,
    },
    /// A cached blob's content no longer matches its address.
    #[error(
        "{package}: the cached component {path} has sha256 {actual}, not {expected} as locked; delete it and run `atoll pull`"
    )]
    CachedBlobMismatch {
        /// The package.
        package: String,
        /// The cache file.
        path: PathBuf,
        /// The locked digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The lockfile has no entry for a package.
    #[error("{package} is not in {path}; run `atoll add {package}` first")]
    NotLocked {
        /// The package.
        package: String,
        /// The lockfile.
        path: PathBuf,
    },
    /// The component is not cached yet.
    #[error(
        "{package}@{version} is locked but not downloaded yet ({path} is missing); run `atoll pull`"
    )]
    NotCached {
        /// The package.
        package: String,
        /// The version.
        version: String,
        /// Where it would be.
        path: PathBuf,
    },
    /// No published, non-yanked version matches.
    #[error(
        "no version of {package} matches `{req}` (available: {available}); publish one, or widen the requirement"
    )]
    NoMatchingVersion {
        /// The package.
        package: String,
        /// The requirement.
        req: String,
        /// Non-yanked versions, comma-separated.
        available: String,
    },
    /// The package or version does not exist.
    #[error("{what}")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// Republishing an existing version.
    #[error(
        "{package}@{version} is already published and versions are immutable; publish a new version"
    )]
    VersionExists {
        /// The package.
        package: String,
        /// The version.
        version: String,
    },
    /// The registry answered with an error.
    #[error("registry {url} answered {status}: {message}")]
    Http {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's message.
        message: String,
    },
    /// The registry could not be reached or the connection broke.
    #[error(
        "could not talk to registry {url}: {reason}; check the URL and that `atoll registry serve` is running"
    )]
    Network {
        /// The URL.
        url: String,
        /// The error.
        reason: String,
    },
    /// A registry URL that is not `http://host:port`.
    #[error("`{url}` is not a registry URL: {reason}; use e.g. http://127.0.0.1:8080")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The registry sent something that does not parse.
    #[error("registry {url} sent a response that does not parse: {reason}")]
    BadResponse {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The uploaded file is not a component.
    #[error("{what} is not a WebAssembly component: {reason}")]
    NotAComponent {
        /// The file or package.
        what: String,
        /// Why.
        reason: String,
    },
    /// A named key does not exist.
    #[error("no key named `{name}` in {dir}; create one with `atoll key generate --name {name}`")]
    KeyNotFound {
        /// The key name.
        name: String,
        /// The key directory.
        dir: PathBuf,
    },
    /// Generating a key that exists.
    #[error("a key named `{name}` already exists in {dir}; choose another --name")]
    KeyExists {
        /// The key name.
        name: String,
        /// The key directory.
        dir: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "could not read".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A lockfile or state file that does not parse.
    #[error("{path} does not parse: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The metadata database failed.
    #[error("registry database error: {reason}")]
    Database {
        /// The error.
        reason: String,
    },
}

impl Error {
    /// A stable code naming the failure, distinct for each attack the client refuses.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidPackageName { .. } => "invalid-package-name",
            Error::InvalidVersion { .. } => "invalid-version",
            Error::InvalidVersionReq { .. } => "invalid-version-req",
            Error::InvalidHex { .. } => "invalid-hex",
            Error::InvalidKey { .. } => "invalid-key",
            Error::Random { .. } => "random",
            Error::BadSignature { .. } => "bad-signature",
            Error::BadLogEntry { .. } => "bad-log-entry",
            Error::NotNamespaceOwner { .. } => "not-namespace-owner",
            Error::HiddenKeyChange { .. } => "hidden-key-change",
            Error::HiddenYank { .. } => "hidden-yank",
            Error::UnloggedYank { .. } => "unlogged-yank",
            Error::NamespaceOwned { .. } => "namespace-owned",
            Error::BlobDigestMismatch { .. } => "blob-digest-mismatch",
            Error::BlobTooLarge { .. } => "blob-too-large",
            Error::MetadataMismatch { .. } => "metadata-mismatch",
            Error::NotInLog { .. } => "not-in-log",
            Error::LogRollback { .. } => "log-rollback",
            Error::LogFork { .. } => "log-fork",
            Error::ServerKeyChanged { .. } => "server-key-changed",
            Error::StaleTreeHead { .. } => "stale-tree-head",
            Error::AuditFailed { .. } => "audit-failed",
            Error::LockfileMismatch { .. } => "lockfile-mismatch",
            Error::CachedBlobMismatch { .. } => "cached-blob-mismatch",
            Error::NotLocked { .. } => "not-locked",
            Error::NotCached { .. } => "not-cached",
            Error::NoMatchingVersion { .. } => "no-matching-version",
            Error::NotFound { .. } => "not-found",
            Error::VersionExists { .. } => "version-exists",
            Error::Http { .. } => "http",
            Error::Network { .. } => "network",
            Error::InvalidUrl { .. } => "invalid-url",
            Error::BadResponse { .. } => "bad-response",
            Error::NotAComponent { .. } => "not-a-component",
            Error::KeyNotFound { .. } => "key-not-found",
            Error::KeyExists { .. } => "key-exists",
            Error::Io { .. } => "io",
            Error::BadFile { .. } => "bad-file",
            Error::Database { .. } => "database",
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
