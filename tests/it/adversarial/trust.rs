//! Adversarial tests: trust (see mod.rs). What tunerd believes and shows: log records only
//! from the senders their source vouches for (review findings 2 and 19), text output that no
//! value can turn into terminal controls (finding 9), and `tunerctl scan` over any bytes and
//! any size (finding 16). Finding 17 (ids in HTTP headers) is `an_id_with_control_characters_
//! is_delivered` in src/alert/http.rs; journalctl's restart (finding 19) is
//! `a_killed_journalctl_is_restarted` in src/detect/sources/journal.rs.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{self, Scratch};

fn scan(file: &Path, json: bool) -> Output {
    let mut cmd = Command::new(common::tunerctl());
    cmd.arg("scan").arg(file);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("tunerctl scan")
}

fn scan_json(file: &Path) -> (i32, serde_json::Value) {
    let out = scan(file, true);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn kinds(v: &serde_json::Value) -> Vec<(String, String)> {
    crate::common::incident_kinds(v)
}

/// The review's forged.json: what `journalctl -o json` prints for
/// `setpriv --reuid=65534 logger -t multipathd ...` (and `-t iscsid`), with `_UID` as given.
fn forged_journal(uid: &str) -> String {
    let base = |ident: &str, message: serde_json::Value| {
        serde_json::json!({
            "__CURSOR": "s=1", "__REALTIME_TIMESTAMP": "1796151000000000", "_TRANSPORT": "syslog",
            "PRIORITY": "5", "SYSLOG_IDENTIFIER": ident, "_UID": uid, "_COMM": "logger",
            "MESSAGE": message,
        })
        .to_string()
    };
    // journalctl prints messages with control characters as byte arrays.
    let bytes: Vec<u8> = b"\x1b]52;c;cm0gLXJmIC8K\x07\x1b[2J: remaining active paths: 0".to_vec();
    [
        base("multipathd", "mpatha: remaining active paths: 0".into()),
        base("multipathd", serde_json::json!(bytes)),
        base(
            "iscsid",
            "Kernel reported iSCSI connection 7:0 error (1020 - x) state (3)".into(),
        ),
    ]
    .join("\n")
        + "\n"
}

/// No byte or character in `out` that a terminal would act on.
fn assert_no_controls(out: &[u8], what: &str) {
    let text = String::from_utf8_lossy(out);
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c)
        })
        .collect();
    assert!(bad.is_empty(), "{what}: raw controls {bad:?} in\n{text}");
}

#[test]
fn a_journal_entry_forged_by_a_user_is_no_incident() {
    let dir = Scratch::new("trust-forged");
    let forged = dir.join("forged.json");
    std::fs::write(&forged, forged_journal("65534")).expect("write");
    let (code, v) = scan_json(&forged);
    assert_eq!(
        code, 0,
        "uid 65534's `logger -t multipathd` is no incident: {v}"
    );
    assert_eq!(v["records"], 3, "{v}");
    assert_eq!(v["observations"], 0, "{v}");
    let out = scan(&forged, false);
    assert_eq!(out.status.code(), Some(0));

    // The same lines from root (multipathd and iscsid run as root) are what they say.
    let real = dir.join("root.json");
    std::fs::write(&real, forged_journal("0")).expect("write");
    let (code, v) = scan_json(&real);
    assert_eq!(code, 5, "{v}");
    let got = kinds(&v);
    assert!(
        got.contains(&("multipath_no_paths".into(), "mpatha".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("iscsi_connection_error".into(), "connection7:0".into())),
        "{got:?}"
    );
    // The JSON keeps the device name exact (JSON escapes it); the table escapes it.
    assert!(
        got.iter().any(|(_, d)| d.starts_with("\u{1b}]52;c;")),
        "{got:?}"
    );
    let out = scan(&real, false);
    assert_eq!(out.status.code(), Some(5));
    assert_no_controls(&out.stdout, "scan of root.json");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\\e]52;c;cm0gLXJmIC8K\\x07\\e[2J"), "{text}");
}

#[test]
fn a_userspace_write_to_kmsg_is_not_a_kernel_error() {
    let dir = Scratch::new("trust-kmsg");
    let line = "Buffer I/O error on dev sda1, logical block 1, lost async page write";
    // Facility 1 (user): what `echo ... > /dev/kmsg` makes, as `cat /dev/kmsg` saves it.
    let user = dir.join("user.kmsg");
    std::fs::write(&user, format!("14,5,6,-;{line}\n")).expect("write");
    let (code, v) = scan_json(&user);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["observations"], 0, "{v}");
    // The same journalled by journald: _TRANSPORT=kernel, SYSLOG_FACILITY=1.
    let journal = dir.join("user.json");
    std::fs::write(
        &journal,
        serde_json::json!({"_TRANSPORT": "kernel", "SYSLOG_FACILITY": "1", "PRIORITY": "6",
                           "SYSLOG_IDENTIFIER": "x", "MESSAGE": line})
        .to_string(),
    )
    .expect("write");
    assert_eq!(scan_json(&journal).0, 0);
    // Facility 0: the kernel.
    let kernel = dir.join("kernel.kmsg");
    std::fs::write(&kernel, format!("3,5,6,-;{line}\n")).expect("write");
    let (code, v) = scan_json(&kernel);
    assert_eq!(code, 5, "{v}");
    assert_eq!(kinds(&v), [("buffer_io_error".into(), "sda1".into())]);
}

