//! The exec hook: runs a program per notification, like smartd's `-M exec` and zed's
//! zedlets, with the notification in `TUNERD_*` environment variables (and whole, as JSON, in
//! `TUNERD_JSON`). No shell; the environment is cleared first (nothing of the daemon's, such as
//! `NOTIFY_SOCKET`, leaks to it) and holds only `PATH` and the `TUNERD_*` variables. It runs
//! on the hook's own worker thread, in its own process group, killed (the whole group) after
//! the timeout. Exit status 0 acknowledges; anything else is retried with backoff like an HTTP
//! failure. A program that cannot be run at all (missing, not executable, or an environment
//! the kernel refuses) is a rejection of that notification: retrying the same `execve` cannot
//! succeed, and the sink delivers its queue in order, so a retry would hold every later
//! notification behind it for good.
//!
//! What the hook inherits is reset where the daemon's own settings would hurt it: its stderr
//! is a pipe of its own (blocking; the daemon's is non-blocking, see `util::log`) whose lines
//! go to tunerd's log, and its OOM score adjustment is put back to 0 (the unit gives the
//! daemon -1000, which a runaway hook must not keep).
//!
//! The program itself comes from the disk: if the root disk hangs, starting it hangs, and
//! only this hook's worker waits; detection and the other sinks go on.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::http::tunerd_body;
use super::{truncate_at, Attempt};
use crate::detect::types::{Incident, Notification};
use crate::util::time::now_ms;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Linux refuses an environment string over 128 KiB (MAX_ARG_STRLEN) with E2BIG, and all of
// argv and envp together over the argument space, which is a quarter of RLIMIT_STACK but never
// less than 128 KiB (ARG_MAX, fs/exec.c). So every variable is capped, and the caps together
// stay below that smallest total, with room left for the configured `args`.

/// `TUNERD_JSON`, the largest.
const MAX_JSON: usize = 64 * 1024;
/// `TUNERD_MOUNTS`: a kubelet node can have thousands of bind mounts of one disk.
const MAX_MOUNTS: usize = 16 * 1024;
/// `TUNERD_SUMMARY`.
const MAX_SUMMARY: usize = 4 * 1024;
/// Every other variable (ids, names, times): short in practice, capped all the same because
/// device names come from log lines.
const MAX_SMALL: usize = 1024;
/// The number of small variables in [`env_vars`].
const SMALL_VARS: usize = 11;
/// Bytes of names, `=`, NULs, pointers and `PATH`, generously.
const ENV_OVERHEAD: usize = 2 * 1024;
/// The whole environment's bound (the caps above add up to it or less).
pub(crate) const MAX_ENV_TOTAL: usize = 100 * 1024;
const _: () = assert!(
    MAX_JSON + MAX_MOUNTS + MAX_SUMMARY + SMALL_VARS * MAX_SMALL + ENV_OVERHEAD <= MAX_ENV_TOTAL
);
const _: () = assert!(MAX_ENV_TOTAL < 128 * 1024);

/// What of the hook's stderr is logged per run: a chatty or hostile hook must not flood the
/// journal.
const MAX_STDERR_LOGGED: usize = 4096;
const MAX_STDERR_LINES: usize = 20;

pub(crate) struct ExecHook {
    pub program: String,
    pub args: Vec<String>,
    pub timeout: Duration,
    pub host: String,
}

/// Cuts `s` to `max` bytes, ending it with `…` when something was cut.
fn cap(mut s: String, max: usize) -> String {
    const MARK: &str = "…";
    if s.len() > max {
        truncate_at(&mut s, max.saturating_sub(MARK.len()));
        s.push_str(MARK);
    }
    s
}

/// The mount points, space-separated, cut at a whole mount point to fit `max` bytes; when
/// some are left out the last word is `…+N` (N of them), which no mount point looks like.
fn mounts_var(mounts: &[String], max: usize) -> String {
    let mut out = String::new();
    for (i, m) in mounts.iter().enumerate() {
        let left = mounts.len() - i;
        let marker = format!("…+{left}");
        let sep = usize::from(!out.is_empty());
        // Room for this one, and for the marker in case a later one does not fit.
        let room_after = if left > 1 { 1 + marker.len() } else { 0 };
        if out.len() + sep + m.len() + room_after > max {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&marker);
            return out;
        }
        if sep == 1 {
            out.push(' ');
        }
        out.push_str(m);
    }
    out
}

