//! The detection pipeline: [`sources`] (kmsg, journal, fanotify, samplers) -> records
//! ([`parse`]) -> observations ([`classify`]) -> incidents ([`incidents`]) -> notifications.
//! [`Engine`] is the one fold from records to incidents, fed by the daemon and by
//! `tunerctl scan` alike; [`types`] is the pipeline's vocabulary. Depends on [`crate::host`] and [`crate::util`]; never on
//! tuning.

pub mod classify;
pub(crate) mod engine;
pub(crate) mod incidents;
pub mod parse;
pub(crate) mod sources;
pub mod types;

pub(crate) use engine::{Clock, Engine};
