//! The outward contract, shared by both binaries: the bus names, the typed replies of
//! `org.tunerd.Tuner1` (their JSON is what `tunerctl --json` prints), what the service
//! announces as signals, and the exit codes. The service builds these values, the bus sends
//! them, `tunerctl` decodes them: one definition for the three.
//!
//! The JSON shapes and the D-Bus interface (dbus/org.tunerd.Tuner1.xml) are a promise to
//! scripts and monitors: change them only compatibly (new fields with `#[serde(default)]`).

use serde::{Deserialize, Serialize};

use crate::config::{DriftPolicy, InForce, OnStop};
use crate::detect::types::{Incident, Notification};
use crate::tune::apply::Drift;
use crate::tune::rideout::RideOut;

/// The well-known name on the system bus.
pub(crate) const NAME: &str = "org.tunerd.Tuner1";
/// The object path.
pub(crate) const PATH: &str = "/org/tunerd/Tuner1";
/// The interface.
pub(crate) const INTERFACE: &str = "org.tunerd.Tuner1";

/// Exit codes, for scripts and monitors.
pub(crate) mod exit {
    /// Everything as wanted.
    pub(crate) const OK: u8 = 0;
    /// A knob was rejected by the kernel, a revert failed, or the kernel state could not be read.
    pub(crate) const FAILURE: u8 = 1;
    /// Bad command line.
    // Returned by clap itself for a bad command line; named so that the table is whole.
    #[allow(dead_code)]
    pub(crate) const USAGE: u8 = 2;
    /// `verify`: at least one knob differs from the profile.
    pub(crate) const DRIFT: u8 = 3;
    /// The configuration or a profile is invalid; nothing was written.
    pub(crate) const CONFIG: u8 = 4;
    /// `events`: a storage incident is open; `scan`: the log shows storage trouble.
    pub(crate) const INCIDENT: u8 = 5;
}

/// How the machine is doing, as the `Health` property says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Health {
    Ok,
    /// A knob differs from the profile and policy is to report only.
    Drift,
    /// The kernel rejected a knob.
    Degraded,
    /// A storage incident is open.
    Failing,
}

impl Health {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Drift => "drift",
            Health::Degraded => "degraded",
            Health::Failing => "failing",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DriftRecord {
    /// Seconds since the epoch.
    pub at: u64,
    pub target: String,
    pub path: String,
    pub expected: String,
    pub actual: Option<String>,
    pub repaired: bool,
}

/// A knob another writer keeps setting back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContestedKnob {
    /// `sda scsi_timeout`.
    pub target: String,
    pub path: String,
    /// What the profile wants.
    pub ours: String,
    /// What the other writer sets (as last read).
    pub theirs: Option<String>,
    /// Repairs within the window that made it contested.
    pub repairs: u64,
    pub window_secs: u64,
    /// Seconds since the epoch.
    pub since: u64,
    /// tunerd stopped repairing it (on_contested = "back-off").
    pub backed_off: bool,
}

impl ContestedKnob {
    /// `sda scsi_timeout set back to 30 3 times in 600 s by another writer (tunerd wants
    /// 180); tunerd backed off until the next apply, switch or reload`: the log line, the
    /// incident's evidence and the status line say it the same way.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} set back to {} {} times in {} s by another writer (tunerd wants {}); {}",
            self.target,
            self.theirs.as_deref().unwrap_or("absent"),
            self.repairs,
            self.window_secs,
            self.ours,
            if self.backed_off {
                "tunerd backed off until the next apply, switch or reload"
            } else {
                "tunerd goes on repairing it (on_contested = \"repair\")"
            }
        )
    }
}

/// What the D-Bus side must announce after an operation (sent outside the state lock).
#[derive(Debug, Clone)]
pub(crate) enum Announce {
    Drift(DriftRecord),
    /// A knob became contested (logged; an incident; the status lists it).
    Contested(Box<ContestedKnob>),
    Incident(Box<Notification>),
    ProfileChanged {
        old: String,
        new: String,
    },
    PropertiesChanged,
}

/// `Status()`: the running daemon, as `tunerctl status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DaemonStatus {
    pub running: bool,
    pub pid: u32,
    pub root: String,
    pub uptime_secs: u64,
    pub started: u64,
    pub profile: String,
    pub chosen_by: String,
    pub platform: String,
    pub health: Health,
    pub last_verify: Option<u64>,
    pub drift_interval_secs: u64,
    pub drift_policy: DriftPolicy,
    pub on_stop: OnStop,
    pub hotplug_source: String,
    pub hotplug_events: u64,
    pub disks: usize,
    pub knobs: usize,
    pub at_value: usize,
    pub drift: usize,
    pub recent_drift: Vec<DriftRecord>,
    #[serde(default)]
    pub open_incidents: usize,
    /// A revert stopped enforcement until the next apply.
    #[serde(default)]
    pub suspended: bool,
    #[serde(default)]
    pub kmsg_records: u64,
    /// The failure sources live now: `kmsg`, `fanotify`, `journal`, `samplers`.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Which configuration is in force.
    #[serde(default)]
    pub config: ConfigState,
    /// How long each mount rides out a stall, from the values as of the last plan.
    #[serde(default)]
    pub rideout: Vec<RideOut>,
    /// Each configured alert sink and what it delivered (the journal and D-Bus always get
    /// every incident; these are the `[alert]` sinks of tunerd.toml).
    #[serde(default)]
    pub alerts: Vec<AlertSink>,
    /// Knobs another writer keeps setting back.
    #[serde(default)]
    pub contested: Vec<ContestedKnob>,
    /// Drift found (and repaired or reported) since the daemon started; `drift` is how many
    /// knobs are off now.
    #[serde(default)]
    pub drift_total: u64,
}

/// One alert sink's counters, as `tunerctl status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AlertSink {
    pub name: String,
    /// `webhook`, `alertmanager` or `exec`.
    pub kind: String,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub queued: u64,
}

/// Which configuration the daemon runs on and, when it refused the files, why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConfigState {
    /// `files`, `previous` (the last accepted configuration: refused at a reload, or at a
    /// start that found it kept in /run/tunerd/accepted.json) or `built-in`.
    pub in_force: InForce,
    /// The one-line error the files were refused with; `null` when they are in force.
    pub refused: Option<String>,
    /// When they were refused (seconds since the epoch).
    pub refused_at: Option<u64>,
    /// When the configuration in force was accepted; `null` for the built-in one.
    pub accepted_at: Option<u64>,
}

/// `Verify()`: the knobs that differ from the profile in force.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VerifyReply {
    pub profile: String,
    pub drift: Vec<Drift>,
}

/// `Events()`: open and recently resolved incidents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct EventsReply {
    pub open: Vec<Incident>,
    pub recent: Vec<Incident>,
    /// Observations the incident table had no room for (it is bounded).
    #[serde(default)]
    pub dropped_observations: u64,
}
