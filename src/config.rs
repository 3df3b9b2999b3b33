//! `/etc/tunerd/tunerd.toml`: which profile, and how the daemon behaves. Validated like the
//! profiles: one line with `file:line:column`, the key and the allowed values.
//!
//! ```toml
//! profile = "auto"            # or a profile name
//! [daemon]
//! drift_interval_secs = 30    # periodic verify; 0 turns it off
//! drift_policy = "repair"     # or "report": log and signal drift, change nothing
//! on_stop = "keep"            # or "revert": restore the originals when the service stops
//! ```

use serde::Serialize;
use toml::de::DeValue;
use toml::Spanned;

use crate::detect::rules::{Pattern, RuleSpec};
use crate::detect::types::{Kind, Severity};
use crate::host::sys::{Root, CONFIG_DIR};
use crate::tune::profile::{read_drop_ins, DropIn, ProfileSet};
use crate::util::toml::{
    check_config_dir, check_program_owner, parse_int, read_config_file, read_fields, want_bool,
    want_str, want_table, ConfigError, Doc, Field,
};

pub(crate) const CONFIG_FILE: &str = "etc/tunerd/tunerd.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum DriftPolicy {
    /// Re-apply the profile's value.
    Repair,
    /// Log and signal only.
    Report,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum OnStop {
    /// Leave the settings in place: they are the resilience.
    Keep,
    /// Restore every original.
    Revert,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DaemonSettings {
    pub drift_interval_secs: u64,
    pub drift_policy: DriftPolicy,
    pub on_stop: OnStop,
    /// A knob repaired this many times within `contested_window_secs` is contested: another
    /// writer keeps setting it (0: never call a knob contested).
    pub contested_repairs: u64,
    pub contested_window_secs: u64,
    /// What tunerd does with a contested knob.
    pub on_contested: OnContested,
}

/// What tunerd does when another writer keeps setting a knob back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum OnContested {
    /// Stop repairing it (report it, leave the other writer's value) until the next apply,
    /// switch or reload.
    BackOff,
    /// Go on repairing it at every drift check.
    Repair,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            drift_interval_secs: 30,
            drift_policy: DriftPolicy::Repair,
            on_stop: OnStop::Keep,
            contested_repairs: 3,
            contested_window_secs: 600,
            on_contested: OnContested::BackOff,
        }
    }
}

/// `[watch]`: failure detection.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WatchSettings {
    /// Read the kernel log (/dev/kmsg).
    pub kmsg: bool,
    /// Watch ext4 mounts with fanotify FAN_FS_ERROR.
    pub fanotify: bool,
    /// Follow storage daemons (multipathd, iscsid, ...) in the systemd journal.
    pub journal: bool,
    /// Sample diskstats, mount flags, ext4 counters and dirty memory this often (ms); 0: never.
    pub sample_ms: u64,
    /// Requests in flight with no completion this long is a stall.
    pub stall_secs: u64,
    /// Average ms per I/O over one sample above this is high latency.
    pub latency_ms: u64,
    /// Dirty + writeback at this percent of the dirty threshold: writers are throttled.
    pub dirty_threshold_pct: u64,
    /// An incident with no lasting condition ends after this long without new evidence.
    pub quiet_secs: u64,
    /// A filesystem frozen this long without a thaw is an `fs_frozen` incident (0: never).
    pub frozen_secs: u64,
    /// `[[watch.rule]]`: user-defined kinds (src/detect/rules.rs).
    pub rules: Vec<RuleSpec>,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            kmsg: true,
            fanotify: true,
            journal: true,
            sample_ms: 1000,
            stall_secs: 10,
            latency_ms: 2000,
            dirty_threshold_pct: 95,
            quiet_secs: 300,
            frozen_secs: crate::detect::FROZEN_SECS,
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Config {
    /// `auto` or a profile name.
    pub profile: String,
    pub daemon: DaemonSettings,
    pub watch: WatchSettings,
    /// `[alert]`: where incidents go (docs/alerts.md).
    pub alert: crate::alert::AlertConfig,
    /// Where it came from (the file, or `defaults` when there is none).
    pub source: String,
}