/// The incident as `TUNERD_JSON` carries it when whole it is too big, at trim level 1 (mild)
/// or 2 (hard). Lists keep their first entries and end with a marker entry saying how many
/// were left out.
fn trimmed(inc: &Incident, level: u8) -> Incident {
    let (lines, line_bytes, mount_bytes, summary, small) = match level {
        1 => (5, 500, MAX_MOUNTS, 1000, MAX_SMALL),
        _ => (1, 200, 1024, 200, 256),
    };
    let mut t = inc.clone();
    if t.evidence.len() > lines {
        let more = t.evidence.len() - lines;
        t.evidence.truncate(lines);
        t.evidence
            .push(format!("… {more} more evidence line(s) left out"));
    }
    for line in &mut t.evidence {
        *line = cap(std::mem::take(line), line_bytes);
    }
    let mut kept = 0usize;
    let mut bytes = 0usize;
    for m in &inc.mounts {
        if bytes + m.len() + 4 > mount_bytes {
            break;
        }
        bytes += m.len() + 4;
        kept += 1;
    }
    if kept < inc.mounts.len() {
        let more = inc.mounts.len() - kept;
        t.mounts.truncate(kept);
        t.mounts
            .push(format!("… {more} more mount point(s) left out"));
    }
    t.summary = cap(std::mem::take(&mut t.summary), summary);
    t.id = cap(std::mem::take(&mut t.id), small);
    t.disk = t.disk.take().map(|d| cap(d, small));
    t.device = t.device.take().map(|d| cap(d, small));
    t.fstype = t.fstype.take().map(|d| cap(d, small));
    t.source = cap(std::mem::take(&mut t.source), small);
    t
}

/// `TUNERD_JSON`: the webhook body, trimmed until it fits [`MAX_JSON`]; empty only if even
/// the hard trim does not (a `host` of tens of KiB).
fn json_var(n: &Notification, host: &str) -> String {
    let mut json = tunerd_body(n, host, now_ms());
    for level in [1, 2] {
        if json.len() <= MAX_JSON {
            break;
        }
        let short = Notification {
            incident: trimmed(&n.incident, level),
            id: cap(n.id.clone(), MAX_SMALL),
            ..n.clone()
        };
        json = tunerd_body(&short, host, now_ms());
    }
    if json.len() > MAX_JSON {
        return String::new();
    }
    String::from_utf8_lossy(&json).into_owned()
}

/// The variables one notification is given as, each capped (see [`MAX_ENV_TOTAL`]). NUL
/// bytes (which no environment can hold) are dropped.
pub(crate) fn env_vars(n: &Notification, host: &str) -> Vec<(String, String)> {
    let inc = &n.incident;
    let small = |s: String| cap(s, MAX_SMALL);
    let event = n.event.as_str();
    let vars = [
        ("TUNERD_EVENT", small(event.to_string())),
        ("TUNERD_ID", small(n.id.clone())),
        ("TUNERD_INCIDENT_ID", small(inc.id.clone())),
        ("TUNERD_KIND", small(inc.kind.name())),
        ("TUNERD_SEVERITY", small(inc.severity.as_str().to_string())),
        ("TUNERD_DISK", small(inc.disk.clone().unwrap_or_default())),
        (
            "TUNERD_DEVICE",
            small(inc.device.clone().unwrap_or_default()),
        ),
        ("TUNERD_MOUNTS", mounts_var(&inc.mounts, MAX_MOUNTS)),
        (
            "TUNERD_FSTYPE",
            small(inc.fstype.clone().unwrap_or_default()),
        ),
        ("TUNERD_SUMMARY", cap(inc.summary.clone(), MAX_SUMMARY)),
        ("TUNERD_HOST", small(host.to_string())),
        ("TUNERD_STARTED", small(inc.started.to_string())),
        (
            "TUNERD_ENDED",
            small(inc.ended.map(|e| e.to_string()).unwrap_or_default()),
        ),
        ("TUNERD_JSON", json_var(n, host)),
    ];
    vars.into_iter()
        .map(|(k, v)| (k.to_string(), v.replace('\0', "")))
        .collect()
}

