//! Applying a plan, verifying it, and reverting to the originals.
//!
//! The journal of originals (`/run/tunerd/originals.json`) is written atomically before the
//! first write of any knob it covers, and only the first original seen for a knob is kept, so
//! a revert is exact however many applies ran before it, and also after the applier was
//! killed in the middle. `/run` is a tmpfs: the journal lives exactly as long as the values it
//! can restore.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::host::sys::{Root, SysError, STATE_DIR};
use crate::tune::knob::{Knob, Scope};
use crate::tune::plan::{Action, Change, Object, Plan};

pub(crate) use crate::host::state_files::ORIGINALS;
const JOURNAL_VERSION: u32 = 1;

/// One original value: what to write, where, to put a knob back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Original {
    /// Identifies the knob across applies: `sda/scheduler`, `vm/dirty_ratio` (one key for an
    /// exclusive pair, so that switching from the ratio to the bytes form keeps the original).
    pub key: String,
    /// The attribute to write on revert (for a pair: whichever of the two was in force).
    pub path: String,
    pub value: String,
    /// For disks: the diskseq when recorded; a different one means the device was replaced
    /// and the original belongs to a device that no longer exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diskseq: Option<u64>,
    /// Restore order: the knob's apply order, so the scheduler is restored before the
    /// nr_requests that its switch resets.
    pub order: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Originals {
    pub version: u32,
    pub originals: Vec<Original>,
}

impl Originals {
    pub(crate) fn load(root: &Root) -> Result<Originals, OriginalsError> {
        match root.read_opt(ORIGINALS).map_err(OriginalsError::Io)? {
            None => Ok(Originals {
                version: JOURNAL_VERSION,
                originals: Vec::new(),
            }),
            Some(text) if text.trim().is_empty() => Ok(Originals::default()),
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| OriginalsError::Corrupt(root.display(ORIGINALS), e.to_string())),
        }
    }

    /// The journal as `serde_json::to_vec_pretty` writes it, byte for byte (a test holds the
    /// two together), written field by field: the generic pretty serializer was a tenth of
    /// the instructions of a 1,000-disk apply. Strings still go through serde_json, so their
    /// escapes are its own.
    fn to_json_pretty(&self) -> Result<Vec<u8>, serde_json::Error> {
        fn field(out: &mut Vec<u8>, name: &str) {
            out.extend_from_slice(b",\n      \"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\": ");
        }
        let mut out = Vec::with_capacity(64 + self.originals.len() * 192);
        out.extend_from_slice(b"{\n  \"version\": ");
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.extend_from_slice(b",\n  \"originals\": [");
        for (i, o) in self.originals.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"\n    {\n      \"key\": ");
            serde_json::to_writer(&mut out, &o.key)?;
            field(&mut out, "path");
            serde_json::to_writer(&mut out, &o.path)?;
            field(&mut out, "value");
            serde_json::to_writer(&mut out, &o.value)?;
            if let Some(disk) = &o.disk {
                field(&mut out, "disk");
                serde_json::to_writer(&mut out, disk)?;
            }
            if let Some(seq) = o.diskseq {
                field(&mut out, "diskseq");
                out.extend_from_slice(seq.to_string().as_bytes());
            }
            field(&mut out, "order");
            out.extend_from_slice(o.order.to_string().as_bytes());
            out.extend_from_slice(b"\n    }");
        }
        if !self.originals.is_empty() {
            out.extend_from_slice(b"\n  ");
        }
        out.extend_from_slice(b"]\n}");
        Ok(out)
    }

    pub(crate) fn save(&self, root: &Root) -> Result<(), OriginalsError> {
        if self.originals.is_empty() {
            return root.remove(ORIGINALS).map_err(OriginalsError::Io);
        }
        let mut text = self
            .to_json_pretty()
            .map_err(|e| OriginalsError::Corrupt(root.display(ORIGINALS), e.to_string()))?;
        text.push(b'\n');
        root.create_dir(STATE_DIR).map_err(OriginalsError::Io)?;
        root.write_atomic(ORIGINALS, &text)
            .map_err(OriginalsError::Io)
    }
}

