//! Kernel (and storage daemon) log messages -> [`Observation`]s: the catalog of
//! `shared/reference/kernel-storage-signals.md` section 3, matched on the text (never on the
//! level: btrfs says "forced readonly" at INFO) with `strip_prefix`/`find`, no regex.
//!
//! | message (kernel format string, filled in) | kind | severity | device |
//! |---|---|---|---|
//! | `EXT4-fs error (device sda1): func:12: ...`, `EXT4-fs error (device sda1) in func:12: ...`, `EXT4-fs (sda1): I/O error while writing superblock` | Ext4Error | critical | `sda1` |
//! | `... Detected aborted journal`, `... Journal has aborted` (inside an ext4 error), `Aborting journal on device sda1-8.` | Ext4JournalAbort | critical | `sda1` (jbd2's `-8` journal inode dropped) |
//! | `JBD2: I/O error when updating journal superblock for sda1-8.` | Ext4Error | critical | `sda1` |
//! | `EXT4-fs (sda1): Remounting filesystem read-only` | Ext4ReadOnly | critical | `sda1` |
//! | `... potential data loss!`, `... Data will be lost`, `EXT4-fs warning (device sda1): ext4_end_bio:..: I/O error 10 writing to inode ...`, `JBD2: Detected IO errors while flushing file data on sda1-8` | Ext4DataLoss | critical | `sda1` |
//! | `EXT4-fs (sda1): shut down requested (2)` | Ext4Shutdown | critical | `sda1` |
//! | `EXT4-fs (sda1): error count since last fsck: 3`, `... mounting fs with errors, running e2fsck is recommended` | FilesystemErrorsRecorded | warning | `sda1` |
//! | `XFS (sda1): ... Shutting down filesystem.`, `... Filesystem has been shut down due to log error (0x2).`, `User initiated shutdown received.`, `xfs_do_force_shutdown(0x2) called from ...` | XfsShutdown | critical | `sda1` |
//! | `XFS (sda1): log I/O error -5` | XfsLogError | critical | `sda1` |
//! | `XFS (sda1): page discard on page ..., inode 0x84, pos 0.` | WritebackError (interim) | critical | `sda1` |
//! | `BTRFS: error (device sda1 state A) in func:12: errno=-5 IO failure` | BtrfsError | critical | `sda1` |
//! | `BTRFS critical (device sda1): ...` / `BTRFS error (device sda1): ...` (other) | BtrfsError | critical / warning | `sda1` |
//! | `BTRFS info (device sda1 state E): forced readonly` | BtrfsReadOnly | critical | `sda1` |
//! | `... Transaction aborted (error -5)`, `... Skipping commit of aborted transaction.` | BtrfsTransactionAbort | critical | `sda1` |
//! | `BTRFS error (device sda1): bdev /dev/sdb errs: wr 1, rd 0, ...`, `... lost page write due to IO error on /dev/sdb` | BtrfsDeviceErrors | warning | `sdb` |
//! | `I/O error, dev sda, sector 8 op 0x1:(WRITE) ...` and every `%s error, dev %s, sector` (`timeout`, `critical medium`, `critical space allocation`, ...), with or without `blk_update_request: ` / `print_req_error: ` / `end_request: ` in front; not `operation not supported` | BlockIoError | warning | `sda` |
//! | `Buffer I/O error on dev sda1, logical block 9, lost async page write` / `... on device sda1, ...`; to 3.16 `lost page write due to I/O error on sda1` | BufferIoError | critical when a write was lost, else warning | `sda1` |
//! | `sda1: writeback error on inode 12, offset 0, sector 8` | WritebackError | critical | `sda1` (the superblock id) |
//! | `sd 2:0:0:0: [sda] tag#3 timing out command, waited 30s`, `... FAILED Result: hostbyte=DID_TIME_OUT ...` | ScsiTimeout | warning | `sda`, else `2:0:0:0` |
//! | `sd 2:0:0:0: Device offlined - not ready after error recovery` | ScsiOffline | critical | same |
//! | `sd 2:0:0:0: rejecting I/O to offline device` (also `to dead device`) | ScsiRejectedIo | critical | same |
//! | `INFO: task dd:123 blocked for more than 120 seconds.` | HungTask | warning | None (see below for storage threads) |
//! | `nfs: server srv not responding, still trying` / `..., timed out` (also `lockd:`) | NfsNotResponding | warning / critical | `srv` |
//! | `nfs: server srv OK` | NfsOk (resolves) | info | `srv` |
//! | `connection1:0: detected conn error (1020)`; iscsid: `Kernel reported iSCSI connection 1:0 error (...)`; `session1: session recovery timed out after 120 secs` | IscsiConnectionError | warning; the last critical | `connection1:0` / `session1` |
//! | iscsid: `connection1:0 is operational after recovery (1 attempts)` | IscsiConnectionError (resolves) | info | `connection1:0` |
//! | `connection1:0: ping timeout of 5 secs expired, ...` | IscsiPingTimeout | warning | `connection1:0` |
//! | `device-mapper: multipath: 253:0: Failing path 8:16.`; multipathd: `checker failed path 8:16 in map mpatha` | MultipathPathFailed | warning | `8:16` |
//! | `device-mapper: multipath: 253:0: Reinstating path 8:16.` | MultipathPathReinstated (resolves) | info | `8:16` |
//! | `device-mapper: multipath: queue_if_no_path timeout on 253:0, failing queued IO`; multipathd: `mpatha: remaining active paths: 0` | MultipathNoPaths | critical | `253:0` / `mpatha` |
//! | `nvme nvme0: I/O tag 12 (100c) opcode 0x1 (Write) QID 2 timeout, aborting ...` (and the older `I/O 12 QID 2 timeout, ...`) | NvmeTimeout | warning | `nvme0` |
//! | `nvme nvme0: controller is down; will reset: CSTS=0x3, ...` | NvmeReset | critical | `nvme0` |
//!
//! | `sd 2:0:0:0: [sda] Medium access timeout failure. Offlining disk!` | ScsiOffline | critical | `sda` |
//! | `sd 0:0:0:0: [sda] tag#99 task abort on host 0, ...` (pvscsi), `... attempting task abort!...` (mptscsih, mpt3sas), `sd 2:0:0:0: [sda] abort` (2.6.32) | ScsiTaskAbort | warning | `sda` |
//! | `XFS (dm-0): xfs_log_force: error -5 returned.` | XfsLogError | critical | `dm-0` |
//! | `XFS (sdb1): SB validate failed with error -5.`, `... log mount failed`, `... log mount/recovery failed: error -5` | XfsMetadataError | critical | `sdb1` |
//! | `XFS (dm-7): metadata I/O error: block 0x... ("xlog_bread_noalign") error 5 numblks 8` (4.x), `... metadata I/O error in "..." at daddr 0x3 len 1 error 5` (5.x+) | XfsMetadataError | warning | `dm-7` |
//! | `nvme0n1: I/O Cmd(0x2) @ LBA 0, 8 blocks, I/O Error (sct 0x2 / sc 0x86) DNR` | NvmeIoError | warning | `nvme0n1` |
//! | `hv_storvsc <vmbus id>: tag#599 cmd 0x28 status: scsi 0x2 srb 0x4 hv 0xc0000001` (reads, writes, cache flushes only) | StorvscError | warning | the vmbus id |
//! | `md/raid1:md0: Disk failure on sdb6, disabling device.` (also `md/raid10:`, `md/raid:`; 2.6: `raid1: Disk failure on ...`) | MdDiskFailure | warning | `sdb6` |
//! | `INFO: task jbd2/sda3-8:373 blocked ...`, `INFO: task xfsaild/dm-0:512 blocked ...` | HungTask | warning | `sda3`, `dm-0` |
//! | qemu-ga: `info: guest-fsfreeze called`, its hook's `executing fsfreeze hook with arg 'freeze'` / `guest-fsthaw called`, `... arg 'thaw'` (resolves) | FsFrozen (a freeze's start or end; the engine opens the incident after `frozen_secs` without a thaw) | critical | None |
//! | `Hyper-V VSS`: `VSS: op=FREEZE: succeeded` / `VSS: op=THAW: succeeded` (resolves) | FsFrozen (same) | critical | None |
//! | `md/raid1:md0: Operation continuing on 1 devices.` (a record of its own) | MdDegraded | critical | `md0` |
//! | `md: md0: recovery done.` | MdDegraded (resolves) | info | `md0` |
//! | `md/raid:md2: Cannot continue operation (2/4 failed).`, `md/raid1:md0: Disk failure on sdb1, this is the last device.` | MdArrayFailed | critical | `md2`, `md0` |
//! | `drbd r0 peer: PingAck did not arrive in time.`, `... meta connection shut down by peer.`, `... conn( Connected -> NetworkFailure )` (`BrokenPipe`, `Timeout`, `ProtocolError`) | DrbdConnectionLost | warning | `r0:peer` (DRBD 9), `r0` / `drbd0` (8.x) |
//! | `... conn( Connecting -> Connected )` (8.x: also `-> WFBitMapS`, `SyncSource` and the other states past `Connected`; 8.4 prints it on the device, `block drbd6: ... conn( WFReportParams -> Connected )`; the engine also ends with it the loss 8.4 printed on the connection, `resource6`, whose handshake it is) | DrbdConnectionLost (resolves) | info | same |
//! | `drbd r0/0 drbd1 peer: Split-Brain detected but unresolved, dropping connection!`, `block drbd0: Split-Brain detected, dropping connection!` | DrbdSplitBrain | critical | `r0:peer`, `drbd0` |
//! | `drbd r0/0 drbd1: disk( UpToDate -> Failed )` (DRBD 9 only: DRBD 8's `block drbd1: disk( UpToDate -> Failed )` is also every detach), `... Local IO failed in ...`, `... IO ERROR: neither local nor remote data, ...` | DrbdDiskFailed | critical | `drbd1` |
//! | `drbd r0/0 drbd1: disk( Inconsistent -> UpToDate )` | DrbdDiskFailed (resolves) | info | `drbd1` |
//! | `WARNING: Pool 'tank' has encountered an uncorrectable I/O failure and has been suspended.` (also behind `SPLError: ...`), `WARNING: MMP writes to pool 'tank' have not succeeded in over 5s; suspending pool` | ZfsPoolSuspended | critical | `tank` |
//! | zed: `eid=12 class=statechange pool='tank' vdev=sdb1 vdev_state=FAULTED` (`UNAVAIL`, `REMOVED`; `DEGRADED` a warning; `ONLINE` resolves) | ZfsVdevFault | critical | `sdb1` |
//! | zed: `class=io`, `checksum`, `deadman`, `delay`, `probe_failure`, `data` | ZfsIoError | warning | the vdev, else the pool |
//! | zed: `class=io_failure` / `class=vdev_clear` (resolves) | ZfsPoolSuspended | critical | the pool |
//! | `device-mapper: thin: 253:2: switching pool to out-of-data-space (queue IO) mode` / `(error IO) mode` | DmThinOutOfSpace | warning / critical | `253:2` |
//! | `... switching pool to read-only mode` / `fail mode` (`failure` before 4.19); `... write mode` resolves | DmThinPoolFailed | critical | `253:2` |
//!
//! Not observations: errors of an empty virtual CD-ROM or floppy (`Buffer I/O error on dev sr0,
//! logical block 0`, `I/O error, dev fd0, sector 0`: every VMware, Hyper-V and KVM guest with
//! the default virtual hardware prints them at boot), storvsc errors of probes (TEST UNIT
//! READY, INQUIRY, smartd's ATA PASS-THROUGH). A message is read without its leading blanks:
//! iSCSI's lines come from `dev_printk` with an empty driver name and start with one
//! (` connection1:0: ping timeout ...`). [`lifecycle`] reads the mount and unmount lines of
//! ext4, XFS and btrfs, which end the incident of the filesystem that was there.
//!
//! # Which kernels print what
//!
//! Wordings change between versions; each entry is matched in every wording below. "Seen"
//! means a real capture under tests/logs shows it from that kernel. "Checked" means the format
//! string was read in the source of each of these releases (copies of single releases, their
//! version read from the Makefile; the Linux repository itself is too large to fetch here):
//! 2.6.32, 2.6.36-38, 3.10, 3.14, 3.16, 3.18, 4.4, 4.9, 4.14, 4.19, 5.3, 5.4, 5.7, 5.8, 5.10,
//! 5.15, 5.17-rc5, 5.19, 6.1, 6.4, 6.6, 6.12, 6.18, and RHEL 7.9 (3.10.0-1160) and RHEL 8.5
//! (4.18.0-348). A change between two of them is given as "by" the later one; releases in
//! between (5.16, 5.18 among them) were not read.
//!
//! | entry | kernels |
//! |---|---|
//! | ext4 errors, journal abort, read-only, data loss, shutdown | checked: `EXT4-fs error (device %s): %s:%d: comm %s: ` by 2.6.36 (2.6.32: `%s: ` with no line number), `Detected aborted journal`, `Remounting filesystem read-only`, jbd2 `Aborting journal on device %s.` and `I/O error while writing superblock` in every release; JBD2 superblock errors in three wordings, each with `when updating journal superblock for `; `Data will be lost` only to 3.10, `I/O error %d writing to inode` from 3.14; JBD2 `Detected IO errors while flushing file data on` to 6.12, `Detected IO errors %d while flushing ...` in 6.18 (both matched); `shut down requested (%d)` from 4.14 (not in 4.9); seen 6.18 |
//! | ext4 `unmounting filesystem %pU.` | checked: none to 5.17-rc5, `unmounting filesystem.` in 5.19 and 6.1, `unmounting filesystem %pU.` by 6.4 (both matched); seen 6.18 |
//! | block `%s error, dev %s, sector` | checked: `end_request: I/O error, dev %s, sector` 2.6.x, `end_request: %s error, ...` 3.10-3.16, `blk_update_request: ` 3.18-4.9 and again 5.3-5.15 (and RHEL 8), `print_req_error: ` 4.14-4.19, no prefix by 5.17 (blk_print_req_error); seen 6.18, 4.x (public-xcat-sda-io-error), 4.19 (photon) |
//! | `Buffer I/O error on dev %pg` / `on device %s` | checked: `on device %s, logical block %Lu` and a lost write on a line of its own (`lost page write due to I/O error on %s`) to 3.16; `on dev %s, logical block %llu%s` (`, lost async page write`) from 3.18, `%pg` by 4.9; seen 6.18 (`dev`), `on device` in public-xcat-sda-io-error |
//! | XFS shutdown, `log I/O error %d` | checked: `log I/O error %d` from 5.3 (not in 4.19; before, log write errors are `metadata I/O error` lines); `Log I/O Error Detected. Shutting down filesystem` and `xfs_do_force_shutdown(0x%x) called from line` 3.10-5.10, `%s (0x%x) detected at %pS (%s:%d). Shutting down filesystem.` from 5.15, `Filesystem has been shut down due to log error (0x%x).` from 5.19, `User initiated shutdown received.` from 5.3; seen 6.18 |
//! | XFS `xfs_log_force: error %d returned.` | checked: 2.6.32 to 4.4 (also `xfs_log_force_lsn: `), gone by 4.9; seen 4.4 (public-alba), public-xcat-xfs-log-force |
//! | XFS `metadata I/O error: block 0x%llx ("%s") error %d numblks %d` | checked: 3.10 to 4.14; `metadata I/O error in "%s" at daddr 0x%llx len %d error %d` by 4.19 (`%pS` by 5.7); seen in public-kvdo (old form) and 6.18 (new form) |
//! | XFS `SB validate failed with error %d.`, `log mount failed`, `log mount/recovery failed: error %d` | checked: 3.10 to 6.18 (2.6.x has other wordings); seen in public-kvdo |
//! | sd `Medium access timeout failure. Offlining disk!` | checked: 3.10 to 6.18 (not in 2.6.38); seen on RHEL/SL 6 in public-dcache |
//! | `Device offlined - not ready after error recovery`, `rejecting I/O to offline device` | checked: 2.6.32 to 6.18; seen 6.x in public-longhorn |
//! | pvscsi `task abort on host %u, %p` | checked: 2.6.36 to 6.18 (KERN_DEBUG: only where the console or the reader keeps debug records); seen 5.10 in public-gardenlinux |
//! | `[sda] abort` | virtio-scsi's abort handler (virtscsi_abort, checked 3.10 to 6.18); seen in public-zfs-virtio-scsi-abort (a distro 2.6.32 with virtio-scsi) |
//! | NVMe `%s: %s(0x%x) @ LBA %llu, %u blocks, %s (sct 0x%x / sc 0x%x)` | checked: nvme_log_error from 5.19 (not in 5.17-rc5), `%llu blocks` to 6.6, `%u blocks` by 6.12 |
//! | storvsc `tag#%d cmd 0x%x status: scsi 0x%x srb 0x%x hv 0x%x` | checked: 5.15 to 6.12; `... host 0x%x` in 6.18 (matched: nothing after `status: ` is needed); before, `cmd 0x%x scsi status 0x%x srb status 0x%x`, printed by default in 3.10-3.16 and only with `logging_level=2` in 4.9-5.10 |
//! | md `md/raid1:%s: Disk failure on %s, disabling device.` | checked: `md/raidN:` by 2.6.36, `%pg` by 5.19; `raid1: Disk failure on %s, disabling device.` in 2.6.32 (seen in public-raid1-disk-failure) |
//! | iSCSI `connection%d:%d: ping timeout of %d secs expired, ...` | checked: 2.6.32 to 6.18; seen in public-iscsi-nop-timeout, public-longhorn |
//! | hung task `INFO: task %s:%d blocked for more than %ld seconds.` | checked: 2.6.32 to 6.18; seen 2.6.32, 4.5, 5.10, 6.18 |
//! | a hung task's trace in `percpu_rwsem_wait` under a VFS write entry (the engine's `fs_frozen`) | checked: `percpu_rwsem_wait` from 5.7 (not in 5.4; RHEL 8.5 has it), `__sb_start_write` frames to 5.8; seen 6.18 in hung-task.*, frozen-writers.dmesg |
//! | qemu-ga `guest-fsfreeze called` | every qemu-ga with fsfreeze (the `slog()` in `qmp_guest_fsfreeze_freeze*`, qga/commands-posix.c); `guest-fsthaw called` only in agents with the later patch that added it (version not checked here; older agents log no thaw, only their hook's `executing fsfreeze hook with arg 'thaw'` when a hook is set); seen 7.2 (Debian 12) in guest-qga-fsfreeze.* |
//! | hv_vss_daemon `VSS: op=%s: %s` | checked in tools/hv/hv_vss_daemon.c: from 4.4 (not in 3.18 or RHEL 7.9, whose daemon logs only failed freezes and thaws); `openlog("Hyper-V VSS")` from 3.10 |
//! | md `md/raid:%s: Cannot continue operation (%d/%d failed).` | checked: raid5.c from 5.19 (not in 5.17-rc5) and in the late 5.4.y, 5.10.y and 5.15.y stable releases (backported); seen in public-buffalo-md-raid5-failed; raid1/raid10's `Disk failure on %pg, this is the last device.` is not in 6.18 (a 2025 patch series, matched for when it lands) |
//! | md `md/raid%s:%s: Operation continuing on %d devices.`, `md: %s: %s %s.` (done / interrupted) | checked: `md/raidN:` by 2.6.36 (`raid1: ` in 2.6.32); raid1/raid10 print it in one printk with `Disk failure on` in every release (one record on kernels that keep multi-line records, which counts as the member's failure only); raid5 in a printk of its own from 5.19 and the same stable releases as above; `md: %s: %s done.` in every release, `interrupted` by 3.14 |
//! | DRBD `PingAck did not arrive in time.`, `meta connection shut down by peer.`, `conn( %s -> %s )`, `disk( %s -> %s )`, `Split-Brain detected but unresolved, dropping connection!`, `Local IO failed in %s.`, `IO ERROR: neither local nor remote data, sector %llu+%u` | checked in LINBIT/drbd: master (DRBD 9) and tag drbd-8.4.7 (the in-kernel 8.4); 8.3 `Split-Brain detected, dropping connection!` (DRBD 8.3 user's guide); seen 8.4 (public-ganeti) and 9 (public-drbd9-*, public-linstor, public-windrbd; `IO ERROR: neither local nor remote data` in public-drbd9-io-error, 9.1.6); 8.4's reconnect is a device's `conn( WFReportParams -> Connected )` (drbd_state.c `drbd_pr_state_change` from drbd_receiver.c `receive_state`, drbd-8.4.7), not seen in a capture; the in-tree driver's strings checked 2.6.36 to 6.18 (`IO ERROR: neither local nor remote data, sector` from 3.18; `... remote disk` before) |
//! | ZFS `Pool '%s' has encountered an uncorrectable I/O failure and has been suspended.`, `MMP writes to pool '%s' have not succeeded in over %llu ms; suspending pool` | checked in openzfs/zfs master (zio.c, mmp.c); seen 0.6.3 (SPLError prefix), 0.7.1; the MMP line seen in 0.7 as `over 5s` |
//! | zed `eid=%d class=%s pool='%s' vdev=%s ... vdev_state=%s` | checked in openzfs/zfs master (cmd/zed/zed.d/all-syslog.sh); 0.7's `pool_guid=`, `vdev_path=` form as openzfs/zfs#8967 quotes it (a unit test: that paste, `grep` output, is not in the stored copies of the report; `tunerctl scan` reads grep output now) |
//! | dm-thin `%s: switching pool to %s%s mode` | checked: 3.10 `switching pool to failure mode` / `read-only mode` with no device; `%s: switching pool to %s mode` 3.14-3.18 (bare `out-of-data-space`), `(queue IO)` / `(error IO)` by 4.4, `fail` (not `failure`) from 4.19 and in RHEL 7.9 and 8.5; seen in public-docker-thin-error-io (2017, kernel not said) |
//!
//! Severities: data loss, journal abort, read-only, shutdown and no-paths are critical (data
//! did not reach the disk or the filesystem stopped taking writes); so are an ext4 or btrfs
//! filesystem error (the filesystem is marked as needing fsck, and the next step is read-only)
//! and a device the kernel gave up on (SCSI offline, rejected I/O, NVMe controller down). A
//! failed request, a timeout, a lost path or connection, a hung task or a slow NFS server is a
//! warning: the layer above retries, and when it gives up it says so in a line of its own that
//! is critical. Recoveries (NFS OK, path reinstated, iSCSI connection back) are info with
//! `resolves`.
//!
//! Rate-limit lines (`blk_print_req_error: 12 callbacks suppressed`) are not observations:
//! [`classify`] returns None and [`suppressed`] says how many lines the kernel dropped and,
//! when the rate-limited function is known, of which kind, so a caller can add them to its
//! count.
//!
//! [`Observation::at_us`] is the record's realtime (journal records); kmsg and dmesg records
//! only have a monotonic time, which the caller converts with its boot time.

