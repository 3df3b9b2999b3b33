//! The exec hook: runs a program per notification, like smartd's `-M exec` and zed's
//! zedlets, with the notification in `TUNERD_*` environment variables (and whole, as JSON, in
//! `TUNERD_JSON`). No shell; the environment is cleared first (nothing of the daemon's, such as
//! `NOTIFY_SOCKET`, leaks to it) and holds only `PATH` and the `TUNERD_*` variables. It runs
//! on the hook's own worker thread, in its own process group, killed (the whole group) after
//! the timeout. Exit status 0 acknowledges; anything else is retried with backoff like an HTTP
//! failure.
//!
//! The program itself comes from the disk: if the root disk hangs, starting it hangs, and
//! only this hook's worker waits; detection and the other sinks go on.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::http::tunerd_body;
use super::{truncate_at, Attempt};
use crate::detect::types::{Incident, Notification};
use crate::util::time::now_ms;

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Linux refuses an environment string over 128 KiB (MAX_ARG_STRLEN); stay well below.
const MAX_JSON: usize = 100_000;

pub(crate) struct ExecHook {
    pub program: String,
    pub args: Vec<String>,
    pub timeout: Duration,
    pub host: String,
}

/// The variables one notification is given as. NUL bytes (which no environment can hold)
/// are dropped.
pub(crate) fn env_vars(n: &Notification, host: &str) -> Vec<(String, String)> {
    let inc = &n.incident;
    let mut json = tunerd_body(n, host, now_ms());
    if json.len() > MAX_JSON {
        let mut trimmed: Incident = inc.clone();
        trimmed.evidence.truncate(5);
        for line in &mut trimmed.evidence {
            truncate_at(line, 500);
        }
        truncate_at(&mut trimmed.summary, 1000);
        let short = Notification {
            incident: trimmed,
            ..n.clone()
        };
        json = tunerd_body(&short, host, now_ms());
    }
    let event = n.event.as_str();
    let vars = [
        ("TUNERD_EVENT", event.to_string()),
        ("TUNERD_ID", n.id.clone()),
        ("TUNERD_INCIDENT_ID", inc.id.clone()),
        ("TUNERD_KIND", inc.kind.name()),
        ("TUNERD_SEVERITY", inc.severity.as_str().to_string()),
        ("TUNERD_DISK", inc.disk.clone().unwrap_or_default()),
        ("TUNERD_DEVICE", inc.device.clone().unwrap_or_default()),
        ("TUNERD_MOUNTS", inc.mounts.join(" ")),
        ("TUNERD_FSTYPE", inc.fstype.clone().unwrap_or_default()),
        ("TUNERD_SUMMARY", inc.summary.clone()),
        ("TUNERD_HOST", host.to_string()),
        ("TUNERD_STARTED", inc.started.to_string()),
        (
            "TUNERD_ENDED",
            inc.ended.map(|e| e.to_string()).unwrap_or_default(),
        ),
        ("TUNERD_JSON", String::from_utf8_lossy(&json).into_owned()),
    ];
    vars.into_iter()
        .map(|(k, v)| (k.to_string(), v.replace('\0', "")))
        .collect()
}

impl ExecHook {
    pub(crate) fn run(&self, n: &Notification) -> Attempt {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", PATH)
            .envs(env_vars(n, &self.host))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Attempt::Retry {
                    why: format!("cannot run {}: {e}", self.program),
                    after: None,
                }
            }
        };
        let deadline = Instant::now() + self.timeout;
        let mut nap = Duration::from_millis(2);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Attempt::Delivered,
                Ok(Some(status)) => {
                    return Attempt::Retry {
                        why: format!("{} {status}", self.program),
                        after: None,
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.kill(&mut child);
                    return Attempt::Retry {
                        why: format!("waiting for {}: {e}", self.program),
                        after: None,
                    };
                }
            }
            if Instant::now() >= deadline {
                self.kill(&mut child);
                return Attempt::Retry {
                    why: format!(
                        "{} did not finish within {} ms; killed",
                        self.program,
                        self.timeout.as_millis()
                    ),
                    after: None,
                };
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(50));
        }
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
