//! `tunerctl scan` over kernel logs captured from real failures on this machine's kernel
//! (tests/logs, see its README): each failure is found, in every format it was saved in, and a
//! clean boot log shows nothing.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

/// The human report of `tunerctl scan` on a capture under tests/logs.
fn scan_text(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/logs")
        .join(file);
    let out = Command::new(common::tunerctl())
        .arg("scan")
        .arg(&path)
        .output()
        .expect("tunerctl scan");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scan(file: &str) -> (i32, serde_json::Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/logs")
        .join(file);
    let out = Command::new(common::tunerctl())
        .arg("scan")
        .arg(&path)
        .arg("--json")
        .output()
        .expect("tunerctl scan");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{file}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn found(v: &serde_json::Value) -> Vec<(String, String)> {
    crate::common::incident_kinds(v)
}

#[test]
fn each_real_failure_is_found_as_one_incident_per_failing_device() {
    let cases: [(&str, &[(&str, &str)]); 9] = [
        ("ext4-full-tmpfs.dmesg", &[("ext4_journal_abort", "loop2")]),
        ("ext4-trigger-error.kmsg", &[("ext4_read_only", "loop0")]),
        ("btrfs-full.dmesg", &[("btrfs_read_only", "loop11")]),
        ("hung-task.dmesg", &[("fs_frozen", ""), ("hung_task", "")]),
        ("xfs-shutdown.kmsg", &[("xfs_shutdown", "loop10")]),
        ("xfs-full.dmesg", &[("writeback_error", "loop9")]),
        (
            "btrfs-eio.dmesg",
            &[("btrfs_read_only", "loop8"), ("ext4_shutdown", "loop7")],
        ),
        (
            "ext4-eio.kmsg",
            &[("ext4_read_only", "loop4"), ("ext4_shutdown", "loop3")],
        ),
        (
            "xfs-eio.dmesg",
            &[("ext4_shutdown", "loop5"), ("xfs_shutdown", "loop6")],
        ),
    ];
    for (file, want) in cases {
        let (code, v) = scan(file);
        assert_eq!(code, 5, "{file}: exit 5 when trouble is found");
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, d)| (k.to_string(), d.to_string()))
            .collect();
        let got = found(&v);
        // The devices are those the capture put its filesystems on (tests/logs/README.md: the
        // *-eio captures stack the failing loop device on a second, shut-down filesystem);
        // the kind is the furthest stage of the failure the log shows.
        let mut want = want;
        want.sort();
        assert_eq!(got, want, "{file}: one incident per failing device");
    }
}

#[test]
fn every_format_of_one_failure_gives_the_same_incidents() {
    let formats = [
        "ext4-full-tmpfs.kmsg",
        "ext4-full-tmpfs.dmesg",
        "ext4-full-tmpfs-t.dmesg",
        "ext4-full-tmpfs-x.dmesg",
        "ext4-full-tmpfs.journal.json",
        "ext4-full-tmpfs.journal.short",
        "ext4-full-tmpfs.journal.iso",
        "ext4-full-tmpfs.journal.precise",
        "ext4-full-tmpfs.journal.mono",
    ];
    let (_, first) = scan(formats[0]);
    let base = found(&first);
    assert!(!base.is_empty());
    for f in &formats[1..] {
        let (code, v) = scan(f);
        assert_eq!(code, 5, "{f}");
        assert_eq!(found(&v), base, "{f} differs from {}", formats[0]);
        assert_eq!(
            v["observations"], first["observations"],
            "{f}: same number of lines"
        );
    }
}

#[test]
fn a_clean_boot_shows_nothing_in_any_format() {
    for f in [
        "clean-boot.dmesg",
        "clean-boot.kmsg",
        "clean-boot.journal.json",
        "clean-boot.journal.short",
        "clean-boot.journal.iso",
        "clean-boot.journal.precise",
        "clean-boot.journal.mono",
    ] {
        let (code, v) = scan(f);
        assert_eq!(code, 0, "{f}: {v}");
        assert_eq!(v["observations"], 0, "{f}");
        assert!(
            v["records"].as_u64().unwrap_or(0) > 100,
            "{f}: the log was read"
        );
    }
}

