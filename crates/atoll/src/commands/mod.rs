//! One module per subcommand, each with an `execute()`.

pub mod add;
mod build;
pub mod key;
pub mod publish;
pub mod pull;
pub mod registry;
pub mod search;
mod share;
pub mod up;
pub mod yank;
