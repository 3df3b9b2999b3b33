//! The command lines of both binaries, kept in the library so that man pages and shell
//! completions are generated from the same definitions that parse them: `build.rs` includes
//! this file, so it uses nothing but clap and std.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The exit codes (`api::exit`) as `--help` and the man pages say them.
pub(crate) const EXIT_HELP: &str =
    "Exit codes: 0 ok; 1 a knob was rejected by the kernel or state could not be read; \
2 bad usage; 3 drift found (verify); 4 invalid configuration or profile (nothing written; \
status: the daemon refused its configuration files and runs on the previous or built-in one); \
5 a storage incident is open (events) or the log shows storage trouble (scan).";

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
    /// Platform, disks, mounts, the active profile and whether the machine is at it; exit 4
    /// when the configuration files are refused (shown with the error and what runs instead).
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
    /// or without timestamps), journalctl -k (short or JSON). `-` reads standard input. Uses
    /// the `[[watch.rule]]`s and `frozen_secs` of /etc/tunerd/tunerd.toml, or of `--config`.
    Scan {
        file: PathBuf,
        /// Take `[watch]` (user rules, frozen_secs) from this tunerd.toml instead: test a rule
        /// on a saved log before deploying it.
        #[arg(long, value_name = "TUNERD_TOML")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Show a profile resolved through its `inherits` chain, with the reason for each setting.
    Show { name: String },
}

/// `tunerd`'s command line.
#[derive(Debug, Parser)]
#[command(
    name = "tunerd",
    version,
    about = "Holds every disk at the configured storage profile: applies it at start, tunes hotplugged disks, repairs drift, serves org.tunerd.Tuner1 on the system bus",
    after_help = "Signals: SIGHUP reloads /etc/tunerd (a broken configuration is refused and the running one kept); SIGTERM stops (settings stay unless on_stop = \"revert\").\nA configuration refused at start (a syntax error, a file others may write) does not stop the daemon: it runs on the last configuration it accepted (kept in /run/tunerd/accepted.json) or on the built-in one, and says so in the journal and in `tunerctl status`.\nExit codes: 0 stopped cleanly; 1 could not run; 4 invalid configuration or profile (--once, or an unknown --profile)."
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
