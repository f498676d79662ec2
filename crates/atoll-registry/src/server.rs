//! The registry server behind `atoll registry serve`: an HTTP/1.1 JSON API over hyper.
//!
//! What it does per request, in the order a publish meets it: parse the path, check the
//! publisher's signed record against the uploaded bytes (sha256, size, signature), index
//! the component's WIT world, then, holding the log lock, check namespace ownership and
//! version immutability, write the blob (`<data>/blobs/sha256/<hex>`), and commit the log
//! entries and rows in one database transaction. Reads (tree head, proofs, metadata,
//! blobs, search) take the log lock only to copy what they need.
//!
//! Not for verifying what it serves on behalf of clients: clients trust only signatures
//! and proofs, never this server. The server signs tree heads with its log key
//! (`<data>/server.key`, created on first start, mode 0600).
//!
//! Costs: every leaf hash is kept in memory (32 bytes per entry); the root is recomputed
//! on each write (O(n) hashing), so a tree head costs one signature; proofs are built in
//! O(n) hashing per request. Blobs are read whole into memory to be served; uploads are
//! capped by [`ServerConfig::max_upload_bytes`] and [`ServerConfig::upload_timeout`],
//! request heads by [`ServerConfig::header_timeout`], and open connections by
//! [`ServerConfig::max_connections`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use crate::api::{
    AppendResponse, CLAIM_HEADER, ConsistencyResponse, EntriesResponse, EntryResponse, ErrorBody,
    HeadResponse, MAX_ENTRIES_PAGE, NamespaceResponse, PackageResponse, RELEASE_HEADER,
    SearchResponse,
};
use crate::hash::Digest;
use crate::home::{load_or_create_key, write_atomically};
use crate::log::{ClaimRecord, KeyChange, LogEntry, ReleaseRecord, SignedTreeHead, YankRecord};
use crate::name::{PackageName, parse_version, validate_namespace};
use crate::sign::KeyPair;
use crate::store::{Commit, Namespace, PgStore, RedbStore, Release, Store};
use crate::wit::{World, interface_matches};
use crate::{Error, merkle};

/// Default cap on an uploaded component. Uploads are held in memory while checked.
pub const DEFAULT_MAX_UPLOAD: u64 = 64 * 1024 * 1024;

/// Where the metadata lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// `<data>/registry.redb`.
    Embedded,
    /// A PostgreSQL database; tables in `schema`.
    Postgres {
        /// `postgres://user@host:port/db`.
        url: String,
        /// Schema holding the tables.
        schema: String,
    },
}

/// How to run a registry server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Blobs, the server key and (embedded) the database.
    pub data_dir: PathBuf,
    /// Metadata store.
    pub database: Database,
    /// Largest component accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Time a client gets to send a whole upload; a slow (or slowloris) upload past it
    /// gets 408 and the connection is closed.
    pub upload_timeout: Duration,
    /// Time a client gets to send a request's head, and the idle limit of a kept-alive
    /// connection between requests.
    pub header_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog. Bounds memory and
    /// file descriptors under a connection flood.
    pub max_connections: usize,
}

impl ServerConfig {
    /// Embedded database, 64 MiB uploads.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            database: Database::Embedded,
            max_upload_bytes: DEFAULT_MAX_UPLOAD,
            upload_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// A bound server, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
    header_timeout: Duration,
    max_connections: usize,
}

struct State {
    store: Store,
    blobs_dir: PathBuf,
    key: KeyPair,
    /// Leaf hashes of every log entry; also the lock that serializes writes.
    leaves: Mutex<Leaves>,
    max_upload: u64,
    upload_timeout: Duration,
}

