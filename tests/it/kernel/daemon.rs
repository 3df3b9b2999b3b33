//! tunerd, the service, on the real kernel: a private system bus loaded with the project's own
//! policy, loop devices the tests create, systemd-udevd for hotplug, the daemon as a child
//! process with a notify socket. Select with `cargo test --test it kernel::daemon`.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::common::harness::{LoopNode, PrivateBus, Udevd, UeventListener};
use crate::common::tier::{self, Tier};
use crate::common::tunerd::*;
use crate::common::*;

fn write_config(root: &KernelRoot, text: &str) {
    fs::write(root.scratch.join("etc/tunerd/tunerd.toml"), text).expect("config");
}

/// Two profiles over the test's own loop devices: `t` and `t2`.
fn two_profiles(root: &KernelRoot, names: &[&str]) {
    let list = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    root.add_profile(
        "t",
        &format!(
            "[[disk]]\nmatch = {{ name = [{list}] }}\nread_ahead_kb = {{ value = 1024, reason = \"test t\" }}\nscheduler = \"mq-deadline\"\nnomerges = 1\n"
        ),
    );
    root.add_profile(
        "t2",
        &format!(
            "[[disk]]\nmatch = {{ name = [{list}] }}\nread_ahead_kb = {{ value = 2048, reason = \"test t2\" }}\nscheduler = \"mq-deadline\"\n"
        ),
    );
}

#[test]
fn real_kernel_daemon_dbus_api_properties_methods_and_policy() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let bus = PrivateBus::start();
    let root = KernelRoot::new("dbus-api");
    let disks: Vec<LoopDev> = (0..2).map(|_| LoopDev::new(&root.loop_dir(), 16)).collect();
    let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
    two_profiles(&root, &names);
    write_config(
        &root,
        "profile = \"t\"\n[daemon]\ndrift_interval_secs = 0\n",
    );
    let daemon = Tunerd::start(&root, Some(&bus));
    eprintln!("exec -> READY (applied): {:?}", daemon.ready_after);

    // The knobs are applied at start.
    for d in &disks {
        assert_eq!(d.read("queue/read_ahead_kb"), "1024");
        assert!(d.read("queue/scheduler").contains("[mq-deadline]"));
    }

    // Properties.
    assert_eq!(property(&bus, "ActiveProfile"), "t");
    assert_eq!(property(&bus, "Health"), "ok");
    assert_eq!(property(&bus, "Root"), root.path().display().to_string());
    assert!(!property(&bus, "Platform").is_empty());

    // Methods anyone may call.
    let status = call_json(&bus, "Status", &[]);
    assert_eq!(status["running"], true);
    assert_eq!(status["profile"], "t");
    assert_eq!(status["drift"], 0, "{status}");
    let plan = call_json(&bus, "Plan", &[]);
    let changes = plan["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 6, "{plan}");
    assert!(changes.iter().all(|c| c["action"] == "unchanged"), "{plan}");
    // The ride-out figure is on the bus too: every mount of this machine on storage, now
    // and after the plan, in Plan() and in Status() (which mounts there are is this
    // machine's business; the figures themselves are tested on fixtures and in the guest).
    for list in [
        &plan["rideout"]["before"],
        &plan["rideout"]["after"],
        &status["rideout"],
    ] {
        let list = list
            .as_array()
            .unwrap_or_else(|| panic!("{plan}\n{status}"));
        assert!(
            list.iter().all(|r| r["mount"].is_string()
                && r["layers"].is_array()
                && (r["seconds"].is_null() || r["seconds"].is_u64())),
            "{list:?}"
        );
    }
    assert!(plan["rideout"]["target_secs"].is_null(), "{plan}");
    let verify = call_json(&bus, "Verify", &[]);
    assert_eq!(verify["drift"].as_array().map(Vec::len), Some(0));
    let out = busctl(
        &bus,
        &["--json=short", "call", IFACE, PATH, IFACE, "ListProfiles"],
    );
    let profiles: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let names_listed: Vec<&str> = profiles["data"][0]
        .as_array()
        .expect("as")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for p in ["t", "t2", "default", "vmware"] {
        assert!(names_listed.contains(&p), "{names_listed:?}");
    }

    // As nobody: reading works, changing is denied, by the policy and by the daemon.
    for method in ["Status", "Plan", "Verify"] {
        let out = bus
            .command_as_nobody("busctl")
            .args(["--system", "call", IFACE, PATH, IFACE, method])
            .output()
            .expect("busctl");
        assert!(
            out.status.success(),
            "nobody {method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = bus
        .command_as_nobody("busctl")
        .args(["--system", "get-property", IFACE, PATH, IFACE, "Health"])
        .output()
        .expect("busctl");
    assert!(out.status.success());
    let denied: [(&str, &[&str]); 4] = [
        ("Apply", &[]),
        ("Revert", &[]),
        ("SwitchProfile", &["s", "t2"]),
        ("Reload", &[]),
    ];
    for (method, args) in denied {
        let out = bus
            .command_as_nobody("busctl")
            .args(["--system", "call", IFACE, PATH, IFACE, method])
            .args(args)
            .output()
            .expect("busctl");
        assert!(!out.status.success(), "nobody may not call {method}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Access denied"), "{method}: {err}");
    }
    assert_eq!(property(&bus, "ActiveProfile"), "t", "nothing changed");

    // Root may apply.
    let report = call_json(&bus, "Apply", &[]);
    assert_eq!(report["ok"], true);

    // tunerctl goes through the daemon and says so.
    let out = bus
        .command(tunerctl())
        .arg("--root")
        .arg(root.path())
        .arg("status")
        .output()
        .expect("tunerctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("daemon    running (pid {}", daemon.pid())),
        "{text}"
    );
    assert!(text.contains("profile   t ("), "{text}");
    // The live failure sources: the kernel log and the samplers at least; not the journal,
    // which is followed only on the real root.
    let watching = text
        .lines()
        .find(|l| l.starts_with("watching  "))
        .unwrap_or_else(|| panic!("no `watching` line: {text}"));
    assert!(
        watching.contains("kmsg") && watching.contains("samplers") && !watching.contains("journal"),
        "{watching}"
    );
    // No [alert] sink configured: status says where incidents go anyway.
    assert!(
        text.lines()
            .any(|l| l == "alerts    journal and D-Bus only (no [alert] sink in tunerd.toml)"),
        "{text}"
    );
    // Without the daemon it works directly and says that too.
    let out = Command::new(tunerctl())
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
        .arg("--root")
        .arg(root.path())
        .arg("status")
        .output()
        .expect("tunerctl");
    assert!(String::from_utf8_lossy(&out.stdout).contains("daemon    not running"));

    // The interface a client sees is the one in dbus/org.tunerd.Tuner1.xml.
    let out = busctl(&bus, &["introspect", "--xml-interface", IFACE, PATH]);
    let seen = members(&String::from_utf8_lossy(&out.stdout));
    let documented = members(
        &fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/dbus/org.tunerd.Tuner1.xml"
        ))
        .expect("xml"),
    );
    assert_eq!(seen, documented);

    // Revert through the daemon restores everything.
    let out = bus
        .command(tunerctl())
        .arg("--root")
        .arg(root.path())
        .args(["revert", "--json"])
        .output()
        .expect("tunerctl");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for d in &disks {
        assert_eq!(
            d.read("queue/read_ahead_kb"),
            d.initial("queue/read_ahead_kb")
        );
        assert!(d.read("queue/scheduler").contains("[none]"));
    }
}

