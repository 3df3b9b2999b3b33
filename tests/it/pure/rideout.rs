//! The ride-out figure on the fixtures: how long a stall each mount survives now and after
//! the plan, which layer gives up first, and what the profile's `rideout_secs` target flags.
//! The fixtures hold real attribute names and values (tests/fixtures/README.md).

use std::path::PathBuf;
use std::process::Command;

use crate::common::tunerctl;

fn json(fixture: &str, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let out = Command::new(tunerctl())
        .arg("--root")
        .arg(&root)
        .arg("--json")
        .args(args)
        .output()
        .expect("run tunerctl");
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{fixture} {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), value)
}

fn mount<'a>(list: &'a serde_json::Value, mount: &str) -> &'a serde_json::Value {
    list.as_array()
        .and_then(|l| l.iter().find(|r| r["mount"] == mount))
        .unwrap_or_else(|| panic!("no ride-out for {mount} in {list}"))
}

/// A lone iSCSI session gives up after its recovery_tmo (120 s) although the SCSI timeout is
/// 180 s: raising the SCSI timeout alone does not help, and the figure says which layer.
#[test]
fn an_iscsi_mount_is_held_by_its_session_not_its_scsi_timeout() {
    let (_, plan) = json("iscsi-san", &["plan"]);
    let before = mount(&plan["rideout"]["before"], "/srv/archive");
    assert_eq!(before["seconds"], 120, "{before}");
    assert!(
        before["weakest"]
            .as_str()
            .is_some_and(|w| w.starts_with("sdd iscsi: session3: recovery_tmo 120 s")),
        "{before}"
    );
    assert_eq!(before["on_give_up"], "errors=remount-ro");
    // The kvm profile raises the SCSI timeout to 180 s: the mount still gives up at 120 s,
    // and the 180 s target names the session.
    let after = mount(&plan["rideout"]["after"], "/srv/archive");
    assert_eq!(after["seconds"], 120, "{after}");
    let short = plan["rideout"]["short_of_target"]
        .as_array()
        .expect("short_of_target");
    assert!(
        short
            .iter()
            .any(|s| s["mount"] == "/srv/archive" && s["layer"]["layer"] == "iscsi"),
        "{short:?}"
    );
    assert_eq!(plan["rideout"]["target_secs"], 180);

    // iscsi-san sets recovery_tmo: 180 s after, nothing short on that mount.
    let (_, plan) = json("iscsi-san", &["--profile", "iscsi-san", "plan"]);
    let after = mount(&plan["rideout"]["after"], "/srv/archive");
    assert_eq!(after["seconds"], 180, "{after}");
    let short = plan["rideout"]["short_of_target"]
        .as_array()
        .expect("short_of_target");
    assert!(
        !short.iter().any(|s| s["mount"] == "/srv/archive"),
        "{short:?}"
    );
    // The multipath map fails when its last path does (5 s each with iscsi-san), unless
    // the map queues: its dm table says so, and a fixture tree has no dm control device to
    // read it from, which the figure admits.
    let db = mount(&plan["rideout"]["after"], "/var/lib/db");
    assert_eq!(db["seconds"], 5, "{db}");
    assert!(
        db["unknown"].as_array().is_some_and(|u| u
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains("queue_if_no_path")))),
        "{db}"
    );
    let layers = db["layers"].as_array().expect("layers");
    assert_eq!(layers[0]["object"], "dm-0");
    assert_eq!(layers[0]["layer"], "multipath");
    assert!(
        layers[1..]
            .iter()
            .all(|l| l["redundant_in"] == "dm-0" && l["seconds"] == 5),
        "{layers:?}"
    );
    // Only the map is flagged short, not its paths: failing a path fast is the design.
    let flagged: Vec<_> = short
        .iter()
        .filter(|s| s["mount"] == "/var/lib/db")
        .map(|s| s["layer"]["object"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(flagged, vec!["dm-0".to_string()]);
}

/// SCSI disks on a host whose timeout handler lets the timer fire give up after
/// device/timeout; the vmware profile's 180 s is what they ride out after apply.
#[test]
fn a_scsi_mount_rides_out_its_timeout_before_and_after() {
    let (_, plan) = json("vmware", &["plan"]);
    let before = mount(&plan["rideout"]["before"], "/");
    let after = mount(&plan["rideout"]["after"], "/");
    assert_eq!(
        (before["seconds"].clone(), after["seconds"].clone()),
        (30.into(), 180.into())
    );
    assert_eq!(after["layers"][0]["layer"], "scsi");
    assert_eq!(after["on_give_up"], "errors=remount-ro");
    assert_eq!(
        mount(&plan["rideout"]["after"], "/var/lib/data")["on_give_up"],
        "XFS shuts the filesystem down"
    );
}

/// virtio-blk has no timeout handler and virtio-scsi resets the timer: nothing gives up, and
/// the figure says what that costs; md RAID1 and LVM pass it through.
#[test]
fn virtio_mounts_never_give_up_and_say_why() {
    let (code, status) = json("kvm", &["status"]);
    assert_eq!(code, Some(0));
    for m in ["/", "/data", "/srv"] {
        let r = mount(&status["rideout"], m);
        assert!(r["seconds"].is_null(), "{r}");
        assert!(r["weakest"].is_null(), "{r}");
    }
    let srv = mount(&status["rideout"], "/srv");
    let layers: Vec<_> = srv["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            (
                l["object"].as_str().unwrap_or(""),
                l["layer"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        layers,
        vec![("md0", "md"), ("vdb", "virtio-blk"), ("vdc", "virtio-blk")]
    );
    let data = mount(&status["rideout"], "/data");
    assert!(
        data["layers"][1]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("resets the command timer")),
        "{data}"
    );
}

/// NFS: `hard` never gives up; `soft` returns EIO after timeo x (retrans + 1) over TCP.
#[test]
fn nfs_soft_mounts_are_reported_with_their_give_up_time() {
    let (_, status) = json("nfs-client", &["status"]);
    let soft = mount(&status["rideout"], "/mnt/images");
    assert_eq!(soft["seconds"], 30, "{soft}");
    assert!(
        soft["layers"][0]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("hard")),
        "{soft}"
    );
    assert!(mount(&status["rideout"], "/mnt/backup")["seconds"].is_null());
    // The text says it too, on the mount's own line.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nfs-client");
    let out = Command::new(tunerctl())
        .arg("--root")
        .arg(&root)
        .arg("status")
        .output()
        .expect("tunerctl status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("ride-out  /mnt/images: 30 s; weakest: /mnt/images nfs: soft")),
        "{text}"
    );
}

