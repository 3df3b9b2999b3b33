//! The log parsers and the catalog against real kernel logs: failures produced on Linux 6.18
//! with loop devices and captured as /dev/kmsg records, dmesg text and journald output
//! (tests/logs/, how in tests/logs/README.md). These tests only read the saved files.

use std::collections::BTreeSet;
use std::path::PathBuf;

use tunerd::detect::classify::{classify, suppressed};
use tunerd::detect::parse::parse_log;
use tunerd::detect::types::{Kind, LogRecord, Observation, Severity};

use Kind::*;

fn logs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/logs")
}

fn read(name: &str) -> String {
    let path = logs().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn records(name: &str) -> Vec<LogRecord> {
    parse_log(&read(name))
}

fn observe(name: &str) -> Vec<Observation> {
    records(name).iter().filter_map(classify).collect()
}

/// The (kind, device) pairs found in a capture.
fn found(name: &str) -> BTreeSet<(Kind, Option<String>)> {
    observe(name)
        .into_iter()
        .map(|o| (o.kind, o.device))
        .collect()
}

fn set(items: &[(Kind, &str)]) -> BTreeSet<(Kind, Option<String>)> {
    items
        .iter()
        .map(|(k, d)| (*k, Some(d.to_string())))
        .collect()
}

/// What a person would compare across formats: everything but the time.
fn essence(obs: &[Observation]) -> Vec<(Kind, Severity, Option<String>, bool, String)> {
    obs.iter()
        .map(|o| {
            (
                o.kind,
                o.severity,
                o.device.clone(),
                o.resolves,
                o.message.clone(),
            )
        })
        .collect()
}

#[test]
fn ext4_trigger_error() {
    // echo MSG > /sys/fs/ext4/loop0/trigger_fs_error, errors=remount-ro
    let name = "ext4-trigger-error.kmsg";
    assert_eq!(
        found(name),
        set(&[
            (Ext4Error, "loop0"),
            (Ext4JournalAbort, "loop0"),
            (Ext4ReadOnly, "loop0"),
        ])
    );
    let obs = observe(name);
    assert!(obs.iter().all(|o| o.severity == Severity::Critical));
    let recs = records(name);
    assert_eq!(recs[0].level, Some(2), "EXT4-fs error is KERN_CRIT");
    assert!(recs
        .iter()
        .all(|r| r.seq.is_some() && r.monotonic_us.is_some()));
}

#[test]
fn ext4_shutdown() {
    // EXT4_IOC_SHUTDOWN (xfs_io -x -c "shutdown -f")
    assert_eq!(
        found("ext4-shutdown.kmsg"),
        set(&[(Ext4Shutdown, "loop1"), (Ext4JournalAbort, "loop1")])
    );
}

#[test]
fn ext4_full_tmpfs() {
    // Backing file on a too-small tmpfs: the loop driver fails writes with BLK_STS_NOSPC
    // ("critical space allocation error"), ext4 loses data, aborts its journal.
    let name = "ext4-full-tmpfs.dmesg";
    assert_eq!(
        found(name),
        set(&[
            (BlockIoError, "loop2"),
            (BufferIoError, "loop2"),
            (Ext4DataLoss, "loop2"),
            (Ext4JournalAbort, "loop2"),
            (Ext4Error, "loop2"),
        ])
    );
    // No "Remounting filesystem read-only" line: ext4's own message rate limit (10 per 5 s per
    // filesystem) had been used up by the data-loss lines; the kernel says so at unmount.
    // Read-only must be inferred from the journal abort, not waited for.
    assert!(!found(name).iter().any(|(k, _)| *k == Ext4ReadOnly));
    let recs = records(name);
    let dropped: Vec<_> = recs.iter().filter_map(suppressed).collect();
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    assert_eq!(dropped[0].source, "buffer_io_error");
    assert_eq!(dropped[0].count, 45046);
    assert_eq!(dropped[0].kind, Some(BufferIoError));
    assert_eq!(
        (dropped[1].source.as_str(), dropped[1].count),
        ("EXT4-fs", 14)
    );
    // Every error line of the capture is an observation, no more, no less.
    let text = read(name);
    let count = |kind: Kind| observe(name).iter().filter(|o| o.kind == kind).count();
    let lines = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count(BlockIoError), lines("error, dev loop2, sector"));
    assert_eq!(count(BufferIoError), lines("Buffer I/O error on dev"));
    assert_eq!(
        count(Ext4DataLoss),
        lines("potential data loss") + lines("writing to inode")
    );
    // Lost writes are critical, plain buffer errors a warning.
    let obs = observe(name);
    for o in obs.iter().filter(|o| o.kind == BufferIoError) {
        let lost = o.message.contains("lost async page write");
        assert_eq!(o.severity == Severity::Critical, lost, "{}", o.message);
    }
}

