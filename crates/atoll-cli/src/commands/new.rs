//! `atoll new TEMPLATE NAME`: a new app from one of the templates embedded in the binary.
//!
//! The templates are plain files in `crates/atoll-cli/templates/<template>/` (tested end
//! to end by `tests/e2e/templates.rs`), embedded with `include_dir` so the binary needs
//! nothing beside it. Each has a `template.toml` (description, the toolchains it needs,
//! what to run next) that is not copied; in every other file, and in file names,
//! `{{name}}` becomes the app's name.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use include_dir::{Dir, DirEntry, include_dir};
use serde::Deserialize;

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Names cargo refuses for a package or a binary (they clash with its output
/// directories or Rust's own crates); the Rust templates use the app name for both.
const CARGO_RESERVED: &[&str] = &[
    "build",
    "deps",
    "examples",
    "incremental",
    "test",
    "core",
    "std",
    "alloc",
    "proc_macro",
    "proc-macro",
];

/// A template's `template.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateInfo {
    /// One line for `atoll new --list`.
    pub description: String,
    /// The guest toolchains a build needs (`rust`, `python`, `js`; see `atoll doctor`).
    #[serde(default)]
    pub toolchains: Vec<String>,
    /// What to run after `atoll new`, in the new directory.
    pub next: String,
}

/// One embedded template.
pub struct Template {
    pub name: &'static str,
    pub info: TemplateInfo,
    dir: &'static Dir<'static>,
}

/// Every embedded template, sorted by name.
pub fn templates() -> Result<Vec<Template>> {
    let mut out = Vec::new();
    for dir in TEMPLATES.dirs() {
        let name = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .context("a template directory name is not UTF-8")?;
        let info = dir
            .get_file(dir.path().join("template.toml"))
            .and_then(|f| f.contents_utf8())
            .with_context(|| format!("template `{name}` has no template.toml"))?;
        let info: TemplateInfo = toml::from_str(info)
            .with_context(|| format!("template `{name}`: bad template.toml"))?;
        out.push(Template { name, info, dir });
    }
    out.sort_by_key(|t| t.name);
    Ok(out)
}

/// Create a new app from a template.
#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  atoll new --list                    the templates, one per line
  atoll new http-rust hello           ./hello: an HTTP component in Rust
  cd hello && atoll up                build it and serve it on http://127.0.0.1:3000/
  atoll new http-python api --dir apps/api")]
pub struct NewCommand {
    /// The template (see --list).
    #[arg(required_unless_present = "list")]
    template: Option<String>,
    /// The app's name: lowercase letters, digits, `-` and `_`, starting with a letter.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// Where to create it [default: ./NAME]; it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// List the templates and exit.
    #[arg(long)]
    list: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl NewCommand {
    pub fn execute(self) -> Result<()> {
        let all = templates()?;
        if self.list {
            if self.json {
                let list: Vec<_> = all
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "name": t.name,
                            "description": t.info.description,
                            "toolchains": t.info.toolchains,
                        })
                    })
                    .collect();
                super::print_json(&list)?;
            } else {
                let width = all.iter().map(|t| t.name.len()).max().unwrap_or(0);
                for t in &all {
                    println!("{:width$}  {}", t.name, t.info.description);
                }
            }
            return Ok(());
        }
        let (Some(template), Some(name)) = (self.template, self.name) else {
            return Err(super::UsageError(
                "give a template and a name, e.g. `atoll new http-rust hello` (see `atoll new --list`)".into(),
            )
            .into());
        };
        let Some(t) = all.iter().find(|t| t.name == template) else {
            let names: Vec<&str> = all.iter().map(|t| t.name).collect();
            let hint = atoll_manifest::did_you_mean(&template, &names)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            return Err(super::UsageError(format!(
                "there is no template `{template}`: {hint}the templates are {} (`atoll new --list` describes them)",
                names.join(", ")
            ))
            .into());
        };
        atoll_manifest::check_name(&name).map_err(super::UsageError)?;
        if t.info.toolchains.iter().any(|t| t == "rust") && CARGO_RESERVED.contains(&name.as_str())
        {
            return Err(super::UsageError(format!(
                "`{name}` cannot name a Rust package (cargo reserves it): pick another name"
            ))
            .into());
        }
        let dir = self.dir.unwrap_or_else(|| PathBuf::from(&name));
        let written = instantiate(t, &name, &dir)?;
        if self.json {
            let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            super::print_json(&serde_json::json!({
                "template": t.name,
                "name": name,
                "dir": dir.display().to_string(),
                "files": files,
                "toolchains": t.info.toolchains,
            }))?;
        } else if super::verbosity() > super::Verbosity::Quiet {
            eprintln!(
                "created `{name}` in {} from the {} template ({} files)",
                dir.display(),
                t.name,
                written.len()
            );
            eprintln!("next: cd {} && {}", dir.display(), t.info.next);
        }
        Ok(())
    }
}

