//! One module per subcommand, each with an `execute()`.

pub mod add;
pub mod build;
pub mod call;
pub mod inspect;
pub mod key;
pub mod oci;
pub mod publish;
pub mod pull;
pub mod registry;
pub mod search;
mod share;
pub mod up;
pub mod watch;
pub mod yank;

/// The manifest a single-app command works on: `-f FILE`, else `DIR/atoll.toml`, else
/// `./atoll.toml`.
pub(crate) fn manifest_path(
    dir: Option<&std::path::Path>,
    file: Option<&std::path::Path>,
) -> std::path::PathBuf {
    match (file, dir) {
        (Some(f), _) => f.to_path_buf(),
        (None, Some(d)) => d.join(atoll_manifest::MANIFEST_FILE),
        (None, None) => std::path::PathBuf::from(atoll_manifest::MANIFEST_FILE),
    }
}
