//! User-defined rules (`[[watch.rule]]` in tunerd.toml): the kernel or daemon wording nobody
//! foresaw, as an admin writes it after seeing it once. A rule is a pattern, the kind name it
//! gives, a severity, which capture names the device and, optionally, the pattern of the line
//! that ends the incident. The daemon and `tunerctl scan` both try them on every record the
//! catalog does not know (never instead of it), so a rule is tested on a saved log before it
//! is deployed.
//!
//! Patterns are glob-like, matched on the whole message (leading blanks dropped), case
//! sensitive:
//! - `*` matches any text, also none;
//! - `{name}` matches one or more characters up to the next blank and captures them;
//! - `\*`, `\{`, `\}`, `\\` match those characters; anything else matches itself.
//!
//! `aacraid: Host adapter abort request (*` or `*: I/O error on {device} at *`. No regex: the
//! crate would be the largest dependency of the binary for what globs with captures cover,
//! and a glob cannot take exponential time (the matcher below is bounded by a step budget).

use std::sync::Arc;

use serde::Serialize;

use crate::detect::types::{Kind, LogRecord, Observation, RuleKind, Sender, Severity};

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Any,
    /// `{name}`: a run of non-blank characters, captured.
    Capture(String),
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pieces: Vec<Piece>,
    /// The longest literal piece: a message without it cannot match (a quick test first).
    needle: String,
}

/// Matching steps allowed per message: a pattern of many `*` on a long line gives up (no
/// match) instead of taking long.
const STEP_BUDGET: u32 = 20_000;

impl Pattern {
    /// Compiles `text`; an error gives the character offset in `text` it is about.
    pub(crate) fn compile(text: &str) -> Result<Pattern, (usize, String)> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '{' | '}' | '\\'))) => lit.push(e),
                    _ => {
                        return Err((
                            at,
                            "`\\` escapes only `*`, `{`, `}` and `\\` in a pattern".into(),
                        ))
                    }
                },
                '*' => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut lit)));
                    }
                    if pieces.last() != Some(&Piece::Any) {
                        pieces.push(Piece::Any);
                    }
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, n) in chars.by_ref() {
                        if n == '}' {
                            closed = true;
                            break;
                        }
                        name.push(n);
                    }
                    if !closed {
                        return Err((
                            at,
                            "`{` without its `}` (write `\\{` for the character)".into(),
                        ));
                    }
                    if !is_name(&name) {
                        return Err((
                            at,
                            format!("capture name {name:?} must be lowercase letters, digits and `_`, starting with a letter"),
                        ));
                    }
                    if pieces.iter().any(|p| p == &Piece::Capture(name.clone())) {
                        return Err((at, format!("capture `{{{name}}}` appears twice")));
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Capture(name));
                }
                '}' => {
                    return Err((
                        at,
                        "`}` without its `{` (write `\\}` for the character)".into(),
                    ))
                }
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Text(lit));
        }
        let needle = pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .max_by_key(|t| t.len())
            .unwrap_or_default()
            .to_string();
        if needle.trim().len() < 3 {
            return Err((
                0,
                "a pattern needs some literal text (3 characters or more) to match on".into(),
            ));
        }
        Ok(Pattern { pieces, needle })
    }

    /// The capture names, in order.
    pub(crate) fn captures(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Capture(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// The captures of `message` if it matches, in pattern order.
    pub(crate) fn matches<'m>(&self, message: &'m str) -> Option<Vec<&'m str>> {
        if !message.contains(&self.needle) {
            return None;
        }
        let mut caps = Vec::new();
        let mut budget = STEP_BUDGET;
        step(&self.pieces, message, &mut caps, &mut budget).then_some(caps)
    }
}

