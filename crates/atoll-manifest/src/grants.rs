//! The capability keys of a manifest: `[variables]`, and per component
//! `variables`, `allowed_outbound_hosts`, `key_value_stores` and `files`.
//!
//! This module only validates what the author wrote and turns it into plain data
//! ([`Grants`], [`Variable`], [`AllowedHost`], [`FileMount`]). It does not resolve
//! variable values, open files or talk to backends: that is `atoll-capabilities`, at app
//! load. [`AllowedHost::allows`] is here because it is pure string logic that both the
//! validation and the runtime check must agree on.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Component as PathComponent, Path};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, Span};
use crate::parse::{Cx, join};

/// Everything a component is granted beyond its `environment`. The default grants
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// `variables = { key = "template" }`: the `wasi:config/store` keys the guest sees.
    pub variables: Vec<ConfigTemplate>,
    /// `allowed_outbound_hosts`: where `wasi:http/outgoing-handler` may send requests.
    pub allowed_outbound_hosts: Vec<AllowedHost>,
    /// `key_value_stores`: the `wasi:keyvalue` stores the guest may open, by label.
    pub key_value_stores: Vec<String>,
    /// `files`: read-only directories the guest sees.
    pub files: Vec<FileMount>,
}

/// One `[variables] NAME = { default, required, secret }`.
#[derive(Debug, Clone)]
pub struct Variable {
    /// The variable's name (lowercase letters, digits, `_`).
    pub name: String,
    /// The value used when no provider sets one.
    pub default: Option<String>,
    /// Whether the app refuses to start without a value.
    pub required: bool,
    /// Whether the value must never appear in logs or errors.
    pub secret: bool,
    /// Where it is declared, for errors found at load time.
    pub span: Span,
}

/// One entry of a component's `variables`: a config key and its template.
#[derive(Debug, Clone)]
pub struct ConfigTemplate {
    /// The key the guest asks `wasi:config/store` for.
    pub key: String,
    /// The value, as literal text and `{{ variable }}` references.
    pub parts: Vec<TemplatePart>,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text used as written.
    Literal(String),
    /// `{{ name }}`: the value of an app variable.
    Variable(String),
}

/// One `allowed_outbound_hosts` entry: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `http` or `https`.
    pub scheme: String,
    /// Which hosts it covers.
    pub host: HostPattern,
    /// Which ports it covers.
    pub port: PortPattern,
    /// As written, for messages.
    pub written: String,
}

/// The host part of an [`AllowedHost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host: a lowercase name without a trailing dot, a dotted-quad IPv4
    /// address, or a bracketed IPv6 address in canonical form (`[::1]`).
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    /// Holds the suffix with its leading dot.
    Subdomains(String),
}

/// The port part of an [`AllowedHost`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPattern {
    /// This port (the scheme's default when none was written).
    Exact(u16),
    /// `:*`: any port.
    Any,
}

/// Why a request's URL is not covered by a component's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Not `http` or `https`.
    Scheme,
    /// Has `user@` in its authority.
    Userinfo,
    /// The host is malformed or an ambiguous numeric form.
    BadHost,
    /// Well formed, but no entry of `allowed_outbound_hosts` matches it.
    NotAllowed,
}

