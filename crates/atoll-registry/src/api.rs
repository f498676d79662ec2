//! The JSON bodies of the HTTP API, shared by the server and the client so the two
//! cannot drift. `docs/registry-api.md` describes each endpoint.

use serde::{Deserialize, Serialize};

use crate::log::SignedTreeHead;
use crate::store::Release;

/// Header carrying the signed release record (JSON) on publish.
pub const RELEASE_HEADER: &str = "atoll-release";
/// Header carrying the signed namespace claim (JSON) on publish; used only when the
/// namespace is unclaimed.
pub const CLAIM_HEADER: &str = "atoll-claim";

/// `GET /v1/log/head`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadResponse {
    /// The current tree head, signed with the server's log key.
    pub head: SignedTreeHead,
    /// The server's log key, hex. Clients pin it on first use.
    pub server_key: String,
}

/// `GET /v1/log/consistency?from=M&to=N`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsistencyResponse {
    /// Old size.
    pub from: u64,
    /// New size.
    pub to: u64,
    /// RFC 6962 consistency proof, hex hashes.
    pub proof: Vec<String>,
}

/// `GET /v1/log/entries/{index}?size=N`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryResponse {
    /// Position of the entry.
    pub index: u64,
    /// Tree size the proof is for.
    pub size: u64,
    /// The leaf bytes (a JSON [`crate::log::LogEntry`]) as a string; hash these bytes.
    pub entry: String,
    /// RFC 6962 audit path, hex hashes.
    pub proof: Vec<String>,
}

/// Most entries `GET /v1/log/entries?start=S&end=E` returns at once.
pub const MAX_ENTRIES_PAGE: u64 = 1000;

/// `GET /v1/log/entries?start=S&end=E`: entries S..E (at most [`MAX_ENTRIES_PAGE`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntriesResponse {
    /// Position of the first entry.
    pub start: u64,
    /// The leaf bytes of each entry, as strings.
    pub entries: Vec<String>,
}

/// `GET /v1/packages/{package}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageResponse {
    /// The package.
    pub package: String,
    /// Every published version, yanked ones included.
    pub releases: Vec<Release>,
}

/// `PUT /v1/packages/{package}/{version}` and `POST .../yank`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendResponse {
    /// Position of the new record in the log.
    pub log_index: u64,
}

/// `GET /v1/search`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResponse {
    /// The newest non-yanked release of each matching package.
    pub results: Vec<Release>,
}

/// `GET /v1/namespaces/{namespace}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceResponse {
    /// The namespace.
    pub namespace: String,
    /// The owner's key, hex.
    pub key: String,
    /// Position of the claim record in the log.
    pub claim_index: u64,
    /// The keys that may publish now, hex.
    pub keys: Vec<String>,
    /// Positions of the claim and of every key grant and revocation, in log order.
    pub history: Vec<u64>,
}

/// Every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code, e.g. `version-exists`.
    pub code: String,
    /// What happened and what to do.
    pub message: String,
}