/// `(kind, name, signature)` of every method argument, signal and property of our interface
/// in an introspection document, sorted.
fn members(xml: &str) -> Vec<String> {
    let start = xml
        .find(&format!("<interface name=\"{IFACE}\">"))
        .expect("interface in the XML");
    let body = &xml[start..];
    let body = &body[..body.find("</interface>").expect("end")];
    let mut out = Vec::new();
    let mut current = String::new();
    for line in body.lines().map(str::trim) {
        let attr = |name: &str| {
            line.find(&format!("{name}=\""))
                .map(|i| &line[i + name.len() + 2..])
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        if line.starts_with("<method") || line.starts_with("<signal") {
            current = format!("{} {}", &line[1..7], attr("name"));
            out.push(current.clone());
        } else if line.starts_with("<property") {
            out.push(format!(
                "property {} {} {}",
                attr("name"),
                attr("type"),
                attr("access")
            ));
        } else if line.starts_with("<arg") {
            out.push(format!(
                "{current} arg {} {} {}",
                attr("name"),
                attr("type"),
                attr("direction")
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn real_kernel_daemon_drift_is_repaired_and_signalled() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let bus = PrivateBus::start();
    let root = KernelRoot::new("drift");
    let disk = LoopDev::new(&root.loop_dir(), 16);
    two_profiles(&root, &[&disk.name]);
    write_config(
        &root,
        "profile = \"t\"\n[daemon]\ndrift_interval_secs = 1\n",
    );
    let _daemon = Tunerd::start(&root, Some(&bus));
    let monitor = Monitor::start(&bus, &root.scratch.path);
    assert_eq!(disk.read("queue/read_ahead_kb"), "1024");
    fs::write(disk.sys("queue/read_ahead_kb"), "128").expect("drift behind tunerd's back");
    let repaired = eventually(Duration::from_secs(5), || {
        disk.read("queue/read_ahead_kb") == "1024"
    });
    assert!(repaired.is_some(), "drift not repaired within the interval");
    let seen = eventually(Duration::from_secs(3), || {
        monitor.text().contains("member=DriftDetected")
    });
    assert!(
        seen.is_some(),
        "no DriftDetected signal: {}",
        monitor.text()
    );
    let text = monitor.text();
    let at = text.find("member=DriftDetected").expect("signal");
    let args = &text[at..];
    assert!(
        args.contains(&format!("string \"{} read_ahead_kb\"", disk.name)),
        "{args}"
    );
    assert!(args.contains("string \"1024\""), "{args}");
    assert!(args.contains("string \"128\""), "{args}");
    let status = call_json(&bus, "Status", &[]);
    assert_eq!(status["recent_drift"][0]["actual"], "128", "{status}");
    assert_eq!(status["recent_drift"][0]["repaired"], true);
    assert!(status["drift_total"].as_u64() >= Some(1), "{status}");
    // A revert is not undone by the next drift check: enforcement waits for the next apply.
    let _ = call_json(&bus, "Revert", &[]);
    assert_eq!(
        disk.read("queue/read_ahead_kb"),
        disk.initial("queue/read_ahead_kb")
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        disk.read("queue/read_ahead_kb"),
        disk.initial("queue/read_ahead_kb"),
        "revert stays reverted"
    );
    assert_eq!(call_json(&bus, "Status", &[])["suspended"], true);
    let _ = call_json(&bus, "Apply", &[]);
    assert_eq!(disk.read("queue/read_ahead_kb"), "1024");
    assert_eq!(call_json(&bus, "Status", &[])["suspended"], false);
    let _ = call_json(&bus, "Revert", &[]);
}

#[test]
fn real_kernel_daemon_report_policy_and_once_knobs_leave_values() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let bus = PrivateBus::start();
    let root = KernelRoot::new("report");
    let a = LoopDev::new(&root.loop_dir(), 16);
    let b = LoopDev::new(&root.loop_dir(), 16);
    root.add_profile(
        "t",
        &format!(
            "[[disk]]\nmatch = {{ name = \"{}\" }}\nread_ahead_kb = 1024\n[[disk]]\nmatch = {{ name = \"{}\" }}\nread_ahead_kb = {{ value = 1024, once = true, reason = \"another tool owns it later\" }}\n",
            a.name, b.name
        ),
    );
    write_config(
        &root,
        "profile = \"t\"\n[daemon]\ndrift_interval_secs = 1\ndrift_policy = \"report\"\n",
    );
    let _daemon = Tunerd::start(&root, Some(&bus));
    let monitor = Monitor::start(&bus, &root.scratch.path);
    assert_eq!(a.read("queue/read_ahead_kb"), "1024");
    assert_eq!(
        b.read("queue/read_ahead_kb"),
        "1024",
        "a once knob is set at start"
    );
    fs::write(a.sys("queue/read_ahead_kb"), "256").expect("drift a");
    fs::write(b.sys("queue/read_ahead_kb"), "512").expect("drift b");
    let seen = eventually(Duration::from_secs(5), || {
        monitor.text().contains("member=DriftDetected")
    });
    assert!(seen.is_some(), "report policy still signals");
    let health = eventually(Duration::from_secs(3), || {
        property(&bus, "Health") == "drift"
    });
    assert!(health.is_some(), "Health shows drift");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        a.read("queue/read_ahead_kb"),
        "256",
        "report policy changes nothing"
    );
    assert_eq!(
        b.read("queue/read_ahead_kb"),
        "512",
        "a once knob is left alone"
    );
    assert!(
        !monitor
            .text()
            .contains(&format!("\"{} read_ahead_kb\"", b.name)),
        "no drift reported for a once knob"
    );
    let _ = call_json(&bus, "Revert", &[]);
}

#[test]
fn real_kernel_daemon_switch_and_reload() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let bus = PrivateBus::start();
    let root = KernelRoot::new("switch");
    let disk = LoopDev::new(&root.loop_dir(), 16);
    two_profiles(&root, &[&disk.name]);
    write_config(
        &root,
        "profile = \"t\"\n[daemon]\ndrift_interval_secs = 0\n",
    );
    let mut daemon = Tunerd::start(&root, Some(&bus));
    let monitor = Monitor::start(&bus, &root.scratch.path);
    assert_eq!(disk.read("queue/nomerges"), "1");

    // Switch: t2 sets read_ahead 2048 and no nomerges; t's nomerges goes back to its original.
    let status = call_json(&bus, "SwitchProfile", &["s", "t2"]);
    assert_eq!(status["profile"], "t2");
    assert_eq!(disk.read("queue/read_ahead_kb"), "2048");
    assert_eq!(
        disk.read("queue/nomerges"),
        "0",
        "what t2 does not want is reverted"
    );
    assert_eq!(property(&bus, "ActiveProfile"), "t2");
    let seen = eventually(Duration::from_secs(3), || {
        monitor.text().contains("member=ProfileChanged")
    });
    assert!(seen.is_some());
    let text = monitor.text();
    let at = text.find("member=ProfileChanged").expect("signal");
    assert!(text[at..].contains("string \"t\"") && text[at..].contains("string \"t2\""));

    // A broken configuration is refused, over D-Bus and on SIGHUP; the daemon keeps running.
    write_config(
        &root,
        "profile = \"t\"\n[daemon]\ndrift_interval_secs = \"often\"\n",
    );
    let out = busctl(&bus, &["call", IFACE, PATH, IFACE, "Reload"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tunerd.toml:3:23"), "{err}");
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let logged = eventually(Duration::from_secs(3), || {
        daemon.log().contains("configuration refused: ")
    });
    assert!(logged.is_some(), "{}", daemon.log());
    assert!(daemon.alive());
    assert_eq!(property(&bus, "ActiveProfile"), "t2");
    assert_eq!(disk.read("queue/read_ahead_kb"), "2048");

    // A good reload keeps the pinned profile and re-reads the rest.
    write_config(
        &root,
        "profile = \"t\"\n[daemon]\ndrift_interval_secs = 0\n",
    );
    let out = busctl(&bus, &["call", IFACE, PATH, IFACE, "Reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = call_json(&bus, "Revert", &[]);
    assert_eq!(
        disk.read("queue/read_ahead_kb"),
        disk.initial("queue/read_ahead_kb")
    );
}

#[test]
fn real_kernel_daemon_kill9_restart_then_revert_is_exact() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let root = KernelRoot::new("restart");
    let disks: Vec<LoopDev> = (0..2).map(|_| LoopDev::new(&root.loop_dir(), 16)).collect();
    let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
    two_profiles(&root, &names);
    write_config(&root, "profile = \"t\"\n");
    let before: Vec<_> = disks.iter().map(LoopDev::snapshot).collect();
    let mut daemon = Tunerd::start(&root, None);
    daemon.kill9();
    // Restart: the originals are still in run/tunerd; a switch to t2 and back changes nothing
    // about them.
    let mut daemon = Tunerd::start(&root, None);
    assert_eq!(daemon.stop(), Some(0));
    assert_eq!(
        disks[0].read("queue/read_ahead_kb"),
        "1024",
        "on_stop = keep"
    );
    let (code, report) = root.tunerctl_json(&["revert"]);
    assert_eq!(code, 0, "{report}");
    for (d, snap) in disks.iter().zip(&before) {
        assert_eq!(
            &d.snapshot(),
            snap,
            "{} differs after kill -9, restart, revert",
            d.name
        );
    }
}

#[test]
fn real_kernel_daemon_on_stop_revert_restores() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let root = KernelRoot::new("onstop");
    let disk = LoopDev::new(&root.loop_dir(), 16);
    two_profiles(&root, &[&disk.name]);
    write_config(&root, "profile = \"t\"\n[daemon]\non_stop = \"revert\"\n");
    let before = disk.snapshot();
    let mut daemon = Tunerd::start(&root, None);
    assert_eq!(disk.read("queue/read_ahead_kb"), "1024");
    assert_eq!(daemon.stop(), Some(0));
    assert_eq!(disk.snapshot(), before);
}

/// `tunerctl status` through the daemon: exit code, text, JSON.
fn status_of(bus: &PrivateBus, root: &KernelRoot) -> (Option<i32>, String, serde_json::Value) {
    let run = |json: bool| {
        let mut cmd = bus.command(tunerctl());
        cmd.arg("--root").arg(root.path());
        if json {
            cmd.arg("--json");
        }
        cmd.arg("status").output().expect("tunerctl status")
    };
    let text = run(false);
    let json = run(true);
    let value = serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
        panic!(
            "tunerctl --json status: {e}: {}",
            String::from_utf8_lossy(&json.stdout)
        )
    });
    assert_eq!(
        text.status.code(),
        json.status.code(),
        "text and JSON agree"
    );
    (
        text.status.code(),
        String::from_utf8_lossy(&text.stdout).into_owned(),
        value,
    )
}

/// A configuration refused at start or at a reload does not stop the daemon (a typo
/// delivered by cloud-init must not leave a machine without drift repair and alerts): a
/// reload keeps what runs, a start runs on the configuration accepted last (kept in
/// run/tunerd/accepted.json, root's only), and both say so in the log and in `tunerctl
/// status`, which exits 4 until the files are fixed. (With nothing kept the daemon runs on
/// the built-in configuration: adversarial::hygiene, on a tree of its own, since the
/// built-in profiles would tune this machine's own disks.)
#[test]
fn real_kernel_daemon_refused_config_runs_on_the_previous_one() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let bus = PrivateBus::start();
    let root = KernelRoot::new("refused");
    let disk = LoopDev::new(&root.loop_dir(), 16);
    two_profiles(&root, &[&disk.name]);
    let good = "profile = \"t\"\n[daemon]\ndrift_interval_secs = 1\n";
    write_config(&root, good);
    let accepted = root.scratch.join("run/tunerd/accepted.json");

    // Accepted at start: in force, and kept (with tunerd.toml's mode: it may hold secrets).
    let mut daemon = Tunerd::start(&root, Some(&bus));
    assert_eq!(disk.read("queue/read_ahead_kb"), "1024");
    let kept = fs::read_to_string(&accepted).expect("accepted.json written at start");
    assert!(kept.contains("drift_interval_secs = 1"), "{kept}");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&accepted).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "accepted.json mode {mode:o}");
    let (code, text, json) = status_of(&bus, &root);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("config    "), "{text}");
    assert_eq!(json["daemon"]["config"]["in_force"], "files", "{json}");
    assert!(json["config_refused"].is_null(), "{json}");

    // A broken reload: refused, the running configuration stays (drift is still repaired).
    write_config(&root, "profile = \"nope\"\n");
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let logged = eventually(Duration::from_secs(5), || {
        daemon.log().contains("configuration refused: ")
    });
    assert!(logged.is_some(), "{}", daemon.log());
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("configuration refused: "))
        .unwrap_or_default();
    assert!(line.starts_with("<3>"), "logged as an error: {line}");
    assert!(
        line.contains("tunerd.toml:1:11: unknown profile `nope`")
            && line.contains("running on the previous configuration (accepted "),
        "{line}"
    );
    assert!(daemon.alive());
    let (code, text, json) = status_of(&bus, &root);
    assert_eq!(
        code,
        Some(4),
        "status exits 4 while the files are refused: {text}"
    );
    let config_line = text
        .lines()
        .find(|l| l.starts_with("config    refused: "))
        .unwrap_or_else(|| panic!("no config line: {text}"));
    assert!(
        config_line.contains("unknown profile `nope`")
            && config_line.contains("; running on the previous configuration (accepted "),
        "{config_line}"
    );
    assert_eq!(json["daemon"]["config"]["in_force"], "previous", "{json}");
    assert!(
        json["daemon"]["config"]["refused"]
            .as_str()
            .is_some_and(|e| e.contains("unknown profile `nope`")),
        "{json}"
    );
    assert_eq!(json["config_in_force"], "previous", "{json}");
    assert_eq!(json["daemon"]["profile"], "t", "{json}");
    fs::write(disk.sys("queue/read_ahead_kb"), "128").expect("drift");
    let repaired = eventually(Duration::from_secs(5), || {
        disk.read("queue/read_ahead_kb") == "1024"
    });
    assert!(
        repaired.is_some(),
        "the running configuration still repairs drift"
    );

    // A start with the files still broken: it runs on the kept configuration.
    assert_eq!(daemon.stop(), Some(0));
    fs::write(disk.sys("queue/read_ahead_kb"), "128").expect("behind tunerd's back");
    let mut daemon = Tunerd::start(&root, Some(&bus));
    assert!(daemon.alive());
    assert_eq!(
        disk.read("queue/read_ahead_kb"),
        "1024",
        "the previous configuration's profile applied"
    );
    let log = daemon.log();
    assert!(
        log.contains("configuration refused: ")
            && log.contains("unknown profile `nope`")
            && log.contains("; running on the previous configuration (accepted "),
        "{log}"
    );
    let (code, text, json) = status_of(&bus, &root);
    assert_eq!(code, Some(4), "{text}");
    assert_eq!(json["daemon"]["config"]["in_force"], "previous", "{json}");
    assert_eq!(json["daemon"]["profile"], "t", "{json}");
    assert_eq!(json["daemon"]["drift_interval_secs"], 1, "{json}");
    assert!(text.contains("profile   t ("), "{text}");
    // What it refused is not what it keeps.
    let kept = fs::read_to_string(&accepted).expect("accepted.json");
    assert!(!kept.contains("nope"), "{kept}");

    // Fixed and reloaded: the files are in force again and status is clean.
    write_config(&root, "profile = \"t2\"\n");
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let switched = eventually(Duration::from_secs(5), || {
        disk.read("queue/read_ahead_kb") == "2048"
    });
    assert!(switched.is_some(), "{}", daemon.log());
    let (code, text, json) = status_of(&bus, &root);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(json["daemon"]["config"]["in_force"], "files", "{json}");
    assert!(json["daemon"]["config"]["refused"].is_null(), "{json}");
    assert!(!text.contains("config    refused"), "{text}");
    assert!(fs::read_to_string(&accepted)
        .expect("accepted.json")
        .contains("t2"));
    assert_eq!(daemon.stop(), Some(0));

    // --once still refuses: nothing is applied from a configuration nobody accepted.
    write_config(&root, "profile = \"nope\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_tunerd"))
        .arg("--root")
        .arg(root.path())
        .args(["--no-dbus", "--once"])
        .output()
        .expect("tunerd --once");
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tunerd.toml:1:11: unknown profile `nope`"),
        "{err}"
    );
    disk.restore();
}

