//! The Prometheus text exposition format (version 0.0.4) of a metrics snapshot.
//!
//! Names follow the OpenTelemetry semantic conventions where one exists, as an OTLP to
//! Prometheus translation would name them (`http.server.request.duration` in seconds is
//! `http_server_request_duration_seconds`, its attributes `http_route`,
//! `http_request_method`, `http_response_status_code`), and atoll's own start with
//! `atoll_`. Every family is written whole under its `# HELP` and `# TYPE`, so
//! `promtool check metrics` accepts it.

use std::fmt::Write;

use atoll_runtime::metrics::{
    BUCKETS, ComponentSnapshot, FAILURE_KINDS, HistogramSnapshot, MetricsSnapshot, REFUSAL_REASONS,
    failure_kind_label,
};

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Process-wide values beside the guests' counts.
#[derive(Debug, Clone, Default)]
pub struct ProcessInfo {
    /// Unix seconds at start.
    pub start_time_seconds: f64,
    /// Resident set size, if it could be read.
    pub resident_bytes: Option<u64>,
    /// atoll's version.
    pub version: &'static str,
}

/// Render `snapshot` and `process` as Prometheus text.
pub fn render(snapshot: &MetricsSnapshot, process: &ProcessInfo) -> String {
    let mut out = String::with_capacity(4096 + snapshot.components.len() * 4096);
    let comps = &snapshot.components;

    family(
        &mut out,
        "http_server_request_duration_seconds",
        "histogram",
        "Duration of HTTP server requests routed to a component, from arrival to the response head.",
    );
    for c in comps {
        for (key, h) in &c.http {
            let status = key.status_label();
            let labels = labels(&[
                ("app", &c.app),
                ("component", &c.component),
                ("http_route", &key.route),
                ("http_request_method", key.method_label()),
                ("http_response_status_code", &status),
            ]);
            histogram(&mut out, "http_server_request_duration_seconds", &labels, h);
        }
    }

    family(
        &mut out,
        "atoll_http_unrouted_requests_total",
        "counter",
        "HTTP requests no route matched (answered 404).",
    );
    let _ = writeln!(
        out,
        "atoll_http_unrouted_requests_total {}",
        snapshot.unrouted
    );

    family(
        &mut out,
        "atoll_telemetry_spans_total",
        "counter",
        "Spans given to the OpenTelemetry exporter, by outcome: exported, dropped_queue_full (the collector was slow or down and the queue filled), dropped_export_failed (the export failed after retries). Zero without OTEL_EXPORTER_OTLP_ENDPOINT.",
    );
    for (outcome, n) in ["exported", "dropped_queue_full", "dropped_export_failed"]
        .iter()
        .zip(snapshot.spans)
    {
        let _ = writeln!(
            out,
            "atoll_telemetry_spans_total{{outcome=\"{outcome}\"}} {n}"
        );
    }

    family(
        &mut out,
        "atoll_guest_run_duration_seconds",
        "histogram",
        "Duration of guest runs (instantiate, call and, for HTTP, the streamed body), every outcome.",
    );
    for c in comps {
        histogram(
            &mut out,
            "atoll_guest_run_duration_seconds",
            &component_labels(c),
            &c.run,
        );
    }

    family(
        &mut out,
        "atoll_instantiation_duration_seconds",
        "histogram",
        "Time to instantiate a component from its pre-instantiated, pooled slot.",
    );
    for c in comps {
        histogram(
            &mut out,
            "atoll_instantiation_duration_seconds",
            &component_labels(c),
            &c.instantiate,
        );
    }

    family(
        &mut out,
        "atoll_guest_runs_total",
        "counter",
        "Guest runs by outcome: ok (returned; the answer may be an error response), cancelled (its trigger dropped it: the HTTP client went away), or the failure kind (timeout, memory_limit, stack_overflow, trap, capacity, node_memory, other).",
    );
    for c in comps {
        sample(
            &mut out,
            "atoll_guest_runs_total",
            &with(c, "outcome", "ok"),
            c.finished,
        );
        sample(
            &mut out,
            "atoll_guest_runs_total",
            &with(c, "outcome", "cancelled"),
            c.cancelled,
        );
        for (kind, n) in FAILURE_KINDS.iter().zip(c.failures) {
            sample(
                &mut out,
                "atoll_guest_runs_total",
                &with(c, "outcome", failure_kind_label(*kind)),
                n,
            );
        }
    }

    family(
        &mut out,
        "atoll_limit_hits_total",
        "counter",
        "Runs stopped by a limit: timeout, memory (the component's), stack, node_memory (the node's budget).",
    );
    for c in comps {
        for (limit, kind) in [
            ("timeout", 0),
            ("memory", 1),
            ("stack", 2),
            ("node_memory", 5),
        ] {
            sample(
                &mut out,
                "atoll_limit_hits_total",
                &with(c, "limit", limit),
                c.failures[kind],
            );
        }
    }

    family(
        &mut out,
        "atoll_admission_refusals_total",
        "counter",
        "Requests or ticks refused at admission (503 for HTTP), by reason: concurrency (max_concurrency reached), memory (node budget), failing (a failing component's few slots were taken).",
    );
    for c in comps {
        for (reason, n) in REFUSAL_REASONS.iter().zip(c.refusals) {
            sample(
                &mut out,
                "atoll_admission_refusals_total",
                &with(c, "reason", reason),
                n,
            );
        }
    }

    family(
        &mut out,
        "atoll_capability_denials_total",
        "counter",
        "Capabilities a guest asked for and was refused, by kind: outbound_http, socket, config (a key it has no variable for), key_value (a store not granted).",
    );
    for c in comps {
        for (kind, n) in atoll_capabilities::DENIAL_KINDS.iter().zip(c.denials) {
            sample(
                &mut out,
                "atoll_capability_denials_total",
                &with(c, "kind", kind),
                n,
            );
        }
    }

    family(
        &mut out,
        "atoll_instances_live",
        "gauge",
        "Instances running now.",
    );
    for c in comps {
        sample(
            &mut out,
            "atoll_instances_live",
            &component_labels(c),
            c.live,
        );
    }

    family(
        &mut out,
        "atoll_build_info",
        "gauge",
        "Always 1; the version of atoll serving.",
    );
    let _ = writeln!(
        out,
        "atoll_build_info{} 1",
        labels(&[("version", process.version)])
    );
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    );
    let _ = writeln!(
        out,
        "process_start_time_seconds {}",
        process.start_time_seconds
    );
    if let Some(rss) = process.resident_bytes {
        family(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    out
}

/// `# HELP` and `# TYPE` of a family (`kind`: counter, gauge, histogram).
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP {name} {}",
        help.replace('\\', "\\\\").replace('\n', "\\n")
    );
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn component_labels(c: &ComponentSnapshot) -> String {
    labels(&[("app", &c.app), ("component", &c.component)])
}

