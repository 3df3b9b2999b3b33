//! tunerd as a user's machine runs it: a real Debian 12 guest under QEMU (TCG) with systemd,
//! udev, journald and the system bus, tunerd installed from its .deb with apt inside the guest,
//! a VMware platform (`-smbios`), a pvscsi controller with a VMware "Virtual disk", and a
//! second one hot-added from the host through QMP; then the same machine provisioned by real
//! cloud-init on a Hyper-V look. Select with `cargo test --test it guest::`.
//!
//! The package is built as README "Install" says (`cargo build --release`, `cargo deb
//! --no-build`: no-ops when nothing changed, and in CI `packaging/check` has built it already),
//! and repacked with a higher version for the upgrade. The guest boots five times from one
//! image:
//!
//! 1. `tunerd.guest=install`: tests/guest/install.sh runs `apt-get install /root/tunerd.deb`
//!    (offline: the dependencies are in the image), checks what the package did (started,
//!    enabled, the conffile 0600), edits the configuration as an administrator would (drift
//!    every 2 s) and powers off;
//! 2. `tunerd.guest=check`: tunerd comes up as the package enabled it, and
//!    tests/guest/check.sh checks the service, the D-Bus policy, hotplug, drift, restart, an
//!    upgrade to the newer build, revert, incidents, man pages and completion, then `apt
//!    remove` and `apt purge`: the machine is clean again;
//! 3. `tunerd.guest=cloud`: a Hyper-V look (DMI "Microsoft Corporation" "Virtual Machine", a
//!    virtio-scsi controller with an Msft "Virtual Disk": the guest's cloud kernel drives no
//!    other SCSI controller QEMU has besides pvscsi) and a NoCloud seed (vfat, label
//!    `cidata`, vdb) whose user-data is docs/images.md's cloud-config with the substitutions
//!    of USER_DATA_SUBSTITUTIONS: real cloud-init installs tunerd from the image's local apt
//!    repository (/srv/tunerd-repo, indexed here with apt-ftparchive), writes the site
//!    profile and tunerd.toml, reloads tunerd; tests/guest/cloud.sh (after cloud-final)
//!    checks all that, the platform and the plan, and a SCSI disk taken offline under a
//!    mounted ext4, delivered to tests/guest/receiver.py (a webhook receiver on the guest's
//!    127.0.0.1, a unit ordered before cloud-final) and as a D-Bus signal;
//! 4. `tunerd.guest=cloud-broken`: a new seed (a new instance-id) whose user-data
//!    (tests/guest/user-data-broken.yaml) writes a tunerd.toml with an unknown key and
//!    reloads; tests/guest/cloud-broken.sh checks that tunerd refuses it and runs on, on the
//!    previous configuration (its webhook still delivers), and on the built-in one after a
//!    restart with no accepted configuration kept.
//! 5. `tunerd.guest=lab`: a storage lab on the guest's own 127.0.0.1 (QEMU has `-nic none`),
//!    tests/guest/lab.sh: tunerd with the iscsi-san profile (installed from /root/tunerd.deb
//!    when no earlier boot left it installed, so that `TUNERD_GUEST_BOOTS=lab` runs alone;
//!    after boot 4 the same build cloud-init installed is kept and reconfigured); a tgt
//!    target with sparse-file LUNs, an open-iscsi session logged in after tunerd runs (its
//!    recovery_tmo set to 180 on the disk's `add`, reverted, applied again), a dm-multipath
//!    map over two more sessions (recovery_tmo 5, no fight with multipathd, the ride-out read
//!    from the real dm table), two real 25 s stalls of the lone session's portal (nftables):
//!    ridden out at 180, fatal at a scaled-down default of 10 (ext4 read-only, an incident),
//!    and an NFS export mounted back soft (its give-up time computed and measured) and hard;
//!    then (tests/guest/lab-parts.sh) a site profile in /etc/tunerd/profiles.d that sets the
//!    SCSI retry count, the SCSI host's error-handler deadline and nvme_core's parameters,
//!    taken through plan, apply, verify, drift repair, revert and hotplug (a virtio-scsi
//!    controller and a second NVMe controller added over QMP: the namespace of a controller
//!    set up after nvme_core's io_timeout changed has the new queue/io_timeout); an md RAID1
//!    over two virtio disks that loses one to a QMP `device_del` (an `md_degraded` incident
//!    until a new disk is added and resynced); and a mount frozen through qemu-guest-agent
//!    (`guest-fsfreeze-freeze-list`) while a writer blocks past a 10 s hung-task timeout.
//!    lab-parts.sh asks the host for QMP and agent commands with `MARK HOST` lines, answered
//!    on a virtio-serial port; the kernel's and the agent's log lines of those events are
//!    saved as captures (last-run/captures/, the source of tests/logs/guest-*).
//!    `TUNERD_GUEST_LAB=knobs,md` runs only those parts of the lab (LAB_PARTS).
//! 6. `tunerd.guest=fc`: real Fibre Channel remote ports, on a root filesystem of its own
//!    (FC_PACKAGES: the full Debian kernel, whose fcoe, libfc and tcm_fc the cloud kernel
//!    lacks; cached as a second tarball): tests/guest/fc.sh puts two software FCoE ports in
//!    VN2VN mode on a veth pair (no switch), LIO's tcm_fc on one with a fileio LUN, the
//!    initiator logs in and an sd disk appears under a real rport; tunerd (a drop-in for the
//!    `fcoe` host) applies, verifies, repairs and reverts its fast_io_fail_tmo and
//!    dev_loss_tmo, the ride-out shows the FC layer, and a 20 s link stall is ridden out.
//!
//! The same root image serves boots 1-5 (the fc boot has its own): boot 2's purge leaves a
//! machine without tunerd, as a user's would be, and the cloud boots take their seed from a
//! volume, not from the image. cloud-init looks only for local seeds (`datasource_list: [ NoCloud, ConfigDrive ]`),
//! so on boots without one its generator finds none and leaves it off.
//!
//! Each script prints `CHECK`/`FIGURE` lines on the second serial port (tests/guest/lib.sh);
//! the host hot-adds the disk when check.sh prints `MARK READY-FOR-HOTPLUG`, and after `MARK
//! END` asserts every check and prints the figures. The kernel console goes to the first
//! serial port.
//!
//! Needs root, `qemu-system-x86`, `mmdebstrap` and `e2fsprogs` (the guest tier skips
//! without them, see `common::tier`), `mkfs.vfat` (dosfstools), `mcopy` (mtools),
//! `apt-ftparchive` (apt-utils), cargo-deb, and Debian's package mirror the first time:
//! the root filesystem is made with mmdebstrap once and cached as a tarball in
//! /var/cache/tunerd-guest/, keyed by its package list. Each run unpacks it on /dev/shm, adds
//! the packages, the repository, the scripts and the seeds, makes root.img with `mkfs.ext4
//! -d`, boots it five times and removes everything again (QEMU too, also on panic). The logs
//! of the last run (every boot's console, script output and QEMU output, and the seeds'
//! user-data) are kept in /var/cache/tunerd-guest/last-run/.
//!
//! Environment: `TUNERD_GUEST_TIMEOUT_SECS` (default 300) bounds each boot;
//! `TUNERD_GUEST_DEB=FILE` installs that .deb and builds nothing; `TUNERD_GUEST_UNIT=FILE`
//! packs FILE into the guest's packages instead of the built unit (to try a change to the
//! unit before making it); `TUNERD_GUEST_BOOTS=cloud,cloud-broken` runs only the boots named
//! (to work on them: the cloud boots then provision a machine that never had tunerd).