/// Spawn errors that no retry can cure: the program is missing or not executable, or the
/// kernel refuses its arguments and environment.
fn cannot_ever_run(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    [
        Errno::E2BIG,
        Errno::ENOENT,
        Errno::EACCES,
        Errno::ENOEXEC,
        Errno::ENOTDIR,
    ]
    .iter()
    .any(|&no| e.raw_os_error() == Some(no as i32))
}

/// Puts the OOM score adjustment back to the default in the child, between fork and exec.
/// Only open, write and close, on a static C string: nothing that allocates or takes a lock
/// (the parent may have had other threads at the fork). Raising the value needs no
/// privilege; a failure (no /proc) leaves the inherited one.
fn reset_oom_score_adj() {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    if let Ok(fd) = open(
        c"/proc/self/oom_score_adj",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        let _ = nix::unistd::write(&fd, b"0");
    }
}

/// The hook's stderr as tunerd reads it: the read end of a pipe, non-blocking on tunerd's
/// side only (O_NONBLOCK belongs to the open file description, and the two ends of a pipe
/// are two of them: the hook's end stays blocking).
struct StderrPipe {
    read: Option<std::fs::File>,
    kept: Vec<u8>,
    dropped: usize,
}

impl StderrPipe {
    /// The pipe, and the end to give the hook.
    fn new() -> std::io::Result<(StderrPipe, OwnedFd)> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok((
            StderrPipe {
                read: Some(std::fs::File::from(r)),
                kept: Vec::new(),
                dropped: 0,
            },
            w,
        ))
    }

    /// Waits up to `nap` for output and takes what is there. Once every writer has closed
    /// (EOF), just sleeps.
    fn wait(&mut self, nap: Duration) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let Some(file) = &self.read else {
            std::thread::sleep(nap);
            return;
        };
        let ms = u16::try_from(nap.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(ms));
        self.drain();
    }

    /// Reads what is buffered now, keeping the first [`MAX_STDERR_LOGGED`] bytes.
    fn drain(&mut self) {
        let Some(file) = &mut self.read else { return };
        let mut buf = [0u8; 4096];
        loop {
            match file.read(&mut buf) {
                Ok(0) => {
                    self.read = None;
                    return;
                }
                Ok(n) => {
                    let room = MAX_STDERR_LOGGED.saturating_sub(self.kept.len());
                    let take = n.min(room);
                    self.kept.extend_from_slice(&buf[..take]);
                    self.dropped += n - take;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // WouldBlock: nothing more now; any other error: stop reading.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.read = None;
                    return;
                }
            }
        }
    }

    /// Logs what the hook wrote, one log line per line of it, control characters shown as
    /// `?`. Closing the read end afterwards means a leftover writer (a background child that
    /// escaped the kill) gets EPIPE instead of filling a pipe nobody reads.
    fn log(mut self, program: &str) {
        self.drain();
        let text = String::from_utf8_lossy(&self.kept);
        let mut lines = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if lines == MAX_STDERR_LINES {
                self.dropped += line.len();
                continue;
            }
            lines += 1;
            let clean: String = line
                .chars()
                .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
                .collect();
            crate::log!(info, "alert sink exec: {program}: {clean}");
        }
        if self.dropped > 0 {
            crate::log!(
                info,
                "alert sink exec: {program}: {} more byte(s) of stderr not logged",
                self.dropped
            );
        }
    }
}

impl ExecHook {
    pub(crate) fn run(&self, n: &Notification) -> Attempt {
        use std::os::unix::process::CommandExt;
        let (mut stderr, hook_end) = match StderrPipe::new() {
            Ok(p) => p,
            Err(e) => {
                return Attempt::Retry {
                    why: format!("cannot make a pipe for {}: {e}", self.program),
                    after: None,
                }
            }
        };
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", PATH)
            .envs(env_vars(n, &self.host))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(hook_end))
            .process_group(0);
        // SAFETY: the closure only calls async-signal-safe functions (see the function).
        unsafe {
            cmd.pre_exec(|| {
                reset_oom_score_adj();
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        // The Command holds tunerd's copy of the hook's end: close it, so that the pipe
        // ends when the hook (and what it started) has closed its own.
        drop(cmd);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if cannot_ever_run(&e) => {
                return Attempt::Reject(format!("cannot run {}: {e}", self.program))
            }
            Err(e) => {
                return Attempt::Retry {
                    why: format!("cannot run {}: {e}", self.program),
                    after: None,
                }
            }
        };
        let deadline = Instant::now() + self.timeout;
        let mut nap = Duration::from_millis(2);
        let outcome = loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => break Attempt::Delivered,
                Ok(Some(status)) => {
                    break Attempt::Retry {
                        why: format!("{} {status}", self.program),
                        after: None,
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.kill(&mut child);
                    break Attempt::Retry {
                        why: format!("waiting for {}: {e}", self.program),
                        after: None,
                    };
                }
            }
            if Instant::now() >= deadline {
                self.kill(&mut child);
                break Attempt::Retry {
                    why: format!(
                        "{} did not finish within {} ms; killed",
                        self.program,
                        self.timeout.as_millis()
                    ),
                    after: None,
                };
            }
            stderr.wait(nap);
            nap = (nap * 2).min(Duration::from_millis(50));
        };
        stderr.log(&self.program);
        outcome
    }

