//! tunerd keeps Linux virtual machines alive when their storage misbehaves.
//!
//! # The map
//!
//! Two pipelines, alerting, the service that runs them, and two interfaces on top:
//!
//! ```text
//!  bin/tunerd.rs ─ service ──────────────┐          bin/tunerctl.rs ─ cli
//!                  (loop, state, bus)    │                            (backend, render, scan)
//!                     │        │         └──────── api ───────────────┘
//!                     │        │           (bus names, replies, exit codes)
//!  tuning:  tune      │        detect  :detection
//!   profile -> plan -> apply    sources -> parse -> classify -> incidents (Engine)
//!   knob table, hotplug                       │
//!                                           alert  (webhooks, Alertmanager, exec,
//!                                                   journald, textfile; spool, retry)
//!  config: tunerd.toml ([daemon], [watch], [alert]) and the profile choice
//!  host:   the machine (sys: the one handle on `/`), inventory, state_files
//!  util:   log!, time, TOML diagnostics
//! ```
//!
//! - [`tune`]: profile -> plan (pure) -> apply, verify, revert.
//! - [`detect`]: sources -> records -> observations -> incidents; [`detect::Engine`] is the
//!   one fold, fed by the daemon and by `tunerctl scan`.
//! - [`alert`]: every notification to every sink, at least once.
//! - [`service`]: the daemon; [`cli`]: `tunerctl`; [`api`]: the contract between them.
//! - [`config`]: `/etc/tunerd/tunerd.toml`; [`host`]: the machine; [`util`]: the floor.
//!
//! # Dependency rules
//!
//! | module | may import |
//! |---|---|
//! | `util` | nothing in the crate |
//! | `host` | `util` |
//! | `tune` | `host`, `util` |
//! | `detect` | `host`, `util` |
//! | `alert` | `detect`, `host`, `util` |
//! | `config` | `tune`, `detect`, `alert`, `host`, `util` |
//! | `api` | `config`, `detect`, `tune`, `util` |
//! | `service` | everything above; never `cli` |
//! | `cli` | everything above but `alert`; never `service` (it talks to the daemon over D-Bus) |
//!
//! Neither pipeline imports the other; nothing imports `service` or `cli` but the binaries;
//! inside the service, the state never imports the loop or the bus. `src/tests.rs` checks
//! this table against every `crate::` path in `src/`.
//!
//! Only [`host::sys`] knows where `/` is: everything takes a [`host::sys::Root`], so every
//! feature runs on a fixture tree and on the real kernel with the same code.

// What the binaries, tests, benchmarks and fuzz targets use is `pub`; the rest is the
// crate's own.
pub mod alert;
pub(crate) mod api;
pub mod cli;
pub(crate) mod config;
pub mod detect;
pub mod host;
pub mod service;
pub(crate) mod tune;
pub(crate) mod util;

#[cfg(test)]
mod tests;
