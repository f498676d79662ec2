//! An app as the fleet ships it: a [`VersionRecord`] (the manifest, each component's
//! `source` pointing at its blob) and the blobs; and its copy on a node's disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atoll_manifest::{App, ComponentSource};

use crate::FleetError;
use crate::records::{BlobRef, VersionRecord, sha256_hex};

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

/// Build the version of `app` (already parsed and built): read each component, hash it,
/// and rewrite the manifest so each `source` names its blob and no `build` is left.
/// What a node could not run the same way is refused here, naming the key: components
/// from a registry or OCI (deploy them from a built path), file mounts and composition
/// dependencies (not shipped by the fleet yet).
pub fn bundle(app: &App, manifest_text: &str) -> Result<Bundle, FleetError> {
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
    for component in app.components.values() {
        let key = |k: &str| format!("component.{}.{k}", component.name);
        let path = match &component.source {
            ComponentSource::Path(p) => p.clone(),
            _ => {
                return Err(refuse(
                    key("source"),
                    "`atoll deploy` ships files: pull the package or OCI artifact, or point `source` at a built .wasm",
                ));
            }
        };
        if !component.grants.files.is_empty() {
            return Err(refuse(
                key("files"),
                "file mounts are not shipped to fleet nodes yet; serve this app with `atoll up`",
            ));
        }
        if !component.dependencies.is_empty() {
            return Err(refuse(
                key("dependencies"),
                "composition dependencies are not shipped to fleet nodes yet; compose into one .wasm first",
            ));
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
        components.insert(
            component.name.clone(),
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
    };
    let (_, id) = record.encode();
    Ok(Bundle { record, id, blobs })
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

    /// Write the version's directory (manifest and blob links); returns its manifest
    /// path. The blobs must be on disk already.
    pub fn materialize(&self, id: &str, record: &VersionRecord) -> Result<PathBuf, FleetError> {
        let dir = self.root.join("versions").join(&record.app).join(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| FleetError::Disk(format!("cannot create {}: {e}", dir.display())))?;
        for blob in record.components.values() {
            let link = dir.join(format!("{}.wasm", blob.sha256));
            if !link.exists() {
                let from = self.blob_path(&blob.sha256);
                if std::fs::hard_link(&from, &link).is_err() {
                    std::fs::copy(&from, &link).map_err(|e| {
                        FleetError::Disk(format!(
                            "cannot copy {} to {}: {e}",
                            from.display(),
                            link.display()
                        ))
                    })?;
                }
            }
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
        for blob in record.components.values() {
            let b = std::fs::read(dir.join(format!("{}.wasm", blob.sha256))).ok()?;
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
    fn what_a_node_could_not_run_the_same_way_is_refused_naming_the_key() {
        let dir = temp("files");
        std::fs::create_dir_all(dir.join("static")).expect("dir");
        let text = BASE.replace("# built\n", "\nfiles = [\"static\"]\n");
        let (app, text) = app_in(&dir, &text);
        let e = bundle(&app, &text).expect_err("files are not shipped");
        assert!(e.to_string().contains("`component.web.files`"), "{e}");
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
