//! The service: apply the profile at start, then hold every disk at it for the life of the
//! machine: hotplugged disks are tuned on `add` and `change`, drift is found by a periodic
//! verify and repaired (or reported), SIGHUP and D-Bus reload the configuration, and SIGTERM
//! stops (leaving the settings, or reverting them, as configured). Meanwhile the detection
//! half watches the kernel log, the journal, fanotify and the samplers, and alerts.
//!
//! This file is the process: setup (signals, memory locking, sd_notify, the watchdog) and
//! the poll loop over every source's fd, with the next timer as the timeout (idle, it wakes
//! only for its own timers). The state is in `state` (its halves in `tuning` and
//! `detection`); zbus runs the bus (`bus`) on its helper thread. Both reach the state
//! through one mutex; the state never reaches the loop or the bus.
//!
//! The loop never waits for the bus daemon: connecting and sending signals happen on the bus
//! thread, fed by a bounded queue ([`bus::Outbox`]), so a hung or stopped dbus-daemon cannot
//! hold back READY=1, the watchdog or detection. The read-only bus methods answer from the
//! snapshot the loop publishes after each turn ([`State::publish`]), so no caller makes the
//! loop wait for the state mutex behind a plan of every disk. And a profile that cannot be
//! applied at start (no room to record the originals) leaves health `degraded` and a retry:
//! detection runs regardless.

mod bus;
pub(crate) mod detection;
mod state;
mod tuning;
mod unlock;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::exit;
use crate::config::OnStop;
use crate::detect::sources::fanotify::FsErrorWatch;
use crate::detect::sources::journal::{restart_delay, JournalWatch};
use crate::detect::sources::kmsg::KmsgReader;
use crate::detect::sources::samplers::Wakers;
use crate::host::sys::Root;
use crate::log;
use crate::tune::apply::{self, Status};
use crate::tune::hotplug::Watcher;

pub(crate) use state::{lock, ServiceError, Shared, State};

pub struct Options {
    pub root: Root,
    pub profile: Option<String>,
    /// Serve org.tunerd.Tuner1 on the system bus.
    pub dbus: bool,
}

/// Locks the daemon's pages in memory so a hung root disk cannot stall it on a page-in: what
/// is mapped now is faulted in and locked; later mappings (heap growth, thread stacks) are
/// locked as they are touched, so an 8 MiB thread stack costs only the pages it uses.
fn lock_memory() {
    use nix::sys::mman::{mlockall, MlockAllFlags};
    if let Err(e) = mlockall(MlockAllFlags::MCL_CURRENT) {
        log!(
            warn,
            "mlockall: {e}: pages may be read back from disk under memory pressure"
        );
        return;
    }
    // MCL_ONFAULT (4, Linux 4.4) is not among nix's named flags.
    let onfault = MlockAllFlags::from_bits_retain(4);
    if let Err(e) = mlockall(MlockAllFlags::MCL_FUTURE | onfault) {
        log!(warn, "mlockall(MCL_FUTURE): {e}");
    }
}

/// One malloc arena for every thread (glibc makes one per thread that allocates, up to 8 per
/// CPU): the bus, alert and inventory threads then share the main one instead of each keeping
/// (and, under `mlockall`, locking) pages of its own. The daemon's threads allocate little and
/// rarely at once; contention on one arena costs nothing measurable here.
fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread runs.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}

/// Gives the heap's free pages back to the kernel before `mlockall(MCL_CURRENT)` would fault
/// in and lock them: the start-up plan of every disk leaves most of the heap free.
fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    let _ = sd_notify::notify(state);
}

/// The fds the loop polls, each `None` when its source is off or not available here.
struct Sources {
    signals: nix::sys::signalfd::SignalFd,
    udev: Option<Watcher>,
    kmsg: Option<KmsgReader>,
    journal: Option<JournalWatch>,
    /// When journalctl exited: restart it then (backoff), and how often it failed in a row.
    journal_restart: Option<Instant>,
    journal_failures: u32,
    /// The fanotify group's fd: the group lives in the detection state (each sample re-marks
    /// the mounts), for the daemon's whole life.
    fanotify: Option<std::os::fd::RawFd>,
    /// PSI triggers, mountinfo and mdstat: what lets the samplers idle (`None` with sampling
    /// off).
    wakers: Option<Wakers>,
}

