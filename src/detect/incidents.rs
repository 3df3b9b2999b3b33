//! Observations -> incidents. A failure that prints ten thousand lines is one incident: keyed
//! by what failed (the disk, the NFS server, the iSCSI connection, ...), escalated to the worst
//! kind seen, counted, with its first lines as evidence, and ended when its condition clears
//! (NFS "OK", the stall is over, the filesystem is back to rw or unmounted) or, for errors
//! without a lasting condition, after a quiet period. Memory is bounded whatever the flood.
//!
//! Pure: time and the inventory come in as arguments; notifications go out as values.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::detect::types::{Incident, IncidentState, Kind, Notification, Observation, Severity};
use crate::host::inventory::Inventory;

/// Tunables of the incident table.
#[derive(Debug, Clone)]
pub(crate) struct IncidentConfig {
    /// An incident without a lasting condition ends after this long without new observations.
    pub quiet_secs: u64,
    /// Open incidents kept at most; beyond, the oldest least severe one is closed.
    pub max_open: usize,
    /// Evidence lines kept per incident.
    pub evidence_lines: usize,
    /// Resolved incidents remembered for `tunerctl events`.
    pub recent: usize,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            quiet_secs: 300,
            max_open: 256,
            evidence_lines: 10,
            recent: 100,
        }
    }
}

/// What an incident is about: failures of one disk are one incident, whatever layer reports
/// them (block, buffer cache, filesystem, SCSI); stalls and latency of a disk are their own,
/// since they clear on their own.
fn category(kind: Kind) -> &'static str {
    use Kind::*;
    match kind {
        IoStall => "stall",
        IoLatencyHigh => "latency",
        NfsNotResponding | NfsOk => "nfs",
        IscsiConnectionError | IscsiPingTimeout => "iscsi",
        MultipathPathFailed | MultipathPathReinstated | MultipathNoPaths => "multipath",
        HungTask => "hung-task",
        DirtyThrottling => "dirty",
        LogGap => "log-gap",
        KnobContested => "knob",
        // Its own key: a disk incident's condition is its mount flags, not the array's state.
        MdDegraded | MdArrayFailed => "md",
        // A DRBD connection (`resource:peer`), its split brain and recovery are one incident.
        DrbdConnectionLost | DrbdSplitBrain => "drbd",
        DrbdDiskFailed => "drbd-disk",
        ZfsPoolSuspended | ZfsVdevFault | ZfsIoError => "zfs",
        DmThinOutOfSpace | DmThinPoolFailed => "dm-thin",
        FsFrozen => "frozen",
        // A rule's incidents are keyed by its kind: the config refuses names that are
        // categories.
        Rule(k) => k.as_str(),
        _ => "disk",
    }
}

/// Kinds whose incident lasts while a condition holds, checked by the caller each tick; the
/// others end after the quiet period.
fn has_condition(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::KnobContested
            | Kind::MdDegraded
            | Kind::Ext4ReadOnly
            | Kind::Ext4JournalAbort
            | Kind::Ext4Shutdown
            | Kind::XfsShutdown
            | Kind::BtrfsReadOnly
            | Kind::FilesystemReadOnly
            | Kind::IoStall
            | Kind::IoLatencyHigh
            | Kind::DirtyThrottling
            | Kind::NfsNotResponding
            | Kind::MultipathPathFailed
            | Kind::MultipathNoPaths
            | Kind::DrbdConnectionLost
            | Kind::DrbdSplitBrain
            | Kind::DrbdDiskFailed
            | Kind::ZfsPoolSuspended
            | Kind::ZfsVdevFault
            | Kind::DmThinOutOfSpace
            | Kind::DmThinPoolFailed
            | Kind::MdArrayFailed
    )
}

/// How far down the failure chain a kind is: the device errs, the filesystem errs or loses
/// data, aborts its journal, and ends read-only or shut down.
fn stage(kind: Kind) -> u8 {
    use Kind::*;
    match kind {
        Ext4ReadOnly | BtrfsReadOnly | FilesystemReadOnly | Ext4Shutdown | XfsShutdown => 6,
        Ext4JournalAbort | BtrfsTransactionAbort | MultipathNoPaths => 5,
        Ext4DataLoss => 4,
        Ext4Error | BtrfsError | XfsLogError | XfsMetadataError | WritebackError => 3,
        ScsiOffline | ScsiRejectedIo | NvmeReset | MdDiskFailure => 2,
        // RAID and replication layers: a suspended pool or failed thin pool stops all writes.
        ZfsPoolSuspended | DmThinPoolFailed | MdArrayFailed => 6,
        DrbdSplitBrain | DmThinOutOfSpace => 5,
        DrbdDiskFailed | ZfsVdevFault => 2,
        _ => 1,
    }
}

