//! Self-test of `tests/it/common/harness.rs` on the real kernel: the private bus and the
//! project's policy, loop nodes and their kernel uevents, systemd-udevd and its udev-group
//! events.
//! Needs root; the udev test needs the `udev` package, the policy test `python3-gi` for
//! the system python (a fake owner of org.tunerd.Tuner1).

use crate::common;

use crate::common::harness::{LoopNode, PrivateBus, Udevd, UeventListener};
use crate::common::tier::{self, Tier};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const TUNER: &str = "org.tunerd.Tuner1";

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn call_tuner(bus: &PrivateBus, as_nobody: bool, member: &str) -> Output {
    let mut cmd = if as_nobody {
        bus.command_as_nobody("dbus-send")
    } else {
        bus.command("dbus-send")
    };
    cmd.args([
        "--system",
        "--print-reply",
        "--reply-timeout=5000",
        &format!("--dest={TUNER}"),
        "/org/tunerd/Tuner1",
        &format!("{TUNER}.{member}"),
    ])
    .output()
    .expect("run dbus-send")
}

/// Lines of a child's stdout, read on a thread, so a test can wait with a timeout.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(
    rx: &mpsc::Receiver<String>,
    timeout: Duration,
    mut pred: impl FnMut(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Kills and reaps a helper child on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn real_kernel_harness_private_bus_lists_names() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let bus = PrivateBus::start();
    assert!(bus.address().starts_with("unix:path=/dev/shm/"));
    let (pid, dir) = (bus.pid(), bus.dir().to_path_buf());
    for nobody in [false, true] {
        let mut cmd = if nobody {
            bus.command_as_nobody("dbus-send")
        } else {
            bus.command("dbus-send")
        };
        let out = cmd
            .args([
                "--system",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.ListNames",
            ])
            .output()
            .expect("dbus-send");
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("org.freedesktop.DBus"),
            "ListNames (nobody: {nobody}): {}\nbus log: {}",
            text(&out),
            bus.log()
        );
    }
    drop(bus);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "dbus-daemon {pid} still there"
    );
    assert!(!dir.exists(), "{} not removed", dir.display());
}

/// A fake owner of org.tunerd.Tuner1 (Gio through the system python's python3-gi) that
/// answers Status and Apply with "fake-<method>". Prints "ready 1" once it is primary owner.
const FAKE_OWNER: &str = r#"
import sys
from gi.repository import Gio, GLib
xml = ('<node><interface name="org.tunerd.Tuner1">'
       '<method name="Status"><arg type="s" direction="out"/></method>'
       '<method name="Apply"><arg type="s" direction="out"/></method>'
       '</interface></node>')
conn = Gio.DBusConnection.new_for_address_sync(
    sys.argv[1],
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
    None, None)
def call(conn, sender, path, iface, method, params, inv):
    inv.return_value(GLib.Variant('(s)', ('fake-' + method,)))
conn.register_object('/org/tunerd/Tuner1', Gio.DBusNodeInfo.new_for_xml(xml).interfaces[0],
                     call, None, None)
r = conn.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                   'RequestName', GLib.Variant('(su)', ('org.tunerd.Tuner1', 4)),
                   GLib.VariantType('(u)'), 0, -1, None)
print('ready', r.unpack()[0], flush=True)
GLib.MainLoop().run()
"#;

#[test]
fn real_kernel_harness_private_bus_enforces_project_policy() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let python = "/usr/bin/python3";
    let gi = Command::new(python)
        .args(["-c", "from gi.repository import Gio"])
        .output();
    assert!(
        gi.as_ref().is_ok_and(|o| o.status.success()),
        "the policy self-test needs python3-gi for /usr/bin/python3 (apt-get install -y python3-gi)"
    );
    let bus = PrivateBus::start();

    // Without an owner the bus answers ServiceUnknown before any policy check: a policy
    // test needs a real owner of the name.
    let out = call_tuner(&bus, true, "Apply");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ServiceUnknown"),
        "no owner: {}",
        text(&out)
    );

    // uid 65534 may not own the name.
    let out = bus
        .command_as_nobody("dbus-send")
        .args([
            "--system",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.RequestName",
            &format!("string:{TUNER}"),
            "uint32:4",
        ])
        .output()
        .expect("dbus-send");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("org.freedesktop.DBus.Error.AccessDenied"),
        "nobody owning {TUNER}: {}",
        text(&out)
    );

    // root may; the fake owner answers every call it receives.
    let mut owner = Reaped(
        bus.command(python)
            .arg("-c")
            .arg(FAKE_OWNER)
            .arg(bus.address())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn fake owner"),
    );
    let rx = lines_of(&mut owner.0);
    let ready = wait_line(&rx, Duration::from_secs(10), |l| l.starts_with("ready"));
    assert_eq!(
        ready.as_deref(),
        Some("ready 1"),
        "fake owner did not become primary owner; bus log: {}",
        bus.log()
    );

    let out = call_tuner(&bus, true, "Apply");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("org.freedesktop.DBus.Error.AccessDenied"),
        "Apply as nobody must be denied by policy: {}",
        text(&out)
    );
    let out = call_tuner(&bus, true, "Status");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("fake-Status"),
        "Status as nobody must reach the owner: {}",
        text(&out)
    );
    let out = call_tuner(&bus, false, "Apply");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("fake-Apply"),
        "Apply as root must reach the owner: {}",
        text(&out)
    );
}

