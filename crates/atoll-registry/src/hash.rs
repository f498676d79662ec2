//! SHA-256 digests: the content address of every blob and the hash of the Merkle log.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::Error;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Parse 64 lowercase or uppercase hex digits. `what` names the value in the error.
    pub fn from_hex(what: &str, text: &str) -> Result<Self, Error> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|e| Error::InvalidHex {
            what: what.to_string(),
            value: text.chars().take(80).collect(),
            reason: e.to_string(),
        })?;
        Ok(Self(out))
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_known_value() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::from_hex("x", &d.to_hex()).ok(), Some(d));
        assert!(Digest::from_hex("x", "abcd").is_err());
        assert!(Digest::from_hex("x", &"zz".repeat(32)).is_err());
    }
}