/// Drops the originals of a disk that is gone: they belong to a device that no longer exists.
pub(crate) fn forget_disk(root: &Root, name: &str) -> Result<usize, OriginalsError> {
    let _lock = root.lock_state().map_err(OriginalsError::Io)?;
    let mut journal = Originals::load(root)?;
    let before = journal.originals.len();
    journal
        .originals
        .retain(|o| o.disk.as_deref() != Some(name));
    let dropped = before - journal.originals.len();
    if dropped > 0 {
        journal.save(root)?;
    }
    Ok(dropped)
}

#[derive(Debug)]
pub enum OriginalsError {
    Io(SysError),
    Corrupt(String, String),
}

impl std::fmt::Display for OriginalsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OriginalsError::Io(e) => write!(f, "journal of originals: {e}"),
            OriginalsError::Corrupt(path, e) => {
                write!(f, "{path}: unreadable journal of originals: {e}")
            }
        }
    }
}

impl std::error::Error for OriginalsError {}

/// The outcome of one knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    /// Written, and reads back as desired.
    Applied,
    /// Written, and the kernel reads back something else (nr_requests 3 reads back 4).
    Adjusted,
    Unchanged,
    /// The kernel refused the write; `error` has the errno.
    Rejected,
    /// Not present on this device.
    Absent,
    /// Refused by tunerd: a data-loss risk the profile does not accept.
    Refused,
    Unsupported,
    /// Restored to the original (revert).
    Restored,
    /// The device is gone or was replaced; its original was dropped (revert).
    Gone,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Outcome {
    pub target: String,
    pub path: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    pub wanted: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub(crate) fn count(&self, status: Status) -> usize {
        self.outcomes.iter().filter(|o| o.status == status).count()
    }

    /// Whether every knob ended as it should (nothing rejected by the kernel).
    pub(crate) fn ok(&self) -> bool {
        self.count(Status::Rejected) == 0
    }

    /// The report as tunerctl --json prints it and D-Bus returns it.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "ok": self.ok(), "outcomes": self.outcomes })
    }

    pub(crate) fn written(&self) -> usize {
        self.count(Status::Applied) + self.count(Status::Adjusted) + self.count(Status::Restored)
    }
}

/// The journal key of a knob on an object; exclusive pairs share one key.
pub(crate) fn originals_key(object: &Object, knob: Knob) -> String {
    let canonical = match knob {
        Knob::DirtyBytes => Knob::DirtyRatio,
        Knob::DirtyBackgroundBytes => Knob::DirtyBackgroundRatio,
        Knob::BdiMaxBytes => Knob::BdiMaxRatio,
        k => k,
    };
    let object = match object {
        Object::Disk(n) => n.clone(),
        Object::Bdi(n) => format!("bdi/{n}"),
        Object::Vm => "vm".to_string(),
        Object::Kernel => "kernel".to_string(),
    };
    format!("{object}/{}", canonical.key())
}

fn order_of(knob: Knob) -> u32 {
    Knob::ALL.iter().position(|k| *k == knob).unwrap_or(0) as u32
}

fn sibling(path: &str, name: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_string(),
    }
}

fn disk_identity(
    attrs: &mut crate::host::sys::Attrs<'_>,
    object: &Object,
) -> (Option<String>, Option<u64>) {
    match object {
        Object::Disk(name) => (
            Some(name.clone()),
            attrs
                .read_ok(&format!("sys/block/{name}/diskseq"))
                .and_then(|s| s.parse().ok()),
        ),
        _ => (None, None),
    }
}