#[test]
fn scan_reads_standard_input_and_names_a_missing_file() {
    let log =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/logs/hung-task.dmesg"))
            .expect("log");
    let mut child = Command::new(common::tunerctl())
        .args(["scan", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&log)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("hung_task"));
    let out = Command::new(common::tunerctl())
        .args(["scan", "/nonexistent/kern.log"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/kern.log"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

/// tests/logs/README.md's "What each capture shows": file -> the (kind, device) of each failure
/// a person reading the capture finds (device "" for none).
fn what_captures_show() -> std::collections::BTreeMap<String, Vec<(String, String)>> {
    let readme = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/logs/README.md"),
    )
    .expect("README");
    let table = readme
        .split("## What each capture shows")
        .nth(1)
        .expect("the table");
    let mut out = std::collections::BTreeMap::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<String> = row
            .split('|')
            .map(|c| c.trim().trim_matches('`').to_string())
            .collect();
        let [_, file, kind, device, ..] = cells.as_slice() else {
            panic!("bad row {row}");
        };
        let list: &mut Vec<(String, String)> = out.entry(file.clone()).or_default();
        if kind != "-" {
            let device = if device == "-" { "" } else { device };
            list.push((kind.clone(), device.to_string()));
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

fn incident<'a>(v: &'a serde_json::Value, kind: &str, device: &str) -> &'a serde_json::Value {
    v["incidents"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|i| i["kind"] == kind && i["device"].as_str().unwrap_or("") == device)
        })
        .unwrap_or_else(|| panic!("no {kind} on {device:?} in {v}"))
}

#[test]
fn every_capture_gives_what_it_shows() {
    // The real captures from this machine's kernel and from public bug reports (VMware,
    // KVM, Hyper-V/Azure guests, iSCSI; 2.6.32 to 6.18): no miss, no mislabel, no false alarm.
    let shown = what_captures_show();
    assert!(shown.len() >= 45, "{} captures in the table", shown.len());
    for (file, want) in &shown {
        let (code, v) = scan(file);
        assert_eq!(found(&v), *want, "{file}");
        assert_eq!(
            code,
            if want.is_empty() { 0 } else { 5 },
            "{file}: exit code"
        );
    }
    // Every capture is in the table.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/logs");
    for e in std::fs::read_dir(&dir).expect("tests/logs") {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".md") || name.ends_with(".sh")) {
            assert!(
                shown.contains_key(&name),
                "{name} is not in README.md's table"
            );
        }
    }
}

#[test]
fn times_are_the_logs_own_clock() {
    // dmesg -T: the wall clock as printed.
    let (_, v) = scan("public-alba-xfs-log-force.dmesg-T");
    let i = incident(&v, "xfs_log_error", "sdd1");
    assert_eq!(i["started"], 1_480_201_561, "2016-11-26T23:06:01");
    assert_eq!(i["first_seen_as"], "[Sat Nov 26 23:06:01 2016]");
    // Syslog: no year in the stamp, the time of day is the log's.
    let (_, v) = scan("public-alba-xfs-log-force.syslog");
    let i = incident(&v, "xfs_log_error", "sdd1");
    let started = i["started"].as_u64().expect("started");
    assert!(started > 1_000_000_000, "{i}");
    assert_eq!(started % 86_400, 12 * 3600 + 3 * 60 + 54, "12:03:54");
    assert_eq!(i["first_seen_as"], "Nov 29 12:03:54");
    // A syslog whose kernel lines also carry the monotonic stamp: both ends from the wall clock.
    let (_, v) = scan("public-zfs-virtio-scsi-abort.syslog");
    let i = incident(&v, "scsi_task_abort", "sda");
    let (a, b) = (i["started"].as_u64(), i["last_seen"].as_u64());
    assert_eq!(a.map(|a| a % 86_400), Some(5 * 3600 + 12 * 60 + 28), "{i}");
    assert_eq!(
        b.zip(a).map(|(b, a)| b - a),
        Some(60),
        "05:12:28 .. 05:13:28"
    );
    // journalctl -o short-precise and short: the journal's wall clock.
    for f in [
        "ext4-full-tmpfs.journal.precise",
        "ext4-full-tmpfs.journal.short",
    ] {
        let (_, v) = scan(f);
        let i = incident(&v, "ext4_journal_abort", "loop2");
        let started = i["started"].as_u64().unwrap_or(0);
        assert!(started > 1_700_000_000, "{f}: {i}");
        assert!(i["last_seen"].as_u64().unwrap_or(0) >= started, "{f}");
        assert!(
            i["first_seen_as"]
                .as_str()
                .unwrap_or("")
                .starts_with("Nov 22 "),
            "{f}"
        );
    }
    // dmesg -x -e -T with caller ids: the wall clock, not the deltas.
    let (_, v) = scan("public-longhorn-iscsi-offline.dmesg");
    let i = incident(&v, "scsi_offline", "2:0:0:1");
    assert_eq!(i["started"], 1_768_278_790, "2026-01-13T04:33:10");
    assert_eq!(i["first_seen_as"], "[Tue Jan 13 04:33:10 2026]");
    // kmsg: seconds since that boot.
    let (_, v) = scan("ext4-then-xfs.kmsg");
    assert_eq!(incident(&v, "ext4_read_only", "loop0")["started"], 12_862);
}