impl AllowedHost {
    /// Parse one entry as written in the manifest.
    pub fn parse(s: &str) -> Result<AllowedHost, String> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}` has no scheme; write it as `https://{s}`"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            other => {
                return Err(format!(
                    "scheme `{other}` is not supported; use http or https"
                ));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(format!(
                "`{s}` has a path; allowed hosts name a scheme, a host and a port only"
            ));
        }
        if rest.contains('@') {
            return Err(format!("`{s}` has a user name; write only the host"));
        }
        let (host, port) =
            split_host_port(rest).ok_or_else(|| format!("`{s}` is not a valid host"))?;
        let port = match port {
            None => PortPattern::Exact(default_port),
            Some("*") => PortPattern::Any,
            Some(p) => {
                PortPattern::Exact(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    format!("port `{p}` is not a number between 1 and 65535 or `*`")
                })?)
            }
        };
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            let suffix = normalize_host(suffix).map_err(|e| format!("`{s}`: {e}"))?;
            if suffix.starts_with('[') || suffix.parse::<Ipv4Addr>().is_ok() {
                return Err(format!(
                    "`{s}`: `*.` goes with a domain name, not an IP address"
                ));
            }
            HostPattern::Subdomains(format!(".{suffix}"))
        } else if host == "*" {
            return Err(format!(
                "`{s}` allows every host; name the hosts the component needs (a subdomain wildcard like `*.example.com` is allowed)"
            ));
        } else {
            HostPattern::Exact(normalize_host(host).map_err(|e| format!("`{s}`: {e}"))?)
        };
        Ok(AllowedHost {
            scheme,
            host,
            port,
            written: s.to_string(),
        })
    }

    /// Does this entry cover a request to `scheme://host:port`? `host` must already be
    /// normalized by [`check_url`].
    fn covers(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme != scheme {
            return false;
        }
        if let PortPattern::Exact(p) = self.port
            && p != port
        {
            return false;
        }
        match &self.host {
            HostPattern::Exact(h) => h == host,
            HostPattern::Subdomains(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

/// Check a request's scheme and authority (`host[:port]`, as in the URL) against
/// `allowed`. Hosts compare case-insensitively and without a trailing dot; IP literals
/// only match an entry with the same address; a `user@` part is always refused.
pub fn check_url(allowed: &[AllowedHost], scheme: &str, authority: &str) -> Result<(), Denial> {
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(Denial::Scheme),
    };
    if authority.contains('@') {
        return Err(Denial::Userinfo);
    }
    let (host, port) = split_host_port(authority).ok_or(Denial::BadHost)?;
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().map_err(|_| Denial::BadHost)?,
    };
    let host = normalize_host(host).map_err(|_| Denial::BadHost)?;
    if allowed.iter().any(|a| a.covers(&scheme, &host, port)) {
        Ok(())
    } else {
        Err(Denial::NotAllowed)
    }
}

/// Split `host[:port]`, where an IPv6 host is in brackets.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => Some((h, Some(p))),
            None => Some((s, None)),
        }
    }
}

/// Lowercase a host, drop one trailing dot, and refuse anything that is not a plain DNS
/// name, a dotted-quad IPv4 address or a bracketed IPv6 address. Numeric forms that
/// resolvers read as IPv4 (`2130706433`, `0x7f.1`, `017700000001`, `127.1`) are refused
/// rather than guessed at, so an IP can never pass as a name.
fn normalize_host(host: &str) -> Result<String, String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("unbalanced `[`")?;
        let ip: Ipv6Addr = inner
            .parse()
            .map_err(|_| format!("`{inner}` is not an IPv6 address"))?;
        return Ok(format!("[{ip}]"));
    }
    let lower = host.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() || name.len() > 253 {
        return Err("the host is empty or too long".into());
    }
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        // Only the canonical dotted quad (no leading zeros: `017.0.0.1` is octal to some),
        // and no trailing dot (which only names take).
        if ip.to_string() == name && name.len() == lower.len() {
            return Ok(name.to_string());
        }
        return Err(format!("`{host}` is not a canonical IPv4 address"));
    }
    for label in name.split('.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(format!("`{host}` is not a valid host name"));
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.bytes().all(|b| b.is_ascii_digit()) || name.starts_with("0x") {
        return Err(format!(
            "`{host}` looks like a numeric IP address in a non-standard form"
        ));
    }
    Ok(name.to_string())
}

/// One `files` entry.
#[derive(Debug, Clone)]
pub struct FileMount {
    /// What to mount, relative to the app directory.
    pub source: MountSource,
    /// Where the guest sees it (an absolute guest path).
    pub destination: String,
    /// Where the entry is written, for errors found at load time.
    pub span: Span,
    /// Its dotted key, e.g. `component.web.files[0]`.
    pub key: String,
}

/// What a [`FileMount`] takes from the app directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// `{ source = "static", destination = "/static" }`: a directory.
    Dir(String),
    /// `"assets/**/*.css"`: the matching files, each at its own relative path.
    Glob(String),
}

/// `[a-z][a-z0-9_]*`, at most 64: variable and config key names.
fn check_variable_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid variable name: use lowercase letters, digits and `_`, starting with a letter"
        ))
    }
}

/// Split `text` into literal text and `{{ name }}` references.
pub fn parse_template(text: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(TemplatePart::Literal(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("`{text}` has a `{{{{` without a closing `}}}}`"))?;
        let name = after[..end].trim();
        check_variable_name(name)?;
        parts.push(TemplatePart::Variable(name.to_string()));
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err(format!("`{text}` has a `}}}}` without an opening `{{{{`"));
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_string()));
    }
    Ok(parts)
}

