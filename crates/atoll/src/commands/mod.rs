//! One module per subcommand, each with an `execute()`.

mod build;
pub mod up;