use std::borrow::Cow;

use crate::detect::types::{Kind, LogRecord, Observation, Sender, Severity};

/// What one record says, if it is in the catalog. Unrelated lines return None quickly: the
/// message's first byte picks the few prefixes to try, and only one substring search
/// (`"error"`) runs over every line.
///
/// Only a trusted sender is believed ([`Sender`]): the kernel's records go through the kernel
/// catalog, a root process's through its program's patterns, and a record from anyone else
/// is never an observation, whatever it says or calls itself. A record whose format cannot show
/// the sender (`Sender::Unknown`: dmesg, short journal formats, syslog files in `tunerctl scan`)
/// is taken at its word, by its program if it names one.
pub fn classify(rec: &LogRecord) -> Option<Observation> {
    // Many messages start with a blank (iSCSI's `%s` of " connection1:0: ...", drivers'
    // indented continuation): the catalog reads them without it.
    let m = rec.message.trim_start();
    let hit = match (rec.sender, rec.program.as_deref()) {
        (Sender::Untrusted, _) => None,
        (Sender::Kernel, _) => kernel(m),
        (Sender::Root | Sender::Unknown, Some(program)) => userspace(program, m),
        // A root process that names no program is not a storage daemon, nor the kernel.
        (Sender::Root, None) => None,
        (Sender::Unknown, None) => kernel(m),
    }?;
    Some(Observation {
        kind: hit.kind,
        severity: hit.severity,
        device: hit.device.map(Cow::into_owned),
        resolves: hit.resolves,
        message: m.to_string(),
        at_us: rec.realtime_us,
    })
}

/// What a mount or unmount line says of a device's filesystem: a failure of the filesystem
/// that was there ends with it ([`Lifecycle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// `EXT4-fs (sda1): mounted filesystem ...`, `XFS (sda1): Mounting V5 Filesystem ...`,
    /// `BTRFS info (device sda1): first mount of filesystem ...`.
    Mounted,
    /// `EXT4-fs (sda1): unmounting filesystem ...` (6.x), `XFS (sda1): Unmounting Filesystem
    /// ...`, `BTRFS info (device sda1): last unmount of filesystem ...`.
    Unmounted,
}

/// A mount or unmount line of ext4, XFS or btrfs: the device and which. Believed from the same
/// senders as [`classify`].
pub fn lifecycle(rec: &LogRecord) -> Option<(Lifecycle, String)> {
    if rec.sender == Sender::Untrusted || rec.sender == Sender::Root || rec.program.is_some() {
        return None;
    }
    let m = rec.message.trim_start();
    let (dev, after) = if let Some(r) = m.strip_prefix("EXT4-fs (") {
        paren_device(&m[m.len() - r.len() - 1..])?
    } else if let Some(r) = m.strip_prefix("XFS ") {
        paren_device(r)?
    } else if let Some(r) = m.strip_prefix("BTRFS info ") {
        paren_device(r)?
    } else {
        return None;
    };
    let what = if after.starts_with("mounted filesystem")
        || after.starts_with("Mounting V")
        || after.starts_with("first mount of filesystem")
    {
        Lifecycle::Mounted
    } else if after.starts_with("unmounting filesystem")
        || after.starts_with("Unmounting Filesystem")
        || after.starts_with("last unmount of filesystem")
    {
        Lifecycle::Unmounted
    } else {
        return None;
    };
    (!dev.is_empty()).then(|| (what, dev.to_string()))
}

/// `sd 2:0:0:0: [sdb] ...`: the SCSI address and the disk name the same line gives it, so a
/// later line that names only the address (`sd 2:0:0:0: rejecting I/O to offline device`) can
/// be put on its disk. The kernel's lines only: the tie outlives the line (it is kept across
/// restarts), so no user's `logger` may move a disk's incidents.
pub fn scsi_disk_name(rec: &LogRecord) -> Option<(&str, &str)> {
    if rec.sender == Sender::Untrusted || rec.sender == Sender::Root || rec.program.is_some() {
        return None;
    }
    let m = rec.message.trim_start();
    let rest = m.strip_prefix("sd ")?;
    let (hctl, after) = rest.split_once(": [")?;
    let (name, _) = after.split_once(']')?;
    let ok = is_hctl(hctl)
        && !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|c| c.is_ascii_alphanumeric());
    ok.then_some((hctl, name))
}

fn is_hctl(s: &str) -> bool {
    s.split(':').count() == 4
        && s.split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// Devices whose errors are no storage trouble of the VM: an empty virtual CD-ROM (`sr0`) or
/// floppy (`fd0`) that something probed at boot (`Buffer I/O error on dev sr0, logical block
/// 0`, `I/O error, dev fd0, sector 0`), as every VMware, Hyper-V and KVM guest with the default
/// virtual hardware prints.
fn is_removable_media(dev: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    ["sr", "fd", "scd"]
        .iter()
        .any(|p| dev.strip_prefix(p).is_some_and(digits))
}

/// A kernel rate-limit line: `FUNC: N callbacks suppressed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    /// The rate-limited function or prefix (`blk_print_req_error`, `buffer_io_error`,
    /// `EXT4-fs`).
    pub source: String,
    /// How many lines were not printed.
    pub count: u64,
    /// The kind of the lines that were not printed, when `source` tells it.
    pub kind: Option<Kind>,
}

