//! The registry client: publish, yank and search, and the verified fetches behind
//! `atoll add` and `atoll pull`.
//!
//! The client trusts no answer from the server by itself. For every release it fetches
//! it checks, in this order, and writes nothing (no blob, no tree head, no lockfile)
//! unless all pass:
//! 1. the tree head is signed by the server key pinned on first use, and is consistent
//!    with the last tree head this client saw (same size → same root; larger → a
//!    consistency proof; smaller → rollback);
//! 2. the release record is in that tree (inclusion proof) and is the record for the
//!    requested package and version;
//! 3. the publisher's signature over (package, version, sha256, size, timestamp) holds,
//!    and the registry's metadata agrees with the signed record;
//! 4. the signing key owns the namespace: the namespace's claim record is in the tree,
//!    signed by the same key, and matches the owner this client pinned before; the key
//!    history the registry lists is every claim, grant and revocation of the namespace
//!    that the whole log (downloaded and re-hashed into the signed root) holds before the
//!    release, so a hidden revocation is refused (`hidden-key-change`);
//! 5. the blob's size and sha256 are the signed ones.
//!
//! `add` also checks each listed version's `yanked` against the yanks in the log, signed
//! by a key of the namespace: a hidden yank (`hidden-yank`) or an invented one
//! (`unlogged-yank`) is refused. The cost is one download of the whole log per command
//! (as `audit` does); incremental sync is not built.
//!
//! Not for terminal output or choosing the registry URL (the binary does both), nor for
//! editing `atoll.toml` (the manifest crate). Plain `http://` only: there is no TLS yet,
//! which the signatures and proofs make safe for integrity but not for privacy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::api::{
    AppendResponse, CLAIM_HEADER, ConsistencyResponse, EntriesResponse, EntryResponse, ErrorBody,
    HeadResponse, MAX_ENTRIES_PAGE, NamespaceResponse, PackageResponse, RELEASE_HEADER,
    SearchResponse,
};
use crate::hash::Digest;
use crate::home::{AtollHome, TrustState};
use crate::lockfile::{LockedPackage, Lockfile};
use crate::log::{
    ClaimRecord, KeyChange, KeyChangeRecord, LogEntry, ReleaseRecord, SignedTreeHead,
    VerifiedRelease, YankRecord,
};
use crate::name::{PackageName, parse_version};
use crate::resolve::{PackageSpec, resolve};
use crate::sign::{KeyPair, PublicKey};
use crate::store::Release;
use crate::{Error, merkle};

/// Oldest tree head accepted by default. The server signs a fresh head on every request,
/// so only a replayed (frozen) view or a badly wrong clock is older than this.
pub const DEFAULT_MAX_HEAD_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Largest JSON answer read from a registry (metadata, proofs, search results).
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// A client of one registry, keeping its trust state in an [`AtollHome`].
pub struct Client {
    base: String,
    home: AtollHome,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    max_head_age: Duration,
}

/// A package `add` resolved, verified and cached.
#[derive(Debug, Clone)]
pub struct Added {
    /// The entry to write into `atoll.lock`.
    pub locked: LockedPackage,
    /// The cached component.
    pub path: PathBuf,
}

/// What `pull` did for one locked package.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The package.
    pub package: String,
    /// The version.
    pub version: String,
    /// The cached component.
    pub path: PathBuf,
    /// False when the verified blob was already cached.
    pub downloaded: bool,
}

/// What [`Client::audit`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries in the log (all rehashed into the signed root).
    pub size: u64,
    /// Namespaces claimed.
    pub n_namespaces: usize,
    /// Releases published.
    pub n_releases: usize,
    /// Key grants and revocations.
    pub n_key_changes: usize,
    /// Yanks.
    pub n_yanks: usize,
}

/// A tree head that passed step 1, not yet saved.
struct VerifiedHead {
    head: SignedTreeHead,
    root: Digest,
    server_key: String,
    /// Namespace owners pinned so far, plus the ones verified in this command.
    namespaces: BTreeMap<String, String>,
    /// The whole log's key changes and yanks, once a command needed them.
    view: Option<LogView>,
}

/// What the log itself says about key changes and yanks (see [`Client::log_view`]).
#[derive(Default)]
struct LogView {
    /// Per namespace, the log positions of its claim and key changes, in order.
    key_records: BTreeMap<String, Vec<(u64, &'static str)>>,
    /// Signed yanks: (package, version) -> (log position, signer).
    yanks: BTreeMap<(String, String), (u64, PublicKey)>,
}

/// Namespace owners seen, kept next to the tree head.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct NamespacePins {
    #[serde(default)]
    namespaces: BTreeMap<String, String>,
}

