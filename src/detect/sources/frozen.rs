//! Writers blocked by a frozen filesystem, seen in /proc before the kernel's hung-task report.
//!
//! Linux shows no "frozen" flag for a filesystem (not in mountinfo, not in sysfs), and the only
//! probes that would tell (FIFREEZE answers EBUSY when frozen, but freezes an unfrozen one; a
//! non-blocking write needs a writable mount, which tunerd's sandbox is not) change the
//! filesystem or cannot run. What a freeze does show is its effect: every writer sleeps
//! uninterruptibly (`D`) on the superblock's freeze lock, a per-CPU rwsem, while the disk has
//! nothing in flight. This scan looks for exactly that: tasks in `D` whose `wchan` is the
//! rwsem wait (`percpu_rwsem_wait`, 5.8+; `percpu_down_read` or `__sb_start_write` before), and,
//! when `/proc/PID/stack` is readable (CAP_SYS_ADMIN), whose stack enters it from a VFS write
//! (`vfs_write`, `mnt_want_write`, a `page_mkwrite`), which tells it from the other per-CPU
//! rwsems (cgroup migration, CPU hotplug). The filesystem is named when the task is in a
//! write-family syscall on a file descriptor (`/proc/PID/syscall` then `/proc/PID/fd/N`).
//!
//! Cost: one `/proc/PID/stat` read per process every [`SCAN_EVERY_MS`], more only for tasks
//! in `D`. What it can see depends on tunerd's privileges: inside the unit, `ProtectProc=
//! invisible` hides other users' processes, and root's own show a `wchan` of `0` (reading it,
//! `syscall` and `fd/` of a process with more capabilities than tunerd's takes CAP_SYS_PTRACE,
//! which the unit does not grant: it would open every process's memory). There the scan finds
//! nothing and the kernel's hung-task reports and the freeze agents' lines carry the
//! detection (measured in the guest: tests/guest/lab.sh, freeze part); run without the
//! sandbox (`tunerd --once`, tests) it sees the writers and names the mount.

use std::collections::BTreeMap;

use crate::detect::sources::samplers::Finding;
use crate::detect::types::Kind;
use crate::host::sys::Root;

/// How often the process table is scanned (the threshold is a minute by default: a scan every
/// 5 s finds a freeze within 5 s of it).
pub(crate) const SCAN_EVERY_MS: u64 = 5_000;

const WAIT_CHANS: &[&str] = &["percpu_rwsem_wait", "percpu_down_read", "__sb_start_write"];
const WRITE_FRAMES: &[&str] = &[
    "vfs_write",
    "mnt_want_write",
    "page_mkwrite",
    "file_start_write",
    "sb_start_write",
    "do_truncate",
    "vfs_fallocate",
    "file_modified",
    "file_update_time",
];

/// x86_64 syscalls whose first argument is the file descriptor written to.
#[cfg(target_arch = "x86_64")]
const FD_WRITES: &[u64] = &[1, 18, 20, 77, 285, 296, 328];
#[cfg(not(target_arch = "x86_64"))]
const FD_WRITES: &[u64] = &[];

#[derive(Debug, Clone)]
struct Blocked {
    since_ms: u64,
    comm: String,
    mount: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct FrozenScan {
    /// Threshold in seconds (0: off).
    pub secs: u64,
    next_ms: u64,
    blocked: BTreeMap<u32, Blocked>,
    /// An incident was reported and not yet ended.
    reported: bool,
}

impl FrozenScan {
    pub(crate) fn new(secs: u64) -> FrozenScan {
        FrozenScan {
            secs,
            ..FrozenScan::default()
        }
    }

