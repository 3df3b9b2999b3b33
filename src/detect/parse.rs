//! Kernel and journal log records from whatever they were read or saved as: one `read()` of
//! /dev/kmsg ([`parse_kmsg_record`]), one line of `journalctl -o json`
//! ([`parse_journal_json_line`]), or a whole saved log in any of the usual text formats
//! ([`parse_log`]). Pure functions: no I/O, no panics on any input.
//!
//! Formats [`parse_log`] recognises, line by line (a file may mix them):
//!
//! | looks like | from |
//! |---|---|
//! | `6,1234,5678901,-;msg` then ` SUBSYSTEM=scsi`, ` DEVICE=+scsi:2:0:0:0` | `cat /dev/kmsg` |
//! | `[  123.456789] msg` | `dmesg` |
//! | `[  123.456789] [  T123] msg` | `dmesg` with the caller id |
//! | `msg` | `dmesg -t`, or a file of bare messages |
//! | `kern  :err   : [  123.456789] msg` (and without the timestamp) | `dmesg -x` |
//! | `<3>[  123.456789] msg` | `dmesg -r` |
//! | `[Sun Nov 22 06:39:45 2026] msg` | `dmesg -T` (the local time is not converted) |
//! | `2026-11-22T06:39:45,123456+00:00 msg` | `dmesg --time-format iso` |
//! | `Nov 22 05:52:03 host kernel: msg` (`.123456` after the seconds too) | `journalctl -k`, `-o short-precise`, syslog files |
//! | `2026-11-22T05:52:03+0000 host kernel: msg` | `journalctl -o short-iso`, `short-iso-precise`, RFC 3339 syslog |
//! | `[  123.456789] host kernel: msg` | `journalctl -o short-monotonic` (decided per file) |
//! | `2022-02-18 14:59:44 err kernel: msg`, `... notice [  578.551801] msg` (any syslog level word, or `kern.err`; `,123` or `.123` after the seconds) | syslog files written with a date, a time and the severity (rsyslog templates of `%timegenerated:::date-mysql%`/`%syslogseverity-text%` kind) |
//! | `{"MESSAGE": ...}` | `journalctl -o json` |
//! | any of the above behind `FILE:` or `FILE:NN:` (`/var/log/messages:Jun 28 ...`, `messages-20200628:...`, `syslog.1:...`, `12:...`), context lines' `FILE-`, `FILE-NN-`, `NN-`; `--` between groups | `grep` / `zgrep` of log files, with `-n`, `-A`/`-B`/`-C` or without |
//!
//! In the journal and syslog formats a `[  123.456789] ` left at the start of a kernel message
//! (rsyslog's kern.log) is taken as its monotonic time; `host` may be missing
//! (`--no-hostname`). Userspace records (`multipathd[812]: ...`) get [`LogRecord::program`]. A
//! line indented by 8 or more spaces after a timestamped line continues that record's message
//! (how dmesg and journalctl print a message with a newline in it). journalctl's `-- Boot ... --`
//! and `-- No entries --` lines are skipped. A grep prefix is taken off only when what follows
//! it is one of the stamped formats (a bare message such as `md/raid1:md0: Disk failure ...`
//! keeps its text); any other line is taken as a bare message.

use std::borrow::Cow;

use crate::detect::types::{LogRecord, Sender};

/// One record as one `read()` of /dev/kmsg returns it:
/// `PRI,SEQ,TS_USEC,FLAG[,more fields];MESSAGE\n` then optional continuation lines that start
/// with a space (` SUBSYSTEM=scsi`, ` DEVICE=+scsi:2:0:0:0`). `level` is `PRI & 7`; the
/// facility `PRI >> 3` says who wrote it: 0 is the kernel ([`Sender::Kernel`]), anything else
/// a userspace write to /dev/kmsg ([`Sender::Untrusted`]: the kernel gives such writes facility
/// 1 unless they name another non-zero one, so userspace cannot pass for the kernel). Header
/// fields after the third (the flag, `caller=T123`, anything newer) are ignored; `\xNN`
/// escapes are decoded and invalid UTF-8 is replaced. A record cut short (no newline) keeps
/// what it has. None when the header is not `PRI,SEQ,TS_USEC` numbers followed by `;`.
pub fn parse_kmsg_record(buf: &[u8]) -> Option<LogRecord> {
    let semi = buf.iter().position(|&b| b == b';')?;
    let mut fields = buf[..semi].split(|&b| b == b',');
    let pri = parse_u64(fields.next()?)?;
    let seq = parse_u64(fields.next()?)?;
    let ts = parse_u64(fields.next()?)?;
    let body = &buf[semi + 1..];
    let (msg, mut rest) = match body.iter().position(|&b| b == b'\n') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[body.len()..]),
    };
    let mut rec = LogRecord {
        seq: Some(seq),
        monotonic_us: Some(ts),
        level: Some((pri & 7) as u8),
        message: unescape(msg),
        sender: facility_sender(pri),
        ..LogRecord::default()
    };
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        if let Some(kv) = line.strip_prefix(b" ") {
            apply_continuation(&mut rec, kv);
        }
    }
    Some(rec)
}

/// One line of `journalctl -o json`. `MESSAGE` may be a string or an array of bytes (the
/// journal's form for non-UTF-8 text); a field the journal saw more than once is an array and
/// its first value is taken. Kernel records (`_TRANSPORT=kernel`) keep `program` None and take
/// their monotonic time from `_SOURCE_MONOTONIC_TIMESTAMP` (the kmsg timestamp) when present,
/// else `__MONOTONIC_TIMESTAMP`; other records get `program` from `SYSLOG_IDENTIFIER` (or
/// `_COMM`). None when the line is not a JSON object with a `MESSAGE` (or names a field twice,
/// which journalctl never does).
///
/// The sender comes from journald's trusted fields only (journald sets every `_` field itself
/// and drops those a client sends; `SYSLOG_IDENTIFIER` is the client's word):
/// [`Sender::Kernel`] for `_TRANSPORT=kernel` with `SYSLOG_FACILITY` 0 (or none), which is how
/// journald stores the kernel's own /dev/kmsg records; [`Sender::Root`] for another transport
/// with `_UID=0`; [`Sender::Untrusted`] for everything else (another uid, a userspace write to
/// /dev/kmsg, a line without `_TRANSPORT`).
pub fn parse_journal_json_line(line: &str) -> Option<LogRecord> {
    parse_journal_json_entry(line).1
}

/// [`parse_journal_json_line`] and the entry's `__CURSOR` (the daemon keeps the last one, to
/// resume after it), from one pass over the line.
pub(crate) fn parse_journal_json_entry(line: &str) -> (Option<String>, Option<LogRecord>) {
    let line = line.trim();
    if !line.starts_with('{') {
        return (None, None);
    }
    // Only the fields used are built, as slices of the line where they have no escapes;
    // the rest are skipped without allocating. journalctl's own lines take the scanner;
    // anything else it declines (escapes in a used field, arrays, whitespace, errors) is
    // serde_json's, whose verdict stands.
    let e = match scan_journal_line(line) {
        Some(e) => e,
        None => match serde_json::from_str::<JournalEntry<'_>>(line) {
            Ok(e) => e,
            Err(_) => return (None, None),
        },
    };
    let cursor = e.cursor.as_ref().and_then(Field::text).map(Cow::into_owned);
    (cursor, journal_record(&e))
}

fn journal_record(e: &JournalEntry<'_>) -> Option<LogRecord> {
    fn num(v: &Option<Field<'_>>) -> Option<u64> {
        v.as_ref()
            .and_then(Field::text)
            .and_then(|s| s.trim().parse().ok())
    }
    fn text<'s>(v: &'s Option<Field<'_>>) -> Option<Cow<'s, str>> {
        v.as_ref().and_then(Field::text).filter(|s| !s.is_empty())
    }
    let message = e.message.as_ref()?.text()?.into_owned();
    let transport = text(&e.transport);
    let ident = text(&e.ident);
    let kernel = transport.as_deref() == Some("kernel")
        || (transport.is_none() && ident.as_deref() == Some("kernel"));
    let sender = match transport.as_deref() {
        Some("kernel") => match num(&e.facility) {
            None | Some(0) => Sender::Kernel,
            Some(_) => Sender::Untrusted,
        },
        Some(_) if num(&e.uid) == Some(0) => Sender::Root,
        _ => Sender::Untrusted,
    };
    let program = if kernel {
        None
    } else {
        ident.or_else(|| text(&e.comm)).map(Cow::into_owned)
    };
    let monotonic_us = if kernel {
        num(&e.source_monotonic).or_else(|| num(&e.monotonic))
    } else {
        num(&e.monotonic)
    };
    Some(LogRecord {
        seq: None,
        monotonic_us,
        realtime_us: num(&e.realtime),
        level: num(&e.priority).and_then(|p| u8::try_from(p & 7).ok()),
        message,
        subsystem: text(&e.subsystem).map(Cow::into_owned),
        device: text(&e.device).map(Cow::into_owned),
        program,
        sender,
        stamp: None,
    })
}

