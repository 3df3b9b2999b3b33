//! The engine on the real kernel: loop devices this test creates, the kernel's own sysfs and
//! procfs, tunerctl as a user runs it. Select with `cargo test --test it kernel::real_kernel`.
//! Every global value changed is restored by a guard, every loop device detached.

use crate::common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::tier::{self, Tier};
use crate::common::*;

fn loop_profile(names: &[&str], extra: &str) -> String {
    let list = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"description = "loop devices of one test"
[vm]
swappiness = {{ value = 17, reason = "test" }}
dirty_bytes = {{ value = 123456789, reason = "test: the bytes form of the pair" }}
dirty_background_ratio = {{ value = 3, reason = "test" }}

[kernel]
hung_task_warnings = {{ value = -1, reason = "test: never run out of reports" }}
hung_task_timeout_secs = {{ value = 240, reason = "test" }}

[[disk]]
rule = "test-loops"
match = {{ name = [{list}] }}
scheduler = {{ value = ["mq-deadline"], reason = "test" }}
nr_requests = {{ value = 64, reason = "test: written after the scheduler switch" }}
read_ahead_kb = {{ value = 4096, reason = "test" }}
max_sectors_kb = {{ value = 512, reason = "test" }}
rq_affinity = {{ value = 2, reason = "test" }}
nomerges = {{ value = 1, reason = "test" }}
bdi_max_ratio = {{ value = 37, reason = "test" }}
bdi_strict_limit = {{ value = 1, reason = "test" }}
{extra}"#
    )
}

#[test]
fn real_kernel_apply_verify_revert_round_trip_is_exact() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let _vm = VmGuard::new();
    let root = KernelRoot::new("roundtrip");
    let disks: Vec<LoopDev> = (0..2).map(|_| LoopDev::new(&root.loop_dir(), 64)).collect();
    let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
    root.add_profile("t", &loop_profile(&names, ""));
    let before: Vec<_> = disks.iter().map(LoopDev::snapshot).collect();
    let vm_before = vm_snapshot();

    // verify before apply: drift, exit 3.
    let (code, report) = root.tunerctl_json(&["--profile", "t", "verify"]);
    assert_eq!(code, 3, "{report}");
    assert!(!report["drift"].as_array().expect("drift list").is_empty());

    let (code, report) = root.tunerctl_json(&["--profile", "t", "apply"]);
    assert_eq!(code, 0, "{report}");
    for d in &disks {
        assert!(d.read("queue/scheduler").contains("[mq-deadline]"));
        assert_eq!(
            d.read("queue/nr_requests"),
            "64",
            "nr_requests survives the switch"
        );
        assert_eq!(d.read("queue/read_ahead_kb"), "4096");
        assert_eq!(d.read("queue/max_sectors_kb"), "512");
        assert_eq!(d.read("queue/rq_affinity"), "2");
        assert_eq!(d.read("queue/nomerges"), "1");
        assert_eq!(d.read("bdi/max_ratio"), "37");
        assert_eq!(d.read("bdi/strict_limit"), "1");
    }
    let vm = vm_snapshot();
    assert_eq!(vm["swappiness"], "17");
    assert_eq!(vm["kernel/hung_task_warnings"], "-1");
    assert_eq!(vm["kernel/hung_task_timeout_secs"], "240");
    assert_eq!(vm["dirty_bytes"], "123456789");
    assert_eq!(
        vm["dirty_ratio"], "0",
        "the kernel zeroes the other of the pair"
    );
    assert_eq!(vm["dirty_background_ratio"], "3");
    let statuses = statuses(&report);
    assert!(statuses.iter().all(|(_, s)| s == "applied"), "{statuses:?}");

    // A second apply writes nothing; verify finds no drift.
    let (code, report) = root.tunerctl_json(&["--profile", "t", "apply"]);
    assert_eq!(code, 0);
    let second = common::statuses(&report);
    assert!(second.iter().all(|(_, s)| s == "unchanged"), "{second:?}");
    let (code, report) = root.tunerctl_json(&["--profile", "t", "verify"]);
    assert_eq!(code, 0, "{report}");

    // Drift behind tunerd's back is seen.
    fs::write(disks[0].sys("queue/read_ahead_kb"), "128").expect("drift");
    let (code, report) = root.tunerctl_json(&["--profile", "t", "verify"]);
    assert_eq!(code, 3);
    let drift = report["drift"].as_array().expect("drift");
    assert_eq!(drift.len(), 1, "{report}");
    assert_eq!(drift[0]["actual"], "128");
    assert_eq!(drift[0]["desired"], "4096");

    let (code, report) = root.tunerctl_json(&["revert"]);
    assert_eq!(code, 0, "{report}");
    for (d, snap) in disks.iter().zip(&before) {
        assert_eq!(&d.snapshot(), snap, "{} differs after revert", d.name);
    }
    assert_eq!(vm_snapshot(), vm_before, "vm settings differ after revert");
    assert!(
        !root.scratch.join("run/tunerd/originals.json").exists(),
        "a complete revert leaves no journal"
    );
    let (code, _) = root.tunerctl_json(&["revert"]);
    assert_eq!(code, 0, "a second revert has nothing to do and succeeds");
}

