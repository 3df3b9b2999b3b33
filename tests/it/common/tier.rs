//! Test tiers: what each needs, a skip that says so, and one tier at a time.
//!
//! Every test of a tier but `pure::` starts with
//! `let Some(_tier) = tier::require(Tier::Kernel) else { return };`. The tier's prerequisites
//! are checked once per process. When one is missing the test prints one line to stderr,
//! `SKIPPED kernel tier (kernel::daemon::...): not root (run as root); see README "Run the
//! tests"`, and returns: it passes without testing anything. With `TUNERD_TEST_ALL_TIERS=1`
//! (what `.ci/run` sets) a missing prerequisite fails the test instead, so CI cannot go green
//! on a skipped tier.
//!
//! `TUNERD_TEST_FAKE_MISSING=NAME,...` treats the prerequisites of those names as missing
//! (the names are in [`Tier::needs`], e.g. `root`, `alertmanager`, `qemu`), to see a skip or
//! its failure without uninstalling anything.
//!
//! The guard that `require` returns keeps the tiers apart: tests of one tier run in parallel
//! with each other, never with a test of another tier. Until they became one binary each file
//! was its own process and cargo ran them one after the other; the tests were written for that
//! (timing bounds in the receiver tests, a guest that keeps both cores busy, kernel tests that
//! share udevd and the kernel log).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Platform fixtures mounted through tests/fakesys (FUSE).
    Fixture,
    /// Root on the real kernel: loop devices, sysfs and vm writes, the daemon, udevd.
    Kernel,
    /// HTTP(S) receivers on 127.0.0.1 and a real Alertmanager.
    Receiver,
    /// A Debian guest under QEMU.
    Guest,
}

const TIERS: usize = 4;

/// One prerequisite of a tier.
#[derive(Clone, Copy)]
pub struct Need {
    /// Its name in `TUNERD_TEST_FAKE_MISSING`.
    pub name: &'static str,
    probe: Probe,
    /// How to get it.
    pub fix: &'static str,
}

