//! The detection pipeline: [`sources`] (kmsg, journal, fanotify, samplers) -> records
//! ([`parse`]) -> observations ([`classify`]) -> incidents ([`incidents`]) -> notifications.
//! [`Engine`] is the one fold from records to incidents, fed by the daemon and by
//! `tunerctl scan` alike; [`types`] is the pipeline's vocabulary. Depends on [`crate::host`] and [`crate::util`]; never on
//! tuning.

pub mod classify;
pub(crate) mod engine;
pub(crate) mod incidents;
pub mod parse;
pub(crate) mod rules;
pub(crate) mod sources;
pub mod types;

pub(crate) use engine::{Clock, Engine};

/// `[watch] frozen_secs` by default: a filesystem frozen this long without a thaw is an
/// incident. Backup agents freeze for seconds (Hyper-V's VSS allows 10 s, qemu-ga's callers
/// thaw right after the snapshot); a minute is a thaw that was lost.
pub(crate) const FROZEN_SECS: u64 = 60;
