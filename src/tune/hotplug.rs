//! Block devices coming, changing and going, from the libudev monitor.
//!
//! When systemd-udevd runs, events come from it (after its rules ran, so tunerd's values are
//! the last word); without udevd (early boot, containers, minimal images) they come straight
//! from the kernel's uevent netlink socket. libudev types are not `Send`: this module turns
//! each event into an owned [`BlockEvent`] before anyone else sees it.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// What happened to a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockAction {
    Add,
    Change,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockEvent {
    pub action: BlockAction,
    /// The kernel name (`sda`, `loop7`).
    pub name: String,
}

/// Where the events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Udev,
    Kernel,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Udev => "udev",
            Source::Kernel => "kernel",
        }
    }
}

pub(crate) struct Watcher {
    socket: udev::MonitorSocket,
    pub source: Source,
}

impl Watcher {
    /// Listens for block `disk` events. udevd's control socket tells whether udevd runs.
    pub(crate) fn open() -> std::io::Result<Watcher> {
        let udevd = Path::new("/run/udev/control").exists();
        let (builder, source) = if udevd {
            (udev::MonitorBuilder::new()?, Source::Udev)
        } else {
            (udev::MonitorBuilder::new_kernel()?, Source::Kernel)
        };
        let socket = builder.match_subsystem_devtype("block", "disk")?.listen()?;
        Ok(Watcher { socket, source })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Every event waiting on the socket (non-blocking).
    pub(crate) fn drain(&mut self) -> Vec<BlockEvent> {
        let mut out = Vec::new();
        for event in self.socket.iter() {
            let action = match event.event_type() {
                udev::EventType::Add => BlockAction::Add,
                udev::EventType::Change => BlockAction::Change,
                udev::EventType::Remove => BlockAction::Remove,
                _ => continue,
            };
            // The kernel filter is on subsystem+devtype already for udev events; kernel
            // events are filtered by libudev in userspace. Check again: partitions must not
            // reach the planner.
            if event.devtype().is_some_and(|t| t != "disk") {
                continue;
            }
            let name = event.sysname().to_string_lossy().into_owned();
            if name.is_empty() {
                continue;
            }
            out.push(BlockEvent { action, name });
        }
        out
    }
}
