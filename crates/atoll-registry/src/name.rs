//! Package names (`namespace:name`, as WIT package names) and their validation.

use std::fmt;

use crate::Error;

/// Longest package name accepted, in bytes. Names are path segments, database keys and
/// lines of signed messages; a cap keeps all of those small.
pub const MAX_NAME_LEN: usize = 128;

/// A validated package name: `namespace:name`, each part lowercase kebab-case
/// (`acme:auth`, `wasi-http:proxy-tools`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageName {
    full: String,
    colon_idx: usize,
}

impl PackageName {
    /// Parse and validate `ns:name`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidPackageName {
            name: text.chars().take(MAX_NAME_LEN).collect(),
            reason: reason.to_string(),
        };
        if text.len() > MAX_NAME_LEN {
            return Err(invalid("it is longer than 128 bytes"));
        }
        let Some((namespace, name)) = text.split_once(':') else {
            return Err(invalid("it has no `:` between namespace and name"));
        };
        check_label(namespace).map_err(|r| invalid(&format!("the namespace {r}")))?;
        check_label(name).map_err(|r| invalid(&format!("the name {r}")))?;
        Ok(Self {
            full: text.to_string(),
            colon_idx: namespace.len(),
        })
    }

    /// The namespace, claimed by the first key that publishes in it.
    pub fn namespace(&self) -> &str {
        &self.full[..self.colon_idx]
    }

    /// The name within the namespace.
    pub fn name(&self) -> &str {
        &self.full[self.colon_idx + 1..]
    }

    /// The whole `ns:name`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// Check a namespace on its own (the same rules as each half of a package name).
pub fn validate_namespace(namespace: &str) -> Result<(), Error> {
    if namespace.len() > MAX_NAME_LEN {
        return Err(Error::InvalidPackageName {
            name: namespace.chars().take(MAX_NAME_LEN).collect(),
            reason: "the namespace is longer than 128 bytes".into(),
        });
    }
    check_label(namespace).map_err(|r| Error::InvalidPackageName {
        name: namespace.to_string(),
        reason: format!("the namespace {r}"),
    })
}

/// One kebab-case label: `[a-z][a-z0-9]*` words joined by single `-`.
fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("is empty");
    }
    for word in label.split('-') {
        let mut chars = word.chars();
        match chars.next() {
            None => return Err("has an empty word between dashes"),
            Some(c) if !c.is_ascii_lowercase() => {
                return Err("must start each word with a lowercase letter a-z");
            }
            Some(_) => {}
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
            return Err("may contain only lowercase letters, digits and single dashes");
        }
    }
    Ok(())
}

/// Parse a version and refuse build metadata (`1.0.0+build`), which semver ignores when
/// comparing and so would let two different blobs share one version.
pub fn parse_version(text: &str) -> Result<semver::Version, Error> {
    let version = semver::Version::parse(text).map_err(|e| Error::InvalidVersion {
        version: text.chars().take(64).collect(),
        reason: e.to_string(),
    })?;
    if !version.build.is_empty() {
        return Err(Error::InvalidVersion {
            version: text.to_string(),
            reason: "build metadata (`+...`) is not allowed in registry versions".into(),
        });
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<(&str, &str), &str>) {
        match (PackageName::parse(input), expect) {
            (Ok(n), Ok((ns, name))) => {
                assert_eq!((n.namespace(), n.name()), (ns, name));
                assert_eq!(n.to_string(), input);
            }
            (Err(e), Err(fragment)) => {
                let msg = e.to_string();
                assert!(msg.contains(fragment), "{msg:?} lacks {fragment:?}");
            }
            (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn package_names() {
        check("acme:auth", Ok(("acme", "auth")));
        check("wasi-http:proxy-tools2", Ok(("wasi-http", "proxy-tools2")));
        check("acme", Err("no `:`"));
        check("Acme:auth", Err("namespace must start each word"));
        check("acme:", Err("the name is empty"));
        check("acme:a--b", Err("empty word"));
        check("acme:a_b", Err("only lowercase"));
        check("acme:auth\nx", Err("only lowercase"));
        check("acme:a:b", Err("only lowercase"));
        check(&format!("a:{}", "b".repeat(200)), Err("longer than 128"));
    }

    #[test]
    fn versions() {
        assert!(parse_version("1.2.3").is_ok());
        assert!(parse_version("1.2.3-rc.1").is_ok());
        assert!(parse_version("1.2").is_err());
        let e = parse_version("1.2.3+abc")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(e.is_err_and(|m| m.contains("build metadata")));
    }
}
