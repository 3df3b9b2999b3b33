//! Detection latency, printed (never asserted): from a storage failure record entering the
//! kernel log to the webhook arriving at a receiver on 127.0.0.1, p50 / p99 over 100
//! failures, each on its own device (so each is a new incident, delivered at once).
//!
//! The failures are written into /dev/kmsg in the kernel's own format (`I/O error, dev ...`):
//! the record path through the ring buffer, tunerd's reader, catalog, incident engine, spool
//! and HTTP worker is the real one; only the origin of the line is a test's.
//!
//! Run as root: `cargo bench --bench detect`.

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::tunerd::{eventually, Tunerd};
use common::KernelRoot;

fn main() {
    let receiver = Receiver::start();
    let root = KernelRoot::new("bench-detect");
    root.add_profile(
        "watch-only",
        "[[disk]]\nmatch = { name = \"none\" }\nnomerges = 1\n",
    );
    fs::write(
        root.scratch.join("etc/tunerd/tunerd.toml"),
        format!(
            "profile = \"watch-only\"\n[daemon]\ndrift_interval_secs = 0\n[alert]\n[[alert.webhook]]\nurl = \"{}\"\n",
            receiver.url("/hook")
        ),
    )
    .expect("config");
    let daemon = Tunerd::start(&root, None);
    let tag = std::process::id();
    let mut latencies = Vec::new();
    for i in 0..100 {
        let device = format!("bench{tag}x{i}");
        // Each open file of /dev/kmsg may write 10 records per 5 s (printk.devkmsg=ratelimit).
        let mut kmsg = fs::OpenOptions::new()
            .write(true)
            .open("/dev/kmsg")
            .expect("/dev/kmsg");
        let line = format!(
            "<6>I/O error, dev {device}, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 2\n"
        );
        let sent = Instant::now();
        kmsg.write_all(line.as_bytes()).expect("write /dev/kmsg");
        let got = eventually(Duration::from_secs(10), || {
            receiver
                .requests()
                .iter()
                .any(|r| r.body.contains(&format!("\"{device}\"")))
        });
        let Some(_) = got else {
            println!("no webhook for {device}: {}", daemon.log());
            return;
        };
        let at = receiver
            .requests()
            .iter()
            .find(|r| r.body.contains(&format!("\"{device}\"")))
            .map(|r| r.at)
            .unwrap_or_else(Instant::now);
        latencies.push(at.duration_since(sent));
    }
    latencies.sort();
    let q = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "detection, kernel record -> webhook received on 127.0.0.1, n={}: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        latencies.len(),
        q(0.5).as_secs_f64() * 1000.0,
        q(0.99).as_secs_f64() * 1000.0,
        latencies[latencies.len() - 1].as_secs_f64() * 1000.0
    );
}
