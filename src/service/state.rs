//! The service's state: the machine handle, the configuration, the inventory both halves
//! read, and the two halves themselves, [`Tuning`] and [`Detection`]. The loop
//! ([`super::run`]) and the bus ([`super::bus`]) reach it through one mutex ([`Shared`]); it
//! never reaches them: what it changed comes back as [`Announce`] values, sent by the caller
//! outside the lock.
//!
//! The read-only side of the bus (Status, Plan, Verify, ListProfiles, Events, the properties)
//! does not take that mutex: it answers from a [`Snapshot`] the state publishes
//! ([`Published`], its own small lock around an `Arc`) after every turn of the loop and every
//! privileged call. Any local user may call those methods; with a plan of every knob of every
//! disk per call under the state mutex, a flood of them starved the loop (and with it
//! detection and the watchdog) on a machine with 1,000 disks. A snapshot costs a caller one
//! `Arc` clone, whatever the disk count.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::api::{Announce, ConfigState, DaemonStatus, EventsReply, Health, VerifyReply};
use crate::config::{self, Accepted, Config, ConfigFiles, InForce};
use crate::detect::sources::kmsg::Batch;
use crate::detect::types::LogRecord;
use crate::host::inventory::Inventory;
use crate::host::sys::{Root, SysError};
use crate::log;
use crate::tune::apply::{OriginalsError, Report};
use crate::tune::hotplug::BlockEvent;
use crate::tune::plan::{Action, Plan};
use crate::tune::profile::{Profile, ProfileSet};
use crate::tune::rideout::RideOut;
use crate::util::time::epoch_secs;
use crate::util::toml::ConfigError;

use super::detection::Detection;
use super::tuning::Tuning;

/// What went wrong in the service, by what it means for the machine.
#[derive(Debug)]
pub(crate) enum ServiceError {
    /// The configuration or a profile is invalid: nothing was changed, and on a reload or a
    /// switch the running configuration stays in force.
    Config(ConfigError),
    /// The disks could not be listed.
    Inventory(SysError),
    /// The record of originals could not be read or written, so tuning stopped before the
    /// first write it could not record.
    Originals(OriginalsError),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Config(e) => write!(f, "{e}"),
            ServiceError::Inventory(e) => write!(f, "cannot read the inventory: {e}"),
            ServiceError::Originals(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServiceError {}

impl From<ConfigError> for ServiceError {
    fn from(e: ConfigError) -> Self {
        ServiceError::Config(e)
    }
}

impl From<OriginalsError> for ServiceError {
    fn from(e: OriginalsError) -> Self {
        ServiceError::Originals(e)
    }
}

impl ServiceError {
    /// The process exit code at start (api::exit).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            ServiceError::Config(_) => crate::api::exit::CONFIG,
            _ => crate::api::exit::FAILURE,
        }
    }
}

pub(crate) struct State {
    pub root: Root,
    pub config: Config,
    /// Disks, mounts and platform: tuning refreshes disks on hotplug, detection re-reads the
    /// mounts on every sample.
    pub inventory: Inventory,
    pub tuning: Tuning,
    pub detection: Detection,
    pub started: SystemTime,
    /// Where the bus reads the snapshot from.
    pub published: Published,
    /// Which configuration is in force, and why not the files when it is not.
    pub config_state: ConfigState,
    /// Announcements made outside the loop's own calls (the end of a contest by an apply
    /// over the bus): the loop sends them with its next turn's.
    pending: Vec<Announce>,
    /// The tuning half of the last snapshot: made from one plan (a read of every knob).
    view: Option<TuningView>,
    /// The machine or the profile may have changed since `view` was made.
    view_stale: bool,
}

pub(crate) type Shared = Arc<Mutex<State>>;