#[test]
fn real_kernel_harness_loop_node_uevents() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _k = common::kernel_lock();
    let mut uevents = UeventListener::new();
    let mut node = LoopNode::create();
    let name = node.name();
    assert!(node.number() >= 300);
    assert!(node.dev().exists(), "{} not created", node.dev().display());

    let (_, add) = uevents
        .wait_for("add", &name, Duration::from_secs(2))
        .unwrap_or_else(|| panic!("no kernel add uevent for {name}"));
    assert_eq!(add["DEVPATH"], node.devpath());
    assert_eq!(add["SUBSYSTEM"], "block");
    assert_eq!(add["DEVNAME"], name);

    let file = node.attach_sparse(16);
    assert_eq!(node.attached_file().as_deref(), Some(file.as_path()));
    uevents
        .wait_for("change", &name, Duration::from_secs(2))
        .unwrap_or_else(|| panic!("no change uevent on attach of {name}"));
    assert!(node.sys("size").exists());

    node.remove().expect("remove loop node");
    uevents
        .wait_for("remove", &name, Duration::from_secs(2))
        .unwrap_or_else(|| panic!("no remove uevent for {name}"));
    assert!(!node.exists() && !node.dev().exists(), "{name} still there");
    assert!(!file.exists(), "backing file {} left", file.display());
    node.remove().expect("remove is idempotent");

    // Drop removes a node the test did not remove, attached or not.
    let mut dropped = LoopNode::create();
    let dropped_name = dropped.name();
    assert_ne!(dropped_name, name);
    dropped.attach_sparse(8);
    drop(dropped);
    uevents
        .wait_for("remove", &dropped_name, Duration::from_secs(2))
        .unwrap_or_else(|| panic!("no remove uevent for dropped {dropped_name}"));
    assert!(!Path::new(&format!("/sys/block/{dropped_name}")).exists());
    assert_eq!(uevents.overruns(), 0);
}

/// mode, owner and group of every node of the machine's disk vda (and its partitions).
fn vda_nodes() -> Vec<(String, u32, u32, u32)> {
    let mut out: Vec<_> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vda"))
        .filter_map(|e| {
            let md = std::fs::metadata(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                md.mode(),
                md.uid(),
                md.gid(),
            ))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn real_kernel_harness_udevd_sees_new_loop() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    Udevd::require_installed();
    let _k = common::kernel_lock();
    let vda_before = vda_nodes();

    let udevd = Udevd::start();
    let pid = udevd.pid();
    let created_run_udev = udevd.created_run_udev();

    // Starting udevd processed no existing device: vda is untouched and unknown to it.
    if udevd.owned() {
        assert!(udevd.settle(Duration::from_secs(10)));
        assert_eq!(vda_nodes(), vda_before, "udevd changed vda's nodes");
        if let Ok(dev) = std::fs::read_to_string("/sys/block/vda/dev") {
            let db = format!("/run/udev/data/b{}", dev.trim());
            assert!(!Path::new(&db).exists(), "udevd processed vda ({db})");
        }
    }

    let mut monitor = Reaped(
        Command::new("udevadm")
            .args(["monitor", "--udev", "--property", "--subsystem-match=block"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("udevadm monitor"),
    );
    let rx = lines_of(&mut monitor.0);
    // udevadm prints this line once its udev-group socket is bound.
    wait_line(&rx, Duration::from_secs(5), |l| l.starts_with("UDEV - "))
        .expect("udevadm monitor did not start");

    let mut uevents = UeventListener::new();
    let mut node = LoopNode::create();
    let devname = format!("DEVNAME={}", node.dev().display());
    let (kernel_at, _) = uevents
        .wait_for("add", &node.name(), Duration::from_secs(2))
        .expect("kernel add uevent");

    // One event block of `udevadm monitor --property`: a header line, then KEY=VALUE lines.
    let mut action_add = false;
    let seen = wait_line(&rx, Duration::from_secs(5), |l| {
        if l.starts_with("UDEV ") {
            action_add = false;
        }
        if l == "ACTION=add" {
            action_add = true;
        }
        action_add && l == devname
    });
    assert!(
        seen.is_some(),
        "no udev-group add event for {} from udevd; udevd log:\n{}",
        node.dev().display(),
        udevd.log()
    );
    let udev_lag = kernel_at.elapsed();
    assert!(udev_lag < Duration::from_secs(5));

    node.remove().expect("remove loop node");
    drop(monitor);
    drop(udevd);
    if let Some(pid) = pid {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "udevd {pid} still running"
        );
        assert!(
            !created_run_udev || !Path::new("/run/udev").exists(),
            "/run/udev created by the harness's udevd not removed"
        );
        assert!(!Udevd::running(), "a udevd still answers");
    }
    assert_eq!(vda_nodes(), vda_before, "vda's nodes changed");
}