#[derive(Clone, Copy)]
enum Probe {
    /// The effective uid is 0.
    Root,
    /// A file or device node exists.
    Exists(&'static str),
    /// A program on PATH or in /usr/sbin, /sbin.
    Program(&'static str),
    /// `PYTHON -c CODE` exits 0.
    Python(&'static str, &'static str),
    /// systemd-udevd, where Debian installs it.
    Udevd,
}

/// A program of that name.
const fn program(name: &'static str, fix: &'static str) -> Need {
    Need {
        name,
        probe: Probe::Program(name),
        fix,
    }
}

const ROOT: Need = Need {
    name: "root",
    probe: Probe::Root,
    fix: "run as root",
};

/// tests/fakesys and tests/gatefs: python3 with fusepy over libfuse2, mounted by fusermount.
const FUSE: [Need; 3] = [
    Need {
        name: "fuse",
        probe: Probe::Exists("/dev/fuse"),
        fix: "modprobe fuse",
    },
    program("fusermount", "apt-get install fuse"),
    Need {
        name: "fusepy",
        probe: Probe::Python("python3", "import fuse"),
        fix: "apt-get install libfuse2; python3 -m pip install fusepy==3.0.1",
    },
];

const FIXTURE: [Need; 3] = FUSE;

const KERNEL: [Need; 18] = [
    ROOT,
    Need {
        name: "loop",
        probe: Probe::Exists("/dev/loop-control"),
        fix: "modprobe loop",
    },
    program("losetup", "apt-get install util-linux"),
    program("setpriv", "apt-get install util-linux"),
    program("fsfreeze", "apt-get install util-linux"),
    program("mkfs.ext4", "apt-get install e2fsprogs"),
    program("mkfs.xfs", "apt-get install xfsprogs"),
    program("mkfs.btrfs", "apt-get install btrfs-progs"),
    program("dbus-daemon", "apt-get install dbus-daemon"),
    program("dbus-monitor", "apt-get install dbus-bin"),
    program("busctl", "apt-get install systemd"),
    program("udevadm", "apt-get install udev"),
    Need {
        name: "udevd",
        probe: Probe::Udevd,
        fix: "apt-get install udev",
    },
    Need {
        name: "python3-gi",
        probe: Probe::Python("/usr/bin/python3", "from gi.repository import Gio"),
        fix: "apt-get install python3-gi",
    },
    Need {
        name: "kmsg",
        probe: Probe::Exists("/dev/kmsg"),
        fix: "a kernel with CONFIG_PRINTK",
    },
    FUSE[0],
    FUSE[1],
    FUSE[2],
];

const RECEIVER: [Need; 3] = [
    program("openssl", "apt-get install openssl"),
    Need {
        name: "python3",
        probe: Probe::Python("python3", "import http.server, ssl"),
        fix: "apt-get install python3",
    },
    Need {
        name: "alertmanager",
        probe: Probe::Exists("/usr/bin/prometheus-alertmanager"),
        fix: "apt-get install prometheus-alertmanager",
    },
];

/// Every host program tests/it/guest.rs runs (cargo-deb aside: the .deb is built as README
/// "Install" says, and TUNERD_GUEST_DEB skips that).
const GUEST: [Need; 9] = [
    ROOT,
    Need {
        name: "qemu",
        probe: Probe::Program("qemu-system-x86_64"),
        fix: "apt-get install qemu-system-x86",
    },
    program("mmdebstrap", "apt-get install mmdebstrap"),
    program("mkfs.ext4", "apt-get install e2fsprogs"),
    // The cloud boots' NoCloud seeds: a vfat volume filled without a mount.
    program("mkfs.vfat", "apt-get install dosfstools"),
    program("mcopy", "apt-get install mtools"),
    // The index of the guest's local apt repository.
    program("apt-ftparchive", "apt-get install apt-utils"),
    // Unpacking and repacking the .deb for the upgrade, and the cached root filesystem.
    program("dpkg-deb", "apt-get install dpkg"),
    program("tar", "apt-get install tar"),
];

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Fixture => "fixture",
            Tier::Kernel => "kernel",
            Tier::Receiver => "receiver",
            Tier::Guest => "guest",
        }
    }

    /// What the tier's tests need from the machine.
    pub fn needs(self) -> &'static [Need] {
        match self {
            Tier::Fixture => &FIXTURE,
            Tier::Kernel => &KERNEL,
            Tier::Receiver => &RECEIVER,
            Tier::Guest => &GUEST,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl Need {
    /// What the skip line says is wrong: "not root", "no mkfs.xfs", ...
    pub fn lacking(&self) -> String {
        match self.probe {
            Probe::Root => "not root".to_string(),
            Probe::Exists(what) | Probe::Program(what) => format!("no {what}"),
            Probe::Python(python, code) => format!("{python} cannot run `{code}`"),
            Probe::Udevd => "no systemd-udevd".to_string(),
        }
    }

    fn present(&self) -> bool {
        match self.probe {
            Probe::Root => nix::unistd::geteuid().is_root(),
            Probe::Exists(path) => Path::new(path).exists(),
            Probe::Program(name) => on_path(name),
            Probe::Python(python, code) => Command::new(python)
                .args(["-c", code])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            Probe::Udevd => super::harness::Udevd::binary().is_some(),
        }
    }
}

fn on_path(program: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .any(|dir| !dir.is_empty() && Path::new(dir).join(program).is_file());
    found
}

/// The needs that are missing: absent, or named in `fake_missing` (comma-separated).
pub fn missing_of(needs: &'static [Need], fake_missing: &str) -> Vec<&'static Need> {
    let fake: Vec<&str> = fake_missing.split(',').map(str::trim).collect();
    needs
        .iter()
        .filter(|n| fake.contains(&n.name) || !n.present())
        .collect()
}

/// What `tier` lacks on this machine, checked once per process.
fn missing(tier: Tier) -> &'static [&'static Need] {
    static CHECKED: [OnceLock<Vec<&'static Need>>; TIERS] = [const { OnceLock::new() }; TIERS];
    CHECKED[tier.index()].get_or_init(|| {
        let fake = std::env::var("TUNERD_TEST_FAKE_MISSING").unwrap_or_default();
        missing_of(tier.needs(), &fake)
    })
}

/// The one line a skipped test prints.
pub fn skip_line(tier: Tier, test: &str, missing: &[&Need]) -> String {
    let why: Vec<String> = missing
        .iter()
        .map(|n| format!("{} ({})", n.lacking(), n.fix))
        .collect();
    format!(
        "SKIPPED {} tier ({test}): {}; see README \"Run the tests\"",
        tier.name(),
        why.join(", ")
    )
}

/// Whether `TUNERD_TEST_ALL_TIERS=1`: every tier must run.
pub fn all_tiers() -> bool {
    std::env::var("TUNERD_TEST_ALL_TIERS").is_ok_and(|v| v == "1")
}

/// Skips (prints `line`, returns) or, when every tier must run, fails the test.
pub fn skip(line: &str, all_tiers: bool) {
    if all_tiers {
        panic!("{line}\nTUNERD_TEST_ALL_TIERS=1: no tier may be skipped");
    }
    // Straight to the stderr file: the test harness captures eprintln! and shows it only for
    // a test that fails, and a skipped test passes.
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Admits the calling test into `tier`: `None` (after the SKIPPED line) when the machine
/// lacks something the tier needs; otherwise a guard that holds off the other tiers until it
/// is dropped. Panics instead of skipping under `TUNERD_TEST_ALL_TIERS=1`.
pub fn require(tier: Tier) -> Option<TierGuard<'static>> {
    let missing = missing(tier);
    if !missing.is_empty() {
        // The test harness names each test's thread after the test.
        let thread = std::thread::current();
        skip(
            &skip_line(tier, thread.name().unwrap_or("?"), missing),
            all_tiers(),
        );
        return None;
    }
    Some(TURNS.enter(tier))
}

/// Which tier runs now and how many of its tests; how many tests of each tier wait, and the
/// tiers that wait in the order they began to.
struct Turn {
    tier: Option<Tier>,
    running: usize,
    waiting: [usize; TIERS],
    queue: Vec<Tier>,
}

/// Tiers taking turns: tests of the running tier may start, tests of another tier wait until
/// the last of them ends. Tiers go in the order they began to wait, and a test of the running
/// tier does not start while another tier waits, so no tier waits forever.
pub struct Turns {
    turn: Mutex<Turn>,
    changed: Condvar,
}

/// The turns of the tiers in this process.
static TURNS: Turns = Turns::new();

impl Turns {
    pub const fn new() -> Turns {
        Turns {
            turn: Mutex::new(Turn {
                tier: None,
                running: 0,
                waiting: [0; TIERS],
                queue: Vec::new(),
            }),
            changed: Condvar::new(),
        }
    }

    /// How many tests of `tier` wait for their turn.
    pub fn waiting(&self, tier: Tier) -> usize {
        self.turn.lock().unwrap_or_else(|e| e.into_inner()).waiting[tier.index()]
    }

    /// Waits for `tier`'s turn; it lasts while the guard lives.
    pub fn enter(&self, tier: Tier) -> TierGuard<'_> {
        let i = tier.index();
        let mut turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        turn.waiting[i] += 1;
        if turn.waiting[i] == 1 {
            turn.queue.push(tier);
        }
        // Admitted when no other tier runs and this one is first in the queue.
        while turn.tier.is_some_and(|t| t != tier) || turn.queue.first() != Some(&tier) {
            turn = self.changed.wait(turn).unwrap_or_else(|e| e.into_inner());
        }
        turn.waiting[i] -= 1;
        if turn.waiting[i] == 0 {
            turn.queue.remove(0);
        }
        turn.tier = Some(tier);
        turn.running += 1;
        self.changed.notify_all();
        TierGuard { turns: self }
    }
}

/// A test of a tier is running: tests of other tiers wait until the last one is dropped.
pub struct TierGuard<'a> {
    turns: &'a Turns,
}

impl Drop for TierGuard<'_> {
    fn drop(&mut self) {
        let mut turn = self.turns.turn.lock().unwrap_or_else(|e| e.into_inner());
        turn.running -= 1;
        if turn.running == 0 {
            turn.tier = None;
        }
        self.turns.changed.notify_all();
    }
}
