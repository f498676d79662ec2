//! End to end: a real registry server on 127.0.0.1 (the same `Server` that
//! `atoll registry serve` runs, on its own thread and runtime), real HTTP, real files,
//! redb and a real PostgreSQL, and the verifying client.
//!
//! The attack tests play a malicious or broken server by stopping it, changing its data
//! directly (blob files, or the store, which applies no policy), and starting it again on
//! the same port. Each asserts the error code, that the message names the package, and
//! that the client wrote nothing (its home and the project are byte-identical).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atoll_registry::client::{Client, resolve_locked};
use atoll_registry::log::{ClaimRecord, LogEntry, ReleaseRecord};
use atoll_registry::resolve::PackageSpec;
use atoll_registry::server::{Database, Server, ServerConfig};
use atoll_registry::sign::KeyPair;
use atoll_registry::store::{Commit, Namespace, RedbStore, Release, Store};
use atoll_registry::wit::World;
use atoll_registry::{AtollHome, Digest, Error, Lockfile, PackageName, lockfile};

// ---- harness ----------------------------------------------------------------------

/// A registry server running on its own thread. Dropping it stops it.
struct TestServer {
    addr: SocketAddr,
    data: PathBuf,
    config: ServerConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    fn start(data: &Path) -> Self {
        Self::start_with(
            data,
            Database::Embedded,
            "127.0.0.1:0".parse().expect("addr"),
        )
    }

    fn start_with(data: &Path, database: Database, listen: SocketAddr) -> Self {
        let mut config = ServerConfig::new(listen, data);
        config.database = database;
        Self::start_config(config)
    }

    fn start_config(config: ServerConfig) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let data = config.data_dir.clone();
        let kept = config.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let server = match Server::bind(config).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = addr_tx.send(server.local_addr().map_err(|e| e.to_string()));
                let _ = server
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server thread answers")
            .expect("server starts");
        Self {
            addr,
            data,
            config: kept,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop; the data dir (and database) is free when this returns.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stop and open the store directly (drop it, then [`Self::restart`]).
    fn stop_and_open_store(&mut self) -> Store {
        self.stop();
        Store::Redb(RedbStore::open(&self.data).expect("open store"))
    }

    fn restart(&mut self) {
        self.stop();
        let mut config = self.config.clone();
        config.listen = self.addr;
        *self = Self::start_config(config);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A user: a home directory and a project directory.
struct User {
    _dir: tempfile::TempDir,
    home: AtollHome,
    home_dir: PathBuf,
    project: PathBuf,
}

impl User {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let home_dir = dir.path().join("home");
        let project = dir.path().join("app");
        std::fs::create_dir_all(&project).expect("mkdir");
        Self {
            home: AtollHome::single(&home_dir),
            home_dir,
            project,
            _dir: dir,
        }
    }

    fn client(&self, url: &str) -> Client {
        let mut client = Client::new(url, self.home.clone()).expect("client");
        client.set_timeout(Duration::from_secs(20));
        client
    }

    fn lock_path(&self) -> PathBuf {
        lockfile::lockfile_path(&self.project)
    }

    /// `atoll add`: verify, cache, and write the lockfile.
    async fn add(&self, url: &str, spec: &str) -> Result<atoll_registry::client::Added, Error> {
        let spec = PackageSpec::parse(spec)?;
        let added = self.client(url).add(&spec).await?;
        let mut lock = Lockfile::load_or_default(&self.lock_path())?;
        lock.upsert(added.locked.clone());
        lock.save(&self.lock_path())?;
        Ok(added)
    }

    /// Every file under the home and the project, with its digest.
    fn snapshot(&self) -> BTreeMap<PathBuf, Digest> {
        let mut out = BTreeMap::new();
        for root in [&self.home_dir, &self.project] {
            walk(root, &mut out);
        }
        out
    }
}

fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Digest>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            let bytes = std::fs::read(&path).expect("read");
            out.insert(path, Digest::of(&bytes));
        }
    }
}

/// The hello component, made unique by a custom section naming `tag`.
fn component(tag: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(test_programs_artifacts::HELLO).expect("hello.wasm built");
    let name = b"atoll-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB size");
    bytes.push(0); // custom section id
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(&payload);
    bytes
}

fn pkg(name: &str) -> PackageName {
    PackageName::parse(name).expect("package name")
}

fn ver(v: &str) -> semver::Version {
    semver::Version::parse(v).expect("version")
}

async fn publish(url: &str, key: &KeyPair, name: &str, version: &str, tag: &str) -> u64 {
    let user = User::new();
    user.client(url)
        .publish(key, &pkg(name), &ver(version), component(tag))
        .await
        .expect("publish")
}

