//! `atoll up --watch` (and `atoll watch`): reload apps when their inputs change.
//!
//! Each app's inputs are its manifest, the `source` of every component without a build
//! command, and the files matching the `watch` globs of those with one. They are polled
//! (metadata only: modification time, size, inode) every [`POLL`]; a change is acted
//! on once the inputs have been still for one more poll, so a file being written is not
//! read half-way (and if it is, the load fails and the next change goes live). Then,
//! off the request path: parse the manifest, run the build commands of the components
//! whose inputs are newer than their `source`, load a new `LoadedApp`, check it against
//! the other apps (routes, triggers' exports) and swap it in. Any failure keeps the old
//! version serving and prints the error, located as at start.
//!
//! Polling rather than inotify: the inputs are a handful of files, a rename over a
//! watched file (how editors and build tools replace files) needs no re-watching, and
//! it behaves the same on every filesystem; its cost is a `stat` per input per poll.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use atoll_http::RouteTable;
use atoll_manifest::App;
use atoll_runtime::{LiveApps, Loader};

/// How often the inputs are looked at.
const POLL: Duration = Duration::from_millis(150);

/// What is known of one input file: `None` when it does not exist.
type Stamp = Option<(SystemTime, u64, u64)>;

/// One app's manifest and the files it depends on, with their stamps.
struct Watched {
    manifest: PathBuf,
    inputs: Vec<(PathBuf, Stamp)>,
}

impl Watched {
    fn new(manifest: PathBuf, app: Option<&App>) -> Self {
        let mut files = vec![manifest.clone()];
        if let Some(app) = app {
            files.extend(inputs_of(app));
        }
        let inputs = files.into_iter().map(|p| {
            let s = stamp(&p);
            (p, s)
        });
        Self {
            manifest,
            inputs: inputs.collect(),
        }
    }

    fn changed(&self) -> bool {
        self.inputs.iter().any(|(p, s)| stamp(p) != *s)
    }

    /// Take the stamps anew; whether any differed.
    fn restamp(&mut self) -> bool {
        let mut changed = false;
        for (p, s) in &mut self.inputs {
            let now = stamp(p);
            changed |= now != *s;
            *s = now;
        }
        changed
    }
}

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some((m.modified().ok()?, m.len(), inode))
}

/// The files a reload of `app` depends on, besides its manifest.
fn inputs_of(app: &App) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for component in app.components.values() {
        match &component.build {
            Some(build) => match super::build::watched_files(component, build) {
                Ok(files) => out.extend(files),
                Err(e) => tracing::warn!(app = %app.name, component = %component.name, "{e:#}"),
            },
            None => out.extend(component.path().map(Path::to_path_buf)),
        }
    }
    out
}

/// Watch the apps of `manifests` and swap in each good new version, until `stop`.
pub(crate) async fn watch(
    loader: Loader,
    live: LiveApps,
    manifests: Vec<PathBuf>,
    local: SocketAddr,
    stop: impl Future<Output = ()>,
) {
    let snapshot = live.snapshot();
    let mut watched: Vec<Watched> = manifests
        .into_iter()
        .map(|m| {
            let app = snapshot
                .apps()
                .iter()
                .find(|a| a.app().manifest_path() == m)
                .map(|a| a.app());
            Watched::new(m, app)
        })
        .collect();
    drop(snapshot);
    tracing::info!(
        "watching {} file(s) for changes",
        watched.iter().map(|w| w.inputs.len()).sum::<usize>()
    );
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = &mut stop => return,
        }
        for w in &mut watched {
            if !w.changed() {
                continue;
            }
            // Wait until the files are still for one poll (a build or a copy in progress).
            w.restamp();
            loop {
                tokio::time::sleep(POLL).await;
                if !w.restamp() {
                    break;
                }
            }
            // Stamps taken after the reload: a build's own output is not a change. A
            // manifest that did not parse keeps the inputs watched before.
            match reload(&loader, &live, &w.manifest, local).await {
                Some(app) => *w = Watched::new(w.manifest.clone(), Some(&app)),
                None => {
                    w.restamp();
                }
            }
        }
    }
}

/// Parse, build, load, check and swap one app. Returns the manifest that was parsed
/// (whether or not it went live), so its inputs are watched next.
async fn reload(
    loader: &Loader,
    live: &LiveApps,
    manifest: &Path,
    local: SocketAddr,
) -> Option<App> {
    let started = Instant::now();
    let app = match atoll_manifest::load(manifest) {
        Ok(app) => app,
        Err(d) => {
            report(&format!("{d}"));
            return None;
        }
    };
    tracing::info!(app = %app.name, "change detected; reloading");
    let build_app = app.clone();
    let built = tokio::task::spawn_blocking(move || super::build::build_stale(&build_app)).await;
    match built {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            report(&format!("{e:#}"));
            return Some(app);
        }
        Err(e) => {
            report(&format!("the build task failed: {e}"));
            return Some(app);
        }
    }
    let loaded = match loader.load(app.clone()).await {
        Ok(l) => Arc::new(l),
        Err(e) => {
            report(&format!("{e}"));
            return Some(app);
        }
    };
    let name = loaded.name().to_string();
    let load_id = loaded.load_id();
    let swapped = live.update(|current| {
        let apps = current.with(loaded.clone());
        let candidate = LiveApps::candidate(apps.clone());
        RouteTable::build(&candidate).map_err(|e| e.to_string())?;
        atoll_cron::check(&candidate).map_err(|e| e.to_string())?;
        Ok::<_, String>(apps)
    });
    match swapped {
        Ok(generation) => {
            super::up::log_triggers(loaded.app(), local);
            tracing::info!(app = %name, load = load_id, generation, "reloaded in {:.1?}; new requests get the new version", started.elapsed());
        }
        Err(e) => report(&e),
    }
    Some(app)
}

/// A reload that failed: the error as `atoll up` prints it at start, and what happens.
fn report(message: &str) {
    let message = message.trim_end();
    eprintln!("error: {message}\n  (reload failed; the previous version keeps serving)");
}
