//! The service: apply the profile at start, then hold every disk at it for the life of the
//! machine: hotplugged disks are tuned on `add` and `change`, drift is found by a periodic
//! verify and repaired (or reported), SIGHUP and D-Bus reload the configuration, and SIGTERM
//! stops (leaving the settings, or reverting them, as configured).
//!
//! One thread runs the event loop (`poll` over the udev monitor and a signalfd, with the next
//! timer as the timeout: idle, it wakes only for its own timers). zbus runs the D-Bus
//! connection on its helper thread; both reach the [`State`] through one mutex.

pub mod bus;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::log;

use crate::config::{Config, DriftPolicy, OnStop};
use crate::detect::incidents::{self, Health as IncidentEngine, HealthConfig, Incidents};
use crate::detect::sources::samplers::{Sampler, StallConfig};
use crate::detect::types::{IncidentState, Kind, Notification, Severity};
use crate::host::inventory::Inventory;
use crate::host::sys::Root;
use crate::tune::apply::{self, Drift, JournalError, Report, Status};
use crate::tune::hotplug::{BlockAction, BlockEvent, Watcher};
use crate::tune::knob::Knob;
use crate::tune::plan::{self, Action, Object, Plan};
use crate::tune::profile::{Profile, ProfileSet};
use crate::util::toml::ConfigError;

/// How the machine is doing, as the `Health` property says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Ok,
    /// A knob differs from the profile and policy is to report only.
    Drift,
    /// The kernel rejected a knob.
    Degraded,
    /// A storage incident is open.
    Failing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Drift => "drift",
            Health::Degraded => "degraded",
            Health::Failing => "failing",
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DriftRecord {
    /// Seconds since the epoch.
    pub at: u64,
    pub target: String,
    pub path: String,
    pub expected: String,
    pub actual: Option<String>,
    pub repaired: bool,
}

/// What the D-Bus side must announce after an operation (sent outside the state lock).
#[derive(Debug, Clone)]
pub enum Announce {
    Drift(DriftRecord),
    Incident(Box<Notification>),
    ProfileChanged { old: String, new: String },
    PropertiesChanged,
}

/// Retries for disks whose attributes appear after their `add` event.
const RETRY_DELAYS_MS: [u64; 5] = [20, 40, 80, 160, 320];
const RECENT_DRIFT: usize = 64;

pub struct State {
    pub root: Root,
    pub config: Config,
    pub profiles: ProfileSet,
    pub profile: Profile,
    pub chosen_by: String,
    /// `--profile` or a D-Bus switch: wins over the configuration until the next switch.
    pinned_profile: Option<String>,
    pub inventory: Inventory,
    pub started: SystemTime,
    pub last_verify: Option<SystemTime>,
    pub recent_drift: VecDeque<DriftRecord>,
    pub health: Health,
    /// `once` knobs already set: (object, knob).
    once_done: BTreeSet<(Object, Knob)>,
    /// Disk -> (attempt, when).
    retries: Vec<(String, usize, Instant)>,
    pub hotplug_source: &'static str,
    pub events_handled: u64,
    /// Storage incidents: observations from the kernel log and the samplers, folded.
    pub incidents: IncidentEngine,
    sampler: Sampler,
    journal: crate::alert::journald::Journal,
    pub kmsg_records: u64,
    /// Unix seconds at boot (/proc/stat btime): turns kmsg's monotonic stamps into times.
    boot_time: u64,
    /// FAN_FS_ERROR on every ext4 mount, when the kernel has it (5.16+).
    pub fs_errors: Option<crate::detect::sources::fanotify::FsErrorWatch>,
    /// Knobs at their value after the last apply or drift check (for the metrics).
    last_at_value: usize,
    /// Set by a revert: the machine is back at its originals and stays there (no drift
    /// repair, no hotplug tuning) until the next apply, switch or reload.
    pub suspended: bool,
    /// Webhooks, Alertmanager, the exec hook and the metrics textfile (src/alert).
    pub alerts: Option<crate::alert::Dispatcher>,
    drift_total: u64,
    incidents_total: BTreeMap<Kind, u64>,
}

use crate::host::state_files::INCIDENTS;

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Loads configuration and profiles and picks the profile: what start and reload share.
fn load(
    root: &Root,
    pinned: Option<&str>,
    inv: &Inventory,
) -> Result<(Config, ProfileSet, Profile, String), ConfigError> {
    let profiles = ProfileSet::load(root)?;
    let config = Config::load(root, &profiles)?;
    let (name, chosen_by) = config.choose_profile(pinned, "pinned", inv.platform.kind);
    let profile = profiles.resolve(&name)?;
    Ok((config, profiles, profile, chosen_by))
}

#[derive(Debug)]
pub enum StartError {
    Config(ConfigError),
    Inventory(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Inventory(e) => write!(f, "cannot read the inventory: {e}"),
        }
    }
}

