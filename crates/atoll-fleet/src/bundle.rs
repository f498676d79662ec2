//! An app as the fleet ships it: a [`VersionRecord`] (the manifest, each component's
//! `source` pointing at its blob) and the blobs; and its copy on a node's disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use atoll_manifest::{App, ComponentSource, DependencySource, FileMount, MountSource};

use crate::FleetError;
use crate::records::{BlobRef, VersionRecord, check_file_path, sha256_hex};

/// Files one bundle may ship (over every mount), and their total size: a deploy holds
/// them in memory, and every node keeps a copy.
pub const MAX_FILES: usize = 100_000;
/// See [`MAX_FILES`].
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// A version ready to upload: the record and each component's bytes by sha256.
#[derive(Debug)]
pub struct Bundle {
    /// The version record.
    pub record: VersionRecord,
    /// Its id (sha256 of its bytes).
    pub id: String,
    /// Component bytes by sha256 hex.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// Where the deploying machine found what a manifest names by package or OCI reference
/// (the caller fills it from its registry home, as `atoll up` resolves them:
/// `atoll_runtime::resolve_packages` and `resolve_dependencies`). The node gets the bytes,
/// never the reference: it needs no registry, credentials or lockfile.
#[derive(Debug, Default, Clone)]
pub struct Resolved {
    /// The file of each component whose `source` is a package or an OCI artifact.
    pub sources: BTreeMap<String, PathBuf>,
    /// The file of each package or OCI dependency, by (component, import as written).
    pub dependencies: BTreeMap<(String, String), PathBuf>,
}

/// [`bundle_with`] for an app whose sources and dependencies are all paths or
/// components of the app.
pub fn bundle(app: &App, manifest_text: &str) -> Result<Bundle, FleetError> {
    bundle_with(app, manifest_text, &Resolved::default())
}

/// Build the version of `app` (already parsed and built): read each component, hash it,
/// and rewrite the manifest so each `source` names its blob and no `build` is left.
/// Each file a `files` mount takes (every regular file under a mounted directory, every
/// file a glob matches) is shipped as a blob too, at its path relative to the app
/// directory. A component from a package or OCI artifact ships as the bytes `resolved`
/// names (its `source` rewritten to the blob); each composition dependency that is not
/// another component of the app ships as a blob too (its entry rewritten to
/// `{ path = "<sha256>.wasm" }`, keeping `inherit_capabilities`), so the node composes
/// and checks it at load as `atoll up` does. What a node could not run the same way is
/// refused here, naming the key: a package or OCI reference `resolved` lacks (run
/// `atoll pull`), and mounts a node could not reproduce (a symlink out of the mount, a
/// symlinked directory, a name the node writes itself).
pub fn bundle_with(
    app: &App,
    manifest_text: &str,
    resolved: &Resolved,
) -> Result<Bundle, FleetError> {
    let refuse = |key: String, why: &str| FleetError::Unsupported {
        app: app.name.clone(),
        key,
        why: why.to_string(),
    };
    if !crate::control::valid_name(&app.name) {
        return Err(refuse(
            "app.name".into(),
            "a fleet app name may hold only ASCII letters, digits, `-` and `_`",
        ));
    }
    let mut doc: toml_edit::DocumentMut = manifest_text
        .parse()
        .map_err(|e| FleetError::Bundle(format!("{}: {e}", app.manifest_path().display())))?;
    let mut components = BTreeMap::new();
    let mut blobs = BTreeMap::new();
    let mut files = Files::default();
    let mut dependencies = BTreeMap::new();
    for component in app.components.values() {
        let key = |k: &str| format!("component.{}.{k}", component.name);
        let path = match &component.source {
            ComponentSource::Path(p) => p.clone(),
            ComponentSource::Package(_) | ComponentSource::Oci(_) => {
                resolved.sources.get(&component.name).cloned().ok_or_else(|| {
                    refuse(
                        key("source"),
                        "it is not resolved on this machine: run `atoll pull` (or `atoll up` once) so atoll.lock pins it and the cache holds it",
                    )
                })?
            }
        };
        for mount in &component.grants.files {
            collect_mount(app, mount, &mut files).map_err(|why| refuse(mount.key.clone(), &why))?;
        }
        let mut rewritten = Vec::new();
        for d in &component.dependencies {
            let dep_key = format!("component.{}.dependencies.{}", component.name, d.import);
            let file = match &d.source {
                DependencySource::Component(_) => continue,
                DependencySource::Path(p) => p.clone(),
                DependencySource::Package(_) | DependencySource::Oci(_) => resolved
                    .dependencies
                    .get(&(component.name.clone(), d.import.clone()))
                    .cloned()
                    .ok_or_else(|| {
                        refuse(
                            dep_key.clone(),
                            "it is not resolved on this machine: run `atoll pull` (or `atoll up` once) so atoll.lock pins it and the cache holds it",
                        )
                    })?,
            };
            let bytes = std::fs::read(&file).map_err(|e| {
                FleetError::Bundle(format!(
                    "cannot read dependency `{}` of component `{}` at {}: {e}",
                    d.import,
                    component.name,
                    file.display()
                ))
            })?;
            let sha = sha256_hex(&bytes);
            dependencies.insert(
                format!("{}/{}", component.name, d.import),
                BlobRef {
                    sha256: sha.clone(),
                    size: bytes.len() as u64,
                },
            );
            blobs.insert(sha.clone(), bytes);
            rewritten.push((d.import.clone(), sha, d.inherit_capabilities));
        }
        let bytes = std::fs::read(&path).map_err(|e| {
            FleetError::Bundle(format!(
                "cannot read component `{}` at {}: {e} (run `atoll build`)",
                component.name,
                path.display()
            ))
        })?;
        let sha = sha256_hex(&bytes);
        let table = doc
            .get_mut("component")
            .and_then(|c| c.get_mut(&component.name))
            .and_then(|c| c.as_table_like_mut())
            .ok_or_else(|| {
                FleetError::Bundle(format!(
                    "cannot find [component.{}] in the manifest text",
                    component.name
                ))
            })?;
        table.insert("source", toml_edit::value(format!("{sha}.wasm")));
        table.remove("build");
        if !rewritten.is_empty() {
            let deps = table
                .get_mut("dependencies")
                .and_then(|d| d.as_table_like_mut())
                .ok_or_else(|| {
                    FleetError::Bundle(format!(
                        "cannot find the dependencies of [component.{}] in the manifest text",
                        component.name
                    ))
                })?;
            for (import, dep_sha, inherit) in rewritten {
                let mut entry = toml_edit::InlineTable::new();
                entry.insert("path", format!("{dep_sha}.wasm").into());
                if inherit {
                    entry.insert("inherit_capabilities", true.into());
                }
                deps.insert(&import, toml_edit::value(entry));
            }
        }
        components.insert(
            component.name.clone(),
            BlobRef {
                sha256: sha.clone(),
                size: bytes.len() as u64,
            },
        );
        blobs.insert(sha, bytes);
    }
    let mut file_refs = BTreeMap::new();
    for (rel, bytes) in files.files {
        let sha = sha256_hex(&bytes);
        file_refs.insert(
            rel,
            BlobRef {
                sha256: sha.clone(),
                size: bytes.len() as u64,
            },
        );
        blobs.insert(sha, bytes);
    }
    let record = VersionRecord {
        app: app.name.clone(),
        manifest: doc.to_string(),
        components,
        atoll: env!("CARGO_PKG_VERSION").to_string(),
        files: file_refs,
        dirs: files.dirs,
        dependencies,
    };
    let (_, id) = record.encode();
    Ok(Bundle { record, id, blobs })
}

/// The files and directories the mounts of one bundle take, by relative path.
#[derive(Default)]
struct Files {
    files: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
    bytes: u64,
}

impl Files {
    fn add(&mut self, rel: String, path: &Path) -> Result<(), String> {
        check_file_path(&rel)?;
        if self.files.contains_key(&rel) {
            return Ok(());
        }
        if self.files.len() >= MAX_FILES {
            return Err(format!(
                "the mounts hold more than {MAX_FILES} files; ship fewer (a fleet node keeps a copy of each)"
            ));
        }
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        self.bytes += bytes.len() as u64;
        if self.bytes > MAX_FILE_BYTES {
            return Err(format!(
                "the mounted files exceed {} MiB in all; ship less (a deploy holds them in memory, every node keeps a copy)",
                MAX_FILE_BYTES >> 20
            ));
        }
        self.files.insert(rel, bytes);
        Ok(())
    }
}

/// `path` relative to `base`, `/`-separated, if it is beneath it and UTF-8.
fn relative(base: &Path, path: &Path) -> Result<String, String> {
    let rel = path
        .strip_prefix(base)
        .map_err(|_| format!("{} is outside the app directory", path.display()))?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts
        .map(|p| p.join("/"))
        .ok_or_else(|| format!("{} is not a UTF-8 path; rename it", path.display()))
}

/// Add what `mount` takes from `app`'s directory to `files`. The rules are `atoll up`'s
/// (inside the app directory, no symlink out of a mounted directory); a symlink inside
/// one is shipped as the file it points to.
fn collect_mount(app: &App, mount: &FileMount, files: &mut Files) -> Result<(), String> {
    let app_dir = app
        .dir
        .canonicalize()
        .map_err(|e| format!("cannot read the app directory {}: {e}", app.dir.display()))?;
    match &mount.source {
        MountSource::Dir(src) => {
            let root = app
                .dir
                .join(src)
                .canonicalize()
                .map_err(|e| format!("mount source `{src}` cannot be read: {e}"))?;
            if !root.starts_with(&app_dir) || !root.is_dir() {
                return Err(format!(
                    "mount source `{src}` is not a directory inside the app directory"
                ));
            }
            walk(&app_dir, &root, &root, files, 0)
        }
        MountSource::Glob(pattern) => {
            let full = app.dir.join(pattern);
            let full = full
                .to_str()
                .ok_or_else(|| format!("`{pattern}` is not valid UTF-8"))?;
            let paths =
                glob::glob(full).map_err(|e| format!("`{pattern}` is not a valid glob: {e}"))?;
            for p in paths {
                let p = p.map_err(|e| format!("cannot read a match of `{pattern}`: {e}"))?;
                let real = p
                    .canonicalize()
                    .map_err(|e| format!("cannot resolve {}: {e}", p.display()))?;
                if !real.starts_with(&app_dir) {
                    return Err(format!(
                        "`{}` resolves to {}, outside the app directory",
                        p.display(),
                        real.display()
                    ));
                }
                if !real.is_file() || real.starts_with(app_dir.join(".atoll")) {
                    continue;
                }
                let rel = relative(&app.dir, &p).or_else(|_| relative(&app_dir, &p))?;
                files.add(rel, &real)?;
            }
            Ok(())
        }
    }
}

/// Every file and directory under `dir` (inside the mounted `root`).
fn walk(
    app_dir: &Path,
    root: &Path,
    dir: &Path,
    files: &mut Files,
    depth: usize,
) -> Result<(), String> {
    if depth > 64 {
        return Err(format!(
            "{} is nested more than 64 directories deep",
            dir.display()
        ));
    }
    let rel = relative(app_dir, dir)?;
    check_file_path(&rel)?;
    files.dirs.insert(rel);
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if kind.is_dir() {
            walk(app_dir, root, &path, files, depth + 1)?;
        } else if kind.is_file() {
            files.add(relative(app_dir, &path)?, &path)?;
        } else if kind.is_symlink() {
            let target = path
                .canonicalize()
                .map_err(|e| format!("{} is a broken symlink ({e}); remove it", path.display()))?;
            if !target.starts_with(root) {
                return Err(format!(
                    "{} is a symlink leading outside the mounted directory; remove it, or point it inside",
                    path.display()
                ));
            }
            if target.is_dir() {
                return Err(format!(
                    "{} is a symlink to a directory, which `atoll deploy` does not ship; replace it with the directory",
                    path.display()
                ));
            }
            files.add(relative(app_dir, &path)?, &target)?;
        }
    }
    Ok(())
}