/// Which of two kinds names an incident better: the more severe, then the later in the
/// failure chain (an I/O error, then a journal abort, then read-only).
fn worse(a: Kind, sa: Severity, b: Kind, sb: Severity) -> bool {
    (sb, stage(b)) > (sa, stage(a))
}

/// Every category [`category`] gives a built-in kind: a `[[watch.rule]]` kind may not be
/// named like one (its incidents would share their keys).
pub(crate) const CATEGORIES: &[&str] = &[
    "stall",
    "latency",
    "nfs",
    "iscsi",
    "multipath",
    "hung-task",
    "dirty",
    "log-gap",
    "knob",
    "md",
    "frozen",
    "drbd",
    "drbd-disk",
    "zfs",
    "dm-thin",
    "disk",
];

/// Where a device named in a message lives: its whole disk, mounts and filesystem type.
#[derive(Debug, Clone, Default)]
pub(crate) struct Place {
    pub disk: Option<String>,
    pub mounts: Vec<String>,
    pub fstype: Option<String>,
}

/// The whole disk a block device name is on, by the kernel's naming alone: `sda3` -> `sda`,
/// `nvme0n1p1` -> `nvme0n1`, `mmcblk0p2` -> `mmcblk0`, `loop0p1` -> `loop0`, `xvda1` ->
/// `xvda`; a whole disk (`sdb`, `vda`, `nvme0n1`, `dm-0`, `md0`, `loop2`) is its own. None for
/// what is no block device name (a SCSI address, an NFS server, an iSCSI connection): for a
/// saved log from another machine, or a device the inventory no longer has.
pub(crate) fn disk_of(name: &str) -> Option<String> {
    let name = name.trim_start_matches("/dev/");
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_lowercase());
    // Names with a number then `p` and the partition: nvme0n1p1, mmcblk0p1, loop0p1, md0p1.
    for prefix in ["nvme", "mmcblk", "loop", "md", "nbd", "rbd", "zram"] {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let whole = match rest.rsplit_once('p') {
            Some((disk, part)) if digits(part) && !disk.is_empty() => {
                &name[..prefix.len() + disk.len()]
            }
            _ => name,
        };
        let tail = &whole[prefix.len()..];
        let ok = if prefix == "nvme" {
            tail.split_once('n')
                .is_some_and(|(c, n)| digits(c) && digits(n))
        } else {
            digits(tail)
        };
        return ok.then(|| whole.to_string());
    }
    if let Some(n) = name.strip_prefix("dm-") {
        return digits(n).then(|| name.to_string());
    }
    // sd, vd, xvd, hd: letters, then the partition number.
    for prefix in ["sd", "vd", "xvd", "hd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let end = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            let (letters_part, part) = rest.split_at(end);
            if letters(letters_part) && (part.is_empty() || digits(part)) {
                return Some(name[..prefix.len() + end].to_string());
            }
            return None;
        }
    }
    None
}

/// Maps a device as the kernel names it in a message (`sda`, `sda1`, `nvme0n1p2`, `dm-0`,
/// `0:0:0:0`, `8:16`) to the disk it is on and the filesystems mounted from it.
pub(crate) fn locate(inv: &Inventory, device: &str) -> Place {
    let device = device.trim_start_matches("/dev/");
    let disk = inv
        .disks
        .iter()
        .find(|d| d.name == device || d.dev == device || d.hctl.as_deref() == Some(device))
        .or_else(|| {
            // A partition: the disk whose name prefixes it (sda1, nvme0n1p2, loop2p1).
            inv.disks
                .iter()
                .filter(|d| device.starts_with(&d.name))
                .filter(|d| {
                    let rest = &device[d.name.len()..];
                    let rest = rest.strip_prefix('p').unwrap_or(rest);
                    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit())
                })
                .max_by_key(|d| d.name.len())
        })
        .map(|d| d.name.clone());
    let mut mounts = Vec::new();
    let mut fstype = None;
    for m in &inv.mounts {
        let from_device = m.source.trim_start_matches("/dev/") == device;
        let on_disk = disk.is_some() && m.disk == disk;
        if from_device || on_disk {
            mounts.push(m.mount_point.clone());
            fstype.get_or_insert_with(|| m.fstype.clone());
        }
    }
    // An NFS server name: its mounts.
    if disk.is_none() && mounts.is_empty() {
        for m in inv.mounts.iter().filter(|m| m.is_network()) {
            if m.source.split(':').next() == Some(device) {
                mounts.push(m.mount_point.clone());
                fstype.get_or_insert_with(|| m.fstype.clone());
            }
        }
    }
    Place {
        disk,
        mounts,
        fstype,
    }
}

