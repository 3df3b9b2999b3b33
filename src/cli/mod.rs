//! `tunerctl` and `tunerd`'s command lines: the argument types (kept in the library so man
//! pages and completions can be generated from them), each command, and its output as a
//! readable table or as JSON.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::config::Config;
use crate::detect::types::Incident;
use crate::host::inventory::Inventory;
use crate::host::sys::Root;
use crate::service::bus::Client;
use crate::service::DaemonStatus;
use crate::tune::apply::{self, Drift, Journal, Report, Status};
use crate::tune::plan::{self, Action, Plan};
use crate::tune::profile::{Profile, ProfileSet};
use crate::util::toml::ConfigError;

/// Exit codes, for scripts and monitors.
pub mod exit {
    /// Everything as wanted.
    pub const OK: u8 = 0;
    /// A knob was rejected by the kernel, a revert failed, or the kernel state could not be read.
    pub const FAILURE: u8 = 1;
    /// Bad command line.
    pub const USAGE: u8 = 2;
    /// `verify`: at least one knob differs from the profile.
    pub const DRIFT: u8 = 3;
    /// The configuration or a profile is invalid; nothing was written.
    pub const CONFIG: u8 = 4;
    /// `events`: a storage incident is open; `scan`: the log shows storage trouble.
    pub const INCIDENT: u8 = 5;
}

const EXIT_HELP: &str =
    "Exit codes: 0 ok; 1 a knob was rejected by the kernel or state could not be read; \
2 bad usage; 3 drift found (verify); 4 invalid configuration or profile (nothing written).";

#[derive(Debug, Parser)]
#[command(
    name = "tunerctl",
    version,
    about = "Inspect and apply tunerd's storage tuning: status, plan, apply, verify, revert",
    after_help = EXIT_HELP
)]
pub struct Tunerctl {
    /// Directory that stands for `/`: kernel state (sys, proc), configuration (etc/tunerd) and
    /// runtime state (run/tunerd) are all found under it.
    #[arg(long, global = true, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Use this profile instead of the one configured in /etc/tunerd/tunerd.toml (works
    /// directly on the kernel, not through the daemon).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Work directly on the kernel even when tunerd runs.
    #[arg(long, global = true)]
    pub direct: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Platform, disks, mounts, the active profile and whether the machine is at it.
    Status,
    /// What apply would change, knob by knob, with current and desired values and the reason.
    Plan,
    /// Apply the profile: record originals, write in a safe order, report each knob.
    Apply,
    /// Compare the kernel's values with the profile; exit 3 on drift.
    Verify,
    /// Restore every original value recorded by apply.
    Revert,
    /// List the available profiles.
    Profiles,
    /// Show one profile.
    Profile {
        #[command(subcommand)]
        action: ProfileCommand,
    },
    /// Validate /etc/tunerd/tunerd.toml and every profile; exit 4 with the first error.
    CheckConfig,
    /// Switch the running daemon to another profile (what the old one set and the new one
    /// does not want is reverted first).
    Switch { name: String },
    /// Make the running daemon re-read /etc/tunerd (a broken configuration is refused).
    Reload,
    /// Open and recent storage incidents (exit 5 while one is open).
    Events,
    /// Find storage incidents in a saved kernel log: raw /dev/kmsg records, dmesg output (with
    /// or without timestamps), journalctl -k (short or JSON). `-` reads standard input.
    Scan { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Show a profile resolved through its `inherits` chain, with the reason for each setting.
    Show { name: String },
}

/// What one command produced: text for a person, or a value for a script, and an exit code.
pub struct Output {
    pub text: String,
    pub code: u8,
}

fn json<T: Serialize>(value: &T) -> String {
    match serde_json::to_string_pretty(value) {
        Ok(s) => s + "\n",
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}

/// A command's failure before it produced its normal output.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure {
            message: e.to_string(),
            code: exit::CONFIG,
        }
    }
}

impl From<apply::JournalError> for Failure {
    fn from(e: apply::JournalError) -> Self {
        Failure {
            message: e.to_string(),
            code: exit::FAILURE,
        }
    }
}