    /// Writers are asleep on a freeze lock now: the samples keep their fast rate (and this scan
    /// its own) until they go on or are reported.
    pub(crate) fn watching(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Whether a scan is due at `now_ms`.
    pub(crate) fn due(&self, now_ms: u64) -> bool {
        self.secs > 0 && now_ms >= self.next_ms
    }

    /// One look at the process table when due: a finding when writers have been blocked on a
    /// freeze for the threshold (holds) or when, after one, none is blocked any more (ends).
    pub(crate) fn sample(&mut self, root: &Root, now_ms: u64, mountinfo: &str) -> Option<Finding> {
        if self.secs == 0 || now_ms < self.next_ms {
            return None;
        }
        self.next_ms = now_ms + SCAN_EVERY_MS;
        let mut now = BTreeMap::new();
        for pid in root.list("proc").unwrap_or_default() {
            let Ok(n) = pid.parse::<u32>() else { continue };
            let Some(b) = blocked_writer(root, n, mountinfo) else {
                continue;
            };
            let since = self.blocked.get(&n).map_or(now_ms, |old| old.since_ms);
            now.insert(
                n,
                Blocked {
                    since_ms: since,
                    ..b
                },
            );
        }
        self.blocked = now;
        let long: Vec<(&u32, &Blocked)> = self
            .blocked
            .iter()
            .filter(|(_, b)| now_ms.saturating_sub(b.since_ms) >= self.secs * 1000)
            .collect();
        if long.is_empty() {
            if self.reported && self.blocked.is_empty() {
                self.reported = false;
                return Some(Finding {
                    kind: Kind::FsFrozen,
                    device: String::new(),
                    holds: false,
                    message: "no writer is blocked on a frozen filesystem any more (thawed)"
                        .to_string(),
                });
            }
            return None;
        }
        if self.reported {
            return None;
        }
        self.reported = true;
        let longest = long
            .iter()
            .map(|(_, b)| now_ms.saturating_sub(b.since_ms) / 1000)
            .max()
            .unwrap_or(0);
        let mount = long.iter().find_map(|(_, b)| b.mount.clone());
        let who: Vec<String> = long
            .iter()
            .take(5)
            .map(|(pid, b)| match &b.mount {
                Some(m) => format!("{}[{pid}] on {m}", b.comm),
                None => format!("{}[{pid}]", b.comm),
            })
            .collect();
        Some(Finding {
            kind: Kind::FsFrozen,
            device: mount.unwrap_or_default(),
            holds: true,
            message: format!(
                "{} writer(s) blocked on a frozen filesystem for {longest} s or more: {}",
                long.len(),
                who.join(", ")
            ),
        })
    }
}

/// Process `pid`, if it is a writer asleep on a filesystem's freeze lock.
fn blocked_writer(root: &Root, pid: u32, mountinfo: &str) -> Option<Blocked> {
    let stat = root.read(&format!("proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: comm may hold blanks and parentheses; the state follows the last `)`.
    let close = stat.rfind(')')?;
    if stat[close + 1..].trim_start().as_bytes().first() != Some(&b'D') {
        return None;
    }
    let comm = stat[..close]
        .split_once('(')
        .map_or("?", |(_, c)| c)
        .to_string();
    let wchan = root.read(&format!("proc/{pid}/wchan")).ok()?;
    if !WAIT_CHANS.contains(&wchan.trim()) {
        return None;
    }
    // The stack, when readable, must enter the wait from a write; unreadable (no
    // CAP_SYS_ADMIN), the wait channel alone decides.
    if let Ok(stack) = root.read(&format!("proc/{pid}/stack")) {
        if !stack
            .lines()
            .any(|l| WRITE_FRAMES.iter().any(|f| l.contains(f)))
        {
            return None;
        }
    }
    Some(Blocked {
        since_ms: 0,
        comm,
        mount: written_mount(root, pid, mountinfo),
    })
}

/// The mount point of the file a task is writing, when it is in a write on a descriptor.
fn written_mount(root: &Root, pid: u32, mountinfo: &str) -> Option<String> {
    let syscall = root.read(&format!("proc/{pid}/syscall")).ok()?;
    let mut fields = syscall.split_whitespace();
    let nr: u64 = fields.next()?.parse().ok()?;
    if !FD_WRITES.contains(&nr) {
        return None;
    }
    let fd = u64::from_str_radix(fields.next()?.trim_start_matches("0x"), 16).ok()?;
    let target = std::fs::read_link(root.path(&format!("proc/{pid}/fd/{fd}"))).ok()?;
    mount_of(mountinfo, &target.to_string_lossy())
}

/// The longest mount point of `mountinfo` that contains `path`.
pub(crate) fn mount_of(mountinfo: &str, path: &str) -> Option<String> {
    crate::host::inventory::parse_mountinfo(mountinfo)
        .into_iter()
        .map(|(_, mp, ..)| mp)
        .filter(|mp| {
            path == mp
                || mp == "/"
                || path
                    .strip_prefix(mp.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(String::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_mount_holding_a_path() {
        let mi = "22 1 254:0 / / rw - ext4 /dev/vda rw\n\
                  40 22 7:0 / /tmp/frz rw - ext4 /dev/loop0 rw\n\
                  41 22 7:1 / /tmp/frz\\040b rw - ext4 /dev/loop1 rw\n";
        assert_eq!(mount_of(mi, "/tmp/frz/a").as_deref(), Some("/tmp/frz"));
        assert_eq!(mount_of(mi, "/tmp/frz b/x").as_deref(), Some("/tmp/frz b"));
        assert_eq!(mount_of(mi, "/tmp/frzz").as_deref(), Some("/"));
        assert_eq!(mount_of(mi, "/tmp/frz").as_deref(), Some("/tmp/frz"));
    }

    /// A fake /proc with one writer asleep on the freeze lock (the stat, wchan, stack and
    /// syscall as the 6.18 kernel here showed them for `sh -c 'echo hi >> /tmp/frz/a'` on a
    /// frozen ext4) and one task asleep elsewhere.
    #[test]
    fn a_writer_on_the_freeze_lock_is_reported_after_the_threshold_and_its_thaw_ends_it() {
        let dir = std::env::temp_dir().join(format!("tunerd-frozen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = |rel: &str, text: &str| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w(
            "proc/1992/stat",
            "1992 (sh) D 1 1992 1992 0 -1 4194560 130 0 0 0 0 0",
        );
        w("proc/1992/wchan", "percpu_rwsem_wait");
        w(
            "proc/1992/stack",
            "[<0>] percpu_rwsem_wait+0x15f/0x1d0\n[<0>] vfs_write+0x3f0/0x450\n[<0>] ksys_write+0x66/0xe0\n",
        );
        w(
            "proc/1992/syscall",
            "1 0x1 0x5632750c3a90 0x3 0x0 0x2 0x56326bd3693a 0x7fff13d35318 0x7f3704266350",
        );
        std::fs::create_dir_all(dir.join("proc/1992/fd")).unwrap();
        std::os::unix::fs::symlink("/tmp/frz/a", dir.join("proc/1992/fd/1")).unwrap();
        w("proc/77/stat", "77 (kworker/u4:1) D 2 0 0 0 -1 0 0 0 0 0");
        w("proc/77/wchan", "io_schedule");
        let mi =
            "22 1 254:0 / / rw - ext4 /dev/vda rw\n40 22 7:0 / /tmp/frz rw - ext4 /dev/loop0 rw\n";
        let root = Root::new(&dir);
        let mut scan = FrozenScan::new(60);
        assert!(scan.sample(&root, 1_000, mi).is_none(), "not yet a minute");
        assert!(scan.sample(&root, 3_000, mi).is_none(), "not due yet");
        assert!(scan.sample(&root, 40_000, mi).is_none());
        let f = scan.sample(&root, 61_000, mi).expect("reported after 60 s");
        assert!(f.holds && f.kind == Kind::FsFrozen);
        assert_eq!(f.device, "/tmp/frz");
        assert!(f.message.contains("sh[1992] on /tmp/frz"), "{}", f.message);
        assert!(scan.sample(&root, 70_000, mi).is_none(), "reported once");
        // Thawed: the writer finished.
        w(
            "proc/1992/stat",
            "1992 (sh) S 1 1992 1992 0 -1 4194560 130 0 0 0 0 0",
        );
        let f = scan.sample(&root, 80_000, mi).expect("the end");
        assert!(!f.holds);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
