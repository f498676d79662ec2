//! `wasi:logging/logging@0.1.0-draft`: a guest's structured log calls, as host log lines
//! tagged with app, component and the guest's `context`, at the guest's level
//! (`critical` logs as `error`). Like stdout, a message is cut at [`MAX_LINE`] bytes,
//! at most [`MAX_PER_REQUEST`] bytes of messages are logged per instance, and secret
//! values are redacted. Linked for every component: logging needs no grant.
//!
//! Cost: nothing unless the guest logs; the per-instance byte count is a plain field.

use wasmtime::component::{HasData, Linker};

use crate::logs::{LogTarget, MAX_LINE, MAX_PER_REQUEST};

/// Bytes a `log` call counts against [`MAX_PER_REQUEST`] at least (so at most 1024 calls
/// per instance are logged, however short).
const MIN_CHARGE: usize = 64;
use crate::{CapabilityView, InstanceCapabilities};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/logging",
        world: "wasi:logging/imports",
    });
}

use bindings::wasi::logging::logging::{Host, Level, add_to_linker as add_logging};

struct HasLogging;

impl HasData for HasLogging {
    type Data<'a> = &'a mut InstanceCapabilities;
}

pub(crate) fn add_to_linker<T: CapabilityView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn view<T: CapabilityView>(t: &mut T) -> &mut InstanceCapabilities {
        t.capabilities().0
    }
    add_logging::<T, HasLogging>(linker, view::<T>)
}

/// Cut `s` to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `text` cut to at most `max` bytes (on a character boundary, never inside a secret)
/// and redacted.
fn redact_cut<'t>(target: &LogTarget, text: &'t str, max: usize) -> std::borrow::Cow<'t, str> {
    if text.len() <= max {
        return target.redact(text);
    }
    let piece = cut(text, target.safe_cut(text.as_bytes(), max));
    target.redact_cut_off(piece)
}

impl Host for &mut InstanceCapabilities {
    fn log(&mut self, level: Level, context: String, message: String) {
        if self.logged >= MAX_PER_REQUEST {
            return;
        }
        // Every call counts for at least a short line, so empty messages cannot make
        // an unbounded number of log lines.
        self.logged += (message.len() + context.len()).max(MIN_CHARGE);
        let target = &self.grants.target;
        let (app, component) = (&target.app, &target.component);
        // Cut where no secret is split, then redact: a secret across the cut would
        // otherwise be logged as its first part.
        let message = redact_cut(target, &message, MAX_LINE);
        let context = redact_cut(target, &context, 256);
        match level {
            Level::Trace => {
                tracing::trace!(app = %app, component = %component, context = %context, "{message}")
            }
            Level::Debug => {
                tracing::debug!(app = %app, component = %component, context = %context, "{message}")
            }
            Level::Info => {
                tracing::info!(app = %app, component = %component, context = %context, "{message}")
            }
            Level::Warn => {
                tracing::warn!(app = %app, component = %component, context = %context, "{message}")
            }
            Level::Error | Level::Critical => {
                tracing::error!(app = %app, component = %component, context = %context, "{message}")
            }
        }
        if self.logged >= MAX_PER_REQUEST {
            tracing::warn!(
                app = %app,
                component = %component,
                "guest wasi:logging output over {MAX_PER_REQUEST} bytes in one request; the rest is not logged"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn messages_are_cut_on_character_boundaries() {
        assert_eq!(cut("hello", 10), "hello");
        assert_eq!(cut("hello", 3), "hel");
        // "é" is two bytes: never split it.
        assert_eq!(cut("aé", 2), "a");
    }
}
