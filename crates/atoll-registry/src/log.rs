//! The records appended to the registry's log, and the server's signed tree head.
//!
//! Every publish, yank and namespace claim is one [`LogEntry`]; its JSON bytes are a
//! leaf of the Merkle tree ([`crate::merkle`]). The bytes stored and served are exactly
//! the bytes hashed, so a client hashes what it receives and never re-serializes.
//! Each record is signed by the publisher; the tree head by the server.

use serde::{Deserialize, Serialize};

use crate::hash::Digest;
use crate::name::{PackageName, parse_version, validate_namespace};
use crate::sign::{KeyPair, PublicKey, message};
use crate::{Error, merkle};

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogEntry {
    /// A key claims a namespace (appended just before the namespace's first release).
    Claim(ClaimRecord),
    /// A version of a package was published.
    Release(ReleaseRecord),
    /// A version was yanked: hidden from resolution, still fetchable.
    Yank(YankRecord),
    /// A current key of a namespace allows another key to publish in it.
    KeyGrant(KeyChangeRecord),
    /// A current key of a namespace removes a key (possibly itself). Releases the
    /// removed key signed before this entry stay valid; later ones are refused.
    KeyRevoke(KeyChangeRecord),
}

impl LogEntry {
    /// The exact bytes that are the Merkle leaf.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parse leaf bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::BadLogEntry {
            reason: e.to_string(),
        })
    }

    /// The Merkle leaf hash of these bytes.
    pub fn leaf_hash(bytes: &[u8]) -> Digest {
        merkle::leaf_hash(bytes)
    }
}

/// `key` claims `namespace`: from now on only keys of this namespace may publish in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRecord {
    /// The namespace claimed.
    pub namespace: String,
    /// Seconds since the Unix epoch, by the publisher's clock.
    pub timestamp: u64,
    /// The claiming public key, hex.
    pub key: String,
    /// Signature by `key`, hex.
    pub signature: String,
}

impl ClaimRecord {
    /// Sign a claim of `namespace` with `key`.
    pub fn sign(key: &KeyPair, namespace: &str, timestamp: u64) -> Result<Self, Error> {
        validate_namespace(namespace)?;
        let public = key.public().to_hex();
        let signature = key.sign(&message(
            "claim",
            &[namespace, &timestamp.to_string(), &public],
        ));
        Ok(Self {
            namespace: namespace.to_string(),
            timestamp,
            key: public,
            signature,
        })
    }

    /// Check the fields and the signature; the claiming key.
    pub fn verify(&self) -> Result<PublicKey, Error> {
        validate_namespace(&self.namespace)?;
        let key = PublicKey::from_hex("claim key", &self.key)?;
        let msg = message(
            "claim",
            &[&self.namespace, &self.timestamp.to_string(), &self.key],
        );
        key.verify(&msg, &self.signature)
            .map_err(|reason| Error::BadSignature {
                what: format!("claim of namespace `{}`", self.namespace),
                reason,
            })?;
        Ok(key)
    }
}

/// A publisher's statement that `package@version` is the blob with `sha256` and `size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRecord {
    /// `namespace:name`.
    pub package: String,
    /// Semver version.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Size of the component in bytes; clients stop downloading past it.
    pub size: u64,
    /// Seconds since the Unix epoch, by the publisher's clock.
    pub timestamp: u64,
    /// The publisher's public key, hex.
    pub key: String,
    /// Signature by `key`, hex.
    pub signature: String,
}

impl ReleaseRecord {
    /// Sign a release.
    pub fn sign(
        key: &KeyPair,
        package: &PackageName,
        version: &semver::Version,
        sha256: &Digest,
        size: u64,
        timestamp: u64,
    ) -> Self {
        let mut record = Self {
            package: package.to_string(),
            version: version.to_string(),
            sha256: sha256.to_hex(),
            size,
            timestamp,
            key: key.public().to_hex(),
            signature: String::new(),
        };
        record.signature = key.sign(&record.message());
        record
    }

    fn message(&self) -> Vec<u8> {
        message(
            "release",
            &[
                &self.package,
                &self.version,
                &self.sha256,
                &self.size.to_string(),
                &self.timestamp.to_string(),
                &self.key,
            ],
        )
    }