/// Fibre Channel: a LUN seen through one remote port fails when dev_loss_tmo removes it, so
/// the default profile holds dev_loss_tmo with the SCSI timeout; multipathd's own 5 s
/// fast_io_fail on the paths of a map is left alone.
#[test]
fn an_fc_lun_on_one_port_is_held_by_dev_loss_tmo_too() {
    let (_, plan) = json("fc-san", &["plan"]);
    let before = mount(&plan["rideout"]["before"], "/srv/logs");
    assert_eq!(before["seconds"], 30, "{before}");
    let fc = before["layers"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["layer"] == "fc"))
        .unwrap_or_else(|| panic!("no fc layer: {before}"));
    assert_eq!(fc["seconds"], 30, "{fc}");
    assert!(
        fc["detail"]
            .as_str()
            .is_some_and(|d| d.contains("rport-0:0-2") && d.contains("fast_io_fail_tmo off")),
        "{fc}"
    );
    let after = mount(&plan["rideout"]["after"], "/srv/logs");
    assert_eq!(after["seconds"], 180, "{after}");
    let changes = plan["changes"].as_array().expect("changes");
    let set = |disk: &str, knob: &str| {
        changes
            .iter()
            .find(|c| c["object"]["name"] == disk && c["knob"] == knob)
            .map(|c| (c["path"].clone(), c["desired"].clone(), c["action"].clone()))
    };
    assert_eq!(
        set("sdd", "fc_dev_loss_tmo"),
        Some((
            "sys/class/fc_remote_ports/rport-0:0-2/dev_loss_tmo".into(),
            "180".into(),
            "set".into()
        ))
    );
    assert_eq!(set("sdb", "fc_dev_loss_tmo"), None, "multipathd's path");
    let oracle = mount(&plan["rideout"]["after"], "/srv/oracle");
    assert_eq!(oracle["seconds"], 5, "{oracle}");
}