/// The rate-limit line `FUNC: N callbacks suppressed`, which [`classify`] ignores.
pub fn suppressed(rec: &LogRecord) -> Option<Suppressed> {
    if rec.sender == Sender::Untrusted {
        return None;
    }
    let head = rec.message.strip_suffix(" callbacks suppressed")?;
    let (source, count) = head.rsplit_once(": ")?;
    let count = count.parse().ok()?;
    let kind = match source {
        "blk_print_req_error" | "print_req_error" | "blk_update_request" => {
            Some(Kind::BlockIoError)
        }
        "buffer_io_error" => Some(Kind::BufferIoError),
        _ => None,
    };
    Some(Suppressed {
        source: source.to_string(),
        count,
        kind,
    })
}

/// A device name as the kernel prints it in messages: `/dev/sdb` -> `sdb` (btrfs prints paths),
/// trailing `.`/`,`/`:` dropped.
pub fn kernel_device(name: &str) -> String {
    let n = name.trim_end_matches(['.', ',', ':']);
    n.strip_prefix("/dev/").unwrap_or(n).to_string()
}

struct Hit<'a> {
    kind: Kind,
    severity: Severity,
    device: Option<Cow<'a, str>>,
    resolves: bool,
}

fn hit(kind: Kind, severity: Severity, device: Option<&str>) -> Option<Hit<'_>> {
    Some(Hit {
        kind,
        severity,
        device: device.filter(|d| !d.is_empty()).map(Cow::Borrowed),
        resolves: false,
    })
}

fn resolved(kind: Kind, device: Option<&str>) -> Option<Hit<'_>> {
    Some(Hit {
        kind,
        severity: Severity::Info,
        device: device.filter(|d| !d.is_empty()).map(Cow::Borrowed),
        resolves: true,
    })
}

use Kind::*;
use Severity::{Critical, Warning};

fn kernel(m: &str) -> Option<Hit<'_>> {
    let first = *m.as_bytes().first()?;
    let by_prefix = match first {
        b'E' => m.strip_prefix("EXT4-fs").and_then(ext4),
        b'A' => m
            .strip_prefix("Aborting journal on device ")
            .and_then(|d| hit(Ext4JournalAbort, Critical, Some(jbd2_device(d)))),
        b'J' => m.strip_prefix("JBD2: ").and_then(jbd2),
        b'X' => m.strip_prefix("XFS ").and_then(xfs),
        b'B' => match m.strip_prefix("BTRFS") {
            Some(rest) => btrfs(rest),
            None => m.strip_prefix("Buffer I/O error on dev").and_then(buffer),
        },
        b'I' => m.strip_prefix("INFO: task ").and_then(hung_task),
        b'n' => match m.strip_prefix("nfs: server ") {
            Some(rest) => nfs(rest),
            None => match m.strip_prefix("nvme ") {
                Some(rest) => nvme(rest),
                None => nvme_status(m),
            },
        },
        b'h' => m.strip_prefix("hv_storvsc ").and_then(storvsc),
        b'l' => match m.strip_prefix("lockd: server ") {
            Some(rest) => nfs(rest),
            // 2.6.x-3.16: a lost buffer write's own line (3.18+ append it to the Buffer I/O
            // error line: `, lost async page write`).
            None => m
                .strip_prefix("lost page write due to I/O error on ")
                .and_then(|d| hit(BufferIoError, Critical, Some(strip_dev(d.trim_end())))),
        },
        b'c' => iscsi_connection(m),
        b's' => iscsi_session(m).or_else(|| m.strip_prefix("storvsc: ").and_then(storvsc)),
        b'd' => match m.strip_prefix("device-mapper: multipath: ") {
            Some(rest) => dm_multipath(rest),
            None => match m.strip_prefix("device-mapper: thin: ") {
                Some(rest) => dm_thin(rest),
                None => m.strip_prefix("drbd ").and_then(drbd),
            },
        },
        b'b' => m
            .strip_prefix("block drbd")
            .and_then(|r| drbd(&m[m.len() - r.len() - 4..])),
        b'W' => m.strip_prefix("WARNING: ").and_then(zfs_kernel),
        b'S' => m
            .strip_prefix("SPLError: ")
            .and_then(|r| r.find("WARNING: ").map(|i| &r[i + "WARNING: ".len()..]))
            .and_then(zfs_kernel),
        b'r' => md(m),
        b'm' if m.starts_with("md/") => md(m).or_else(|| md_array(m)),
        b'm' if m.starts_with("md: ") => md_array(m),
        b'm' => m.strip_prefix("multipathd").and_then(|r| {
            // "multipathd: ..." or "multipathd[812]: ..." as a bare line
            let r = r.strip_prefix(':').or_else(|| {
                let close = r.find("]:")?;
                r.starts_with('[').then(|| &r[close + 2..])
            })?;
            multipathd(r.trim_start())
        }),
        _ => None,
    };
    if by_prefix.is_some() {
        return by_prefix;
    }
    if let Some(h) = error_anywhere(m) {
        return Some(h);
    }
    scsi(m)
}

/// Records of userspace storage daemons (journal `SYSLOG_IDENTIFIER`).
fn userspace<'a>(program: &str, m: &'a str) -> Option<Hit<'a>> {
    match program {
        "multipathd" => multipathd(m),
        "iscsid" => iscsid(m),
        "zed" => zed(m),
        "qemu-ga" => qemu_ga(m),
        "Hyper-V VSS" => hv_vss(m),
        _ => None,
    }
}

/// qemu-guest-agent (`slog()`, logged as `info: ...`): `guest-fsfreeze called` before it
/// freezes, `guest-fsthaw called` after a thaw (agents with the patch that added it; older
/// ones say nothing of a thaw but their freeze hook's `executing fsfreeze hook with arg
/// 'thaw'`). The observation
/// is a freeze's start or end: the engine opens `fs_frozen` only when no thaw follows within
/// `[watch] frozen_secs`.
fn qemu_ga(m: &str) -> Option<Hit<'_>> {
    let m = m.strip_prefix("info: ").unwrap_or(m);
    match m {
        "guest-fsfreeze called" | "executing fsfreeze hook with arg 'freeze'" => {
            hit(FsFrozen, Critical, None)
        }
        "guest-fsthaw called" | "executing fsfreeze hook with arg 'thaw'" => {
            resolved(FsFrozen, None)
        }
        _ => None,
    }
}

/// Hyper-V's hv_vss_daemon (`openlog("Hyper-V VSS")`): `VSS: op=FREEZE: succeeded` once the
/// filesystems are frozen, `VSS: op=THAW: succeeded` after.
fn hv_vss(m: &str) -> Option<Hit<'_>> {
    match m.trim_end() {
        "VSS: op=FREEZE: succeeded" => hit(FsFrozen, Critical, None),
        "VSS: op=THAW: succeeded" | "VSS: op=THAW: failed" => resolved(FsFrozen, None),
        _ => None,
    }
}

/// `(device sda1)`, `(sda1)`, `(device loop7 state EA)` at the start of `s`: the device and
/// what follows the `)` with `: ` or ` ` trimmed.
fn paren_device(s: &str) -> Option<(&str, &str)> {
    let inner_start = s.strip_prefix('(')?;
    let close = inner_start.find(')')?;
    let inner = &inner_start[..close];
    let inner = inner.strip_prefix("device ").unwrap_or(inner);
    let dev = inner
        .split(' ')
        .next()
        .unwrap_or(inner)
        .trim_end_matches(':');
    let after = &inner_start[close + 1..];
    let after = after.strip_prefix(':').unwrap_or(after);
    Some((dev, after.trim_start()))
}

/// jbd2's journal name: the device plus `-` and the journal inode (`sda1-8`, `dm-0-8`,
/// `loop2-8`); an external journal is the device alone (`sdb1`, `dm-3`).
fn jbd2_device(name: &str) -> &str {
    let name = name.trim_end_matches(['.', ',']);
    let name = name.split(' ').next().unwrap_or(name);
    match name.rsplit_once('-') {
        Some((dev, ino))
            if !dev.is_empty()
                && !ino.is_empty()
                && ino.bytes().all(|c| c.is_ascii_digit())
                && dev != "dm" =>
        {
            dev
        }
        _ => name,
    }
}

/// After "INFO: task ": `jbd2/sda3-8:373 blocked for more than 120 seconds.`. The device is the
/// one a storage kernel thread is named for: jbd2's journal (`jbd2/sda3-8`, `jbd2/dm-2-8`) and
/// XFS's threads (`xfsaild/dm-0`, `xfs-cil/sda1`); other tasks name none.
fn hung_task(r: &str) -> Option<Hit<'_>> {
    let i = r.find(" blocked for more than ")?;
    let (task, _pid) = r[..i].rsplit_once(':')?;
    let device = match task.split_once('/') {
        Some(("jbd2", journal)) => Some(jbd2_device(journal)),
        Some((t, dev)) if t == "xfsaild" || t.starts_with("xfs-") => Some(dev),
        _ => None,
    };
    hit(HungTask, Warning, device)
}

/// `nvme0n1: I/O Cmd(0x2) @ LBA 2048, 8 blocks, I/O Error (sct 0x2 / sc 0x81) DNR` (5.18+,
/// `nvme_log_error`): the namespace's failed command and its status. Not the `sct 0x0 / sc
/// 0x0` of a successful one (never printed).
fn nvme_status(m: &str) -> Option<Hit<'_>> {
    let (disk, after) = m.split_once(": ")?;
    if !disk.starts_with("nvme") || disk.contains(' ') {
        return None;
    }
    if after.contains(" @ LBA ") && after.contains("(sct 0x") {
        return hit(NvmeIoError, Warning, Some(disk));
    }
    None
}

/// After `hv_storvsc ` (5.14+: `hv_storvsc <vmbus id>: tag#599 cmd 0x28 status: scsi 0x2 srb
/// 0x4 hv 0xc0000001`, `host` for `hv` in 6.18) or `storvsc: ` (older: `cmd 0x2a scsi status 0x2
/// srb status 0x4`): the host failed a command. Only reads and writes (READ/WRITE 6, 10, 12,
/// 16; SYNCHRONIZE CACHE): Azure and Hyper-V answer probes (INQUIRY, TEST UNIT READY, smartd's
/// ATA PASS-THROUGH 0x85) with errors all day, and those are no failure.
fn storvsc(rest: &str) -> Option<Hit<'_>> {
    let (id, body) = match rest.split_once(": ") {
        Some((id, body)) if !id.contains(' ') => (Some(id), body),
        _ => (None, rest),
    };
    let body = match body.strip_prefix("tag#") {
        Some(r) => r.split_once(' ')?.1,
        None => body,
    };
    let cmd = body.strip_prefix("cmd 0x")?;
    let (op, after) = cmd.split_once(' ')?;
    if !(after.starts_with("status: ") || after.starts_with("scsi status ")) {
        return None;
    }
    let data = matches!(
        op.to_ascii_lowercase().as_str(),
        "8" | "a" | "28" | "2a" | "a8" | "aa" | "88" | "8a" | "35" | "91"
    );
    if !data {
        return None;
    }
    hit(StorvscError, Warning, id)
}

/// md's member failure: `md/raid1:md0: Disk failure on sdb6, disabling device.` (3.x+; also
/// `md/raid10:`, `md/raid:` for raid4/5/6), `raid1: Disk failure on sdb1, disabling device.`
/// (2.6). The device is the member.
fn md(m: &str) -> Option<Hit<'_>> {
    let i = m.find(": Disk failure on ")?;
    let who = &m[..i];
    if !(who.starts_with("md/raid") || who.starts_with("raid")) || who.contains(' ') {
        return None;
    }
    let r = &m[i + ": Disk failure on ".len()..];
    let (dev, after) = r.split_once(',')?;
    if dev.is_empty() || dev.contains(' ') {
        return None;
    }
    let after = after.trim_start();
    // raid1/raid10 failing their last in-sync member (a 2025 patch): the array is broken.
    if after.starts_with("this is the last device") {
        return match who.split_once(':') {
            Some((_, array)) if !array.is_empty() && array != "mdX" => {
                hit(MdArrayFailed, Critical, Some(array))
            }
            // dm-raid names no array: the member, critical.
            _ => hit(MdDiskFailure, Critical, Some(dev)),
        };
    }
    if !after.starts_with("disabling device") {
        return None;
    }
    hit(MdDiskFailure, Warning, Some(dev))
}

/// md's own word on an array (not a member): `md/raid1:md0: Operation continuing on 1
/// devices.` (printed with `Disk failure on`, 2.6.38+; `md/raid:` for raid4/5/6, `md/raid10:`)
/// opens [`MdDegraded`] for the array; `md: md0: recovery done.` (md_do_sync: a spare was
/// rebuilt into it) ends it. `md: md0: recovery interrupted.` and the `resync` / `check` /
/// `repair` passes of a whole array end nothing. The daemon's md sampler re-reports an
/// array still degraded after a recovery (its missing count changed), so a second missing
/// member is not lost. dm-raid (LVM's raid LVs) runs md's personalities without an md device:
/// md names its array `mdX` there, which says nothing of which LV, so those lines open nothing
/// (the member's `Disk failure on dm-3` still does, as [`MdDiskFailure`]).
fn md_array(m: &str) -> Option<Hit<'_>> {
    let named = |a: &str| a.starts_with("md") && a != "mdX" && !a.contains(' ');
    if let Some(r) = m.strip_prefix("md: ") {
        let (array, what) = r.split_once(": ")?;
        if named(array) && what == "recovery done." {
            return resolved(MdDegraded, Some(array));
        }
        return None;
    }
    let (who, what) = m.split_once(": ")?;
    let (level, array) = who.split_once(':')?;
    if !level.starts_with("md/raid") || !named(array) {
        return None;
    }
    // raid4/5/6 past their redundancy (a record of its own since raid5's MD_BROKEN rework).
    if let Some(n) = what.strip_prefix("Cannot continue operation (") {
        if n.split_once(" failed)")
            .is_some_and(|(f, _)| f.contains('/'))
        {
            return hit(MdArrayFailed, Critical, Some(array));
        }
        return None;
    }
    let left = what.strip_prefix("Operation continuing on ")?;
    let n = left.split(' ').next().unwrap_or_default();
    if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    hit(MdDegraded, Critical, Some(array))
}