#[test]
fn ext4_eio() {
    // The inner ext4 (loop4) lives in a file on an outer ext4 (loop3) that was shut down: real
    // "I/O error" from the block layer, then journal abort and read-only.
    let mut expect = set(&[
        (BlockIoError, "loop4"),
        (BufferIoError, "loop4"),
        (Ext4Error, "loop4"),
        (Ext4JournalAbort, "loop4"),
        (Ext4ReadOnly, "loop4"),
    ]);
    expect.extend(set(&[(Ext4Shutdown, "loop3"), (Ext4JournalAbort, "loop3")]));
    assert_eq!(found("ext4-eio.kmsg"), expect);
    assert_eq!(found("ext4-eio.dmesg"), expect);
    let obs = observe("ext4-eio.kmsg");
    let jbd2 = obs
        .iter()
        .find(|o| {
            o.message
                .starts_with("JBD2: I/O error when updating journal superblock")
        })
        .expect("jbd2 superblock line");
    assert_eq!(
        (jbd2.kind, jbd2.device.as_deref()),
        (Ext4Error, Some("loop4"))
    );
}

#[test]
fn xfs_full() {
    // XFS only loses file data here (writeback errors); its metadata and log fit.
    assert_eq!(
        found("xfs-full.dmesg"),
        set(&[(BlockIoError, "loop9"), (WritebackError, "loop9")])
    );
}

#[test]
fn xfs_eio() {
    let mut expect = set(&[
        (XfsShutdown, "loop6"),
        (XfsLogError, "loop6"),
        (BlockIoError, "loop6"),
        // "XFS (loop6): metadata I/O error in ..." is XFS's own failure, not a plain block error.
        (XfsMetadataError, "loop6"),
        (WritebackError, "loop6"),
    ]);
    expect.extend(set(&[(Ext4Shutdown, "loop5"), (Ext4JournalAbort, "loop5")]));
    assert_eq!(found("xfs-eio.dmesg"), expect);
    let rate = records("xfs-eio.kmsg")
        .iter()
        .filter_map(suppressed)
        .collect::<Vec<_>>();
    assert_eq!(rate.len(), 1);
    assert_eq!(rate[0].kind, Some(BlockIoError));
    assert_eq!(rate[0].count, 36);
}

#[test]
fn xfs_shutdown() {
    // XFS_IOC_GOINGDOWN
    assert_eq!(found("xfs-shutdown.kmsg"), set(&[(XfsShutdown, "loop10")]));
}

#[test]
fn btrfs_full() {
    let name = "btrfs-full.dmesg";
    assert_eq!(
        found(name),
        set(&[
            (BtrfsError, "loop11"),
            (BtrfsReadOnly, "loop11"),
            (BtrfsTransactionAbort, "loop11"),
            (BlockIoError, "loop11"),
        ])
    );
    // "forced readonly" is logged at INFO: matched on the text.
    let ro = records(name)
        .into_iter()
        .zip(records("btrfs-full.kmsg"))
        .find(|(r, _)| r.message.ends_with("forced readonly"))
        .expect("forced readonly line");
    assert_eq!(ro.1.level, Some(6));
}

#[test]
fn btrfs_eio() {
    let mut expect = set(&[
        (BtrfsError, "loop8"),
        (BtrfsReadOnly, "loop8"),
        (BtrfsTransactionAbort, "loop8"),
        (BtrfsDeviceErrors, "loop8"),
        (BlockIoError, "loop8"),
    ]);
    expect.extend(set(&[(Ext4Shutdown, "loop7"), (Ext4JournalAbort, "loop7")]));
    assert_eq!(found("btrfs-eio.kmsg"), expect);
}

#[test]
fn hung_task() {
    // A writer blocked on a frozen filesystem, hung_task_timeout_secs=2: one report, and its
    // 70 lines of registers and stack trace are not observations.
    for name in ["hung-task.kmsg", "hung-task.dmesg"] {
        let obs = observe(name);
        assert_eq!(obs.len(), 1, "{name}");
        assert_eq!(obs[0].kind, HungTask);
        assert_eq!(obs[0].device, None);
        assert_eq!(
            obs[0].message,
            "INFO: task dd:17565 blocked for more than 2 seconds."
        );
    }
}

#[test]
fn same_event_every_format() {
    // One event, nine renderings: raw kmsg, dmesg, dmesg -t, dmesg -x, and journald's JSON,
    // short, short-iso, short-precise and short-monotonic output.
    let base = essence(&observe("ext4-full-tmpfs.kmsg"));
    assert_eq!(base.len(), 39);
    for name in [
        "ext4-full-tmpfs.dmesg",
        "ext4-full-tmpfs-t.dmesg",
        "ext4-full-tmpfs-x.dmesg",
        "ext4-full-tmpfs.journal.json",
        "ext4-full-tmpfs.journal.short",
        "ext4-full-tmpfs.journal.iso",
        "ext4-full-tmpfs.journal.precise",
        "ext4-full-tmpfs.journal.mono",
    ] {
        assert_eq!(essence(&observe(name)), base, "{name}");
    }
    // Every capture kept both as kmsg and dmesg says the same in both.
    for stem in [
        "ext4-eio",
        "xfs-full",
        "xfs-eio",
        "btrfs-full",
        "btrfs-eio",
        "hung-task",
    ] {
        assert_eq!(
            essence(&observe(&format!("{stem}.kmsg"))),
            essence(&observe(&format!("{stem}.dmesg"))),
            "{stem}"
        );
    }
}

