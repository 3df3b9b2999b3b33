//! `tunerctl scan FILE`: the incidents a saved kernel log shows, through the same
//! [`Engine`](crate::detect::Engine) the daemon feeds, so it finds what the daemon would have
//! raised. The log may come from another machine: devices stay as the log names them, and
//! times are the log's own.
//!
//! Logs of any size: the file is read line by line and each record folded as it is read, so
//! memory stays bounded (the engine bounds the incidents it keeps); a line longer than
//! [`MAX_LINE`] is cut there, and invalid UTF-8 costs only the bytes it replaces.
//!
//! Whom it believes: the same rules as the daemon ([`crate::detect::types::Sender`]). A
//! `journalctl -o json` journal carries journald's trusted fields, so an entry a user forged
//! (`logger -t multipathd` gives `_UID` of that user) is no incident; kmsg records, `dmesg -r`
//! and `dmesg -x` lines carry the facility, so a userspace write to /dev/kmsg is none either.
//! The other formats (`dmesg`, `journalctl -o short*`, syslog files) cannot show who wrote a
//! line: their lines are taken at their word, as the file's owner vouches for the file. Save
//! journals with `-o json` to have forgeries told apart.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::api::exit;
use crate::config::{Config, ConfigFiles, ConfigText, WatchSettings};
use crate::detect::incidents::{Detail, IncidentConfig};
use crate::detect::parse::LogParser;
use crate::detect::rules::Rules;
use crate::detect::types::Incident;
use crate::host::sys::Root;
use crate::tune::profile::ProfileSet;

use crate::detect::{Clock, Engine};

use super::render::{cut, line_of};
use super::{json, Failure, Output};

/// Longer lines are cut here: no kernel or journal record comes near it (kmsg records are
/// under 1 KiB), and one huge line must not cost its size in memory.
pub(crate) const MAX_LINE: usize = 64 << 10;

/// The evidence shown in the text table, in characters (the JSON has it whole).
const SHOWN_EVIDENCE: usize = 200;

/// Records folded per engine call.
const BATCH: usize = 4096;

fn engine(watch: &WatchSettings) -> Result<Engine, String> {
    let mut engine = Engine::new(
        IncidentConfig {
            max_open: 4096,
            quiet_secs: watch.quiet_secs,
            ..Default::default()
        },
        Default::default(),
        Clock::Saved,
    );
    engine.set_frozen_secs(watch.frozen_secs);
    engine.set_rules(Rules::compile(&watch.rules)?);
    Ok(engine)
}

/// The `[watch]` settings a scan uses: those of `config` when given (a tunerd.toml being
/// written), else of the machine's tunerd.toml (its built-in values when there is none, or
/// when it is not readable by this user, which is said on stderr).
pub(crate) fn watch_settings(root: &Root, config: Option<&Path>) -> Result<WatchSettings, Failure> {
    let profiles = || {
        ConfigFiles::read(root)
            .and_then(|f| f.parse())
            .map(|(_, p)| p)
            .or_else(|_| ProfileSet::from_drop_ins(&[]))
    };
    match config {
        Some(path) => {
            let display = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| Failure {
                message: format!("{display}: {e}"),
                code: exit::CONFIG,
            })?;
            let profiles = profiles()?;
            let file = ConfigText {
                file: display,
                text,
            };
            Ok(Config::parse(&file, &profiles)?.watch)
        }
        None if !Config::readable(root) => {
            eprintln!(
                "tunerctl: {} is not readable by this user: scanning without its [[watch.rule]]s",
                root.display(crate::config::CONFIG_FILE)
            );
            Ok(WatchSettings::default())
        }
        None => Ok(ConfigFiles::read(root)?.parse()?.0.watch),
    }
}

