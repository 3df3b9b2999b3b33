//! Real-kernel harness parts for tests of the daemon as a whole: a private system-like
//! D-Bus daemon ([`PrivateBus`]), systemd-udevd for hotplug tests ([`Udevd`]), brand-new loop
//! device nodes that emit real `add`/`change`/`remove` uevents ([`LoopNode`]), and a raw
//! kernel uevent socket to timestamp what the kernel emitted ([`UeventListener`]).
//!
//! Every part touches only what it created and undoes it in `Drop`, also when the test
//! panics. Scratch files live on tmpfs (`/dev/shm`), never on the machine's own disk.
//!
//! Needs root and these Debian packages: `dbus-daemon` and `dbus-bin` (PrivateBus, dbus-send),
//! `util-linux` (losetup, setpriv), `udev` (Udevd only).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Small shared helpers
// ---------------------------------------------------------------------------------------------

/// A fresh directory `/dev/shm/tunerd-harness-TAG-PID-N`, mode 0755 so that unprivileged
/// clients (uid 65534) can reach a socket inside it.
///
/// The first call also removes such directories left by harness processes that no longer
/// exist (a test binary that aborted cannot run its `Drop`s).
fn shm_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        remove_stale_shm_dirs();
    }
    let dir = PathBuf::from(format!(
        "/dev/shm/tunerd-harness-{tag}-{}-{n}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
    dir
}

/// Removes `/dev/shm/tunerd-harness-TAG-PID-N` directories whose PID is gone.
fn remove_stale_shm_dirs() {
    let Ok(entries) = fs::read_dir("/dev/shm") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("tunerd-harness-") else {
            continue;
        };
        let mut fields = rest.rsplitn(3, '-');
        let (Some(_n), Some(pid), Some(_tag)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        if pid > 0 && !pid_alive(pid) && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Asks the kernel to send `SIGTERM` to the child when the *thread* that spawned it exits
/// (that is how `PR_SET_PDEATHSIG` works): a test that dies without unwinding leaves no
/// stray daemon behind. Only for children that are created and dropped on one test thread.
pub fn kill_with_parent_thread(cmd: &mut Command) {
    // SAFETY: prctl and getppid are async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `SIGTERM`, up to `grace` to exit, then `SIGKILL`; always reaps the child.
fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

// ---------------------------------------------------------------------------------------------
// PrivateBus
// ---------------------------------------------------------------------------------------------

/// A private, system-like `dbus-daemon` for one test, whose access rules for
/// `org.tunerd.Tuner1` come from the project's own policy file.
///
/// The bus configuration (in a 0755 directory on `/dev/shm`) is:
///
/// * `<type>system</type>`, `<listen>unix:path=DIR/system_bus_socket</listen>`,
///   `<auth>EXTERNAL</auth>`;
/// * a `<policy context="default">` that allows every user to connect (`<allow user="*"/>`:
///   without it the handshake of every client fails) and allows own/send/receive of
///   everything;
/// * *after* that policy, `<includedir>DIR/system.d</includedir>` holding a copy of
///   `dbus/org.tunerd.Tuner1.conf`.
///
/// Order matters and was verified here (dbus-daemon 1.14): rules of one context are applied
/// in document order and the last matching rule wins; an included file is merged at the
/// point of its `<include>`/`<includedir>`. So the project's
/// `<deny send_destination="org.tunerd.Tuner1"/>` overrides the allow-all above it, and its
/// specific allows (Status, Plan, ...) override that deny again. With the allow-all placed
/// *after* the include instead, uid 65534 could call `Apply`.
///
/// The daemon runs in the foreground as a child of the test (`--nofork`), is sent `SIGTERM`
/// (then `SIGKILL`) and reaped on drop, and the directory is removed.
pub struct PrivateBus {
    child: Child,
    dir: PathBuf,
    address: String,
}

impl PrivateBus {
    /// `CARGO_MANIFEST_DIR/dbus/org.tunerd.Tuner1.conf`: the policy installed with the daemon.
    pub fn project_policy() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dbus/org.tunerd.Tuner1.conf")
    }

    /// Starts a bus governed by the project's policy file. Panics (with the daemon's log) if
    /// the bus does not come up within 10 s.
    pub fn start() -> PrivateBus {
        PrivateBus::start_with_policy(&PrivateBus::project_policy())
    }

    /// Starts a bus whose included policy is `policy` instead of the project's file (to test
    /// a variant of it). The file is copied; later edits to `policy` do not apply.
    pub fn start_with_policy(policy: &Path) -> PrivateBus {
        let dir = shm_dir("bus");
        let sysd = dir.join("system.d");
        fs::create_dir_all(&sysd).expect("system.d");
        let name = policy
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "policy".into());
        // includedir only reads files ending in .conf.
        let name = if name.ends_with(".conf") {
            name
        } else {
            format!("{name}.conf")
        };
        fs::copy(policy, sysd.join(name))
            .unwrap_or_else(|e| panic!("copy policy {}: {e}", policy.display()));
        let socket = dir.join("system_bus_socket");
        let config = dir.join("bus.conf");
        fs::write(&config, bus_config(&socket, &sysd)).expect("write bus.conf");
        let log = fs::File::create(dir.join("dbus-daemon.log")).expect("bus log");

        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        kill_with_parent_thread(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn dbus-daemon (apt-get install -y dbus-daemon): {e}"));

        // The address is printed once the daemon listens; EOF means it died.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let printed = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let mut bus = PrivateBus {
            child,
            dir,
            address: format!("unix:path={}", socket.display()),
        };
        if !printed.trim().starts_with("unix:") || !socket.exists() {
            let log = bus.log();
            stop_child(&mut bus.child, Duration::from_secs(2));
            panic!(
                "private dbus-daemon did not start (printed {:?}); log:\n{log}",
                printed.trim()
            );
        }
        // libdbus creates the socket 0777 already; make sure of it for uid 65534 clients.
        let _ = fs::set_permissions(&socket, fs::Permissions::from_mode(0o777));
        bus
    }

    /// `unix:path=/dev/shm/.../system_bus_socket`: the value for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The dbus-daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The bus's private directory (config, included policy, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the daemon wrote to stderr. A line "Failed to set fd limit to 65536: Operation
    /// not permitted" is expected here and harmless.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("dbus-daemon.log")).unwrap_or_default()
    }

    /// A command whose system bus is this bus (`DBUS_SYSTEM_BUS_ADDRESS` set, no session bus).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", &self.address)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null());
        cmd
    }

    /// Like [`PrivateBus::command`], run as uid/gid 65534 (nobody) with no supplementary
    /// groups, through `setpriv --reuid=65534 --regid=65534 --clear-groups`.
    pub fn command_as_nobody(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = self.command("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program);
        cmd
    }
}

fn bus_config(socket: &Path, includedir: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- Open by default. Must come BEFORE the include: later rules of a context win. -->
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
  <includedir>{includedir}</includedir>
</busconfig>
"#,
        socket = socket.display(),
        includedir = includedir.display()
    )
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(3));
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Udevd
// ---------------------------------------------------------------------------------------------

