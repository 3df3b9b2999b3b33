//! Alert delivery: every `Notification` reaches every configured sink (webhooks in tunerd's
//! format, Alertmanager, an exec hook) at least once, whatever the receivers do, without ever
//! making the caller wait for one.
//!
//! [`Dispatcher::notify`] writes the notification to the spool (`run/tunerd/spool/`, one file
//! per sink; see `spool`) and hands it to the sink's worker thread through its queue; that is
//! all the caller waits for. Each sink has its own worker, so a dead or hanging receiver delays
//! nobody else. A worker delivers its queue in order; a 2xx (exit status 0 for the hook)
//! removes the entry; network errors, timeouts, 408/425/429 and 5xx are retried with
//! exponential backoff and jitter (`Retry-After` honoured); other answers are logged and the
//! entry dropped. The notification id is the same on every attempt (`webhook-id`), so
//! receivers deduplicate. A new dispatcher on the same root delivers whatever an earlier one,
//! killed, left in the spool.
//!
//! After [`Dispatcher::start`], nothing on the delivery path reads the disk except the spool
//! in /run: the host name and TLS roots are read at start, host names are resolved on helper
//! threads into a cache (see `http`). What remains is in docs/alerts.md.

/// `[alert]` of tunerd.toml; src/config.rs calls `config::parse_alert`.
pub(crate) mod config;
mod exec;
mod http;
/// One structured journal entry per notification (journald's native protocol).
pub(crate) mod journald;
mod spool;
mod textfile;

use crate::util::time;

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

pub(crate) use config::parse_alert;
#[cfg(test)]
pub(crate) use config::schema as config_schema;
pub use config::{
    AlertConfig, AlertmanagerConfig, ExecConfig, Format, RetryConfig, Secret, SpoolConfig,
    TextfileConfig, WebhookConfig, EXEC_SINK,
};
pub use spool::SPOOL_DIR;
pub use textfile::{render_textfile, write_textfile, Metrics};

use crate::detect::types::{IncidentState, Notification, Severity};
use crate::host::sys::{Root, SysError};
use http::{ActiveAlert, Alertmanager, HttpSink};
use spool::{admit, Admit, Spool, Spooled};

/// How long [`Dispatcher::shutdown`] waits for workers in the middle of a delivery.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the dispatcher cannot start.
#[derive(Debug)]
pub enum AlertError {
    /// A configuration built in code that parsing would have refused.
    Config(String),
    /// The spool directory cannot be made, locked or read.
    Spool(SysError),
    /// Another dispatcher holds the spool.
    Busy(String),
    /// A worker thread cannot be started.
    Thread(std::io::Error),
}

impl fmt::Display for AlertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlertError::Config(m) => write!(f, "alert configuration: {m}"),
            AlertError::Spool(e) => write!(f, "alert spool: {e}"),
            AlertError::Busy(m) => write!(f, "alert spool: {m}"),
            AlertError::Thread(e) => write!(f, "alert: cannot start a worker thread: {e}"),
        }
    }
}

impl std::error::Error for AlertError {}

/// One sink's counters, for tunerd's status and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    pub sink: String,
    /// `webhook`, `alertmanager` or `exec`.
    pub kind: &'static str,
    /// Notifications acknowledged (2xx, exit 0).
    pub delivered: u64,
    /// Attempts that failed, each retry counted (refusals included).
    pub failed_attempts: u64,
    /// Notifications the receiver refused for good (4xx other than 408/425/429, a redirect).
    pub rejected: u64,
    /// Notifications dropped because the spool was full.
    pub dropped: u64,
    /// Waiting in the spool.
    pub queued: u64,
    /// Alertmanager: successful re-sends of the firing alerts.
    pub resent: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStats {
    pub sinks: Vec<SinkStats>,
}