/// Assert `result` failed with `code`, its message names `package`, and `user` wrote
/// nothing since `before`.
fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, Error>,
    code: &str,
    package: &str,
    user: &User,
    before: &BTreeMap<PathBuf, Digest>,
) -> String {
    let err = result.expect_err("must be refused");
    let message = err.to_string();
    eprintln!("refused as expected: {message}");
    assert_eq!(err.code(), code, "{message}");
    assert!(
        message.contains(package),
        "message does not name {package}: {message}"
    );
    assert_eq!(
        &user.snapshot(),
        before,
        "the client wrote something: {message}"
    );
    message
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

// ---- the happy path ---------------------------------------------------------------

/// Publish, add, yank, search, pull and resolve against one server.
async fn round_trip(url: &str) {
    let publisher = User::new();
    let key = publisher.home.generate_key("default").expect("key");
    let client = publisher.client(url);
    for (v, tag) in [
        ("1.0.0", "a"),
        ("1.2.0", "b"),
        ("1.3.0", "c"),
        ("2.0.0", "d"),
    ] {
        client
            .publish(&key, &pkg("acme:auth"), &ver(v), component(tag))
            .await
            .expect("publish");
    }
    client
        .publish(&key, &pkg("acme:tools"), &ver("0.1.0"), component("tools"))
        .await
        .expect("publish a second package in the same namespace");

    let user = User::new();
    let added = user.add(url, "acme:auth@^1.2").await.expect("add");
    assert_eq!(added.locked.version, "1.3.0");
    assert_eq!(added.locked.publisher, key.public().key_id());
    assert_eq!(std::fs::read(&added.path).expect("cached"), component("c"));

    // A yanked version is no longer chosen, but stays fetchable for existing locks.
    client
        .yank(&key, &pkg("acme:auth"), &ver("1.3.0"))
        .await
        .expect("yank");
    let added = user
        .add(url, "acme:auth@^1.2")
        .await
        .expect("add after yank");
    assert_eq!(added.locked.version, "1.2.0");
    let err = user.add(url, "acme:auth@=1.3.0").await.expect_err("yanked");
    assert_eq!(err.code(), "no-matching-version", "{err}");
    assert!(
        err.to_string().contains("1.2.0, 2.0.0") || err.to_string().contains("1.0.0, 1.2.0"),
        "{err}"
    );

    // The lockfile names what was verified; a fresh machine pulls exactly that.
    let lock = Lockfile::load(&user.lock_path()).expect("lockfile");
    assert_eq!(lock.packages.len(), 1);
    let fresh = User::new();
    let mut seen = Vec::new();
    let pulled = fresh
        .client(url)
        .pull(&lock, &mut |p| seen.push(p.name.clone()))
        .await
        .expect("pull");
    assert_eq!(seen, ["acme:auth"]);
    assert!(pulled[0].downloaded);
    let path = resolve_locked(&fresh.home, &user.lock_path(), &lock, &pkg("acme:auth"))
        .expect("resolved offline");
    assert_eq!(std::fs::read(path).expect("read"), component("b"));
    let again = fresh
        .client(url)
        .pull(&lock, &mut |_| {})
        .await
        .expect("pull again");
    assert!(!again[0].downloaded, "already cached");
    assert_eq!(
        resolve_locked(&fresh.home, &user.lock_path(), &lock, &pkg("acme:none"))
            .map_err(|e| e.code()),
        Err("not-locked")
    );

    // Search by name, by export and by import; only the newest non-yanked release.
    let found = client
        .search(Some("auth"), None, None)
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].package.as_str(), found[0].version.as_str()),
        ("acme:auth", "2.0.0")
    );
    let exporting = client
        .search(None, Some("wasi:http/incoming-handler"), None)
        .await
        .expect("search exports");
    assert_eq!(exporting.len(), 2, "{exporting:?}");
    let importing = client
        .search(None, None, Some("wasi:http/types"))
        .await
        .expect("search imports");
    assert_eq!(importing.len(), 2);
    let none = client
        .search(None, Some("wasi:keyvalue/store"), None)
        .await
        .expect("search");
    assert!(none.is_empty());

    // A full audit replays the whole log.
    let report = client.audit().await.expect("honest log audits clean");
    assert_eq!(
        (
            report.size,
            report.n_namespaces,
            report.n_releases,
            report.n_yanks,
            report.n_key_changes
        ),
        (7, 1, 5, 1, 0)
    );

    // Another key cannot publish into the claimed namespace.
    let intruder = KeyPair::generate().expect("key");
    let err = client
        .publish(
            &intruder,
            &pkg("acme:evil"),
            &ver("1.0.0"),
            component("evil"),
        )
        .await
        .expect_err("namespace owned");
    assert!(err.to_string().contains("belongs to another key"), "{err}");
    // Bad uploads are refused with a reason.
    let err = client
        .publish(
            &key,
            &pkg("acme:notwasm"),
            &ver("1.0.0"),
            b"not wasm at all".to_vec(),
        )
        .await
        .expect_err("not a component");
    assert!(
        err.to_string().contains("not a WebAssembly component"),
        "{err}"
    );
}

