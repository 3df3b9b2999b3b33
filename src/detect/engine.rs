//! The one fold of the detection pipeline: record -> classify -> locate -> time -> observe.
//! The daemon feeds it what its sources read; `tunerctl scan` feeds it a saved log; both get
//! the same incidents from the same records, because this is the only place the step is
//! written.
//!
//! Pure: the inventory (where a device lives) and the time come in as arguments,
//! notifications go out as values.

use std::collections::BTreeSet;

use std::collections::BTreeMap;

use crate::detect::classify::{
    classify, drbd8_conn_change, lifecycle, link_is_up, scsi_disk_name, Drbd8Conn, Lifecycle,
};
use crate::detect::incidents::{self, Detail, IncidentConfig, IncidentTable, Incidents, Place};
use crate::detect::sources::fanotify::FsError;
use crate::detect::sources::samplers::Finding;
use crate::detect::types::{Incident, Kind, LogRecord, Notification, Observation, Severity};
use crate::host::inventory::Inventory;

/// Where the times of records come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// The running machine: the kernel's monotonic stamps are turned into times with its boot
    /// time (`/proc/stat` btime, Unix seconds), and nothing is later than now.
    Live { boot_time: u64 },
    /// A saved log, maybe from another machine: only its own stamps count (monotonic ones as
    /// seconds since that boot); a record without a stamp takes the previous record's time.
    Saved,
}

/// SCSI address -> disk name pairs kept at most (one per disk the log names).
const MAX_SCSI_NAMES: usize = 4096;

/// DRBD 8.4 handshakes tracked at once (connections that went to `WFReportParams` within
/// [`DRBD8_HANDSHAKE_SECS`]); more make every tie ambiguous until they are old.
const MAX_DRBD8_HANDSHAKES: usize = 64;

/// How long after its connection's `conn( ... -> WFReportParams )` a DRBD 8.4 device's
/// `conn( WFReportParams -> Connected )` is taken as that handshake's: each side sends its
/// state before its connection goes there (drbd_receiver.c `conn_connect` calls
/// `drbd_connected` for each volume first, tag drbd-8.4.7), so the peer's arrives at once and
/// `receive_state` follows but for a split-brain helper; DRBD's default `ping-int` (10 s).
const DRBD8_HANDSHAKE_SECS: u64 = 10;

/// Records after a hung-task report searched for its call trace.
const TRACE_LINES: u32 = 96;

/// Frames of a task waiting for a frozen filesystem: the superblock's freeze lock is a
/// per-CPU rwsem (5.8+: `percpu_rwsem_wait` under `__percpu_down_read`; before,
/// `__sb_start_write` or `percpu_down_read`), taken by these VFS entries for writes.
const FREEZE_WAIT: &[&str] = &["percpu_rwsem_wait", "__sb_start_write", "percpu_down_read"];
const FREEZE_ENTRY: &[&str] = &[
    "mnt_want_write",
    "vfs_write",
    "file_start_write",
    "sb_start_write",
    "_page_mkwrite",
    "do_truncate",
    "vfs_fallocate",
    "__sb_start_write",
    "file_modified",
    "file_update_time",
];

/// A hung-task report being read: does its call trace show a wait for a frozen filesystem?
#[derive(Debug, Clone)]
struct HungTrace {
    /// The report's line (`INFO: task dd:1990 blocked for more than 120 seconds.`).
    line: String,
    stamp: Option<String>,
    left: u32,
    waits: bool,
}

/// A freeze agent's freeze without its thaw yet (`guest-fsfreeze called`).
#[derive(Debug, Clone)]
struct PendingFreeze {
    at: u64,
    line: String,
    stamp: Option<String>,
    /// The incident was opened (the threshold passed).
    opened: bool,
}

pub(crate) struct Engine {
    table: IncidentTable,
    clock: Clock,
    /// The time of the last record, for records without a stamp (saved logs).
    last_at: u64,
    /// Saved logs: wall clock minus monotonic time, in seconds, learnt from a record that has
    /// both (`Nov 29 12:03:54 host kernel: [509619.800779] ...`), so records of either clock
    /// land on one time line.
    wall_offset: Option<i64>,
    /// Saved logs: a record had the wall clock; monotonic-only records no longer start a time
    /// line of their own.
    wall_seen: bool,
    /// Every record so far had a time of its own: only then does the quiet period run on the
    /// records' clock (a record without one takes another's time, which says nothing of how
    /// long was quiet).
    all_stamped: bool,
    /// Records read, recognised or not.
    pub records: u64,
    /// Records the catalog recognised as storage trouble.
    pub recognised: u64,
    /// `[watch] frozen_secs`: a freeze without a thaw this long is an incident (0: never).
    frozen_secs: u64,
    pending_freeze: Option<PendingFreeze>,
    hung_trace: Option<HungTrace>,
    /// `[[watch.rule]]`s, tried on what the catalog does not know.
    rules: crate::detect::rules::Rules,
    /// DRBD 8.4 connections in their handshake: resource -> when its `drbd resource6: conn(
    /// ... -> WFReportParams )` came (see [`Engine::drbd8_handshake`]). At most
    /// [`MAX_DRBD8_HANDSHAKES`], each dropped [`DRBD8_HANDSHAKE_SECS`] later or at the
    /// connection's next `conn( )` line.
    drbd8_handshakes: BTreeMap<String, u64>,
    /// When a handshake did not fit in `drbd8_handshakes`, or kernel log records were lost
    /// (a handshake may have been among them): no tie until it is as old.
    drbd8_crowded: Option<u64>,
}

impl Engine {
    pub(crate) fn new(cfg: IncidentConfig, state: Incidents, clock: Clock) -> Engine {
        Engine {
            table: IncidentTable::new(cfg, state),
            clock,
            last_at: 0,
            wall_offset: None,
            wall_seen: false,
            all_stamped: true,
            records: 0,
            recognised: 0,
            frozen_secs: crate::detect::FROZEN_SECS,
            pending_freeze: None,
            hung_trace: None,
            rules: Default::default(),
            drbd8_handshakes: BTreeMap::new(),
            drbd8_crowded: None,
        }
    }

    /// `[watch] frozen_secs` (0: freezes are never incidents).
    pub(crate) fn set_frozen_secs(&mut self, secs: u64) {
        self.frozen_secs = secs;
    }

    /// The user-defined rules (`[[watch.rule]]`).
    pub(crate) fn set_rules(&mut self, rules: crate::detect::rules::Rules) {
        self.rules = rules;
    }

    /// The incident table (open and recent incidents, what was dropped).
    pub(crate) fn incidents(&self) -> &Incidents {
        &self.table.state
    }

    pub(crate) fn open(&self) -> Vec<&Incident> {
        self.table.open()
    }