/// Write template `t` for app `name` into `dir` (which must not exist, or be empty);
/// returns the files written, relative to `dir`.
pub fn instantiate(t: &Template, name: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            bail!(
                "{} already exists and is not empty: pick another name or `--dir`, nothing was written",
                dir.display()
            );
        }
    } else if dir.exists() {
        bail!("{} exists and is not a directory", dir.display());
    }
    // Everything is rendered first, so a template error writes nothing.
    let mut files = Vec::new();
    collect(t.dir, t.dir.path(), name, &mut files)?;
    for (rel, contents) in &files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

fn collect(
    dir: &Dir<'_>,
    root: &Path,
    name: &str,
    out: &mut Vec<(PathBuf, Vec<u8>)>,
) -> Result<()> {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(d) => collect(d, root, name, out)?,
            DirEntry::File(f) => {
                let rel = f
                    .path()
                    .strip_prefix(root)
                    .context("a template file outside its template")?;
                if rel == Path::new("template.toml") {
                    continue;
                }
                let rel = PathBuf::from(render(&rel.to_string_lossy(), name));
                let contents = match f.contents_utf8() {
                    Some(text) => render(text, name).into_bytes(),
                    None => f.contents().to_vec(),
                };
                out.push((rel, contents));
            }
        }
    }
    Ok(())
}

fn render(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_names_its_parts() {
        let all = templates().expect("templates");
        let names: Vec<&str> = all.iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "cron-rust",
                "http-js",
                "http-python",
                "http-rust",
                "plugin-rust"
            ]
        );
        for t in &all {
            let mut files = Vec::new();
            collect(t.dir, t.dir.path(), "demo", &mut files).expect("renders");
            let has = |p: &str| files.iter().any(|(f, _)| f == Path::new(p));
            assert!(has("atoll.toml"), "{}: no atoll.toml", t.name);
            assert!(has("README.md"), "{}: no README.md", t.name);
            assert!(!has("template.toml"), "{}: template.toml copied", t.name);
            for (f, contents) in &files {
                let text = String::from_utf8_lossy(contents);
                assert!(
                    !text.contains("{{"),
                    "{}: {} keeps a placeholder",
                    t.name,
                    f.display()
                );
            }
            // Each manifest parses, with a build command that watches something.
            let dir = tempfile::tempdir().expect("tempdir");
            instantiate(t, "demo", dir.path()).expect("writes");
            let app = atoll_manifest::load(&dir.path().join("atoll.toml"))
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
            let c = &app.components["demo"];
            let build = c.build.as_ref().expect("a build command");
            assert!(!build.watch.is_empty(), "{}: no watch globs", t.name);
        }
    }

    #[test]
    fn a_non_empty_directory_is_refused_and_left_alone() {
        let all = templates().expect("templates");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("keep.txt"), "mine").expect("write");
        let err = instantiate(&all[0], "demo", dir.path()).expect_err("refused");
        assert!(err.to_string().contains("not empty"), "{err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read").collect();
        assert_eq!(left.len(), 1);
    }
}
