//! The `[alert]` table of `/etc/tunerd/tunerd.toml`, validated like everything else: one line
//! with `file:line:column`, the key and the allowed values. The schema is in `docs/alerts.md`:
//!
//! ```toml
//! [alert]
//! host = "db-1.example"              # default: the kernel's host name
//! [[alert.webhook]]
//! name = "ops"                       # default webhook-1, webhook-2, ...
//! url = "https://hooks.example/tunerd"
//! format = "tunerd"                  # or "alertmanager" (url = the Alertmanager base URL)
//! secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"   # Standard Webhooks signing
//! headers = { Authorization = "Bearer abc" }
//! timeout_ms = 10000
//! min_severity = "warning"
//! [alert.exec]
//! program = "/usr/local/sbin/storage-alert"
//! args = ["--page"]
//! [alert.textfile]
//! path = "/run/prometheus-textfile/tunerd.prom"
//! [alert.spool]
//! max_entries = 1000
//! [alert.retry]
//! initial_ms = 1000
//! max_ms = 300000
//! [alert.alertmanager]
//! resend_interval_secs = 60
//! ```

use std::fmt;

use serde::Serialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::detect::types::Severity;
use crate::util::toml::{
    entries, parse_int, read_fields, type_name, want_str, want_table, ConfigError, Doc, Field,
};

/// A value that must not be shown: a signing secret, a header that may carry a token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// What a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// tunerd's own versioned JSON body, one notification per request (docs/alerts.md).
    #[default]
    Tunerd,
    /// Alertmanager's API v2: `POST {url}/api/v2/alerts`, re-sent while firing.
    Alertmanager,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookConfig {
    /// The sink's name: the `sink` label of the metrics and its spool directory.
    pub name: String,
    pub url: String,
    pub format: Format,
    /// Enables Standard Webhooks signing. `whsec_BASE64` is decoded (the Standard Webhooks
    /// convention); any other text is used as the key as it is.
    pub secret: Option<Secret>,
    pub headers: Vec<(String, Secret)>,
    pub timeout_ms: u64,
    pub min_severity: Severity,
}

impl WebhookConfig {
    /// A webhook with the defaults: tunerd format, no secret, 10 s timeout, every severity.
    pub fn new(name: &str, url: &str) -> Self {
        WebhookConfig {
            name: name.to_string(),
            url: url.to_string(),
            format: Format::Tunerd,
            secret: None,
            headers: Vec::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            min_severity: Severity::Info,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecConfig {
    /// An absolute path: no shell, no PATH search.
    pub program: String,
    pub args: Vec<String>,
    pub timeout_ms: u64,
    pub min_severity: Severity,
}

impl ExecConfig {
    pub fn new(program: &str, args: &[&str]) -> Self {
        ExecConfig {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            min_severity: Severity::Info,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextfileConfig {
    /// Absolute, ending in `.prom` (node_exporter reads nothing else).
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolConfig {
    /// Undelivered notifications kept per sink.
    pub max_entries: usize,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig { max_entries: 1000 }
    }
}

/// Exponential backoff with jitter between attempts at one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryConfig {
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_ms: 1000,
            max_ms: 300_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertmanagerConfig {
    /// Firing alerts are re-sent this often; each carries `endsAt` = now + 4 intervals, so
    /// Alertmanager resolves them by itself only when tunerd stops sending.
    pub resend_interval_secs: u64,
    /// `generatorURL` of every alert (omitted when unset).
    pub generator_url: Option<String>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            resend_interval_secs: 60,
            generator_url: None,
        }
    }
}

/// Everything `[alert]` says. The default sends nothing anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AlertConfig {
    /// The `host` of the body and the `instance` label; default: the kernel's host name.
    pub host: Option<String>,
    pub webhooks: Vec<WebhookConfig>,
    pub exec: Option<ExecConfig>,
    pub textfile: Option<TextfileConfig>,
    pub spool: SpoolConfig,
    pub retry: RetryConfig,
    pub alertmanager: AlertmanagerConfig,
}

pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The exec hook's sink name (webhooks may not take it).
pub const EXEC_SINK: &str = "exec";

const SEVERITIES: &[&str] = &["info", "warning", "critical"];
/// Headers tunerd sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// A URL a sink posts to, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub https: bool,
    /// Without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
}

/// A URL as errors may show it: whatever may carry a secret (the user information before
/// `@`, the query after `?`, the fragment after `#`) becomes `…`, so that
/// `https://hooks.example/x?token=S3CR3T` is shown as `https://hooks.example/x?…`.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    // The authority ends at the first `/`, `?` or `#`; user information is before its last `@`.
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(auth_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("…@{}", &authority[at + 1..]),
        None => authority.to_string(),
    };
    let path = match path.find(['?', '#']) {
        Some(i) => format!("{}{}…", &path[..i], &path[i..i + 1]),
        None => path.to_string(),
    };
    format!("{scheme}{authority}{path}")
}

/// Checks a webhook URL: http or https, a host, no credentials (they belong in `headers`,
/// not in every log line that names the URL). Errors show the URL through [`redact_url`].
pub(crate) fn check_url(url: &str) -> Result<Endpoint, String> {
    let shown = redact_url(url);
    let uri = ureq::http::Uri::try_from(url)
        .map_err(|e| format!("`url` is not a valid URL ({e}): {shown:?}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => {
            return Err(format!(
                "`url` must start with http:// or https:// (got {other}://)"
            ))
        }
        None => {
            return Err(format!(
                "`url` must start with http:// or https:// (got {shown:?})"
            ))
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(format!("`url` has no host: {shown:?}"));
    };
    if authority.as_str().contains('@') {
        return Err(
            "`url` must not carry credentials: put them in `headers` (e.g. Authorization)"
                .to_string(),
        );
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err(format!("`url` has no host: {shown:?}"));
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(Endpoint { https, host, port })
}

/// A sink name: what a directory name and a metric label can carry.
pub(crate) fn valid_sink_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// RFC 9110 `token`: what a header name may hold.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Visible ASCII, spaces and tabs: no line breaks to smuggle a header in.
fn valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The HMAC key a secret stands for: `whsec_` + base64 is decoded, anything else is the key.
pub(crate) fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    match secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("`secret` starts with whsec_ but the rest is not base64 ({e})")),
        None => Ok(secret.as_bytes().to_vec()),
    }
}