impl Server {
    /// Open the store, load the log, create the server key if needed, and bind.
    pub async fn bind(config: ServerConfig) -> Result<Self, Error> {
        let data = &config.data_dir;
        std::fs::create_dir_all(data).map_err(|e| Error::io("could not create", data, e))?;
        let key = load_or_create_key(&data.join("server.key"))?;
        let store = match &config.database {
            Database::Embedded => Store::Redb(RedbStore::open(data)?),
            Database::Postgres { url, schema } => {
                Store::Postgres(PgStore::connect(url, schema).await?)
            }
        };
        let leaves = store
            .entries()
            .await?
            .iter()
            .map(|e| merkle::leaf_hash(e))
            .collect();
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::Io {
                action: "could not listen on",
                path: PathBuf::from(config.listen.to_string()),
                source: e,
            })?;
        Ok(Self {
            listener,
            state: Arc::new(State {
                store,
                blobs_dir: data.join("blobs").join("sha256"),
                key,
                leaves: Mutex::new(Leaves::new(leaves)),
                max_upload: config.max_upload_bytes,
                upload_timeout: config.upload_timeout,
            }),
            header_timeout: config.header_timeout,
            max_connections: config.max_connections.max(1),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(|e| Error::Io {
            action: "could not read the address of",
            path: PathBuf::from("the listening socket"),
            source: e,
        })
    }

    /// The server's log key, hex.
    pub fn server_key(&self) -> String {
        self.state.key.public().to_hex()
    }

    /// Serve until `shutdown` completes; then stop accepting, end open connections and
    /// release the store (so the data dir can be opened again).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let mut connections = tokio::task::JoinSet::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(self.max_connections));
        let header_timeout = self.header_timeout;
        tokio::pin!(shutdown);
        'serve: loop {
            // Take a connection slot before accepting, so a flood waits in the backlog.
            let slot = tokio::select! {
                () = &mut shutdown => break 'serve,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break 'serve,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => continue 'serve,
            };
            let (stream, peer) = loop {
                tokio::select! {
                    () = &mut shutdown => break 'serve,
                    // Reap finished connections while waiting.
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    accepted = self.listener.accept() => match accepted {
                        Ok(a) => break a,
                        Err(e) => tracing::warn!("accept failed: {e}"),
                    },
                }
            };
            let state = self.state.clone();
            connections.spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, req).await) }
                });
                let result = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = result {
                    tracing::debug!("connection from {peer}: {e}");
                }
            });
        }
        connections.shutdown().await;
        Ok(())
    }
}

/// The leaf hashes of the log and their root, recomputed on append (O(n) per write)
/// so that tree heads cost nothing to read.
struct Leaves {
    hashes: Vec<Digest>,
    root: Digest,
}

impl Leaves {
    fn new(hashes: Vec<Digest>) -> Self {
        let root = merkle::root(&hashes);
        Self { hashes, root }
    }

    fn append(&mut self, entries: &[Vec<u8>]) {
        self.hashes
            .extend(entries.iter().map(|e| merkle::leaf_hash(e)));
        self.root = merkle::root(&self.hashes);
    }
}

impl std::ops::Deref for Leaves {
    type Target = [Digest];

    fn deref(&self) -> &[Digest] {
        &self.hashes
    }
}

type Body = Full<Bytes>;

/// A failed request: status, code and message for the JSON error body.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Database { .. } | Error::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Error::VersionExists { .. } => StatusCode::CONFLICT,
            Error::NamespaceOwned { .. } => StatusCode::FORBIDDEN,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{e}");
        }
        Self::new(status, e.code(), e.to_string())
    }
}

