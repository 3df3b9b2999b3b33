//! Userspace storage daemons tell of trouble in the systemd journal, not the kernel log:
//! multipathd (`mpatha: remaining active paths: 0`), iscsid, NFS helpers. tunerd follows
//! their entries with `journalctl --follow --output=json`, a child process whose pipe the event
//! loop reads without ever blocking (journald and its files may sit on the failing disk; only
//! the child waits on them). The cursor of the last entry handled is kept in /run/tunerd, so a
//! restart resumes after it: nothing missed, nothing reported twice.
//!
//! Spawning journalctl rather than linking libsystemd's sd-journal: the same reader systemd
//! ships, no C dependency, and its hangs stay in another process.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::detect::types::LogRecord;
use crate::host::sys::Root;

use crate::host::state_files::JOURNAL_CURSOR as CURSOR;

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
];

pub(crate) struct JournalWatch {
    child: Child,
    stdout: ChildStdout,
    pending: Vec<u8>,
    cursor: Option<String>,
    saved: Option<String>,
}

impl JournalWatch {
    /// Starts journalctl after the saved cursor (or from the start of this boot).
    pub(crate) fn start(root: &Root) -> io::Result<JournalWatch> {
        let saved = root
            .read_opt(CURSOR)
            .ok()
            .flatten()
            .filter(|c| !c.is_empty());
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
        match &saved {
            Some(c) => cmd.arg(format!("--after-cursor={c}")),
            None => cmd.arg("--lines=all"),
        };
        let mut child = cmd
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
        Ok(JournalWatch {
            child,
            stdout,
            pending: Vec::new(),
            cursor: saved.clone(),
            saved,
        })
    }

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
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            if let Some(c) = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["__CURSOR"].as_str().map(str::to_string))
            {
                self.cursor = Some(c);
            }
            if let Some(rec) = crate::detect::parse::parse_journal_json_line(text.trim_end()) {
                out.push(rec);
            }
        }
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
