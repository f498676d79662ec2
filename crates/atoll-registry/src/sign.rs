//! Ed25519 keys and the signed records of the registry.
//!
//! Every signature covers a domain-separated, line-based message built by [`message`]:
//! `atoll-<kind>-v1\n` then one field per line. Fields are validated to contain no
//! newline (package names, semver versions, hex digests, decimal numbers), so two
//! different records never produce the same message.

use std::fmt;

use ed25519_dalek::Signer as _;

use crate::Error;
use crate::hash::Digest;

/// Build the bytes a signature covers.
pub fn message(kind: &str, fields: &[&str]) -> Vec<u8> {
    let mut out = format!("atoll-{kind}-v1\n").into_bytes();
    for f in fields {
        out.extend_from_slice(f.as_bytes());
        out.push(b'\n');
    }
    out
}

/// A private ed25519 key (the 32-byte seed).
pub struct KeyPair {
    signing: ed25519_dalek::SigningKey,
}

impl KeyPair {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Random {
            reason: e.to_string(),
        })?;
        Ok(Self {
            signing: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Load from 64 hex digits (the format of key files).
    pub fn from_seed_hex(text: &str) -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|e| Error::InvalidKey {
            what: "private key".into(),
            reason: format!("expected 64 hex digits: {e}"),
        })?;
        Ok(Self {
            signing: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// The seed as 64 hex digits. Secret: write it only to a 0600 file.
    pub fn seed_hex(&self) -> String {
        hex::encode(self.signing.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// Sign `msg`; the signature as 128 hex digits.
    pub fn sign(&self, msg: &[u8]) -> String {
        hex::encode(self.signing.sign(msg).to_bytes())
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({})", self.public().key_id())
    }
}

/// A public ed25519 key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parse 64 hex digits. `what` names the key in the error.
    pub fn from_hex(what: &str, text: &str) -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|e| Error::InvalidKey {
            what: what.to_string(),
            reason: format!("expected 64 hex digits: {e}"),
        })?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| Error::InvalidKey {
                what: what.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self(key))
    }

    /// 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// A short, stable name for the key: `ed25519:` and the first 16 bytes of the
    /// SHA-256 of the public key, in hex.
    pub fn key_id(&self) -> String {
        let d = Digest::of(self.0.as_bytes());
        format!("ed25519:{}", hex::encode(&d.0[..16]))
    }

    /// Check `signature` (128 hex digits) over `msg`. Uses strict verification, which
    /// refuses malleable signatures and small-order keys.
    pub fn verify(&self, msg: &[u8], signature: &str) -> Result<(), String> {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(signature, &mut bytes)
            .map_err(|e| format!("the signature is not 128 hex digits: {e}"))?;
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.0
            .verify_strict(msg, &sig)
            .map_err(|_| "the signature does not match the record and key".to_string())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_refuse_changes() {
        let key = KeyPair::generate().expect("random");
        let msg = message("release", &["acme:auth", "1.0.0"]);
        let sig = key.sign(&msg);
        assert!(key.public().verify(&msg, &sig).is_ok());
        let other = message("release", &["acme:auth", "1.0.1"]);
        assert!(key.public().verify(&other, &sig).is_err());
        let stranger = KeyPair::generate().expect("random");
        assert!(stranger.public().verify(&msg, &sig).is_err());
        assert!(key.public().verify(&msg, "zz").is_err());
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let key = KeyPair::generate().expect("random");
        let again = KeyPair::from_seed_hex(&key.seed_hex()).expect("hex");
        assert_eq!(key.public(), again.public());
        let public = PublicKey::from_hex("k", &key.public().to_hex()).expect("hex");
        assert_eq!(public, key.public());
        assert!(public.key_id().starts_with("ed25519:"));
        assert_eq!(public.key_id().len(), "ed25519:".len() + 32);
    }

    #[test]
    fn fields_are_line_separated_and_domain_separated() {
        assert_eq!(message("x", &["a", "b"]), b"atoll-x-v1\na\nb\n".to_vec());
        assert_ne!(message("x", &["ab"]), message("x", &["a", "b"]));
        assert_ne!(message("x", &["a"]), message("y", &["a"]));
    }
}
