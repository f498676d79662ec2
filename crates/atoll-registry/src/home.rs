//! The user's side of the registry on disk: publisher keys, the content-addressed blob
//! cache and, per registry, the pinned server key and the last tree head seen.
//!
//! Layout (the binary picks the two roots; `ATOLL_HOME` puts both in one directory):
//! - `<config>/keys/<name>.key` (seed, hex, mode 0600) and `<name>.pub`
//! - `<cache>/blobs/sha256/<hex>`: verified components, named by their digest
//! - `<cache>/registries/<host_port>/trust.json`: server key + last signed tree head
//!
//! Nothing here talks to the network. Writes are atomic (temporary file + rename), so
//! an interrupted command never leaves a half-written blob under a digest name.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::hash::Digest;
use crate::log::SignedTreeHead;
use crate::sign::KeyPair;

/// The directories the client keeps its state in.
#[derive(Debug, Clone)]
pub struct AtollHome {
    config: PathBuf,
    cache: PathBuf,
}

impl AtollHome {
    /// Keys under `config`, blobs and tree heads under `cache`.
    pub fn new(config: impl Into<PathBuf>, cache: impl Into<PathBuf>) -> Self {
        Self {
            config: config.into(),
            cache: cache.into(),
        }
    }

    /// Everything under one directory (what `ATOLL_HOME` selects).
    pub fn single(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self::new(root.clone(), root)
    }

    /// The user's settings file (`config.toml` in the config dir), e.g.
    /// `registry = "http://127.0.0.1:8080"`.
    pub fn config_file(&self) -> PathBuf {
        self.config.join("config.toml")
    }

    /// Directory of publisher keys.
    pub fn keys_dir(&self) -> PathBuf {
        self.config.join("keys")
    }

    /// The cache directory (blobs, tree heads, and what other commands keep there).
    pub fn cache_dir(&self) -> &std::path::Path {
        &self.cache
    }

    /// Directory of cached blobs.
    pub fn blobs_dir(&self) -> PathBuf {
        self.cache.join("blobs").join("sha256")
    }

    /// Where the blob with `digest` is cached.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.to_hex())
    }

    /// Where the trust state of the registry at `url` is kept.
    pub fn trust_path(&self, url: &str) -> PathBuf {
        let slug: String = url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.cache.join("registries").join(slug).join("trust.json")
    }

    /// Generate a key called `name`; refuses to overwrite one.
    pub fn generate_key(&self, name: &str) -> Result<KeyPair, Error> {
        check_key_name(name)?;
        let dir = self.keys_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("could not create", &dir, e))?;
        let key = KeyPair::generate()?;
        let private = dir.join(format!("{name}.key"));
        if !write_private_key(&private, &key)? {
            return Err(Error::KeyExists {
                name: name.to_string(),
                dir,
            });
        }
        let public = dir.join(format!("{name}.pub"));
        write_atomically(&public, format!("{}\n", key.public().to_hex()).as_bytes())?;
        Ok(key)
    }

    /// Load the key called `name`.
    pub fn load_key(&self, name: &str) -> Result<KeyPair, Error> {
        check_key_name(name)?;
        let path = self.keys_dir().join(format!("{name}.key"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::KeyNotFound {
                    name: name.to_string(),
                    dir: self.keys_dir(),
                });
            }
            Err(e) => return Err(Error::io("could not read", &path, e)),
        };
        KeyPair::from_seed_hex(&text).map_err(|e| Error::BadFile {
            path,
            reason: e.to_string(),
        })
    }

    /// Names of all keys, sorted.
    pub fn list_keys(&self) -> Result<Vec<String>, Error> {
        let dir = self.keys_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("could not list", &dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("could not list", &dir, e))?;
            let file_name = entry.file_name();
            if let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".key")) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Store verified `bytes` under their digest; returns the path.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> Result<PathBuf, Error> {
        let path = self.blob_path(digest);
        write_atomically(&path, bytes)?;
        Ok(path)
    }

    /// The cached blob with `digest`, re-hashed: `Ok(None)` when absent, an error naming
    /// `package` when the file's content no longer matches its name.
    pub fn verified_blob(&self, package: &str, digest: &Digest) -> Result<Option<PathBuf>, Error> {
        let path = self.blob_path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("could not read", &path, e)),
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::CachedBlobMismatch {
                package: package.to_string(),
                path,
                expected: digest.to_hex(),
                actual: actual.to_hex(),
            });
        }
        Ok(Some(path))
    }

    /// The trust state kept for the registry at `url`, if any.
    pub fn load_trust(&self, url: &str) -> Result<Option<TrustState>, Error> {
        let path = self.trust_path(url);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::BadFile {
                    path,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("could not read", &path, e)),
        }
    }

    /// Save the trust state for the registry at `url`.
    pub fn save_trust(&self, url: &str, state: &TrustState) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        write_atomically(&self.trust_path(url), &bytes)
    }
}

/// What the client remembers about one registry: the key its log is signed with
/// (pinned on first use) and the newest tree head it verified. A later tree head must be
/// consistent with this one, or the client refuses the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustState {
    /// The server's log key, hex.
    pub server_key: String,
    /// The newest verified tree head.
    pub head: SignedTreeHead,
}

/// Write `key` to a new file at `path`, readable only by its owner (mode 0600 on Unix).
/// `Ok(false)` when the file already exists (it is left alone).
fn write_private_key(path: &Path, key: &KeyPair) -> Result<bool, Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(Error::io("could not create", path, e)),
    };
    writeln!(file, "{}", key.seed_hex())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("could not write", path, e))?;
    Ok(true)
}

/// Load the key at `path`, creating it (mode 0600) when missing: the server's log key.
pub(crate) fn load_or_create_key(path: &Path) -> Result<KeyPair, Error> {
    let key = KeyPair::generate()?;
    if write_private_key(path, &key)? {
        return Ok(key);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("could not read", path, e))?;
    KeyPair::from_seed_hex(&text).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn check_key_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidKey {
            what: format!("key name `{name}`"),
            reason: "names use only letters, digits, - and _ (at most 64)".into(),
        })
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename,
/// creating parent directories.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("could not create", dir, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and per call, so concurrent writers never share a temporary.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{file_name}.tmp-{}-{n}", std::process::id()));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("could not write", path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_listed_and_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = AtollHome::single(dir.path());
        assert_eq!(home.list_keys().expect("empty"), Vec::<String>::new());
        let key = home.generate_key("default").expect("generate");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(home.keys_dir().join("default.key"))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            home.load_key("default").expect("load").public(),
            key.public()
        );
        assert_eq!(
            home.generate_key("default")
                .map(|_| ())
                .map_err(|e| e.code()),
            Err("key-exists")
        );
        assert_eq!(
            home.load_key("nope").map(|_| ()).map_err(|e| e.code()),
            Err("key-not-found")
        );
        assert!(home.load_key("../etc/passwd").is_err());
        assert_eq!(home.list_keys().expect("list"), ["default"]);
    }

    #[test]
    fn blobs_are_checked_against_their_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = AtollHome::single(dir.path());
        let d = Digest::of(b"blob");
        assert_eq!(home.verified_blob("a:b", &d).expect("absent"), None);
        let path = home.put_blob(&d, b"blob").expect("put");
        assert_eq!(
            home.verified_blob("a:b", &d).expect("present"),
            Some(path.clone())
        );
        std::fs::write(&path, b"blob!").expect("tamper");
        assert_eq!(
            home.verified_blob("a:b", &d).map_err(|e| e.code()),
            Err("cached-blob-mismatch")
        );
    }
}