/// A knob another writer keeps setting back (here a real process rewriting read_ahead_kb
/// every 200 ms, as WALinuxAgent rewrites SCSI timeouts every 30 s) is reported once, as a
/// `knob_contested` incident naming the knob and the other writer's value, and tunerd backs
/// off instead of fighting it at every drift check; `tunerctl apply` takes it back and ends
/// the incident.
#[test]
fn real_kernel_daemon_backs_off_from_a_contested_knob() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let bus = PrivateBus::start();
    let root = KernelRoot::new("contest");
    let disk = LoopDev::new(&root.loop_dir(), 16);
    two_profiles(&root, &[&disk.name]);
    write_config(
        &root,
        "profile = \"t\"\n[daemon]\ndrift_interval_secs = 1\ncontested_repairs = 3\ncontested_window_secs = 60\n",
    );
    let daemon = Tunerd::start(&root, Some(&bus));
    let monitor = Monitor::start(&bus, &root.scratch.path);
    assert_eq!(disk.read("queue/read_ahead_kb"), "1024");

    // The other writer.
    let attr = disk.sys("queue/read_ahead_kb");
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while :; do echo 128 > {}; sleep 0.2; done",
            attr.display()
        ))
        .spawn()
        .expect("competing writer");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut writer);

    let target = format!("{} read_ahead_kb", disk.name);
    let contested = eventually(Duration::from_secs(15), || {
        call_json(&bus, "Status", &[])["contested"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    });
    assert!(contested.is_some(), "never contested: {}", daemon.log());
    let status = call_json(&bus, "Status", &[]);
    let c = &status["contested"][0];
    assert_eq!(c["target"], target.as_str(), "{status}");
    assert_eq!(c["ours"], "1024");
    assert_eq!(c["theirs"], "128");
    assert_eq!(c["backed_off"], true);
    assert!(c["repairs"].as_u64() >= Some(3), "{status}");
    let log = daemon.log();
    assert_eq!(
        log.matches("knob contested: ").count(),
        1,
        "reported once: {log}"
    );
    // The incident names the knob and the other writer's value.
    let events = call_json(&bus, "Events", &[]);
    let incident = events["open"]
        .as_array()
        .and_then(|o| o.iter().find(|i| i["kind"] == "knob_contested"))
        .unwrap_or_else(|| panic!("no knob_contested incident: {events}"))
        .clone();
    assert_eq!(incident["device"], target.as_str(), "{incident}");
    assert_eq!(incident["disk"], disk.name.as_str(), "{incident}");
    assert!(
        incident["summary"]
            .as_str()
            .is_some_and(|s| s.contains("set back by another writer")),
        "{incident}"
    );

    // Backed off: no more repairs while the other writer holds it (drift checks every
    // second; the drift count stays where it was).
    let drift_before = status["recent_drift"].as_array().map(Vec::len);
    std::thread::sleep(Duration::from_millis(3500));
    let later = call_json(&bus, "Status", &[]);
    assert_eq!(
        later["recent_drift"].as_array().map(Vec::len),
        drift_before,
        "tunerd went on fighting: {later}"
    );
    assert_eq!(later["health"], "drift", "{later}");
    assert_eq!(disk.read("queue/read_ahead_kb"), "128");
    let drift_signals = monitor.text().matches("member=DriftDetected").count();
    assert!(drift_signals <= 4, "{drift_signals} DriftDetected signals");

    // The writer stops; an apply takes the knob back and ends the contest.
    drop(guard);
    let report = call_json(&bus, "Apply", &[]);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(disk.read("queue/read_ahead_kb"), "1024");
    let ended = eventually(Duration::from_secs(5), || {
        let events = call_json(&bus, "Events", &[]);
        events["open"]
            .as_array()
            .is_some_and(|o| !o.iter().any(|i| i["kind"] == "knob_contested"))
            && events["recent"]
                .as_array()
                .is_some_and(|r| r.iter().any(|i| i["kind"] == "knob_contested"))
    });
    assert!(ended.is_some(), "{}", call_json(&bus, "Events", &[]));
    let status = call_json(&bus, "Status", &[]);
    assert_eq!(status["contested"].as_array().map(Vec::len), Some(0));
    disk.restore();
}

