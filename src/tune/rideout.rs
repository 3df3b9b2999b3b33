//! How long a storage stall each mount can ride out before the guest fails its I/O, and which
//! layer gives up first: the one figure an administrator wants ("this mount survives a stall
//! of N s; the weakest layer is X"), computed from live values (or from the values a plan
//! would set) by walking each mount's stack down to the devices that queue its I/O.
//!
//! The model, layer by layer (../shared/reference/tunables.md, "The give-up chain"):
//!
//! | layer | gives up after | source |
//! |---|---|---|
//! | virtio-blk, xen-blkfront | never: no timeout handler, I/O waits for the host | drivers/block/virtio_blk.c |
//! | virtio-scsi, storvsc | never: their timeout handlers reset the command timer | virtio_scsi.c, storvsc_drv.c `*_eh_timed_out` |
//! | other SCSI (pvscsi, LSI, AHCI) | `device/timeout`, then error handling may offline the device | drivers/scsi/scsi_error.c |
//! | FC remote port | `fast_io_fail_tmo` (when on), else `dev_loss_tmo`, if shorter than the SCSI timeout | scsi_transport_fc.c |
//! | iSCSI session | `recovery_tmo` (off: never); the SCSI timer is reset while the session recovers | scsi_transport_iscsi.c, libiscsi.c `iscsi_eh_cmd_timed_out` |
//! | NVMe | the namespace's `queue/io_timeout` | drivers/nvme/host/core.c |
//! | dm-multipath | when the last path does; with `queue_if_no_path` in its table (host::dm), never, or `no_path_retry` x `polling_interval` when /etc/multipath.conf bounds it | drivers/md/dm-mpath.c, multipath.conf(5) |
//! | LVM, dm-crypt (bio-based dm) | the first device below to give up | |
//! | md RAID1/4/5/6/10 | the last member (all stall together); RAID0 and linear: the first | drivers/md |
//! | NFS `hard` | never: tasks block until the server answers | nfs(5) |
//! | NFS `soft` | `timeo` x (`retrans` + 1) over TCP (linear back-off); UDP doubles `timeo` per retry, capped at 60 s | net/sunrpc/xprt.c `xprt_calc_majortimeo` |
//!
//! "Never" is a trade-off, not a free lunch: the guest survives any stall, but tasks block in
//! D state until the storage returns, and only stall detection and hung-task reports say so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::host::inventory::{Disk, DiskKind, Inventory, Mount};
use crate::host::sys::Root;
use crate::tune::plan::{Action, Plan};

/// One layer of a mount's stack and when it gives up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LayerTime {
    /// `sdb`, `dm-0`, `/mnt/backup`.
    pub object: String,
    /// `scsi`, `iscsi`, `nvme`, `virtio-blk`, `multipath`, `md`, `nfs`, ...
    pub layer: String,
    /// Seconds before this layer fails the I/O; `null`: never (it waits).
    pub seconds: Option<u64>,
    /// What the figure comes from, in a few words.
    pub detail: String,
    /// What to change, and where, when this layer is the one that falls short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Set on a path of a multipath map or a member of a redundant md array (the map or
    /// array named): failing fast there is the design, the map's or array's figure counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundant_in: Option<String>,
}

/// How long one mount rides out a stall of everything below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RideOut {
    pub mount: String,
    pub fstype: String,
    pub source: String,
    /// Seconds a stall may last before the guest fails I/O on this mount; `null`: never.
    pub seconds: Option<u64>,
    /// The layer that gives up first (`sdb iscsi: recovery_tmo 120 s`); `null` when none does.
    pub weakest: Option<String>,
    /// What the filesystem does when a layer gives up (`errors=remount-ro`: read-only).
    pub on_give_up: String,
    /// Every layer, top first.
    pub layers: Vec<LayerTime>,
    /// What could not be read, so the figure may be longer than it looks (`dm-0: no_path_retry`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

