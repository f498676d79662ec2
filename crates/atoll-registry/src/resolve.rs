//! Semver resolution: pick the newest published, non-yanked version matching a
//! requirement, and parse `ns:name@req` specs as typed on the command line.

use semver::Version;
pub use semver::VersionReq;

use crate::Error;
use crate::name::PackageName;

/// What `atoll add acme:auth@^1.2` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    /// The package.
    pub package: PackageName,
    /// The requirement (`*` when none was given).
    pub req: VersionReq,
}

impl PackageSpec {
    /// Parse `ns:name` or `ns:name@REQ`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let (name, req) = match text.split_once('@') {
            Some((name, req)) => (name, req),
            None => (text, "*"),
        };
        let package = PackageName::parse(name)?;
        let req = VersionReq::parse(req).map_err(|e| Error::InvalidVersionReq {
            req: req.chars().take(64).collect(),
            reason: e.to_string(),
        })?;
        Ok(Self { package, req })
    }
}

/// The newest version in `versions` that matches `req` and is not yanked. Pre-releases
/// match only when `req` names a pre-release of the same major.minor.patch (semver's rule).
pub fn resolve<'a>(
    req: &VersionReq,
    versions: impl IntoIterator<Item = (&'a Version, bool)>,
) -> Option<&'a Version> {
    versions
        .into_iter()
        .filter(|(v, yanked)| !*yanked && req.matches(v))
        .map(|(v, _)| v)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(req: &str, published: &[(&str, bool)], expect: Option<&str>) {
        let versions: Vec<(Version, bool)> = published
            .iter()
            .map(|(v, y)| (Version::parse(v).expect("test version"), *y))
            .collect();
        let req = VersionReq::parse(req).expect("test req");
        let got = resolve(&req, versions.iter().map(|(v, y)| (v, *y)));
        assert_eq!(got.map(|v| v.to_string()).as_deref(), expect, "{req}");
    }

    #[test]
    fn newest_matching_non_yanked() {
        let p = [
            ("1.0.0", false),
            ("1.2.0", false),
            ("1.3.0", true),
            ("1.2.5", false),
            ("2.0.0", false),
            ("2.1.0-rc.1", false),
        ];
        check("^1.2", &p, Some("1.2.5"));
        check("^1", &p, Some("1.2.5"));
        check("=1.3.0", &p, None);
        check("*", &p, Some("2.0.0"));
        check("^2.1.0-rc.1", &p, Some("2.1.0-rc.1"));
        check("~1.0", &p, Some("1.0.0"));
        check("^3", &p, None);
        check("^1", &[], None);
    }

    #[test]
    fn specs() {
        let s = PackageSpec::parse("acme:auth@^1.2").expect("spec");
        assert_eq!(s.package.as_str(), "acme:auth");
        assert_eq!(s.req.to_string(), "^1.2");
        assert_eq!(
            PackageSpec::parse("acme:auth").expect("spec").req,
            VersionReq::STAR
        );
        assert_eq!(
            PackageSpec::parse("acme:auth@nope").map_err(|e| e.code()),
            Err("invalid-version-req")
        );
        assert_eq!(
            PackageSpec::parse("auth@1").map_err(|e| e.code()),
            Err("invalid-package-name")
        );
    }
}