fn ext4(rest: &str) -> Option<Hit<'_>> {
    if let Some(r) = rest.strip_prefix(" error ") {
        // "EXT4-fs error (device sda1): func:line: ..." or "... (device sda1) in func:line: ..."
        let (dev, after) = paren_device(r)?;
        let kind = if after.contains("Detected aborted journal")
            || after.contains("Journal has aborted")
        {
            Ext4JournalAbort
        } else {
            Ext4Error
        };
        return hit(kind, Critical, Some(dev));
    }
    if let Some(r) = rest.strip_prefix(" warning ") {
        let (dev, after) = paren_device(r)?;
        if after.contains("I/O error") && after.contains(" writing to inode ") {
            return hit(Ext4DataLoss, Critical, Some(dev));
        }
        return None;
    }
    let (dev, after) = paren_device(rest.strip_prefix(' ')?)?;
    let kind = if after.starts_with("Remounting filesystem read-only") {
        Ext4ReadOnly
    } else if after.contains("potential data loss") || after.contains("Data will be lost") {
        Ext4DataLoss
    } else if after.starts_with("shut down requested") {
        Ext4Shutdown
    } else if after.starts_with("I/O error while writing superblock")
        || after.starts_with("previous I/O error to superblock detected")
    {
        Ext4Error
    } else if let Some(n) = after.strip_prefix("error count since last fsck: ") {
        if n.trim() == "0" {
            return None;
        }
        return hit(FilesystemErrorsRecorded, Warning, Some(dev));
    } else if after.contains("mounting fs with errors") {
        return hit(FilesystemErrorsRecorded, Warning, Some(dev));
    } else {
        return None;
    };
    hit(kind, Critical, Some(dev))
}

fn jbd2(rest: &str) -> Option<Hit<'_>> {
    if let Some(i) = rest.find("when updating journal superblock for ") {
        let d = &rest[i + "when updating journal superblock for ".len()..];
        return hit(Ext4Error, Critical, Some(jbd2_device(d)));
    }
    if let Some(i) = rest.find("while flushing file data on ") {
        let d = &rest[i + "while flushing file data on ".len()..];
        return hit(Ext4DataLoss, Critical, Some(jbd2_device(d)));
    }
    None
}

fn xfs(rest: &str) -> Option<Hit<'_>> {
    let (dev, after) = paren_device(rest)?;
    let kind = if after.starts_with("log I/O error")
        // 3.x-4.x (xfs_log_force, every 30 s once the log is dead): "xfs_log_force: error -5 returned."
        || (after.starts_with("xfs_log_force: error ") && after.contains(" returned"))
    {
        XfsLogError
    } else if after.contains("Shutting down filesystem")
        || after.starts_with("Filesystem has been shut down")
        || after.starts_with("User initiated shutdown")
        || after.starts_with("xfs_do_force_shutdown")
        || after.starts_with("Corruption of in-memory data detected")
    {
        XfsShutdown
    } else if after.starts_with("metadata I/O error") {
        // Default XFS error config retries failed async metadata writes forever, so this line
        // may be all there is (no shutdown): a warning until XFS says more.
        return hit(XfsMetadataError, Warning, Some(dev));
    } else if (after.starts_with("SB validate failed") && after.contains("error"))
        || after.starts_with("log mount failed")
        || after.starts_with("log mount/recovery failed")
    {
        // The filesystem could not be mounted: its superblock or log could not be read.
        XfsMetadataError
    } else if after.starts_with("page discard on page") || after.contains("writeback error") {
        // Interim: dirty file data thrown away after a failed writeback.
        WritebackError
    } else {
        return None;
    };
    hit(kind, Critical, Some(dev))
}

fn btrfs(rest: &str) -> Option<Hit<'_>> {
    // "BTRFS: error (device X) in f:1: errno=-5 ..." is the filesystem's error handler.
    if let Some(r) = rest.strip_prefix(": error ") {
        let (dev, _) = paren_device(r)?;
        return hit(BtrfsError, Critical, Some(dev));
    }
    // "BTRFS LEVEL (device X): msg"; older kernels also print "BTRFS: msg".
    let (level, dev, after) = match rest.strip_prefix(": ") {
        Some(msg) => ("", "", msg),
        None => {
            let (level, r) = rest.strip_prefix(' ')?.split_once(' ')?;
            let (dev, after) = paren_device(r)?;
            (level, dev, after)
        }
    };
    let dev = Some(dev);
    if after.contains("forced readonly") {
        return hit(BtrfsReadOnly, Critical, dev);
    }
    if after.contains("Transaction aborted") || after.contains("commit of aborted transaction") {
        return hit(BtrfsTransactionAbort, Critical, dev);
    }
    if let Some(r) = after.strip_prefix("bdev ") {
        let path = r.split(' ').next().unwrap_or(r);
        if r[path.len()..].starts_with(" errs:") {
            return hit(BtrfsDeviceErrors, Warning, Some(strip_dev(path)));
        }
    }
    if let Some(i) = after.find("lost page write due to IO error on ") {
        let r = &after[i + "lost page write due to IO error on ".len()..];
        let path = r.split(' ').next().unwrap_or(r);
        return hit(BtrfsDeviceErrors, Warning, Some(strip_dev(path)));
    }
    match level {
        "critical" => hit(BtrfsError, Critical, dev),
        "error" => hit(BtrfsError, Warning, dev),
        _ => None,
    }
}

fn strip_dev(path: &str) -> &str {
    let p = path.trim_end_matches([',', '.', ':']);
    p.strip_prefix("/dev/").unwrap_or(p)
}

/// After "Buffer I/O error on dev": `ice sda1, logical block 9` or ` sda1, logical block 9...`.
fn buffer(rest: &str) -> Option<Hit<'_>> {
    let rest = rest.strip_prefix("ice").unwrap_or(rest);
    let r = rest.strip_prefix(' ')?;
    let (dev, after) = r.split_once(',')?;
    if is_removable_media(dev) {
        return None;
    }
    let severity = if after.contains("lost ") {
        Critical
    } else {
        Warning
    };
    hit(BufferIoError, severity, Some(dev))
}

fn nfs(rest: &str) -> Option<Hit<'_>> {
    if let Some(server) = rest.strip_suffix(" OK") {
        return resolved(NfsOk, Some(server));
    }
    let i = rest.find(" not responding")?;
    let server = &rest[..i];
    let severity = if rest[i..].contains("timed out") {
        Critical
    } else {
        Warning
    };
    hit(NfsNotResponding, severity, Some(server))
}

/// `connection1:0: detected conn error (1020)` / `connection1:0: ping timeout of 5 secs ...`.
fn iscsi_connection(m: &str) -> Option<Hit<'_>> {
    let rest = m.strip_prefix("connection")?;
    let colon = rest.find(": ")?;
    if !is_conn_id(&rest[..colon]) {
        return None;
    }
    let after = &rest[colon + 2..];
    let kind = if after.starts_with("detected conn error") {
        IscsiConnectionError
    } else if after.starts_with("ping timeout of ") {
        IscsiPingTimeout
    } else {
        return None;
    };
    hit(kind, Warning, Some(&m[.."connection".len() + colon]))
}

fn is_conn_id(id: &str) -> bool {
    match id.split_once(':') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// `session1: session recovery timed out after 120 secs`.
fn iscsi_session(m: &str) -> Option<Hit<'_>> {
    let (id, after) = m.split_once(": ")?;
    let n = id.strip_prefix("session")?;
    if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if after.starts_with("session recovery timed out") {
        return hit(IscsiConnectionError, Critical, Some(id));
    }
    None
}

fn iscsid(m: &str) -> Option<Hit<'_>> {
    if let Some(r) = m.strip_prefix("Kernel reported iSCSI connection ") {
        let id = r.split(' ').next().unwrap_or(r);
        if is_conn_id(id) && r[id.len()..].starts_with(" error") {
            return Some(Hit {
                device: Some(Cow::Owned(format!("connection{id}"))),
                ..hit(IscsiConnectionError, Warning, None)?
            });
        }
        return None;
    }
    if let Some(r) = m.strip_prefix("connection") {
        let id = r.split(' ').next().unwrap_or(r);
        if is_conn_id(id) && r[id.len()..].starts_with(" is operational after recovery") {
            return resolved(
                IscsiConnectionError,
                Some(&m[.."connection".len() + id.len()]),
            );
        }
    }
    None
}

fn dm_multipath(rest: &str) -> Option<Hit<'_>> {
    if let Some(i) = rest.find("Failing path ") {
        let p = &rest[i + "Failing path ".len()..];
        return hit(MultipathPathFailed, Warning, Some(first_word(p)));
    }
    if let Some(i) = rest.find("Reinstating path ") {
        let p = &rest[i + "Reinstating path ".len()..];
        return resolved(MultipathPathReinstated, Some(first_word(p)));
    }
    if let Some(i) = rest.find("queue_if_no_path timeout on ") {
        let p = &rest[i + "queue_if_no_path timeout on ".len()..];
        return hit(MultipathNoPaths, Critical, Some(first_word(p)));
    }
    None
}

fn multipathd(m: &str) -> Option<Hit<'_>> {
    if let Some((map, n)) = m.split_once(": remaining active paths: ") {
        if n.trim() == "0" && !map.contains(' ') {
            return hit(MultipathNoPaths, Critical, Some(map));
        }
        return None;
    }
    if let Some(r) = m.strip_prefix("checker failed path ") {
        return hit(MultipathPathFailed, Warning, Some(first_word(r)));
    }
    None
}

fn first_word(s: &str) -> &str {
    let w = s.split([' ', ',']).next().unwrap_or(s);
    w.trim_end_matches(['.', ',', ':'])
}

/// After "nvme ": `nvme0: ... QID 2 timeout, ...` / `nvme0: controller is down; will reset`.
fn nvme(rest: &str) -> Option<Hit<'_>> {
    let (ctrl, after) = rest.split_once(": ")?;
    if !ctrl.starts_with("nvme") || ctrl.contains(' ') {
        return None;
    }
    if after.starts_with("controller is down; will reset") {
        return hit(NvmeReset, Critical, Some(ctrl));
    }
    let q = after.find(" QID ")?;
    let tail = &after[q + 5..];
    let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && tail[digits..].starts_with(" timeout") {
        return hit(NvmeTimeout, Warning, Some(ctrl));
    }
    None
}

/// The block layer's `%s error, dev %s, sector ...` and iomap's `%s: writeback error on inode`,
/// wherever "error" falls in the line: the one search every unrelated line pays for.
fn error_anywhere(m: &str) -> Option<Hit<'_>> {
    for (i, _) in m.match_indices("error") {
        let before = &m[..i];
        let after = &m[i..];
        if let Some(r) = after.strip_prefix("error, dev ") {
            if let Some(h) = block(before, r) {
                return Some(h);
            }
        } else if let Some(sb) = before.strip_suffix(": writeback ") {
            if after.starts_with("error on inode ") && !sb.is_empty() && !sb.contains(' ') {
                return hit(WritebackError, Critical, Some(sb));
            }
        }
    }
    None
}

/// `before` = `I/O ` (or `critical medium `, `blk_update_request: I/O `, ...), `r` = what
/// follows `error, dev `: `sda, sector 8 op ...`.
fn block<'a>(before: &str, r: &'a str) -> Option<Hit<'a>> {
    let what = before.strip_suffix(' ')?;
    let what = ["blk_update_request: ", "print_req_error: ", "end_request: "]
        .iter()
        .find_map(|p| what.strip_prefix(p))
        .unwrap_or(what);
    if what.is_empty()
        || what.len() > 40
        || !what
            .bytes()
            .all(|c| c.is_ascii_alphabetic() || c == b' ' || c == b'/')
        || what == "operation not supported"
    {
        return None;
    }
    let (dev, after) = r.split_once(',')?;
    if dev.is_empty()
        || dev.contains(' ')
        || !after.starts_with(" sector ")
        || is_removable_media(dev)
    {
        return None;
    }
    hit(BlockIoError, Warning, Some(dev))
}

/// `sd 2:0:0:0: [sda] tag#3 timing out command, waited 30s` and friends: the driver name, the
/// H:C:T:L address, an optional `[disk]` and `tag#N`.
fn scsi(m: &str) -> Option<Hit<'_>> {
    let (drv, rest) = m.split_once(' ')?;
    if drv.is_empty()
        || drv.len() > 16
        || !drv
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    {
        return None;
    }
    let (hctl, mut body) = rest.split_once(": ")?;
    if !is_hctl(hctl) {
        return None;
    }
    let mut dev = hctl;
    if let Some(r) = body.strip_prefix('[') {
        let (name, after) = r.split_once("] ")?;
        dev = name;
        body = after;
    }
    if let Some(r) = body.strip_prefix("tag#") {
        body = r.split_once(' ').map_or("", |(_, after)| after);
    }
    let (kind, severity) = if body.starts_with("timing out command")
        || body.starts_with("FAILED Result: hostbyte=DID_TIME_OUT")
    {
        (ScsiTimeout, Warning)
    } else if body.starts_with("Device offlined - not ready after error recovery")
        // sd's medium access timeout counter ran out (sd_eh_action, 3.10+)
        || body.starts_with("Medium access timeout failure. Offlining disk!")
    {
        (ScsiOffline, Critical)
    } else if body.starts_with("attempting task abort")
        // 2.6.32 (RHEL 6) error handler: "sd 2:0:0:0: [sda] abort"
        || body == "abort"
        // vmw_pvscsi since 3.x: "task abort on host 0, 0000000002af6841"
        || body.starts_with("task abort on host ")
    {
        (ScsiTaskAbort, Warning)
    } else if body.starts_with("rejecting I/O to ") {
        (ScsiRejectedIo, Critical)
    } else {
        return None;
    };
    hit(kind, severity, Some(dev))
}

// RAID and replication layers: DRBD, ZFS, dm-thin.

