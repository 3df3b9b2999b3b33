//! Userspace storage daemons tell of trouble in the systemd journal, not the kernel log:
//! multipathd (`mpatha: remaining active paths: 0`), iscsid, NFS helpers, ZFS's zed (`eid=12
//! class=statechange pool='tank' vdev=sdb1 vdev_state=FAULTED`). tunerd follows
//! their entries with `journalctl --follow --output=json`, a child process whose pipe the event
//! loop reads without ever blocking (journald and its files may sit on the failing disk; only
//! the child waits on them). The cursor of the last entry handled is kept in /run/tunerd, so a
//! restart resumes after it: nothing missed, nothing reported twice.
//!
//! Spawning journalctl rather than linking libsystemd's sd-journal: the same reader systemd
//! ships, no C dependency, and its hangs stay in another process.
//!
//! Trust: `SYSLOG_IDENTIFIER` is whatever a client says (`logger -t multipathd` works for every
//! user), so the match also requires journald's trusted `_UID=0` (journalctl ORs the values of
//! one field and ANDs the fields: `(SYSLOG_IDENTIFIER=multipathd OR ... ) AND _UID=0`), and the
//! parser marks each entry's sender from the same trusted fields, which the catalog checks
//! again ([`crate::detect::types::Sender`]). The storage daemons watched all run as root.
//!
//! journalctl may exit (killed, OOM, a bad cursor): [`JournalWatch::alive`] says so, and
//! [`JournalWatch::restart`] starts it again after the last entry read, once the caller's
//! backoff ([`restart_delay`]) has passed.

use std::time::Duration;

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::detect::types::LogRecord;
use crate::host::sys::Root;

use crate::host::state_files::JOURNAL_CURSOR as CURSOR;

/// Only entries from root: journald's `_UID`, which a client cannot set.
pub(crate) const TRUSTED_MATCH: &str = "_UID=0";

/// The programs whose entries are watched (SYSLOG_IDENTIFIER).
pub(crate) const PROGRAMS: &[&str] = &[
    "multipathd",
    "iscsid",
    "iscsiadm",
    "rpc.statd",
    "rpc.idmapd",
    "nfsrahead",
    "mount.nfs",
    "smartd",
    "mdadm",
    // Freeze agents: a freeze without its thaw is an `fs_frozen` incident.
    "qemu-ga",
    "Hyper-V VSS",
    // ZFS's event daemon: the all-syslog.sh zedlet logs each event as `zed` (root).
    "zed",
];

pub(crate) struct JournalWatch {
    child: Child,
    stdout: ChildStdout,
    pending: Vec<u8>,
    cursor: Option<String>,
    saved: Option<String>,
    /// Identifiers followed besides [`PROGRAMS`]: those of `[[watch.rule]]`s.
    extra: Vec<String>,
}

/// How long to wait before restarting journalctl after its `failures`-th exit in a row:
/// 1 s, doubled each time, at most 5 minutes (a journalctl that cannot run at all is not
/// respawned in a tight loop).
pub(crate) fn restart_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(8)).min(Duration::from_secs(300))
}

impl JournalWatch {
    /// Starts journalctl after the saved cursor (or from the start of this boot), following
    /// [`PROGRAMS`] and the `extra` identifiers (user rules').
    pub(crate) fn start(root: &Root, extra: &[String]) -> io::Result<JournalWatch> {
        let saved = root
            .read_opt(CURSOR)
            .ok()
            .flatten()
            .filter(|c| !c.is_empty());
        let (child, stdout) = spawn(saved.as_deref(), extra)?;
        Ok(JournalWatch {
            child,
            stdout,
            pending: Vec::new(),
            cursor: saved.clone(),
            saved,
            extra: extra.to_vec(),
        })
    }

    /// Starts journalctl again after the last entry read (committing its cursor first), for a
    /// journalctl that exited. A partial line of the old one is dropped: the new one starts at
    /// the entry after the last whole one. On an error the old (dead) child stays, and the
    /// caller tries again after its backoff.
    pub(crate) fn restart(&mut self, root: &Root) -> io::Result<()> {
        self.commit(root);
        let (child, stdout) = spawn(self.cursor.as_deref(), &self.extra)?;
        let mut old = std::mem::replace(&mut self.child, child);
        self.stdout = stdout;
        self.pending.clear();
        let _ = old.kill();
        let _ = old.wait();
        Ok(())
    }

    /// Follows `extra` identifiers instead of the current ones (a reload changed the
    /// `[[watch.rule]]` programs): journalctl is started again after the last entry read, so
    /// no entry is lost or read twice. Whether it changed anything; on an error the new list
    /// is kept, and the caller's restart after its backoff uses it.
    pub(crate) fn follow(&mut self, root: &Root, extra: &[String]) -> io::Result<bool> {
        if self.extra == extra {
            return Ok(false);
        }
        self.extra = extra.to_vec();
        self.restart(root).map(|()| true)
    }
}