/// One field of a journal entry as journalctl writes it: nearly always a string, kept as a
/// slice of the line when it has no escapes (no allocation); the rare other forms (an array of
/// bytes for non-UTF-8 text, an array of values for a field seen more than once) as a
/// [`serde_json::Value`]. Hand-written rather than `#[serde(untagged)]`, which would buffer
/// every value before trying each form: this is the hot path of journal parsing.
enum Field<'a> {
    Text(Cow<'a, str>),
    Other(serde_json::Value),
}

impl Field<'_> {
    fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            Field::Text(t) => Some(Cow::Borrowed(t.as_ref())),
            Field::Other(v) => json_text(v).map(Cow::Owned),
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Field<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{value, Visitor};
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Field<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a journal field")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'a>, E> {
                Ok(Field::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Field<'a>, E> {
                Ok(Field::Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Field<'a>, E> {
                Ok(Field::Text(Cow::Owned(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Field<'a>, E> {
                Ok(Field::Other(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Field<'a>, E> {
                Ok(Field::Other(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Field<'a>, E> {
                Ok(Field::Other(v.into()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Field<'a>, E> {
                Ok(Field::Other(v.into()))
            }
            fn visit_unit<E>(self) -> Result<Field<'a>, E> {
                Ok(Field::Other(serde_json::Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, a: A) -> Result<Field<'a>, A::Error> {
                let v = serde::Deserialize::deserialize(value::SeqAccessDeserializer::new(a))?;
                Ok(Field::Other(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Field<'a>, A::Error> {
                let v = serde::Deserialize::deserialize(value::MapAccessDeserializer::new(a))?;
                Ok(Field::Other(v))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// journalctl's JSON as it writes it: one flat object per line, `{"KEY":"VALUE",...}`, no
/// whitespace, string values. The scanner finds each quote with memchr and keeps the used
/// fields as slices; it declines (`None`, serde_json then decides) whatever is not exactly
/// that: a value that is not a string, an escape in a key or in a used field, `\u`
/// anywhere, a raw control character, a used field twice, anything after the `}`.
/// Hand-written next to serde_json, not instead of it: a journal line is ~600 bytes of which
/// the record uses ~150, and tokenizing every byte of the rest was most of the time of
/// journal parsing (0.9 M lines/s against the 1 M aim).
fn scan_journal_line(line: &str) -> Option<JournalEntry<'_>> {
    let b = line.as_bytes();
    if b.len() < 2 || b[0] != b'{' || b[b.len() - 1] != b'}' || b.iter().any(|&c| c < 0x20) {
        return None;
    }
    let mut e = JournalEntry::default();
    let mut i = 1;
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let (key, escaped, end) = json_string_at(line, i)?;
        if escaped || b.get(end) != Some(&b':') || b.get(end + 1) != Some(&b'"') {
            return None;
        }
        let (value, escaped, end) = json_string_at(line, end + 1)?;
        if let Some(slot) = e.slot(key) {
            if escaped || slot.is_some() {
                return None;
            }
            *slot = Some(Field::Text(Cow::Borrowed(value)));
        }
        match b.get(end) {
            Some(b',') => i = end + 1,
            Some(b'}') if end == b.len() - 1 => return Some(e),
            _ => return None,
        }
    }
}

/// The JSON string whose opening quote is at `at`: its raw text, whether it holds escapes,
/// and where its closing quote ends. `None` for `\u` (left to serde_json), a bad escape, no
/// closing quote.
fn json_string_at(line: &str, at: usize) -> Option<(&str, bool, usize)> {
    let b = line.as_bytes();
    let start = at + 1;
    let mut j = start;
    let mut escaped = false;
    loop {
        let k = j + memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[k] == b'"' {
            return Some((line.get(start..k)?, escaped, k + 1));
        }
        match b.get(k + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                escaped = true;
                j = k + 2;
            }
            _ => return None,
        }
    }
}

impl<'a> JournalEntry<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<Field<'a>>> {
        Some(match key {
            "__CURSOR" => &mut self.cursor,
            "MESSAGE" => &mut self.message,
            "PRIORITY" => &mut self.priority,
            "__REALTIME_TIMESTAMP" => &mut self.realtime,
            "__MONOTONIC_TIMESTAMP" => &mut self.monotonic,
            "_SOURCE_MONOTONIC_TIMESTAMP" => &mut self.source_monotonic,
            "_TRANSPORT" => &mut self.transport,
            "SYSLOG_IDENTIFIER" => &mut self.ident,
            "_COMM" => &mut self.comm,
            "_KERNEL_SUBSYSTEM" => &mut self.subsystem,
            "_KERNEL_DEVICE" => &mut self.device,
            "_UID" => &mut self.uid,
            "SYSLOG_FACILITY" => &mut self.facility,
            _ => return None,
        })
    }
}

/// The fields of a `journalctl -o json` entry that make a [`LogRecord`] (and its cursor).
#[derive(serde::Deserialize, Default)]
struct JournalEntry<'a> {
    #[serde(rename = "__CURSOR", borrow)]
    cursor: Option<Field<'a>>,
    #[serde(rename = "MESSAGE", borrow)]
    message: Option<Field<'a>>,
    #[serde(rename = "PRIORITY", borrow)]
    priority: Option<Field<'a>>,
    #[serde(rename = "__REALTIME_TIMESTAMP", borrow)]
    realtime: Option<Field<'a>>,
    #[serde(rename = "__MONOTONIC_TIMESTAMP", borrow)]
    monotonic: Option<Field<'a>>,
    #[serde(rename = "_SOURCE_MONOTONIC_TIMESTAMP", borrow)]
    source_monotonic: Option<Field<'a>>,
    #[serde(rename = "_TRANSPORT", borrow)]
    transport: Option<Field<'a>>,
    #[serde(rename = "SYSLOG_IDENTIFIER", borrow)]
    ident: Option<Field<'a>>,
    #[serde(rename = "_COMM", borrow)]
    comm: Option<Field<'a>>,
    #[serde(rename = "_KERNEL_SUBSYSTEM", borrow)]
    subsystem: Option<Field<'a>>,
    #[serde(rename = "_KERNEL_DEVICE", borrow)]
    device: Option<Field<'a>>,
    #[serde(rename = "_UID", borrow)]
    uid: Option<Field<'a>>,
    #[serde(rename = "SYSLOG_FACILITY", borrow)]
    facility: Option<Field<'a>>,
}

/// A saved log in any of the formats of the module documentation, in order. Never fails: a line
/// that is none of them is a bare message. The whole text at once; [`LogParser`] is the same
/// parse fed line by line.
pub fn parse_log(text: &str) -> Vec<LogRecord> {
    let mut parser = LogParser::new();
    let mut out = Vec::new();
    for raw in text.split('\n') {
        parser.line(raw, &mut out);
    }
    parser.finish(&mut out);
    out
}

/// [`parse_log`] one line at a time, in bounded memory: `tunerctl scan` reads logs of any size
/// through it. A record is handed out once the next record starts (continuation lines may
/// still follow it) or at [`LogParser::finish`]. Whether `[  123.456789] ` lines are dmesg's or
/// journalctl's short-monotonic is decided on the first lines (as [`parse_log`] does), which
/// are held until then: at most [`DECIDE_LINES`] lines or [`DECIDE_BYTES`] bytes.
pub struct LogParser {
    /// None until the first lines decided it.
    journal_mono: Option<bool>,
    /// The lines held while deciding, and their size.
    held: Vec<String>,
    held_bytes: usize,
    held_stamped: usize,
    /// How the previous record was read: continuation lines depend on it.
    prev: Prev,
    /// The last record, until the next one starts.
    pending: Option<LogRecord>,
    /// Unix seconds of "now", for the year syslog stamps leave out ([`LogParser::with_now`]).
    now: Option<u64>,
}

/// A message stops growing by continuation lines at this size.
pub const MAX_MESSAGE: usize = 64 << 10;

/// Lines looked at to tell journalctl's short-monotonic from dmesg.
pub const DECIDE_LINES: usize = 2000;
/// Of which `[`-stamped ones.
const DECIDE_STAMPED: usize = 200;
/// And at most this much text held while deciding (a file of huge lines decides early).
pub const DECIDE_BYTES: usize = 4 << 20;

impl Default for LogParser {
    fn default() -> Self {
        LogParser::new()
    }
}

impl LogParser {
    pub fn new() -> LogParser {
        LogParser {
            journal_mono: None,
            held: Vec::new(),
            held_bytes: 0,
            held_stamped: 0,
            prev: Prev::None,
            pending: None,
            now: None,
        }
    }

    /// A parser that dates syslog and `journalctl -o short*` stamps (`Nov 22 05:52:03`, no
    /// year) in the latest year that does not put them more than a day after `now_secs`, as
    /// rsyslog's readers do. Without it ([`LogParser::new`]) those records have no realtime.
    pub fn with_now(now_secs: u64) -> LogParser {
        LogParser {
            now: Some(now_secs),
            ..LogParser::new()
        }
    }

    /// One line (without its `\n`; a trailing `\r` is dropped). Records it completes are
    /// pushed to `out`.
    pub fn line(&mut self, raw: &str, out: &mut Vec<LogRecord>) {
        match self.journal_mono {
            Some(mono) => self.parse(raw, mono, out),
            None => {
                if raw.starts_with('[') {
                    self.held_stamped += 1;
                }
                self.held_bytes += raw.len();
                self.held.push(raw.to_string());
                if self.held.len() >= DECIDE_LINES
                    || self.held_stamped >= DECIDE_STAMPED
                    || self.held_bytes >= DECIDE_BYTES
                {
                    self.decide(out);
                }
            }
        }
    }

    /// The end of the log: what is still held or pending.
    pub fn finish(&mut self, out: &mut Vec<LogRecord>) {
        if self.journal_mono.is_none() {
            self.decide(out);
        }
        out.extend(self.pending.take());
    }

    fn decide(&mut self, out: &mut Vec<LogRecord>) {
        let held = std::mem::take(&mut self.held);
        let mono = is_journal_monotonic(held.iter().map(String::as_str));
        self.journal_mono = Some(mono);
        self.held_bytes = 0;
        for raw in &held {
            self.parse(raw, mono, out);
        }
    }

    fn parse(&mut self, raw: &str, journal_mono: bool, out: &mut Vec<LogRecord>) {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            return;
        }
        let first = line.as_bytes()[0];
        if first == b' ' {
            if self.prev == Prev::Kmsg && is_kmsg_continuation(line) {
                if let Some(last) = self.pending.as_mut() {
                    apply_continuation(last, &line.as_bytes()[1..]);
                }
                return;
            }
            if self.prev == Prev::Stamped && line.starts_with("        ") {
                if let Some(last) = self.pending.as_mut() {
                    // Bounded: a file of indented lines is not one message of its size.
                    if last.message.len() < MAX_MESSAGE {
                        last.message.push('\n');
                        last.message.push_str(line.trim_start());
                    }
                }
                return;
            }
        }
        // A log pasted into a report or a mail is often indented as a whole (a Markdown code
        // block): the indentation is not part of the record.
        let line = line.trim_start_matches([' ', '\t']);
        if line.starts_with("-- ") && line.ends_with(" --") || line == "--" {
            // journalctl: "-- Boot 1a2b... --", "-- No entries --"; grep's "--" between the
            // groups of context lines.
            return;
        }
        let (rec, how) = parse_line(line, journal_mono, self.now);
        self.prev = how;
        out.extend(self.pending.replace(rec));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    None,
    Kmsg,
    Stamped,
    Bare,
}

fn parse_line(line: &str, journal_mono: bool, now: Option<u64>) -> (LogRecord, Prev) {
    if let Some(got) = parse_stamped(line, journal_mono, now) {
        return got;
    }
    if let Some(got) = grep_stripped(line, journal_mono, now) {
        return got;
    }
    (kernel_bare(line), Prev::Bare)
}

/// A stamped line behind what `grep` (or `zgrep`) of several files, or with `-n`, puts before
/// it: `FILE:` for a matching line, `FILE-` for a context line (`-A`, `-B`, `-C`), each with
/// the line number after it under `-n` (`FILE:NN:`, `FILE-NN-`; `NN:`, `NN-` for one file).
/// The file name is any text without blanks (`/var/log/messages`, `messages-20200628`,
/// `syslog.1`, `/var/log/kern.log.2.gz`); as names have `-` of their own, every `:` and `-`
/// before the first blank is tried, and the rest is taken only when it is a stamped line
/// ([`parse_stamped`]).
/// The longest first word taken for a grep prefix (a path, `:NN:`, and the stamp's first word).
const MAX_GREP_PREFIX: usize = 512;

fn grep_stripped(line: &str, journal_mono: bool, now: Option<u64>) -> Option<(LogRecord, Prev)> {
    let head = &line[..line.find([' ', '\t']).unwrap_or(line.len())];
    // A file name is short: a long first word (a hostile `a-a-a-...` line of 64 KiB) is not
    // tried at each of its separators, which would cost its length squared.
    if head.len() > MAX_GREP_PREFIX {
        return None;
    }
    for (i, sep) in head.bytes().enumerate() {
        if i == 0 || !matches!(sep, b':' | b'-') {
            continue;
        }
        let rest = &line[i + 1..];
        if let Some(got) = parse_stamped(rest, journal_mono, now) {
            return Some(got);
        }
        // `-n`: the line number, then the same separator.
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest.as_bytes().get(digits) == Some(&sep) {
            if let Some(got) = parse_stamped(&rest[digits + 1..], journal_mono, now) {
                return Some(got);
            }
        }
        if sep == b':' {
            // A matching line's file name ends at its first colon.
            break;
        }
    }
    None
}

/// A line of one of the stamped formats (or kmsg, or journal JSON); None for a bare message.
fn parse_stamped(line: &str, journal_mono: bool, now: Option<u64>) -> Option<(LogRecord, Prev)> {
    let b = line.as_bytes();
    match b.first()? {
        b'{' => {
            if let Some(rec) = parse_journal_json_line(line) {
                return Some((rec, Prev::Bare));
            }
        }
        b'0'..=b'9' => {
            if let Some(rec) = kmsg_text_line(line) {
                return Some((rec, Prev::Kmsg));
            }
            if let Some(rec) = iso_line(line).or_else(|| dated_line(line)) {
                return Some((rec, Prev::Stamped));
            }
        }
        b'[' => {
            let stamped = if journal_mono {
                // journalctl -o short-monotonic: one stamp, then `host ident: msg`.
                one_stamp(line).map(|(mono, real, text, rest)| Stamps {
                    mono,
                    real,
                    text,
                    rest,
                })
            } else {
                stamps(line)
            };
            if let Some(st) = stamped {
                let mut rec = if journal_mono {
                    journal_tail(st.rest)
                } else {
                    kernel_bare(st.rest)
                };
                rec.monotonic_us = rec.monotonic_us.or(st.mono);
                rec.realtime_us = rec.realtime_us.or(st.real);
                rec.stamp = Some(st.text.to_string());
                return Some((rec, Prev::Stamped));
            }
        }
        b'<' => {
            if let Some(rec) = raw_dmesg_line(line) {
                return Some((rec, Prev::Stamped));
            }
        }
        b'A'..=b'Z' => {
            if let Some(rec) = syslog_line(line, now) {
                return Some((rec, Prev::Stamped));
            }
        }
        _ => {}
    }
    if b[0].is_ascii_lowercase() {
        if let Some(rec) = decoded_line(line) {
            return Some((rec, Prev::Stamped));
        }
    }
    None
}

fn bare(msg: &str) -> LogRecord {
    LogRecord {
        message: msg.to_string(),
        ..LogRecord::default()
    }
}

/// A kernel message as a text log left it: `kernel: ` prefixes (a syslog line of the
/// kernel ident whose message says `kernel: ` again, `[    8.734997] kernel: ...` from
/// `journalctl -o short-monotonic --no-hostname` read as dmesg) and rsyslog's
/// `[  123.456789] ` stamp dropped; the stamp is the monotonic time.
fn kernel_text(mut m: &str) -> (Option<u64>, &str) {
    let mut mono = None;
    loop {
        if let Some(r) = m.strip_prefix("kernel: ") {
            m = r;
            continue;
        }
        if m.starts_with('[') {
            if let Some((Some(us), None, _, r)) = one_stamp(m) {
                mono.get_or_insert(us);
                m = r;
                continue;
            }
        }
        return (mono, m);
    }
}

/// A bare kernel message, [`kernel_text`] applied.
fn kernel_bare(msg: &str) -> LogRecord {
    let (mono, m) = kernel_text(msg);
    let mut r = bare(m);
    r.monotonic_us = mono;
    r
}

/// A line of `cat /dev/kmsg`: the record without its continuation lines.
fn kmsg_text_line(line: &str) -> Option<LogRecord> {
    // Cheap check first: digits then a comma.
    let comma = line.find(',')?;
    if comma == 0 || !line.as_bytes()[..comma].iter().all(u8::is_ascii_digit) {
        return None;
    }
    parse_kmsg_record(line.as_bytes())
}

fn is_kmsg_continuation(line: &str) -> bool {
    let kv = &line[1..];
    match kv.find('=') {
        Some(eq) if eq > 0 => kv.as_bytes()[..eq]
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_'),
        _ => false,
    }
}

fn apply_continuation(rec: &mut LogRecord, kv: &[u8]) {
    let Some(eq) = kv.iter().position(|&b| b == b'=') else {
        return;
    };
    let value = unescape(&kv[eq + 1..]);
    match &kv[..eq] {
        b"SUBSYSTEM" => rec.subsystem = Some(value),
        b"DEVICE" => rec.device = Some(value),
        _ => {}
    }
}

/// What leads a dmesg line: its stamps (as many as `dmesg` was told to print: `-T`, `-e`,
/// `--time-format`, the caller id) and the message after them.
struct Stamps<'a> {
    mono: Option<u64>,
    real: Option<u64>,
    /// The most telling stamp as printed: the wall clock, else the monotonic time.
    text: &'a str,
    rest: &'a str,
}

/// Every `[...]` stamp at the start of `line` (`[  123.456789]`, `[Sun Nov 22 06:39:45 2026]`,
/// `[  +0.000042]`, `[Jan13 04:31]`, `[  T123]`), the message after them (one space dropped:
/// a message may itself start with a blank, as iSCSI's do). None when the first `[...]` is no
/// stamp.
fn stamps(line: &str) -> Option<Stamps<'_>> {
    let (mono, real, text, rest) = one_stamp(line)?;
    let mut st = Stamps {
        mono,
        real,
        text,
        rest,
    };
    while st.rest.starts_with('[') {
        if let Some((mono, real, text, rest)) = one_stamp(st.rest) {
            if real.is_some() && st.real.is_none() || mono.is_some() && st.text_is_vague() {
                st.text = text;
            }
            st.mono = st.mono.or(mono);
            st.real = st.real.or(real);
            st.rest = rest;
            continue;
        }
        let after = strip_caller(st.rest);
        if after.len() == st.rest.len() {
            break;
        }
        st.rest = after;
    }
    Some(st)
}

impl Stamps<'_> {
    /// The text shown is neither a wall clock nor a monotonic time (`[  +0.000042]`).
    fn text_is_vague(&self) -> bool {
        self.real.is_none() && self.mono.is_none()
    }
}

/// One `[...]` stamp at the start of `s`: the monotonic time (`[  123.456789]`), the wall clock
/// (`dmesg -T`'s `[Sun Nov 22 06:39:45 2026]`, taken as UTC: the log's own clock, not
/// converted), or neither (`dmesg -e`'s `[  +0.000042]` and `[Jan13 04:31]`); the stamp as
/// printed, and the rest after one space.
#[allow(clippy::type_complexity)]
fn one_stamp(s: &str) -> Option<(Option<u64>, Option<u64>, &str, &str)> {
    let inner_start = s.strip_prefix('[')?;
    let close = inner_start.find(']')?;
    let inner = &inner_start[..close];
    let text = &s[..close + 2];
    let rest = &inner_start[close + 1..];
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let t = inner.trim();
    if let Some(us) = parse_seconds(t) {
        return Some((Some(us), None, text, rest));
    }
    if let Some(delta) = t.strip_prefix('+') {
        // dmesg -e / --time-format reltime: the time since the previous line.
        return parse_seconds(delta.trim_start()).map(|_| (None, None, text, rest));
    }
    let words: Vec<&str> = t.split_ascii_whitespace().collect();
    match words.as_slice() {
        // dmesg -T / --ctime: "Sun Nov 22 06:39:45 2026"
        [_, mon, day, hms, year] => {
            let mon = month(mon)?;
            let day: u32 = day.parse().ok()?;
            let year: i64 = year.parse().ok()?;
            let (h, mi, sec) = parse_hms(hms)?;
            let secs = civil_secs(year, mon, day, h, mi, sec)?;
            Some((None, secs.checked_mul(1_000_000), text, rest))
        }
        // dmesg -e: "Jan13 04:31", printed when the minute changes
        [mon_day, hm] if mon_day.len() > 3 && hm.len() == 5 && hm.as_bytes()[2] == b':' => {
            month(mon_day.get(..3)?)?;
            mon_day[3..]
                .bytes()
                .all(|c| c.is_ascii_digit())
                .then_some((None, None, text, rest))
        }
        _ => None,
    }
}

/// `06:39:45` -> (6, 39, 45).
fn parse_hms(s: &str) -> Option<(u32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<u32> {
        let v = parse_u64(s.get(r)?.as_bytes())?;
        u32::try_from(v).ok()
    };
    let (h, m, sec) = (n(0..2)?, n(3..5)?, n(6..8)?);
    (h <= 23 && m <= 59 && sec <= 60).then_some((h, m, sec))
}

/// Unix seconds of a UTC civil time; None before the epoch or for a day out of range.
fn civil_secs(y: i64, mon: u32, d: u32, h: u32, mi: u32, sec: u32) -> Option<u64> {
    if !(1..=31).contains(&d) {
        return None;
    }
    let days = crate::util::time::days_from_civil(y, mon, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec);
    u64::try_from(secs).ok()
}

/// The year of Unix second `t` (UTC).
fn year_of(t: u64) -> i64 {
    let t = i64::try_from(t).unwrap_or(i64::MAX / 2);
    let mut y = 1970;
    while y < 10_000 && crate::util::time::days_from_civil(y + 1, 1, 1) * 86_400 <= t {
        y += 1;
    }
    y
}

/// dmesg's caller id after the timestamp: `[  T123] ` or `[    C1] `.
fn strip_caller(rest: &str) -> &str {
    if let Some(r) = rest.strip_prefix('[') {
        if let Some(close) = r.find(']') {
            let inner = r[..close].trim_start();
            let mut chars = inner.bytes();
            if matches!(chars.next(), Some(b'T' | b'C'))
                && inner.len() > 1
                && chars.all(|c| c.is_ascii_digit())
            {
                let after = &r[close + 1..];
                return after.strip_prefix(' ').unwrap_or(after);
            }
        }
    }
    rest
}

/// `123.456789` -> microseconds.
fn parse_seconds(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.')?;
    if frac.is_empty() || frac.len() > 9 {
        return None;
    }
    let secs = parse_u64(secs.as_bytes())?;
    let mut f = parse_u64(frac.as_bytes())?;
    let mut digits = frac.len();
    while digits > 6 {
        f /= 10;
        digits -= 1;
    }
    while digits < 6 {
        f *= 10;
        digits += 1;
    }
    secs.checked_mul(1_000_000)?.checked_add(f)
}

/// `<3>[  123.456789] msg` or `<3>msg` (dmesg -r).
fn raw_dmesg_line(line: &str) -> Option<LogRecord> {
    let close = line.find('>')?;
    let pri = parse_u64(&line.as_bytes()[1..close])?;
    let rest = &line[close + 1..];
    let mut rec = stamped_or_bare(rest);
    rec.level = Some((pri & 7) as u8);
    rec.sender = facility_sender(pri);
    Some(rec)
}

/// Who wrote a record of syslog priority `pri` read from the kernel's ring: facility 0 is the
/// kernel's alone (`devkmsg_write` gives userspace facility 1 unless it names another non-zero
/// one).
fn facility_sender(pri: u64) -> Sender {
    if pri >> 3 == 0 {
        Sender::Kernel
    } else {
        Sender::Untrusted
    }
}

const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];
const FACILITIES: [&str; 20] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

/// `kern  :err   : [  123.456789] msg` (dmesg -x), with or without the timestamp.
fn decoded_line(line: &str) -> Option<LogRecord> {
    // The facility is a short word: look for its colon in the first bytes only (a line
    // that is no dmesg -x costs nothing, whatever its length).
    let colon = line.bytes().take(16).position(|b| b == b':')?;
    let (fac, rest) = (&line[..colon], &line[colon + 1..]);
    if !FACILITIES.contains(&fac.trim_end()) {
        return None;
    }
    let (lvl, rest) = rest.split_once(':')?;
    let level = LEVELS.iter().position(|l| *l == lvl.trim_end())?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut rec = stamped_or_bare(rest);
    rec.level = u8::try_from(level).ok();
    // dmesg -x names the facility: only `kern` is the kernel's (see facility_sender).
    rec.sender = if fac.trim_end() == "kern" {
        Sender::Kernel
    } else {
        Sender::Untrusted
    };
    Some(rec)
}

/// What follows dmesg's `<3>` or `kern  :err   : `: stamps, if any, then the message.
fn stamped_or_bare(rest: &str) -> LogRecord {
    match stamps(rest) {
        Some(st) => {
            let mut r = kernel_bare(st.rest);
            r.monotonic_us = r.monotonic_us.or(st.mono);
            r.realtime_us = st.real;
            r.stamp = Some(st.text.to_string());
            r
        }
        None => kernel_bare(rest),
    }
}

fn month(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS
        .iter()
        .position(|m| *m == s)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// `Nov 22 05:52:03[.123456] [host] ident[pid]: msg` (journalctl short, short-precise; syslog).
/// The stamp has no year: dated with `now` ([`LogParser::with_now`]) when there is one.
fn syslog_line(line: &str, now: Option<u64>) -> Option<LogRecord> {
    let mon = line.get(..3)?;
    let mon = month(mon)?;
    let rest = line[3..].strip_prefix(' ')?;
    let rest = rest.trim_start_matches(' ');
    let (day, rest) = rest.split_once(' ')?;
    if day.is_empty() || day.len() > 2 || !day.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (time, rest) = rest.split_once(' ')?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let (h, mi, sec) = parse_hms(hms)?;
    let mut rec = journal_tail(rest);
    rec.stamp = Some(line[..line.len() - rest.len()].trim_end().to_string());
    if let (Some(now), Ok(day)) = (now, day.parse::<u32>()) {
        let micros = frac_micros(frac);
        let year = year_of(now);
        let at = civil_secs(year, mon, day, h, mi, sec)
            .filter(|t| *t <= now.saturating_add(86_400))
            .or_else(|| civil_secs(year - 1, mon, day, h, mi, sec));
        rec.realtime_us = at
            .and_then(|t| t.checked_mul(1_000_000))
            .and_then(|us| us.checked_add(micros));
    }
    Some(rec)
}

/// `123456` (after the `.`) -> microseconds; digits past the sixth are dropped.
fn frac_micros(frac: &str) -> u64 {
    let mut micros = 0;
    for (i, c) in frac.bytes().take(6).enumerate() {
        if !c.is_ascii_digit() {
            return 0;
        }
        micros += u64::from(c - b'0') * 10_u64.pow(5 - i as u32);
    }
    micros
}

/// `2026-11-22T05:52:03[.123456|,123456][Z|+0000|+00:00] rest`: journalctl short-iso (host and
/// ident follow) or dmesg --time-format iso (a comma before the fraction; the message follows).
fn iso_line(line: &str) -> Option<LogRecord> {
    let (stamp, rest) = line.split_once(' ')?;
    let realtime = parse_iso(stamp)?;
    let mut rec = if stamp.contains(',') {
        kernel_bare(rest)
    } else {
        journal_tail(rest)
    };
    rec.realtime_us = Some(realtime);
    rec.stamp = Some(stamp.to_string());
    Some(rec)
}

/// `2022-02-18 14:59:44[.123|,123] [LEVEL] rest`: a syslog file written with the date, the
/// time and the message's severity (`err`, `notice`, any syslog level word, or
/// `facility.level`), as LINBIT/drbd#27's paste shows. `rest` is `[host] ident[pid]: msg` as in
/// the other syslog formats, or a kernel message with its `[  578.551801] ` stamp (the same
/// paste's `notice [  578.551801] drbd ...`). The time is the log's own clock, taken as UTC (no
/// time zone is converted, as for `dmesg -T`).
fn dated_line(line: &str) -> Option<LogRecord> {
    let b = line.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<u32> {
        let v = parse_u64(line.get(r)?.as_bytes())?;
        u32::try_from(v).ok()
    };
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    if !(1..=12).contains(&mo) {
        return None;
    }
    let after_date = &line[11..];
    let (time, rest) = after_date.split_once(' ')?;
    let (hms, frac) = match time.find(['.', ',']) {
        Some(i) => (&time[..i], &time[i + 1..]),
        None => (time, ""),
    };
    let (h, mi, sec) = parse_hms(hms)?;
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs = civil_secs(i64::from(y), mo, d, h, mi, sec)?;
    let stamp_len = line.len() - rest.len();
    let rest = rest.trim_start_matches(' ');
    let (level, rest) = match rest.split_once(' ') {
        Some((word, after)) => match syslog_level(word) {
            Some(l) => (Some(l), after.trim_start_matches(' ')),
            None => (None, rest),
        },
        None => (None, rest),
    };
    let mut rec = if rest.starts_with('[') {
        kernel_bare(rest)
    } else {
        journal_tail(rest)
    };
    rec.level = rec.level.or(level);
    rec.realtime_us = secs
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(frac_micros(frac)));
    rec.stamp = Some(line[..stamp_len].trim_end().to_string());
    Some(rec)
}

/// A syslog severity as a word (rsyslog's `%syslogseverity-text%`, syslog.conf's names and
/// their old synonyms `panic`, `error`, `warn`), alone or as `facility.level` (`kern.err`).
fn syslog_level(word: &str) -> Option<u8> {
    let level = match word.split_once('.') {
        Some((fac, lvl)) if FACILITIES.contains(&fac) => lvl,
        Some(_) => return None,
        None => word,
    };
    let i = match level {
        "emerg" | "panic" => 0,
        "alert" => 1,
        "crit" => 2,
        "err" | "error" => 3,
        "warning" | "warn" => 4,
        "notice" => 5,
        "info" => 6,
        "debug" => 7,
        _ => return None,
    };
    Some(i)
}

/// Microseconds since the epoch from an ISO 8601 / RFC 3339 time with an offset (none = UTC).
fn parse_iso(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> {
        let v = parse_u64(s.get(r)?.as_bytes())?;
        i64::try_from(v).ok()
    };
    let (y, mo, d, h, mi, sec) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut micros: i64 = 0;
    if let Some(r) = rest.strip_prefix(['.', ',']) {
        let end = r
            .bytes()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(r.len());
        let frac = &r[..end];
        if frac.is_empty() {
            return None;
        }
        for (i, c) in frac.bytes().take(6).enumerate() {
            micros += i64::from(c - b'0') * 10_i64.pow(5 - i as u32);
        }
        rest = &r[end..];
    }
    let offset_s: i64 = match rest.as_bytes().first() {
        None => 0,
        Some(b'Z') if rest.len() == 1 => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let hh = i64::try_from(parse_u64(&digits.as_bytes()[..2])?).ok()?;
            let mm = i64::try_from(parse_u64(&digits.as_bytes()[2..])?).ok()?;
            let v = hh * 3600 + mm * 60;
            if sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days =
        crate::util::time::days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    u64::try_from(secs.checked_mul(1_000_000)?.checked_add(micros)?).ok()
}

/// What follows the time in the journal and syslog formats: `[host] ident[pid]: message`.
fn journal_tail(rest: &str) -> LogRecord {
    let (ident, msg) = match split_ident(rest) {
        Some(x) => x,
        None => match rest.split_once(' ') {
            // host, then the identifier
            Some((_host, after)) => match split_ident(after) {
                Some(x) => x,
                None => ("", after),
            },
            None => ("", rest),
        },
    };
    let mut rec = if ident == "kernel" || ident.is_empty() {
        // rsyslog's kern.log keeps the kernel's own timestamp in the message.
        kernel_bare(msg)
    } else {
        let mut r = bare(msg);
        r.program = Some(ident.to_string());
        r
    };
    if ident == "kernel" {
        rec.program = None;
    }
    rec
}

/// `ident[pid]: msg` or `ident: msg` at the start of `s`, ident without spaces or colons.
fn split_ident(s: &str) -> Option<(&str, &str)> {
    let end = s.find([' ', ':'])?;
    if end == 0 || s.as_bytes()[end] != b':' {
        return None;
    }
    let after = &s[end + 1..];
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    let word = &s[..end];
    let name = match word.find('[') {
        Some(open) => {
            let pid = word[open + 1..].strip_suffix(']')?;
            if pid.is_empty() || !pid.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            &word[..open]
        }
        None => word,
    };
    if name.is_empty() {
        return None;
    }
    Some((name, after.strip_prefix(' ').unwrap_or(after)))
}

/// Whether the `[  123.456789] ` lines of this text are journalctl's short-monotonic
/// (`[  123.456789] host ident: msg`) rather than dmesg's: most of the first 200 such lines
/// (within the first 2000) carry the same host and a journal identifier (`kernel:` or
/// `name[pid]:`).
fn is_journal_monotonic<'a>(lines: impl Iterator<Item = &'a str>) -> bool {
    let mut stamped = 0usize;
    let mut journal = 0usize;
    let mut host: Option<&str> = None;
    for line in lines
        .take(DECIDE_LINES)
        .filter(|l| l.starts_with('['))
        .take(DECIDE_STAMPED)
    {
        let Some((Some(_), _, _, rest)) = one_stamp(line) else {
            continue;
        };
        stamped += 1;
        let Some((h, after)) = rest.split_once(' ') else {
            continue;
        };
        let Some((ident, _)) = split_ident(after) else {
            continue;
        };
        let pid_form = after.as_bytes().get(ident.len()) == Some(&b'[');
        if (ident == "kernel" || pid_form) && host.is_none_or(|x| x == h) {
            host = Some(h);
            journal += 1;
        }
    }
    journal > 0 && journal * 2 > stamped
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) => {
            if !items.is_empty() && items.iter().all(Value::is_u64) {
                let bytes: Vec<u8> = items
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .and_then(|n| u8::try_from(n).ok())
                            .unwrap_or(b'?')
                    })
                    .collect();
                Some(String::from_utf8_lossy(&bytes).into_owned())
            } else {
                items.first().and_then(json_text)
            }
        }
        _ => None,
    }
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// kmsg's `\xNN` escapes decoded; invalid UTF-8 replaced.
fn unescape(b: &[u8]) -> String {
    if !b.contains(&b'\\') {
        return String::from_utf8_lossy(b).into_owned();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            if let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3])) {
                out.push(h << 4 | l);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kmsg(s: &str) -> Option<LogRecord> {
        parse_kmsg_record(s.as_bytes())
    }

    #[test]
    fn kmsg_record_fields() {
        let r = kmsg("2,360,284047337,-;EXT4-fs error (device loop2): trigger_test_error:129: comm bash: x\n")
            .expect("record");
        assert_eq!(r.seq, Some(360));
        assert_eq!(r.monotonic_us, Some(284_047_337));
        assert_eq!(r.level, Some(2));
        assert_eq!(
            r.message,
            "EXT4-fs error (device loop2): trigger_test_error:129: comm bash: x"
        );
        assert_eq!(
            (r.subsystem, r.device, r.program, r.realtime_us),
            (None, None, None, None)
        );
    }

    #[test]
    fn kmsg_level_is_pri_and_7() {
        // facility 1 (user), level 6; facility 3 (daemon), level 3
        assert_eq!(kmsg("14,1,2,-;x").and_then(|r| r.level), Some(6));
        assert_eq!(kmsg("27,1,2,c;x").and_then(|r| r.level), Some(3));
    }

    #[test]
    fn kmsg_continuation_lines() {
        let r = kmsg(
            "3,812,9000000,-;sd 2:0:0:0: rejecting I/O to offline device\n SUBSYSTEM=scsi\n DEVICE=+scsi:2:0:0:0\n",
        )
        .expect("record");
        assert_eq!(r.message, "sd 2:0:0:0: rejecting I/O to offline device");
        assert_eq!(r.subsystem.as_deref(), Some("scsi"));
        assert_eq!(r.device.as_deref(), Some("+scsi:2:0:0:0"));
        // Unknown keys and lines without a leading space are ignored.
        let r = kmsg("6,1,2,-;m\n FOO=bar\nJUNK\n DEVICE=b8:0").expect("record");
        assert_eq!(r.device.as_deref(), Some("b8:0"));
        assert_eq!(r.subsystem, None);
    }

    #[test]
    fn kmsg_unknown_header_fields_ignored() {
        let r = kmsg("6,339,5140900,-,caller=T123;NET: Registered protocol family 10\n")
            .expect("record");
        assert_eq!(r.seq, Some(339));
        assert_eq!(r.message, "NET: Registered protocol family 10");
        let r = kmsg("6,339,5140900,-,caller=T1,future=x,y;m\n").expect("record");
        assert_eq!(r.message, "m");
        // The flag itself is optional to us.
        assert_eq!(kmsg("6,1,2;m").map(|r| r.message), Some("m".into()));
    }

    #[test]
    fn kmsg_escapes() {
        let r = kmsg("6,90,239625,-;rcu: \\x09RCU restricting \\x5c \\xe2\\x82\\xac\n")
            .expect("record");
        assert_eq!(r.message, "rcu: \tRCU restricting \\ \u{20ac}");
        // A newline inside a message is escaped and decoded.
        let r = kmsg("4,287,407191,-;a.\\x0aPlease enable it\n").expect("record");
        assert_eq!(r.message, "a.\nPlease enable it");
        // Invalid UTF-8 is replaced, not an error.
        let r = kmsg("6,1,2,-;bad \\xff\\xfe end\n").expect("record");
        assert_eq!(r.message, "bad \u{fffd}\u{fffd} end");
        // Broken escapes stay as they are.
        let r = kmsg("6,1,2,-;\\xZZ \\x4").expect("record");
        assert_eq!(r.message, "\\xZZ \\x4");
        let r = kmsg("6,1,2,-;end\\").expect("record");
        assert_eq!(r.message, "end\\");
        // Raw invalid bytes too.
        let r = parse_kmsg_record(b"6,1,2,-;\xff\xc3\n").expect("record");
        assert_eq!(r.message, "\u{fffd}\u{fffd}");
    }

    #[test]
    fn kmsg_truncated_and_garbage() {
        assert_eq!(kmsg(""), None);
        assert_eq!(kmsg(";"), None);
        assert_eq!(kmsg("6,1,2"), None);
        assert_eq!(kmsg("6,1;x"), None);
        assert_eq!(kmsg("6,1,;x"), None);
        assert_eq!(kmsg("a,b,c,-;x"), None);
        assert_eq!(kmsg("6,1\n,2,-;x"), None);
        assert_eq!(kmsg("6,99999999999999999999999,2,-;x"), None);
        assert_eq!(kmsg("-6,1,2,-;x"), None);
        // Cut inside the message: what there is.
        let r = kmsg("3,5,6,-;I/O error, dev lo").expect("record");
        assert_eq!(r.message, "I/O error, dev lo");
        // Empty message.
        assert_eq!(kmsg("3,5,6,-;\n").map(|r| r.message), Some(String::new()));
    }

    #[test]
    fn log_kmsg_text_with_continuations() {
        let t = "6,194,289508,-;acpi PNP0A08:00: _OSC: OS supports [ExtendedConfig]\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00\n3,2,3,-;second\n";
        let r = parse_log(t);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].subsystem.as_deref(), Some("acpi"));
        assert_eq!(r[0].device.as_deref(), Some("+acpi:PNP0A08:00"));
        assert_eq!(r[0].seq, Some(194));
        assert_eq!(r[1].message, "second");
        assert_eq!(r[1].level, Some(3));
    }

    #[test]
    fn log_dmesg_formats() {
        let t = "[ 2777.628917] critical space allocation error, dev loop2, sector 69634\n\
                 [    0.407191] amd_pstate: The CPPC feature is supported.\n               Please enable it.\n\
                 [    1.000000] [    T1] with caller\n";
        let r = parse_log(t);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].monotonic_us, Some(2_777_628_917));
        assert_eq!(
            r[0].message,
            "critical space allocation error, dev loop2, sector 69634"
        );
        assert_eq!(
            r[1].message,
            "amd_pstate: The CPPC feature is supported.\nPlease enable it."
        );
        assert_eq!(r[2].message, "with caller");
        // dmesg -t: bare lines.
        let r = parse_log("EXT4-fs (loop2): Remounting filesystem read-only\n");
        assert_eq!(
            r[0].message,
            "EXT4-fs (loop2): Remounting filesystem read-only"
        );
        assert_eq!(r[0].monotonic_us, None);
        // dmesg -x, with and without the timestamp.
        let r = parse_log("kern  :err   : [ 2777.628917] I/O error, dev sda, sector 8\nkern  :crit  : EXT4-fs (sda): x\n");
        assert_eq!(r[0].level, Some(3));
        assert_eq!(r[0].monotonic_us, Some(2_777_628_917));
        assert_eq!(r[0].message, "I/O error, dev sda, sector 8");
        assert_eq!(r[1].level, Some(2));
        assert_eq!(r[1].message, "EXT4-fs (sda): x");
        // dmesg -r
        let r = parse_log("<3>[   12.500000] I/O error, dev sda, sector 8\n<11>bare\n");
        assert_eq!((r[0].level, r[0].monotonic_us), (Some(3), Some(12_500_000)));
        assert_eq!(r[0].message, "I/O error, dev sda, sector 8");
        assert_eq!((r[1].level, r[1].message.as_str()), (Some(3), "bare"));
        // dmesg -T
        let r = parse_log("[Sun Nov 22 06:39:45 2026] XFS (loop6): log I/O error -5\n");
        assert_eq!(r[0].message, "XFS (loop6): log I/O error -5");
        // dmesg --time-format iso
        let r = parse_log("2026-11-22T05:52:03,000000+00:00 XFS (loop6): log I/O error -5\n");
        assert_eq!(r[0].message, "XFS (loop6): log I/O error -5");
        assert_eq!(r[0].realtime_us, Some(1_795_326_723_000_000));
    }

    #[test]
    fn log_journal_text_formats() {
        let msg = "EXT4-fs (loop2): Remounting filesystem read-only";
        for line in [
            format!("Nov 22 05:52:03 vm kernel: {msg}"),
            format!("Nov  2 05:52:03.263901 vm kernel: {msg}"),
            format!("Nov 22 05:52:03 kernel: {msg}"),
            format!("2026-11-22T05:52:03+0000 vm kernel: {msg}"),
            format!("2026-11-22T05:52:03.123456+00:00 vm kernel: {msg}"),
            format!("Nov 22 05:52:03 vm kernel: [ 2833.319870] {msg}"),
        ] {
            let r = parse_log(&line);
            assert_eq!(r.len(), 1, "{line}");
            assert_eq!(r[0].message, msg, "{line}");
            assert_eq!(r[0].program, None, "{line}");
        }
        let r = parse_log(&format!(
            "2026-11-22T06:52:03.123456+01:00 vm kernel: {msg}"
        ));
        assert_eq!(r[0].realtime_us, Some(1_795_326_723_123_456));
        let r = parse_log(&format!("2024-02-29T23:59:59-05:30 vm kernel: {msg}"));
        assert_eq!(r[0].realtime_us, Some(1_709_270_999_000_000));
        let r = parse_log(&format!("Nov 22 05:52:03 vm kernel: [ 2833.319870] {msg}"));
        assert_eq!(r[0].monotonic_us, Some(2_833_319_870));
        // Userspace programs.
        let r =
            parse_log("Nov 22 05:52:03 vm multipathd[812]: mpatha: remaining active paths: 0\n");
        assert_eq!(r[0].program.as_deref(), Some("multipathd"));
        assert_eq!(r[0].message, "mpatha: remaining active paths: 0");
        // journalctl's markers are skipped.
        let r = parse_log("-- Boot 1a2b3c --\n-- No entries --\n");
        assert!(r.is_empty());
    }

    #[test]
    fn log_stamps_in_the_logs_own_clock() {
        // dmesg -T: the wall clock as printed (no time zone is converted).
        let r =
            parse_log("[Sat Nov 26 23:06:01 2016] XFS (sdd1): xfs_log_force: error -5 returned.\n");
        assert_eq!(r[0].realtime_us, Some(1_480_201_561_000_000));
        assert_eq!(r[0].stamp.as_deref(), Some("[Sat Nov 26 23:06:01 2016]"));
        assert_eq!(
            r[0].message,
            "XFS (sdd1): xfs_log_force: error -5 returned."
        );
        // dmesg -x -e -T with caller ids, stacked; the message keeps its own leading blank.
        let r = parse_log("kern  :info  : [  +0.010370] [Tue Jan 13 04:31:07 2026] [T88870]  connection7:0: detected conn error (1021)\nkern  :info  : [Jan13 04:33] [Tue Jan 13 04:33:10 2026] [  T129]  session7: x\n");
        assert_eq!(r[0].message, " connection7:0: detected conn error (1021)");
        assert_eq!(r[0].stamp.as_deref(), Some("[Tue Jan 13 04:31:07 2026]"));
        assert_eq!(r[0].realtime_us, Some(1_768_278_667_000_000));
        assert_eq!(r[1].message, " session7: x");
        // Syslog and journalctl short: no year; dated when the parser knows now.
        let line = "Nov 29 12:03:54 stor-04 kernel: [509619.800779] XFS (sdd1): xfs_log_force: error -5 returned.";
        let r = parse_log(line);
        assert_eq!(
            (r[0].realtime_us, r[0].monotonic_us),
            (None, Some(509_619_800_779))
        );
        assert_eq!(r[0].stamp.as_deref(), Some("Nov 29 12:03:54"));
        let now = 1_796_126_400; // 2026-12-01T12:00:00Z
        let mut p = LogParser::with_now(now);
        let mut out = Vec::new();
        p.line(line, &mut out);
        p.line("Dec 24 05:52:03.250000 vm kernel: x", &mut out);
        p.finish(&mut out);
        assert_eq!(
            out[0].realtime_us,
            Some(1_795_953_834_000_000),
            "Nov 29 2026"
        );
        assert_eq!(
            out[1].realtime_us,
            Some(1_766_555_523_250_000),
            "Dec 24 is last year's"
        );
    }

    #[test]
    fn log_kernel_prefixes_and_indentation_dropped() {
        for line in [
            "Jun 22 16:31:49 hostname kernel: kernel: connection3:0: ping timeout of 5 secs expired",
            "[    8.734997] kernel: connection3:0: ping timeout of 5 secs expired",
            "    [    8.734997] connection3:0: ping timeout of 5 secs expired",
            "kernel: connection3:0: ping timeout of 5 secs expired",
        ] {
            let r = parse_log(line);
            assert_eq!(r.len(), 1, "{line}");
            assert_eq!(
                r[0].message, "connection3:0: ping timeout of 5 secs expired",
                "{line}"
            );
        }
    }

    #[test]
    fn log_journal_monotonic_decided_per_file() {
        let t = "[    0.000000] vm kernel: Linux version 6.18\n[ 2833.319870] vm kernel: nvme nvme0: controller is down; will reset: CSTS=0x3\n[ 2834.000000] vm iscsid[77]: connection1:0 is operational after recovery (1 attempts)\n";
        let r = parse_log(t);
        assert_eq!(
            r[1].message,
            "nvme nvme0: controller is down; will reset: CSTS=0x3"
        );
        assert_eq!(r[1].monotonic_us, Some(2_833_319_870));
        assert_eq!(r[2].program.as_deref(), Some("iscsid"));
        // The same message in a dmesg file keeps its "nvme nvme0: " prefix.
        let t = "[    0.000000] Linux version 6.18\n[ 2833.319870] nvme nvme0: controller is down; will reset: CSTS=0x3\n[ 2833.319871] sd 2:0:0:0: [sda] tag#3 timing out command, waited 30s\n";
        let r = parse_log(t);
        assert_eq!(
            r[1].message,
            "nvme nvme0: controller is down; will reset: CSTS=0x3"
        );
        assert_eq!(
            r[2].message,
            "sd 2:0:0:0: [sda] tag#3 timing out command, waited 30s"
        );
    }

    /// The scanner's records are serde_json's, on every line of the journal captures; what it
    /// declines is left to serde_json.
    #[test]
    fn the_journal_scanner_agrees_with_serde_json() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/logs");
        let mut scanned = 0;
        for entry in std::fs::read_dir(dir).expect("tests/logs").flatten() {
            if !entry.path().to_string_lossy().ends_with(".journal.json") {
                continue;
            }
            for line in std::fs::read_to_string(entry.path())
                .expect("capture")
                .lines()
            {
                let Some(fast) = scan_journal_line(line.trim()) else {
                    continue;
                };
                let slow: JournalEntry<'_> = serde_json::from_str(line.trim()).expect("serde");
                assert_eq!(journal_record(&fast), journal_record(&slow), "{line}");
                let cursor = |e: &JournalEntry<'_>| {
                    e.cursor
                        .as_ref()
                        .and_then(|c| c.text().map(Cow::into_owned))
                };
                assert_eq!(cursor(&fast), cursor(&slow));
                scanned += 1;
            }
        }
        assert!(scanned > 100, "{scanned}");
        for declined in [
            r#"{"MESSAGE":"a\"b"}"#,
            r#"{"MESSAGE":["a"]}"#,
            r#"{ "MESSAGE":"a"}"#,
            r#"{"MESSAGE":"a","MESSAGE":"b"}"#,
            r#"{"X":"\u0041","MESSAGE":"a"}"#,
            r#"{"MESSAGE":"a"}}"#,
            r#"{"MESSAGE":"a\q"}"#,
            "{\"MESSAGE\":\"a\tb\"}",
        ] {
            assert!(scan_journal_line(declined).is_none(), "{declined}");
        }
        // An escape in a field the record does not use is skipped, not declined.
        let e = scan_journal_line(r#"{"_CMDLINE":"x \"y\"","MESSAGE":"m"}"#).expect("scanned");
        assert_eq!(journal_record(&e).map(|r| r.message), Some("m".to_string()));
    }

    #[test]
    fn journal_json() {
        let l = r#"{"__MONOTONIC_TIMESTAMP":"3306780467","_SOURCE_MONOTONIC_TIMESTAMP":"2777634464","__REALTIME_TIMESTAMP":"1795329998270636","_TRANSPORT":"kernel","SYSLOG_IDENTIFIER":"kernel","MESSAGE":"EXT4-fs (loop2): x","PRIORITY":"0","_KERNEL_SUBSYSTEM":"block","_KERNEL_DEVICE":"b7:2"}"#;
        let r = parse_journal_json_line(l).expect("record");
        assert_eq!(r.message, "EXT4-fs (loop2): x");
        assert_eq!(r.monotonic_us, Some(2_777_634_464));
        assert_eq!(r.realtime_us, Some(1_795_329_998_270_636));
        assert_eq!(r.level, Some(0));
        assert_eq!(r.subsystem.as_deref(), Some("block"));
        assert_eq!(r.device.as_deref(), Some("b7:2"));
        assert_eq!(r.program, None);
        // MESSAGE as bytes (non-UTF-8 text), a userspace identifier.
        let l = r#"{"MESSAGE":[109,112,97,116,104,97,255],"SYSLOG_IDENTIFIER":"multipathd","_TRANSPORT":"syslog","__MONOTONIC_TIMESTAMP":"5","PRIORITY":"4"}"#;
        let r = parse_journal_json_line(l).expect("record");
        assert_eq!(r.message, "mpatha\u{fffd}");
        assert_eq!(r.program.as_deref(), Some("multipathd"));
        assert_eq!(r.monotonic_us, Some(5));
        assert_eq!(r.level, Some(4));
        // A field seen twice is an array of values: the first one.
        let r =
            parse_journal_json_line(r#"{"MESSAGE":["a","b"],"_COMM":"iscsid"}"#).expect("record");
        assert_eq!(
            (r.message.as_str(), r.program.as_deref()),
            ("a", Some("iscsid"))
        );
        // Not records.
        for bad in [
            r#"{"MESSAGE":"a","MESSAGE":"b"}"#,
            r#"["x"]"#,
            "",
            "{",
            "[]",
            "{}",
            r#"{"MESSAGE":null}"#,
            r#"{"MESSAGE":{}}"#,
            "nope",
        ] {
            assert_eq!(parse_journal_json_line(bad), None, "{bad}");
        }
        // In a log file, a bad JSON line is a bare message.
        let r = parse_log("{not json\n");
        assert_eq!(r[0].message, "{not json");
    }

    #[test]
    fn senders_come_from_what_the_source_guarantees() {
        use Sender::*;
        // kmsg: facility 0 is the kernel; a userspace write to /dev/kmsg is facility 1 or more.
        assert_eq!(kmsg("3,1,2,-;x").map(|r| r.sender), Some(Kernel));
        assert_eq!(kmsg("14,1,2,-;x").map(|r| r.sender), Some(Untrusted));
        assert_eq!(kmsg("27,1,2,-;x").map(|r| r.sender), Some(Untrusted));
        // The same in a saved log, and dmesg -r / -x, which show the facility.
        let r = parse_log("3,1,2,-;a\n14,2,3,-;b\n<3>c\n<14>d\nkern  :err   : e\nuser  :err   : f\n[    1.000000] g\nh\n");
        let got: Vec<_> = r.iter().map(|r| (r.message.as_str(), r.sender)).collect();
        assert_eq!(
            got,
            [
                ("a", Kernel),
                ("b", Untrusted),
                ("c", Kernel),
                ("d", Untrusted),
                ("e", Kernel),
                ("f", Untrusted),
                ("g", Unknown),
                ("h", Unknown),
            ]
        );
        // The journal: journald's trusted fields only.
        let j = |extra: &str| {
            parse_journal_json_line(&format!(
                r#"{{"MESSAGE":"m","SYSLOG_IDENTIFIER":"multipathd"{extra}}}"#
            ))
            .map(|r| r.sender)
        };
        assert_eq!(j(r#","_TRANSPORT":"syslog","_UID":"0""#), Some(Root));
        assert_eq!(j(r#","_TRANSPORT":"journal","_UID":"0""#), Some(Root));
        assert_eq!(
            j(r#","_TRANSPORT":"syslog","_UID":"65534""#),
            Some(Untrusted)
        );
        assert_eq!(
            j(r#","_TRANSPORT":"stdout","_UID":"1000""#),
            Some(Untrusted)
        );
        assert_eq!(j(r#","_TRANSPORT":"syslog""#), Some(Untrusted));
        assert_eq!(
            j(r#","_UID":"0""#),
            Some(Untrusted),
            "no _TRANSPORT: not journald's"
        );
        assert_eq!(j(""), Some(Untrusted));
        assert_eq!(
            j(r#","_TRANSPORT":"kernel","SYSLOG_FACILITY":"0""#),
            Some(Kernel)
        );
        assert_eq!(j(r#","_TRANSPORT":"kernel""#), Some(Kernel));
        assert_eq!(
            j(r#","_TRANSPORT":"kernel","SYSLOG_FACILITY":"1""#),
            Some(Untrusted),
            "a userspace write to /dev/kmsg, as journald stores it"
        );
    }

    #[test]
    fn the_line_parser_is_parse_log_line_by_line() {
        // journalctl short-monotonic is decided on the first lines, which are held until then.
        let mut t = String::new();
        for i in 0..2500 {
            t.push_str(&format!(
                "[ {i}.000000] vm kernel: EXT4-fs (sda{i}): Remounting filesystem read-only\n"
            ));
            if i % 7 == 0 {
                t.push_str(" SUBSYSTEM=block\n        indented\n-- Boot x --\n\n");
            }
        }
        let mut p = LogParser::new();
        let mut out = Vec::new();
        for l in t.split('\n') {
            p.line(l, &mut out);
        }
        p.finish(&mut out);
        assert_eq!(out, parse_log(&t));
        assert!(out.len() > 2500);
        assert_eq!(
            out[0].program, None,
            "decided as journalctl short-monotonic"
        );
        assert_eq!(
            out[0].message,
            "EXT4-fs (sda0): Remounting filesystem read-only"
        );
        // A message does not grow without bound by continuation lines.
        let mut p = LogParser::new();
        let mut out = Vec::new();
        p.line("[    1.000000] start", &mut out);
        let long = format!("        {}", "x".repeat(1000));
        for _ in 0..1000 {
            p.line(&long, &mut out);
        }
        p.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].message.len() <= MAX_MESSAGE + 1001);
    }

    /// The date, time and severity form of LINBIT/drbd#27's paste (its lines, as posted).
    #[test]
    fn log_dated_lines_with_a_level_word() {
        let t = "2022-02-18 14:59:44 err kernel: drbd u12215/0 drbd854: IO ERROR: neither local nor remote data, sector 4721080+8\n\
                 2022-02-18 14:59:45 info kernel: drbd u12215/0 drbd854 nodeA: pdsk( Inconsistent -> Outdated ) resync-susp( peer -> no )\n\
                 2022-02-18 15:01:37 notice [  578.551801] drbd u12215/0 drbd854 nodeB: helper command: /sbin/drbdadm pri-on-incon-degr\n";
        let r = parse_log(t);
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[0].message,
            "drbd u12215/0 drbd854: IO ERROR: neither local nor remote data, sector 4721080+8"
        );
        assert_eq!((r[0].level, r[0].program.as_deref()), (Some(3), None));
        // The log's own clock, as printed (2022-02-18T14:59:44, no zone converted).
        assert_eq!(r[0].realtime_us, Some(1_645_196_384_000_000));
        assert_eq!(r[0].stamp.as_deref(), Some("2022-02-18 14:59:44"));
        assert_eq!(r[1].level, Some(6));
        assert!(r[1]
            .message
            .starts_with("drbd u12215/0 drbd854 nodeA: pdsk("));
        // A kernel message with its monotonic stamp and no identifier.
        assert_eq!(r[2].level, Some(5));
        assert_eq!(r[2].monotonic_us, Some(578_551_801));
        assert_eq!(
            r[2].message,
            "drbd u12215/0 drbd854 nodeB: helper command: /sbin/drbdadm pri-on-incon-degr"
        );
        // Any level word (and facility.level), a host, a program, a fraction.
        for (line, level) in [
            ("2022-02-18 14:59:44 warning kernel: m", Some(4)),
            ("2022-02-18 14:59:44 crit kernel: m", Some(2)),
            ("2022-02-18 14:59:44 emerg kernel: m", Some(0)),
            ("2022-02-18 14:59:44 kern.err kernel: m", Some(3)),
            ("2022-02-18 14:59:44 nodeC kernel: m", None),
            ("2022-02-18 14:59:44.250000 debug kernel: m", Some(7)),
        ] {
            let r = parse_log(line);
            assert_eq!((r[0].message.as_str(), r[0].level), ("m", level), "{line}");
            assert_eq!(r[0].program, None, "{line}");
        }
        let r = parse_log("2022-02-18 14:59:44,5 err nodeC zed[123]: eid=1 class=io pool='t'");
        assert_eq!(r[0].program.as_deref(), Some("zed"));
        assert_eq!(r[0].message, "eid=1 class=io pool='t'");
        assert_eq!(r[0].realtime_us, Some(1_645_196_384_500_000));
        // Not a date: left as it was.
        for line in [
            "2022-13-18 14:59:44 err kernel: m",
            "2022-02-18 25:59:44 err kernel: m",
        ] {
            assert_eq!(parse_log(line)[0].message, line);
        }
    }

    /// `grep` of syslog files: the file (and with `-n` the line number) in front of each line.
    #[test]
    fn log_grep_prefixes() {
        let want = "eid=164 class=io pool_guid=0x1E0D9667DBEC61A2 vdev_path=/dev/disk/by-vdev/A0";
        for prefix in [
            "/var/log/messages:",
            "messages-20190628:",
            "syslog.1:",
            "/var/log/syslog.2.gz:",
            "/var/log/messages:1234:",
            "1234:",
        ] {
            let line = format!("{prefix}Jun 28 00:02:19 myhost zed: {want}");
            let r = parse_log(&line);
            assert_eq!(r[0].message, want, "{line}");
            assert_eq!(r[0].program.as_deref(), Some("zed"), "{line}");
            assert_eq!(r[0].stamp.as_deref(), Some("Jun 28 00:02:19"), "{line}");
        }
        // Context lines (`-A`, `-B`, `-C`), with `-n` or without, and grep's group separator.
        let t = "/var/log/messages-Jun 28 00:02:18 myhost kernel: a\n\
                 messages-20190628-1233-Jun 28 00:02:18 myhost kernel: b\n\
                 messages-20190628:1234:Jun 28 00:02:19 myhost kernel: c\n\
                 1235-Jun 28 00:02:19 myhost kernel: d\n\
                 --\n\
                 syslog.1-2022-02-18 14:59:44 err kernel: e\n";
        let r = parse_log(t);
        assert_eq!(
            r.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(r[4].level, Some(3));
        // Every stamped format, behind a file name.
        let r = parse_log("kern.log:2026-11-22T05:52:03+0000 vm kernel: x\ndmesg.txt:[   12.500000] y\nold:2022-02-18 14:59:44 err kernel: z\n");
        assert_eq!(
            r.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
            ["x", "y", "z"]
        );
        assert_eq!(r[1].monotonic_us, Some(12_500_000));
        // A bare kernel message with a colon is not a grep line.
        for line in [
            "md/raid1:md0: Disk failure on sdb1, disabling device.",
            "sd 2:0:0:0: rejecting I/O to offline device",
            "nfs: server srv not responding, still trying",
            "x:Jun 28",
            "x:",
            "x:12:",
            "EXT4-fs (sda1): Remounting filesystem read-only",
            "x-12-",
            "a-b-c:d",
        ] {
            let r = parse_log(line);
            assert_eq!(
                (r[0].message.as_str(), r[0].program.as_deref()),
                (line, None),
                "{line}"
            );
        }
    }

    #[test]
    fn log_never_panics_on_odd_lines() {
        for t in [
            "[",
            "[]",
            "[ ]",
            "[1.]",
            "[.1] x",
            "<",
            "<>",
            "<3",
            "<3>",
            "<3>[",
            "kern:",
            "kern  :bogus : x",
            "Nov",
            "Nov 22",
            "Nov 22 05:52:03",
            "Nov 22 05:5",
            "2026-11-22T",
            "2026-11-22T05:52:03",
            "2026-11-22T05:52:03+0é:0 x",
            "2026-11-22T05:52:03.+00:00 x",
            "1,2,3",
            " SUBSYSTEM=x",
            "\u{feff}x",
            "é,1,2,-;x",
            "[é] x",
            "[\u{20ac}.5] x",
            "{\"MESSAGE\":1}",
            "\r\n\r\n",
            "2022-02-18",
            "2022-02-18 14:59:44",
            "2022-02-18 14:59:44 ",
            "2022-02-18 14:59:44 err",
            "2022-02-18 14:59:44.é err kernel: x",
            "2022-02-30 14:59:44 err kernel: x",
            ":",
            "a:1",
            "a:1:",
            "/var/log/messages:2022-02-18 14:5",
        ] {
            let _ = parse_log(t);
        }
    }
}