/// Route one request. Every failure becomes a JSON error response.
async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match (&method, segments.as_slice()) {
        (&Method::GET, ["v1", "log", "head"]) => head(state).await,
        (&Method::GET, ["v1", "log", "consistency"]) => consistency(state, &query).await,
        (&Method::GET, ["v1", "log", "entries", index]) => entry(state, index, &query).await,
        (&Method::GET, ["v1", "log", "entries"]) => entries(state, &query).await,
        (&Method::GET, ["v1", "namespaces", ns]) => namespace(state, ns).await,
        (&Method::POST, ["v1", "namespaces", ns, "keys"]) => {
            let ns = ns.to_string();
            change_key(state, &ns, req).await
        }
        (&Method::GET, ["v1", "packages", package]) => package_releases(state, package).await,
        (&Method::GET, ["v1", "packages", package, version]) => {
            release(state, package, version).await
        }
        (&Method::PUT, ["v1", "packages", package, version]) => {
            let (package, version) = (package.to_string(), version.to_string());
            publish(state, &package, &version, req).await
        }
        (&Method::POST, ["v1", "packages", package, version, "yank"]) => {
            let (package, version) = (package.to_string(), version.to_string());
            yank(state, &package, &version, req).await
        }
        (&Method::GET, ["v1", "blobs", "sha256", hex]) => blob(state, hex).await,
        (&Method::GET, ["v1", "search"]) => search(state, &query).await,
        _ => Err(ApiError::not_found(format!(
            "no endpoint {method} {path}; see docs/registry-api.md"
        ))),
    };
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            let body = ErrorBody {
                code: e.code.to_string(),
                message: e.message,
            };
            json(e.status, &body)
        }
    };
    tracing::info!("{method} {path} {}", response.status().as_u16());
    response
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn number_param(query: &str, name: &str) -> Result<u64, ApiError> {
    let text = query_param(query, name)
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter `{name}`")))?;
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("`{name}={text}` is not a number")))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

async fn head(state: &State) -> Result<Response<Body>, ApiError> {
    let leaves = state.leaves.lock().await;
    let head = SignedTreeHead::sign(&state.key, leaves.len() as u64, &leaves.root, unix_now());
    drop(leaves);
    Ok(json(
        StatusCode::OK,
        &HeadResponse {
            head,
            server_key: state.key.public().to_hex(),
        },
    ))
}

/// The first `size` leaves, or an error when the log is shorter.
fn prefix(leaves: &[Digest], size: u64) -> Result<&[Digest], ApiError> {
    usize::try_from(size)
        .ok()
        .and_then(|n| leaves.get(..n))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the log has {} entries, fewer than {size}",
                leaves.len()
            ))
        })
}

async fn consistency(state: &State, query: &str) -> Result<Response<Body>, ApiError> {
    let from = number_param(query, "from")?;
    let to = number_param(query, "to")?;
    let leaves = state.leaves.lock().await;
    let tree = prefix(&leaves, to)?;
    let proof = usize::try_from(from)
        .ok()
        .and_then(|m| merkle::consistency_proof(m, tree))
        .ok_or_else(|| ApiError::bad_request(format!("from={from} is larger than to={to}")))?;
    drop(leaves);
    Ok(json(
        StatusCode::OK,
        &ConsistencyResponse {
            from,
            to,
            proof: proof.iter().map(Digest::to_hex).collect(),
        },
    ))
}

async fn entry(state: &State, index: &str, query: &str) -> Result<Response<Body>, ApiError> {
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::bad_request(format!("entry index `{index}` is not a number")))?;
    let leaves = state.leaves.lock().await;
    let size = match query_param(query, "size") {
        Some(_) => number_param(query, "size")?,
        None => leaves.len() as u64,
    };
    let tree = prefix(&leaves, size)?;
    let proof = usize::try_from(index)
        .ok()
        .and_then(|i| merkle::inclusion_proof(i, tree))
        .ok_or_else(|| {
            ApiError::not_found(format!("there is no entry {index} in a log of size {size}"))
        })?;
    drop(leaves);
    // The entry itself comes from the store; the in-memory hashes and the store agree
    // because both change only under the log lock.
    let bytes = state
        .store
        .entry(index)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no entry {index}")))?;
    let entry = String::from_utf8(bytes).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "database",
            "a stored log entry is not UTF-8",
        )
    })?;
    Ok(json(
        StatusCode::OK,
        &EntryResponse {
            index,
            size,
            entry,
            proof: proof.iter().map(Digest::to_hex).collect(),
        },
    ))
}

