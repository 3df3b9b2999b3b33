//! Log lines for the journal (`<N>` priorities on stderr), written so that a stuck journald
//! costs lines, never detection.

/// A log line for the journal: systemd reads the `<N>` priority prefix on stderr. Written
/// with one `write` and its result ignored: the daemon makes stderr non-blocking, so a journald
/// stuck on a failing disk loses log lines instead of stopping detection and alerts.
#[macro_export]
macro_rules! log {
    (@at $level:literal, $($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!("<{}>{}\n", $level, format!($($arg)*));
        let _ = std::io::stderr().write_all(line.as_bytes());
    }};
    (err, $($arg:tt)*) => { $crate::log!(@at 3, $($arg)*) };
    (warn, $($arg:tt)*) => { $crate::log!(@at 4, $($arg)*) };
    (notice, $($arg:tt)*) => { $crate::log!(@at 5, $($arg)*) };
    (info, $($arg:tt)*) => { $crate::log!(@at 6, $($arg)*) };
}

/// Makes stderr non-blocking (see [`log!`]).
pub(crate) fn stderr_nonblocking() {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fd = std::io::stderr();
    if let Ok(flags) = fcntl(&fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            &fd,
            FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK),
        );
    }
}