#[test]
fn times_and_levels_agree_across_formats() {
    let kmsg = records("ext4-full-tmpfs.kmsg");
    let n = kmsg.len();
    assert_eq!(n, 42);
    let mono =
        |name: &str| -> Vec<Option<u64>> { records(name).iter().map(|r| r.monotonic_us).collect() };
    let levels =
        |name: &str| -> Vec<Option<u8>> { records(name).iter().map(|r| r.level).collect() };
    let kmono: Vec<_> = kmsg.iter().map(|r| r.monotonic_us).collect();
    let klevels: Vec<_> = kmsg.iter().map(|r| r.level).collect();
    assert!(kmono.iter().all(Option::is_some));
    assert_eq!(mono("ext4-full-tmpfs.dmesg"), kmono);
    assert_eq!(mono("ext4-full-tmpfs-x.dmesg"), kmono);
    assert_eq!(mono("ext4-full-tmpfs.journal.json"), kmono);
    assert_eq!(mono("ext4-full-tmpfs.journal.mono"), kmono);
    assert_eq!(levels("ext4-full-tmpfs-x.dmesg"), klevels);
    assert_eq!(levels("ext4-full-tmpfs.journal.json"), klevels);
    // The journal adds wall-clock time, and the observations carry it.
    let json = records("ext4-full-tmpfs.journal.json");
    assert!(json
        .iter()
        .all(|r| r.realtime_us.is_some() && r.program.is_none()));
    assert!(observe("ext4-full-tmpfs.journal.json")
        .iter()
        .all(|o| o.at_us.is_some()));
    let iso = records("ext4-full-tmpfs.journal.iso");
    assert!(iso.iter().all(|r| r.realtime_us.is_some()));
    // kmsg sequence numbers are consecutive in a capture.
    let seqs: Vec<u64> = kmsg.iter().filter_map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn continuation_lines_of_real_records() {
    // The boot log has dev_printk records with SUBSYSTEM=/DEVICE= lines and one message with a
    // newline in it (\x0a in kmsg, an indented second line in dmesg and journalctl).
    let kmsg = records("clean-boot.kmsg");
    let acpi = kmsg
        .iter()
        .find(|r| r.message.starts_with("acpi PNP0A08:00: _OSC: OS supports"))
        .expect("acpi record");
    assert_eq!(acpi.subsystem.as_deref(), Some("acpi"));
    assert_eq!(acpi.device.as_deref(), Some("+acpi:PNP0A08:00"));
    let json = records("clean-boot.journal.json");
    let jacpi = json
        .iter()
        .find(|r| r.message == acpi.message)
        .expect("acpi journal record");
    assert_eq!(
        (&jacpi.subsystem, &jacpi.device),
        (&acpi.subsystem, &acpi.device)
    );
    let cppc = "amd_pstate: The CPPC feature is supported but currently disabled by the BIOS.\nPlease enable it if your BIOS has the CPPC option.";
    for name in [
        "clean-boot.kmsg",
        "clean-boot.dmesg",
        "clean-boot.journal.json",
        "clean-boot.journal.short",
        "clean-boot.journal.mono",
    ] {
        assert!(
            records(name).iter().any(|r| r.message == cppc),
            "{name}: two-line message not joined"
        );
    }
    // Escapes: the kmsg form of a tab is decoded to the tab dmesg prints.
    let tab = "rcu: \tRCU restricting CPUs from NR_CPUS=256 to nr_cpu_ids=2.";
    assert!(kmsg.iter().any(|r| r.message == tab));
    assert!(records("clean-boot.dmesg").iter().any(|r| r.message == tab));
}

#[test]
fn clean_boot_yields_nothing() {
    for name in [
        "clean-boot.dmesg",
        "clean-boot.kmsg",
        "clean-boot.journal.json",
        "clean-boot.journal.short",
        "clean-boot.journal.iso",
        "clean-boot.journal.precise",
        "clean-boot.journal.mono",
    ] {
        let recs = records(name);
        assert_eq!(recs.len(), 499, "{name}");
        let obs: Vec<_> = recs.iter().filter_map(classify).collect();
        assert!(obs.is_empty(), "{name}: {obs:?}");
        // Rate-limit lines exist in a clean boot too ("set_capacity_and_notify: 9 callbacks
        // suppressed"), none of a kind in the catalog.
        let dropped: Vec<_> = recs.iter().filter_map(suppressed).collect();
        assert_eq!(dropped.len(), 6, "{name}");
        assert!(dropped.iter().all(|d| d.kind.is_none()), "{name}");
    }
}

#[test]
fn every_capture_parses_whole() {
    let mut names: Vec<String> = std::fs::read_dir(logs())
        .expect("tests/logs")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".kmsg") || n.ends_with(".dmesg"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "{names:?}");
    for name in names {
        let text = read(&name);
        let expect = text
            .lines()
            // kmsg continuation lines start with a blank; a pasted log may be indented whole.
            .filter(|l| !l.is_empty() && (!l.starts_with(' ') || name.starts_with("public-")))
            .count();
        assert_eq!(records(&name).len(), expect, "{name}");
    }
}
