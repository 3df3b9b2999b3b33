//! `org.tunerd.Tuner1` at `/org/tunerd/Tuner1` on the system bus, the daemon's side: the
//! interface over the service [`State`](super::State), and the signals for what it announces.
//! `tunerctl`'s side is `cli::backend`; the names and reply types are in `api`. The interface is described in `dbus/org.tunerd.Tuner1.xml`; who
//! may call what, in `dbus/org.tunerd.Tuner1.conf`. Methods that change the machine also check
//! the caller's uid here, so a permissive bus policy alone cannot open them.
//!
//! What any user may call (Status, Plan, Verify, ListProfiles, Events, the properties) is
//! answered from the loop's published [`Snapshot`](super::state::Snapshot), never under the
//! state mutex: a flood of calls then costs the bus thread, not detection. Root's Plan and
//! Verify read the machine afresh (under the mutex, as the privileged methods do).
//!
//! Kernel-log evidence is for root only (like dmesg under `dmesg_restrict`): `Events()` gives
//! it to uid 0 and the same incidents with empty `evidence` to everyone else; the `Incidents`
//! property and the `Incident` signal (broadcast to every listener) never carry it.
//!
//! The connection and every signal live on this module's own thread ([`Outbox`]): the event
//! loop hands announcements to a bounded queue and never waits for the bus daemon.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;
use zbus::fdo;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

use super::state::{current, lock, Published, ServiceError, Shared, State};
use crate::api::{Announce, EventsReply, NAME, PATH};
use crate::detect::types::Incident;
use crate::log;
use crate::tune::apply::{OriginalsError, Report};

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Incidents as anyone may see them: the same, with no evidence lines (the JSON keeps
/// `evidence`, empty).
fn without_evidence<'a>(incidents: impl IntoIterator<Item = &'a Incident>) -> Vec<Incident> {
    incidents
        .into_iter()
        .map(|i| Incident {
            evidence: Vec::new(),
            ..i.clone()
        })
        .collect()
}

/// Callers' uids by unique name. A unique name is never reused while the bus daemon runs,
/// and the bus daemon vouches for it, so the first answer stands; bounded all the same.
#[derive(Default)]
struct Uids(Mutex<HashMap<String, u32>>);

const UIDS_MAX: usize = 4096;

pub(super) struct Tuner {
    shared: Shared,
    published: Published,
    uids: Arc<Uids>,
}

impl Tuner {
    /// The caller's uid, from the bus daemon (cached by unique name).
    async fn caller_uid(&self, hdr: &Header<'_>, conn: &Connection) -> fdo::Result<u32> {
        let sender = hdr
            .sender()
            .ok_or_else(|| fdo::Error::AccessDenied("no sender on the message".into()))?;
        if let Some(uid) = crate::util::sync::lock(&self.uids.0).get(sender.as_str()) {
            return Ok(*uid);
        }
        let bus = fdo::DBusProxy::new(conn).await?;
        let uid = bus.get_connection_unix_user(sender.clone().into()).await?;
        let mut uids = crate::util::sync::lock(&self.uids.0);
        if uids.len() >= UIDS_MAX {
            uids.clear();
        }
        uids.insert(sender.as_str().to_string(), uid);
        Ok(uid)
    }

    /// Whether the caller is root; a failed lookup counts as not.
    async fn is_root(&self, hdr: &Header<'_>, conn: &Connection) -> bool {
        matches!(self.caller_uid(hdr, conn).await, Ok(0))
    }

    /// Refuses callers other than root: the policy file should already have, this is the
    /// second lock.
    async fn require_root(&self, hdr: &Header<'_>, conn: &Connection) -> fdo::Result<()> {
        let uid = self.caller_uid(hdr, conn).await?;
        if uid != 0 {
            return Err(fdo::Error::AccessDenied(format!(
                "uid {uid} may not change tuning; only root may"
            )));
        }
        Ok(())
    }

    /// Apply or Revert: acts on the state, publishes what changed, answers with the report.
    fn act(&self, action: fn(&mut State) -> Result<Report, OriginalsError>) -> fdo::Result<String> {
        let mut st = lock(&self.shared);
        let report = action(&mut st);
        st.publish_now();
        let report = report.map_err(|e| fdo::Error::Failed(e.to_string()))?;
        Ok(json(&report.to_json()))
    }
}

#[zbus::interface(name = "org.tunerd.Tuner1", introspection_docs = false)]
impl Tuner {
    #[zbus(out_args("status"))]
    async fn status(&self) -> String {
        let snap = current(&self.published);
        let mut status = snap.status.clone();
        status.uptime_secs = snap.started.elapsed().map(|d| d.as_secs()).unwrap_or(0);
        json(&status)
    }

