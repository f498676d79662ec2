//! `atoll.lock`: the exact version, digest and publisher of every registry package an
//! app uses, so builds are reproducible and `atoll pull` fetches the same bytes.
//!
//! ```toml
//! # This file is written by atoll. Edit atoll.toml and run `atoll add` instead.
//! version = 1
//!
//! [[package]]
//! name = "acme:auth"
//! version = "1.2.0"
//! sha256 = "9f86d0..."
//! publisher = "ed25519:3a5c..."
//! registry = "http://127.0.0.1:8080"
//! log-index = 3
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::hash::Digest;
use crate::home::write_atomically;
use crate::name::PackageName;

/// The lockfile's name next to `atoll.toml`.
pub const LOCKFILE: &str = "atoll.lock";

/// The format version written and understood.
pub const LOCKFILE_VERSION: u32 = 1;

const HEADER: &str =
    "# This file is written by atoll. Edit atoll.toml and run `atoll add` instead.\n";

/// A parsed `atoll.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Format version.
    pub version: u32,
    /// Locked packages, sorted by name.
    #[serde(default, rename = "package")]
    pub packages: Vec<LockedPackage>,
    /// `[[oci]]`: each `source = "oci://…"` pinned to the manifest digest it resolved to.
    #[serde(default, rename = "oci", skip_serializing_if = "Vec::is_empty")]
    pub oci: Vec<LockedOci>,
}

/// One OCI artifact in the lockfile: the reference as the manifest writes it, the
/// manifest digest it resolved to, and the sha256 of the component (its one layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedOci {
    /// `oci://HOST/REPOSITORY:TAG`, exactly as in `atoll.toml`.
    pub reference: String,
    /// The manifest digest, `sha256:…`: what a later pull asks for.
    pub digest: String,
    /// Hex sha256 of the component's bytes (the layer digest without `sha256:`).
    pub sha256: String,
}

impl LockedOci {
    /// The component's sha256 as a [`Digest`].
    pub fn component_digest(&self) -> Result<Digest, Error> {
        Digest::from_hex(
            &format!("sha256 of {} in atoll.lock", self.reference),
            &self.sha256,
        )
    }
}

/// One locked package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedPackage {
    /// `namespace:name`.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Key id of the publisher that signed it.
    pub publisher: String,
    /// The registry it came from.
    pub registry: String,
    /// Its release record's position in the registry's log.
    pub log_index: u64,
}

impl LockedPackage {
    /// The locked digest, parsed.
    pub fn digest(&self) -> Result<Digest, Error> {
        Digest::from_hex(
            &format!("sha256 of {} in atoll.lock", self.name),
            &self.sha256,
        )
    }
}

impl Default for Lockfile {
    fn default() -> Self {
        Self {
            version: LOCKFILE_VERSION,
            packages: Vec::new(),
            oci: Vec::new(),
        }
    }
}

impl Lockfile {
    /// Read `path`; an empty lockfile when the file does not exist.
    pub fn load_or_default(path: &Path) -> Result<Self, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io("could not read", path, e)),
        }
    }

    /// Read `path`, which must exist.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("could not read", path, e))?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, Error> {
        let lock: Lockfile = toml::from_str(text).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if lock.version != LOCKFILE_VERSION {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                reason: format!(
                    "lockfile version {} is not supported (this atoll writes version {LOCKFILE_VERSION}); upgrade atoll",
                    lock.version
                ),
            });
        }
        for p in &lock.packages {
            PackageName::parse(&p.name)?;
            p.digest()?;
        }
        for o in &lock.oci {
            o.component_digest()?;
        }
        Ok(lock)
    }

    /// The text written to disk.
    pub fn to_toml(&self) -> String {
        // Serializing strings and integers to TOML cannot fail.
        let body = toml::to_string(self).unwrap_or_default();
        format!("{HEADER}{body}")
    }

    /// Write to `path` atomically (temporary file + rename).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        write_atomically(path, self.to_toml().as_bytes())
    }

    /// The entry for `package`.
    pub fn get(&self, package: &PackageName) -> Option<&LockedPackage> {
        self.packages.iter().find(|p| p.name == package.as_str())
    }

    /// The pin of the OCI reference `reference` (as the manifest writes it).
    pub fn get_oci(&self, reference: &str) -> Option<&LockedOci> {
        self.oci.iter().find(|o| o.reference == reference)
    }

    /// Record or replace the pin of an OCI reference.
    pub fn upsert_oci(&mut self, locked: LockedOci) {
        self.oci.retain(|o| o.reference != locked.reference);
        self.oci.push(locked);
        self.oci.sort_by(|a, b| a.reference.cmp(&b.reference));
    }

    /// Add or replace the entry for `locked.name`, keeping entries sorted.
    pub fn upsert(&mut self, locked: LockedPackage) {
        self.packages.retain(|p| p.name != locked.name);
        self.packages.push(locked);
        self.packages.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// Where the lockfile of the app in `dir` lives.
pub fn lockfile_path(dir: &Path) -> PathBuf {
    dir.join(LOCKFILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locked(name: &str, version: &str) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            version: version.into(),
            sha256: Digest::of(name.as_bytes()).to_hex(),
            publisher: "ed25519:00".into(),
            registry: "http://127.0.0.1:1".into(),
            log_index: 1,
        }
    }

    #[test]
    fn round_trip_sorted_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = lockfile_path(dir.path());
        let mut lock = Lockfile::load_or_default(&path).expect("missing is empty");
        lock.upsert(locked("zeta:z", "1.0.0"));
        lock.upsert(locked("acme:auth", "1.0.0"));
        lock.upsert(locked("acme:auth", "1.2.0"));
        lock.save(&path).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.starts_with("# This file is written by atoll"),
            "{text}"
        );
        assert!(text.contains("log-index = 1"), "{text}");
        let again = Lockfile::load(&path).expect("load");
        assert_eq!(again, lock);
        let names: Vec<_> = again.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["acme:auth", "zeta:z"]);
        assert_eq!(again.packages[0].version, "1.2.0");
    }

    #[test]
    fn bad_lockfiles_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = lockfile_path(dir.path());
        for (text, fragment) in [
            ("version = 2\n", "version 2 is not supported"),
            ("version = 1\nextra = 1\n", "unknown field"),
            (
                "version = 1\n[[package]]\nname = \"acme:a\"\nversion = \"1.0.0\"\nsha256 = \"xyz\"\npublisher = \"k\"\nregistry = \"r\"\nlog-index = 0\n",
                "not valid hex",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let msg = Lockfile::load(&path).map(|_| ()).map_err(|e| e.to_string());
            assert!(msg.as_ref().is_err_and(|m| m.contains(fragment)), "{msg:?}");
        }
    }
}