/// A node's disk: `blobs/<sha256>.wasm` (verified), `versions/<app>/<id>/` (the
/// manifest and links to its blobs) and `state.json` (the last desired state it knew).
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root`, created if missing.
    pub fn open(root: &Path) -> Result<Self, FleetError> {
        for d in ["blobs", "versions"] {
            std::fs::create_dir_all(root.join(d)).map_err(|e| {
                FleetError::Disk(format!("cannot create {}: {e}", root.join(d).display()))
            })?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// A blob from the disk, if there and still matching its sha256.
    pub fn blob(&self, sha256: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.blob_path(sha256)).ok()?;
        (sha256_hex(&bytes) == sha256).then_some(bytes)
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{sha256}.wasm"))
    }

    /// Keep a verified blob.
    pub fn put_blob(&self, sha256: &str, bytes: &[u8]) -> Result<(), FleetError> {
        write_atomic(&self.blob_path(sha256), bytes)
    }

    /// Write the version's directory (manifest, blob links, the mounts' files and
    /// directories at their relative paths); returns its manifest path. The blobs must be
    /// on disk already. Every path of the record is checked first ([`check_file_path`]):
    /// a record naming `../x` writes nothing.
    pub fn materialize(&self, id: &str, record: &VersionRecord) -> Result<PathBuf, FleetError> {
        for path in record.files.keys().chain(&record.dirs) {
            check_file_path(path).map_err(|why| {
                FleetError::Load(format!(
                    "version {} of `{}` names a file this node will not write: {why}",
                    crate::records::short(id),
                    record.app
                ))
            })?;
        }
        let dir = self.root.join("versions").join(&record.app).join(id);
        let mkdir = |d: &Path| {
            std::fs::create_dir_all(d)
                .map_err(|e| FleetError::Disk(format!("cannot create {}: {e}", d.display())))
        };
        mkdir(&dir)?;
        // A file already in place is kept only if it still hashes to its blob (a copy
        // cut short, or a file changed by hand, is replaced); a copy is written to a
        // temporary name and renamed, so a half-written file never carries the name.
        let place = |sha256: &str, link: &Path| -> Result<(), FleetError> {
            if std::fs::read(link).is_ok_and(|bytes| sha256_hex(&bytes) == sha256) {
                return Ok(());
            }
            match std::fs::remove_file(link) {
                Ok(()) => tracing::warn!(
                    file = %link.display(),
                    "a cached file no longer matched its sha256; replaced from its blob"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(FleetError::Disk(format!(
                        "cannot replace {}: {e}",
                        link.display()
                    )));
                }
            }
            let from = self.blob_path(sha256);
            if std::fs::hard_link(&from, link).is_err() {
                let bytes = self.blob(sha256).ok_or_else(|| {
                    FleetError::Disk(format!(
                        "blob {} is missing or no longer matches its sha256; the node \
                         fetches it again on the next reconcile",
                        from.display()
                    ))
                })?;
                write_atomic(link, &bytes)?;
            }
            Ok(())
        };
        for blob in record
            .components
            .values()
            .chain(record.dependencies.values())
        {
            place(&blob.sha256, &dir.join(format!("{}.wasm", blob.sha256)))?;
        }
        for d in &record.dirs {
            mkdir(&dir.join(d))?;
        }
        for (rel, blob) in &record.files {
            let to = dir.join(rel);
            if let Some(parent) = to.parent() {
                mkdir(parent)?;
            }
            place(&blob.sha256, &to)?;
        }
        let manifest = dir.join(atoll_manifest::MANIFEST_FILE);
        write_atomic(&manifest, record.manifest.as_bytes())?;
        write_atomic(
            &dir.join("version.json"),
            &serde_json::to_vec(record).map_err(|e| FleetError::Disk(e.to_string()))?,
        )?;
        Ok(manifest)
    }

    /// The manifest of a version on disk, if its record and every blob are there and
    /// intact (a node starting without the control plane serves from these).
    pub fn cached_version(&self, app: &str, id: &str) -> Option<(PathBuf, VersionRecord)> {
        let dir = self.root.join("versions").join(app).join(id);
        let bytes = std::fs::read(dir.join("version.json")).ok()?;
        let record: VersionRecord = serde_json::from_slice(&bytes).ok()?;
        if record.encode().1 != id {
            return None;
        }
        for blob in record
            .components
            .values()
            .chain(record.dependencies.values())
        {
            let b = std::fs::read(dir.join(format!("{}.wasm", blob.sha256))).ok()?;
            if sha256_hex(&b) != blob.sha256 {
                return None;
            }
        }
        for (rel, blob) in &record.files {
            check_file_path(rel).ok()?;
            let b = std::fs::read(dir.join(rel)).ok()?;
            if sha256_hex(&b) != blob.sha256 {
                return None;
            }
        }
        Some((dir.join(atoll_manifest::MANIFEST_FILE), record))
    }

    /// Whether this directory remembers a desired state (possibly empty).
    pub fn knows_desired(&self) -> bool {
        self.root.join("state.json").is_file()
    }

    /// The last desired state this node knew: app -> (version id, epoch).
    pub fn desired(&self) -> BTreeMap<String, (String, u64)> {
        std::fs::read(self.root.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Remember the desired state (write, then rename).
    pub fn set_desired(&self, desired: &BTreeMap<String, (String, u64)>) -> Result<(), FleetError> {
        let bytes =
            serde_json::to_vec_pretty(desired).map_err(|e| FleetError::Disk(e.to_string()))?;
        write_atomic(&self.root.join("state.json"), &bytes)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FleetError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| FleetError::Disk(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_in(dir: &Path, manifest: &str) -> (App, String) {
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(dir.join("c.wasm"), b"\0asm component bytes").expect("write");
        let app = atoll_manifest::parse(manifest.to_string(), &dir.join("atoll.toml"), dir)
            .expect("manifest");
        (app, manifest.to_string())
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("atoll-fleet-{name}-{}", std::process::id()))
    }

    const BASE: &str = "[app]\nname = \"demo\"\n\n[component.web]\nsource = \"c.wasm\" # built\nbuild = { command = \"make\" }\n\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n";

    #[test]
    fn a_bundle_names_each_blob_by_its_sha256_and_drops_builds() {
        let dir = temp("ok");
        let (app, text) = app_in(&dir, BASE);
        let b = bundle(&app, &text).expect("bundle");
        let sha = sha256_hex(b"\0asm component bytes");
        assert_eq!(b.record.components["web"].sha256, sha);
        assert!(
            b.record
                .manifest
                .contains(&format!("source = \"{sha}.wasm\"")),
            "{}",
            b.record.manifest
        );
        assert!(
            !b.record.manifest.contains("build"),
            "{}",
            b.record.manifest
        );
        assert_eq!(b.blobs[&sha], b"\0asm component bytes");
        // The id is the sha256 of the record's bytes: the same app gives the same id.
        assert_eq!(b.id, bundle(&app, &text).expect("again").id);
        assert_eq!(b.id, b.record.encode().1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mounted_files_ship_as_blobs_at_their_relative_paths() {
        let dir = temp("files");
        std::fs::create_dir_all(dir.join("static/sub")).expect("dir");
        std::fs::create_dir_all(dir.join("static/empty")).expect("dir");
        std::fs::write(dir.join("static/index.html"), "<h1>hi</h1>").expect("write");
        std::fs::write(dir.join("static/sub/a.txt"), "nested").expect("write");
        std::fs::create_dir_all(dir.join("assets/deep")).expect("dir");
        std::fs::write(dir.join("assets/deep/site.css"), "p{}").expect("write");
        std::fs::write(dir.join("assets/notes.txt"), "not matched").expect("write");
        std::fs::write(dir.join("secret.txt"), "not mounted").expect("write");
        #[cfg(unix)]
        std::os::unix::fs::symlink("sub/a.txt", dir.join("static/link.txt")).expect("symlink");
        let text = BASE.replace(
            "# built\n",
            "\nfiles = [{ source = \"static\", destination = \"/static\" }, \"assets/**/*.css\"]\n",
        );
        let (app, text) = app_in(&dir, &text);
        let b = bundle(&app, &text).expect("bundle");
        let mut shipped: Vec<&str> = b.record.files.keys().map(String::as_str).collect();
        shipped.sort_unstable();
        let mut expected = vec![
            "assets/deep/site.css",
            "static/index.html",
            "static/sub/a.txt",
        ];
        if cfg!(unix) {
            expected.push("static/link.txt");
            expected.sort_unstable();
        }
        assert_eq!(shipped, expected);
        let dirs: Vec<&str> = b.record.dirs.iter().map(String::as_str).collect();
        assert_eq!(dirs, ["static", "static/empty", "static/sub"]);
        let index = &b.record.files["static/index.html"];
        assert_eq!(index.sha256, sha256_hex(b"<h1>hi</h1>"));
        assert_eq!(b.blobs[&index.sha256], b"<h1>hi</h1>");
        if cfg!(unix) {
            // A symlink inside the mount ships as the file it points to.
            assert_eq!(
                b.record.files["static/link.txt"].sha256,
                sha256_hex(b"nested")
            );
        }
        // The manifest's mounts are unchanged: they resolve in the node's version dir.
        assert!(
            b.record.manifest.contains("source = \"static\""),
            "{}",
            b.record.manifest
        );

        // On a node: the files at their paths, the empty directory too, and intact.
        let state = StateDir::open(&dir.join("node")).expect("state");
        for (sha, bytes) in &b.blobs {
            state.put_blob(sha, bytes).expect("blob");
        }
        let manifest = state.materialize(&b.id, &b.record).expect("materialize");
        let vdir = manifest.parent().expect("version dir");
        assert_eq!(
            std::fs::read_to_string(vdir.join("static/sub/a.txt")).expect("read"),
            "nested"
        );
        assert!(vdir.join("static/empty").is_dir());
        assert!(!vdir.join("secret.txt").exists());
        assert!(!vdir.join("assets/notes.txt").exists());
        assert!(state.cached_version("demo", &b.id).is_some());
        // A file cut short in place (a copy that failed half-way) is replaced, not
        // trusted because its name exists. Unlinked first: the name is a hard link to
        // the blob, and writing through it would change the blob too.
        let partial = vdir.join("static/sub/a.txt");
        std::fs::remove_file(&partial).expect("unlink");
        std::fs::write(&partial, "nes").expect("write");
        assert!(state.cached_version("demo", &b.id).is_none());
        state
            .materialize(&b.id, &b.record)
            .expect("materialize again");
        assert_eq!(std::fs::read_to_string(&partial).expect("read"), "nested");
        assert!(state.cached_version("demo", &b.id).is_some());
        std::fs::write(vdir.join("static/index.html"), "changed").expect("write");
        assert!(
            state.cached_version("demo", &b.id).is_none(),
            "a changed file must make the cached version unusable"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn mounts_a_node_could_not_reproduce_are_refused_naming_the_key() {
        #[cfg(unix)]
        {
            let dir = temp("escape");
            let outside = temp("outside");
            std::fs::create_dir_all(dir.join("static")).expect("dir");
            std::fs::create_dir_all(&outside).expect("dir");
            std::fs::write(outside.join("passwd"), "root").expect("write");
            std::os::unix::fs::symlink(outside.join("passwd"), dir.join("static/p"))
                .expect("symlink");
            let text = BASE.replace(
                "# built\n",
                "\nfiles = [\"static/*\", { source = \"static\", destination = \"/s\" }]\n",
            );
            let (app, text) = app_in(&dir, &text);
            let e = bundle(&app, &text).expect_err("a symlink out of the app");
            assert!(e.to_string().contains("`component.web.files[0]`"), "{e}");
            assert!(e.to_string().contains("outside the app directory"), "{e}");
            let text = BASE.replace(
                "# built\n",
                "\nfiles = [{ source = \"static\", destination = \"/s\" }]\n",
            );
            let (app, text) = app_in(&dir, &text);
            let e = bundle(&app, &text).expect_err("a symlink out of the mount");
            assert!(e.to_string().contains("`component.web.files[0]`"), "{e}");
            assert!(
                e.to_string().contains("outside the mounted directory"),
                "{e}"
            );
            let _ = std::fs::remove_dir_all(dir);
            let _ = std::fs::remove_dir_all(outside);
        }
        // A mounted file where the node writes the manifest.
        let dir = temp("reserved");
        let text = BASE.replace("# built\n", "\nfiles = [\"*.toml\"]\n");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("atoll.toml"), &text).expect("write");
        let (app, text) = app_in(&dir, &text);
        let e = bundle(&app, &text).expect_err("atoll.toml is the node's");
        assert!(e.to_string().contains("`component.web.files[0]`"), "{e}");
        assert!(
            e.to_string()
                .contains("would replace a file the node writes"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_record_naming_paths_outside_its_version_writes_nothing() {
        let dir = temp("hostile-record");
        let (app, text) = app_in(&dir.join("app"), BASE);
        let b = bundle(&app, &text).expect("bundle");
        let state = StateDir::open(&dir.join("state")).expect("state");
        for (sha, bytes) in &b.blobs {
            state.put_blob(sha, bytes).expect("blob");
        }
        let blob = b.record.components["web"].clone();
        for bad in [
            "../../escaped",
            "/etc/x",
            "a/../../b",
            ".atoll/mounts/x",
            "version.json",
            "",
        ] {
            let mut record = b.record.clone();
            record.files.insert(bad.to_string(), blob.clone());
            let (_, id) = record.encode();
            let e = state.materialize(&id, &record).expect_err(bad);
            assert!(e.to_string().contains("will not write"), "{bad}: {e}");
            assert!(!dir.join("state/versions/demo").join(&id).exists(), "{bad}");
        }
        assert!(!dir.join("escaped").exists());
        let mut record = b.record.clone();
        record.dirs.insert("../up".to_string());
        assert!(state.materialize(&record.encode().1, &record).is_err());
        assert!(!dir.join("state/versions/up").exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn dependencies_and_package_sources_ship_as_blobs_the_manifest_names() {
        let dir = temp("deps");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("fmt.wasm"), b"fmt bytes").expect("write");
        std::fs::write(dir.join("cached-pkg.wasm"), b"package bytes").expect("write");
        std::fs::write(dir.join("cached-dep.wasm"), b"dependency bytes").expect("write");
        let text = "[app]\nname = \"demo\"\n\n[component.web]\nsource = \"c.wasm\"\n\n[component.web.dependencies]\n\"acme:fmt\" = { path = \"fmt.wasm\", inherit_capabilities = true }\n\"acme:auth/verify\" = { component = \"auth\" }\n\"acme:kv\" = { package = \"acme:kv\", version = \"1.0.0\" }\n\n[component.auth]\nsource = { package = \"acme:auth\", version = \"1.0.0\" }\n\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n";
        let (app, text) = app_in(&dir, text);
        // Unresolved on this machine: refused, naming the key.
        let e = bundle(&app, &text).expect_err("an unresolved package");
        assert!(e.to_string().contains("`component.auth.source`"), "{e}");
        assert!(e.to_string().contains("atoll pull"), "{e}");
        let mut resolved = Resolved::default();
        resolved
            .sources
            .insert("auth".into(), dir.join("cached-pkg.wasm"));
        let e = bundle_with(&app, &text, &resolved).expect_err("an unresolved dependency");
        assert!(
            e.to_string()
                .contains("`component.web.dependencies.acme:kv`"),
            "{e}"
        );
        resolved.dependencies.insert(
            ("web".into(), "acme:kv".into()),
            dir.join("cached-dep.wasm"),
        );
        let b = bundle_with(&app, &text, &resolved).expect("bundle");
        let fmt = sha256_hex(b"fmt bytes");
        let kv = sha256_hex(b"dependency bytes");
        let pkg = sha256_hex(b"package bytes");
        assert_eq!(b.record.dependencies["web/acme:fmt"].sha256, fmt);
        assert_eq!(b.record.dependencies["web/acme:kv"].sha256, kv);
        assert_eq!(
            b.record.dependencies.len(),
            2,
            "a component dependency ships as the component"
        );
        assert_eq!(b.record.components["auth"].sha256, pkg);
        for sha in [&fmt, &kv, &pkg] {
            assert!(b.blobs.contains_key(sha));
        }
        // On a node the rewritten manifest parses and names the placed blobs.
        let state = StateDir::open(&dir.join("node")).expect("state");
        for (sha, bytes) in &b.blobs {
            state.put_blob(sha, bytes).expect("blob");
        }
        let manifest = state.materialize(&b.id, &b.record).expect("materialize");
        let vdir = manifest.parent().expect("dir").to_path_buf();
        let text = std::fs::read_to_string(&manifest).expect("read");
        let shipped = atoll_manifest::parse(text.clone(), &manifest, &vdir).expect("parses");
        let deps = &shipped.components["web"].dependencies;
        let source = |import: &str| {
            deps.iter()
                .find(|d| d.import == import)
                .map(|d| (d.source.clone(), d.inherit_capabilities))
        };
        assert_eq!(
            source("acme:fmt"),
            Some((
                DependencySource::Path(vdir.join(format!("{fmt}.wasm"))),
                true
            )),
            "{text}"
        );
        assert_eq!(
            source("acme:kv"),
            Some((
                DependencySource::Path(vdir.join(format!("{kv}.wasm"))),
                false
            )),
            "{text}"
        );
        assert_eq!(
            source("acme:auth/verify"),
            Some((DependencySource::Component("auth".into()), false)),
            "{text}"
        );
        assert_eq!(
            shipped.components["auth"].source,
            ComponentSource::Path(vdir.join(format!("{pkg}.wasm")))
        );
        assert_eq!(
            std::fs::read(vdir.join(format!("{kv}.wasm"))).expect("read"),
            b"dependency bytes"
        );
        assert!(state.cached_version("demo", &b.id).is_some());
        std::fs::write(vdir.join(format!("{fmt}.wasm")), b"changed").expect("write");
        assert!(state.cached_version("demo", &b.id).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_version_without_files_keeps_its_record_bytes() {
        let dir = temp("nofiles");
        let (app, text) = app_in(&dir, BASE);
        let b = bundle(&app, &text).expect("bundle");
        let json = String::from_utf8(b.record.encode().0).expect("utf-8");
        assert!(
            !json.contains("\"files\"") && !json.contains("\"dirs\""),
            "{json}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_state_dir_serves_only_intact_versions() {
        let dir = temp("state");
        let (app, text) = app_in(&dir.join("app"), BASE);
        let b = bundle(&app, &text).expect("bundle");
        let state = StateDir::open(&dir.join("state")).expect("state");
        for (sha, bytes) in &b.blobs {
            state.put_blob(sha, bytes).expect("blob");
        }
        state.materialize(&b.id, &b.record).expect("materialize");
        assert!(state.cached_version("demo", &b.id).is_some());
        // A blob changed on disk: the version is no longer served from the cache.
        let sha = &b.record.components["web"].sha256;
        let link = dir
            .join("state/versions/demo")
            .join(&b.id)
            .join(format!("{sha}.wasm"));
        std::fs::write(&link, b"tampered").expect("write");
        assert!(state.cached_version("demo", &b.id).is_none());
        // (The version's file is a hard link to the blob: the blob no longer verifies
        // either, and would be fetched again.)
        assert!(state.blob(sha).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