#[tokio::test]
async fn round_trip_on_redb() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(data.path());
    round_trip(&server.url()).await;
}

#[tokio::test]
async fn round_trip_on_postgres() {
    let data = tempfile::tempdir().expect("tempdir");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let schema = format!("atoll_test_e2e_{}_{nanos}", std::process::id());
    let url = std::env::var("ATOLL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let database = Database::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    };
    let mut server =
        TestServer::start_with(data.path(), database, "127.0.0.1:0".parse().expect("addr"));
    round_trip(&server.url()).await;
    // The log survives a restart: a client that saw it before still accepts it.
    let user = User::new();
    user.add(&server.url(), "acme:tools").await.expect("add");
    server.restart();
    user.add(&server.url(), "acme:auth@^2")
        .await
        .expect("same log after restart");
    server.stop();
    let store = atoll_registry::store::PgStore::connect(&url, &schema)
        .await
        .expect("connect");
    store.drop_schema().await.expect("drop schema");
}

// ---- attacks ----------------------------------------------------------------------

#[tokio::test]
async fn attack_blob_altered_on_disk() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    let blob = data
        .path()
        .join("blobs/sha256")
        .join(Digest::of(&component("a")).to_hex());
    let mut bytes = std::fs::read(&blob).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&blob, bytes).expect("flip one bit");

    let user = User::new();
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&server.url(), "acme:auth@1").await,
        "blob-digest-mismatch",
        "acme:auth@1.0.0",
        &user,
        &before,
    );
    assert!(msg.contains("altered"), "{msg}");
}

/// The server appends a release signed by a key that does not own the namespace.
#[tokio::test]
async fn attack_signature_by_non_owner() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let owner = KeyPair::generate().expect("key");
    publish(&server.url(), &owner, "acme:auth", "1.0.0", "a").await;

    let intruder = KeyPair::generate().expect("key");
    let store = server.stop_and_open_store();
    forge_release(data.path(), &store, &intruder, "acme:auth", "2.0.0", false).await;
    drop(store);
    server.restart();

    let user = User::new();
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&server.url(), "acme:auth@2").await,
        "not-namespace-owner",
        "acme:auth@2.0.0",
        &user,
        &before,
    );
    assert!(msg.contains(&intruder.public().key_id()), "{msg}");
    assert!(msg.contains(&owner.public().key_id()), "{msg}");
}

/// Worse: the server also logs a claim by the intruder and points the namespace at it.
/// A client that saw the real owner before refuses.
#[tokio::test]
async fn attack_namespace_reclaimed_by_another_key() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let owner = KeyPair::generate().expect("key");
    publish(&server.url(), &owner, "acme:auth", "1.0.0", "a").await;
    let user = User::new();
    user.add(&server.url(), "acme:auth@1")
        .await
        .expect("honest add");

    let intruder = KeyPair::generate().expect("key");
    let store = server.stop_and_open_store();
    forge_release(data.path(), &store, &intruder, "acme:auth", "2.0.0", true).await;
    drop(store);
    server.restart();

    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&server.url(), "acme:auth@2").await,
        "not-namespace-owner",
        "acme:auth@2.0.0",
        &user,
        &before,
    );
    assert!(msg.contains("as this client saw before"), "{msg}");
    // A monitor auditing the whole log names the second claim.
    let err = User::new()
        .client(&server.url())
        .audit()
        .await
        .expect_err("second claim");
    assert_eq!(err.code(), "audit-failed");
    assert!(
        err.to_string()
            .contains("a second claim of namespace `acme`"),
        "{err}"
    );
}