/// Real hotplug: systemd-udevd runs, brand-new loop devices appear (`add`), are attached
/// (`change`) and removed (`remove`). Each new device gets every knob of its rule; the test
/// records how long after the kernel's uevent.
#[test]
fn real_kernel_daemon_hotplug_with_udevd() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let _udevd = Udevd::start();
    let root = KernelRoot::new("hotplug");
    root.add_profile(
        "t",
        "[[disk]]\nmatch = { name = \"loop[3-9]??\" }\nscheduler = \"mq-deadline\"\nnr_requests = 64\nread_ahead_kb = 1024\nnomerges = 1\n",
    );
    write_config(
        &root,
        "profile = \"t\"\n[daemon]\ndrift_interval_secs = 0\n",
    );
    let daemon = Tunerd::start(&root, None);
    assert!(
        daemon.log().is_empty() || !daemon.log().contains("<3>"),
        "{}",
        daemon.log()
    );

    let mut listener = UeventListener::new();
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let mut node = LoopNode::create();
        let name = node.name();
        let (event_at, _) = listener
            .wait_for("add", &name, Duration::from_secs(5))
            .expect("kernel add event");
        // Every knob of the rule: the elevator and nr_requests are written last.
        let tuned = eventually(Duration::from_secs(5), || {
            fs::read_to_string(node.sys("queue/nomerges")).is_ok_and(|v| v.trim() == "1")
                && fs::read_to_string(node.sys("queue/read_ahead_kb"))
                    .is_ok_and(|v| v.trim() == "1024")
                && fs::read_to_string(node.sys("queue/nr_requests")).is_ok_and(|v| v.trim() == "64")
        });
        assert!(tuned.is_some(), "{name} not tuned: {}", daemon.log());
        latencies.push(event_at.elapsed().saturating_sub(Duration::ZERO));
        let sched = fs::read_to_string(node.sys("queue/scheduler")).expect("scheduler");
        assert!(sched.contains("[mq-deadline]"), "{sched}");
        assert_eq!(
            fs::read_to_string(node.sys("queue/nr_requests"))
                .expect("nr")
                .trim(),
            "64"
        );

        // change: values reset behind tunerd's back, then a change event re-tunes.
        fs::write(node.sys("queue/read_ahead_kb"), "128").expect("reset");
        fs::write(node.sys("uevent"), "change").expect("change event");
        let retuned = eventually(Duration::from_secs(5), || {
            fs::read_to_string(node.sys("queue/read_ahead_kb")).is_ok_and(|v| v.trim() == "1024")
        });
        assert!(retuned.is_some(), "{name}: change did not re-tune");

        // remove: nothing of it stays in the journal.
        let journal = root.scratch.join("run/tunerd/originals.json");
        assert!(fs::read_to_string(&journal)
            .unwrap_or_default()
            .contains(&format!("\"{name}\"")));
        node.remove().expect("remove");
        let forgotten = eventually(Duration::from_secs(5), || {
            !fs::read_to_string(&journal)
                .unwrap_or_default()
                .contains(&format!("\"{name}\""))
        });
        assert!(
            forgotten.is_some(),
            "{name}: removed device left state behind"
        );
    }
    eprintln!("hotplug (upper bound incl. test polling): {latencies:?}");
}