/// What woke the loop.
#[derive(Default)]
struct Ready {
    signal: bool,
    udev: bool,
    kmsg: bool,
    journal: bool,
    fanotify: bool,
    /// A PSI trigger fired: tasks are stalled on I/O or memory.
    pressure: bool,
    /// The mount table changed, or an md event.
    mounts: bool,
    mdstat: bool,
}

impl Sources {
    /// Opens every source the configuration asks for, before the profile is applied: a disk
    /// that appears meanwhile is not missed, and the kernel log is read from the oldest record
    /// of this boot not yet handled (failures during boot count too).
    fn open(state: &mut State, signals: nix::sys::signalfd::SignalFd) -> Sources {
        let udev = match Watcher::open() {
            Ok(w) => {
                state.tuning.hotplug_source = w.source.as_str();
                log!(info, "hotplug: {} events", w.source.as_str());
                Some(w)
            }
            Err(e) => {
                log!(warn, "no hotplug events (libudev monitor: {e}); disks are tuned at start and on drift checks only");
                None
            }
        };
        let watch = state.config.watch.clone();
        let kmsg = match watch.kmsg.then(|| KmsgReader::open(&state.root)) {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                log!(warn, "kernel log not watched (/dev/kmsg: {e})");
                None
            }
            None => None,
        };
        if watch.fanotify {
            match FsErrorWatch::open() {
                Ok(mut w) => {
                    w.sync(&state.inventory.mounts);
                    state.detection.fs_errors = Some(w);
                }
                Err(e) => log!(
                    info,
                    "no fanotify FS_ERROR events ({e}); the kernel log covers them"
                ),
            }
        }
        // Storage daemons' journal entries, when there is a journal (systemd machines).
        let journal = match (watch.journal && state.root.is_host())
            .then(|| JournalWatch::start(&state.root, &detection::journal_programs(&watch.rules)))
        {
            Some(Ok(j)) => Some(j),
            Some(Err(e)) => {
                log!(
                    info,
                    "storage daemons' journal not followed (journalctl: {e})"
                );
                None
            }
            None => None,
        };
        let fanotify = state
            .detection
            .fs_errors
            .as_ref()
            .map(|w| w.fd().as_raw_fd());
        // Which sources are live, for `tunerctl status` and the log: one line a person can
        // check against the configuration.
        let wakers = (watch.sample_ms > 0).then(|| Wakers::open(&state.root));
        if let Some(w) = &wakers {
            if w.has_psi() {
                log!(
                    info,
                    "samplers: every {} ms while I/O is in flight, else every {} s; woken by PSI triggers ({} ms window), mount table{} changes",
                    watch.sample_ms,
                    IDLE_SAMPLE.as_secs().max(watch.sample_ms / 1000),
                    w.psi_window_ms,
                    if w.mdstat.is_some() { " and md" } else { "" }
                );
            } else {
                log!(
                    info,
                    "samplers: every {} ms (no PSI triggers here: the kernel cannot say when I/O stalls)",
                    watch.sample_ms
                );
            }
        }
        for (name, live) in [
            ("kmsg", kmsg.is_some()),
            ("fanotify", fanotify.is_some()),
            ("journal", journal.is_some()),
            ("samplers", watch.sample_ms > 0),
        ] {
            state.set_source(name, live);
        }
        log!(
            info,
            "failure sources: {}",
            if state.detection.sources.is_empty() {
                "none".to_string()
            } else {
                state
                    .detection
                    .sources
                    .iter()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        Sources {
            signals,
            udev,
            kmsg,
            journal,
            journal_restart: None,
            journal_failures: 0,
            fanotify,
            wakers,
        }
    }

    /// journalctl is not running: schedules its restart after the backoff and returns it.
    fn journal_later(&mut self) -> Duration {
        let delay = restart_delay(self.journal_failures);
        self.journal_failures += 1;
        self.journal_restart = Some(Instant::now() + delay);
        delay
    }

    /// Waits for any fd or the timeout. `Err` only for a poll error other than EINTR.
    fn wait(&self, timeout: nix::poll::PollTimeout) -> Result<Ready, nix::errno::Errno> {
        use nix::poll::{poll, PollFd, PollFlags};
        let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        fn at<'a>(fd: Option<BorrowedFd<'a>>, fds: &mut Vec<PollFd<'a>>) -> Option<usize> {
            fd.map(|fd| {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                fds.len() - 1
            })
        }
        let kmsg_at = at(self.kmsg.as_ref().map(|k| k.fd()), &mut fds);
        let udev_at = at(self.udev.as_ref().map(|w| w.fd()), &mut fds);
        // A dead journalctl's pipe is at EOF: poll it only while it runs.
        let journal_at = at(
            self.journal
                .as_ref()
                .filter(|_| self.journal_restart.is_none())
                .map(|j| j.fd()),
            &mut fds,
        );
        // SAFETY: the fanotify group lives in the state for the daemon's whole life (it is
        // never replaced), so the fd stays open while it is borrowed for this poll.
        let fan_at = at(
            self.fanotify
                .map(|fd| unsafe { BorrowedFd::borrow_raw(fd) }),
            &mut fds,
        );
        // These are always readable: their news is POLLPRI (and POLLERR) alone.
        let first_pri = fds.len();
        let (mut psi_n, mut mounts_at, mut md_at) = (0, None, None);
        if let Some(w) = &self.wakers {
            for f in &w.psi {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLPRI));
                psi_n += 1;
            }
            if let Some(f) = &w.mountinfo {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLPRI));
                mounts_at = Some(fds.len() - 1);
            }
            if let Some(f) = &w.mdstat {
                fds.push(PollFd::new(f.as_fd(), PollFlags::POLLPRI));
                md_at = Some(fds.len() - 1);
            }
        }
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Ready::default()),
            Err(e) => return Err(e),
        }
        let ready =
            |i: Option<usize>| i.is_some_and(|i| fds[i].revents().is_some_and(|r| !r.is_empty()));
        Ok(Ready {
            signal: ready(Some(0)),
            udev: ready(udev_at),
            kmsg: ready(kmsg_at),
            journal: ready(journal_at),
            fanotify: ready(fan_at),
            pressure: (first_pri..first_pri + psi_n).any(|i| ready(Some(i))),
            mounts: ready(mounts_at),
            mdstat: ready(md_at),
        })
    }
}