/// What a malicious server does: append a release (and maybe a claim) signed by
/// `key`, bypassing the ownership check.
async fn forge_release(
    data: &Path,
    store: &Store,
    key: &KeyPair,
    name: &str,
    version: &str,
    reclaim: bool,
) {
    let bytes = component("forged");
    let digest = Digest::of(&bytes);
    std::fs::write(data.join("blobs/sha256").join(digest.to_hex()), &bytes).expect("blob");
    let package = pkg(name);
    let mut first_index = store.entries().await.expect("entries").len() as u64;
    if reclaim {
        let claim = ClaimRecord::sign(key, package.namespace(), unix_now()).expect("claim");
        store
            .commit(&Commit {
                first_index,
                entries: vec![LogEntry::Claim(claim).to_bytes()],
                namespace: None,
                release: None,
            })
            .await
            .expect("commit claim");
        first_index += 1;
    }
    let record = ReleaseRecord::sign(
        key,
        &package,
        &ver(version),
        &digest,
        bytes.len() as u64,
        unix_now(),
    );
    store
        .commit(&Commit {
            first_index,
            entries: vec![LogEntry::Release(record).to_bytes()],
            namespace: None,
            release: Some(Release {
                package: name.into(),
                version: version.into(),
                sha256: digest.to_hex(),
                size: bytes.len() as u64,
                publisher: key.public().key_id(),
                log_index: first_index,
                yanked: false,
                world: World::default(),
            }),
        })
        .await
        .expect("commit release");
    if reclaim {
        // Point the namespace at the intruder's claim (the entry just before).
        store
            .commit(&Commit {
                first_index: first_index + 1,
                entries: vec![],
                namespace: Some(Namespace::claimed(
                    package.namespace(),
                    &key.public().to_hex(),
                    first_index - 1,
                )),
                release: None,
            })
            .await
            .expect("repoint namespace");
    }
}

/// The metadata row says another sha256 (and the server holds that blob), while the
/// signed log record says the original.
#[tokio::test]
async fn attack_metadata_differs_from_signed_record() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    {
        let store = server.stop_and_open_store();
        let data = data.path();
        {
            let evil = component("evil");
            let evil_digest = Digest::of(&evil);
            std::fs::write(data.join("blobs/sha256").join(evil_digest.to_hex()), &evil)
                .expect("blob");
            let mut release = store
                .release("acme:auth", "1.0.0")
                .await
                .expect("get")
                .expect("published");
            release.sha256 = evil_digest.to_hex();
            release.size = evil.len() as u64;
            rewrite_release(&store, release).await;
        }
    }
    server.restart();

    let user = User::new();
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&server.url(), "acme:auth@1").await,
        "metadata-mismatch",
        "acme:auth@1.0.0",
        &user,
        &before,
    );
    assert!(msg.contains("sha256"), "{msg}");
}

/// Mix and match: the metadata of 1.1.0 points at the signed record of 1.0.0 (and
/// carries its digest), so the client would install 1.0.0's bytes as 1.1.0.
#[tokio::test]
async fn attack_metadata_points_at_another_versions_record() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    publish(&server.url(), &key, "acme:auth", "1.1.0", "b").await;
    {
        let store = server.stop_and_open_store();
        let old = store
            .release("acme:auth", "1.0.0")
            .await
            .expect("get")
            .expect("published");
        let mut new = store
            .release("acme:auth", "1.1.0")
            .await
            .expect("get")
            .expect("published");
        new.log_index = old.log_index;
        new.sha256 = old.sha256;
        new.size = old.size;
        let first_index = store.entries().await.expect("entries").len() as u64;
        store
            .commit(&Commit {
                first_index,
                entries: vec![],
                namespace: None,
                release: Some(new),
            })
            .await
            .expect("rewrite row");
    }
    server.restart();
    let user = User::new();
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&server.url(), "acme:auth@=1.1.0").await,
        "metadata-mismatch",
        "acme:auth@1.1.0",
        &user,
        &before,
    );
    assert!(msg.contains("a record of acme:auth@1.0.0"), "{msg}");
}

/// The blob on the server is longer than the signed size: the client stops reading at
/// the signed size instead of downloading without bound.
#[tokio::test]
async fn attack_blob_larger_than_signed() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    let blob = data
        .path()
        .join("blobs/sha256")
        .join(Digest::of(&component("a")).to_hex());
    let mut bytes = std::fs::read(&blob).expect("blob");
    bytes.extend(std::iter::repeat_n(0u8, 4 * 1024 * 1024));
    std::fs::write(&blob, bytes).expect("grow");
    let user = User::new();
    let before = user.snapshot();
    assert_refused(
        user.add(&server.url(), "acme:auth@1").await,
        "blob-too-large",
        "acme:auth@1.0.0",
        &user,
        &before,
    );
}

