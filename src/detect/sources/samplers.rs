//! Sources of storage trouble that are not log lines, sampled on a timer:
//! - /proc/diskstats: a **stall detector** (requests in flight, no completions, for N seconds:
//!   inside VMs a hung backend prints nothing; see kernel-storage-signals.md) and per-device
//!   latency per interval, as `iostat -x` computes await;
//! - the mount table: filesystems flagged `emergency_ro` or `shutdown` (Linux 6.15+), or turned
//!   `ro` since tunerd started (older kernels). Mount flags alone miss failures on 6.12-6.14 and
//!   XFS: the kernel log is the primary source, this is the condition that keeps an incident
//!   open until the filesystem is back to rw or unmounted;
//! - /sys/fs/ext4/DEV/errors_count: errors recorded in the superblock, also from before boot;
//! - /proc/meminfo and /proc/vmstat: dirty + writeback memory against the dirty threshold;
//! - /sys/block/mdN/md/ and /proc/mdstat: degraded md arrays;
//! - /proc/spl/kstat/zfs/<pool>/state: suspended ZFS pools.
//!
//! Parsers and detectors are pure; [`Sampler`] reads through [`Root`].

use std::collections::{BTreeMap, BTreeSet};

use crate::detect::sources::frozen::FrozenScan;
use crate::detect::types::{Kind, Observation, Severity};
use crate::host::inventory::parse_mountinfo;
use crate::host::sys::Root;

/// The counters of one line of /proc/diskstats that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DiskCounters {
    pub reads: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub write_ms: u64,
    pub in_flight: u64,
    pub io_ticks_ms: u64,
}

impl DiskCounters {
    fn completions(&self) -> u64 {
        self.reads + self.writes
    }
}

/// `/proc/diskstats`: `MAJ MIN NAME reads merged sectors read_ms writes merged sectors
/// write_ms in_flight io_ticks weighted ...` (Documentation/admin-guide/iostats.rst).
pub(crate) fn parse_diskstats(text: &str) -> BTreeMap<String, DiskCounters> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        out.insert(
            f[2].to_string(),
            DiskCounters {
                reads: n(3),
                read_ms: n(6),
                writes: n(7),
                write_ms: n(10),
                in_flight: n(11),
                io_ticks_ms: n(12),
            },
        );
    }
    out
}

/// What a detector found on one sample: a condition that holds (open or keep open) or
/// cleared (end the incident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub kind: Kind,
    pub device: String,
    pub holds: bool,
    pub message: String,
}

#[derive(Debug, Clone)]
pub(crate) struct StallConfig {
    /// In flight with no completion for this long is a stall.
    pub stall_secs: u64,
    /// Average time per completed I/O over one interval above this is high latency.
    pub latency_ms: u64,
}

impl Default for StallConfig {
    fn default() -> Self {
        StallConfig {
            stall_secs: 10,
            latency_ms: 2000,
        }
    }
}

/// Stall and latency detection over successive diskstats samples.
#[derive(Debug, Default)]
pub(crate) struct StallDetector {
    cfg: StallConfig,
    prev: BTreeMap<String, (u64, DiskCounters)>,
    /// Device -> since when (ms) nothing completed while requests were in flight.
    stuck_since: BTreeMap<String, u64>,
    stalled: BTreeSet<String>,
    slow: BTreeSet<String>,
}

impl StallDetector {
    pub(crate) fn new(cfg: StallConfig) -> StallDetector {
        StallDetector {
            cfg,
            ..Default::default()
        }
    }