/// The originals a change needs recorded before it is written: what to write back, and where.
fn originals_for(
    attrs: &mut crate::host::sys::Attrs<'_>,
    change: &Change,
    identities: &mut BTreeMap<Object, (Option<String>, Option<u64>)>,
) -> Vec<Original> {
    // One diskseq read per disk, not per knob.
    let (disk, diskseq) = identities
        .entry(change.object.clone())
        .or_insert_with(|| disk_identity(attrs, &change.object))
        .clone();
    let make = |key: String, path: String, value: String, knob: Knob| Original {
        key,
        path,
        value,
        disk: disk.clone(),
        diskseq,
        order: order_of(knob),
    };
    let current = change.current.clone().unwrap_or_default();
    let key = originals_key(&change.object, change.knob);
    match change.knob {
        // The elevator switch resets nr_requests: record it too, so revert can put it back.
        Knob::Scheduler => {
            let mut out = vec![make(key, change.path.clone(), current, Knob::Scheduler)];
            let nr = sibling(&change.path, "nr_requests");
            if let Some(value) = attrs.read_ok(&nr) {
                out.push(make(
                    originals_key(&change.object, Knob::NrRequests),
                    nr,
                    Knob::NrRequests.normalize(&value),
                    Knob::NrRequests,
                ));
            }
            out
        }
        // Of an exclusive pair the kernel keeps one in force and reads 0 for the other:
        // restore whichever was in force.
        Knob::DirtyRatio
        | Knob::DirtyBytes
        | Knob::DirtyBackgroundRatio
        | Knob::DirtyBackgroundBytes => {
            let (ratio, bytes) = match change.knob {
                Knob::DirtyRatio | Knob::DirtyBytes => ("dirty_ratio", "dirty_bytes"),
                _ => ("dirty_background_ratio", "dirty_background_bytes"),
            };
            let bytes_path = sibling(&change.path, bytes);
            let bytes_now = attrs
                .read_ok(&bytes_path)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if bytes_now > 0 {
                vec![make(key, bytes_path, bytes_now.to_string(), change.knob)]
            } else {
                let ratio_path = sibling(&change.path, ratio);
                let value = attrs.read_ok(&ratio_path).unwrap_or(current);
                vec![make(key, ratio_path, value, change.knob)]
            }
        }
        // max_bytes is stored as a ratio of the dirty limit: the exact original is the
        // ratio in parts per million (Linux 6.5+), else the percent.
        Knob::BdiMaxRatio | Knob::BdiMaxBytes => {
            let fine = sibling(&change.path, "max_ratio_fine");
            match attrs.read_ok(&fine) {
                Some(value) => vec![make(key, fine, value, change.knob)],
                None => {
                    let pct = sibling(&change.path, "max_ratio");
                    let value = attrs.read_ok(&pct).unwrap_or(current);
                    vec![make(key, pct, value, change.knob)]
                }
            }
        }
        Knob::BdiMinRatio => {
            let fine = sibling(&change.path, "min_ratio_fine");
            match attrs.read_ok(&fine) {
                Some(value) => vec![make(key, fine, value, change.knob)],
                None => vec![make(key, change.path.clone(), current, change.knob)],
            }
        }
        // A temporary change is undone temporarily; a persistent one persistently.
        Knob::ScsiCacheType => {
            let prefix = if change.desired.starts_with("temporary ") {
                "temporary "
            } else {
                ""
            };
            vec![make(
                key,
                change.path.clone(),
                format!("{prefix}{current}"),
                change.knob,
            )]
        }
        knob => vec![make(key, change.path.clone(), current, knob)],
    }
}

