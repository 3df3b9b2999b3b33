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

use crate::profile::{
    entries, parse_int, unknown_key, want_str, want_table, ConfigError, Doc, ProfileSet,
};
use crate::sys::Root;

pub const CONFIG_FILE: &str = "etc/tunerd/tunerd.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftPolicy {
    /// Re-apply the profile's value.
    Repair,
    /// Log and signal only.
    Report,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnStop {
    /// Leave the settings in place: they are the resilience.
    Keep,
    /// Restore every original.
    Revert,
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonSettings {
    pub drift_interval_secs: u64,
    pub drift_policy: DriftPolicy,
    pub on_stop: OnStop,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            drift_interval_secs: 30,
            drift_policy: DriftPolicy::Repair,
            on_stop: OnStop::Keep,
        }
    }
}

/// `[watch]`: failure detection.
#[derive(Debug, Clone, Serialize)]
pub struct WatchSettings {
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
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
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

impl Config {
    /// The profile to use and why: `requested` (a `--profile` or a runtime switch, labelled
    /// `label`) wins; else the configured one; `auto` picks by platform.
    pub fn choose_profile(
        &self,
        requested: Option<&str>,
        label: &str,
        platform: crate::inventory::PlatformKind,
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

    pub fn load(root: &Root, profiles: &ProfileSet) -> Result<Config, ConfigError> {
        let display = root.display(CONFIG_FILE);
        let mut config = Config {
            profile: "auto".to_string(),
            daemon: DaemonSettings::default(),
            watch: WatchSettings::default(),
            alert: crate::alert::AlertConfig::default(),
            source: "defaults".to_string(),
        };
        let Some(text) = root
            .read_opt(CONFIG_FILE)
            .map_err(|e| ConfigError::from_sys(&e))?
        else {
            return Ok(config);
        };
        config.source = display.clone();
        let doc = Doc {
            file: &display,
            text: &text,
        };
        let table = doc.parse()?;
        for (k, v) in entries(table.get_ref()) {
            match k.get_ref().as_ref() {
                "profile" => {
                    let name = want_str(&doc, "profile", v)?;
                    if name != "auto" && profiles.get(&name).is_none() {
                        return Err(doc.err(
                            v.span(),
                            format!(
                                "unknown profile `{name}`; allowed: auto, {}",
                                profiles.names().join(", ")
                            ),
                        ));
                    }
                    config.profile = name;
                }
                "daemon" => {
                    for (dk, dv) in entries(want_table(&doc, "daemon", v)?) {
                        match dk.get_ref().as_ref() {
                            "drift_interval_secs" => {
                                config.daemon.drift_interval_secs =
                                    parse_int(&doc, "drift_interval_secs", dv, 0, 86400)?
                            }
                            "drift_policy" => {
                                config.daemon.drift_policy =
                                    match choice(&doc, "drift_policy", dv, &["repair", "report"])? {
                                        "repair" => DriftPolicy::Repair,
                                        _ => DriftPolicy::Report,
                                    }
                            }
                            "on_stop" => {
                                config.daemon.on_stop =
                                    match choice(&doc, "on_stop", dv, &["keep", "revert"])? {
                                        "keep" => OnStop::Keep,
                                        _ => OnStop::Revert,
                                    }
                            }
                            other => {
                                return Err(unknown_key(
                                    &doc,
                                    dk.span(),
                                    other,
                                    "[daemon]",
                                    &["drift_interval_secs", "drift_policy", "on_stop"],
                                ))
                            }
                        }
                    }
                }
                "alert" => {
                    config.alert = crate::alert::parse_alert(&doc, want_table(&doc, "alert", v)?)?
                }
                "watch" => {
                    let w = &mut config.watch;
                    for (wk, wv) in entries(want_table(&doc, "watch", v)?) {
                        let key = wk.get_ref().as_ref();
                        match key {
                            "kmsg" => {
                                w.kmsg = match wv.get_ref() {
                                    DeValue::Boolean(b) => *b,
                                    _ => {
                                        return Err(
                                            doc.err(wv.span(), "`kmsg` must be true or false")
                                        )
                                    }
                                }
                            }
                            "sample_ms" => w.sample_ms = parse_int(&doc, key, wv, 0, 3_600_000)?,
                            "stall_secs" => w.stall_secs = parse_int(&doc, key, wv, 1, 86_400)?,
                            "latency_ms" => w.latency_ms = parse_int(&doc, key, wv, 1, 3_600_000)?,
                            "dirty_threshold_pct" => {
                                w.dirty_threshold_pct = parse_int(&doc, key, wv, 1, 100)?
                            }
                            "quiet_secs" => w.quiet_secs = parse_int(&doc, key, wv, 1, 86_400)?,
                            other => {
                                return Err(unknown_key(
                                    &doc,
                                    wk.span(),
                                    other,
                                    "[watch]",
                                    &[
                                        "kmsg",
                                        "fanotify",
                                        "journal",
                                        "sample_ms",
                                        "stall_secs",
                                        "latency_ms",
                                        "dirty_threshold_pct",
                                        "quiet_secs",
                                    ],
                                ))
                            }
                        }
                    }
                }
                other => {
                    return Err(unknown_key(
                        &doc,
                        k.span(),
                        other,
                        "tunerd.toml",
                        &["profile", "daemon", "watch", "alert"],
                    ))
                }
            }
        }
        Ok(config)
    }
}