/// What the read-only bus methods answer: the daemon as the loop last saw it.
pub(crate) struct Snapshot {
    /// `uptime_secs` is as of publication; the bus recomputes it from `started`.
    pub status: DaemonStatus,
    pub started: SystemTime,
    /// `Plan()`'s JSON, made once per plan rather than once per call.
    pub plan: Arc<str>,
    /// `Verify()`'s JSON: the drift of the last plan the daemon made (at start, after each
    /// apply, drift check, hotplug or switch, at most a second late), not a fresh read.
    pub verify: Arc<str>,
    /// Every open and recent incident, evidence included: the bus strips the evidence for
    /// callers other than root.
    pub events: Arc<EventsReply>,
    pub profiles: Arc<Vec<String>>,
    pub health: Health,
    pub profile: String,
    pub platform: String,
    pub root: String,
}

/// The published snapshot: replaced whole, read by cloning the `Arc` (the lock is held for
/// that clone only, never for a plan or a serialization).
pub(crate) type Published = Arc<Mutex<Arc<Snapshot>>>;

/// The current snapshot.
pub(crate) fn current(published: &Published) -> Arc<Snapshot> {
    crate::util::sync::lock(published).clone()
}

/// The tuning half of a snapshot, from one plan.
struct TuningView {
    plan: Arc<str>,
    /// Each mount's ride-out with the kernel's values as the plan read them.
    rideout: Vec<RideOut>,
    verify: Arc<str>,
    knobs: usize,
    at_value: usize,
    drift: usize,
    made: Instant,
}

/// How often a snapshot may re-read every knob while the machine changes (a hotplug storm
/// of 1,000 disks makes one plan a second, not 1,000).
const VIEW_EVERY: Duration = Duration::from_secs(1);

fn json<T: serde::Serialize>(value: &T) -> Arc<str> {
    serde_json::to_string(value)
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        .into()
}

/// Locks the state; a panic elsewhere while holding it leaves the data usable.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    crate::util::sync::lock(shared)
}

/// The configuration in force, its profiles and the profile picked: what start and reload
/// make.
struct Loaded {
    config: Config,
    profiles: ProfileSet,
    profile: Profile,
    chosen_by: String,
}

/// Picks the profile of `config` (or the pinned one) from `profiles`.
fn pick(
    config: Config,
    profiles: ProfileSet,
    pinned: Option<&str>,
    inv: &Inventory,
) -> Result<Loaded, ConfigError> {
    let (name, chosen_by) = config.choose_profile(pinned, "pinned", inv.platform.kind);
    let profile = profiles.resolve(&name)?;
    Ok(Loaded {
        config,
        profiles,
        profile,
        chosen_by,
    })
}

/// Keeps the files just accepted in /run/tunerd/accepted.json, for a start that finds them
/// broken later; returns when they were accepted.
fn keep_accepted(root: &Root, files: &ConfigFiles) -> u64 {
    let now = epoch_secs(SystemTime::now());
    if let Err(e) = Accepted::save(root, files, now) {
        log!(
            warn,
            "cannot keep the accepted configuration ({e}): a restart with a broken one would run on the built-in configuration"
        );
    }
    now
}

/// `running on the previous configuration (accepted 2026-12-01T22:50:01.000Z)`.
fn running_on(state: &ConfigState) -> String {
    match (state.in_force, state.accepted_at) {
        (InForce::Previous, Some(at)) => format!(
            "running on the previous configuration (accepted {})",
            crate::util::time::rfc3339_ms(at.saturating_mul(1000))
        ),
        (in_force, _) => format!("running on {}", in_force.describe()),
    }
}