/// A saved log's records through the engine, as `scan` folds them (the whole-text form, which
/// the tests compare with the daemon's fold).
#[cfg(test)]
pub(crate) fn fold(records: &[crate::detect::types::LogRecord]) -> Engine {
    let mut engine = match engine(&WatchSettings::default()) {
        Ok(e) => e,
        Err(e) => panic!("built-in watch settings: {e}"),
    };
    // The saved clock takes the log's own times; `now` only caps live clocks.
    engine.records(records, None, u64::MAX);
    engine
}

/// Reads one line into `buf` (without the `\n`), keeping at most `max` bytes of it and
/// skipping the rest. False at the end of the input.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> std::io::Result<bool> {
    buf.clear();
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any);
        }
        any = true;
        let (part, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&part[..part.len().min(room)]);
        r.consume(used);
        if done {
            return Ok(true);
        }
    }
}

/// The whole input through the parser and the engine, a batch at a time.
fn fold_reader(input: impl Read, mut engine: Engine) -> std::io::Result<Engine> {
    let mut reader = BufReader::with_capacity(MAX_LINE, input);
    // Syslog and `journalctl -o short*` stamps have no year: the latest that is not after now.
    let mut parser = LogParser::with_now(crate::util::time::now_secs());
    let mut batch = Vec::with_capacity(BATCH);
    let mut line = Vec::new();
    while read_line(&mut reader, &mut line, MAX_LINE)? {
        // Invalid UTF-8 (a USB product string, say) is replaced, in its line only.
        parser.line(&String::from_utf8_lossy(&line), &mut batch);
        if batch.len() >= BATCH {
            engine.records(&batch, None, u64::MAX);
            batch.clear();
        }
    }
    parser.finish(&mut batch);
    engine.records(&batch, None, u64::MAX);
    Ok(engine)
}

pub(super) fn scan(file: &Path, as_json: bool, watch: &WatchSettings) -> Result<Output, Failure> {
    let engine = engine(watch).map_err(|message| Failure {
        message,
        code: exit::CONFIG,
    })?;
    let folded = if file.as_os_str() == "-" {
        fold_reader(std::io::stdin().lock(), engine)
    } else {
        std::fs::File::open(file).and_then(|f| fold_reader(f, engine))
    };
    let engine = folded.map_err(|e| Failure {
        message: format!("{}: {e}", file.display()),
        code: exit::FAILURE,
    })?;
    let incidents = engine.all();
    let code = if incidents.is_empty() {
        exit::OK
    } else {
        exit::INCIDENT
    };
    let text = if as_json {
        let list: Vec<serde_json::Value> = incidents
            .iter()
            .map(|i| with_detail(i, engine.detail(&i.id)))
            .collect();
        json(&serde_json::json!({
            "records": engine.records,
            "observations": engine.recognised,
            "incidents": list,
        }))
    } else if incidents.is_empty() {
        format!("{} records, no storage trouble found\n", engine.records)
    } else {
        let mut text = String::new();
        for (n, i) in incidents.iter().enumerate() {
            text.push_str(&human(n + 1, i, engine.detail(&i.id)));
        }
        text.push_str(&format!(
            "{} records, {} line{} about storage trouble, {} incident{}\n",
            engine.records,
            engine.recognised,
            if engine.recognised == 1 { "" } else { "s" },
            incidents.len(),
            if incidents.len() == 1 { "" } else { "s" }
        ));
        text
    };
    Ok(Output { text, code })
}

/// An incident as JSON, with what a saved log adds: `decided_by` (the line that decided its
/// kind), `first_seen_as` and `last_seen_as` (its first and last times as the log printed
/// them), `ended_by` and `ended_as` (the line that ended it and its time as printed; null
/// when the quiet period ended it or it is still open).
fn with_detail(i: &Incident, d: Option<&Detail>) -> serde_json::Value {
    let mut v = serde_json::to_value(i).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = v.as_object_mut() {
        // The same keys for every incident: null where the log did not say.
        let none = Detail::default();
        let d = d.unwrap_or(&none);
        let decided = Some(d.decided_by.clone()).filter(|l| !l.is_empty());
        obj.insert("decided_by".into(), decided.into());
        obj.insert("first_seen_as".into(), d.first_stamp.clone().into());
        obj.insert("last_seen_as".into(), d.last_stamp.clone().into());
        obj.insert("ended_by".into(), d.ended_by.clone().into());
        obj.insert("ended_as".into(), d.end_stamp.clone().into());
    }
    v
}