// The rules of each value, written once: the parser reports them at the value's place in the
// file, `validate` for a configuration built in code. The parser's integer ranges are for
// people writing files; code (tests, benchmarks) may go lower, and `validate` refuses only
// what would make delivery wrong (zero, inverted).

fn check_sink_name(name: &str) -> Result<(), String> {
    if valid_sink_name(name) && name != EXEC_SINK {
        Ok(())
    } else {
        Err(format!(
            "`name` may hold only a-z, 0-9, - and _ (1 to 64 of them) and may not be \"exec\" (got {name:?})"
        ))
    }
}

fn check_header_name(name: &str) -> Result<(), String> {
    if !valid_header_name(name) {
        return Err(format!(
            "`{name}` is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "header `{name}` is set by tunerd; headers may not set: {}",
            RESERVED_HEADERS.join(", ")
        ));
    }
    Ok(())
}

fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    if valid_header_value(value) {
        Ok(())
    } else {
        Err(format!(
            "header `{name}` may hold only printable ASCII, spaces and tabs"
        ))
    }
}

fn check_program(program: &str) -> Result<(), String> {
    if program.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "`program` must be an absolute path (no shell, no PATH search; got {program:?})"
        ))
    }
}

fn check_textfile_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') && path.ends_with(".prom") {
        Ok(())
    } else {
        Err(format!("`path` must be absolute and end in .prom, the files node_exporter's textfile collector reads (got {path:?})"))
    }
}

fn check_retry(retry: &RetryConfig) -> Result<(), String> {
    if retry.initial_ms <= retry.max_ms {
        Ok(())
    } else {
        Err(format!(
            "`initial_ms` ({}) must not exceed `max_ms` ({})",
            retry.initial_ms, retry.max_ms
        ))
    }
}

