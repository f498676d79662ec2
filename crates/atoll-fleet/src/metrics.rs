//! A node's own families on the admin server (`atoll node --admin`): beside what its
//! guests did (the same families as `atoll up --admin`), whether it is ready, whether the
//! control plane answers, and, per app, the epoch it is told to serve against the one it
//! serves. An alert on `atoll_fleet_app_desired_epoch != atoll_fleet_app_served_epoch`
//! held for a minute finds a node left behind.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use atoll_admin::prometheus::{family, labels};
use serde_json::{Value, json};

use crate::node::Node;
use crate::records::short;

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

impl atoll_admin::Extension for Node {
    fn key(&self) -> &'static str {
        "fleet"
    }

    fn state(&self) -> Value {
        let report = self.report();
        let desired: serde_json::Map<String, Value> = self
            .desired()
            .into_iter()
            .map(|(app, (version, epoch))| (app, json!({ "version": version, "epoch": epoch })))
            .collect();
        json!({
            "node": report,
            "desired": desired,
            "control_plane_connected": self.connected(),
        })
    }

    fn prometheus(&self, out: &mut String) {
        let report = self.report();
        let desired = self.desired();
        let counters = self.counters();
        gauge(
            out,
            "atoll_fleet_node_ready",
            "1 when the node serves every app of the last desired state it knows (what /.atoll/ready answers).",
            u64::from(report.ready),
        );
        gauge(
            out,
            "atoll_fleet_node_draining",
            "1 while the node stops: not ready, finishing the requests in flight.",
            u64::from(report.draining),
        );
        gauge(
            out,
            "atoll_fleet_control_plane_connected",
            "1 while a session with NATS JetStream is open. 0 changes nothing served: the node keeps what it has and catches up on reconnect.",
            u64::from(self.connected()),
        );
        counter(
            out,
            "atoll_fleet_control_plane_sessions_total",
            "Control-plane sessions opened (the first and each reconnect).",
            counters.sessions.load(Ordering::Relaxed),
        );
        counter(
            out,
            "atoll_fleet_swaps_total",
            "Versions swapped in (from the state directory at start, or committed by a deploy or rollback).",
            counters.swaps.load(Ordering::Relaxed),
        );
        counter(
            out,
            "atoll_fleet_version_failures_total",
            "Versions this node failed to stage or load (the message is in `atoll status` and the log).",
            counters.failures.load(Ordering::Relaxed),
        );

        family(
            out,
            "atoll_fleet_app_desired_epoch",
            "gauge",
            "The epoch of the app's last commit this node has seen.",
        );
        for (app, (_, epoch)) in &desired {
            let _ = writeln!(
                out,
                "atoll_fleet_app_desired_epoch{} {epoch}",
                labels(&[("app", app)])
            );
        }
        family(
            out,
            "atoll_fleet_app_served_epoch",
            "gauge",
            "The epoch of the commit whose version this node serves for the app.",
        );
        for (app, served) in &report.apps {
            let _ = writeln!(
                out,
                "atoll_fleet_app_served_epoch{} {}",
                labels(&[("app", app)]),
                served.epoch
            );
        }
        family(
            out,
            "atoll_fleet_app_version_info",
            "gauge",
            "1 for each version the node knows of an app, by state: desired (last commit seen), served, staged (compiled, waiting for a commit). `version` is the id's first 12 hex digits.",
        );
        let info = |out: &mut String, app: &str, version: &str, state: &str| {
            let _ = writeln!(
                out,
                "atoll_fleet_app_version_info{} 1",
                labels(&[("app", app), ("version", short(version)), ("state", state)])
            );
        };
        for (app, (version, _)) in &desired {
            info(out, app, version, "desired");
        }
        for (app, served) in &report.apps {
            info(out, app, &served.version, "served");
        }
        for (app, version) in &report.staged {
            info(out, app, version, "staged");
        }
        family(
            out,
            "atoll_fleet_app_load_seconds",
            "gauge",
            "How long the served version took on this node, by phase: fetch (blobs from the control plane; 0 when cached) and compile (or load from the compile cache).",
        );
        for (app, served) in &report.apps {
            for (phase, ms) in [("fetch", served.fetch_ms), ("compile", served.compile_ms)] {
                let _ = writeln!(
                    out,
                    "atoll_fleet_app_load_seconds{} {}",
                    labels(&[("app", app), ("phase", phase)]),
                    ms as f64 / 1e3
                );
            }
        }
        family(
            out,
            "atoll_fleet_app_failing",
            "gauge",
            "1 when the node's last attempt at a version of the app failed (cleared by the next success).",
        );
        for app in report.errors.keys() {
            let _ = writeln!(out, "atoll_fleet_app_failing{} 1", labels(&[("app", app)]));
        }
    }
}