impl Cx<'_> {
    /// `[variables]`.
    pub(crate) fn variables(&self, v: &Spanned<DeValue<'_>>) -> Result<Vec<Variable>, Diagnostic> {
        let t = self.table(v, "variables")?;
        let mut out = Vec::new();
        for (k, val) in t.iter() {
            let name: &str = k.get_ref();
            let key = join("variables", name);
            check_variable_name(name).map_err(|m| self.err(k.span(), &key, m))?;
            let vt = self.table(val, &key).map_err(|d| {
                d.help(format!(
                    "write `{name} = {{ default = \"...\" }}` or `{name} = {{ required = true }}`"
                ))
            })?;
            self.check_keys(vt, &key, &["default", "required", "secret", "description"])?;
            if let Some(d) = vt.get("description") {
                self.string(d, &join(&key, "description"))?;
            }
            let default = match vt.get("default") {
                Some(d) => Some(self.string(d, &join(&key, "default"))?.to_string()),
                None => None,
            };
            let flag = |f: &str| -> Result<bool, Diagnostic> {
                match vt.get(f) {
                    None => Ok(false),
                    Some(b) => b
                        .get_ref()
                        .as_bool()
                        .ok_or_else(|| self.type_err(b, &join(&key, f), "true or false")),
                }
            };
            let required = flag("required")?;
            let secret = flag("secret")?;
            if required && default.is_some() {
                return Err(self
                    .err(
                        val.span(),
                        &key,
                        format!("variable `{name}` is required and has a default"),
                    )
                    .help(
                        "a variable with a default is never missing: drop `required` or `default`",
                    ));
            }
            if !required && default.is_none() {
                return Err(self
                    .err(val.span(), &key, format!("variable `{name}` has neither a default nor `required = true`"))
                    .help(format!("add `default = \"...\"`, or `required = true` to make `atoll up` refuse to start without ATOLL_VARIABLE_{}", name.to_ascii_uppercase())));
            }
            out.push(Variable {
                name: name.to_string(),
                default,
                required,
                secret,
                span: k.span().start..val.span().end,
            });
        }
        Ok(out)
    }

    /// The capability keys of one `[component.NAME]` table.
    pub(crate) fn grants(
        &self,
        t: &DeTable<'_>,
        path: &str,
        variables: &[Variable],
    ) -> Result<Grants, Diagnostic> {
        let mut grants = Grants::default();
        if let Some(v) = t.get("variables") {
            let key = join(path, "variables");
            let vt = self.table(v, &key)?;
            for (k, val) in vt.iter() {
                let name: &str = k.get_ref();
                let full = join(&key, name);
                check_variable_name(name).map_err(|m| self.err(k.span(), &full, m))?;
                let text = self.string(val, &full)?;
                let parts = parse_template(text).map_err(|m| {
                    self.err(val.span(), &full, m)
                        .help("refer to an app variable as `{{ name }}`")
                })?;
                for p in &parts {
                    if let TemplatePart::Variable(var) = p
                        && !variables.iter().any(|v| &v.name == var)
                    {
                        let names: Vec<&str> = variables.iter().map(|v| v.name.as_str()).collect();
                        let d = self.err(
                            val.span(),
                            &full,
                            format!("`{{{{ {var} }}}}` refers to variable `{var}`, which is not declared"),
                        );
                        return Err(match crate::did_you_mean(var, &names) {
                            Some(s) => d.help(format!("did you mean `{s}`?")),
                            None => d.help(format!(
                                "declare it under `[variables]`, e.g. `{var} = {{ default = \"...\" }}`"
                            )),
                        });
                    }
                }
                grants.variables.push(ConfigTemplate {
                    key: name.to_string(),
                    parts,
                });
            }
        }
        if let Some(v) = t.get("allowed_outbound_hosts") {
            let key = join(path, "allowed_outbound_hosts");
            for item in self.array(v, &key, "an array of URLs like \"https://api.example.com\"")? {
                let s = self.string(item, &key)?;
                let host = AllowedHost::parse(s).map_err(|m| {
                    self.err(item.span(), &key, m).help(
                        "write `scheme://host[:port]`: e.g. \"https://api.example.com\", \"https://*.example.com:8443\", \"http://127.0.0.1:*\"",
                    )
                })?;
                grants.allowed_outbound_hosts.push(host);
            }
        }
        if let Some(v) = t.get("key_value_stores") {
            let key = join(path, "key_value_stores");
            for item in self.array(v, &key, "an array of store labels like [\"default\"]")? {
                let s = self.string(item, &key)?;
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.starts_with(|c: char| c.is_ascii_lowercase())
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    });
                if !ok {
                    return Err(self
                        .err(item.span(), &key, format!("`{s}` is not a valid store label"))
                        .help("use lowercase letters, digits, `-` and `_`, starting with a letter (e.g. \"default\")"));
                }
                if !grants.key_value_stores.iter().any(|x| x == s) {
                    grants.key_value_stores.push(s.to_string());
                }
            }
        }
        if let Some(v) = t.get("files") {
            let key = join(path, "files");
            for (i, item) in self
                .array(v, &key, "an array of mounts")?
                .iter()
                .enumerate()
            {
                let ikey = format!("{key}[{i}]");
                grants.files.push(self.file_mount(item, &ikey)?);
            }
        }
        Ok(grants)
    }

    fn array<'a, 'i>(
        &self,
        v: &'a Spanned<DeValue<'i>>,
        key: &str,
        expected: &str,
    ) -> Result<&'a [Spanned<DeValue<'i>>], Diagnostic> {
        v.get_ref()
            .as_array()
            .map(|a| &a[..])
            .ok_or_else(|| self.type_err(v, key, expected))
    }

    fn file_mount(&self, item: &Spanned<DeValue<'_>>, key: &str) -> Result<FileMount, Diagnostic> {
        let relative = |s: &str, span: Span, k: &str| -> Result<(), Diagnostic> {
            let p = Path::new(s);
            if s.is_empty()
                || p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, PathComponent::Normal(_) | PathComponent::CurDir))
            {
                return Err(self
                    .err(span, k, format!("`{s}` is not inside the app directory"))
                    .help("give a path relative to the manifest, without `..`"));
            }
            Ok(())
        };
        match item.get_ref() {
            DeValue::String(s) => {
                relative(s, item.span(), key)?;
                Ok(FileMount {
                    source: MountSource::Glob(s.to_string()),
                    destination: "/".to_string(),
                    span: item.span(),
                    key: key.to_string(),
                })
            }
            DeValue::Table(t) => {
                self.check_keys(t, key, &["source", "destination"])?;
                let src_v = t.get("source").ok_or_else(|| {
                    self.err(
                        item.span(),
                        &join(key, "source"),
                        "this mount has no `source`",
                    )
                    .help("add `source = \"static\"` (a directory relative to the manifest)")
                })?;
                let src = self.string(src_v, &join(key, "source"))?;
                relative(src, src_v.span(), &join(key, "source"))?;
                let dst_v = t.get("destination").ok_or_else(|| {
                    self.err(
                        item.span(),
                        &join(key, "destination"),
                        "this mount has no `destination`",
                    )
                    .help("add `destination = \"/static\"` (where the guest sees it)")
                })?;
                let dst = self.string(dst_v, &join(key, "destination"))?;
                let dp = Path::new(dst);
                if !dst.starts_with('/')
                    || dp
                        .components()
                        .any(|c| matches!(c, PathComponent::ParentDir))
                {
                    return Err(self
                        .err(
                            dst_v.span(),
                            &join(key, "destination"),
                            format!(
                                "destination `{dst}` must be an absolute guest path without `..`"
                            ),
                        )
                        .help("write it like `/static`"));
                }
                Ok(FileMount {
                    source: MountSource::Dir(src.to_string()),
                    destination: dst.to_string(),
                    span: item.span(),
                    key: key.to_string(),
                })
            }
            _ => Err(self.type_err(
                item,
                key,
                "a path or glob string, or `{ source, destination }`",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str]) -> Vec<AllowedHost> {
        list.iter()
            .map(|s| AllowedHost::parse(s).expect("valid"))
            .collect()
    }

    fn check(list: &[&str], url: &str) -> Result<(), Denial> {
        let (scheme, rest) = url.split_once("://").expect("scheme");
        let authority = rest.split('/').next().unwrap_or("");
        check_url(&allowed(list), scheme, authority)
    }

    #[test]
    fn exact_host_scheme_and_port() {
        let l = &["https://api.example.com"];
        assert_eq!(check(l, "https://api.example.com/x"), Ok(()));
        assert_eq!(check(l, "https://api.example.com:443/x"), Ok(()));
        assert_eq!(check(l, "https://API.EXAMPLE.COM./x"), Ok(()));
        assert_eq!(check(l, "http://api.example.com/"), Err(Denial::NotAllowed));
        assert_eq!(
            check(l, "https://api.example.com:8443/"),
            Err(Denial::NotAllowed)
        );
        assert_eq!(
            check(l, "https://api.example.com.evil.net/"),
            Err(Denial::NotAllowed)
        );
        assert_eq!(
            check(l, "https://evilapi.example.com/"),
            Err(Denial::NotAllowed)
        );
        assert_eq!(check(l, "https://example.com/"), Err(Denial::NotAllowed));
        assert_eq!(check(l, "ftp://api.example.com/"), Err(Denial::Scheme));
        assert_eq!(
            check(l, "https://user:pw@api.example.com@evil.net/"),
            Err(Denial::Userinfo)
        );
        assert_eq!(
            check(l, "https://api.example.com%2f@evil/"),
            Err(Denial::Userinfo)
        );
        assert_eq!(
            check(l, "https://api.example.com%2f/"),
            Err(Denial::BadHost)
        );
    }

    #[test]
    fn ip_literals_never_pass_as_names() {
        let l = &[
            "https://api.example.com",
            "http://127.0.0.1:*",
            "http://[::1]:8080",
        ];
        for url in [
            "https://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://169.254.169.254/",
            "http://[fd00::1]/",
            "http://0.0.0.0/",
            "http://[::1]:8081/",
        ] {
            assert!(check(l, url).is_err(), "{url} must be denied");
        }
        assert_eq!(check(l, "http://127.0.0.1:9999/"), Ok(()));
        assert_eq!(check(l, "http://127.0.0.1/"), Ok(()));
        assert_eq!(check(l, "http://[::1]:8080/"), Ok(()));
        assert_eq!(check(l, "http://[0:0::1]:8080/"), Ok(()));
    }

    #[test]
    fn look_alike_hosts_do_not_match() {
        // A punycode homoglyph of apple.com is a different name; non-ASCII never passes.
        let l = &["https://apple.com"];
        assert_eq!(
            check(l, "https://xn--pple-43d.com/"),
            Err(Denial::NotAllowed)
        );
        assert_eq!(check(l, "https://аpple.com/"), Err(Denial::BadHost));
        assert_eq!(check(l, "https://apple.com:443/"), Ok(()));
    }

    #[test]
    fn subdomain_wildcards() {
        let l = &["https://*.example.com:8443"];
        assert_eq!(check(l, "https://a.example.com:8443/"), Ok(()));
        assert_eq!(check(l, "https://a.b.example.com:8443/"), Ok(()));
        assert_eq!(
            check(l, "https://example.com:8443/"),
            Err(Denial::NotAllowed)
        );
        assert_eq!(check(l, "https://a.example.com/"), Err(Denial::NotAllowed));
        assert_eq!(
            check(l, "https://aexample.com:8443/"),
            Err(Denial::NotAllowed)
        );
        assert_eq!(
            check(l, "https://a.example.com.evil.net:8443/"),
            Err(Denial::NotAllowed)
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        for s in [
            "api.example.com",
            "ftp://a.com",
            "https://*",
            "https://*:*",
            "https://a.com/path",
            "https://u@a.com",
            "https://a.com:0",
            "https://a.com:99999",
            "https://0x7f.1",
            "https://127.1",
            "https://*.127.0.0.1",
            "https://[::1",
        ] {
            assert!(AllowedHost::parse(s).is_err(), "{s} must be refused");
        }
        assert_eq!(
            AllowedHost::parse("HTTPS://API.Example.COM./").map(|a| a.host),
            Ok(HostPattern::Exact("api.example.com".into()))
        );
    }

    #[test]
    fn templates() {
        assert_eq!(
            parse_template("Bearer {{ token }}!"),
            Ok(vec![
                TemplatePart::Literal("Bearer ".into()),
                TemplatePart::Variable("token".into()),
                TemplatePart::Literal("!".into())
            ])
        );
        assert!(parse_template("{{ token").is_err());
        assert!(parse_template("{{ Token }}").is_err());
        assert!(parse_template("x }}").is_err());
    }
}