/// The server's data is restored from an older backup after the client saw more.
#[tokio::test]
async fn attack_rollback_to_older_log() {
    let data = tempfile::tempdir().expect("tempdir");
    let backup = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    server.stop();
    copy_dir(data.path(), backup.path());
    server.restart();
    publish(&server.url(), &key, "acme:auth", "1.1.0", "b").await;
    let user = User::new();
    user.add(&server.url(), "acme:auth@^1")
        .await
        .expect("sees 1.1.0");

    server.stop();
    replace_dir(data.path(), backup.path());
    server.restart();
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&server.url(), "acme:auth@^1").await,
        "log-rollback",
        &server.url(),
        &user,
        &before,
    );
    assert!(
        msg.contains("now has 2 entries but this client saw 3"),
        "{msg}"
    );
    let lock = Lockfile::load(&user.lock_path()).expect("lock");
    let before = user.snapshot();
    let err = user.client(&server.url()).pull(&lock, &mut |_| {}).await;
    assert_refused(
        err,
        "log-rollback",
        "pulling acme:auth@1.1.0",
        &user,
        &before,
    );
}

/// The server shows a different tree of the same size, then a longer tree that does
/// not extend what the client saw.
#[tokio::test]
async fn attack_forked_log() {
    let data = tempfile::tempdir().expect("tempdir");
    let backup = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    server.stop();
    copy_dir(data.path(), backup.path());
    server.restart();
    publish(&server.url(), &key, "acme:auth", "1.1.0", "b").await;
    let user = User::new();
    user.add(&server.url(), "acme:auth@^1")
        .await
        .expect("sees tree A");

    // Fork: the same first entries, then a different 1.1.0.
    server.stop();
    replace_dir(data.path(), backup.path());
    server.restart();
    publish(&server.url(), &key, "acme:auth", "1.1.0", "b-prime").await;
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&server.url(), "acme:auth@^1").await,
        "log-fork",
        "acme:auth@1.1.0",
        &user,
        &before,
    );
    assert!(msg.contains("two different trees of size 3"), "{msg}");

    // The forked log grows; it still does not extend the tree the client saw.
    publish(&server.url(), &key, "acme:auth", "1.2.0", "c").await;
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&server.url(), "acme:auth@^1").await,
        "log-fork",
        "acme:auth@1.2.0",
        &user,
        &before,
    );
    assert!(msg.contains("does not extend the log of size 3"), "{msg}");
}

/// Key rotation: the owner grants a second key, which revokes the first. Releases the
/// old key signed before its revocation stay valid; later ones are refused by the
/// server, and by the client when a malicious server logs one anyway.
#[tokio::test]
async fn key_rotation() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let url = server.url();
    let old = KeyPair::generate().expect("key");
    let new = KeyPair::generate().expect("key");
    let publisher = User::new();
    let client = publisher.client(&url);
    publish(&url, &old, "acme:auth", "1.0.0", "a").await;

    // Before a grant, the new key is refused; a stranger cannot grant itself.
    let err = client
        .publish(&new, &pkg("acme:auth"), &ver("1.1.0"), component("b"))
        .await
        .expect_err("not yet granted");
    assert!(err.to_string().contains("belongs to another key"), "{err}");
    let err = client
        .grant_key(&new, "acme", &new.public())
        .await
        .expect_err("self-grant");
    assert!(err.to_string().contains("not a current key"), "{err}");

    client
        .grant_key(&old, "acme", &new.public())
        .await
        .expect("grant");
    publish(&url, &new, "acme:auth", "1.1.0", "b").await;
    client
        .revoke_key(&new, "acme", &old.public())
        .await
        .expect("revoke old");
    let err = client
        .revoke_key(&new, "acme", &new.public())
        .await
        .expect_err("last key");
    assert!(err.to_string().contains("last key"), "{err}");
    let err = client
        .publish(&old, &pkg("acme:auth"), &ver("1.2.0"), component("c"))
        .await
        .expect_err("revoked");
    assert!(err.to_string().contains("belongs to another key"), "{err}");

    let user = User::new();
    let added = user
        .add(&url, "acme:auth@=1.0.0")
        .await
        .expect("signed before revocation");
    assert_eq!(added.locked.publisher, old.public().key_id());
    let added = user
        .add(&url, "acme:auth@^1")
        .await
        .expect("signed by the granted key");
    assert_eq!(added.locked.publisher, new.public().key_id());

    // A malicious server logs a release by the revoked key.
    let store = server.stop_and_open_store();
    forge_release(data.path(), &store, &old, "acme:auth", "1.3.0", false).await;
    drop(store);
    server.restart();
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&url, "acme:auth@^1").await,
        "not-namespace-owner",
        "acme:auth@1.3.0",
        &user,
        &before,
    );
    assert!(msg.contains(&old.public().key_id()), "{msg}");
}

