//! `tunerctl`: each command, through the running daemon or directly on the machine
//! (`backend`), printed as a table or as JSON (`render`); `scan` over a saved log
//! (`scan`). The command lines of both binaries are in `args`.

use std::fmt::Write as _;

use serde::Serialize;

mod args;
mod backend;
mod render;
pub(crate) mod scan;

pub use args::{Command, ProfileCommand, Tunerctl, TunerdArgs};

use crate::api::exit;
use crate::config::Config;
use crate::host::inventory::Inventory;
use crate::host::sys::Root;
use crate::tune::apply::{self, Status};
use crate::tune::plan::{self, Plan};
use crate::tune::profile::{Profile, ProfileSet};
use crate::util::toml::ConfigError;

use backend::Backend;

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

impl From<apply::OriginalsError> for Failure {
    fn from(e: apply::OriginalsError) -> Self {
        Failure {
            message: e.to_string(),
            code: exit::FAILURE,
        }
    }
}

/// Everything a command needs: the root, the validated configuration and profile, the inventory.
pub(crate) struct Context {
    pub root: Root,
    pub config: Config,
    pub profile: Profile,
    /// Why this profile: `--profile`, `config`, or `auto (platform kvm)`.
    pub chosen_by: String,
    pub inventory: Inventory,
}

impl Context {
    pub(crate) fn load(root: Root, requested: Option<&str>) -> Result<Context, Failure> {
        let profiles = ProfileSet::load(&root)?;
        // tunerd.toml is root's (0600: it may hold secrets). A user who may not read it still
        // gets status and plan for a profile named otherwise: the daemon's, or --profile.
        let config = if requested.is_some() && !Config::readable(&root) {
            Config::defaults(&format!(
                "{} (root's only, not read)",
                root.display(crate::config::CONFIG_FILE)
            ))
        } else {
            Config::load(&root, &profiles)?
        };
        let inventory = Inventory::read(&root).map_err(|e| Failure {
            message: format!("cannot read the inventory: {e}"),
            code: exit::FAILURE,
        })?;
        let (name, chosen_by) =
            config.choose_profile(requested, "--profile", inventory.platform.kind);
        let profile = profiles.resolve(&name)?;
        Ok(Context {
            root,
            config,
            profile,
            chosen_by,
            inventory,
        })
    }

    /// For `status`: like [`Context::load`], but files the daemon would refuse do not stop
    /// it. It shows what the daemon runs on then (the previous configuration, when this user
    /// may read it, or the built-in one: `config::Loaded`) and returns why the files were
    /// refused.
    pub(crate) fn load_for_status(
        root: Root,
        requested: Option<&str>,
    ) -> Result<(Context, Option<Refused>), Failure> {
        if !Config::readable(&root) {
            // Not root's: the daemon's profile by name, as `load` does.
            return Ok((Context::load(root, requested)?, None));
        }
        let read = crate::config::Loaded::read(&root)?;
        let refused = read.refused.map(|error| Refused {
            error,
            in_force: read.in_force,
        });
        let inventory = Inventory::read(&root).map_err(|e| Failure {
            message: format!("cannot read the inventory: {e}"),
            code: exit::FAILURE,
        })?;
        let kind = inventory.platform.kind;
        let (mut name, mut chosen_by) = read.config.choose_profile(requested, "--profile", kind);
        if refused.is_some() && read.profiles.get(&name).is_none() {
            // The daemon's profile came from files this user cannot see as the daemon does.
            (name, chosen_by) = read.config.choose_profile(None, "--profile", kind);
        }
        let profile = read.profiles.resolve(&name)?;
        Ok((
            Context {
                root,
                config: read.config,
                profile,
                chosen_by,
                inventory,
            },
            refused,
        ))
    }

    pub(crate) fn plan(&self) -> Plan {
        plan::plan(&self.root, &self.profile, &self.inventory)
    }
}

/// Why `status` found the configuration files refused, and what it showed instead.
pub(crate) struct Refused {
    pub error: ConfigError,
    pub in_force: crate::config::InForce,
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

/// Said on stderr when there is no daemon to go through.
const DIRECT: &str = "tunerctl: tunerd is not running; working directly on the kernel";

/// Runs one `tunerctl` command: through the running daemon when there is one for this root
/// (so its state, originals and signals stay whole), directly on the kernel when not.
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
    let backend = Backend::find(
        &args.root,
        needs_daemon && !args.direct && profile.is_none(),
    );
    let say_direct = || {
        if !args.json && !args.direct && profile.is_none() {
            eprintln!("{DIRECT}");
        }
    };
    let load = || Context::load(root.clone(), profile);
    match &args.command {
        Command::Profiles => render::profiles(&root, args.json),
        Command::Profile {
            action: ProfileCommand::Show { name },
        } => render::profile_show(&root, name, args.json),
        Command::CheckConfig => render::check_config(&root, profile, args.json),
        Command::Status => {
            let daemon = backend.daemon_status()?;
            // The daemon's profile is the one in force (it may be pinned by a switch).
            let (mut ctx, refused) = Context::load_for_status(
                root.clone(),
                daemon.as_ref().map(|d| d.profile.as_str()).or(profile),
            )?;
            if let Some(d) = &daemon {
                ctx.chosen_by = d.chosen_by.clone();
            }
            render::status(&ctx, daemon.as_ref(), refused.as_ref(), args.json)
        }
        Command::Plan => {
            let ctx = load()?;
            let plan = backend.plan(&ctx)?;
            Ok(render::plan_output(&ctx, &plan, args.json))
        }
        Command::Apply => {
            let report = backend.apply(|| {
                let ctx = load()?;
                say_direct();
                Ok(ctx)
            })?;
            Ok(render::report_output(&report, args.json, "apply"))
        }
        Command::Verify => Ok(render::verify_output(&backend.verify(load)?, args.json)),
        Command::Revert => {
            if !backend.is_daemon() {
                say_direct();
            }
            let report = backend.revert(&root)?;
            Ok(render::report_output(&report, args.json, "revert"))
        }
        Command::Switch { name } => Ok(render::switched(&backend.switch(name)?, args.json)),
        Command::Events => {
            let events = backend.events(&root)?;
            Ok(render::events_output(
                &events,
                backend.is_daemon(),
                args.json,
            ))
        }
        Command::Scan { file, config } => {
            let watch = scan::watch_settings(&root, config.as_deref())?;
            scan::scan(file, args.json, &watch)
        }
        Command::Reload => {
            let message = backend.reload()?;
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
