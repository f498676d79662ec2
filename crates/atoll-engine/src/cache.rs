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

use crate::engine::{CacheOutcome, error_chain};

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
    if path.exists() {
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
    match write_atomically(dir, &path, &artifact) {
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

fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(data)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, path)
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