impl RideOut {
    /// The layers that fall short of `target` seconds, when the mount as a whole does.
    pub(crate) fn short_of(&self, target: u64) -> Vec<&LayerTime> {
        match self.seconds {
            Some(s) if s < target => self
                .layers
                .iter()
                .filter(|l| l.redundant_in.is_none() && l.seconds.is_some_and(|t| t < target))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// `None` (never) is longer than any time.
fn shorter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn longer(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        _ => None,
    }
}

/// Reads attribute values (the kernel's, or the kernel's with a plan's values laid over).
type Read<'a> = &'a dyn Fn(&str) -> Option<String>;
/// Whether the multipath map of that dm name queues I/O when its last path goes (its table
/// has `queue_if_no_path`); `None` when the table cannot be read.
type Queues<'a> = &'a dyn Fn(&str) -> Option<bool>;

struct Walk<'a> {
    inv: &'a Inventory,
    read: Read<'a>,
    queues: Queues<'a>,
    layers: Vec<LayerTime>,
    unknown: Vec<String>,
    /// iscsid.conf's `node.session.timeo.replacement_timeout`, for the fix line.
    iscsid_replacement: Option<String>,
    /// The multipath map or redundant array being walked below, if any.
    redundant_in: Option<String>,
}

impl Walk<'_> {
    fn num(&self, path: &str) -> Option<i64> {
        (self.read)(path).and_then(|v| v.trim().parse::<i64>().ok())
    }

    fn push(&mut self, object: &str, layer: &str, seconds: Option<u64>, detail: String) -> usize {
        self.layers.push(LayerTime {
            object: object.to_string(),
            layer: layer.to_string(),
            seconds,
            detail,
            fix: None,
            redundant_in: self.redundant_in.clone(),
        });
        self.layers.len() - 1
    }

    fn fix(&mut self, at: usize, fix: String) {
        if let Some(l) = self.layers.get_mut(at) {
            l.fix = Some(fix);
        }
    }

    /// The time before an I/O to `name` fails when everything below it stalls.
    fn disk(&mut self, name: &str, depth: usize) -> Option<u64> {
        let Some(disk) = self.inv.disks.iter().find(|d| d.name == name) else {
            self.unknown.push(format!("{name}: not in the inventory"));
            return None;
        };
        if depth > 8 {
            self.unknown
                .push(format!("{name}: stacked too deep to follow"));
            return None;
        }
        match disk.kind {
            DiskKind::VirtioBlk | DiskKind::Xen => {
                self.push(
                    name,
                    disk.kind.as_str(),
                    None,
                    "no timeout handler: I/O waits for the host".to_string(),
                );
                None
            }
            DiskKind::VirtioScsi | DiskKind::Storvsc => {
                self.push(
                    name,
                    disk.kind.as_str(),
                    None,
                    format!(
                        "{} resets the command timer: a stalled host is waited for",
                        disk.driver
                    ),
                );
                None
            }
            DiskKind::Pvscsi | DiskKind::Scsi => self.scsi(disk),
            DiskKind::Iscsi => self.iscsi(disk),
            DiskKind::Nvme => {
                let ms = self.num(&format!("{}/queue/io_timeout", disk.sys_dir()));
                match ms {
                    Some(ms) if ms > 0 => {
                        let secs = (ms as u64).div_ceil(1000);
                        let at = self.push(
                            name,
                            "nvme",
                            Some(secs),
                            format!("queue/io_timeout {ms} ms"),
                        );
                        self.fix(
                            at,
                            format!("profile key io_timeout_ms on {name} (and nvme_core_io_timeout in [kernel] for namespaces attached later)"),
                        );
                        Some(secs)
                    }
                    _ => {
                        self.unknown
                            .push(format!("{name}: queue/io_timeout unreadable"));
                        None
                    }
                }
            }
            DiskKind::Dm if disk.dm_kind.as_deref() == Some("mpath") => {
                let at = self.push(name, "multipath", None, String::new());
                let paths = self.last_to_fail(name, &disk.slaves.clone(), depth);
                let map = disk.dm_name.clone().unwrap_or_default();
                let (t, detail) = match (self.queues)(&map) {
                    Some(true) => match self.no_path_retry() {
                        Some(NoPathRetry::Checks(n, interval)) => (
                            paths.map(|p| p + n * interval),
                            format!("queue_if_no_path: multipathd queues {n} checks x {interval} s when the last of {} paths fails", disk.slaves.len()),
                        ),
                        _ => (
                            None,
                            format!("queue_if_no_path: queues I/O while no path is left ({} paths)", disk.slaves.len()),
                        ),
                    },
                    Some(false) => (
                        paths,
                        format!("no queue_if_no_path: fails when the last of {} paths does", disk.slaves.len()),
                    ),
                    None => {
                        self.unknown
                            .push(format!("{name}: multipath table (queue_if_no_path) not read"));
                        (
                            paths,
                            format!("fails when the last of {} paths does, unless it queues (table not read)", disk.slaves.len()),
                        )
                    }
                };
                if let Some(l) = self.layers.get_mut(at) {
                    l.seconds = t;
                    l.detail = detail;
                }
                self.fix(
                    at,
                    format!("no_path_retry for {map} in /etc/multipath.conf (a number of checks, or queue)"),
                );
                t
            }
            DiskKind::Dm => {
                let at = self.push(
                    name,
                    "dm",
                    None,
                    format!(
                        "{}: the first device below to give up",
                        disk.dm_kind.as_deref().unwrap_or("dm")
                    ),
                );
                let t = self.first_to_fail(&disk.slaves.clone(), depth);
                if let Some(l) = self.layers.get_mut(at) {
                    l.seconds = t;
                }
                t
            }
            DiskKind::Md => {
                let level = (self.read)(&format!("{}/md/level", disk.sys_dir()))
                    .map(|l| l.trim().to_string())
                    .unwrap_or_default();
                let redundant =
                    ["raid1", "raid4", "raid5", "raid6", "raid10"].contains(&level.as_str());
                let at = self.push(name, "md", None, String::new());
                let members = disk.slaves.clone();
                let t = if redundant {
                    self.last_to_fail(name, &members, depth)
                } else {
                    self.first_to_fail(&members, depth)
                };
                if let Some(l) = self.layers.get_mut(at) {
                    l.seconds = t;
                    l.detail = if redundant {
                        format!("{level}: fails when its members do (a stall hits them all)")
                    } else {
                        format!("{}: the first member to give up", level_or(&level))
                    };
                }
                t
            }
            DiskKind::Loop | DiskKind::Zram | DiskKind::Ram => {
                self.push(
                    name,
                    disk.kind.as_str(),
                    None,
                    "no timeout: waits for what backs it".to_string(),
                );
                None
            }
            DiskKind::Optical | DiskKind::Other => {
                self.unknown
                    .push(format!("{name}: {} is not modelled", disk.driver));
                None
            }
        }
    }

