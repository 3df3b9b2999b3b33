//! The integration tests of tunerd: one test binary (`cargo test --test it`), so the shared
//! harness in `common/` is compiled once. Each test sits in the module of its tier, and a
//! tier is selected by name:
//!
//! - `pure::`     no root, no external program: the catalog and `tunerctl scan` over captured
//!   logs, configuration errors, the plans of the platform fixtures;
//! - `fixture::`  platform fixtures mounted through `tests/fakesys` (FUSE, python3 fusepy);
//! - `kernel::`   root on the real kernel: loop devices, sysfs and vm writes, the daemon on a
//!   private system bus, systemd-udevd, live filesystem failures;
//! - `receiver::` alert delivery to HTTP receivers on 127.0.0.1 and a real Alertmanager;
//! - `guest::`    tunerd under systemd in a Debian guest under QEMU.
//!
//! e.g. `cargo test --test it pure::`. A test whose tier lacks a prerequisite says so on
//! stderr and passes; with `TUNERD_TEST_ALL_TIERS=1` it fails instead (see `common::tier`).

mod adversarial;
mod common;
mod fixture;
mod guest;
mod kernel;
mod pure;
mod receiver;
