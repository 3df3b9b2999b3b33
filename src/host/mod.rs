//! The machine: the one root-prefixed handle on kernel state, configuration and runtime state
//! ([`sys`]), every file under `/run/tunerd` ([`state_files`]), and what the machine has
//! ([`inventory`]: disks, stacks, mounts, platform). Both pipelines read it; it depends only
//! on [`crate::util`].

pub(crate) mod dm;
pub(crate) mod inventory;
pub(crate) mod state_files;
pub mod sys;