/// One component of a path: a disk, bdi or H:C:T:L name, never a way out of its directory.
fn is_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Whether `path` is one that [`originals_for`] can record for the journal key `key`: the
/// knob table's attribute of that knob (or of its exclusive partner, or its `_fine` form, or
/// the `nr_requests` a scheduler switch resets) in the directory of the key's object:
/// `proc/sys/vm/` for `vm/...`, `proc/sys/kernel/` for `kernel/...`, `sys/class/bdi/B/` for `bdi/B/...`, `sys/block/D/` (and
/// `sys/block/D/bdi/`, `sys/block/D/device/scsi_disk/H:C:T:L/`) for `D/...`. Anything else
/// did not come from tunerd. The error says why, for the report.
pub(crate) fn recorded_path_fits(key: &str, path: &str) -> Result<(), String> {
    let refuse = |why: &str| Err(format!("{path:?} is {why} for {key:?}"));
    if path.starts_with('/') || path.split('/').any(|c| !is_component(c)) {
        return refuse("not a plain relative path");
    }
    let Some((object, knob_key)) = key.rsplit_once('/') else {
        return refuse("not a knob's file (malformed key)");
    };
    // Knobs whose object sits outside the key's directory: a disk's SCSI host, iSCSI session
    // and FC remote port, nvme_core's module parameters. Their path is one fixed shape.
    let outside = |class: &str, attr: &str| {
        path.strip_prefix(class)
            .and_then(|rest| rest.strip_suffix(attr))
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.strip_suffix('/'))
            .is_some_and(is_component)
    };
    let disk_object = object != "vm" && object != "kernel" && !object.starts_with("bdi/");
    let shape = match knob_key {
        "scsi_eh_deadline" if disk_object => Some(outside("sys/class/scsi_host", "eh_deadline")),
        "iscsi_recovery_tmo" if disk_object => {
            Some(outside("sys/class/iscsi_session", "recovery_tmo"))
        }
        "fc_fast_io_fail_tmo" if disk_object => {
            Some(outside("sys/class/fc_remote_ports", "fast_io_fail_tmo"))
        }
        "fc_dev_loss_tmo" if disk_object => {
            Some(outside("sys/class/fc_remote_ports", "dev_loss_tmo"))
        }
        "nvme_core_io_timeout" if object == "kernel" => {
            Some(path == "sys/module/nvme_core/parameters/io_timeout")
        }
        "nvme_core_max_retries" if object == "kernel" => {
            Some(path == "sys/module/nvme_core/parameters/max_retries")
        }
        _ => None,
    };
    if let Some(fits) = shape {
        return if fits && (!disk_object || is_component(object)) {
            Ok(())
        } else {
            refuse("not where the knob table puts this knob")
        };
    }
    // Bdi knobs of a disk with no bdi are planned against `sys/block/D/bdi/` (they then read
    // as absent, but an older journal may hold one).
    let (dir, scopes): (String, &[Scope]) = if object == "vm" {
        ("proc/sys/vm".to_string(), &[Scope::Vm])
    } else if object == "kernel" {
        ("proc/sys/kernel".to_string(), &[Scope::Kernel])
    } else if let Some(bdi) = object.strip_prefix("bdi/") {
        if !is_component(bdi) {
            return refuse("not a knob's file (malformed bdi name)");
        }
        (format!("sys/class/bdi/{bdi}"), &[Scope::Bdi])
    } else {
        if !is_component(object) {
            return refuse("not a knob's file (malformed disk name)");
        }
        (format!("sys/block/{object}"), &[Scope::Disk, Scope::Bdi])
    };
    let Some(attr) = path
        .strip_prefix(dir.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return refuse("outside the knob's directory");
    };
    let fits = Knob::ALL
        .into_iter()
        .filter(|k| k.key() == knob_key && scopes.contains(&k.scope()))
        .any(|knob| {
            let mut names = vec![knob.attr()];
            names.extend(knob.exclusive_with().map(Knob::attr));
            match knob {
                Knob::BdiMaxRatio | Knob::BdiMaxBytes => names.push("max_ratio_fine"),
                Knob::BdiMinRatio => names.push("min_ratio_fine"),
                _ => {}
            }
            match (knob.scope(), knob) {
                (Scope::Disk, Knob::ScsiCacheType | Knob::ScsiMaxRetries) => attr
                    .strip_prefix("device/scsi_disk/")
                    .and_then(|rest| rest.strip_suffix(knob.attr()))
                    .and_then(|rest| rest.strip_suffix('/'))
                    .is_some_and(is_component),
                (Scope::Bdi, _) if object != "vm" && !object.starts_with("bdi/") => attr
                    .strip_prefix("bdi/")
                    .is_some_and(|name| names.contains(&name)),
                _ => names.contains(&attr),
            }
        });
    if fits {
        Ok(())
    } else {
        refuse("not where the knob table puts this knob")
    }
}

/// The diskseq read for each object (once per disk, not per knob).
type Identities = BTreeMap<Object, (Option<String>, Option<u64>)>;

/// Disks whose changes an apply may do on several threads: at least this many a thread.
const DISKS_PER_THREAD: usize = 128;

