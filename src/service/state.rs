//! The service's state: the machine handle, the configuration, the inventory both halves
//! read, and the two halves themselves, [`Tuning`] and [`Detection`]. The loop
//! ([`super::run`]) and the bus ([`super::bus`]) reach it through one mutex ([`Shared`]); it
//! never reaches them: what it changed comes back as [`Announce`] values, sent by the caller
//! outside the lock.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::api::{Announce, DaemonStatus, EventsReply, Health, VerifyReply};
use crate::config::Config;
use crate::detect::sources::kmsg::Batch;
use crate::detect::types::{Incident, LogRecord};
use crate::host::inventory::Inventory;
use crate::host::sys::{Root, SysError};
use crate::log;
use crate::tune::apply::{OriginalsError, Report};
use crate::tune::hotplug::BlockEvent;
use crate::tune::plan::{Action, Plan};
use crate::tune::profile::{Profile, ProfileSet};
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
}

pub(crate) type Shared = Arc<Mutex<State>>;

/// Locks the state; a panic elsewhere while holding it leaves the data usable.
pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    crate::util::sync::lock(shared)
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

impl State {
    pub(crate) fn new(root: Root, pinned: Option<String>) -> Result<State, ServiceError> {
        let inventory = Inventory::read(&root).map_err(ServiceError::Inventory)?;
        let (config, profiles, profile, chosen_by) = load(&root, pinned.as_deref(), &inventory)?;
        let detection = Detection::new(&root, &config.watch);
        Ok(State {
            tuning: Tuning::new(profiles, profile, chosen_by, pinned),
            detection,
            root,
            config,
            inventory,
            started: SystemTime::now(),
        })
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
        self.tuning.apply_all(&self.root, &self.inventory)
    }

    pub(crate) fn revert(&mut self) -> Result<Report, OriginalsError> {
        self.tuning.revert(&self.root)
    }

    pub(crate) fn verify(&mut self) -> VerifyReply {
        let drift = self.tuning.verify(&self.root, &self.inventory);
        VerifyReply {
            profile: self.tuning.profile.name.clone(),
            drift,
        }
    }

    pub(crate) fn drift_check(&mut self) -> Vec<Announce> {
        let policy = self.config.daemon.drift_policy;
        self.tuning.drift_check(&self.root, &self.inventory, policy)
    }

    pub(crate) fn hotplug(&mut self, event: &BlockEvent) -> Option<Report> {
        self.tuning.hotplug(&self.root, &mut self.inventory, event)
    }

    pub(crate) fn run_retries(&mut self) {
        self.tuning.run_retries(&self.root, &mut self.inventory);
    }

    pub(crate) fn profile_names(&self) -> Vec<String> {
        self.tuning.profiles.names()
    }

    pub(crate) fn profile_name(&self) -> &str {
        &self.tuning.profile.name
    }

    pub(crate) fn open_incidents(&self) -> Vec<&Incident> {
        self.detection.open()
    }

    pub(crate) fn events(&self) -> EventsReply {
        self.detection.events()
    }

    pub(crate) fn on_kmsg(&mut self, batch: Batch) -> Vec<Announce> {
        self.detection.on_kmsg(&self.root, &self.inventory, batch)
    }

    pub(crate) fn on_journal(&mut self, records: Vec<LogRecord>) -> Vec<Announce> {
        self.detection
            .on_journal(&self.root, &self.inventory, records)
    }

    pub(crate) fn on_fanotify(&mut self) -> Vec<Announce> {
        self.detection.on_fanotify(&self.root, &self.inventory)
    }

    pub(crate) fn on_sample(&mut self) -> Vec<Announce> {
        let announce = self.detection.on_sample(&self.root, &mut self.inventory);
        self.detection
            .publish_metrics(self.tuning.drift_total, self.tuning.last_at_value as u64);
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
        let (config, profiles, profile, chosen_by) = load(
            &self.root,
            self.tuning.pinned_profile.as_deref(),
            &self.inventory,
        )?;
        let alerts_changed = config.alert != self.config.alert;
        self.config = config;
        if alerts_changed {
            self.start_alerts();
        }
        self.tuning.profiles = profiles;
        let announce = self
            .tuning
            .switch_to(&self.root, &self.inventory, profile, chosen_by)?;
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
        self.tuning.pinned_profile = Some(name.to_string());
        Ok(self
            .tuning
            .switch_to(&self.root, &self.inventory, profile, "pinned".to_string())?)
    }

    pub(crate) fn status(&self) -> DaemonStatus {
        let plan = self.plan();
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
            knobs: plan.changes.len(),
            at_value: plan.count(Action::Unchanged),
            drift: plan.count(Action::Set),
            recent_drift: t.recent_drift.iter().cloned().collect(),
            open_incidents: self.detection.open().len(),
            suspended: t.suspended,
            kmsg_records: self.detection.kmsg_records,
        }
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