fn is_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn step<'m>(pieces: &[Piece], m: &'m str, caps: &mut Vec<&'m str>, budget: &mut u32) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    let Some((first, rest)) = pieces.split_first() else {
        return m.is_empty();
    };
    match first {
        Piece::Text(t) => m
            .strip_prefix(t.as_str())
            .is_some_and(|after| step(rest, after, caps, budget)),
        Piece::Any => {
            if rest.is_empty() {
                return true;
            }
            // Try each place the next piece could start, shortest first.
            let mut at = 0;
            loop {
                if step(rest, &m[at..], caps, budget) {
                    return true;
                }
                match m[at..].chars().next() {
                    Some(c) => at += c.len_utf8(),
                    None => return false,
                }
                if *budget == 0 {
                    return false;
                }
            }
        }
        Piece::Capture(_) => {
            let run = m.find(char::is_whitespace).unwrap_or(m.len());
            // Longest first (a device name is usually all of the run), then shorter, so that
            // `{device}:` can take `sda:` apart.
            let mut end = run;
            while end > 0 {
                if m.is_char_boundary(end) {
                    caps.push(&m[..end]);
                    if step(rest, &m[end..], caps, budget) {
                        return true;
                    }
                    caps.pop();
                }
                end -= 1;
                if *budget == 0 {
                    return false;
                }
            }
            false
        }
    }
}

/// One `[[watch.rule]]` as written (the configuration's view, shown by `check-config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RuleSpec {
    pub kind: String,
    pub pattern: String,
    pub severity: Severity,
    /// The capture that names the device; None: the incident names none.
    pub device: Option<String>,
    pub end: Option<String>,
    /// The journal identifier (`SYSLOG_IDENTIFIER`) whose lines it matches; None: the kernel's.
    pub program: Option<String>,
}

/// A compiled rule.
#[derive(Debug, Clone)]
struct Rule {
    kind: RuleKind,
    severity: Severity,
    pattern: Pattern,
    end: Option<Pattern>,
    /// Index of the device capture in `pattern`, and in `end`.
    device: Option<(usize, Option<usize>)>,
    program: Option<String>,
}

/// The rules in force; cheap to clone (the daemon's engine and each `scan` share one list).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules(Arc<Vec<Rule>>);

impl Rules {
    /// Compiles checked specs (the configuration parser has refused bad ones with their
    /// place); a spec that still fails is an error naming its kind.
    pub(crate) fn compile(specs: &[RuleSpec]) -> Result<Rules, String> {
        let mut rules = Vec::new();
        for s in specs {
            let pattern = Pattern::compile(&s.pattern)
                .map_err(|(_, e)| format!("rule `{}`: pattern: {e}", s.kind))?;
            let end = match &s.end {
                Some(e) => Some(
                    Pattern::compile(e).map_err(|(_, e)| format!("rule `{}`: end: {e}", s.kind))?,
                ),
                None => None,
            };
            let device = match &s.device {
                Some(name) => {
                    let i = pattern.captures().position(|c| c == name).ok_or_else(|| {
                        format!("rule `{}`: no capture `{{{name}}}` in its pattern", s.kind)
                    })?;
                    let j = end
                        .as_ref()
                        .and_then(|e| e.captures().position(|c| c == name));
                    Some((i, j))
                }
                None => None,
            };
            rules.push(Rule {
                kind: RuleKind::new(&s.kind),
                severity: s.severity,
                pattern,
                end,
                device,
                program: s.program.clone(),
            });
        }
        Ok(Rules(Arc::new(rules)))
    }

    /// Whether incidents of `kind` last until an end line (the rule has `end`).
    pub(crate) fn lasting(&self, kind: Kind) -> bool {
        match kind {
            Kind::Rule(k) => self.0.iter().any(|r| r.kind == k && r.end.is_some()),
            _ => false,
        }
    }