/// A page of raw entries, for auditors that rebuild the whole tree.
async fn entries(state: &State, query: &str) -> Result<Response<Body>, ApiError> {
    let start = number_param(query, "start")?;
    let end = number_param(query, "end")?;
    let size = state.leaves.lock().await.len() as u64;
    if start > end || end > size || end - start > MAX_ENTRIES_PAGE {
        return Err(ApiError::bad_request(format!(
            "entries {start}..{end} is not a range of at most {MAX_ENTRIES_PAGE} within the log's {size} entries"
        )));
    }
    let mut entries = Vec::new();
    for index in start..end {
        let bytes = state
            .store
            .entry(index)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("there is no entry {index}")))?;
        entries.push(String::from_utf8(bytes).map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "database",
                "a stored log entry is not UTF-8",
            )
        })?);
    }
    Ok(json(StatusCode::OK, &EntriesResponse { start, entries }))
}

async fn namespace(state: &State, ns: &str) -> Result<Response<Body>, ApiError> {
    validate_namespace(ns)?;
    let owner = state
        .store
        .namespace(ns)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("namespace `{ns}` is not claimed")))?;
    Ok(json(
        StatusCode::OK,
        &NamespaceResponse {
            keys: if owner.keys.is_empty() {
                vec![owner.key.clone()]
            } else {
                owner.keys
            },
            history: if owner.history.is_empty() {
                vec![owner.claim_index]
            } else {
                owner.history
            },
            namespace: owner.namespace,
            key: owner.key,
            claim_index: owner.claim_index,
        },
    ))
}

async fn package_releases(state: &State, package: &str) -> Result<Response<Body>, ApiError> {
    let package = PackageName::parse(package)?;
    let releases = state.store.releases(package.as_str()).await?;
    if releases.is_empty() {
        return Err(ApiError::not_found(format!(
            "package {package} does not exist"
        )));
    }
    Ok(json(
        StatusCode::OK,
        &PackageResponse {
            package: package.to_string(),
            releases,
        },
    ))
}

async fn release(state: &State, package: &str, version: &str) -> Result<Response<Body>, ApiError> {
    let package = PackageName::parse(package)?;
    let version = parse_version(version)?;
    let release = state
        .store
        .release(package.as_str(), &version.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{package}@{version} does not exist")))?;
    Ok(json(StatusCode::OK, &release))
}

fn header_json<T: for<'de> serde::Deserialize<'de>>(
    req: &Request<Incoming>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    let Some(value) = req.headers().get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request(format!("header {name} is not ASCII")))?;
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("header {name} does not parse: {e}")))
}

