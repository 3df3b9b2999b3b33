//! The detection half of the service: what the sources read goes through the one
//! [`detect::Engine`](crate::detect::Engine) (the same fold `tunerctl scan` uses), and every
//! notification it makes goes to the log, the journal, the alert sinks and, as an
//! [`Announce`], to the bus. Open incidents are saved in `/run/tunerd/incidents.json` so that
//! resolves survive a restart.

use std::collections::BTreeMap;

use crate::alert::journald::Journald;
use crate::alert::{AlertConfig, Dispatcher, Metrics};
use crate::api::{Announce, EventsReply};
use crate::config::WatchSettings;
use crate::detect::incidents::{IncidentConfig, Incidents};
use crate::detect::rules::Rules;
use crate::detect::sources::fanotify::FsErrorWatch;
use crate::detect::sources::kmsg::Batch;
use crate::detect::sources::samplers::{Sampler, StallConfig};
use crate::detect::types::{Incident, IncidentState, Kind, LogRecord, Notification, Severity};
use crate::detect::{Clock, Engine};
use crate::host::inventory::Inventory;
use crate::host::state_files::{self, INCIDENTS};
use crate::host::sys::Root;
use crate::log;
use crate::util::time::{now_ms, now_secs};

pub(crate) struct Detection {
    engine: Engine,
    sampler: Sampler,
    journald: Journald,
    /// FAN_FS_ERROR on every ext4 mount, when the kernel has it (5.16+).
    pub fs_errors: Option<FsErrorWatch>,
    /// Webhooks, Alertmanager, the exec hook and the metrics textfile (src/alert).
    pub alerts: Option<Dispatcher>,
    /// Kernel log records read.
    pub kmsg_records: u64,
    /// The failure sources live now (`tunerctl status` lists them).
    pub sources: std::collections::BTreeSet<&'static str>,
    incidents_total: BTreeMap<Kind, u64>,
    /// The journal identifiers the `[[watch.rule]]`s read ([`journal_programs`]), and whether
    /// a reload changed them since the journal reader last looked.
    pub journal_programs: Vec<String>,
    pub programs_changed: bool,
}

/// The journal identifiers `rules` match on, sorted, each once.
pub(crate) fn journal_programs(rules: &[crate::detect::rules::RuleSpec]) -> Vec<String> {
    let mut p: Vec<String> = rules.iter().filter_map(|r| r.program.clone()).collect();
    p.sort();
    p.dedup();
    p
}