/// What follows `drbd ` (DRBD 9 and in-kernel 8.4 resource/connection lines: `res: msg`,
/// `res peer: msg`, `res/0 drbd1: msg`, `res/0 drbd1 peer: msg`) or, passed as `drbd0: msg`,
/// `block drbd0: msg` (8.x device lines, dev_printk). The subject of a connection line is
/// `res:peer` (or what is named: `res`, `drbd0`); of a disk line, the minor (`drbd1`).
fn drbd(rest: &str) -> Option<Hit<'_>> {
    let (who, msg) = rest.split_once(": ")?;
    let words: Vec<&str> = who.split(' ').collect();
    if words.iter().any(|w| w.is_empty()) || words.len() > 3 {
        return None;
    }
    let (res, minor, peer) = match words.as_slice() {
        [one] if one.starts_with("drbd") && one[4..].bytes().all(|c| c.is_ascii_digit()) => {
            (None, Some(*one), None)
        }
        [res] => (Some(*res), None, None),
        [res_vol, minor] if res_vol.contains('/') => {
            (res_vol.split('/').next(), Some(*minor), None)
        }
        [res, peer] => (Some(*res), None, Some(*peer)),
        [res_vol, minor, peer] if res_vol.contains('/') => {
            (res_vol.split('/').next(), Some(*minor), Some(*peer))
        }
        _ => return None,
    };
    let conn_subject = || -> Option<Cow<'_, str>> {
        match (res, peer) {
            (Some(r), Some(p)) => Some(Cow::Owned(format!("{r}:{p}"))),
            (Some(r), None) => Some(Cow::Borrowed(r)),
            (None, _) => minor.map(Cow::Borrowed),
        }
    };
    let disk_subject = minor.or(res);
    let with = |kind, severity, device: Option<Cow<'static, str>>| -> Option<Hit<'static>> {
        Some(Hit {
            kind,
            severity,
            device,
            resolves: false,
        })
    };
    let owned = |c: Option<Cow<'_, str>>| c.map(|c| Cow::Owned(c.into_owned()));
    if msg.starts_with("PingAck did not arrive in time")
        || msg.starts_with("meta connection shut down by peer")
    {
        return with(DrbdConnectionLost, Warning, owned(conn_subject()));
    }
    if msg.starts_with("Split-Brain detected") && msg.contains("dropping connection") {
        return with(DrbdSplitBrain, Critical, owned(conn_subject()));
    }
    if msg.starts_with("Local IO failed in ")
        || msg.starts_with("IO ERROR: neither local nor remote data")
    {
        return hit(DrbdDiskFailed, Critical, disk_subject);
    }
    if let Some(to) = state_change(msg, "conn( ") {
        return match to {
            "NetworkFailure" | "BrokenPipe" | "Timeout" | "ProtocolError" => {
                with(DrbdConnectionLost, Warning, owned(conn_subject()))
            }
            to if link_is_up(to) => Some(Hit {
                resolves: true,
                ..with(DrbdConnectionLost, Severity::Info, owned(conn_subject()))?
            }),
            _ => None,
        };
    }
    if let Some(to) = state_change(msg, "disk( ") {
        return match to {
            // DRBD 9 goes to Failed on an I/O error only (an administrative detach goes to
            // Detaching). DRBD 8 (the `block drbd1:` device lines) goes to Failed on every
            // detach too: 8.4.7's adm_detach (drbd_nl.c) requests D_FAILED, and ganeti's
            // `blockdev_shutdown` shows it (public-ganeti-drbd-detach); its I/O error says so in
            // the `Local IO failed in %s. Detaching...` that __drbd_chk_io_error_ (drbd_int.h)
            // prints with it.
            // DRBD 9's volume line of this node (`r0/0 drbd1:`): a resource and a minor, no
            // peer. 8.4's connection lines (`drbd resource6:`) have no minor.
            "Failed" if res.is_some() && minor.is_some() && peer.is_none() => {
                hit(DrbdDiskFailed, Critical, disk_subject)
            }
            "UpToDate" => resolved(DrbdDiskFailed, disk_subject),
            _ => None,
        };
    }
    None
}

/// A connection state that says the link is up: `Connected`, and DRBD 8's states past it (a
/// resync or verify over the link: drbd_strings.c's `drbd_conn_s_names` from
/// `StartingSyncS` on; DRBD 9 keeps these in `repl( )` and says `conn( ... -> Connected )`).
/// In 8.4 the reconnect is a device's line, printed by `__drbd_set_state` ->
/// `drbd_pr_state_change` from `receive_state` (drbd_receiver.c, tag drbd-8.4.7):
/// `block drbd6: peer( Unknown -> Secondary ) conn( WFReportParams -> Connected ) ...`, or
/// `conn( WFReportParams -> WFBitMapS )` when a resync follows (as after a split brain is
/// resolved), the connection-wide `drbd resource6: conn( ... )` lines stopping at
/// `WFReportParams`.
pub(crate) fn link_is_up(state: &str) -> bool {
    matches!(
        state,
        "Connected"
            | "StartingSyncS"
            | "StartingSyncT"
            | "WFBitMapS"
            | "WFBitMapT"
            | "WFSyncUUID"
            | "SyncSource"
            | "SyncTarget"
            | "PausedSyncS"
            | "PausedSyncT"
            | "VerifyS"
            | "VerifyT"
            | "Ahead"
            | "Behind"
    )
}

/// A connection-state change as in-kernel DRBD 8.4 prints it, either on the connection
/// (`drbd resource6: conn( WFConnection -> WFReportParams ) `: drbd_int.h
/// `__drbd_printk_connection`, the resource's name) or on a device (`block drbd6: peer( Unknown
/// -> Secondary ) conn( WFReportParams -> Connected ) ...`: dev_printk, the minor). No 8.4 line
/// names both, so the engine ties a device's reconnect to its connection by the handshake
/// they share (see `Engine::drbd8_handshake`). DRBD 9's lines (`drbd r0 peer: ...`, `drbd
/// r0/0 drbd1: ...`) are not these. Believed from the same senders as [`classify`]'s kernel
/// catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drbd8Conn<'a> {
    Connection {
        resource: &'a str,
        from: &'a str,
        to: &'a str,
    },
    Device {
        minor: &'a str,
        from: &'a str,
        to: &'a str,
    },
}

/// The DRBD 8.4 connection-state change `rec` prints, if any ([`Drbd8Conn`]).
pub(crate) fn drbd8_conn_change(rec: &LogRecord) -> Option<Drbd8Conn<'_>> {
    let kernel = matches!(
        (rec.sender, rec.program.as_deref()),
        (Sender::Kernel, _) | (Sender::Unknown, None)
    );
    if !kernel {
        return None;
    }
    let m = rec.message.trim_start();
    let (device, rest) = match m.strip_prefix("block ") {
        Some(r) => (true, r),
        None => (false, m.strip_prefix("drbd ")?),
    };
    let (who, msg) = rest.split_once(": ")?;
    let (from, to) = conn_states(msg)?;
    let minor = |w: &str| {
        w.strip_prefix("drbd")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
    };
    if device {
        return minor(who).then_some(Drbd8Conn::Device {
            minor: who,
            from,
            to,
        });
    }
    // One word: a resource (8.4); DRBD 9's connections and volumes have two or three.
    (!who.is_empty() && !who.contains([' ', '/'])).then_some(Drbd8Conn::Connection {
        resource: who,
        from,
        to,
    })
}

/// Both states of the `conn( FROM -> TO )` field of a DRBD state change.
fn conn_states(msg: &str) -> Option<(&str, &str)> {
    let to = state_change(msg, "conn( ")?;
    let (i, _) = msg
        .match_indices("conn( ")
        .find(|(i, _)| *i == 0 || msg[..*i].ends_with(' '))?;
    let (from, _) = msg[i + "conn( ".len()..].split_once(" -> ")?;
    (!from.is_empty() && from.bytes().all(|c| c.is_ascii_alphabetic())).then_some((from, to))
}

/// The new state in a DRBD state change (`conn( Connected -> NetworkFailure ) peer( ... )`):
/// `field` is `conn( ` or `disk( `, matched at the start of the message or after a blank.
fn state_change<'a>(msg: &'a str, field: &str) -> Option<&'a str> {
    // `disk( ` is also the tail of `pdsk( `: only a field of its own counts.
    let (i, _) = msg
        .match_indices(field)
        .find(|(i, _)| *i == 0 || msg[..*i].ends_with(' '))?;
    let r = &msg[i + field.len()..];
    let (_, to) = r.split_once(" -> ")?;
    let (to, _) = to.split_once(" )")?;
    (!to.is_empty() && to.bytes().all(|c| c.is_ascii_alphabetic())).then_some(to)
}

/// After `WARNING: ` (Linux's `cmn_err(CE_WARN, ...)` of ZFS, also behind 0.6's `SPLError:
/// ...:`): `Pool 'tank' has encountered an uncorrectable I/O failure and has been suspended.`,
/// `MMP writes to pool 'tank' have not succeeded in over 5s; suspending pool`.
fn zfs_kernel(r: &str) -> Option<Hit<'_>> {
    let quoted = |s: &str| -> Option<(usize, usize)> {
        let open = s.find('\'')? + 1;
        let len = s[open..].find('\'')?;
        Some((open, len))
    };
    let (off, after) = if let Some(p) = r.strip_prefix("Pool '") {
        (r.len() - p.len() - 1, "has been suspended")
    } else if let Some(p) = r.strip_prefix("MMP writes to pool '") {
        (r.len() - p.len() - 1, "suspending pool")
    } else {
        return None;
    };
    let (open, len) = quoted(&r[off..])?;
    let pool = &r[off + open..off + open + len];
    if pool.is_empty() || !r[off + open + len..].contains(after) {
        return None;
    }
    hit(ZfsPoolSuspended, Critical, Some(pool))
}

/// zed's syslog lines (the `all-syslog.sh` zedlet, identifier `zed`): `eid=12 class=statechange
/// pool='tank' vdev=sdb1 vdev_state=FAULTED` (0.8+), `eid=164 class=io
/// pool_guid=0x1E0D9667DBEC61A2 vdev_path=/dev/disk/by-vdev/A0` (0.7 and `ZED_SYSLOG_DISPLAY_GUIDS`).
/// The subject is the vdev when named (its last path component), else the pool.
fn zed(m: &str) -> Option<Hit<'_>> {
    if !m.starts_with("eid=") {
        return None;
    }
    let mut class = None;
    let mut pool = None;
    let mut vdev = None;
    let mut state = None;
    for w in m.split(' ') {
        let Some((k, v)) = w.split_once('=') else {
            continue;
        };
        match k {
            "class" => class = Some(v),
            "pool" => pool = Some(v.trim_matches('\'')),
            "pool_guid" if pool.is_none() => pool = Some(v),
            "vdev" | "vdev_path" => vdev = v.rsplit('/').next(),
            "vdev_state" => state = Some(v),
            _ => {}
        }
    }
    let subject = vdev.or(pool).filter(|s| !s.is_empty());
    match class? {
        "statechange" => match state? {
            "FAULTED" | "UNAVAIL" | "REMOVED" => hit(ZfsVdevFault, Critical, subject),
            "DEGRADED" => hit(ZfsVdevFault, Warning, subject),
            "ONLINE" => resolved(ZfsVdevFault, subject),
            _ => None,
        },
        "io" | "checksum" | "deadman" | "delay" | "probe_failure" | "data" => {
            hit(ZfsIoError, Warning, subject)
        }
        "io_failure" => hit(ZfsPoolSuspended, Critical, pool),
        // `zpool clear`: the suspended pool resumes.
        "vdev_clear" => resolved(ZfsPoolSuspended, pool),
        _ => None,
    }
}

