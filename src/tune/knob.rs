//! Every knob tunerd sets: its profile key, where it lives in sysfs/procfs, which values the
//! kernel accepts, and how its current value reads. One table, so the profile validator, the
//! planner, the applier and the documentation agree.
//!
//! Semantics and ranges: ../shared/reference/tunables.md and the kernel's
//! Documentation/ABI/stable/sysfs-block, Documentation/admin-guide/sysctl/vm.rst.

use serde::Serialize;

/// Where a knob lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Scope {
    /// `/proc/sys/vm/*`: one value for the machine.
    Vm,
    /// A disk's queue or SCSI device attribute.
    Disk,
    /// A backing-device-info (`/sys/class/bdi/MAJ:MIN/`): a disk's or a network mount's.
    Bdi,
    /// `/proc/sys/kernel/*`: one value for the machine (the hung-task detector).
    Kernel,
}

/// Which layer of a stack a disk knob belongs to; see `Disk::queues_io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    /// Elevator and request pool: on the device that queues the I/O.
    Queue,
    /// SCSI device attributes: on the sd devices at the bottom.
    Scsi,
    /// Read-ahead and dirty limits: on the device the filesystem sits on.
    Top,
}

/// The values a knob accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    Int {
        min: u64,
        max: u64,
    },
    /// An integer in `min..=max`, or -1 for "no limit".
    IntOrUnlimited {
        min: u64,
        max: u64,
    },
    /// A preference list of elevator names (or one name).
    Scheduler,
    Choice(&'static [&'static str]),
}

/// Knobs in the order they are applied on one object; the derive(Ord) is the apply order.
/// The timeouts and other cheap attributes come first: they are what keeps a stalled disk
/// alive, and a write costs microseconds. The elevator and the request pool come last: each
/// write freezes the queue (36 ms and 32 ms on a loop device here), and the scheduler must
/// precede `nr_requests` because switching the elevator resets it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Knob {
    ReadAheadKb,
    MaxSectorsKb,
    RqAffinity,
    Nomerges,
    AddRandom,
    IoTimeoutMs,
    WriteCache,
    ScsiTimeout,
    ScsiEhTimeout,
    ScsiQueueDepth,
    ScsiCacheType,
    ScsiMaxRetries,
    ScsiEhDeadline,
    IscsiRecoveryTmo,
    FcFastIoFailTmo,
    FcDevLossTmo,
    Scheduler,
    NrRequests,
    BdiReadAheadKb,
    BdiMinRatio,
    BdiMaxRatio,
    BdiMaxBytes,
    BdiStrictLimit,
    Swappiness,
    DirtyRatio,
    DirtyBytes,
    DirtyBackgroundRatio,
    DirtyBackgroundBytes,
    DirtyExpireCentisecs,
    DirtyWritebackCentisecs,
    HungTaskTimeoutSecs,
    HungTaskWarnings,
    NvmeCoreIoTimeout,
    NvmeCoreMaxRetries,
}

pub(crate) const WRITE_CACHE_VALUES: &[&str] = &["write back", "write through"];
/// `cache_type` values (drivers/scsi/sd.c `sd_cache_types`); a `temporary ` prefix changes
/// only the kernel's view and sends nothing to the device.
pub(crate) const CACHE_TYPE_VALUES: &[&str] = &[
    "write through",
    "none",
    "write back",
    "write back, no read (daft)",
];
pub(crate) const SCHEDULERS: &[&str] = &["none", "mq-deadline", "kyber", "bfq", "noop", "deadline"];

const U32_MAX: u64 = u32::MAX as u64;
/// Largest value a kernel `int` sysctl takes.
const INT_MAX: u64 = i32::MAX as u64;

