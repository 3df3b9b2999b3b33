//! The plan: a pure function of (profile, inventory, current values) giving every change, each
//! with its target, current value, desired value and reason.
//!
//! Planning happens in three steps so the middle one stays pure and testable:
//! [`targets`] (profile x inventory -> what should be set where), [`Current::read`] (the only
//! step that reads the kernel), and [`decide`] (targets x current values -> changes).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::host::inventory::{Disk, Inventory};
use crate::host::sys::Root;
use crate::tune::knob::{self, Knob, Layer, Scope};
use crate::tune::profile::{Profile, Setting, Value};

/// What a knob is set on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "name", rename_all = "kebab-case")]
pub(crate) enum Object {
    Disk(String),
    Bdi(String),
    Vm,
    Kernel,
}

impl Object {
    pub(crate) fn label(&self) -> String {
        match self {
            Object::Disk(name) => name.clone(),
            Object::Bdi(name) => format!("bdi {name}"),
            Object::Vm => "vm".to_string(),
            Object::Kernel => "kernel".to_string(),
        }
    }
}

/// One knob the profile wants set on one object, before looking at the kernel.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub object: Object,
    pub knob: Knob,
    /// The attribute, relative to the root.
    pub path: String,
    pub setting: Setting,
    pub rule: String,
    /// Set when the rule matched a device stacked on this one (`dm-0`) and the knob belongs
    /// on the device that queues the I/O.
    pub via: Option<String>,
}

/// What to do with one knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
    /// Write the desired value.
    Set,
    /// Already at the desired value.
    Unchanged,
    /// The attribute does not exist on this device (a virtio-blk disk has no io_timeout).
    Absent,
    /// The change could lose data and the profile does not accept the risk.
    Refused,
    /// The kernel offers nothing the profile accepts (no listed scheduler is available).
    Unsupported,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Change {
    pub object: Object,
    pub knob: Knob,
    pub path: String,
    pub current: Option<String>,
    pub desired: String,
    pub action: Action,
    pub reason: String,
    pub profile: String,
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Set once when the device appears, then left to other tools (no drift, no repair).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
}

