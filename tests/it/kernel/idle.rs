//! What the idle daemon costs, printed as FIGURE lines (never asserted): wake-ups per second
//! with every detector on (kmsg, fanotify on an ext4 mount, the samplers with PSI triggers,
//! the mount table and md; the journal is followed only with the root `/`), and its
//! resident and locked memory. Run on purpose:
//! `cargo test --test it kernel::idle -- --ignored --nocapture` (TUNERD_IDLE_SECS, default
//! 60). `TUNERD_FIGURE_BIN=/path/to/tunerd` measures another build (the one before a change)
//! in the same conditions.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::harness::PrivateBus;
use crate::common::tier::{self, Tier};
use crate::common::tunerd::*;
use crate::common::*;

/// Voluntary + involuntary context switches of each thread of `pid`: (thread name, count).
fn switches(pid: i32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for t in fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let mut name = String::new();
        let mut n = 0;
        for l in text.lines() {
            if let Some(v) = l.strip_prefix("Name:") {
                name = format!("{} ({})", v.trim(), t.file_name().to_string_lossy());
            }
            if l.starts_with("voluntary_ctxt_switches")
                || l.starts_with("nonvoluntary_ctxt_switches")
            {
                n += l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        out.push((name, n));
    }
    out.sort();
    out
}

/// Resident and locked kB of `pid` by mapping, from /proc/PID/smaps: each file by name, the
/// heap, the main stack, and the anonymous mappings (thread stacks, malloc arenas) together.
fn smaps_breakdown(pid: i32) -> Vec<(String, u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut current = String::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first()
            .is_some_and(|a| a.contains('-') && !a.ends_with(':'))
        {
            current = match f.get(5) {
                Some(p) if p.starts_with('/') => p.rsplit('/').next().unwrap_or(p).to_string(),
                Some(p) => p.to_string(),
                None => "[anon: thread stacks, malloc arenas]".to_string(),
            };
        } else if let (Some(key), Some(v)) =
            (f.first(), f.get(1).and_then(|v| v.parse::<u64>().ok()))
        {
            let e = by.entry(current.clone()).or_default();
            match *key {
                "Rss:" => e.0 += v,
                "Locked:" => e.1 += v,
                _ => {}
            }
        }
    }
    let mut out: Vec<(String, u64, u64)> = by.into_iter().map(|(k, (r, l))| (k, r, l)).collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}

#[test]
#[ignore = "a 60 s measurement: run with --ignored --nocapture"]
fn idle_wakeups_with_every_detector_on_figure() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let _serial = kernel_lock();
    let bus = PrivateBus::start();
    let root = KernelRoot::new("idle");
    let disk = LoopDev::new(&root.loop_dir(), 64);
    let dev = format!("/dev/{}", disk.name);
    let ok = Command::new("mkfs.ext4")
        .args(["-q", "-F", &dev])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mkfs.ext4");
    let mnt = root.scratch.join("mnt");
    fs::create_dir_all(&mnt).expect("mountpoint");
    let ok = Command::new("mount")
        .arg(&dev)
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "mount");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    root.add_profile(
        "watch-only",
        "[[disk]]\nmatch = { name = \"nothing-matches\" }\nnomerges = 1\n",
    );
    // The shipped defaults: drift check every 30 s, samplers at 1 s, every source on.
    fs::write(
        root.scratch.join("etc/tunerd/tunerd.toml"),
        "profile = \"watch-only\"\n[daemon]\ndrift_interval_secs = 30\n",
    )
    .expect("config");
    let daemon = Tunerd::start(&root, Some(&bus));
    let pid = daemon.pid();
    // Past start-up (the first samples, the bus connection).
    std::thread::sleep(Duration::from_secs(3));
    let secs: u64 = std::env::var("TUNERD_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let before = switches(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let after = switches(pid);
    let elapsed = started.elapsed().as_secs_f64();
    let mut total = 0;
    for (name, n) in &after {
        let was = before
            .iter()
            .find(|(b, _)| b == name)
            .map_or(0, |(_, v)| *v);
        total += n - was;
        eprintln!(
            "FIGURE name=idle_wakeups_thread value={name}: {} in {elapsed:.0} s",
            n - was
        );
    }
    eprintln!(
        "FIGURE name=idle_wakeups value={:.3}/s ({total} context switches of {} threads in {elapsed:.0} s; drift check every 30 s, samplers at sample_ms 1000, kmsg, fanotify on {}, D-Bus)",
        total as f64 / elapsed,
        after.len(),
        mnt.display()
    );
    eprintln!(
        "FIGURE name=idle_memory value=VmRSS {} kB, VmLck {} kB, VmHWM {} kB",
        status_kb(pid, "VmRSS:"),
        status_kb(pid, "VmLck:"),
        status_kb(pid, "VmHWM:")
    );
    for (name, rss, locked) in smaps_breakdown(pid) {
        if rss > 0 {
            eprintln!(
                "FIGURE name=idle_memory_mapping value={name}: Rss {rss} kB, Locked {locked} kB"
            );
        }
    }
    if let Some(line) = daemon.log().lines().find(|l| l.contains("samplers:")) {
        eprintln!("FIGURE name=idle_samplers value={line}");
    }
}