impl Knob {
    pub(crate) const ALL: [Knob; 34] = [
        Knob::ReadAheadKb,
        Knob::MaxSectorsKb,
        Knob::RqAffinity,
        Knob::Nomerges,
        Knob::AddRandom,
        Knob::IoTimeoutMs,
        Knob::WriteCache,
        Knob::ScsiTimeout,
        Knob::ScsiEhTimeout,
        Knob::ScsiQueueDepth,
        Knob::ScsiCacheType,
        Knob::ScsiMaxRetries,
        Knob::ScsiEhDeadline,
        Knob::IscsiRecoveryTmo,
        Knob::FcFastIoFailTmo,
        Knob::FcDevLossTmo,
        Knob::Scheduler,
        Knob::NrRequests,
        Knob::BdiReadAheadKb,
        Knob::BdiMinRatio,
        Knob::BdiMaxRatio,
        Knob::BdiMaxBytes,
        Knob::BdiStrictLimit,
        Knob::Swappiness,
        Knob::DirtyRatio,
        Knob::DirtyBytes,
        Knob::DirtyBackgroundRatio,
        Knob::DirtyBackgroundBytes,
        Knob::DirtyExpireCentisecs,
        Knob::DirtyWritebackCentisecs,
        Knob::HungTaskTimeoutSecs,
        Knob::HungTaskWarnings,
        Knob::NvmeCoreIoTimeout,
        Knob::NvmeCoreMaxRetries,
    ];