/// The place of a mount point: itself, the disk it is on and its filesystem (nothing but the
/// mount point when the inventory does not have it).
pub(crate) fn place_of_mount(inv: &Inventory, mount_point: &str) -> Place {
    if mount_point.is_empty() {
        return Place::default();
    }
    match inv.mounts.iter().find(|m| m.mount_point == mount_point) {
        Some(m) => Place {
            disk: m.disk.clone(),
            mounts: vec![m.mount_point.clone()],
            fstype: Some(m.fstype.clone()),
        },
        None => Place {
            mounts: vec![mount_point.to_string()],
            ..Place::default()
        },
    }
}

/// A short text for a person.
fn describe(kind: Kind) -> &'static str {
    use Kind::*;
    match kind {
        Ext4Error => "ext4 error",
        Ext4JournalAbort => "ext4 journal aborted",
        Ext4ReadOnly => "ext4 remounted read-only",
        Ext4DataLoss => "ext4 data loss",
        Ext4Shutdown => "ext4 shut down",
        XfsShutdown => "XFS shut down",
        XfsLogError => "XFS log I/O error",
        BtrfsError => "btrfs error",
        BtrfsReadOnly => "btrfs forced read-only",
        BtrfsTransactionAbort => "btrfs transaction aborted",
        BtrfsDeviceErrors => "btrfs device errors",
        BlockIoError => "I/O errors",
        BufferIoError => "buffer I/O errors",
        WritebackError => "writeback errors",
        ScsiTimeout => "SCSI command timeouts",
        ScsiOffline => "SCSI device offlined",
        ScsiRejectedIo => "I/O rejected: device offline",
        ScsiTaskAbort => "SCSI commands aborted",
        StorvscError => "Hyper-V storage command failed",
        XfsMetadataError => "XFS metadata I/O error",
        NvmeIoError => "NVMe command failed",
        MdDiskFailure => "md array member failed",
        HungTask => "tasks hung on I/O",
        NfsNotResponding => "NFS server not responding",
        NfsOk => "NFS server OK",
        IscsiConnectionError => "iSCSI connection error",
        IscsiPingTimeout => "iSCSI ping timeout",
        MultipathPathFailed => "multipath path failed",
        MultipathPathReinstated => "multipath path reinstated",
        MultipathNoPaths => "multipath: no paths left",
        NvmeTimeout => "NVMe I/O timeouts",
        NvmeReset => "NVMe controller reset",
        FilesystemReadOnly => "filesystem read-only after an error",
        FilesystemErrorsRecorded => "filesystem has recorded errors",
        IoStall => "I/O stalled",
        IoLatencyHigh => "I/O latency high",
        DirtyThrottling => "writers throttled by dirty memory",
        LogGap => "kernel log records lost",
        KnobContested => "knob set back by another writer",
        MdDegraded => "md array degraded",
        DrbdConnectionLost => "DRBD replication link lost",
        DrbdSplitBrain => "DRBD split brain",
        DrbdDiskFailed => "DRBD local disk failed",
        ZfsPoolSuspended => "ZFS pool suspended",
        ZfsVdevFault => "ZFS vdev faulted or degraded",
        ZfsIoError => "ZFS I/O errors",
        DmThinOutOfSpace => "thin pool out of data space",
        DmThinPoolFailed => "thin pool read-only or failed",
        MdArrayFailed => "md array failed",
        FsFrozen => "filesystem frozen",
        Rule(k) => k.as_str(),
    }
}

