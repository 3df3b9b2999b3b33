//! Where failures are seen: the kernel log ([`kmsg`]), storage daemons' journal entries
//! ([`journal`]), fanotify FAN_FS_ERROR ([`fanotify`]) and the periodic samplers of
//! diskstats, mount flags, error counters and dirty memory ([`samplers`]), with the scan for
//! writers blocked by a frozen filesystem ([`frozen`]).

pub(crate) mod fanotify;
pub(crate) mod frozen;
pub(crate) mod journal;
pub(crate) mod kmsg;
pub(crate) mod mdstat;
pub(crate) mod samplers;
