//! What is there: the platform (hypervisor or cloud), every whole disk classified by driver
//! and transport, how disks stack (dm and md over their slaves), and the mounts with their
//! backing-device-info (bdi) names.
//!
//! Everything is read through [`Root`], so the same code classifies a fixture tree and the
//! machine it runs on.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::host::sys::{Root, SysDir, SysError};

/// The kind of a whole disk: which driver queues its I/O and over which transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum DiskKind {
    VirtioBlk,
    VirtioScsi,
    /// Hyper-V / Azure synthetic SCSI (`storvsc`).
    Storvsc,
    /// VMware paravirtual SCSI.
    Pvscsi,
    /// SCSI over any other host adapter (LSI, AHCI/ATA, USB, ...).
    Scsi,
    Iscsi,
    Nvme,
    /// Xen paravirtual block front end (`xvd*`).
    Xen,
    Dm,
    Md,
    Loop,
    Zram,
    Ram,
    Optical,
    Other,
}

impl DiskKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DiskKind::VirtioBlk => "virtio-blk",
            DiskKind::VirtioScsi => "virtio-scsi",
            DiskKind::Storvsc => "storvsc",
            DiskKind::Pvscsi => "pvscsi",
            DiskKind::Scsi => "scsi",
            DiskKind::Iscsi => "iscsi",
            DiskKind::Nvme => "nvme",
            DiskKind::Xen => "xen",
            DiskKind::Dm => "dm",
            DiskKind::Md => "md",
            DiskKind::Loop => "loop",
            DiskKind::Zram => "zram",
            DiskKind::Ram => "ram",
            DiskKind::Optical => "optical",
            DiskKind::Other => "other",
        }
    }

    pub(crate) const ALL: [DiskKind; 15] = [
        DiskKind::VirtioBlk,
        DiskKind::VirtioScsi,
        DiskKind::Storvsc,
        DiskKind::Pvscsi,
        DiskKind::Scsi,
        DiskKind::Iscsi,
        DiskKind::Nvme,
        DiskKind::Xen,
        DiskKind::Dm,
        DiskKind::Md,
        DiskKind::Loop,
        DiskKind::Zram,
        DiskKind::Ram,
        DiskKind::Optical,
        DiskKind::Other,
    ];

    /// Disks whose sd device and SCSI attributes (`device/timeout`, ...) exist.
    pub(crate) fn is_scsi(self) -> bool {
        matches!(
            self,
            DiskKind::VirtioScsi
                | DiskKind::Storvsc
                | DiskKind::Pvscsi
                | DiskKind::Scsi
                | DiskKind::Iscsi
        )
    }
}

/// One whole disk under `/sys/block` (partitions are not disks and are skipped).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Disk {
    pub name: String,
    /// `MAJ:MIN`.
    pub dev: String,
    /// Increases every time a device of this name is (re)created; tells a re-attached loop
    /// device from the one whose originals were recorded. `None` before Linux 5.15.
    pub diskseq: Option<u64>,
    pub kind: DiskKind,
    /// The driver that owns the disk or its host adapter (`virtio_blk`, `sd` on `storvsc`,
    /// `nvme`, `vbd`, ...), as sysfs names it.
    pub driver: String,
    /// Cloud-specific identity from the model string: `aws-ebs`, `aws-instance-store`,
    /// `gce-pd`, `gce-local-ssd`, `azure-nvme`, or empty.
    pub cloud: String,
    pub vendor: String,
    pub model: String,
    pub serial: String,
    pub rotational: bool,
    pub removable: bool,
    pub size_bytes: u64,
    /// SCSI address `H:C:T:L`, for sd devices.
    pub hctl: Option<String>,
    /// The SCSI host (`host2`), the iSCSI session (`session1`) and the FC remote port
    /// (`rport-0:0-1`) the sd device hangs off, from its place in the device tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scsi_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iscsi_session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fc_rport: Option<String>,
    /// A path of a dm-multipath map (a holder's dm uuid starts `mpath-`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub multipath_path: bool,
    /// dm target family from the uuid prefix (`mpath`, `LVM`, `CRYPT`, ...) and dm name.
    pub dm_kind: Option<String>,
    pub dm_name: Option<String>,
    /// The devices this one is stacked on (`slaves/`) and the ones stacked on it (`holders/`).
    pub slaves: Vec<String>,
    pub holders: Vec<String>,
    /// Whether this device queues and schedules its own I/O. Bio-based stacked devices (LVM,
    /// dm-crypt, md) pass bios straight down: their scheduler and SCSI knobs belong on the
    /// devices below. Request-based dm-multipath queues at its own level.
    pub queues_io: bool,
    /// The bdi name (`MAJ:MIN`) under `/sys/class/bdi`.
    pub bdi: Option<String>,
}

