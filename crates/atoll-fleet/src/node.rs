//! One fleet node: serves every app of the desired state on one port, and converges on
//! that state by itself.
//!
//! At start it loads the last desired state it knew from its state directory and serves
//! it, with or without the control plane. Then, whenever NATS is reachable, it watches
//! `atoll_apps` (current value of each key, then each change), re-reads every app every
//! `anti_entropy` (a missed event cannot leave it behind), stages what a deploy stages
//! (fetch, verify, compile, check against the other apps' routes; the result is kept in
//! memory), swaps the committed version in one step (requests in flight finish on the old
//! one), and puts its report every [`HEARTBEAT`](crate::control::HEARTBEAT) and at every
//! change. It never goes back to a lower epoch, and never unloads an app because the
//! control plane is gone: only a commit with no `current` removes one.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use atoll_capabilities::StoreConfig;
use atoll_runtime::{LiveApps, LoadedApp, Loader};
use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::FleetError;
use crate::bundle::StateDir;
use crate::control::{Control, ControlConfig, HEARTBEAT};
use crate::records::{AppState, NodeError, NodeReport, ServedVersion, now_ms, sha256_hex, short};

/// How a node runs.
pub struct NodeConfig {
    /// Its name in the control plane (unique in the fleet).
    pub name: String,
    /// The control plane.
    pub control: ControlConfig,
    /// The state directory (blobs, versions, the last desired state).
    pub state: StateDir,
    /// Loads apps (its engine's compile cache should be under the state directory).
    pub loader: Loader,
    /// The runtime config the loader has, to check that every key-value store an app
    /// uses lives in a server (Redis, PostgreSQL, NATS), never on the node.
    pub stores: BTreeMap<String, StoreConfig>,
    /// The HTTP address it serves on (reported).
    pub addr: SocketAddr,
    /// How often every app is re-read besides the watch.
    pub anti_entropy: Duration,
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    control_config: ControlConfig,
    state: StateDir,
    loader: Loader,
    stores: BTreeMap<String, StoreConfig>,
    addr: SocketAddr,
    anti_entropy: Duration,
    started_ms: u64,
    live: LiveApps,
    ready: Arc<AtomicBool>,
    /// Whether the node knows a desired state: from its state directory, or from one
    /// full pass over the control plane. A node with neither is not ready (an empty
    /// state directory does not mean "no apps").
    synced: AtomicBool,
    draining: AtomicBool,
    control: ArcSwapOption<Control>,
    changed: Notify,
    book: Mutex<Book>,
    /// Held while a report is put; `true` once the node deregistered (no report after).
    reporting: tokio::sync::Mutex<bool>,
    counters: Counters,
}

/// What happened since start, for the admin server's counters.
#[derive(Default)]
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
pub(crate) struct Counters {
    /// Versions swapped in (from the state directory or the control plane).
    pub(crate) swaps: AtomicU64,
    /// Failures to stage or load a version.
    pub(crate) failures: AtomicU64,
    /// Control-plane sessions opened (1 + reconnects).
    pub(crate) sessions: AtomicU64,
}

/// What the node serves and knows, under one lock (never held across an await).
#[derive(Default)]
struct Book {
    /// The desired state last seen: app -> (version, epoch).
    desired: BTreeMap<String, (String, u64)>,
    /// What is served, by app.
    served: BTreeMap<String, ServedVersion>,
    /// Compiled, not yet committed: app -> (version, app, fetch ms, compile ms, the
    /// revision of the desired state that staged it).
    staged: HashMap<String, (String, Arc<LoadedApp>, u64, u64, u64)>,
    /// The last failure, by app.
    errors: BTreeMap<String, NodeError>,
}

/// A version loaded beside what is served, not yet swapped in.
struct Prepared {
    app: Arc<LoadedApp>,
    fetch_ms: u64,
    compile_ms: u64,
}

