//! The spool: every notification a sink has not acknowledged yet, one file per (notification,
//! sink) under `run/tunerd/spool/SINK/SEQ.json` (tmpfs: writing it costs no disk and survives
//! a daemon restart, not a reboot). A file is written before its sink's worker hears of it and
//! removed when the sink answered 2xx (or refused it for good), so a `kill -9` loses nothing
//! and a fresh [`super::Dispatcher`] on the same root delivers the backlog.
//!
//! Bounded: at most `max_entries` per sink. When full, the oldest entry of the lowest severity
//! goes, and only if it is not more severe than the newcomer: a critical notification is never
//! dropped to make room for a lesser one (the lesser one is dropped instead, and counted).
//! `run/tunerd/spool/.lock` (flock) keeps two dispatchers from delivering the same spool.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::AlertError;
use crate::detect::types::{Notification, Severity};
use crate::host::sys::{Root, SysError};

/// Where the spool lives, under the root.
pub use crate::host::state_files::SPOOL as SPOOL_DIR;
use crate::host::state_files::SPOOL_MODE;
const LOCK: &str = ".lock";
const ACTIVE: &str = "active.json";

/// One spool file's contents.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    sink: String,
    seq: u64,
    notification: Notification,
}

/// One undelivered notification of one sink.
#[derive(Debug, Clone)]
pub(crate) struct Spooled {
    /// Global creation order (across sinks and restarts): delivery order within a sink.
    pub seq: u64,
    pub severity: Severity,
    pub notification: Arc<Notification>,
    /// Its file under the root; `None` when the spool could not be written (delivered from
    /// memory only, and said so in the log).
    pub file: Option<String>,
}

/// What to do with a newcomer when the spool may be full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Accept,
    /// Drop this (older, not more severe) entry to make room.
    Evict(u64),
    /// Everything queued is more severe (or in flight): drop the newcomer.
    Refuse,
}

pub(crate) fn admit(
    entries: &BTreeMap<u64, Spooled>,
    in_flight: Option<u64>,
    max: usize,
    incoming: Severity,
) -> Admit {
    if entries.len() < max {
        return Admit::Accept;
    }
    let victim = entries
        .values()
        .filter(|e| Some(e.seq) != in_flight)
        .min_by_key(|e| (e.severity, e.seq));
    match victim {
        Some(v) if v.severity <= incoming => Admit::Evict(v.seq),
        _ => Admit::Refuse,
    }
}

pub(crate) struct Spool {
    root: Root,
    next_seq: AtomicU64,
    /// Held (flock) until the dispatcher shuts down.
    lock: Mutex<Option<File>>,
}

fn entry_name(seq: u64) -> String {
    format!("{seq:016x}.json")
}

fn parse_entry_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".json")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

