//! `org.tunerd.Tuner1` at `/org/tunerd/Tuner1` on the system bus, the daemon's side: the
//! interface over the service [`State`](super::State), and the signals for what it announces.
//! `tunerctl`'s side is `cli::backend`; the names and reply types are in `api`. The interface is described in `dbus/org.tunerd.Tuner1.xml`; who
//! may call what, in `dbus/org.tunerd.Tuner1.conf`. Methods that change the machine also check
//! the caller's uid here, so a permissive bus policy alone cannot open them.

use serde::Serialize;
use zbus::fdo;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

use super::state::{lock, ServiceError, Shared};
use crate::api::{Announce, NAME, PATH};

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub(super) struct Tuner {
    shared: Shared,
}

/// Refuses callers other than root: the policy file should already have, this is the second lock.
async fn require_root(hdr: &Header<'_>, conn: &Connection) -> fdo::Result<()> {
    let sender = hdr
        .sender()
        .ok_or_else(|| fdo::Error::AccessDenied("no sender on the message".into()))?;
    let bus = fdo::DBusProxy::new(conn).await?;
    let uid = bus.get_connection_unix_user(sender.clone().into()).await?;
    if uid != 0 {
        return Err(fdo::Error::AccessDenied(format!(
            "uid {uid} may not change tuning; only root may"
        )));
    }
    Ok(())
}

#[zbus::interface(name = "org.tunerd.Tuner1", introspection_docs = false)]
impl Tuner {
    #[zbus(out_args("status"))]
    async fn status(&self) -> String {
        json(&lock(&self.shared).status())
    }

    #[zbus(out_args("plan"))]
    async fn plan(&self) -> String {
        json(&lock(&self.shared).plan())
    }

    #[zbus(out_args("report"))]
    async fn apply(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        require_root(&hdr, conn).await?;
        let report = lock(&self.shared)
            .apply_all()
            .map_err(|e| fdo::Error::Failed(e.to_string()))?;
        Ok(json(&report.to_json()))
    }

    #[zbus(out_args("drift"))]
    async fn verify(&self) -> String {
        json(&lock(&self.shared).verify())
    }

    #[zbus(out_args("report"))]
    async fn revert(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<String> {
        require_root(&hdr, conn).await?;
        let report = lock(&self.shared)
            .revert()
            .map_err(|e| fdo::Error::Failed(e.to_string()))?;
        Ok(json(&report.to_json()))
    }

    #[zbus(out_args("names"))]
    async fn list_profiles(&self) -> Vec<String> {
        lock(&self.shared).profile_names()
    }

    #[zbus(out_args("report"))]
    async fn switch_profile(
        &self,
        name: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> fdo::Result<String> {
        require_root(&hdr, conn).await?;
        let (announce, status) = {
            let mut st = lock(&self.shared);
            let announce = st.switch(&name).map_err(|e| match e {
                ServiceError::Config(e) => fdo::Error::InvalidArgs(e.to_string()),
                other => fdo::Error::Failed(other.to_string()),
            })?;
            (announce, json(&st.status()))
        };
        emit(&emitter, &self.shared, announce).await;
        Ok(status)
    }

    #[zbus(out_args("result"))]
    async fn reload(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> fdo::Result<String> {
        require_root(&hdr, conn).await?;
        let result = lock(&self.shared).reload();
        match result {
            Ok(announce) => {
                let profile = lock(&self.shared).profile_name().to_string();
                emit(&emitter, &self.shared, announce).await;
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

    /// Open and recently resolved incidents (JSON).
    #[zbus(out_args("events"))]
    async fn events(&self) -> String {
        json(&lock(&self.shared).events())
    }

    /// The open incidents (JSON array).
    #[zbus(property)]
    async fn incidents(&self) -> String {
        json(&lock(&self.shared).open_incidents())
    }

    #[zbus(property)]
    async fn active_profile(&self) -> String {
        lock(&self.shared).profile_name().to_string()
    }

    #[zbus(property)]
    async fn platform(&self) -> String {
        lock(&self.shared)
            .inventory
            .platform
            .kind
            .as_str()
            .to_string()
    }

    #[zbus(property)]
    async fn health(&self) -> String {
        lock(&self.shared).health().as_str().to_string()
    }

    #[zbus(property)]
    async fn root(&self) -> String {
        lock(&self.shared).root.base().display().to_string()
    }

    #[zbus(signal)]
    async fn profile_changed(emitter: &SignalEmitter<'_>, old: &str, new: &str)
        -> zbus::Result<()>;

    /// An incident opened, escalated or ended: `event` is `firing` or `resolved`, and
    /// `notification` the whole notification as JSON (incident, disk, mounts, evidence).
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

async fn emit(emitter: &SignalEmitter<'_>, shared: &Shared, announce: Vec<Announce>) {
    let iface = Tuner {
        shared: shared.clone(),
    };
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
                Tuner::incident(
                    emitter,
                    &n.id,
                    event,
                    n.incident.severity.as_str(),
                    &n.incident.summary,
                    &json(n),
                )
                .await
            }
            Announce::PropertiesChanged => {
                let a = iface.active_profile_changed(emitter).await;
                let b = iface.health_changed(emitter).await;
                let c = iface.incidents_changed(emitter).await;
                a.and(b).and(c)
            }
        };
        if let Err(e) = sent {
            crate::log!(warn, "D-Bus signal not sent: {e}");
        }
    }
}

/// Connects to the system bus, serves the interface and takes the name.
pub(super) fn serve(shared: Shared) -> zbus::Result<Connection> {
    zbus::block_on(async {
        zbus::connection::Builder::system()
            .name(NAME)
            .serve_at(PATH, Tuner { shared })
            .build()
            .await
    })
}

/// Sends what the event loop has to announce.
pub(super) fn announce(conn: &Connection, shared: &Shared, announce: Vec<Announce>) {
    if announce.is_empty() {
        return;
    }
    zbus::block_on(async {
        match SignalEmitter::new(conn, PATH) {
            Ok(emitter) => emit(&emitter, shared, announce).await,
            Err(e) => crate::log!(warn, "D-Bus: {e}"),
        }
    });
}
