//! tunerd's own figures on this machine, printed (never asserted):
//! - exec to applied (the daemon's READY=1 on its notify socket, sent after the profile is
//!   applied) and the daemon's own "in N ms" from its log;
//! - resident memory after start and after a hotplug storm;
//! - idle wake-ups per second over 60 s (context switches of all its threads);
//! - hotplug: from the kernel's uevent to every knob of the rule read back from sysfs,
//!   p50 / p99 over 60 new loop devices, with the kernel's events and with systemd-udevd.
//!
//! Run as root: `cargo bench --bench daemon` (about 90 s). Set TUNERD_BENCH_IDLE_SECS to
//! shorten the idle measurement.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::harness::{LoopNode, PrivateBus, Udevd, UeventListener};
use common::KernelRoot;

fn status_field(pid: u32, field: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Voluntary + involuntary context switches of every thread of `pid`.
fn switches(pid: u32) -> (u64, usize) {
    let mut total = 0;
    let mut threads = 0;
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            threads += 1;
            let text = fs::read_to_string(t.path().join("status")).unwrap_or_default();
            for l in text.lines() {
                if l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
                {
                    total += l
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
    (total, threads)
}

struct Daemon {
    child: Child,
    ready: Duration,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(root: &KernelRoot, bus: Option<&PrivateBus>) -> Daemon {
        let sock = root.scratch.join("notify.sock");
        let _ = fs::remove_file(&sock);
        let notify = UnixDatagram::bind(&sock).expect("notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let log = root.scratch.join("tunerd.log");
        let started = Instant::now();
        let mut cmd = match bus {
            Some(b) => b.command(env!("CARGO_BIN_EXE_tunerd")),
            None => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_tunerd"));
                c.arg("--no-dbus");
                c
            }
        };
        let child = cmd
            .arg("--root")
            .arg(root.path())
            .env("NOTIFY_SOCKET", &sock)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn tunerd");
        let mut buf = [0u8; 256];
        let ready = loop {
            if let Ok(n) = notify.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                    break started.elapsed();
                }
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no READY");
        };
        Daemon { child, ready, log }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// New loop devices one after another; for each, the time from the kernel's `add` uevent to
/// the moment all four knobs read back as the rule wants.
fn hotplug_round(label: &str, n: usize) {
    let mut listener = UeventListener::new();
    let mut lat = Vec::with_capacity(n);
    let mut first = Vec::with_capacity(n);
    for _ in 0..n {
        let node = LoopNode::create();
        let name = node.name();
        let Some((at, _)) = listener.wait_for("add", &name, Duration::from_secs(5)) else {
            println!("{label}: no add event for {name}");
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut first_seen = false;
        loop {
            if !first_seen
                && fs::read_to_string(node.sys("queue/read_ahead_kb"))
                    .is_ok_and(|v| v.trim() == "1024")
            {
                first.push(at.elapsed());
                first_seen = true;
            }
            let ok = fs::read_to_string(node.sys("queue/nomerges")).is_ok_and(|v| v.trim() == "1")
                && fs::read_to_string(node.sys("queue/read_ahead_kb"))
                    .is_ok_and(|v| v.trim() == "1024")
                && fs::read_to_string(node.sys("queue/nr_requests"))
                    .is_ok_and(|v| v.trim() == "64")
                && fs::read_to_string(node.sys("queue/scheduler"))
                    .is_ok_and(|v| v.contains("[mq-deadline]"));
            if ok {
                lat.push(at.elapsed());
                break;
            }
            if Instant::now() > deadline {
                println!("{label}: {name} never tuned");
                break;
            }
            std::hint::spin_loop();
        }
        drop(node);
    }
    lat.sort();
    first.sort();
    if lat.is_empty() || first.is_empty() {
        return;
    }
    println!(
        "hotplug, {label:<28} n={:<3} first knob (read_ahead_kb): p50 {:>6.2} ms  p99 {:>6.2} ms",
        first.len(),
        percentile(&first, 0.5).as_secs_f64() * 1000.0,
        percentile(&first, 0.99).as_secs_f64() * 1000.0
    );
    println!(
        "hotplug, {label:<28} n={:<3} every knob (incl. 2 queue freezes): p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat[lat.len() - 1].as_secs_f64() * 1000.0
    );
}

fn main() {
    let root = KernelRoot::new("bench-daemon");
    // Only the loop devices this benchmark creates (numbers >= 300) match.
    root.add_profile(
        "bench",
        "[[disk]]\nmatch = { name = \"loop[3-9]??\" }\nscheduler = \"mq-deadline\"\nnr_requests = 64\nread_ahead_kb = 1024\nnomerges = 1\n",
    );
    fs::write(
        root.scratch.join("etc/tunerd/tunerd.toml"),
        "profile = \"bench\"\n[daemon]\ndrift_interval_secs = 30\n",
    )
    .expect("config");

    let bus = PrivateBus::start();
    for (label, with_bus) in [("without D-Bus", None), ("serving D-Bus", Some(&bus))] {
        let mut starts = Vec::new();
        for _ in 0..10 {
            let d = Daemon::start(&root, with_bus);
            starts.push(d.ready);
            let log = fs::read_to_string(&d.log).unwrap_or_default();
            if starts.len() == 1 {
                if let Some(line) = log.lines().find(|l| l.contains(" ms")) {
                    println!("tunerd says: {}", line.trim_start_matches("<6>"));
                }
            }
        }
        starts.sort();
        println!(
            "exec to READY=1 (profile applied), {label}, n=10: min {:.2} ms  median {:.2} ms  max {:.2} ms",
            starts[0].as_secs_f64() * 1000.0,
            percentile(&starts, 0.5).as_secs_f64() * 1000.0,
            starts[9].as_secs_f64() * 1000.0
        );
    }

    // The production shape: serving the bus, watching hotplug, drift check every 30 s.
    let daemon = Daemon::start(&root, Some(&bus));
    let pid = daemon.child.id();
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "resident memory after start (serving D-Bus): VmRSS {} kB, VmHWM {} kB, locked (VmLck) {} kB",
        status_field(pid, "VmRSS:"),
        status_field(pid, "VmHWM:"),
        status_field(pid, "VmLck:")
    );

    let idle_secs: u64 = std::env::var("TUNERD_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let (before, threads) = switches(pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (after, _) = switches(pid);
    println!(
        "idle wake-ups over {idle_secs} s: {} context switches in {threads} threads = {:.3}/s (drift check every 30 s)",
        after - before,
        (after - before) as f64 / idle_secs as f64
    );

    hotplug_round("kernel uevents (no udevd)", 60);
    {
        let _udevd = Udevd::start();
        drop(daemon);
        // Restart so the daemon's monitor reads udev's events instead of the kernel's.
        let daemon = Daemon::start(&root, Some(&bus));
        hotplug_round("udev events (systemd-udevd)", 60);
        println!(
            "resident memory after 120 hotplugged disks: VmRSS {} kB, VmHWM {} kB",
            status_field(daemon.child.id(), "VmRSS:"),
            status_field(daemon.child.id(), "VmHWM:")
        );
    }
    let size = |p: &str| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    println!(
        "binary sizes (this build): tunerd {} KB, tunerctl {} KB",
        size(env!("CARGO_BIN_EXE_tunerd")) / 1024,
        size(env!("CARGO_BIN_EXE_tunerctl")) / 1024
    );
}