impl State {
    pub(crate) fn new(root: Root, pinned: Option<String>) -> Result<State, ServiceError> {
        // Temporaries an interrupted write left in /run/tunerd (a crash, a kill -9).
        for p in crate::host::state_files::clean_leftovers(&root) {
            log!(info, "removed {p}, left by an interrupted write");
        }
        let inventory = Inventory::read(&root).map_err(ServiceError::Inventory)?;
        // Refused files do not stop the daemon: it runs on what it accepted last, or on the
        // built-in configuration (config::Loaded), and says so.
        let read = config::Loaded::read(&root)?;
        let mut config_state = ConfigState {
            in_force: read.in_force,
            accepted_at: read.accepted_at,
            ..ConfigState::default()
        };
        if let Some(files) = &read.files {
            config_state.accepted_at = Some(keep_accepted(&root, files));
        }
        if let Some(e) = &read.refused {
            config_state.refused = Some(e.to_string());
            config_state.refused_at = Some(epoch_secs(SystemTime::now()));
            log!(
                err,
                "configuration refused: {e}; {}",
                running_on(&config_state)
            );
        }
        let Loaded {
            config,
            profiles,
            profile,
            chosen_by,
        } = pick(read.config, read.profiles, pinned.as_deref(), &inventory)?;
        let detection = Detection::new(&root, &config.watch);
        let started = SystemTime::now();
        let empty = Snapshot {
            status: DaemonStatus {
                running: true,
                pid: std::process::id(),
                root: root.base().display().to_string(),
                uptime_secs: 0,
                started: epoch_secs(started),
                profile: profile.name.clone(),
                chosen_by: chosen_by.clone(),
                platform: inventory.platform.kind.as_str().to_string(),
                health: Health::Ok,
                last_verify: None,
                drift_interval_secs: config.daemon.drift_interval_secs,
                drift_policy: config.daemon.drift_policy,
                on_stop: config.daemon.on_stop,
                hotplug_source: String::new(),
                hotplug_events: 0,
                disks: inventory.disks.len(),
                knobs: 0,
                at_value: 0,
                drift: 0,
                recent_drift: Vec::new(),
                open_incidents: 0,
                suspended: false,
                kmsg_records: 0,
                sources: Vec::new(),
                config: config_state.clone(),
                rideout: Vec::new(),
                alerts: Vec::new(),
                contested: Vec::new(),
                drift_total: 0,
            },
            started,
            plan: "{}".into(),
            verify: "{}".into(),
            events: Arc::new(EventsReply::default()),
            profiles: Arc::new(Vec::new()),
            health: Health::Ok,
            profile: profile.name.clone(),
            platform: inventory.platform.kind.as_str().to_string(),
            root: root.base().display().to_string(),
        };
        Ok(State {
            tuning: Tuning::new(profiles, profile, chosen_by, pinned),
            detection,
            root,
            config,
            inventory,
            started,
            published: Arc::new(Mutex::new(Arc::new(empty))),
            config_state,
            pending: Vec::new(),
            view: None,
            view_stale: true,
        })
    }

    /// Publishes a snapshot for the bus's read-only methods. The tuning half (a plan) is
    /// re-made when the machine may have changed, at most once per [`VIEW_EVERY`]: until then
    /// the last one stands, and [`State::publish_due`] says when to come back.
    pub(crate) fn publish(&mut self) {
        let due = self
            .view
            .as_ref()
            .is_none_or(|v| v.made.elapsed() >= VIEW_EVERY);
        self.publish_with(due);
    }

    /// Publishes now, with a fresh plan if the machine may have changed: after a privileged
    /// call, whose caller expects to see what it did.
    pub(crate) fn publish_now(&mut self) {
        self.publish_with(true);
    }

    /// When the next snapshot is owed a fresh plan.
    pub(crate) fn publish_due(&self) -> Option<Instant> {
        if !self.view_stale {
            return None;
        }
        Some(
            self.view
                .as_ref()
                .map_or_else(Instant::now, |v| v.made + VIEW_EVERY),
        )
    }

    fn publish_with(&mut self, replan: bool) {
        // A drift check or a verify just read every knob: that plan is the view.
        if let Some(plan) = self.tuning.looked.take() {
            self.set_view(&plan);
        } else if self.view_stale && replan {
            let plan = self.plan();
            self.set_view(&plan);
        }
        let snapshot = self.snapshot();
        *crate::util::sync::lock(&self.published) = Arc::new(snapshot);
    }

