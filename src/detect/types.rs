//! The types that flow from the watchers to the alert sinks:
//! [`LogRecord`] (a kernel or journal log line, whatever it was read from) -> [`Observation`]
//! (what the catalog makes of one record or one sample of /proc and /sys) -> [`Incident`] (one
//! failure, however many lines it printed, open until its condition clears) ->
//! [`Notification`] (one state change of an incident, delivered at least once).

use serde::{Deserialize, Serialize};

/// One log record: from /dev/kmsg, a saved `dmesg`, `journalctl -k` (short or JSON), or the
/// systemd journal of a storage daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// /dev/kmsg sequence number, when known.
    pub seq: Option<u64>,
    /// Microseconds since boot (kmsg, dmesg) when known.
    pub monotonic_us: Option<u64>,
    /// Microseconds since the epoch (journal), when known.
    pub realtime_us: Option<u64>,
    /// syslog level 0 (emerg) .. 7 (debug).
    pub level: Option<u8>,
    /// The text, with kmsg's `\xNN` escapes decoded and continuation lines dropped.
    pub message: String,
    /// kmsg's ` SUBSYSTEM=` continuation, or the journal's `_KERNEL_SUBSYSTEM`.
    pub subsystem: Option<String>,
    /// kmsg's ` DEVICE=` continuation (`b8:0`, `+scsi:2:0:0:0`, `n2`, ...).
    pub device: Option<String>,
    /// The userspace program, for journal records (`iscsid`, `multipathd`).
    pub program: Option<String>,
    /// Who wrote the record, as far as its source can tell: the catalog believes a record only
    /// from the kernel or, for a storage daemon's, from root ([`Sender`]).
    #[serde(default)]
    pub sender: Sender,
    /// The record's time as the log printed it (`[ 2777.628917]`, `Nov 22 05:52:03`,
    /// `[Sun Nov 22 06:39:45 2026]`), for a person reading a saved log in its own clock. None
    /// for binary sources (kmsg, journal JSON), whose times are in the fields above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
}

/// Who wrote a log record, from what its source guarantees rather than what the record says
/// of itself: any process can call itself `multipathd` (`logger -t multipathd`) or print
/// `EXT4-fs error` (a write to /dev/kmsg, `logger -t kernel`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sender {
    /// The format cannot show the sender (`dmesg`, `journalctl -o short*`, syslog files): the
    /// record is taken at its word. Only saved logs read by `tunerctl scan` are like this; the
    /// daemon reads /dev/kmsg and `journalctl -o json`, which always tell.
    #[default]
    Unknown,
    /// The kernel itself: a /dev/kmsg record of facility 0 (userspace writes to /dev/kmsg
    /// cannot have it), a journal entry with `_TRANSPORT=kernel` and `SYSLOG_FACILITY=0`, a
    /// `dmesg -x` `kern` or `dmesg -r` facility-0 line.
    Kernel,
    /// A userspace process running as root, by journald's trusted `_UID=0` (journald sets the
    /// `_` fields from the sender's credentials; clients cannot).
    Root,
    /// Anything else: another uid, a userspace write to /dev/kmsg, an entry without trusted
    /// fields. Never classified.
    Untrusted,
}

