//! `files`: read-only directories a guest sees (`wasi:filesystem` preopens).
//!
//! At app load, every mount source is resolved and checked: it must exist, lie inside
//! the app directory after resolving symlinks, and contain no symlink that leads out of
//! it. A glob entry (`"assets/**/*.css"`) copies the matching files into
//! `<app>/.atoll/mounts/<component>/`, which is then mounted at `/`. At run time the
//! directories are preopened read-only; wasmtime-wasi resolves every guest path beneath
//! the preopen, so `..`, absolute paths and symlinks cannot leave it.
//!
//! Cost per instance: one `open` of each mounted directory (only for components that
//! have `files`).

use std::path::{Path, PathBuf};

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

/// Check and prepare `component`'s mounts.
pub(crate) fn configure(app: &App, component: &Component) -> Result<Vec<Mount>, CapabilityError> {
    let mut mounts = Vec::new();
    if component.grants.files.is_empty() {
        return Ok(mounts);
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
        .map_err(|e| CapabilityError::RuntimeConfig {
            path: app.dir.clone(),
            reason: format!("cannot resolve the app directory: {e}"),
        })?;
    let mut staging: Option<PathBuf> = None;
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
                    Some(d) => d.clone(),
                    None => {
                        let d = app.dir.join(".atoll").join("mounts").join(&component.name);
                        if d.exists() {
                            std::fs::remove_dir_all(&d).map_err(|e| {
                                fail(
                                    m,
                                    format!("cannot clear {}: {e}", d.display()),
                                    "check the permissions of the app's .atoll directory",
                                )
                            })?;
                        }
                        std::fs::create_dir_all(&d).map_err(|e| {
                            fail(
                                m,
                                format!("cannot create {}: {e}", d.display()),
                                "check the permissions of the app directory",
                            )
                        })?;
                        staging = Some(d.clone());
                        mounts.push(Mount {
                            host: d.clone(),
                            guest: "/".to_string(),
                        });
                        d
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
    Ok(mounts)
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
