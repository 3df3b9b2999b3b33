//! The plan of every platform fixture, with the profile `auto` picks there, compared whole
//! with `tests/expected/NAME.plan.json`. Regenerate after a deliberate change with
//! `TUNERD_BLESS=1 cargo test --test it pure::fixture_plans`, then read the diff.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use crate::common::tunerctl;

const PLATFORMS: [(&str, &str, &str); 12] = [
    // fixture, expected platform, expected profile
    ("kvm", "kvm", "kvm"),
    ("vmware", "vmware", "vmware"),
    ("hyperv", "hyperv", "hyperv"),
    ("azure", "azure", "azure"),
    ("aws-nitro", "aws-nitro", "aws"),
    ("aws-xen", "aws-xen", "aws"),
    ("xen", "xen", "default"),
    ("gcp", "gce", "gcp"),
    ("iscsi-san", "kvm", "kvm"),
    ("nfs-client", "kvm", "kvm"),
    ("baremetal", "none", "default"),
    ("fc-san", "kvm", "kvm"),
];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run_json(root: &PathBuf, args: &[&str]) -> serde_json::Value {
    let out = Command::new(tunerctl())
        .arg("--root")
        .arg(root)
        .args(args)
        .arg("--json")
        .output()
        .expect("run tunerctl");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn compare_or_bless(path: PathBuf, actual: &serde_json::Value) {
    let text = serde_json::to_string_pretty(actual).expect("json") + "\n";
    if std::env::var_os("TUNERD_BLESS").is_some() {
        std::fs::write(&path, &text).expect("bless");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with TUNERD_BLESS=1)", path.display()));
    assert!(
        expected == text,
        "{} differs from the plan:\n{text}",
        path.display()
    );
}

#[test]
fn each_platform_is_detected_and_gets_its_profile() {
    for (name, platform, profile) in PLATFORMS {
        let status = run_json(&fixture(name), &["status"]);
        assert_eq!(
            status["inventory"]["platform"]["kind"], platform,
            "{name}: {}",
            status["inventory"]["platform"]
        );
        assert_eq!(status["profile"], profile, "{name}");
    }
}

#[test]
fn each_platform_plan_matches_the_expected_plan_whole() {
    for (name, _, _) in PLATFORMS {
        let plan = run_json(&fixture(name), &["plan"]);
        compare_or_bless(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/expected/{name}.plan.json")),
            &plan,
        );
    }
}

/// The workload profiles on the fixtures they are for, pinned with `--profile`.
const WORKLOADS: [(&str, &str); 2] = [("iscsi-san", "iscsi-san"), ("nfs-client", "nfs-client")];

#[test]
fn each_workload_profile_plan_matches_the_expected_plan_whole() {
    for (name, profile) in WORKLOADS {
        let plan = run_json(&fixture(name), &["--profile", profile, "plan"]);
        compare_or_bless(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/expected/{name}.{profile}.plan.json")),
            &plan,
        );
    }
}

/// The session layer gives up on its own clock (recovery_tmo), whatever the SCSI timeout:
/// iscsi-san holds a path of a multipath map to 5 s (the map rides out the loss of every
/// path) and a lone session to 180 s, its SCSI timeout.
#[test]
fn iscsi_san_sets_the_session_timeout_by_whether_multipath_is_above() {
    let plan = run_json(&fixture("iscsi-san"), &["--profile", "iscsi-san", "plan"]);
    let changes = plan["changes"].as_array().expect("changes");
    let recovery = |disk: &str| {
        changes
            .iter()
            .find(|c| c["object"]["name"] == disk && c["knob"] == "iscsi_recovery_tmo")
            .map(|c| {
                (
                    c["path"].as_str().unwrap_or("").to_string(),
                    c["desired"].as_str().unwrap_or("").to_string(),
                    c["current"].as_str().unwrap_or("").to_string(),
                    c["rule"].as_str().unwrap_or("").to_string(),
                )
            })
    };
    for (disk, session, want, rule) in [
        ("sdb", "session1", "5", "iscsi-multipath-path"),
        ("sdc", "session2", "5", "iscsi-multipath-path"),
        ("sdd", "session3", "180", "iscsi-single-path"),
    ] {
        let (path, desired, current, got_rule) =
            recovery(disk).unwrap_or_else(|| panic!("{disk}: no iscsi_recovery_tmo in {plan}"));
        assert_eq!(
            path,
            format!("sys/class/iscsi_session/{session}/recovery_tmo"),
            "{disk}"
        );
        assert_eq!(
            (desired.as_str(), current.as_str()),
            (want, "120"),
            "{disk}"
        );
        assert_eq!(got_rule, rule, "{disk}");
    }
    // Not on the disks that are not iSCSI.
    assert!(recovery("sda").is_none(), "sda is virtio-scsi");
}

/// Every built-in platform profile carries what its vendor ships (tunables.md), so tunerd
/// is a strict superset of the vendor's udev rules.
#[test]
fn platform_profiles_are_supersets_of_the_vendor_rules() {
    let cases: [(&str, &str, &str, &str); 7] = [
        // fixture, disk, knob, vendor value
        ("vmware", "sda", "scsi_timeout", "180"),
        ("hyperv", "sda", "scsi_timeout", "180"),
        ("azure", "sda", "scsi_timeout", "300"),
        ("azure", "nvme0n1", "io_timeout_ms", "240000"),
        ("aws-nitro", "nvme0n1", "io_timeout_ms", "4294967295"),
        ("aws-nitro", "nvme2n1", "io_timeout_ms", "90000"),
        ("gcp", "nvme0n1", "io_timeout_ms", "4294967295"),
    ];
    for (name, disk, knob, value) in cases {
        let plan = run_json(&fixture(name), &["plan"]);
        let found = plan["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["object"]["name"] == disk && c["knob"] == knob && c["desired"] == value);
        assert!(
            found,
            "{name}: {disk} {knob} = {value} missing from the plan"
        );
    }
    let plan = run_json(&fixture("aws-nitro"), &["plan"]);
    let efs = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .any(|c| {
            c["object"]["name"] == "0:53"
                && c["knob"] == "bdi_read_ahead_kb"
                && c["desired"] == "15360"
        });
    assert!(efs, "aws: EFS read-ahead 15360 missing");
}

/// Knobs of a bio-based stack land on the devices below it; a device's own rule wins.
#[test]
fn stacked_devices_get_knobs_where_io_is_queued() {
    let scratch = common::Scratch::new("stack");
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture("kvm"))
        .arg(scratch.join("root"))
        .status()
        .expect("cp");
    assert!(st.success());
    let root = scratch.join("root");
    std::fs::create_dir_all(root.join("etc/tunerd/profiles.d")).expect("mkdir");
    std::fs::write(
        root.join("etc/tunerd/profiles.d/stack.toml"),
        r#"
[[disk]]
rule = "lvm"
match = { kind = "dm" }
scheduler = { value = "mq-deadline", reason = "from dm-0" }
scsi_timeout = { value = 90, reason = "from dm-0" }
read_ahead_kb = { value = 8192, reason = "readahead stays on the top device" }
[[disk]]
rule = "md"
match = { kind = "md" }
nr_requests = { value = 64, reason = "from md0" }
[[disk]]
rule = "own"
match = { name = "vdc" }
nr_requests = { value = 32, reason = "vdc's own rule" }
"#,
    )
    .expect("profile");
    let plan = run_json(&root, &["--profile", "stack", "plan"]);
    let changes = plan["changes"].as_array().expect("changes");
    let get = |disk: &str, knob: &str| {
        changes
            .iter()
            .find(|c| c["object"]["name"] == disk && c["knob"] == knob)
            .map(|c| {
                (
                    c["desired"].as_str().unwrap_or("").to_string(),
                    c["note"].as_str().unwrap_or("").to_string(),
                )
            })
    };
    assert_eq!(
        get("sda", "scheduler"),
        Some(("mq-deadline".into(), "via dm-0".into()))
    );
    assert_eq!(
        get("sda", "scsi_timeout"),
        Some(("90".into(), "via dm-0".into()))
    );
    assert_eq!(
        get("dm-0", "scheduler"),
        None,
        "bio-based dm queues nothing"
    );
    assert_eq!(
        get("dm-0", "read_ahead_kb").map(|v| v.0),
        Some("8192".into())
    );
    assert_eq!(
        get("vdb", "nr_requests"),
        Some(("64".into(), "via md0".into()))
    );
    assert_eq!(get("vdc", "nr_requests").map(|v| v.0), Some("32".into()));
    assert_eq!(get("md0", "nr_requests"), None);
}
