//! Every file tunerd keeps under `/run/tunerd`, in one list: what survives a restart of the
//! daemon. `/run` is a tmpfs, so none of it survives a reboot and a golden image carries none
//! of it (originals are machine-specific).
//!
//! | file | written by | what |
//! |---|---|---|
//! | `originals.json` | tune::apply | each knob's value before tunerd first wrote it |
//! | `incidents.json` | the service | open and recent incidents, so resolves survive a restart |
//! | `kmsg.json` | detect::sources::kmsg | boot id and the last kernel log record handled |
//! | `journal.cursor` | detect::sources::journal | the last storage-daemon journal entry handled |
//! | `spool/SINK/SEQ.json` | alert | notifications not yet delivered, per sink |
//! | `lock` | host::sys | the appliers' lock (the daemon and a direct tunerctl) |

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::sys::{Root, SysError};

pub const DIR: &str = "run/tunerd";
pub(crate) const ORIGINALS: &str = "run/tunerd/originals.json";
pub(crate) const INCIDENTS: &str = "run/tunerd/incidents.json";
pub(crate) const KMSG_POSITION: &str = "run/tunerd/kmsg.json";
pub(crate) const JOURNAL_CURSOR: &str = "run/tunerd/journal.cursor";
pub const SPOOL: &str = "run/tunerd/spool";
pub(crate) const LOCK: &str = "run/tunerd/lock";

/// A JSON state file: `None` when it is absent or unreadable as `T` (a state file from
/// another version is started over, never a reason not to run).
pub(crate) fn load_json<T: DeserializeOwned>(root: &Root, rel: &str) -> Option<T> {
    root.read_opt(rel)
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str(&text).ok())
}

/// Writes a JSON state file atomically (temporary file, fsync, rename).
pub(crate) fn save_json<T: Serialize>(root: &Root, rel: &str, value: &T) -> Result<(), SysError> {
    let text = serde_json::to_vec(value).map_err(|e| SysError {
        path: root.path(rel),
        op: "encode",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    root.write_atomic(rel, &text)
}
