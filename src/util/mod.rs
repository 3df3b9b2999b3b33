//! The floor under everything: logging, time, the TOML diagnostics toolkit. Depends on
//! nothing else in the crate.

pub(crate) mod log;
pub(crate) mod sync;
pub(crate) mod time;
pub(crate) mod toml;
