//! `files`: read-only directories a guest sees (`wasi:filesystem` preopens).
//!
//! At app load, every mount source is resolved and checked: it must exist, lie inside
//! the app directory after resolving symlinks, and contain no symlink that leads out of
//! it. A glob entry (`"assets/**/*.css"`) copies the matching files into a directory
//! staged for this load, which is then mounted at `/`. At run time the directories are
//! preopened read-only; wasmtime-wasi resolves every guest path beneath the preopen, so
//! `..`, absolute paths and symlinks cannot leave it.
//!
//! Staging is per load: each configure copies into a fresh
//! `<app>/.atoll/mounts/<component>.<pid>-<nanos>-<n>/`, owned by a [`StagedDir`] that
//! the component's capabilities hold and that removes it when dropped, i.e. once the
//! loaded app and every instance of it are gone. So a reload never changes the files
//! under instances of the old version; they keep their copy until they finish.
//!
//! A process that dies leaves its staged directories behind. Each has a lock file beside
//! it (`<name>.lock`, outside what the guest sees) that its owner holds locked
//! (`flock`) for as long as it lives; the kernel drops the lock with the process. Staging
//! first removes every directory whose lock file it can lock itself: those have no live
//! owner, whichever process (or container sharing the directory) made them. A
//! directory without a lock file is never removed (so `.atoll/mounts/<component>/`,
//! the layout of older versions, stays).
//!
//! Cost per instance: one `open` of each mounted directory (only for components that
//! have `files`).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use atoll_manifest::{App, Component, FileMount, MountSource};

use crate::error::CapabilityError;

/// Entries walked under one mount before giving up, so a huge tree cannot stall a load.
const MAX_ENTRIES: usize = 100_000;

/// A checked mount: a host directory and where the guest sees it.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    pub(crate) host: PathBuf,
    pub(crate) guest: String,
}

/// A directory staged for one load of one component, removed (with its lock file) when
/// dropped. Its owner holds the lock file locked, which tells other processes it is in
/// use (see the module docs).
#[derive(Debug)]
pub(crate) struct StagedDir {
    dir: PathBuf,
    lock_path: PathBuf,
    /// Held open and locked until the directory is removed.
    _lock: File,
}

impl StagedDir {
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        let dir = std::mem::take(&mut self.dir);
        let lock_path = std::mem::take(&mut self.lock_path);
        // The lock goes with the removal, so no other process takes the directory while
        // it is being deleted.
        let lock = self._lock.try_clone();
        let remove = move || {
            let _lock = lock;
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove the staged mount {}: {e}", dir.display());
                // Keep the lock file: the next staging, in this process or another, retries.
                return;
            }
            let _ = std::fs::remove_file(&lock_path);
        };
        // The last holder is often the last request of an old version, on an event loop:
        // up to MAX_ENTRIES files are removed on the blocking pool, not there.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(remove);
            }
            Err(_) => remove(),
        }
    }
}

/// Loads staged by this process, to make each staged name unique.
static STAGED: AtomicU64 = AtomicU64::new(0);

/// Make a fresh, empty staging directory for `component` under `root`.
fn stage(root: &Path, component: &str) -> std::io::Result<StagedDir> {
    std::fs::create_dir_all(root)?;
    remove_abandoned(root);
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for _ in 0..100 {
        let n = STAGED.fetch_add(1, Ordering::Relaxed);
        // `.` cannot appear in component names, so names of two components never meet.
        let name = format!("{component}.{pid}-{nanos}-{n}");
        let lock_path = root.join(format!("{name}.lock"));
        let lock = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock_path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        if let Err(e) = lock.try_lock() {
            let _ = std::fs::remove_file(&lock_path);
            return Err(std::io::Error::other(format!(
                "cannot lock {}: {e}",
                lock_path.display()
            )));
        }
        let dir = root.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                return Ok(StagedDir {
                    dir,
                    lock_path,
                    _lock: lock,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&lock_path);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&lock_path);
                return Err(e);
            }
        }
    }
    Err(std::io::Error::other(format!(
        "no free staging name under {}",
        root.display()
    )))
}

/// Remove the staged directories under `root` that no live process owns: those whose
/// lock file this process can lock. Best effort: a failure only leaves them for later.
fn remove_abandoned(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let lock_path = entry.path();
        let Some(name) = lock_path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".lock"))
        else {
            continue;
        };
        let Ok(lock) = OpenOptions::new().write(true).open(&lock_path) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // Its owner is alive.
        }
        let dir = root.join(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(
                    "removed {}, staged by a process that is gone",
                    dir.display()
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => continue,
        }
        let _ = std::fs::remove_file(&lock_path);
    }
}

