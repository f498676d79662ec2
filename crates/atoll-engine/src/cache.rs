//! The on-disk compile cache.
//!
//! An artifact is named by the sha256 of the component's bytes and wasmtime's
//! compatibility hash of this engine's configuration, so a changed component, a changed
//! wasmtime or a changed engine setting each miss the cache. Artifacts are written only by
//! this module (temp file, then rename) into a directory created private to the user:
//! `Component::deserialize_file` runs native code and is never called on bytes that
//! someone else produced.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::engine::CacheOutcome;
use crate::error::error_chain;

/// The cache file a component's bytes map to under `dir` for `engine`.
pub(crate) fn artifact_path(engine: &wasmtime::Engine, dir: &Path, bytes: &[u8]) -> PathBuf {
    let digest = hex::encode(Sha256::digest(bytes));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
}

pub(crate) fn load_or_compile(
    engine: &wasmtime::Engine,
    dir: &Path,
    bytes: &[u8],
) -> Result<(Component, CacheOutcome), String> {
    let path = artifact_path(engine, dir, bytes);
    // Only a directory that this user owns and nobody else can write is trusted: a
    // cached artifact is native code. Anything else compiles in memory, as if uncached.
    if let Err(why) = private_dir(dir) {
        tracing::warn!(dir = %dir.display(), "not using the compile cache: {why}");
        let component = Component::new(engine, bytes).map_err(|e| error_chain(&e))?;
        return Ok((component, CacheOutcome::Uncached));
    }
    if private_file(&path).is_ok() {
        // SAFETY: the file is one this module wrote (named by content and engine hash, in
        // a directory only the user can write), and wasmtime checks that it was produced
        // by a compatible engine before using it.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok((c, CacheOutcome::Hit)),
            Err(e) => tracing::warn!(
                path = %path.display(),
                "ignoring unusable compile cache entry: {}",
                error_chain(&e)
            ),
        }
    }
    let artifact = engine
        .precompile_component(bytes)
        .map_err(|e| error_chain(&e))?;
    match write_atomically(dir, &path, &artifact).and_then(|()| private_dir(dir)) {
        Ok(()) => {
            // SAFETY: as above; we produced these bytes a moment ago.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => Ok((c, CacheOutcome::Compiled)),
                Err(e) => Err(error_chain(&e)),
            }
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "compile cache not writable ({e}); continuing without it");
            // SAFETY: `artifact` was produced by this engine just now.
            unsafe { Component::deserialize(engine, &artifact) }
                .map(|c| (c, CacheOutcome::Uncached))
                .map_err(|e| error_chain(&e))
        }
    }
}

/// Ok if `dir` is missing (it will be created private) or is a real directory owned by
/// this user and not writable by group or others.
#[cfg(unix)]
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() {
        return Err(std::io::Error::other("it is not a directory (a symlink?)"));
    }
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(
            "it is owned by another user or writable by others; use a private directory (--cache-dir or ATOLL_HOME)",
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn private_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Ok if `path` is a regular file (not a symlink) owned by this user.
#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.is_file() && meta.uid() == me && meta.mode() & 0o022 == 0 {
        Ok(())
    } else {
        Err(std::io::Error::other("not a private regular file"))
    }
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<()> {
    std::fs::metadata(path).map(|_| ())
}

fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let mut tmp = tempfile_in(dir)?;
    let written = tmp
        .1
        .write_all(data)
        .and_then(|()| tmp.1.sync_all())
        .and_then(|()| std::fs::rename(&tmp.0, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp.0);
    }
    written
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    for attempt in 0..100u32 {
        let p = dir.join(format!(".tmp-{}-{attempt}", std::process::id()));
        match opts.open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "cannot create a temporary file in the cache directory",
    ))
}
