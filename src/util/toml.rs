//! The TOML diagnostics toolkit every configuration file is read with (tunerd.toml, its
//! `[alert]` tables, the profiles): spans turned into `file:line:column`, typed readers whose
//! errors name the key and the allowed values, and `Field` tables that describe a TOML
//! table's keys once. Hand-written over `toml`'s spanned `DeTable` rather than serde derive:
//! serde's errors cannot say which key of which file, where, and what is allowed.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Where in which file a value was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A configuration or profile that cannot be used, said in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub at: Location,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.line == 0 {
            write!(f, "{}: {}", self.at.file, self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn file(file: &str, message: String) -> Self {
        ConfigError {
            at: Location {
                file: file.to_string(),
                ..Location::default()
            },
            message,
        }
    }
}

/// A TOML text and its name, turning spans into `file:line:col`.
pub(crate) struct Doc<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
}
impl Doc<'_> {
    pub(crate) fn at(&self, span: Range<usize>) -> Location {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Location {
            file: self.file.to_string(),
            line,
            col,
        }
    }

    pub(crate) fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            at: self.at(span),
            message: message.into(),
        }
    }

    pub(crate) fn parse(&self) -> Result<Spanned<DeTable<'_>>, ConfigError> {
        DeTable::parse(self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_string();
            self.err(span, format!("invalid TOML: {message}"))
        })
    }
}

pub(crate) type KeyValue<'t, 'i> = (
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
);

/// A table's entries in the order they are written in the file, so errors about the second
/// of two keys point at the second.
pub(crate) fn entries<'t, 'i>(table: &'t DeTable<'i>) -> Vec<KeyValue<'t, 'i>> {
    let mut out: Vec<KeyValue<'t, 'i>> = table.iter().collect();
    out.sort_by_key(|(k, _)| k.span().start);
    out
}

pub(crate) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub(crate) fn want_str(
    doc: &Doc<'_>,
    key: &str,
    v: &Spanned<DeValue<'_>>,
) -> Result<String, ConfigError> {
    match v.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        other => Err(doc.err(
            v.span(),
            format!("`{key}` must be a string, not {}", type_name(other)),
        )),
    }
}

pub(crate) fn want_table<'a, 'i>(
    doc: &Doc<'_>,
    key: &str,
    v: &'a Spanned<DeValue<'i>>,
) -> Result<&'a DeTable<'i>, ConfigError> {
    match v.get_ref() {
        DeValue::Table(t) => Ok(t),
        other => Err(doc.err(
            v.span(),
            format!("`{key}` must be a table, not {}", type_name(other)),
        )),
    }
}

pub(crate) fn unknown_key(
    doc: &Doc<'_>,
    span: Range<usize>,
    key: &str,
    context: &str,
    allowed: &[&str],
) -> ConfigError {
    doc.err(
        span,
        format!(
            "unknown key `{key}` in {context}; allowed: {}",
            allowed.join(", ")
        ),
    )
}

/// One key of a TOML table and how its value is read into `T`. A table is described once, as a
/// list of these: the parser and the "allowed:" list of an unknown-key error are then the same
/// list and cannot disagree.
pub(crate) struct Field<T> {
    pub(crate) key: &'static str,
    pub(crate) read: fn(&Doc<'_>, &str, &Spanned<DeValue<'_>>, &mut T) -> Result<(), ConfigError>,
}

/// Reads `table` (named `context` in errors) into `into`, key by key through `fields`.
pub(crate) fn read_fields<T>(
    doc: &Doc<'_>,
    table: &DeTable<'_>,
    context: &str,
    fields: &[Field<T>],
    into: &mut T,
) -> Result<(), ConfigError> {
    for (k, v) in entries(table) {
        let key = k.get_ref().as_ref();
        let Some(field) = fields.iter().find(|f| f.key == key) else {
            let allowed: Vec<&str> = fields.iter().map(|f| f.key).collect();
            return Err(unknown_key(doc, k.span(), key, context, &allowed));
        };
        (field.read)(doc, key, v, into)?;
    }
    Ok(())
}

