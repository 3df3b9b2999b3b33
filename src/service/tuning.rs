//! The tuning half of the service: holds every disk at the profile. Applies it, checks for
//! drift and repairs (or reports) it, tunes hotplugged disks (retrying attributes that appear
//! late), switches profiles (reverting what the new one does not want) and reverts.
//!
//! The machine handle and the inventory belong to the [`State`](super::state::State) and come
//! in as arguments: detection reads the same inventory.
//!
//! An apply that cannot record the originals (a full or read-only /run, a busy lock) writes
//! nothing and is tried again on a timer ([`APPLY_RETRY_FIRST`], doubling to
//! [`APPLY_RETRY_MAX`]) with health `degraded` meanwhile; a failed drift repair or hotplug
//! tuning leaves the same retry. Tuning failing never stops detection.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use crate::api::{Announce, DriftRecord, Health};
use crate::config::{DaemonSettings, DriftPolicy, OnContested};
use crate::host::inventory::Inventory;
use crate::host::sys::Root;
use crate::log;
use crate::tune::apply::{self, Drift, OriginalsError, Report, Status};
use crate::tune::hotplug::{BlockAction, BlockEvent};
use crate::tune::knob::Knob;
use crate::tune::plan::{self, Action, Object, Plan};
use crate::tune::profile::{Profile, ProfileSet};
use crate::util::time::epoch_secs;

/// Retries for disks whose attributes appear after their `add` event.
const RETRY_DELAYS_MS: [u64; 5] = [20, 40, 80, 160, 320];
const RECENT_DRIFT: usize = 64;
/// The first retry of a whole-profile apply that could not record its originals.
pub(crate) const APPLY_RETRY_FIRST: Duration = Duration::from_secs(1);
/// Its backoff doubles up to this.
pub(crate) const APPLY_RETRY_MAX: Duration = Duration::from_secs(60);

/// The drift a plan shows, `once` knobs left out (what `Verify()` reports).
pub(crate) fn drift_of(plan: &Plan) -> Vec<Drift> {
    let mut plan = plan.clone();
    plan.changes.retain(|c| !c.once);
    apply::verify(&plan)
}

pub(crate) struct Tuning {
    pub profiles: ProfileSet,
    pub profile: Profile,
    /// Why this profile: `pinned`, `config FILE`, `auto: platform kvm`.
    pub chosen_by: String,
    /// `--profile` or a D-Bus switch: wins over the configuration until the next switch.
    pub(super) pinned_profile: Option<String>,
    pub last_verify: Option<SystemTime>,
    pub recent_drift: VecDeque<DriftRecord>,
    /// `ok`, `drift` (reported, not repaired) or `degraded` (the kernel rejected a knob).
    pub health: Health,
    /// `once` knobs already set: (object, knob).
    once_done: BTreeSet<(Object, Knob)>,
    /// Disk -> (attempt, when).
    retries: Vec<(String, usize, Instant)>,
    pub hotplug_source: &'static str,
    pub events_handled: u64,
    /// Set by a revert: the machine is back at its originals and stays there (no drift
    /// repair, no hotplug tuning) until the next apply, switch or reload.
    pub suspended: bool,
    /// Knobs at their value after the last apply or drift check (for the metrics).
    pub last_at_value: usize,
    pub drift_total: u64,
    /// The plan the last verify read, while nothing was written since: the snapshot takes
    /// it instead of reading every knob again.
    pub(super) looked: Option<Plan>,
    /// A whole-profile apply is owed (the last one could not record its originals): when,
    /// and the backoff that got there.
    apply_retry: Option<(Instant, Duration)>,
    /// Each knob's recent repairs (path -> when), to tell another writer from a one-off.
    repairs: BTreeMap<String, VecDeque<Instant>>,
    /// Knobs another writer keeps setting back (path -> what we know of it): reported once,
    /// and with `on_contested = "back-off"` no longer repaired until the next apply, switch
    /// or reload.
    pub contested: BTreeMap<String, ContestedKnob>,
    /// Knobs whose last write the kernel refused (the path as reports show it -> the value
    /// refused): not drift, and not another writer, until the next apply, switch or reload
    /// tries them again. Seen in the guest lab: a virtio-scsi host (no host reset handler)
    /// refuses any `eh_deadline` with EINVAL.
    rejected: BTreeMap<String, String>,
}