impl Disk {
    /// The attribute a rule's `match` key refers to, as the string a glob is matched against.
    /// Borrowed: a plan of 1,000 disks asks ~18,000 times.
    pub(crate) fn attribute(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        let flag = |b: bool| Cow::Borrowed(if b { "1" } else { "0" });
        fn opt(v: &Option<String>) -> Cow<'_, str> {
            Cow::Borrowed(v.as_deref().unwrap_or(""))
        }
        Some(match key {
            "name" => Cow::Borrowed(self.name.as_str()),
            "kind" => Cow::Borrowed(self.kind.as_str()),
            "driver" => Cow::Borrowed(self.driver.as_str()),
            "cloud" => Cow::Borrowed(self.cloud.as_str()),
            "vendor" => Cow::Borrowed(self.vendor.as_str()),
            "model" => Cow::Borrowed(self.model.as_str()),
            "serial" => Cow::Borrowed(self.serial.as_str()),
            "rotational" => flag(self.rotational),
            "removable" => flag(self.removable),
            "dm_kind" => opt(&self.dm_kind),
            "dm_name" => opt(&self.dm_name),
            "multipath_path" => flag(self.multipath_path),
            _ => return None,
        })
    }

    pub(crate) const MATCH_KEYS: [&'static str; 12] = [
        "name",
        "kind",
        "driver",
        "cloud",
        "vendor",
        "model",
        "serial",
        "rotational",
        "removable",
        "dm_kind",
        "dm_name",
        "multipath_path",
    ];

    pub(crate) fn sys_dir(&self) -> String {
        format!("sys/block/{}", self.name)
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    /// `MAJ:MIN` of the mounted filesystem (`0:53` for NFS: also its bdi name).
    pub dev: String,
    pub options: String,
    /// The filesystem's own options (`errors=remount-ro`; NFS `soft`, `timeo`, `retrans`).
    pub super_options: String,
    /// The whole disk under the filesystem, when it is a block device we inventoried.
    pub disk: Option<String>,
    /// The bdi that throttles this mount's dirty pages.
    pub bdi: Option<String>,
}

impl Mount {
    pub(crate) fn attribute(&self, key: &str) -> Option<&str> {
        Some(match key {
            "fstype" => &self.fstype,
            "mount_point" => &self.mount_point,
            "source" => &self.source,
            "disk" => self.disk.as_deref().unwrap_or(""),
            _ => return None,
        })
    }

    pub(crate) const MATCH_KEYS: [&'static str; 4] = ["fstype", "mount_point", "source", "disk"];

    pub(crate) fn is_network(&self) -> bool {
        matches!(
            self.fstype.as_str(),
            "nfs" | "nfs4" | "cifs" | "smb3" | "ceph" | "glusterfs" | "fuse.glusterfs" | "9p"
        )
    }
}

/// The hypervisor or cloud the machine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PlatformKind {
    Vmware,
    Hyperv,
    Azure,
    AwsNitro,
    AwsXen,
    Gce,
    Kvm,
    Xen,
    None,
}