/// The first instant after `now` on the grid `epoch + k * every`. Every periodic timer of
/// the loop is on a grid from one epoch, so timers whose periods divide one another fire in
/// the same wake-up (the 15 s watchdog, the 30 s drift check and the 30 s idle sample: one
/// wake-up every 15 s, not three schedules drifting apart).
fn next_on_grid(epoch: Instant, every: Duration, now: Instant) -> Instant {
    let every_ns = every.as_nanos().max(1);
    let k = now.saturating_duration_since(epoch).as_nanos() / every_ns + 1;
    // A grid point within ~584 years of the epoch fits in u64 nanoseconds.
    epoch + Duration::from_nanos(u64::try_from(k * every_ns).unwrap_or(u64::MAX))
}

/// A periodic timer: `None` when off.
struct Every {
    every: Option<Duration>,
    epoch: Instant,
    next: Option<Instant>,
}

impl Every {
    fn new(every: Option<Duration>, epoch: Instant) -> Every {
        Every {
            every,
            epoch,
            next: every.map(|d| next_on_grid(epoch, d, epoch)),
        }
    }

    /// A new period (a reload changed it): the next one is on the new grid.
    fn set(&mut self, every: Option<Duration>, now: Instant) {
        if every != self.every {
            self.every = every;
            self.next = every.map(|d| next_on_grid(self.epoch, d, now));
        }
    }

    /// Whether it is due at `now`; if so, the next one is scheduled.
    fn due(&mut self, now: Instant) -> bool {
        match (self.next, self.every) {
            (Some(at), Some(every)) if at <= now => {
                self.next = Some(next_on_grid(self.epoch, every, now));
                true
            }
            _ => false,
        }
    }
}