pub(crate) use crate::api::ContestedKnob;

/// Whether a report left knobs undone that a retry may still set.
fn incomplete(report: Option<&Report>) -> bool {
    report.is_some_and(|r| {
        r.outcomes.iter().any(|o| {
            matches!(
                o.status,
                Status::Absent | Status::Rejected | Status::Unsupported
            )
        })
    })
}

impl Tuning {
    pub(crate) fn new(
        profiles: ProfileSet,
        profile: Profile,
        chosen_by: String,
        pinned: Option<String>,
    ) -> Tuning {
        Tuning {
            profiles,
            profile,
            chosen_by,
            pinned_profile: pinned,
            last_verify: None,
            recent_drift: VecDeque::new(),
            health: Health::Ok,
            once_done: BTreeSet::new(),
            retries: Vec::new(),
            hotplug_source: "none",
            events_handled: 0,
            suspended: false,
            last_at_value: 0,
            drift_total: 0,
            looked: None,
            apply_retry: None,
            repairs: BTreeMap::new(),
            contested: BTreeMap::new(),
            rejected: BTreeMap::new(),
        }
    }

    /// The profile is taken back whole (an apply, a switch, a reload): contests start over.
    fn forget_contests(&mut self) {
        self.repairs.clear();
        self.contested.clear();
        self.rejected.clear();
    }

    /// Counts a repair of `d`; says whether it just became contested.
    fn repaired(&mut self, d: &Drift, settings: &DaemonSettings) -> bool {
        if settings.contested_repairs == 0 || self.contested.contains_key(&d.path) {
            return false;
        }
        let window = Duration::from_secs(settings.contested_window_secs);
        let now = Instant::now();
        let times = self.repairs.entry(d.path.clone()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            times.pop_front();
        }
        times.push_back(now);
        if (times.len() as u64) < settings.contested_repairs {
            return false;
        }
        self.contested.insert(
            d.path.clone(),
            ContestedKnob {
                target: d.target.clone(),
                path: d.path.clone(),
                ours: d.desired.clone(),
                theirs: d.actual.clone(),
                repairs: times.len() as u64,
                window_secs: settings.contested_window_secs,
                since: epoch_secs(SystemTime::now()),
                backed_off: settings.on_contested == OnContested::BackOff,
            },
        );
        true
    }

    /// Schedules the next whole-profile apply after one failed: 1 s, then doubling to 60 s.
    fn apply_failed(&mut self) -> Duration {
        let backoff = match self.apply_retry {
            Some((_, b)) => (b * 2).min(APPLY_RETRY_MAX),
            None => APPLY_RETRY_FIRST,
        };
        self.apply_retry = Some((Instant::now() + backoff, backoff));
        self.health = Health::Degraded;
        backoff
    }

    /// A partial apply (drift repair, one hotplugged disk) could not record its originals:
    /// the whole profile is applied again later, which covers what this one missed.
    fn retry_apply_later(&mut self) {
        self.health = Health::Degraded;
        if self.apply_retry.is_none() {
            self.apply_retry = Some((Instant::now() + APPLY_RETRY_FIRST, APPLY_RETRY_FIRST));
        }
    }

    /// When the next whole-profile apply is due, if one is owed.
    pub(crate) fn apply_retry_in(&self) -> Option<Duration> {
        self.apply_retry
            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
    }

    pub(crate) fn plan(&self, root: &Root, inv: &Inventory) -> Plan {
        plan::plan(root, &self.profile, inv)
    }

