//! tunerd keeps Linux virtual machines alive when their storage misbehaves.
//!
//! Data flows one way: [`sys`] (the one root-prefixed handle on kernel state) ->
//! [`inventory`] (what disks, mounts and platform there are) -> [`profile`] (what the user
//! wants, validated) -> [`plan`] (pure: what to change and why) -> [`apply`] (journal the
//! originals, write, verify, revert). [`daemon`] holds the machine at the profile (hotplug,
//! drift, reload) and serves [`dbus`]; [`cli`] is `tunerctl` on top of both.

pub mod alert;
pub mod apply;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dbus;
pub mod event;
pub mod fanotify;
pub mod health;
pub mod hotplug;
pub mod inventory;
pub mod journal;
pub mod journalwatch;
pub mod kmsg;
pub mod knob;
pub mod logfile;
pub mod plan;
pub mod profile;
pub mod sys;
pub mod watch;