/// Unix seconds at boot (`/proc/stat` btime): turns kmsg's monotonic stamps into times.
fn boot_time(root: &Root) -> u64 {
    root.read("proc/stat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

impl Detection {
    pub(crate) fn new(root: &Root, watch: &WatchSettings) -> Detection {
        let saved: Incidents = state_files::load_json(root, INCIDENTS).unwrap_or_default();
        let mut detection = Detection {
            engine: Engine::new(
                IncidentConfig {
                    quiet_secs: watch.quiet_secs,
                    ..IncidentConfig::default()
                },
                saved,
                Clock::Live {
                    boot_time: boot_time(root),
                },
            ),
            sampler: Sampler::new(
                root,
                StallConfig {
                    stall_secs: watch.stall_secs,
                    latency_ms: watch.latency_ms,
                },
                watch.dirty_threshold_pct,
            ),
            journald: Journald::open(root),
            fs_errors: None,
            alerts: None,
            kmsg_records: 0,
            sources: Default::default(),
            incidents_total: BTreeMap::new(),
            journal_programs: journal_programs(&watch.rules),
            programs_changed: false,
        };
        detection.set_watch(watch);
        detection
    }

    /// The parts of `[watch]` that take effect without a restart: `frozen_secs` and the
    /// `[[watch.rule]]`s (the daemon's loop starts the journal reader again when their
    /// programs changed: `programs_changed`).
    pub(crate) fn set_watch(&mut self, watch: &WatchSettings) {
        let programs = journal_programs(&watch.rules);
        if programs != self.journal_programs {
            self.journal_programs = programs;
            self.programs_changed = true;
        }
        self.engine.set_frozen_secs(watch.frozen_secs);
        self.sampler.frozen.secs = watch.frozen_secs;
        match Rules::compile(&watch.rules) {
            Ok(rules) => self.engine.set_rules(rules),
            // The parser checked every rule; this would be a bug, so say so and go on without.
            Err(e) => log!(err, "[[watch.rule]] not used: {e}"),
        }
    }

    pub(crate) fn open(&self) -> Vec<&Incident> {
        self.engine.open()
    }

    /// A storage incident of warning or worse is open.
    /// Whether storage is failing: an open incident of warning or worse. A contested knob is
    /// an incident too, but it is tuning's trouble, not the storage's: health says `drift`.
    pub(crate) fn failing(&self) -> bool {
        self.engine
            .open()
            .iter()
            .any(|i| i.severity >= Severity::Warning && i.kind != Kind::KnobContested)
    }

    /// Open and recent incidents, for `tunerctl events`.
    pub(crate) fn events(&self) -> EventsReply {
        let state = self.engine.incidents();
        EventsReply {
            open: self.engine.open().into_iter().cloned().collect(),
            recent: state.recent.iter().cloned().collect(),
            dropped_observations: state.dropped,
        }
    }

    /// Hands notifications to every sink and returns what the bus must announce.
    fn dispatch(&mut self, root: &Root, notes: Vec<Notification>) -> Vec<Announce> {
        if notes.is_empty() {
            return Vec::new();
        }
        let mut announce = Vec::new();
        for n in notes {
            match n.event {
                IncidentState::Firing => log!(
                    err,
                    "incident {}: {} [{}; {} observations]",
                    n.incident.id,
                    n.incident.summary,
                    n.incident.severity.as_str(),
                    n.incident.count
                ),
                IncidentState::Resolved => log!(
                    notice,
                    "incident {} resolved: {}",
                    n.incident.id,
                    n.incident.summary
                ),
            }
            self.journald.send(&n);
            if let Some(alerts) = &self.alerts {
                // Spooled and handed to the sinks' own threads: never waits on a receiver.
                alerts.notify(&n);
            }
            if n.event == IncidentState::Firing && n.id.ends_with("/firing") {
                *self.incidents_total.entry(n.incident.kind).or_insert(0) += 1;
            }
            announce.push(Announce::Incident(Box::new(n)));
        }
        if let Err(e) = state_files::save_json(root, INCIDENTS, self.engine.incidents()) {
            log!(warn, "incidents not saved: {e}");
        }
        announce.push(Announce::PropertiesChanged);
        announce
    }

    /// Journal entries of storage daemons (multipathd, iscsid, ...).
    pub(crate) fn on_journal(
        &mut self,
        root: &Root,
        inv: &Inventory,
        records: Vec<LogRecord>,
    ) -> Vec<Announce> {
        let notes = self.engine.records(&records, Some(inv), now_secs());
        self.dispatch(root, notes)
    }

    /// Kernel log records, and the records lost before they were read.
    pub(crate) fn on_kmsg(&mut self, root: &Root, inv: &Inventory, batch: Batch) -> Vec<Announce> {
        let now = now_secs();
        let mut notes = Vec::new();
        if let Some(lost) = batch.lost {
            notes.extend(self.engine.lost(lost, now));
        }
        self.kmsg_records += batch.records.len() as u64;
        notes.extend(self.engine.records(&batch.records, Some(inv), now));
        self.dispatch(root, notes)
    }

    /// One tick of the samplers (diskstats, mount flags, ext4 counters, dirty memory), then
    /// the end of incidents whose condition cleared. Re-reads the mount table first, and
    /// keeps fanotify marks on every ext4 mount.
    pub(crate) fn on_sample(&mut self, root: &Root, inv: &mut Inventory) -> Vec<Announce> {
        let now_ms = now_ms();
        if let Err(e) = inv.refresh_mounts(root) {
            log!(warn, "mount table: {e}");
        }
        if let Some(w) = self.fs_errors.as_mut() {
            w.sync(&inv.mounts);
        }
        let disks: Vec<String> = inv
            .disks
            .iter()
            .filter(|d| d.size_bytes > 0)
            .map(|d| d.name.clone())
            .collect();
        let findings = self.sampler.sample(root, now_ms, &disks);
        let notes = self
            .engine
            .sample(&findings, self.sampler.failed_devices(), inv, now_ms);
        self.dispatch(root, notes)
    }

    /// FAN_FS_ERROR events: the filesystem itself says it hit an error.
    pub(crate) fn on_fanotify(&mut self, root: &Root, inv: &Inventory) -> Vec<Announce> {
        let Some(watch) = self.fs_errors.as_mut() else {
            return Vec::new();
        };
        let events = watch.read();
        let notes = self.engine.fs_errors(&events, Some(inv), now_secs());
        self.dispatch(root, notes)
    }

    /// A knob became contested: its incident, alerted like any other.
    pub(crate) fn on_contested(
        &mut self,
        root: &Root,
        inv: &Inventory,
        c: &crate::api::ContestedKnob,
    ) -> Vec<Announce> {
        let disk = c
            .target
            .split_whitespace()
            .next()
            .filter(|d| inv.disk(d).is_some());
        let message = c.describe();
        let notes = self
            .engine
            .contested(&c.target, disk, message, inv, now_secs());
        self.dispatch(root, notes)
    }

    /// Contests the profile ended by being applied again.
    pub(crate) fn contests_ended(&mut self, root: &Root, targets: &[String]) -> Vec<Announce> {
        let now = now_secs();
        let mut notes = Vec::new();
        for t in targets {
            notes.extend(self.engine.uncontested(
                t,
                "the profile was applied again: tunerd holds the knob once more",
                now,
            ));
        }
        self.dispatch(root, notes)
    }

    /// Starts (or restarts, after a reload changed `[alert]`) the alert sinks.
    pub(crate) fn start_alerts(&mut self, root: &Root, cfg: &AlertConfig) {
        if let Some(old) = self.alerts.take() {
            old.shutdown();
        }
        if *cfg == AlertConfig::default() {
            return;
        }
        match Dispatcher::start(root, cfg.clone()) {
            Ok(d) => self.alerts = Some(d),
            Err(e) => log!(err, "alerts not delivered: {e}"),
        }
    }

    /// Hands the current figures to the Prometheus textfile writer (its own thread), with
    /// the tuning figures the caller has.
    /// Each alert sink's counters, for the status.
    pub(crate) fn alert_sinks(&self) -> Vec<crate::api::AlertSink> {
        let Some(alerts) = &self.alerts else {
            return Vec::new();
        };
        alerts
            .stats()
            .sinks
            .into_iter()
            .map(|s| crate::api::AlertSink {
                name: s.sink,
                kind: s.kind.to_string(),
                delivered: s.delivered,
                failed_attempts: s.failed_attempts,
                rejected: s.rejected,
                dropped: s.dropped,
                queued: s.queued,
            })
            .collect()
    }

    pub(crate) fn publish_metrics(
        &self,
        drift_total: u64,
        knobs_applied: u64,
        rideout: Vec<(String, Option<u64>)>,
    ) {
        let Some(alerts) = &self.alerts else { return };
        let mut m = Metrics::default();
        for i in self.engine.open() {
            *m.incidents_open.entry((i.kind, i.severity)).or_insert(0) += 1;
        }
        m.incidents_total = self.incidents_total.clone();
        m.drift_total = drift_total;
        m.knobs_applied = knobs_applied;
        m.rideout = rideout;
        alerts.publish_metrics(m);
    }
}

impl Detection {
    /// The samplers, for the loop's sample timer (how soon the next sample is owed).
    /// When (ms, wall clock) a sample must run for a freeze agent's freeze that has had no
    /// thaw to become an incident on time.
    pub(crate) fn freeze_due_ms(&self) -> Option<u64> {
        self.engine.freeze_due_at().map(|s| s * 1000)
    }

    pub(crate) fn sampler(&self) -> &Sampler {
        &self.sampler
    }
}