#[test]
fn places_are_disks_and_their_devices() {
    // A partition is tied to its disk; a hung task names the device its thread is for, and
    // hung tasks of different devices are different incidents.
    let (_, v) = scan("public-gardenlinux-vmware-task-abort.dmesg");
    assert_eq!(incident(&v, "hung_task", "sda3")["disk"], "sda");
    assert_eq!(incident(&v, "scsi_task_abort", "sda")["disk"], "sda");
    assert_eq!(
        incident(&v, "hung_task", "")["disk"],
        serde_json::Value::Null
    );
    let (_, v) = scan("public-zfs-virtio-scsi-abort.syslog");
    assert_eq!(incident(&v, "hung_task", "sda1")["disk"], "sda");
    let (_, v) = scan("public-raid1-disk-failure.dmesg");
    assert_eq!(incident(&v, "md_disk_failure", "sdb1")["disk"], "sdb");
    let (_, v) = scan("public-alba-xfs-log-force.syslog");
    let i = incident(&v, "xfs_log_error", "sdd1");
    assert_eq!(
        (i["disk"].as_str(), i["fstype"].as_str()),
        (Some("sdd"), Some("xfs"))
    );
    // sd's own name for the disk, not its SCSI address.
    let (_, v) = scan("public-dcache-medium-timeout.syslog");
    assert_eq!(incident(&v, "scsi_offline", "sdb")["disk"], "sdb");
    // Also when the address-only line came first: `sd 0:0:0:0: Device offlined`, then
    // `sd 0:0:0:0: [sdd] ...`: one incident of sdd, with the lines of both names.
    let (_, v) = scan("public-asuswrt-usb-offline.syslog");
    assert_eq!(v["incidents"].as_array().map(Vec::len), Some(1), "{v}");
    let i = incident(&v, "scsi_offline", "sdd");
    assert_eq!(i["disk"], "sdd");
    assert_eq!(i["count"], 5, "offlined, I/O error, lost write, 2 rejected");
}

#[test]
fn a_device_that_failed_then_got_a_new_filesystem_has_two_incidents() {
    // ext4 failed on loop0 and was unmounted; loop0 got XFS, which shut down.
    let (_, v) = scan("ext4-then-xfs.kmsg");
    let ext4 = incident(&v, "ext4_read_only", "loop0");
    let xfs = incident(&v, "xfs_shutdown", "loop0");
    assert_eq!(ext4["state"], "resolved", "the new mount ended it");
    assert!(ext4["ended"].as_u64() <= xfs["started"].as_u64());
    assert_eq!(ext4["count"], 3);
    assert_eq!(xfs["count"], 2);
    assert_eq!(
        (ext4["fstype"].as_str(), xfs["fstype"].as_str()),
        (Some("ext4"), Some("xfs"))
    );
    // What ended each, as the log printed it: the new mount's line and its time; nothing.
    assert_eq!(
        (ext4["ended_as"].as_str(), ext4["ended_by"].as_str()),
        (
            Some("[12863.709551]"),
            Some("XFS (loop0): Mounting V5 Filesystem d70ded8d-0d20-46bf-a60e-0e4a17a7530b")
        ),
        "{ext4}"
    );
    assert!(
        xfs["ended_by"].is_null() && xfs["state"] == "firing",
        "{xfs}"
    );
    // The human form says the same, and that the XFS failure is open at the log's end.
    let text = scan_text("ext4-then-xfs.kmsg");
    assert!(
        text.contains("   ended: [12863.709551]: XFS (loop0): Mounting V5 Filesystem"),
        "{text}"
    );
    assert!(
        text.contains("   open:  still open where the log ends"),
        "{text}"
    );
    assert!(text.ends_with(" 2 incidents\n"), "{text}");
}

