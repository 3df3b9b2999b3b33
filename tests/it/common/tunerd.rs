//! The daemon as a test runs it: `tunerd --root ROOT` as a child with a notify socket, a
//! D-Bus client through busctl, a signal monitor, and a polling helper.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::harness::PrivateBus;
use super::KernelRoot;

pub const IFACE: &str = "org.tunerd.Tuner1";
pub const PATH: &str = "/org/tunerd/Tuner1";

/// A running `tunerd --root ROOT`, stopped on drop.
pub struct Tunerd {
    child: Option<Child>,
    log: PathBuf,
    /// From spawn to READY=1 on the notify socket.
    pub ready_after: Duration,
}

impl Tunerd {
    pub fn start(root: &KernelRoot, bus: Option<&PrivateBus>) -> Tunerd {
        Self::start_with(root, bus, &[])
    }

    pub fn start_with(root: &KernelRoot, bus: Option<&PrivateBus>, extra: &[&str]) -> Tunerd {
        if !root.scratch.join("run/tunerd/kmsg.json").exists() {
            skip_kmsg_backlog(root);
        }
        let notify_path = root.scratch.join("notify.sock");
        let _ = fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let log = root.scratch.join("tunerd.log");
        // TUNERD_FIGURE_BIN: another build of tunerd (the one before a change), for the
        // kernel tier's FIGURE tests; never set in an ordinary run.
        let bin = std::env::var_os("TUNERD_FIGURE_BIN")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_tunerd").into());
        let mut cmd = match bus {
            Some(b) => b.command(&bin),
            None => Command::new(&bin),
        };
        cmd.arg("--root").arg(root.path()).args(extra);
        if bus.is_none() {
            cmd.arg("--no-dbus");
        }
        cmd.env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"));
        let spawned = Instant::now();
        let mut child = cmd.spawn().expect("spawn tunerd");
        let mut buf = [0u8; 512];
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready_after = loop {
            if let Ok(n) = notify.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
                {
                    break spawned.elapsed();
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "tunerd exited ({status}) before READY: {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "tunerd never sent READY=1");
        };
        // READY does not wait for the bus (a stuck dbus-daemon must not hold up start), so
        // the name is taken on the bus thread a moment later: tests that call the daemon
        // right away wait for it here.
        if let Some(b) = bus {
            let owned = eventually(Duration::from_secs(10), || {
                b.command("dbus-send")
                    .args([
                        "--system",
                        "--print-reply",
                        "--dest=org.freedesktop.DBus",
                        "/org/freedesktop/DBus",
                        "org.freedesktop.DBus.NameHasOwner",
                        "string:org.tunerd.Tuner1",
                    ])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
            });
            assert!(
                owned.is_some(),
                "tunerd never took org.tunerd.Tuner1 on the bus: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Tunerd {
            child: Some(child),
            log,
            ready_after,
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        child.wait().ok().and_then(|s| s.code())
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Tunerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `cond` holds, checking every millisecond; the time it took, or None.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

pub fn busctl(bus: &PrivateBus, args: &[&str]) -> Output {
    bus.command("busctl")
        .arg("--system")
        .args(args)
        .output()
        .expect("busctl")
}

/// Calls a method returning one string and parses it as JSON.
pub fn call_json(bus: &PrivateBus, method: &str, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json=short", "call", IFACE, PATH, IFACE, method];
    a.extend_from_slice(args);
    let out = busctl(bus, &a);
    assert!(
        out.status.success(),
        "{method}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("busctl json");
    let inner = v["data"][0].as_str().expect("a string reply");
    serde_json::from_str(inner).unwrap_or(serde_json::Value::String(inner.to_string()))
}

pub fn property(bus: &PrivateBus, name: &str) -> String {
    let out = busctl(
        bus,
        &["--json=short", "get-property", IFACE, PATH, IFACE, name],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["data"].as_str().unwrap_or("").to_string()
}

/// Signals of our interface, captured by dbus-monitor into a file.
pub struct Monitor {
    child: Child,
    out: PathBuf,
}

impl Monitor {
    pub fn start(bus: &PrivateBus, dir: &Path) -> Monitor {
        let out = dir.join("monitor.txt");
        let child = bus
            .command("dbus-monitor")
            .args(["--system", &format!("type='signal',interface='{IFACE}'")])
            .stdout(fs::File::create(&out).expect("monitor out"))
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-monitor");
        // dbus-monitor is ready once it has become a monitor (it prints NameLost/Acquired).
        eventually(Duration::from_secs(5), || {
            fs::read_to_string(&out).is_ok_and(|t| t.contains("NameLost"))
        });
        Monitor { child, out }
    }

    pub fn text(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the daemon's kernel-log position at the newest record, as if it had been running:
/// earlier tests' failures in the ring buffer are not this test's.
pub fn skip_kmsg_backlog(root: &KernelRoot) {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .expect("/dev/kmsg");
    let mut buf = vec![0u8; 8192];
    let mut last = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(n) if n > 0 => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if let Some(seq) = text.split(',').nth(1).and_then(|s| s.parse().ok()) {
                    last = seq;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            _ => break,
        }
    }
    let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
    fs::write(
        root.scratch.join("run/tunerd/kmsg.json"),
        format!("{{\"boot_id\":\"{}\",\"seq\":{last}}}", boot_id.trim()),
    )
    .expect("kmsg position");
}