/// The samples' rate on an idle machine, when the kernel wakes the loop for what matters
/// (PSI triggers, the mount table, md events, the kernel log, fanotify). What it still
/// catches that has no event: a stall nobody waits for yet (no task stalled, so no PSI; the
/// first writer or journal commit that waits wakes the loop, and the stall's start comes from
/// diskstats' io_ticks, not from this rate), ext4/btrfs error counters that grew without a
/// kernel log line, dirty memory that nears the threshold without throttling anyone.
const IDLE_SAMPLE: Duration = Duration::from_secs(30);

/// When the samplers run: every `sample_ms` while something may be happening (I/O in flight
/// at the last sample, a condition that holds, a stuck device nearing `stall_secs`),
/// otherwise every [`IDLE_SAMPLE`] on the loop's grid; and soon after any event that may
/// change what they find.
struct SampleTimer {
    /// `sample_ms`; `None`: sampling is off.
    fast: Option<Duration>,
    /// [`IDLE_SAMPLE`] where PSI wakes the loop, else `fast` (the old fixed rate).
    idle: Duration,
    epoch: Instant,
    next: Option<Instant>,
    last: Option<Instant>,
}

impl SampleTimer {
    fn new(fast: Option<Duration>, kernel_wakes: bool, epoch: Instant) -> SampleTimer {
        let idle = match fast {
            Some(f) if kernel_wakes => IDLE_SAMPLE.max(f),
            Some(f) => f,
            None => Duration::ZERO,
        };
        SampleTimer {
            fast,
            idle,
            epoch,
            next: fast.map(|f| epoch + f),
            last: None,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.next.is_some_and(|at| at <= now)
    }

    /// Something happened that a sample may see: one now, unless one ran less than
    /// `sample_ms` ago (then at that distance: a kernel log flood costs a sample a period).
    fn soon(&mut self, now: Instant) {
        let Some(fast) = self.fast else { return };
        let at = self.last.map_or(now, |l| (l + fast).max(now));
        self.next = Some(self.next.map_or(at, |n| n.min(at)));
    }

    /// A sample ran at `now`: `busy` from [`Sampler::wants_fast`], `report_in` the time until
    /// a stuck device reaches `stall_secs`.
    fn sampled(&mut self, now: Instant, busy: bool, report_in: Option<Duration>) {
        let Some(fast) = self.fast else { return };
        self.last = Some(now);
        let mut next = if busy || self.idle <= fast {
            now + fast
        } else {
            next_on_grid(self.epoch, self.idle, now)
        };
        if let Some(r) = report_in {
            next = next.min(now + r);
        }
        self.next = Some(next);
    }

    fn idle(&self) -> bool {
        self.idle > self.fast.unwrap_or(Duration::ZERO)
    }
}

/// Runs the service until SIGTERM or SIGINT. Returns the process exit code.
pub fn run(opts: Options) -> u8 {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};