/// Checks what parsing checks, for a configuration built in code.
pub(crate) fn validate(cfg: &AlertConfig) -> Result<(), String> {
    let mut names: Vec<&str> = Vec::new();
    for w in &cfg.webhooks {
        let at = |e: String| format!("webhook `{}`: {e}", w.name);
        check_sink_name(&w.name).map_err(at)?;
        if names.contains(&w.name.as_str()) {
            return Err(format!("two webhooks are named `{}`", w.name));
        }
        names.push(&w.name);
        check_url(&w.url).map_err(at)?;
        if let Some(secret) = &w.secret {
            secret_key(secret.expose()).map_err(at)?;
        }
        for (k, v) in &w.headers {
            check_header_name(k).map_err(at)?;
            check_header_value(k, v.expose()).map_err(at)?;
        }
        if w.timeout_ms == 0 {
            return Err(at("timeout_ms must be above 0".to_string()));
        }
    }
    if let Some(exec) = &cfg.exec {
        check_program(&exec.program).map_err(|e| format!("[alert.exec] {e}"))?;
    }
    if let Some(t) = &cfg.textfile {
        check_textfile_path(&t.path).map_err(|e| format!("[alert.textfile] {e}"))?;
    }
    if cfg.spool.max_entries == 0 {
        return Err("spool max_entries must be at least 1".to_string());
    }
    if cfg.retry.initial_ms == 0 {
        return Err("[alert.retry] initial_ms must be above 0".to_string());
    }
    check_retry(&cfg.retry).map_err(|e| format!("[alert.retry] {e}"))?;
    if cfg.alertmanager.resend_interval_secs == 0 {
        return Err("alertmanager resend_interval_secs must be above 0".to_string());
    }
    Ok(())
}

fn severity(doc: &Doc<'_>, key: &str, v: &Spanned<DeValue<'_>>) -> Result<Severity, ConfigError> {
    let text = want_str(doc, key, v)?;
    match text.as_str() {
        "info" => Ok(Severity::Info),
        "warning" => Ok(Severity::Warning),
        "critical" => Ok(Severity::Critical),
        _ => Err(doc.err(
            v.span(),
            format!(
                "`{key}` must be one of {} (got {text:?})",
                quoted(SEVERITIES)
            ),
        )),
    }
}