    /// One sample at `now_ms` of the devices to watch.
    pub(crate) fn sample(
        &mut self,
        now_ms: u64,
        stats: &BTreeMap<String, DiskCounters>,
        watch: &[String],
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        for dev in watch {
            let Some(cur) = stats.get(dev) else { continue };
            let Some((then, prev)) = self.prev.insert(dev.clone(), (now_ms, *cur)) else {
                continue;
            };
            let done = cur.completions().saturating_sub(prev.completions());
            // Stall: requests in flight and nothing completed since the last sample.
            if cur.in_flight > 0 && done == 0 {
                let since = *self.stuck_since.entry(dev.clone()).or_insert(then);
                let stuck = now_ms.saturating_sub(since);
                if stuck >= self.cfg.stall_secs * 1000 && self.stalled.insert(dev.clone()) {
                    out.push(Finding {
                        kind: Kind::IoStall,
                        device: dev.clone(),
                        holds: true,
                        message: format!(
                            "{dev}: {} requests in flight, no completion for {:.1} s (busy {} ms of the last {} ms)",
                            cur.in_flight,
                            stuck as f64 / 1000.0,
                            cur.io_ticks_ms.saturating_sub(prev.io_ticks_ms),
                            now_ms.saturating_sub(then)
                        ),
                    });
                }
            } else {
                self.stuck_since.remove(dev);
                if self.stalled.remove(dev) {
                    out.push(Finding {
                        kind: Kind::IoStall,
                        device: dev.clone(),
                        holds: false,
                        message: format!(
                            "{dev}: I/O completes again ({done} in the last interval)"
                        ),
                    });
                }
            }
            // Latency: time spent by completed I/Os over their number (iostat's await).
            let ms = (cur.read_ms + cur.write_ms).saturating_sub(prev.read_ms + prev.write_ms);
            if let Some(avg) = ms.checked_div(done) {
                if avg >= self.cfg.latency_ms {
                    if self.slow.insert(dev.clone()) {
                        out.push(Finding {
                            kind: Kind::IoLatencyHigh,
                            device: dev.clone(),
                            holds: true,
                            message: format!(
                                "{dev}: average {avg} ms per I/O over {done} I/Os (threshold {} ms)",
                                self.cfg.latency_ms
                            ),
                        });
                    }
                } else if self.slow.remove(dev) {
                    out.push(Finding {
                        kind: Kind::IoLatencyHigh,
                        device: dev.clone(),
                        holds: false,
                        message: format!("{dev}: average {avg} ms per I/O"),
                    });
                }
            }
        }
        out
    }
}

/// Mounts whose superblock says the filesystem failed: `emergency_ro` or `shutdown` (6.15+),
/// or `ro` when it was `rw` at `baseline`. Returns (mount point, source, fstype, flag).
pub(crate) fn failed_mounts(
    mountinfo: &str,
    rw_at_start: &BTreeSet<String>,
) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        // The super options are the last field after " - FSTYPE SOURCE".
        let Some(super_opts) = line.rsplit(' ').next() else {
            continue;
        };
        let parsed = parse_mountinfo(line);
        let Some((_, mount_point, fstype, source, mount_opts, _)) = parsed.into_iter().next()
        else {
            continue;
        };
        let flags: Vec<&str> = super_opts.split(',').chain(mount_opts.split(',')).collect();
        let flag = if flags.contains(&"shutdown") {
            Some("shutdown")
        } else if flags.contains(&"emergency_ro") {
            Some("emergency_ro")
        } else if flags.contains(&"ro") && rw_at_start.contains(&mount_point) {
            Some("ro")
        } else {
            None
        };
        if let Some(f) = flag {
            out.push((mount_point, source, fstype, f.to_string()));
        }
    }
    out
}

/// Mount points that are read-write now (the baseline for "turned read-only").
pub(crate) fn rw_mounts(mountinfo: &str) -> BTreeSet<String> {
    parse_mountinfo(mountinfo)
        .into_iter()
        .filter(|(_, _, _, _, opts, _)| opts.split(',').any(|o| o == "rw"))
        .map(|(_, mp, _, _, _, _)| mp)
        .collect()
}