    /// Applies a plan, remembering `once` knobs and the health it leaves.
    fn apply_plan(&mut self, root: &Root, plan: &Plan) -> Result<Report, OriginalsError> {
        let mut plan = plan.clone();
        plan.changes.retain(|c| {
            !(c.once
                && c.action == Action::Set
                && self.once_done.contains(&(c.object.clone(), c.knob)))
        });
        // Whatever happens next, the knobs may no longer be what the last verify read.
        self.looked = None;
        let report = apply::apply(root, &plan)?;
        for o in &report.outcomes {
            if o.status == Status::Rejected {
                self.rejected.insert(o.path.clone(), o.wanted.clone());
            } else {
                self.rejected.remove(&o.path);
            }
        }
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

    /// Applies the whole profile. When the originals cannot be recorded nothing is written,
    /// health is `degraded` and the apply is retried on a timer until it succeeds.
    pub(crate) fn apply_all(
        &mut self,
        root: &Root,
        inv: &Inventory,
    ) -> Result<Report, OriginalsError> {
        self.suspended = false;
        self.forget_contests();
        let plan = self.plan(root, inv);
        self.health = Health::Ok;
        match self.apply_plan(root, &plan) {
            Ok(report) => {
                self.apply_retry = None;
                Ok(report)
            }
            Err(e) => {
                self.apply_failed();
                Err(e)
            }
        }
    }

    /// Restores every original and stops enforcing the profile until the next apply, switch
    /// or reload: a revert that the next drift check undid would be no revert.
    pub(crate) fn revert(&mut self, root: &Root) -> Result<Report, OriginalsError> {
        let report = apply::revert(root)?;
        self.suspended = true;
        self.retries.clear();
        self.apply_retry = None;
        log!(
            notice,
            "reverted: {} originals restored; the profile is not enforced until the next apply",
            report.written()
        );
        Ok(report)
    }

    /// Knobs that differ from the profile, `once` knobs left out.
    pub(crate) fn verify(&mut self, root: &Root, inv: &Inventory) -> Vec<Drift> {
        self.last_verify = Some(SystemTime::now());
        let plan = self.plan(root, inv);
        let drift = drift_of(&plan);
        self.looked = Some(plan);
        drift
    }

    /// The periodic check: find drift, log it, repair it if the policy says so.
    pub(crate) fn drift_check(
        &mut self,
        root: &Root,
        inv: &Inventory,
        settings: &DaemonSettings,
    ) -> Vec<Announce> {
        let policy = settings.drift_policy;
        if self.suspended {
            return Vec::new();
        }
        let mut drift = self.verify(root, inv);
        // A value the kernel refused is not drift: the refusal was logged and health reads
        // `degraded` (repairing it would only be refused again, and look like another writer).
        drift.retain(|d| self.rejected.get(&root.display(&d.path)) != Some(&d.desired));
        // A contested knob tunerd backed off from is left to the other writer: it is in the
        // status, not logged again at every check (the value it holds is updated).
        for d in &drift {
            if let Some(c) = self.contested.get_mut(&d.path) {
                c.theirs = d.actual.clone();
            }
        }
        let backed_off: BTreeSet<String> = self
            .contested
            .values()
            .filter(|c| c.backed_off)
            .map(|c| c.path.clone())
            .collect();
        let held_by_others = drift.iter().any(|d| backed_off.contains(&d.path));
        drift.retain(|d| !backed_off.contains(&d.path));
        if drift.is_empty() && held_by_others {
            if self.health == Health::Ok {
                self.health = Health::Drift;
                return vec![Announce::PropertiesChanged];
            }
            return Vec::new();
        }
        if drift.is_empty() {
            if self.health == Health::Drift {
                self.health = Health::Ok;
                return vec![Announce::PropertiesChanged];
            }
            return Vec::new();
        }
        let repair = policy == DriftPolicy::Repair;
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
                at: epoch_secs(SystemTime::now()),
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
            if repair && self.repaired(d, settings) {
                if let Some(c) = self.contested.get(&d.path) {
                    log!(warn, "knob contested: {}", c.describe());
                    announce.push(Announce::Contested(Box::new(c.clone())));
                }
            }
        }
        let before = self.health;
        if repair {
            let paths: BTreeSet<&str> = drift.iter().map(|d| d.path.as_str()).collect();
            let mut plan = self.plan(root, inv);
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
            if let Err(e) = self.apply_plan(root, &plan) {
                log!(
                    err,
                    "drift repair failed: {e}; the whole profile is applied again in {} s",
                    APPLY_RETRY_FIRST.as_secs()
                );
                self.retry_apply_later();
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
    pub(crate) fn hotplug(
        &mut self,
        root: &Root,
        inv: &mut Inventory,
        event: &BlockEvent,
    ) -> Option<Report> {
        self.events_handled += 1;
        match event.action {
            BlockAction::Remove => {
                inv.remove_disk(&event.name);
                self.retries.retain(|(d, _, _)| d != &event.name);
                self.once_done
                    .retain(|(o, _)| o != &Object::Disk(event.name.clone()));
                match apply::forget_disk(root, &event.name) {
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
                let report = self.tune_disk(root, inv, &event.name);
                self.retries.retain(|(d, _, _)| d != &event.name);
                if incomplete(report.as_ref()) {
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

    fn tune_disk(&mut self, root: &Root, inv: &mut Inventory, name: &str) -> Option<Report> {
        match inv.refresh_disk(root, name) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                log!(warn, "{name}: cannot read it: {e}");
                return None;
            }
        }
        let objects = plan::disk_objects(inv, name);
        let plan = plan::plan_where(root, &self.profile, inv, |t| objects.contains(&t.object));
        if plan.changes.is_empty() {
            return None;
        }
        match self.apply_plan(root, &plan) {
            Ok(report) => {
                if report.written() > 0 {
                    log!(info, "{name}: {} knobs set", report.written());
                }
                Some(report)
            }
            Err(e) => {
                log!(
                    err,
                    "{name}: {e}; the whole profile is applied again in {} s",
                    APPLY_RETRY_FIRST.as_secs()
                );
                self.retry_apply_later();
                None
            }
        }
    }

    /// When the next retry is due.
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.retries
            .iter()
            .map(|(_, _, at)| *at)
            .chain(self.apply_retry.map(|(at, _)| at))
            .min()
    }

    /// Retries disks whose attributes were missing: their scheduler list or queue may appear
    /// some milliseconds after `add`.
    pub(crate) fn run_retries(&mut self, root: &Root, inv: &mut Inventory) {
        let now = Instant::now();
        if self.apply_retry.is_some_and(|(at, _)| at <= now) {
            match self.apply_all(root, inv) {
                Ok(report) => log!(
                    notice,
                    "profile {} applied on retry: {} knobs set, {} already at value, {} rejected",
                    self.profile.name,
                    report.written(),
                    report.count(Status::Unchanged),
                    report.count(Status::Rejected)
                ),
                Err(e) => log!(
                    warn,
                    "{e}; the profile is still not applied, trying again in {} s",
                    self.apply_retry_in().map_or(0, |d| d.as_secs())
                ),
            }
        }
        let due: Vec<(String, usize)> = self
            .retries
            .iter()
            .filter(|(_, _, at)| *at <= now)
            .map(|(d, n, _)| (d.clone(), *n))
            .collect();
        self.retries.retain(|(_, _, at)| *at > now);
        for (disk, attempt) in due {
            let report = self.tune_disk(root, inv, &disk);
            if incomplete(report.as_ref()) && attempt + 1 < RETRY_DELAYS_MS.len() {
                self.retries.push((
                    disk,
                    attempt + 1,
                    Instant::now() + Duration::from_millis(RETRY_DELAYS_MS[attempt + 1]),
                ));
            }
        }
    }

    /// Reverts what the old profile set and the new one does not want, then applies the new.
    pub(super) fn switch_to(
        &mut self,
        root: &Root,
        inv: &Inventory,
        new: Profile,
        chosen_by: String,
    ) -> Result<Vec<Announce>, OriginalsError> {
        let old_keys: BTreeSet<String> = plan::targets(&self.profile, inv)
            .iter()
            .map(|t| apply::originals_key(&t.object, t.knob))
            .collect();
        let new_keys: BTreeSet<String> = plan::targets(&new, inv)
            .iter()
            .map(|t| apply::originals_key(&t.object, t.knob))
            .collect();
        let dropped: BTreeSet<&String> = old_keys.difference(&new_keys).collect();
        if !dropped.is_empty() {
            apply::revert_where(root, |k| dropped.iter().any(|d| d.as_str() == k))?;
        }
        let old = std::mem::replace(&mut self.profile, new);
        self.chosen_by = chosen_by;
        self.once_done.clear();
        self.apply_all(root, inv)?;
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
}
