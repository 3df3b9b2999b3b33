//! Adversarial tests: the runtime state under `run/tunerd` (security review findings 1, 10's
//! file modes, 11, 12 and 13). Each reproduces the review's attack on a copy of the kvm
//! fixture in a scratch directory; the ones that need a second user (uid 65534 through
//! `setpriv`) take the kernel tier's guard, since only root can switch to it.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::tier::{self, Tier};
use crate::common::{self, fixture_dir, statuses, Scratch};

const NOBODY: [&str; 4] = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];

/// A copy of the kvm fixture at `SCRATCH/root`, so that `SCRATCH/victim.txt` is the
/// review's `$R/../victim.txt`.
fn kvm_root(tag: &str) -> (Scratch, PathBuf) {
    let scratch = Scratch::new(tag);
    let root = scratch.join("root");
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture_dir("kvm"))
        .arg(&root)
        .status()
        .expect("cp");
    assert!(st.success(), "copy the kvm fixture");
    // Scratch dirs are made with the test's umask; the nobody side must be able to walk in,
    // as it can walk into /run.
    for dir in [&scratch.path, &root] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    (scratch, root)
}

fn tunerctl(root: &Path, args: &[&str]) -> Output {
    Command::new(common::tunerctl())
        .arg("--root")
        .arg(root)
        .arg("--direct")
        .args(args)
        .output()
        .expect("tunerctl")
}

/// `tunerctl --root ROOT --direct ARGS`, given at most `limit`: its exit code (`None`
/// when it had to be killed), its stderr, and how long it took.
fn tunerctl_bounded(
    root: &Path,
    args: &[&str],
    limit: Duration,
) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = Reaped(
        Command::new(common::tunerctl())
            .arg("--root")
            .arg(root)
            .arg("--direct")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tunerctl"),
    );
    let status = child.wait_for(limit);
    let took = started.elapsed();
    let mut err = String::new();
    if status.is_some() {
        if let Some(mut stderr) = child.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
        }
    }
    (status.map(|s| s.code().unwrap_or(-1)), err, took)
}

/// A child killed (and reaped) on drop, so that a test that fails never leaves a lock
/// holder or a hung tunerctl behind.
struct Reaped(Child);

impl Reaped {
    /// Waits up to `limit` for the child to exit: its status, or `None` if it still runs.
    fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

/// Finding 1, the attack: uid 65534 tries to hold the appliers' lock with `flock -s` (which
/// works on a read-only descriptor). The lock is root's only (0600, in a 0755 state dir), so
/// the open fails with EACCES.
#[test]
fn uid_65534_cannot_open_the_appliers_lock() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let (_scratch, root) = kvm_root("lock");
    drop(
        tunerd::host::sys::Root::new(&root)
            .lock_state()
            .expect("take and release the lock once"),
    );
    let lock = root.join("run/tunerd/lock");
    let mut nobody = Reaped(
        Command::new("setpriv")
            .args(NOBODY)
            .arg("flock")
            .arg("-s")
            .arg(&lock)
            .args(["sleep", "30"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("setpriv flock"),
    );
    let status = nobody
        .wait_for(Duration::from_secs(5))
        .expect("uid 65534 holds the appliers' lock");
    let mut err = String::new();
    if let Some(mut stderr) = nobody.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
    }
    assert!(!status.success(), "uid 65534 took the lock: {status}");
    assert!(err.contains("Permission denied"), "EACCES: {err}");
    assert_eq!(mode(&lock), 0o600, "the lock is root's only");
    assert_eq!(
        mode(&root.join("run/tunerd")),
        0o755,
        "the state dir, explicitly"
    );
}

/// Finding 1, the stall: whoever holds the lock (root can, a stuck applier does), an
/// applier gives up in bounded time with exit 1 and an error that names the holder,
/// instead of blocking (on the daemon's event loop, that stopped detection).
#[test]
fn a_held_lock_fails_apply_in_bounded_time() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let (_scratch, root) = kvm_root("heldlock");
    let held = tunerd::host::sys::Root::new(&root)
        .lock_state()
        .expect("the test holds the lock");
    let (code, err, took) = tunerctl_bounded(&root, &["apply"], Duration::from_secs(20));
    println!(
        "apply on a held lock returned after {took:?}: {}",
        err.trim()
    );
    assert!(code.is_some(), "tunerctl apply hangs on a held lock");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("held by another process"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "names the holder: {err}"
    );
    drop(held);
    let out = tunerctl(&root, &["apply"]);
    assert!(out.status.success(), "free again: {out:?}");
}

