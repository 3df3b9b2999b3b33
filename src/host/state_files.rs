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
//! | `accepted.json` | the service | the last configuration the daemon accepted: what it runs on when the files are refused |
//!
//! Who may read each one is [`MODES`]: one table, applied by every writer (the modes are set
//! with `fchmod`, so the process umask does not decide them).

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
pub(crate) const ACCEPTED: &str = "run/tunerd/accepted.json";

/// The state directory's mode: readable by all, so that a non-root `tunerctl status` can
/// read `originals.json`; writable by root only.
pub(crate) const DIR_MODE: u32 = 0o755;
/// The spool directory's mode. Evidence is kernel log lines: for root's eyes only, like dmesg
/// under dmesg_restrict.
pub(crate) const SPOOL_MODE: u32 = 0o700;
/// Files under the spool: the same evidence.
const SPOOL_ENTRY_MODE: u32 = 0o600;
/// A file tunerd writes that is not in [`MODES`] (a textfile, say): what `install -m 644`
/// would give it.
pub(crate) const DEFAULT_MODE: u32 = 0o644;

/// Each state file and its mode.
pub(crate) const MODES: &[(&str, u32)] = &[
    // Non-root `tunerctl status` reads the count of originals.
    (ORIGINALS, 0o644),
    // Open and recent incidents carry their evidence (kernel log text): root only, like the
    // spool and like dmesg under dmesg_restrict.
    (INCIDENTS, 0o600),
    // A boot id and a sequence number; a journal cursor: nothing private.
    (KMSG_POSITION, 0o644),
    (JOURNAL_CURSOR, 0o644),
    // flock works on a read-only descriptor: any user who can open the lock can hold it and
    // stall every applier (security review, finding 1).
    (LOCK, 0o600),
    // tunerd.toml and the profile drop-ins as accepted: tunerd.toml is 0600 (webhook secrets,
    // headers), and so is this copy of it.
    (ACCEPTED, 0o600),
];

/// The mode a file written at `rel` gets: the table's for a state file, [`DEFAULT_MODE`] for
/// anything else.
pub(crate) fn mode_of(rel: &str) -> u32 {
    let rel = rel.trim_start_matches('/');
    if let Some((_, mode)) = MODES.iter().find(|(file, _)| *file == rel) {
        return *mode;
    }
    match rel.strip_prefix(SPOOL) {
        Some(rest) if rest.starts_with('/') => SPOOL_ENTRY_MODE,
        _ => DEFAULT_MODE,
    }
}

/// The mode a directory gets when tunerd creates it: `None` for one that is not a state
/// directory (the umask decides, as for `mkdir -p`).
pub(crate) fn dir_mode(rel: &str) -> Option<u32> {
    match rel.trim_matches('/') {
        DIR => Some(DIR_MODE),
        SPOOL => Some(SPOOL_MODE),
        _ => None,
    }
}

/// Removes what a crash leaves behind: temporaries of [`Root::write_atomic`] whose writer is
/// dead (`.NAME.tmp.PID.N`), and the fixed-name temporaries of earlier versions
/// (`originals.tmp`, `incidents.tmp`, `kmsg.tmp`, `journal.tmp`, and `SEQ.tmp` in the spool),
/// in the state directory and in each sink's spool directory. Call it before the state is
/// used: at daemon start, before the first apply. Returns the paths removed, for the log;
/// what cannot be removed is left for the next start (it harms nothing but space).
pub(crate) fn clean_leftovers(root: &Root) -> Vec<String> {
    let old_names: Vec<String> = MODES
        .iter()
        .filter_map(|(file, _)| {
            let name = file.rsplit('/').next()?;
            let stem = name.split('.').next()?;
            (stem != name).then(|| format!("{stem}.tmp"))
        })
        .collect();
    let mut removed = root.remove_dead_temporaries(DIR, |name| old_names.iter().any(|o| o == name));
    for sink in root.list(SPOOL).unwrap_or_default() {
        let dir = format!("{SPOOL}/{sink}");
        // Only real directories: a symlink in the spool is not ours to walk.
        let is_dir = std::fs::symlink_metadata(root.path(&dir)).is_ok_and(|m| m.is_dir());
        if is_dir {
            // The spool keeps only `SEQ.json` entries: any plain `*.tmp` is an old temporary.
            removed.extend(root.remove_dead_temporaries(&dir, |name| name.ends_with(".tmp")));
        }
    }
    removed
}

