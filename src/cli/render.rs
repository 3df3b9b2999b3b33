//! What each command prints: tables for people (left-aligned columns, a summary line) and
//! pretty JSON for scripts (`--json`). Pure functions of the values they are given, apart
//! from `status`, which reads each disk's active scheduler.
//!
//! Text for people goes to a terminal, and much of it comes from others: device names and
//! evidence from the kernel log and the journal, mount points any user can choose (FUSE),
//! DMI strings. Every value is shown through [`escape`]: the table cells by [`table`], the
//! other lines by `say!`/[`line_of`], which escape the whole line they write. So no value can
//! send a terminal control sequence (set the title, move the cursor, write the clipboard),
//! break a line or reorder text with bidi controls. JSON output stays as it is: JSON escapes
//! the controls itself, and scripts want the values exact.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

use crate::api::{exit, DaemonStatus, EventsReply, VerifyReply};
use crate::config::{Config, DriftPolicy, InForce};
use crate::detect::types::Incident;
use crate::host::inventory::Inventory;
use crate::host::sys::Root;
use crate::tune::apply::{self, Originals, Report, Status};
use crate::tune::plan::{Action, Plan};
use crate::tune::profile::{Profile, ProfileSet};
use crate::tune::rideout::{self, RideOut};
use crate::util::time::now_secs;

use super::{json, Context, Failure, Output, Refused};

/// `s` as it may be shown on a terminal: ESC as `\e`, the other C0 controls (tab and newline
/// too) and DEL as `\xNN`, the C1 controls (U+0080..U+009F: 8-bit CSI and OSC) and the bidi
/// overrides and isolates (U+202A..U+202E, U+2066..U+2069) as `\u{NNNN}`. Everything else,
/// other UTF-8 included, as it is.
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\u{1b}' => out.push_str("\\e"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    matches!(c, '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// At most `max` characters of `s`, with `…` when cut (the text table's evidence; the JSON
/// has it whole).
pub(crate) fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// One line for a person, escaped whole ([`escape`]), with its newline.
pub(crate) fn line_of(args: std::fmt::Arguments<'_>) -> String {
    let mut text = escape(&args.to_string()).into_owned();
    text.push('\n');
    text
}

/// `writeln!` for text shown to a person: the line goes through [`line_of`].
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        $out.push_str(&line_of(format_args!($($arg)*)))
    };
}

fn render_incidents(label: &str, list: &[Incident]) -> String {
    if list.is_empty() {
        return format!("no {label} incidents\n");
    }
    let mut rows = vec![row(&[
        "ID", "SEVERITY", "STARTED", "ENDED", "COUNT", "SUMMARY",
    ])];
    for i in list {
        rows.push(vec![
            i.id.clone(),
            i.severity.as_str().to_string(),
            if i.started > 1_000_000_000 {
                ago(i.started)
            } else {
                "-".into()
            },
            i.ended.map_or("-".to_string(), |e| {
                if e > 1_000_000_000 {
                    ago(e)
                } else {
                    "yes".into()
                }
            }),
            i.count.to_string(),
            i.summary.clone(),
        ]);
    }
    format!("{label}:\n{}", table(&rows))
}

pub(super) fn verify_output(reply: &VerifyReply, as_json: bool) -> Output {
    let (profile, drift) = (&reply.profile, &reply.drift);
    let code = if drift.is_empty() {
        exit::OK
    } else {
        exit::DRIFT
    };
    let text = if as_json {
        json(reply)
    } else if drift.is_empty() {
        line_of(format_args!(
            "ok: every knob of profile {profile} is at its value"
        ))
    } else {
        let mut rows = vec![row(&["TARGET", "ACTUAL", "DESIRED", "REASON"])];
        for d in drift {
            rows.push(vec![
                d.target.clone(),
                d.actual.clone().unwrap_or_else(|| "-".into()),
                d.desired.clone(),
                d.reason.clone(),
            ]);
        }
        table(&rows)
            + &line_of(format_args!(
                "drift: {} knob(s) differ from profile {profile}",
                drift.len()
            ))
    };
    Output { text, code }
}