    /// Open incidents then recently ended ones, oldest first.
    pub(crate) fn all(&self) -> Vec<Incident> {
        let mut list: Vec<Incident> = self.table.open().into_iter().cloned().collect();
        list.extend(self.table.state.recent.iter().cloned());
        list.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
        list
    }

    /// The deciding line and stamps of incident `id`.
    pub(crate) fn detail(&self, id: &str) -> Option<&Detail> {
        self.table.detail(id)
    }

    /// When a record happened, in Unix seconds.
    fn time_of(&mut self, rec: &LogRecord, now: u64) -> u64 {
        let at = match (self.clock, rec.realtime_us, rec.monotonic_us) {
            (Clock::Live { .. }, Some(us), _) => (us / 1_000_000).min(now),
            (Clock::Live { boot_time }, None, Some(us)) => (boot_time + us / 1_000_000).min(now),
            (Clock::Live { .. }, None, None) => now,
            (Clock::Saved, Some(us), mono) => {
                let wall = us / 1_000_000;
                if let Some(m) = mono {
                    let (w, m) = (i64::try_from(wall), i64::try_from(m / 1_000_000));
                    if let (Ok(w), Ok(m)) = (w, m) {
                        self.wall_offset = Some(w - m);
                    }
                }
                self.wall_seen = true;
                wall
            }
            (Clock::Saved, None, Some(us)) => {
                let mono = us / 1_000_000;
                match self.wall_offset {
                    Some(off) => i64::try_from(mono)
                        .ok()
                        .and_then(|m| u64::try_from(m + off).ok())
                        .unwrap_or(self.last_at),
                    None if self.wall_seen => self.last_at,
                    None => mono,
                }
            }
            (Clock::Saved, None, None) => self.last_at,
        };
        self.last_at = at;
        at
    }

    /// Where `device` is: on the inventory when there is one and it knows the device, else
    /// by the kernel's naming (`sda3` is on `sda`).
    fn place(inv: Option<&Inventory>, device: Option<&str>) -> Place {
        let mut place = match (inv, device) {
            (Some(inv), Some(device)) => incidents::locate(inv, device),
            _ => Place::default(),
        };
        if place.disk.is_none() {
            place.disk = device.and_then(incidents::disk_of);
        }
        place
    }

    /// The device an observation names, with a SCSI address replaced by the disk name the
    /// log gave it, else by the disk the inventory has at that address (the daemon: the log
    /// may have named it before the daemon started reading), which is remembered as if the
    /// log had said it: the disk may leave the inventory while lines naming only its address
    /// still come.
    fn device_of(&mut self, device: Option<String>, inv: Option<&Inventory>) -> Option<String> {
        let d = device?;
        if let Some(name) = self.table.state.scsi_names.get(&d) {
            return Some(name.clone());
        }
        let at = inv.and_then(|inv| inv.disks.iter().find(|k| k.hctl.as_deref() == Some(&d)));
        match at.map(|k| k.name.clone()) {
            Some(name) => {
                self.tie_scsi_name(&d, &name);
                Some(name)
            }
            None => Some(d),
        }
    }

    /// SCSI address `hctl` is disk `name` (`sd 2:0:0:0: [sdb] ...`, or the inventory): later
    /// lines naming the address are the disk's, and so are the open incidents naming it.
    fn tie_scsi_name(&mut self, hctl: &str, name: &str) {
        let names = &mut self.table.state.scsi_names;
        if names.get(hctl).map(String::as_str) != Some(name)
            && (names.len() < MAX_SCSI_NAMES || names.contains_key(hctl))
        {
            names.insert(hctl.to_string(), name.to_string());
            self.table.rename_disk(hctl, name);
        }
    }

    /// The record's time as the log printed it, else its monotonic or wall time written out.
    fn stamp_of(rec: &LogRecord) -> Option<String> {
        if let Some(s) = &rec.stamp {
            return Some(s.clone());
        }
        if let Some(us) = rec.realtime_us {
            return Some(crate::util::time::rfc3339_ms(us / 1000));
        }
        rec.monotonic_us
            .map(|us| format!("[{:5}.{:06}]", us / 1_000_000, us % 1_000_000))
    }

    /// Log records (kernel or storage daemons'): classified, located on `inv` (`None`: devices
    /// stay as the log names them) and folded into incidents.
    pub(crate) fn records(
        &mut self,
        records: &[LogRecord],
        inv: Option<&Inventory>,
        now: u64,
    ) -> Vec<Notification> {
        let mut notes = Vec::new();
        for rec in records {
            self.records += 1;
            let at = self.time_of(rec, now);
            self.all_stamped &= rec.realtime_us.is_some() || rec.monotonic_us.is_some();
            // The quiet period runs on the records' own clock: a failure an hour before the
            // next one in the same log is a different incident.
            if self.all_stamped {
                notes.extend(self.table.tick(at));
            }
            if let Some((hctl, name)) = scsi_disk_name(rec) {
                self.tie_scsi_name(hctl, name);
            }
            if let Some((what, device)) = lifecycle(rec) {
                let place = Self::place(inv, Some(&device));
                let mounted = what == Lifecycle::Mounted;
                notes.extend(self.table.lifecycle(
                    mounted,
                    &device,
                    &place,
                    at,
                    rec.message.trim_start(),
                    Self::stamp_of(rec).as_deref(),
                ));
                continue;
            }
            notes.extend(self.follow_trace(rec, at));
            notes.extend(self.freeze_due(at));
            notes.extend(self.drbd8_handshake(rec, inv, at));
            let Some(mut obs) = classify(rec).or_else(|| self.rules.classify(rec)) else {
                continue;
            };
            self.recognised += 1;
            if obs.kind == Kind::FsFrozen {
                notes.extend(self.freeze_agent(&obs, rec, at));
                continue;
            }
            if obs.kind == Kind::HungTask {
                self.hung_trace = Some(HungTrace {
                    line: obs.message.clone(),
                    stamp: Self::stamp_of(rec),
                    left: TRACE_LINES,
                    waits: false,
                });
            }
            let lasting = self.rules.lasting(obs.kind) && !obs.resolves;
            obs.device = self.device_of(obs.device.take(), inv);
            let place = Self::place(inv, obs.device.as_deref());
            // The kmsg sequence number makes the incident id the same when the record is
            // read again after a restart.
            let origin = rec.seq.map(|s| format!("k{s}"));
            let stamp = Self::stamp_of(rec);
            notes.extend(self.table.observe_stamped(
                &obs,
                &place,
                origin.as_deref(),
                at,
                stamp.as_deref(),
            ));
            if lasting {
                let subject = place.disk.clone().or(obs.device.clone());
                let key = incidents::key(obs.kind, subject.as_deref().unwrap_or_default());
                self.table.set_condition(&key, true);
            }
        }
        notes
    }

