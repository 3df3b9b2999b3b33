//! The floor under everything: logging, time, the TOML diagnostics toolkit. Depends on
//! nothing else in the crate.

pub mod log;
pub mod time;
pub mod toml;
