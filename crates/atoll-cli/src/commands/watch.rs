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

use atoll_manifest::App;
use atoll_runtime::{LiveApps, Loader};

/// How often the inputs are looked at.
const POLL: Duration = Duration::from_millis(150);
/// Most polls a change waits for its files to be still.
const SETTLE: usize = 20;

/// What is known of one input file: `None` when it does not exist.
type Stamp = Option<(SystemTime, u64, u64)>;

/// One app's manifest and the files it depends on, with their stamps.
pub(crate) struct Watched {
    manifest: PathBuf,
    /// The name of the app this manifest serves now (`None` until one loads).
    owner: Option<String>,
    /// The manifest as last parsed, to expand its globs again on each poll (a new file
    /// matching `watch` is a change too).
    app: Option<App>,
    inputs: Vec<(PathBuf, Stamp)>,
}

impl Watched {
    /// The inputs of `app` (or only the manifest), stamped now except for files in
    /// `known`, which keep the stamp they had there: a change made while a reload ran is
    /// still a change afterwards.
    fn new(manifest: PathBuf, app: Option<&App>, known: &[(PathBuf, Stamp)]) -> Self {
        let files = files_of(&manifest, app);
        let inputs = files
            .into_iter()
            .map(|p| {
                let s = match known.iter().find(|(k, _)| *k == p) {
                    Some((_, s)) => *s,
                    None => stamp(&p),
                };
                (p, s)
            })
            .collect();
        Self {
            manifest,
            owner: app.map(|a| a.name.clone()),
            app: app.cloned(),
            inputs,
        }
    }

    /// Whether an input changed, or the globs now match other files.
    fn changed(&mut self) -> bool {
        let files = files_of(&self.manifest, self.app.as_ref());
        if files.len() != self.inputs.len()
            || files.iter().zip(&self.inputs).any(|(f, (p, _))| f != p)
        {
            self.inputs = files.into_iter().map(|p| (p, None)).collect();
            return true;
        }
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

/// The inputs of each app as parsed at start, stamped before anything is built or
/// loaded, so a change made while `atoll up` starts is seen by the first poll.
pub(crate) fn initial(manifests: &[PathBuf], apps: &[App]) -> Vec<Watched> {
    manifests
        .iter()
        .map(|m| {
            let app = apps.iter().find(|a| a.manifest_path() == m);
            Watched::new(m.clone(), app, &[])
        })
        .collect()
}

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some((m.modified().ok()?, m.len(), inode))
}

/// The manifest and the files its app depends on, in a stable order.
fn files_of(manifest: &Path, app: Option<&App>) -> Vec<PathBuf> {
    let mut files = vec![manifest.to_path_buf()];
    if let Some(app) = app {
        let mut inputs = inputs_of(app);
        inputs.sort();
        inputs.dedup();
        files.extend(inputs);
    }
    files
}

/// The files a reload of `app` depends on, besides its manifest. Nothing under the
/// app's own `.atoll/` (the embedded store, staged mounts), which atoll writes itself.
fn inputs_of(app: &App) -> Vec<PathBuf> {
    let own = app.dir.join(".atoll");
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
    out.retain(|p| !p.starts_with(&own));
    out
}

/// Watch the apps and swap in each good new version, until `stop`.
pub(crate) async fn watch(
    loader: Loader,
    live: LiveApps,
    mut watched: Vec<Watched>,
    local: SocketAddr,
    stop: impl Future<Output = ()>,
) {
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
            // Wait until the files are still for one poll (a build or a copy in progress),
            // at most SETTLE polls: a file that never stops changing is read as it is.
            w.restamp();
            for _ in 0..SETTLE {
                tokio::time::sleep(POLL).await;
                if !w.restamp() {
                    break;
                }
            }
            // What this reload reads; anything that changes after this is the next one.
            // A build's own output is not an input (only its `watch` files are).
            let before = w.inputs.clone();
            let parsed = reload(&loader, &live, &w.manifest, w.owner.as_deref(), local).await;
            match parsed {
                Some((app, live_now)) => {
                    let owner = if live_now {
                        Some(app.name.clone())
                    } else {
                        w.owner.clone()
                    };
                    *w = Watched::new(w.manifest.clone(), Some(&app), &before);
                    w.owner = owner;
                }
                // A manifest that did not parse keeps the inputs watched before.
                None => w.inputs = before,
            }
        }
    }
}

/// Parse, build, load, check and swap one app (`owner` is the name it is served under
/// now). Returns the manifest that was parsed and whether it went live, so its inputs
/// are watched next.
async fn reload(
    loader: &Loader,
    live: &LiveApps,
    manifest: &Path,
    owner: Option<&str>,
    local: SocketAddr,
) -> Option<(App, bool)> {
    let started = Instant::now();
    let app = match atoll_manifest::load(manifest).and_then(|app| {
        app.check_triggers()?;
        Ok(app)
    }) {
        Ok(app) => app,
        Err(d) => {
            report(&format!("{d}"));
            return None;
        }
    };
    tracing::info!(app = %app.name, "change detected; reloading");
    let build_app = app.clone();
    // Build, then pull and pin any new `oci://` source or dependency, as `atoll up` does.
    let built = tokio::task::spawn_blocking(move || {
        super::build::build_stale(&build_app)?;
        super::oci::ensure_sources(&build_app, &super::oci::OciArgs::default())
    })
    .await;
    let failed = match built {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(e) => Some(format!("the build task failed: {e}")),
    };
    if let Some(e) = failed {
        report(&e);
        return Some((app, false));
    }
    let previous = owner.and_then(|o| live.snapshot().get(o).cloned());
    let loaded = match loader
        .load_replacing(app.clone(), previous.as_deref())
        .await
    {
        Ok(l) => Arc::new(l),
        Err(e) => {
            report(&format!("{e}"));
            return Some((app, false));
        }
    };
    drop(previous);
    let name = loaded.name().to_string();
    let load_id = loaded.load_id();
    let swapped = live.update(|current| {
        if owner != Some(name.as_str()) && current.get(&name).is_some() {
            return Err(format!(
                "two apps are named `{name}` ({} is another app's name); app names must be unique within one server",
                manifest.display()
            ));
        }
        let kept = match owner {
            Some(old) if old != name => current.without(old),
            _ => current.apps().to_vec(),
        };
        let apps = LiveApps::candidate(kept).with(loaded.clone());
        let candidate = LiveApps::candidate(apps.clone());
        super::up::check_triggers(&candidate).map_err(|e| e.to_string())?;
        Ok::<_, String>(apps)
    });
    match swapped {
        Ok(generation) => {
            // Backends only the replaced version used (a store it no longer grants, a
            // changed URL) are closed once nothing holds them.
            let released = loader.backends().release_unused().await;
            if released > 0 {
                tracing::debug!(app = %name, "closed {released} key-value backend(s) no app uses any more");
            }
            super::up::log_triggers(loaded.app(), local);
            tracing::info!(app = %name, load = load_id, generation, "reloaded in {:.1?}; new requests get the new version", started.elapsed());
            Some((app, true))
        }
        Err(e) => {
            report(&e);
            Some((app, false))
        }
    }
}

/// A reload that failed: the error as `atoll up` prints it at start, and what happens.
fn report(message: &str) {
    let message = message.trim_end();
    eprintln!("error: {message}\n  (reload failed; the previous version keeps serving)");
}