    /// In-kernel DRBD 8.4 prints a link's loss on its connection (`drbd resource6: PingAck did
    /// not arrive in time.`, `drbd resource6: conn( Connected -> NetworkFailure ) pdsk(
    /// UpToDate -> DUnknown ) `: `_conn_request_state` -> `conn_pr_state_change`, drbd_state.c,
    /// tag drbd-8.4.7) but its reconnect only on each device (`block drbd6: peer( Unknown ->
    /// Secondary ) conn( WFReportParams -> Connected ) ...`: `receive_state`'s
    /// `_drbd_set_state` -> `drbd_pr_state_change`), and no line names both. The loss's own
    /// state change gives no tie either: `conn_old_common_state` leaves to the devices' lines
    /// only the fields whose old values differ between the connection's volumes, so a
    /// resource of one volume prints no device line at all, and those of several print theirs
    /// before the connection's line. What ties them is the handshake: a device leaves
    /// `WFReportParams` only in `receive_state`, run by its connection's receiver after that
    /// connection's `conn( WFConnection -> WFReportParams )` (`conn_connect`). So a device's
    /// `conn( WFReportParams -> Connected )` (or a state past it) ends the lost link of the
    /// connection that went to `WFReportParams` within [`DRBD8_HANDSHAKE_SECS`] and has not
    /// left it, when exactly one did: with two handshakes at once the device could be either
    /// one's, and both links stay lost. A connection that leaves `WFReportParams` (`conn(
    /// WFReportParams -> Disconnecting )` after a split brain) is no longer in its handshake;
    /// after lost kernel log records ([`Engine::lost`]) no handshake is the only one for a
    /// while (another's line may have been lost). One device line comes without a handshake
    /// of its own: a volume added to a live resource inherits the connection's
    /// `WFReportParams` and is connected by `receive_state` (drbd_main.c
    /// `drbd_create_device`); if another connection is in its handshake then, within
    /// [`DRBD8_HANDSHAKE_SECS`], that one's lost link ends a handshake early (its link is up
    /// at `WFReportParams`, but the handshake may still drop it).
    fn drbd8_handshake(
        &mut self,
        rec: &LogRecord,
        inv: Option<&Inventory>,
        at: u64,
    ) -> Vec<Notification> {
        let Some(change) = drbd8_conn_change(rec) else {
            return Vec::new();
        };
        // Old handshakes go (and those of a later clock: a reboot in a saved log).
        let fresh = |t: u64| t <= at && at - t <= DRBD8_HANDSHAKE_SECS;
        self.drbd8_handshakes.retain(|_, t| fresh(*t));
        self.drbd8_crowded = self.drbd8_crowded.filter(|t| fresh(*t));
        let (minor, resource) = match change {
            Drbd8Conn::Connection { resource, to, .. } => {
                if to != "WFReportParams" {
                    self.drbd8_handshakes.remove(resource);
                } else if self.drbd8_handshakes.len() < MAX_DRBD8_HANDSHAKES
                    || self.drbd8_handshakes.contains_key(resource)
                {
                    self.drbd8_handshakes.insert(resource.to_string(), at);
                } else {
                    self.drbd8_crowded = Some(at);
                }
                return Vec::new();
            }
            Drbd8Conn::Device { minor, from, to } => {
                if from != "WFReportParams" || !link_is_up(to) || self.drbd8_crowded.is_some() {
                    return Vec::new();
                }
                let mut handshakes = self.drbd8_handshakes.keys();
                match (handshakes.next(), handshakes.next()) {
                    (Some(resource), None) => (minor, resource.clone()),
                    _ => return Vec::new(),
                }
            }
        };
        let obs = Observation {
            kind: Kind::DrbdConnectionLost,
            severity: Severity::Info,
            device: Some(resource.clone()),
            resolves: true,
            message: format!(
                "{} ({minor} is connected again, in the handshake of {resource})",
                rec.message.trim()
            ),
            at_us: rec.realtime_us,
        };
        let place = Self::place(inv, obs.device.as_deref());
        let stamp = Self::stamp_of(rec);
        self.table
            .observe_stamped(&obs, &place, None, at, stamp.as_deref())
    }

    /// A record after a hung-task report: a line of its call trace, maybe. A trace that waits
    /// on the superblock's freeze lock from a VFS write entry is a writer blocked by a frozen
    /// filesystem, the kernel's own sign of a freeze that lasts (it prints it after
    /// `kernel.hung_task_timeout_secs`): an `fs_frozen` incident at once. The trace does not
    /// say which filesystem; a freeze agent's line or the process scan may.
    fn follow_trace(&mut self, rec: &LogRecord, at: u64) -> Vec<Notification> {
        let Some(trace) = self.hung_trace.as_mut() else {
            return Vec::new();
        };
        let m = rec.message.trim_start();
        if m.starts_with("</TASK>") || m.starts_with("INFO: task ") || trace.left == 0 {
            self.hung_trace = None;
            return Vec::new();
        }
        trace.left -= 1;
        let frame = m.trim_start_matches("? ");
        if FREEZE_WAIT.iter().any(|f| frame.starts_with(f)) {
            trace.waits = true;
            return Vec::new();
        }
        if !trace.waits || !FREEZE_ENTRY.iter().any(|f| frame.contains(f)) {
            return Vec::new();
        }
        let fn_name = frame.split('+').next().unwrap_or(frame).to_string();
        let (line, stamp) = (trace.line.clone(), trace.stamp.clone());
        self.hung_trace = None;
        let trace = HungTrace {
            line,
            stamp,
            left: 0,
            waits: true,
        };
        let obs = Observation {
            kind: Kind::FsFrozen,
            severity: Severity::Critical,
            device: None,
            resolves: false,
            message: format!(
                "{} (waiting in {fn_name} for a frozen filesystem)",
                trace.line
            ),
            at_us: rec.realtime_us,
        };
        self.table
            .observe_stamped(&obs, &Place::default(), None, at, trace.stamp.as_deref())
    }

    /// A freeze agent's line: a freeze starts the clock, a thaw ends it and its incident.
    fn freeze_agent(&mut self, obs: &Observation, rec: &LogRecord, at: u64) -> Vec<Notification> {
        if obs.resolves {
            self.pending_freeze = None;
            let key = incidents::key(Kind::FsFrozen, "");
            return self.table.clear(&key, at, &obs.message);
        }
        if self.frozen_secs == 0 {
            return Vec::new();
        }
        match &self.pending_freeze {
            // A second freeze while frozen (qemu-ga answers it without freezing again): the
            // first one's clock runs on.
            Some(_) => Vec::new(),
            None => {
                self.pending_freeze = Some(PendingFreeze {
                    at,
                    line: obs.message.clone(),
                    stamp: Self::stamp_of(rec),
                    opened: false,
                });
                Vec::new()
            }
        }
    }