    /// The key in a profile. `read_ahead_kb` in a `[[mount]]` rule is the bdi's.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Knob::Scheduler => "scheduler",
            Knob::NrRequests => "nr_requests",
            Knob::ReadAheadKb => "read_ahead_kb",
            Knob::MaxSectorsKb => "max_sectors_kb",
            Knob::RqAffinity => "rq_affinity",
            Knob::Nomerges => "nomerges",
            Knob::AddRandom => "add_random",
            Knob::IoTimeoutMs => "io_timeout_ms",
            Knob::WriteCache => "write_cache",
            Knob::ScsiTimeout => "scsi_timeout",
            Knob::ScsiEhTimeout => "scsi_eh_timeout",
            Knob::ScsiQueueDepth => "scsi_queue_depth",
            Knob::ScsiCacheType => "scsi_cache_type",
            Knob::ScsiMaxRetries => "scsi_max_retries",
            Knob::ScsiEhDeadline => "scsi_eh_deadline",
            Knob::IscsiRecoveryTmo => "iscsi_recovery_tmo",
            Knob::FcFastIoFailTmo => "fc_fast_io_fail_tmo",
            Knob::FcDevLossTmo => "fc_dev_loss_tmo",
            Knob::BdiReadAheadKb => "read_ahead_kb",
            Knob::BdiMinRatio => "bdi_min_ratio",
            Knob::BdiMaxRatio => "bdi_max_ratio",
            Knob::BdiMaxBytes => "bdi_max_bytes",
            Knob::BdiStrictLimit => "bdi_strict_limit",
            Knob::Swappiness => "swappiness",
            Knob::DirtyRatio => "dirty_ratio",
            Knob::DirtyBytes => "dirty_bytes",
            Knob::DirtyBackgroundRatio => "dirty_background_ratio",
            Knob::DirtyBackgroundBytes => "dirty_background_bytes",
            Knob::DirtyExpireCentisecs => "dirty_expire_centisecs",
            Knob::DirtyWritebackCentisecs => "dirty_writeback_centisecs",
            Knob::HungTaskTimeoutSecs => "hung_task_timeout_secs",
            Knob::HungTaskWarnings => "hung_task_warnings",
            Knob::NvmeCoreIoTimeout => "nvme_core_io_timeout",
            Knob::NvmeCoreMaxRetries => "nvme_core_max_retries",
        }
    }

    pub(crate) fn scope(self) -> Scope {
        use Knob::*;
        match self {
            Swappiness
            | DirtyRatio
            | DirtyBytes
            | DirtyBackgroundRatio
            | DirtyBackgroundBytes
            | DirtyExpireCentisecs
            | DirtyWritebackCentisecs => Scope::Vm,
            BdiReadAheadKb | BdiMinRatio | BdiMaxRatio | BdiMaxBytes | BdiStrictLimit => Scope::Bdi,
            HungTaskTimeoutSecs | HungTaskWarnings | NvmeCoreIoTimeout | NvmeCoreMaxRetries => {
                Scope::Kernel
            }
            _ => Scope::Disk,
        }
    }

    pub(crate) fn layer(self) -> Layer {
        use Knob::*;
        match self {
            Scheduler | NrRequests | RqAffinity | Nomerges | AddRandom | IoTimeoutMs
            | MaxSectorsKb | WriteCache => Layer::Queue,
            ScsiTimeout | ScsiEhTimeout | ScsiQueueDepth | ScsiCacheType | ScsiMaxRetries
            | ScsiEhDeadline | IscsiRecoveryTmo | FcFastIoFailTmo | FcDevLossTmo => Layer::Scsi,
            _ => Layer::Top,
        }
    }

    pub(crate) fn domain(self) -> Domain {
        use Knob::*;
        let int = |min, max| Domain::Int { min, max };
        match self {
            Scheduler => Domain::Scheduler,
            // BLKDEV_MIN_RQ .. MAX_SCHED_RQ (block/blk-mq.h); with `none` the tag depth caps it.
            NrRequests => int(4, 2048),
            ReadAheadKb | BdiReadAheadKb => int(0, 1 << 20),
            // one page .. the largest max_hw_sectors_kb a driver advertises.
            MaxSectorsKb => int(4, U32_MAX),
            RqAffinity | Nomerges => int(0, 2),
            AddRandom | BdiStrictLimit => int(0, 1),
            // queue/io_timeout is a u32 in ms; 0 is EINVAL (block/blk-sysfs.c).
            IoTimeoutMs => int(1, U32_MAX),
            WriteCache => Domain::Choice(WRITE_CACHE_VALUES),
            // sd stores timeout * HZ in an unsigned int of jiffies.
            ScsiTimeout | ScsiEhTimeout => int(1, U32_MAX / 1000),
            ScsiQueueDepth => int(1, 65535),
            ScsiCacheType => Domain::Choice(CACHE_TYPE_VALUES),
            // -1 (retry for as long as the command may take) .. SD_MAX_RETRIES (drivers/scsi/sd.c
            // max_retries_store); Linux 6.1+.
            ScsiMaxRetries => Domain::IntOrUnlimited { min: 0, max: 5 },
            // Seconds the error handler may spend before resetting the host, or off
            // (scsi_sysfs.c store_shost_eh_deadline: deadline * HZ must fit an unsigned int).
            ScsiEhDeadline => Domain::IntOrUnlimited {
                min: 0,
                max: U32_MAX / 1000,
            },
            // Seconds a failed session may take to come back before every queued I/O fails;
            // off (-1) queues forever (scsi_transport_iscsi.c store_priv_session_recovery_tmo).
            IscsiRecoveryTmo => Domain::IntOrUnlimited {
                min: 1,
                max: INT_MAX,
            },
            // fc_remote_port attributes (scsi_transport_fc.c): fast_io_fail_tmo must stay below
            // dev_loss_tmo; off disables it.
            FcFastIoFailTmo => Domain::IntOrUnlimited {
                min: 0,
                max: INT_MAX,
            },
            FcDevLossTmo => int(1, U32_MAX),
            BdiMinRatio | BdiMaxRatio => int(0, 100),
            BdiMaxBytes => int(1, u64::MAX >> 1),
            // 0..200 since Linux 5.8 (mm/vmscan.c).
            Swappiness => int(0, 200),
            DirtyRatio | DirtyBackgroundRatio => int(0, 100),
            // dirty_bytes_min: two pages (mm/page-writeback.c).
            DirtyBytes | DirtyBackgroundBytes => int(8192, u64::MAX >> 1),
            DirtyExpireCentisecs | DirtyWritebackCentisecs => int(0, INT_MAX),
            // 0 turns the detector off; the kernel caps it at LONG_MAX / HZ (kernel/hung_task.c,
            // hung_task_timeout_max), which is at least this with HZ at most 1000.
            HungTaskTimeoutSecs => int(0, i64::MAX as u64 / 1000),
            // How many reports are left this boot (10 at boot); -1 never runs out
            // (proc_dointvec_minmax with SYSCTL_NEG_ONE as the floor).
            HungTaskWarnings => Domain::IntOrUnlimited {
                min: 0,
                max: INT_MAX,
            },
            // nvme_core's io_timeout (uint, seconds) and max_retries (byte): read when a
            // namespace's queue is made, so they reach only namespaces created afterwards.
            NvmeCoreIoTimeout => int(1, U32_MAX),
            NvmeCoreMaxRetries => int(0, 255),
        }
    }

    /// The knob of the exclusive pair this one belongs to: writing one makes the other read 0.
    pub(crate) fn exclusive_with(self) -> Option<Knob> {
        use Knob::*;
        match self {
            DirtyRatio => Some(DirtyBytes),
            DirtyBytes => Some(DirtyRatio),
            DirtyBackgroundRatio => Some(DirtyBackgroundBytes),
            DirtyBackgroundBytes => Some(DirtyBackgroundRatio),
            BdiMaxRatio => Some(BdiMaxBytes),
            BdiMaxBytes => Some(BdiMaxRatio),
            _ => None,
        }
    }

    /// The attribute's path relative to the object's directory (`sys/block/sda/`,
    /// `sys/class/bdi/0:53/`, `proc/sys/vm/`). SCSI cache_type is handled by the caller since
    /// it sits under the device's H:C:T:L.
    pub(crate) fn attr(self) -> &'static str {
        use Knob::*;
        match self {
            Scheduler => "queue/scheduler",
            NrRequests => "queue/nr_requests",
            ReadAheadKb => "queue/read_ahead_kb",
            MaxSectorsKb => "queue/max_sectors_kb",
            RqAffinity => "queue/rq_affinity",
            Nomerges => "queue/nomerges",
            AddRandom => "queue/add_random",
            IoTimeoutMs => "queue/io_timeout",
            WriteCache => "queue/write_cache",
            ScsiTimeout => "device/timeout",
            ScsiEhTimeout => "device/eh_timeout",
            ScsiQueueDepth => "device/queue_depth",
            ScsiCacheType => "cache_type",
            ScsiMaxRetries => "max_retries",
            ScsiEhDeadline => "eh_deadline",
            IscsiRecoveryTmo => "recovery_tmo",
            FcFastIoFailTmo => "fast_io_fail_tmo",
            FcDevLossTmo => "dev_loss_tmo",
            BdiReadAheadKb => "read_ahead_kb",
            BdiMinRatio => "min_ratio",
            BdiMaxRatio => "max_ratio",
            BdiMaxBytes => "max_bytes",
            BdiStrictLimit => "strict_limit",
            Swappiness => "swappiness",
            DirtyRatio => "dirty_ratio",
            DirtyBytes => "dirty_bytes",
            DirtyBackgroundRatio => "dirty_background_ratio",
            DirtyBackgroundBytes => "dirty_background_bytes",
            DirtyExpireCentisecs => "dirty_expire_centisecs",
            DirtyWritebackCentisecs => "dirty_writeback_centisecs",
            HungTaskTimeoutSecs => "hung_task_timeout_secs",
            HungTaskWarnings => "hung_task_warnings",
            NvmeCoreIoTimeout => "io_timeout",
            NvmeCoreMaxRetries => "max_retries",
        }
    }

    /// Where a machine-wide knob lives, relative to the root.
    pub(crate) fn machine_dir(self) -> &'static str {
        match self {
            Knob::NvmeCoreIoTimeout | Knob::NvmeCoreMaxRetries => "sys/module/nvme_core/parameters",
            _ if self.scope() == Scope::Kernel => "proc/sys/kernel",
            _ => "proc/sys/vm",
        }
    }

    /// How "no limit" is written to this knob and how the kernel reads it back: -1 for most,
    /// `off` for the SCSI error-handler deadline and the FC and iSCSI timers (which read back
    /// as `off` or -1).
    pub(crate) fn unlimited(self) -> Option<(&'static str, &'static [&'static str])> {
        match self {
            Knob::HungTaskWarnings | Knob::ScsiMaxRetries => Some(("-1", &["-1"])),
            Knob::ScsiEhDeadline | Knob::FcFastIoFailTmo => Some(("off", &["off", "-1"])),
            Knob::IscsiRecoveryTmo => Some(("off", &["off", "-1"])),
            _ => None,
        }
    }

    /// Keys accepted in a `[vm]` table, a `[kernel]` table, a `[[disk]]` rule and a
    /// `[[mount]]` rule.
    pub(crate) fn for_vm() -> impl Iterator<Item = Knob> {
        Knob::ALL.into_iter().filter(|k| k.scope() == Scope::Vm)
    }

    pub(crate) fn for_kernel() -> impl Iterator<Item = Knob> {
        Knob::ALL.into_iter().filter(|k| k.scope() == Scope::Kernel)
    }

    pub(crate) fn for_disk() -> impl Iterator<Item = Knob> {
        Knob::ALL.into_iter().filter(|k| {
            k.scope() == Scope::Disk || (k.scope() == Scope::Bdi && *k != Knob::BdiReadAheadKb)
        })
    }

    pub(crate) fn for_mount() -> impl Iterator<Item = Knob> {
        Knob::ALL.into_iter().filter(|k| k.scope() == Scope::Bdi)
    }

    /// A change to this knob can lose data on power failure and needs `accept_risk`.
    pub(crate) fn can_lose_data(self) -> bool {
        matches!(self, Knob::WriteCache | Knob::ScsiCacheType)
    }

    /// Whether a value read back matches the desired one. `bdi max_bytes` is stored as a ratio
    /// of a dirty limit that moves with free memory, so it matches within 1%; `io_timeout`
    /// within a clock tick.
    pub(crate) fn matches(self, actual: &str, desired: &str) -> bool {
        let knob = self;
        let a = knob.normalize(actual);
        let d = knob.normalize(desired);
        if a == d {
            return true;
        }
        // io_timeout is stored in jiffies: it reads back rounded to the tick (4 ms at HZ=250,
        // 10 ms at HZ=100), and the never-time-out value 4294967295 reads 4294967288.
        if knob == Knob::IoTimeoutMs {
            if let (Ok(a), Ok(d)) = (a.parse::<u64>(), d.parse::<u64>()) {
                return a.abs_diff(d) <= 10;
            }
        }
        if knob == Knob::BdiMaxBytes {
            if let (Ok(a), Ok(d)) = (a.parse::<f64>(), d.parse::<f64>()) {
                return (a - d).abs() <= d * 0.01;
            }
        }
        false
    }

    /// Normalises a value read from the kernel, or given in a profile, for comparison.
    pub(crate) fn normalize(self, value: &str) -> String {
        let v = value.trim();
        if let Some((write, reads)) = self.unlimited() {
            if v == write || reads.contains(&v) {
                return write.to_string();
            }
        }
        match self {
            Knob::Scheduler => active_scheduler(v).unwrap_or(v).to_string(),
            Knob::ScsiCacheType => v.strip_prefix("temporary ").unwrap_or(v).to_string(),
            _ => match v.parse::<u64>() {
                Ok(n) => n.to_string(),
                Err(_) => v.to_string(),
            },
        }
    }
}