/// Environment marker on the udevd this harness starts: the pid of the test process. A udevd
/// carrying the pid of a process that no longer exists leaked from a test run that died
/// without unwinding; [`Udevd::start`] stops it.
const UDEVD_OWNER_ENV: &str = "TUNERD_HARNESS_UDEVD_OWNER";
/// Set to `1` on that udevd when /run/udev did not exist before it started.
const UDEVD_RUN_CREATED_ENV: &str = "TUNERD_HARNESS_UDEVD_CREATED_RUN";

/// Directories udevd may create that this harness removes again when they did not exist
/// before and are empty (only empty directories are removed, never a link or a node).
const UDEV_DEV_DIRS: [&str; 3] = ["/dev/disk", "/dev/block", "/dev/char"];

static UDEVD: Mutex<Weak<UdevdInner>> = Mutex::new(Weak::new());

/// systemd-udevd for a test that needs udev-group events (what libudev monitors listen to)
/// or udev properties (`ID_*`).
///
/// [`Udevd::start`] reuses a udevd that already answers `udevadm control --ping` and then
/// never stops it. Otherwise it starts `systemd-udevd` in the foreground (no `--daemon`, no
/// `--debug`, `SYSTEMD_LOG_TARGET=console` so that nothing goes to the kernel log), logs to a
/// file on /dev/shm and waits until the daemon answers a ping (by then its kernel netlink
/// socket is bound, so no event of the test is lost). Handles are shared inside the process:
/// the daemon is stopped (SIGTERM, 5 s, SIGKILL) when the last handle is dropped.
///
/// What starting udevd does to the machine (observed with systemd 252 here):
/// * it creates `/run/udev` (`control` socket; `data`, `tags`, `watch` once it handles
///   events) and leaves it all behind when it exits, stale socket included;
/// * it applies the `static_node=` rules once at start: chmod/chown of `/dev/loop-control`,
///   `/dev/fuse`, `/dev/kvm`, `/dev/net/tun`, ... to the values of 50-udev-default.rules and
///   touches their timestamps. The `udev` package's postinst already applied the same
///   permissions with systemd-tmpfiles, so no mode changes there in practice;
/// * it handles *no* existing device: without `udevadm trigger` (never run here) nothing
///   about `vda` or the machine's loop devices changes;
/// * while it runs it handles every new uevent, from any process: on a block device it runs
///   the builtins (blkid probes open the device read-only), sets group `disk` mode 0660 on
///   the node, creates `/dev/block/MAJ:MIN` and `/dev/disk/by-*` links and sets an inotify
///   watch (`OPTIONS+="watch"`), so closing a block device after writing to it makes udevd
///   synthesise a `change` uevent.
///
/// On drop of a udevd it started, the harness removes `/run/udev` if it did not exist
/// before (stale state would make libudev think udev is running and serve stale
/// properties), removes `/dev/disk`, `/dev/block`, `/dev/char` only where they did not
/// exist before and are now empty directory trees, and puts back mode/owner of any
/// character node directly under /dev (or one level down) whose mode/owner changed.
///
/// Install: `apt-get install -y udev` (its postinst does not start udevd here: a
/// `policy-rc.d` answers 101 and the postinst detects a "chroot").
pub struct Udevd {
    /// Always `Some` until drop, which releases it under the `UDEVD` lock so that a
    /// concurrent [`Udevd::start`] never sees a daemon that is being stopped.
    inner: Option<Arc<UdevdInner>>,
}