    /// When (Unix seconds) a freeze agent's freeze becomes an incident if no thaw comes first.
    pub(crate) fn freeze_due_at(&self) -> Option<u64> {
        let p = self.pending_freeze.as_ref()?;
        (!p.opened && self.frozen_secs > 0).then_some(p.at + self.frozen_secs)
    }

    /// A freeze that was not thawed within `frozen_secs`: its incident, which lasts until the
    /// thaw line, the process scan seeing the blocked writers go on, or `quiet_secs` without
    /// new evidence.
    fn freeze_due(&mut self, now: u64) -> Vec<Notification> {
        let secs = self.frozen_secs;
        let Some(p) = self.pending_freeze.as_mut() else {
            return Vec::new();
        };
        if p.opened || secs == 0 || now < p.at + secs {
            return Vec::new();
        }
        p.opened = true;
        let obs = Observation {
            kind: Kind::FsFrozen,
            severity: Severity::Critical,
            device: None,
            resolves: false,
            message: format!("{} (and no thaw for {} s)", p.line, now - p.at),
            at_us: Some(now * 1_000_000),
        };
        let (at, stamp) = (p.at, p.stamp.clone());
        // No lasting condition: an agent that logs no thaw (qemu-ga 7.2 does not) would leave
        // it open for ever. It lasts while there is evidence (the kernel's hung-task reports
        // of writers waiting on the freeze, the process scan's blocked writers) and ends at
        // the thaw line or after `quiet_secs` without any.
        self.table
            .observe_stamped(&obs, &Place::default(), None, at.max(now), stamp.as_deref())
    }

    /// Kernel log records were overwritten before they were read (`lost`: how many, 0 when
    /// the kernel did not say).
    pub(crate) fn lost(&mut self, lost: u64, now: u64) -> Vec<Notification> {
        // A DRBD 8.4 handshake may have been among the lost records: none seen now is known
        // to be the only one, until as long after the gap as a handshake's device lines come.
        self.drbd8_handshakes.clear();
        self.drbd8_crowded = Some(now);
        let obs = Observation {
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
        self.table.observe(&obs, &Place::default(), None, now)
    }

    /// A knob another writer keeps setting back (`target`: `sda scsi_timeout`; `disk`: the
    /// disk it belongs to, for the mounts): an incident that lasts until [`Engine::uncontested`].
    pub(crate) fn contested(
        &mut self,
        target: &str,
        disk: Option<&str>,
        message: String,
        inv: &Inventory,
        now: u64,
    ) -> Vec<Notification> {
        let obs = Observation {
            kind: Kind::KnobContested,
            severity: Severity::Warning,
            device: Some(target.to_string()),
            resolves: false,
            message,
            at_us: Some(now * 1_000_000),
        };
        let place = Self::place(Some(inv), disk);
        let notes = self.table.observe(&obs, &place, None, now);
        self.table
            .set_condition(&incidents::key(Kind::KnobContested, target), true);
        notes
    }

    /// The contest over `target` ended (the profile was applied again, switched or reloaded).
    pub(crate) fn uncontested(&mut self, target: &str, why: &str, now: u64) -> Vec<Notification> {
        self.table
            .clear(&incidents::key(Kind::KnobContested, target), now, why)
    }

    /// FAN_FS_ERROR events: the filesystem itself says it hit an error.
    pub(crate) fn fs_errors(
        &mut self,
        events: &[FsError],
        inv: Option<&Inventory>,
        now: u64,
    ) -> Vec<Notification> {
        let mut notes = Vec::new();
        for e in events {
            let device = e.source.trim_start_matches("/dev/").to_string();
            let obs = Observation {
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
            let place = Self::place(inv, Some(&device));
            notes.extend(self.table.observe(&obs, &place, None, now));
        }
        notes
    }

    /// One tick of the samplers: what they found (a finding that holds opens or keeps its
    /// incident, one that no longer holds ends it), the devices with a mount flagged failed
    /// (their disk incidents last while flagged), then the end of incidents whose condition
    /// cleared and whose quiet period passed.
    pub(crate) fn sample<'a>(
        &mut self,
        findings: &[Finding],
        failed_devices: impl Iterator<Item = &'a str>,
        inv: &Inventory,
        now_ms: u64,
    ) -> Vec<Notification> {
        let now = now_ms / 1000;
        let mut notes = Vec::new();
        notes.extend(self.freeze_due(now));
        for f in findings {
            let (place, key) = if f.kind == Kind::FsFrozen {
                // One incident per machine, whatever told of it; the mount the scan found
                // the writers blocked on is its place.
                let place = incidents::place_of_mount(inv, &f.device);
                (place, incidents::key(Kind::FsFrozen, ""))
            } else {
                let place = incidents::locate(inv, &f.device);
                let subject = place.disk.clone().unwrap_or_else(|| f.device.clone());
                (place, incidents::key(f.kind, &subject))
            };
            if f.kind == Kind::FsFrozen && !f.holds {
                self.pending_freeze = None;
            }
            if f.holds {
                let obs = f.observation(now_ms * 1000);
                notes.extend(self.table.observe(&obs, &place, None, now));
                self.table.set_condition(&key, true);
            } else {
                notes.extend(self.table.clear(&key, now, &f.message));
            }
        }
        // (XFS and 6.12-6.14 ext4 show no flag: their incidents end after the quiet period.)
        let failing: BTreeSet<String> = failed_devices
            .map(|dev| {
                incidents::locate(inv, dev)
                    .disk
                    .unwrap_or_else(|| dev.to_string())
            })
            .collect();
        self.table.set_disk_conditions(&failing);
        notes.extend(self.table.tick(now));
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::inventory::{Platform, PlatformKind};

    fn inv() -> Inventory {
        Inventory {
            platform: Platform {
                kind: PlatformKind::None,
                evidence: vec![],
            },
            disks: vec![],
            mounts: vec![],
        }
    }

    /// qemu-guest-agent 7.2's one journal entry of a freeze that was never thawed (a real
    /// capture from the guest, tests/logs/guest-qga-fsfreeze.journal.json): nothing until
    /// `frozen_secs` have passed, then one critical `fs_frozen`; with no thaw line from this
    /// agent and no other evidence it ends after the quiet period. A thaw line ends it at once.
    #[test]
    fn a_freeze_agents_freeze_without_a_thaw_opens_fs_frozen_after_the_threshold() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/logs/guest-qga-fsfreeze.journal.json"
        ))
        .expect("capture");
        let mut parser = crate::detect::parse::LogParser::with_now(u64::MAX / 2);
        let mut recs = Vec::new();
        for line in text.lines() {
            parser.line(line, &mut recs);
        }
        parser.finish(&mut recs);
        assert_eq!(recs.len(), 1, "{recs:?}");
        let at = recs[0].realtime_us.expect("stamped") / 1_000_000;
        let cfg = IncidentConfig {
            quiet_secs: 300,
            ..IncidentConfig::default()
        };
        let inv = inv();
        let mut e = Engine::new(cfg.clone(), Incidents::default(), Clock::Saved);
        e.set_frozen_secs(60);
        assert!(e.records(&recs, None, u64::MAX).is_empty());
        assert_eq!(e.freeze_due_at(), Some(at + 60));
        assert!(e
            .sample(&[], std::iter::empty(), &inv, (at + 59) * 1000)
            .is_empty());
        let n = e.sample(&[], std::iter::empty(), &inv, (at + 61) * 1000);
        assert_eq!(n.len(), 1, "{n:?}");
        let inc = &n[0].incident;
        assert_eq!(
            (inc.kind, inc.severity),
            (Kind::FsFrozen, Severity::Critical)
        );
        assert!(inc.evidence[0].contains("guest-fsfreeze called"), "{inc:?}");
        assert_eq!(e.freeze_due_at(), None, "opened once");
        let n = e.sample(&[], std::iter::empty(), &inv, (at + 61 + 301) * 1000);
        assert_eq!(n.len(), 1, "ended after the quiet period: {n:?}");
        assert!(e.open().is_empty());