fn quoted(list: &[&str]) -> String {
    list.iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn string_list(
    doc: &Doc<'_>,
    key: &str,
    v: &Spanned<DeValue<'_>>,
) -> Result<Vec<String>, ConfigError> {
    let DeValue::Array(items) = v.get_ref() else {
        return Err(doc.err(
            v.span(),
            format!(
                "`{key}` must be an array of strings, not {}",
                type_name(v.get_ref())
            ),
        ));
    };
    items.iter().map(|item| want_str(doc, key, item)).collect()
}

fn parse_webhook(
    doc: &Doc<'_>,
    index: usize,
    item: &Spanned<DeValue<'_>>,
) -> Result<WebhookConfig, ConfigError> {
    let table = want_table(doc, "alert.webhook", item)?;
    let mut w = WebhookConfig::new(&format!("webhook-{index}"), "");
    read_fields(doc, table, "[[alert.webhook]]", WEBHOOK_FIELDS, &mut w)?;
    if w.url.is_empty() {
        return Err(doc.err(
            item.span(),
            format!("[[alert.webhook]] number {index} needs `url` (http:// or https://)"),
        ));
    }
    Ok(w)
}

const WEBHOOK_FIELDS: &[Field<WebhookConfig>] = &[
    Field {
        key: "name",
        read: |doc, key, v, w| {
            let name = want_str(doc, key, v)?;
            check_sink_name(&name).map_err(|e| doc.err(v.span(), e))?;
            w.name = name;
            Ok(())
        },
    },
    Field {
        key: "url",
        read: |doc, key, v, w| {
            let text = want_str(doc, key, v)?;
            check_url(&text).map_err(|e| doc.err(v.span(), e))?;
            w.url = text;
            Ok(())
        },
    },
    Field {
        key: "format",
        read: |doc, key, v, w| {
            let text = want_str(doc, key, v)?;
            w.format = match text.as_str() {
                "tunerd" => Format::Tunerd,
                "alertmanager" => Format::Alertmanager,
                _ => {
                    return Err(doc.err(
                        v.span(),
                        format!(
                            "`format` must be one of \"tunerd\", \"alertmanager\" (got {text:?})"
                        ),
                    ))
                }
            };
            Ok(())
        },
    },
    Field {
        key: "secret",
        read: |doc, key, v, w| {
            let text = want_str(doc, key, v)?;
            if text.is_empty() {
                return Err(doc.err(
                    v.span(),
                    "`secret` must not be empty (leave it out to send unsigned)",
                ));
            }
            secret_key(&text).map_err(|e| doc.err(v.span(), e))?;
            w.secret = Some(Secret(text));
            Ok(())
        },
    },
    Field {
        key: "headers",
        read: |doc, key, v, w| {
            for (hk, hv) in entries(want_table(doc, key, v)?) {
                let name = hk.get_ref().as_ref();
                check_header_name(name).map_err(|e| doc.err(hk.span(), e))?;
                let value = want_str(doc, name, hv)?;
                check_header_value(name, &value).map_err(|e| doc.err(hv.span(), e))?;
                w.headers.push((name.to_string(), Secret(value)));
            }
            Ok(())
        },
    },
    Field {
        key: "timeout_ms",
        read: |doc, key, v, w| {
            w.timeout_ms = parse_int(doc, key, v, 100, 300_000)?;
            Ok(())
        },
    },
    Field {
        key: "min_severity",
        read: |doc, key, v, w| {
            w.min_severity = severity(doc, key, v)?;
            Ok(())
        },
    },
];

const EXEC_FIELDS: &[Field<ExecConfig>] = &[
    Field {
        key: "program",
        read: |doc, key, v, exec| {
            let text = want_str(doc, key, v)?;
            check_program(&text).map_err(|e| doc.err(v.span(), e))?;
            exec.program = text;
            Ok(())
        },
    },
    Field {
        key: "args",
        read: |doc, key, v, exec| {
            exec.args = string_list(doc, key, v)?;
            Ok(())
        },
    },
    Field {
        key: "timeout_ms",
        read: |doc, key, v, exec| {
            exec.timeout_ms = parse_int(doc, key, v, 100, 3_600_000)?;
            Ok(())
        },
    },
    Field {
        key: "min_severity",
        read: |doc, key, v, exec| {
            exec.min_severity = severity(doc, key, v)?;
            Ok(())
        },
    },
];

const TEXTFILE_FIELDS: &[Field<TextfileConfig>] = &[Field {
    key: "path",
    read: |doc, key, v, t| {
        let text = want_str(doc, key, v)?;
        check_textfile_path(&text).map_err(|e| doc.err(v.span(), e))?;
        t.path = text;
        Ok(())
    },
}];

const SPOOL_FIELDS: &[Field<SpoolConfig>] = &[Field {
    key: "max_entries",
    read: |doc, key, v, s| {
        s.max_entries = parse_int(doc, key, v, 1, 100_000)? as usize;
        Ok(())
    },
}];

/// `[alert.retry]` as read, with where `initial_ms` was written (for the cross-key check).
struct RetryDraft {
    retry: RetryConfig,
    initial_at: Option<std::ops::Range<usize>>,
}

const RETRY_FIELDS: &[Field<RetryDraft>] = &[
    Field {
        key: "initial_ms",
        read: |doc, key, v, r| {
            r.retry.initial_ms = parse_int(doc, key, v, 10, 600_000)?;
            r.initial_at = Some(v.span());
            Ok(())
        },
    },
    Field {
        key: "max_ms",
        read: |doc, key, v, r| {
            r.retry.max_ms = parse_int(doc, key, v, 1000, 86_400_000)?;
            Ok(())
        },
    },
];

const ALERTMANAGER_FIELDS: &[Field<AlertmanagerConfig>] = &[
    Field {
        key: "resend_interval_secs",
        read: |doc, key, v, am| {
            am.resend_interval_secs = parse_int(doc, key, v, 1, 3600)?;
            Ok(())
        },
    },
    Field {
        key: "generator_url",
        read: |doc, key, v, am| {
            let text = want_str(doc, key, v)?;
            check_url(&text)
                .map_err(|e| doc.err(v.span(), e.replace("`url`", "`generator_url`")))?;
            am.generator_url = Some(text);
            Ok(())
        },
    },
];

const ALERT_FIELDS: &[Field<AlertConfig>] = &[
    Field {
        key: "host",
        read: |doc, key, v, cfg| {
            let host = want_str(doc, key, v)?;
            if host.is_empty() || !host.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
                return Err(doc.err(
                    v.span(),
                    format!("`host` must be a name without blanks (got {host:?})"),
                ));
            }
            cfg.host = Some(host);
            Ok(())
        },
    },
    Field {
        key: "webhook",
        read: |doc, _key, v, cfg| {
            let DeValue::Array(items) = v.get_ref() else {
                return Err(doc.err(
                    v.span(),
                    "`webhook` must be an array of tables: write [[alert.webhook]]",
                ));
            };
            for (i, item) in items.iter().enumerate() {
                let w = parse_webhook(doc, i + 1, item)?;
                if cfg.webhooks.iter().any(|o| o.name == w.name) {
                    return Err(doc.err(
                        item.span(),
                        format!(
                            "two webhooks are named `{}`: give each a distinct `name`",
                            w.name
                        ),
                    ));
                }
                cfg.webhooks.push(w);
            }
            Ok(())
        },
    },
    Field {
        key: "exec",
        read: |doc, _key, v, cfg| {
            let mut exec = ExecConfig::new("", &[]);
            read_fields(
                doc,
                want_table(doc, "alert.exec", v)?,
                "[alert.exec]",
                EXEC_FIELDS,
                &mut exec,
            )?;
            if exec.program.is_empty() {
                return Err(doc.err(v.span(), "[alert.exec] needs `program` (an absolute path)"));
            }
            cfg.exec = Some(exec);
            Ok(())
        },
    },
    Field {
        key: "textfile",
        read: |doc, _key, v, cfg| {
            let mut t = TextfileConfig {
                path: String::new(),
            };
            read_fields(
                doc,
                want_table(doc, "alert.textfile", v)?,
                "[alert.textfile]",
                TEXTFILE_FIELDS,
                &mut t,
            )?;
            if t.path.is_empty() {
                return Err(doc.err(v.span(), "[alert.textfile] needs `path`"));
            }
            cfg.textfile = Some(t);
            Ok(())
        },
    },
    Field {
        key: "spool",
        read: |doc, _key, v, cfg| {
            read_fields(
                doc,
                want_table(doc, "alert.spool", v)?,
                "[alert.spool]",
                SPOOL_FIELDS,
                &mut cfg.spool,
            )
        },
    },
    Field {
        key: "retry",
        read: |doc, _key, v, cfg| {
            let mut draft = RetryDraft {
                retry: cfg.retry.clone(),
                initial_at: None,
            };
            read_fields(
                doc,
                want_table(doc, "alert.retry", v)?,
                "[alert.retry]",
                RETRY_FIELDS,
                &mut draft,
            )?;
            check_retry(&draft.retry)
                .map_err(|e| doc.err(draft.initial_at.clone().unwrap_or(v.span()), e))?;
            cfg.retry = draft.retry;
            Ok(())
        },
    },
    Field {
        key: "alertmanager",
        read: |doc, _key, v, cfg| {
            read_fields(
                doc,
                want_table(doc, "alert.alertmanager", v)?,
                "[alert.alertmanager]",
                ALERTMANAGER_FIELDS,
                &mut cfg.alertmanager,
            )
        },
    },
];