/// Everything a command needs: the root, the validated configuration and profile, the inventory.
pub struct Context {
    pub root: Root,
    pub profiles: ProfileSet,
    pub config: Config,
    pub profile: Profile,
    /// Why this profile: `--profile`, `config`, or `auto (platform kvm)`.
    pub chosen_by: String,
    pub inventory: Inventory,
}

impl Context {
    pub fn load(root: Root, requested: Option<&str>) -> Result<Context, Failure> {
        let profiles = ProfileSet::load(&root)?;
        let config = Config::load(&root, &profiles)?;
        let inventory = Inventory::read(&root).map_err(|e| Failure {
            message: format!("cannot read the inventory: {e}"),
            code: exit::FAILURE,
        })?;
        let (name, chosen_by) =
            config.choose_profile(requested, "--profile", inventory.platform.kind);
        let profile = profiles.resolve(&name)?;
        Ok(Context {
            root,
            profiles,
            config,
            profile,
            chosen_by,
            inventory,
        })
    }

    pub fn plan(&self) -> Plan {
        plan::plan(&self.root, &self.profile, &self.inventory)
    }
}

fn from_daemon<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Failure> {
    serde_json::from_str(text).map_err(|e| Failure {
        message: format!("unexpected answer from tunerd: {e}"),
        code: exit::FAILURE,
    })
}

fn daemon_call(client: &Client, method: &str, arg: Option<&str>) -> Result<String, Failure> {
    client.call(method, arg).map_err(|message| Failure {
        message: format!("tunerd: {message}"),
        code: exit::FAILURE,
    })
}

/// Said on stderr when there is no daemon to go through.
const DIRECT: &str = "tunerctl: tunerd is not running; working directly on the kernel";