/// Runs `work` on every change, in plan order, and returns its results in plan order.
///
/// With many disks (hundreds: a SAN guest, the 1,000-disk benchmark) the changes of each disk
/// whose written attributes are all its own (under `sys/block/NAME/`) run on a few threads,
/// a disk's changes in plan order on one thread; nothing such a write does can show in
/// another disk's attributes. What is shared or global (SCSI hosts, iSCSI sessions, FC
/// ports, bdis, `vm`, `kernel`) and the changes of any disk that touches it then run on this
/// thread, in plan order, as every change does with fewer disks.
fn for_each_change<R: Send>(
    root: &Root,
    changes: &[Change],
    lanes: &Lanes,
    work: impl Fn(&mut crate::host::sys::Attrs<'_>, &mut Identities, &Change) -> R + Sync,
) -> Vec<R> {
    let run = |range: std::ops::Range<usize>,
               attrs: &mut crate::host::sys::Attrs<'_>,
               identities: &mut Identities| {
        range
            .map(|i| (i, work(attrs, identities, &changes[i])))
            .collect::<Vec<_>>()
    };
    let (own, shared) = lanes;
    if crate::host::sys::threads_for(own.len(), DISKS_PER_THREAD) == 1 {
        let mut attrs = crate::host::sys::Attrs::new(root);
        let mut identities = Identities::new();
        return run(0..changes.len(), &mut attrs, &mut identities)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
    }
    let parts = crate::host::sys::in_chunks(own, DISKS_PER_THREAD, |part| {
        let mut attrs = crate::host::sys::Attrs::new(root);
        let mut identities = Identities::new();
        part.iter()
            .flat_map(|lane| run(lane.clone(), &mut attrs, &mut identities))
            .collect::<Vec<_>>()
    });
    let mut attrs = crate::host::sys::Attrs::new(root);
    let mut identities = Identities::new();
    let mut done: Vec<(usize, R)> = parts.into_iter().flatten().collect();
    for lane in shared {
        done.extend(run(lane.clone(), &mut attrs, &mut identities));
    }
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The plan's changes in runs of one object each: (the disks' own runs, the rest), both in
/// plan order. A disk's run is its own when every attribute it writes is under
/// `sys/block/NAME/` and no other run has the same object (a plan is sorted by object, so
/// each object is one run; a plan that is not has no runs of its own).
type Lanes = (Vec<std::ops::Range<usize>>, Vec<std::ops::Range<usize>>);

fn lanes(changes: &[Change]) -> Lanes {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    for i in 1..=changes.len() {
        if i == changes.len() || changes[i].object != changes[start].object {
            runs.push(start..i);
            start = i;
        }
    }
    let sorted = runs
        .windows(2)
        .all(|w| changes[w[0].start].object < changes[w[1].start].object);
    if !sorted {
        return (Vec::new(), runs);
    }
    let own = |run: &std::ops::Range<usize>| {
        let Object::Disk(name) = &changes[run.start].object else {
            return false;
        };
        changes[run.clone()]
            .iter()
            .filter(|c| c.action == Action::Set)
            .all(|c| {
                c.path
                    .strip_prefix("sys/block/")
                    .and_then(|rest| rest.strip_prefix(name.as_str()))
                    .is_some_and(|rest| rest.starts_with('/'))
            })
    };
    runs.into_iter().partition(own)
}

/// Applies a plan: records the originals of every knob it is about to write (one atomic
/// journal update, before the first write), then writes in plan order and reads each value
/// back. One knob's failure never stops the others. Takes the state lock for the duration.
pub(crate) fn apply(root: &Root, plan: &Plan) -> Result<Report, OriginalsError> {
    let _lock = root.lock_state().map_err(OriginalsError::Io)?;
    let mut journal = Originals::load(root)?;
    let before = journal.originals.len();
    let mut known: BTreeSet<String> = journal.originals.iter().map(|o| o.key.clone()).collect();
    // One open directory per disk for the originals' reads, and again for the writes.
    let lanes = lanes(&plan.changes);
    let recorded = for_each_change(root, &plan.changes, &lanes, |attrs, identities, change| {
        if change.action == Action::Set {
            originals_for(attrs, change, identities)
        } else {
            Vec::new()
        }
    });
    for original in recorded.into_iter().flatten() {
        if known.insert(original.key.clone()) {
            journal.originals.push(original);
        }
    }
    if journal.originals.len() != before {
        journal.version = JOURNAL_VERSION;
        journal.save(root)?;
    }

    let mut outcomes = for_each_change(root, &plan.changes, &lanes, |attrs, _, change| {
        let mut outcome = Outcome {
            target: change.label(),
            path: root.display(&change.path),
            status: Status::Unchanged,
            before: change.current.clone(),
            wanted: change.desired.clone(),
            after: None,
            error: None,
            reason: change.reason.clone(),
        };
        match change.action {
            Action::Unchanged => outcome.after = change.current.clone(),
            Action::Absent => {
                outcome.status = Status::Absent;
                outcome.error = change.note.clone();
            }
            Action::Refused => {
                outcome.status = Status::Refused;
                outcome.error = change.note.clone();
            }
            Action::Unsupported => {
                outcome.status = Status::Unsupported;
                outcome.error = change.note.clone();
            }
            Action::Set => write_change(attrs, change, &mut outcome),
        }
        outcome
    });
    let mut attrs = crate::host::sys::Attrs::new(root);
    // scsi_transport_fc checks each of a remote port's timers against the other's value now:
    // fast_io_fail_tmo must stay below dev_loss_tmo, and dev_loss_tmo may pass 600 s only
    // with fast_io_fail_tmo on. Raising both (off and 60 to 170 and 180) fails the first
    // write whichever goes first in some case: write a rejected one again once the other
    // one of its port is in (seen on Linux 6.1: EINVAL for fast_io_fail_tmo, dev_loss_tmo
    // still 60).
    for (i, change) in plan.changes.iter().enumerate() {
        let Some(other) = fc_pair(change.knob) else {
            continue;
        };
        let partner_in = plan.changes.iter().zip(&outcomes).any(|(c, o)| {
            c.knob == other
                && c.object == change.object
                && matches!(o.status, Status::Applied | Status::Adjusted)
        });
        if outcomes[i].status == Status::Rejected && partner_in {
            let mut outcome = outcomes[i].clone();
            outcome.error = None;
            write_change(&mut attrs, change, &mut outcome);
            outcomes[i] = outcome;
        }
    }
    Ok(Report { outcomes })
}

/// The other timer of an FC remote port.
fn fc_pair(knob: Knob) -> Option<Knob> {
    match knob {
        Knob::FcFastIoFailTmo => Some(Knob::FcDevLossTmo),
        Knob::FcDevLossTmo => Some(Knob::FcFastIoFailTmo),
        _ => None,
    }
}

/// Writes one change's value and reads it back into `outcome`.
fn write_change(attrs: &mut crate::host::sys::Attrs<'_>, change: &Change, outcome: &mut Outcome) {
    let (written, back) = attrs.write_read_back(&change.path, &change.desired);
    let back = back.ok().map(|v| change.knob.normalize(&v));
    match written {
        Ok(()) => {
            outcome.after = back;
            outcome.status = if outcome
                .after
                .as_deref()
                .is_some_and(|a| change.knob.matches(a, &change.desired))
            {
                Status::Applied
            } else {
                Status::Adjusted
            };
        }
        Err(e) => {
            outcome.status = Status::Rejected;
            outcome.error = Some(e.short());
            outcome.after = back;
        }
    }
}

/// Drift: every knob the profile wants that the kernel does not have now. `plan` already
/// holds the comparison; verify keeps the knobs that would be written.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Drift {
    pub target: String,
    pub path: String,
    pub desired: String,
    pub actual: Option<String>,
    pub reason: String,
}