fn summary(kind: Kind, subject: &str, place: &Place) -> String {
    let mut s = describe(kind).to_string();
    if !subject.is_empty() {
        s.push_str(" on ");
        s.push_str(subject);
    }
    if !place.mounts.is_empty() {
        s.push_str(&format!(" ({})", place.mounts.join(", ")));
    }
    s
}

/// Persistent part of the engine, saved in /run/tunerd so resolves survive a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Incidents {
    pub open: BTreeMap<String, OpenIncident>,
    pub recent: VecDeque<Incident>,
    /// Observations not folded anywhere because the open table was full (bounded memory).
    pub dropped: u64,
    /// The [`Detail`] of each incident in `recent`, by id.
    #[serde(default)]
    pub recent_detail: BTreeMap<String, Detail>,
    /// SCSI address -> disk name, as the log (`sd 2:0:0:0: [sdb] ...`) or the inventory tied
    /// them: kept with the incidents, so that after a restart (the kernel log is read on from
    /// the last record handled, not again from the disk's attach lines) a line that names only
    /// the address (`sd 2:0:0:0: rejecting I/O to offline device`) is still the disk's, also
    /// once the disk has left the inventory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scsi_names: BTreeMap<String, String>,
}

/// What a person reading a saved log wants of an incident beyond [`Incident`]: the line that
/// decided its kind (not the first line, which is often a plain I/O error) and its first and
/// last times in the log's own clock; and the line that ended it, with its time, when a line
/// did (not the quiet period).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Detail {
    pub decided_by: String,
    pub first_stamp: Option<String>,
    pub last_stamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_stamp: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenIncident {
    pub incident: Incident,
    /// Its deciding line and stamps (older state files have none).
    #[serde(default)]
    pub detail: Detail,
    /// Its filesystem was unmounted: it no longer has a lasting condition, and a new mount of
    /// the device ends it.
    #[serde(default)]
    pub unmounted: bool,
    /// Firing notifications sent for it (escalations make more).
    pub notified: u32,
    /// Whether its condition is known to hold (set by the condition checks).
    pub condition: bool,
}

pub(crate) struct IncidentTable {
    pub cfg: IncidentConfig,
    pub state: Incidents,
}

impl IncidentTable {
    pub(crate) fn new(cfg: IncidentConfig, state: Incidents) -> IncidentTable {
        IncidentTable { cfg, state }
    }

    pub(crate) fn open(&self) -> Vec<&Incident> {
        self.state.open.values().map(|o| &o.incident).collect()
    }

    /// Folds one observation in; returns the notifications it causes. `origin` makes the
    /// incident id reproducible when the same record is read again after a restart (the
    /// kmsg sequence number of the first record, `k1234`); without one, the time is used.
    pub(crate) fn observe(
        &mut self,
        obs: &Observation,
        place: &Place,
        origin: Option<&str>,
        now: u64,
    ) -> Vec<Notification> {
        self.observe_stamped(obs, place, origin, now, None)
    }