#[test]
fn a_bad_byte_costs_only_its_own_bytes() {
    // A real capture with one byte that is no UTF-8 put at the end of its first line.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/logs");
    let mut log = std::fs::read(dir.join("public-iscsi-nop-timeout.syslog")).expect("log");
    log.insert(log.iter().position(|&b| b == b'\n').unwrap_or(0), 0xff);
    let tmp = std::env::temp_dir().join(format!("tunerd-scan-bad-byte-{}", std::process::id()));
    std::fs::write(&tmp, &log).expect("write");
    let out = Command::new(common::tunerctl())
        .arg("scan")
        .arg(&tmp)
        .arg("--json")
        .output()
        .expect("tunerctl scan");
    let _ = std::fs::remove_file(&tmp);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["records"], 3);
    assert_eq!(
        v["observations"], 3,
        "the iscsid line, kernel: kernel: ..., [mono] ..."
    );
    assert_eq!(
        incident(&v, "iscsi_connection_error", "connection3:0")["count"],
        3
    );
}

#[test]
fn the_report_names_the_deciding_line_when_and_where() {
    // The first line of ext4-full-tmpfs is a block error; the journal abort decided the kind.
    let (_, v) = scan("ext4-full-tmpfs.dmesg");
    let i = incident(&v, "ext4_journal_abort", "loop2");
    let first = i["evidence"][0].as_str().unwrap_or("");
    let decided = i["decided_by"].as_str().unwrap_or("");
    assert!(first.contains("error, dev loop2"), "{first}");
    assert!(
        decided.contains("journal") || decided.contains("Journal"),
        "{decided}"
    );
    let (_, v) = scan("public-kvdo-xfs-log-mount.syslog");
    assert_eq!(
        incident(&v, "xfs_metadata_error", "dm-7")["decided_by"],
        "XFS (dm-7): log mount/recovery failed: error -5"
    );
    // The human form: kind, severity, device and disk, when, the deciding line.
    let text = scan_text("public-gardenlinux-vmware-task-abort.dmesg");
    assert!(
        text.contains("hung_task (warning) device sda3, disk sda"),
        "{text}"
    );
    assert!(text.contains("when:  [1984687.769162]"), "{text}");
    assert!(
        text.contains("line:  INFO: task jbd2/sda3-8:373 blocked for more than 120 seconds."),
        "{text}"
    );
}