/// A server that hides a revocation from a namespace's key history (and logs a release
/// by the revoked key): the client replays the whole log, hashed into the signed root,
/// finds the key record the history leaves out, and refuses; a full audit names it too.
#[tokio::test]
async fn attack_hidden_key_revocation() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let url = server.url();
    let old = KeyPair::generate().expect("key");
    let new = KeyPair::generate().expect("key");
    publish(&url, &old, "acme:auth", "1.0.0", "a").await;
    let publisher = User::new();
    let client = publisher.client(&url);
    client
        .grant_key(&old, "acme", &new.public())
        .await
        .expect("grant");
    client
        .revoke_key(&new, "acme", &old.public())
        .await
        .expect("revoke");
    assert_eq!(client.audit().await.expect("clean").n_key_changes, 2);

    let store = server.stop_and_open_store();
    forge_release(data.path(), &store, &old, "acme:auth", "1.1.0", false).await;
    let mut ns = store
        .namespace("acme")
        .await
        .expect("get")
        .expect("claimed");
    let revoke_index = ns.history.pop().expect("the revocation");
    ns.keys.push(old.public().to_hex());
    let first_index = store.entries().await.expect("entries").len() as u64;
    store
        .commit(&Commit {
            first_index,
            entries: vec![],
            namespace: Some(ns),
            release: None,
        })
        .await
        .expect("hide the revocation");
    drop(store);
    server.restart();

    let user = User::new();
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&url, "acme:auth@=1.1.0").await,
        "hidden-key-change",
        "acme:auth@1.1.0",
        &user,
        &before,
    );
    assert!(
        msg.contains(&format!(
            "log entry {revoke_index} (a key revocation in namespace `acme`)"
        )),
        "{msg}"
    );
    // The release from before the revocation is still fine: its history is complete.
    user.add(&url, "acme:auth@=1.0.0")
        .await
        .expect("a release signed before the revocation resolves");

    let err = User::new().client(&url).audit().await.expect_err("caught");
    assert_eq!(err.code(), "audit-failed");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("log entry {}", revoke_index + 1)),
        "{msg}"
    );
    assert!(msg.contains("acme:auth@1.1.0 is signed by"), "{msg}");
}

/// Two releases, the newer one yanked by its publisher (a signed, logged yank); the
/// server then lists it as available again. `add` would pick the yanked version; the
/// client finds the signed yank in the log and refuses.
#[tokio::test]
async fn attack_hidden_yank() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let url = server.url();
    let key = KeyPair::generate().expect("key");
    publish(&url, &key, "acme:auth", "1.0.0", "a").await;
    publish(&url, &key, "acme:auth", "1.1.0", "b").await;
    let yank_index = User::new()
        .client(&url)
        .yank(&key, &pkg("acme:auth"), &ver("1.1.0"))
        .await
        .expect("yank");
    // Honest: the yanked version is skipped.
    let honest = User::new();
    let added = honest.add(&url, "acme:auth@^1").await.expect("resolves");
    assert_eq!(added.locked.version, "1.0.0");

    set_yanked(&mut server, "acme:auth", "1.1.0", false).await;
    let user = User::new();
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&url, "acme:auth@^1").await,
        "hidden-yank",
        "acme:auth@1.1.0",
        &user,
        &before,
    );
    assert!(msg.contains(&format!("log entry {yank_index}")), "{msg}");
}

/// The server marks a version yanked that its publisher never yanked (hiding it from
/// every new resolve): no signed yank is in the log, so the client refuses the listing.
#[tokio::test]
async fn attack_invented_yank() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let url = server.url();
    let key = KeyPair::generate().expect("key");
    publish(&url, &key, "acme:auth", "1.0.0", "a").await;
    publish(&url, &key, "acme:auth", "1.1.0", "b").await;
    set_yanked(&mut server, "acme:auth", "1.1.0", true).await;
    let user = User::new();
    let before = user.snapshot();
    let msg = assert_refused(
        user.add(&url, "acme:auth@^1").await,
        "unlogged-yank",
        "acme:auth@1.1.0",
        &user,
        &before,
    );
    assert!(msg.contains("no yank signed by the publisher"), "{msg}");
}

/// Rewrite a release row's `yanked` behind the server's back (the store applies no
/// policy), then start the server again.
async fn set_yanked(server: &mut TestServer, package: &str, version: &str, yanked: bool) {
    {
        let store = server.stop_and_open_store();
        let mut release = store
            .release(package, version)
            .await
            .expect("get")
            .expect("published");
        release.yanked = yanked;
        rewrite_release(&store, release).await;
    }
    server.restart();
}

