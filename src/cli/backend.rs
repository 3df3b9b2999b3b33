//! How `tunerctl` reaches the machine: through the running daemon on the system bus when one
//! serves this root (so its state, originals and signals stay whole), directly through the
//! library when not. The client half of `org.tunerd.Tuner1`; replies are `api` types.

use std::path::Path;

use zbus::fdo;
use zbus::Connection;

use crate::api::{exit, DaemonStatus, EventsReply, VerifyReply, INTERFACE, NAME, PATH};
use crate::detect::incidents::Incidents;
use crate::host::state_files;
use crate::host::sys::Root;
use crate::tune::apply::{self, Report};
use crate::tune::plan::Plan;

use super::{Context, Failure};

/// `tunerctl`'s line to a running daemon.
pub(super) struct Client {
    conn: Connection,
}

impl Client {
    /// The daemon serving `root`, if one runs on the system bus (`DBUS_SYSTEM_BUS_ADDRESS`
    /// picks another bus). `None` when there is no bus, no daemon, or a daemon for another
    /// root.
    pub(super) fn find(root: &Path) -> Option<Client> {
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
    pub(super) fn call(&self, method: &str, arg: Option<&str>) -> Result<String, String> {
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

/// Where a command goes: the daemon serving this root, or the machine directly.
pub(super) enum Backend {
    Daemon(Client),
    Direct,
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Failure> {
    serde_json::from_str(text).map_err(|e| Failure {
        message: format!("unexpected answer from tunerd: {e}"),
        code: exit::FAILURE,
    })
}

impl Backend {
    /// The daemon if one serves `root` and `wanted`, else direct.
    pub(super) fn find(root: &Path, wanted: bool) -> Backend {
        match wanted.then(|| Client::find(root)).flatten() {
            Some(c) => Backend::Daemon(c),
            None => Backend::Direct,
        }
    }

    pub(super) fn is_daemon(&self) -> bool {
        matches!(self, Backend::Daemon(_))
    }

    fn call(&self, method: &str, arg: Option<&str>) -> Result<Option<String>, Failure> {
        match self {
            Backend::Daemon(c) => c.call(method, arg).map(Some).map_err(|message| Failure {
                message: format!("tunerd: {message}"),
                code: exit::FAILURE,
            }),
            Backend::Direct => Ok(None),
        }
    }

    /// Calls `method` on the daemon and decodes its JSON; `None` when direct.
    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        arg: Option<&str>,
    ) -> Result<Option<T>, Failure> {
        self.call(method, arg)?.map(|t| decode(&t)).transpose()
    }

    /// The running daemon's status; `None` when direct.
    pub(super) fn daemon_status(&self) -> Result<Option<DaemonStatus>, Failure> {
        self.typed("Status", None)
    }

    pub(super) fn plan(&self, ctx: &Context) -> Result<Plan, Failure> {
        Ok(self.typed("Plan", None)?.unwrap_or_else(|| ctx.plan()))
    }

    pub(super) fn apply(
        &self,
        load: impl FnOnce() -> Result<Context, Failure>,
    ) -> Result<Report, Failure> {
        match self.typed("Apply", None)? {
            Some(r) => Ok(r),
            None => {
                let ctx = load()?;
                Ok(apply::apply(&ctx.root, &ctx.plan())?)
            }
        }
    }

    pub(super) fn verify(
        &self,
        load: impl FnOnce() -> Result<Context, Failure>,
    ) -> Result<VerifyReply, Failure> {
        match self.typed("Verify", None)? {
            Some(v) => Ok(v),
            None => {
                let ctx = load()?;
                Ok(VerifyReply {
                    profile: ctx.profile.name.clone(),
                    drift: apply::verify(&ctx.plan()),
                })
            }
        }
    }

    pub(super) fn revert(&self, root: &Root) -> Result<Report, Failure> {
        match self.typed("Revert", None)? {
            Some(r) => Ok(r),
            None => Ok(apply::revert(root)?),
        }
    }

    /// Open and recent incidents: the daemon's, or its last saved state when it does not run.
    pub(super) fn events(&self, root: &Root) -> Result<EventsReply, Failure> {
        match self.typed("Events", None)? {
            Some(e) => Ok(e),
            None => {
                // Without the daemon, its last saved state. That file holds kernel-log
                // evidence and is root's only (docs/security.md): say so rather than show
                // an empty list.
                if let Err(e) = root.read_opt(state_files::INCIDENTS) {
                    if e.source.kind() == std::io::ErrorKind::PermissionDenied {
                        return Err(Failure {
                            message: format!(
                                "{}: permission denied: saved incidents hold kernel-log evidence and are root's only; run as root, or start tunerd (its Events() answers every user, without the evidence)",
                                root.display(state_files::INCIDENTS)
                            ),
                            code: exit::FAILURE,
                        });
                    }
                }
                let state: Incidents =
                    state_files::load_json(root, state_files::INCIDENTS).unwrap_or_default();
                Ok(EventsReply {
                    open: state.open.values().map(|o| o.incident.clone()).collect(),
                    recent: state.recent.iter().cloned().collect(),
                    dropped_observations: state.dropped,
                })
            }
        }
    }

    /// Commands only the daemon can do (switch, reload).
    fn daemon_only(&self, what: &str) -> Result<(), Failure> {
        match self {
            Backend::Daemon(_) => Ok(()),
            Backend::Direct => Err(Failure {
                message: format!(
                    "{what} needs the running tunerd (none answers on the system bus for this root); without it, set `profile` in /etc/tunerd/tunerd.toml and run `tunerctl apply`"
                ),
                code: exit::FAILURE,
            }),
        }
    }

    pub(super) fn switch(&self, name: &str) -> Result<DaemonStatus, Failure> {
        self.daemon_only("switch")?;
        self.typed("SwitchProfile", Some(name))?
            .ok_or_else(|| Failure {
                message: "switch: no answer".into(),
                code: exit::FAILURE,
            })
    }

    pub(super) fn reload(&self) -> Result<String, Failure> {
        self.daemon_only("reload")?;
        Ok(self.call("Reload", None)?.unwrap_or_default())
    }
}