    /// [`IncidentTable::observe`], with the record's time as the log printed it.
    pub(crate) fn observe_stamped(
        &mut self,
        obs: &Observation,
        place: &Place,
        origin: Option<&str>,
        now: u64,
        stamp: Option<&str>,
    ) -> Vec<Notification> {
        let subject = subject(obs.kind, obs.device.as_deref(), place);
        let key = format!("{}/{subject}", category(obs.kind));
        if obs.resolves {
            return self.resolve(&key, now, Some(&obs.message), stamp);
        }
        if let Some(open) = self.state.open.get_mut(&key) {
            if let Some(st) = stamp {
                open.detail.last_stamp = Some(st.to_string());
            }
            let inc = &mut open.incident;
            inc.count += 1;
            inc.last_seen = now;
            if inc.evidence.len() < self.cfg.evidence_lines {
                inc.evidence.push(obs.message.clone());
            }
            for m in &place.mounts {
                if !inc.mounts.contains(m) {
                    inc.mounts.push(m.clone());
                }
            }
            if inc.disk.is_none() {
                inc.disk.clone_from(&place.disk);
            }
            if worse(inc.kind, inc.severity, obs.kind, obs.severity) {
                open.detail.decided_by = obs.message.clone();
                if inc.fstype.is_none() {
                    inc.fstype = fstype_of(obs.kind);
                }
                let escalates = obs.severity > inc.severity;
                inc.kind = obs.kind;
                inc.severity = inc.severity.max(obs.severity);
                inc.summary = summary(obs.kind, &subject, place);
                if escalates {
                    open.notified += 1;
                    let n = open.notified;
                    let inc = open.incident.clone();
                    return vec![notification(&inc, IncidentState::Firing, n, now)];
                }
            }
            return Vec::new();
        }
        if self.state.open.len() >= self.cfg.max_open && !self.make_room(obs.severity, now) {
            self.state.dropped += 1;
            return Vec::new();
        }
        let start = origin.map_or_else(|| format!("t{now}"), str::to_string);
        let incident = Incident {
            id: format!("{key}/{start}"),
            kind: obs.kind,
            severity: obs.severity,
            state: IncidentState::Firing,
            summary: summary(obs.kind, &subject, place),
            disk: place.disk.clone(),
            device: obs.device.clone(),
            mounts: place.mounts.clone(),
            fstype: place.fstype.clone().or_else(|| fstype_of(obs.kind)),
            started: now,
            last_seen: now,
            ended: None,
            count: 1,
            evidence: vec![obs.message.clone()],
            source: String::new(),
        };
        let n = notification(&incident, IncidentState::Firing, 1, now);
        self.state.open.insert(
            key,
            OpenIncident {
                incident,
                detail: Detail {
                    decided_by: obs.message.clone(),
                    first_stamp: stamp.map(str::to_string),
                    last_stamp: stamp.map(str::to_string),
                    ..Detail::default()
                },
                unmounted: false,
                notified: 1,
                condition: has_condition(obs.kind),
            },
        );
        vec![n]
    }