/// Dirty + writeback bytes and the dirty threshold in bytes, from /proc/meminfo and
/// /proc/vmstat.
pub(crate) fn dirty_state(meminfo: &str, vmstat: &str, page_size: u64) -> Option<(u64, u64)> {
    let kb = |key: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let dirty = kb("Dirty:")? + kb("Writeback:")? + kb("NFS_Unstable:").unwrap_or(0);
    let threshold = vmstat
        .lines()
        .find(|l| l.starts_with("nr_dirty_threshold "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())?;
    Some((dirty * 1024, threshold * page_size))
}

/// Samples everything above on each tick; remembers what it already reported.
pub(crate) struct Sampler {
    pub stall: StallDetector,
    rw_at_start: BTreeSet<String>,
    /// Failed mount point -> its source device.
    failed: BTreeMap<String, String>,
    ext4_errors: BTreeMap<String, u64>,
    btrfs_errors: BTreeMap<String, u64>,
    /// md arrays degraded at the last sample, and how many devices each was missing.
    md_degraded: BTreeMap<String, u64>,
    /// ZFS pools suspended at the last sample.
    zfs_suspended: BTreeSet<String>,
    dirty_pct: u64,
    dirty_high: bool,
    page_size: u64,
    /// Writers blocked by a frozen filesystem ([`FrozenScan`]).
    pub frozen: FrozenScan,
}

impl Sampler {
    pub(crate) fn new(root: &Root, stall: StallConfig, dirty_pct: u64) -> Sampler {
        let rw_at_start = root
            .read("proc/self/mountinfo")
            .map(|t| rw_mounts(&t))
            .unwrap_or_default();
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |v| v as u64);
        Sampler {
            stall: StallDetector::new(stall),
            rw_at_start,
            failed: BTreeMap::new(),
            ext4_errors: BTreeMap::new(),
            btrfs_errors: BTreeMap::new(),
            md_degraded: BTreeMap::new(),
            zfs_suspended: BTreeSet::new(),
            dirty_pct,
            dirty_high: false,
            page_size,
            frozen: FrozenScan::new(crate::detect::FROZEN_SECS),
        }
    }

    /// Devices (as mounted: `loop2`, `sda1`) with a mount flagged failed now.
    pub(crate) fn failed_devices(&self) -> impl Iterator<Item = &str> {
        self.failed.values().map(String::as_str)
    }

    /// One tick: diskstats for `disks`, mount flags, ext4 error counters, dirty memory.
    pub(crate) fn sample(&mut self, root: &Root, now_ms: u64, disks: &[String]) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Ok(text) = root.read("proc/diskstats") {
            out.extend(self.stall.sample(now_ms, &parse_diskstats(&text), disks));
        }
        if let Ok(text) = root.read("proc/self/mountinfo") {
            let failed = failed_mounts(&text, &self.rw_at_start);
            let now: BTreeSet<String> = failed.iter().map(|f| f.0.clone()).collect();
            for (mp, source, fstype, flag) in &failed {
                if self
                    .failed
                    .insert(mp.clone(), source.trim_start_matches("/dev/").to_string())
                    .is_none()
                {
                    out.push(Finding {
                        kind: Kind::FilesystemReadOnly,
                        device: source.trim_start_matches("/dev/").to_string(),
                        holds: true,
                        message: format!("{fstype} on {source} at {mp} is {flag}"),
                    });
                }
            }
            let cleared: Vec<String> = self
                .failed
                .keys()
                .filter(|mp| !now.contains(*mp))
                .cloned()
                .collect();
            for mp in cleared {
                let device = self.failed.remove(&mp).unwrap_or_default();
                out.push(Finding {
                    kind: Kind::FilesystemReadOnly,
                    device,
                    holds: false,
                    message: format!("{mp} is read-write again or unmounted"),
                });
            }
            // Mounted since start and rw: part of the baseline from now on.
            for mp in rw_mounts(&text) {
                self.rw_at_start.insert(mp);
            }
        }
        for dev in root.list("sys/fs/ext4").unwrap_or_default() {
            let count = root
                .read(&format!("sys/fs/ext4/{dev}/errors_count"))
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let seen = self.ext4_errors.insert(dev.clone(), count).unwrap_or(0);
            if count > seen {
                let func = root
                    .read_lossy(&format!("sys/fs/ext4/{dev}/last_error_func"))
                    .unwrap_or_default();
                out.push(Finding {
                    kind: Kind::FilesystemErrorsRecorded,
                    device: dev.clone(),
                    holds: true,
                    message: format!(
                        "ext4 on {dev}: errors_count {count} (was {seen}), last in {func}"
                    ),
                });
            }
        }
        // btrfs keeps per-device error counters (write, read, flush, corruption, generation)
        // in the filesystem, also from before this mount.
        for fsid in root.list("sys/fs/btrfs").unwrap_or_default() {
            let base = format!("sys/fs/btrfs/{fsid}");
            let mut total = 0u64;
            let mut detail = Vec::new();
            for id in root.list(&format!("{base}/devinfo")).unwrap_or_default() {
                let text = root
                    .read_lossy(&format!("{base}/devinfo/{id}/error_stats"))
                    .unwrap_or_default();
                for line in text.lines() {
                    if let Some((name, n)) = line.split_once(' ') {
                        let n = n.trim().parse::<u64>().unwrap_or(0);
                        total += n;
                        if n > 0 {
                            detail.push(format!("{name} {n}"));
                        }
                    }
                }
            }
            let seen = self.btrfs_errors.insert(fsid.clone(), total).unwrap_or(0);
            if total > seen {
                let devices = root.list(&format!("{base}/devices")).unwrap_or_default();
                out.push(Finding {
                    kind: Kind::BtrfsDeviceErrors,
                    device: devices.first().cloned().unwrap_or_default(),
                    holds: true,
                    message: format!(
                        "btrfs {fsid} on {}: device errors {} (was {seen} errors)",
                        devices.join(","),
                        detail.join(", ")
                    ),
                });
            }
        }
        out.extend(self.md_arrays(root));
        out.extend(self.zfs_pools(root));
        if self.frozen.due(now_ms) {
            if let Ok(mountinfo) = root.read("proc/self/mountinfo") {
                out.extend(self.frozen.sample(root, now_ms, &mountinfo));
            }
        }
        if let (Ok(meminfo), Ok(vmstat)) = (root.read("proc/meminfo"), root.read("proc/vmstat")) {
            if let Some((dirty, threshold)) = dirty_state(&meminfo, &vmstat, self.page_size) {
                let high = threshold > 0 && dirty * 100 >= threshold * self.dirty_pct;
                if high != self.dirty_high {
                    self.dirty_high = high;
                    out.push(Finding {
                        kind: Kind::DirtyThrottling,
                        device: String::new(),
                        holds: high,
                        message: format!(
                            "dirty+writeback {} MiB of a {} MiB dirty threshold ({}%)",
                            dirty >> 20,
                            threshold >> 20,
                            dirty * 100 / threshold.max(1)
                        ),
                    });
                }
            }
        }
        out
    }
}