impl Client {
    /// A client of the registry at `url` (`http://host:port`).
    pub fn new(url: &str, home: AtollHome) -> Result<Self, Error> {
        let base = url.trim_end_matches('/').to_string();
        let invalid = |reason: &str| Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if base.starts_with("https://") {
            return Err(invalid("https is not supported yet (no TLS in the client)"));
        }
        let Some(rest) = base.strip_prefix("http://") else {
            return Err(invalid("it does not start with http://"));
        };
        if rest.is_empty() || rest.contains('/') {
            return Err(invalid("it must be just a scheme, host and port"));
        }
        base.parse::<http::Uri>()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Self {
            base,
            home,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            timeout: Duration::from_secs(60),
            max_head_age: DEFAULT_MAX_HEAD_AGE,
        })
    }

    /// The registry URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Time allowed for each request, body included (default 60 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Refuse tree heads signed longer ago than this (default [`DEFAULT_MAX_HEAD_AGE`]).
    pub fn set_max_head_age(&mut self, max: Duration) {
        self.max_head_age = max;
    }

    // ---- publishing -------------------------------------------------------------

    /// Sign and upload `bytes` as `package@version`, then check that the registry logged
    /// exactly the signed record (its inclusion in a tree head consistent with the last
    /// one seen); the release's log index.
    pub async fn publish(
        &self,
        key: &KeyPair,
        package: &PackageName,
        version: &semver::Version,
        bytes: Vec<u8>,
    ) -> Result<u64, Error> {
        let now = unix_now();
        let digest = Digest::of(&bytes);
        let record = ReleaseRecord::sign(key, package, version, &digest, bytes.len() as u64, now);
        let claim = ClaimRecord::sign(key, package.namespace(), now)?;
        let headers = [
            (
                RELEASE_HEADER,
                serde_json::to_string(&record).unwrap_or_default(),
            ),
            (
                CLAIM_HEADER,
                serde_json::to_string(&claim).unwrap_or_default(),
            ),
        ];
        let path = format!("/v1/packages/{package}/{version}");
        let (status, body) = self
            .send_small(Method::PUT, &path, &headers, Bytes::from(bytes))
            .await?;
        if status == StatusCode::CONFLICT {
            return Err(Error::VersionExists {
                package: package.to_string(),
                version: version.to_string(),
            });
        }
        let answer: AppendResponse = self.parse_ok(&path, status, &body)?;
        let what = format!("{package}@{version}");
        let head = self.verified_head(&format!("publishing {what}")).await?;
        let logged = self
            .fetch_entry(
                &head,
                answer.log_index,
                &format!("the release record of {what}"),
            )
            .await?;
        if logged != LogEntry::Release(record) {
            return Err(Error::NotInLog {
                what: format!(
                    "the release record of {what} (entry {} holds another record)",
                    answer.log_index
                ),
                size: head.head.size,
            });
        }
        self.save_head(&head)?;
        Ok(answer.log_index)
    }

    /// Sign and send a yank of `package@version`; the yank's log index.
    pub async fn yank(
        &self,
        key: &KeyPair,
        package: &PackageName,
        version: &semver::Version,
    ) -> Result<u64, Error> {
        let record = YankRecord::sign(key, package, version, unix_now());
        let path = format!("/v1/packages/{package}/{version}/yank");
        let body = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        let (status, body) = self.send_small(Method::POST, &path, &[], body).await?;
        let answer: AppendResponse = self.parse_ok(&path, status, &body)?;
        Ok(answer.log_index)
    }

    /// Let `subject` publish in `namespace` (signed by `key`, a current key of it);
    /// the record's log index.
    pub async fn grant_key(
        &self,
        key: &KeyPair,
        namespace: &str,
        subject: &PublicKey,
    ) -> Result<u64, Error> {
        let record = KeyChangeRecord::sign(KeyChange::Grant, key, namespace, subject, unix_now())?;
        self.change_key(namespace, LogEntry::KeyGrant(record)).await
    }

    /// Stop `subject` from publishing in `namespace` (signed by `key`, a current key of
    /// it); releases it signed earlier stay valid. The record's log index.
    pub async fn revoke_key(
        &self,
        key: &KeyPair,
        namespace: &str,
        subject: &PublicKey,
    ) -> Result<u64, Error> {
        let record = KeyChangeRecord::sign(KeyChange::Revoke, key, namespace, subject, unix_now())?;
        self.change_key(namespace, LogEntry::KeyRevoke(record))
            .await
    }

    async fn change_key(&self, namespace: &str, entry: LogEntry) -> Result<u64, Error> {
        let path = format!("/v1/namespaces/{namespace}/keys");
        let (status, body) = self
            .send_small(Method::POST, &path, &[], Bytes::from(entry.to_bytes()))
            .await?;
        let answer: AppendResponse = self.parse_ok(&path, status, &body)?;
        Ok(answer.log_index)
    }

    /// Newest non-yanked release of each package matching all given filters: `text` in
    /// the package name, an export and an import (with or without `@version`).
    pub async fn search(
        &self,
        text: Option<&str>,
        exports: Option<&str>,
        imports: Option<&str>,
    ) -> Result<Vec<Release>, Error> {
        let mut params = Vec::new();
        for (name, value) in [("q", text), ("exports", exports), ("imports", imports)] {
            if let Some(v) = value {
                params.push(format!(
                    "{name}={}",
                    utf8_percent_encode(v, NON_ALPHANUMERIC)
                ));
            }
        }
        let path = format!("/v1/search?{}", params.join("&"));
        let answer: SearchResponse = self.get_json(&path).await?;
        Ok(answer.results)
    }

    // ---- verified fetches -------------------------------------------------------

    /// Resolve `spec` to the newest non-yanked matching version, verify it (see the
    /// module doc) and cache it. The caller writes the returned entry into `atoll.lock`.
    pub async fn add(&self, spec: &PackageSpec) -> Result<Added, Error> {
        match self.add_once(spec).await {
            // A yank logged between the listing and the tree head looks hidden; an honest
            // server lists it on a second look, a hiding one does not.
            Err(Error::HiddenYank { .. }) => self.add_once(spec).await,
            other => other,
        }
    }

    async fn add_once(&self, spec: &PackageSpec) -> Result<Added, Error> {
        let package = &spec.package;
        let list: PackageResponse = self.get_json(&format!("/v1/packages/{package}")).await?;
        let mut versions = Vec::new();
        for release in &list.releases {
            if release.package != package.as_str() {
                return Err(Error::BadResponse {
                    url: self.base.clone(),
                    reason: format!("asked for {package}, got a release of {}", release.package),
                });
            }
            versions.push((parse_version(&release.version)?, release.yanked));
        }
        let chosen = resolve(&spec.req, versions.iter().map(|(v, y)| (v, *y)))
            .ok_or_else(|| Error::NoMatchingVersion {
                package: package.to_string(),
                req: spec.req.to_string(),
                available: available(&versions),
            })?
            .clone();
        let meta = list
            .releases
            .iter()
            .find(|r| parse_version(&r.version).is_ok_and(|v| v == chosen))
            .cloned()
            .ok_or_else(|| Error::NotFound {
                what: format!("{package}@{chosen} is listed but its metadata is missing"),
            })?;
        // The head is fetched after the metadata, so it covers the release. Each listed
        // `yanked` must be what the log's signed yanks say.
        let mut head = self.verified_head(&format!("{package}@{chosen}")).await?;
        let view = self.log_view(&mut head).await?;
        for release in &list.releases {
            let version = parse_version(&release.version)?.to_string();
            let logged = view.yanks.get(&(release.package.clone(), version));
            match (release.yanked, logged) {
                (false, Some((index, _))) => {
                    return Err(Error::HiddenYank {
                        package: release.package.clone(),
                        version: release.version.clone(),
                        index: *index,
                    });
                }
                (true, None) => {
                    return Err(Error::UnloggedYank {
                        package: release.package.clone(),
                        version: release.version.clone(),
                    });
                }
                _ => {}
            }
        }
        let verified = self.verify_release(&mut head, &meta).await?;
        let bytes = self.download(&verified).await?;
        // Every check passed; only now touch the disk.
        let path = self.home.put_blob(&verified.sha256, &bytes)?;
        self.save_head(&head)?;
        Ok(Added {
            locked: LockedPackage {
                name: package.to_string(),
                version: verified.version.to_string(),
                sha256: verified.sha256.to_hex(),
                publisher: verified.key.key_id(),
                registry: self.base.clone(),
                log_index: meta.log_index,
            },
            path,
        })
    }

    /// Fetch exactly what `lock` names, verifying each package as `add` does and that
    /// the signed digest is the locked one. Nothing is written unless every package
    /// verifies. `progress` is called once per package after it verified.
    pub async fn pull(
        &self,
        lock: &Lockfile,
        progress: &mut dyn FnMut(&LockedPackage),
    ) -> Result<Vec<Pulled>, Error> {
        let wanted: Vec<String> = lock
            .packages
            .iter()
            .map(|p| format!("{}@{}", p.name, p.version))
            .collect();
        let mut head = self
            .verified_head(&format!("pulling {}", wanted.join(", ")))
            .await?;
        let mut fetched = Vec::new();
        for locked in &lock.packages {
            let package = PackageName::parse(&locked.name)?;
            let version = parse_version(&locked.version)?;
            let locked_digest = locked.digest()?;
            let meta: Release = self
                .get_json(&format!("/v1/packages/{package}/{version}"))
                .await?;
            let verified = self.verify_release(&mut head, &meta).await?;
            if verified.sha256 != locked_digest {
                return Err(Error::LockfileMismatch {
                    package: package.to_string(),
                    version: version.to_string(),
                    locked: locked.sha256.clone(),
                    signed: verified.sha256.to_hex(),
                });
            }
            let bytes = match self.home.verified_blob(package.as_str(), &verified.sha256) {
                Ok(Some(_)) => None,
                // A missing or corrupt cache entry is downloaded again.
                Ok(None) | Err(Error::CachedBlobMismatch { .. }) => {
                    Some(self.download(&verified).await?)
                }
                Err(e) => return Err(e),
            };
            progress(locked);
            fetched.push((locked, verified.sha256, bytes));
        }
        let mut pulled = Vec::new();
        for (locked, digest, bytes) in fetched {
            let downloaded = bytes.is_some();
            let path = match bytes {
                Some(b) => self.home.put_blob(&digest, &b)?,
                None => self.home.blob_path(&digest),
            };
            pulled.push(Pulled {
                package: locked.name.clone(),
                version: locked.version.clone(),
                path,
                downloaded,
            });
        }
        self.save_head(&head)?;
        Ok(pulled)
    }

    /// Audit the whole log, as a monitor does: download every entry, check they hash to
    /// the signed tree head (which must be consistent with the last one seen), and
    /// replay them: one claim per namespace, every release, yank and key change signed
    /// by a key the namespace had at that point, no version published twice. This finds
    /// what per-package checks cannot, such as a revocation left out of a namespace's
    /// history. Cost: every entry is downloaded ([`MAX_ENTRIES_PAGE`] per request).
    pub async fn audit(&self) -> Result<AuditReport, Error> {
        let head = self.verified_head("auditing the log").await?;
        let size = head.head.size;
        let texts = self.fetch_log(&head).await?;
        let mut report = AuditReport {
            size,
            ..AuditReport::default()
        };
        let mut namespaces: BTreeMap<String, Vec<PublicKey>> = BTreeMap::new();
        let mut releases: std::collections::BTreeSet<(String, String)> = Default::default();
        for (index, text) in texts.iter().enumerate() {
            let fail = |reason: String| Error::AuditFailed {
                registry: self.base.clone(),
                at: format!("log entry {index}"),
                reason,
            };
            let entry = LogEntry::from_bytes(text.as_bytes()).map_err(|e| fail(e.to_string()))?;
            match entry {
                LogEntry::Claim(c) => {
                    let key = c.verify().map_err(|e| fail(e.to_string()))?;
                    if namespaces.contains_key(&c.namespace) {
                        return Err(fail(format!(
                            "a second claim of namespace `{}`, by {}",
                            c.namespace,
                            key.key_id()
                        )));
                    }
                    namespaces.insert(c.namespace, vec![key]);
                    report.n_namespaces += 1;
                }
                LogEntry::Release(r) => {
                    let v = r.verify().map_err(|e| fail(e.to_string()))?;
                    let what = format!("{}@{}", v.package, v.version);
                    let keys = namespaces.get(v.package.namespace()).ok_or_else(|| {
                        fail(format!(
                            "{what} is in unclaimed namespace `{}`",
                            v.package.namespace()
                        ))
                    })?;
                    if !keys.contains(&v.key) {
                        return Err(fail(format!(
                            "{what} is signed by {}, not a key of namespace `{}` at that point",
                            v.key.key_id(),
                            v.package.namespace()
                        )));
                    }
                    if !releases.insert((v.package.to_string(), v.version.to_string())) {
                        return Err(fail(format!("{what} is published a second time")));
                    }
                    report.n_releases += 1;
                }
                LogEntry::Yank(y) => {
                    let (package, version, key) = y.verify().map_err(|e| fail(e.to_string()))?;
                    let allowed = namespaces
                        .get(package.namespace())
                        .is_some_and(|keys| keys.contains(&key));
                    if !allowed || !releases.contains(&(package.to_string(), version.to_string())) {
                        return Err(fail(format!(
                            "a yank of {package}@{version} by {} that is not a key of its namespace, or of a version never published",
                            key.key_id()
                        )));
                    }
                    report.n_yanks += 1;
                }
                LogEntry::KeyGrant(r) | LogEntry::KeyRevoke(r)
                    if !namespaces.contains_key(&r.namespace) =>
                {
                    return Err(fail(format!(
                        "a key change in unclaimed namespace `{}`",
                        r.namespace
                    )));
                }
                LogEntry::KeyGrant(r) => {
                    let (signer, subject) = r
                        .verify(KeyChange::Grant)
                        .map_err(|e| fail(e.to_string()))?;
                    let keys = namespaces.entry(r.namespace.clone()).or_default();
                    if !keys.contains(&signer) {
                        return Err(fail(format!(
                            "a key grant in `{}` signed by {}, not one of its keys",
                            r.namespace,
                            signer.key_id()
                        )));
                    }
                    if !keys.contains(&subject) {
                        keys.push(subject);
                    }
                    report.n_key_changes += 1;
                }
                LogEntry::KeyRevoke(r) => {
                    let (signer, subject) = r
                        .verify(KeyChange::Revoke)
                        .map_err(|e| fail(e.to_string()))?;
                    let keys = namespaces.entry(r.namespace.clone()).or_default();
                    if !keys.contains(&signer) {
                        return Err(fail(format!(
                            "a key revocation in `{}` signed by {}, not one of its keys",
                            r.namespace,
                            signer.key_id()
                        )));
                    }
                    keys.retain(|k| *k != subject);
                    report.n_key_changes += 1;
                }
            }
        }
        self.save_head(&head)?;
        Ok(report)
    }

    /// Every entry of the log under `head`, checked to hash to its signed root (so none
    /// can be left out or changed). [`MAX_ENTRIES_PAGE`] entries per request.
    async fn fetch_log(&self, head: &VerifiedHead) -> Result<Vec<String>, Error> {
        let size = head.head.size;
        let mut leaves = Vec::new();
        let mut texts = Vec::new();
        let mut start = 0;
        while start < size {
            let end = (start + MAX_ENTRIES_PAGE).min(size);
            let page: EntriesResponse = self
                .get_json(&format!("/v1/log/entries?start={start}&end={end}"))
                .await?;
            if page.start != start || page.entries.len() as u64 != end - start {
                return Err(Error::BadResponse {
                    url: self.base.clone(),
                    reason: format!("asked for entries {start}..{end}, got another range"),
                });
            }
            for text in page.entries {
                leaves.push(merkle::leaf_hash(text.as_bytes()));
                texts.push(text);
            }
            start = end;
        }
        if merkle::root(&leaves) != head.root {
            return Err(Error::AuditFailed {
                registry: self.base.clone(),
                at: "the tree head".into(),
                reason: format!("the {size} entries it serves do not hash to the root it signed"),
            });
        }
        Ok(texts)
    }

    /// The key changes and yanks of the whole log under `head`, read once per command:
    /// what the registry's own lists (a namespace's `history`, a release's `yanked`) are
    /// checked against, so a server cannot hide a revocation or a yank, nor invent a yank.
    async fn log_view<'h>(&self, head: &'h mut VerifiedHead) -> Result<&'h LogView, Error> {
        if head.view.is_none() {
            let texts = self.fetch_log(head).await?;
            let mut view = LogView::default();
            // The keys each namespace has at each point, replayed as the audit does, so a
            // yank counts only when a key of its namespace signed it.
            let mut keys: BTreeMap<String, Vec<PublicKey>> = BTreeMap::new();
            for (index, text) in texts.iter().enumerate() {
                let index = index as u64;
                // Entries that do not parse are the audit's business; they cannot be key
                // changes or yanks of anything this command resolves.
                let Ok(entry) = LogEntry::from_bytes(text.as_bytes()) else {
                    continue;
                };
                match entry {
                    LogEntry::Claim(c) => {
                        if let Ok(owner) = c.verify() {
                            keys.entry(c.namespace.clone())
                                .or_insert_with(|| vec![owner]);
                        }
                        view.key_records
                            .entry(c.namespace)
                            .or_default()
                            .push((index, "claim"));
                    }
                    LogEntry::KeyGrant(r) => {
                        if let Ok((signer, subject)) = r.verify(KeyChange::Grant)
                            && let Some(k) = keys.get_mut(&r.namespace)
                            && k.contains(&signer)
                            && !k.contains(&subject)
                        {
                            k.push(subject);
                        }
                        view.key_records
                            .entry(r.namespace)
                            .or_default()
                            .push((index, "grant"));
                    }
                    LogEntry::KeyRevoke(r) => {
                        if let Ok((signer, subject)) = r.verify(KeyChange::Revoke)
                            && let Some(k) = keys.get_mut(&r.namespace)
                            && k.contains(&signer)
                        {
                            k.retain(|key| *key != subject);
                        }
                        view.key_records
                            .entry(r.namespace)
                            .or_default()
                            .push((index, "revocation"));
                    }
                    LogEntry::Yank(y) => {
                        if let Ok((package, version, key)) = y.verify()
                            && keys
                                .get(package.namespace())
                                .is_some_and(|k| k.contains(&key))
                        {
                            view.yanks
                                .entry((package.to_string(), version.to_string()))
                                .or_insert((index, key));
                        }
                    }
                    LogEntry::Release(_) => {}
                }
            }
            head.view = Some(view);
        }
        head.view.as_ref().ok_or_else(|| Error::BadResponse {
            url: self.base.clone(),
            reason: "the log view was not built".into(),
        })
    }

    /// Step 1: the current tree head, signed by the pinned key and consistent with the
    /// last one saved.
    /// `wanted` names what is being fetched, for the error messages.
    async fn verified_head(&self, wanted: &str) -> Result<VerifiedHead, Error> {
        let answer: HeadResponse = self.get_json("/v1/log/head").await?;
        let state_path = self.home.trust_path(&self.base);
        let saved = self.home.load_trust(&self.base)?;
        let pins: NamespacePins = self.load_pins()?;
        let served_key = PublicKey::from_hex("registry log key", &answer.server_key)?;
        if let Some(saved) = &saved
            && saved.server_key != answer.server_key
        {
            let pinned = PublicKey::from_hex("pinned registry key", &saved.server_key)
                .map(|k| k.key_id())
                .unwrap_or_else(|_| saved.server_key.clone());
            return Err(Error::ServerKeyChanged {
                wanted: wanted.to_string(),
                registry: self.base.clone(),
                pinned,
                served: served_key.key_id(),
                state: state_path,
            });
        }
        let head = answer.head;
        let root = head.verify(&served_key)?;
        let age_secs = unix_now().saturating_sub(head.timestamp);
        if age_secs > self.max_head_age.as_secs() {
            return Err(Error::StaleTreeHead {
                wanted: wanted.to_string(),
                registry: self.base.clone(),
                age_secs,
                max_secs: self.max_head_age.as_secs(),
            });
        }
        if let Some(saved) = &saved {
            let old = &saved.head;
            let old_root = Digest::from_hex("saved tree head root", &old.root)?;
            if head.size < old.size {
                return Err(Error::LogRollback {
                    wanted: wanted.to_string(),
                    registry: self.base.clone(),
                    seen: old.size,
                    now: head.size,
                    state: state_path,
                });
            }
            if head.size == old.size && root != old_root {
                return Err(Error::LogFork {
                    wanted: wanted.to_string(),
                    registry: self.base.clone(),
                    reason: format!(
                        "two different trees of size {}: root {} before, {} now",
                        head.size, old.root, head.root
                    ),
                    state: state_path,
                });
            }
            if head.size > old.size {
                let proof: ConsistencyResponse = self
                    .get_json(&format!(
                        "/v1/log/consistency?from={}&to={}",
                        old.size, head.size
                    ))
                    .await?;
                let proof = parse_hashes(&proof.proof)?;
                if !merkle::verify_consistency(old.size, head.size, &old_root, &root, &proof) {
                    return Err(Error::LogFork {
                        wanted: wanted.to_string(),
                        registry: self.base.clone(),
                        reason: format!(
                            "its log of size {} does not extend the log of size {} seen before (the consistency proof fails)",
                            head.size, old.size
                        ),
                        state: state_path,
                    });
                }
            }
        }
        Ok(VerifiedHead {
            head,
            root,
            server_key: answer.server_key,
            namespaces: pins.namespaces,
            view: None,
        })
    }

    /// Steps 2 to 4 for the release described by `meta`.
    async fn verify_release(
        &self,
        head: &mut VerifiedHead,
        meta: &Release,
    ) -> Result<VerifiedRelease, Error> {
        let what = format!("{}@{}", meta.package, meta.version);
        let entry = self
            .fetch_entry(
                head,
                meta.log_index,
                &format!("the release record of {what}"),
            )
            .await?;
        let LogEntry::Release(record) = entry else {
            return Err(mismatch(
                meta,
                "log entry",
                &meta.log_index.to_string(),
                "not a release record",
            ));
        };
        if record.package != meta.package || record.version != meta.version {
            return Err(mismatch(
                meta,
                "log entry",
                &meta.log_index.to_string(),
                &format!("a record of {}@{}", record.package, record.version),
            ));
        }
        let verified = record.verify()?;
        if meta.sha256 != record.sha256 {
            return Err(mismatch(meta, "sha256", &meta.sha256, &record.sha256));
        }
        if meta.size != record.size {
            return Err(mismatch(
                meta,
                "size",
                &meta.size.to_string(),
                &record.size.to_string(),
            ));
        }

        // Step 4: namespace ownership.
        let namespace = verified.package.namespace().to_string();
        let not_owner = |owner: String| Error::NotNamespaceOwner {
            package: meta.package.clone(),
            version: meta.version.clone(),
            namespace: namespace.clone(),
            key_id: verified.key.key_id(),
            owner,
        };
        let ns: NamespaceResponse = self
            .get_json(&format!("/v1/namespaces/{namespace}"))
            .await?;
        let history = if ns.history.is_empty() {
            vec![ns.claim_index]
        } else {
            ns.history.clone()
        };
        if history.first() != Some(&ns.claim_index) || history.windows(2).any(|w| w[0] >= w[1]) {
            return Err(not_owner(format!(
                "nobody: the registry's key history for `{namespace}` is not in log order"
            )));
        }
        // Replay the claim and the key changes before the release; verify each is logged.
        let mut keys: Vec<PublicKey> = Vec::new();
        let mut claimed_by = None;
        for &index in history.iter().take_while(|&&i| i < meta.log_index) {
            let entry = self
                .fetch_entry(
                    head,
                    index,
                    &format!("a key record of namespace `{namespace}`"),
                )
                .await?;
            match (entry, claimed_by) {
                (LogEntry::Claim(claim), None) if claim.namespace == namespace => {
                    let owner = claim.verify()?;
                    claimed_by = Some(owner);
                    keys.push(owner);
                }
                (LogEntry::KeyGrant(r), Some(_)) if r.namespace == namespace => {
                    let (signer, subject) = r.verify(KeyChange::Grant)?;
                    if keys.contains(&signer) && !keys.contains(&subject) {
                        keys.push(subject);
                    }
                }
                (LogEntry::KeyRevoke(r), Some(_)) if r.namespace == namespace => {
                    let (signer, subject) = r.verify(KeyChange::Revoke)?;
                    if keys.contains(&signer) {
                        keys.retain(|k| *k != subject);
                    }
                }
                _ => {
                    return Err(not_owner(format!(
                        "nobody: log entry {index} is not a key record of `{namespace}`"
                    )));
                }
            }
        }
        let Some(owner) = claimed_by else {
            return Err(not_owner(format!(
                "nobody: the claim the registry points to (entry {}) is not before the release",
                ns.claim_index
            )));
        };
        if let Some(pinned) = head.namespaces.get(&namespace)
            && *pinned != owner.to_hex()
        {
            let pinned_id = PublicKey::from_hex("pinned owner", pinned)
                .map(|k| k.key_id())
                .unwrap_or_else(|_| pinned.clone());
            return Err(not_owner(format!("{pinned_id}, as this client saw before")));
        }
        // The history must be every key record of the namespace that the log holds before
        // the release: one left out would change who may sign it.
        let logged: Vec<(u64, &'static str)> = self
            .log_view(head)
            .await?
            .key_records
            .get(&namespace)
            .cloned()
            .unwrap_or_default();
        if let Some(&(index, kind)) = logged
            .iter()
            .find(|(i, _)| *i < meta.log_index && !history.contains(i))
        {
            return Err(Error::HiddenKeyChange {
                package: meta.package.clone(),
                version: meta.version.clone(),
                namespace,
                index,
                kind,
            });
        }
        if !keys.contains(&verified.key) {
            let ids: Vec<String> = keys.iter().map(PublicKey::key_id).collect();
            return Err(not_owner(if ids.is_empty() {
                "no key".to_string()
            } else {
                ids.join(", ")
            }));
        }
        head.namespaces.insert(namespace, owner.to_hex());
        Ok(verified)
    }

    /// Step 2 for one entry: fetch it with its audit path and check it against the head.
    async fn fetch_entry(
        &self,
        head: &VerifiedHead,
        index: u64,
        what: &str,
    ) -> Result<LogEntry, Error> {
        let size = head.head.size;
        if index >= size {
            return Err(Error::NotInLog {
                what: what.to_string(),
                size,
            });
        }
        let answer: EntryResponse = self
            .get_json(&format!("/v1/log/entries/{index}?size={size}"))
            .await?;
        let proof = parse_hashes(&answer.proof)?;
        let leaf = merkle::leaf_hash(answer.entry.as_bytes());
        if answer.index != index
            || answer.size != size
            || !merkle::verify_inclusion(index, size, &leaf, &proof, &head.root)
        {
            return Err(Error::NotInLog {
                what: what.to_string(),
                size,
            });
        }
        LogEntry::from_bytes(answer.entry.as_bytes())
    }

    /// Step 5: download the signed blob, refusing more bytes than signed or other bytes.
    async fn download(&self, verified: &VerifiedRelease) -> Result<Vec<u8>, Error> {
        let path = format!("/v1/blobs/sha256/{}", verified.sha256);
        let limit = usize::try_from(verified.size).unwrap_or(usize::MAX);
        let (status, body) = match self
            .send(Method::GET, &path, &[], Bytes::new(), limit)
            .await
        {
            Err(Error::BlobTooLarge { .. }) => {
                return Err(Error::BlobTooLarge {
                    package: verified.package.to_string(),
                    version: verified.version.to_string(),
                    size: verified.size,
                });
            }
            other => other?,
        };
        if !status.is_success() {
            return Err(self.http_error(&path, status, &body));
        }
        let actual = Digest::of(&body);
        if actual != verified.sha256 {
            return Err(Error::BlobDigestMismatch {
                package: verified.package.to_string(),
                version: verified.version.to_string(),
                expected: verified.sha256.to_hex(),
                actual: actual.to_hex(),
            });
        }
        Ok(body.to_vec())
    }

    fn load_pins(&self) -> Result<NamespacePins, Error> {
        let path = self.pins_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::BadFile {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NamespacePins::default()),
            Err(e) => Err(Error::io("could not read", path, e)),
        }
    }

    fn pins_path(&self) -> PathBuf {
        self.home
            .trust_path(&self.base)
            .with_file_name("namespaces.json")
    }

    fn save_head(&self, head: &VerifiedHead) -> Result<(), Error> {
        let pins = NamespacePins {
            namespaces: head.namespaces.clone(),
        };
        crate::home::write_atomically(
            &self.pins_path(),
            &serde_json::to_vec_pretty(&pins).unwrap_or_default(),
        )?;
        self.home.save_trust(
            &self.base,
            &TrustState {
                server_key: head.server_key.clone(),
                head: head.head.clone(),
            },
        )
    }

    // ---- HTTP -------------------------------------------------------------------

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, Error> {
        let (status, body) = self
            .send_small(Method::GET, path, &[], Bytes::new())
            .await?;
        self.parse_ok(path, status, &body)
    }

    /// [`Self::send`] for answers capped at [`MAX_JSON_BYTES`].
    async fn send_small(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Error> {
        match self.send(method, path, headers, body, MAX_JSON_BYTES).await {
            Err(Error::BlobTooLarge { .. }) => Err(Error::BadResponse {
                url: format!("{}{path}", self.base),
                reason: format!("the answer is larger than {MAX_JSON_BYTES} bytes"),
            }),
            other => other,
        }
    }

    fn parse_ok<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        status: StatusCode,
        body: &[u8],
    ) -> Result<T, Error> {
        if !status.is_success() {
            return Err(self.http_error(path, status, body));
        }
        serde_json::from_slice(body).map_err(|e| Error::BadResponse {
            url: format!("{}{path}", self.base),
            reason: e.to_string(),
        })
    }

    fn http_error(&self, path: &str, status: StatusCode, body: &[u8]) -> Error {
        let message = serde_json::from_slice::<ErrorBody>(body)
            .map(|b| b.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned());
        if status == StatusCode::NOT_FOUND {
            return Error::NotFound {
                what: format!("{message} in registry {}", self.base),
            };
        }
        Error::Http {
            url: format!("{}{path}", self.base),
            status: status.as_u16(),
            message,
        }
    }

    /// One request; the status and at most `limit` bytes of body (more is an error).
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), Error> {
        let url = format!("{}{path}", self.base);
        let network = |reason: String| Error::Network {
            url: url.clone(),
            reason,
        };
        let mut builder = Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| network(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| network(error_chain(&e)))?;
            let status = response.status();
            let mut incoming = response.into_body();
            let mut out = Vec::new();
            while let Some(frame) = incoming.frame().await {
                let frame = frame.map_err(|e| network(e.to_string()))?;
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(Error::BlobTooLarge {
                            package: url.clone(),
                            version: String::new(),
                            size: limit as u64,
                        });
                    }
                    out.extend_from_slice(&data);
                }
            }
            Ok((status, Bytes::from(out)))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| network(format!("no complete answer within {:?}", self.timeout)))?
    }
}

