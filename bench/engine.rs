//! Benchmarks of the engine, printed as figures (never asserted):
//! - plan and apply on a fixture of 1,000 disks: wall time and peak RSS of `tunerctl`;
//! - `tunerctl status` on this machine: wall time and peak RSS.
//!
//! Run: `cargo bench --bench engine`. Each figure is a whole `tunerctl` process, start-up
//! included, as a user or a monitoring script would see it.
//!
//! `TUNERD_BENCH_BASELINE=/path/to/old/tunerctl cargo bench --bench engine` measures that
//! binary too, on its own copy of the tree, alternating run by run with this build (old,
//! new, new, old, ...), so that the load of a shared machine falls on both alike: the
//! figures to compare are the two medians of one such run.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

struct Run {
    wall_ms: f64,
    max_rss_kb: i64,
    code: i32,
}

/// Runs one command and returns its wall time and peak RSS (from wait4's rusage).
// The child is reaped by wait4 (which also gives its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn measure(bin: &str, args: &[&str]) -> Run {
    let start = Instant::now();
    let child = Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel; pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    Run {
        wall_ms: start.elapsed().as_secs_f64() * 1000.0,
        max_rss_kb: usage.ru_maxrss,
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
    }
}

fn summary(name: &str, runs: &[Run]) {
    let mut walls: Vec<f64> = runs.iter().map(|r| r.wall_ms).collect();
    walls.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| walls[((walls.len() - 1) as f64 * q).round() as usize];
    let rss = runs.iter().map(|r| r.max_rss_kb).max().unwrap_or(0);
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    println!(
        "{name:<44} n={:<3} min {:>7.2} ms  median {:>7.2} ms  p90 {:>7.2} ms  peak RSS {:>6.2} MB  exit {:?}",
        runs.len(),
        pick(0.0),
        pick(0.5),
        pick(0.9),
        rss as f64 / 1024.0,
        {
            let mut c = codes.clone();
            c.dedup();
            c
        }
    );
}

/// Generates the 1,000-disk tree under `out` and returns its root.
fn make_tree(manifest: &std::path::Path, out: &std::path::Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(out);
    // The 1,000-disk tree (60k files) is generated, not stored in git.
    let st = Command::new("python3")
        .arg(manifest.join("tests/fixtures/make_fixtures.py"))
        .arg("--out")
        .arg(out)
        .arg("big")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 make_fixtures.py");
    assert!(st.success(), "make_fixtures.py big");
    out.join("big")
}

/// The 1,000-disk figures of one binary, its runs collected in `runs`.
#[derive(Default)]
struct Engine {
    plan: Vec<Run>,
    apply: Vec<Run>,
    second: Vec<Run>,
    revert: Vec<Run>,
}

fn main() {
    let bin = env!("CARGO_BIN_EXE_tunerctl");
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(format!("/dev/shm/tunerd-bench-{}", std::process::id()));
    let root = make_tree(&manifest, &out);
    let r = root.to_str().expect("utf-8 path").to_string();
    let disks = std::fs::read_dir(root.join("sys/block"))
        .map(|d| d.count())
        .unwrap_or(0);
    println!("fixture: {disks} disks (tests/fixtures/make_fixtures.py big, plain files on tmpfs)");
    // Optionally an older build, on its own tree, measured alternately with this one.
    let baseline = std::env::var("TUNERD_BENCH_BASELINE").ok().map(|old| {
        let out = PathBuf::from(format!("/dev/shm/tunerd-bench-{}-old", std::process::id()));
        let root = make_tree(&manifest, &out);
        (old, out, root.to_str().expect("utf-8 path").to_string())
    });
    let mut subjects: Vec<(&str, &str, Engine)> = vec![(bin, r.as_str(), Engine::default())];
    if let Some((old, _, root)) = &baseline {
        subjects.push((old.as_str(), root.as_str(), Engine::default()));
    }
    let rounds = if baseline.is_some() { 20 } else { 10 };
    for round in 0..rounds {
        // Alternate which binary goes first, so neither always runs just after the other.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..subjects.len()).collect()
        } else {
            (0..subjects.len()).rev().collect()
        };
        for i in order {
            let (bin, r, figures) = &mut subjects[i];
            figures.plan.push(measure(
                bin,
                &["--root", r, "--profile", "kvm", "plan", "--json"],
            ));
            if round % 2 == 0 || baseline.is_some() {
                figures
                    .apply
                    .push(measure(bin, &["--root", r, "--profile", "kvm", "apply"]));
                figures
                    .second
                    .push(measure(bin, &["--root", r, "--profile", "kvm", "apply"]));
                figures.revert.push(measure(bin, &["--root", r, "revert"]));
            }
        }
    }
    for (bin, _, figures) in &subjects {
        if baseline.is_some() {
            println!("{bin}:");
        }
        summary("plan, 1,000 disks (profile kvm)", &figures.plan);
        summary(
            "plan + apply, 1,000 disks (every knob written)",
            &figures.apply,
        );
        summary("plan + apply again (nothing to write)", &figures.second);
        summary("revert, 1,000 disks", &figures.revert);
    }
    let _ = std::fs::remove_dir_all(&out);
    if let Some((_, out, _)) = &baseline {
        let _ = std::fs::remove_dir_all(out);
    }

    let status: Vec<Run> = (0..30).map(|_| measure(bin, &["status"])).collect();
    summary("tunerctl status on this machine", &status);
    let plan_here: Vec<Run> = (0..30).map(|_| measure(bin, &["plan"])).collect();
    summary("tunerctl plan on this machine", &plan_here);
}