pub(crate) fn want_bool(
    doc: &Doc<'_>,
    key: &str,
    v: &Spanned<DeValue<'_>>,
) -> Result<bool, ConfigError> {
    match v.get_ref() {
        DeValue::Boolean(b) => Ok(*b),
        _ => Err(doc.err(v.span(), format!("`{key}` must be true or false"))),
    }
}

pub(crate) fn parse_int(
    doc: &Doc<'_>,
    key: &str,
    v: &Spanned<DeValue<'_>>,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let range = format!("an integer from {min} to {max}");
    let DeValue::Integer(int) = v.get_ref() else {
        return Err(doc.err(
            v.span(),
            format!("`{key}` must be {range}, not {}", type_name(v.get_ref())),
        ));
    };
    let digits = int.as_str().replace('_', "");
    let digits = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0o"))
        .or_else(|| digits.strip_prefix("0b"))
        .unwrap_or(&digits);
    let parsed = i128::from_str_radix(digits.trim_start_matches('+'), int.radix()).ok();
    match parsed {
        Some(n) if n >= min as i128 && n <= max as i128 => Ok(n as u64),
        _ => {
            let bound = match parsed {
                Some(n) if n < min as i128 => format!("at least {min}"),
                Some(_) => format!("at most {max}"),
                None => range.clone(),
            };
            Err(doc.err(
                v.span(),
                format!("`{key}` must be {bound} (got {})", int.as_str()),
            ))
        }
    }
}

// --- Who may have written a configuration file ----------------------------------------------
//
// tunerd runs as root and acts on what its configuration says, down to running the exec hook.
// A file or directory that anyone but root could have written is therefore refused, as sshd's
// StrictModes and cron refuse theirs: a `chmod 666` mistake must not become root code
// execution. The owner may also be the uid tunerd runs as (tests and unprivileged `tunerctl`
// runs on a root of their own). The check is made on the descriptor that is then read, so the
// file checked is the file read.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `Ok` when `meta` is owned by root or by this process's uid and is not writable by group or
/// others; else the one-line reason, naming the owner and the mode.
pub(crate) fn check_owner(meta: &std::fs::Metadata) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    let (uid, mode) = (meta.uid(), meta.mode() & 0o7777);
    let owner_ok = uid == 0 || uid == me;
    if owner_ok && mode & 0o022 == 0 {
        return Ok(());
    }
    let who = if me == 0 {
        "root".to_string()
    } else {
        format!("root or uid {me}")
    };
    Err(format!(
        "refused: owned by uid {uid} with mode {mode:04o}; it must be owned by {who} and not \
         writable by group or others (chown root, chmod go-w)"
    ))
}

/// Checks a configuration directory (`etc/tunerd`, `profiles.d`); a missing one is fine.
pub(crate) fn check_config_dir(path: &Path, display: &str) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(meta) => check_owner(&meta).map_err(|e| ConfigError::file(display, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ConfigError::file(display, format!("cannot stat: {e}"))),
    }
}

/// Reads a configuration file that must pass [`check_owner`] and be UTF-8 (a stray byte is an
/// error, not a U+FFFD that ends up in a value). `None` when it does not exist.
pub(crate) fn read_config_file(path: &Path, display: &str) -> Result<Option<String>, ConfigError> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ConfigError::file(display, format!("cannot read: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| ConfigError::file(display, format!("cannot stat: {e}")))?;
    check_owner(&meta).map_err(|e| ConfigError::file(display, e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| ConfigError::file(display, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map(Some).map_err(|e| {
        ConfigError::file(
            display,
            format!(
                "not valid UTF-8 (byte {} is not part of a UTF-8 character)",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Checks the exec hook's program and every directory above it (anyone who may write one of
/// them may replace the program). A program that does not exist yet is not an error here: it
/// may be installed later, and until then each notification is refused by the hook sink.
pub(crate) fn check_program_owner(program: &str) -> Result<(), String> {
    let path = Path::new(program);
    match std::fs::metadata(path) {
        Ok(meta) => check_owner(&meta).map_err(|e| format!("{program}: {e}"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{program}: cannot stat: {e}")),
    }
    for dir in path.ancestors().skip(1) {
        match std::fs::metadata(dir) {
            Ok(meta) => check_owner(&meta).map_err(|e| format!("{}: {e}", dir.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: cannot stat: {e}", dir.display())),
        }
    }
    Ok(())
}
