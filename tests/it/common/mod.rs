//! Shared test harness: scratch directories on tmpfs, loop devices the test creates and
//! always detaches, a root that is the real kernel but the test's own configuration and
//! runtime state, and a guard that restores global vm settings.
// Every item is used by the test binary; the benches (bench/daemon.rs, bench/detect.rs)
// include this harness too and use a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// Tests that change global kernel state (vm sysctls) or count loop devices run one at a time.
static KERNEL: Mutex<()> = Mutex::new(());

pub fn kernel_lock() -> MutexGuard<'static, ()> {
    KERNEL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn tunerctl() -> &'static str {
    env!("CARGO_BIN_EXE_tunerctl")
}

/// A directory on tmpfs (/dev/shm), removed on drop: nothing a test writes reaches the
/// machine's own disk.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let path = PathBuf::from(format!(
            "/dev/shm/tunerd-test-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("scratch dir on /dev/shm");
        Scratch { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// The scratch directory as a tunerd root.
    pub fn root(&self) -> ::tunerd::host::sys::Root {
        ::tunerd::host::sys::Root::new(&self.path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A loop device over a sparse file on tmpfs, detached on drop (also when the test panics).
///
/// A loop device keeps its queue settings across detach and re-attach, so the guard also
/// restores every writable queue and bdi attribute it found, whatever the test did.
pub struct LoopDev {
    pub name: String,
    pub backing: PathBuf,
    initial: BTreeMap<String, String>,
}

/// Attributes a test may change, in the order they must be restored (the scheduler first:
/// switching it resets nr_requests).
const RESTORE: [&str; 12] = [
    "queue/scheduler",
    "queue/nr_requests",
    "queue/read_ahead_kb",
    "queue/max_sectors_kb",
    "queue/rq_affinity",
    "queue/nomerges",
    "queue/add_random",
    "queue/write_cache",
    "queue/rotational",
    "bdi/max_ratio_fine",
    "bdi/min_ratio_fine",
    "bdi/strict_limit",
];

impl LoopDev {
    /// The attribute's value when the device was made, before any daemon touched it: what a
    /// revert must put back. (Not a constant: a new loop device's `read_ahead_kb` is 128 or
    /// twice its backing device's optimal I/O size, 2560 over this machine's vda.)
    pub fn initial(&self, rel: &str) -> String {
        self.initial
            .get(rel)
            .cloned()
            .unwrap_or_else(|| panic!("{rel} was not recorded at creation"))
    }

    pub fn new(dir: &Path, size_mb: u64) -> LoopDev {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let backing = dir.join(format!("disk{}.img", N.fetch_add(1, Ordering::SeqCst)));
        let file = fs::File::create(&backing).expect("backing file");
        file.set_len(size_mb << 20).expect("sparse size");
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&backing)
            .output()
            .expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let name = dev.trim_start_matches("/dev/").to_string();
        assert!(name.starts_with("loop"), "unexpected device {dev}");
        let mut disk = LoopDev {
            name,
            backing,
            initial: BTreeMap::new(),
        };
        for rel in RESTORE {
            if let Ok(v) = fs::read_to_string(disk.sys(rel)) {
                let v = v.trim().to_string();
                let v = if rel == "queue/scheduler" {
                    v.split('[')
                        .nth(1)
                        .and_then(|r| r.split(']').next())
                        .unwrap_or("none")
                        .to_string()
                } else {
                    v
                };
                disk.initial.insert(rel.to_string(), v);
            }
        }
        disk
    }

    pub fn sys(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/sys/block/{}/{rel}", self.name))
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.sys(rel))
            .unwrap_or_else(|e| panic!("read {}: {e}", self.sys(rel).display()))
            .trim()
            .to_string()
    }

    /// Every readable attribute of the queue, the bdi and the disk itself: what a round
    /// trip must leave exactly as it found. `max_bytes`/`min_bytes` are left out: the kernel
    /// derives them from the ratios and the free memory of the moment.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for dir in ["queue", "bdi"] {
            let base = self.sys(dir);
            let Ok(entries) = fs::read_dir(&base) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == "max_bytes" || name == "min_bytes" || name == "uevent" {
                    continue;
                }
                if let Ok(v) = fs::read_to_string(e.path()) {
                    out.insert(format!("{dir}/{name}"), v);
                }
            }
        }
        out
    }
}

impl LoopDev {
    /// Puts back every attribute as it was when the device was attached.
    pub fn restore(&self) {
        for rel in RESTORE {
            if let Some(v) = self.initial.get(rel) {
                let _ = fs::write(self.sys(rel), v);
            }
        }
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        self.restore();
        let _ = Command::new("losetup")
            .arg("-d")
            .arg(format!("/dev/{}", self.name))
            .status();
    }
}