pub(crate) fn verify(plan: &Plan) -> Vec<Drift> {
    plan.changes
        .iter()
        .filter(|c| c.action == Action::Set)
        .map(|c| Drift {
            target: c.label(),
            path: c.path.clone(),
            desired: c.desired.clone(),
            actual: c.current.clone(),
            reason: c.reason.clone(),
        })
        .collect()
}

/// Restores every recorded original, in apply order, and forgets those restored (and those
/// of devices that are gone). Originals that fail to restore stay in the journal for the
/// next try.
pub(crate) fn revert(root: &Root) -> Result<Report, OriginalsError> {
    revert_where(root, |_| true)
}

/// Restores the originals `pick` selects (by journal key) and keeps the others recorded.
pub(crate) fn revert_where(
    root: &Root,
    pick: impl Fn(&str) -> bool,
) -> Result<Report, OriginalsError> {
    let _lock = root.lock_state().map_err(OriginalsError::Io)?;
    let mut journal = Originals::load(root)?;
    let (mut entries, mut keep): (Vec<Original>, Vec<Original>) = journal
        .originals
        .iter()
        .cloned()
        .partition(|o| pick(&o.key));
    // Stable sort: by disk, then knob order; journal order within equal keys.
    entries.sort_by(|a, b| (a.disk.as_deref(), a.order).cmp(&(b.disk.as_deref(), b.order)));
    let mut outcomes = Vec::new();
    for original in entries {
        // The journal says where to write, and revert runs as root: a path the knob table
        // could not have recorded for this key (`../victim.txt`, `/etc/x`, another knob's
        // file) is refused before anything is read or written, and dropped from the journal,
        // since no revert could ever apply it (security review, finding 13).
        if let Err(why) = recorded_path_fits(&original.key, &original.path) {
            outcomes.push(Outcome {
                target: original.key.replace('/', " "),
                path: original.path.clone(),
                status: Status::Refused,
                before: None,
                wanted: original.value.clone(),
                after: None,
                error: Some(format!("not written: {why}; dropped from the journal")),
                reason: String::new(),
            });
            continue;
        }
        let mut outcome = Outcome {
            target: original.key.replace('/', " "),
            path: root.display(&original.path),
            status: Status::Restored,
            before: root.read(&original.path).ok(),
            wanted: original.value.clone(),
            after: None,
            error: None,
            reason: String::new(),
        };
        if let Some(name) = &original.disk {
            let now = root
                .read_opt(&format!("sys/block/{name}/diskseq"))
                .ok()
                .flatten()
                .and_then(|s| s.parse::<u64>().ok());
            let present = root.exists(&format!("sys/block/{name}"));
            let replaced = original.diskseq.is_some() && now != original.diskseq;
            if !present || replaced {
                outcome.status = Status::Gone;
                outcome.error = Some(if present {
                    format!(
                        "{name} was replaced since its original was recorded (diskseq {} -> {}); dropped",
                        original.diskseq.unwrap_or(0),
                        now.map_or("none".to_string(), |n| n.to_string())
                    )
                } else {
                    format!("{name} is gone; dropped")
                });
                outcomes.push(outcome);
                continue;
            }
        }
        // Always write: writing a value that is already there changes nothing, and a
        // restored scheduler must be followed by its nr_requests even when they look equal.
        match root.write(&original.path, &original.value) {
            Ok(()) => outcome.after = root.read(&original.path).ok(),
            Err(e) => {
                outcome.status = Status::Rejected;
                outcome.error = Some(e.short());
                keep.push(original.clone());
            }
        }
        outcomes.push(outcome);
    }
    journal.originals = keep;
    journal.save(root)?;
    Ok(Report { outcomes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_written_as_serde_json_pretty_writes_it() {
        let original = |key: &str, disk: Option<&str>, diskseq: Option<u64>| Original {
            key: key.to_string(),
            path: format!("sys/block/{key}/queue/scheduler"),
            value: "none [mq-deadline] \"q\" \\ \u{1} \u{7f} é\n\t".to_string(),
            disk: disk.map(str::to_string),
            diskseq,
            order: 17,
        };
        for originals in [
            vec![],
            vec![original("sda", None, None)],
            vec![
                original("sda", Some("sda"), Some(42)),
                original("vm/dirty_ratio", None, None),
                original("sdb", Some("sdb"), None),
                original("sdc", None, Some(u64::MAX)),
            ],
        ] {
            let journal = Originals {
                version: JOURNAL_VERSION,
                originals,
            };
            assert_eq!(
                String::from_utf8(journal.to_json_pretty().expect("serialises")),
                String::from_utf8(serde_json::to_vec_pretty(&journal).expect("serialises"))
            );
        }
    }

    #[test]
    fn pairs_share_one_journal_key() {
        assert_eq!(
            originals_key(&Object::Vm, Knob::DirtyBytes),
            "vm/dirty_ratio"
        );
        assert_eq!(
            originals_key(&Object::Bdi("0:53".into()), Knob::BdiMaxBytes),
            "bdi/0:53/bdi_max_ratio"
        );
        assert_eq!(
            originals_key(&Object::Disk("sda".into()), Knob::Scheduler),
            "sda/scheduler"
        );
    }

    #[test]
    fn revert_writes_only_where_the_knob_table_puts_a_knob() {
        for (key, path) in [
            ("vm/swappiness", "proc/sys/vm/swappiness"),
            ("vm/dirty_ratio", "proc/sys/vm/dirty_bytes"),
            (
                "vm/dirty_background_ratio",
                "proc/sys/vm/dirty_background_ratio",
            ),
            ("sda/scheduler", "sys/block/sda/queue/scheduler"),
            ("sda/nr_requests", "sys/block/sda/queue/nr_requests"),
            ("sda/read_ahead_kb", "sys/block/sda/queue/read_ahead_kb"),
            ("sda/scsi_timeout", "sys/block/sda/device/timeout"),
            (
                "sda/scsi_cache_type",
                "sys/block/sda/device/scsi_disk/2:0:0:0/cache_type",
            ),
            ("sda/bdi_max_ratio", "sys/block/sda/bdi/max_ratio"),
            (
                "bdi/0:53/bdi_max_ratio",
                "sys/class/bdi/0:53/max_ratio_fine",
            ),
            ("bdi/0:53/bdi_max_ratio", "sys/class/bdi/0:53/max_bytes"),
            (
                "bdi/0:53/bdi_min_ratio",
                "sys/class/bdi/0:53/min_ratio_fine",
            ),
            ("bdi/0:53/read_ahead_kb", "sys/class/bdi/0:53/read_ahead_kb"),
            (
                "sdb/iscsi_recovery_tmo",
                "sys/class/iscsi_session/session1/recovery_tmo",
            ),
            (
                "sdb/scsi_eh_deadline",
                "sys/class/scsi_host/host2/eh_deadline",
            ),
            (
                "sdb/fc_dev_loss_tmo",
                "sys/class/fc_remote_ports/rport-0:0-1/dev_loss_tmo",
            ),
            (
                "sda/scsi_max_retries",
                "sys/block/sda/device/scsi_disk/2:0:0:0/max_retries",
            ),
            (
                "kernel/hung_task_warnings",
                "proc/sys/kernel/hung_task_warnings",
            ),
            (
                "kernel/nvme_core_io_timeout",
                "sys/module/nvme_core/parameters/io_timeout",
            ),
        ] {
            assert_eq!(recorded_path_fits(key, path), Ok(()), "{key} {path}");
        }
        for (key, path) in [
            ("vm/swappiness", "../victim.txt"),
            ("vm/swappiness", "/etc/passwd"),
            ("vm/swappiness", "proc/sys/vm/../../../etc/passwd"),
            ("vm/swappiness", "proc/sys/vm/dirty_ratio"),
            ("vm/swappiness", "proc/sys/kernel/core_pattern"),
            ("sda/scheduler", "sys/block/sdb/queue/scheduler"),
            ("../x/scheduler", "sys/block/../x/queue/scheduler"),
            (
                "sda/scsi_cache_type",
                "sys/block/sda/device/scsi_disk/../cache_type",
            ),
            (
                "bdi/../../etc/bdi_max_ratio",
                "sys/class/bdi/../../etc/max_ratio",
            ),
            ("sda/no_such_knob", "sys/block/sda/queue/no_such_knob"),
            ("swappiness", "proc/sys/vm/swappiness"),
            ("vm/swappiness", "proc/sys/vm//swappiness"),
            (
                "sdb/iscsi_recovery_tmo",
                "sys/class/iscsi_session/../../../etc/recovery_tmo",
            ),
            (
                "sdb/iscsi_recovery_tmo",
                "sys/class/scsi_host/host2/recovery_tmo",
            ),
            ("kernel/hung_task_warnings", "proc/sys/kernel/core_pattern"),
            (
                "kernel/nvme_core_io_timeout",
                "sys/module/nvme_core/parameters/admin_timeout",
            ),
            (
                "vm/nvme_core_io_timeout",
                "sys/module/nvme_core/parameters/io_timeout",
            ),
            (
                "sda/scsi_max_retries",
                "sys/block/sda/device/scsi_disk/2:0:0:0/cache_type",
            ),
        ] {
            assert!(recorded_path_fits(key, path).is_err(), "{key} {path}");
        }
    }

    #[test]
    fn max_bytes_matches_within_a_percent() {
        assert!(Knob::BdiMaxBytes.matches("123448514", "123456789"));
        assert!(!Knob::BdiMaxBytes.matches("100000000", "123456789"));
        assert!(!Knob::NrRequests.matches("4", "3"));
        assert!(Knob::IoTimeoutMs.matches("4294967288", "4294967295"));
        assert!(!Knob::IoTimeoutMs.matches("30000", "4294967295"));
    }
}