struct UdevdInner {
    child: Mutex<Option<Child>>,
    dir: Option<PathBuf>,
    run_udev_existed: bool,
    dev_dirs_existed: Vec<(PathBuf, bool)>,
    char_nodes: Vec<(PathBuf, u32, u32, u32)>,
}

impl Udevd {
    /// The systemd-udevd binary, if the `udev` package is installed.
    pub fn binary() -> Option<PathBuf> {
        [
            "/lib/systemd/systemd-udevd",
            "/usr/lib/systemd/systemd-udevd",
            "/sbin/udevd",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    }

    /// Panics with the install command unless systemd-udevd and udevadm are installed.
    pub fn require_installed() -> PathBuf {
        let bin = Udevd::binary();
        let udevadm = Command::new("udevadm")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        match bin {
            Some(b) if udevadm => b,
            _ => panic!(
                "systemd-udevd/udevadm not installed: this test needs the Debian package `udev` \
                 (apt-get install -y udev; .ci/run installs it)"
            ),
        }
    }

    /// Whether some udevd answers on /run/udev/control.
    pub fn running() -> bool {
        Command::new("udevadm")
            .args(["control", "--ping", "--timeout=2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// A running udevd: this process's shared one, one that was already running (never
    /// stopped by the harness), or a new one. Panics if udev is not installed or the new
    /// daemon does not answer within 10 s.
    pub fn start() -> Udevd {
        let bin = Udevd::require_installed();
        let mut shared = UDEVD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(inner) = shared.upgrade() {
            return Udevd { inner: Some(inner) };
        }
        reap_leaked_udevd();
        let inner = if Udevd::running() {
            Arc::new(UdevdInner {
                child: Mutex::new(None),
                dir: None,
                run_udev_existed: true,
                dev_dirs_existed: Vec::new(),
                char_nodes: Vec::new(),
            })
        } else {
            Arc::new(spawn_udevd(&bin))
        };
        *shared = Arc::downgrade(&inner);
        Udevd { inner: Some(inner) }
    }

    fn inner(&self) -> &UdevdInner {
        self.inner.as_ref().expect("live handle")
    }

    /// Whether this harness started the daemon (and so stops it).
    pub fn owned(&self) -> bool {
        self.inner().dir.is_some()
    }

    /// Whether /run/udev did not exist before the harness started udevd (and so is removed
    /// again on drop). False for a reused daemon.
    pub fn created_run_udev(&self) -> bool {
        self.owned() && !self.inner().run_udev_existed
    }

    /// Pid of the udevd the harness started, `None` for a reused one.
    pub fn pid(&self) -> Option<u32> {
        self.inner()
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.id())
    }

    /// What the udevd the harness started logged (empty for a reused one).
    pub fn log(&self) -> String {
        self.inner()
            .dir
            .as_ref()
            .and_then(|d| fs::read_to_string(d.join("udevd.log")).ok())
            .unwrap_or_default()
    }

    /// `udevadm settle --timeout=SECS`: waits until udevd's queue is empty.
    pub fn settle(&self, timeout: Duration) -> bool {
        Command::new("udevadm")
            .arg("settle")
            .arg(format!("--timeout={}", timeout.as_secs().max(1)))
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

fn char_nodes_snapshot() -> Vec<(PathBuf, u32, u32, u32)> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut dirs = vec![(PathBuf::from("/dev"), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_char_device() {
                out.push((p, md.mode() & 0o7777, md.uid(), md.gid()));
            } else if ft.is_dir()
                && depth == 0
                && !matches!(e.file_name().to_str(), Some("pts" | "shm"))
            {
                dirs.push((p, depth + 1));
            }
        }
    }
    out
}

fn spawn_udevd(bin: &Path) -> UdevdInner {
    let dir = shm_dir("udevd");
    let run_udev_existed = Path::new("/run/udev").exists();
    let dev_dirs_existed = UDEV_DEV_DIRS
        .iter()
        .map(|d| (PathBuf::from(d), Path::new(d).exists()))
        .collect();
    let char_nodes = char_nodes_snapshot();
    let log = fs::File::create(dir.join("udevd.log")).expect("udevd log");
    let log2 = log.try_clone().expect("udevd log");
    // Not kill_with_parent_thread: the handle is shared between test threads, and the thread
    // that started udevd may end first. A leak is reaped by the next start instead.
    let child = Command::new(bin)
        .env(UDEVD_OWNER_ENV, std::process::id().to_string())
        .env(
            UDEVD_RUN_CREATED_ENV,
            if run_udev_existed { "0" } else { "1" },
        )
        .env("SYSTEMD_LOG_TARGET", "console")
        .env("SYSTEMD_LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let inner = UdevdInner {
        child: Mutex::new(Some(child)),
        dir: Some(dir.clone()),
        run_udev_existed,
        dev_dirs_existed,
        char_nodes,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if Path::new("/run/udev/control").exists() && Udevd::running() {
            return inner;
        }
        let exited = inner
            .child
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if exited.is_some() || Instant::now() > deadline {
            let log = fs::read_to_string(dir.join("udevd.log")).unwrap_or_default();
            drop(inner);
            panic!("systemd-udevd did not come up (exit: {exited:?}); log:\n{log}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a udevd that a dead harness process left running (recognised by its environment).
fn reap_leaked_udevd() {
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !fs::read_to_string(p.path().join("comm")).is_ok_and(|c| c.trim() == "systemd-udevd") {
            continue;
        }
        let Ok(env) = fs::read(p.path().join("environ")) else {
            continue;
        };
        let vars: HashMap<String, String> = env
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        let Some(owner) = vars
            .get(UDEVD_OWNER_ENV)
            .and_then(|o| o.parse::<i32>().ok())
        else {
            continue;
        };
        if pid_alive(owner) {
            continue;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid_alive(pid) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if pid_alive(pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if vars.get(UDEVD_RUN_CREATED_ENV).map(String::as_str) == Some("1") && !Udevd::running() {
            let _ = fs::remove_dir_all("/run/udev");
        }
    }
}

/// Removes `dir` and its subdirectories bottom-up if they hold nothing but empty directories.
fn remove_empty_tree(dir: &Path) -> bool {
    let Ok(md) = fs::symlink_metadata(dir) else {
        return true;
    };
    if !md.is_dir() {
        return false;
    }
    let mut empty = true;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            empty &= remove_empty_tree(&e.path());
        }
    }
    empty && fs::remove_dir(dir).is_ok()
}

impl Drop for Udevd {
    fn drop(&mut self) {
        let _shared = UDEVD.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.inner.take());
    }
}

impl Drop for UdevdInner {
    fn drop(&mut self) {
        let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        stop_child(&mut child, Duration::from_secs(5));
        if !self.run_udev_existed && !Udevd::running() {
            let _ = fs::remove_dir_all("/run/udev");
        }
        for (dir, existed) in &self.dev_dirs_existed {
            if !existed {
                remove_empty_tree(dir);
            }
        }
        for (path, mode, uid, gid) in &self.char_nodes {
            let Ok(md) = fs::symlink_metadata(path) else {
                continue;
            };
            if md.mode() & 0o7777 != *mode {
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(*mode));
            }
            if md.uid() != *uid || md.gid() != *gid {
                let _ = std::os::unix::fs::lchown(path, Some(*uid), Some(*gid));
            }
        }
        if let Some(dir) = &self.dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LoopNode
// ---------------------------------------------------------------------------------------------

const LOOP_CTL_ADD: libc::c_ulong = 0x4C80;
const LOOP_CTL_REMOVE: libc::c_ulong = 0x4C81;

/// First loop number tried: far above what `losetup -f` hands out.
const LOOP_FIRST: u32 = 300;
/// How many numbers to try before giving up.
const LOOP_TRIES: u32 = 2000;

static LOOP_NEXT: AtomicU32 = AtomicU32::new(LOOP_FIRST);

fn loop_ctl(request: libc::c_ulong, arg: libc::c_long) -> io::Result<libc::c_int> {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    // SAFETY: loop-control ioctls take an integer argument, no pointers.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), request as _, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn on_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into a zeroed struct of the right type.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    r == 0 && st.f_type == libc::TMPFS_MAGIC
}

/// A brand-new loop device node (`/dev/loopN`, N >= 300) made with `LOOP_CTL_ADD` on
/// `/dev/loop-control`, which emits a kernel `add` uevent for `block/loopN`, as a hotplugged
/// disk does. [`LoopNode::attach`] (`losetup /dev/loopN FILE`) emits `change`;
/// [`LoopNode::remove`] detaches and `LOOP_CTL_REMOVE`s it, emitting `remove`. Drop removes it
/// if still present. A new node has the kernel's default attributes, so nothing else needs
/// restoring.
///
/// Numbers come from a process-wide counter (parallel tests never pick the same one); a
/// number that exists already (`EEXIST`, e.g. another process's) is skipped.
///
/// Caveat: while a node is not attached, `LOOP_CTL_GET_FREE` (`losetup -f`,
/// `common::LoopDev::new`) in another thread may hand it out, because it returns any unbound
/// node. It takes the lowest unbound number, so this happens only when every lower loop
/// device is bound; tests that mix both kinds hold `common::kernel_lock()`. `remove()` never
/// detaches a backing file it did not attach.
pub struct LoopNode {
    number: u32,
    backing: Option<PathBuf>,
    own_dir: Option<PathBuf>,
    removed: bool,
}

impl LoopNode {
    /// Creates `/dev/loopN` with `LOOP_CTL_ADD`. Panics if loop-control refuses.
    pub fn create() -> LoopNode {
        for _ in 0..LOOP_TRIES {
            let n = LOOP_NEXT.fetch_add(1, Ordering::SeqCst);
            match loop_ctl(LOOP_CTL_ADD, n as libc::c_long) {
                Ok(_) => {
                    return LoopNode {
                        number: n,
                        backing: None,
                        own_dir: None,
                        removed: false,
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                Err(e) => panic!("LOOP_CTL_ADD {n} on /dev/loop-control: {e} (needs root)"),
            }
        }
        panic!("LOOP_CTL_ADD: no free loop number found in {LOOP_TRIES} tries");
    }

    pub fn number(&self) -> u32 {
        self.number
    }

    /// `loopN`.
    pub fn name(&self) -> String {
        format!("loop{}", self.number)
    }

    /// `/dev/loopN`.
    pub fn dev(&self) -> PathBuf {
        PathBuf::from(format!("/dev/loop{}", self.number))
    }

    /// `/devices/virtual/block/loopN`: the DEVPATH of its uevents.
    pub fn devpath(&self) -> String {
        format!("/devices/virtual/block/loop{}", self.number)
    }

    /// `/sys/block/loopN/REL`.
    pub fn sys(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/sys/block/loop{}/{rel}", self.number))
    }

    /// Whether the node still exists.
    pub fn exists(&self) -> bool {
        self.sys("").exists()
    }

    /// The backing file the kernel reports, if any file is attached (by anyone).
    pub fn attached_file(&self) -> Option<PathBuf> {
        fs::read_to_string(self.sys("loop/backing_file"))
            .ok()
            .map(|s| PathBuf::from(s.trim()))
    }

    /// `losetup /dev/loopN FILE` (emits a `change` uevent). `file` must be on tmpfs. Panics
    /// on failure, e.g. when something else attached the node first.
    pub fn attach(&mut self, file: &Path) {
        assert!(!self.removed, "{} was removed", self.name());
        assert!(
            on_tmpfs(file),
            "backing file {} is not on tmpfs: keep test data off the machine's disk",
            file.display()
        );
        let out = Command::new("losetup")
            .arg(self.dev())
            .arg(file)
            .output()
            .expect("run losetup");
        assert!(
            out.status.success(),
            "losetup {} {}: {}",
            self.dev().display(),
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.backing = Some(fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()));
    }

    /// Creates a sparse `size_mb` MiB file in the node's own directory on /dev/shm (removed
    /// on drop) and attaches it. Returns the file.
    pub fn attach_sparse(&mut self, size_mb: u64) -> PathBuf {
        let dir = match &self.own_dir {
            Some(d) => d.clone(),
            None => {
                let d = shm_dir(&self.name());
                self.own_dir = Some(d.clone());
                d
            }
        };
        let file = dir.join("disk.img");
        let f = fs::File::create(&file).expect("backing file");
        f.set_len(size_mb << 20).expect("sparse size");
        drop(f);
        self.attach(&file);
        file
    }

    /// `losetup -d /dev/loopN` if the harness attached the file now attached (emits
    /// `change`). The kernel finishes the detach when the last opener (e.g. a udev probe)
    /// closes the device.
    pub fn detach(&mut self) {
        let Some(ours) = self.backing.take() else {
            return;
        };
        if self.attached_file().as_deref() != Some(ours.as_path()) {
            return;
        }
        let _ = Command::new("losetup")
            .arg("-d")
            .arg(self.dev())
            .stderr(Stdio::null())
            .status();
    }

    /// Detaches (if the harness attached it) and removes the node with `LOOP_CTL_REMOVE`
    /// (emits `remove`), retrying for up to 5 s while it is busy (a udev probe holding it
    /// open, a detach still completing). Idempotent.
    pub fn remove(&mut self) -> io::Result<()> {
        if self.removed {
            return Ok(());
        }
        self.detach();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match loop_ctl(LOOP_CTL_REMOVE, self.number as libc::c_long) {
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("LOOP_CTL_REMOVE {}: {e}", self.number),
                    ))
                }
            }
        }
        self.removed = true;
        if let Some(d) = self.own_dir.take() {
            let _ = fs::remove_dir_all(d);
        }
        Ok(())
    }
}

impl Drop for LoopNode {
    fn drop(&mut self) {
        let _ = self.remove();
        if let Some(d) = self.own_dir.take() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// UeventListener
// ---------------------------------------------------------------------------------------------

/// One uevent's properties: `ACTION`, `DEVPATH`, `SUBSYSTEM`, `DEVNAME`, `SEQNUM`, ...
pub type Uevent = HashMap<String, String>;

/// A raw `NETLINK_KOBJECT_UEVENT` socket bound to group 1: the kernel's own uevents, as
/// they are emitted, whether or not udevd runs (udevd re-broadcasts on group 2, which this
/// socket does not see). Only messages from the kernel (sender port 0) are returned.
///
/// Create it *before* the action whose event the test waits for: the socket sees only what
/// happens after it is bound. The receive buffer is 8 MiB (`SO_RCVBUFFORCE`); if it still
/// overflows, events are lost and [`UeventListener::overruns`] counts the `ENOBUFS`.
pub struct UeventListener {
    fd: OwnedFd,
    overruns: u64,
}

impl UeventListener {
    /// Opens and binds the socket. Panics on failure.
    pub fn new() -> UeventListener {
        // SAFETY: plain socket syscalls on a descriptor this function owns.
        unsafe {
            let raw = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_KOBJECT_UEVENT,
            );
            assert!(
                raw >= 0,
                "socket(NETLINK_KOBJECT_UEVENT): {}",
                io::Error::last_os_error()
            );
            let fd = OwnedFd::from_raw_fd(raw);
            let size: libc::c_int = 8 << 20;
            let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let p = &size as *const libc::c_int as *const libc::c_void;
            if libc::setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, p, len) != 0 {
                libc::setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, p, len);
            }
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            addr.nl_pid = 0; // let the kernel pick a port id
            addr.nl_groups = 1; // kernel uevents
            let r = libc::bind(
                raw,
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            );
            assert!(
                r == 0,
                "bind uevent socket to group 1: {}",
                io::Error::last_os_error()
            );
            UeventListener { fd, overruns: 0 }
        }
    }

    /// How many times the kernel reported a receive-buffer overflow (events lost).
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// One event, waiting at most until `deadline`. `Instant` is taken right after `recv`.
    fn recv_one(&mut self, deadline: Instant) -> Option<(Instant, Uevent)> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let left = deadline - now;
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                panic!("poll uevent socket: {e}");
            }
            if r == 0 {
                continue;
            }
            // SAFETY: zeroed sockaddr_nl and a buffer of the given length.
            let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            let mut fromlen = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut from as *mut libc::sockaddr_nl as *mut libc::sockaddr,
                    &mut fromlen,
                )
            };
            let at = Instant::now();
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::ENOBUFS) => {
                        self.overruns += 1;
                        continue;
                    }
                    Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                    _ => panic!("recv uevent: {e}"),
                }
            }
            if from.nl_pid != 0 {
                continue; // not from the kernel
            }
            if let Some(ev) = parse_uevent(&buf[..n as usize]) {
                return Some((at, ev));
            }
        }
    }

    /// The first event, received within `timeout`, for which `pred` is true; events before
    /// it are consumed. `None` on timeout. The `Instant` is taken right after the event was
    /// read from the socket: with the listener waiting, that is within microseconds of the
    /// kernel emitting it.
    pub fn recv_until<F>(&mut self, mut pred: F, timeout: Duration) -> Option<(Instant, Uevent)>
    where
        F: FnMut(&Uevent) -> bool,
    {
        let deadline = Instant::now() + timeout;
        while let Some((at, ev)) = self.recv_one(deadline) {
            if pred(&ev) {
                return Some((at, ev));
            }
        }
        None
    }

    /// The first event with this `ACTION` for block device `name` (e.g. `loop300`).
    pub fn wait_for(
        &mut self,
        action: &str,
        name: &str,
        timeout: Duration,
    ) -> Option<(Instant, Uevent)> {
        let suffix = format!("/{name}");
        self.recv_until(
            |ev| {
                ev.get("ACTION").map(String::as_str) == Some(action)
                    && ev.get("DEVPATH").is_some_and(|p| p.ends_with(&suffix))
            },
            timeout,
        )
    }
}

impl Default for UeventListener {
    fn default() -> Self {
        UeventListener::new()
    }
}

/// Parses a kernel uevent datagram `ACTION@DEVPATH\0KEY=VALUE\0...`. `ACTION` and `DEVPATH`
/// are taken from the header when the body lacks them. `None` for udev's own
/// `libudev`-framed messages and anything without a header.
pub fn parse_uevent(buf: &[u8]) -> Option<Uevent> {
    if buf.starts_with(b"libudev\0") {
        return None;
    }
    let mut parts = buf.split(|b| *b == 0).filter(|p| !p.is_empty());
    let header = String::from_utf8_lossy(parts.next()?).into_owned();
    let (action, devpath) = header.split_once('@')?;
    let mut ev = Uevent::new();
    for kv in parts {
        let kv = String::from_utf8_lossy(kv);
        if let Some((k, v)) = kv.split_once('=') {
            ev.insert(k.to_string(), v.to_string());
        }
    }
    ev.entry("ACTION".into())
        .or_insert_with(|| action.to_string());
    ev.entry("DEVPATH".into())
        .or_insert_with(|| devpath.to_string());
    Some(ev)
}