async fn publish(
    state: &State,
    package: &str,
    version: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let package = PackageName::parse(package)?;
    let version = parse_version(version)?;
    let record: ReleaseRecord = header_json(&req, RELEASE_HEADER)?.ok_or_else(|| {
        ApiError::bad_request(format!(
            "missing header {RELEASE_HEADER} (the signed release record)"
        ))
    })?;
    let claim: Option<ClaimRecord> = header_json(&req, CLAIM_HEADER)?;
    let verified = record.verify()?;
    if verified.package != package || verified.version != version {
        return Err(ApiError::bad_request(format!(
            "the signed record is for {}@{}, not {package}@{version}",
            verified.package, verified.version
        )));
    }
    let upload = Limited::new(
        req.into_body(),
        usize::try_from(state.max_upload).unwrap_or(usize::MAX),
    )
    .collect();
    let body = tokio::time::timeout(state.upload_timeout, upload)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "upload-timeout",
                format!(
                    "the upload did not finish within {} s; retry on a faster connection",
                    state.upload_timeout.as_secs()
                ),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "the upload failed or exceeds {} bytes: {e}",
                    state.max_upload
                ),
            )
        })?
        .to_bytes();
    let digest = Digest::of(&body);
    if digest != verified.sha256 || body.len() as u64 != verified.size {
        return Err(ApiError::bad_request(format!(
            "the uploaded bytes (sha256 {digest}, {} bytes) are not what the record signs (sha256 {}, {} bytes)",
            body.len(),
            verified.sha256,
            verified.size
        )));
    }
    let world = World::of_component(&format!("{package}@{version}"), &body)?;

    // Everything below changes the log; one writer at a time.
    let mut leaves = state.leaves.lock().await;
    let mut commit = Commit {
        first_index: leaves.len() as u64,
        ..Commit::default()
    };
    match state.store.namespace(package.namespace()).await? {
        Some(owner) if !owner.allows(&record.key) => {
            return Err(Error::NamespaceOwned {
                namespace: package.namespace().to_string(),
                owner: crate::sign::PublicKey::from_hex("owner key", &owner.key)
                    .map(|k| k.key_id())
                    .unwrap_or(owner.key),
            }
            .into());
        }
        Some(_) => {}
        None => {
            let claim = claim.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "namespace `{}` is unclaimed: the first publish must carry a signed claim in header {CLAIM_HEADER}",
                    package.namespace()
                ))
            })?;
            claim.verify()?;
            if claim.namespace != package.namespace() || claim.key != record.key {
                return Err(ApiError::bad_request(
                    "the claim must be for this package's namespace and signed by the publishing key",
                ));
            }
            commit.namespace = Some(Namespace::claimed(
                &claim.namespace,
                &claim.key,
                commit.first_index,
            ));
            commit.entries.push(LogEntry::Claim(claim).to_bytes());
        }
    }
    if state
        .store
        .release(package.as_str(), &version.to_string())
        .await?
        .is_some()
    {
        return Err(Error::VersionExists {
            package: package.to_string(),
            version: version.to_string(),
        }
        .into());
    }
    write_atomically(&state.blobs_dir.join(digest.to_hex()), &body)?;
    let log_index = commit.first_index + commit.entries.len() as u64;
    commit.entries.push(LogEntry::Release(record).to_bytes());
    commit.release = Some(Release {
        package: package.to_string(),
        version: version.to_string(),
        sha256: digest.to_hex(),
        size: body.len() as u64,
        publisher: verified.key.key_id(),
        log_index,
        yanked: false,
        world,
    });
    state.store.commit(&commit).await?;
    leaves.append(&commit.entries);
    drop(leaves);
    Ok(json(StatusCode::CREATED, &AppendResponse { log_index }))
}

async fn yank(
    state: &State,
    package: &str,
    version: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let package = PackageName::parse(package)?;
    let version = parse_version(version)?;
    let body = Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("could not read the yank record: {e}")))?
        .to_bytes();
    let record: YankRecord = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the yank record does not parse: {e}")))?;
    let (rec_package, rec_version, key) = record.verify()?;
    if rec_package != package || rec_version != version {
        return Err(ApiError::bad_request(format!(
            "the signed yank is for {rec_package}@{rec_version}, not {package}@{version}"
        )));
    }
    let mut leaves = state.leaves.lock().await;
    let owner = state.store.namespace(package.namespace()).await?;
    if !owner.as_ref().is_some_and(|o| o.allows(&record.key)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "namespace-owned",
            format!(
                "key {} does not own namespace `{}`; yank with the key that published it",
                key.key_id(),
                package.namespace()
            ),
        ));
    }
    let mut release = state
        .store
        .release(package.as_str(), &version.to_string())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{package}@{version} does not exist")))?;
    if release.yanked {
        return Ok(json(
            StatusCode::OK,
            &AppendResponse {
                log_index: release.log_index,
            },
        ));
    }
    release.yanked = true;
    let log_index = leaves.len() as u64;
    let commit = Commit {
        first_index: log_index,
        entries: vec![LogEntry::Yank(record).to_bytes()],
        namespace: None,
        release: Some(release),
    };
    state.store.commit(&commit).await?;
    leaves.append(&commit.entries);
    drop(leaves);
    Ok(json(StatusCode::OK, &AppendResponse { log_index }))
}