/// The file ranges `[start, end)` of the binary's sections the daemon gives back after
/// locking (src/service/unlock.rs: unwind tables, dynamic relocations), merged where they
/// touch, page-aligned outwards: `readelf -SW` (binutils, which the Rust linker needs).
fn released_file_ranges(exe: &str) -> Vec<(u64, u64)> {
    let out = Command::new("readelf")
        .args(["-SW", exe])
        .output()
        .expect("readelf");
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `  [14] .eh_frame  PROGBITS  0000000000099d88 099d88 042684 00   A  0   0  8`
        let Some(rest) = line.split_once(']').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let named = [
            ".eh_frame_hdr",
            ".eh_frame",
            ".gcc_except_table",
            ".rela.dyn",
        ];
        if f.len() < 5 || !named.contains(&f[0]) {
            continue;
        }
        let hex = |v: &str| u64::from_str_radix(v, 16).unwrap_or(0);
        let (off, size) = (hex(f[3]), hex(f[4]));
        ranges.push((off / 4096 * 4096, (off + size).div_ceil(4096) * 4096));
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Disk independence: after start, every page of the daemon's program and libraries is in
/// memory and locked, so a hung root disk cannot stall it on a page-in. In smaps: every
/// file-backed mapping is VM_LOCKED (`lo` in VmFlags) and wholly resident (Rss = Size),
/// except the binary's unwind tables and relocations, which it gives back on purpose
/// (nothing reads them after start; a panic aborts): those and only those are unlocked.
/// (smaps' `Locked:` is proportional to sharing, so it is not the measure.)
#[test]
fn real_kernel_daemon_pages_are_locked_in_memory() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let root = KernelRoot::new("mlock");
    root.add_profile("t", "[[disk]]\nmatch = { name = \"none\" }\nnomerges = 1\n");
    write_config(
        &root,
        "profile = \"t\"\n[daemon]\ndrift_interval_secs = 0\n",
    );
    let daemon = Tunerd::start(&root, None);
    std::thread::sleep(Duration::from_millis(300));
    let smaps = fs::read_to_string(format!("/proc/{}/smaps", daemon.pid())).expect("smaps");
    let exe = fs::read_link(format!("/proc/{}/exe", daemon.pid()))
        .expect("exe")
        .to_string_lossy()
        .into_owned();
    let released = released_file_ranges(&exe);
    assert!(!released.is_empty(), "no unwind tables in {exe}?");
    let mut file_mappings = 0;
    let mut given_back = 0;
    let mut path: Option<String> = None;
    // The mapping's file range, for the binary's given-back sections.
    let mut file_range = (0u64, 0u64);
    let (mut size, mut rss) = (0u64, 0u64);
    let mut problems = Vec::new();
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let p = line.split_whitespace().nth(5).unwrap_or("");
            path = p.starts_with('/').then(|| p.to_string());
            let (a, b) = first.split_once('-').unwrap_or(("0", "0"));
            let hex = |v: &str| u64::from_str_radix(v, 16).unwrap_or(0);
            let off = hex(line.split_whitespace().nth(2).unwrap_or("0"));
            file_range = (off, off + hex(b).saturating_sub(hex(a)));
            continue;
        }
        let value: u64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match first {
            "Size:" => size = value,
            "Rss:" => rss = value,
            "VmFlags:" => {
                if let Some(p) = path.take() {
                    file_mappings += 1;
                    let locked = line.split_whitespace().any(|fl| fl == "lo");
                    let (from, to) = file_range;
                    let its_own = p == exe && released.iter().any(|(s, e)| *s <= from && to <= *e);
                    if its_own && !locked {
                        given_back += 1;
                    } else if !locked || rss < size {
                        problems.push(format!(
                            "{p} (file {from:#x}..{to:#x}): locked={locked} resident {rss} of {size} kB"
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    assert!(file_mappings >= 3, "program and libraries mapped: {smaps}");
    assert!(
        problems.is_empty(),
        "pages that could need the disk (given back: {released:x?}): {problems:#?}"
    );
    assert!(
        given_back > 0,
        "the unwind tables and relocations ({released:x?}) are still locked"
    );
}