/// After `device-mapper: thin: `: `253:2: switching pool to out-of-data-space (queue IO) mode`
/// (writes wait for `no_space_timeout`, 60 s, then fail), `... (error IO) mode`, `read-only`,
/// `fail` (4.19+; `failure` before), and back to `write` mode (the pool was grown or
/// repaired). The device is the pool's `major:minor`. 3.14-3.18 print a bare
/// `out-of-data-space` (writes queue); 3.10 prints `switching pool to failure mode` and
/// `... read-only mode` with no device (dm-thin.c `set_pool_mode` of each version).
fn dm_thin(rest: &str) -> Option<Hit<'_>> {
    let (dev, mode) = match rest.strip_prefix("switching pool to ") {
        Some(mode) => ("", mode),
        None => rest.split_once(": switching pool to ")?,
    };
    let mode = mode.strip_suffix(" mode").unwrap_or(mode);
    if dev.contains(' ') {
        return None;
    }
    let dev = Some(dev).filter(|d| !d.is_empty());
    match mode {
        "out-of-data-space (queue IO)" | "out-of-data-space" => hit(DmThinOutOfSpace, Warning, dev),
        "out-of-data-space (error IO)" => hit(DmThinOutOfSpace, Critical, dev),
        "read-only" | "fail" | "failure" => hit(DmThinPoolFailed, Critical, dev),
        "write" => resolved(DmThinOutOfSpace, dev),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Got = (Kind, Severity, Option<String>, bool);

    fn c(msg: &str) -> Option<Got> {
        let rec = LogRecord {
            message: msg.to_string(),
            realtime_us: Some(7),
            ..LogRecord::default()
        };
        classify(&rec).map(|o| {
            assert_eq!(o.message, msg.trim_start());
            assert_eq!(o.at_us, Some(7));
            (o.kind, o.severity, o.device, o.resolves)
        })
    }

    fn from(program: &str, msg: &str) -> Option<Got> {
        let rec = LogRecord {
            message: msg.to_string(),
            program: Some(program.to_string()),
            ..LogRecord::default()
        };
        classify(&rec).map(|o| (o.kind, o.severity, o.device, o.resolves))
    }

    fn is(kind: Kind, severity: Severity, device: &str) -> Option<Got> {
        Some((kind, severity, Some(device.to_string()), false))
    }

    fn resolves(kind: Kind, device: &str) -> Option<Got> {
        Some((kind, Severity::Info, Some(device.to_string()), true))
    }

    #[test]
    fn ext4() {
        // __ext4_error: "EXT4-fs error (device %s): %s:%d: comm %s: %pV" and its variants
        for m in [
            "EXT4-fs error (device loop2): trigger_test_error:129: comm bash: tunerd",
            "EXT4-fs error (device sda1): ext4_lookup:1855: inode #2: comm ls: deleted inode referenced: 12",
            "EXT4-fs error (device sda1): ext4_mb_generate_buddy:1218: group 3, block bitmap and bg descriptor inconsistent",
            "EXT4-fs error (device nvme0n1p2): ext4_validate_block_bitmap:420: comm kworker/u8:2: bg 1: block 34: padding at end of block bitmap is not set",
            "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #131073: comm find: path /x: reading directory lblock 0",
            // __ext4_std_error: "EXT4-fs error (device %s) in %s:%d: %s"
            "EXT4-fs error (device loop2) in ext4_init_inode_table:1704: IO failure",
            "EXT4-fs (sda1): I/O error while writing superblock",
            "EXT4-fs (sda1): previous I/O error to superblock detected",
        ] {
            let dev = if m.contains("loop2") {
                "loop2"
            } else if m.contains("nvme") {
                "nvme0n1p2"
            } else {
                "sda1"
            };
            assert_eq!(c(m), is(Ext4Error, Critical, dev), "{m}");
        }
        for m in [
            "EXT4-fs error (device dm-0): ext4_journal_check_start:84: comm rs:main: Detected aborted journal",
            "EXT4-fs error (device dm-0) in ext4_reserve_inode_write:5783: Journal has aborted",
        ] {
            assert_eq!(c(m), is(Ext4JournalAbort, Critical, "dm-0"), "{m}");
        }
        assert_eq!(
            c("EXT4-fs (loop0): Remounting filesystem read-only"),
            is(Ext4ReadOnly, Critical, "loop0")
        );
        for m in [
            "EXT4-fs (loop2): failed to convert unwritten extents to written extents -- potential data loss!  (inode 12, error -5)",
            "EXT4-fs (sda1): This should not happen!! Data will be lost",
            "EXT4-fs warning (device loop2): ext4_end_bio:368: I/O error 3 writing to inode 12 starting block 36097)",
            "EXT4-fs warning (device loop2): ext4_end_bio:343: I/O error 10 writing to inode 12 (offset 0 size 4096 starting block 36097)",
        ] {
            let dev = if m.contains("sda1") { "sda1" } else { "loop2" };
            assert_eq!(c(m), is(Ext4DataLoss, Critical, dev), "{m}");
        }
        assert_eq!(
            c("EXT4-fs (loop1): shut down requested (1)"),
            is(Ext4Shutdown, Critical, "loop1")
        );
        assert_eq!(
            c("EXT4-fs (sda1): error count since last fsck: 3"),
            is(FilesystemErrorsRecorded, Warning, "sda1")
        );
        assert_eq!(
            c("EXT4-fs (sda1): warning: mounting fs with errors, running e2fsck is recommended"),
            is(FilesystemErrorsRecorded, Warning, "sda1")
        );
        for m in [
            "EXT4-fs (sda1): error count since last fsck: 0",
            "EXT4-fs (loop2): mounted filesystem dc3306d1 r/w with ordered data mode. Quota mode: none.",
            "EXT4-fs (loop2): unmounting filesystem dc3306d1-3b31-47c8-877d-1328d0952f0c.",
            "EXT4-fs: 14 callbacks suppressed",
            "EXT4-fs warning (device sda1): ext4_dx_add_entry:2521: Directory (ino: 2) index full, reach max htree level :2",
            "EXT4-fs (sda1): initial error at time 1795326723: ext4_lookup:1855: inode 2",
            "EXT4-fs (vda): mounted filesystem 00000000-0000-0000-0000-000000000000 r/w without journal. Quota mode: none.",
            "EXT4-fs error",
            "EXT4-fs error (device",
            "EXT4-fs (",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
    }

    #[test]
    fn jbd2() {
        assert_eq!(
            c("Aborting journal on device sda-8."),
            is(Ext4JournalAbort, Critical, "sda")
        );
        assert_eq!(
            c("Aborting journal on device dm-0-8."),
            is(Ext4JournalAbort, Critical, "dm-0")
        );
        assert_eq!(
            c("Aborting journal on device loop2-8."),
            is(Ext4JournalAbort, Critical, "loop2")
        );
        // External journals are named by the device alone.
        assert_eq!(
            c("Aborting journal on device dm-3."),
            is(Ext4JournalAbort, Critical, "dm-3")
        );
        assert_eq!(
            c("Aborting journal on device sdb1."),
            is(Ext4JournalAbort, Critical, "sdb1")
        );
        assert_eq!(
            c("JBD2: I/O error when updating journal superblock for loop4-8."),
            is(Ext4Error, Critical, "loop4")
        );
        assert_eq!(
            c("JBD2: Error -5 detected when updating journal superblock for nvme0n1p1-8."),
            is(Ext4Error, Critical, "nvme0n1p1")
        );
        assert_eq!(
            c("JBD2: Detected IO errors while flushing file data on sda1-8"),
            is(Ext4DataLoss, Critical, "sda1")
        );
        assert_eq!(
            c("JBD2: Spotted dirty metadata buffer (dev = sda1, blocknr = 0)."),
            None
        );
        assert_eq!(jbd2_device("dm-0"), "dm-0");
        assert_eq!(jbd2_device("md-raid-8"), "md-raid");
        assert_eq!(jbd2_device("-8"), "-8");
        assert_eq!(jbd2_device(""), "");
    }

    #[test]
    fn xfs() {
        for m in [
            "XFS (loop6): Metadata I/O Error (0x4) detected at xfs_fs_goingdown+0x7b/0xb0 (fs/xfs/xfs_fsops.c:472).  Shutting down filesystem.",
            "XFS (loop6): Log I/O Error (0x2) detected at xlog_ioend_work+0x6e/0x70 (fs/xfs/xfs_log.c:1245).  Shutting down filesystem.",
            "XFS (loop6): Filesystem has been shut down due to log error (0x2).",
            "XFS (loop6): User initiated shutdown received.",
            "XFS (loop6): xfs_do_force_shutdown(0x2) called from line 1271 of file fs/xfs/xfs_log.c. Return address = 00000000c5d2b1ec",
            "XFS (loop6): Corruption of in-memory data detected.  Shutting down filesystem",
        ] {
            assert_eq!(c(m), is(XfsShutdown, Critical, "loop6"), "{m}");
        }
        assert_eq!(
            c("XFS (dm-0): log I/O error -5"),
            is(XfsLogError, Critical, "dm-0")
        );
        assert_eq!(
            c("XFS (loop6): metadata I/O error in \"xfs_alloc_read_agfl+0x8b/0x100\" at daddr 0x3 len 1 error 5"),
            is(XfsMetadataError, Warning, "loop6")
        );
        assert_eq!(
            c("XFS (loop6): page discard on page 00000000309d4eda, inode 0x84, pos 0."),
            is(WritebackError, Critical, "loop6")
        );
        for m in [
            "XFS (loop6): Please unmount the filesystem and rectify the problem(s)",
            "XFS (loop5): Unmounting Filesystem bc1e8e80-6036-458f-b43a-92c10731fbc6",
            "XFS (loop9): Mounting V5 Filesystem 4ae688dd-da9e-471b-8ca1-f3b96d01d99c",
            "XFS (loop9): Ending clean mount",
            "XFS (",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
    }

    #[test]
    fn btrfs() {
        for m in [
            "BTRFS: error (device loop7) in btrfs_commit_transaction:2546: errno=-5 IO failure (Error while writing out transaction)",
            "BTRFS: error (device loop7 state EA) in cleanup_transaction:2038: errno=-5 IO failure",
            "BTRFS critical (device loop7): corrupt leaf: root=2 block=30425088 slot=0, unexpected item end",
        ] {
            assert_eq!(c(m), is(BtrfsError, Critical, "loop7"), "{m}");
        }
        assert_eq!(
            c("BTRFS error (device loop8 state EA): failed to run delayed ref for logical 22036480 num_bytes 16384 type 176 action 2 ref_mod 1: -5"),
            is(BtrfsError, Warning, "loop8")
        );
        assert_eq!(
            c("BTRFS info (device loop7 state E): forced readonly"),
            is(BtrfsReadOnly, Critical, "loop7")
        );
        for m in [
            "BTRFS error (device loop8 state A): Transaction aborted (error -5)",
            "BTRFS warning (device loop8 state E): Skipping commit of aborted transaction.",
            "BTRFS: Transaction aborted (error -28)",
        ] {
            assert_eq!(c(m).map(|g| g.0), Some(BtrfsTransactionAbort), "{m}");
        }
        assert_eq!(
            c("BTRFS error (device loop8): bdev /dev/loop8 errs: wr 1, rd 0, flush 0, corrupt 0, gen 0"),
            is(BtrfsDeviceErrors, Warning, "loop8")
        );
        assert_eq!(
            c("BTRFS warning (device sda): lost page write due to IO error on /dev/sdb (-5)"),
            is(BtrfsDeviceErrors, Warning, "sdb")
        );
        for m in [
            "BTRFS info (device loop11): first mount of filesystem 525a978d",
            "BTRFS info (device loop7 state EA): last unmount of filesystem aecb060c",
            "BTRFS: device fsid 525a978d devid 1 transid 6 /dev/loop11 (7:11) scanned by mount (17371)",
            "BTRFS warning (device sda): csum hole found for disk bytenr range [1, 2)",
            "Btrfs loaded, zoned=no, fsverity=no",
            "BTRFS",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
    }

    #[test]
    fn block_layer() {
        for (m, dev) in [
            ("I/O error, dev loop4, sector 518 op 0x0:(READ) flags 0x83700 phys_seg 1 prio class 2", "loop4"),
            ("critical space allocation error, dev loop2, sector 69634 op 0x1:(WRITE) flags 0x4000 phys_seg 20 prio class 2", "loop2"),
            ("timeout error, dev sda, sector 2048 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0", "sda"),
            ("critical medium error, dev sdb, sector 123 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0", "sdb"),
            ("critical target error, dev sdc, sector 1 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0", "sdc"),
            ("recoverable transport error, dev sdd, sector 1 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0", "sdd"),
            ("device offline error, dev sde, sector 1 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0", "sde"),
            ("blk_update_request: I/O error, dev sda, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0", "sda"),
            ("blk_update_request: critical medium error, dev nvme0n1, sector 10", "nvme0n1"),
            ("print_req_error: I/O error, dev vda, sector 9", "vda"),
            ("end_request: I/O error, dev sdb, sector 9", "sdb"),
        ] {
            assert_eq!(c(m), is(BlockIoError, Warning, dev), "{m}");
        }
        for m in [
            "operation not supported error, dev loop9, sector 524336 op 0x9:(WRITE_ZEROES) flags 0x20000800 phys_seg 0 prio class 2",
            "blk_print_req_error: 36 callbacks suppressed",
            "some driver: 3 error, dev x, sector 1",
            "I/O error, dev , sector 1",
            "I/O error, dev sda",
            "I/O error, dev sda sector 1",
            "error, dev sda, sector 1",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
    }

    #[test]
    fn buffer_and_writeback() {
        assert_eq!(
            c("Buffer I/O error on dev loop4, logical block 16385, lost sync page write"),
            is(BufferIoError, Critical, "loop4")
        );
        assert_eq!(
            c("Buffer I/O error on dev loop2, logical block 24836, lost async page write"),
            is(BufferIoError, Critical, "loop2")
        );
        assert_eq!(
            c("Buffer I/O error on dev sda1, logical block 0, async page read"),
            is(BufferIoError, Warning, "sda1")
        );
        assert_eq!(
            c("Buffer I/O error on device loop2, logical block 34817"),
            is(BufferIoError, Warning, "loop2")
        );
        assert_eq!(c("Buffer I/O error on dev"), None);
        assert_eq!(
            c("loop5: writeback error on inode 131, offset 0, sector 262224"),
            is(WritebackError, Critical, "loop5")
        );
        assert_eq!(
            c("sda1: writeback error on inode 12, offset 133230592, sector 786512"),
            is(WritebackError, Critical, "sda1")
        );
        assert_eq!(c(": writeback error on inode 1"), None);
        assert_eq!(c("a b: writeback error on inode 1"), None);
    }

    #[test]
    fn scsi() {
        assert_eq!(
            c("sd 2:0:0:0: [sda] tag#3 timing out command, waited 180s"),
            is(ScsiTimeout, Warning, "sda")
        );
        assert_eq!(
            c("sd 2:0:0:0: timing out command, waited 30s"),
            is(ScsiTimeout, Warning, "2:0:0:0")
        );
        assert_eq!(
            c("sd 0:0:1:0: [sdb] tag#12 FAILED Result: hostbyte=DID_TIME_OUT driverbyte=DRIVER_OK cmd_age=30s"),
            is(ScsiTimeout, Warning, "sdb")
        );
        assert_eq!(
            c("sd 2:0:0:0: Device offlined - not ready after error recovery"),
            is(ScsiOffline, Critical, "2:0:0:0")
        );
        assert_eq!(
            c("sd 2:0:0:0: [sda] Device offlined - not ready after error recovery"),
            is(ScsiOffline, Critical, "sda")
        );
        assert_eq!(
            c("sd 2:0:0:0: rejecting I/O to offline device"),
            is(ScsiRejectedIo, Critical, "2:0:0:0")
        );
        assert_eq!(
            c("scsi 3:0:0:0: rejecting I/O to dead device"),
            is(ScsiRejectedIo, Critical, "3:0:0:0")
        );
        for m in [
            "sd 2:0:0:0: [sda] 2097152 512-byte logical blocks: (1.07 GB/1.00 GiB)",
            "sd 2:0:0:0: Attached scsi generic sg0 type 0",
            "sd 2:0:0: timing out command",
            "sd 2:0:0:x: timing out command",
            "sd 2:0:0:0: [sda timing out command",
            "scsi host0: Virtio SCSI HBA",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
    }

    #[test]
    fn entries_seen_in_guests() {
        // Format strings of the kernels named in the module table, filled in as the
        // real captures under tests/logs/public/ show them.
        for (m, want) in [
            (" connection1:0: ping timeout of 5 secs expired, recv timeout 5, last rx 1, last ping 2, now 3", is(IscsiPingTimeout, Warning, "connection1:0")),
            ("sd 1:0:0:0: [sdb] Medium access timeout failure. Offlining disk!", is(ScsiOffline, Critical, "sdb")),
            ("sd 0:0:0:0: [sda] tag#99 task abort on host 0, 0000000002af6841", is(ScsiTaskAbort, Warning, "sda")),
            ("sd 2:0:0:0: [sda] attempting task abort! scmd(00000000c0ffee00)", is(ScsiTaskAbort, Warning, "sda")),
            ("sd 2:0:0:0: [sda] abort", is(ScsiTaskAbort, Warning, "sda")),
            ("XFS (sdb1): SB validate failed with error -5.", is(XfsMetadataError, Critical, "sdb1")),
            ("XFS (dm-0): xfs_log_force: error -5 returned.", is(XfsLogError, Critical, "dm-0")),
            ("XFS (dm-7): metadata I/O error: block 0x280000010 (\"xlog_bread_noalign\") error 5 numblks 8", is(XfsMetadataError, Warning, "dm-7")),
            ("XFS (dm-7): log mount failed", is(XfsMetadataError, Critical, "dm-7")),
            ("nvme0n1: I/O Cmd(0x2) @ LBA 0, 8 blocks, I/O Error (sct 0x2 / sc 0x86) DNR ", is(NvmeIoError, Warning, "nvme0n1")),
            ("nvme0n1: I/O Cmd(0x1) @ LBA 2048, 8 blocks, I/O Error (sct 0x3 / sc 0x71) ", is(NvmeIoError, Warning, "nvme0n1")),
            ("hv_storvsc fd1d2cbd-ce7c-535c-966b-eb5f811c95f0: tag#599 cmd 0x28 status: scsi 0x2 srb 0x4 hv 0xc0000001", is(StorvscError, Warning, "fd1d2cbd-ce7c-535c-966b-eb5f811c95f0")),
            ("md/raid1:md0: Disk failure on sdb6, disabling device.", is(MdDiskFailure, Warning, "sdb6")),
            ("md/raid:md127: Disk failure on nvme1n1p1, disabling device.", is(MdDiskFailure, Warning, "nvme1n1p1")),
            ("md/raid1:mdX: Disk failure on dm-3, disabling device.", is(MdDiskFailure, Warning, "dm-3")),
            ("md/raid1:mdX: Disk failure on dm-3, this is the last device.", is(MdDiskFailure, Critical, "dm-3")),
            ("raid1: Disk failure on sdb1, disabling device.", is(MdDiskFailure, Warning, "sdb1")),
            ("md/raid1:md0: Operation continuing on 1 devices.", is(MdDegraded, Critical, "md0")),
            ("md/raid:md127: Operation continuing on 3 devices.", is(MdDegraded, Critical, "md127")),
            ("md: md0: recovery done.", resolves(MdDegraded, "md0")),
            ("md/raid:md2: Cannot continue operation (2/4 failed).", is(MdArrayFailed, Critical, "md2")),
            ("md/raid1:md0: Disk failure on sdb1, this is the last device.\nmd/raid1:md0: Cannot continue operation (2/2 failed).", is(MdArrayFailed, Critical, "md0")),
            ("INFO: task jbd2/sda3-8:373 blocked for more than 120 seconds.", is(HungTask, Warning, "sda3")),
            ("INFO: task jbd2/dm-2-8:22274 blocked for more than 120 seconds.", is(HungTask, Warning, "dm-2")),
            ("INFO: task xfsaild/dm-0:512 blocked for more than 120 seconds.", is(HungTask, Warning, "dm-0")),
        ] {
            assert_eq!(c(m), want, "{m}");
        }
        for m in [
            // Empty virtual CD-ROM and floppy drives probed at boot.
            "Buffer I/O error on dev sr0, logical block 0, async page read",
            "I/O error, dev sr0, sector 0 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2",
            "print_req_error: I/O error, dev fd0, sector 0",
            "blk_update_request: I/O error, dev fd0, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0",
            // Probes Hyper-V answers with errors: TEST UNIT READY, smartd's ATA PASS-THROUGH.
            "hv_storvsc fd1d2cbd-ce7c-535c-966b-eb5f811c95f0: tag#0 cmd 0x0 status: scsi 0x2 srb 0x4 hv 0xc0000001",
            "hv_storvsc fd1d2cbd-ce7c-535c-966b-eb5f811c95f0: tag#1 cmd 0x85 status: scsi 0x2 srb 0x4 hv 0xc0000001",
            "md/raid1:md0: active with 2 out of 2 mirrors",
            // No array named (2.6), or no failure: a whole array's passes end nothing.
            "raid1: Operation continuing on 1 devices.",
            "md: md0: recovery interrupted.",
            "md: md0: resync done.",
            "md: recovery of RAID array md0",
            "md: md0: recovery done",
            // dm-raid: md's personalities without an md device.
            "md/raid1:mdX: Operation continuing on 1 devices.",
            "md/raid:md2: Disk failure on sdb6, something else.",
            "md: mdX: recovery done.",
            "md/raid:md2: read error not correctable (sector 2208 on sdb6).",
            "md/raid:md2: Cannot continue operation",
            "md: super_written gets error=-5",
            "nvme0n1: p1 p2",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
        let rec = |m: &str| LogRecord {
            message: m.to_string(),
            ..LogRecord::default()
        };
        assert_eq!(
            scsi_disk_name(&rec(
                "sd 2:0:0:0: [sdb] 2097152 512-byte logical blocks: (1.07 GB/1.00 GiB)"
            )),
            Some(("2:0:0:0", "sdb"))
        );
        assert_eq!(
            scsi_disk_name(&rec("sd 2:0:0:0: rejecting I/O to offline device")),
            None
        );
        for (m, want) in [
            ("EXT4-fs (loop0): unmounting filesystem b93909c9-77e2-4c53-af07-648381865ac6.", Some((Lifecycle::Unmounted, "loop0".to_string()))),
            ("XFS (loop0): Mounting V5 Filesystem d70ded8d-0d20-46bf-a60e-0e4a17a7530b", Some((Lifecycle::Mounted, "loop0".to_string()))),
            ("BTRFS info (device loop8 state EA): last unmount of filesystem 00714b08", Some((Lifecycle::Unmounted, "loop8".to_string()))),
            ("EXT4-fs (vda): mounted filesystem 00000000-0000-0000-0000-000000000000 r/w without journal. Quota mode: none.", Some((Lifecycle::Mounted, "vda".to_string()))),
            ("XFS (loop0): Ending clean mount", None),
        ] {
            assert_eq!(lifecycle(&rec(m)), want, "{m}");
        }
    }

    #[test]
    fn hung_task() {
        assert_eq!(
            c("INFO: task dd:17565 blocked for more than 2 seconds."),
            Some((HungTask, Warning, None, false))
        );
        assert_eq!(
            c("INFO: task kworker/u4:2:123 blocked for more than 122 seconds."),
            Some((HungTask, Warning, None, false))
        );
        assert_eq!(
            c("INFO: task dd:1 is blocked on a mutex likely owned by task x:2."),
            None
        );
        assert_eq!(c("INFO: rcu_sched detected stalls on CPUs/tasks:"), None);
    }

    #[test]
    fn nfs() {
        assert_eq!(
            c("nfs: server nfs.example not responding, still trying"),
            is(NfsNotResponding, Warning, "nfs.example")
        );
        assert_eq!(
            c("nfs: server 10.0.0.5 not responding, timed out"),
            is(NfsNotResponding, Critical, "10.0.0.5")
        );
        assert_eq!(
            c("lockd: server nfs.example not responding, still trying"),
            is(NfsNotResponding, Warning, "nfs.example")
        );
        assert_eq!(
            c("nfs: server nfs.example OK"),
            resolves(NfsOk, "nfs.example")
        );
        assert_eq!(
            c("nfs: server  OK"),
            Some((NfsOk, Severity::Info, None, true))
        );
        assert_eq!(c("nfs: server x"), None);
        assert_eq!(c("NFS: Registering the id_resolver key type"), None);
    }

    #[test]
    fn iscsi() {
        assert_eq!(
            c("connection1:0: detected conn error (1020)"),
            is(IscsiConnectionError, Warning, "connection1:0")
        );
        assert_eq!(
            c("connection12:3: ping timeout of 5 secs expired, recv timeout 5, last rx 4294892, last ping 4294897, now 4294902"),
            is(IscsiPingTimeout, Warning, "connection12:3")
        );
        assert_eq!(
            c("session1: session recovery timed out after 120 secs"),
            is(IscsiConnectionError, Critical, "session1")
        );
        assert_eq!(
            from("iscsid", "Kernel reported iSCSI connection 1:0 error (1020 - ISCSI_ERR_TCP_CONN_CLOSE: TCP connection closed) state (3)"),
            is(IscsiConnectionError, Warning, "connection1:0")
        );
        assert_eq!(
            from(
                "iscsid",
                "connection1:0 is operational after recovery (1 attempts)"
            ),
            resolves(IscsiConnectionError, "connection1:0")
        );
        for m in [
            "connection1:0: x",
            "connection: detected conn error",
            "connectionx:0: detected conn error (1)",
            "session: x",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
        assert_eq!(from("iscsid", "connection1:0 is operational now"), None);
    }

    #[test]
    fn multipath() {
        assert_eq!(
            c("device-mapper: multipath: 253:0: Failing path 8:16."),
            is(MultipathPathFailed, Warning, "8:16")
        );
        assert_eq!(
            c("device-mapper: multipath: Failing path 8:32."),
            is(MultipathPathFailed, Warning, "8:32")
        );
        assert_eq!(
            c("device-mapper: multipath: 253:0: Reinstating path 8:16."),
            resolves(MultipathPathReinstated, "8:16")
        );
        assert_eq!(
            c("device-mapper: multipath: queue_if_no_path timeout on 253:0, failing queued IO"),
            is(MultipathNoPaths, Critical, "253:0")
        );
        assert_eq!(
            from("multipathd", "mpatha: remaining active paths: 0"),
            is(MultipathNoPaths, Critical, "mpatha")
        );
        assert_eq!(
            from("multipathd", "mpatha: remaining active paths: 1"),
            None
        );
        assert_eq!(
            from("multipathd", "checker failed path 8:16 in map mpatha"),
            is(MultipathPathFailed, Warning, "8:16")
        );
        // As a bare line (a syslog file read without its prefix parsed).
        assert_eq!(
            c("multipathd: mpatha: remaining active paths: 0"),
            is(MultipathNoPaths, Critical, "mpatha")
        );
        assert_eq!(
            c("multipathd[812]: mpatha: remaining active paths: 0"),
            is(MultipathNoPaths, Critical, "mpatha")
        );
        assert_eq!(c("device-mapper: multipath: version 1.14.0 loaded"), None);
        assert_eq!(c("device-mapper: uevent: version 1.0.3"), None);
        assert_eq!(from("sshd", "mpatha: remaining active paths: 0"), None);
    }

    #[test]
    fn nvme() {
        for m in [
            "nvme nvme0: I/O tag 12 (100c) opcode 0x1 (Write) QID 2 timeout, aborting req_op:WRITE(1) size:4096",
            "nvme nvme0: I/O 12 QID 2 timeout, aborting",
            "nvme nvme0: I/O 12 QID 0 timeout, reset controller",
        ] {
            assert_eq!(c(m), is(NvmeTimeout, Warning, "nvme0"), "{m}");
        }
        assert_eq!(
            c("nvme nvme1: controller is down; will reset: CSTS=0x3, PCI_STATUS=0x10"),
            is(NvmeReset, Critical, "nvme1")
        );
        for m in [
            "nvme nvme0: 2/0/0 default/read/poll queues",
            "nvme nvme0: I/O 12 QID x timeout",
            "nvme nvme0: I/O 12 QID  timeout",
            "nvme nvme0: QID",
            "nvme 0000:00:04.0: enabling device (0000 -> 0002)",
            "nvme0n1: p1 p2",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
    }

    #[test]
    fn rate_limit_lines() {
        let rec = |m: &str| LogRecord {
            message: m.to_string(),
            ..LogRecord::default()
        };
        for (m, source, count, kind) in [
            (
                "blk_print_req_error: 36 callbacks suppressed",
                "blk_print_req_error",
                36,
                Some(BlockIoError),
            ),
            (
                "buffer_io_error: 45046 callbacks suppressed",
                "buffer_io_error",
                45046,
                Some(BufferIoError),
            ),
            ("EXT4-fs: 14 callbacks suppressed", "EXT4-fs", 14, None),
        ] {
            assert_eq!(classify(&rec(m)), None, "{m}");
            assert_eq!(
                suppressed(&rec(m)),
                Some(Suppressed {
                    source: source.to_string(),
                    count,
                    kind
                })
            );
        }
        assert_eq!(suppressed(&rec("x: y callbacks suppressed")), None);
        assert_eq!(suppressed(&rec("I/O error, dev sda, sector 1")), None);
    }

    #[test]
    fn unrelated_and_empty() {
        for m in [
            "",
            " ",
            "Linux version 6.18.44-fc-v509",
            "loop0: detected capacity change from 0 to 32768",
            "ACPI: Core revision 20250807",
            " <TASK>",
            "e",
            "error",
            "errorerror, dev",
            "\u{20ac}error, dev x, sector 1",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
        // A program we have no patterns for.
        assert_eq!(from("sshd", "I/O error, dev sda, sector 1"), None);
    }

    #[test]
    fn only_trusted_senders_are_believed() {
        let rec = |sender, program: Option<&str>, m: &str| LogRecord {
            message: m.to_string(),
            program: program.map(str::to_string),
            sender,
            ..LogRecord::default()
        };
        let nopaths = "mpatha: remaining active paths: 0";
        let ext4 = "EXT4-fs error (device sda1): ext4_lookup:1855: inode #2: comm ls: x";
        // The review's forgery: any user's `logger -t multipathd`.
        assert_eq!(
            classify(&rec(Sender::Untrusted, Some("multipathd"), nopaths)),
            None
        );
        assert!(classify(&rec(Sender::Root, Some("multipathd"), nopaths)).is_some());
        assert!(classify(&rec(Sender::Unknown, Some("multipathd"), nopaths)).is_some());
        // A userspace write to /dev/kmsg is not a kernel error.
        assert_eq!(classify(&rec(Sender::Untrusted, None, ext4)), None);
        assert!(classify(&rec(Sender::Kernel, None, ext4)).is_some());
        assert!(classify(&rec(Sender::Unknown, None, ext4)).is_some());
        // Root is not the kernel: a root process without a program is neither.
        assert_eq!(classify(&rec(Sender::Root, None, ext4)), None);
        let rl = "blk_print_req_error: 36 callbacks suppressed";
        assert_eq!(suppressed(&rec(Sender::Untrusted, None, rl)), None);
        assert!(suppressed(&rec(Sender::Kernel, None, rl)).is_some());
        // Only the kernel ties a SCSI address to a disk name (sd.c sd_probe's `Attached SCSI
        // disk`, with sd_printk's `[%s] `): not a user's write to /dev/kmsg, nor root's.
        let attached = "sd 2:0:1:0: [sdb] Attached SCSI disk";
        assert_eq!(
            scsi_disk_name(&rec(Sender::Untrusted, None, attached)),
            None
        );
        assert_eq!(scsi_disk_name(&rec(Sender::Root, None, attached)), None);
        assert_eq!(
            scsi_disk_name(&rec(Sender::Root, Some("multipathd"), attached)),
            None
        );
        assert_eq!(
            scsi_disk_name(&rec(Sender::Kernel, None, attached)),
            Some(("2:0:1:0", "sdb"))
        );
        assert_eq!(
            scsi_disk_name(&rec(Sender::Unknown, None, attached)),
            Some(("2:0:1:0", "sdb"))
        );
    }

    #[test]
    fn kernel_device_names() {
        assert_eq!(kernel_device("/dev/sdb"), "sdb");
        assert_eq!(kernel_device("loop2"), "loop2");
        assert_eq!(kernel_device("dm-0,"), "dm-0");
        assert_eq!(kernel_device("/dev/mapper/vg-lv"), "mapper/vg-lv");
    }

    /// RAID and replication layers, in the wording of their sources: DRBD 9 (LINBIT/drbd
    /// drbd_receiver.c, drbd_state.c, drbd_req.c), DRBD 8.4 (tag drbd-8.4.7, the in-kernel
    /// driver's), ZFS (module/zfs/zio.c, mmp.c; zed's all-syslog.sh), dm-thin (dm-thin.c
    /// `notify_of_pool_mode_change`), filled in as the real captures under tests/logs show them.
    #[test]
    fn raid_and_replication_layers() {
        let sb = "vm-57da08a3-2938-4769-8959-3a11616d6ef9:os-hv-am-3";
        for (m, want) in [
            ("drbd u12215 nodeA: PingAck did not arrive in time.", is(DrbdConnectionLost, Warning, "u12215:nodeA")),
            ("drbd u12215 nodeA: conn( Connected -> NetworkFailure ) peer( Secondary -> Unknown )", is(DrbdConnectionLost, Warning, "u12215:nodeA")),
            ("drbd pgsql dmg28dbn1.mgmt.dmg28.dmg.net: meta connection shut down by peer.", is(DrbdConnectionLost, Warning, "pgsql:dmg28dbn1.mgmt.dmg28.dmg.net")),
            ("drbd windows10-boot windows10: conn( Connecting -> Connected ) peer( Unknown -> Secondary )", resolves(DrbdConnectionLost, "windows10-boot:windows10")),
            ("drbd r0: PingAck did not arrive in time.", is(DrbdConnectionLost, Warning, "r0")),
            ("block drbd9: conn( WFReportParams -> NetworkFailure ) ", is(DrbdConnectionLost, Warning, "drbd9")),
            ("drbd vm-57da08a3-2938-4769-8959-3a11616d6ef9/0 drbd8 os-hv-am-3: Split-Brain detected but unresolved, dropping connection!", is(DrbdSplitBrain, Critical, sb)),
            ("block drbd6: Split-Brain detected but unresolved, dropping connection!", is(DrbdSplitBrain, Critical, "drbd6")),
            ("block drbd0: Split-Brain detected, dropping connection!", is(DrbdSplitBrain, Critical, "drbd0")),
            ("drbd r0/0 drbd1: disk( UpToDate -> Failed )", is(DrbdDiskFailed, Critical, "drbd1")),
            ("drbd r0/0 drbd1: Local IO failed in drbd_request_endio. Detaching...", is(DrbdDiskFailed, Critical, "drbd1")),
            ("block drbd0: IO ERROR: neither local nor remote data, sector 0+8", is(DrbdDiskFailed, Critical, "drbd0")),
            ("drbd r0/0 drbd1: disk( Inconsistent -> UpToDate )", resolves(DrbdDiskFailed, "drbd1")),
            ("block drbd0: Local IO failed in drbd_endio_write_sec_final. Detaching...", is(DrbdDiskFailed, Critical, "drbd0")),
            ("WARNING: Pool 'zfs_pool_scsi0QEMU_QEMU_HARDDISK_disk11' has encountered an uncorrectable I/O failure and has been suspended.", is(ZfsPoolSuspended, Critical, "zfs_pool_scsi0QEMU_QEMU_HARDDISK_disk11")),
            ("SPLError: 3525:0:(spl-err.c:67:vcmn_err()) WARNING: Pool 'tank' has encountered an uncorrectable I/O failure and has been suspended.", is(ZfsPoolSuspended, Critical, "tank")),
            ("WARNING: MMP writes to pool 'Pool-0' have not succeeded in over 5s; suspending pool", is(ZfsPoolSuspended, Critical, "Pool-0")),
            ("device-mapper: thin: 253:2: switching pool to out-of-data-space (error IO) mode", is(DmThinOutOfSpace, Critical, "253:2")),
            ("device-mapper: thin: 253:2: switching pool to out-of-data-space (queue IO) mode", is(DmThinOutOfSpace, Warning, "253:2")),
            ("device-mapper: thin: 253:2: switching pool to read-only mode", is(DmThinPoolFailed, Critical, "253:2")),
            ("device-mapper: thin: 253:2: switching pool to failure mode", is(DmThinPoolFailed, Critical, "253:2")),
            ("device-mapper: thin: 253:2: switching pool to write mode", resolves(DmThinOutOfSpace, "253:2")),
            // 4.19+ (and RHEL 7.9, 8.5) print the failure mode as `fail`: dm-thin.c
            // notify_of_pool_mode_change, descs[] = {"write", "out-of-data-space", "read-only",
            // "read-only", "fail"}; 3.14-3.18 print a bare out-of-data-space (set_pool_mode).
            ("device-mapper: thin: 253:2: switching pool to fail mode", is(DmThinPoolFailed, Critical, "253:2")),
            ("device-mapper: thin: 253:4: switching pool to out-of-data-space mode", is(DmThinOutOfSpace, Warning, "253:4")),
            // 3.10's set_pool_mode: DMERR("switching pool to failure mode"), no device.
            ("device-mapper: thin: switching pool to failure mode", Some((DmThinPoolFailed, Critical, None, false))),
            // 2.6.x-3.16 print a lost buffer write on a line of its own (fs/buffer.c
            // end_buffer_write_sync / end_buffer_async_write: "lost page write due to I/O
            // error on %s\n", bdevname).
            ("lost page write due to I/O error on sdb1", is(BufferIoError, Critical, "sdb1")),
        ] {
            assert_eq!(c(m), want, "{m}");
        }
        for m in [
            // Normal life of a DRBD resource.
            "drbd u12215 nodeA: conn( NetworkFailure -> Unconnected )",
            "drbd u12215 nodeA: conn( Unconnected -> Connecting )",
            "drbd vm-57da08a3-2938-4769-8959-3a11616d6ef9 os-hv-am-3: conn( Connecting -> Disconnecting )",
            "drbd pgsql/1 drbd1: disk( UpToDate -> Consistent )",
            "drbd u12215/0 drbd854 nodeA: pdsk( UpToDate -> DUnknown ) repl( Established -> Off )",
            // DRBD 8's detach: `drbdadm detach` / `down` print it too (adm_detach, 8.4.7).
            "block drbd0: disk( UpToDate -> Failed ) pdsk( UpToDate -> DUnknown )",
            "block drbd1: disk( UpToDate -> Failed ) ",
            "block drbd1: disk( Failed -> Diskless ) ",
            // The peer's disk failed: this node's copy is fine (the link's state says the rest).
            "drbd r0/0 drbd1 peer: pdsk( UpToDate -> Failed )",
            "drbd r0/0 drbd1: Split-Brain detected, 1 primaries, automatically solved. Sync from peer node",
            "drbd u12215 nodeA: Connection closed",
            "drbd: initialized. Version: 9.2.4",
            "drbd  x: PingAck did not arrive in time.",
            // ZFS and dm-thin lines that are no failure.
            "ZFS: Loaded module v0.7.1-1, ZFS pool version 5000, ZFS filesystem version 5",
            "WARNING: CPU: 0 PID: 1 at kernel/x.c:1",
            "WARNING: Pool 'tank",
            "device-mapper: thin: 253:2: reached low water mark for data device: sending event.",
            "device-mapper: thin: version 1.23.0",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
        for (m, want) in [
            ("eid=12 class=statechange pool='tank' vdev=sdb1 vdev_state=FAULTED", is(ZfsVdevFault, Critical, "sdb1")),
            ("eid=13 class=statechange pool='tank' vdev=sdb1 vdev_state=DEGRADED", is(ZfsVdevFault, Warning, "sdb1")),
            ("eid=14 class=statechange pool='tank' vdev=sdb1 vdev_state=ONLINE", resolves(ZfsVdevFault, "sdb1")),
            ("eid=164 class=io pool_guid=0x1E0D9667DBEC61A2 vdev_path=/dev/disk/by-vdev/A0", is(ZfsIoError, Warning, "A0")),
            ("eid=20 class=deadman pool='tank' vdev=sdc size=4096 offset=1 priority=3 err=0 flags=0x1", is(ZfsIoError, Warning, "sdc")),
            ("eid=21 class=io_failure pool='tank'", is(ZfsPoolSuspended, Critical, "tank")),
            ("eid=22 class=vdev_clear pool='tank' vdev=sdb1", resolves(ZfsPoolSuspended, "tank")),
        ] {
            assert_eq!(from("zed", m), want, "{m}");
        }
        for m in [
            "eid=1 class=config_sync pool='tank'",
            "eid=2 class=history_event pool='tank'",
            "Processing events since eid=0",
            "eid=3 class=statechange pool='tank' vdev=sdb1 vdev_state=OFFLINE",
        ] {
            assert_eq!(from("zed", m), None, "{m}");
        }
        // Only zed's own lines: another program saying the same is nothing.
        assert_eq!(
            from(
                "sshd",
                "eid=12 class=statechange pool='tank' vdev=sdb1 vdev_state=FAULTED"
            ),
            None
        );
    }

    /// DRBD 8.4's reconnect is a device's line: `__drbd_set_state` prints a device's state change
    /// with `drbd_pr_state_change` (drbd_state.c, tag drbd-8.4.7), and the only changes to
    /// `Connected` are a device's (`receive_state`'s `_drbd_set_state` in drbd_receiver.c, the
    /// end of a resync), so they read `block drbd6: ... conn( WFReportParams -> Connected ) ...`
    /// (dev_printk's `block drbd6: `), the connection's own `drbd resource6: conn( ... )` lines
    /// reaching `WFReportParams` at most. The public capture (ganeti#846) shows no reconnect:
    /// these reconnect lines are built from those format strings (`peer( %s -> %s ) conn( %s ->
    /// %s ) pdsk( %s -> %s ) `, role, peer, conn, disk, pdsk in that order, each with its
    /// trailing blank), with the capture's minor.
    #[test]
    fn drbd84_split_brain_ends_when_the_minor_is_connected_again() {
        let reconnected = "block drbd6: peer( Unknown -> Secondary ) conn( WFReportParams -> Connected ) pdsk( DUnknown -> UpToDate ) ";
        let resyncing =
            "block drbd6: conn( WFReportParams -> WFBitMapS ) pdsk( DUnknown -> Consistent ) ";
        for m in [
            reconnected,
            resyncing,
            "block drbd6: conn( SyncSource -> Connected ) pdsk( Inconsistent -> UpToDate ) ",
        ] {
            assert_eq!(c(m), resolves(DrbdConnectionLost, "drbd6"), "{m}");
        }
        // The connection's lines on the way back are no reconnect yet; the handshake may still
        // find the split brain and drop the link again.
        for m in [
            "drbd resource6: conn( StandAlone -> Unconnected ) ",
            "drbd resource6: conn( WFConnection -> WFReportParams ) ",
            "drbd resource6: conn( WFReportParams -> Disconnecting ) ",
        ] {
            assert_eq!(c(m), None, "{m}");
        }
        let capture = include_str!("../../tests/logs/public-ganeti-drbd84-split-brain.syslog");
        let lost = "block drbd6: conn( Connected -> NetworkFailure ) pdsk( UpToDate -> DUnknown ) ";
        for (before, end, kind) in [
            (capture, reconnected, DrbdSplitBrain),
            (capture, resyncing, DrbdSplitBrain),
            (lost, reconnected, DrbdConnectionLost),
        ] {
            let mut e = crate::detect::engine::Engine::new(
                crate::detect::incidents::IncidentConfig::default(),
                crate::detect::incidents::Incidents::default(),
                crate::detect::engine::Clock::Saved,
            );
            let mut recs = crate::detect::parse::parse_log(before);
            for r in &mut recs {
                r.sender = crate::detect::types::Sender::Kernel;
            }
            e.records(&recs, None, 0);
            let open: Vec<(Kind, Option<String>)> = e
                .open()
                .iter()
                .map(|i| (i.kind, i.device.clone()))
                .collect();
            assert_eq!(open, [(kind, Some("drbd6".to_string()))], "{end}");
            let last = recs.last().and_then(|r| r.monotonic_us).unwrap_or(0);
            let back = LogRecord {
                message: end.to_string(),
                monotonic_us: Some(last + 60_000_000),
                sender: crate::detect::types::Sender::Kernel,
                ..LogRecord::default()
            };
            let n = e.records(&[back], None, 0);
            assert_eq!(n.len(), 1, "{end}: {n:?}");
            assert_eq!(n[0].event, crate::detect::types::IncidentState::Resolved);
            assert!(e.open().is_empty(), "{end}");
        }
    }
}