#[test]
fn terminal_controls_in_log_records_never_reach_the_terminal() {
    let dir = Scratch::new("trust-escape");
    let log = dir.join("evil.kmsg");
    // kmsg's own `\x1b` text, which the parser decodes (the review's record); a dmesg line with
    // raw ESC; C1 CSI and a bidi override; a tab and DEL.
    std::fs::write(
        &log,
        "3,1003,100,-;Buffer I/O error on dev \\x1b]0;OWNED\\x07\\x1b[2K\\x1b[1Asdq1, logical block 9, lost async page write\n\
         3,1004,200,-;EXT4-fs error (device sda1\x1b]0;PWNED\x07\x1b[2J): x\n\
         3,1005,300,-;EXT4-fs error (device sdb\u{9b}2J\u{202e}1): \tx\x7f\n",
    )
    .expect("write");
    let out = scan(&log, false);
    assert_eq!(out.status.code(), Some(5));
    assert_no_controls(&out.stdout, "scan");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\\e]0;OWNED\\x07\\e[2K\\e[1Asdq1"), "{text}");
    assert!(text.contains("\\u{9b}2J\\u{202e}1"), "{text}");
    assert!(text.contains("\\x09x\\x7f"), "{text}");
    // JSON carries the characters (JSON-escaped).
    let (code, v) = scan_json(&log);
    assert_eq!(code, 5);
    let devices: Vec<String> = kinds(&v).into_iter().map(|(_, d)| d).collect();
    assert!(
        devices.contains(&"\u{1b}]0;OWNED\u{7}\u{1b}[2K\u{1b}[1Asdq1".to_string()),
        "{devices:?}"
    );
    assert!(
        devices.contains(&"sdb\u{9b}2J\u{202e}1".to_string()),
        "{devices:?}"
    );
}

#[test]
fn one_invalid_utf8_byte_costs_only_its_line() {
    let dir = Scratch::new("trust-utf8");
    let log = dir.join("usb.dmesg");
    std::fs::write(
        &log,
        b"[    1.000000] usb 1-1: Product: \xff\xfe\xc3\n\
          [    2.000000] EXT4-fs error (device sda1): ext4_lookup:1855: inode #2: comm ls: x\n",
    )
    .expect("write");
    let (code, v) = scan_json(&log);
    assert_eq!(code, 5, "exit 5 (trouble found), not 1: {v}");
    assert_eq!(v["records"], 2);
    assert_eq!(kinds(&v), [("ext4_error".into(), "sda1".into())]);
}

/// RAII: the generated log on /dev/shm goes when the test ends, however it ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_200_mb_log_is_scanned_line_by_line() {
    use std::io::Write;
    let path = std::path::PathBuf::from(format!(
        "/dev/shm/tunerd-test-scan-200mb-{}.dmesg",
        std::process::id()
    ));
    let _cleanup = RemoveOnDrop(path.clone());
    {
        let file = std::fs::File::create(&path).expect("create on /dev/shm");
        let mut w = std::io::BufWriter::new(file);
        // One 10 MB line first (cut at 64 KiB when read, and at 200 characters when shown).
        let mut huge = String::from(
            "[    0.500000] Buffer I/O error on dev sdz, logical block 1, lost async page write ",
        );
        huge.push_str(&"x".repeat(10 << 20));
        writeln!(w, "{huge}").expect("write");
        let mut chunk = String::new();
        for i in 0..1000 {
            chunk.push_str(&format!(
                "[{:5}.{:06}] loop{}: detected capacity change from 0 to 32768\n",
                i,
                i,
                i % 13
            ));
        }
        chunk.push_str(
            "[ 9999.000000] I/O error, dev sda, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2\n",
        );
        let mut written = huge.len();
        while written < 200 << 20 {
            w.write_all(chunk.as_bytes()).expect("write");
            written += chunk.len();
        }
        w.flush().expect("flush");
    }
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(common::tunerctl())
        .arg("scan")
        .arg(&path)
        .output()
        .expect("/usr/bin/time -v tunerctl scan");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .unwrap_or("?");
    let wall = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Elapsed (wall clock) time (h:mm:ss or m:ss): ")
        })
        .unwrap_or("?");
    println!(
        "scan of a {} MB log: max RSS {rss} KiB, {wall} wall",
        size >> 20
    );
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("buffer_io_error"), "{text}");
    assert!(text.contains("block_io_error"), "{text}");
    assert!(
        text.lines().all(|l| l.chars().count() < 400),
        "evidence is cut when shown: {} bytes of output",
        text.len()
    );
}
