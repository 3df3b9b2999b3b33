//! `org.tunerd.Tuner1` at `/org/tunerd/Tuner1` on the system bus: the daemon's side (the
//! interface over [`State`](crate::service::State)) and `tunerctl`'s side (a client that finds
//! the daemon and calls it). The interface is described in `dbus/org.tunerd.Tuner1.xml`; who
//! may call what, in `dbus/org.tunerd.Tuner1.conf`. Methods that change the machine also check
//! the caller's uid here, so a permissive bus policy alone cannot open them.

use std::path::Path;

use serde::Serialize;
use zbus::fdo;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

use crate::service::{lock, Announce, Shared};

pub const NAME: &str = "org.tunerd.Tuner1";
pub const PATH: &str = "/org/tunerd/Tuner1";
pub const INTERFACE: &str = "org.tunerd.Tuner1";

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub struct Tuner {
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
        let mut st = lock(&self.shared);
        let drift = st.verify();
        json(&serde_json::json!({ "profile": st.profile.name, "drift": drift }))
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
        lock(&self.shared).profiles.names()
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
            let announce = st
                .switch(&name)
                .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
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
                let profile = lock(&self.shared).profile.name.clone();
                emit(&emitter, &self.shared, announce).await;
                Ok(format!("reloaded: profile {profile}"))
            }
            Err(e) => Err(fdo::Error::Failed(format!(
                "refused, the running configuration stays: {e}"
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
        json(&lock(&self.shared).incidents.open())
    }

    #[zbus(property)]
    async fn active_profile(&self) -> String {
        lock(&self.shared).profile.name.clone()
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
        lock(&self.shared).health.as_str().to_string()
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
                let event = match n.event {
                    crate::detect::types::IncidentState::Firing => "firing",
                    crate::detect::types::IncidentState::Resolved => "resolved",
                };
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
pub fn serve(shared: Shared) -> zbus::Result<Connection> {
    zbus::block_on(async {
        zbus::connection::Builder::system()
            .name(NAME)
            .serve_at(PATH, Tuner { shared })
            .build()
            .await
    })
}

/// Sends what the event loop has to announce.
pub fn announce(conn: &Connection, shared: &Shared, announce: Vec<Announce>) {
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

/// `tunerctl`'s line to a running daemon.
pub struct Client {
    conn: Connection,
}

impl Client {
    /// The daemon serving `root`, if one runs on the system bus (`DBUS_SYSTEM_BUS_ADDRESS`
    /// picks another bus). `None` when there is no bus, no daemon, or a daemon for another
    /// root.
    pub fn find(root: &Path) -> Option<Client> {
        zbus::block_on(async {
            let conn = Connection::system().await.ok()?;
            let bus = fdo::DBusProxy::new(&conn).await.ok()?;
            let name = zbus::names::BusName::try_from(NAME).ok()?;
            if !bus.name_has_owner(name).await.ok()? {
                return None;
            }
            let client = Client { conn };
            let theirs = client.property("Root").await.ok()?;
            let same = std::fs::canonicalize(&theirs).ok()? == std::fs::canonicalize(root).ok()?;
            same.then_some(client)
        })
    }

    async fn property(&self, name: &str) -> zbus::Result<String> {
        let reply = self
            .conn
            .call_method(
                Some(NAME),
                PATH,
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(INTERFACE, name),
            )
            .await?;
        let value: zbus::wire::OwnedVariant = reply.body().deserialize()?;
        String::try_from(value)
    }

    /// Calls a method that returns one string (JSON for most).
    pub fn call(&self, method: &str, arg: Option<&str>) -> Result<String, String> {
        zbus::block_on(async {
            let reply = match arg {
                Some(a) => {
                    self.conn
                        .call_method(Some(NAME), PATH, Some(INTERFACE), method, &(a,))
                        .await
                }
                None => {
                    self.conn
                        .call_method(Some(NAME), PATH, Some(INTERFACE), method, &())
                        .await
                }
            };
            let reply = reply.map_err(|e| describe(&e))?;
            reply
                .body()
                .deserialize::<String>()
                .map_err(|e| e.to_string())
        })
    }
}

/// A D-Bus error as one line a person can act on.
fn describe(e: &zbus::Error) -> String {
    match e {
        zbus::Error::FDO(f) => match f.as_ref() {
            fdo::Error::AccessDenied(m) => format!("access denied: {m}"),
            fdo::Error::Failed(m) | fdo::Error::InvalidArgs(m) => m.clone(),
            other => other.to_string(),
        },
        zbus::Error::MethodError(name, msg, _) => {
            format!("{}: {}", name.as_str(), msg.as_deref().unwrap_or(""))
        }
        other => other.to_string(),
    }
}
