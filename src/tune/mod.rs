//! The tuning pipeline: [`profile`] (what the user wants, validated once) -> [`plan`] (pure:
//! profile x inventory x current values -> changes with reasons) -> [`apply`] (originals
//! recorded first, ordered writes, verify, revert). [`knob`] is the one table of every knob;
//! [`hotplug`] turns udev events into owned block events; [`rideout`] says how long each mount
//! survives a stall, before and after a plan. Depends on [`crate::host`] and
//! [`crate::util`]; never on detection.

pub(crate) mod apply;
pub(crate) mod hotplug;
pub(crate) mod knob;
pub(crate) mod plan;
pub(crate) mod profile;
pub(crate) mod rideout;