    /// Check the fields and the signature; the parsed parts.
    pub fn verify(&self) -> Result<VerifiedRelease, Error> {
        let package = PackageName::parse(&self.package)?;
        let version = parse_version(&self.version)?;
        let sha256 = Digest::from_hex("release sha256", &self.sha256)?;
        let key = PublicKey::from_hex("publisher key", &self.key)?;
        key.verify(&self.message(), &self.signature)
            .map_err(|reason| Error::BadSignature {
                what: format!("release record of {}@{}", self.package, self.version),
                reason,
            })?;
        Ok(VerifiedRelease {
            package,
            version,
            sha256,
            size: self.size,
            key,
        })
    }
}

/// The parts of a [`ReleaseRecord`] whose signature checked out.
#[derive(Debug, Clone)]
pub struct VerifiedRelease {
    /// The package.
    pub package: PackageName,
    /// The version.
    pub version: semver::Version,
    /// The blob's digest.
    pub sha256: Digest,
    /// The blob's size.
    pub size: u64,
    /// Who signed it.
    pub key: PublicKey,
}

/// A publisher's statement that `package@version` should no longer be chosen by resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YankRecord {
    /// `namespace:name`.
    pub package: String,
    /// Semver version.
    pub version: String,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// The yanking key, hex.
    pub key: String,
    /// Signature by `key`, hex.
    pub signature: String,
}

impl YankRecord {
    /// Sign a yank.
    pub fn sign(
        key: &KeyPair,
        package: &PackageName,
        version: &semver::Version,
        timestamp: u64,
    ) -> Self {
        let mut record = Self {
            package: package.to_string(),
            version: version.to_string(),
            timestamp,
            key: key.public().to_hex(),
            signature: String::new(),
        };
        record.signature = key.sign(&record.message());
        record
    }

    fn message(&self) -> Vec<u8> {
        message(
            "yank",
            &[
                &self.package,
                &self.version,
                &self.timestamp.to_string(),
                &self.key,
            ],
        )
    }

    /// Check the fields and the signature; the yanking key.
    pub fn verify(&self) -> Result<(PackageName, semver::Version, PublicKey), Error> {
        let package = PackageName::parse(&self.package)?;
        let version = parse_version(&self.version)?;
        let key = PublicKey::from_hex("yank key", &self.key)?;
        key.verify(&self.message(), &self.signature)
            .map_err(|reason| Error::BadSignature {
                what: format!("yank record of {}@{}", self.package, self.version),
                reason,
            })?;
        Ok((package, version, key))
    }
}

/// Whether a [`KeyChangeRecord`] adds or removes a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// Add `subject` to the namespace's keys.
    Grant,
    /// Remove `subject` from the namespace's keys.
    Revoke,
}

impl KeyChange {
    fn kind(self) -> &'static str {
        match self {
            KeyChange::Grant => "key-grant",
            KeyChange::Revoke => "key-revoke",
        }
    }
}

/// `key`, a current key of `namespace`, grants or revokes `subject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChangeRecord {
    /// The namespace.
    pub namespace: String,
    /// The key granted or revoked, hex.
    pub subject: String,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// The signing key (a current key of the namespace), hex.
    pub key: String,
    /// Signature by `key`, hex.
    pub signature: String,
}

impl KeyChangeRecord {
    /// Sign a grant or revocation of `subject` in `namespace` with `key`.
    pub fn sign(
        change: KeyChange,
        key: &KeyPair,
        namespace: &str,
        subject: &PublicKey,
        timestamp: u64,
    ) -> Result<Self, Error> {
        validate_namespace(namespace)?;
        let mut record = Self {
            namespace: namespace.to_string(),
            subject: subject.to_hex(),
            timestamp,
            key: key.public().to_hex(),
            signature: String::new(),
        };
        record.signature = key.sign(&record.message(change));
        Ok(record)
    }

    fn message(&self, change: KeyChange) -> Vec<u8> {
        message(
            change.kind(),
            &[
                &self.namespace,
                &self.subject,
                &self.timestamp.to_string(),
                &self.key,
            ],
        )
    }

    /// Check the fields and the signature; (signer, subject).
    pub fn verify(&self, change: KeyChange) -> Result<(PublicKey, PublicKey), Error> {
        validate_namespace(&self.namespace)?;
        let signer = PublicKey::from_hex("signing key", &self.key)?;
        let subject = PublicKey::from_hex("subject key", &self.subject)?;
        signer
            .verify(&self.message(change), &self.signature)
            .map_err(|reason| Error::BadSignature {
                what: format!("{} record of namespace `{}`", change.kind(), self.namespace),
                reason,
            })?;
        Ok((signer, subject))
    }
}