    fn set_view(&mut self, plan: &Plan) {
        let with = crate::tune::rideout::PlanWithRideOut::new(
            &self.root,
            &self.inventory,
            plan,
            self.tuning.profile.rideout_secs,
        );
        self.view = Some(TuningView {
            plan: json(&with),
            rideout: with.rideout.before,
            verify: json(&VerifyReply {
                profile: self.tuning.profile.name.clone(),
                drift: super::tuning::drift_of(plan),
            }),
            knobs: plan.changes.len(),
            at_value: plan.count(Action::Unchanged),
            drift: plan.count(Action::Set),
            made: Instant::now(),
        });
        self.view_stale = false;
    }

    fn snapshot(&self) -> Snapshot {
        let (plan, verify) = match &self.view {
            Some(v) => (v.plan.clone(), v.verify.clone()),
            None => ("{}".into(), "{}".into()),
        };
        Snapshot {
            status: self.status(),
            started: self.started,
            plan,
            verify,
            events: Arc::new(self.events()),
            profiles: Arc::new(self.profile_names()),
            health: self.health(),
            profile: self.tuning.profile.name.clone(),
            platform: self.inventory.platform.kind.as_str().to_string(),
            root: self.root.base().display().to_string(),
        }
    }

    /// The machine or the profile may have changed: the next snapshot re-reads the knobs.
    fn changed(&mut self) {
        self.view_stale = true;
        self.tuning.looked = None;
    }

    /// How the machine is doing: failing while a storage incident is open, else what tuning
    /// left (ok, drift, degraded).
    pub(crate) fn health(&self) -> Health {
        if self.detection.failing() {
            Health::Failing
        } else {
            self.tuning.health
        }
    }

    pub(crate) fn plan(&self) -> Plan {
        self.tuning.plan(&self.root, &self.inventory)
    }

    pub(crate) fn apply_all(&mut self) -> Result<Report, OriginalsError> {
        self.changed();
        let contested = self.contested_targets();
        let report = self.tuning.apply_all(&self.root, &self.inventory);
        self.end_contests(contested);
        report
    }

    fn contested_targets(&self) -> Vec<String> {
        self.tuning
            .contested
            .values()
            .map(|c| c.target.clone())
            .collect()
    }

    /// Ends the incidents of the contests an apply, switch or reload ended.
    fn end_contests(&mut self, before: Vec<String>) {
        let ended: Vec<String> = before
            .into_iter()
            .filter(|t| !self.tuning.contested.values().any(|c| &c.target == t))
            .collect();
        if !ended.is_empty() {
            let a = self.detection.contests_ended(&self.root, &ended);
            self.pending.extend(a);
        }
    }

    /// What was announced outside the loop's calls, for the loop to send.
    pub(crate) fn take_pending(&mut self) -> Vec<Announce> {
        std::mem::take(&mut self.pending)
    }

    pub(crate) fn revert(&mut self) -> Result<Report, OriginalsError> {
        self.changed();
        self.tuning.revert(&self.root)
    }

    /// A fresh verify (root's `Verify()`): reads every knob now, and the snapshot takes it.
    pub(crate) fn verify(&mut self) -> VerifyReply {
        let drift = self.tuning.verify(&self.root, &self.inventory);
        VerifyReply {
            profile: self.tuning.profile.name.clone(),
            drift,
        }
    }

    /// A fresh plan (root's `Plan()`): the snapshot takes it too.
    pub(crate) fn fresh_plan(&mut self) -> Arc<str> {
        let plan = self.plan();
        self.set_view(&plan);
        self.view
            .as_ref()
            .map_or_else(|| "{}".into(), |v| v.plan.clone())
    }