    /// `no_path_retry` and `polling_interval` from /etc/multipath.conf (the first of each:
    /// the defaults section usually comes first); multipathd's defaults are `fail` and 5 s.
    fn no_path_retry(&self) -> Option<NoPathRetry> {
        let text = (self.read)("etc/multipath.conf")?;
        let value = |key: &str| {
            text.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(key))
                    .then(|| w.next().unwrap_or("").trim_matches('"').to_string())
            })
        };
        let interval = value("polling_interval")
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        match value("no_path_retry")?.as_str() {
            "queue" => Some(NoPathRetry::Queue),
            "fail" => Some(NoPathRetry::Checks(0, interval)),
            n => n.parse().ok().map(|n| NoPathRetry::Checks(n, interval)),
        }
    }

    /// The paths of a multipath map or the members of a redundant array: the whole fails
    /// when the last of them does. Their layers are marked as `redundant_in` `name`.
    fn last_to_fail(&mut self, name: &str, below: &[String], depth: usize) -> Option<u64> {
        let outer = self.redundant_in.replace(name.to_string());
        let mut all: Option<Option<u64>> = None;
        for b in below {
            let t = self.disk(b, depth + 1);
            all = Some(match all {
                None => t,
                Some(prev) => longer(prev, t),
            });
        }
        self.redundant_in = outer;
        all.unwrap_or(None)
    }

    fn first_to_fail(&mut self, below: &[String], depth: usize) -> Option<u64> {
        let mut t = None;
        for b in below {
            let bt = self.disk(b, depth + 1);
            t = shorter(t, bt);
        }
        t
    }

    /// An sd device on a host adapter whose timeout handler lets the SCSI timer fire.
    fn scsi(&mut self, disk: &Disk) -> Option<u64> {
        let name = disk.name.as_str();
        let timeout = self.num(&format!("{}/device/timeout", disk.sys_dir()));
        let eh = self.num(&format!("{}/device/eh_timeout", disk.sys_dir()));
        let mut t = match timeout {
            Some(secs) if secs > 0 => {
                let at = self.push(
                    name,
                    "scsi",
                    Some(secs as u64),
                    format!(
                        "device/timeout {secs} s, then error handling{} may offline the device",
                        eh.map(|e| format!(" ({e} s a step)")).unwrap_or_default()
                    ),
                );
                self.fix(at, format!("profile key scsi_timeout on {name}"));
                Some(secs as u64)
            }
            _ => {
                self.unknown
                    .push(format!("{name}: device/timeout unreadable"));
                None
            }
        };
        if let Some(rport) = &disk.fc_rport {
            let dir = format!("sys/class/fc_remote_ports/{rport}");
            let fast = (self.read)(&format!("{dir}/fast_io_fail_tmo"));
            let loss = self.num(&format!("{dir}/dev_loss_tmo"));
            let fast_secs = fast.as_deref().and_then(|v| v.trim().parse::<u64>().ok());
            let fc = fast_secs.or(loss.and_then(|l| u64::try_from(l).ok()));
            let at = self.push(
                name,
                "fc",
                fc,
                format!(
                    "{rport}: fast_io_fail_tmo {}, dev_loss_tmo {}",
                    fast.as_deref().map(str::trim).unwrap_or("?"),
                    loss.map(|l| l.to_string()).unwrap_or_else(|| "?".into())
                ),
            );
            self.fix(
                at,
                format!("profile keys fc_fast_io_fail_tmo, fc_dev_loss_tmo on {name} (multipathd sets them for its paths)"),
            );
            t = shorter(t, fc);
        }
        t
    }

    /// An iSCSI LUN: the session's recovery_tmo decides (libiscsi resets the SCSI timer while
    /// the session is down and recovering, and fails every queued I/O when it runs out).
    fn iscsi(&mut self, disk: &Disk) -> Option<u64> {
        let name = disk.name.as_str();
        let Some(session) = disk.iscsi_session.clone() else {
            self.unknown
                .push(format!("{name}: iSCSI session not found"));
            return None;
        };
        let value = (self.read)(&format!("sys/class/iscsi_session/{session}/recovery_tmo"));
        let secs = value.as_deref().and_then(|v| v.trim().parse::<i64>().ok());
        let (t, detail) = match secs {
            Some(s) if s < 0 => (None, format!("{session}: recovery_tmo off: queues forever")),
            Some(s) => (
                Some(s as u64),
                format!("{session}: recovery_tmo {s} s, then every queued I/O fails"),
            ),
            None => {
                self.unknown
                    .push(format!("{name}: {session} recovery_tmo unreadable"));
                return None;
            }
        };
        let at = self.push(name, "iscsi", t, detail);
        let conf = self
            .iscsid_replacement
            .as_deref()
            .map(|v| format!(" (iscsid.conf says {v} for new sessions)"))
            .unwrap_or_default();
        self.fix(
            at,
            format!("profile key iscsi_recovery_tmo on {name}, and node.session.timeo.replacement_timeout in /etc/iscsi/iscsid.conf{conf}"),
        );
        t
    }
}

