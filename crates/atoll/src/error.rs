//! The one error type of the crate: what went wrong in a load or a call, told apart so a
//! host can react (retry later when busy, blame the plugin for a trap, fix its own
//! arguments).

use std::time::Duration;

use atoll_engine::LoadError;

/// What went wrong. Match on the variant to tell a plugin's fault (a trap, a limit) from
/// the host's (invalid input, a link error) and from load (busy).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), atoll::Error> {
/// # let runtime = atoll::Runtime::new()?;
/// # let policy = atoll::Policy::deny_all();
/// let limits = atoll::Limits::default().deadline(std::time::Duration::from_millis(100));
/// # let plugin = runtime.load_file(test_programs_artifacts::TEXT, &policy, &limits).await?;
/// match plugin.call_wave("spin", &[]).await {
///     Ok(out) => println!("{out}"),
///     Err(atoll::Error::Deadline { limit }) => eprintln!("too slow (over {limit:?})"),
///     Err(e @ atoll::Error::Trap { .. }) => panic!("the plugin crashed: {e}"),
///     Err(e) => panic!("{e}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call ran past its wall-clock deadline (guest code and host calls together)
    /// and was stopped.
    #[error(
        "the call ran past its deadline of {limit:?} and was stopped; raise Limits::deadline if the work is expected to take longer"
    )]
    Deadline {
        /// The deadline it had.
        limit: Duration,
    },
    /// The call used up its fuel.
    #[error(
        "the call used up its fuel ({limit} units, about one per wasm instruction) and was stopped; raise Limits::fuel"
    )]
    Fuel {
        /// The fuel it had.
        limit: u64,
    },
    /// The guest tried to grow its memory past its limit.
    #[error(
        "the plugin reached its memory limit of {limit} bytes ({detail}); raise Limits::memory"
    )]
    Memory {
        /// The limit in bytes.
        limit: u64,
        /// What it tried.
        detail: String,
    },
    /// The guest trapped: a panic, `unreachable`, an out-of-bounds access, a stack
    /// overflow. The instance is gone; the host and other instances are not affected.
    #[error("the plugin trapped: {message}{}", backtrace_suffix(.backtrace))]
    Trap {
        /// wasmtime's trap code, when the trap has one.
        code: Option<wasmtime::Trap>,
        /// The trap's message.
        message: String,
        /// The guest's functions at the trap, innermost first (names where the component
        /// has them).
        backtrace: Vec<String>,
    },
    /// The guest trapped after it was refused a capability its policy does not grant
    /// (the trap is often its panic at the refusal); `cause` is the trap. Limits
    /// (deadline, fuel, memory) are reported as themselves, never wrapped in this.
    #[error("capability denied: {capability} is not granted by the policy; then {cause}")]
    Denied {
        /// What it asked for, e.g. "outbound HTTP to `http://example.com/`".
        capability: String,
        /// How the call then failed.
        cause: Box<Error>,
    },
    /// The component needs an import the runtime does not provide (a world the host
    /// does not implement).
    #[error("cannot link the plugin: {message}")]
    Link {
        /// The import (or export) concerned, when the message names one.
        import: Option<String>,
        /// wasmtime's full message.
        message: String,
    },
    /// The bytes are not a component atoll can run.
    #[error("invalid component: {reason}; {help}")]
    InvalidComponent {
        /// What is wrong.
        reason: String,
        /// How to fix it.
        help: String,
    },
    /// The caller's input was wrong: argument count or types, a WAVE value that does not
    /// parse, a policy or limits value out of range.
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong, naming the parameter or field.
        message: String,
    },
    /// The plugin has no function of that name (or the plain name is ambiguous).
    #[error("{message}; the plugin exports:\n{}", .available.join("\n"))]
    NoSuchFunction {
        /// Why the name did not resolve to one function.
        message: String,
        /// Every exported function with its signature.
        available: Vec<String>,
    },
    /// All of the plugin's instances were busy for the whole checkout timeout.
    #[error(
        "all {max_instances} instances of the plugin stayed busy for {waited:?}; raise Limits::max_instances or Limits::checkout_timeout, or call less often"
    )]
    Busy {
        /// How long the call waited.
        waited: Duration,
        /// The plugin's limit.
        max_instances: u32,
    },
    /// The runtime's instance pool, shared by all its plugins, is full: every slot
    /// ([`RuntimeBuilder::max_instances`](crate::RuntimeBuilder::max_instances)) holds a
    /// live instance. Retry later, or build the runtime with more.
    #[error(
        "the runtime's instance pool is full (all its slots hold live instances of its plugins); retry later, or raise RuntimeBuilder::max_instances"
    )]
    PoolFull,
    /// Not the guest's trap: a host function returned an error, or the embedder's own
    /// closure did (for example a world's bindings that do not match the component's
    /// exports).
    #[error("the call failed on the host side: {message}")]
    Host {
        /// The error's chain, joined.
        message: String,
    },
    /// A policy grant could not be set up (a directory that does not exist, a store
    /// that does not open).
    #[error("cannot apply the policy: {0}")]
    Policy(String),
    /// A file could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The runtime itself failed (the engine could not be built, a blocking call made
    /// inside an async runtime, an internal error).
    #[error("{0}")]
    Runtime(String),
}

fn backtrace_suffix(frames: &[String]) -> String {
    if frames.is_empty() {
        String::new()
    } else {
        format!(" (in {})", frames.join(" <- "))
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        match &e {
            LoadError::Link(message) => Error::Link {
                import: first_quoted(message),
                message: format!(
                    "{message}; the runtime provides WASI 0.2, wasi:http's outgoing handler, wasi:config, wasi:keyvalue and wasi:logging, plus the host functions added with RuntimeBuilder::link"
                ),
            },
            LoadError::Engine(m) => Error::Runtime(m.clone()),
            _ => Error::InvalidComponent {
                reason: e.to_string(),
                help: e.help().to_string(),
            },
        }
    }
}

/// The first name between backticks in a wasmtime message (it quotes the import it
/// could not find: "component imports instance `acme:x/y`, but ...").
fn first_quoted(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

#[cfg(test)]
mod tests {
    use super::first_quoted;

    #[test]
    fn the_import_is_taken_from_the_message() {
        assert_eq!(
            first_quoted("component imports instance `acme:x/y@1.0.0`, but a matching implementation was not found in the linker").as_deref(),
            Some("acme:x/y@1.0.0")
        );
        assert_eq!(first_quoted("no quotes"), None);
        assert_eq!(first_quoted("one ` only"), None);
    }
}