/// A mount the test made, unmounted on drop (lazily when busy), also when the test panics.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        if fs::read_to_string("/proc/self/mountinfo")
            .is_ok_and(|m| m.contains(&format!(" {} ", self.0.display())))
        {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Mounts `dev` on `dir` (made if missing) with `opts`; panics with mount's error.
pub fn mount(dev: &str, dir: &Path, opts: &str) -> Mounted {
    fs::create_dir_all(dir).expect("mountpoint");
    let out = Command::new("mount")
        .args(["-o", opts, dev])
        .arg(dir)
        .output()
        .expect("mount");
    assert!(
        out.status.success(),
        "mount {dev} {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Mounted(dir.to_path_buf())
}

/// Detaches a loop device the test attached itself (`losetup`), on drop.
pub struct Detach(pub String);

impl Drop for Detach {
    fn drop(&mut self) {
        let _ = Command::new("losetup")
            .arg("-d")
            .arg(format!("/dev/{}", self.0))
            .status();
    }
}

pub const VM_KNOBS: [&str; 7] = [
    "swappiness",
    "dirty_ratio",
    "dirty_bytes",
    "dirty_background_ratio",
    "dirty_background_bytes",
    "dirty_expire_centisecs",
    "dirty_writeback_centisecs",
];

/// The hung-task sysctls a profile's `[kernel]` table sets, under /proc/sys/kernel.
pub const KERNEL_KNOBS: [&str; 2] = ["hung_task_timeout_secs", "hung_task_warnings"];

/// The machine-wide settings a profile may change: `/proc/sys/vm/K` as `K`, and
/// `/proc/sys/kernel/K` as `kernel/K`.
pub fn vm_snapshot() -> BTreeMap<String, String> {
    let read = |path: String| {
        fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let mut out: BTreeMap<String, String> = VM_KNOBS
        .iter()
        .map(|k| (k.to_string(), read(format!("/proc/sys/vm/{k}"))))
        .collect();
    for k in KERNEL_KNOBS {
        out.insert(format!("kernel/{k}"), read(format!("/proc/sys/kernel/{k}")));
    }
    out
}

/// Restores the machine's vm and hung-task settings on drop, whatever the test did or how it ended.
/// The `_bytes` form of a pair is written first only when it was the one in force.
pub struct VmGuard {
    saved: BTreeMap<String, String>,
}

impl VmGuard {
    pub fn new() -> VmGuard {
        VmGuard {
            saved: vm_snapshot(),
        }
    }
}

impl Drop for VmGuard {
    fn drop(&mut self) {
        for (ratio, bytes) in [
            ("dirty_ratio", "dirty_bytes"),
            ("dirty_background_ratio", "dirty_background_bytes"),
        ] {
            let b = self.saved.get(bytes).cloned().unwrap_or_default();
            let (k, v) = if b != "0" && !b.is_empty() {
                (bytes, b)
            } else {
                (ratio, self.saved.get(ratio).cloned().unwrap_or_default())
            };
            let _ = fs::write(format!("/proc/sys/vm/{k}"), v);
        }
        for k in [
            "swappiness",
            "dirty_expire_centisecs",
            "dirty_writeback_centisecs",
        ] {
            if let Some(v) = self.saved.get(k) {
                let _ = fs::write(format!("/proc/sys/vm/{k}"), v);
            }
        }
        for k in KERNEL_KNOBS {
            if let Some(v) = self.saved.get(&format!("kernel/{k}")) {
                let _ = fs::write(format!("/proc/sys/kernel/{k}"), v);
            }
        }
    }
}

/// A root whose `sys` and `proc` are the real kernel's and whose `etc/tunerd` and
/// `run/tunerd` belong to the test: the product code runs unchanged on the real kernel
/// without touching the machine's own configuration.
pub struct KernelRoot {
    pub scratch: Scratch,
}

impl KernelRoot {
    pub fn new(tag: &str) -> KernelRoot {
        let scratch = Scratch::new(tag);
        std::os::unix::fs::symlink("/sys", scratch.join("sys")).expect("sys link");
        std::os::unix::fs::symlink("/proc", scratch.join("proc")).expect("proc link");
        std::os::unix::fs::symlink("/dev", scratch.join("dev")).expect("dev link");
        fs::create_dir_all(scratch.join("etc/tunerd/profiles.d")).expect("etc");
        fs::create_dir_all(scratch.join("run/tunerd")).expect("run");
        KernelRoot { scratch }
    }

    pub fn path(&self) -> &Path {
        &self.scratch.path
    }

    pub fn add_profile(&self, name: &str, text: &str) {
        fs::write(
            self.scratch
                .join(&format!("etc/tunerd/profiles.d/{name}.toml")),
            text,
        )
        .expect("profile");
    }

    pub fn loop_dir(&self) -> PathBuf {
        let dir = self.scratch.join("disks");
        fs::create_dir_all(&dir).expect("disks dir");
        dir
    }

    pub fn tunerctl(&self, args: &[&str]) -> Output {
        Command::new(tunerctl())
            .arg("--root")
            .arg(self.path())
            .args(args)
            .output()
            .expect("run tunerctl")
    }

    pub fn tunerctl_json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let out = self.tunerctl(&[args, &["--json"]].concat());
        let code = out.status.code().unwrap_or(-1);
        let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "tunerctl {args:?}: not JSON ({e}); stdout: {} stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, value)
    }
}

/// A `kB` field of /proc/PID/status (`VmRSS:`, `VmLck:`, `VmHWM:`), 0 when absent.
pub fn status_kb(pid: i32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `(target, status)` of every outcome in an apply or revert report.
pub fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["outcomes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    (
                        o["target"].as_str().unwrap_or("").to_string(),
                        o["status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A platform fixture mounted through `tests/fakesys` (FUSE): `sys` and `proc` behave like
/// the kernel's where it matters (scheduler brackets, EINVAL, read-only attributes, exclusive
/// pairs), `etc/tunerd` and `run/tunerd` are plain directories. Unmounted on drop.
pub struct FakeRoot {
    pub scratch: Scratch,
    children: Vec<std::process::Child>,
    mounts: Vec<PathBuf>,
}

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn mounted(path: &Path) -> bool {
    let needle = format!(" {} ", path.display());
    fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.contains(&needle)))
        .unwrap_or(false)
}

impl FakeRoot {
    pub fn new(fixture: &str) -> FakeRoot {
        let scratch = Scratch::new(&format!("fake-{fixture}"));
        let mut root = FakeRoot {
            scratch,
            children: Vec::new(),
            mounts: Vec::new(),
        };
        for sub in ["etc/tunerd/profiles.d", "run/tunerd"] {
            fs::create_dir_all(root.scratch.join(&format!("root/{sub}"))).expect("mkdir");
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fakesys/fakesys.py");
        for tree in ["sys", "proc"] {
            let src = root.scratch.join(&format!("src-{tree}"));
            let st = Command::new("cp")
                .arg("-a")
                .arg(fixture_dir(fixture).join(tree))
                .arg(&src)
                .status()
                .expect("cp");
            assert!(st.success(), "copy fixture {fixture}/{tree}");
            let mnt = root.scratch.join(&format!("root/{tree}"));
            fs::create_dir_all(&mnt).expect("mountpoint");
            let child = Command::new("python3")
                .arg(&script)
                .arg(&src)
                .arg(&mnt)
                .stdin(std::process::Stdio::null())
                .spawn()
                .expect("python3 tests/fakesys/fakesys.py (needs fusepy and libfuse2)");
            root.children.push(child);
            root.mounts.push(mnt.clone());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !mounted(&mnt) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "fakesys did not mount {}",
                    mnt.display()
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        root
    }

    pub fn root(&self) -> PathBuf {
        self.scratch.join("root")
    }

    /// The fixture's files as they are now (what fakesys stored), relative path -> content.
    pub fn source_files(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for tree in ["sys", "proc"] {
            collect_files(&self.scratch.join(&format!("src-{tree}")), tree, &mut out);
        }
        out
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root().join(rel))
            .unwrap_or_else(|e| panic!("read {rel}: {e}"))
            .trim()
            .to_string()
    }

    pub fn add_profile(&self, name: &str, text: &str) {
        fs::write(
            self.root()
                .join(format!("etc/tunerd/profiles.d/{name}.toml")),
            text,
        )
        .expect("profile");
    }

    pub fn tunerctl_json(&self, args: &[&str]) -> (i32, serde_json::Value) {
        let out = Command::new(tunerctl())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .arg("--json")
            .output()
            .expect("run tunerctl");
        let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "tunerctl {args:?}: not JSON ({e}): {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), value)
    }
}

pub fn collect_files(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect_files(&e.path(), &name, out);
        } else if ft.is_file() {
            out.insert(name, fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        for m in &self.mounts {
            let _ = Command::new("fusermount").arg("-u").arg(m).status();
            if mounted(m) {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
pub mod harness;
pub mod receiver;
pub mod tier;
pub mod tunerd;

/// (kind, device) of every incident in `tunerctl scan --json` output, sorted.
pub fn incident_kinds(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["incidents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["kind"].as_str().unwrap_or("").to_string(),
                        i["device"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
