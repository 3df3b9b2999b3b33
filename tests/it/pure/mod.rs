//! The pure tier: no root and no program but tunerctl itself. Runs anywhere `cargo test`
//! builds.

mod catalog;
mod config_errors;
mod doc_examples;
mod fixture_plans;
mod rideout;
mod scan;
mod tiers;