    /// Closes the oldest least severe incident less severe than `severity`, if any.
    fn make_room(&mut self, severity: Severity, now: u64) -> bool {
        let victim = self
            .state
            .open
            .iter()
            .filter(|(_, o)| o.incident.severity < severity)
            .min_by_key(|(_, o)| (o.incident.severity, o.incident.last_seen))
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                let why = format!("closed to make room: {} incidents open", self.cfg.max_open);
                self.resolve(&k, now, Some(&why), None);
                true
            }
            None => false,
        }
    }

    /// Ends the incident of `key`, if open: `why` is the line (or reason) that ended it, `stamp`
    /// that line's time as the log printed it; both `None` for the quiet period.
    pub(crate) fn resolve(
        &mut self,
        key: &str,
        now: u64,
        why: Option<&str>,
        stamp: Option<&str>,
    ) -> Vec<Notification> {
        let Some(mut open) = self.state.open.remove(key) else {
            return Vec::new();
        };
        open.incident.state = IncidentState::Resolved;
        open.incident.ended = Some(now);
        open.detail.ended_by = why.map(str::to_string);
        open.detail.end_stamp = stamp.map(str::to_string);
        if let Some(w) = why {
            if open.incident.evidence.len() < self.cfg.evidence_lines + 1 {
                open.incident.evidence.push(w.to_string());
            }
        }
        let n = notification(&open.incident, IncidentState::Resolved, 0, now);
        if self.state.recent.len() >= self.cfg.recent {
            if let Some(old) = self.state.recent.pop_front() {
                self.state.recent_detail.remove(&old.id);
            }
        }
        self.state
            .recent_detail
            .insert(open.incident.id.clone(), open.detail);
        self.state.recent.push_back(open.incident);
        vec![n]
    }

    /// The log (or the inventory) tied SCSI address `hctl` to `disk` (`sd 0:0:0:0: [sdd] ...`):
    /// every open incident of the disk that names the device by its address names it `disk`
    /// from now on (the inventory may have put one on the disk already, by its address, before
    /// anything said the name). An incident that lines naming only the address opened under
    /// the address is the disk's: merged into the disk's own incident when there is one
    /// (counts added, the worse kind kept), else moved under the disk's name; its id stays, so
    /// its notifications still match.
    pub(crate) fn rename_disk(&mut self, hctl: &str, disk: &str) {
        for (key, open) in self.state.open.iter_mut() {
            let inc = &mut open.incident;
            // Not an incident another disk had at that address before (the inventory said so).
            let on_disk = inc.disk.as_deref().is_none_or(|d| d == hctl || d == disk);
            if key.starts_with("disk/") && on_disk && inc.device.as_deref() == Some(hctl) {
                inc.device = Some(disk.to_string());
            }
        }
        let Some(mut moved) = self.state.open.remove(&format!("disk/{hctl}")) else {
            return;
        };
        for name in [&mut moved.incident.device, &mut moved.incident.disk] {
            if name.as_deref().is_none_or(|n| n == hctl) {
                *name = Some(disk.to_string());
            }
        }
        moved.incident.summary = moved.incident.summary.replace(hctl, disk);
        let key = format!("disk/{disk}");
        let Some(open) = self.state.open.get_mut(&key) else {
            self.state.open.insert(key, moved);
            return;
        };
        let (inc, m) = (&mut open.incident, moved.incident);
        inc.count += m.count;
        inc.started = inc.started.min(m.started);
        inc.last_seen = inc.last_seen.max(m.last_seen);
        for line in m.evidence {
            if inc.evidence.len() < self.cfg.evidence_lines {
                inc.evidence.push(line);
            }
        }
        if worse(inc.kind, inc.severity, m.kind, m.severity) {
            inc.kind = m.kind;
            inc.severity = m.severity;
            inc.summary = m.summary;
            open.detail.decided_by = moved.detail.decided_by;
        }
        if m.started <= inc.started {
            open.detail.first_stamp = moved.detail.first_stamp;
        }
        open.condition |= moved.condition;
    }

    /// The deciding line and stamps of the incident `id`, open or recent.
    pub(crate) fn detail(&self, id: &str) -> Option<&Detail> {
        self.state
            .open
            .values()
            .find(|o| o.incident.id == id)
            .map(|o| &o.detail)
            .or_else(|| self.state.recent_detail.get(id))
    }

    /// A filesystem on `device` (located at `place`) was unmounted or mounted. An unmount takes
    /// the lasting condition from its disk's incident (it ends after the quiet period: the
    /// lines of the unmount itself still join it); a new mount ends it at once, so a failure
    /// of the next filesystem on the device is an incident of its own.
    pub(crate) fn lifecycle(
        &mut self,
        mounted: bool,
        device: &str,
        place: &Place,
        now: u64,
        line: &str,
        stamp: Option<&str>,
    ) -> Vec<Notification> {
        let key = format!("disk/{}", subject(Kind::BlockIoError, Some(device), place));
        if mounted {
            return self.resolve(&key, now, Some(line), stamp);
        }
        if let Some(o) = self.state.open.get_mut(&key) {
            o.unmounted = true;
            o.condition = false;
        }
        Vec::new()
    }

    /// Sets whether the lasting condition of the incident of `key` holds; used by the
    /// condition checks (mount flags, diskstats, meminfo).
    pub(crate) fn set_condition(&mut self, key: &str, holds: bool) {
        if let Some(o) = self.state.open.get_mut(key) {
            o.condition = holds;
        }
    }

    /// The condition of every open disk incident: it holds while its disk is in `failing`
    /// (a mount of it flagged failed). The key's format stays inside this module.
    pub(crate) fn set_disk_conditions(&mut self, failing: &std::collections::BTreeSet<String>) {
        for (key, open) in self.state.open.iter_mut() {
            if let Some(disk) = key.strip_prefix("disk/") {
                open.condition = failing.contains(disk) && !open.unmounted;
            }
        }
    }

    /// Ends incidents whose condition cleared and whose quiet period passed.
    pub(crate) fn tick(&mut self, now: u64) -> Vec<Notification> {
        let quiet = self.cfg.quiet_secs;
        let due: Vec<String> = self
            .state
            .open
            .iter()
            .filter(|(_, o)| !o.condition && o.incident.last_seen + quiet <= now)
            .map(|(k, _)| k.clone())
            .collect();
        due.iter()
            .flat_map(|k| self.resolve(k, now, None, None))
            .collect()
    }

    /// Ends an incident at once when its condition cleared (stall over, back to rw).
    pub(crate) fn clear(&mut self, key: &str, now: u64, why: &str) -> Vec<Notification> {
        self.resolve(key, now, Some(why), None)
    }
}

