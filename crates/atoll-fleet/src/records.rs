//! What the control plane holds, as JSON values in JetStream key-value buckets.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `atoll_apps`, key `app.<name>`: the desired state of one app, the only mutable record
/// of the fleet. Every write is a compare-and-swap on the entry's revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    /// The version every node serves (a version id), or none: the app is removed.
    pub current: Option<String>,
    /// A version being staged by a deploy: nodes fetch and compile it, then report it
    /// ready, and keep serving `current`.
    pub staged: Option<String>,
    /// When `staged` was set (unix milliseconds): a stage older than the deploy timeout
    /// was abandoned by a deploy that died, and the next deploy may take over.
    #[serde(default)]
    pub staged_at_ms: u64,
    /// The version before `current`, for `atoll rollback`.
    pub previous: Option<String>,
    /// Counts commits; a node never goes back to a lower epoch.
    pub epoch: u64,
    /// Who wrote the last commit (user@host), for `atoll status`.
    #[serde(default)]
    pub by: String,
    /// When the last commit was written (unix milliseconds).
    #[serde(default)]
    pub at_ms: u64,
}

/// One component's code in a version: the sha256 (hex) of its bytes, which is also its
/// blob's name in the object store, and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// sha256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// `atoll_versions`, key `ver.<app>.<id>`: an immutable version of an app. Its id is the
/// sha256 of its JSON bytes as stored, so a node checks the record it read as it checks
/// a blob; it is written with `create` only and never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The app's name.
    pub app: String,
    /// The manifest, with each component's `source` rewritten to `<sha256>.wasm` (the
    /// node places the verified blob there) and its `build` removed.
    pub manifest: String,
    /// Each component's code, by component name.
    pub components: BTreeMap<String, BlobRef>,
    /// The atoll version that made it.
    pub atoll: String,
    /// The files the components' `files` mounts take from the app directory, by their
    /// path relative to it (`/`-separated; see [`check_file_path`]): the node places
    /// each verified blob there, so the manifest's mount sources resolve as on the
    /// machine that deployed. Left out of the JSON when empty (so a version without
    /// files keeps the id it had before files were shipped).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, BlobRef>,
    /// The directories of those mounts (each mounted directory and those under it), so
    /// an empty one exists on the node too.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub dirs: BTreeSet<String>,
    /// The code of each composition dependency that is not a component of the app, by
    /// `<component>/<import>`; the manifest's entry names `<sha256>.wasm`, placed beside
    /// the components'. Left out of the JSON when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, BlobRef>,
}

/// Whether `path` may name a file or directory of a version: relative, `/`-separated,
/// no empty, `.` or `..` segment, no backslash or NUL, not under `.atoll/`, and not one
/// of the names the node writes beside them (`atoll.toml`, `version.json`,
/// `<sha256>.wasm` at the top). Checked when a bundle is made and again by every node
/// before it writes anything (a record comes from the control plane).
pub fn check_file_path(path: &str) -> Result<(), String> {
    let segments: Vec<&str> = path.split('/').collect();
    if path.is_empty()
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains(['\\', '\0']))
    {
        return Err(format!(
            "`{path}` is not a plain relative path (no empty, `.` or `..` segments, no leading `/`)"
        ));
    }
    if segments[0] == ".atoll" {
        return Err(format!(
            "`{path}` is under `.atoll/`, which atoll keeps for itself"
        ));
    }
    if segments.len() == 1 {
        let top = segments[0];
        let blob_name = top
            .strip_suffix(".wasm")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if top == atoll_manifest::MANIFEST_FILE || top == "version.json" || blob_name {
            return Err(format!(
                "`{path}` would replace a file the node writes beside the app's files (the manifest, the version record or a component); rename it or move it into a directory"
            ));
        }
    }
    Ok(())
}

impl VersionRecord {
    /// The record's bytes as stored, and its id (sha256 of those bytes, hex).
    pub fn encode(&self) -> (Vec<u8>, String) {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let id = sha256_hex(&bytes);
        (bytes, id)
    }
}

/// `atoll_nodes`, key `node.<id>`: what one node serves, put every heartbeat and at
/// every change. The bucket's `max_age` removes the key of a node that stopped putting
/// it (server clock; no TTL support needed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// The address it serves HTTP on.
    pub addr: String,
    /// The atoll version it runs.
    pub atoll: String,
    /// When it started (unix milliseconds).
    pub started_ms: u64,
    /// Whether it is ready (every app of its last known desired state loaded).
    pub ready: bool,
    /// Whether it is stopping (draining its requests).
    #[serde(default)]
    pub draining: bool,
    /// The version it serves, by app.
    pub apps: BTreeMap<String, ServedVersion>,
    /// Versions compiled and ready to swap in, by app.
    pub staged: BTreeMap<String, String>,
    /// The last failure to stage or load a version, by app.
    pub errors: BTreeMap<String, NodeError>,
    /// Requests in flight as it writes this.
    #[serde(default)]
    pub in_flight: u64,
    /// Resident memory of the node's process, bytes (from /proc; 0 where unknown).
    #[serde(default)]
    pub rss_bytes: u64,
}

/// The version a node serves of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedVersion {
    /// The version id.
    pub version: String,
    /// The epoch of the commit it serves.
    pub epoch: u64,
    /// When the node swapped it in (unix milliseconds).
    pub since_ms: u64,
    /// How long fetching its blobs took on this node, milliseconds (0: all cached).
    #[serde(default)]
    pub fetch_ms: u64,
    /// How long compiling (or loading from the compile cache) took, milliseconds.
    #[serde(default)]
    pub compile_ms: u64,
}

/// A node's failure to stage or load one version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeError {
    /// The version it failed on.
    pub version: String,
    /// What went wrong, and what to do.
    pub message: String,
    /// For a failure to stage, the stage it answered (`AppState::staged_at_ms`): a new
    /// deploy of the same version is a new attempt, tried again. 0 for a failure to
    /// load the committed version (tried again on every pass).
    #[serde(default)]
    pub attempt: u64,
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Milliseconds since the unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The short form of a version id shown to people (12 hex digits, as git does).
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