use crate::common::tier::{self, Tier};

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The guest's Debian release.
const SUITE: &str = "bookworm";
/// What the guest's root filesystem holds: the cache key.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "linux-image-cloud-amd64",
    "e2fsprogs",
    "kmod",
    "util-linux",
    "procps",
    "jq",
    // What a user's `man tunerctl` and Tab completion go through.
    "man-db",
    "bash-completion",
    // The cloud boots: real cloud-init (it brings python3, which the webhook receiver of
    // tests/guest/receiver.py runs on) and its NoCloud datasource.
    "cloud-init",
    // The lab boot's storage, all on the guest's own 127.0.0.1: an iSCSI target and
    // initiator, dm-multipath, stalls made with nftables, an NFS server and client. Their
    // services are left disabled in the image (LAB_UNITS) and started by tests/guest/lab.sh.
    "open-iscsi",
    "tgt",
    "multipath-tools",
    "nftables",
    "nfs-kernel-server",
    "nfs-common",
    // The lab boot's md RAID1 over two virtio disks (issue 11), and the agent a host's backup
    // tool freezes filesystems through (guest-fsfreeze-*, over a virtio-serial channel).
    "mdadm",
    "qemu-guest-agent",
];
/// The lab packages' units that their postinsts enabled: disabled in the image, so that the
/// other boots do not run an iSCSI initiator, multipathd or an NFS server under TCG, and the
/// lab boot starts what it needs when it needs it.
const LAB_UNITS: &[&str] = &[
    "tgt.service",
    "iscsid.service",
    "iscsid.socket",
    "open-iscsi.service",
    "multipathd.service",
    "multipathd.socket",
    "nfs-server.service",
    "nfs-client.target",
    "rpcbind.service",
    "rpcbind.socket",
    "nftables.service",
];
/// The fc boot's root filesystem (its own cached tarball): the full Debian kernel, which has
/// software FCoE (fcoe, libfcoe, libfc) and LIO's tcm_fc (the cloud kernel has neither), and
/// their tools. tests/guest/fc.sh drives the kernel's fcoe_sysfs and the target's configfs.
const FC_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "linux-image-amd64",
    "e2fsprogs",
    "kmod",
    "util-linux",
    "procps",
    "jq",
    "iproute2",
    "fcoe-utils",
    "targetcli-fb",
];
/// The FC packages' units: off in the image, fc.sh sets the fabric up itself.
const FC_UNITS: &[&str] = &[
    "fcoe-utils.service",
    "fcoemon.socket",
    "rtslib-fb-targetctl.service",
    "targetclid.socket",
];
/// Part of the cache key: change it when the way the tarball is made changes.
const ROOTFS_RECIPE: &str = "mmdebstrap --variant=minbase, v1";
const CACHE_DIR: &str = "/var/cache/tunerd-guest";
/// Every check install.sh must report on the first boot.
const EXPECTED_INSTALL_CHECKS: &[&str] = &[
    "install_not_there_before",
    "install_apt_exit_0",
    "install_installed",
    "install_started",
    "install_on_bus",
    "install_enabled",
    "install_files_owned",
    "install_unit_path",
    "install_conffile",
    "install_conffile_0600",
    "install_config_valid",
    "install_admin_edit",
];
/// Every check check.sh must report on the second boot: a check that went missing fails the
/// test too.
const EXPECTED_CHECKS: &[&str] = &[
    "tunerd_active",
    "tunerd_enabled_by_package",
    "tunerd_runs_packaged_files",
    "tunerd_ready_notify",
    "boot_no_ordering_cycle",
    "tmpfiles_setup_ran",
    "local_fs_target_reached",
    "fstab_mount_mounted",
    "dbus_name_owned",
    "dbus_property_active_profile",
    "status_daemon_running",
    "status_platform_vmware",
    "status_platform_evidence",
    "status_profile_vmware",
    "status_json",
    "dbus_policy_user_reads",
    "user_tunerctl_status",
    "dbus_policy_user_denied",
    "sda_timeout_180",
    "sda_scheduler_none",
    "vm_swappiness_30",
    "vm_dirty_ratio_30",
    "verify_clean",
    "originals_recorded",
    "originals_vm_from_sysctl_d",
    "drift_repaired",
    "dbus_drift_signal",
    "hotplug_timeout_180",
    "hotplug_scheduler_none",
    "hotplug_journal",
    "verify_clean_with_sdb",
    "watchdog_armed",
    "watchdog_fed",
    "restart_active",
    "restart_keeps_originals",
    "restart_back_on_bus",
    "upgrade_apt_exit_0",
    "upgrade_installed",
    "upgrade_restarted_once",
    "upgrade_keeps_originals",
    "upgrade_keeps_config",
    "upgrade_back_on_bus",
    "upgrade_verify_clean",
    "revert_exit_0",
    "revert_vm_dirty_ratio_sysctl_d",
    "revert_sda_timeout_30",
    "revert_sda_scheduler_mq_deadline",
    "source_fanotify_marks_new_mount",
    "sources_none_lost",
    "source_fanotify_open",
    "source_kmsg_read",
    "source_journal_followed",
    "journal_profile_line",
    "security_exposure_reported",
    "tunerd_never_restarted",
    "man_tunerctl",
    "man_tunerd_toml",
    "bash_completion_tunerctl",
    "conffile_0600",
    "remove_apt_exit_0",
    "remove_stopped",
    "remove_keeps_etc",
    "remove_keeps_run",
    "purge_apt_exit_0",
    "purge_removes_etc",
    "purge_removes_run",
    "purge_removes_enablement",
    "incident_scsi_offline_ext4",
    "incident_dbus_signal",
    "incident_journal_entry",
    "events_exit_5",
    "incident_multipathd_journal",
    "rule_program_followed_after_reload",
    "incident_rule_program_journal",
    "incident_rule_program_ended",
];
/// Every check cloud.sh must report on the third boot (cloud-init provisions the clean machine).
const EXPECTED_CLOUD_CHECKS: &[&str] = &[
    "cloud_init_done",
    "cloud_init_nocloud_seed",
    "cloud_package_installed",
    "cloud_package_by_cloud_init",
    "cloud_apt_source",
    "cloud_tunerd_active",
    "cloud_tunerd_enabled",
    "cloud_on_bus",
    "cloud_write_files_modes",
    "cloud_config_valid",
    "cloud_status_profile_site",
    "cloud_status_exit_0",
    "cloud_platform_hyperv",
    "cloud_journal_hyperv_first",
    "cloud_reload_not_restart",
    "cloud_plan_msft_timeout",
    "cloud_plan_msft_scheduler",
    "cloud_plan_site_vm_knob",
    "cloud_sda_timeout_180",
    "cloud_sda_scheduler_none",
    "cloud_vm_dirty_expire_1500",
    "cloud_vm_swappiness_30",
    "cloud_verify_clean",
    "cloud_webhook_configured",
    "cloud_webhook_incident",
    "cloud_webhook_signed",
    "cloud_dbus_incident_signal",
];
/// Every check cloud-broken.sh must report on the fourth boot (a broken tunerd.toml from
/// cloud-init).
const EXPECTED_CLOUD_BROKEN_CHECKS: &[&str] = &[
    "broken_cloud_init_new_instance",
    "broken_check_config_refuses",
    "broken_reload_stays_active",
    "broken_journal_refused_err",
    "broken_reload_refused_status",
    "broken_reload_keeps_site",
    "broken_accepted_json_0600",
    "broken_restart_active",
    "broken_restart_previous",
    "broken_restart_keeps_site",
    "broken_previous_webhook_delivers",
    "broken_restart_builtin",
    "broken_mended_reload",
];
/// The boots, in order: each phase's script and the checks it must report.
const PHASES: &[(&str, &[&str])] = &[
    ("install", EXPECTED_INSTALL_CHECKS),
    ("check", EXPECTED_CHECKS),
    ("cloud", EXPECTED_CLOUD_CHECKS),
    ("cloud-broken", EXPECTED_CLOUD_BROKEN_CHECKS),
    ("lab", EXPECTED_LAB_CHECKS),
    ("fc", EXPECTED_FC_CHECKS),
];
/// Every check fc.sh must report on the fc boot (its own root filesystem, FC_PACKAGES): real
/// FC remote ports from software FCoE in VN2VN mode over a veth pair, LIO's tcm_fc the target.
const EXPECTED_FC_CHECKS: &[&str] = &[
    "fc_tunerd_profile",
    "fc_rport_disk",
    "fc_applied_on_add",
    "fc_plan_names_rport",
    "fc_verify_clean",
    "fc_drift_repaired",
    "fc_revert_to_kernel",
    "fc_apply_from_kernel_values",
    "fc_verify_clean_again",
    "fc_rideout_fc_layer",
    "fc_stall_blocked",
    "fc_stall_survived",
    "fc_verify_after_stall",
];
/// Every check lab.sh must report on the fifth boot (issue 10: every layer's give-up time
/// tuned, audited and shown as one ride-out figure per mount, against real storage).
const EXPECTED_LAB_CHECKS: &[&str] = &[
    "lab_tunerd_iscsi_san",
    "lab_lone_recovery_tmo_180",
    "lab_lone_rideout_180",
    "lab_lone_revert_to_iscsid",
    "lab_lone_apply_again",
    "lab_mpath_paths_recovery_tmo_5",
    "lab_mpath_no_fight",
    "lab_mpath_rideout_dm_table",
    "lab_stall_a_predicted",
    "lab_stall_a_survived",
    "lab_stall_b_predicted",
    "lab_stall_b_failed",
    "lab_stall_b_incident",
    "lab_nfs_soft_rideout_30",
    "lab_nfs_hard_never",
    "lab_nfs_soft_measured",
];
/// The lab's parts (`TUNERD_GUEST_LAB=knobs,md` runs only those, to work on them), each with
/// the checks it must report: `iscsi` (EXPECTED_LAB_CHECKS), then issue 10's SCSI retry,
/// SCSI host and nvme_core knobs through every engine path (`knobs`), issue 11's md RAID1
/// losing a member for real (`md`), and a filesystem frozen through qemu-guest-agent (`freeze`).
const LAB_PARTS: &[(&str, &[&str])] = &[
    ("iscsi", EXPECTED_LAB_CHECKS),
    ("knobs", EXPECTED_LAB_KNOBS_CHECKS),
    ("md", EXPECTED_LAB_MD_CHECKS),
    ("freeze", EXPECTED_LAB_FREEZE_CHECKS),
];
const EXPECTED_LAB_KNOBS_CHECKS: &[&str] = &[
    "knobs_profile_dropin",
    "knobs_plan_scsi_max_retries",
    "knobs_plan_scsi_eh_deadline",
    "knobs_plan_nvme_core",
    "knobs_applied",
    "knobs_verify_clean",
    "knobs_originals",
    "knobs_drift_repaired",
    "knobs_revert_originals",
    "knobs_apply_again",
    "knobs_hotplug_scsi_host",
    "knobs_hotplug_virtio_scsi_refused",
    "knobs_hotplug_nvme_io_timeout",
];
const EXPECTED_LAB_MD_CHECKS: &[&str] = &[
    "md_created",
    "md_member_removed",
    "md_incident_open",
    "md_disk_failure_classified",
    "md_readded_resynced",
    "md_incident_ended",
];
const EXPECTED_LAB_FREEZE_CHECKS: &[&str] = &[
    "freeze_agent_running",
    "freeze_frozen",
    "freeze_writer_blocked",
    "freeze_hung_task_report",
    "freeze_fs_frozen_incident",
    "freeze_thawed",
    "freeze_agent_journal",
];
/// The lab boot runs two 25 s stalls, an NFS give-up of 30 s, an md resync and a writer held
/// on a frozen filesystem past the hung-task timeout, and sets up its storage under TCG: it
/// may take longer than the others.
const LAB_TIMEOUT: Duration = Duration::from_secs(1200);