/// `POST /v1/namespaces/{ns}/keys`: a signed key grant or revocation by a current key.
async fn change_key(
    state: &State,
    ns: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    validate_namespace(ns)?;
    let body = Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("could not read the key record: {e}")))?
        .to_bytes();
    let entry = LogEntry::from_bytes(&body)?;
    let (change, record) = match &entry {
        LogEntry::KeyGrant(r) => (KeyChange::Grant, r),
        LogEntry::KeyRevoke(r) => (KeyChange::Revoke, r),
        _ => {
            return Err(ApiError::bad_request(
                "expected a key_grant or key_revoke record",
            ));
        }
    };
    let (signer, subject) = record.verify(change)?;
    if record.namespace != ns {
        return Err(ApiError::bad_request(format!(
            "the record is for namespace `{}`, not `{ns}`",
            record.namespace
        )));
    }
    let mut leaves = state.leaves.lock().await;
    let mut owner = state
        .store
        .namespace(ns)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("namespace `{ns}` is not claimed")))?;
    if owner.keys.is_empty() {
        owner.keys = vec![owner.key.clone()];
        owner.history = vec![owner.claim_index];
    }
    if !owner.allows(&record.key) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "namespace-owned",
            format!(
                "key {} is not a current key of namespace `{ns}`; sign with one of its keys",
                signer.key_id()
            ),
        ));
    }
    let subject_hex = subject.to_hex();
    match change {
        KeyChange::Grant if owner.allows(&subject_hex) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "key-exists",
                format!("key {} already publishes in `{ns}`", subject.key_id()),
            ));
        }
        KeyChange::Grant => owner.keys.push(subject_hex),
        KeyChange::Revoke if !owner.allows(&subject_hex) => {
            return Err(ApiError::not_found(format!(
                "key {} is not a key of `{ns}`",
                subject.key_id()
            )));
        }
        KeyChange::Revoke if owner.keys.len() == 1 => {
            return Err(ApiError::bad_request(format!(
                "key {} is the last key of `{ns}`; grant another key before revoking it",
                subject.key_id()
            )));
        }
        KeyChange::Revoke => owner.keys.retain(|k| *k != subject_hex),
    }
    let log_index = leaves.len() as u64;
    owner.history.push(log_index);
    let commit = Commit {
        first_index: log_index,
        entries: vec![entry.to_bytes()],
        namespace: Some(owner),
        release: None,
    };
    state.store.commit(&commit).await?;
    leaves.append(&commit.entries);
    drop(leaves);
    Ok(json(StatusCode::OK, &AppendResponse { log_index }))
}

async fn blob(state: &State, hex: &str) -> Result<Response<Body>, ApiError> {
    let digest = Digest::from_hex("blob digest", hex)?;
    let path = state.blobs_dir.join(digest.to_hex());
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!("no blob with sha256 {digest}")));
        }
        Err(e) => return Err(Error::io("could not read", path, e).into()),
    };
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/wasm"),
    );
    Ok(response)
}

async fn search(state: &State, query: &str) -> Result<Response<Body>, ApiError> {
    let text = query_param(query, "q").map(|t| t.to_lowercase());
    let exports = query_param(query, "exports");
    let imports = query_param(query, "imports");
    let mut newest: std::collections::BTreeMap<String, (semver::Version, Release)> =
        Default::default();
    for release in state.store.all_releases().await? {
        if release.yanked {
            continue;
        }
        let Ok(version) = semver::Version::parse(&release.version) else {
            continue;
        };
        let keep = match newest.get(&release.package) {
            Some((v, _)) => version > *v,
            None => true,
        };
        if keep {
            newest.insert(release.package.clone(), (version, release));
        }
    }
    let results = newest
        .into_values()
        .map(|(_, r)| r)
        .filter(|r| text.as_deref().is_none_or(|t| r.package.contains(t)))
        .filter(|r| {
            exports
                .as_deref()
                .is_none_or(|q| r.world.exports.iter().any(|e| interface_matches(e, q)))
        })
        .filter(|r| {
            imports
                .as_deref()
                .is_none_or(|q| r.world.imports.iter().any(|i| interface_matches(i, q)))
        })
        .collect();
    Ok(json(StatusCode::OK, &SearchResponse { results }))
}