/// A JSON state file: `None` when it is absent or unreadable as `T` (a state file from
/// another version is started over, never a reason not to run).
pub(crate) fn load_json<T: DeserializeOwned>(root: &Root, rel: &str) -> Option<T> {
    root.read_opt(rel)
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str(&text).ok())
}

/// Writes a JSON state file atomically (temporary file, fsync, rename), with its mode from
/// [`MODES`] (through [`Root::write_atomic`]).
pub(crate) fn save_json<T: Serialize>(root: &Root, rel: &str, value: &T) -> Result<(), SysError> {
    let text = serde_json::to_vec(value).map_err(|e| SysError {
        path: root.path(rel),
        op: "encode",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    root.write_atomic(rel, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(tag: &str) -> (Dir, Root) {
        let dir = std::env::temp_dir().join(format!("tunerd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = Root::new(&dir);
        (Dir(dir), root)
    }

    fn mode(root: &Root, rel: &str) -> u32 {
        std::fs::symlink_metadata(root.path(rel))
            .expect("stat")
            .mode()
            & 0o7777
    }

    #[test]
    fn every_state_file_gets_the_tables_mode() {
        let (_dir, root) = scratch("modes");
        save_json(&root, INCIDENTS, &serde_json::json!({"open": {}})).expect("incidents");
        save_json(&root, ORIGINALS, &serde_json::json!({"version": 1})).expect("originals");
        save_json(&root, KMSG_POSITION, &serde_json::json!({"seq": 1})).expect("kmsg");
        root.write_atomic(&format!("{SPOOL}/ops/0000000000000001.json"), b"{}")
            .expect("spool entry");
        assert_eq!(mode(&root, DIR), DIR_MODE);
        assert_eq!(mode(&root, INCIDENTS), 0o600);
        assert_eq!(mode(&root, ORIGINALS), 0o644);
        assert_eq!(mode(&root, KMSG_POSITION), 0o644);
        assert_eq!(mode(&root, SPOOL), SPOOL_MODE);
        assert_eq!(
            mode(&root, &format!("{SPOOL}/ops/0000000000000001.json")),
            0o600
        );
        assert_eq!(mode_of("run/tunerd/originals.prom"), DEFAULT_MODE);
        let _lock = root.lock_state().expect("lock");
        assert_eq!(mode(&root, LOCK), 0o600);
    }

    #[test]
    fn leftovers_of_dead_writers_and_of_old_versions_are_removed() {
        let (dir, root) = scratch("leftovers");
        root.create_dir(&format!("{SPOOL}/ops")).expect("mkdir");
        let victim = dir.0.join("victim");
        std::fs::write(&victim, "V").expect("victim");
        // A pid above pid_max (4194304 at most) names no process.
        let dead = [
            ".originals.json.tmp.4194305.3",
            ".incidents.json.tmp.4194305.0",
            "originals.tmp",
            "incidents.tmp",
            "kmsg.tmp",
            "journal.tmp",
        ];
        for name in dead {
            std::fs::write(root.path(&format!("{DIR}/{name}")), "x").expect("leftover");
        }
        symlink(
            &victim,
            root.path(&format!("{DIR}/.kmsg.json.tmp.4194305.9")),
        )
        .expect("link");
        std::fs::write(root.path(&format!("{SPOOL}/ops/0000000000000001.tmp")), "x")
            .expect("old spool temporary");
        let live = format!("{DIR}/.originals.json.tmp.{}.5", std::process::id());
        let keep = [live.as_str(), ORIGINALS, "run/tunerd/.hidden"];
        for rel in keep {
            std::fs::write(root.path(rel), "keep").expect("kept");
        }
        let removed = clean_leftovers(&root);
        assert_eq!(removed.len(), dead.len() + 2, "{removed:?}");
        for rel in keep {
            assert!(root.path(rel).exists(), "{rel} kept");
        }
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "V");
        let left = root.list(DIR).expect("list");
        assert!(left.iter().all(|n| !n.ends_with(".tmp")), "{left:?}");
        assert!(root.list(&format!("{SPOOL}/ops")).expect("list").is_empty());
    }
}
