//! Kernel messages -> observations. (Interim: the ext4 and block-layer lines; the full
//! catalog is being added.)

use crate::event::{Kind, LogRecord, Observation, Severity};

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let to = s[from..].find(end)? + from;
    Some(&s[from..to])
}

pub fn classify(rec: &LogRecord) -> Option<Observation> {
    let m = rec.message.as_str();
    let (kind, severity, device) = if let Some(d) = between(m, "EXT4-fs error (device ", ")") {
        (Kind::Ext4Error, Severity::Critical, Some(d))
    } else if m.contains("Remounting filesystem read-only") {
        (
            Kind::Ext4ReadOnly,
            Severity::Critical,
            between(m, "EXT4-fs (", ")"),
        )
    } else if let Some(d) = between(m, "Aborting journal on device ", ".") {
        let dev = d.rsplit_once('-').map_or(d, |(dev, _)| dev);
        (Kind::Ext4JournalAbort, Severity::Critical, Some(dev))
    } else if m.contains(" error, dev ") && !m.starts_with("operation not supported") {
        (
            Kind::BlockIoError,
            Severity::Warning,
            between(m, " error, dev ", ","),
        )
    } else {
        return None;
    };
    Some(Observation {
        kind,
        severity,
        device: device.map(str::to_string),
        resolves: false,
        message: m.to_string(),
        at_us: rec.realtime_us,
    })
}
