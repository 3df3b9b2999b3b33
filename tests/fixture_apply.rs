//! apply -> verify -> revert on every platform fixture, through tests/fakesys: the fixture
//! answers writes as the kernel would (brackets move, EINVAL, exclusive pairs), and after the
//! revert every file of the fixture is byte for byte as it was.

mod common;

use common::{collect_files, fixture_dir, statuses, FakeRoot};

const FIXTURES: [&str; 11] = [
    "kvm",
    "vmware",
    "hyperv",
    "azure",
    "aws-nitro",
    "aws-xen",
    "xen",
    "gcp",
    "iscsi-san",
    "nfs-client",
    "baremetal",
];

#[test]
fn every_platform_round_trips_through_sysfs_semantics() {
    for name in FIXTURES {
        let fake = FakeRoot::new(name);
        let original = fake.source_files();
        let mut pristine = std::collections::BTreeMap::new();
        for tree in ["sys", "proc"] {
            collect_files(&fixture_dir(name).join(tree), tree, &mut pristine);
        }
        assert_eq!(original, pristine, "{name}: the copy is the fixture");

        let (_, plan) = fake.tunerctl_json(&["plan"]);
        let to_set = plan["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .filter(|c| c["action"] == "set")
            .count();
        assert!(to_set > 0, "{name}: the profile changes something");

        let (code, report) = fake.tunerctl_json(&["apply"]);
        assert_eq!(code, 0, "{name}: {report}");
        let s = statuses(&report);
        let written = s.iter().filter(|(_, st)| st == "applied").count();
        assert_eq!(written, to_set, "{name}: every planned knob applied: {s:?}");

        let (code, report) = fake.tunerctl_json(&["apply"]);
        assert_eq!(code, 0);
        assert!(
            statuses(&report)
                .iter()
                .all(|(_, st)| st == "unchanged" || st == "absent"),
            "{name}: a second apply writes nothing: {report}"
        );
        let (code, report) = fake.tunerctl_json(&["verify"]);
        assert_eq!(code, 0, "{name}: no drift after apply: {report}");

        let (code, report) = fake.tunerctl_json(&["revert"]);
        assert_eq!(code, 0, "{name}: {report}");
        let after = fake.source_files();
        let differ: Vec<_> = original
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: {v:?} -> {:?}", after.get(k)))
            .collect();
        assert!(differ.is_empty(), "{name}: not restored: {differ:#?}");
    }
}

#[test]
fn scheduler_switch_moves_the_bracket_and_noop_means_none() {
    let fake = FakeRoot::new("vmware");
    assert!(fake
        .read("sys/block/sda/queue/scheduler")
        .contains("[mq-deadline]"));
    fake.add_profile(
        "t",
        "[[disk]]\nmatch = { name = \"sda\" }\nscheduler = \"noop\"\nnr_requests = 64\n",
    );
    let (code, report) = fake.tunerctl_json(&["--profile", "t", "apply"]);
    assert_eq!(code, 0, "{report}");
    assert!(fake
        .read("sys/block/sda/queue/scheduler")
        .contains("[none]"));
    assert_eq!(fake.read("sys/block/sda/queue/nr_requests"), "64");
    let _ = fake.tunerctl_json(&["revert"]);
    assert!(fake
        .read("sys/block/sda/queue/scheduler")
        .contains("[mq-deadline]"));
}

#[test]
fn a_value_the_kernel_rejects_is_reported_and_the_rest_applies() {
    let fake = FakeRoot::new("aws-nitro");
    // With no elevator nr_requests cannot exceed the tag depth (1023 here): EINVAL.
    fake.add_profile(
        "t",
        "[[disk]]\nmatch = { name = \"nvme1n1\" }\nscheduler = \"none\"\nnr_requests = 2048\nread_ahead_kb = 1024\nio_timeout_ms = 60000\n",
    );
    let (code, report) = fake.tunerctl_json(&["--profile", "t", "apply"]);
    assert_eq!(code, 1, "{report}");
    let s = statuses(&report);
    assert!(
        s.contains(&("nvme1n1 nr_requests".into(), "rejected".into())),
        "{s:?}"
    );
    assert!(
        s.contains(&("nvme1n1 read_ahead_kb".into(), "applied".into())),
        "{s:?}"
    );
    assert!(
        s.contains(&("nvme1n1 io_timeout_ms".into(), "applied".into())),
        "{s:?}"
    );
    let nr = report["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .find(|o| o["target"] == "nvme1n1 nr_requests")
        .expect("nr_requests");
    assert!(
        nr["error"].as_str().unwrap_or("").contains("EINVAL"),
        "{nr}"
    );
    assert_eq!(fake.read("sys/block/nvme1n1/queue/io_timeout"), "60000");
}

#[test]
fn scsi_cache_type_persistence_and_volatile_cache_are_guarded() {
    let fake = FakeRoot::new("vmware");
    let path = "sys/block/sdb/device/scsi_disk/2:0:1:0/cache_type";
    let before = fake.read(path);
    assert_eq!(before, "write through");
    fake.add_profile(
        "persist",
        "[[disk]]\nmatch = { name = \"sdb\" }\nscsi_cache_type = \"write back\"\n",
    );
    let (_, plan) = fake.tunerctl_json(&["--profile", "persist", "plan"]);
    assert_eq!(plan["changes"][0]["action"], "refused", "{plan}");
    assert!(plan["changes"][0]["note"]
        .as_str()
        .unwrap_or("")
        .contains("MODE SELECT"));
    fake.add_profile(
        "temp",
        "[[disk]]\nmatch = { name = \"sdb\" }\nscsi_cache_type = \"temporary write back\"\n",
    );
    let (code, report) = fake.tunerctl_json(&["--profile", "temp", "apply"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(fake.read(path), "write back");
    let (code, _) = fake.tunerctl_json(&["revert"]);
    assert_eq!(code, 0);
    assert_eq!(fake.read(path), before);
}
