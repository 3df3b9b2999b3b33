//! Locks that survive a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`. A poisoned lock only means another thread panicked while holding it; the
/// data (the service state, a sink's queue and counters) is still usable, and tuning,
/// detection and delivery must go on.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