/// A `[[watch.rule]]` tried on a saved log before it is deployed: the hpsa driver's failed
/// aborts in a real capture (public-dcache-medium-timeout.syslog), which the catalog does not
/// know, become incidents of the rule's kind on the device it captures; the built-in
/// incidents of the log stay as they were.
#[test]
fn a_user_rule_finds_its_lines_in_a_saved_log_and_a_bad_one_is_refused_with_its_place() {
    let dir = std::env::temp_dir().join(format!("tunerd-rule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("tunerd.toml");
    std::fs::write(
        &config,
        "[watch]\n\
         [[watch.rule]]\n\
         kind = \"hpsa_abort_failed\"\n\
         pattern = \"hpsa {device} ABORT REQUEST on * FAILED. Aborted command has not completed after * seconds.\"\n\
         severity = \"critical\"\n",
    )
    .expect("config");
    let log = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/logs/public-dcache-medium-timeout.syslog");
    let run = |config: &std::path::Path| {
        Command::new(common::tunerctl())
            .args(["scan", "--json", "--config"])
            .arg(config)
            .arg(&log)
            .output()
            .expect("tunerctl scan")
    };
    let out = run(&config);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let kinds = found(&v);
    assert!(
        kinds.contains(&("hpsa_abort_failed".to_string(), "0000:06:00.0".to_string())),
        "{kinds:?}"
    );
    let (_, without) = scan("public-dcache-medium-timeout.syslog");
    let mut builtin = found(&without);
    builtin.push(("hpsa_abort_failed".into(), "0000:06:00.0".into()));
    builtin.sort();
    assert_eq!(
        kinds, builtin,
        "the rule adds its incident and changes nothing else"
    );
    let inc = v["incidents"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["kind"] == "hpsa_abort_failed"))
        .expect("the rule's incident");
    assert_eq!(inc["severity"], "critical");

    // A pattern with an unclosed capture: exit 4, one line naming file:line:column.
    std::fs::write(
        &config,
        "[watch]\n[[watch.rule]]\nkind = \"x_reset\"\npattern = \"hpsa {device ABORT\"\n",
    )
    .expect("config");
    let out = run(&config);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4:17:", config.display())) && err.contains("`{` without its `}`"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // A kind named like a built-in one.
    std::fs::write(
        &config,
        "[watch]\n[[watch.rule]]\nkind = \"scsi_offline\"\npattern = \"hpsa gone\"\n",
    )
    .expect("config");
    let err = String::from_utf8_lossy(&run(&config).stderr).to_string();
    assert!(
        err.contains(":3:8:") && err.contains("built-in kind"),
        "{err}"
    );
    // A device capture the pattern does not have.
    std::fs::write(
        &config,
        "[watch]\n[[watch.rule]]\nkind = \"hpsa_x\"\npattern = \"hpsa {dev} gone\"\ndevice = \"device\"\n",
    )
    .expect("config");
    let err = String::from_utf8_lossy(&run(&config).stderr).to_string();
    assert!(
        err.contains(":5:10:") && err.contains("it has: {dev}"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn raid_and_replication_layers_in_public_captures() {
    // A lost DRBD link lasts (no reconnect in the capture): open, a warning, both its lines.
    let (_, v) = scan("public-drbd9-pingack.syslog");
    let a = incident(&v, "drbd_connection_lost", "u12215:nodeA");
    assert_eq!(a["state"], "firing");
    assert_eq!(a["severity"], "warning");
    assert_eq!(
        a["count"], 2,
        "PingAck and conn( Connected -> NetworkFailure ): {a}"
    );
    assert_eq!(
        a["decided_by"],
        "drbd u12215 nodeA: PingAck did not arrive in time."
    );
    // The link came up, then was lost: only the loss is an incident.
    let (_, v) = scan("public-windrbd-pingack.syslog");
    let w = incident(&v, "drbd_connection_lost", "windows10-boot:windows10");
    assert_eq!(w["first_seen_as"], "Jan 28 14:47:16");
    // A split brain needs a person: critical, and open.
    for (file, device) in [
        ("public-ganeti-drbd84-split-brain.syslog", "drbd6"),
        (
            "public-drbd9-split-brain.syslog",
            "vm-57da08a3-2938-4769-8959-3a11616d6ef9:os-hv-am-3",
        ),
    ] {
        let (_, v) = scan(file);
        let s = incident(&v, "drbd_split_brain", device);
        assert_eq!(
            (&s["severity"], &s["state"]),
            (&"critical".into(), &"firing".into()),
            "{file}"
        );
    }
    // A suspended pool is one incident however often ZFS repeats it (15 minutes here): it
    // lasts until `zpool clear`.
    let (_, v) = scan("public-spl-zfs-suspended.dmesg");
    let p = incident(&v, "zfs_pool_suspended", "tank");
    assert_eq!(p["count"], 3);
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["fstype"], "zfs");
    // MMP's line and the suspension warning are one incident of the pool.
    let (_, v) = scan("public-zfs-mmp-suspended.syslog");
    assert_eq!(incident(&v, "zfs_pool_suspended", "Pool-0")["count"], 2);
    // The thin pool erroring writes, and the filesystem on a thin volume losing them: two
    // incidents, the pool's critical.
    let (_, v) = scan("public-docker-thin-error-io.syslog");
    let t = incident(&v, "dm_thin_out_of_space", "253:2");
    assert_eq!(t["severity"], "critical");
    assert_eq!(incident(&v, "ext4_data_loss", "dm-4")["count"], 8);
}
