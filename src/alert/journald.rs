//! One structured entry per incident in the systemd journal, through journald's native
//! protocol (`KEY=VALUE` lines in one datagram to /run/systemd/journal/socket), so
//! `journalctl TUNERD_INCIDENT_ID=...` or `journalctl TUNERD_KIND=ext4_journal_abort` finds them.
//!
//! Written by hand: the protocol is a few lines (systemd.io/JOURNAL_NATIVE_PROTOCOL), and
//! tracing-journald would bring a subscriber stack for one datagram per incident. Sending is
//! non-blocking: a stuck journald never delays detection (the entry is then lost, the other
//! sinks are not).

use std::os::unix::net::UnixDatagram;

use crate::detect::types::{IncidentState, Notification, Severity};
use crate::host::sys::Root;

/// Encodes fields; a value with a newline uses the binary form (name, newline, 64-bit LE
/// length, value, newline).
pub(crate) fn encode(fields: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        out.extend_from_slice(k.as_bytes());
        if v.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        } else {
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

pub(crate) struct Journald {
    socket: Option<UnixDatagram>,
}

impl Journald {
    /// Connects once at start (after that nothing on this path touches the disk).
    pub(crate) fn open(root: &Root) -> Journald {
        let path = root.path("run/systemd/journal/socket");
        let socket = UnixDatagram::unbound()
            .ok()
            .filter(|s| s.set_nonblocking(true).is_ok() && s.connect(&path).is_ok());
        Journald { socket }
    }

    /// Sends the entry of one notification; false when journald did not take it.
    pub(crate) fn send(&self, n: &Notification) -> bool {
        let Some(sock) = &self.socket else {
            return false;
        };
        let inc = &n.incident;
        // syslog priorities: 2 critical, 4 warning, 6 info; a resolve is a notice.
        let priority = match (n.event, inc.severity) {
            (IncidentState::Resolved, _) => 5,
            (_, Severity::Critical) => 2,
            (_, Severity::Warning) => 4,
            (_, Severity::Info) => 6,
        };
        let verb = match n.event {
            IncidentState::Firing => "storage incident",
            IncidentState::Resolved => "storage incident resolved",
        };
        let mut fields = vec![
            ("MESSAGE", format!("{verb}: {}", inc.summary)),
            ("PRIORITY", priority.to_string()),
            ("SYSLOG_IDENTIFIER", "tunerd".to_string()),
            ("TUNERD_NOTIFICATION_ID", n.id.clone()),
            ("TUNERD_INCIDENT_ID", inc.id.clone()),
            ("TUNERD_EVENT", n.event.as_str().to_string()),
            ("TUNERD_KIND", inc.kind.name()),
            ("TUNERD_SEVERITY", inc.severity.as_str().to_string()),
            ("TUNERD_COUNT", inc.count.to_string()),
        ];
        if let Some(d) = &inc.disk {
            fields.push(("TUNERD_DISK", d.clone()));
        }
        if !inc.mounts.is_empty() {
            fields.push(("TUNERD_MOUNTS", inc.mounts.join(" ")));
        }
        if let Some(f) = &inc.fstype {
            fields.push(("TUNERD_FSTYPE", f.clone()));
        }
        if !inc.evidence.is_empty() {
            fields.push(("TUNERD_EVIDENCE", inc.evidence.join("\n")));
        }
        sock.send(&encode(&fields)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_protocol_encoding() {
        let e = encode(&[("MESSAGE", "hi".into()), ("EVIDENCE", "a\nb".into())]);
        let mut want = b"MESSAGE=hi\nEVIDENCE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(e, want);
    }
}