impl PlatformKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PlatformKind::Vmware => "vmware",
            PlatformKind::Hyperv => "hyperv",
            PlatformKind::Azure => "azure",
            PlatformKind::AwsNitro => "aws-nitro",
            PlatformKind::AwsXen => "aws-xen",
            PlatformKind::Gce => "gce",
            PlatformKind::Kvm => "kvm",
            PlatformKind::Xen => "xen",
            PlatformKind::None => "none",
        }
    }

    /// The built-in profile `profile = "auto"` picks.
    pub(crate) fn profile(self) -> &'static str {
        match self {
            PlatformKind::Vmware => "vmware",
            PlatformKind::Hyperv => "hyperv",
            PlatformKind::Azure => "azure",
            PlatformKind::AwsNitro | PlatformKind::AwsXen => "aws",
            PlatformKind::Gce => "gcp",
            PlatformKind::Kvm => "kvm",
            PlatformKind::Xen | PlatformKind::None => "default",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Platform {
    pub kind: PlatformKind,
    /// What the decision rests on, one fact a line: `DMI sys_vendor = "VMware, Inc."`.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Inventory {
    pub platform: Platform,
    pub disks: Vec<Disk>,
    pub mounts: Vec<Mount>,
}

impl Inventory {
    pub(crate) fn read(root: &Root) -> Result<Inventory, SysError> {
        let disks = read_disks(root, &root.list("sys/block")?)?;
        let mounts = read_mounts(root, &disks)?;
        let platform = detect_platform(root, &disks);
        Ok(Inventory {
            platform,
            disks,
            mounts,
        })
    }

    /// Re-reads one disk (and the disks it stands on, whose `holders` changed with it) after a
    /// hotplug event. Returns whether the disk exists now.
    pub(crate) fn refresh_disk(&mut self, root: &Root, name: &str) -> Result<bool, SysError> {
        let mut host_names = BTreeMap::new();
        let dirs = Dirs::open(root);
        let fresh = read_disk(root, &dirs, name, &mut host_names)?;
        let slaves = fresh.as_ref().map(|d| d.slaves.clone()).unwrap_or_default();
        self.disks.retain(|d| d.name != name);
        let exists = fresh.is_some();
        if let Some(disk) = fresh {
            self.disks.push(disk);
        }
        for slave in slaves {
            if let Some(d) = read_disk(root, &dirs, &slave, &mut host_names)? {
                self.disks.retain(|x| x.name != slave);
                self.disks.push(d);
            }
        }
        self.disks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(exists)
    }

    /// Re-reads the mount table (for the failure watchers: mounts come and go).
    pub(crate) fn refresh_mounts(&mut self, root: &Root) -> Result<(), SysError> {
        self.mounts = read_mounts(root, &self.disks)?;
        Ok(())
    }

    /// Forgets a removed disk.
    pub(crate) fn remove_disk(&mut self, name: &str) {
        self.disks.retain(|d| d.name != name);
        for d in &mut self.disks {
            d.holders.retain(|h| h != name);
            d.slaves.retain(|s| s != name);
        }
    }

    pub(crate) fn disk(&self, name: &str) -> Option<&Disk> {
        self.disks.iter().find(|d| d.name == name)
    }

    /// The devices at the bottom of `name`'s stack (itself when it stands on nothing).
    pub(crate) fn leaves(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![name.to_string()];
        let mut seen = 0usize;
        while let Some(n) = stack.pop() {
            seen += 1;
            if seen > 4096 {
                break; // a cycle can only come from a corrupt tree; stop rather than spin
            }
            match self.disk(&n) {
                Some(d) if !d.slaves.is_empty() => stack.extend(d.slaves.iter().rev().cloned()),
                _ => {
                    if !out.contains(&n) {
                        out.push(n)
                    }
                }
            }
        }
        out
    }
}

/// The directories every disk's reads start from, opened once per inventory: a disk's
/// directory, its links and udev's record of it are then reached relative to them, not by a
/// walk from `/` each (half the path lookups of an inventory of 1,000 disks).
struct Dirs<'r> {
    block: Option<SysDir<'r>>,
    /// `run/udev/data`; `None` without udev's database (no udevd, a fixture tree): then no
    /// disk's record is looked for.
    udev: Option<SysDir<'r>>,
}