/// The lab's parts to run: `TUNERD_GUEST_LAB=knobs,md` (in LAB_PARTS' order), by default all.
fn lab_parts() -> Vec<(&'static str, &'static [&'static str])> {
    let wanted = std::env::var("TUNERD_GUEST_LAB").ok();
    let wanted: Option<Vec<String>> = wanted
        .as_deref()
        .map(|w| w.split(',').map(|p| p.trim().to_string()).collect());
    if let Some(w) = &wanted {
        for name in w {
            assert!(
                LAB_PARTS.iter().any(|p| p.0 == name),
                "TUNERD_GUEST_LAB: no part {name:?}; the parts are {:?}",
                LAB_PARTS.iter().map(|p| p.0).collect::<Vec<_>>()
            );
        }
    }
    LAB_PARTS
        .iter()
        .filter(|p| wanted.as_ref().is_none_or(|w| w.iter().any(|n| n == p.0)))
        .copied()
        .collect()
}
/// Where docs/images.md's cloud-config differs from the one the cloud boot uses: the user's
/// repository and webhook become the image's local repository and the guest's own receiver
/// (tests/guest/receiver.py, on the guest's 127.0.0.1). Each must occur exactly once.
const USER_DATA_SUBSTITUTIONS: &[(&str, &str)] = &[
    (
        "deb [trusted=yes] https://apt.example/tunerd ./",
        "deb [trusted=yes] file:/srv/tunerd-repo ./",
    ),
    (
        "url = \"https://hooks.example/tunerd\"",
        "url = \"http://127.0.0.1:9780/tunerd\"",
    ),
];

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn log(msg: &str) {
    eprintln!("[guest-test] {msg}");
}

/// Runs a command to completion; panics with its output when it fails.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 40),
            tail(&String::from_utf8_lossy(&out.stderr), 40)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// FNV-1a: a cache key that stays the same across Rust releases.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A directory removed (with everything in it) when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = PathBuf::from(format!(
            "/dev/shm/tunerd-guest-{tag}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path).expect("scratch directory on /dev/shm");
        Scratch { path }
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

/// Removes what runs of this test killed before their guards ran (a SIGKILLed `cargo test`)
/// left on /dev/shm: the directories of processes that are gone.
fn remove_stale_scratch() {
    let Ok(entries) = fs::read_dir("/dev/shm") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("tunerd-guest-") else {
            continue;
        };
        let pid = rest.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// An exclusive lock on the cache while a process builds or reads the tarball.
struct CacheLock {
    _file: File,
}

impl CacheLock {
    fn take() -> CacheLock {
        let file = File::create(Path::new(CACHE_DIR).join(".lock")).expect("cache lock file");
        // SAFETY: flock on a descriptor this function owns; released when the file closes.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock {CACHE_DIR}/.lock");
        CacheLock { _file: file }
    }
}

/// The Debian root filesystem as a tarball: made once with mmdebstrap, then taken from the
/// cache. Returns the path and whether it was cached.
fn rootfs_tarball(packages: &[&str]) -> (PathBuf, bool) {
    fs::create_dir_all(CACHE_DIR).unwrap_or_else(|e| panic!("create {CACHE_DIR}: {e}"));
    let name = tarball_name(packages);
    // The tarballs of this test's other package lists (the fc boot's) are never evicted.
    let current: Vec<String> = [PACKAGES, FC_PACKAGES].map(tarball_name).to_vec();
    let tarball = Path::new(CACHE_DIR).join(&name);
    let _lock = CacheLock::take();
    if fs::metadata(&tarball).is_ok_and(|m| m.len() > 0) {
        return (tarball, true);
    }
    // Tarballs of other package lists: keep the newest one (another branch's list, run on
    // the same machine: two branches with one tarball each would otherwise rebuild it in
    // turn, a minute of mmdebstrap each), remove the rest.
    if let Ok(entries) = fs::read_dir(CACHE_DIR) {
        let mut others = Vec::new();
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("partial-") {
                let _ = fs::remove_file(e.path());
            } else if n.starts_with("rootfs-") && !current.contains(&n) {
                let modified = e.metadata().and_then(|m| m.modified()).ok();
                others.push((modified, e.path()));
            }
        }
        others.sort();
        others.pop();
        for (_, path) in others {
            let _ = fs::remove_file(path);
        }
    }
    log(&format!(
        "building the guest root filesystem with mmdebstrap (once; cached as {})",
        tarball.display()
    ));
    let partial = Path::new(CACHE_DIR).join(format!("partial-{}.tar", std::process::id()));
    // mmdebstrap's own scratch space goes to tmpfs, not to this machine's disk.
    let tmp = Scratch::new("mmdebstrap");
    let out = Command::new("mmdebstrap")
        .arg("--variant=minbase")
        .arg("--format=tar")
        .arg(format!("--include={}", packages.join(",")))
        .arg(SUITE)
        .arg(&partial)
        .env("TMPDIR", &tmp.path)
        .stdin(Stdio::null())
        .output()
        .expect("run mmdebstrap");
    if !out.status.success() {
        let _ = fs::remove_file(&partial);
        panic!(
            "mmdebstrap failed ({}):\n{}\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 30),
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        );
    }
    fs::rename(&partial, &tarball).expect("move the finished tarball into the cache");
    (tarball, false)
}

/// The cache's name of the tarball of one package list.
fn tarball_name(packages: &[&str]) -> String {
    let key = fnv1a(&format!("{ROOTFS_RECIPE}|{SUITE}|{}", packages.join(",")));
    format!("rootfs-{SUITE}-{key:016x}.tar")
}

fn write(path: &Path, text: &str, mode: u32) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn link(target: &str, at: &Path) {
    if let Some(dir) = at.parent() {
        fs::create_dir_all(dir).expect("mkdir for a symlink");
    }
    let _ = fs::remove_file(at);
    symlink(target, at).unwrap_or_else(|e| panic!("symlink {}: {e}", at.display()));
}

fn read_repo(rel: &str) -> String {
    fs::read_to_string(manifest(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// The package the guest installs, and a newer build of it that the guest upgrades to.
struct Debs {
    /// What `cargo deb` built (repacked when `TUNERD_GUEST_UNIT` replaces its unit).
    deb: PathBuf,
    /// The same files repacked with a higher version: a newer build for dpkg's purposes.
    newer: PathBuf,
    /// What `cargo deb` wrote, and its size.
    built: PathBuf,
    built_size: u64,
    version: String,
    newer_version: String,
}

/// The .deb as a user builds it (README "Install"): `cargo build --release` then
/// `cargo deb --no-build`, both no-ops when nothing changed (in CI, `packaging/check` has
/// built it already). A release build takes the release profile's lock, not the one of the
/// debug profile this test was built in, so the outer `cargo test` does not hold it up.
/// `TUNERD_GUEST_DEB=FILE` takes that .deb instead and builds nothing.
fn build_deb() -> PathBuf {
    if let Some(deb) = std::env::var_os("TUNERD_GUEST_DEB") {
        let deb = PathBuf::from(deb);
        assert!(
            deb.is_file(),
            "TUNERD_GUEST_DEB={}: no such file",
            deb.display()
        );
        return deb;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let how = "build it first with `cargo build --release --locked && cargo deb --no-build \
               --locked` (needs `cargo install --locked cargo-deb`), or name one with \
               TUNERD_GUEST_DEB=FILE";
    for args in [
        &["build", "--release", "--locked"][..],
        &["deb", "--no-build", "--locked"][..],
    ] {
        let mut cmd = Command::new(&cargo);
        cmd.args(args)
            .current_dir(manifest(""))
            .stdin(Stdio::null());
        // What cargo set for this test is not the environment of a build: build scripts that
        // watch a variable (ring watches CARGO_MANIFEST_DIR) would rebuild the release
        // profile here, and again in the next build from a shell.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name == "OUT_DIR"
                || name == "CARGO_MANIFEST_DIR"
                || name == "CARGO_MANIFEST_PATH"
                || name == "CARGO_PRIMARY_PACKAGE"
                || name == "CARGO_TARGET_TMPDIR"
                || name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_CRATE_")
                || name.starts_with("CARGO_BIN_")
            {
                cmd.env_remove(&*name);
            }
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo {}: {e}; {how}", args.join(" ")));
        if !out.status.success() {
            panic!(
                "the guest installs the package, and `cargo {}` failed ({}); {how}\n{}",
                args.join(" "),
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 30)
            );
        }
        if args[0] == "deb" {
            // cargo deb prints the path of the package it wrote.
            let stdout = String::from_utf8_lossy(&out.stdout);
            let path = stdout
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.ends_with(".deb"));
            let path = path.map(PathBuf::from).unwrap_or_else(|| {
                panic!("cargo deb did not say where the .deb is:\n{stdout}; {how}")
            });
            return if path.is_absolute() {
                path
            } else {
                manifest("").join(path)
            };
        }
    }
    unreachable!("the loop returns after cargo deb")
}

/// One line of a control file: `Version: 0.1.0-1` -> `0.1.0-1`.
fn control_field(control: &str, field: &str) -> Option<String> {
    control
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(": "))
        .map(str::to_string)
}

/// A higher Debian version: the revision plus one (`0.1.0-1` -> `0.1.0-2`).
fn next_version(version: &str) -> String {
    match version.rsplit_once('-') {
        Some((upstream, rev)) if rev.parse::<u32>().is_ok() => {
            format!("{upstream}-{}", rev.parse::<u32>().unwrap_or(0) + 1)
        }
        _ => format!("{version}+1"),
    }
}

/// Unpacks `deb` with `dpkg-deb -R`, sets its version, optionally replaces the unit (with
/// its line in DEBIAN/md5sums, so that `dpkg --verify` stays quiet), and builds it again.
fn repack(deb: &Path, work: &Scratch, name: &str, version: &str, unit: Option<&str>) -> PathBuf {
    let tree = work.join(&format!("{name}-tree"));
    run(
        Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree),
        "dpkg-deb -R the built package",
    );
    let control_path = tree.join("DEBIAN/control");
    let control = fs::read_to_string(&control_path).expect("read DEBIAN/control");
    let control: String = control
        .lines()
        .map(|l| {
            if l.starts_with("Version: ") {
                format!("Version: {version}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&control_path, control).expect("write DEBIAN/control");
    if let Some(unit) = unit {
        let rel = "usr/lib/systemd/system/tunerd.service";
        write(&tree.join(rel), unit, 0o644);
        let line = run(
            Command::new("md5sum").arg(rel).current_dir(&tree),
            "md5sum of the replaced unit",
        );
        let sums_path = tree.join("DEBIAN/md5sums");
        let sums = fs::read_to_string(&sums_path).expect("read DEBIAN/md5sums");
        let sums: String = sums
            .lines()
            .map(|l| {
                if l.ends_with(&format!("  {rel}")) {
                    line.clone()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(&sums_path, sums).expect("write DEBIAN/md5sums");
    }
    let out = work.join(&format!("{name}.deb"));
    run(
        Command::new("dpkg-deb")
            .args(["-Zgzip", "-b"])
            .arg(&tree)
            .arg(&out),
        "dpkg-deb -b the repacked package",
    );
    let _ = fs::remove_dir_all(&tree);
    out
}

/// The .deb the guest installs and the newer one it upgrades to.
fn packages(work: &Scratch) -> Debs {
    let built = build_deb();
    let built_size = fs::metadata(&built).map(|m| m.len()).unwrap_or(0);
    let control = run(
        Command::new("dpkg-deb").arg("-f").arg(&built),
        "dpkg-deb -f",
    );
    let version = control_field(&control, "Version").expect("the .deb has a Version");
    let newer_version = next_version(&version);
    let unit = std::env::var_os("TUNERD_GUEST_UNIT").map(|path| {
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("TUNERD_GUEST_UNIT {}: {e}", path.to_string_lossy()))
    });
    let deb = match &unit {
        Some(unit) => repack(&built, work, "tunerd", &version, Some(unit)),
        None => built.clone(),
    };
    let newer = repack(
        &built,
        work,
        "tunerd-newer",
        &newer_version,
        unit.as_deref(),
    );
    Debs {
        deb,
        newer,
        built,
        built_size,
        version,
        newer_version,
    }
}

/// What QEMU boots.
struct Images {
    kernel: PathBuf,
    initrd: PathBuf,
    root: PathBuf,
    data: PathBuf,
    hot: PathBuf,
    /// The cloud boots' Hyper-V "Virtual Disk" (on virtio-scsi).
    msft: PathBuf,
    /// The NoCloud seeds (vfat, label `cidata`) of the cloud and cloud-broken boots.
    cloud_seed: PathBuf,
    broken_seed: PathBuf,
    /// The lab boot's own disks, by QEMU drive id (LAB_DRIVES).
    lab: Vec<(&'static str, PathBuf)>,
}

/// The lab boot's drives: (drive id, MiB, the device QEMU boots with, or none: the drive waits
/// for a QMP `device_add` from lab.sh). An NVMe controller (nvme_core loaded, its namespace
/// made before tunerd sets the module's parameters), two virtio disks of an md RAID1 and the
/// one that replaces the member lab.sh removes, a second NVMe controller and the disks of a
/// pvscsi and a virtio-scsi controller to hot-add. The md disks sit in PCI slots above the root disk's, so that
/// the guest still names the root disk vda.
const LAB_DRIVES: &[(&str, u64, Option<&str>)] = &[
    (
        "nvme0d",
        64,
        Some("nvme,id=nvme0,serial=tunerd-nvme-0,drive=nvme0d"),
    ),
    (
        "mdad",
        40,
        Some("virtio-blk-pci,id=mda,drive=mdad,serial=tunerd-md-a,addr=0x10"),
    ),
    (
        "mdbd",
        40,
        Some("virtio-blk-pci,id=mdb,drive=mdbd,serial=tunerd-md-b,addr=0x11"),
    ),
    ("mdcd", 40, None),
    ("nvme1d", 64, None),
    ("pvscsi1d", 64, None),
    ("vscsi1d", 64, None),
];

/// docs/images.md's cloud-config (the first yaml block of its `## cloud-init` section), as
/// the cloud boot uses it: with USER_DATA_SUBSTITUTIONS made.
fn cloud_user_data() -> String {
    let doc = read_repo("docs/images.md");
    let section = doc
        .find("\n## cloud-init\n")
        .expect("docs/images.md has a `## cloud-init` section");
    let start = doc[section..]
        .find("```yaml\n")
        .map(|i| section + i + "```yaml\n".len())
        .expect("docs/images.md's cloud-init section has a ```yaml block");
    let end = doc[start..]
        .find("```\n")
        .map(|i| start + i)
        .expect("the yaml block of docs/images.md ends");
    let mut text = doc[start..end].to_string();
    assert!(
        text.starts_with("#cloud-config\n"),
        "docs/images.md's cloud-config must start with #cloud-config"
    );
    for (from, to) in USER_DATA_SUBSTITUTIONS {
        let n = text.matches(from).count();
        assert_eq!(
            n, 1,
            "docs/images.md's cloud-config must hold `{from}` exactly once (the test puts \
             `{to}` there); found {n}"
        );
        text = text.replace(from, to);
    }
    text
}

/// A NoCloud seed as cloud-init finds it: a vfat volume labelled `cidata` with `meta-data`
/// and `user-data`, made with mkfs.vfat and mtools' mcopy (no mount).
fn make_seed(work: &Scratch, name: &str, instance_id: &str, user_data: &str) -> PathBuf {
    let dir = work.join(&format!("{name}-seed"));
    write(
        &dir.join("meta-data"),
        &format!("instance-id: {instance_id}\nlocal-hostname: tunerd-guest\n"),
        0o644,
    );
    write(&dir.join("user-data"), user_data, 0o644);
    let img = work.join(&format!("{name}-seed.img"));
    run(
        Command::new("mkfs.vfat")
            .args(["-C", "-n", "cidata"])
            .arg(&img)
            .arg("2048"),
        "mkfs.vfat the NoCloud seed",
    );
    run(
        Command::new("mcopy")
            .arg("-i")
            .arg(&img)
            .arg(dir.join("meta-data"))
            .arg(dir.join("user-data"))
            .arg("::"),
        "mcopy meta-data and user-data onto the seed",
    );
    img
}

/// Unpacks the cached root filesystem, puts the packages and the checks in, makes the disks.
/// tunerd itself is not installed here: the guest installs the package with apt on its
/// first boot (tests/guest/install.sh).
fn prepare_images(work: &Scratch, tarball: &Path, debs: &Debs) -> Images {
    let rootfs = work.join("rootfs");
    fs::create_dir_all(&rootfs).expect("mkdir rootfs");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-xf")
            .arg(tarball),
        "unpack the cached root filesystem",
    );
    let r = |rel: &str| rootfs.join(rel);

    // The packages, where the guest's install.sh and check.sh (lib.sh) look for them.
    for (deb, at) in [
        (&debs.deb, "root/tunerd.deb"),
        (&debs.newer, "root/tunerd-newer.deb"),
    ] {
        fs::copy(deb, r(at))
            .unwrap_or_else(|e| panic!("copy {} into the guest: {e}", deb.display()));
        fs::set_permissions(r(at), fs::Permissions::from_mode(0o644)).expect("chmod .deb");
    }

    // The apt repository the cloud boot's user-data names (file:/srv/tunerd-repo): the
    // package and its index, made here with apt-ftparchive; unsigned, so the source says
    // [trusted=yes].
    let repo = r("srv/tunerd-repo");
    let repo_deb = repo.join(format!("tunerd_{}_amd64.deb", debs.version));
    fs::create_dir_all(&repo).expect("mkdir the guest's apt repository");
    fs::copy(&debs.deb, &repo_deb).expect("copy the .deb into the guest's apt repository");
    for (what, index) in [("packages", "Packages"), ("release", "Release")] {
        let text = run(
            Command::new("apt-ftparchive")
                .arg(what)
                .arg(".")
                .current_dir(&repo),
            "apt-ftparchive the guest's apt repository",
        );
        write(&repo.join(index), &text, 0o644);
    }

    // The scripts: install.sh on the first boot, check.sh on the second, cloud.sh and
    // cloud-broken.sh on the third and fourth, lab.sh on the fifth (each unit runs on the
    // boot whose kernel command line names it), and the cloud boots' webhook receiver.
    write(
        &r("usr/local/lib/tunerd-guest/lib.sh"),
        &read_repo("tests/guest/lib.sh"),
        0o644,
    );
    write(
        &r("usr/local/lib/tunerd-guest/lab-parts.sh"),
        &read_repo("tests/guest/lab-parts.sh"),
        0o644,
    );
    write(
        &r("usr/local/lib/tunerd-guest/receiver.py"),
        &read_repo("tests/guest/receiver.py"),
        0o644,
    );
    // A unit of tests/guest, installed and enabled as `systemctl enable` would.
    let enable = |unit: &str| {
        write(
            &r(&format!("etc/systemd/system/{unit}")),
            &read_repo(&format!("tests/guest/{unit}")),
            0o644,
        );
        link(
            &format!("/etc/systemd/system/{unit}"),
            &r(&format!(
                "etc/systemd/system/multi-user.target.wants/{unit}"
            )),
        );
    };
    enable("tunerd-guest-receiver.service");
    for (script, name) in [
        ("install.sh", "install"),
        ("check.sh", "check"),
        ("cloud.sh", "cloud"),
        ("cloud-broken.sh", "cloud-broken"),
        ("lab.sh", "lab"),
        ("fc.sh", "fc"),
    ] {
        write(
            &r(&format!("usr/local/sbin/tunerd-guest-{name}")),
            &read_repo(&format!("tests/guest/{script}")),
            0o755,
        );
        enable(&format!("tunerd-guest-{name}.service"));
    }

    // The lab's services stay off until lab.sh starts them.
    for wants in fs::read_dir(r("etc/systemd/system"))
        .expect("read the image's etc/systemd/system")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wants"))
    {
        for unit in LAB_UNITS.iter().chain(FC_UNITS) {
            let _ = fs::remove_file(wants.path().join(unit));
        }
    }

    // A machine like an installed one: root mounted read-only by the kernel and remounted
    // read-write from fstab; nothing periodic that would compete for the emulated CPUs.
    write(
        &r("etc/fstab"),
        "/dev/vda / ext4 rw,errors=remount-ro 0 1\ntmpfs /srv/fstab-probe tmpfs nosuid,nodev 0 0\n",
        0o644,
    );
    fs::create_dir_all(r("srv/fstab-probe")).expect("mkdir the fstab probe");
    write(&r("etc/hostname"), "tunerd-guest\n", 0o644);
    // cloud-init looks for its NoCloud seed (the cloud boots) or an OpenStack config drive,
    // both local volumes, nothing on a network. Two entries, not one (or one and None): with
    // a single one, ds-identify skips its check and enables cloud-init on every boot, which
    // then runs all four stages under TCG and ends in the None datasource; with two, a boot
    // without a seed (install, check) finds neither volume and the generator leaves
    // cloud-init off. The image's locale is C.UTF-8: its locales package has generated none,
    // and cloud-init's default en_US.UTF-8 makes its locale module fail (update-locale exits
    // 255) and its status `error`.
    write(
        &r("etc/cloud/cloud.cfg.d/90-tunerd-guest.cfg"),
        "# tests/it/guest.rs: local seeds only (see the test for why two entries), and the\n\
         # locale the image has.\n\
         datasource_list: [ NoCloud, ConfigDrive ]\n\
         locale: C.UTF-8\n",
        0o644,
    );
    // An administrator's setting that tunerd's profile overrides (and must revert to).
    write(
        &r("etc/sysctl.d/60-tunerd-guest.conf"),
        "vm.dirty_ratio = 25\n",
        0o644,
    );
    for unit in [
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "dpkg-db-backup.timer",
        "e2scrub_all.timer",
        "e2scrub_reap.service",
        "fstrim.timer",
        "man-db.timer",
        "mdcheck_start.timer",
        "mdcheck_continue.timer",
        "mdmonitor-oneshot.timer",
    ] {
        link("/dev/null", &r(&format!("etc/systemd/system/{unit}")));
    }

    // The kernel and initrd the image carries.
    let boot = r("boot");
    let find = |prefix: &str| -> PathBuf {
        let mut found: Vec<PathBuf> = fs::read_dir(&boot)
            .expect("read rootfs/boot")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect();
        found.sort();
        found
            .pop()
            .unwrap_or_else(|| panic!("no {prefix}* in the guest's /boot"))
    };
    let kernel = work.join("vmlinuz");
    let initrd = work.join("initrd.img");
    fs::copy(find("vmlinuz-"), &kernel).expect("copy the kernel");
    fs::copy(find("initrd.img-"), &initrd).expect("copy the initrd");

    let root = work.join("root.img");
    File::create(&root)
        .and_then(|f| f.set_len(2 << 30))
        .expect("root.img");
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-L", "root", "-d"])
            .arg(&rootfs)
            .arg(&root),
        "mkfs.ext4 -d of the guest root",
    );
    let _ = fs::remove_dir_all(&rootfs);

    let data = work.join("data.img");
    let hot = work.join("hot.img");
    let msft = work.join("msft.img");
    for img in [&data, &hot, &msft] {
        File::create(img)
            .and_then(|f| f.set_len(64 << 20))
            .expect("data disk image");
    }
    let mut lab = Vec::new();
    for (id, mib, _) in LAB_DRIVES {
        let img = work.join(&format!("lab-{id}.img"));
        File::create(&img)
            .and_then(|f| f.set_len(mib << 20))
            .expect("lab disk image");
        lab.push((*id, img));
    }
    let cloud_seed = make_seed(work, "cloud", "tunerd-guest-cloud-1", &cloud_user_data());
    let broken_seed = make_seed(
        work,
        "cloud-broken",
        "tunerd-guest-cloud-2",
        &read_repo("tests/guest/user-data-broken.yaml"),
    );
    Images {
        kernel,
        initrd,
        root,
        data,
        hot,
        msft,
        cloud_seed,
        broken_seed,
        lab,
    }
}

/// The running QEMU: killed and reaped when dropped.
struct Qemu {
    child: Child,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Starts QEMU for one boot. `phase` goes on the kernel command line as `tunerd.guest=PHASE`
/// (the guest's units run on the boot that names them) and names the logs:
/// PHASE-console.log (the kernel console), PHASE-checks.log (the script's lines), PHASE-qemu.log.
fn boot(work: &Scratch, images: &Images, phase: &str) -> Qemu {
    let qemu_log = File::create(work.join(&format!("{phase}-qemu.log"))).expect("qemu.log");
    let p = |path: &Path| path.display().to_string();
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-machine", "pc", "-accel", "tcg,thread=multi"])
        .args(["-cpu", "max", "-smp", "2", "-m", "1024"])
        .args(["-no-reboot", "-nic", "none"])
        .args(["-kernel", &p(&images.kernel), "-initrd", &p(&images.initrd)])
        .args([
            "-append",
            &format!(
                "root=/dev/vda ro console=ttyS0 panic=-1 net.ifnames=0 tunerd.guest={phase}{}",
                if phase == "lab" {
                    let parts: Vec<&str> = lab_parts().iter().map(|p| p.0).collect();
                    format!(" tunerd.lab={}", parts.join(","))
                } else {
                    String::new()
                }
            ),
        ])
        .args([
            "-drive",
            &format!("file={},format=raw,if=virtio,cache=unsafe", p(&images.root)),
        ]);
    let seed = match phase {
        "cloud" => Some(&images.cloud_seed),
        "cloud-broken" => Some(&images.broken_seed),
        _ => None,
    };
    match seed {
        // The cloud boots: a Hyper-V look. The guest's cloud kernel has no driver for QEMU's
        // other SCSI controllers (megasas, lsi53c895a: no megaraid_sas, no sym53c8xx), so
        // the Msft disk hangs off virtio-scsi, unlike boots 1-2's pvscsi. The seed is vdb.
        Some(seed) => {
            cmd.args([
                "-smbios",
                "type=1,manufacturer=Microsoft Corporation,product=Virtual Machine",
            ])
            .args([
                "-drive",
                &format!("file={},format=raw,if=virtio,readonly=on", p(seed)),
            ])
            .args(["-device", "virtio-scsi-pci,id=scsi0"])
            .args([
                "-drive",
                &format!(
                    "file={},format=raw,if=none,id=msft0,cache=unsafe",
                    p(&images.msft)
                ),
            ])
            .args([
                "-device",
                "scsi-hd,drive=msft0,bus=scsi0.0,scsi-id=0,lun=0,vendor=Msft,product=Virtual Disk",
            ]);
        }
        // The install and check boots: VMware, its pvscsi and its "Virtual disk".
        None => {
            cmd.args([
                "-smbios",
                "type=1,manufacturer=VMware,, Inc.,product=VMware Virtual Platform",
            ])
            .args(["-device", "pvscsi,id=pvscsi0"])
            .args([
                "-drive",
                &format!(
                    "file={},format=raw,if=none,id=data0,cache=unsafe",
                    p(&images.data)
                ),
            ])
            .args([
                "-device",
                "scsi-hd,drive=data0,bus=pvscsi0.0,scsi-id=0,lun=0,vendor=VMware,product=Virtual disk",
            ]);
        }
    }
    if phase == "lab" {
        for ((id, _, device), (_, img)) in LAB_DRIVES.iter().zip(&images.lab) {
            cmd.args([
                "-drive",
                &format!("file={},format=raw,if=none,id={id},cache=unsafe", p(img)),
            ]);
            if let Some(device) = device {
                cmd.args(["-device", device]);
            }
        }
        // qemu-guest-agent's channel, and the one the host answers lab.sh's requests on
        // (`MARK HOST`, see run_boot), both virtio-serial ports on host unix sockets.
        cmd.args(["-device", "virtio-serial-pci,id=vser0"]);
        for (chardev, name, sock) in [
            ("qga0", "org.qemu.guest_agent.0", "qga"),
            ("host0", "org.tunerd.host.0", "host"),
        ] {
            cmd.args([
                "-chardev",
                &format!(
                    "socket,id={chardev},path={},server=on,wait=off",
                    p(&work.join(&format!("{phase}-{sock}.sock")))
                ),
            ])
            .args([
                "-device",
                &format!("virtserialport,bus=vser0.0,chardev={chardev},name={name}"),
            ]);
        }
    }
    cmd.args([
        "-serial",
        &format!("file:{}", p(&work.join(&format!("{phase}-console.log")))),
    ])
    .args([
        "-serial",
        &format!("file:{}", p(&work.join(&format!("{phase}-checks.log")))),
    ])
    .args([
        "-qmp",
        &format!(
            "unix:{},server=on,wait=off",
            p(&work.join(&format!("{phase}-qmp.sock")))
        ),
    ])
    .stdin(Stdio::null())
    .stdout(qemu_log.try_clone().expect("dup qemu.log"))
    .stderr(qemu_log);
    // SAFETY: prctl is async-signal-safe; QEMU dies with the test even if the test is killed.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Qemu {
        child: cmd.spawn().expect("start qemu-system-x86_64"),
    }
}

/// Sends one QMP command and waits for its answer (events in between are skipped).
fn qmp_command(
    stream: &mut UnixStream,
    reader: &mut BufReader<UnixStream>,
    command: serde_json::Value,
) -> Result<serde_json::Value, String> {
    writeln!(stream, "{command}").map_err(|e| format!("QMP write: {e}"))?;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("QMP read: {e}"))?;
        if n == 0 {
            return Err("QMP: connection closed".into());
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("QMP: {e}: {line}"))?;
        if let Some(r) = v.get("return") {
            return Ok(r.clone());
        }
        if let Some(e) = v.get("error") {
            return Err(format!("QMP {command}: {e}"));
        }
    }
}

/// Hot-adds a VMware "Virtual disk" on the pvscsi bus.
fn qmp_hotplug(socket: &Path, image: &Path) -> Result<(), String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("QMP connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut greeting = String::new();
    reader
        .read_line(&mut greeting)
        .map_err(|e| format!("QMP greeting: {e}"))?;
    if !greeting.contains("QMP") {
        return Err(format!("QMP greeting: {greeting}"));
    }
    qmp_command(
        &mut stream,
        &mut reader,
        serde_json::json!({"execute": "qmp_capabilities"}),
    )?;
    qmp_command(
        &mut stream,
        &mut reader,
        serde_json::json!({"execute": "blockdev-add", "arguments": {
            "node-name": "hot1", "driver": "raw",
            "file": {"driver": "file", "filename": image.display().to_string()}
        }}),
    )?;
    qmp_command(
        &mut stream,
        &mut reader,
        serde_json::json!({"execute": "device_add", "arguments": {
            "driver": "scsi-hd", "drive": "hot1", "bus": "pvscsi0.0", "id": "hotdisk",
            "scsi-id": 1, "lun": 0, "vendor": "VMware", "product": "Virtual disk"
        }}),
    )?;
    Ok(())
}

/// Connects to QMP and leaves it ready for commands.
fn qmp_connect(socket: &Path) -> Result<(UnixStream, BufReader<UnixStream>), String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("QMP connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut greeting = String::new();
    reader
        .read_line(&mut greeting)
        .map_err(|e| format!("QMP greeting: {e}"))?;
    if !greeting.contains("QMP") {
        return Err(format!("QMP greeting: {greeting}"));
    }
    qmp_command(
        &mut stream,
        &mut reader,
        serde_json::json!({"execute": "qmp_capabilities"}),
    )?;
    Ok((stream, reader))
}

/// One command to qemu-guest-agent in the guest: `guest-sync` first (it drops what an earlier,
/// timed-out command left on the channel), then the command and its answer.
fn qga_command(socket: &Path, command: &serde_json::Value) -> Result<serde_json::Value, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| format!("QGA connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let id = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1),
    );
    let sync = serde_json::json!({"execute": "guest-sync", "arguments": {"id": id}});
    writeln!(stream, "{sync}").map_err(|e| format!("QGA write: {e}"))?;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("QGA guest-sync: {e}"))?;
        if n == 0 {
            return Err("QGA: connection closed".into());
        }
        let v: Option<serde_json::Value> = serde_json::from_str(line.trim()).ok();
        if v.as_ref().and_then(|v| v.get("return")) == Some(&serde_json::json!(id)) {
            break;
        }
    }
    writeln!(stream, "{command}").map_err(|e| format!("QGA write: {e}"))?;
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("QGA {command}: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("QGA: {e}: {line}"))?;
    match (v.get("return"), v.get("error")) {
        (Some(r), _) => Ok(r.clone()),
        (_, Some(e)) => Err(format!("QGA {command}: {e}")),
        _ => Err(format!("QGA {command}: {line}")),
    }
}

/// What the host does for lab.sh: `MARK HOST n=N qmp|qga JSON` runs the command on QEMU's
/// monitor or on the guest's agent; the answer goes back on the guest's
/// `org.tunerd.host.0` port as one line, `{"n":N,"ok":true,"return":...,"ms":M}` or
/// `{"n":N,"ok":false,"error":"..."}`.
fn host_request(work: &Scratch, phase: &str, line: &str) -> (u64, serde_json::Value) {
    let rest = line.strip_prefix("MARK HOST n=").unwrap_or_default();
    let mut it = rest.splitn(3, ' ');
    let n: u64 = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let kind = it.next().unwrap_or_default();
    let t = Instant::now();
    let result = serde_json::from_str::<serde_json::Value>(it.next().unwrap_or_default())
        .map_err(|e| format!("not JSON: {e}"))
        .and_then(|command| match kind {
            "qmp" => {
                let (mut stream, mut reader) =
                    qmp_connect(&work.join(&format!("{phase}-qmp.sock")))?;
                qmp_command(&mut stream, &mut reader, command)
            }
            "qga" => qga_command(&work.join(&format!("{phase}-qga.sock")), &command),
            other => Err(format!("no such request kind {other:?}")),
        });
    let ms = t.elapsed().as_millis() as u64;
    let reply = match result {
        Ok(r) => serde_json::json!({"n": n, "ok": true, "return": r, "ms": ms}),
        Err(e) => serde_json::json!({"n": n, "ok": false, "error": e, "ms": ms}),
    };
    (n, reply)
}

/// What the guest reported.
#[derive(Default)]
struct Report {
    checks: Vec<(String, bool, String)>,
    figures: Vec<(String, String)>,
    info: Vec<String>,
    /// `CAPTURE file=NAME LINE`: the lines of a capture, saved as last-run/captures/NAME.
    captures: std::collections::BTreeMap<String, Vec<String>>,
    end: Option<String>,
}

fn parse(text: &str) -> Report {
    let mut report = Report::default();
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(rest) = line.strip_prefix("CHECK name=") {
            let (name, rest) = rest.split_once(" ok=").unwrap_or((rest, ""));
            let (ok, detail) = rest.split_once(" detail=").unwrap_or((rest, ""));
            report
                .checks
                .push((name.to_string(), ok == "1", detail.to_string()));
        } else if let Some(rest) = line.strip_prefix("FIGURE name=") {
            let (name, value) = rest.split_once(" value=").unwrap_or((rest, ""));
            report.figures.push((name.to_string(), value.to_string()));
        } else if let Some(rest) = line.strip_prefix("INFO ") {
            report.info.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("CAPTURE file=") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            if is_capture_name(name) {
                report
                    .captures
                    .entry(name.to_string())
                    .or_default()
                    .push(text.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("MARK END") {
            report.end = Some(rest.trim().to_string());
        }
    }
    report
}

/// A capture's file name: letters, digits, `.`, `-`, `_`, no way out of its directory.
fn is_capture_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Keeps the last run's logs where a person can read them after the scratch space is gone.
fn keep_logs(work: &Scratch) -> PathBuf {
    let dir = Path::new(CACHE_DIR).join("last-run");
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::create_dir_all(&dir);
    for (phase, _) in PHASES {
        for log in ["console", "checks", "qemu"] {
            let name = format!("{phase}-{log}.log");
            let _ = fs::copy(work.join(&name), dir.join(&name));
        }
    }
    for seed in ["cloud", "cloud-broken"] {
        let _ = fs::copy(
            work.join(&format!("{seed}-seed/user-data")),
            dir.join(format!("{seed}-user-data")),
        );
    }
    // What the guest saved as captures (tests/logs takes them from here).
    if let Ok(entries) = fs::read_dir(work.join("captures")) {
        let _ = fs::create_dir_all(dir.join("captures"));
        for e in entries.flatten() {
            let _ = fs::copy(e.path(), dir.join("captures").join(e.file_name()));
        }
    }
    dir
}

/// The boots to run: `TUNERD_GUEST_BOOTS=cloud,cloud-broken` runs only those (in PHASES'
/// order), to work on one without the others; by default every one.
fn phases_to_run() -> Vec<(&'static str, &'static [&'static str])> {
    let wanted = std::env::var("TUNERD_GUEST_BOOTS").ok();
    let wanted: Option<Vec<&str>> = wanted
        .as_deref()
        .map(|w| w.split(',').map(str::trim).collect());
    if let Some(w) = &wanted {
        for name in w {
            assert!(
                PHASES.iter().any(|p| p.0 == *name),
                "TUNERD_GUEST_BOOTS: no boot {name:?}; the boots are {:?}",
                PHASES.iter().map(|p| p.0).collect::<Vec<_>>()
            );
        }
    }
    PHASES
        .iter()
        .filter(|p| wanted.as_ref().is_none_or(|w| w.contains(&p.0)))
        .copied()
        .collect()
}

/// One boot of the guest, from QEMU's start to its exit.
struct Boot {
    report: Report,
    exited: Option<std::process::ExitStatus>,
    timed_out: bool,
    /// From QEMU's start: the script's first line, its last, QEMU's exit.
    first_line: Option<Duration>,
    last_line: Duration,
    poweroff: Duration,
    /// The QMP hotplug, when the guest asked for it.
    hotplug: Option<Result<Duration, String>>,
}

/// Boots the guest for `phase`, shows the script's lines as they come, hot-adds the disk when
/// the guest says `MARK READY-FOR-HOTPLUG`, and waits for `MARK END` and the poweroff (or the
/// timeout). QEMU is killed when this returns or unwinds.
fn run_boot(work: &Scratch, images: &Images, phase: &str, timeout: Duration) -> Boot {
    let boot_at = Instant::now();
    let mut qemu = boot(work, images, phase);
    let checks_log = work.join(&format!("{phase}-checks.log"));
    let mut shown = 0usize;
    let mut first_line: Option<Duration> = None;
    let mut hotplug: Option<Result<Duration, String>> = None;
    let mut exited = None;
    let mut timed_out = false;
    // lab.sh's requests handled so far, and the channel their answers go back on.
    let mut answered = 0u64;
    let mut host_port: Option<UnixStream> = None;
    loop {
        let text = fs::read_to_string(&checks_log).unwrap_or_default();
        // Show the guest's lines as they come (complete lines only).
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        if complete > shown {
            for line in text[shown..complete].lines() {
                let line = line.trim_end_matches('\r');
                if line.starts_with("CHECK ")
                    || line.starts_with("MARK ")
                    || line.starts_with("FIGURE ")
                {
                    eprintln!("  {phase}| {line}");
                }
            }
            shown = complete;
            first_line.get_or_insert(boot_at.elapsed());
        }
        // The answer port is connected as soon as QEMU offers it: until then the guest's
        // reads of it end at once (virtio_console tells a port with no host side by EOF).
        let host_sock = work.join(&format!("{phase}-host.sock"));
        if host_port.is_none() && host_sock.exists() {
            host_port = UnixStream::connect(&host_sock).ok();
        }
        if hotplug.is_none() && text.contains("MARK READY-FOR-HOTPLUG") {
            let t = Instant::now();
            let result = qmp_hotplug(&work.join(&format!("{phase}-qmp.sock")), &images.hot)
                .map(|_| t.elapsed());
            log(&format!("QMP hotplug of a VMware Virtual disk: {result:?}"));
            hotplug = Some(result);
        }
        for line in text[..complete].lines() {
            let line = line.trim_end_matches('\r');
            if !line.starts_with("MARK HOST n=") {
                continue;
            }
            let n: u64 = line["MARK HOST n=".len()..]
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if n <= answered {
                continue;
            }
            let (n, reply) = host_request(work, phase, line);
            answered = answered.max(n);
            log(&format!("{phase}: {line} -> {reply}"));
            if host_port.is_none() {
                host_port = UnixStream::connect(&host_sock).ok();
            }
            let sent = host_port
                .as_mut()
                .map(|s| writeln!(s, "{reply}").and_then(|_| s.flush()));
            if !matches!(sent, Some(Ok(()))) {
                log(&format!("{phase}: could not answer request {n}: {sent:?}"));
                host_port = None;
            }
        }
        if text.contains("MARK END") {
            break;
        }
        if let Ok(Some(status)) = qemu.child.try_wait() {
            exited = Some(status);
            break;
        }
        if boot_at.elapsed() > timeout {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let last_line = boot_at.elapsed();
    // The guest powers itself off after its last line.
    let off_by = Instant::now() + Duration::from_secs(60);
    while exited.is_none() && !timed_out && Instant::now() < off_by {
        match qemu.child.try_wait() {
            Ok(Some(status)) => exited = Some(status),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let poweroff = boot_at.elapsed();
    drop(qemu);
    let report = parse(&fs::read_to_string(&checks_log).unwrap_or_default());
    for (name, lines) in &report.captures {
        let mut text = lines.join("\n");
        text.push('\n');
        write(&work.join(&format!("captures/{name}")), &text, 0o644);
    }
    Boot {
        report,
        exited,
        timed_out,
        first_line,
        last_line,
        poweroff,
        hotplug,
    }
}

/// Panics with the guest's console, QEMU's output and the script's last lines when the boot
/// ended before its script's `MARK END`.
fn require_end(work: &Scratch, boot: &Boot, phase: &str, timeout: Duration, logs: &Path) {
    if boot.report.end.is_some() {
        return;
    }
    let console =
        fs::read_to_string(work.join(&format!("{phase}-console.log"))).unwrap_or_default();
    let qemu_out = fs::read_to_string(work.join(&format!("{phase}-qemu.log"))).unwrap_or_default();
    panic!(
        "the guest's {phase} boot did not finish its script ({}) after {:.0} s; {} checks \
         reported (failed: {:?}); logs in {}\n--- qemu ---\n{}\n--- console (last 80 lines) \
         ---\n{}\n--- script output (last 60 lines) ---\n{}",
        if boot.timed_out {
            format!("timed out after {} s", timeout.as_secs())
        } else {
            format!("QEMU exited: {:?}", boot.exited)
        },
        boot.last_line.as_secs_f64(),
        boot.report.checks.len(),
        boot.report
            .checks
            .iter()
            .filter(|c| !c.1)
            .map(|c| format!("{}: {}", c.0, c.2))
            .collect::<Vec<_>>(),
        logs.display(),
        tail(&qemu_out, 20),
        tail(&console, 80),
        tail(&boot.report.info.join("\n"), 60),
    );
}

/// The failed checks of a boot and the expected ones it did not report.
fn failures_of(boot: &Boot, phase: &str, expected: &[&str]) -> Vec<String> {
    let mut failures: Vec<String> = boot
        .report
        .checks
        .iter()
        .filter(|c| !c.1)
        .map(|c| format!("{phase}: {}: {}", c.0, c.2))
        .collect();
    for name in expected {
        if !boot.report.checks.iter().any(|c| c.0 == *name) {
            failures.push(format!("{phase}: {name}: not reported by the guest"));
        }
    }
    failures
}

fn print_boot(phase: &str, boot: &Boot) {
    if let Some(t) = boot.first_line {
        eprintln!(
            "  {:<36} {:.1} s",
            format!("host: {phase} boot to first line"),
            t.as_secs_f64()
        );
    }
    eprintln!(
        "  {:<36} {:.1} s (poweroff at {:.1} s, exit {:?})",
        format!("host: {phase} boot to last line"),
        boot.last_line.as_secs_f64(),
        boot.poweroff.as_secs_f64(),
        boot.exited
    );
}

#[test]
fn real_guest_service_end_to_end() {
    let Some(_tier) = tier::require(Tier::Guest) else {
        return;
    };
    let started = Instant::now();
    let timeout = Duration::from_secs(
        std::env::var("TUNERD_GUEST_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );

    remove_stale_scratch();
    let work = Scratch::new("run");
    let t = Instant::now();
    let debs = packages(&work);
    let deb_time = t.elapsed();
    log(&format!(
        "package: {} ({} bytes, {}); upgrade to {} ({:.1} s)",
        debs.built.display(),
        debs.built_size,
        debs.version,
        debs.newer_version,
        deb_time.as_secs_f64()
    ));

    let t = Instant::now();
    let (tarball, cached) = rootfs_tarball(PACKAGES);
    let rootfs_time = t.elapsed();
    log(&format!(
        "root filesystem: {} ({}, {:.1} s)",
        tarball.display(),
        if cached { "cached" } else { "built now" },
        rootfs_time.as_secs_f64()
    ));

    let t = Instant::now();
    let images = prepare_images(&work, &tarball, &debs);
    let image_time = t.elapsed();
    log(&format!(
        "images ready in {:.1} s in {}",
        image_time.as_secs_f64(),
        work.path.display()
    ));

    // The boots, in order, on one root image: 1. install (apt installs the package, which
    // enables and starts tunerd); 2. check (tunerd as the package enabled it; check.sh ends
    // with a purge, so the machine is clean again); 3. cloud (cloud-init provisions it from
    // docs/images.md's cloud-config); 4. cloud-broken (cloud-init delivers a broken
    // tunerd.toml). A boot that does not reach its `MARK END` fails the test at once, with
    // its console; a failed install stops the test (the later boots need the package).
    // The fc boot needs the full kernel: its own root filesystem and image, made only when
    // it runs.
    let fc_work = Scratch::new("fc");
    let fc_images = phases_to_run().iter().any(|p| p.0 == "fc").then(|| {
        let t = Instant::now();
        let (fc_tarball, fc_cached) = rootfs_tarball(FC_PACKAGES);
        let images = prepare_images(&fc_work, &fc_tarball, &debs);
        log(&format!(
            "fc boot's images ready in {:.1} s ({}, {})",
            t.elapsed().as_secs_f64(),
            fc_tarball.display(),
            if fc_cached { "cached" } else { "built now" }
        ));
        images
    });
    let mut boots: Vec<(&str, Vec<&str>, Boot)> = Vec::new();
    let mut logs = PathBuf::new();
    for (phase, expected) in phases_to_run() {
        let timeout = if phase == "lab" || phase == "fc" {
            timeout.max(LAB_TIMEOUT)
        } else {
            timeout
        };
        let images = match (phase, &fc_images) {
            ("fc", Some(fc)) => fc,
            _ => &images,
        };
        let b = run_boot(&work, images, phase, timeout);
        logs = keep_logs(&work);
        require_end(&work, &b, phase, timeout, &logs);
        if phase == "install" {
            let install_failures = failures_of(&b, "install", expected);
            if !install_failures.is_empty() {
                for line in &b.report.info {
                    eprintln!("  install| {line}");
                }
                let console =
                    fs::read_to_string(work.join("install-console.log")).unwrap_or_default();
                eprintln!(
                    "\n===== install boot's console (last 40 lines) =====\n{}",
                    tail(&console, 40)
                );
                panic!(
                    "the package's install failed in the guest (logs in {}):\n  {}",
                    logs.display(),
                    install_failures.join("\n  ")
                );
            }
        }
        let expected: Vec<&str> = if phase == "lab" {
            lab_parts()
                .iter()
                .flat_map(|p| p.1.iter().copied())
                .collect()
        } else {
            expected.to_vec()
        };
        boots.push((phase, expected, b));
    }

    eprintln!("\n===== tunerd in a real guest: figures =====");
    for (phase, _, b) in &boots {
        for (name, value) in &b.report.figures {
            eprintln!("  {:<44} {value}", format!("{phase}: {name}"));
        }
    }
    eprintln!(
        "  {:<44} {} ({} bytes; {}, then {}; {:.1} s)",
        "host: package",
        debs.built.display(),
        debs.built_size,
        debs.version,
        debs.newer_version,
        deb_time.as_secs_f64()
    );
    eprintln!(
        "  {:<44} {:.1} s ({})",
        "host: root filesystem",
        rootfs_time.as_secs_f64(),
        if cached {
            "from the cache"
        } else {
            "mmdebstrap now"
        }
    );
    eprintln!(
        "  {:<44} {:.1} s (unpack, add the packages, repository, scripts and seeds, mkfs.ext4 -d)",
        "host: images",
        image_time.as_secs_f64()
    );
    for (phase, _, b) in &boots {
        print_boot(phase, b);
        if let Some(h) = &b.hotplug {
            eprintln!("  {:<44} {h:?}", "host: QMP hotplug (device_add took)");
        }
    }
    eprintln!(
        "  {:<44} {:.1} s",
        "host: whole test (wall time)",
        started.elapsed().as_secs_f64()
    );
    eprintln!("  {:<44} {}", "logs", logs.display());
    eprintln!("\n===== tunerd in a real guest: checks =====");
    for (phase, _, b) in &boots {
        for (name, ok, detail) in &b.report.checks {
            eprintln!(
                "  {} {phase:<12} {name:<36} {detail}",
                if *ok { "ok  " } else { "FAIL" }
            );
        }
    }

    let mut failures = Vec::new();
    let mut failed_phases = Vec::new();
    for (phase, expected, b) in &boots {
        let mut f = failures_of(b, phase, expected);
        if let Some(Err(e)) = &b.hotplug {
            f.push(format!("{phase}: host hotplug: {e}"));
        }
        if !f.is_empty() {
            failed_phases.push(*phase);
        }
        failures.extend(f);
    }
    if !failures.is_empty() {
        eprintln!("\n===== guest output (apt, journal of tunerd, status) =====");
        for (phase, _, b) in &boots {
            for line in &b.report.info {
                eprintln!("  {phase}| {line}");
            }
        }
        for phase in &failed_phases {
            let console =
                fs::read_to_string(work.join(&format!("{phase}-console.log"))).unwrap_or_default();
            eprintln!(
                "\n===== {phase} boot's console (last 40 lines) =====\n{}",
                tail(&console, 40)
            );
        }
    }
    let total: usize = boots.iter().map(|b| b.2.report.checks.len()).sum();
    assert!(
        failures.is_empty(),
        "{} of {} guest checks failed (logs in {}):\n  {}",
        failures.len(),
        total,
        logs.display(),
        failures.join("\n  ")
    );
}