impl Spool {
    pub(crate) fn open(root: &Root) -> Result<Spool, AlertError> {
        use std::os::unix::fs::OpenOptionsExt;
        root.create_dir(SPOOL_DIR).map_err(AlertError::Spool)?;
        let sys = |op, rel: &str, source| SysError {
            op,
            path: root.path(rel),
            source,
        };
        // Evidence is kernel log lines: for root's eyes only, like dmesg under dmesg_restrict.
        // Also when the directory predates us. Through a descriptor opened with O_NOFOLLOW: a
        // symlink planted at the spool's name is refused, not chmodded (security review,
        // finding 12).
        root.chmod_dir(SPOOL_DIR, SPOOL_MODE)
            .map_err(AlertError::Spool)?;
        let rel = format!("{SPOOL_DIR}/{LOCK}");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(root.path(&rel))
            .map_err(|e| AlertError::Spool(sys("open", &rel, e)))?;
        // A lock just released can still be held for a moment by a child forked in between
        // (the flock goes with the descriptor until the child's exec closes it): a restart or
        // a reload tries for a second before it calls the spool busy.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(AlertError::Busy(format!(
                        "another dispatcher delivers from {}",
                        root.display(SPOOL_DIR)
                    )))
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(AlertError::Spool(sys("lock", &rel, e)))
                }
            }
        }
        let spool = Spool {
            root: root.clone(),
            next_seq: AtomicU64::new(1),
            lock: Mutex::new(Some(lock)),
        };
        let mut max = 0;
        for sink in spool.sinks()? {
            for name in root.list(&spool.dir(&sink)).map_err(AlertError::Spool)? {
                if let Some(seq) = parse_entry_name(&name) {
                    max = max.max(seq);
                }
            }
        }
        spool.next_seq.store(max + 1, Ordering::Relaxed);
        Ok(spool)
    }

    /// Sink directories present in the spool.
    fn sinks(&self) -> Result<Vec<String>, AlertError> {
        let names = self.root.list(SPOOL_DIR).map_err(AlertError::Spool)?;
        Ok(names
            .into_iter()
            .filter(|n| super::config::valid_sink_name(n))
            .filter(|n| self.root.path(&self.dir(n)).is_dir())
            .collect())
    }

    /// Lets another dispatcher take the spool (after a shutdown, even if a worker stuck in a
    /// delivery still holds this one).
    pub(crate) fn release(&self) {
        super::lock(&self.lock).take();
    }

    pub(crate) fn dir(&self, sink: &str) -> String {
        format!("{SPOOL_DIR}/{sink}")
    }

    pub(crate) fn display(&self) -> String {
        self.root.display(SPOOL_DIR)
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Writes one entry (atomically: a crash leaves the whole file or none) and returns its
    /// path under the root.
    pub(crate) fn write(&self, sink: &str, seq: u64, n: &Notification) -> Result<String, SysError> {
        let rel = format!("{}/{}", self.dir(sink), entry_name(seq));
        let stored = Stored {
            version: 1,
            sink: sink.to_string(),
            seq,
            notification: n.clone(),
        };
        let json = serde_json::to_vec(&stored).map_err(|e| SysError {
            op: "encode",
            path: self.root.path(&rel),
            source: std::io::Error::other(e),
        })?;
        self.root.write_atomic(&rel, &json)?;
        Ok(rel)
    }

    pub(crate) fn remove(&self, rel: &str) {
        if let Err(e) = self.root.remove(rel) {
            crate::log!(warn, "alert spool: {e}");
        }
    }

    /// A sink's entries in delivery order. Unreadable or foreign files are logged and removed:
    /// they can never be delivered.
    pub(crate) fn load(&self, sink: &str) -> Vec<Spooled> {
        let dir = self.dir(sink);
        let names = match self.root.list(&dir) {
            Ok(n) => n,
            Err(e) => {
                crate::log!(err, "alert spool: {e}");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for name in names {
            let rel = format!("{dir}/{name}");
            if name.ends_with(".tmp") {
                // A write cut short by a crash: its notification was never handed over.
                self.remove(&rel);
                continue;
            }
            let Some(seq) = parse_entry_name(&name) else {
                continue;
            };
            let parsed = self
                .root
                .read(&rel)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_str::<Stored>(&text).map_err(|e| e.to_string()));
            match parsed {
                Ok(s) if s.version == 1 && s.seq == seq && s.sink == sink => out.push(Spooled {
                    seq,
                    severity: s.notification.incident.severity,
                    notification: Arc::new(s.notification),
                    file: Some(rel),
                }),
                Ok(_) => {
                    crate::log!(
                        warn,
                        "alert spool: {} does not belong to sink {sink}; removed",
                        self.root.display(&rel)
                    );
                    self.remove(&rel);
                }
                Err(e) => {
                    crate::log!(
                        warn,
                        "alert spool: {} is unreadable ({e}); removed",
                        self.root.display(&rel)
                    );
                    self.remove(&rel);
                }
            }
        }
        out.sort_by_key(|e| e.seq);
        out
    }

    /// Removes what sinks that are no longer configured left behind: nobody can deliver it.
    pub(crate) fn discard_unknown(&self, known: &[&str]) {
        let sinks = match self.sinks() {
            Ok(s) => s,
            Err(e) => {
                crate::log!(err, "alert spool: {e}");
                return;
            }
        };
        for sink in sinks.iter().filter(|s| !known.contains(&s.as_str())) {
            let dir = self.dir(sink);
            let names = self.root.list(&dir).unwrap_or_default();
            let count = names
                .iter()
                .filter(|n| parse_entry_name(n).is_some())
                .count();
            for name in names {
                self.remove(&format!("{dir}/{name}"));
            }
            if count > 0 {
                crate::log!(
                    warn,
                    "alert spool: sink {sink} is no longer configured; {count} undelivered notification(s) for it discarded"
                );
            }
        }
    }

    /// A sink's persisted state other than entries (Alertmanager: the alerts firing).
    pub(crate) fn load_state<T: DeserializeOwned>(&self, sink: &str) -> Option<T> {
        let rel = format!("{}/{ACTIVE}", self.dir(sink));
        let text = self.root.read_opt(&rel).ok()??;
        match serde_json::from_str(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                crate::log!(
                    warn,
                    "alert spool: {} is unreadable ({e}); ignored",
                    self.root.display(&rel)
                );
                None
            }
        }
    }

    pub(crate) fn save_state<T: Serialize>(&self, sink: &str, state: &T) {
        let rel = format!("{}/{ACTIVE}", self.dir(sink));
        let result = serde_json::to_vec(state)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                self.root
                    .write_atomic(&rel, &json)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            crate::log!(warn, "alert spool: saving {}: {e}", self.root.display(&rel));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, severity: Severity) -> (u64, Spooled) {
        let n = Notification {
            id: format!("n{seq}"),
            event: crate::detect::types::IncidentState::Firing,
            incident: crate::detect::types::Incident {
                id: format!("i{seq}"),
                kind: crate::detect::types::Kind::IoStall,
                severity,
                state: crate::detect::types::IncidentState::Firing,
                summary: String::new(),
                disk: None,
                device: None,
                mounts: Vec::new(),
                fstype: None,
                started: 0,
                last_seen: 0,
                ended: None,
                count: 1,
                evidence: Vec::new(),
                source: "test".into(),
            },
            created_ms: 0,
        };
        (
            seq,
            Spooled {
                seq,
                severity,
                notification: Arc::new(n),
                file: None,
            },
        )
    }

    #[test]
    fn eviction_takes_the_oldest_least_severe_and_never_a_critical_for_less() {
        use Severity::*;
        let q: BTreeMap<u64, Spooled> = [entry(1, Critical), entry(2, Info), entry(3, Warning)]
            .into_iter()
            .collect();
        assert_eq!(admit(&q, None, 4, Info), Admit::Accept);
        assert_eq!(admit(&q, None, 3, Critical), Admit::Evict(2));
        assert_eq!(admit(&q, None, 3, Info), Admit::Evict(2));
        let q: BTreeMap<u64, Spooled> = [entry(1, Critical), entry(3, Warning), entry(4, Critical)]
            .into_iter()
            .collect();
        assert_eq!(admit(&q, None, 3, Info), Admit::Refuse);
        assert_eq!(admit(&q, None, 3, Warning), Admit::Evict(3));
        let q: BTreeMap<u64, Spooled> = [entry(1, Critical), entry(4, Critical)]
            .into_iter()
            .collect();
        assert_eq!(admit(&q, None, 2, Warning), Admit::Refuse);
        assert_eq!(admit(&q, None, 2, Critical), Admit::Evict(1));
        assert_eq!(admit(&q, Some(1), 2, Critical), Admit::Evict(4));
        assert_eq!(admit(&q, Some(1), 1, Critical), Admit::Evict(4));
    }

    #[test]
    fn entry_names_round_trip() {
        assert_eq!(parse_entry_name(&entry_name(0x1f)), Some(0x1f));
        assert_eq!(parse_entry_name("active.json"), None);
        assert_eq!(parse_entry_name("000000000000001f.tmp"), None);
    }
}