/// The server's signed statement of the log's size and root hash at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTreeHead {
    /// Number of entries.
    pub size: u64,
    /// Merkle root, hex.
    pub root: String,
    /// Seconds since the Unix epoch, by the server's clock.
    pub timestamp: u64,
    /// Signature by the server's log key, hex.
    pub signature: String,
}

impl SignedTreeHead {
    /// Sign a tree head with the server's log key.
    pub fn sign(key: &KeyPair, size: u64, root: &Digest, timestamp: u64) -> Self {
        let root = root.to_hex();
        let signature = key.sign(&Self::message(size, &root, timestamp));
        Self {
            size,
            root,
            timestamp,
            signature,
        }
    }

    fn message(size: u64, root: &str, timestamp: u64) -> Vec<u8> {
        message(
            "tree-head",
            &[&size.to_string(), root, &timestamp.to_string()],
        )
    }

    /// Check the signature with the server's key; the root.
    pub fn verify(&self, server_key: &PublicKey) -> Result<Digest, Error> {
        let root = Digest::from_hex("tree head root", &self.root)?;
        server_key
            .verify(
                &Self::message(self.size, &self.root, self.timestamp),
                &self.signature,
            )
            .map_err(|reason| Error::BadSignature {
                what: format!("tree head of size {}", self.size),
                reason,
            })?;
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_records_verify_and_refuse_edits() {
        let key = KeyPair::generate().expect("random");
        let pkg = PackageName::parse("acme:auth").expect("name");
        let v = semver::Version::new(1, 2, 0);
        let d = Digest::of(b"component");
        let rec = ReleaseRecord::sign(&key, &pkg, &v, &d, 9, 1_700_000_000);
        let ok = rec.verify().expect("valid");
        assert_eq!(ok.sha256, d);

        for edit in [
            |r: &mut ReleaseRecord| r.version = "1.2.1".into(),
            |r: &mut ReleaseRecord| r.sha256 = Digest::of(b"evil").to_hex(),
            |r: &mut ReleaseRecord| r.size = 10,
            |r: &mut ReleaseRecord| r.timestamp += 1,
            |r: &mut ReleaseRecord| r.package = "acme:other".into(),
        ] {
            let mut bad = rec.clone();
            edit(&mut bad);
            let err = bad.verify().map(|_| ()).map_err(|e| e.code());
            assert_eq!(err, Err("bad-signature"));
        }
    }

    #[test]
    fn entries_round_trip_as_leaf_bytes() {
        let key = KeyPair::generate().expect("random");
        let claim = LogEntry::Claim(ClaimRecord::sign(&key, "acme", 5).expect("ns"));
        let bytes = claim.to_bytes();
        assert_eq!(LogEntry::from_bytes(&bytes).expect("parse"), claim);
        assert!(LogEntry::from_bytes(b"{\"kind\":\"nope\"}").is_err());
    }

    #[test]
    fn key_changes_are_bound_to_their_kind() {
        let a = KeyPair::generate().expect("random");
        let b = KeyPair::generate().expect("random");
        let grant = KeyChangeRecord::sign(KeyChange::Grant, &a, "acme", &b.public(), 1)
            .expect("valid namespace");
        let (signer, subject) = grant.verify(KeyChange::Grant).expect("valid");
        assert_eq!((signer, subject), (a.public(), b.public()));
        // A grant cannot be replayed as a revocation.
        assert_eq!(
            grant
                .verify(KeyChange::Revoke)
                .map(|_| ())
                .map_err(|e| e.code()),
            Err("bad-signature")
        );
        let entry = LogEntry::KeyGrant(grant);
        assert_eq!(
            LogEntry::from_bytes(&entry.to_bytes()).expect("parse"),
            entry
        );
    }

    #[test]
    fn tree_heads_are_bound_to_the_server_key() {
        let server = KeyPair::generate().expect("random");
        let sth = SignedTreeHead::sign(&server, 3, &Digest::of(b"r"), 7);
        assert!(sth.verify(&server.public()).is_ok());
        let other = KeyPair::generate().expect("random");
        assert!(sth.verify(&other.public()).is_err());
        let mut bad = sth.clone();
        bad.size = 4;
        assert!(bad.verify(&server.public()).is_err());
    }
}