/// journalctl following the watched programs' root entries, after `cursor` (or from the start
/// of this boot), its stdout non-blocking.
fn spawn(cursor: Option<&str>, extra: &[String]) -> io::Result<(Child, ChildStdout)> {
    let mut child = command(cursor, extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("journalctl: no stdout"))?;
    let flags =
        nix::fcntl::fcntl(&stdout, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
    nix::fcntl::fcntl(
        &stdout,
        nix::fcntl::FcntlArg::F_SETFL(
            nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK,
        ),
    )
    .map_err(io::Error::from)?;
    Ok((child, stdout))
}

/// The journalctl command line: the watched programs' entries from root, as JSON.
fn command(cursor: Option<&str>, extra: &[String]) -> Command {
    let mut cmd = Command::new("journalctl");
    cmd.args([
        "--follow",
        "--output=json",
        "--no-pager",
        "--quiet",
        "--boot",
    ]);
    for p in PROGRAMS {
        cmd.args(["--identifier", p]);
    }
    for p in extra.iter().filter(|p| !PROGRAMS.contains(&p.as_str())) {
        cmd.args(["--identifier", p]);
    }
    match cursor {
        Some(c) => cmd.arg(format!("--after-cursor={c}")),
        None => cmd.arg("--lines=all"),
    };
    // A positional match, ANDed with the identifiers (see the module documentation).
    cmd.arg(TRUSTED_MATCH);
    cmd
}

impl JournalWatch {
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.stdout.as_fd()
    }

    /// Whether journalctl is still there (it exits when there is no journal).
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The entries waiting in the pipe (non-blocking), parsed.
    pub(crate) fn read(&mut self) -> Vec<LogRecord> {
        let mut buf = [0u8; 16384];
        loop {
            match self.stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            // Bounded: a runaway line is dropped rather than held.
            if self.pending.len() > 4 << 20 {
                self.pending.clear();
            }
        }
        let mut out = Vec::new();
        // The whole lines, then one drain (not a drain, and a shift of the rest, per line).
        let mut start = 0;
        while let Some(len) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + len;
            let text = String::from_utf8_lossy(&self.pending[start..end]);
            // One pass for the record and the cursor (it was two: a whole serde_json::Value
            // tree for the cursor alone, then the record).
            let (cursor, rec) = crate::detect::parse::parse_journal_json_entry(&text);
            if let Some(c) = cursor {
                self.cursor = Some(c);
            }
            out.extend(rec);
            start = end + 1;
        }
        self.pending.drain(..start);
        out
    }

    /// Keeps the cursor of the last entry read.
    pub(crate) fn commit(&mut self, root: &Root) {
        if self.cursor == self.saved {
            return;
        }
        if let Some(c) = &self.cursor {
            if root.write_atomic(CURSOR, c.as_bytes()).is_ok() {
                self.saved = self.cursor.clone();
            }
        }
    }
}

impl Drop for JournalWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_roots_entries_are_asked_for() {
        let cmd = command(Some("s=1"), &["zed".to_string()]);
        let args: Vec<_> = cmd.get_args().filter_map(|a| a.to_str()).collect();
        assert!(args.contains(&"--identifier") && args.contains(&"multipathd"));
        assert!(
            args.contains(&"zed") && args.contains(&"qemu-ga"),
            "zed and qemu-ga are followed: {args:?}"
        );
        assert!(args.contains(&"--after-cursor=s=1"));
        assert_eq!(args.last(), Some(&"_UID=0"), "{args:?}");
    }

    #[test]
    fn restart_delay_backs_off_to_five_minutes() {
        assert_eq!(restart_delay(0), Duration::from_secs(1));
        assert_eq!(restart_delay(3), Duration::from_secs(8));
        assert_eq!(restart_delay(9), Duration::from_secs(256));
        assert_eq!(restart_delay(u32::MAX), Duration::from_secs(256));
        assert!((0..64).all(|n| restart_delay(n) <= Duration::from_secs(300)));
    }

    /// A journalctl killed from outside comes back with `restart`. Needs journalctl on PATH
    /// (it only reads the journal; without one it waits); skipped without it.
    #[test]
    fn a_killed_journalctl_is_restarted() {
        let dir = std::env::temp_dir().join(format!("tunerd-journal-{}", std::process::id()));
        let root = Root::new(&dir);
        let Ok(mut w) = JournalWatch::start(&root, &[]) else {
            eprintln!("no journalctl: skipped");
            return;
        };
        assert!(w.alive());
        let _ = w.child.kill();
        let _ = w.child.wait();
        assert!(!w.alive());
        w.restart(&root).expect("restart");
        assert!(w.alive(), "a new journalctl runs");
        assert!(w.read().is_empty());
        // Nothing was read, so no cursor was written under the root.
        assert!(!dir.exists());
    }
}