/// What an incident of `kind` is about: the disk for a disk's failures (its device when the
/// disk is unknown), the device for the others; a hung task by the disk of the device its
/// kernel thread is named for (`jbd2/sda3-8`), if any, so hung tasks of different disks are
/// different incidents.
fn subject(kind: Kind, device: Option<&str>, place: &Place) -> String {
    match category(kind) {
        "disk" | "stall" | "latency" | "hung-task" => place
            .disk
            .clone()
            .or_else(|| device.map(str::to_string))
            .unwrap_or_default(),
        "dirty" | "log-gap" => String::new(),
        // One incident per machine: a freeze agent freezes every filesystem at once, and a
        // hung writer's trace does not say which; the mounts known to be frozen are its place.
        "frozen" => String::new(),
        _ => device.map(str::to_string).unwrap_or_default(),
    }
}

/// The filesystem a kind is of, when the kind says (a saved log has no mount table).
fn fstype_of(kind: Kind) -> Option<String> {
    use Kind::*;
    let t = match kind {
        Ext4Error | Ext4JournalAbort | Ext4ReadOnly | Ext4DataLoss | Ext4Shutdown => "ext4",
        XfsShutdown | XfsLogError | XfsMetadataError => "xfs",
        BtrfsError | BtrfsReadOnly | BtrfsTransactionAbort | BtrfsDeviceErrors => "btrfs",
        ZfsPoolSuspended | ZfsVdevFault | ZfsIoError => "zfs",
        _ => return None,
    };
    Some(t.to_string())
}

/// The incident key an observation of `kind` about `subject` goes to.
pub(crate) fn key(kind: Kind, subject: &str) -> String {
    format!("{}/{subject}", category(kind))
}