enum NoPathRetry {
    Queue,
    /// Checks, and seconds per check.
    Checks(u64, u64),
}

fn level_or(level: &str) -> &str {
    if level.is_empty() {
        "md"
    } else {
        level
    }
}

/// An option's value in a comma-separated list (`timeo=600`).
fn option<'a>(options: &'a str, key: &str) -> Option<&'a str> {
    options
        .split(',')
        .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
}

fn has(options: &str, flag: &str) -> bool {
    options.split(',').any(|o| o == flag)
}

/// An NFS mount's give-up time from its options (nfs(5); net/sunrpc/xprt.c).
fn nfs(walk: &mut Walk<'_>, m: &Mount) -> Option<u64> {
    let o = &m.super_options;
    let soft = has(o, "soft") || has(o, "softerr");
    let udp = option(o, "proto").is_some_and(|p| p.starts_with("udp"));
    let timeo: u64 = option(o, "timeo")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if udp { 11 } else { 600 });
    let retrans: u64 = option(o, "retrans")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if udp { 3 } else { 2 });
    if !soft {
        walk.push(
            &m.mount_point,
            "nfs",
            None,
            "hard: retries until the server answers (tasks block meanwhile)".to_string(),
        );
        return None;
    }
    // The major timeout: linear over TCP, doubling over UDP (capped at 60 s).
    let deciseconds = if udp {
        (timeo << retrans.min(20)).min(600)
    } else {
        timeo.saturating_mul(retrans + 1)
    };
    let secs = deciseconds.div_ceil(10);
    let at = walk.push(
        &m.mount_point,
        "nfs",
        Some(secs),
        format!(
            "soft: timeo={timeo} retrans={retrans} over {}: EIO after {secs} s",
            if udp { "UDP" } else { "TCP" }
        ),
    );
    walk.fix(
        at,
        format!(
            "mount {} with hard (its fstab entry), or raise timeo/retrans",
            m.mount_point
        ),
    );
    Some(secs)
}