#[test]
fn real_kernel_rejected_value_is_reported_and_the_rest_applies() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let root = KernelRoot::new("reject");
    let disk = LoopDev::new(&root.loop_dir(), 16);
    let before = disk.snapshot();
    // With no elevator, nr_requests cannot exceed the tag depth (128 on loop): EINVAL.
    root.add_profile(
        "t",
        &format!(
            "[[disk]]\nmatch = {{ name = \"{}\" }}\nscheduler = \"none\"\nnr_requests = 1024\nread_ahead_kb = 1024\nnomerges = 2\n",
            disk.name
        ),
    );
    let (code, report) = root.tunerctl_json(&["--profile", "t", "apply"]);
    assert_eq!(code, 1, "a rejected knob exits 1: {report}");
    let outcomes = report["outcomes"].as_array().expect("outcomes");
    let nr = outcomes
        .iter()
        .find(|o| {
            o["target"]
                .as_str()
                .is_some_and(|t| t.ends_with("nr_requests"))
        })
        .expect("nr_requests outcome");
    assert_eq!(nr["status"], "rejected");
    assert!(
        nr["error"].as_str().unwrap_or("").contains("EINVAL"),
        "{nr}"
    );
    assert_eq!(disk.read("queue/read_ahead_kb"), "1024");
    assert_eq!(disk.read("queue/nomerges"), "2");
    let (code, report) = root.tunerctl_json(&["revert"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(disk.snapshot(), before);
}

#[test]
fn real_kernel_write_cache_data_loss_needs_accept_risk() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let root = KernelRoot::new("wcache");
    let disk = LoopDev::new(&root.loop_dir(), 16);
    assert_eq!(disk.read("queue/write_cache"), "write back");
    let rule = |accept: bool| {
        format!(
            "[[disk]]\nmatch = {{ name = \"{}\" }}\nwrite_cache = {{ value = \"write through\", accept_risk = {accept} }}\n",
            disk.name
        )
    };
    root.add_profile("t", &rule(false));
    let (_, plan) = root.tunerctl_json(&["--profile", "t", "plan"]);
    let change = &plan["changes"][0];
    assert_eq!(change["action"], "refused");
    assert!(
        change["note"]
            .as_str()
            .unwrap_or("")
            .contains("power failure"),
        "{change}"
    );
    let (code, _) = root.tunerctl_json(&["--profile", "t", "apply"]);
    assert_eq!(code, 0);
    assert_eq!(
        disk.read("queue/write_cache"),
        "write back",
        "refused means not written"
    );

    root.add_profile("t", &rule(true));
    let (code, report) = root.tunerctl_json(&["--profile", "t", "apply"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(disk.read("queue/write_cache"), "write through");
    let (code, _) = root.tunerctl_json(&["revert"]);
    assert_eq!(code, 0);
    assert_eq!(disk.read("queue/write_cache"), "write back");
}

/// kill -9 in the middle of an apply, then revert: every attribute as before. The kill is
/// sent as soon as the journal appears (it is written before the first knob), so it lands
/// between writes; the test repeats until it has seen at least one apply cut off half-way.
#[test]
fn real_kernel_kill_during_apply_then_revert_restores() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let _vm = VmGuard::new();
    let root = KernelRoot::new("kill");
    let disks: Vec<LoopDev> = (0..6).map(|_| LoopDev::new(&root.loop_dir(), 16)).collect();
    let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
    root.add_profile("t", &loop_profile(&names, ""));
    let before: Vec<_> = disks.iter().map(LoopDev::snapshot).collect();
    let vm_before = vm_snapshot();
    let journal = root.scratch.join("run/tunerd/originals.json");

    let mut partial_seen = 0;
    let mut attempts = 0;
    while partial_seen < 1 && attempts < 40 {
        attempts += 1;
        let mut child = Command::new(tunerctl())
            .arg("--root")
            .arg(root.path())
            .args(["--profile", "t", "apply"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn apply");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !journal.exists() && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().expect("wait");
        let applied = disks
            .iter()
            .filter(|d| d.read("queue/read_ahead_kb") == "4096")
            .count();
        let killed = status.code().is_none();
        if killed && applied < disks.len() {
            partial_seen += 1;
        }
        assert!(journal.exists(), "the journal is written before any knob");
        let (code, report) = root.tunerctl_json(&["revert"]);
        assert_eq!(code, 0, "{report}");
        for (d, snap) in disks.iter().zip(&before) {
            assert_eq!(
                &d.snapshot(),
                snap,
                "{} differs after kill + revert",
                d.name
            );
        }
        assert_eq!(vm_snapshot(), vm_before);
    }
    eprintln!("kill -9 landed half-way through an apply after {attempts} attempt(s)");
    assert!(
        partial_seen >= 1,
        "never caught an apply half-way in {attempts} attempts: the test proved nothing"
    );
}

#[test]
fn real_kernel_invalid_profile_writes_nothing() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let root = KernelRoot::new("invalid");
    let disk = LoopDev::new(&root.loop_dir(), 16);
    let before = disk.snapshot();
    root.add_profile(
        "t",
        &format!(
            "[[disk]]\nmatch = {{ name = \"{}\" }}\nread_ahead_kb = 4096\nnr_requests = 2\n",
            disk.name
        ),
    );
    let out = root.tunerctl(&["--profile", "t", "apply"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("profiles.d/t.toml:4:15: `nr_requests` must be at least 4 (got 2)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_eq!(disk.snapshot(), before, "nothing written");
    assert!(!root.scratch.join("run/tunerd/originals.json").exists());
}

#[test]
fn real_kernel_revert_skips_a_replaced_device() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let root = KernelRoot::new("replaced");
    let disk = LoopDev::new(&root.loop_dir(), 16);
    root.add_profile(
        "t",
        &format!(
            "[[disk]]\nmatch = {{ name = \"{}\" }}\nread_ahead_kb = 4096\n",
            disk.name
        ),
    );
    let (code, _) = root.tunerctl_json(&["--profile", "t", "apply"]);
    assert_eq!(code, 0);
    // Re-attach the same node to another file: a new diskseq, another device. The guard puts
    // the queue back as it found it before detaching.
    let name = disk.name.clone();
    let backing = disk.backing.clone();
    drop(disk);
    let st = Command::new("losetup")
        .arg(format!("/dev/{name}"))
        .arg(&backing)
        .status()
        .expect("losetup");
    assert!(st.success());
    let _detach = common::Detach(name.clone());
    let ra = fs::read_to_string(format!("/sys/block/{name}/queue/read_ahead_kb")).expect("ra");
    let (code, report) = root.tunerctl_json(&["revert"]);
    assert_eq!(code, 0, "{report}");
    let s = common::statuses(&report);
    assert!(s.iter().all(|(_, st)| st == "gone"), "{s:?}");
    assert_eq!(
        fs::read_to_string(format!("/sys/block/{name}/queue/read_ahead_kb")).expect("ra"),
        ra,
        "the new device was not touched"
    );
}