/// `none [mq-deadline] kyber bfq` -> `mq-deadline`; a single name without brackets (no
/// choice, as on bio-based devices) is that name.
pub(crate) fn active_scheduler(text: &str) -> Option<&str> {
    if let Some(start) = text.find('[') {
        let rest = &text[start + 1..];
        return rest.find(']').map(|end| &rest[..end]);
    }
    let mut names = text.split_whitespace();
    match (names.next(), names.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// Every elevator the kernel offers for a queue, without the brackets.
pub(crate) fn available_schedulers(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|n| n.trim_matches(['[', ']']).to_string())
        .collect()
}

/// The legacy single-queue names profiles may still use: on blk-mq `noop` is `none` (writing
/// `noop` is EINVAL on 6.18) and `deadline` is `mq-deadline`.
pub(crate) fn blk_mq_name(name: &str) -> &str {
    match name {
        "noop" => "none",
        "deadline" => "mq-deadline",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_parsing() {
        assert_eq!(
            active_scheduler("none [mq-deadline] kyber bfq"),
            Some("mq-deadline")
        );
        assert_eq!(active_scheduler("[none] mq-deadline"), Some("none"));
        assert_eq!(active_scheduler("none"), Some("none"));
        assert_eq!(active_scheduler("none mq-deadline"), None);
        assert_eq!(
            available_schedulers("none [mq-deadline] kyber bfq"),
            vec!["none", "mq-deadline", "kyber", "bfq"]
        );
        assert_eq!(blk_mq_name("noop"), "none");
    }

    #[test]
    fn keys_are_unique_per_scope() {
        for set in [
            Knob::for_vm().collect::<Vec<_>>(),
            Knob::for_kernel().collect(),
            Knob::for_disk().collect(),
            Knob::for_mount().collect(),
        ] {
            let mut keys: Vec<_> = set.iter().map(|k| k.key()).collect();
            let n = keys.len();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), n);
        }
    }

    #[test]
    fn normalize_compares_like_the_kernel_reads() {
        assert_eq!(Knob::NrRequests.normalize("0128\n"), "128");
        assert_eq!(
            Knob::ScsiCacheType.normalize("temporary write back"),
            "write back"
        );
        assert_eq!(
            Knob::Scheduler.normalize("none [mq-deadline] bfq"),
            "mq-deadline"
        );
    }
}