    pub(crate) fn drift_check(&mut self) -> Vec<Announce> {
        let settings = self.config.daemon.clone();
        let mut announce = self
            .tuning
            .drift_check(&self.root, &self.inventory, &settings);
        if self.tuning.looked.is_none() {
            // It repaired something (or was suspended): what it read is out of date.
            self.view_stale = true;
        }
        let contested: Vec<_> = announce
            .iter()
            .filter_map(|a| match a {
                Announce::Contested(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        for c in contested {
            announce.extend(self.detection.on_contested(&self.root, &self.inventory, &c));
        }
        announce
    }

    pub(crate) fn hotplug(&mut self, event: &BlockEvent) -> Option<Report> {
        self.changed();
        self.tuning.hotplug(&self.root, &mut self.inventory, event)
    }

    pub(crate) fn run_retries(&mut self) {
        self.changed();
        self.tuning.run_retries(&self.root, &mut self.inventory);
    }

    pub(crate) fn profile_names(&self) -> Vec<String> {
        self.tuning.profiles.names()
    }

    pub(crate) fn events(&self) -> EventsReply {
        self.detection.events()
    }

    /// The mount table as of now, before records are placed: a disk that fails right after
    /// it was mounted (before the next sample re-read the table) still names its mount.
    /// One read of /proc/self/mountinfo per batch of log records, which are rare.
    fn mounts_now(&mut self) {
        if let Err(e) = self.inventory.refresh_mounts(&self.root) {
            log!(warn, "mount table: {e}");
        }
    }

    pub(crate) fn on_kmsg(&mut self, batch: Batch) -> Vec<Announce> {
        if !batch.records.is_empty() {
            self.mounts_now();
        }
        self.detection.on_kmsg(&self.root, &self.inventory, batch)
    }

    pub(crate) fn on_journal(&mut self, records: Vec<LogRecord>) -> Vec<Announce> {
        if !records.is_empty() {
            self.mounts_now();
        }
        self.detection
            .on_journal(&self.root, &self.inventory, records)
    }

    pub(crate) fn on_fanotify(&mut self) -> Vec<Announce> {
        self.mounts_now();
        self.detection.on_fanotify(&self.root, &self.inventory)
    }

    pub(crate) fn on_sample(&mut self) -> Vec<Announce> {
        let mounts_before: Vec<(String, String)> = self
            .inventory
            .mounts
            .iter()
            .map(|m| (m.mount_point.clone(), m.dev.clone()))
            .collect();
        let announce = self.detection.on_sample(&self.root, &mut self.inventory);
        // A mount came or went: the ride-out of the next snapshot covers it.
        if self
            .inventory
            .mounts
            .iter()
            .map(|m| (m.mount_point.clone(), m.dev.clone()))
            .ne(mounts_before)
        {
            self.view_stale = true;
        }
        let rideout = self.rideout_figures();
        self.detection.publish_metrics(
            self.tuning.drift_total,
            self.tuning.last_at_value as u64,
            rideout,
        );
        announce
    }

    pub(crate) fn start_alerts(&mut self) {
        self.detection.start_alerts(&self.root, &self.config.alert);
    }

    /// Re-reads the configuration. A broken one is refused ([`ServiceError::Config`]) and the
    /// running one stays in force, untouched. A valid one is taken, then its profile applied:
    /// if the originals cannot be recorded then ([`ServiceError::Originals`]) the new
    /// configuration is in force but its profile only partly applied, and the error says so.
    pub(crate) fn reload(&mut self) -> Result<Vec<Announce>, ServiceError> {
        self.changed();
        let read = ConfigFiles::read(&self.root).and_then(|files| {
            let (config, profiles) = files.parse()?;
            let loaded = pick(
                config,
                profiles,
                self.tuning.pinned_profile.as_deref(),
                &self.inventory,
            )?;
            Ok((files, loaded))
        });
        let (files, loaded) = match read {
            Ok(r) => r,
            Err(e) => {
                // What runs was accepted before: the files as they were then, or the previous
                // or built-in configuration the daemon started on.
                let c = &mut self.config_state;
                if c.in_force == InForce::Files {
                    c.in_force = InForce::Previous;
                }
                c.refused = Some(e.to_string());
                c.refused_at = Some(epoch_secs(SystemTime::now()));
                log!(err, "configuration refused: {e}; {}", running_on(c));
                return Err(ServiceError::Config(e));
            }
        };
        self.config_state = ConfigState {
            in_force: InForce::Files,
            accepted_at: Some(keep_accepted(&self.root, &files)),
            refused: None,
            refused_at: None,
        };
        let Loaded {
            config,
            profiles,
            profile,
            chosen_by,
        } = loaded;
        let alerts_changed = config.alert != self.config.alert;
        self.detection.set_watch(&config.watch);
        self.config = config;
        if alerts_changed {
            self.start_alerts();
        }
        self.tuning.profiles = profiles;
        let contested = self.contested_targets();
        let switched = self
            .tuning
            .switch_to(&self.root, &self.inventory, profile, chosen_by);
        self.end_contests(contested);
        let announce = switched?;
        log!(
            info,
            "configuration reloaded: profile {}",
            self.tuning.profile.name
        );
        Ok(announce)
    }

    /// Switches to a profile by name (D-Bus SwitchProfile): pins it until the next switch. An
    /// unknown or broken profile is refused and nothing changes.
    pub(crate) fn switch(&mut self, name: &str) -> Result<Vec<Announce>, ServiceError> {
        let profile = self.tuning.profiles.resolve(name)?;
        self.changed();
        self.tuning.pinned_profile = Some(name.to_string());
        let contested = self.contested_targets();
        let switched =
            self.tuning
                .switch_to(&self.root, &self.inventory, profile, "pinned".to_string());
        self.end_contests(contested);
        Ok(switched?)
    }

    /// The status as of the last snapshot's plan: the knob counts come from it, never from a
    /// read of every knob per call.
    /// A failure source came up or went down.
    pub(crate) fn set_source(&mut self, name: &'static str, live: bool) {
        if live {
            self.detection.sources.insert(name);
        } else {
            self.detection.sources.remove(name);
        }
        self.view_stale = true;
    }

    pub(crate) fn status(&self) -> DaemonStatus {
        let (knobs, at_value, drift) = self
            .view
            .as_ref()
            .map_or((0, 0, 0), |v| (v.knobs, v.at_value, v.drift));
        let t = &self.tuning;
        DaemonStatus {
            running: true,
            pid: std::process::id(),
            root: self.root.base().display().to_string(),
            uptime_secs: self.started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
            started: epoch_secs(self.started),
            profile: t.profile.name.clone(),
            chosen_by: t.chosen_by.clone(),
            platform: self.inventory.platform.kind.as_str().to_string(),
            health: self.health(),
            last_verify: t.last_verify.map(epoch_secs),
            drift_interval_secs: self.config.daemon.drift_interval_secs,
            drift_policy: self.config.daemon.drift_policy,
            on_stop: self.config.daemon.on_stop,
            hotplug_source: t.hotplug_source.to_string(),
            hotplug_events: t.events_handled,
            disks: self.inventory.disks.len(),
            knobs,
            at_value,
            drift,
            recent_drift: t.recent_drift.iter().cloned().collect(),
            open_incidents: self.detection.open().len(),
            suspended: t.suspended,
            kmsg_records: self.detection.kmsg_records,
            sources: self
                .detection
                .sources
                .iter()
                .map(|s| s.to_string())
                .collect(),
            config: self.config_state.clone(),
            rideout: self
                .view
                .as_ref()
                .map(|v| v.rideout.clone())
                .unwrap_or_default(),
            alerts: self.detection.alert_sinks(),
            contested: self.tuning.contested.values().cloned().collect(),
            drift_total: t.drift_total,
        }
    }

    /// Each mount's ride-out as of the last view, for the metrics.
    pub(crate) fn rideout_figures(&self) -> Vec<(String, Option<u64>)> {
        self.view
            .as_ref()
            .map(|v| {
                v.rideout
                    .iter()
                    .map(|r| (r.mount.clone(), r.seconds))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine with no disks and the three vm knobs of the default profile, under a
    /// scratch directory.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("tunerd-state-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for d in ["sys/block", "proc/self", "proc/sys/vm", "etc/tunerd"] {
                std::fs::create_dir_all(dir.join(d)).expect("mkdir");
            }
            std::fs::write(dir.join("proc/self/mountinfo"), "").expect("mountinfo");
            for (k, v) in [
                ("swappiness", "60"),
                ("dirty_ratio", "20"),
                ("dirty_background_ratio", "10"),
            ] {
                std::fs::write(dir.join("proc/sys/vm").join(k), format!("{v}\n")).expect("vm");
            }
            Scratch(dir)
        }

        fn config(&self, text: &str) {
            std::fs::write(self.0.join("etc/tunerd/tunerd.toml"), text).expect("config");
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_broken_reload_is_refused_and_the_running_configuration_stays() {
        let s = Scratch::new("refused");
        s.config("[daemon]\ndrift_interval_secs = 7\n");
        let mut state = State::new(Root::new(&s.0), None).expect("start");
        state.apply_all().expect("apply");
        s.config("[daemon]\ndrift_interval_secs = \"soon\"\n");
        let err = state.reload().expect_err("a broken configuration");
        assert!(matches!(err, ServiceError::Config(_)), "{err}");
        assert_eq!(state.config.daemon.drift_interval_secs, 7);
        let c = &state.status().config;
        assert_eq!(c.in_force, InForce::Previous);
        assert!(c
            .refused
            .as_deref()
            .is_some_and(|e| e.contains("tunerd.toml:2:")));
        assert!(c.accepted_at.is_some() && c.refused_at.is_some());
    }

    #[test]
    fn a_start_on_refused_files_runs_on_the_kept_ones_then_on_the_built_in_ones() {
        let s = Scratch::new("fallback");
        s.config(
            "[daemon]
drift_interval_secs = 7
",
        );
        let first = State::new(Root::new(&s.0), None).expect("start");
        assert_eq!(first.status().config.in_force, InForce::Files);
        drop(first);
        s.config(
            "[daemon]
drift_interval_secs = \"soon\"\n",
        );
        let second = State::new(Root::new(&s.0), None).expect("refused files do not stop it");
        assert_eq!(
            second.config.daemon.drift_interval_secs, 7,
            "the kept configuration"
        );
        let c = second.status().config;
        assert_eq!(c.in_force, InForce::Previous);
        assert!(c.refused.is_some_and(|e| e.contains("tunerd.toml:2:")));
        // What was refused did not replace what was kept.
        drop(second);
        let third = State::new(Root::new(&s.0), None).expect("start");
        assert_eq!(third.config.daemon.drift_interval_secs, 7);
        // A reboot empties /run: nothing kept, the built-in configuration.
        drop(third);
        std::fs::remove_file(s.0.join("run/tunerd/accepted.json")).expect("kept");
        let fourth = State::new(Root::new(&s.0), None).expect("start");
        assert_eq!(fourth.config.daemon.drift_interval_secs, 30, "the default");
        assert_eq!(fourth.status().config.in_force, InForce::BuiltIn);
        assert_eq!(fourth.status().config.accepted_at, None);
    }

    #[test]
    fn a_reload_that_cannot_record_originals_is_in_force_and_says_so() {
        let s = Scratch::new("originals");
        s.config("profile = \"default\"\n");
        let mut state = State::new(Root::new(&s.0), None).expect("start");
        // The new profile sets a knob the old one did not touch, so applying it must record
        // an original first; /run/tunerd cannot hold one (it is a file, not a directory).
        std::fs::create_dir_all(s.0.join("etc/tunerd/profiles.d")).expect("mkdir");
        std::fs::write(
            s.0.join("etc/tunerd/profiles.d/t.toml"),
            "description = \"t\"\n[vm]\nswappiness = 5\n",
        )
        .expect("profile");
        // (The start kept its configuration there: take the directory away.)
        let _ = std::fs::remove_dir_all(s.0.join("run/tunerd"));
        std::fs::create_dir_all(s.0.join("run")).expect("mkdir");
        std::fs::write(s.0.join("run/tunerd"), "not a directory").expect("block run/tunerd");
        s.config("profile = \"t\"\n[daemon]\ndrift_interval_secs = 9\n");
        let err = state.reload().expect_err("originals cannot be written");
        assert!(matches!(err, ServiceError::Originals(_)), "{err}");
        // Not refused: the new configuration is the one in force.
        assert_eq!(state.config.daemon.drift_interval_secs, 9);
        assert_eq!(state.config.profile, "t");
    }
}
