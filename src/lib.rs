//! tunerd keeps Linux virtual machines alive when their storage misbehaves.
//!
//! Two pipelines, the service that runs them, and two interfaces on top:
//!
//! - tuning, [`tune`]: [`tune::profile`] -> [`tune::plan`] -> [`tune::apply`]
//! - detection, [`detect`]: sources -> records -> observations -> incidents -> notifications
//! - alerting, [`alert`]: notifications -> every sink, spooled and retried
//! - the daemon, [`service`]: the loop, its state, the bus
//! - `tunerctl`, [`cli`]
//!
//! Under them, [`host`] (the machine) and [`util`] (logging, time, TOML diagnostics).

pub mod alert;
pub mod cli;
pub mod config;
pub mod detect;
pub mod host;
pub mod service;
pub mod tune;
pub mod util;
