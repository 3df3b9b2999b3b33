//! The tuning pipeline: [`profile`] (what the user wants, validated once) -> [`plan`] (pure:
//! profile x inventory x current values -> changes with reasons) -> [`apply`] (originals
//! recorded first, ordered writes, verify, revert). [`knob`] is the one table of every knob;
//! [`hotplug`] turns udev events into owned block events. Depends on [`crate::host`] and
//! [`crate::util`]; never on detection.

pub mod apply;
pub mod hotplug;
pub mod knob;
pub mod plan;
pub mod profile;