impl DeliveryStats {
    pub fn sink(&self, name: &str) -> Option<&SinkStats> {
        self.sinks.iter().find(|s| s.sink == name)
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    Delivered,
    /// Try again later; `after` is the receiver's `Retry-After`.
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Never try this one again.
    Reject(String),
}

pub(crate) use crate::util::sync::lock;

fn wait_for<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>, d: Option<Duration>) -> MutexGuard<'a, T> {
    match d {
        Some(d) => cv
            .wait_timeout(g, d)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0),
        None => cv.wait(g).unwrap_or_else(|p| p.into_inner()),
    }
}

/// Cuts a string to at most `max` bytes, on a character boundary.
pub(crate) fn truncate_at(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// Exponential backoff with "equal jitter": the n-th consecutive failure waits between half
/// and all of `initial * 2^(n-1)`, capped at `max`.
fn backoff(retry: &RetryConfig, failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(32);
    let full = retry
        .initial_ms
        .saturating_mul(1u64 << shift)
        .min(retry.max_ms);
    let half = full / 2;
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(time::now_ms());
    Duration::from_millis(half + h.finish() % (full - half + 1))
}

enum Deliverer {
    Webhook { http: HttpSink, host: String },
    Alertmanager(Alertmanager),
    Exec(exec::ExecHook),
}

/// What the caller and a sink's worker share.
struct SinkShared {
    name: String,
    kind: &'static str,
    min_severity: Severity,
    max_entries: usize,
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    entries: BTreeMap<u64, Spooled>,
    /// The entry being delivered: never evicted.
    in_flight: Option<u64>,
    stopping: bool,
    stats: SinkStats,
    /// Alertmanager: the alerts it holds as firing, by incident id.
    active: BTreeMap<String, ActiveAlert>,
}

impl SinkShared {
    fn is_alertmanager(&self) -> bool {
        self.kind == "alertmanager"
    }

    /// Queues one entry, making room by the spool's rule. `false`: dropped instead.
    fn admit(&self, q: &mut Queue, severity: Severity) -> (bool, Option<Spooled>) {
        match admit(&q.entries, q.in_flight, self.max_entries, severity) {
            Admit::Accept => (true, None),
            Admit::Evict(seq) => {
                q.stats.dropped += 1;
                let evicted = q.entries.remove(&seq);
                if let Some(e) = &evicted {
                    if self.is_alertmanager() && e.notification.event == IncidentState::Resolved {
                        // Its resolution is lost: stop tracking the alert, Alertmanager ends
                        // it at its endsAt.
                        q.active.remove(&e.notification.incident.id);
                    }
                }
                (true, evicted)
            }
            Admit::Refuse => {
                q.stats.dropped += 1;
                (false, None)
            }
        }
    }
}

fn log_dropped(sink: &str, n: &Notification, why: &str) {
    crate::log!(
        warn,
        "alert sink {sink}: spool full; dropped {} notification {} ({}) {why}",
        n.incident.severity.as_str(),
        n.id,
        n.incident.summary
    );
}

enum Job {
    Deliver {
        seq: u64,
        n: Arc<Notification>,
        prev: Option<ActiveAlert>,
    },
    Resend(Vec<ActiveAlert>),
}

struct Worker {
    shared: Arc<SinkShared>,
    deliverer: Deliverer,
    spool: Arc<Spool>,
    retry: RetryConfig,
}

impl Worker {
    fn run(self) {
        let mut failures: u32 = 0;
        let mut not_before = Instant::now();
        // Re-send what a previous run left firing right away: it may be close to its endsAt.
        let mut next_resend = Instant::now();
        let resend_every = match &self.deliverer {
            Deliverer::Alertmanager(am) => Some(am.resend),
            _ => None,
        };
        loop {
            let job = {
                let mut q = lock(&self.shared.queue);
                loop {
                    if q.stopping {
                        return;
                    }
                    let now = Instant::now();
                    if now < not_before {
                        q = wait_for(&self.shared.wake, q, Some(not_before - now));
                        continue;
                    }
                    if let Some((&seq, e)) = q.entries.iter().next() {
                        let n = Arc::clone(&e.notification);
                        q.in_flight = Some(seq);
                        let prev = q.active.get(&n.incident.id).cloned();
                        break Job::Deliver { seq, n, prev };
                    }
                    let firing: Vec<ActiveAlert> = match resend_every {
                        Some(_) => q
                            .active
                            .values()
                            .filter(|a| !a.resolving)
                            .cloned()
                            .collect(),
                        None => Vec::new(),
                    };
                    if firing.is_empty() {
                        q = wait_for(&self.shared.wake, q, None);
                    } else if now >= next_resend {
                        break Job::Resend(firing);
                    } else {
                        q = wait_for(&self.shared.wake, q, Some(next_resend - now));
                    }
                }
            };
            let outcome = match job {
                Job::Deliver { seq, n, prev } => {
                    let (outcome, state) = self.deliver(&n, prev.as_ref());
                    self.finish(seq, &n, &outcome, state);
                    outcome
                }
                Job::Resend(alerts) => {
                    let outcome = match &self.deliverer {
                        Deliverer::Alertmanager(am) => am.resend(&alerts, time::now_ms()),
                        _ => Attempt::Delivered,
                    };
                    let mut q = lock(&self.shared.queue);
                    match &outcome {
                        Attempt::Delivered => q.stats.resent += 1,
                        Attempt::Retry { why, .. } | Attempt::Reject(why) => {
                            q.stats.failed_attempts += 1;
                            q.stats.last_error = Some(why.clone());
                            // Never log holding the queue: a stuck journal would stall notify.
                            drop(q);
                            crate::log!(
                                warn,
                                "alert sink {}: re-sending {} firing alert(s) failed: {why}",
                                self.shared.name,
                                alerts.len()
                            );
                        }
                    }
                    if let Some(every) = resend_every {
                        next_resend = Instant::now() + every;
                    }
                    outcome
                }
            };
            match outcome {
                Attempt::Delivered | Attempt::Reject(_) => {
                    failures = 0;
                    not_before = Instant::now();
                }
                Attempt::Retry { after, .. } => {
                    failures = failures.saturating_add(1);
                    let min = Duration::from_millis(self.retry.initial_ms);
                    let delay = match after {
                        Some(a) => a.max(min),
                        None => backoff(&self.retry, failures),
                    };
                    not_before = Instant::now() + delay;
                }
            }
        }
    }

    fn deliver(
        &self,
        n: &Notification,
        prev: Option<&ActiveAlert>,
    ) -> (Attempt, Option<ActiveAlert>) {
        match &self.deliverer {
            Deliverer::Webhook { http, host } => {
                let body = http::tunerd_body(n, host, time::now_ms());
                (http.post(&n.id, &body), None)
            }
            Deliverer::Alertmanager(am) => {
                let (body, state) = am.payload(n, prev, time::now_ms());
                (am.http.post(&n.id, &body), state)
            }
            Deliverer::Exec(hook) => (hook.run(n), None),
        }
    }

    /// Books one attempt at entry `seq`. Logs only after releasing the queue: a journal that
    /// does not read its socket must not stall `notify` through this lock.
    fn finish(&self, seq: u64, n: &Notification, outcome: &Attempt, state: Option<ActiveAlert>) {
        let name = &self.shared.name;
        let mut q = lock(&self.shared.queue);
        q.in_flight = None;
        match outcome {
            Attempt::Delivered => q.stats.delivered += 1,
            Attempt::Retry { why, after } => {
                q.stats.failed_attempts += 1;
                q.stats.last_error = Some(why.clone());
                drop(q);
                let when = match after {
                    Some(a) => format!("after {} s (Retry-After)", a.as_secs()),
                    None => "with backoff".to_string(),
                };
                crate::log!(
                    warn,
                    "alert sink {name}: delivering {} failed: {why}; retrying {when}",
                    n.id
                );
                return;
            }
            Attempt::Reject(why) => {
                q.stats.failed_attempts += 1;
                q.stats.rejected += 1;
                q.stats.last_error = Some(why.clone());
            }
        }
        let entry = q.entries.remove(&seq);
        let mut save = None;
        if self.shared.is_alertmanager() {
            let id = &n.incident.id;
            match (outcome, state) {
                (Attempt::Delivered, Some(state)) => {
                    // A resolution queued behind this firing keeps it from being re-sent.
                    let resolving = q.entries.values().any(|e| {
                        &e.notification.incident.id == id
                            && e.notification.event == IncidentState::Resolved
                    });
                    q.active
                        .insert(id.clone(), ActiveAlert { resolving, ..state });
                }
                _ if n.event == IncidentState::Resolved => {
                    q.active.remove(id);
                }
                _ => {}
            }
            save = Some(q.active.clone());
        }
        drop(q);
        if let Attempt::Reject(why) = outcome {
            crate::log!(
                err,
                "alert sink {name}: {} refused, not retried: {why}",
                n.id
            );
        }
        if let Some(file) = entry.and_then(|e| e.file) {
            self.spool.remove(&file);
        }
        if let Some(active) = save {
            self.spool.save_state(name, &active);
        }
    }
}

/// The latest metrics for the textfile thread.
struct TextfileSlot {
    state: Mutex<(Option<Metrics>, bool)>,
    wake: Condvar,
}

/// Delivers notifications to the configured sinks. Start one per daemon; `notify` from any
/// thread.
pub struct Dispatcher {
    sinks: Vec<Arc<SinkShared>>,
    workers: Vec<JoinHandle<()>>,
    spool: Arc<Spool>,
    textfile: Option<Arc<TextfileSlot>>,
    host: String,
}

impl Dispatcher {
    /// Reads what delivery needs from the disk (host name, TLS roots), opens and locks the
    /// spool, queues what an earlier run left in it, and starts one worker per sink.
    pub fn start(root: &Root, cfg: AlertConfig) -> Result<Dispatcher, AlertError> {
        config::validate(&cfg).map_err(AlertError::Config)?;
        let host = cfg
            .host
            .clone()
            .or_else(|| {
                root.read("proc/sys/kernel/hostname")
                    .ok()
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "localhost".to_string());
        let spool = Arc::new(Spool::open(root)?);
        let needs_tls = cfg
            .webhooks
            .iter()
            .any(|w| config::check_url(&w.url).is_ok_and(|t| t.https));
        let tls = needs_tls.then(|| http::load_roots(root));
        let min_retry = Duration::from_millis(cfg.retry.initial_ms);

        let mut planned: Vec<(String, &'static str, Severity, Deliverer)> = Vec::new();
        for w in &cfg.webhooks {
            let target = config::check_url(&w.url).map_err(AlertError::Config)?;
            let key = match &w.secret {
                Some(s) => Some(config::secret_key(s.expose()).map_err(AlertError::Config)?),
                None => None,
            };
            let headers = w
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect();
            let url = match w.format {
                Format::Tunerd => w.url.clone(),
                Format::Alertmanager => http::alertmanager_url(&w.url),
            };
            let http = HttpSink::new(
                &url,
                &target,
                Duration::from_millis(w.timeout_ms),
                tls.clone(),
                key,
                headers,
                min_retry,
            );
            let (kind, deliverer) = match w.format {
                Format::Tunerd => (
                    "webhook",
                    Deliverer::Webhook {
                        http,
                        host: host.clone(),
                    },
                ),
                Format::Alertmanager => (
                    "alertmanager",
                    Deliverer::Alertmanager(Alertmanager {
                        http,
                        resend: Duration::from_secs(cfg.alertmanager.resend_interval_secs),
                        generator_url: cfg.alertmanager.generator_url.clone(),
                        host: host.clone(),
                    }),
                ),
            };
            planned.push((w.name.clone(), kind, w.min_severity, deliverer));
        }
        if let Some(e) = &cfg.exec {
            let hook = exec::ExecHook {
                program: e.program.clone(),
                args: e.args.clone(),
                timeout: Duration::from_millis(e.timeout_ms),
                host: host.clone(),
            };
            planned.push((
                EXEC_SINK.to_string(),
                "exec",
                e.min_severity,
                Deliverer::Exec(hook),
            ));
        }
        let names: Vec<&str> = planned.iter().map(|p| p.0.as_str()).collect();
        spool.discard_unknown(&names);

        let mut dispatcher = Dispatcher {
            sinks: Vec::new(),
            workers: Vec::new(),
            spool: Arc::clone(&spool),
            textfile: None,
            host,
        };
        for (name, kind, min_severity, deliverer) in planned {
            let shared = Arc::new(SinkShared {
                name: name.clone(),
                kind,
                min_severity,
                max_entries: cfg.spool.max_entries,
                queue: Mutex::new(Queue {
                    stats: SinkStats {
                        sink: name.clone(),
                        kind,
                        ..SinkStats::default()
                    },
                    ..Queue::default()
                }),
                wake: Condvar::new(),
            });
            {
                let mut q = lock(&shared.queue);
                if shared.is_alertmanager() {
                    q.active = spool.load_state(&name).unwrap_or_default();
                }
                let backlog = spool.load(&name);
                let count = backlog.len();
                for e in backlog {
                    let (keep, evicted) = shared.admit(&mut q, e.severity);
                    for gone in evicted.iter().chain((!keep).then_some(&e)) {
                        log_dropped(
                            &name,
                            &gone.notification,
                            "(spool over max_entries at start)",
                        );
                        if let Some(f) = &gone.file {
                            spool.remove(f);
                        }
                    }
                    if keep {
                        if e.notification.event == IncidentState::Resolved {
                            if let Some(a) = q.active.get_mut(&e.notification.incident.id) {
                                a.resolving = true;
                            }
                        }
                        q.entries.insert(e.seq, e);
                    }
                }
                if count > 0 {
                    crate::log!(
                        info,
                        "alert sink {name}: {} undelivered notification(s) from {}",
                        q.entries.len(),
                        spool.display()
                    );
                }
            }
            let worker = Worker {
                shared: Arc::clone(&shared),
                deliverer,
                spool: Arc::clone(&spool),
                retry: cfg.retry.clone(),
            };
            // Pushed before the spawn: if it fails, dropping the dispatcher stops the others.
            dispatcher.sinks.push(Arc::clone(&shared));
            let handle = std::thread::Builder::new()
                .name(format!("alert-{name}"))
                .spawn(move || worker.run())
                .map_err(AlertError::Thread)?;
            dispatcher.workers.push(handle);
        }
        if let Some(t) = &cfg.textfile {
            let slot = Arc::new(TextfileSlot {
                state: Mutex::new((None, false)),
                wake: Condvar::new(),
            });
            let (root, path, s) = (root.clone(), t.path.clone(), Arc::clone(&slot));
            let handle = std::thread::Builder::new()
                .name("alert-textfile".into())
                .spawn(move || textfile_worker(&root, &path, &s))
                .map_err(AlertError::Thread)?;
            dispatcher.textfile = Some(slot);
            dispatcher.workers.push(handle);
        }
        Ok(dispatcher)
    }

    /// Hands one notification to every sink that wants its severity: written to the spool,
    /// queued, and the call returns. Never waits for a receiver. Notifying the same id twice
    /// while the first is still queued does nothing.
    pub fn notify(&self, n: &Notification) {
        let shared_n = Arc::new(n.clone());
        for s in &self.sinks {
            if n.incident.severity < s.min_severity {
                continue;
            }
            let mut q = lock(&s.queue);
            if q.entries.values().any(|e| e.notification.id == n.id) {
                continue;
            }
            let (keep, evicted) = s.admit(&mut q, n.incident.severity);
            if !keep {
                drop(q);
                log_dropped(&s.name, n, "(everything queued is more severe)");
                continue;
            }
            let seq = self.spool.next_seq();
            let (file, write_error) = match self.spool.write(&s.name, seq, n) {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(e)),
            };
            if n.event == IncidentState::Resolved {
                if let Some(a) = q.active.get_mut(&n.incident.id) {
                    a.resolving = true;
                }
            }
            q.entries.insert(
                seq,
                Spooled {
                    seq,
                    severity: n.incident.severity,
                    notification: Arc::clone(&shared_n),
                    file,
                },
            );
            drop(q);
            s.wake.notify_all();
            if let Some(e) = write_error {
                crate::log!(
                    err,
                    "alert sink {}: {e}; {} is delivered from memory only",
                    s.name,
                    n.id
                );
            }
            if let Some(e) = evicted {
                log_dropped(&s.name, &e.notification, "to make room");
                if let Some(f) = &e.file {
                    self.spool.remove(f);
                }
            }
        }
    }

    /// Counters per sink, in configuration order (webhooks, then the exec hook).
    pub fn stats(&self) -> DeliveryStats {
        DeliveryStats {
            sinks: self
                .sinks
                .iter()
                .map(|s| {
                    let q = lock(&s.queue);
                    SinkStats {
                        queued: q.entries.len() as u64,
                        ..q.stats.clone()
                    }
                })
                .collect(),
        }
    }

    /// The host name notifications carry.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Adds the delivery counters to `metrics` and has the textfile thread write it (the
    /// latest wins). Does nothing without `[alert.textfile]`.
    pub fn publish_metrics(&self, mut metrics: Metrics) {
        let Some(slot) = &self.textfile else {
            return;
        };
        metrics.add_delivery(&self.stats());
        lock(&slot.state).0 = Some(metrics);
        slot.wake.notify_all();
    }

    fn signal_stop(&self) {
        for s in &self.sinks {
            lock(&s.queue).stopping = true;
            s.wake.notify_all();
        }
        if let Some(slot) = &self.textfile {
            lock(&slot.state).1 = true;
            slot.wake.notify_all();
        }
    }

    /// Stops the workers. A worker in the middle of a delivery gets a short grace; one still
    /// busy after it (a hook that hangs) is left behind, its entry stays in the spool and the
    /// next start delivers it again.
    pub fn shutdown(mut self) {
        self.signal_stop();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let workers = std::mem::take(&mut self.workers);
        for w in workers {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
        // A worker still stuck keeps its own reference to the spool, not the spool's lock:
        // a new dispatcher (a reload) can start.
        self.spool.release();
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

fn textfile_worker(root: &Root, path: &str, slot: &TextfileSlot) {
    let mut last_error: Option<String> = None;
    loop {
        let metrics = {
            let mut st = lock(&slot.state);
            loop {
                if st.1 {
                    return;
                }
                if let Some(m) = st.0.take() {
                    break m;
                }
                st = wait_for(&slot.wake, st, None);
            }
        };
        match write_textfile(root, path, &metrics) {
            Ok(()) => last_error = None,
            Err(e) => {
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    crate::log!(warn, "alert textfile: {text}");
                }
                last_error = Some(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let r = RetryConfig {
            initial_ms: 100,
            max_ms: 1000,
        };
        for _ in 0..50 {
            let d = backoff(&r, 1).as_millis();
            assert!((50..=100).contains(&d), "{d}");
            let d = backoff(&r, 3).as_millis();
            assert!((200..=400).contains(&d), "{d}");
            let d = backoff(&r, 40).as_millis();
            assert!((500..=1000).contains(&d), "{d}");
        }
    }

    #[test]
    fn kind_names_are_the_serde_names() {
        assert_eq!(
            crate::detect::types::Kind::Ext4JournalAbort.name(),
            "ext4_journal_abort"
        );
        assert_eq!(crate::detect::types::Kind::IoStall.name(), "io_stall");
    }
}
