//! Bad input: each kind of invalid configuration gives its one-line error naming file, line,
//! column, key and allowed values, exits 4, and nothing is written.

use std::fs;
use std::process::Command;

use crate::common::{tunerctl, Scratch};

/// Runs `tunerctl check-config` (and `apply`) on a root holding only these files.
fn check(files: &[(&str, &str)]) -> (i32, String) {
    let scratch = Scratch::new("config");
    for (rel, text) in files {
        let path = scratch.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
    }
    let out = Command::new(tunerctl())
        .arg("--root")
        .arg(&scratch.path)
        .arg("check-config")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.lines().count(), 1, "one line, got: {err}");
    // The same configuration must stop apply before anything is written.
    let apply = Command::new(tunerctl())
        .arg("--root")
        .arg(&scratch.path)
        .arg("apply")
        .output()
        .expect("run");
    assert_eq!(apply.status.code(), Some(4));
    assert!(!scratch.join("run/tunerd/originals.json").exists());
    let prefix = format!("tunerctl: {}/", scratch.path.display());
    (
        out.status.code().unwrap_or(-1),
        err.trim_end().replacen(&prefix, "", 1),
    )
}

fn profile(text: &str) -> (i32, String) {
    check(&[("etc/tunerd/profiles.d/san.toml", text)])
}

#[test]
fn unknown_key_names_the_allowed_ones() {
    let (code, err) = profile("[[disk]]\nrule = \"a\"\nnr_request = 32\n");
    assert_eq!(code, 4);
    assert!(
        err.starts_with("etc/tunerd/profiles.d/san.toml:3:1: unknown key `nr_request` in [[disk]] rule `a`; allowed: rule, reason, match, read_ahead_kb,"),
        "{err}"
    );
    assert!(err.contains(", nr_requests,"), "{err}");
}

#[test]
fn wrong_type() {
    let (code, err) = profile("[vm]\nswappiness = \"low\"\n");
    assert_eq!(code, 4);
    assert_eq!(
        err,
        "etc/tunerd/profiles.d/san.toml:2:14: `swappiness` must be an integer from 0 to 200, not a string"
    );
}

#[test]
fn out_of_range() {
    let (code, err) = profile("[[disk]]\nmatch = { kind = \"iscsi\" }\nnr_requests = 2\n");
    assert_eq!(code, 4);
    assert_eq!(
        err,
        "etc/tunerd/profiles.d/san.toml:3:15: `nr_requests` must be at least 4 (got 2)"
    );
    let (_, err) = profile("[vm]\nswappiness = 201\n");
    assert_eq!(
        err,
        "etc/tunerd/profiles.d/san.toml:2:14: `swappiness` must be at most 200 (got 201)"
    );
}

#[test]
fn conflicting_pair() {
    let (code, err) = profile("[vm]\ndirty_ratio = 20\ndirty_bytes = 1073741824\n");
    assert_eq!(code, 4);
    assert_eq!(
        err,
        "etc/tunerd/profiles.d/san.toml:3:1: `dirty_bytes` conflicts with `dirty_ratio` (line 2): the kernel keeps only one of the pair; set one"
    );
}

#[test]
fn background_not_below_limit_after_inheritance() {
    // default sets dirty_ratio 30; 40 for the background is above it.
    let (code, err) = profile("inherits = \"default\"\n[vm]\ndirty_background_ratio = 40\n");
    assert_eq!(code, 4);
    assert!(
        err.starts_with("etc/tunerd/profiles.d/san.toml:3:1: `dirty_background_ratio` (40) must be below `dirty_ratio` (30, <built-in>/default.toml:"),
        "{err}"
    );
}

#[test]
fn unknown_choice_values() {
    let (_, err) = profile("[[disk]]\nscheduler = [\"none\", \"cfq\"]\n");
    assert!(
        err.starts_with("etc/tunerd/profiles.d/san.toml:2:22: unknown scheduler `cfq`; allowed: none, mq-deadline, kyber, bfq, noop, deadline"),
        "{err}"
    );
    let (_, err) = profile("[[disk]]\nscsi_cache_type = \"on\"\n");
    assert!(
        err.contains("`scsi_cache_type` must be one of \"write through\", \"none\", \"write back\", \"write back, no read (daft)\""),
        "{err}"
    );
    let (_, err) = profile("[[disk]]\nmatch = { knd = \"nvme\" }\n");
    assert!(
        err.starts_with("etc/tunerd/profiles.d/san.toml:2:11: unknown key `knd` in `match` of [[disk]] rule `disk#1`; allowed: name, kind,"),
        "{err}"
    );
}

#[test]
fn inheritance_errors() {
    let (code, err) = profile("inherits = \"vmwar\"\n");
    assert_eq!(code, 4);
    assert!(
        err.starts_with("etc/tunerd/profiles.d/san.toml:1:12: unknown profile `vmwar` in `inherits`; available: aws, azure,"),
        "{err}"
    );
    let (_, err) = check(&[
        ("etc/tunerd/profiles.d/a.toml", "inherits = \"b\"\n"),
        ("etc/tunerd/profiles.d/b.toml", "inherits = \"a\"\n"),
    ]);
    assert!(
        err.contains("profiles inherit in a loop: a -> b -> a"),
        "{err}"
    );
}

#[test]
fn syntax_error() {
    let (code, err) = profile("[vm\nswappiness = 1\n");
    assert_eq!(code, 4);
    assert!(
        err.starts_with("etc/tunerd/profiles.d/san.toml:1:4: invalid TOML:"),
        "{err}"
    );
}

#[test]
fn config_file_errors() {
    let (code, err) = check(&[("etc/tunerd/tunerd.toml", "profile = \"fast\"\n")]);
    assert_eq!(code, 4);
    assert!(
        err.starts_with(
            "etc/tunerd/tunerd.toml:1:11: unknown profile `fast`; allowed: auto, aws, azure,"
        ),
        "{err}"
    );
    let (_, err) = check(&[("etc/tunerd/tunerd.toml", "profil = \"auto\"\n")]);
    assert_eq!(
        err,
        "etc/tunerd/tunerd.toml:1:1: unknown key `profil` in tunerd.toml; allowed: profile, daemon, watch, alert"
    );
    let (_, err) = check(&[("etc/tunerd/profiles.d/Fast SAN.toml", "")]);
    assert!(err.contains("may hold only a-z, 0-9, - and _"), "{err}");
}

#[test]
fn a_valid_configuration_passes() {
    let scratch = Scratch::new("config-ok");
    fs::create_dir_all(scratch.join("etc/tunerd/profiles.d")).expect("mkdir");
    fs::write(
        scratch.join("etc/tunerd/tunerd.toml"),
        "profile = \"san\"\n",
    )
    .expect("w");
    fs::write(
        scratch.join("etc/tunerd/profiles.d/san.toml"),
        "inherits = \"iscsi-san\"\n[[disk]]\nrule = \"iscsi-paths\"\nmatch = { kind = \"iscsi\" }\nscsi_timeout = { value = 240, reason = \"our array fails over in 200 s\" }\n",
    )
    .expect("w");
    let out = Command::new(tunerctl())
        .arg("--root")
        .arg(&scratch.path)
        .args(["check-config", "--json"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["profile"], "san");
    let show = Command::new(tunerctl())
        .arg("--root")
        .arg(&scratch.path)
        .args(["profile", "show", "san"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("inherits: san < iscsi-san < default"),
        "{text}"
    );
    assert!(
        text.contains("scsi_timeout  240  our array fails over in 200 s"),
        "{text}"
    );
}