/// One incident for a person: what and how bad, where (device, disk, filesystem, mounts), when
/// in the log's own clock, and the line that decided it.
fn human(n: usize, i: &Incident, d: Option<&Detail>) -> String {
    let mut where_ = format!("device {}", i.device.as_deref().unwrap_or("-"));
    if let Some(disk) = &i.disk {
        if i.device.as_deref() != Some(disk) {
            where_.push_str(&format!(", disk {disk}"));
        }
    }
    if let Some(fs) = &i.fstype {
        where_.push_str(&format!(", {fs}"));
    }
    if !i.mounts.is_empty() {
        where_.push_str(&format!(" on {}", i.mounts.join(", ")));
    }
    let when = match d.map(|d| (d.first_stamp.as_deref(), d.last_stamp.as_deref())) {
        Some((Some(a), Some(b))) if a != b => format!("{a} .. {b}"),
        Some((Some(a), _)) => a.to_string(),
        _ => "-".to_string(),
    };
    let lines = if i.count == 1 {
        "1 line".to_string()
    } else {
        format!("{} lines", i.count)
    };
    let decided = d
        .map(|d| d.decided_by.as_str())
        .filter(|l| !l.is_empty())
        .or(i.evidence.first().map(String::as_str))
        .unwrap_or("");
    // Every part comes from the log: each line is shown escaped (no terminal controls).
    let mut text = line_of(format_args!(
        "{n}. {} ({}) {where_}",
        i.kind.name(),
        i.severity.as_str()
    ));
    text.push_str(&line_of(format_args!("   when:  {when} ({lines})")));
    text.push_str(&line_of(format_args!(
        "   line:  {}",
        cut(decided, SHOWN_EVIDENCE)
    )));
    // How it ended: a line of the log, the quiet period, or not at all.
    match (i.ended, d.and_then(|d| d.ended_by.as_deref())) {
        (Some(_), Some(by)) => match d.and_then(|d| d.end_stamp.as_deref()) {
            Some(at) => text.push_str(&line_of(format_args!(
                "   ended: {at}: {}",
                cut(by, SHOWN_EVIDENCE)
            ))),
            None => text.push_str(&line_of(format_args!(
                "   ended: {}",
                cut(by, SHOWN_EVIDENCE)
            ))),
        },
        (Some(end), None) => text.push_str(&line_of(format_args!(
            "   ended: {} s after its last line, nothing new (quiet_secs)",
            end.saturating_sub(i.last_seen)
        ))),
        (None, _) => text.push_str("   open:  still open where the log ends\n"),
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_or_cut_at_the_bound() {
        let data = b"short\nabcdefghij\n\nlast".to_vec();
        let mut r = BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while read_line(&mut r, &mut buf, 6).expect("read") {
            lines.push(String::from_utf8_lossy(&buf).into_owned());
        }
        assert_eq!(lines, ["short", "abcdef", "", "last"]);
    }

    #[test]
    fn the_streaming_fold_matches_the_whole_text_fold() {
        let log = "[    1.000000] I/O error, dev sda, sector 8 op 0x1:(WRITE) flags 0x0\n\
                   [    2.000000] Buffer I/O error on dev sda1, logical block 9, lost async page write\n\
                   [    3.000000] EXT4-fs (sda1): Remounting filesystem read-only\n";
        let whole = fold(&crate::detect::parse::parse_log(log));
        let streamed = fold_reader(
            log.as_bytes(),
            engine(&WatchSettings::default()).expect("engine"),
        )
        .expect("fold");
        assert_eq!(streamed.records, whole.records);
        assert_eq!(streamed.recognised, whole.recognised);
        assert_eq!(streamed.all(), whole.all());
    }
}
