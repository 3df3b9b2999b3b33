//! `tunerctl scan` over kernel logs captured from real failures on this machine's kernel
//! (tests/logs, see its README): each failure is found, in every format it was saved in, and a
//! clean boot log shows nothing.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

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
        ("hung-task.dmesg", &[("hung_task", "")]),
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