/// How bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The catalog of storage trouble tunerd recognises. `snake_case` names are stable: they are
/// the `kind` of incidents, the `alertname` label in Alertmanager and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Ext4Error,
    Ext4JournalAbort,
    Ext4ReadOnly,
    Ext4DataLoss,
    Ext4Shutdown,
    XfsShutdown,
    XfsLogError,
    BtrfsError,
    BtrfsReadOnly,
    BtrfsTransactionAbort,
    BtrfsDeviceErrors,
    /// `I/O error, dev ...` and its siblings (`timeout error`, `critical medium error`, ...).
    BlockIoError,
    BufferIoError,
    WritebackError,
    ScsiTimeout,
    ScsiOffline,
    ScsiRejectedIo,
    /// The SCSI midlayer or HBA driver aborting a command that took too long (`attempting task
    /// abort!`, VMware pvscsi's `task abort on host N`): the step before a reset or offline.
    ScsiTaskAbort,
    /// Hyper-V storvsc: the host failed a read or write (`tag#N cmd 0x2a status: scsi 0x2 srb
    /// 0x4 hv 0xc0000001`).
    StorvscError,
    /// XFS could not read or write its metadata (`metadata I/O error`), or could not mount
    /// because of it (`SB validate failed with error -5`, `log mount failed`).
    XfsMetadataError,
    /// NVMe status of a failed command (`nvme0n1: I/O Cmd(0x2) @ LBA ..., I/O Error (sct 0x2 /
    /// sc 0x81)`).
    NvmeIoError,
    /// md kicked a member out of its array (`md/raid1:md0: Disk failure on sdb6, disabling
    /// device.`): the array runs degraded.
    MdDiskFailure,
    HungTask,
    NfsNotResponding,
    NfsOk,
    IscsiConnectionError,
    IscsiPingTimeout,
    MultipathPathFailed,
    MultipathPathReinstated,
    MultipathNoPaths,
    NvmeTimeout,
    NvmeReset,
    /// A filesystem mounted read-only by an error (mount flags `ro`/`emergency_ro`/`shutdown`).
    FilesystemReadOnly,
    /// ext4's persistent error counter (`/sys/fs/ext4/DEV/errors_count`) is non-zero.
    FilesystemErrorsRecorded,
    /// Requests in flight and no completions for the configured time (diskstats).
    IoStall,
    /// Average latency per I/O above the threshold (diskstats).
    IoLatencyHigh,
    /// Dirty + writeback memory at the dirty threshold: every writer is throttled.
    DirtyThrottling,
    /// Kernel log records were lost (ring overwrite) before tunerd read them.
    LogGap,
    /// An md array lost a member (`md/degraded` > 0): one more failure and it fails.
    MdDegraded,
    /// Another writer keeps setting a knob back (the tuning half's drift checks): the
    /// incident's `device` is the knob (`sda scsi_timeout`); it lasts while the contest does.
    KnobContested,
    // RAID and replication layers (issue 11 item 3): DRBD, ZFS, device-mapper thin pools.
    /// DRBD lost its replication link to a peer (`PingAck did not arrive in time`, `conn(
    /// Connected -> NetworkFailure )`, `meta connection shut down by peer`): writes go to one
    /// copy only. The incident's `device` is `resource:peer` (DRBD 9) or what DRBD 8 names
    /// (`resource`, `drbd0`); it lasts until `conn( ... -> Connected )` (DRBD 8: or a resync
    /// state past it), which in-kernel 8.4 prints on the device only: a loss it printed on the
    /// connection ends at the line of a device connected in that connection's handshake.
    DrbdConnectionLost,
    /// DRBD found both sides changed the data while apart and would not pick one (`Split-Brain
    /// detected but unresolved, dropping connection!`): needs a person; ends at `Connected`.
    DrbdSplitBrain,
    /// DRBD's local backing disk failed (`Local IO failed in ...`, `IO ERROR: neither local nor
    /// remote data`, DRBD 9's `disk( UpToDate -> Failed )`; not DRBD 8's `disk( UpToDate ->
    /// Failed )` alone, which every detach prints): the device (`drbd1`) runs from the peer, or
    /// not at all; ends at `disk( ... -> UpToDate )`.
    DrbdDiskFailed,
    /// ZFS suspended a pool (`WARNING: Pool 'tank' has encountered an uncorrectable I/O failure
    /// and has been suspended.`, MMP's `suspending pool`, zed `class=io_failure`): all I/O to it
    /// blocks. Ends at zed's `class=vdev_clear` of the pool (`zpool clear`).
    ZfsPoolSuspended,
    /// zed: a vdev left ONLINE (`class=statechange ... vdev_state=FAULTED`, `DEGRADED`,
    /// `UNAVAIL`, `REMOVED`); ends when zed reports it `ONLINE` again.
    ZfsVdevFault,
    /// zed: I/O, checksum, deadman (hung I/O) or delay events of a vdev (`class=io`,
    /// `class=checksum`, `class=deadman`, ...).
    ZfsIoError,
    /// A dm-thin pool ran out of data space (`device-mapper: thin: 253:2: switching pool to
    /// out-of-data-space (queue IO) mode`: writes wait, `(error IO)`: writes fail); ends at
    /// `switching pool to write mode`.
    DmThinOutOfSpace,
    /// A dm-thin pool went `read-only` or to `failure` mode (its metadata failed); ends at
    /// `switching pool to write mode`.
    DmThinPoolFailed,
    /// An md array lost more members than it has redundancy (`md/raid:md2: Cannot continue
    /// operation (2/4 failed).`, raid1/raid10's `Disk failure on sdb1, this is the last
    /// device.`): its I/O fails. Lasts until the array is whole or stopped.
    MdArrayFailed,
    /// A filesystem stayed frozen (FIFREEZE: a backup's freeze whose thaw was lost) longer than
    /// `[watch] frozen_secs`: every writer to it blocks. `device` is its mount point, or empty
    /// when the signal does not say which filesystem (a hung writer's trace).
    FsFrozen,
    /// A kind defined by a `[[watch.rule]]` of tunerd.toml: its name is the rule's `kind`.
    #[serde(untagged)]
    Rule(RuleKind),
}