impl Sampler {
    /// md arrays that lost a member: `md/degraded` (drivers/md/md.c: the number of missing
    /// devices of a redundant array) above 0 opens an incident that lasts until the array is
    /// whole again (a re-add and its resync). Which members failed is in `md/dev-*/state`
    /// (`faulty`), which are rebuilding in `md/sync_action`. /proc/mdstat ([`super::mdstat`])
    /// adds the member map and the rebuild's progress to the message, and gives the missing
    /// count of an array whose `md/degraded` cannot be read. An array is reported again when
    /// its missing count changes while degraded (a rebuild that left it short of another
    /// member: the kernel's `recovery done` line may have ended the incident).
    fn md_arrays(&mut self, root: &Root) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut now = BTreeMap::new();
        let mdstat = root
            .read("proc/mdstat")
            .map(|t| super::mdstat::parse_mdstat(&t))
            .unwrap_or_default();
        let mut names: BTreeSet<String> = root
            .list("sys/block")
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.starts_with("md"))
            .collect();
        names.extend(mdstat.iter().map(|a| a.name.clone()));
        for name in names {
            let md = format!("sys/block/{name}/md");
            let stat = mdstat.iter().find(|a| a.name == name);
            let sysfs = root
                .read(&format!("{md}/degraded"))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            let from_mdstat = sysfs.is_none();
            let missing = sysfs
                .or_else(|| stat.and_then(|a| a.missing()))
                .unwrap_or(0);
            if missing == 0 {
                continue;
            }
            now.insert(name.clone(), missing);
            if self.md_degraded.get(&name) == Some(&missing) {
                continue;
            }
            let attr = |a: &str| {
                root.read_lossy(&format!("{md}/{a}"))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            let mut faulty: Vec<String> = root
                .list(&md)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| {
                    let member = d.strip_prefix("dev-")?;
                    attr(&format!("{d}/state"))
                        .contains("faulty")
                        .then(|| member.to_string())
                })
                .collect();
            if faulty.is_empty() {
                faulty = stat.map_or_else(Vec::new, |a| {
                    a.faulty().into_iter().map(str::to_string).collect()
                });
            }
            let or_stat = |v: String, f: &dyn Fn(&super::mdstat::MdArray) -> Option<String>| {
                if v.is_empty() {
                    stat.and_then(f).unwrap_or_default()
                } else {
                    v
                }
            };
            let level = or_stat(attr("level"), &|a| a.level.clone());
            let disks = or_stat(attr("raid_disks"), &|a| a.raid_disks.map(|n| n.to_string()));
            let mut message = format!(
                "md {name} ({level}) degraded: {missing} of {disks} devices missing{}",
                if faulty.is_empty() {
                    String::new()
                } else {
                    format!(", faulty: {}", faulty.join(", "))
                },
            );
            if !from_mdstat {
                message.push_str(&format!("; array_state {}", attr("array_state")));
            }
            if let Some(a) = stat {
                if let Some(map) = &a.map {
                    message.push_str(&format!("; mdstat [{map}]"));
                }
                if let Some(p) = &a.progress {
                    message.push_str(&format!(", {p}"));
                }
                if from_mdstat {
                    message.push_str(" (from /proc/mdstat: md/degraded unreadable)");
                }
            }
            out.push(Finding {
                kind: Kind::MdDegraded,
                device: name.clone(),
                holds: true,
                message,
            });
        }
        for name in self.md_degraded.keys().filter(|n| !now.contains_key(*n)) {
            out.push(Finding {
                kind: Kind::MdDegraded,
                device: name.clone(),
                holds: false,
                message: format!("md {name} is whole again (or stopped)"),
            });
        }
        self.md_degraded = now;
        out
    }
}