/// Replace a release row without logging anything.
async fn rewrite_release(store: &Store, release: Release) {
    let first_index = store.entries().await.expect("entries").len() as u64;
    store
        .commit(&Commit {
            first_index,
            entries: vec![],
            namespace: None,
            release: Some(release),
        })
        .await
        .expect("rewrite row");
}

#[tokio::test]
async fn attack_republish_existing_version() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    let user = User::new();
    let client = user.client(&server.url());
    let err = client
        .publish(&key, &pkg("acme:auth"), &ver("1.0.0"), component("other"))
        .await
        .expect_err("immutable");
    assert_eq!(err.code(), "version-exists");
    assert!(err.to_string().contains("acme:auth@1.0.0"), "{err}");
    // The same bytes again are refused too, and the original is still what is served.
    let err = client
        .publish(&key, &pkg("acme:auth"), &ver("1.0.0"), component("a"))
        .await
        .expect_err("immutable");
    assert_eq!(err.code(), "version-exists");
    let added = user
        .add(&server.url(), "acme:auth@=1.0.0")
        .await
        .expect("add");
    assert_eq!(std::fs::read(added.path).expect("read"), component("a"));
}

#[tokio::test]
async fn attack_lockfile_hash_mismatch() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    let user = User::new();
    user.add(&server.url(), "acme:auth@1").await.expect("add");

    // Someone edits atoll.lock to another digest; a fresh machine pulls it.
    let mut lock = Lockfile::load(&user.lock_path()).expect("lock");
    lock.packages[0].sha256 = Digest::of(b"something else").to_hex();
    lock.save(&user.lock_path()).expect("save");
    let fresh = User::new();
    std::fs::create_dir_all(&fresh.project).expect("mkdir");
    std::fs::copy(user.lock_path(), fresh.lock_path()).expect("copy lock");
    let before = fresh.snapshot();
    let msg = assert_refused(
        fresh.client(&server.url()).pull(&lock, &mut |_| {}).await,
        "lockfile-mismatch",
        "acme:auth@1.0.0",
        &fresh,
        &before,
    );
    assert!(msg.contains("atoll.lock says sha256"), "{msg}");

    // Offline, the edited lockfile does not resolve to the cached component either.
    let err = resolve_locked(&user.home, &user.lock_path(), &lock, &pkg("acme:auth"))
        .expect_err("not cached under the edited digest");
    assert_eq!(err.code(), "not-cached");
    // And a cached component altered on disk is caught before use.
    let honest = Lockfile::load(&fresh.lock_path()).expect("lock");
    assert_eq!(honest, lock);
    let original = Digest::of(&component("a"));
    let cached = user.home.blob_path(&original);
    std::fs::write(&cached, b"tampered").expect("tamper cache");
    lock.packages[0].sha256 = original.to_hex();
    let err = resolve_locked(&user.home, &user.lock_path(), &lock, &pkg("acme:auth"))
        .expect_err("cache tampered");
    assert_eq!(err.code(), "cached-blob-mismatch");
    assert!(err.to_string().contains("acme:auth"), "{err}");
}

/// A different server key at the same address (a new server, or an impostor).
#[tokio::test]
async fn attack_server_key_replaced() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    let user = User::new();
    user.add(&server.url(), "acme:auth@1").await.expect("add");
    server.stop();
    std::fs::remove_file(data.path().join("server.key")).expect("remove key");
    server.restart();
    let before = user.snapshot();
    assert_refused(
        user.add(&server.url(), "acme:auth@1").await,
        "server-key-changed",
        "acme:auth@1.0.0",
        &user,
        &before,
    );
}

/// Racing publishers: of four concurrent publishes of one version exactly one wins; four
/// of different versions all land, and a client verifies every one.
#[tokio::test]
async fn concurrent_publishes_are_serialized() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(data.path());
    let url = server.url();
    let key = KeyPair::generate().expect("key");
    publish(&url, &key, "acme:auth", "0.1.0", "claim").await;
    let publisher = User::new();
    let client = std::sync::Arc::new(publisher.client(&url));
    let key = std::sync::Arc::new(key);
    let mut same = tokio::task::JoinSet::new();
    for i in 0..4 {
        let (client, key) = (client.clone(), key.clone());
        same.spawn(async move {
            client
                .publish(
                    &key,
                    &pkg("acme:auth"),
                    &ver("1.0.0"),
                    component(&format!("race{i}")),
                )
                .await
                .map_err(|e| e.code())
        });
    }
    let results = same.join_all().await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || *r == Err("version-exists")),
        "{results:?}"
    );

    let mut different = tokio::task::JoinSet::new();
    for i in 0..4 {
        let (client, key) = (client.clone(), key.clone());
        different.spawn(async move {
            client
                .publish(
                    &key,
                    &pkg("acme:auth"),
                    &ver(&format!("2.{i}.0")),
                    component(&format!("v{i}")),
                )
                .await
                .map_err(|e| e.to_string())
        });
    }
    let mut indices: Vec<u64> = different
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("publish"))
        .collect();
    indices.sort();
    assert_eq!(
        indices,
        [3, 4, 5, 6],
        "claim, 0.1.0, 1.0.0, then one entry each"
    );
    let user = User::new();
    for i in 0..4 {
        let added = user
            .add(&url, &format!("acme:auth@=2.{i}.0"))
            .await
            .expect("add");
        assert_eq!(
            std::fs::read(added.path).expect("read"),
            component(&format!("v{i}"))
        );
    }
}