/// The path of the cached component `lock` pins for `package`, after checking that the
/// file's sha256 is the locked one. Offline: no registry is contacted. This is what
/// `atoll up` calls for `source = { package = ..., version = ... }`.
pub fn resolve_locked(
    home: &AtollHome,
    lock_path: &std::path::Path,
    lock: &Lockfile,
    package: &PackageName,
) -> Result<PathBuf, Error> {
    let locked = lock.get(package).ok_or_else(|| Error::NotLocked {
        package: package.to_string(),
        path: lock_path.to_path_buf(),
    })?;
    let digest = locked.digest()?;
    home.verified_blob(package.as_str(), &digest)?
        .ok_or_else(|| Error::NotCached {
            package: package.to_string(),
            version: locked.version.clone(),
            path: home.blob_path(&digest),
        })
}

fn mismatch(meta: &Release, field: &str, metadata: &str, signed: &str) -> Error {
    Error::MetadataMismatch {
        package: meta.package.clone(),
        version: meta.version.clone(),
        field: field.to_string(),
        metadata: metadata.to_string(),
        signed: signed.to_string(),
    }
}

fn available(versions: &[(semver::Version, bool)]) -> String {
    let mut live: Vec<&semver::Version> = versions
        .iter()
        .filter(|(_, yanked)| !yanked)
        .map(|(v, _)| v)
        .collect();
    live.sort();
    let list: Vec<String> = live.iter().map(|v| v.to_string()).collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

fn parse_hashes(hexes: &[String]) -> Result<Vec<Digest>, Error> {
    hexes
        .iter()
        .map(|h| Digest::from_hex("proof hash", h))
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