impl Sampler {
    /// ZFS pools by `/proc/spl/kstat/zfs/<pool>/state` (OpenZFS 0.8+: `spa_state_to_name`,
    /// `ONLINE`, `DEGRADED`, `SUSPENDED`, ...; read without a lock, unlike `zpool status`,
    /// which can block for seconds on a sick pool). `SUSPENDED` holds the pool's
    /// `zfs_pool_suspended` incident open (the kernel's `... has been suspended.` line opens it
    /// too, under the same key) until the pool runs again or is exported; other states are
    /// zed's to report, per vdev.
    fn zfs_pools(&mut self, root: &Root) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut now = BTreeSet::new();
        for pool in root.list("proc/spl/kstat/zfs").unwrap_or_default() {
            let Ok(state) = root.read(&format!("proc/spl/kstat/zfs/{pool}/state")) else {
                continue;
            };
            if state.trim() != "SUSPENDED" {
                continue;
            }
            if !self.zfs_suspended.contains(&pool) {
                out.push(Finding {
                    kind: Kind::ZfsPoolSuspended,
                    device: pool.clone(),
                    holds: true,
                    message: format!(
                        "ZFS pool {pool} is SUSPENDED (/proc/spl/kstat/zfs/{pool}/state)"
                    ),
                });
            }
            now.insert(pool);
        }
        for pool in self.zfs_suspended.difference(&now) {
            out.push(Finding {
                kind: Kind::ZfsPoolSuspended,
                device: pool.clone(),
                holds: false,
                message: format!("ZFS pool {pool} is no longer suspended (or was exported)"),
            });
        }
        self.zfs_suspended = now;
        out
    }
}

impl Finding {
    /// The observation that opens an incident for this finding.
    pub(crate) fn observation(&self, now_us: u64) -> Observation {
        let severity = match self.kind {
            Kind::FilesystemReadOnly | Kind::IoStall => Severity::Critical,
            // One more failure and the array (and every filesystem on it) fails.
            Kind::MdDegraded | Kind::FsFrozen => Severity::Critical,
            // All I/O to the pool blocks.
            Kind::ZfsPoolSuspended => Severity::Critical,
            _ => Severity::Warning,
        };
        Observation {
            kind: self.kind,
            severity,
            device: (!self.device.is_empty()).then(|| self.device.clone()),
            resolves: false,
            message: self.message.clone(),
            at_us: Some(now_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, reads: u64, writes: u64, in_flight: u64, ticks: u64, ms: u64) -> String {
        format!("   7       2 {name} {reads} 0 0 {ms} {writes} 0 0 0 {in_flight} {ticks} 0 0 0 0 0 0 0\n")
    }

    #[test]
    fn a_stall_opens_after_the_threshold_and_clears_when_io_completes() {
        let mut d = StallDetector::new(StallConfig {
            stall_secs: 3,
            latency_ms: 1000,
        });
        let watch = vec!["loop2".to_string()];
        let s = |r, f, t| parse_diskstats(&line("loop2", r, 0, f, t, 0));
        assert!(d.sample(0, &s(10, 0, 0), &watch).is_empty());
        assert!(d.sample(1000, &s(10, 4, 1000), &watch).is_empty());
        assert!(d.sample(2000, &s(10, 4, 2000), &watch).is_empty());
        let f = d.sample(4000, &s(10, 4, 4000), &watch);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].holds && f[0].kind == Kind::IoStall);
        assert!(
            d.sample(5000, &s(10, 4, 5000), &watch).is_empty(),
            "reported once"
        );
        let f = d.sample(6000, &s(14, 0, 5500), &watch);
        assert_eq!(f.len(), 1);
        assert!(!f[0].holds);
    }