impl Node {
    /// Start a node: serve what the state directory remembers (each app whose version is
    /// intact on disk), before any contact with the control plane.
    pub async fn start(config: NodeConfig) -> Self {
        let config_synced = config.state.knows_desired();
        let node = Self {
            inner: Arc::new(Inner {
                name: config.name,
                control_config: config.control,
                state: config.state,
                loader: config.loader,
                stores: config.stores,
                addr: config.addr,
                anti_entropy: config.anti_entropy,
                started_ms: now_ms(),
                live: LiveApps::default(),
                ready: Arc::new(AtomicBool::new(false)),
                synced: AtomicBool::new(config_synced),
                draining: AtomicBool::new(false),
                control: ArcSwapOption::empty(),
                changed: Notify::new(),
                book: Mutex::new(Book::default()),
                reporting: tokio::sync::Mutex::new(false),
                counters: Counters::default(),
            }),
        };
        let desired = node.inner.state.desired();
        node.book().desired = desired.clone();
        for (app, (version, epoch)) in desired {
            let t = Instant::now();
            match node.prepare_cached(&app, &version).await {
                Ok(p) => match node.swap(&app, &version, epoch, p) {
                    Ok(()) => tracing::info!(
                        app = %app,
                        "serving version {} from the state directory (loaded in {:.1?})",
                        short(&version),
                        t.elapsed()
                    ),
                    Err(e) => node.fail(&app, &version, &e),
                },
                Err(e) => {
                    tracing::info!(app = %app, "version {} is not usable from the state directory ({e}); waiting for the control plane", short(&version));
                }
            }
        }
        node.update_ready();
        node
    }

    /// The live set (what the HTTP and cron triggers serve).
    pub fn live(&self) -> &LiveApps {
        &self.inner.live
    }