    /// Kills the hook's whole process group (what it started too), then reaps it.
    fn kill(&self, child: &mut std::process::Child) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::types::{IncidentState, Kind, Severity};

    fn notification(mounts: usize, evidence: usize) -> Notification {
        Notification {
            id: "disk/vdb/k1/firing".to_string(),
            event: IncidentState::Firing,
            incident: Incident {
                id: "disk/vdb/k1".to_string(),
                kind: Kind::BufferIoError,
                severity: Severity::Critical,
                state: IncidentState::Firing,
                summary: "I/O error on vdb".to_string(),
                disk: Some("vdb".to_string()),
                device: Some("vdb".to_string()),
                mounts: (0..mounts)
                    .map(|i| format!("/var/lib/kubelet/pods/{i:036}/volumes/kubernetes.io~csi/pvc-{i:030}/mount"))
                    .collect(),
                fstype: Some("ext4".to_string()),
                started: 1,
                last_seen: 2,
                ended: None,
                count: 1,
                evidence: (0..evidence).map(|i| format!("{i}: {}", "x".repeat(4000))).collect(),
                source: "kmsg".to_string(),
            },
            created_ms: 1000,
        }
    }

    fn total(vars: &[(String, String)]) -> usize {
        vars.iter().map(|(k, v)| k.len() + v.len() + 2).sum()
    }

    #[test]
    fn every_variable_and_the_whole_environment_are_capped() {
        let vars = env_vars(&notification(1500, 100), "h");
        for (k, v) in &vars {
            assert!(v.len() <= MAX_JSON, "{k} is {} bytes", v.len());
        }
        assert!(total(&vars) <= MAX_ENV_TOTAL, "{}", total(&vars));
        let get = |name: &str| &vars.iter().find(|(k, _)| k == name).expect(name).1;
        let mounts = get("TUNERD_MOUNTS");
        assert!(mounts.len() <= MAX_MOUNTS);
        let last = mounts.rsplit(' ').next().unwrap_or_default();
        assert!(last.starts_with("…+"), "{last}");
        let json: serde_json::Value = serde_json::from_str(get("TUNERD_JSON")).expect("JSON");
        let listed = json["incident"]["mounts"].as_array().expect("mounts").len();
        assert!(listed > 10 && listed < 1500, "{listed}");
        let last = json["incident"]["mounts"][listed - 1]
            .as_str()
            .unwrap_or_default();
        assert!(last.contains("more mount point"), "{last}");
    }

    #[test]
    fn a_small_notification_is_passed_whole() {
        let n = notification(3, 2);
        let vars = env_vars(&n, "h");
        let get = |name: &str| &vars.iter().find(|(k, _)| k == name).expect(name).1;
        assert_eq!(get("TUNERD_MOUNTS").split(' ').count(), 3);
        let json: serde_json::Value = serde_json::from_str(get("TUNERD_JSON")).expect("JSON");
        assert_eq!(
            json["incident"]["evidence"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn mounts_are_cut_at_whole_mount_points() {
        let m: Vec<String> = ["/a", "/bb", "/ccc"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(mounts_var(&m, 100), "/a /bb /ccc");
        assert_eq!(mounts_var(&m, 9), "/a …+2");
        assert!(mounts_var(&m, 9).len() <= 9);
        assert_eq!(mounts_var(&[], 9), "");
    }
}