/// Finding 1, after an upgrade: `/run` keeps the lock an earlier version made 0644, and a
/// user who opened it then holds it. The lock is replaced by a fresh 0600 one, so that
/// holder excludes nobody.
#[test]
fn a_lock_left_readable_by_an_earlier_version_is_replaced() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let (_scratch, root) = kvm_root("oldlock");
    let lock = root.join("run/tunerd/lock");
    fs::create_dir_all(lock.parent().expect("dir")).expect("mkdir");
    fs::write(&lock, "").expect("old lock");
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut nobody = Reaped(
        Command::new("setpriv")
            .args(NOBODY)
            .arg("flock")
            .arg("-s")
            .arg(&lock)
            .args(["sleep", "30"])
            .spawn()
            .expect("setpriv flock"),
    );
    // Until the nobody flock runs, the lock is free anyway: wait for it to be held.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs::read_to_string("/proc/locks")
        .map(|l| !l.contains(&format!(":{} ", fs::metadata(&lock).expect("stat").ino())))
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "the nobody flock never held it");
        assert!(nobody.0.try_wait().ok().flatten().is_none(), "flock exited");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (code, err, took) = tunerctl_bounded(&root, &["apply"], Duration::from_secs(10));
    println!("apply past an old lock held by uid 65534 took {took:?}");
    assert!(code.is_some(), "tunerctl apply waits for uid 65534's lock");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(mode(&lock), 0o600);
}

/// Finding 12: a symlink planted at the old fixed temporary name (`originals.tmp`) and at
/// every name of the new pattern this process will use (`.originals.json.tmp.PID.N`) is
/// never followed: the victim is unchanged and originals.json is a file of its own.
#[test]
fn a_symlink_planted_at_a_temporary_name_is_not_followed() {
    let scratch = Scratch::new("tmplink");
    let root = tunerd::host::sys::Root::new(scratch.join("root"));
    let dir = scratch.join("root/run/tunerd");
    fs::create_dir_all(&dir).expect("mkdir");
    let victim = scratch.join("victim.txt");
    fs::write(&victim, "VICTIM\n").expect("victim");
    symlink(&victim, dir.join("originals.tmp")).expect("old-style link");
    // The sequence numbers are per process and other tests of this binary advance them:
    // plant far more than they use, so the first writes below all meet a planted link.
    const PLANTED: u64 = 4096;
    let pid = std::process::id();
    for n in 0..PLANTED {
        symlink(&victim, dir.join(format!(".originals.json.tmp.{pid}.{n}"))).expect("link");
    }
    let contents = b"{\"version\":1,\"originals\":[]}\n";
    let mut refused = 0;
    let written = loop {
        match root.write_atomic("run/tunerd/originals.json", contents) {
            Ok(()) => break true,
            // A name taken is skipped, never opened; a few in a row end that write.
            Err(e) => {
                assert!(e.to_string().contains("EEXIST"), "{e}");
                refused += 1;
                if refused > PLANTED {
                    break false;
                }
            }
        }
    };
    assert!(written, "a write got past the planted names");
    println!("{refused} writes met only planted names before one got through");
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "VICTIM\n");
    let meta = fs::symlink_metadata(dir.join("originals.json")).expect("stat");
    assert!(meta.file_type().is_file(), "originals.json is not a link");
    assert_eq!(
        fs::read(dir.join("originals.json")).expect("read"),
        contents
    );
}