pub(super) fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Left-aligned columns, two spaces apart; the last column is never padded. Every cell is
/// shown through [`escape`].
pub(super) fn table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c)).collect())
        .collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 10.0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Set => "set",
        Action::Unchanged => "ok",
        Action::Absent => "absent",
        Action::Refused => "REFUSED",
        Action::Unsupported => "unsupported",
    }
}

fn render_plan(ctx: &Context, plan: &Plan) -> String {
    let mut out = line_of(format_args!(
        "profile {} ({}); platform {}",
        ctx.profile.name,
        ctx.chosen_by,
        ctx.inventory.platform.kind.as_str()
    ));
    out.push('\n');
    let mut rows = vec![row(&["TARGET", "CURRENT", "DESIRED", "ACTION", "REASON"])];
    for c in &plan.changes {
        let mut reason = c.reason.clone();
        if let Some(note) = &c.note {
            reason = format!("{reason} [{note}]");
        }
        rows.push(vec![
            c.label(),
            c.current.clone().unwrap_or_else(|| "-".into()),
            c.desired.clone(),
            action_word(c.action).to_string(),
            reason,
        ]);
    }
    out.push_str(&table(&rows));
    let _ = writeln!(
        out,
        "\n{} to set, {} already at value, {} absent, {} refused, {} unsupported",
        plan.count(Action::Set),
        plan.count(Action::Unchanged),
        plan.count(Action::Absent),
        plan.count(Action::Refused),
        plan.count(Action::Unsupported)
    );
    let before = rideout::live(&ctx.root, &ctx.inventory);
    let after = rideout::after(&ctx.root, &ctx.inventory, plan);
    let target = ctx.profile.rideout_secs;
    if !after.is_empty() {
        out.push_str("\nride-out: how long a storage stall may last before the guest fails I/O");
        if let Some(t) = target {
            let _ = write!(
                out,
                " (target {t} s: profile {} rideout_secs)",
                ctx.profile.name
            );
        }
        out.push('\n');
        let mut rows = vec![row(&["MOUNT", "NOW", "AFTER APPLY", "WEAKEST LAYER AFTER"])];
        for a in &after {
            let now = before
                .iter()
                .find(|b| b.mount == a.mount)
                .map_or_else(|| "-".to_string(), |b| rideout::human(b.seconds));
            let mut then = rideout::human(a.seconds);
            if target.is_some_and(|t| !a.short_of(t).is_empty()) {
                then.push_str(" SHORT");
            }
            rows.push(vec![a.mount.clone(), now, then, weakest_text(a)]);
        }
        out.push_str(&table(&rows));
        if let Some(t) = target {
            for a in &after {
                for l in a.short_of(t) {
                    say!(
                        out,
                        "short of {t} s: {} {} {} ({}){}",
                        a.mount,
                        l.object,
                        l.layer,
                        rideout::human(l.seconds),
                        l.fix
                            .as_deref()
                            .map(|f| format!(": {f}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    out
}

/// The weakest layer and how to strengthen it, or why nothing gives up.
fn weakest_text(r: &RideOut) -> String {
    let mut text = match (&r.weakest, r.seconds) {
        (Some(w), Some(_)) => {
            let fix = r
                .layers
                .iter()
                .find(|l| l.seconds == r.seconds)
                .and_then(|l| l.fix.as_deref());
            match fix {
                Some(f) => format!("weakest: {w}; then {}; to raise it: {f}", r.on_give_up),
                None => format!("weakest: {w}; then {}", r.on_give_up),
            }
        }
        _ => {
            let why: Vec<String> = r
                .layers
                .iter()
                .filter(|l| l.seconds.is_none())
                .map(|l| format!("{} {}", l.object, l.detail))
                .collect();
            format!(
                "no layer gives up ({}): a stall blocks tasks instead of failing them",
                why.join("; ")
            )
        }
    };
    if !r.unknown.is_empty() {
        text.push_str(&format!(" [not read: {}]", r.unknown.join(", ")));
    }
    text
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Applied => "applied",
        Status::Adjusted => "adjusted",
        Status::Unchanged => "unchanged",
        Status::Rejected => "REJECTED",
        Status::Absent => "absent",
        Status::Refused => "REFUSED",
        Status::Unsupported => "unsupported",
        Status::Restored => "restored",
        Status::Gone => "gone",
    }
}

pub(super) fn report_output(report: &Report, as_json: bool, verb: &str) -> Output {
    let code = if report.ok() { exit::OK } else { exit::FAILURE };
    if as_json {
        return Output {
            text: json(&report.to_json()),
            code,
        };
    }
    if report.outcomes.is_empty() {
        let text = match verb {
            "revert" => "nothing to revert: no originals are recorded\n".to_string(),
            _ => "nothing to do: the profile sets nothing on this machine\n".to_string(),
        };
        return Output { text, code };
    }
    let mut rows = vec![row(&["TARGET", "BEFORE", "WANTED", "AFTER", "RESULT"])];
    for o in &report.outcomes {
        let mut result = status_word(o.status).to_string();
        if let Some(e) = &o.error {
            result = format!("{result}: {e}");
        }
        rows.push(vec![
            o.target.clone(),
            o.before.clone().unwrap_or_else(|| "-".into()),
            o.wanted.clone(),
            o.after.clone().unwrap_or_else(|| "-".into()),
            result,
        ]);
    }
    let mut text = table(&rows);
    let _ = writeln!(
        text,
        "\n{verb}: {} written, {} unchanged, {} rejected, {} absent, {} refused{}",
        report.written(),
        report.count(Status::Unchanged),
        report.count(Status::Rejected),
        report.count(Status::Absent),
        report.count(Status::Refused),
        if report.count(Status::Gone) > 0 {
            format!(", {} gone", report.count(Status::Gone))
        } else {
            String::new()
        }
    );
    Output { text, code }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    /// The running daemon's own status; `null` when it does not run.
    daemon: Option<&'a DaemonStatus>,
    profile: &'a str,
    chosen_by: &'a str,
    config: &'a str,
    inventory: &'a Inventory,
    knobs: usize,
    at_value: usize,
    drift: usize,
    absent: usize,
    refused: usize,
    originals_recorded: usize,
    /// Why the configuration files are refused (by the daemon, or as read now); `null` when
    /// they are fine. `tunerctl status` then exits 4.
    config_refused: Option<String>,
    /// What is in force: the daemon's configuration, or what tunerd would run on.
    config_in_force: InForce,
    /// How long each mount rides out a storage stall now.
    rideout: Vec<RideOut>,
}

/// The `config` line of `status` when the files are refused: the error and what runs instead.
fn refusal(
    daemon: Option<&DaemonStatus>,
    refused: Option<&Refused>,
) -> Option<(String, InForce, String)> {
    if let Some(d) = daemon {
        if let Some(error) = &d.config.refused {
            let instead = match (d.config.in_force, d.config.accepted_at) {
                (InForce::Previous, Some(at)) => {
                    format!(
                        "running on the previous configuration (accepted {})",
                        ago(at)
                    )
                }
                (in_force, _) => format!("running on {}", in_force.describe()),
            };
            return Some((error.clone(), d.config.in_force, instead));
        }
        return refused.map(|r| {
            (
                r.error.to_string(),
                d.config.in_force,
                format!(
                    "the daemon has not read it yet and runs on what it accepted{} (a reload or a restart would refuse it and keep that)",
                    d.config.accepted_at.map(|at| format!(" {}", ago(at))).unwrap_or_default()
                ),
            )
        });
    }
    refused.map(|r| {
        (
            r.error.to_string(),
            r.in_force,
            format!(
                "shown: {}, which tunerd would run on",
                r.in_force.describe()
            ),
        )
    })
}

fn ago(epoch_secs: u64) -> String {
    human_duration(now_secs().saturating_sub(epoch_secs)) + " ago"
}

fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m{}s", s / 60, s % 60),
        s if s < 172_800 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

pub(super) fn status(
    ctx: &Context,
    daemon: Option<&DaemonStatus>,
    refused: Option<&Refused>,
    as_json: bool,
) -> Result<Output, Failure> {
    let plan = ctx.plan();
    let drift = apply::verify(&plan).len();
    let originals = Originals::load(&ctx.root)?;
    let refusal = refusal(daemon, refused);
    let rides = rideout::live(&ctx.root, &ctx.inventory);
    let code = if refusal.is_some() {
        exit::CONFIG
    } else {
        exit::OK
    };
    if as_json {
        let s = StatusJson {
            daemon,
            profile: &ctx.profile.name,
            chosen_by: &ctx.chosen_by,
            config: &ctx.config.source,
            inventory: &ctx.inventory,
            knobs: plan.changes.len(),
            at_value: plan.count(Action::Unchanged),
            drift,
            absent: plan.count(Action::Absent),
            refused: plan.count(Action::Refused),
            originals_recorded: originals.originals.len(),
            config_refused: refusal.as_ref().map(|r| r.0.clone()),
            config_in_force: match (&refusal, daemon) {
                (Some(r), _) => r.1,
                (None, Some(d)) => d.config.in_force,
                (None, None) => InForce::Files,
            },
            rideout: rides,
        };
        return Ok(Output {
            text: json(&s),
            code,
        });
    }
    let inv = &ctx.inventory;
    let mut out = String::new();
    match daemon {
        Some(d) => {
            say!(
                out,
                "daemon    running (pid {}, up {}), health {}, hotplug from {} ({} events), drift check every {}s ({}){}",
                d.pid,
                human_duration(d.uptime_secs),
                d.health.as_str(),
                d.hotplug_source,
                d.hotplug_events,
                d.drift_interval_secs,
                match d.drift_policy {
                    DriftPolicy::Repair => "repair",
                    DriftPolicy::Report => "report only",
                },
                d.last_verify
                    .map(|t| format!(", last {}", ago(t)))
                    .unwrap_or_default()
            );
            // Every failure source the configuration asks for should be here; one that is
            // missing is a blind spot (the daemon's log says why it is not live).
            say!(
                out,
                "watching  {}",
                if d.sources.is_empty() {
                    "nothing: no failure source is live (see the daemon's log)".to_string()
                } else {
                    d.sources.join(", ")
                }
            );
            say!(
                out,
                "alerts    {}",
                if d.alerts.is_empty() {
                    "journal and D-Bus only (no [alert] sink in tunerd.toml)".to_string()
                } else {
                    d.alerts
                        .iter()
                        .map(|a| {
                            let mut t = format!(
                                "{} ({}): {} delivered, {} failed attempts, {} queued",
                                a.name, a.kind, a.delivered, a.failed_attempts, a.queued
                            );
                            if a.rejected > 0 {
                                t.push_str(&format!(", {} refused by the receiver", a.rejected));
                            }
                            if a.dropped > 0 {
                                t.push_str(&format!(", {} dropped (spool full)", a.dropped));
                            }
                            t
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                }
            );
            if d.suspended {
                say!(
                    out,
                    "tuning    suspended by a revert: originals in place, the profile is not enforced until `tunerctl apply`"
                );
            }
            if d.open_incidents > 0 {
                say!(
                    out,
                    "incidents {} open (tunerctl events); {} kernel log records read",
                    d.open_incidents,
                    d.kmsg_records
                );
            }
            for c in &d.contested {
                say!(out, "contested {}", c.describe());
            }
            for r in d.recent_drift.iter().rev().take(5) {
                say!(
                    out,
                    "drift     {} {}: was {}, expected {}{}",
                    ago(r.at),
                    r.target,
                    r.actual.as_deref().unwrap_or("absent"),
                    r.expected,
                    if r.repaired { " (repaired)" } else { "" }
                );
            }
        }
        None => {
            say!(
                out,
                "daemon    not running (tunerctl works directly on the kernel)"
            );
        }
    }
    if let Some((error, _, instead)) = &refusal {
        say!(out, "config    refused: {error}; {instead}");
    }
    say!(
        out,
        "platform  {} ({})",
        inv.platform.kind.as_str(),
        inv.platform.evidence.join("; ")
    );
    say!(
        out,
        "profile   {} ({}; inherits {})",
        ctx.profile.name,
        ctx.chosen_by,
        if ctx.profile.chain.len() > 1 {
            ctx.profile.chain[1..].join(" < ")
        } else {
            "nothing".to_string()
        }
    );
    say!(
        out,
        "tuning    {} knobs: {} at value, {} to set, {} absent, {} refused; {} originals recorded",
        plan.changes.len(),
        plan.count(Action::Unchanged),
        drift,
        plan.count(Action::Absent),
        plan.count(Action::Refused),
        originals.originals.len()
    );
    out.push('\n');
    let mut rows = vec![row(&[
        "DISK",
        "KIND",
        "DRIVER",
        "VENDOR/MODEL",
        "SIZE",
        "ROT",
        "SCHED",
        "STACK",
    ])];
    for d in &inv.disks {
        let sched = ctx
            .root
            .read_lossy(&format!("{}/queue/scheduler", d.sys_dir()))
            .and_then(|s| crate::tune::knob::active_scheduler(&s).map(str::to_string))
            .unwrap_or_else(|| "-".into());
        let mut stack = String::new();
        if !d.slaves.is_empty() {
            stack = format!("on {}", d.slaves.join(","));
        }
        if !d.holders.is_empty() {
            if !stack.is_empty() {
                stack.push(' ');
            }
            let _ = write!(stack, "under {}", d.holders.join(","));
        }
        let mut model = format!("{} {}", d.vendor, d.model).trim().to_string();
        if !d.cloud.is_empty() {
            model = format!("{model} ({})", d.cloud);
        }
        rows.push(vec![
            d.name.clone(),
            d.kind.as_str().to_string(),
            d.driver.clone(),
            if model.is_empty() { "-".into() } else { model },
            human_size(d.size_bytes),
            if d.rotational { "1" } else { "0" }.to_string(),
            sched,
            stack,
        ]);
    }
    out.push_str(&table(&rows));
    let shown: Vec<_> = inv
        .mounts
        .iter()
        .filter(|m| m.disk.is_some() || m.is_network())
        .collect();
    if !shown.is_empty() {
        out.push('\n');
        let mut rows = vec![row(&[
            "MOUNT",
            "FSTYPE",
            "SOURCE",
            "DISK",
            "BDI",
            "RIDES OUT A STALL OF",
        ])];
        for m in shown {
            let ride = rides
                .iter()
                .find(|r| r.mount == m.mount_point)
                .map_or_else(|| "-".to_string(), |r| rideout::human(r.seconds));
            rows.push(vec![
                m.mount_point.clone(),
                m.fstype.clone(),
                m.source.clone(),
                m.disk.clone().unwrap_or_else(|| "-".into()),
                m.bdi.clone().unwrap_or_else(|| "-".into()),
                ride,
            ]);
        }
        out.push_str(&table(&rows));
        // The weakest layer of each mount, and how to strengthen it.
        out.push('\n');
        for r in &rides {
            say!(
                out,
                "ride-out  {}: {}; {}",
                r.mount,
                rideout::human(r.seconds),
                weakest_text(r)
            );
        }
    }
    Ok(Output { text: out, code })
}

pub(super) fn profiles(root: &Root, as_json: bool) -> Result<Output, Failure> {
    let set = ProfileSet::load(root)?;
    let list: Vec<&Profile> = set.names().iter().filter_map(|n| set.get(n)).collect();
    if as_json {
        #[derive(Serialize)]
        struct Row<'a> {
            name: &'a str,
            source: &'a str,
            inherits: Option<&'a str>,
            description: &'a str,
        }
        let rows: Vec<Row> = list
            .iter()
            .map(|p| Row {
                name: &p.name,
                source: &p.source,
                inherits: p.inherits.as_deref(),
                description: &p.description,
            })
            .collect();
        return Ok(Output {
            text: json(&rows),
            code: exit::OK,
        });
    }
    let mut rows = vec![row(&["PROFILE", "SOURCE", "INHERITS", "DESCRIPTION"])];
    for p in list {
        rows.push(vec![
            p.name.clone(),
            p.source.clone(),
            p.inherits.clone().unwrap_or_else(|| "-".into()),
            p.description.clone(),
        ]);
    }
    Ok(Output {
        text: table(&rows),
        code: exit::OK,
    })
}

pub(super) fn profile_show(root: &Root, name: &str, as_json: bool) -> Result<Output, Failure> {
    let set = ProfileSet::load(root)?;
    let p = set.resolve(name)?;
    if as_json {
        return Ok(Output {
            text: json(&p),
            code: exit::OK,
        });
    }
    let mut out = line_of(format_args!(
        "profile {} ({}): {}",
        p.name, p.source, p.description
    ));
    say!(out, "inherits: {}", p.chain.join(" < "));
    for (section, settings) in [("vm", &p.vm), ("kernel", &p.kernel)] {
        if settings.is_empty() {
            continue;
        }
        out.push_str(&format!("\n[{section}]\n"));
        let mut rows = Vec::new();
        for (k, s) in settings {
            rows.push(vec![
                format!("  {}", k.key()),
                s.value.to_string(),
                format!("({})", s.profile),
                s.reason.clone(),
            ]);
        }
        out.push_str(&table(&rows));
    }
    for (section, rules) in [("disk", &p.disk), ("mount", &p.mount)] {
        for r in rules {
            let matchers: Vec<String> = r
                .matchers
                .iter()
                .map(|m| format!("{} = {}", m.key, m.globs.join(" | ")))
                .collect();
            out.push('\n');
            say!(
                out,
                "[[{section}]] {} ({}) match: {}",
                r.name,
                r.profile,
                if matchers.is_empty() {
                    "every device".to_string()
                } else {
                    matchers.join(", ")
                }
            );
            let mut rows = Vec::new();
            for (k, s) in &r.settings {
                let mut value = s.value.to_string();
                if s.accept_risk {
                    value.push_str(" (risk accepted)");
                }
                rows.push(vec![format!("  {}", k.key()), value, s.reason.clone()]);
            }
            out.push_str(&table(&rows));
        }
    }
    Ok(Output {
        text: out,
        code: exit::OK,
    })
}

pub(super) fn check_config(
    root: &Root,
    requested: Option<&str>,
    as_json: bool,
) -> Result<Output, Failure> {
    let set = ProfileSet::load(root)?;
    let config = Config::load(root, &set)?;
    if let Some(name) = requested {
        set.resolve(name)?;
    }
    let text = if as_json {
        json(
            &serde_json::json!({ "ok": true, "config": config.source, "profile": config.profile, "profiles": set.names() }),
        )
    } else {
        line_of(format_args!(
            "ok: {} ({}), {} profiles valid",
            config.source,
            if config.profile == "auto" {
                "profile auto".to_string()
            } else {
                format!("profile {}", config.profile)
            },
            set.names().len()
        ))
    };
    Ok(Output {
        text,
        code: exit::OK,
    })
}

pub(super) fn plan_output(ctx: &Context, plan: &Plan, as_json: bool) -> Output {
    Output {
        text: if as_json {
            json(&rideout::PlanWithRideOut::new(
                &ctx.root,
                &ctx.inventory,
                plan,
                ctx.profile.rideout_secs,
            ))
        } else {
            render_plan(ctx, plan)
        },
        code: exit::OK,
    }
}

pub(super) fn switched(st: &DaemonStatus, as_json: bool) -> Output {
    let text = if as_json {
        json(st)
    } else {
        line_of(format_args!(
            "switched: profile {} (health {})",
            st.profile,
            st.health.as_str()
        ))
    };
    Output {
        text,
        code: exit::OK,
    }
}

/// `tunerctl events`: exit 5 while an incident is open.
pub(super) fn events_output(events: &EventsReply, from_daemon: bool, as_json: bool) -> Output {
    let code = if events.open.is_empty() {
        exit::OK
    } else {
        exit::INCIDENT
    };
    let text = if as_json {
        json(events)
    } else {
        let mut text = render_incidents("open", &events.open);
        text.push_str(&render_incidents("recent", &events.recent));
        if !from_daemon {
            text.push_str("(tunerd is not running: from its last saved state)\n");
        }
        text
    };
    Output { text, code }
}