impl<'r> Dirs<'r> {
    fn open(root: &'r Root) -> Dirs<'r> {
        Dirs {
            block: root.open_dir("sys/block").ok(),
            udev: root.open_dir("run/udev/data").ok(),
        }
    }
}

/// Reads the `/sys/block` entries `names`, in that order. Many disks are read by a few
/// threads (at most 4, one per CPU): the time is nearly all path lookups and sysfs reads in
/// the kernel, which run in parallel, and a SAN guest with hundreds of paths pays it at start
/// and on every `tunerctl` call.
fn read_disks(root: &Root, names: &[String]) -> Result<Vec<Disk>, SysError> {
    fn chunk(root: &Root, names: &[String]) -> Result<Vec<Disk>, SysError> {
        let dirs = Dirs::open(root);
        let mut host_names = BTreeMap::new();
        let mut disks = Vec::with_capacity(names.len());
        for name in names {
            if let Some(disk) = read_disk(root, &dirs, name, &mut host_names)? {
                disks.push(disk);
            }
        }
        Ok(disks)
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(4)
        .min(names.len() / 128)
        .max(1);
    if threads == 1 {
        return chunk(root, names);
    }
    let per = names.len().div_ceil(threads);
    let parts: Vec<Result<Vec<Disk>, SysError>> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .chunks(per)
            .map(|part| s.spawn(move || chunk(root, part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                // A panic in a reader is a bug: read those disks again on this thread.
                h.join().unwrap_or_else(|_| Ok(Vec::new()))
            })
            .collect()
    });
    let mut disks = Vec::with_capacity(names.len());
    for part in parts {
        disks.extend(part?);
    }
    Ok(disks)
}

/// Reads one `/sys/block` entry; `None` for what is not a whole disk.
fn read_disk(
    root: &Root,
    dirs: &Dirs<'_>,
    name: &str,
    host_names: &mut BTreeMap<String, String>,
) -> Result<Option<Disk>, SysError> {
    let dir = format!("sys/block/{name}");
    let real = dirs
        .block
        .as_ref()
        .and_then(|b| b.link_real_path(name))
        .or_else(|| root.sys_real_path(&dir))
        .unwrap_or_default();
    // One open directory for all the disk's attributes (see SysDir).
    let d = match (&dirs.block, real.is_empty()) {
        (Some(b), false) => b.open_dir(name)?,
        _ => root.open_dir(if real.is_empty() { &dir } else { &real })?,
    };
    // Partitions never appear directly under /sys/block, but a hand-made tree might hold one.
    if d.exists("partition") {
        return Ok(None);
    }
    let attr = |rel: &str| d.read_lossy(rel).unwrap_or_default();
    let dev = attr("dev");
    let device_real = if real.is_empty() {
        String::new()
    } else {
        d.link_real_path_from(&real, "device")
            .or_else(|| root.sys_real_path(&format!("{real}/device")))
            .unwrap_or_default()
    };
    let device_driver = d.link_name("device/driver");

    let mut vendor = attr("device/vendor").trim().to_string();
    let mut model = attr("device/model").trim().to_string();
    let mut serial = attr("serial").trim().to_string();
    if serial.is_empty() {
        serial = attr("device/serial").trim().to_string();
    }
    let mut hctl = None;
    let mut scsi_host = None;
    let mut iscsi_session = None;
    let mut fc_rport = None;
    let mut dm_kind = None;
    let mut dm_name = None;
    let mut queues_io = true;

    let (kind, driver) = if name.starts_with("loop") {
        (DiskKind::Loop, "loop".to_string())
    } else if name.starts_with("zram") {
        (DiskKind::Zram, "zram".to_string())
    } else if name.starts_with("ram") {
        (DiskKind::Ram, "brd".to_string())
    } else if name.starts_with("dm-") {
        let uuid = attr("dm/uuid");
        let family = uuid.split('-').next().unwrap_or("").to_string();
        dm_name = Some(attr("dm/name"));
        // dm-multipath is request-based: it has its own request queue and elevator. The
        // other targets (linear/LVM, crypt, thin, ...) are bio-based.
        queues_io = family == "mpath";
        dm_kind = Some(if family.is_empty() {
            "unknown".to_string()
        } else {
            family
        });
        (DiskKind::Dm, "device-mapper".to_string())
    } else if name.starts_with("md") {
        queues_io = false;
        (DiskKind::Md, "md".to_string())
    } else if name.starts_with("nvme") {
        // The namespace's `device` is the controller, which carries model and serial.
        let pci_driver = d
            .link_name("device/device/driver")
            .unwrap_or_else(|| "nvme".to_string());
        (DiskKind::Nvme, pci_driver)
    } else if device_driver.as_deref() == Some("virtio_blk") {
        (DiskKind::VirtioBlk, "virtio_blk".to_string())
    } else if device_driver.as_deref() == Some("vbd") || name.starts_with("xvd") {
        (DiskKind::Xen, "vbd".to_string())
    } else if device_driver.as_deref() == Some("sr") || name.starts_with("sr") {
        (DiskKind::Optical, "sr".to_string())
    } else if device_driver.as_deref() == Some("sd") || name.starts_with("sd") {
        hctl = device_real.rsplit('/').next().map(str::to_string);
        let host = device_real
            .split('/')
            .find(|c| c.starts_with("host") && c[4..].chars().all(|ch| ch.is_ascii_digit()))
            .unwrap_or("");
        // Hundreds of LUNs share a host: read its proc_name once.
        let proc_name = host_names
            .entry(host.to_string())
            .or_insert_with(|| {
                root.read_lossy(&format!("sys/class/scsi_host/{host}/proc_name"))
                    .unwrap_or_default()
            })
            .clone();
        let numbered = |c: &str, prefix: &str| {
            c.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|ch| ch.is_ascii_digit()))
        };
        scsi_host = (!host.is_empty()).then(|| host.to_string());
        iscsi_session = device_real
            .split('/')
            .find(|c| numbered(c, "session"))
            .map(str::to_string);
        fc_rport = device_real
            .split('/')
            .find(|c| c.starts_with("rport-"))
            .map(str::to_string);
        let iscsi = iscsi_session.is_some();
        let kind = match proc_name.as_str() {
            _ if iscsi || proc_name.starts_with("iscsi") => DiskKind::Iscsi,
            "virtio_scsi" => DiskKind::VirtioScsi,
            "storvsc" => DiskKind::Storvsc,
            "vmw_pvscsi" => DiskKind::Pvscsi,
            _ => DiskKind::Scsi,
        };
        let driver = if proc_name.is_empty() {
            "sd".to_string()
        } else {
            proc_name
        };
        (kind, driver)
    } else if real.starts_with("sys/devices/virtual") {
        (DiskKind::Other, "virtual".to_string())
    } else {
        (
            DiskKind::Other,
            device_driver.unwrap_or_else(|| "unknown".to_string()),
        )
    };
    if kind == DiskKind::Nvme || kind == DiskKind::VirtioBlk {
        vendor.clear();
    }
    if kind == DiskKind::Loop {
        model = attr("loop/backing_file");
    }
    let cloud = cloud_identity(kind, &vendor, &model).to_string();
    let list_links = |sub: &str| d.list(sub);
    let bdi = d.link_name("bdi").or_else(|| {
        // Without the link (old kernels), the bdi of a disk is named by its MAJ:MIN.
        (!dev.is_empty() && root.exists(&format!("sys/class/bdi/{dev}"))).then(|| dev.clone())
    });
    let holders = list_links("holders")?;
    // A path of a multipath map: its holder is the map, or, before multipathd has made the
    // map (a path just logged in), multipath-tools' udev rules have claimed it already
    // (`DM_MULTIPATH_DEVICE_PATH=1` in udev's database), so tunerd never tunes a path as a
    // lone disk in between and then fights multipathd over it.
    let multipath_path = holders.iter().any(|h| {
        root.read_lossy(&format!("sys/block/{h}/dm/uuid"))
            .is_some_and(|u| u.starts_with("mpath-"))
    }) || dirs
        .udev
        .as_ref()
        .and_then(|u| u.read_lossy(&format!("b{dev}")))
        .is_some_and(|db| db.lines().any(|l| l == "E:DM_MULTIPATH_DEVICE_PATH=1"));
    Ok(Some(Disk {
        name: name.to_string(),
        diskseq: attr("diskseq").parse().ok(),
        dev,
        kind,
        driver,
        cloud,
        vendor,
        model,
        serial,
        rotational: attr("queue/rotational") == "1",
        removable: attr("removable") == "1",
        size_bytes: attr("size").parse::<u64>().unwrap_or(0).saturating_mul(512),
        hctl,
        scsi_host,
        iscsi_session,
        fc_rport,
        dm_kind,
        dm_name,
        slaves: list_links("slaves")?,
        holders,
        multipath_path,
        queues_io,
        bdi,
    }))
}