/// What the filesystem does when a layer below fails its I/O.
fn on_give_up(m: &Mount) -> String {
    if m.is_network() {
        return if has(&m.super_options, "soft") || has(&m.super_options, "softerr") {
            "EIO to the application".to_string()
        } else {
            "nothing fails (hard)".to_string()
        };
    }
    match (m.fstype.as_str(), option(&m.super_options, "errors")) {
        ("ext2" | "ext3" | "ext4", Some(e)) => format!("errors={e}"),
        ("ext2" | "ext3" | "ext4", None) => "errors= as the superblock says".to_string(),
        ("xfs", _) => "XFS shuts the filesystem down".to_string(),
        ("btrfs", _) => "btrfs forces itself read-only".to_string(),
        (fs, _) => format!("{fs}: EIO to the application"),
    }
}

/// Mounts that live on storage: a block device in the inventory, or a network filesystem.
fn on_storage(m: &Mount) -> bool {
    m.disk.is_some() || m.is_network()
}

/// `node.session.timeo.replacement_timeout` from `etc/iscsi/iscsid.conf`.
fn iscsid_replacement(read: Read<'_>) -> Option<String> {
    let text = read("etc/iscsi/iscsid.conf")?;
    text.lines().find_map(|l| {
        let l = l.trim();
        let (k, v) = l.split_once('=')?;
        (k.trim() == "node.session.timeo.replacement_timeout").then(|| v.trim().to_string())
    })
}

/// The ride-out of every mount on storage, from the values `read` gives.
pub(crate) fn rideout(inv: &Inventory, read: Read<'_>, queues: Queues<'_>) -> Vec<RideOut> {
    let iscsid = iscsid_replacement(read);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for m in inv.mounts.iter().filter(|m| on_storage(m)) {
        // A filesystem mounted twice (bind mounts) is one figure.
        if !seen.insert((m.mount_point.clone(), m.dev.clone())) {
            continue;
        }
        let mut walk = Walk {
            inv,
            read,
            queues,
            layers: Vec::new(),
            unknown: Vec::new(),
            iscsid_replacement: iscsid.clone(),
            redundant_in: None,
        };
        let seconds = match &m.disk {
            Some(disk) => walk.disk(disk, 0),
            None if m.fstype.starts_with("nfs") => nfs(&mut walk, m),
            None => {
                walk.unknown
                    .push(format!("{}: {} is not modelled", m.mount_point, m.fstype));
                None
            }
        };
        let weakest = seconds.and_then(|s| {
            walk.layers
                .iter()
                .find(|l| l.seconds == Some(s))
                .map(|l| format!("{} {}: {}", l.object, l.layer, l.detail))
        });
        out.push(RideOut {
            mount: m.mount_point.clone(),
            fstype: m.fstype.clone(),
            source: m.source.clone(),
            seconds,
            weakest,
            on_give_up: on_give_up(m),
            layers: walk.layers,
            unknown: walk.unknown,
        });
    }
    out
}

/// The ride-out of every mount with the kernel's values now.
pub(crate) fn live(root: &Root, inv: &Inventory) -> Vec<RideOut> {
    rideout(inv, &|p| root.read_lossy(p), &|map| {
        multipath_queues(root, map)
    })
}

/// Whether the multipath map queues when its last path goes, from its dm table.
fn multipath_queues(root: &Root, map: &str) -> Option<bool> {
    let table = crate::host::dm::table(root, map).ok()?;
    let t = table.iter().find(|t| t.target_type == "multipath")?;
    Some(crate::host::dm::queues_if_no_path(&t.params))
}