impl Change {
    /// `sda scheduler`, `vm dirty_ratio`: how reports name a change.
    pub(crate) fn label(&self) -> String {
        format!("{} {}", self.object.label(), self.knob.key())
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Plan {
    pub profile: String,
    pub changes: Vec<Change>,
}

impl Plan {
    pub(crate) fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

/// Where a disk knob lives. The SCSI disk's, its host's, its iSCSI session's and its FC
/// remote port's attributes sit outside `sys/block/D/`; a disk without that object plans
/// against a path under `sys/block/D/` that does not exist, so the change reads as absent.
fn disk_target_path(disk: &Disk, knob: Knob) -> String {
    let on = |object: &Option<String>, class: &str| match object {
        Some(name) => format!("sys/class/{class}/{name}/{}", knob.attr()),
        None => format!("{}/device/no-{class}/{}", disk.sys_dir(), knob.attr()),
    };
    match knob {
        Knob::ScsiCacheType | Knob::ScsiMaxRetries => {
            let hctl = disk.hctl.as_deref().unwrap_or("-");
            format!("{}/device/scsi_disk/{hctl}/{}", disk.sys_dir(), knob.attr())
        }
        Knob::ScsiEhDeadline => on(&disk.scsi_host, "scsi_host"),
        Knob::IscsiRecoveryTmo => on(&disk.iscsi_session, "iscsi_session"),
        Knob::FcFastIoFailTmo | Knob::FcDevLossTmo => on(&disk.fc_rport, "fc_remote_ports"),
        _ => format!("{}/{}", disk.sys_dir(), knob.attr()),
    }
}

fn bdi_target(disk_or_bdi: Result<&Disk, &str>, knob: Knob) -> (Object, String) {
    match disk_or_bdi {
        Ok(disk) => match &disk.bdi {
            Some(bdi) => (
                Object::Bdi(bdi.clone()),
                format!("sys/class/bdi/{bdi}/{}", knob.attr()),
            ),
            // No bdi: plan against the disk's own link so the change reads as absent.
            None => (
                Object::Disk(disk.name.clone()),
                format!("{}/bdi/{}", disk.sys_dir(), knob.attr()),
            ),
        },
        Err(bdi) => (
            Object::Bdi(bdi.to_string()),
            format!("sys/class/bdi/{bdi}/{}", knob.attr()),
        ),
    }
}

/// Every (object, knob) the profile wants on this inventory. Rules apply in profile order and a
/// later matching rule overrides an earlier one knob by knob. Queue and SCSI knobs of a
/// bio-based stacked device (LVM, dm-crypt, md) land on the devices at the bottom of its stack;
/// SCSI knobs of a dm-multipath map land on its paths. A device's own rules win over what its
/// holder would give it.
pub(crate) fn targets(profile: &Profile, inv: &Inventory) -> Vec<Target> {
    let mut out: BTreeMap<(Object, Knob), Target> = BTreeMap::new();

    // Per disk: the merged settings of its own matching rules.
    let mut direct: BTreeMap<&str, BTreeMap<Knob, (&Setting, &str)>> = BTreeMap::new();
    for disk in &inv.disks {
        let merged = direct.entry(disk.name.as_str()).or_default();
        for rule in profile.disk.iter().filter(|r| r.matches_disk(disk)) {
            for (knob, setting) in &rule.settings {
                if let Some(other) = knob.exclusive_with() {
                    merged.remove(&other);
                }
                merged.insert(*knob, (setting, rule.name.as_str()));
            }
        }
    }

    for disk in &inv.disks {
        let Some(settings) = direct.get(disk.name.as_str()) else {
            continue;
        };
        for (knob, (setting, rule)) in settings {
            let pushed_down = match knob.layer() {
                Layer::Queue => !disk.queues_io && !disk.slaves.is_empty(),
                Layer::Scsi => !disk.kind.is_scsi() && !disk.slaves.is_empty(),
                Layer::Top => false,
            };
            let recipients: Vec<(&Disk, Option<String>)> = if pushed_down {
                inv.leaves(&disk.name)
                    .iter()
                    .filter_map(|leaf| inv.disk(leaf))
                    .filter(|leaf| {
                        !direct
                            .get(leaf.name.as_str())
                            .is_some_and(|own| own.contains_key(knob))
                    })
                    .map(|leaf| (leaf, Some(disk.name.clone())))
                    .collect()
            } else {
                vec![(disk, None)]
            };
            for (recipient, via) in recipients {
                let (object, path) = if knob.scope() == Scope::Bdi {
                    bdi_target(Ok(recipient), *knob)
                } else {
                    (
                        Object::Disk(recipient.name.clone()),
                        disk_target_path(recipient, *knob),
                    )
                };
                let key = (object.clone(), *knob);
                // A device's own rule beats one inherited through a holder.
                if via.is_some() && out.get(&key).is_some_and(|t| t.via.is_none()) {
                    continue;
                }
                out.insert(
                    key,
                    Target {
                        object,
                        knob: *knob,
                        path,
                        setting: (*setting).clone(),
                        rule: rule.to_string(),
                        via,
                    },
                );
            }
        }
    }

    for mount in &inv.mounts {
        let Some(bdi) = &mount.bdi else { continue };
        let mut merged: BTreeMap<Knob, (&Setting, &str)> = BTreeMap::new();
        for rule in profile.mount.iter().filter(|r| r.matches_mount(mount)) {
            for (knob, setting) in &rule.settings {
                if let Some(other) = knob.exclusive_with() {
                    merged.remove(&other);
                }
                merged.insert(*knob, (setting, rule.name.as_str()));
            }
        }
        for (knob, (setting, rule)) in merged {
            // A block-backed mount's bdi read-ahead is its disk's queue/read_ahead_kb (one
            // value): plan it there, where a disk rule of its own wins.
            let disk = mount.disk.as_deref().and_then(|d| inv.disk(d));
            let (object, knob, path) = match (knob, disk) {
                (Knob::BdiReadAheadKb, Some(disk)) => (
                    Object::Disk(disk.name.clone()),
                    Knob::ReadAheadKb,
                    disk_target_path(disk, Knob::ReadAheadKb),
                ),
                _ => {
                    let (object, path) = bdi_target(Err(bdi), knob);
                    (object, knob, path)
                }
            };
            out.entry((object.clone(), knob)).or_insert(Target {
                object,
                knob,
                path,
                setting: setting.clone(),
                rule: rule.to_string(),
                via: Some(mount.mount_point.clone()),
            });
        }
    }

    for (object, settings) in [(Object::Vm, &profile.vm), (Object::Kernel, &profile.kernel)] {
        for (knob, setting) in settings {
            out.insert(
                (object.clone(), *knob),
                Target {
                    object: object.clone(),
                    knob: *knob,
                    path: format!("{}/{}", knob.machine_dir(), knob.attr()),
                    setting: setting.clone(),
                    rule: object.label(),
                    via: None,
                },
            );
        }
    }
    out.into_values().collect()
}

/// The kernel's current value of every target attribute (`None`: the attribute is absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct Current {
    pub values: BTreeMap<String, Option<String>>,
}

impl Current {
    /// The only step of planning that reads the kernel. An unreadable attribute counts as
    /// absent: it cannot be planned against, and the report says so.
    pub(crate) fn read(root: &Root, targets: &[Target]) -> Current {
        let paths: BTreeSet<&str> = targets.iter().map(|t| t.path.as_str()).collect();
        let paths: Vec<&str> = paths.into_iter().collect();
        // Paths come sorted, so one disk's attributes are neighbours: one open directory each.
        // Many (hundreds of disks) are read in chunks on a few threads.
        let parts = crate::host::sys::in_chunks(&paths, 256, |part| {
            let mut attrs = crate::host::sys::Attrs::new(root);
            part.iter()
                .map(|path| (path.to_string(), attrs.read_ok(path)))
                .collect::<Vec<_>>()
        });
        Current {
            values: parts.into_iter().flatten().collect(),
        }
    }

    pub(crate) fn get(&self, path: &str) -> Option<&str> {
        self.values.get(path).and_then(|v| v.as_deref())
    }
}

fn absent_note(t: &Target) -> String {
    let what = match (t.knob.scope(), t.knob.layer()) {
        (Scope::Kernel, _) if t.path.starts_with("sys/module/nvme_core/") => {
            "nvme_core is not loaded (no NVMe here)"
        }
        (Scope::Kernel, _) => {
            "the kernel has no hung-task detector (CONFIG_DETECT_HUNG_TASK): stalls that fail nothing go unreported"
        }
        (_, Layer::Scsi) => "not a SCSI disk",
        _ => "the driver does not offer this attribute",
    };
    match t.knob {
        Knob::IoTimeoutMs => {
            "no queue/io_timeout: the driver has no timeout handler (virtio-blk, xen-blkfront); hung I/O waits forever and only alerting catches it".to_string()
        }
        _ => format!("{} absent: {what}", t.path.rsplit('/').next().unwrap_or("")),
    }
}

/// Decides each target against the current values. Pure: the same inputs give the same plan.
pub(crate) fn decide(profile: &str, targets: &[Target], current: &Current) -> Plan {
    let mut changes = Vec::with_capacity(targets.len());
    // Objects whose elevator this plan switches: their nr_requests will be reset by it.
    let mut switching: BTreeSet<Object> = BTreeSet::new();
    // On a SCSI disk queue/io_timeout and device/timeout are one value (both set the
    // queue's request timeout): where the profile sets both, scsi_timeout wins, or the two
    // would overwrite each other and show drift forever.
    let scsi_timeouts: BTreeMap<&Object, String> = targets
        .iter()
        .filter(|t| t.knob == Knob::ScsiTimeout && current.get(&t.path).is_some())
        .map(|t| (&t.object, t.setting.value.to_string()))
        .collect();
    for t in targets {
        let mut change = Change {
            object: t.object.clone(),
            knob: t.knob,
            path: t.path.clone(),
            current: None,
            desired: t.setting.value.to_string(),
            action: Action::Set,
            reason: t.setting.reason.clone(),
            profile: t.setting.profile.clone(),
            rule: t.rule.clone(),
            note: t.via.as_ref().map(|v| format!("via {v}")),
            once: t.setting.once,
        };
        let Some(raw) = current.get(&t.path) else {
            change.action = Action::Absent;
            change.note = Some(absent_note(t));
            changes.push(change);
            continue;
        };
        if let (Knob::IoTimeoutMs, Some(secs)) = (t.knob, scsi_timeouts.get(&t.object)) {
            change.current = Some(t.knob.normalize(raw));
            change.action = Action::Unsupported;
            change.note = Some(format!(
                "on a SCSI disk queue/io_timeout is device/timeout; scsi_timeout ({secs} s) sets it"
            ));
            changes.push(change);
            continue;
        }
        let now = t.knob.normalize(raw);
        change.current = Some(now.clone());
        match (&t.setting.value, t.knob) {
            (Value::Schedulers(prefs), Knob::Scheduler) => {
                let available = knob::available_schedulers(raw);
                let pick = prefs
                    .iter()
                    .map(|p| knob::blk_mq_name(p))
                    .find(|p| available.iter().any(|a| a == p));
                match pick {
                    None => {
                        change.action = Action::Unsupported;
                        change.note = Some(format!(
                            "the kernel offers {}; none of {} is among them",
                            available.join(", "),
                            prefs.join(", ")
                        ));
                    }
                    Some(pick) => {
                        change.desired = pick.to_string();
                        if now == pick {
                            change.action = Action::Unchanged;
                        } else {
                            switching.insert(t.object.clone());
                        }
                    }
                }
            }
            (Value::Text(text), Knob::ScsiCacheType) => {
                let temporary = text.starts_with("temporary ");
                let bare = t.knob.normalize(text);
                if now == bare {
                    change.action = Action::Unchanged;
                } else if let Some(why) = cache_risk(&now, &bare, temporary) {
                    if !t.setting.accept_risk {
                        change.action = Action::Refused;
                        change.note = Some(format!("{why}; set accept_risk = true to allow it"));
                    } else {
                        change.note = Some(format!("risk accepted by the profile: {why}"));
                    }
                }
            }
            (Value::Text(text), Knob::WriteCache) => {
                if now == *text {
                    change.action = Action::Unchanged;
                } else if text == "write through" && now == "write back" {
                    let why = "declaring a volatile write cache \"write through\" stops cache flushes: data written before a power failure can be lost";
                    if !t.setting.accept_risk {
                        change.action = Action::Refused;
                        change.note = Some(format!(
                            "{why}; set accept_risk = true only if the cache is non-volatile (battery-backed)"
                        ));
                    } else {
                        change.note = Some(format!("risk accepted by the profile: {why}"));
                    }
                }
            }
            (_, Knob::NrRequests) if switching.contains(&t.object) => {
                change.note =
                    Some("written after the scheduler switch, which resets it".to_string());
            }
            (value, knob) => {
                if knob.matches(&now, &value.to_string()) {
                    change.action = Action::Unchanged;
                }
            }
        }
        changes.push(change);
    }
    Plan {
        profile: profile.to_string(),
        changes,
    }
}

/// Why a cache_type change can lose data, if it can.
fn cache_risk(current: &str, desired: &str, temporary: bool) -> Option<String> {
    let volatile_now = current.starts_with("write back");
    let volatile_after = desired.starts_with("write back");
    if volatile_now && !volatile_after {
        return Some(
            "the device has a volatile write cache; declaring it write through stops cache flushes: data loss on power failure".to_string(),
        );
    }
    if !temporary {
        return Some(
            "without the \"temporary \" prefix the kernel sends MODE SELECT and the device may save the new cache mode permanently".to_string(),
        );
    }
    None
}

/// Plans `profile` for what is on `root` now.
pub(crate) fn plan(root: &Root, profile: &Profile, inv: &Inventory) -> Plan {
    plan_where(root, profile, inv, |_| true)
}

/// Plans only the targets `keep` selects (one hotplugged disk, say).
pub(crate) fn plan_where(
    root: &Root,
    profile: &Profile,
    inv: &Inventory,
    keep: impl Fn(&Target) -> bool,
) -> Plan {
    let targets: Vec<Target> = targets(profile, inv)
        .into_iter()
        .filter(|t| keep(t))
        .collect();
    let current = Current::read(root, &targets);
    decide(&profile.name, &targets, &current)
}

/// The objects that belong to one disk: the disk itself and its bdi.
pub(crate) fn disk_objects(inv: &Inventory, name: &str) -> Vec<Object> {
    let mut out = vec![Object::Disk(name.to_string())];
    if let Some(bdi) = inv.disk(name).and_then(|d| d.bdi.clone()) {
        out.push(Object::Bdi(bdi));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::profile::parse_profile;

    fn target(knob: Knob, path: &str, value: Value, accept_risk: bool) -> Target {
        Target {
            object: Object::Disk("sda".into()),
            knob,
            path: path.into(),
            setting: Setting {
                value,
                reason: "r".into(),
                accept_risk,
                once: false,
                profile: "p".into(),
                at: Default::default(),
            },
            rule: "x".into(),
            via: None,
        }
    }

    fn current(pairs: &[(&str, &str)]) -> Current {
        Current {
            values: pairs
                .iter()
                .map(|(p, v)| (p.to_string(), Some(v.to_string())))
                .collect(),
        }
    }

    #[test]
    fn scheduler_preference_noop_and_nr_requests_after_switch() {
        let ts = vec![
            target(
                Knob::Scheduler,
                "s",
                Value::Schedulers(vec!["noop".into(), "mq-deadline".into()]),
                false,
            ),
            target(Knob::NrRequests, "n", Value::Int(256), false),
        ];
        let p = decide(
            "p",
            &ts,
            &current(&[("s", "none [mq-deadline] kyber bfq"), ("n", "256")]),
        );
        assert_eq!(p.changes[0].desired, "none");
        assert_eq!(p.changes[0].action, Action::Set);
        // Equal now, but the switch resets it: still written.
        assert_eq!(p.changes[1].action, Action::Set);
        let p = decide(
            "p",
            &ts,
            &current(&[("s", "[none] mq-deadline"), ("n", "256")]),
        );
        assert_eq!(p.changes[0].action, Action::Unchanged);
        assert_eq!(p.changes[1].action, Action::Unchanged);
        let only_bfq = vec![target(
            Knob::Scheduler,
            "s",
            Value::Schedulers(vec!["kyber".into()]),
            false,
        )];
        let p = decide("p", &only_bfq, &current(&[("s", "[none] bfq")]));
        assert_eq!(p.changes[0].action, Action::Unsupported);
    }

    #[test]
    fn data_loss_risks_are_refused_unless_accepted() {
        let wt = |accept| {
            vec![target(
                Knob::WriteCache,
                "w",
                Value::Text("write through".into()),
                accept,
            )]
        };
        let cur = current(&[("w", "write back")]);
        assert_eq!(
            decide("p", &wt(false), &cur).changes[0].action,
            Action::Refused
        );
        assert_eq!(decide("p", &wt(true), &cur).changes[0].action, Action::Set);
        let ct = |v: &str| {
            vec![target(
                Knob::ScsiCacheType,
                "c",
                Value::Text(v.into()),
                false,
            )]
        };
        let cur = current(&[("c", "write through")]);
        assert_eq!(
            decide("p", &ct("temporary write back"), &cur).changes[0].action,
            Action::Set
        );
        assert_eq!(
            decide("p", &ct("write back"), &cur).changes[0].action,
            Action::Refused
        );
        let cur = current(&[("c", "write back")]);
        assert_eq!(
            decide("p", &ct("temporary write through"), &cur).changes[0].action,
            Action::Refused
        );
        assert_eq!(
            decide("p", &ct("temporary write back"), &cur).changes[0].action,
            Action::Unchanged
        );
    }

    #[test]
    fn absent_attributes_are_reported_not_written() {
        let ts = vec![target(
            Knob::IoTimeoutMs,
            "missing",
            Value::Int(1000),
            false,
        )];
        let p = decide("p", &ts, &Current::default());
        assert_eq!(p.changes[0].action, Action::Absent);
        assert!(p.changes[0]
            .note
            .as_deref()
            .unwrap_or("")
            .contains("timeout handler"));
    }

    #[test]
    fn rule_order_overrides_knob_by_knob() {
        let profile = parse_profile(
            "p",
            "p.toml",
            "[[disk]]\nrule = \"a\"\nnr_requests = 64\nread_ahead_kb = 256\n[[disk]]\nrule = \"b\"\nmatch = { name = \"sdb\" }\nnr_requests = 32\n",
        )
        .expect("parses");
        let disk = |name: &str| Disk {
            name: name.into(),
            dev: "8:0".into(),
            diskseq: None,
            kind: crate::host::inventory::DiskKind::Scsi,
            driver: "ahci".into(),
            cloud: String::new(),
            vendor: String::new(),
            model: String::new(),
            serial: String::new(),
            rotational: false,
            removable: false,
            size_bytes: 0,
            hctl: None,
            scsi_host: None,
            iscsi_session: None,
            fc_rport: None,
            multipath_path: false,
            dm_kind: None,
            dm_name: None,
            slaves: vec![],
            holders: vec![],
            queues_io: true,
            bdi: None,
        };
        let inv = Inventory {
            platform: crate::host::inventory::Platform {
                kind: crate::host::inventory::PlatformKind::None,
                evidence: vec![],
            },
            disks: vec![disk("sda"), disk("sdb")],
            mounts: vec![],
        };
        let ts = targets(&profile, &inv);
        let get = |d: &str, k: Knob| {
            ts.iter()
                .find(|t| t.object == Object::Disk(d.into()) && t.knob == k)
                .map(|t| (t.setting.value.to_string(), t.rule.clone()))
        };
        assert_eq!(
            get("sda", Knob::NrRequests),
            Some(("64".into(), "a".into()))
        );
        assert_eq!(
            get("sdb", Knob::NrRequests),
            Some(("32".into(), "b".into()))
        );
        assert_eq!(
            get("sdb", Knob::ReadAheadKb),
            Some(("256".into(), "a".into()))
        );
    }
}