    /// The readiness flag `/.atoll/ready` answers from.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        self.inner.ready.clone()
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner
            .book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ready once every app of the last known desired state is served (any version of
    /// it: a node loading the next version stays ready on the current one), and not
    /// draining. Independent of the control plane.
    fn update_ready(&self) {
        let ready = {
            let book = self.book();
            book.desired.keys().all(|a| book.served.contains_key(a))
        } && self.inner.synced.load(Ordering::Acquire)
            && !self.inner.draining.load(Ordering::Acquire);
        self.inner.ready.store(ready, Ordering::Release);
    }

    /// Whether a control-plane session is open now.
    pub fn connected(&self) -> bool {
        self.inner.control.load().is_some()
    }

    /// The desired state last seen: app -> (version, epoch).
    pub fn desired(&self) -> BTreeMap<String, (String, u64)> {
        self.book().desired.clone()
    }

    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// This node's report, as put in `atoll_nodes`.
    pub fn report(&self) -> NodeReport {
        let in_flight = self
            .inner
            .live
            .snapshot()
            .apps()
            .iter()
            .flat_map(|a| a.components().values())
            .map(|c| c.in_flight() as u64)
            .sum();
        let book = self.book();
        NodeReport {
            name: self.inner.name.clone(),
            addr: self.inner.addr.to_string(),
            atoll: env!("CARGO_PKG_VERSION").to_string(),
            started_ms: self.inner.started_ms,
            ready: self.inner.ready.load(Ordering::Acquire),
            draining: self.inner.draining.load(Ordering::Acquire),
            apps: book.served.clone(),
            staged: book
                .staged
                .iter()
                .map(|(a, (v, ..))| (a.clone(), v.clone()))
                .collect(),
            errors: book.errors.clone(),
            in_flight,
            rss_bytes: rss_bytes(),
        }
    }

    /// Follow the control plane until `stop` resolves: connect (retrying forever, in the
    /// background), then watch, reconcile and report; after a lost connection, start
    /// over (the watch is made anew and a full pass runs first).
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let url = self.inner.control_config.url.clone();
        let client = match async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .ping_interval(Duration::from_secs(5))
            .connection_timeout(Duration::from_secs(2))
            .event_callback(|event| async move {
                tracing::info!("control plane: {event}");
            })
            .connect(crate::control::servers(&url))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "control plane: cannot use --nats {url}: {e}; serving what this node has, without updates"
                );
                stop.await;
                return;
            }
        };
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        tokio::pin!(stop);
        let mut backoff = Duration::from_millis(250);
        loop {
            let session = async {
                let control = Control::open(client.clone(), &self.inner.control_config).await?;
                self.inner.control.store(Some(Arc::new(control.clone())));
                self.inner.counters.sessions.fetch_add(1, Ordering::Relaxed);
                tracing::info!("control plane: connected to {url}");
                self.inner.changed.notify_one();
                self.follow(&control).await
            };
            tokio::select! {
                r = session => {
                    self.inner.control.store(None);
                    if let Err(e) = r {
                        tracing::warn!("control plane: {e}; serving what this node has, retrying in {backoff:?}");
                    }
                }
                () = &mut stop => break,
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = &mut stop => break,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        heartbeat.abort();
    }

    /// Watch and reconcile on one control-plane session until it fails.
    async fn follow(&self, control: &Control) -> Result<(), FleetError> {
        let mut watch = control.watch_apps().await?;
        self.anti_entropy(control).await?;
        if !self.inner.synced.swap(true, Ordering::AcqRel) {
            let desired = self.book().desired.clone();
            // Remembered even when empty: a restart without NATS is then ready at once.
            let _ = self.inner.state.set_desired(&desired);
            self.update_ready();
            self.changed();
        }
        let mut pass = tokio::time::interval(self.inner.anti_entropy);
        pass.tick().await;
        let mut watch_errors = 0u32;
        loop {
            tokio::select! {
                entry = watch.next() => match entry {
                    Some(Ok(entry)) => {
                        watch_errors = 0;
                        let Some(app) = entry.key.strip_prefix("app.") else { continue };
                        match entry.operation {
                            async_nats::jetstream::kv::Operation::Put => {
                                match serde_json::from_slice::<AppState>(&entry.value) {
                                    Ok(state) => self.reconcile(control, app, &state, entry.revision).await,
                                    Err(e) => tracing::warn!(app = %app, "control plane: a malformed app state ({e}); ignored"),
                                }
                            }
                            // Deleting a key is not a commit: only `current: null` at a higher
                            // epoch removes an app.
                            _ => tracing::warn!(app = %app, "control plane: the app's desired state was deleted; still serving it (remove an app with a commit)"),
                        }
                    }
                    Some(Err(e)) => {
                        // The watch recreates its consumer on the next poll (after a missed
                        // heartbeat, say); keep polling, and give up only if it keeps failing.
                        watch_errors += 1;
                        tracing::warn!("control plane: watch: {e}");
                        if watch_errors > 5 {
                            return Err(FleetError::Store(format!("the watch keeps failing: {e}")));
                        }
                    }
                    None => return Err(FleetError::Store("the watch ended".into())),
                },
                _ = pass.tick() => self.anti_entropy(control).await?,
            }
        }
    }

    /// Re-read every app's desired state and reconcile each.
    async fn anti_entropy(&self, control: &Control) -> Result<(), FleetError> {
        for (app, entry) in control.all_apps().await? {
            self.reconcile(control, &app, &entry.state, entry.revision)
                .await;
        }
        Ok(())
    }

    /// Bring `app` to `state`: stage what is staged, swap in what is committed.
    /// `revision` is the state's revision in `atoll_apps` (a later write has a higher one).
    async fn reconcile(&self, control: &Control, app: &str, state: &AppState, revision: u64) {
        let (served, known_epoch) = {
            let book = self.book();
            (
                book.served.get(app).map(|s| s.version.clone()),
                book.desired.get(app).map_or(0, |(_, e)| *e),
            )
        };
        // Never go back: an older commit (a stale read) changes nothing.
        if state.epoch < known_epoch {
            return;
        }
        match &state.current {
            None if state.epoch > known_epoch && served.is_some() => {
                self.inner.live.remove(app);
                let mut book = self.book();
                book.served.remove(app);
                book.desired.remove(app);
                book.staged.remove(app);
                book.errors.remove(app);
                let _ = self.inner.state.set_desired(&book.desired);
                drop(book);
                tracing::info!(app = %app, "removed (epoch {})", state.epoch);
                self.changed();
            }
            None => {}
            Some(current) => {
                {
                    let mut book = self.book();
                    if book.desired.get(app) != Some(&(current.clone(), state.epoch)) {
                        book.desired
                            .insert(app.to_string(), (current.clone(), state.epoch));
                        let _ = self.inner.state.set_desired(&book.desired);
                    }
                }
                if served.as_deref() != Some(current.as_str()) {
                    let staged = {
                        let mut book = self.book();
                        match book.staged.remove(app) {
                            Some((v, a, f, c, _)) if &v == current => Some(Prepared {
                                app: a,
                                fetch_ms: f,
                                compile_ms: c,
                            }),
                            Some(other) => {
                                book.staged.insert(app.to_string(), other);
                                None
                            }
                            None => None,
                        }
                    };
                    let prepared = match staged {
                        Some(p) => Ok(p),
                        None => self.prepare(control, app, current).await,
                    };
                    match prepared.and_then(|p| self.swap(app, current, state.epoch, p)) {
                        Ok(()) => {}
                        Err(e) => self.fail(app, current, &e),
                    }
                } else {
                    let mut book = self.book();
                    if let Some(s) = book.served.get_mut(app) {
                        s.epoch = state.epoch;
                    }
                }
                self.update_ready();
            }
        }
        if let Some(staged) = &state.staged {
            let have = {
                let book = self.book();
                book.served.get(app).is_some_and(|s| &s.version == staged)
                    || book.staged.get(app).is_some_and(|(v, ..)| v == staged)
                    || book
                        .errors
                        .get(app)
                        .is_some_and(|e| &e.version == staged && e.attempt == state.staged_at_ms)
            };
            if !have {
                match self.prepare(control, app, staged).await {
                    Ok(p) => {
                        tracing::info!(
                            app = %app,
                            "staged version {} (fetch {} ms, compile {} ms)",
                            short(staged),
                            p.fetch_ms,
                            p.compile_ms
                        );
                        let mut book = self.book();
                        book.errors.remove(app);
                        book.staged.insert(
                            app.to_string(),
                            (staged.clone(), p.app, p.fetch_ms, p.compile_ms, revision),
                        );
                        drop(book);
                        self.changed();
                    }
                    Err(e) => self.fail_attempt(app, staged, state.staged_at_ms, &e),
                }
            }
        }
        // A stage no deploy names any more (it failed on another node, was abandoned, or
        // another version took its place): free the compiled app. Only on a read newer
        // than the one that staged it, so a stale read cannot undo a stage in progress.
        let dropped = {
            let mut book = self.book();
            match book.staged.get(app) {
                Some((v, .., at)) if state.staged.as_ref() != Some(v) && revision > *at => {
                    book.staged.remove(app).map(|(v, ..)| v)
                }
                _ => None,
            }
        };
        if let Some(v) = dropped {
            tracing::info!(app = %app, "dropped staged version {} (no deploy stages it any more)", short(&v));
            self.changed();
        }
    }

    fn fail(&self, app: &str, version: &str, e: &FleetError) {
        self.fail_attempt(app, version, 0, e);
    }

    fn fail_attempt(&self, app: &str, version: &str, attempt: u64, e: &FleetError) {
        tracing::warn!(app = %app, "version {}: {e}", short(version));
        self.inner.counters.failures.fetch_add(1, Ordering::Relaxed);
        self.book().errors.insert(
            app.to_string(),
            NodeError {
                version: version.to_string(),
                message: e.to_string(),
                attempt,
            },
        );
        self.changed();
    }

    fn changed(&self) {
        self.inner.changed.notify_one();
    }

    /// Swap `prepared` in as `app`'s served version, after checking the whole candidate
    /// set (routes, cron) once more.
    fn swap(
        &self,
        app: &str,
        version: &str,
        epoch: u64,
        prepared: Prepared,
    ) -> Result<(), FleetError> {
        let loaded = prepared.app;
        self.inner.live.update(|s| {
            let apps = s.with(loaded.clone());
            check(&LiveApps::candidate(apps.clone()))?;
            Ok::<_, FleetError>(apps)
        })?;
        let mut book = self.book();
        book.served.insert(
            app.to_string(),
            ServedVersion {
                version: version.to_string(),
                epoch,
                since_ms: now_ms(),
                fetch_ms: prepared.fetch_ms,
                compile_ms: prepared.compile_ms,
            },
        );
        book.errors.remove(app);
        if book.staged.get(app).is_some_and(|(v, ..)| v == version) {
            book.staged.remove(app);
        }
        drop(book);
        tracing::info!(app = %app, "serving version {} (epoch {epoch})", short(version));
        self.inner.counters.swaps.fetch_add(1, Ordering::Relaxed);
        self.changed();
        self.update_ready();
        Ok(())
    }

    /// Fetch (from the disk, else the control plane) and verify a version and its blobs,
    /// then load it beside what is served.
    async fn prepare(
        &self,
        control: &Control,
        app: &str,
        version: &str,
    ) -> Result<Prepared, FleetError> {
        let t = Instant::now();
        let record = control.version(app, version).await?;
        if record.app != app {
            return Err(FleetError::Load(format!(
                "version {} is a version of `{}`, not of `{app}`",
                short(version),
                record.app
            )));
        }
        let wanted = record
            .components
            .iter()
            .map(|(c, b)| (format!("component `{c}`"), b))
            .chain(
                record
                    .dependencies
                    .iter()
                    .map(|(d, b)| (format!("dependency `{d}`"), b)),
            )
            .chain(record.files.iter().map(|(f, b)| (format!("file `{f}`"), b)));
        for (what, blob) in wanted {
            if self.inner.state.blob(&blob.sha256).is_some() {
                continue;
            }
            let bytes = control.blob(&blob.sha256).await?;
            let actual = sha256_hex(&bytes);
            if actual != blob.sha256 {
                return Err(FleetError::Tampered {
                    what: format!("the blob of {what}"),
                    expected: blob.sha256.clone(),
                    actual,
                });
            }
            self.inner.state.put_blob(&blob.sha256, &bytes)?;
        }
        let manifest = self.inner.state.materialize(version, &record)?;
        let fetch_ms = ms(t.elapsed());
        let t = Instant::now();
        let app = self.load(app, manifest).await?;
        Ok(Prepared {
            app,
            fetch_ms,
            compile_ms: ms(t.elapsed()),
        })
    }

    /// A version from the state directory only (at start).
    async fn prepare_cached(&self, app: &str, version: &str) -> Result<Prepared, FleetError> {
        let (manifest, _) = self
            .inner
            .state
            .cached_version(app, version)
            .ok_or_else(|| FleetError::Load("not on disk, or not intact".into()))?;
        let t = Instant::now();
        let app = self.load(app, manifest).await?;
        Ok(Prepared {
            app,
            fetch_ms: 0,
            compile_ms: ms(t.elapsed()),
        })
    }

    async fn load(&self, name: &str, manifest: PathBuf) -> Result<Arc<LoadedApp>, FleetError> {
        let app = atoll_manifest::load(&manifest).map_err(|e| FleetError::Load(e.to_string()))?;
        if app.name != name {
            return Err(FleetError::Load(format!(
                "the manifest names app `{}`, not `{name}`",
                app.name
            )));
        }
        for component in app.components.values() {
            for label in &component.grants.key_value_stores {
                match self.inner.stores.get(label) {
                    Some(
                        StoreConfig::Redis { .. }
                        | StoreConfig::Postgres { .. }
                        | StoreConfig::Nats { .. },
                    ) => {}
                    _ => {
                        return Err(FleetError::Load(format!(
                            "component `{}` uses key-value store `{label}`, which this node's runtime config does not place in a server: fleet nodes keep no data. Add `[key_value_store.{label}]` with type redis, postgres or nats to the file given to `atoll node --runtime-config`",
                            component.name
                        )));
                    }
                }
            }
        }
        let previous = self.inner.live.snapshot().get(name).cloned();
        let loaded = self
            .inner
            .loader
            .load_replacing(app, previous.as_deref())
            .await
            .map_err(|e| FleetError::Load(e.to_string()))?;
        let loaded = Arc::new(loaded);
        let snapshot = self.inner.live.snapshot();
        check(&LiveApps::candidate(snapshot.with(loaded.clone())))?;
        Ok(loaded)
    }

    /// Put the report every heartbeat, and at once after a change.
    async fn heartbeat(self) {
        let mut warned = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {}
                () = self.inner.changed.notified() => {}
            }
            let Some(control) = self.inner.control.load_full() else {
                continue;
            };
            let deregistered = self.inner.reporting.lock().await;
            if *deregistered {
                return;
            }
            let put = control.put_node(&self.report()).await;
            drop(deregistered);
            match put {
                Ok(()) => warned = false,
                Err(e) if !warned => {
                    tracing::warn!("control plane: cannot put this node's report: {e}");
                    warned = true;
                }
                Err(_) => {}
            }
        }
    }

    /// A graceful stop, first step: not ready (the balancer stops sending), reported.
    pub async fn begin_drain(&self) {
        self.inner.draining.store(true, Ordering::Release);
        self.update_ready();
        if let Some(control) = self.inner.control.load_full() {
            let _ = tokio::time::timeout(Duration::from_secs(2), control.put_node(&self.report()))
                .await;
        }
    }

    /// A graceful stop, last step: remove this node's report from the control plane.
    pub async fn deregister(&self) {
        let mut deregistered = self.inner.reporting.lock().await;
        *deregistered = true;
        if let Some(control) = self.inner.control.load_full() {
            match tokio::time::timeout(
                Duration::from_secs(2),
                control.remove_node(&self.inner.name),
            )
            .await
            {
                Ok(Ok(())) => tracing::info!("deregistered from the control plane"),
                Ok(Err(e)) => tracing::warn!("cannot deregister: {e}"),
                Err(_) => tracing::warn!("cannot deregister: the control plane did not answer"),
            }
        }
    }
}

/// Whether every trigger can serve `snapshot` (the routes, the cron schedules).
fn check(snapshot: &atoll_runtime::Snapshot) -> Result<(), FleetError> {
    atoll_http::RouteTable::build(snapshot).map_err(|e| FleetError::Load(e.to_string()))?;
    atoll_cron::check(snapshot).map_err(|e| FleetError::Load(e.to_string()))?;
    Ok(())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The process's resident memory, from /proc (0 where there is none).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