    /// Root gets a fresh plan; anyone else the last one the daemon made.
    #[zbus(out_args("plan"))]
    async fn plan(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> String {
        if self.is_root(&hdr, conn).await {
            let mut st = lock(&self.shared);
            let plan = st.fresh_plan();
            st.publish_now();
            return plan.to_string();
        }
        current(&self.published).plan.to_string()
    }

    #[zbus(out_args("report"))]
    async fn apply(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.require_root(&hdr, conn).await?;
        self.act(State::apply_all)
    }

    /// Root gets a fresh verify. Anyone else gets the drift of the last plan the daemon made
    /// (at start, after an apply, a drift check, a hotplug or a switch, at most a second
    /// late): a call by any user never reads every knob, and never changes `last_verify`.
    #[zbus(out_args("drift"))]
    async fn verify(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> String {
        if self.is_root(&hdr, conn).await {
            let mut st = lock(&self.shared);
            let reply = st.verify();
            st.publish_now();
            return json(&reply);
        }
        current(&self.published).verify.to_string()
    }

    #[zbus(out_args("report"))]
    async fn revert(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        self.require_root(&hdr, conn).await?;
        self.act(State::revert)
    }

    #[zbus(out_args("names"))]
    async fn list_profiles(&self) -> Vec<String> {
        current(&self.published).profiles.as_ref().clone()
    }

    #[zbus(out_args("report"))]
    async fn switch_profile(
        &self,
        name: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> fdo::Result<String> {
        self.require_root(&hdr, conn).await?;
        let (announce, status) = {
            let mut st = lock(&self.shared);
            let result = st.switch(&name);
            st.publish_now();
            let announce = result.map_err(|e| match e {
                ServiceError::Config(e) => fdo::Error::InvalidArgs(e.to_string()),
                other => fdo::Error::Failed(other.to_string()),
            })?;
            (announce, json(&st.status()))
        };
        emit(&emitter, self, announce).await;
        Ok(status)
    }

    #[zbus(out_args("result"))]
    async fn reload(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> fdo::Result<String> {
        self.require_root(&hdr, conn).await?;
        let result = {
            let mut st = lock(&self.shared);
            let result = st.reload();
            st.publish_now();
            result
        };
        match result {
            Ok(announce) => {
                let profile = current(&self.published).profile.clone();
                emit(&emitter, self, announce).await;
                Ok(format!("reloaded: profile {profile}"))
            }
            Err(e @ ServiceError::Config(_)) => Err(fdo::Error::Failed(format!(
                "refused, the running configuration stays: {e}"
            ))),
            Err(e) => Err(fdo::Error::Failed(format!(
                "the new configuration is in force, but its profile is not fully applied: {e}"
            ))),
        }
    }

    /// Open and recently resolved incidents (JSON); the evidence lines for root only.
    #[zbus(out_args("events"))]
    async fn events(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> String {
        let snap = current(&self.published);
        if self.is_root(&hdr, conn).await {
            return json(snap.events.as_ref());
        }
        json(&EventsReply {
            open: without_evidence(&snap.events.open),
            recent: without_evidence(&snap.events.recent),
            dropped_observations: snap.events.dropped_observations,
        })
    }

    /// The open incidents (JSON array), without evidence: properties have no caller.
    #[zbus(property)]
    async fn incidents(&self) -> String {
        json(&without_evidence(&current(&self.published).events.open))
    }

    #[zbus(property)]
    async fn active_profile(&self) -> String {
        current(&self.published).profile.clone()
    }

    #[zbus(property)]
    async fn platform(&self) -> String {
        current(&self.published).platform.clone()
    }

    #[zbus(property)]
    async fn health(&self) -> String {
        current(&self.published).health.as_str().to_string()
    }

    #[zbus(property)]
    async fn root(&self) -> String {
        current(&self.published).root.clone()
    }

    #[zbus(signal)]
    async fn profile_changed(emitter: &SignalEmitter<'_>, old: &str, new: &str)
        -> zbus::Result<()>;

    /// An incident opened, escalated or ended: `event` is `firing` or `resolved`, and
    /// `notification` the whole notification as JSON (incident, disk, mounts; `evidence`
    /// empty, since every listener gets it: root reads the evidence from `Events()`).
    #[zbus(signal)]
    async fn incident(
        emitter: &SignalEmitter<'_>,
        id: &str,
        event: &str,
        severity: &str,
        summary: &str,
        notification: &str,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn drift_detected(
        emitter: &SignalEmitter<'_>,
        target: &str,
        expected: &str,
        actual: &str,
        path: &str,
    ) -> zbus::Result<()>;
}

async fn emit(emitter: &SignalEmitter<'_>, iface: &Tuner, announce: Vec<Announce>) {
    for a in announce {
        let sent = match &a {
            Announce::Drift(d) => {
                Tuner::drift_detected(
                    emitter,
                    &d.target,
                    &d.expected,
                    d.actual.as_deref().unwrap_or(""),
                    &d.path,
                )
                .await
            }
            Announce::ProfileChanged { old, new } => {
                Tuner::profile_changed(emitter, old, new).await
            }
            Announce::Incident(n) => {
                let event = n.event.as_str();
                let mut public = (**n).clone();
                public.incident.evidence.clear();
                Tuner::incident(
                    emitter,
                    &n.id,
                    event,
                    n.incident.severity.as_str(),
                    &n.incident.summary,
                    &json(&public),
                )
                .await
            }
            // The status lists the contested knob; its incident goes out as `Incident`.
            Announce::Contested(_) => iface.health_changed(emitter).await,
            Announce::PropertiesChanged => {
                let a = iface.active_profile_changed(emitter).await;
                let b = iface.health_changed(emitter).await;
                let c = iface.incidents_changed(emitter).await;
                a.and(b).and(c)
            }
        };
        if let Err(e) = sent {
            log!(warn, "D-Bus signal not sent: {e}");
        }
    }
}

/// Announcements waiting for the bus thread. Bounded: while the bus daemon does not read
/// (stopped, hung, slow), the oldest are dropped and counted, so memory stays flat and the
/// loop never waits.
const OUTBOX: usize = 1024;

#[derive(Default)]
struct Queue {
    items: VecDeque<Announce>,
    dropped: u64,
}

/// The event loop's side of the bus thread: [`Outbox::send`] never blocks on the bus.
pub(super) struct Outbox {
    queue: Arc<(Mutex<Queue>, Condvar)>,
}

impl Outbox {
    /// Starts the bus thread when `enabled`: it connects to the system bus (at early boot
    /// tunerd runs before there is one: retried with backoff, 1 s doubling to 30 s), serves
    /// the interface, then sends what the loop announces.
    pub(super) fn start(enabled: bool, shared: &Shared, published: &Published) -> Outbox {
        let outbox = Outbox {
            queue: Arc::new((Mutex::new(Queue::default()), Condvar::new())),
        };
        if !enabled {
            return outbox;
        }
        let queue = outbox.queue.clone();
        let iface = Tuner {
            shared: shared.clone(),
            published: published.clone(),
            uids: Arc::new(Uids::default()),
        };
        let spawned = std::thread::Builder::new()
            .name("tunerd-bus".into())
            .spawn(move || bus_thread(iface, &queue));
        if let Err(e) = spawned {
            log!(
                err,
                "D-Bus: cannot start the bus thread: {e}; not serving {NAME}"
            );
        }
        outbox
    }

    /// Queues what the loop has to announce; drops the oldest when the queue is full.
    pub(super) fn send(&self, announce: Vec<Announce>) {
        if announce.is_empty() {
            return;
        }
        let (queue, ready) = &*self.queue;
        let mut q = crate::util::sync::lock(queue);
        for a in announce {
            if q.items.len() >= OUTBOX {
                q.items.pop_front();
                q.dropped += 1;
                if q.dropped == 1 {
                    log!(
                        warn,
                        "D-Bus: the bus does not take signals; dropping the oldest (counted, logged once)"
                    );
                }
            }
            q.items.push_back(a);
        }
        ready.notify_one();
    }
}

/// The bus thread: connect, then send announcements as they come.
fn bus_thread(iface: Tuner, queue: &(Mutex<Queue>, Condvar)) {
    let (lock_q, ready) = queue;
    let mut backoff = Duration::from_secs(1);
    let conn = loop {
        match serve(&iface) {
            Ok(conn) => {
                log!(info, "serving {NAME} on the system bus");
                break conn;
            }
            Err(e) => {
                if backoff == Duration::from_secs(1) {
                    // Normal at boot: tunerd starts before the system bus.
                    log!(info, "D-Bus: {e}; connecting when the system bus is there");
                }
                // Nothing is announced before there is a bus to announce it on.
                crate::util::sync::lock(lock_q).items.clear();
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    let emitter = match SignalEmitter::new(&conn, PATH) {
        Ok(e) => e,
        Err(e) => {
            log!(warn, "D-Bus: {e}; no signals");
            return;
        }
    };
    loop {
        let batch = {
            let mut q = crate::util::sync::lock(lock_q);
            while q.items.is_empty() {
                q = ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            q.items.drain(..).collect::<Vec<_>>()
        };
        // May wait as long as the bus daemon does; the loop is not waiting with it.
        zbus::block_on(emit(&emitter, &iface, batch));
    }
}

/// Connects to the system bus, serves the interface and takes the name.
fn serve(iface: &Tuner) -> zbus::Result<Connection> {
    let served = Tuner {
        shared: iface.shared.clone(),
        published: iface.published.clone(),
        uids: iface.uids.clone(),
    };
    zbus::block_on(async {
        zbus::connection::Builder::system()
            .name(NAME)
            .serve_at(PATH, served)
            .build()
            .await
    })
}