    /// md's sysfs as drivers/md/md.c lays it out for a RAID1 that lost a member.
    #[test]
    fn a_degraded_md_array_holds_until_it_is_whole() {
        let dir = std::env::temp_dir().join(format!("tunerd-md-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let md = dir.join("sys/block/md0/md");
        for (rel, v) in [
            ("level", "raid1\n"),
            ("raid_disks", "2\n"),
            ("degraded", "0\n"),
            ("array_state", "clean\n"),
            ("dev-vdb/state", "in_sync\n"),
            ("dev-vdc/state", "in_sync\n"),
        ] {
            let p = md.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, v).expect("write");
        }
        let root = Root::new(&dir);
        let mut s = Sampler::new(&root, StallConfig::default(), 95);
        assert!(s.md_arrays(&root).is_empty(), "whole");
        std::fs::write(md.join("degraded"), "1\n").expect("degrade");
        std::fs::write(md.join("dev-vdc/state"), "faulty\n").expect("faulty");
        let f = s.md_arrays(&root);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].holds && f[0].kind == Kind::MdDegraded && f[0].device == "md0");
        assert!(
            f[0].message.contains("1 of 2 devices missing") && f[0].message.contains("faulty: vdc"),
            "{}",
            f[0].message
        );
        assert!(
            s.md_arrays(&root).is_empty(),
            "reported once while it holds"
        );
        std::fs::write(md.join("degraded"), "0\n").expect("resynced");
        let f = s.md_arrays(&root);
        assert_eq!(f.len(), 1);
        assert!(!f[0].holds, "{f:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// /proc/mdstat: its map and rebuild progress in the message; the missing count of an
    /// array whose `md/degraded` cannot be read; a changed count reported again.
    #[test]
    fn mdstat_adds_the_map_and_stands_in_for_sysfs() {
        let dir = std::env::temp_dir().join(format!("tunerd-mdstat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proc")).expect("mkdir");
        std::fs::create_dir_all(dir.join("sys/block")).expect("mkdir");
        // Real text: https://github.com/glensc/nagios-plugin-check_raid/issues/43
        let raid6 = "Personalities : [raid6] [raid5] [raid4]
md0 : active raid6 sde1[6] sdf1[7] sdb1[0] sdg1[3] sdd1[2] sdc[1]
      5860543744 blocks level 6, 4k chunk, algorithm 2 [6/4] [UUUU__]
      [===>.................]  recovery = 19.6% (288381540/1465135936) finish=1420.1min speed=13810K/sec

unused devices: <none>
";
        std::fs::write(dir.join("proc/mdstat"), raid6).expect("write");
        let root = Root::new(&dir);
        let mut s = Sampler::new(&root, StallConfig::default(), 95);
        let f = s.md_arrays(&root);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].holds && f[0].device == "md0", "{f:?}");
        for part in [
            "(raid6) degraded: 2 of 6 devices missing",
            "mdstat [UUUU__], recovery 19.6% finish=1420.1min",
            "from /proc/mdstat",
        ] {
            assert!(f[0].message.contains(part), "{part}: {}", f[0].message);
        }
        assert!(s.md_arrays(&root).is_empty(), "reported once");
        // One member rebuilt, one still missing: reported again.
        std::fs::write(
            dir.join("proc/mdstat"),
            raid6.replace("[6/4] [UUUU__]", "[6/5] [UUUUU_]"),
        )
        .expect("write");
        let f = s.md_arrays(&root);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].holds && f[0].message.contains("1 of 6 devices missing"),
            "{f:?}"
        );
        // sysfs, when readable, decides: whole there, so whole.
        let md = dir.join("sys/block/md0/md");
        std::fs::create_dir_all(&md).expect("mkdir");
        std::fs::write(md.join("degraded"), "0\n").expect("write");
        let f = s.md_arrays(&root);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(!f[0].holds);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// OpenZFS's pool state kstat as spa_stats.c writes it (`%s\n`), next to the other
    /// entries of /proc/spl/kstat/zfs (files such as `arcstats`).
    #[test]
    fn a_suspended_zfs_pool_holds_until_it_runs_again() {
        let dir = std::env::temp_dir().join(format!("tunerd-zfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let kstat = dir.join("proc/spl/kstat/zfs");
        std::fs::create_dir_all(kstat.join("tank")).expect("mkdir");
        std::fs::create_dir_all(kstat.join("backup")).expect("mkdir");
        std::fs::write(kstat.join("arcstats"), "13 1 0x01 147 39984 1 2\n").expect("write");
        std::fs::write(kstat.join("tank/state"), "ONLINE\n").expect("write");
        std::fs::write(kstat.join("backup/state"), "DEGRADED\n").expect("write");
        let root = Root::new(&dir);
        let mut s = Sampler::new(&root, StallConfig::default(), 95);
        assert!(
            s.zfs_pools(&root).is_empty(),
            "ONLINE and DEGRADED are not suspended"
        );
        std::fs::write(kstat.join("tank/state"), "SUSPENDED\n").expect("write");
        let f = s.zfs_pools(&root);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].holds && f[0].kind == Kind::ZfsPoolSuspended && f[0].device == "tank");
        assert_eq!(f[0].observation(0).severity, Severity::Critical);
        assert!(s.zfs_pools(&root).is_empty(), "reported once");
        std::fs::write(kstat.join("tank/state"), "ONLINE\n").expect("write");
        let f = s.zfs_pools(&root);
        assert_eq!(f.len(), 1);
        assert!(!f[0].holds, "{f:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn latency_is_await_per_interval() {
        let mut d = StallDetector::new(StallConfig {
            stall_secs: 10,
            latency_ms: 500,
        });
        let watch = vec!["sda".to_string()];
        d.sample(
            0,
            &parse_diskstats(&line("sda", 100, 0, 0, 0, 1000)),
            &watch,
        );
        // 10 reads took 8000 ms: 800 ms each.
        let f = d.sample(
            1000,
            &parse_diskstats(&line("sda", 110, 0, 0, 900, 9000)),
            &watch,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, Kind::IoLatencyHigh);
        let f = d.sample(
            2000,
            &parse_diskstats(&line("sda", 120, 0, 0, 950, 9100)),
            &watch,
        );
        assert!(!f[0].holds);
    }

    #[test]
    fn mount_flags_that_mean_failure() {
        let mi =
            "36 27 7:2 / /mnt/a rw,relatime - ext4 /dev/loop2 rw,emergency_ro,errors=remount-ro\n\
                  37 27 7:3 / /mnt/b ro,relatime - ext4 /dev/loop3 ro\n\
                  38 27 7:4 / /mnt/c rw,relatime - xfs /dev/loop4 rw,shutdown\n\
                  39 27 7:5 / /mnt/d ro,relatime - ext4 /dev/loop5 ro\n";
        let rw: BTreeSet<String> = ["/mnt/a", "/mnt/b", "/mnt/c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let f = failed_mounts(mi, &rw);
        let flags: Vec<(&str, &str)> = f.iter().map(|x| (x.0.as_str(), x.3.as_str())).collect();
        assert_eq!(
            flags,
            vec![
                ("/mnt/a", "emergency_ro"),
                ("/mnt/b", "ro"),
                ("/mnt/c", "shutdown")
            ]
        );
    }

    #[test]
    fn dirty_against_threshold() {
        let meminfo = "MemTotal: 100 kB\nDirty:     1000 kB\nWriteback:   24 kB\n";
        let vmstat = "nr_dirty 5\nnr_dirty_threshold 512\nnr_dirty_background_threshold 256\n";
        assert_eq!(
            dirty_state(meminfo, vmstat, 4096),
            Some((1024 * 1024, 512 * 4096))
        );
    }
}