/// Runs one `tunerctl` command: through the running daemon when there is one for this root
/// (so its state, journal and signals stay whole), directly on the kernel when not.
pub fn run(args: &Tunerctl) -> Result<Output, Failure> {
    let root = Root::new(&args.root);
    let profile = args.profile.as_deref();
    let needs_daemon = matches!(
        args.command,
        Command::Events
            | Command::Status
            | Command::Plan
            | Command::Apply
            | Command::Verify
            | Command::Revert
            | Command::Switch { .. }
            | Command::Reload
    );
    // An explicit --profile asks for that profile, not the daemon's: work directly.
    let daemon = if needs_daemon && !args.direct && profile.is_none() {
        Client::find(&args.root)
    } else {
        None
    };
    let say_direct = |json: bool| {
        if !json && !args.direct && profile.is_none() {
            eprintln!("{DIRECT}");
        }
    };
    match &args.command {
        Command::Profiles => profiles(&root, args.json),
        Command::Profile {
            action: ProfileCommand::Show { name },
        } => profile_show(&root, name, args.json),
        Command::CheckConfig => check_config(&root, profile, args.json),
        Command::Status => {
            let daemon_status = match &daemon {
                Some(c) => Some(from_daemon::<DaemonStatus>(&daemon_call(
                    c, "Status", None,
                )?)?),
                None => None,
            };
            // The daemon's profile is the one in force (it may be pinned by a switch).
            let mut ctx = Context::load(
                root,
                daemon_status
                    .as_ref()
                    .map(|d| d.profile.as_str())
                    .or(profile),
            )?;
            if let Some(d) = &daemon_status {
                ctx.chosen_by = d.chosen_by.clone();
            }
            status(&ctx, daemon_status.as_ref(), args.json)
        }
        Command::Plan => {
            let ctx = Context::load(root, profile)?;
            let plan: Plan = match &daemon {
                Some(c) => from_daemon(&daemon_call(c, "Plan", None)?)?,
                None => ctx.plan(),
            };
            let text = if args.json {
                json(&plan)
            } else {
                render_plan(&ctx, &plan)
            };
            Ok(Output {
                text,
                code: exit::OK,
            })
        }
        Command::Apply => {
            let report: Report = match &daemon {
                Some(c) => from_daemon(&daemon_call(c, "Apply", None)?)?,
                None => {
                    let ctx = Context::load(root, profile)?;
                    say_direct(args.json);
                    apply::apply(&ctx.root, &ctx.plan())?
                }
            };
            Ok(report_output(&report, args.json, "apply"))
        }
        Command::Verify => {
            let (profile_name, drift): (String, Vec<Drift>) = match &daemon {
                Some(c) => {
                    let v: serde_json::Value = from_daemon(&daemon_call(c, "Verify", None)?)?;
                    (
                        v["profile"].as_str().unwrap_or("").to_string(),
                        serde_json::from_value(v["drift"].clone()).map_err(|e| Failure {
                            message: format!("unexpected answer from tunerd: {e}"),
                            code: exit::FAILURE,
                        })?,
                    )
                }
                None => {
                    let ctx = Context::load(root, profile)?;
                    (ctx.profile.name.clone(), apply::verify(&ctx.plan()))
                }
            };
            Ok(verify_output(&profile_name, &drift, args.json))
        }
        Command::Revert => {
            let report: Report = match &daemon {
                Some(c) => from_daemon(&daemon_call(c, "Revert", None)?)?,
                None => {
                    say_direct(args.json);
                    apply::revert(&root)?
                }
            };
            Ok(report_output(&report, args.json, "revert"))
        }
        Command::Switch { name } => {
            let Some(c) = &daemon else {
                return Err(not_running("switch"));
            };
            let st: DaemonStatus = from_daemon(&daemon_call(c, "SwitchProfile", Some(name))?)?;
            let text = if args.json {
                json(&st)
            } else {
                format!(
                    "switched: profile {} (health {})\n",
                    st.profile,
                    st.health.as_str()
                )
            };
            Ok(Output {
                text,
                code: exit::OK,
            })
        }
        Command::Events => {
            let events: serde_json::Value = match &daemon {
                Some(c) => from_daemon(&daemon_call(c, "Events", None)?)?,
                None => {
                    let state = root
                        .read_opt(crate::host::state_files::INCIDENTS)
                        .ok()
                        .flatten()
                        .and_then(|t| {
                            serde_json::from_str::<crate::detect::incidents::Incidents>(&t).ok()
                        })
                        .unwrap_or_default();
                    let open: Vec<_> = state.open.values().map(|o| o.incident.clone()).collect();
                    serde_json::json!({ "open": open, "recent": state.recent })
                }
            };
            let open: Vec<Incident> =
                serde_json::from_value(events["open"].clone()).unwrap_or_default();
            let recent: Vec<Incident> =
                serde_json::from_value(events["recent"].clone()).unwrap_or_default();
            let code = if open.is_empty() {
                exit::OK
            } else {
                exit::INCIDENT
            };
            let text = if args.json {
                json(&events)
            } else {
                let mut text = render_incidents("open", &open);
                text.push_str(&render_incidents("recent", &recent));
                if daemon.is_none() {
                    text.push_str("(tunerd is not running: from its last saved state)\n");
                }
                text
            };
            Ok(Output { text, code })
        }
        Command::Scan { file } => scan(file, args.json),
        Command::Reload => {
            let Some(c) = &daemon else {
                return Err(not_running("reload"));
            };
            let message = daemon_call(c, "Reload", None)?;
            let text = if args.json {
                json(&serde_json::json!({ "ok": true, "message": message }))
            } else {
                format!("{message}\n")
            };
            Ok(Output {
                text,
                code: exit::OK,
            })
        }
    }
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

/// `tunerctl scan`: the incidents a saved log shows, as the daemon would have raised them.
fn scan(file: &std::path::Path, as_json: bool) -> Result<Output, Failure> {
    use std::io::Read;
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|e| Failure {
        message: format!("{}: {e}", file.display()),
        code: exit::FAILURE,
    })?;
    let records = crate::detect::parse::parse_log(&text);
    let mut engine = crate::detect::incidents::Health::new(
        crate::detect::incidents::HealthConfig {
            max_open: 4096,
            ..Default::default()
        },
        Default::default(),
    );
    let mut found = 0u64;
    for rec in &records {
        if let Some(obs) = crate::detect::classify::classify(rec) {
            found += 1;
            let origin = rec.seq.map(|s| format!("k{s}"));
            // A saved log may come from another machine: devices stay as the log names them.
            let place = crate::detect::incidents::Place::default();
            let t = rec
                .realtime_us
                .map(|us| us / 1_000_000)
                .or(rec.monotonic_us.map(|us| us / 1_000_000))
                .unwrap_or(0);
            engine.observe(&obs, &place, origin.as_deref(), t);
        }
    }
    let mut incidents: Vec<Incident> = engine.open().into_iter().cloned().collect();
    incidents.extend(engine.state.recent.iter().cloned());
    incidents.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
    let code = if incidents.is_empty() {
        exit::OK
    } else {
        exit::INCIDENT
    };
    let text = if as_json {
        json(
            &serde_json::json!({ "records": records.len(), "observations": found, "incidents": incidents }),
        )
    } else if incidents.is_empty() {
        format!("{} records, no storage trouble found\n", records.len())
    } else {
        let mut rows = vec![row(&["KIND", "SEVERITY", "DEVICE", "COUNT", "FIRST LINE"])];
        for i in &incidents {
            rows.push(vec![
                serde_json::to_string(&i.kind)
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
                i.severity.as_str().to_string(),
                i.device.clone().unwrap_or_else(|| "-".into()),
                i.count.to_string(),
                i.evidence.first().cloned().unwrap_or_default(),
            ]);
        }
        format!(
            "{}\n{} records, {} lines about storage trouble, {} incidents\n",
            table(&rows),
            records.len(),
            found,
            incidents.len()
        )
    };
    Ok(Output { text, code })
}

