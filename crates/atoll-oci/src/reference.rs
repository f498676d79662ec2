//! `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]`: the one way atoll writes a
//! reference to an OCI artifact (on the command line and as a manifest `source`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use oci_client::Reference;

use crate::OciError;

/// A parsed `oci://` reference. The registry host is always explicit: `oci://hello:1`
/// is refused rather than silently meaning Docker Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    inner: Reference,
}

impl OciRef {
    /// The scheme every reference starts with.
    pub const SCHEME: &'static str = "oci://";

    /// Parse `oci://HOST/REPOSITORY[:TAG][@DIGEST]`. A reference with neither tag nor
    /// digest means the tag `latest`, as with `docker pull`.
    pub fn parse(written: &str) -> Result<Self, OciError> {
        let bad = |reason: &str| OciError::BadReference {
            written: written.to_string(),
            reason: reason.to_string(),
        };
        let rest = written
            .strip_prefix(Self::SCHEME)
            .ok_or_else(|| bad("it must start with oci://"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no repository after the registry host"))?;
        if host.is_empty() || path.is_empty() {
            return Err(bad(
                "the registry host and the repository must both be given",
            ));
        }
        // The distribution grammar takes the first segment as a registry only when it
        // looks like one; otherwise it would be Docker Hub's `library/` namespace.
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad(
                "the first part must be a registry host (with a dot or a port, or `localhost`), e.g. oci://ghcr.io/acme/hello:1.0",
            ));
        }
        let inner = Reference::from_str(rest).map_err(|e| bad(&e.to_string()))?;
        Ok(Self { inner })
    }

    /// The registry host and port, e.g. `127.0.0.1:5000` or `ghcr.io`.
    pub fn registry(&self) -> &str {
        self.inner.resolve_registry()
    }

    /// The repository, e.g. `acme/hello`.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The manifest digest, if one was given.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The repository's last segment (`hello` of `acme/hello`): a default name for a
    /// file or a component.
    pub fn name(&self) -> &str {
        let repo = self.repository();
        repo.rsplit('/').next().unwrap_or(repo)
    }

    /// The same repository and tag, pinned to `digest`.
    pub fn with_digest(&self, digest: &str) -> Self {
        let (registry, repository) = (self.registry().to_string(), self.repository().to_string());
        let inner = match self.tag() {
            Some(tag) => Reference::with_tag_and_digest(
                registry,
                repository,
                tag.to_string(),
                digest.to_string(),
            ),
            None => Reference::with_digest(registry, repository, digest.to_string()),
        };
        Self { inner }
    }

    /// The same repository, by digest only (what a lockfile pull uses).
    pub fn by_digest(&self, digest: &str) -> Self {
        Self {
            inner: Reference::with_digest(
                self.registry().to_string(),
                self.repository().to_string(),
                digest.to_string(),
            ),
        }
    }

    /// Whether the registry is on a loopback address (where plain HTTP is allowed).
    pub fn is_loopback(&self) -> bool {
        let registry = self.registry();
        let host = match registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
        };
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    pub(crate) fn as_oci(&self) -> &Reference {
        &self.inner
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}/{}",
            Self::SCHEME,
            self.registry(),
            self.repository()
        )?;
        if let Some(tag) = self.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_users_write() {
        let r = OciRef::parse("oci://127.0.0.1:5000/acme/hello:1.0").expect("parse");
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "acme/hello");
        assert_eq!(r.tag(), Some("1.0"));
        assert_eq!(r.name(), "hello");
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/acme/hello:1.0");

        let d = format!("sha256:{}", "ab".repeat(32));
        let pinned = r.with_digest(&d);
        assert_eq!(
            pinned.to_string(),
            format!("oci://127.0.0.1:5000/acme/hello:1.0@{d}")
        );
        assert_eq!(
            r.by_digest(&d).to_string(),
            format!("oci://127.0.0.1:5000/acme/hello@{d}")
        );

        let remote = OciRef::parse("oci://ghcr.io/acme/hello:1").expect("parse");
        assert!(!remote.is_loopback());
        assert!(
            OciRef::parse("oci://localhost:5000/x:1")
                .expect("name")
                .is_loopback()
        );
        assert!(
            !OciRef::parse("oci://127.0.0.1.example.com/x:1")
                .expect("dns")
                .is_loopback()
        );
    }

    #[test]
    fn refuses_what_is_not_a_reference() {
        for bad in [
            "127.0.0.1:5000/hello:1",
            "oci://",
            "oci://hello:1",
            "oci://ghcr.io/",
            "oci://ghcr.io/Hello:1",
            "oci://ghcr.io/hello@sha256:zz",
        ] {
            let e = OciRef::parse(bad).expect_err(bad);
            assert!(matches!(e, OciError::BadReference { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