        // The same freeze with a thaw line (agents that log one): no incident at all.
        let mut e = Engine::new(cfg, Incidents::default(), Clock::Saved);
        e.set_frozen_secs(60);
        let mut thaw = recs[0].clone();
        thaw.message = "info: guest-fsthaw called".into();
        thaw.realtime_us = Some((at + 5) * 1_000_000);
        e.records(&[recs[0].clone(), thaw], None, u64::MAX);
        assert!(e
            .sample(&[], std::iter::empty(), &inv, (at + 100) * 1000)
            .is_empty());
        assert!(e.open().is_empty());
    }

    /// A degraded md array and a contested knob last while their condition holds, past the
    /// quiet period, and end when it clears.
    #[test]
    fn conditions_hold_incidents_open_past_the_quiet_period() {
        let mut e = Engine::new(
            IncidentConfig::default(),
            Incidents::default(),
            Clock::Saved,
        );
        let inv = inv();
        let degraded = Finding {
            kind: Kind::MdDegraded,
            device: "md0".into(),
            holds: true,
            message: "md md0 (raid1) degraded".into(),
        };
        let n = e.sample(
            std::slice::from_ref(&degraded),
            std::iter::empty(),
            &inv,
            1_000_000,
        );
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(e.open().len(), 1);
        // Long past the quiet period, no new finding (the sampler reports changes only).
        let n = e.sample(&[], std::iter::empty(), &inv, 1_000_000 + 3_600_000);
        assert!(n.is_empty(), "{n:?}");
        assert_eq!(e.open()[0].kind, Kind::MdDegraded);
        let whole = Finding {
            holds: false,
            message: "md md0 is whole again".into(),
            ..degraded
        };
        let n = e.sample(&[whole], std::iter::empty(), &inv, 1_000_000 + 3_601_000);
        assert_eq!(n.len(), 1);
        assert!(e.open().is_empty());

        let n = e.contested("sda scsi_timeout", None, "set back to 30".into(), &inv, 10);
        assert_eq!(n.len(), 1);
        let n = e.sample(&[], std::iter::empty(), &inv, 10_000_000);
        assert!(n.is_empty(), "a contest outlasts the quiet period: {n:?}");
        assert_eq!(e.open()[0].device.as_deref(), Some("sda scsi_timeout"));
        let n = e.uncontested("sda scsi_timeout", "applied again", 10_001);
        assert_eq!(n.len(), 1);
        assert!(e.open().is_empty());
    }

    /// The RAID and replication layers' incidents end on the line that says their condition
    /// cleared, on the records' own clock (lines as the real captures under tests/logs show
    /// them): a DRBD link lost then back, a split brain on the same connection (one incident,
    /// escalated), a thin pool out of space then grown, an md array degraded then rebuilt.
    #[test]
    fn raid_and_replication_incidents_end_when_their_layer_recovers() {
        let mut e = Engine::new(
            IncidentConfig::default(),
            Incidents::default(),
            Clock::Saved,
        );
        let rec = |at: u64, m: &str| LogRecord {
            message: m.to_string(),
            monotonic_us: Some(at * 1_000_000),
            sender: crate::detect::types::Sender::Kernel,
            ..LogRecord::default()
        };
        let kinds = |e: &Engine| -> Vec<(Kind, String)> {
            e.open()
                .iter()
                .map(|i| (i.kind, i.device.clone().unwrap_or_default()))
                .collect()
        };
        let w = "windows10-boot:windows10";
        e.records(
            &[
                rec(10, "drbd windows10-boot windows10: PingAck did not arrive in time."),
                rec(10, "drbd windows10-boot windows10: conn( Connected -> NetworkFailure ) peer( Secondary -> Unknown )"),
            ],
            None,
            0,
        );
        assert_eq!(kinds(&e), [(Kind::DrbdConnectionLost, w.to_string())]);
        // Hours later, still lost: the link's incident has a lasting condition.
        let n = e.records(
            &[rec(
                7200,
                "drbd windows10-boot windows10: conn( Unconnected -> Connecting )",
            )],
            None,
            0,
        );
        assert!(n.is_empty(), "{n:?}");
        let n = e.records(
            &[rec(7300, "drbd windows10-boot windows10: Split-Brain detected but unresolved, dropping connection!")],
            None,
            0,
        );
        assert_eq!(n.len(), 1, "escalated: {n:?}");
        assert_eq!(kinds(&e), [(Kind::DrbdSplitBrain, w.to_string())]);
        let n = e.records(
            &[rec(7400, "drbd windows10-boot windows10: conn( Connecting -> Connected ) peer( Unknown -> Secondary )")],
            None,
            0,
        );
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].event, crate::detect::types::IncidentState::Resolved);
        assert!(e.open().is_empty());

        e.records(
            &[rec(
                8000,
                "device-mapper: thin: 253:2: switching pool to out-of-data-space (queue IO) mode",
            )],
            None,
            0,
        );
        e.records(
            &[rec(
                8060,
                "device-mapper: thin: 253:2: switching pool to out-of-data-space (error IO) mode",
            )],
            None,
            0,
        );
        assert_eq!(e.open()[0].kind, Kind::DmThinOutOfSpace);
        assert_eq!(e.open()[0].severity, Severity::Critical);
        let n = e.records(
            &[rec(
                9000,
                "device-mapper: thin: 253:2: switching pool to write mode",
            )],
            None,
            0,
        );
        assert_eq!(n.len(), 1);
        assert!(e.open().is_empty());

        e.records(
            &[rec(
                10_000,
                "md/raid1:md0: Operation continuing on 1 devices.",
            )],
            None,
            0,
        );
        assert_eq!(kinds(&e), [(Kind::MdDegraded, "md0".to_string())]);
        e.records(&[rec(20_000, "md: recovery of RAID array md0")], None, 0);
        assert_eq!(e.open().len(), 1, "rebuilding is still degraded");
        e.records(&[rec(20_100, "md: md0: recovery interrupted.")], None, 0);
        assert_eq!(e.open().len(), 1);
        let n = e.records(&[rec(30_000, "md: md0: recovery done.")], None, 0);
        assert_eq!(n.len(), 1);
        assert!(e.open().is_empty());
        // A RAID5 that loses one member, then a second: one incident of the array, escalated.
        e.records(
            &[rec(
                40_000,
                "md/raid:md2: Operation continuing on 3 devices.",
            )],
            None,
            0,
        );
        let n = e.records(
            &[rec(
                40_001,
                "md/raid:md2: Cannot continue operation (2/4 failed).",
            )],
            None,
            0,
        );
        assert_eq!(
            n.len(),
            0,
            "both critical: no re-fire, the kind moves on: {n:?}"
        );
        assert_eq!(kinds(&e), [(Kind::MdArrayFailed, "md2".to_string())]);
    }

    /// A pool the kernel said was suspended stays so while its state kstat says SUSPENDED
    /// (past the quiet period), and ends when the sampler sees it run again: one key for both.
    #[test]
    fn a_suspended_pool_ends_when_its_state_says_so() {
        let mut e = Engine::new(
            IncidentConfig::default(),
            Incidents::default(),
            Clock::Saved,
        );
        let inv = inv();
        let line = LogRecord {
            message: "WARNING: Pool 'tank' has encountered an uncorrectable I/O failure and has been suspended.".into(),
            realtime_us: Some(1_000 * 1_000_000),
            sender: crate::detect::types::Sender::Kernel,
            ..LogRecord::default()
        };
        assert_eq!(e.records(&[line], Some(&inv), 1_000).len(), 1);
        let held = Finding {
            kind: Kind::ZfsPoolSuspended,
            device: "tank".into(),
            holds: true,
            message: "ZFS pool tank is SUSPENDED".into(),
        };
        let n = e.sample(
            std::slice::from_ref(&held),
            std::iter::empty(),
            &inv,
            1_001_000,
        );
        assert!(n.is_empty(), "the same incident: {n:?}");
        assert!(e
            .sample(&[], std::iter::empty(), &inv, 9_000_000)
            .is_empty());
        assert_eq!(
            e.open().len(),
            1,
            "still suspended long after the quiet period"
        );
        let runs = Finding {
            holds: false,
            message: "ZFS pool tank is no longer suspended".into(),
            ..held
        };
        let n = e.sample(&[runs], std::iter::empty(), &inv, 9_001_000);
        assert_eq!(n.len(), 1);
        assert!(e.open().is_empty());
    }

    /// In-kernel DRBD 8.4: a link lost on the connection ends when a device of that connection
    /// is connected again in the connection's handshake. No public capture shows the sequence
    /// (the ganeti#846 one starts in a handshake): the lines are built from tag drbd-8.4.7's
    /// format strings, with that capture's names (`resource6`, minor 6). Connection lines are
    /// `drbd %s: ` + the resource's name (drbd_int.h `__drbd_printk_connection`), device lines
    /// `block drbd%u: ` (dev_printk); drbd_receiver.c `drbd_ack_receiver`: `PingAck did not
    /// arrive in time.`; drbd_state.c `print_state_change`: `role( %s -> %s ) `, `peer( ... ) `,
    /// `conn( ... ) `, `disk( ... ) `, `pdsk( ... ) ` in that order, printed for the connection
    /// by `conn_pr_state_change` (from `_conn_request_state`: the loss in `conn_disconnect`,
    /// `conn( NetworkFailure -> Unconnected )` there, `conn( Unconnected -> WFConnection )` and
    /// `conn( WFConnection -> WFReportParams )` in `conn_connect`; `sanitize_state` makes the
    /// peer `Unknown` and its disk `DUnknown` below `Connected`) and for the device by
    /// `drbd_pr_state_change` (from `receive_state`'s `_drbd_set_state`, the only move out of
    /// `WFReportParams`); `Connection closed` (`conn_disconnect`), `Handshake successful:
    /// Agreed network protocol version %d` (`drbd_do_features`, 101 being 8.4.7's
    /// `PRO_VERSION_MAX`).
    #[test]
    fn drbd84_link_lost_on_the_connection_ends_when_its_device_reconnects() {
        let rec = |at: u64, m: &str| LogRecord {
            message: m.to_string(),
            monotonic_us: Some(at * 1_000_000),
            sender: crate::detect::types::Sender::Kernel,
            ..LogRecord::default()
        };
        let new = || {
            Engine::new(
                IncidentConfig::default(),
                Incidents::default(),
                Clock::Saved,
            )
        };
        let open = |e: &Engine| -> Vec<(Kind, String)> {
            e.open()
                .iter()
                .map(|i| (i.kind, i.device.clone().unwrap_or_default()))
                .collect()
        };
        let lost = |r: &str, at: u64| {
            vec![
                rec(at, &format!("drbd {r}: PingAck did not arrive in time.")),
                rec(at, &format!("drbd {r}: peer( Secondary -> Unknown ) conn( Connected -> NetworkFailure ) pdsk( UpToDate -> DUnknown ) ")),
                rec(at, &format!("drbd {r}: Connection closed")),
                rec(at, &format!("drbd {r}: conn( NetworkFailure -> Unconnected ) ")),
                rec(at, &format!("drbd {r}: conn( Unconnected -> WFConnection ) ")),
            ]
        };
        let handshake = |r: &str, at: u64| {
            vec![
                rec(
                    at,
                    &format!("drbd {r}: Handshake successful: Agreed network protocol version 101"),
                ),
                rec(
                    at,
                    &format!("drbd {r}: conn( WFConnection -> WFReportParams ) "),
                ),
            ]
        };
        let connected = |minor: u32, at: u64| {
            rec(at, &format!("block drbd{minor}: peer( Unknown -> Secondary ) conn( WFReportParams -> Connected ) pdsk( DUnknown -> UpToDate ) "))
        };
        let lost6 = (Kind::DrbdConnectionLost, "resource6".to_string());

        // Lost, hours later back: the device's line in the connection's handshake ends it.
        let mut e = new();
        e.records(&lost("resource6", 100), None, 0);
        assert_eq!(open(&e), std::slice::from_ref(&lost6));
        let n = e.records(&handshake("resource6", 7300), None, 0);
        assert!(n.is_empty(), "the handshake is no reconnect yet: {n:?}");
        assert_eq!(open(&e), std::slice::from_ref(&lost6));
        let n = e.records(&[connected(6, 7300)], None, 0);
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].event, crate::detect::types::IncidentState::Resolved);
        assert!(e.open().is_empty());
        // The connection's other volumes, connected in the same handshake: nothing left to end.
        let n = e.records(&[connected(7, 7300)], None, 0);
        assert!(n.is_empty(), "{n:?}");
        let ended = e.all();
        assert_eq!(ended[0].device.as_deref(), Some("resource6"));
        assert_eq!(ended[0].ended, Some(7300));
        let why = e.detail(&ended[0].id).and_then(|d| d.ended_by.clone());
        assert!(
            why.as_deref()
                .is_some_and(|w| w.contains("conn( WFReportParams -> Connected )")
                    && w.contains("drbd6 is connected again, in the handshake of resource6")),
            "{why:?}"
        );
        // A resync after the reconnect is the link up too (`WFBitMapS`, the end of a resync's
        // `SyncSource -> Connected` being no handshake's).
        let mut e = new();
        e.records(&lost("resource6", 100), None, 0);
        e.records(&handshake("resource6", 200), None, 0);
        let n = e.records(
            &[rec(
                201,
                "block drbd6: conn( SyncSource -> Connected ) pdsk( Inconsistent -> UpToDate ) ",
            )],
            None,
            0,
        );
        assert!(n.is_empty(), "{n:?}");
        let n = e.records(&[rec(201, "block drbd6: peer( Unknown -> Secondary ) conn( WFReportParams -> WFBitMapS ) pdsk( DUnknown -> Consistent ) ")], None, 0);
        assert_eq!(n.len(), 1, "{n:?}");
        assert!(e.open().is_empty());

        // Never ended by what is not that handshake's: a device's line long after the
        // connection's handshake, or after the connection left it again, or while another
        // connection is in its own handshake (the device could be either one's).
        let mut e = new();
        e.records(&lost("resource6", 100), None, 0);
        e.records(&handshake("resource6", 200), None, 0);
        e.records(&[connected(6, 200 + DRBD8_HANDSHAKE_SECS + 1)], None, 0);
        assert_eq!(open(&e), std::slice::from_ref(&lost6), "too late");
        e.records(&handshake("resource6", 300), None, 0);
        e.records(
            &[rec(
                300,
                "drbd resource6: conn( WFReportParams -> NetworkFailure ) ",
            )],
            None,
            0,
        );
        e.records(&[connected(7, 301)], None, 0);
        assert_eq!(open(&e), std::slice::from_ref(&lost6), "left its handshake");
        e.records(&lost("resource7", 400), None, 0);
        e.records(&handshake("resource6", 500), None, 0);
        e.records(&handshake("resource7", 500), None, 0);
        let n = e.records(&[connected(6, 500), connected(7, 500)], None, 0);
        assert!(n.is_empty(), "two handshakes at once: {n:?}");
        assert_eq!(
            open(&e),
            [
                lost6.clone(),
                (Kind::DrbdConnectionLost, "resource7".to_string())
            ]
        );
        // Kernel log records lost (the daemon's /dev/kmsg fell behind): a handshake may have
        // been among them, so the one seen after is not known to be the only one.
        let mut e = new();
        e.records(&lost("resource6", 100), None, 0);
        e.lost(12, 200);
        e.records(&handshake("resource6", 200), None, 0);
        e.records(&[connected(6, 200)], None, 0);
        assert_eq!(open(&e)[0], lost6, "after a gap");
        e.records(&handshake("resource6", 300), None, 0);
        let n = e.records(&[connected(6, 300)], None, 0);
        assert_eq!(n.len(), 1, "a handshake well after the gap: {n:?}");
        assert_eq!(n[0].event, crate::detect::types::IncidentState::Resolved);
        // A gap during the outage does not hold off the reconnect hours later.
        let mut e = new();
        e.records(&lost("resource6", 100), None, 0);
        e.lost(3, 150);
        e.records(&handshake("resource6", 7300), None, 0);
        let n = e.records(&[connected(6, 7300)], None, 0);
        assert_eq!(n.len(), 1, "a reconnect long after a gap: {n:?}");
        assert_eq!(n[0].event, crate::detect::types::IncidentState::Resolved);
        // DRBD 9's lines are not 8.4's: a peer's or volume's handshake is none of these.
        let mut e = new();
        e.records(&lost("resource6", 100), None, 0);
        e.records(
            &[rec(
                200,
                "drbd resource6 peer: conn( Connecting -> Connected ) ",
            )],
            None,
            0,
        );
        e.records(&handshake("resource6", 300), None, 0);
        e.records(
            &[rec(
                300,
                "drbd resource6/0 drbd6 peer: conn( WFReportParams -> Connected ) ",
            )],
            None,
            0,
        );
        assert_eq!(open(&e), std::slice::from_ref(&lost6));

        // The real capture (ganeti#846, in-kernel 8.4): the handshake after a lost link found a
        // split brain on the device and dropped the connection (`conn( WFReportParams ->
        // Disconnecting )`): both the lost link and the split brain last, until the resolved
        // connection's next handshake connects the device (`WFBitMapT`: it resyncs from the
        // peer).
        let capture = include_str!("../../tests/logs/public-ganeti-drbd84-split-brain.syslog");
        let mut e = new();
        let mut recs = lost("resource6", 0);
        // The capture's handshake; its clock is the syslog's wall clock (then 0 for ours).
        recs.extend(handshake("resource6", 0));
        recs.extend(crate::detect::parse::parse_log(capture));
        for r in &mut recs {
            r.sender = crate::detect::types::Sender::Kernel;
        }
        // Same time line: the built lines take the capture's first wall time.
        let first = recs[7].realtime_us;
        for r in recs.iter_mut().take(7) {
            r.realtime_us = first;
        }
        e.records(&recs, None, 0);
        assert_eq!(
            open(&e),
            [(Kind::DrbdSplitBrain, "drbd6".to_string()), lost6.clone()]
        );
        let later = first.unwrap_or(0) + 3_600_000_000;
        let mut back = handshake("resource6", 0);
        back.push(rec(0, "block drbd6: peer( Unknown -> Primary ) conn( WFReportParams -> WFBitMapT ) pdsk( DUnknown -> UpToDate ) "));
        for r in &mut back {
            r.realtime_us = Some(later);
        }
        let n = e.records(&back, None, 0);
        assert_eq!(n.len(), 2, "{n:?}");
        assert!(e.open().is_empty(), "{:?}", open(&e));
    }

    /// A disk sdb at SCSI address 2:0:1:0, offlined (`echo offline > .../device/state`) under
    /// its mounted ext4 in the Debian 12 guest (kernel 6.1): the daemon's incident names the
    /// device `sdb` from the first line, which names only the address, through the failure
    /// and the unmount, after the disk left the inventory and after a restart. The daemon had
    /// been restarted since the disk's attach lines (`sd 2:0:1:0: [sdb] ...`), and it reads
    /// the kernel log on from the last record it handled: only its inventory tied the address
    /// to sdb, which placed the incident on sdb but left it naming the device `2:0:1:0` to
    /// the end (`tunerctl events`: `ext4_read_only` on `2:0:1:0`). The lines after the first
    /// are that guest boot's own, as the kernel printed them; the address-only lines are
    /// built from 6.1's format strings: sdev_printk's `sd H:C:T:L: ` prefix with scsi_lib.c
    /// `scsi_device_state_check`'s `rejecting I/O to offline device` (printed once per
    /// offline, `offline_already`) and scsi_error.c `scsi_eh_offline_sdevs`'s `Device
    /// offlined - not ready after error recovery`.
    #[test]
    fn a_disk_placed_by_its_scsi_address_is_named_by_the_disk_name() {
        use crate::host::inventory::{Disk, DiskKind, Mount};
        let sdb = Disk {
            name: "sdb".into(),
            dev: "8:16".into(),
            diskseq: None,
            kind: DiskKind::VirtioScsi,
            driver: "virtio_scsi".into(),
            cloud: String::new(),
            vendor: "QEMU".into(),
            model: "QEMU HARDDISK".into(),
            serial: String::new(),
            rotational: true,
            removable: false,
            size_bytes: 64 << 20,
            hctl: Some("2:0:1:0".into()),
            scsi_host: Some("host2".into()),
            iscsi_session: None,
            fc_rport: None,
            multipath_path: false,
            dm_kind: None,
            dm_name: None,
            slaves: vec![],
            holders: vec![],
            queues_io: true,
            bdi: Some("8:16".into()),
        };
        let mut inv = inv();
        inv.disks.push(sdb);
        inv.mounts.push(Mount {
            mount_point: "/mnt/failing".into(),
            fstype: "ext4".into(),
            source: "/dev/sdb".into(),
            dev: "8:16".into(),
            options: "rw,relatime".into(),
            super_options: "rw,errors=remount-ro".into(),
            disk: Some("sdb".into()),
            bdi: Some("8:16".into()),
        });
        let log = "\
[   91.565100] sd 2:0:1:0: rejecting I/O to offline device
[   91.565197] I/O error, dev sdb, sector 32770 op 0x1:(WRITE) flags 0x9800 phys_seg 1 prio class 2
[   91.565345] Buffer I/O error on dev sdb, logical block 16385, lost sync page write
[   91.565764] JBD2: I/O error when updating journal superblock for sdb-8.
[   91.571887] I/O error, dev sdb, sector 0 op 0x1:(WRITE) flags 0x800 phys_seg 0 prio class 2
[   93.631671] EXT4-fs error (device sdb): ext4_journal_check_start:83: comm ext4lazyinit: Detected aborted journal
[   93.633584] EXT4-fs (sdb): previous I/O error to superblock detected
[   93.634009] I/O error, dev sdb, sector 2 op 0x1:(WRITE) flags 0x3800 phys_seg 1 prio class 2
[   93.634137] I/O error, dev sdb, sector 2 op 0x1:(WRITE) flags 0x3800 phys_seg 1 prio class 2
[   93.634257] Buffer I/O error on dev sdb, logical block 1, lost sync page write
[   93.638342] EXT4-fs (sdb): I/O error while writing superblock
[   93.638740] EXT4-fs (sdb): Remounting filesystem read-only
[   93.923483] EXT4-fs (sdb): unmounting filesystem.
[   93.941643] Buffer I/O error on dev sdb, logical block 1, lost sync page write
[   93.942002] EXT4-fs (sdb): I/O error while writing superblock
";
        let kernel = |text: &str| -> Vec<LogRecord> {
            let mut recs = crate::detect::parse::parse_log(text);
            for r in &mut recs {
                r.sender = crate::detect::types::Sender::Kernel;
            }
            recs
        };
        let boot = 1_800_000_000;
        let live = Clock::Live { boot_time: boot };
        // Key, kind, device, disk, count.
        type Seen = (String, Kind, Option<String>, Option<String>, u64);
        let seen = |e: &Engine| -> Vec<Seen> {
            e.open()
                .iter()
                .map(|i| {
                    let key = i.id.rsplit_once('/').map_or("", |(k, _)| k).to_string();
                    (key, i.kind, i.device.clone(), i.disk.clone(), i.count)
                })
                .collect()
        };
        let sdb = |count| {
            vec![(
                "disk/sdb".to_string(),
                Kind::Ext4ReadOnly,
                Some("sdb".to_string()),
                Some("sdb".to_string()),
                count,
            )]
        };
        let mut e = Engine::new(IncidentConfig::default(), Incidents::default(), live);
        e.records(&kernel(log), Some(&inv), boot + 100);
        assert_eq!(seen(&e), sdb(14), "the lines of one disk, one incident");
        assert_eq!(e.open()[0].mounts, ["/mnt/failing"]);
        assert!(
            e.open()[0].summary.contains("on sdb"),
            "{}",
            e.open()[0].summary
        );
        // Unmounted: the mount goes from the inventory, then the disk; lines naming only the
        // address still come.
        inv.mounts.clear();
        let offline = "[  120.100000] sd 2:0:1:0: Device offlined - not ready after error recovery";
        e.records(&kernel(offline), Some(&inv), boot + 130);
        inv.disks.clear();
        e.records(&kernel(offline), Some(&inv), boot + 131);
        assert_eq!(seen(&e), sdb(16), "the disk's, after it left the inventory");
        // A restart: the incidents come back from /run/tunerd/incidents.json, the kernel log
        // is read on after the last record handled, the inventory no longer has the disk.
        let saved = serde_json::to_string(e.incidents()).expect("saved");
        let state: Incidents = serde_json::from_str(&saved).expect("loaded");
        let mut e = Engine::new(IncidentConfig::default(), state, live);
        e.records(&kernel(offline), Some(&inv), boot + 140);
        assert_eq!(seen(&e), sdb(17), "the disk's, after a restart");
    }
}