/// A slow upload gets 408 after the upload timeout, a client that never finishes its
/// request head is cut off after the header timeout, and others are served meanwhile.
#[tokio::test]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"), data.path());
    config.upload_timeout = Duration::from_secs(1);
    config.header_timeout = Duration::from_secs(1);
    let server = TestServer::start_config(config);
    let key = KeyPair::generate().expect("key");

    // Upload: a valid signed record, then half the body, then nothing.
    let bytes = component("slow");
    let record = ReleaseRecord::sign(
        &key,
        &pkg("acme:slow"),
        &ver("1.0.0"),
        &Digest::of(&bytes),
        bytes.len() as u64,
        unix_now(),
    );
    let claim = ClaimRecord::sign(&key, "acme", unix_now()).expect("claim");
    let mut slow = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let head = format!(
        "PUT /v1/packages/acme:slow/1.0.0 HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\natoll-release: {}\r\natoll-claim: {}\r\n\r\n",
        bytes.len(),
        serde_json::to_string(&record).expect("json"),
        serde_json::to_string(&claim).expect("json"),
    );
    slow.write_all(head.as_bytes()).await.expect("head");
    slow.write_all(&bytes[..bytes.len() / 2])
        .await
        .expect("half");
    // A stalled request head on another connection.
    let mut stalled = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    stalled
        .write_all(b"GET /v1/log/head HTTP/1.1\r\nhost:")
        .await
        .expect("partial");

    // Meanwhile the registry serves others.
    publish(&server.url(), &key, "acme:fast", "1.0.0", "fast").await;

    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer))
        .await
        .expect("the server answers the slow upload")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not finish within 1 s"), "{answer}");
    // The stalled connection ends (EOF or a reset, either is fine) within the timeout.
    let mut rest = Vec::new();
    let _eof_or_reset =
        tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut rest))
            .await
            .expect("the server closes the stalled connection");
    let user = User::new();
    let err = user
        .add(&server.url(), "acme:slow")
        .await
        .expect_err("never published");
    assert_eq!(err.code(), "not-found", "{err}");
}

/// Freeze: a front for the registry replays a tree head it captured earlier (validly
/// signed, but old), to keep the client from seeing newer entries.
#[tokio::test]
async fn attack_frozen_tree_head() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(data.path());
    let key = KeyPair::generate().expect("key");
    publish(&server.url(), &key, "acme:auth", "1.0.0", "a").await;
    let user = User::new();
    user.add(&server.url(), "acme:auth@1").await.expect("add");
    let lock = Lockfile::load(&user.lock_path()).expect("lock");

    let stale = http_get_body(server.addr, "/v1/log/head").await;
    let front = serve_always(stale).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    // The real server signs a fresh head: accepted with a 1 s limit.
    let mut client = user.client(&server.url());
    client.set_max_head_age(Duration::from_secs(1));
    client.pull(&lock, &mut |_| {}).await.expect("fresh head");
    // The front's head is 2 s old: refused.
    let fresh = User::new();
    let mut client = fresh.client(&format!("http://{front}"));
    client.set_max_head_age(Duration::from_secs(1));
    let before = fresh.snapshot();
    let msg = assert_refused(
        client.pull(&lock, &mut |_| {}).await,
        "stale-tree-head",
        "acme:auth@1.0.0",
        &fresh,
        &before,
    );
    assert!(msg.contains("freeze"), "{msg}");
}

/// The body of `GET path` from `addr`, over a plain socket.
async fn http_get_body(addr: SocketAddr, path: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    response[split + 4..].to_vec()
}

/// A server on 127.0.0.1 that answers every request with `body` (JSON, 200).
async fn serve_always(body: Vec<u8>) -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    addr
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn replace_dir(dir: &Path, with: &Path) {
    std::fs::remove_dir_all(dir).expect("remove");
    copy_dir(with, dir);
}
