//! Prometheus metrics for node_exporter's textfile collector: one `.prom` file, replaced
//! atomically (temporary file + rename; the temporary name does not end in `.prom`, so the
//! collector never reads half a file).
//!
//! The daemon fills a [`Metrics`] (incidents, knobs, drift) and either writes it itself with
//! [`write_textfile`] or hands it to [`super::Dispatcher::publish_metrics`], which adds the
//! delivery counters and writes it on its own thread, so a slow disk under the textfile
//! directory never holds up the caller.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::DeliveryStats;
use crate::detect::types::{Kind, Severity};
use crate::host::sys::{Root, SysError};

/// What the textfile says. A plain struct: the daemon fills what it knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Incidents open now, by kind and severity.
    pub incidents_open: BTreeMap<(Kind, Severity), u64>,
    /// Incidents opened since the daemon started, by kind.
    pub incidents_total: BTreeMap<Kind, u64>,
    /// Notifications acknowledged, by sink.
    pub delivered: BTreeMap<String, u64>,
    /// Failed delivery attempts, by sink.
    pub failed: BTreeMap<String, u64>,
    /// Notifications dropped because a sink's spool was full, by sink.
    pub dropped: BTreeMap<String, u64>,
    /// Undelivered notifications in the spool (all sinks).
    pub spool_entries: u64,
    /// Knobs the profile holds at its value now.
    pub knobs_applied: u64,
    /// Drift found (and repaired or reported) since the daemon started.
    pub drift_total: u64,
    /// Each mount's ride-out (the tuning pipeline's figure): seconds a stall may last
    /// before the guest fails I/O there; `None`: it never gives up.
    pub rideout: Vec<(String, Option<u64>)>,
}

impl Metrics {
    /// Copies a dispatcher's counters in.
    pub fn add_delivery(&mut self, stats: &DeliveryStats) {
        self.spool_entries = 0;
        for s in &stats.sinks {
            self.delivered.insert(s.sink.clone(), s.delivered);
            self.failed.insert(s.sink.clone(), s.failed_attempts);
            self.dropped.insert(s.sink.clone(), s.dropped);
            self.spool_entries += s.queued;
        }
    }
}

/// A label value as the exposition format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn per_sink(out: &mut String, name: &str, help: &str, values: &BTreeMap<String, u64>) {
    header(out, name, "counter", help);
    for (sink, v) in values {
        let _ = writeln!(out, "{name}{{sink=\"{}\"}} {v}", escape(sink));
    }
}

/// The file's text.
pub fn render_textfile(m: &Metrics) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "tunerd_incidents_open",
        "gauge",
        "Storage incidents open now.",
    );
    for ((kind, severity), v) in &m.incidents_open {
        let _ = writeln!(
            out,
            "tunerd_incidents_open{{kind=\"{}\",severity=\"{}\"}} {v}",
            escape(&kind.name()),
            severity.as_str()
        );
    }
    header(
        &mut out,
        "tunerd_incidents_total",
        "counter",
        "Storage incidents opened since tunerd started.",
    );
    for (kind, v) in &m.incidents_total {
        let _ = writeln!(
            out,
            "tunerd_incidents_total{{kind=\"{}\"}} {v}",
            escape(&kind.name())
        );
    }
    per_sink(
        &mut out,
        "tunerd_notifications_delivered_total",
        "Notifications acknowledged by a sink.",
        &m.delivered,
    );
    per_sink(
        &mut out,
        "tunerd_notifications_failed_total",
        "Failed delivery attempts (each retry counts).",
        &m.failed,
    );
    per_sink(
        &mut out,
        "tunerd_notifications_dropped_total",
        "Notifications dropped because the sink's spool was full.",
        &m.dropped,
    );
    header(
        &mut out,
        "tunerd_spool_entries",
        "gauge",
        "Notifications waiting in the spool.",
    );
    let _ = writeln!(out, "tunerd_spool_entries {}", m.spool_entries);
    header(
        &mut out,
        "tunerd_knobs_applied",
        "gauge",
        "Knobs held at the profile's value.",
    );
    let _ = writeln!(out, "tunerd_knobs_applied {}", m.knobs_applied);
    header(
        &mut out,
        "tunerd_drift_total",
        "counter",
        "Knobs found drifted from the profile since tunerd started.",
    );
    let _ = writeln!(out, "tunerd_drift_total {}", m.drift_total);
    header(
        &mut out,
        "tunerd_rideout_seconds",
        "gauge",
        "How long a storage stall may last before the guest fails I/O on the mount (+Inf: never).",
    );
    for (mount, secs) in &m.rideout {
        let value = secs.map_or_else(|| "+Inf".to_string(), |s| s.to_string());
        let _ = writeln!(
            out,
            "tunerd_rideout_seconds{{mount=\"{}\"}} {value}",
            escape(mount)
        );
    }
    out
}

/// Writes the textfile atomically. `path` is absolute as configured (`/run/.../tunerd.prom`)
/// and taken under `root`.
pub fn write_textfile(root: &Root, path: &str, metrics: &Metrics) -> Result<(), SysError> {
    root.write_atomic(
        path.trim_start_matches('/'),
        render_textfile(metrics).as_bytes(),
    )
}