impl State {
    pub fn new(root: Root, pinned: Option<String>) -> Result<State, StartError> {
        let inventory = Inventory::read(&root).map_err(|e| StartError::Inventory(e.to_string()))?;
        let (config, profiles, profile, chosen_by) =
            load(&root, pinned.as_deref(), &inventory).map_err(StartError::Config)?;
        let incidents = IncidentEngine::new(
            HealthConfig {
                quiet_secs: config.watch.quiet_secs,
                ..HealthConfig::default()
            },
            root.read_opt(INCIDENTS)
                .ok()
                .flatten()
                .and_then(|t| serde_json::from_str::<Incidents>(&t).ok())
                .unwrap_or_default(),
        );
        let sampler = Sampler::new(
            &root,
            StallConfig {
                stall_secs: config.watch.stall_secs,
                latency_ms: config.watch.latency_ms,
            },
            config.watch.dirty_threshold_pct,
        );
        let journal = crate::alert::journald::Journal::open(&root);
        let boot_time = root
            .read("proc/stat")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
            })
            .unwrap_or(0);
        Ok(State {
            incidents,
            sampler,
            journal,
            kmsg_records: 0,
            boot_time,
            fs_errors: None,
            suspended: false,
            alerts: None,
            last_at_value: 0,
            drift_total: 0,
            incidents_total: BTreeMap::new(),
            root,
            config,
            profiles,
            profile,
            chosen_by,
            pinned_profile: pinned,
            inventory,
            started: SystemTime::now(),
            last_verify: None,
            recent_drift: VecDeque::new(),
            health: Health::Ok,
            once_done: BTreeSet::new(),
            retries: Vec::new(),
            hotplug_source: "none",
            events_handled: 0,
        })
    }

    /// Applies a plan, remembering `once` knobs and the health it leaves.
    fn apply_plan(&mut self, plan: &Plan) -> Result<Report, JournalError> {
        let mut plan = plan.clone();
        plan.changes.retain(|c| {
            !(c.once
                && c.action == Action::Set
                && self.once_done.contains(&(c.object.clone(), c.knob)))
        });
        let report = apply::apply(&self.root, &plan)?;
        self.last_at_value = report.count(Status::Unchanged) + report.written();
        for c in plan.changes.iter().filter(|c| c.once) {
            self.once_done.insert((c.object.clone(), c.knob));
        }
        if !report.ok() {
            self.health = Health::Degraded;
            for o in report
                .outcomes
                .iter()
                .filter(|o| o.status == Status::Rejected)
            {
                log!(
                    warn,
                    "{}: the kernel rejected {}: {}",
                    o.target,
                    o.wanted,
                    o.error.as_deref().unwrap_or("")
                );
            }
        }
        Ok(report)
    }

    /// Applies the whole profile.
    pub fn apply_all(&mut self) -> Result<Report, JournalError> {
        self.suspended = false;
        let plan = plan::plan(&self.root, &self.profile, &self.inventory);
        self.health = Health::Ok;
        self.apply_plan(&plan)
    }

    pub fn plan(&self) -> Plan {
        plan::plan(&self.root, &self.profile, &self.inventory)
    }

    /// Restores every original and stops enforcing the profile until the next apply, switch
    /// or reload: a revert that the next drift check undid would be no revert.
    pub fn revert(&mut self) -> Result<Report, JournalError> {
        let report = apply::revert(&self.root)?;
        self.suspended = true;
        self.retries.clear();
        log!(
            notice,
            "reverted: {} originals restored; the profile is not enforced until the next apply",
            report.written()
        );
        Ok(report)
    }

    /// Knobs that differ from the profile, `once` knobs left out.
    pub fn verify(&mut self) -> Vec<Drift> {
        self.last_verify = Some(SystemTime::now());
        let mut plan = self.plan();
        plan.changes.retain(|c| !c.once);
        apply::verify(&plan)
    }

    /// The periodic check: find drift, log it, repair it if the policy says so.
    pub fn drift_check(&mut self) -> Vec<Announce> {
        if self.suspended {
            return Vec::new();
        }
        let drift = self.verify();
        if drift.is_empty() {
            if self.health == Health::Drift {
                self.health = Health::Ok;
                return vec![Announce::PropertiesChanged];
            }
            return Vec::new();
        }
        let repair = self.config.daemon.drift_policy == DriftPolicy::Repair;
        let mut announce = Vec::new();
        for d in &drift {
            log!(
                notice,
                "drift: {} is {} (expected {}){}",
                d.target,
                d.actual.as_deref().unwrap_or("absent"),
                d.desired,
                if repair { "; repairing" } else { "" }
            );
            let record = DriftRecord {
                at: epoch(SystemTime::now()),
                target: d.target.clone(),
                path: d.path.clone(),
                expected: d.desired.clone(),
                actual: d.actual.clone(),
                repaired: repair,
            };
            if self.recent_drift.len() == RECENT_DRIFT {
                self.recent_drift.pop_front();
            }
            self.recent_drift.push_back(record.clone());
            self.drift_total += 1;
            announce.push(Announce::Drift(record));
        }
        let before = self.health;
        if repair {
            let paths: BTreeSet<&str> = drift.iter().map(|d| d.path.as_str()).collect();
            let mut plan = self.plan();
            // Repair what drifted; a scheduler repair needs its nr_requests re-written too.
            let objects: BTreeSet<Object> = plan
                .changes
                .iter()
                .filter(|c| paths.contains(c.path.as_str()))
                .map(|c| c.object.clone())
                .collect();
            plan.changes.retain(|c| {
                !c.once
                    && (paths.contains(c.path.as_str())
                        || (c.knob == Knob::NrRequests && objects.contains(&c.object)))
            });
            if let Err(e) = self.apply_plan(&plan) {
                log!(err, "drift repair failed: {e}");
            }
        } else {
            self.health = Health::Drift;
        }
        if self.health != before {
            announce.push(Announce::PropertiesChanged);
        }
        announce
    }

    /// Tunes one disk after `add` or `change`; forgets it after `remove`.
    pub fn hotplug(&mut self, event: &BlockEvent) -> Option<Report> {
        self.events_handled += 1;
        match event.action {
            BlockAction::Remove => {
                self.inventory.remove_disk(&event.name);
                self.retries.retain(|(d, _, _)| d != &event.name);
                self.once_done
                    .retain(|(o, _)| o != &Object::Disk(event.name.clone()));
                match apply::forget_disk(&self.root, &event.name) {
                    Ok(n) if n > 0 => log!(
                        info,
                        "{} removed: dropped {n} recorded originals",
                        event.name
                    ),
                    Ok(_) => {}
                    Err(e) => log!(err, "{} removed: {e}", event.name),
                }
                None
            }
            BlockAction::Add | BlockAction::Change if self.suspended => None,
            BlockAction::Add | BlockAction::Change => {
                if event.action == BlockAction::Add {
                    // A new device: its `once` knobs are due again.
                    self.once_done
                        .retain(|(o, _)| o != &Object::Disk(event.name.clone()));
                }
                let report = self.tune_disk(&event.name);
                let incomplete = report.as_ref().is_some_and(|r| {
                    r.outcomes.iter().any(|o| {
                        matches!(
                            o.status,
                            Status::Absent | Status::Rejected | Status::Unsupported
                        )
                    })
                });
                self.retries.retain(|(d, _, _)| d != &event.name);
                if incomplete {
                    self.retries.push((
                        event.name.clone(),
                        0,
                        Instant::now() + Duration::from_millis(RETRY_DELAYS_MS[0]),
                    ));
                }
                report
            }
        }
    }

    fn tune_disk(&mut self, name: &str) -> Option<Report> {
        match self.inventory.refresh_disk(&self.root, name) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                log!(warn, "{name}: cannot read it: {e}");
                return None;
            }
        }
        let objects = plan::disk_objects(&self.inventory, name);
        let plan = plan::plan_where(&self.root, &self.profile, &self.inventory, |t| {
            objects.contains(&t.object)
        });
        if plan.changes.is_empty() {
            return None;
        }
        match self.apply_plan(&plan) {
            Ok(report) => {
                if report.written() > 0 {
                    log!(info, "{name}: {} knobs set", report.written());
                }
                Some(report)
            }
            Err(e) => {
                log!(err, "{name}: {e}");
                None
            }
        }
    }

    /// When the next retry is due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.iter().map(|(_, _, at)| *at).min()
    }

    /// Retries disks whose attributes were missing: their scheduler list or queue may appear
    /// some milliseconds after `add`.
    pub fn run_retries(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, usize)> = self
            .retries
            .iter()
            .filter(|(_, _, at)| *at <= now)
            .map(|(d, n, _)| (d.clone(), *n))
            .collect();
        self.retries.retain(|(_, _, at)| *at > now);
        for (disk, attempt) in due {
            let report = self.tune_disk(&disk);
            let incomplete = report.as_ref().is_some_and(|r| {
                r.outcomes.iter().any(|o| {
                    matches!(
                        o.status,
                        Status::Absent | Status::Rejected | Status::Unsupported
                    )
                })
            });
            if incomplete && attempt + 1 < RETRY_DELAYS_MS.len() {
                self.retries.push((
                    disk,
                    attempt + 1,
                    Instant::now() + Duration::from_millis(RETRY_DELAYS_MS[attempt + 1]),
                ));
            }
        }
    }

    /// Re-reads the configuration. A broken one is refused and the running one kept; a new
    /// profile is switched to.
    pub fn reload(&mut self) -> Result<Vec<Announce>, ConfigError> {
        let (config, profiles, profile, chosen_by) =
            load(&self.root, self.pinned_profile.as_deref(), &self.inventory)?;
        let alerts_changed = config.alert != self.config.alert;
        self.config = config;
        if alerts_changed {
            self.start_alerts();
        }
        self.profiles = profiles;
        let announce = self
            .switch_to(profile, chosen_by)
            .map_err(|e| ConfigError::file("journal", e.to_string()))?;
        log!(
            info,
            "configuration reloaded: profile {}",
            self.profile.name
        );
        Ok(announce)
    }

    /// Switches to a profile by name (D-Bus SwitchProfile): pins it until the next switch.
    pub fn switch(&mut self, name: &str) -> Result<Vec<Announce>, ConfigError> {
        let profile = self.profiles.resolve(name)?;
        self.pinned_profile = Some(name.to_string());
        self.switch_to(profile, "pinned".to_string())
            .map_err(|e| ConfigError::file("journal", e.to_string()))
    }

    /// Reverts what the old profile set and the new one does not want, then applies the new.
    fn switch_to(
        &mut self,
        new: Profile,
        chosen_by: String,
    ) -> Result<Vec<Announce>, JournalError> {
        let old_keys: BTreeSet<String> = plan::targets(&self.profile, &self.inventory)
            .iter()
            .map(|t| apply::journal_key(&t.object, t.knob))
            .collect();
        let new_keys: BTreeSet<String> = plan::targets(&new, &self.inventory)
            .iter()
            .map(|t| apply::journal_key(&t.object, t.knob))
            .collect();
        let dropped: BTreeSet<&String> = old_keys.difference(&new_keys).collect();
        if !dropped.is_empty() {
            apply::revert_where(&self.root, |k| dropped.iter().any(|d| d.as_str() == k))?;
        }
        let old = std::mem::replace(&mut self.profile, new);
        self.chosen_by = chosen_by;
        self.once_done.clear();
        self.apply_all()?;
        let mut announce = vec![Announce::PropertiesChanged];
        if old.name != self.profile.name {
            log!(
                notice,
                "profile switched: {} -> {}",
                old.name,
                self.profile.name
            );
            announce.push(Announce::ProfileChanged {
                old: old.name,
                new: self.profile.name.clone(),
            });
        }
        Ok(announce)
    }

    /// Hands notifications to every sink and returns what D-Bus must announce.
    fn dispatch(&mut self, notes: Vec<Notification>) -> Vec<Announce> {
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
            self.journal.send(&n);
            if let Some(alerts) = &self.alerts {
                // Spooled and handed to the sinks' own threads: never waits on a receiver.
                alerts.notify(&n);
            }
            if n.event == IncidentState::Firing && n.id.ends_with("/firing") {
                *self.incidents_total.entry(n.incident.kind).or_insert(0) += 1;
            }
            announce.push(Announce::Incident(Box::new(n)));
        }
        self.save_incidents();
        self.refresh_health();
        announce.push(Announce::PropertiesChanged);
        announce
    }

    fn save_incidents(&self) {
        if let Ok(text) = serde_json::to_vec(&self.incidents.state) {
            if let Err(e) = self.root.write_atomic(INCIDENTS, &text) {
                log!(warn, "incidents not saved: {e}");
            }
        }
    }

    fn refresh_health(&mut self) {
        let failing = self
            .incidents
            .open()
            .iter()
            .any(|i| i.severity >= Severity::Warning);
        if failing {
            self.health = Health::Failing;
        } else if self.health == Health::Failing {
            self.health = Health::Ok;
        }
    }

    /// Journal entries of storage daemons (multipathd, iscsid, ...): classify, fold, notify.
    pub fn on_journal(&mut self, records: Vec<crate::detect::types::LogRecord>) -> Vec<Announce> {
        let now = epoch(SystemTime::now());
        let mut notes = Vec::new();
        for rec in &records {
            let Some(obs) = crate::detect::classify::classify(rec) else {
                continue;
            };
            let place = obs
                .device
                .as_deref()
                .map(|d| incidents::locate(&self.inventory, d))
                .unwrap_or_default();
            let at = rec.realtime_us.map_or(now, |us| (us / 1_000_000).min(now));
            notes.extend(self.incidents.observe(&obs, &place, None, at));
        }
        self.dispatch(notes)
    }

    /// Kernel log records: classify, fold into incidents, notify.
    pub fn on_kmsg(&mut self, batch: crate::detect::sources::kmsg::Batch) -> Vec<Announce> {
        let now = epoch(SystemTime::now());
        let mut notes = Vec::new();
        if let Some(lost) = batch.lost {
            let obs = crate::detect::types::Observation {
                kind: Kind::LogGap,
                severity: Severity::Warning,
                device: None,
                resolves: false,
                message: if lost > 0 {
                    format!("{lost} kernel log records were overwritten before tunerd read them")
                } else {
                    "kernel log records were overwritten before tunerd read them".to_string()
                },
                at_us: None,
            };
            notes.extend(
                self.incidents
                    .observe(&obs, &incidents::Place::default(), None, now),
            );
        }
        for rec in &batch.records {
            self.kmsg_records += 1;
            let Some(obs) = crate::detect::classify::classify(rec) else {
                continue;
            };
            // When it happened: boot time + the record's monotonic stamp. Records from before
            // tunerd started (the boot backlog) then age out after the quiet period.
            let at = rec
                .monotonic_us
                .map_or(now, |us| (self.boot_time + us / 1_000_000).min(now));
            let place = obs
                .device
                .as_deref()
                .map(|d| incidents::locate(&self.inventory, d))
                .unwrap_or_default();
            let origin = rec.seq.map(|s| format!("k{s}"));
            notes.extend(self.incidents.observe(&obs, &place, origin.as_deref(), at));
        }
        self.dispatch(notes)
    }

    /// One tick of the samplers (diskstats, mount flags, ext4 counters, dirty memory), then
    /// the end of incidents whose condition cleared.
    pub fn on_sample(&mut self) -> Vec<Announce> {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let now = now_ms / 1000;
        if let Err(e) = self.inventory.refresh_mounts(&self.root) {
            log!(warn, "mount table: {e}");
        }
        if let Some(w) = self.fs_errors.as_mut() {
            w.sync(&self.inventory.mounts);
        }
        let disks: Vec<String> = self
            .inventory
            .disks
            .iter()
            .filter(|d| d.size_bytes > 0)
            .map(|d| d.name.clone())
            .collect();
        let findings = self.sampler.sample(&self.root, now_ms, &disks);
        let mut notes = Vec::new();
        for f in findings {
            let place = incidents::locate(&self.inventory, &f.device);
            let subject = place.disk.clone().unwrap_or_else(|| f.device.clone());
            let key = incidents::key(f.kind, &subject);
            if f.holds {
                let obs = f.observation(now_ms * 1000);
                notes.extend(self.incidents.observe(&obs, &place, None, now));
                self.incidents.set_condition(&key, true);
            } else {
                notes.extend(self.incidents.clear(&key, now, &f.message));
            }
        }
        // A failed filesystem's incident lasts while one of its disk's mounts is flagged
        // failed (emergency_ro, shutdown, turned ro); then, like the rest, until the quiet
        // period passes without new evidence. (XFS and 6.12-6.14 ext4 show no flag: their
        // incidents end after the quiet period.)
        let failing: BTreeSet<String> = self
            .sampler
            .failed_devices()
            .map(|dev| {
                incidents::locate(&self.inventory, dev)
                    .disk
                    .unwrap_or_else(|| dev.to_string())
            })
            .collect();
        for k in self.incidents.keys() {
            if let Some(disk) = k.strip_prefix("disk/") {
                self.incidents.set_condition(&k, failing.contains(disk));
            }
        }
        notes.extend(self.incidents.tick(now));
        self.dispatch(notes)
    }

    /// FAN_FS_ERROR events: the filesystem itself says it hit an error.
    pub fn on_fanotify(&mut self) -> Vec<Announce> {
        let Some(watch) = self.fs_errors.as_mut() else {
            return Vec::new();
        };
        let now = epoch(SystemTime::now());
        let mut notes = Vec::new();
        for e in watch.read() {
            let device = e.source.trim_start_matches("/dev/").to_string();
            let obs = crate::detect::types::Observation {
                kind: Kind::Ext4Error,
                severity: Severity::Critical,
                device: (!device.is_empty()).then(|| device.clone()),
                resolves: false,
                message: format!(
                    "fanotify FS_ERROR on {} ({}): error {} x{}",
                    e.mount_point, e.source, e.error, e.count
                ),
                at_us: Some(now * 1_000_000),
            };
            let place = incidents::locate(&self.inventory, &device);
            notes.extend(self.incidents.observe(&obs, &place, None, now));
        }
        self.dispatch(notes)
    }

    /// Starts (or restarts, after a reload changed `[alert]`) the alert sinks.
    pub fn start_alerts(&mut self) {
        if let Some(old) = self.alerts.take() {
            old.shutdown();
        }
        let cfg = self.config.alert.clone();
        if cfg == crate::alert::AlertConfig::default() {
            return;
        }
        match crate::alert::Dispatcher::start(&self.root, cfg) {
            Ok(d) => self.alerts = Some(d),
            Err(e) => log!(err, "alerts not delivered: {e}"),
        }
    }

    /// Hands the current figures to the Prometheus textfile writer (its own thread).
    pub fn publish_metrics(&self) {
        let Some(alerts) = &self.alerts else { return };
        let mut m = crate::alert::Metrics::default();
        for i in self.incidents.open() {
            *m.incidents_open.entry((i.kind, i.severity)).or_insert(0) += 1;
        }
        m.incidents_total = self.incidents_total.clone();
        m.drift_total = self.drift_total;
        m.knobs_applied = self.last_at_value as u64;
        alerts.publish_metrics(m);
    }

    /// Open and recent incidents, for `tunerctl events`.
    pub fn events(&self) -> serde_json::Value {
        serde_json::json!({
            "open": self.incidents.open(),
            "recent": self.incidents.state.recent,
            "dropped_observations": self.incidents.state.dropped,
        })
    }

    pub fn status(&self) -> DaemonStatus {
        let plan = self.plan();
        DaemonStatus {
            running: true,
            pid: std::process::id(),
            root: self.root.base().display().to_string(),
            uptime_secs: self.started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
            started: epoch(self.started),
            profile: self.profile.name.clone(),
            chosen_by: self.chosen_by.clone(),
            platform: self.inventory.platform.kind.as_str().to_string(),
            health: self.health,
            last_verify: self.last_verify.map(epoch),
            drift_interval_secs: self.config.daemon.drift_interval_secs,
            drift_policy: self.config.daemon.drift_policy,
            on_stop: self.config.daemon.on_stop,
            hotplug_source: self.hotplug_source.to_string(),
            hotplug_events: self.events_handled,
            disks: self.inventory.disks.len(),
            knobs: plan.changes.len(),
            at_value: plan.count(Action::Unchanged),
            drift: plan.count(Action::Set),
            recent_drift: self.recent_drift.iter().cloned().collect(),
            open_incidents: self.incidents.open().len(),
            suspended: self.suspended,
            kmsg_records: self.kmsg_records,
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DaemonStatus {
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
}

pub type Shared = Arc<Mutex<State>>;

/// Locks the state; a panic elsewhere while holding it leaves the data usable.
pub fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Options {
    pub root: Root,
    pub profile: Option<String>,
    /// Serve org.tunerd.Tuner1 on the system bus.
    pub dbus: bool,
}

/// Locks the daemon's pages in memory so a hung root disk cannot stall it on a page-in: what
/// is mapped now is faulted in and locked; later mappings (heap growth, thread stacks) are
/// locked as they are touched, so an 8 MiB thread stack costs only the pages it uses.
fn lock_memory() {
    use nix::sys::mman::{mlockall, MlockAllFlags};
    if let Err(e) = mlockall(MlockAllFlags::MCL_CURRENT) {
        log!(
            warn,
            "mlockall: {e}: pages may be read back from disk under memory pressure"
        );
        return;
    }
    // MCL_ONFAULT (4, Linux 4.4) is not among nix's named flags.
    let onfault = MlockAllFlags::from_bits_retain(4);
    if let Err(e) = mlockall(MlockAllFlags::MCL_FUTURE | onfault) {
        log!(warn, "mlockall(MCL_FUTURE): {e}");
    }
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    let _ = sd_notify::notify(state);
}

/// Runs the service until SIGTERM or SIGINT. Returns the process exit code.
pub fn run(opts: Options) -> u8 {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};

    let exec = Instant::now();
    crate::util::log::stderr_nonblocking();
    // Signals arrive through a signalfd in the loop, never asynchronously.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    if let Err(e) = mask.thread_block() {
        log!(err, "cannot block signals: {e}");
        return 1;
    }
    let signals = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    {
        Ok(fd) => fd,
        Err(e) => {
            log!(err, "signalfd: {e}");
            return 1;
        }
    };

    let mut state = match State::new(opts.root.clone(), opts.profile.clone()) {
        Ok(s) => s,
        Err(e) => {
            log!(err, "{e}");
            return match e {
                StartError::Config(_) => 4,
                StartError::Inventory(_) => 1,
            };
        }
    };
    // Watch before applying, so a disk that appears meanwhile is not missed.
    let mut watcher = match Watcher::open() {
        Ok(w) => {
            state.hotplug_source = w.source.as_str();
            log!(info, "hotplug: {} events", w.source.as_str());
            Some(w)
        }
        Err(e) => {
            log!(warn, "no hotplug events (libudev monitor: {e}); disks are tuned at start and on drift checks only");
            None
        }
    };
    // The kernel log: opened before the profile is applied, read from the oldest record of
    // this boot not yet handled (failures during boot count too).
    let mut kmsg = if state.config.watch.kmsg {
        match crate::detect::sources::kmsg::KmsgReader::open(&state.root) {
            Ok(k) => Some(k),
            Err(e) => {
                log!(warn, "kernel log not watched (/dev/kmsg: {e})");
                None
            }
        }
    } else {
        None
    };
    if state.config.watch.fanotify {
        match crate::detect::sources::fanotify::FsErrorWatch::open() {
            Ok(mut w) => {
                w.sync(&state.inventory.mounts);
                state.fs_errors = Some(w);
            }
            Err(e) => log!(
                info,
                "no fanotify FS_ERROR events ({e}); the kernel log covers them"
            ),
        }
    }
    // Storage daemons' journal entries, when there is a journal (systemd machines).
    let mut journal = if state.config.watch.journal && state.root.is_host() {
        match crate::detect::sources::journal::JournalWatch::start(&state.root) {
            Ok(j) => Some(j),
            Err(e) => {
                log!(
                    info,
                    "storage daemons' journal not followed (journalctl: {e})"
                );
                None
            }
        }
    } else {
        None
    };
    // Alert delivery reads what it needs from the disk (TLS roots, host name) now, at start.
    state.start_alerts();
    let fanotify_fd = state
        .fs_errors
        .as_ref()
        .map(|w| std::os::fd::AsRawFd::as_raw_fd(&w.fd()));
    let report = match state.apply_all() {
        Ok(r) => r,
        Err(e) => {
            log!(err, "{e}");
            return 1;
        }
    };
    let applied_in = exec.elapsed();
    log!(
        info,
        "profile {} ({}): {} knobs set, {} already at value, {} rejected, in {:.1} ms",
        state.profile.name,
        state.chosen_by,
        report.written(),
        report.count(Status::Unchanged),
        report.count(Status::Rejected),
        applied_in.as_secs_f64() * 1000.0
    );
    let status_line = format!(
        "profile {}: {} disks",
        state.profile.name,
        state
            .inventory
            .disks
            .iter()
            .filter(|d| d.size_bytes > 0)
            .count()
    );
    let shared: Shared = Arc::new(Mutex::new(state));
    // Before any thread starts: its stack then falls under MCL_ONFAULT (only touched pages
    // are resident) instead of being faulted in whole by MCL_CURRENT.
    lock_memory();

    // At early boot tunerd runs before the system bus: it tunes first and connects to the
    // bus when there is one, retrying with backoff (1 s, doubling to 30 s) until then.
    let mut bus = None;
    let mut bus_backoff = Duration::from_secs(1);
    let mut next_bus_try = opts.dbus.then(Instant::now);
    let mut try_bus = |bus: &mut Option<zbus::Connection>, next: &mut Option<Instant>| {
        match crate::service::bus::serve(shared.clone()) {
            Ok(conn) => {
                log!(
                    info,
                    "serving {} on the system bus",
                    crate::service::bus::NAME
                );
                *bus = Some(conn);
                *next = None;
            }
            Err(e) => {
                if bus_backoff == Duration::from_secs(1) {
                    // Normal at boot: tunerd starts before the system bus.
                    log!(info, "D-Bus: {e}; connecting when the system bus is there");
                }
                *next = Some(Instant::now() + bus_backoff);
                bus_backoff = (bus_backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    if next_bus_try.is_some() {
        try_bus(&mut bus, &mut next_bus_try);
    }
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status_line),
    ]);

    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut next_watchdog = watchdog.map(|d| Instant::now() + d);
    let drift_every = {
        let secs = lock(&shared).config.daemon.drift_interval_secs;
        (secs > 0).then(|| Duration::from_secs(secs))
    };
    let mut next_drift = drift_every.map(|d| Instant::now() + d);
    let sample_every = {
        let ms = lock(&shared).config.watch.sample_ms;
        (ms > 0).then(|| Duration::from_millis(ms))
    };
    let mut next_sample = sample_every.map(|d| Instant::now() + d);
    let mut last_kmsg_commit = Instant::now();
    // What the kernel logged before and during start.
    if let Some(k) = kmsg.as_mut() {
        let mut announce = Vec::new();
        loop {
            let batch = k.read(4096);
            let more = batch.records.len() == 4096;
            announce.extend(lock(&shared).on_kmsg(batch));
            if !more {
                break;
            }
        }
        k.commit(&opts.root);
        if let Some(conn) = &bus {
            crate::service::bus::announce(conn, &shared, announce);
        }
    }

    loop {
        let next_retry = lock(&shared).next_retry();
        let deadline = [
            next_watchdog,
            next_drift,
            next_retry,
            next_bus_try,
            next_sample,
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout = match deadline {
            Some(at) => {
                let ms = at.saturating_duration_since(Instant::now()).as_millis();
                nix::poll::PollTimeout::try_from(ms.min(60_000) as i32)
                    .unwrap_or(nix::poll::PollTimeout::MAX)
            }
            None => nix::poll::PollTimeout::NONE,
        };
        let (udev_ready, signal_ready, kmsg_ready, fan_ready, journal_ready) = {
            use nix::poll::{poll, PollFd, PollFlags};
            use std::os::fd::AsFd;
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let kmsg_at = kmsg.as_ref().map(|k| {
                fds.push(PollFd::new(k.fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            // SAFETY: the watcher outlives this poll call; the fd is only borrowed for it.
            let udev_fd = watcher
                .as_ref()
                .map(|w| unsafe { BorrowedFd::borrow_raw(w.fd()) });
            let udev_at = udev_fd.map(|fd| {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                fds.len() - 1
            });
            let journal_at = journal.as_ref().map(|j| {
                fds.push(PollFd::new(j.fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            // SAFETY: the fanotify group lives in the state for the daemon's whole life.
            let fan_at = fanotify_fd.map(|fd| {
                fds.push(PollFd::new(
                    unsafe { BorrowedFd::borrow_raw(fd) },
                    PollFlags::POLLIN,
                ));
                fds.len() - 1
            });
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log!(err, "poll: {e}");
                    return 1;
                }
            }
            let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
            (
                udev_at.is_some_and(|i| ready(&fds[i])),
                ready(&fds[0]),
                kmsg_at.is_some_and(|i| ready(&fds[i])),
                fan_at.is_some_and(|i| ready(&fds[i])),
                journal_at.is_some_and(|i| ready(&fds[i])),
            )
        };

        let mut announce = Vec::new();
        if kmsg_ready {
            if let Some(k) = kmsg.as_mut() {
                // Bounded batches: a flood of 100,000 lines is taken in slices, with the
                // other sources served in between.
                let batch = k.read(4096);
                let before = announce.len();
                announce.extend(lock(&shared).on_kmsg(batch));
                // The position is saved with every notification (so a restart neither
                // repeats nor misses one) and otherwise at most once a second: a flood
                // costs one small write a second, not one per line.
                if announce.len() > before || last_kmsg_commit.elapsed() >= Duration::from_secs(1) {
                    k.commit(&opts.root);
                    last_kmsg_commit = Instant::now();
                }
            }
        }
        if journal_ready {
            if let Some(j) = journal.as_mut() {
                let records = j.read();
                announce.extend(lock(&shared).on_journal(records));
                j.commit(&opts.root);
                if !j.alive() {
                    log!(
                        info,
                        "journalctl exited: storage daemons' journal no longer followed"
                    );
                    journal = None;
                }
            }
        }
        if fan_ready {
            announce.extend(lock(&shared).on_fanotify());
        }
        if udev_ready {
            if let Some(w) = watcher.as_mut() {
                let events = w.drain();
                let mut st = lock(&shared);
                for ev in &events {
                    st.hotplug(ev);
                }
            }
        }
        if signal_ready {
            let mut stop = false;
            while let Ok(Some(info)) = signals.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGHUP) => {
                        notify(&[sd_notify::NotifyState::Reloading]);
                        match lock(&shared).reload() {
                            Ok(a) => announce.extend(a),
                            Err(e) => log!(
                                err,
                                "reload refused, keeping the running configuration: {e}"
                            ),
                        }
                        notify(&[sd_notify::NotifyState::Ready]);
                    }
                    Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => stop = true,
                    _ => {}
                }
            }
            if stop {
                break;
            }
        }
        let now = Instant::now();
        if let (Some(at), Some(every)) = (next_sample, sample_every) {
            if at <= now {
                let mut st = lock(&shared);
                announce.extend(st.on_sample());
                st.publish_metrics();
                next_sample = Some(now + every);
            }
        }
        if next_retry.is_some_and(|at| at <= now) {
            lock(&shared).run_retries();
        }
        if let (Some(at), Some(every)) = (next_drift, drift_every) {
            if at <= now {
                announce.extend(lock(&shared).drift_check());
                next_drift = Some(now + every);
            }
        }
        if let (Some(at), Some(every)) = (next_watchdog, watchdog) {
            if at <= now {
                notify(&[sd_notify::NotifyState::Watchdog]);
                next_watchdog = Some(now + every);
            }
        }
        if next_bus_try.is_some_and(|at| at <= now) {
            try_bus(&mut bus, &mut next_bus_try);
        }
        if let Some(conn) = &bus {
            crate::service::bus::announce(conn, &shared, announce);
        }
    }

    notify(&[sd_notify::NotifyState::Stopping]);
    if let Some(alerts) = lock(&shared).alerts.take() {
        // What is not delivered yet stays in the spool for the next start.
        alerts.shutdown();
    }
    if let Some(k) = kmsg.as_mut() {
        k.commit(&opts.root);
    }
    let st = lock(&shared);
    if st.config.daemon.on_stop == OnStop::Revert {
        match apply::revert(&st.root) {
            Ok(r) => log!(info, "stopping: {} originals restored", r.written()),
            Err(e) => log!(err, "stopping: revert failed: {e}"),
        }
    } else {
        log!(
            info,
            "stopping: settings stay in place (on_stop = \"keep\")"
        );
    }
    0
}
