//! The detection pipeline: [`sources`] (kmsg, journal, fanotify, samplers) -> records
//! ([`parse`]) -> observations ([`classify`]) -> incidents ([`incidents`]) -> notifications.
//! [`types`] is its vocabulary. Depends on [`crate::host`] and [`crate::util`]; never on
//! tuning.

pub mod classify;
pub mod incidents;
pub mod parse;
pub mod sources;
pub mod types;