/// Finding 12, the spool: its chmod to 0700 goes through a descriptor opened with
/// O_NOFOLLOW, so a symlink planted at `run/tunerd/spool` is refused and the directory it
/// points to keeps its mode.
#[test]
fn the_spool_chmod_does_not_follow_a_symlink() {
    let scratch = Scratch::new("spoollink");
    let victim = scratch.join("victim-dir");
    fs::create_dir_all(&victim).expect("victim dir");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::create_dir_all(scratch.join("root/run/tunerd")).expect("mkdir");
    symlink(&victim, scratch.join("root").join(tunerd::alert::SPOOL_DIR)).expect("link");
    let root = tunerd::host::sys::Root::new(scratch.join("root"));
    let started = tunerd::alert::Dispatcher::start(&root, tunerd::alert::AlertConfig::default());
    let err = match started {
        Ok(d) => {
            d.shutdown();
            String::new()
        }
        Err(e) => e.to_string(),
    };
    assert_eq!(mode(&victim), 0o755, "the link's target was chmodded");
    assert!(
        err.contains("ELOOP") || err.contains("ENOTDIR"),
        "refused: {err:?}"
    );
}

/// Finding 11, in process: the journal of originals and a textfile in the same directory
/// (`originals.json`, `originals.prom`) written 500 times each from two threads. With one
/// fixed temporary (`originals.tmp`) for both, the json ended up holding the textfile; now
/// every write succeeds and the final json parses.
#[test]
fn originals_json_is_never_replaced_by_a_textfile_beside_it() {
    let scratch = Scratch::new("collide");
    let root = tunerd::host::sys::Root::new(scratch.join("root"));
    // Journals of a real size (a few KiB: a knob is ~150 bytes), so a write takes long
    // enough for the two to overlap; both start together.
    let json = |i: usize| {
        let entry = format!("{{\"key\":\"vm/swappiness\",\"path\":\"proc/sys/vm/swappiness\",\"value\":\"{i}\",\"order\":0}}");
        format!(
            "{{\"version\":1,\"originals\":[{}]}}\n",
            vec![entry; 40].join(",")
        )
    };
    let prom = |i: usize| {
        format!("# HELP tunerd_incidents_open Open incidents.\ntunerd_incidents_open {i}\n")
            .repeat(40)
    };
    let barrier = std::sync::Barrier::new(2);
    // Every write must succeed: with a shared temporary the other writer's rename can take
    // it away (ENOENT), or leave the other's contents under this one's name.
    let started = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            barrier.wait();
            (0..500)
                .filter_map(|i| {
                    root.write_atomic("run/tunerd/originals.json", json(i).as_bytes())
                        .err()
                        .map(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        });
        let b = s.spawn(|| {
            barrier.wait();
            (0..500)
                .filter_map(|i| {
                    root.write_atomic("run/tunerd/originals.prom", prom(i).as_bytes())
                        .err()
                        .map(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        });
        (
            a.join().expect("json writer"),
            b.join().expect("prom writer"),
        )
    });
    println!("1,000 atomic writes in {:?}", started.elapsed());
    let dir = scratch.join("root/run/tunerd");
    let text = fs::read_to_string(dir.join("originals.json")).expect("json");
    let parsed: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("originals.json does not parse ({e}): {text:?}"));
    assert!(
        a.is_empty(),
        "json writes failed: {:?}",
        &a[..a.len().min(3)]
    );
    assert!(
        b.is_empty(),
        "prom writes failed: {:?}",
        &b[..b.len().min(3)]
    );
    assert_eq!(parsed["originals"][0]["value"], "499");
    assert_eq!(
        fs::read_to_string(dir.join("originals.prom")).expect("prom"),
        prom(499)
    );
    let left: Vec<String> = fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

/// Finding 13: the review's journal that points revert at `../victim.txt`. Revert writes
/// only where the knob table puts the key's knob: the entry is refused (and dropped), the
/// victim is unchanged, and the genuine entry beside it is still restored.
#[test]
fn revert_refuses_a_recorded_path_outside_the_knob_table() {
    let (scratch, root) = kvm_root("revert");
    let victim = scratch.join("victim.txt");
    fs::write(&victim, "VICTIM\n").expect("victim");
    let swappiness = root.join("proc/sys/vm/swappiness");
    let before = fs::read_to_string(&swappiness).expect("swappiness");
    fs::write(&swappiness, "1\n").expect("drift");
    fs::create_dir_all(root.join("run/tunerd")).expect("mkdir");
    let journal = serde_json::json!({"version": 1, "originals": [
        {"key": "vm/swappiness", "path": "../victim.txt", "value": "OVERWRITTEN BY REVERT", "order": 0},
        {"key": "vm/dirty_ratio", "path": "proc/sys/vm/../../../victim.txt", "value": "OVERWRITTEN", "order": 1},
        {"key": "sda/scheduler", "path": "proc/sys/vm/swappiness", "value": "OVERWRITTEN", "order": 2},
        {"key": "vm/swappiness", "path": "proc/sys/vm/swappiness", "value": before.trim(), "order": 0},
    ]});
    fs::write(
        root.join("run/tunerd/originals.json"),
        serde_json::to_vec(&journal).expect("json"),
    )
    .expect("forged journal");
    let out = tunerctl(&root, &["--json", "revert"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "VICTIM\n");
    assert_eq!(
        fs::read_to_string(&swappiness).expect("swappiness").trim(),
        before.trim(),
        "the genuine entry is restored: {report}"
    );
    let s = statuses(&report);
    let refused = s.iter().filter(|(_, st)| st == "refused").count();
    assert_eq!(refused, 3, "each forged entry is refused: {report}");
    let outcomes = report["outcomes"].as_array().expect("outcomes");
    assert!(
        outcomes
            .iter()
            .any(|o| o["path"] == "../victim.txt" && o["status"] == "refused"),
        "{report}"
    );
    assert!(
        !root.join("run/tunerd/originals.json").exists(),
        "the refused entries are dropped, the restored one forgotten"
    );
}

/// Finding 10's modes: incidents.json (kernel-log evidence) is root's only, written by the
/// writer every state file goes through; the files non-root tunerctl reads stay readable.
/// A 0644 incidents.json an earlier version left is replaced by a 0600 one.
#[test]
fn incidents_json_is_root_only_and_the_rest_stays_readable() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let (_scratch, dir) = kvm_root("modes");
    let root = tunerd::host::sys::Root::new(&dir);
    let state = dir.join("run/tunerd");
    fs::create_dir_all(&state).expect("mkdir");
    fs::write(state.join("incidents.json"), "{\"old\":1}").expect("old");
    fs::set_permissions(
        state.join("incidents.json"),
        fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let evidence = b"{\"open\":{},\"recent\":[{\"evidence\":[\"comm secret-payroll-job\"]}]}";
    root.write_atomic("run/tunerd/incidents.json", evidence)
        .expect("incidents.json");
    root.write_atomic("run/tunerd/kmsg.json", b"{\"seq\":1}")
        .expect("kmsg.json");
    root.write_atomic(
        "run/tunerd/originals.json",
        b"{\"version\":1,\"originals\":[]}",
    )
    .expect("originals.json");
    assert_eq!(mode(&state.join("incidents.json")), 0o600);
    assert_eq!(mode(&state.join("kmsg.json")), 0o644);
    assert_eq!(mode(&state.join("originals.json")), 0o644);
    let cat = |file: &str| {
        Command::new("setpriv")
            .args(NOBODY)
            .arg("cat")
            .arg(state.join(file))
            .output()
            .expect("setpriv cat")
    };
    let out = cat("incidents.json");
    assert!(
        !out.status.success(),
        "uid 65534 read the evidence: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    assert!(cat("originals.json").status.success(), "status needs it");
    assert!(cat("kmsg.json").status.success());
}
