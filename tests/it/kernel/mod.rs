//! The kernel tier: root on the real kernel. Loop devices on tmpfs, sysfs and vm writes that
//! are restored, the daemon on a private system bus, systemd-udevd, live ext4/XFS/btrfs
//! failures and a stalled device behind a FUSE gate.

mod daemon;
mod harness_selftest;
mod idle;
mod incidents;
mod real_kernel;