/// The ride-out of every mount once `plan` is applied: its values laid over the kernel's.
pub(crate) fn after(root: &Root, inv: &Inventory, plan: &Plan) -> Vec<RideOut> {
    let planned: BTreeMap<&str, &str> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Set)
        .map(|c| (c.path.as_str(), c.desired.as_str()))
        .collect();
    rideout(
        inv,
        &|p| match planned.get(p) {
            Some(v) => Some(v.to_string()),
            None => root.read_lossy(p),
        },
        &|map| multipath_queues(root, map),
    )
}

/// A plan with each mount's ride-out now and after it: `tunerctl plan --json` and the
/// daemon's `Plan()`.
#[derive(Serialize)]
pub(crate) struct PlanWithRideOut<'a> {
    #[serde(flatten)]
    pub plan: &'a Plan,
    pub rideout: PlanRideOut,
}

#[derive(Serialize)]
pub(crate) struct PlanRideOut {
    pub before: Vec<RideOut>,
    pub after: Vec<RideOut>,
    /// The profile's `rideout_secs`, and every layer that falls short of it after the plan.
    pub target_secs: Option<u64>,
    pub short_of_target: Vec<ShortOf>,
}

#[derive(Serialize)]
pub(crate) struct ShortOf {
    pub mount: String,
    pub layer: LayerTime,
}

impl<'a> PlanWithRideOut<'a> {
    pub(crate) fn new(
        root: &Root,
        inv: &Inventory,
        plan: &'a Plan,
        target: Option<u64>,
    ) -> PlanWithRideOut<'a> {
        let after = after(root, inv, plan);
        let short_of_target = target
            .map(|t| {
                after
                    .iter()
                    .flat_map(|a| {
                        a.short_of(t).into_iter().map(|l| ShortOf {
                            mount: a.mount.clone(),
                            layer: l.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        PlanWithRideOut {
            plan,
            rideout: PlanRideOut {
                before: live(root, inv),
                after,
                target_secs: target,
                short_of_target,
            },
        }
    }
}

/// `180 s`, `never`.
pub(crate) fn human(seconds: Option<u64>) -> String {
    match seconds {
        None => "never gives up".to_string(),
        Some(s) if s >= 86_400 * 2 => format!("{} days", s / 86_400),
        Some(s) if s >= 7200 => format!("{} h", s / 3600),
        Some(s) => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_is_longer_than_any_time() {
        assert_eq!(shorter(None, Some(5)), Some(5));
        assert_eq!(shorter(Some(7), Some(5)), Some(5));
        assert_eq!(longer(None, Some(5)), None);
        assert_eq!(longer(Some(7), Some(5)), Some(7));
    }

    #[test]
    fn nfs_soft_gives_up_after_the_major_timeout() {
        let inv = Inventory {
            platform: crate::host::inventory::Platform {
                kind: crate::host::inventory::PlatformKind::None,
                evidence: vec![],
            },
            disks: vec![],
            mounts: vec![],
        };
        let read: Read<'_> = &|_| None;
        let mut walk = Walk {
            inv: &inv,
            read,
            queues: &|_| None,
            layers: vec![],
            unknown: vec![],
            iscsid_replacement: None,
            redundant_in: None,
        };
        let mount = |opts: &str| Mount {
            mount_point: "/mnt".into(),
            fstype: "nfs4".into(),
            source: "srv:/x".into(),
            dev: "0:53".into(),
            options: "rw".into(),
            super_options: opts.into(),
            disk: None,
            bdi: None,
        };
        // The guest lab measured 31 s for timeo=100,retrans=2 over TCP (vm-guest.md).
        assert_eq!(
            nfs(&mut walk, &mount("rw,soft,proto=tcp,timeo=100,retrans=2")),
            Some(30)
        );
        assert_eq!(nfs(&mut walk, &mount("rw,hard,proto=tcp,timeo=600")), None);
        // UDP doubles per retry, capped at 60 s.
        assert_eq!(
            nfs(&mut walk, &mount("rw,soft,proto=udp,timeo=11,retrans=3")),
            Some(9)
        );
        assert_eq!(
            nfs(&mut walk, &mount("rw,soft,proto=udp,timeo=300,retrans=5")),
            Some(60)
        );
        assert_eq!(option("a=1,timeo=600,b", "timeo"), Some("600"));
    }
}