fn notification(inc: &Incident, event: IncidentState, n: u32, now: u64) -> Notification {
    let suffix = match (event, n) {
        (IncidentState::Resolved, _) => "resolved".to_string(),
        (IncidentState::Firing, 0 | 1) => "firing".to_string(),
        (IncidentState::Firing, n) => format!("firing-{n}"),
    };
    Notification {
        id: format!("{}/{suffix}", inc.id),
        event,
        incident: inc.clone(),
        created_ms: now * 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(kind: Kind, sev: Severity, dev: &str, msg: &str) -> Observation {
        Observation {
            kind,
            severity: sev,
            device: Some(dev.to_string()),
            resolves: false,
            message: msg.to_string(),
            at_us: None,
        }
    }

    fn place(disk: &str, mount: &str) -> Place {
        Place {
            disk: Some(disk.into()),
            mounts: vec![mount.into()],
            fstype: Some("ext4".into()),
        }
    }

    #[test]
    fn a_flood_is_one_incident_escalated_and_bounded() {
        let mut h = IncidentTable::new(IncidentConfig::default(), Incidents::default());
        let p = place("loop2", "/mnt");
        let first = h.observe(
            &obs(
                Kind::BlockIoError,
                Severity::Warning,
                "loop2",
                "I/O error, dev loop2",
            ),
            &p,
            Some("k10"),
            100,
        );
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, "disk/loop2/k10/firing");
        for i in 0..100_000 {
            let n = h.observe(
                &obs(
                    Kind::BlockIoError,
                    Severity::Warning,
                    "loop2",
                    &format!("I/O error {i}"),
                ),
                &p,
                None,
                101,
            );
            assert!(n.is_empty());
        }
        let esc = h.observe(
            &obs(
                Kind::Ext4ReadOnly,
                Severity::Critical,
                "loop2",
                "Remounting filesystem read-only",
            ),
            &p,
            None,
            102,
        );
        assert_eq!(esc.len(), 1, "escalation re-fires");
        assert_eq!(esc[0].id, "disk/loop2/k10/firing-2");
        let open = h.open();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].count, 100_002);
        assert_eq!(open[0].evidence.len(), 10);
        assert_eq!(open[0].kind, Kind::Ext4ReadOnly);
        assert_eq!(open[0].mounts, vec!["/mnt"]);
    }

    #[test]
    fn resolve_by_message_condition_or_quiet_period() {
        let mut h = IncidentTable::new(
            IncidentConfig {
                quiet_secs: 60,
                ..Default::default()
            },
            Incidents::default(),
        );
        let nfs = Place::default();
        h.observe(
            &obs(
                Kind::NfsNotResponding,
                Severity::Critical,
                "srv",
                "nfs: server srv not responding",
            ),
            &nfs,
            None,
            10,
        );
        let mut ok = obs(Kind::NfsOk, Severity::Info, "srv", "nfs: server srv OK");
        ok.resolves = true;
        let r = h.observe(&ok, &nfs, None, 20);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].event, IncidentState::Resolved);
        assert_eq!(r[0].incident.ended, Some(20));

        h.observe(
            &obs(Kind::BlockIoError, Severity::Warning, "sda", "I/O error"),
            &place("sda", "/"),
            None,
            100,
        );
        assert!(h.tick(150).is_empty(), "not quiet long enough");
        assert_eq!(h.tick(161).len(), 1, "quiet period over");

        h.observe(
            &obs(Kind::Ext4ReadOnly, Severity::Critical, "sdb", "ro"),
            &place("sdb", "/data"),
            None,
            200,
        );
        assert!(
            h.tick(10_000).is_empty(),
            "read-only lasts while its condition holds"
        );
        h.set_condition(&key(Kind::Ext4ReadOnly, "sdb"), false);
        assert_eq!(h.tick(10_001).len(), 1);
    }

    /// An incident the inventory put on its disk by the SCSI address a line named (`sd
    /// 2:0:1:0: rejecting I/O to offline device`, scsi_lib.c `scsi_device_state_check`), as
    /// a state file from before the address was tied to a name has it: once the log ties the
    /// address to sdb, the incident names its device sdb. An incident of another disk that had
    /// the address before keeps what it named.
    #[test]
    fn an_address_tied_to_its_disk_renames_the_device_of_the_disks_incidents() {
        let mut h = IncidentTable::new(IncidentConfig::default(), Incidents::default());
        let line = "sd 2:0:1:0: rejecting I/O to offline device";
        let rejected = obs(Kind::ScsiRejectedIo, Severity::Critical, "2:0:1:0", line);
        h.observe(&rejected, &place("sdb", "/mnt/failing"), None, 10);
        h.observe(&rejected, &place("sdc", "/mnt/old"), None, 10);
        h.rename_disk("2:0:1:0", "sdb");
        let named: Vec<(&str, Option<&str>)> = h
            .state
            .open
            .iter()
            .map(|(k, o)| (k.as_str(), o.incident.device.as_deref()))
            .collect();
        assert_eq!(
            named,
            [("disk/sdb", Some("sdb")), ("disk/sdc", Some("2:0:1:0"))]
        );
        assert_eq!(h.state.open["disk/sdb"].incident.count, 1);
    }

    #[test]
    fn a_partition_is_on_the_disk_its_name_says() {
        for (name, disk) in [
            ("sda3", Some("sda")),
            ("sdab12", Some("sdab")),
            ("sdb", Some("sdb")),
            ("/dev/vda1", Some("vda")),
            ("xvda1", Some("xvda")),
            ("nvme0n1p1", Some("nvme0n1")),
            ("nvme0n1", Some("nvme0n1")),
            ("mmcblk0p2", Some("mmcblk0")),
            ("loop0p1", Some("loop0")),
            ("loop12", Some("loop12")),
            ("dm-0", Some("dm-0")),
            ("md127", Some("md127")),
            ("2:0:0:1", None),
            ("connection3:0", None),
            ("nfs.example", None),
            ("sd", None),
            ("nvme0", None),
            ("dm-", None),
        ] {
            assert_eq!(disk_of(name).as_deref(), disk, "{name}");
        }
    }

    #[test]
    fn memory_stays_bounded_and_criticals_are_kept() {
        let mut h = IncidentTable::new(
            IncidentConfig {
                max_open: 4,
                ..Default::default()
            },
            Incidents::default(),
        );
        for i in 0..4 {
            h.observe(
                &obs(
                    Kind::NfsNotResponding,
                    Severity::Critical,
                    &format!("s{i}"),
                    "x",
                ),
                &Place::default(),
                None,
                1,
            );
        }
        let n = h.observe(
            &obs(Kind::IscsiPingTimeout, Severity::Warning, "c1", "x"),
            &Place::default(),
            None,
            2,
        );
        assert!(
            n.is_empty(),
            "a lesser incident does not push out a critical one"
        );
        assert_eq!(h.state.dropped, 1);
        assert_eq!(h.open().len(), 4);
    }
}