/// Which cloud disk a model string names. Values from the vendors' udev rules
/// (amazon-ec2-utils 70-ec2-nvme-devices.rules, GCE guest-configs, azure-vm-utils).
fn cloud_identity(kind: DiskKind, vendor: &str, model: &str) -> &'static str {
    match (kind, model) {
        (DiskKind::Nvme, "Amazon Elastic Block Store") => "aws-ebs",
        (DiskKind::Nvme, "Amazon EC2 NVMe Instance Storage") => "aws-instance-store",
        (DiskKind::Nvme, "nvme_card-pd") => "gce-pd",
        (DiskKind::Nvme, "nvme_card") => "gce-local-ssd",
        (DiskKind::Nvme, m) if m.starts_with("MSFT NVMe Accelerator") => "azure-nvme",
        (_, "EphemeralDisk") if vendor == "Google" => "gce-local-ssd",
        (_, "PersistentDisk") if vendor == "Google" => "gce-pd",
        _ => "",
    }
}

/// Parses `/proc/self/mountinfo` (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
/// [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS`.
/// `(MAJ:MIN, mount point, fstype, source, mount options, super options)` per line.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<(String, String, String, String, String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 3 {
            continue;
        }
        out.push((
            fields[2].to_string(),
            unescape_octal(fields[4]),
            fields[sep + 1].to_string(),
            unescape_octal(fields[sep + 2]),
            fields[5].to_string(),
            fields.get(sep + 3).copied().unwrap_or("").to_string(),
        ));
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let code = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|oct| u8::from_str_radix(oct, 8).ok());
            if let Some(v) = code {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_mounts(root: &Root, disks: &[Disk]) -> Result<Vec<Mount>, SysError> {
    let Some(text) = root.read_opt("proc/self/mountinfo")? else {
        return Ok(Vec::new());
    };
    // A partition's MAJ:MIN leads to its whole disk through /sys/dev/block or the disk's
    // partition subdirectories.
    let disk_of = |dev: &str| -> Option<String> {
        if let Some(d) = disks.iter().find(|d| d.dev == dev) {
            return Some(d.name.clone());
        }
        let real = root.sys_real_path(&format!("sys/dev/block/{dev}"))?;
        let mut parts: Vec<&str> = real.split('/').collect();
        parts.pop();
        let parent = parts.last()?;
        disks
            .iter()
            .find(|d| d.name == *parent)
            .map(|d| d.name.clone())
    };
    let mut mounts = Vec::new();
    for (dev, mount_point, fstype, source, options, super_options) in parse_mountinfo(&text) {
        let disk = if dev.starts_with("0:") {
            None
        } else {
            disk_of(&dev).or_else(|| {
                // Fixture trees and containers may lack /sys/dev: fall back to the source.
                let base = source.strip_prefix("/dev/")?;
                disks
                    .iter()
                    .find(|d| {
                        base == d.name || (base.starts_with(&d.name) && d.kind != DiskKind::Dm)
                    })
                    .map(|d| d.name.clone())
            })
        };
        let bdi = match &disk {
            Some(name) => disks
                .iter()
                .find(|d| &d.name == name)
                .and_then(|d| d.bdi.clone()),
            None => root
                .exists(&format!("sys/class/bdi/{dev}"))
                .then(|| dev.clone()),
        };
        mounts.push(Mount {
            mount_point,
            fstype,
            source,
            dev,
            options,
            super_options,
            disk,
            bdi,
        });
    }
    Ok(mounts)
}

const AZURE_ASSET_TAG: &str = "7783-7084-3265-9085-8269-3286-77";

/// Decides the platform from DMI, `/sys/hypervisor` and, when those say nothing (as on
/// firecracker-style microVMs without DMI), from the disks themselves.
fn detect_platform(root: &Root, disks: &[Disk]) -> Platform {
    let dmi = |key: &str| {
        root.read_lossy(&format!("sys/class/dmi/id/{key}"))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let sys_vendor = dmi("sys_vendor");
    let product_name = dmi("product_name");
    let product_version = dmi("product_version");
    let bios_vendor = dmi("bios_vendor");
    let bios_version = dmi("bios_version");
    let board_vendor = dmi("board_vendor");
    let asset_tag = dmi("chassis_asset_tag");
    let hypervisor = root.read_lossy("sys/hypervisor/type").unwrap_or_default();
    let mut evidence = Vec::new();
    let mut say = |key: &str, value: &str| evidence.push(format!("DMI {key} = {value:?}"));

    let kind = if asset_tag == AZURE_ASSET_TAG {
        say("chassis_asset_tag", &asset_tag);
        PlatformKind::Azure
    } else if sys_vendor == "Microsoft Corporation" && product_name == "Virtual Machine" {
        say("sys_vendor", &sys_vendor);
        say("product_name", &product_name);
        PlatformKind::Hyperv
    } else if sys_vendor.starts_with("VMware") || product_name.starts_with("VMware") {
        say("sys_vendor", &sys_vendor);
        PlatformKind::Vmware
    } else if [&sys_vendor, &bios_vendor, &board_vendor]
        .iter()
        .any(|v| v.as_str() == "Amazon EC2")
    {
        say("sys_vendor", &sys_vendor);
        PlatformKind::AwsNitro
    } else if product_version.to_ascii_lowercase().contains("amazon")
        || bios_version.to_ascii_lowercase().contains("amazon")
    {
        say("product_version", &product_version);
        PlatformKind::AwsXen
    } else if sys_vendor == "Google" || product_name == "Google Compute Engine" {
        say("sys_vendor", &sys_vendor);
        PlatformKind::Gce
    } else if [
        "QEMU",
        "Red Hat",
        "oVirt",
        "OpenStack Foundation",
        "Nutanix",
    ]
    .iter()
    .any(|v| sys_vendor.starts_with(v))
        || product_name.contains("KVM")
        || product_name.contains("QEMU")
        || bios_vendor == "SeaBIOS"
    {
        say("sys_vendor", &sys_vendor);
        say("product_name", &product_name);
        PlatformKind::Kvm
    } else if sys_vendor == "Xen" || hypervisor == "xen" {
        if hypervisor == "xen" {
            evidence.push("/sys/hypervisor/type = \"xen\"".to_string());
        } else {
            say("sys_vendor", &sys_vendor);
        }
        PlatformKind::Xen
    } else {
        if sys_vendor.is_empty() {
            evidence.push("no DMI tables".to_string());
        } else {
            say("sys_vendor", &sys_vendor);
        }
        platform_from_disks(disks, &mut evidence)
    };
    Platform { kind, evidence }
}

fn platform_from_disks(disks: &[Disk], evidence: &mut Vec<String>) -> PlatformKind {
    let by = |pred: &dyn Fn(&Disk) -> bool| disks.iter().find(|d| pred(d));
    let found: Option<(&Disk, PlatformKind)> = by(&|d| d.cloud.starts_with("aws"))
        .map(|d| (d, PlatformKind::AwsNitro))
        .or_else(|| by(&|d| d.cloud.starts_with("gce")).map(|d| (d, PlatformKind::Gce)))
        .or_else(|| by(&|d| d.cloud.starts_with("azure")).map(|d| (d, PlatformKind::Azure)))
        .or_else(|| by(&|d| d.kind == DiskKind::Storvsc).map(|d| (d, PlatformKind::Hyperv)))
        .or_else(|| by(&|d| d.kind == DiskKind::Pvscsi).map(|d| (d, PlatformKind::Vmware)))
        .or_else(|| {
            by(&|d| matches!(d.kind, DiskKind::VirtioBlk | DiskKind::VirtioScsi))
                .map(|d| (d, PlatformKind::Kvm))
        })
        .or_else(|| by(&|d| d.kind == DiskKind::Xen).map(|d| (d, PlatformKind::Xen)));
    match found {
        Some((disk, kind)) => {
            evidence.push(format!(
                "disk {} is {}{}",
                disk.name,
                disk.kind.as_str(),
                if disk.cloud.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", disk.cloud)
                }
            ));
            kind
        }
        None => {
            evidence.push("no virtual disk found".to_string());
            PlatformKind::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_and_escapes() {
        let text = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    40 27 0:53 / /mnt/efs rw,relatime shared:7 - nfs4 fs-1.efs:/ rw,vers=4.1\n\
                    bad line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, "98:0");
        assert_eq!(m[0].1, "/mnt two");
        assert_eq!(m[0].2, "ext3");
        assert_eq!(m[1].2, "nfs4");
        assert_eq!(m[1].3, "fs-1.efs:/");
        assert_eq!(m[0].5, "rw,errors=continue");
        assert_eq!(m[1].5, "rw,vers=4.1");
    }

    #[test]
    fn cloud_models() {
        assert_eq!(
            cloud_identity(DiskKind::Nvme, "", "Amazon Elastic Block Store"),
            "aws-ebs"
        );
        assert_eq!(
            cloud_identity(DiskKind::Nvme, "", "MSFT NVMe Accelerator v1.0"),
            "azure-nvme"
        );
        assert_eq!(
            cloud_identity(DiskKind::Scsi, "", "Amazon Elastic Block Store"),
            ""
        );
    }
}