/// Check and prepare `component`'s mounts: the mounts, and the directory staged for its
/// glob entries (if it has any), which must live as long as the mounts are used.
pub(crate) fn configure(
    app: &App,
    component: &Component,
) -> Result<(Vec<Mount>, Option<StagedDir>), CapabilityError> {
    let mut mounts = Vec::new();
    if component.grants.files.is_empty() {
        return Ok((mounts, None));
    }
    let fail = |m: &FileMount, msg: String, help: &str| -> CapabilityError {
        app.diagnostic(m.span.clone(), msg)
            .key(m.key.clone())
            .help(help)
            .into()
    };
    let app_dir = app
        .dir
        .canonicalize()
        .map_err(|source| CapabilityError::AppDir {
            path: app.dir.clone(),
            source,
        })?;
    let mut staging: Option<StagedDir> = None;
    for m in &component.grants.files {
        match &m.source {
            MountSource::Dir(src) => {
                let host = app.dir.join(src).canonicalize().map_err(|e| {
                    let why = match e.kind() {
                        std::io::ErrorKind::NotFound => "it does not exist".to_string(),
                        _ => e.to_string(),
                    };
                    fail(
                        m,
                        format!("mount source `{src}` cannot be read: {why}"),
                        "create the directory, or fix the path (it is relative to the manifest)",
                    )
                })?;
                if !host.starts_with(&app_dir) {
                    return Err(fail(
                        m,
                        format!(
                            "mount source `{src}` resolves to {}, outside the app directory",
                            host.display()
                        ),
                        "mount only directories inside the app directory; symlinks may not lead out of it",
                    ));
                }
                if !host.is_dir() {
                    return Err(fail(
                        m,
                        format!("mount source `{src}` is not a directory"),
                        "use a directory, or a glob string like \"assets/*.css\" for single files",
                    ));
                }
                check_tree(&host).map_err(|msg| {
                    fail(
                        m,
                        format!("mount source `{src}`: {msg}"),
                        "remove the symlink, or point it inside the mounted directory",
                    )
                })?;
                mounts.push(Mount {
                    host,
                    guest: m.destination.clone(),
                });
            }
            MountSource::Glob(pattern) => {
                let dir = match &staging {
                    Some(d) => d.path().to_path_buf(),
                    None => {
                        let root = app.dir.join(".atoll").join("mounts");
                        let d = stage(&root, &component.name).map_err(|e| {
                            fail(
                                m,
                                format!(
                                    "cannot stage the matched files under {}: {e}",
                                    root.display()
                                ),
                                "check the permissions of the app directory",
                            )
                        })?;
                        let path = d.path().to_path_buf();
                        mounts.push(Mount {
                            host: path.clone(),
                            guest: "/".to_string(),
                        });
                        staging = Some(d);
                        path
                    }
                };
                let full = app.dir.join(pattern);
                let full = full.to_str().ok_or_else(|| {
                    fail(
                        m,
                        format!("`{pattern}` is not valid UTF-8"),
                        "rename the files",
                    )
                })?;
                let paths = glob::glob(full).map_err(|e| {
                    fail(
                        m,
                        format!("`{pattern}` is not a valid glob: {e}"),
                        "use `*`, `**` and `?` as in \"assets/**/*.css\"",
                    )
                })?;
                let mut n = 0usize;
                for p in paths {
                    let p = p.map_err(|e| {
                        fail(
                            m,
                            format!("cannot read a match of `{pattern}`: {e}"),
                            "check the permissions of the matched files",
                        )
                    })?;
                    let real = p.canonicalize().map_err(|e| {
                        fail(
                            m,
                            format!("cannot resolve {}: {e}", p.display()),
                            "fix or remove the broken symlink",
                        )
                    })?;
                    if !real.starts_with(&app_dir) {
                        return Err(fail(
                            m,
                            format!(
                                "`{}` resolves to {}, outside the app directory",
                                p.display(),
                                real.display()
                            ),
                            "mount only files inside the app directory; symlinks may not lead out of it",
                        ));
                    }
                    if !real.is_file() || real.starts_with(app_dir.join(".atoll")) {
                        continue;
                    }
                    let rel = p.strip_prefix(&app.dir).unwrap_or(&p);
                    let dest = dir.join(rel);
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            fail(
                                m,
                                format!("cannot create {}: {e}", parent.display()),
                                "check the permissions of the app's .atoll directory",
                            )
                        })?;
                    }
                    std::fs::copy(&real, &dest).map_err(|e| {
                        fail(
                            m,
                            format!("cannot copy {}: {e}", p.display()),
                            "check the permissions of the matched files",
                        )
                    })?;
                    n += 1;
                    if n > MAX_ENTRIES {
                        return Err(fail(
                            m,
                            format!("`{pattern}` matches more than {MAX_ENTRIES} files"),
                            "narrow the pattern",
                        ));
                    }
                }
            }
        }
    }
    Ok((mounts, staging))
}

/// Walk `root` and refuse any symlink whose target lies outside it.
fn check_tree(root: &Path) -> Result<(), String> {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(format!(
                    "more than {MAX_ENTRIES} entries; mount a smaller directory"
                ));
            }
            let path = entry.path();
            let ty = entry
                .file_type()
                .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
            if ty.is_symlink() {
                match path.canonicalize() {
                    Ok(t) if t.starts_with(root) => {}
                    Ok(t) => {
                        return Err(format!(
                            "the symlink {} points to {}, outside the mounted directory",
                            path.display(),
                            t.display()
                        ));
                    }
                    Err(_) => {
                        return Err(format!("the symlink {} is broken", path.display()));
                    }
                }
            } else if ty.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(())
}
