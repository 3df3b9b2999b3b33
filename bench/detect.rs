//! Detection latency, printed (never asserted): from a real storage failure in the kernel to
//! the webhook arriving at a receiver on 127.0.0.1, p50 / p99.
//!
//! The failures are the kernel's own: an ext4 error on a loop device, made by writing to
//! `/sys/fs/ext4/loopN/trigger_fs_error` (ext4 then prints `EXT4-fs error (device loopN): ...`
//! and records it). Lines written into /dev/kmsg from user space would not do: tunerd believes
//! only the kernel's records (facility 0), as it must. Each failure is on its own filesystem
//! (`errors=continue`, so it stays mounted read-write), so each is a new incident, delivered at
//! once; rounds reuse the filesystems after their incidents ended (`quiet_secs = 1`, checked
//! at the next sample: up to 30 s on an idle machine).
//!
//! Run as root: `cargo bench --bench detect` (`TUNERD_BENCH_N`, default 60 failures: 30
//! filesystems, 2 rounds). It holds `flock /tmp/tunerd-kernel-tests.lock` (as bench/side-by-side
//! does) so that it never runs beside another measurement or the kernel tier run that way.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::tunerd::{eventually, Tunerd};
use common::{mount, KernelRoot, LoopDev};

const FILESYSTEMS: usize = 30;

fn main() {
    let n: usize = std::env::var("TUNERD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
        .max(1);
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/tunerd-kernel-tests.lock")
        .expect("lock file");
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("flock");
    let receiver = Receiver::start();
    let root = KernelRoot::new("bench-detect");
    root.add_profile(
        "watch-only",
        "[[disk]]\nmatch = { name = \"none\" }\nnomerges = 1\n",
    );
    fs::write(
        root.scratch.join("etc/tunerd/tunerd.toml"),
        format!(
            "profile = \"watch-only\"\n[daemon]\ndrift_interval_secs = 0\n[watch]\nquiet_secs = 1\n[alert]\n[[alert.webhook]]\nurl = \"{}\"\n",
            receiver.url("/hook")
        ),
    )
    .expect("config");
    let count = FILESYSTEMS.min(n);
    let disks: Vec<LoopDev> = (0..count)
        .map(|_| LoopDev::new(&root.loop_dir(), 16))
        .collect();
    let mut mounts = Vec::new();
    for d in &disks {
        let dev = format!("/dev/{}", d.name);
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F", &dev])
            .output()
            .expect("mkfs.ext4");
        assert!(out.status.success(), "mkfs.ext4 {dev}");
        mounts.push(mount(
            &dev,
            &root.scratch.join(&format!("mnt-{}", d.name)),
            "errors=continue",
        ));
    }
    let daemon = Tunerd::start(&root, None);
    // The daemon reads the kernel log from this boot's start: let it catch up first.
    std::thread::sleep(Duration::from_secs(1));
    let mut latencies = Vec::new();
    let mut seen = 0;
    'rounds: for round in 0.. {
        for d in &disks {
            if latencies.len() >= n {
                break 'rounds;
            }
            let sent = Instant::now();
            fs::write(
                format!("/sys/fs/ext4/{}/trigger_fs_error", d.name),
                format!("tunerd bench round {round}"),
            )
            .expect("trigger_fs_error");
            let needle = format!("\"{}\"", d.name);
            let arrived = |from: usize| {
                receiver
                    .requests()
                    .iter()
                    .skip(from)
                    .find(|r| r.body.contains(&needle) && r.body.contains("\"firing\""))
                    .map(|r| r.at)
            };
            if eventually(Duration::from_secs(10), || arrived(seen).is_some()).is_none() {
                println!("no webhook for {}: {}", d.name, daemon.log());
                return;
            }
            let at = arrived(seen).unwrap_or_else(Instant::now);
            latencies.push(at.saturating_duration_since(sent));
        }
        // Every incident of this round ends after quiet_secs; the next round's are new.
        let all_ended = || {
            let reqs = receiver.requests();
            disks.iter().all(|d| {
                reqs.iter().skip(seen).any(|r| {
                    r.body.contains(&format!("\"{}\"", d.name)) && r.body.contains("\"resolved\"")
                })
            })
        };
        if eventually(Duration::from_secs(45), all_ended).is_none() {
            println!("round {round}: not every incident ended: {}", daemon.log());
            return;
        }
        seen = receiver.requests().len();
    }
    drop(daemon);
    drop(mounts);
    latencies.sort();
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "detection, a real ext4 error (the kernel's record) -> webhook received on 127.0.0.1, n={}: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        latencies.len(),
        ms(q(0.5)),
        ms(q(0.99)),
        ms(latencies[latencies.len() - 1])
    );
}
