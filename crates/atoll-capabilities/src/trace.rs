//! Traces of what a guest did: the span a trigger opens for a request or a tick, the child
//! spans of its host calls (outbound HTTP, key-value), and the W3C trace-context headers
//! (`traceparent`, and the caller's `tracestate` carried along) that link them to the
//! caller and to the services the guest calls.
//!
//! Only the OpenTelemetry API (`opentelemetry`, no SDK): the exporter, its batching and
//! the `OTEL_*` configuration are the binary's (`atoll-telemetry`), or the embedder's own.
//! Off, an instance carries `None` and a host call pays one branch.

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, KeyValue};

/// Where spans go: a tracer from whatever provider the host set up. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tracer(Arc<BoxedTracer>);

impl Tracer {
    /// Spans go to `tracer` (for instance `BoxedTracer::new(Box::new(provider.tracer("atoll")))`).
    pub fn new(tracer: BoxedTracer) -> Self {
        Self(Arc::new(tracer))
    }

    /// Open a span named `name`, a child of `parent` (a remote caller's, from
    /// [`parse_traceparent`], or none: a new trace), and return the context that carries
    /// it, for [`InstanceTrace`] and for [`span_of`].
    pub fn start(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: Option<SpanContext>,
        attributes: Vec<KeyValue>,
    ) -> Context {
        let parent = match parent {
            Some(remote) => Context::new().with_remote_span_context(remote),
            None => Context::new(),
        };
        let span = self
            .0
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&*self.0, &parent);
        parent.with_span(span)
    }
}

/// The span a trigger opened for one request or tick, as that instance's host calls see
/// it: their spans are its children.
#[derive(Clone, Debug)]
pub struct InstanceTrace {
    pub(crate) tracer: Tracer,
    pub(crate) context: Context,
}

impl InstanceTrace {
    /// Host calls of the instance become children of the span in `context`.
    pub fn new(tracer: Tracer, context: Context) -> Self {
        Self { tracer, context }
    }

    /// A child span for one host call; ended when the returned guard drops.
    pub(crate) fn child(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
    ) -> HostSpan {
        let span = self
            .tracer
            .0
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(&*self.tracer.0, &self.context);
        HostSpan(self.context.with_span(span))
    }
}

/// A host call's span, ended on drop (a call the guest abandons still ends its span).
pub(crate) struct HostSpan(Context);

impl HostSpan {
    pub(crate) fn set(&self, attribute: KeyValue) {
        self.0.span().set_attribute(attribute);
    }

    pub(crate) fn fail(&self, message: impl Into<Cow<'static, str>>) {
        self.0.span().set_status(Status::error(message));
    }

    /// The `traceparent` value naming this span, for an outgoing request.
    pub(crate) fn traceparent(&self) -> String {
        format_traceparent(self.0.span().span_context())
    }

    /// The `tracestate` value the trace carries (the caller's, passed on), if any.
    pub(crate) fn tracestate(&self) -> Option<String> {
        let state = self.0.span().span_context().trace_state().header();
        (!state.is_empty()).then_some(state)
    }
}

impl Drop for HostSpan {
    fn drop(&mut self) {
        self.0.span().end();
    }
}

/// The span a context carries, to set its status and attributes and to end it.
pub fn span_of(context: &Context) -> opentelemetry::trace::SpanRef<'_> {
    context.span()
}

/// A W3C trace-context `traceparent` value (`00-<trace id>-<parent id>-<flags>`) as a
/// remote parent; `None` for anything malformed (an invalid header starts a new trace,
/// as the spec asks). Versions above 00 are read for their first four fields.
pub fn parse_traceparent(value: &[u8]) -> Option<SpanContext> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let rest = parts.next();
    let lower_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower_hex(version, 2) || version == "ff" || !lower_hex(trace, 32) || !lower_hex(parent, 16)
    {
        return None;
    }
    if !lower_hex(flags, 2) || (version == "00" && rest.is_some()) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(parent).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let cx = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    cx.is_valid().then_some(cx)
}

/// `cx` carrying the caller's `tracestate` (each header value, in order, as received):
/// the list the W3C spec allows (at most 32 `key=value` members, keys and values of the
/// allowed characters), combined. Anything invalid is dropped whole, as the spec asks,
/// and the trace goes on without it.
pub fn with_tracestate<'a>(
    cx: SpanContext,
    values: impl IntoIterator<Item = &'a [u8]>,
) -> SpanContext {
    let mut joined = String::new();
    for v in values {
        let Ok(v) = std::str::from_utf8(v) else {
            return cx;
        };
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(v);
    }
    if joined.is_empty() || joined.len() > 512 {
        return cx;
    }
    // Empty list members (`a=1,,b=2`) are allowed and skipped.
    let members: Vec<&str> = joined
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if members.len() > 32 {
        return cx;
    }
    let Ok(state) = members.join(",").parse::<TraceState>() else {
        return cx;
    };
    SpanContext::new(
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags(),
        cx.is_remote(),
        state,
    )
}

/// The `traceparent` value for `cx`.
pub fn format_traceparent(cx: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_what_the_spec_rejects() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parse_traceparent(good.as_bytes()).expect("valid");
        assert_eq!(
            cx.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex")
        );
        assert!(cx.is_sampled() && cx.is_remote());
        assert_eq!(format_traceparent(&cx), good);
        // A later version may add fields; 00 may not.
        assert!(
            parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(parse_traceparent(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn tracestate_is_carried_combined_and_dropped_whole_when_invalid() {
        let cx = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        let header = |cx: &SpanContext| cx.trace_state().header();
        let one = with_tracestate(
            cx.clone(),
            [&b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"[..]],
        );
        assert_eq!(header(&one), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
        assert_eq!(one.trace_id(), cx.trace_id());
        assert_eq!(one.span_id(), cx.span_id());
        assert!(one.is_remote() && one.is_sampled());
        // Two header lines are one list, in order; empty members are skipped.
        let two = with_tracestate(cx.clone(), [&b"a=1,,"[..], &b" b=2"[..]]);
        assert_eq!(header(&two), "a=1,b=2");
        for bad in [&b"no-equals-sign"[..], b"UPPER=1", b"a=1,a", b"\xff=1"] {
            assert_eq!(header(&with_tracestate(cx.clone(), [bad])), "", "{bad:?}");
        }
        let many: String = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(header(&with_tracestate(cx.clone(), [many.as_bytes()])), "");
        assert_eq!(header(&with_tracestate(cx, std::iter::empty())), "");
    }
}