fn choice<'a>(
    doc: &Doc<'_>,
    key: &str,
    v: &toml::Spanned<DeValue<'_>>,
    allowed: &[&'a str],
) -> Result<&'a str, ConfigError> {
    let text = want_str(doc, key, v)?;
    allowed.iter().copied().find(|a| *a == text).ok_or_else(|| {
        doc.err(
            v.span(),
            format!(
                "`{key}` must be one of {} (got {text:?})",
                allowed
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// The top level of tunerd.toml, read with the names of the profiles it may name.
struct TopLevel {
    config: Config,
    profiles: Vec<String>,
}

const TOP_FIELDS: &[Field<TopLevel>] = &[
    Field {
        key: "profile",
        read: |doc, key, v, top| {
            let name = want_str(doc, key, v)?;
            if name != "auto" && !top.profiles.contains(&name) {
                return Err(doc.err(
                    v.span(),
                    format!(
                        "unknown profile `{name}`; allowed: auto, {}",
                        top.profiles.join(", ")
                    ),
                ));
            }
            top.config.profile = name;
            Ok(())
        },
    },
    Field {
        key: "daemon",
        read: |doc, key, v, top| {
            read_fields(
                doc,
                want_table(doc, key, v)?,
                "[daemon]",
                DAEMON_FIELDS,
                &mut top.config.daemon,
            )
        },
    },
    Field {
        key: "watch",
        read: |doc, key, v, top| {
            read_fields(
                doc,
                want_table(doc, key, v)?,
                "[watch]",
                WATCH_FIELDS,
                &mut top.config.watch,
            )
        },
    },
    Field {
        key: "alert",
        read: |doc, key, v, top| {
            top.config.alert = crate::alert::parse_alert(doc, want_table(doc, key, v)?)?;
            Ok(())
        },
    },
];

const DAEMON_FIELDS: &[Field<DaemonSettings>] = &[
    Field {
        key: "drift_interval_secs",
        read: |doc, key, v, d| {
            d.drift_interval_secs = parse_int(doc, key, v, 0, 86400)?;
            Ok(())
        },
    },
    Field {
        key: "drift_policy",
        read: |doc, key, v, d| {
            d.drift_policy = match choice(doc, key, v, &["repair", "report"])? {
                "repair" => DriftPolicy::Repair,
                _ => DriftPolicy::Report,
            };
            Ok(())
        },
    },
    Field {
        key: "on_stop",
        read: |doc, key, v, d| {
            d.on_stop = match choice(doc, key, v, &["keep", "revert"])? {
                "keep" => OnStop::Keep,
                _ => OnStop::Revert,
            };
            Ok(())
        },
    },
    Field {
        key: "contested_repairs",
        read: |doc, key, v, d| {
            d.contested_repairs = parse_int(doc, key, v, 0, 1000)?;
            Ok(())
        },
    },
    Field {
        key: "contested_window_secs",
        read: |doc, key, v, d| {
            d.contested_window_secs = parse_int(doc, key, v, 1, 86400)?;
            Ok(())
        },
    },
    Field {
        key: "on_contested",
        read: |doc, key, v, d| {
            d.on_contested = match choice(doc, key, v, &["back-off", "repair"])? {
                "back-off" => OnContested::BackOff,
                _ => OnContested::Repair,
            };
            Ok(())
        },
    },
];

const WATCH_FIELDS: &[Field<WatchSettings>] = &[
    Field {
        key: "kmsg",
        read: |doc, key, v, w| {
            w.kmsg = want_bool(doc, key, v)?;
            Ok(())
        },
    },
    Field {
        key: "fanotify",
        read: |doc, key, v, w| {
            w.fanotify = want_bool(doc, key, v)?;
            Ok(())
        },
    },
    Field {
        key: "journal",
        read: |doc, key, v, w| {
            w.journal = want_bool(doc, key, v)?;
            Ok(())
        },
    },
    Field {
        key: "sample_ms",
        read: |doc, key, v, w| {
            w.sample_ms = parse_int(doc, key, v, 0, 3_600_000)?;
            Ok(())
        },
    },
    Field {
        key: "stall_secs",
        read: |doc, key, v, w| {
            w.stall_secs = parse_int(doc, key, v, 1, 86_400)?;
            Ok(())
        },
    },
    Field {
        key: "latency_ms",
        read: |doc, key, v, w| {
            w.latency_ms = parse_int(doc, key, v, 1, 3_600_000)?;
            Ok(())
        },
    },
    Field {
        key: "dirty_threshold_pct",
        read: |doc, key, v, w| {
            w.dirty_threshold_pct = parse_int(doc, key, v, 1, 100)?;
            Ok(())
        },
    },
    Field {
        key: "quiet_secs",
        read: |doc, key, v, w| {
            w.quiet_secs = parse_int(doc, key, v, 1, 86_400)?;
            Ok(())
        },
    },
    Field {
        key: "frozen_secs",
        read: |doc, key, v, w| {
            w.frozen_secs = parse_int(doc, key, v, 0, 86_400)?;
            Ok(())
        },
    },
    Field {
        key: "rule",
        read: |doc, _key, v, w| {
            let DeValue::Array(items) = v.get_ref() else {
                return Err(doc.err(
                    v.span(),
                    "`rule` must be an array of tables: write [[watch.rule]]",
                ));
            };
            for (i, item) in items.iter().enumerate() {
                let rule = parse_rule(doc, i + 1, item)?;
                if w.rules.iter().any(|r| r.kind == rule.kind) {
                    return Err(doc.err(
                        item.span(),
                        format!(
                            "two [[watch.rule]]s give kind `{}`: one rule a kind (use `end` for the line that ends it)",
                            rule.kind
                        ),
                    ));
                }
                w.rules.push(rule);
            }
            Ok(())
        },
    },
];

/// A `[[watch.rule]]` being read: the spec and where its keys were, for errors that need two
/// keys (a `device` capture missing from the `pattern`).
struct RuleDraft {
    spec: RuleSpec,
    device_span: Option<std::ops::Range<usize>>,
}

/// The pattern in `v`, compiled, or an error at the offending character.
fn read_pattern(
    doc: &Doc<'_>,
    key: &str,
    v: &Spanned<DeValue<'_>>,
) -> Result<(String, Pattern), ConfigError> {
    let text = want_str(doc, key, v)?;
    match Pattern::compile(&text) {
        Ok(p) => Ok((text, p)),
        Err((at, e)) => {
            // The value's first character is after its opening quote (exact unless the string
            // has escapes before `at`).
            let start = (v.span().start + 1 + at).min(v.span().end);
            Err(doc.err(start..start + 1, format!("`{key}`: {e}")))
        }
    }
}

const RULE_FIELDS: &[Field<RuleDraft>] = &[
    Field {
        key: "kind",
        read: |doc, key, v, r| {
            let name = want_str(doc, key, v)?;
            let snake = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !snake || name.len() > 64 {
                return Err(doc.err(
                    v.span(),
                    format!("`kind` must be a snake_case name of at most 64 characters, like `raid_controller_reset` (got {name:?})"),
                ));
            }
            let builtin = matches!(
                serde_json::from_value::<Kind>(serde_json::Value::String(name.clone())),
                Ok(k) if !matches!(k, Kind::Rule(_))
            );
            if builtin || crate::detect::incidents::CATEGORIES.contains(&name.as_str()) {
                return Err(doc.err(
                    v.span(),
                    format!("`kind` {name:?} is a built-in kind or category: give the rule a name of its own"),
                ));
            }
            r.spec.kind = name;
            Ok(())
        },
    },
    Field {
        key: "pattern",
        read: |doc, key, v, r| {
            r.spec.pattern = read_pattern(doc, key, v)?.0;
            Ok(())
        },
    },
    Field {
        key: "severity",
        read: |doc, key, v, r| {
            r.spec.severity = match choice(doc, key, v, &["info", "warning", "critical"])? {
                "info" => Severity::Info,
                "warning" => Severity::Warning,
                _ => Severity::Critical,
            };
            Ok(())
        },
    },
    Field {
        key: "device",
        read: |doc, key, v, r| {
            r.spec.device = Some(want_str(doc, key, v)?);
            r.device_span = Some(v.span());
            Ok(())
        },
    },
    Field {
        key: "end",
        read: |doc, key, v, r| {
            r.spec.end = Some(read_pattern(doc, key, v)?.0);
            Ok(())
        },
    },
    Field {
        key: "program",
        read: |doc, key, v, r| {
            let p = want_str(doc, key, v)?;
            if p.is_empty() || p.len() > 64 || p.chars().any(char::is_control) {
                return Err(doc.err(
                    v.span(),
                    format!("`program` must be a journal identifier (SYSLOG_IDENTIFIER) like \"zed\" (got {p:?})"),
                ));
            }
            r.spec.program = Some(p);
            Ok(())
        },
    },
];

fn parse_rule(
    doc: &Doc<'_>,
    index: usize,
    item: &Spanned<DeValue<'_>>,
) -> Result<RuleSpec, ConfigError> {
    let table = want_table(doc, "watch.rule", item)?;
    let mut r = RuleDraft {
        spec: RuleSpec {
            kind: String::new(),
            pattern: String::new(),
            severity: Severity::Warning,
            device: None,
            end: None,
            program: None,
        },
        device_span: None,
    };
    read_fields(doc, table, "[[watch.rule]]", RULE_FIELDS, &mut r)?;
    for (need, missing) in [
        (
            r.spec.kind.is_empty(),
            "`kind` (the incident kind it gives, snake_case)",
        ),
        (
            r.spec.pattern.is_empty(),
            "`pattern` (the message it matches)",
        ),
    ] {
        if need {
            return Err(doc.err(
                item.span(),
                format!("[[watch.rule]] number {index} needs {missing}"),
            ));
        }
    }
    let pattern = Pattern::compile(&r.spec.pattern).map_err(|(_, e)| doc.err(item.span(), e))?;
    let captures: Vec<&str> = pattern.captures().collect();
    match (&r.spec.device, &r.device_span) {
        (Some(d), Some(span)) if !captures.contains(&d.as_str()) => {
            return Err(doc.err(
                span.clone(),
                format!(
                    "`device` names capture `{{{d}}}`, which `pattern` does not have; it has: {}",
                    if captures.is_empty() {
                        "none".to_string()
                    } else {
                        captures
                            .iter()
                            .map(|c| format!("{{{c}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            ));
        }
        (None, _) if captures.contains(&"device") => r.spec.device = Some("device".into()),
        _ => {}
    }
    Ok(r.spec)
}

/// Every table of tunerd.toml (`""` for the top level, `alert.webhook` for the array of
/// tables) with the keys the parser takes in it, from the same `Field` lists that parse them.
/// A key that names a table appears both as a key of its parent and as a table here.
#[cfg(test)]
pub(crate) fn schema() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out = vec![
        ("", TOP_FIELDS.iter().map(|f| f.key).collect()),
        ("daemon", DAEMON_FIELDS.iter().map(|f| f.key).collect()),
        ("watch", WATCH_FIELDS.iter().map(|f| f.key).collect()),
        ("watch.rule", RULE_FIELDS.iter().map(|f| f.key).collect()),
    ];
    out.extend(crate::alert::config_schema());
    out
}

impl Config {
    /// The profile to use and why: `requested` (a `--profile` or a runtime switch, labelled
    /// `label`) wins; else the configured one; `auto` picks by platform.
    pub(crate) fn choose_profile(
        &self,
        requested: Option<&str>,
        label: &str,
        platform: crate::host::inventory::PlatformKind,
    ) -> (String, String) {
        match requested {
            Some(name) => (name.to_string(), label.to_string()),
            None if self.profile == "auto" => (
                platform.profile().to_string(),
                format!("auto: platform {}", platform.as_str()),
            ),
            None => (self.profile.clone(), format!("config {}", self.source)),
        }
    }

    /// Every setting at its default; `source` says where that came from.
    pub(crate) fn defaults(source: &str) -> Config {
        Config {
            profile: "auto".to_string(),
            daemon: DaemonSettings::default(),
            watch: WatchSettings::default(),
            alert: crate::alert::AlertConfig::default(),
            source: source.to_string(),
        }
    }

    /// Whether this process may read tunerd.toml, when there is one: the package installs it
    /// 0600 (it may hold webhook secrets), so other users may not.
    pub(crate) fn readable(root: &Root) -> bool {
        let path = root.path(CONFIG_FILE);
        !path.exists() || nix::unistd::access(&path, nix::unistd::AccessFlags::R_OK).is_ok()
    }

    pub(crate) fn load(root: &Root, profiles: &ProfileSet) -> Result<Config, ConfigError> {
        match read_config_text(root)? {
            Some(file) => Config::parse(&file, profiles),
            None => Ok(Config::defaults("defaults")),
        }
    }

    /// tunerd.toml's text, validated against `profiles` (the names a `profile =` may give).
    pub(crate) fn parse(file: &ConfigText, profiles: &ProfileSet) -> Result<Config, ConfigError> {
        let display = &file.file;
        let config = Config::defaults(display);
        let doc = Doc {
            file: display,
            text: &file.text,
        };
        let table = doc.parse()?;
        let mut top = TopLevel {
            config,
            profiles: profiles.names(),
        };
        read_fields(&doc, table.get_ref(), "tunerd.toml", TOP_FIELDS, &mut top)?;
        // The hook runs as root: it must be root's as much as this file is. It is a path on
        // the machine tunerd runs on, not under `root` (it is executed as written).
        if let Some(exec) = &top.config.alert.exec {
            check_program_owner(&exec.program)
                .map_err(|e| ConfigError::file(display, format!("[alert.exec] program {e}")))?;
        }
        Ok(top.config)
    }
}

/// tunerd.toml as read: the file as errors name it, and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct ConfigText {
    pub file: String,
    pub text: String,
}

/// Reads tunerd.toml under `root` with the ownership checks of `util::toml::check_owner`;
/// `None` when there is none.
fn read_config_text(root: &Root) -> Result<Option<ConfigText>, ConfigError> {
    let display = root.display(CONFIG_FILE);
    // Root's own, like the profiles (see `util::toml::check_owner`): tunerd acts on what
    // it says, down to running the exec hook as root.
    check_config_dir(&root.path(CONFIG_DIR), &root.display(CONFIG_DIR))?;
    Ok(
        read_config_file(&root.path(CONFIG_FILE), &display)?.map(|text| ConfigText {
            file: display,
            text,
        }),
    )
}

/// Every configuration file, as read: tunerd.toml (when there is one) and the profile
/// drop-ins. What the daemon keeps of a configuration it accepted ([`Accepted`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct ConfigFiles {
    pub config: Option<ConfigText>,
    pub drop_ins: Vec<DropIn>,
}

impl ConfigFiles {
    pub(crate) fn read(root: &Root) -> Result<ConfigFiles, ConfigError> {
        let drop_ins = read_drop_ins(root)?;
        let config = read_config_text(root)?;
        Ok(ConfigFiles { config, drop_ins })
    }

    /// The profiles and the configuration these files make, or the first error in them.
    pub(crate) fn parse(&self) -> Result<(Config, ProfileSet), ConfigError> {
        let profiles = ProfileSet::from_drop_ins(&self.drop_ins)?;
        let config = match &self.config {
            Some(file) => Config::parse(file, &profiles)?,
            None => Config::defaults("defaults"),
        };
        Ok((config, profiles))
    }
}

// --- When the files are refused --------------------------------------------------------------
//
// A configuration is refused whole (a syntax error, an unknown key, a file anyone may write):
// nothing of it is applied. The daemon must still run, though: a machine whose tunerd stopped
// over a typo delivered by cloud-init or a configuration manager has no drift repair, no
// hotplug tuning and no alerts. So it runs on the last configuration it accepted, which it
// keeps in /run/tunerd/accepted.json (0600: webhook secrets), and when there is none (the
// first start of this boot), on the built-in one, and says which (`tunerctl status`, the
// journal). `tunerctl check-config`, `apply` and `tunerd --once` still refuse with exit 4.

/// Which configuration is in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum InForce {
    /// /etc/tunerd as it is now.
    #[default]
    Files,
    /// The files were refused; the last accepted ones, from /run/tunerd/accepted.json.
    Previous,
    /// The files were refused and none were accepted before: built-in profiles, defaults.
    BuiltIn,
}

impl InForce {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            InForce::Files => "the configuration files",
            InForce::Previous => "the previous configuration",
            InForce::BuiltIn => "the built-in configuration",
        }
    }
}

/// The configuration the daemon last accepted, and when (seconds since the epoch).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Accepted {
    pub at: u64,
    pub files: ConfigFiles,
}

impl Accepted {
    /// The kept configuration, if there is one that still parses.
    pub(crate) fn load(root: &Root) -> Option<Accepted> {
        crate::host::state_files::load_json(root, crate::host::state_files::ACCEPTED)
    }

    /// Keeps `files` as the last accepted configuration.
    pub(crate) fn save(root: &Root, files: &ConfigFiles, at: u64) -> Result<(), String> {
        let accepted = Accepted {
            at,
            files: files.clone(),
        };
        crate::host::state_files::save_json(root, crate::host::state_files::ACCEPTED, &accepted)
            .map_err(|e| e.to_string())
    }
}

/// What is in force after reading the files: them, or when they are refused the previous
/// configuration or the built-in one.
pub(crate) struct Loaded {
    pub config: Config,
    pub profiles: ProfileSet,
    pub in_force: InForce,
    /// The files read, when they are in force (what the daemon keeps as accepted).
    pub files: Option<ConfigFiles>,
    /// When the previous configuration was accepted (seconds since the epoch).
    pub accepted_at: Option<u64>,
    /// Why the files are not in force.
    pub refused: Option<ConfigError>,
}

impl Loaded {
    /// Reads the files; when they are refused, falls back to the previous configuration (if
    /// one was kept and still parses), else to the built-in one. Errs only if the built-in
    /// profiles themselves do not parse (a build that could not pass its tests).
    pub(crate) fn read(root: &Root) -> Result<Loaded, ConfigError> {
        let refused = match ConfigFiles::read(root).and_then(|f| f.parse().map(|p| (f, p))) {
            Ok((files, (config, profiles))) => {
                return Ok(Loaded {
                    config,
                    profiles,
                    in_force: InForce::Files,
                    files: Some(files),
                    accepted_at: None,
                    refused: None,
                })
            }
            Err(e) => e,
        };
        if let Some(accepted) = Accepted::load(root) {
            if let Ok((mut config, profiles)) = accepted.files.parse() {
                config.source = format!(
                    "the previous configuration ({}, accepted {})",
                    config.source,
                    crate::util::time::rfc3339_ms(accepted.at.saturating_mul(1000))
                );
                return Ok(Loaded {
                    config,
                    profiles,
                    in_force: InForce::Previous,
                    files: None,
                    accepted_at: Some(accepted.at),
                    refused: Some(refused),
                });
            }
        }
        Ok(Loaded {
            config: Config::defaults("the built-in configuration"),
            profiles: ProfileSet::builtin()?,
            in_force: InForce::BuiltIn,
            files: None,
            accepted_at: None,
            refused: Some(refused),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tunerd-config-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/tunerd")).expect("mkdir");
        std::fs::write(dir.join(CONFIG_FILE), text).expect("write");
        let root = Root::new(&dir);
        let profiles = ProfileSet::load(&root).expect("built-in profiles");
        let out = Config::load(&root, &profiles);
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    #[test]
    fn every_watch_key_parses() {
        let c = load("[watch]\nkmsg = false\nfanotify = false\njournal = false\nsample_ms = 0\nstall_secs = 5\nlatency_ms = 100\ndirty_threshold_pct = 50\nquiet_secs = 60\n")
            .expect("every [watch] key is accepted");
        assert!(!c.watch.kmsg && !c.watch.fanotify && !c.watch.journal);
        assert_eq!(
            (c.watch.sample_ms, c.watch.stall_secs, c.watch.latency_ms),
            (0, 5, 100)
        );
        assert_eq!((c.watch.dirty_threshold_pct, c.watch.quiet_secs), (50, 60));
    }

    #[test]
    fn allowed_lists_are_the_parsers_keys() {
        // Every key an error offers as allowed must itself be accepted: the list is derived
        // from the fields, so this holds for every table.
        for (table, fields) in [
            (
                "daemon",
                DAEMON_FIELDS.iter().map(|f| f.key).collect::<Vec<_>>(),
            ),
            ("watch", WATCH_FIELDS.iter().map(|f| f.key).collect()),
        ] {
            let e = load(&format!("[{table}]\nbogus = 1\n")).expect_err("unknown key");
            for key in &fields {
                assert!(e.message.contains(key), "{e}");
            }
            assert!(e.message.contains(&format!("in [{table}]")), "{e}");
        }
    }

    /// The packaged /etc/tunerd/tunerd.toml with every `# key = value` and `# [table]` line
    /// uncommented: the values shown are the documented ones.
    fn packaged(uncommented: bool) -> String {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/tunerd.toml"
        ))
        .expect("packaging/tunerd.toml");
        if !uncommented {
            return text;
        }
        text.lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest.split_once(" = ").is_some_and(|(k, _)| {
                            k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        }) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_packaged_config_has_every_option_and_each_is_valid() {
        // As shipped (all commented out: the defaults), and with every option uncommented.
        let shipped = load(&packaged(false)).expect("the packaged tunerd.toml as shipped");
        assert_eq!(shipped.profile, "auto");
        let text = packaged(true);
        load(&text).unwrap_or_else(|e| panic!("the packaged tunerd.toml, uncommented: {e}"));
        let doc: toml::Table = toml::from_str(&text).expect("TOML");
        for (table, keys) in schema() {
            let mut at: &toml::Table = &doc;
            for part in table.split('.').filter(|p| !p.is_empty()) {
                at = match at.get(part) {
                    Some(toml::Value::Table(t)) => t,
                    Some(toml::Value::Array(a)) => match a.first() {
                        Some(toml::Value::Table(t)) => t,
                        _ => panic!("[{table}] is an empty array in packaging/tunerd.toml"),
                    },
                    _ => panic!("packaging/tunerd.toml has no [{table}]"),
                };
            }
            for key in keys {
                assert!(
                    at.contains_key(key),
                    "packaging/tunerd.toml does not show `{key}` in [{table}]"
                );
            }
        }
    }
}