fn not_running(what: &str) -> Failure {
    Failure {
        message: format!(
            "{what} needs the running tunerd (none answers on the system bus for this root); without it, set `profile` in /etc/tunerd/tunerd.toml and run `tunerctl apply`"
        ),
        code: exit::FAILURE,
    }
}

fn verify_output(profile: &str, drift: &[Drift], as_json: bool) -> Output {
    let code = if drift.is_empty() {
        exit::OK
    } else {
        exit::DRIFT
    };
    let text = if as_json {
        json(&serde_json::json!({ "profile": profile, "drift": drift }))
    } else if drift.is_empty() {
        format!("ok: every knob of profile {profile} is at its value\n")
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
        format!(
            "{}drift: {} knob(s) differ from profile {profile}\n",
            table(&rows),
            drift.len()
        )
    };
    Output { text, code }
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Left-aligned columns, two spaces apart; the last column is never padded.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
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
    let mut out = format!(
        "profile {} ({}); platform {}\n\n",
        ctx.profile.name,
        ctx.chosen_by,
        ctx.inventory.platform.kind.as_str()
    );
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
    out
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

fn report_output(report: &Report, as_json: bool, verb: &str) -> Output {
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
}

fn ago(epoch_secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    human_duration(now.saturating_sub(epoch_secs)) + " ago"
}

fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m{}s", s / 60, s % 60),
        s if s < 172_800 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

fn status(ctx: &Context, daemon: Option<&DaemonStatus>, as_json: bool) -> Result<Output, Failure> {
    let plan = ctx.plan();
    let drift = apply::verify(&plan).len();
    let journal = Journal::load(&ctx.root)?;
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
            originals_recorded: journal.originals.len(),
        };
        return Ok(Output {
            text: json(&s),
            code: exit::OK,
        });
    }
    let inv = &ctx.inventory;
    let mut out = String::new();
    match daemon {
        Some(d) => {
            let _ = writeln!(
                out,
                "daemon    running (pid {}, up {}), health {}, hotplug from {} ({} events), drift check every {}s ({}){}",
                d.pid,
                human_duration(d.uptime_secs),
                d.health.as_str(),
                d.hotplug_source,
                d.hotplug_events,
                d.drift_interval_secs,
                match d.drift_policy {
                    crate::config::DriftPolicy::Repair => "repair",
                    crate::config::DriftPolicy::Report => "report only",
                },
                d.last_verify
                    .map(|t| format!(", last {}", ago(t)))
                    .unwrap_or_default()
            );
            if d.suspended {
                let _ = writeln!(
                    out,
                    "tuning    suspended by a revert: originals in place, the profile is not enforced until `tunerctl apply`"
                );
            }
            if d.open_incidents > 0 {
                let _ = writeln!(
                    out,
                    "incidents {} open (tunerctl events); {} kernel log records read",
                    d.open_incidents, d.kmsg_records
                );
            }
            for r in d.recent_drift.iter().rev().take(5) {
                let _ = writeln!(
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
            let _ = writeln!(
                out,
                "daemon    not running (tunerctl works directly on the kernel)"
            );
        }
    }
    let _ = writeln!(
        out,
        "platform  {} ({})",
        inv.platform.kind.as_str(),
        inv.platform.evidence.join("; ")
    );
    let _ = writeln!(
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
    let _ = writeln!(
        out,
        "tuning    {} knobs: {} at value, {} to set, {} absent, {} refused; {} originals recorded",
        plan.changes.len(),
        plan.count(Action::Unchanged),
        drift,
        plan.count(Action::Absent),
        plan.count(Action::Refused),
        journal.originals.len()
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
        let mut rows = vec![row(&["MOUNT", "FSTYPE", "SOURCE", "DISK", "BDI"])];
        for m in shown {
            rows.push(vec![
                m.mount_point.clone(),
                m.fstype.clone(),
                m.source.clone(),
                m.disk.clone().unwrap_or_else(|| "-".into()),
                m.bdi.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&table(&rows));
    }
    Ok(Output {
        text: out,
        code: exit::OK,
    })
}

fn profiles(root: &Root, as_json: bool) -> Result<Output, Failure> {
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

fn profile_show(root: &Root, name: &str, as_json: bool) -> Result<Output, Failure> {
    let set = ProfileSet::load(root)?;
    let p = set.resolve(name)?;
    if as_json {
        return Ok(Output {
            text: json(&p),
            code: exit::OK,
        });
    }
    let mut out = format!(
        "profile {} ({}): {}\ninherits: {}\n",
        p.name,
        p.source,
        p.description,
        p.chain.join(" < ")
    );
    if !p.vm.is_empty() {
        out.push_str("\n[vm]\n");
        let mut rows = Vec::new();
        for (k, s) in &p.vm {
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
            let _ = writeln!(
                out,
                "\n[[{section}]] {} ({}) match: {}",
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

fn check_config(root: &Root, requested: Option<&str>, as_json: bool) -> Result<Output, Failure> {
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
        format!(
            "ok: {} ({}), {} profiles valid\n",
            config.source,
            if config.profile == "auto" {
                "profile auto".to_string()
            } else {
                format!("profile {}", config.profile)
            },
            set.names().len()
        )
    };
    Ok(Output {
        text,
        code: exit::OK,
    })
}

/// `tunerd`'s command line.
#[derive(Debug, Parser)]
#[command(
    name = "tunerd",
    version,
    about = "Holds every disk at the configured storage profile: applies it at start, tunes hotplugged disks, repairs drift, serves org.tunerd.Tuner1 on the system bus",
    after_help = "Signals: SIGHUP reloads /etc/tunerd (a broken configuration is refused and the running one kept); SIGTERM stops (settings stay unless on_stop = \"revert\").\nExit codes: 0 stopped cleanly; 1 could not run; 4 invalid configuration at start."
)]
pub struct TunerdArgs {
    /// Directory that stands for `/` (kernel state, configuration and runtime state under it).
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Use this profile instead of the configured one.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Apply once and exit, as `tunerctl apply` does, without serving.
    #[arg(long)]
    pub once: bool,
    /// Do not serve the D-Bus API (for machines without a system bus).
    #[arg(long)]
    pub no_dbus: bool,
}

/// Applies the configured profile once and reports a one-line summary.
pub fn tunerd_apply_once(args: &TunerdArgs) -> Result<Output, Failure> {
    let ctx = Context::load(Root::new(&args.root), args.profile.as_deref())?;
    let report = apply::apply(&ctx.root, &ctx.plan())?;
    let mut text = String::new();
    for o in report
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Rejected)
    {
        let _ = writeln!(
            text,
            "{}: {} rejected: {}",
            o.target,
            o.wanted,
            o.error.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(
        text,
        "profile {} ({}): {} written, {} unchanged, {} rejected",
        ctx.profile.name,
        ctx.chosen_by,
        report.written(),
        report.count(Status::Unchanged),
        report.count(Status::Rejected)
    );
    Ok(Output {
        text,
        code: if report.ok() { exit::OK } else { exit::FAILURE },
    })
}