    let exec = Instant::now();
    one_malloc_arena();
    crate::util::log::stderr_nonblocking();
    // Signals arrive through a signalfd in the loop, never asynchronously.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    if let Err(e) = mask.thread_block() {
        log!(err, "cannot block signals: {e}");
        return exit::FAILURE;
    }
    let signals = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    {
        Ok(fd) => fd,
        Err(e) => {
            log!(err, "signalfd: {e}");
            return exit::FAILURE;
        }
    };

    let mut state = match State::new(opts.root.clone(), opts.profile.clone()) {
        Ok(s) => s,
        Err(e) => {
            log!(err, "{e}");
            return e.exit_code();
        }
    };
    let mut sources = Sources::open(&mut state, signals);
    // Alert delivery reads what it needs from the disk (TLS roots, host name) now, at start.
    state.start_alerts();
    // Nothing in /etc/tunerd keeps the daemon from starting: refused files leave it on the
    // previous or the built-in configuration (logged by the state). An apply
    // that cannot record its originals (ENOSPC, a read-only /run, a busy lock) wrote nothing;
    // detection and alerting need no originals, so they start anyway while tuning retries.
    match state.apply_all() {
        Ok(report) => log!(
            info,
            "profile {} ({}): {} knobs set, {} already at value, {} rejected, in {:.1} ms",
            state.tuning.profile.name,
            state.tuning.chosen_by,
            report.written(),
            report.count(Status::Unchanged),
            report.count(Status::Rejected),
            exec.elapsed().as_secs_f64() * 1000.0
        ),
        Err(e) => log!(
            err,
            "profile {} not applied: {e}; health is degraded, detection and alerts run anyway, and the apply is retried in {} s (doubling to {} s)",
            state.tuning.profile.name,
            tuning::APPLY_RETRY_FIRST.as_secs(),
            tuning::APPLY_RETRY_MAX.as_secs()
        ),
    }
    state.publish_now();
    let status_line = format!(
        "profile {}: {} disks{}",
        state.tuning.profile.name,
        state
            .inventory
            .disks
            .iter()
            .filter(|d| d.size_bytes > 0)
            .count(),
        if state.config_state.refused.is_some() {
            format!(
                "; configuration refused, {} in force",
                state.config_state.in_force.describe()
            )
        } else {
            String::new()
        }
    );
    let drift_every = state.config.daemon.drift_interval_secs;
    let sample_every = state.config.watch.sample_ms;
    let published = state.published.clone();
    let shared: Shared = Arc::new(Mutex::new(state));
    // Before any thread starts: its stack then falls under MCL_ONFAULT (only touched pages
    // are resident) instead of being faulted in whole by MCL_CURRENT.
    trim_heap();
    lock_memory();
    unlock::release_unread_sections();

    // The bus thread connects (retrying with backoff) on its own time: READY=1 below never
    // waits for the bus daemon.
    let bus = bus::Outbox::start(opts.dbus, &shared, &published);
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status_line),
    ]);

    let epoch = Instant::now();
    let mut watchdog = Every::new(sd_notify::watchdog_enabled().map(|d| d / 2), epoch);
    let mut drift = Every::new(
        (drift_every > 0).then(|| Duration::from_secs(drift_every)),
        epoch,
    );
    let mut sample = SampleTimer::new(
        (sample_every > 0).then(|| Duration::from_millis(sample_every)),
        sources.wakers.as_ref().is_some_and(Wakers::has_psi),
        epoch,
    );
    let mut last_kmsg_commit = Instant::now();
    // What the kernel logged before and during start.
    if let Some(k) = sources.kmsg.as_mut() {
        let mut announce = Vec::new();
        loop {
            let batch = k.read(4096);
            let more = batch.records.len() == 4096;
            announce.extend(lock(&shared).on_kmsg(batch));
            if !more {
                break;
            }
        }
        k.commit(&opts.root);
        lock(&shared).publish();
        bus.send(announce);
    }

    loop {
        let (next_retry, next_publish) = {
            let st = lock(&shared);
            (st.tuning.next_retry(), st.publish_due())
        };
        let deadline = [
            watchdog.next,
            drift.next,
            next_retry,
            next_publish,
            sample.next,
            sources.journal_restart,
        ]
        .into_iter()
        .flatten()
        .min();
        let timeout = match deadline {
            Some(at) => {
                let ms = at.saturating_duration_since(Instant::now()).as_millis();
                nix::poll::PollTimeout::try_from(ms.min(60_000) as i32)
                    .unwrap_or(nix::poll::PollTimeout::MAX)
            }
            None => nix::poll::PollTimeout::NONE,
        };
        let ready = match sources.wait(timeout) {
            Ok(r) => r,
            Err(e) => {
                log!(err, "poll: {e}");
                return exit::FAILURE;
            }
        };

        let mut announce = Vec::new();
        let woke = Instant::now();
        if ready.pressure || ready.mounts {
            sample.soon(woke);
        }
        if ready.mdstat {
            sample.soon(woke);
            if let Some(w) = sources.wakers.as_mut() {
                w.rearm_mdstat();
            }
        }
        if ready.fanotify {
            sample.soon(woke);
        }
        if ready.kmsg {
            if let Some(k) = sources.kmsg.as_mut() {
                // Bounded batches: a flood of 100,000 lines is taken in slices, with the
                // other sources served in between.
                let batch = k.read(4096);
                // A filesystem that aborts (read-only, error counters) says so here first:
                // the samplers look soon after any record.
                if !batch.records.is_empty() {
                    sample.soon(woke);
                }
                let before = announce.len();
                announce.extend(lock(&shared).on_kmsg(batch));
                // The position is saved with every notification (so a restart neither
                // repeats nor misses one) and otherwise at most once a second: a flood
                // costs one small write a second, not one per line.
                if announce.len() > before || last_kmsg_commit.elapsed() >= Duration::from_secs(1) {
                    k.commit(&opts.root);
                    last_kmsg_commit = Instant::now();
                }
            }
        }
        if ready.journal {
            if let Some(j) = sources.journal.as_mut() {
                let records = j.read();
                if !records.is_empty() {
                    sources.journal_failures = 0;
                }
                announce.extend(lock(&shared).on_journal(records));
                j.commit(&opts.root);
                if !j.alive() {
                    // An OOM kill, an outside kill or a bad cursor must not end journal
                    // watching for the life of the daemon (security review, finding 19).
                    let delay = sources.journal_later();
                    log!(
                        warn,
                        "journalctl exited: storage daemons' journal not followed; restarting it in {} s",
                        delay.as_secs()
                    );
                    lock(&shared).set_source("journal", false);
                }
            }
        }
        if sources
            .journal_restart
            .is_some_and(|at| at <= Instant::now())
        {
            if let Some(j) = sources.journal.as_mut() {
                match j.restart(&opts.root) {
                    Ok(()) => {
                        log!(
                            info,
                            "journalctl restarted: storage daemons' journal followed again"
                        );
                        sources.journal_restart = None;
                        lock(&shared).set_source("journal", true);
                    }
                    Err(e) => {
                        let delay = sources.journal_later();
                        log!(
                            warn,
                            "journalctl: {e}; trying again in {} s",
                            delay.as_secs()
                        );
                    }
                }
            }
        }
        if ready.fanotify {
            announce.extend(lock(&shared).on_fanotify());
        }
        if ready.udev {
            if let Some(w) = sources.udev.as_mut() {
                let events = w.drain();
                let mut st = lock(&shared);
                for ev in &events {
                    st.hotplug(ev);
                }
            }
        }
        if ready.signal {
            let mut stop = false;
            while let Ok(Some(info)) = sources.signals.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGHUP) => {
                        notify(&[sd_notify::NotifyState::Reloading]);
                        match lock(&shared).reload() {
                            Ok(a) => announce.extend(a),
                            // Logged by the state, with what runs instead.
                            Err(ServiceError::Config(_)) => {}
                            Err(e) => log!(
                                err,
                                "reload: the new configuration is in force, but its profile is not fully applied: {e}"
                            ),
                        }
                        notify(&[sd_notify::NotifyState::Ready]);
                    }
                    Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => stop = true,
                    _ => {}
                }
            }
            if stop {
                break;
            }
        }
        let now = Instant::now();
        if sample.due(now) {
            let mut st = lock(&shared);
            announce.extend(st.on_sample());
            let sampler = st.detection.sampler();
            let busy = sampler.wants_fast();
            let due = match (sampler.report_due_ms(), st.detection.freeze_due_ms()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let report_in =
                due.map(|at| Duration::from_millis(at.saturating_sub(crate::util::time::now_ms())));
            drop(st);
            sample.sampled(now, busy, report_in);
            if !busy && sample.idle() {
                if let Some(w) = sources.wakers.as_mut() {
                    w.retry_mdstat(&opts.root);
                }
            }
        }
        if next_retry.is_some_and(|at| at <= now) {
            lock(&shared).run_retries();
        }
        if drift.due(now) {
            announce.extend(lock(&shared).drift_check());
        }
        if watchdog.due(now) {
            notify(&[sd_notify::NotifyState::Watchdog]);
        }
        // The snapshot first, so the signals' readers find what they announce.
        {
            let mut st = lock(&shared);
            // A reload may have changed the drift check's period.
            let every = st.config.daemon.drift_interval_secs;
            drift.set((every > 0).then(|| Duration::from_secs(every)), now);
            announce.extend(st.take_pending());
            st.publish();
        }
        bus.send(announce);
        // A reload (SIGHUP or D-Bus) changed the programs the `[[watch.rule]]`s read: the
        // journal reader starts again after its last entry (outside the lock: it forks).
        let programs = {
            let mut st = lock(&shared);
            std::mem::take(&mut st.detection.programs_changed)
                .then(|| st.detection.journal_programs.clone())
        };
        if let (Some(programs), Some(j)) = (programs, sources.journal.as_mut()) {
            match j.follow(&opts.root, &programs) {
                Ok(true) => {
                    log!(
                        info,
                        "journal: following the rules' programs: {}",
                        if programs.is_empty() {
                            "none".to_string()
                        } else {
                            programs.join(", ")
                        }
                    );
                    sources.journal_restart = None;
                    sources.journal_failures = 0;
                    lock(&shared).set_source("journal", true);
                }
                Ok(false) => {}
                Err(e) => {
                    log!(
                        warn,
                        "journal: the rules' new programs not followed yet: journalctl: {e}"
                    );
                    sources.journal_later();
                }
            }
        }
    }

    notify(&[sd_notify::NotifyState::Stopping]);
    if let Some(alerts) = lock(&shared).detection.alerts.take() {
        // What is not delivered yet stays in the spool for the next start.
        alerts.shutdown();
    }
    if let Some(k) = sources.kmsg.as_mut() {
        k.commit(&opts.root);
    }
    let st = lock(&shared);
    if st.config.daemon.on_stop == OnStop::Revert {
        match apply::revert(&st.root) {
            Ok(r) => log!(info, "stopping: {} originals restored", r.written()),
            Err(e) => log!(err, "stopping: revert failed: {e}"),
        }
    } else {
        log!(
            info,
            "stopping: settings stay in place (on_stop = \"keep\")"
        );
    }
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_share_one_grid() {
        let epoch = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(next_on_grid(epoch, s(15), epoch), epoch + s(15));
        assert_eq!(next_on_grid(epoch, s(15), epoch + s(29)), epoch + s(30));
        assert_eq!(next_on_grid(epoch, s(30), epoch + s(29)), epoch + s(30));
        assert_eq!(next_on_grid(epoch, s(30), epoch + s(30)), epoch + s(60));
        let mut drift = Every::new(Some(s(30)), epoch);
        assert!(!drift.due(epoch + s(29)));
        assert!(drift.due(epoch + s(31)));
        // A reload to 10 s: the next check is on the new grid; to 0: none.
        let mut reloaded = Every::new(Some(s(30)), epoch);
        reloaded.set(Some(s(10)), epoch + s(12));
        assert_eq!(reloaded.next, Some(epoch + s(20)));
        reloaded.set(None, epoch + s(13));
        assert!(!reloaded.due(epoch + s(100)));
        assert_eq!(
            drift.next,
            Some(epoch + s(60)),
            "back on the grid after a late wake-up"
        );
    }

    #[test]
    fn samples_idle_on_the_grid_and_hurry_when_busy_or_told() {
        let epoch = Instant::now();
        let ms = Duration::from_millis;
        let mut t = SampleTimer::new(Some(ms(1000)), true, epoch);
        assert_eq!(t.next, Some(epoch + ms(1000)));
        t.sampled(epoch + ms(1000), false, None);
        assert_eq!(t.next, Some(epoch + IDLE_SAMPLE), "idle: on the 30 s grid");
        t.soon(epoch + ms(1500));
        assert_eq!(t.next, Some(epoch + ms(2000)), "not twice within sample_ms");
        t.sampled(epoch + ms(2000), true, None);
        assert_eq!(t.next, Some(epoch + ms(3000)), "busy: at sample_ms");
        t.sampled(epoch + ms(3000), true, Some(ms(250)));
        assert_eq!(t.next, Some(epoch + ms(3250)), "a stall comes due first");
        let fixed = SampleTimer::new(Some(ms(1000)), false, epoch);
        assert!(!fixed.idle(), "no PSI: the old fixed rate");
    }
}