#[cfg(test)]
fn keys<T>(fields: &[Field<T>]) -> Vec<&'static str> {
    fields.iter().map(|f| f.key).collect()
}

/// `[alert]` and its sub-tables with the keys the parser takes in each, from the same lists
/// that parse them (the packaged tunerd.toml is checked against this).
#[cfg(test)]
pub(crate) fn schema() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("alert", keys(ALERT_FIELDS)),
        ("alert.webhook", keys(WEBHOOK_FIELDS)),
        ("alert.exec", keys(EXEC_FIELDS)),
        ("alert.textfile", keys(TEXTFILE_FIELDS)),
        ("alert.spool", keys(SPOOL_FIELDS)),
        ("alert.retry", keys(RETRY_FIELDS)),
        ("alert.alertmanager", keys(ALERTMANAGER_FIELDS)),
    ]
}

/// The `[alert]` table of tunerd.toml. `table` is its contents; `doc` the file it is in.
pub(crate) fn parse_alert(doc: &Doc<'_>, table: &DeTable<'_>) -> Result<AlertConfig, ConfigError> {
    let mut cfg = AlertConfig::default();
    read_fields(doc, table, "[alert]", ALERT_FIELDS, &mut cfg)?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertConfig, String> {
        let doc = Doc {
            file: "tunerd.toml",
            text,
        };
        let top = doc.parse().map_err(|e| e.to_string())?;
        let Some(alert) = top.get_ref().get("alert") else {
            return Ok(AlertConfig::default());
        };
        let table = want_table(&doc, "alert", alert).map_err(|e| e.to_string())?;
        parse_alert(&doc, table).map_err(|e| e.to_string())
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("accepted: {text}\n{c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_full_configuration_parses_with_defaults_filled_in() {
        let cfg = parse(
            r#"
[alert]
host = "db-1"
[[alert.webhook]]
url = "https://hooks.example/tunerd"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
headers = { Authorization = "Bearer abc", X-Team = "storage" }
min_severity = "warning"
[[alert.webhook]]
name = "am"
url = "http://[::1]:9093/"
format = "alertmanager"
timeout_ms = 2000
[alert.exec]
program = "/usr/local/sbin/storage-alert"
args = ["--page", "x"]
[alert.textfile]
path = "/run/prometheus/tunerd.prom"
[alert.spool]
max_entries = 50
[alert.retry]
initial_ms = 500
max_ms = 60000
[alert.alertmanager]
resend_interval_secs = 30
"#,
        )
        .expect("parses");
        assert_eq!(cfg.host.as_deref(), Some("db-1"));
        assert_eq!(cfg.webhooks.len(), 2);
        let w = &cfg.webhooks[0];
        assert_eq!(w.name, "webhook-1");
        assert_eq!(w.format, Format::Tunerd);
        assert_eq!(w.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(w.min_severity, Severity::Warning);
        assert_eq!(w.headers.len(), 2);
        assert_eq!(w.headers[1].0, "X-Team");
        assert_eq!(w.headers[1].1.expose(), "storage");
        assert_eq!(cfg.webhooks[1].name, "am");
        assert_eq!(cfg.webhooks[1].format, Format::Alertmanager);
        assert_eq!(
            check_url(&cfg.webhooks[1].url).map(|t| t.host),
            Ok("::1".into())
        );
        let exec = cfg.exec.as_ref().expect("exec");
        assert_eq!(exec.args, vec!["--page", "x"]);
        assert_eq!(cfg.spool.max_entries, 50);
        assert_eq!(cfg.retry.initial_ms, 500);
        assert_eq!(cfg.alertmanager.resend_interval_secs, 30);
        assert_eq!(validate(&cfg), Ok(()));
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("Bearer abc"), "{debug}");
        assert!(!debug.contains("whsec_MfK"), "{debug}");
    }

    #[test]
    fn errors_name_line_column_key_and_allowed_values() {
        assert_eq!(
            err("[alert]\n[[alert.webhook]]\nurl = \"ftp://x/\"\n"),
            "tunerd.toml:3:7: `url` must start with http:// or https:// (got ftp://)"
        );
        assert_eq!(
            err("[[alert.webhook]]\nurl = \"http://x/\"\nformat = \"slack\"\n"),
            "tunerd.toml:3:10: `format` must be one of \"tunerd\", \"alertmanager\" (got \"slack\")"
        );
        assert_eq!(
            err("[[alert.webhook]]\nurl = \"http://x/\"\nmin_severity = \"high\"\n"),
            "tunerd.toml:3:16: `min_severity` must be one of \"info\", \"warning\", \"critical\" (got \"high\")"
        );
        let e = err("[[alert.webhook]]\nurl = \"http://x/\"\nsecrets = \"a\"\n");
        assert!(
            e.starts_with("tunerd.toml:3:1: unknown key `secrets` in [[alert.webhook]]; allowed: name, url, format, secret,"),
            "{e}"
        );
        let e = err("[alert]\nwebhooks = []\n");
        assert!(
            e.starts_with(
                "tunerd.toml:2:1: unknown key `webhooks` in [alert]; allowed: host, webhook,"
            ),
            "{e}"
        );
        let e = err("[[alert.webhook]]\nformat = \"tunerd\"\n");
        assert!(e.starts_with("tunerd.toml:"), "{e}");
        assert!(
            e.ends_with("[[alert.webhook]] number 1 needs `url` (http:// or https://)"),
            "{e}"
        );
        assert_eq!(
            err("[[alert.webhook]]\nurl = \"https://u:p@x/\"\n"),
            "tunerd.toml:2:7: `url` must not carry credentials: put them in `headers` (e.g. Authorization)"
        );
        let e = err(
            "[[alert.webhook]]\nurl = \"http://x/\"\nheaders = { Content-Type = \"text/plain\" }\n",
        );
        assert!(
            e.starts_with("tunerd.toml:3:13: header `Content-Type` is set by tunerd"),
            "{e}"
        );
        assert_eq!(
            err("[[alert.webhook]]\nurl = \"http://x/\"\ntimeout_ms = 5\n"),
            "tunerd.toml:3:14: `timeout_ms` must be at least 100 (got 5)"
        );
        assert_eq!(
            err("[[alert.webhook]]\nurl = \"http://x/\"\nsecret = \"whsec_!!\"\n"),
            "tunerd.toml:3:10: `secret` starts with whsec_ but the rest is not base64 (Invalid symbol 33, offset 0.)"
        );
        let e = err("[[alert.webhook]]\nurl = \"http://x/\"\n[[alert.webhook]]\nurl = \"http://y/\"\nname = \"webhook-1\"\n");
        assert!(e.contains("two webhooks are named `webhook-1`"), "{e}");
        assert_eq!(
            err("[alert.exec]\nprogram = \"notify.sh\"\n"),
            "tunerd.toml:2:11: `program` must be an absolute path (no shell, no PATH search; got \"notify.sh\")"
        );
        assert_eq!(
            err("[alert.exec]\nprogram = \"/bin/x\"\nargs = \"-v\"\n"),
            "tunerd.toml:3:8: `args` must be an array of strings, not a string"
        );
        assert_eq!(
            err("[alert.textfile]\npath = \"/run/x.txt\"\n"),
            "tunerd.toml:2:8: `path` must be absolute and end in .prom, the files node_exporter's textfile collector reads (got \"/run/x.txt\")"
        );
        assert_eq!(
            err("[alert.spool]\nmax_entries = 0\n"),
            "tunerd.toml:2:15: `max_entries` must be at least 1 (got 0)"
        );
        assert_eq!(
            err("[alert.retry]\ninitial_ms = 5000\nmax_ms = 1000\n"),
            "tunerd.toml:2:14: `initial_ms` (5000) must not exceed `max_ms` (1000)"
        );
        assert_eq!(
            err("[alert.alertmanager]\nresend_interval_secs = 0\n"),
            "tunerd.toml:2:24: `resend_interval_secs` must be at least 1 (got 0)"
        );
        assert_eq!(
            err("[alert]\nwebhook = { url = \"http://x/\" }\n"),
            "tunerd.toml:2:11: `webhook` must be an array of tables: write [[alert.webhook]]"
        );
    }

    #[test]
    fn secrets_and_urls() {
        assert_eq!(secret_key("plain"), Ok(b"plain".to_vec()));
        assert_eq!(secret_key("whsec_aGVsbG8="), Ok(b"hello".to_vec()));
        let t = check_url("https://hooks.example/x?y=1").expect("valid");
        assert_eq!(
            t,
            Endpoint {
                https: true,
                host: "hooks.example".into(),
                port: 443
            }
        );
        assert_eq!(check_url("http://127.0.0.1:9093").map(|t| t.port), Ok(9093));
        assert!(check_url("127.0.0.1:9093").is_err());
        let mut cfg = AlertConfig::default();
        cfg.webhooks.push(WebhookConfig::new("exec", "http://x/"));
        assert!(validate(&cfg).is_err());
    }

    #[test]
    fn urls_in_errors_are_redacted() {
        assert_eq!(
            redact_url("https://hooks.example/x?token=S3CR3T"),
            "https://hooks.example/x?…"
        );
        assert_eq!(
            redact_url("https://u:p@hooks.example:8443/x#k=1"),
            "https://…@hooks.example:8443/x#…"
        );
        assert_eq!(redact_url("http://x/a/b"), "http://x/a/b");
        assert_eq!(redact_url("x?token=S"), "x?…");
        for url in [
            "https://hooks.example/x?token=S3CR3T value",
            "hooks.example/x?token=S3CR3T",
            "https://?token=S3CR3T",
        ] {
            let e = check_url(url).expect_err(url);
            assert!(!e.contains("S3CR3T"), "{e}");
        }
    }
}