/// The name of a user-defined kind (`[[watch.rule]]` `kind`), interned: a kind is `Copy` and
/// its name lives as long as the process. Each distinct name is allocated once, however often
/// the configuration is reloaded, so the memory is bounded by the names ever configured.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleKind(&'static str);

impl RuleKind {
    /// The interned kind named `name`.
    pub fn new(name: &str) -> RuleKind {
        static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
            std::sync::Mutex::new(std::collections::BTreeSet::new());
        let mut names = crate::util::sync::lock(&NAMES);
        if let Some(known) = names.get(name) {
            return RuleKind(known);
        }
        let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
        names.insert(leaked);
        RuleKind(leaked)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Debug for RuleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for RuleKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for RuleKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RuleKind, D::Error> {
        let name = String::deserialize(d)?;
        Ok(RuleKind::new(&name))
    }
}

impl Kind {
    /// The stable `snake_case` name (the serde name): an incident's `kind`, Alertmanager's
    /// `alertname`, the metric label, `TUNERD_KIND`.
    pub fn name(self) -> String {
        if let Kind::Rule(k) = self {
            return k.as_str().to_string();
        }
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => s,
            _ => format!("{self:?}"),
        }
    }
}

/// What one record or one sample says. `device` is as the kernel named it in the message
/// (`loop2`, `sda`, `dm-0`, `0:0:0:0`, an NFS server name); the health layer maps it to a disk
/// and its mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub kind: Kind,
    pub severity: Severity,
    pub device: Option<String>,
    /// This observation ends an open incident of its key (`nfs: server X OK`, path reinstated).
    pub resolves: bool,
    /// The evidence: the log line, or what a sample measured.
    pub message: String,
    /// Microseconds since the epoch when it happened, if known.
    pub at_us: Option<u64>,
}

/// Whether an incident is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    Firing,
    Resolved,
}

impl IncidentState {
    /// The stable name (the serde name): `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Firing => "firing",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// One failure, however many lines it printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable for the life of the incident (and across daemon restarts): `kind/device`,
    /// plus the start time, e.g. `ext4_journal_abort/loop3/1795330000`.
    pub id: String,
    pub kind: Kind,
    pub severity: Severity,
    pub state: IncidentState,
    /// One line for a person: `ext4 journal aborted on loop3 (/mnt/data)`.
    pub summary: String,
    /// The whole disk (`sda`), when known.
    pub disk: Option<String>,
    /// As named in the messages (`sda1`, `dm-0`, `nfs.example:/export`).
    pub device: Option<String>,
    pub mounts: Vec<String>,
    pub fstype: Option<String>,
    /// Unix seconds.
    pub started: u64,
    pub last_seen: u64,
    pub ended: Option<u64>,
    /// Observations folded into this incident.
    pub count: u64,
    /// The first lines, as evidence (bounded).
    pub evidence: Vec<String>,
    /// Where it was seen: `kmsg`, `diskstats`, `mounts`, `ext4-sysfs`, `fanotify`, `journal`,
    /// `meminfo`.
    pub source: String,
}

/// One state change of an incident, as delivered to a sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per notification and stable across retries: receivers deduplicate on it.
    pub id: String,
    /// `firing` when the incident opens (or is re-announced), `resolved` when it ends.
    pub event: IncidentState,
    pub incident: Incident,
    /// Unix milliseconds when the notification was made.
    pub created_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kinds go to /run/tunerd/incidents.json and back, and to every sink by name: a rule's
    /// kind is its name as a plain string, like the built-in ones.
    #[test]
    fn kinds_round_trip_by_name() {
        for k in [
            Kind::FsFrozen,
            Kind::MdDegraded,
            Kind::Rule(RuleKind::new("hpsa_abort_failed")),
        ] {
            let text = serde_json::to_string(&k).expect("serialize");
            assert_eq!(text, format!("\"{}\"", k.name()));
            let back: Kind = serde_json::from_str(&text).expect("deserialize");
            assert_eq!(back, k);
        }
        assert_eq!(Kind::FsFrozen.name(), "fs_frozen");
        assert_eq!(
            serde_json::from_str::<Kind>("\"md_degraded\"").ok(),
            Some(Kind::MdDegraded),
            "a built-in name is never taken for a rule"
        );
        // Interned once.
        assert!(std::ptr::eq(
            RuleKind::new("x_y").as_str(),
            RuleKind::new("x_y").as_str()
        ));
    }
}