fn with(c: &ComponentSnapshot, key: &str, value: &str) -> String {
    labels(&[("app", &c.app), ("component", &c.component), (key, value)])
}

/// `{k="v",...}` with values escaped (backslash, quote, newline).
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for ch in v.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn sample(out: &mut String, name: &str, labels: &str, value: u64) {
    let _ = writeln!(out, "{name}{labels} {value}");
}

/// `_bucket` lines (cumulative, `le` added to `labels`), `_sum` in seconds, `_count`.
fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    let inner = labels.trim_start_matches('{').trim_end_matches('}');
    let sep = if inner.is_empty() { "" } else { "," };
    let mut cumulative = 0u64;
    for (i, n) in h.buckets.iter().enumerate() {
        cumulative += n;
        let le = match BUCKETS.get(i) {
            Some(b) => format!("{b}"),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(out, "{name}_bucket{{{inner}{sep}le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_sum{labels} {}", h.sum_nanos as f64 / 1e9);
    let _ = writeln!(out, "{name}_count{labels} {cumulative}");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use atoll_runtime::Metrics;

    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        let c = m.component(&"my \"app\"".into(), &"web".into());
        let route: Arc<str> = "/a\\b/...".into();
        c.http_request(
            &route,
            atoll_runtime::metrics::method_index("GET"),
            200,
            Duration::from_micros(30),
        );
        c.http_request(
            &route,
            atoll_runtime::metrics::method_index("GET"),
            200,
            Duration::from_millis(2),
        );
        let text = render(&m.snapshot(), &ProcessInfo::default());
        let bucket = |le: &str| {
            format!(
                "http_server_request_duration_seconds_bucket{{app=\"my \\\"app\\\"\",component=\"web\",http_route=\"/a\\\\b/...\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"{le}\"}}"
            )
        };
        assert!(
            text.contains(&format!("{} 1\n", bucket("0.00005"))),
            "{text}"
        );
        assert!(text.contains(&format!("{} 1\n", bucket("0.001"))), "{text}");
        assert!(
            text.contains(&format!("{} 2\n", bucket("0.0025"))),
            "{text}"
        );
        assert!(text.contains(&format!("{} 2\n", bucket("+Inf"))), "{text}");
        assert!(
            text.contains("http_request_method=\"GET\",http_response_status_code=\"200\"} 2\n")
        );
        assert!(text.contains(
            "atoll_guest_runs_total{app=\"my \\\"app\\\"\",component=\"web\",outcome=\"ok\"} 0\n"
        ));
        // Each family once.
        assert_eq!(
            text.matches("# TYPE atoll_guest_runs_total counter")
                .count(),
            1
        );
    }
}