    /// The first rule that matches `rec`, believed from the same senders as the catalog: the
    /// kernel's records for kernel rules, a root process's (or a saved log's) for rules of
    /// its program.
    pub(crate) fn classify(&self, rec: &LogRecord) -> Option<Observation> {
        if self.0.is_empty() {
            return None;
        }
        let program = match (rec.sender, rec.program.as_deref()) {
            (Sender::Untrusted, _) | (Sender::Root, None) => return None,
            (Sender::Kernel, _) | (Sender::Unknown, None) => None,
            (Sender::Root | Sender::Unknown, Some(p)) => Some(p),
        };
        let m = rec.message.trim_start();
        for r in self.0.iter().filter(|r| r.program.as_deref() == program) {
            let (caps, resolves, idx) = if let Some(caps) = r.pattern.matches(m) {
                (caps, false, r.device.map(|d| d.0))
            } else if let Some(caps) = r.end.as_ref().and_then(|e| e.matches(m)) {
                (caps, true, r.device.and_then(|d| d.1))
            } else {
                continue;
            };
            let device = idx.and_then(|i| caps.get(i)).map(|d| {
                let d = d.trim_end_matches([',', ':', '.', ';']);
                d.strip_prefix("/dev/").unwrap_or(d).to_string()
            });
            return Some(Observation {
                kind: Kind::Rule(r.kind),
                severity: if resolves { Severity::Info } else { r.severity },
                device,
                resolves,
                message: m.to_string(),
                at_us: rec.realtime_us,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> Pattern {
        match Pattern::compile(p) {
            Ok(p) => p,
            Err(e) => panic!("{p}: {e:?}"),
        }
    }

    #[test]
    fn globs_and_captures() {
        let p = pat("*aacraid: Host adapter abort request (*");
        assert!(p
            .matches("aacraid: Host adapter abort request (0,0,0,0)")
            .is_some());
        assert!(p.matches("aacraid: Host adapter reset request").is_none());
        let p = pat("sd {hctl}: [{device}] tag#{tag} *");
        let caps = p
            .matches("sd 2:0:0:0: [sdb] tag#3 FAILED Result: x")
            .unwrap_or_default();
        // `{hctl}:` takes the address without the colon; `[{device}]` the name.
        assert_eq!(caps, vec!["2:0:0:0", "sdb", "3"]);
        // Whole-message match: without the `*`, trailing text fails it.
        assert!(pat("nfs: server {device} gone")
            .matches("nfs: server a gone now")
            .is_none());
        assert_eq!(
            pat("nfs: server {device} gone").matches("nfs: server a gone"),
            Some(vec!["a"])
        );
        assert_eq!(pat(r"50% \* {x}").matches("50% * y"), Some(vec!["y"]));
        assert_eq!(pat(r"a\*b {x} c").matches("a*b q c"), Some(vec!["q"]));
    }

    #[test]
    fn bad_patterns_say_where() {
        let e = |p: &str| Pattern::compile(p).err().map(|e| e.0);
        assert_eq!(e("abc {dev"), Some(4));
        assert_eq!(e("abc } x"), Some(4));
        assert_eq!(e("abc {Dev}"), Some(4));
        assert_eq!(e("abc \\q"), Some(4));
        assert_eq!(e("{a} {a} xyz"), Some(4));
        assert_eq!(e("* {x} *"), Some(0), "no literal text");
        assert_eq!(e("ok text {x}"), None);
    }

    #[test]
    fn a_pathological_pattern_gives_up_instead_of_spinning() {
        let p = pat("*aaa*aaa*aaa*aaa*aaa*aaa*aaa*aaa*aaa*aaab");
        let line = "a".repeat(1000);
        assert!(p.matches(&line).is_none());
    }

    #[test]
    fn rules_classify_open_and_end_and_believe_only_trusted_senders() {
        let rules = Rules::compile(&[RuleSpec {
            kind: "raid_ctrl_reset".into(),
            pattern: "aacraid: Host adapter reset request. SCSI hang ?".into(),
            severity: Severity::Critical,
            device: None,
            end: Some("aacraid: Host adapter reset done".into()),
            program: None,
        }])
        .unwrap_or_default();
        let rec = |m: &str, sender| LogRecord {
            message: m.into(),
            sender,
            ..Default::default()
        };
        let o = rules.classify(&rec(
            "aacraid: Host adapter reset request. SCSI hang ?",
            Sender::Kernel,
        ));
        let o = o.map(|o| (o.kind.name(), o.severity, o.resolves));
        assert_eq!(
            o,
            Some(("raid_ctrl_reset".into(), Severity::Critical, false))
        );
        let end = rules.classify(&rec("aacraid: Host adapter reset done", Sender::Kernel));
        assert_eq!(end.map(|o| o.resolves), Some(true));
        assert!(rules
            .classify(&rec(
                "aacraid: Host adapter reset request. SCSI hang ?",
                Sender::Untrusted
            ))
            .is_none());
        assert!(rules.lasting(Kind::Rule(RuleKind::new("raid_ctrl_reset"))));
    }
}
