//! Adversarial tests: hygiene (see mod.rs). The exec hook and the configuration files, as the
//! security review (findings 8, 14, 15) attacked them:
//! - one notification too big for `execve` (1,500 kubelet-style mount points) must still run
//!   the hook, with capped variables, and must not hold up the notifications behind it; a hook
//!   that cannot be run at all rejects that notification instead of wedging the sink;
//! - the hook gets a blocking stderr of its own and the default OOM score, whatever the daemon
//!   has;
//! - tunerd.toml, the profile drop-ins, their directories and the hook program must be root's
//!   and not writable by group or others; a URL's secrets never appear in an error.
//!
//! The exec tests build the dispatcher in-process (as tests/it/receiver/alert_delivery.rs
//! does) and need no root; the tests that chown to uid 65534 take the kernel tier's guard
//! (root).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::tier::{self, Tier};
use crate::common::{tunerctl, Scratch};
use tunerd::alert::{AlertConfig, Dispatcher, ExecConfig, RetryConfig};
use tunerd::detect::types::{Incident, IncidentState, Kind, Notification, Severity};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A vdb I/O error on a node with `mounts` bind mounts of vdb, as the review made it: kubelet
/// volume paths of about 110 bytes each.
fn notification(id: &str, mounts: usize) -> Notification {
    let started = now_secs() - 5;
    Notification {
        id: id.to_string(),
        event: IncidentState::Firing,
        incident: Incident {
            id: format!("disk/vdb/k{started}-{id}"),
            kind: Kind::BufferIoError,
            severity: Severity::Critical,
            state: IncidentState::Firing,
            summary: format!("I/O error on vdb [{id}]"),
            disk: Some("vdb".to_string()),
            device: Some("vdb".to_string()),
            mounts: (0..mounts)
                .map(|i| {
                    format!(
                        "/var/lib/kubelet/pods/{i:036}/volumes/kubernetes.io~csi/pvc-{i:027}/mount"
                    )
                })
                .collect(),
            fstype: Some("ext4".to_string()),
            started,
            last_seen: started + 1,
            ended: None,
            count: 1,
            evidence: vec![
                "Buffer I/O error on dev vdb, logical block 9, lost async page write".to_string(),
            ],
            source: "kmsg".to_string(),
        },
        created_ms: now_secs() * 1000,
    }
}

fn exec_config(program: &str, args: &[&str]) -> AlertConfig {
    AlertConfig {
        host: Some("testhost".to_string()),
        exec: Some(ExecConfig::new(program, args)),
        retry: RetryConfig {
            initial_ms: 50,
            max_ms: 400,
        },
        ..AlertConfig::default()
    }
}

/// Finding 8: a notification whose mount list alone is over MAX_ARG_STRLEN (128 KiB).
/// Before: every attempt failed with E2BIG and was retried at the head of the queue forever,
/// so the hook never ran again, for this or any later incident.
#[test]
fn oversized_notification_still_runs_the_hook_with_capped_variables() {
    let scratch = Scratch::new("hyg-e2big");
    let out = scratch.join("out");
    fs::create_dir_all(&out).expect("mkdir");
    let o = out.display();
    // Records what it was given, per notification.
    let script = format!(
        "printf '%s' \"$TUNERD_MOUNTS\" > {o}/mounts.$TUNERD_ID; printf '%s' \"$TUNERD_JSON\" > {o}/json.$TUNERD_ID"
    );
    let disp = Dispatcher::start(&scratch.root(), exec_config("/bin/sh", &["-c", &script]))
        .expect("start");
    let big = notification("n-big", 1500);
    let whole: usize = big.incident.mounts.iter().map(|m| m.len() + 1).sum();
    assert!(whole > 128 * 1024, "the mount list is {whole} bytes");
    disp.notify(&big);
    disp.notify(&notification("n-after", 2));
    let delivered = wait_until(Duration::from_secs(10), || {
        disp.stats().sinks[0].delivered == 2
    });
    let stats = disp.stats().sinks[0].clone();
    disp.shutdown();
    assert!(delivered, "the hook did not run for both: {stats:?}");

    let mounts = fs::read_to_string(out.join("mounts.n-big")).expect("TUNERD_MOUNTS of n-big");
    eprintln!(
        "FIGURE exec hook with 1,500 mount points: mount list {whole} B, TUNERD_MOUNTS {} B, \
         TUNERD_JSON {} B",
        mounts.len(),
        fs::metadata(out.join("json.n-big")).map_or(0, |m| m.len())
    );
    assert!(mounts.len() <= 64 * 1024, "{} bytes", mounts.len());
    assert!(mounts.starts_with(&big.incident.mounts[0]), "{mounts:.200}");
    let last = mounts.rsplit(' ').next().unwrap_or_default();
    assert!(
        last.starts_with("…+"),
        "no marker of the mounts left out: {last}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(out.join("json.n-big")).expect("TUNERD_JSON of n-big"),
    )
    .expect("TUNERD_JSON is JSON");
    assert_eq!(json["id"], "n-big");
    let listed = json["incident"]["mounts"].as_array().map_or(0, Vec::len);
    assert!(listed > 1 && listed < 1500, "{listed} mounts in the JSON");
    assert_eq!(
        fs::read_to_string(out.join("mounts.n-after"))
            .ok()
            .as_deref(),
        Some(
            notification("n-after", 2)
                .incident
                .mounts
                .join(" ")
                .as_str()
        )
    );
}

/// Finding 8: a spawn that can never succeed (here ENOENT) rejects that notification, once;
/// the next one is delivered as soon as the hook is there. Before: the first was retried
/// with backoff at the head of the queue, blocking everything behind it.
#[test]
fn a_hook_that_cannot_be_run_rejects_that_notification_only() {
    let scratch = Scratch::new("hyg-enoent");
    let hook = scratch.join("hook.sh");
    let seen = scratch.join("seen");
    let disp = Dispatcher::start(
        &scratch.root(),
        exec_config(&hook.display().to_string(), &[]),
    )
    .expect("start");
    disp.notify(&notification("n-missing", 1));
    let rejected = wait_until(Duration::from_secs(5), || {
        disp.stats().sinks[0].rejected == 1
    });
    let stats = disp.stats().sinks[0].clone();
    if !rejected {
        disp.shutdown();
        panic!("a missing hook was not a rejection: {stats:?}");
    }
    assert_eq!(stats.queued, 0, "{stats:?}");
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("No such file")),
        "{stats:?}"
    );
    // The hook appears; a later notification goes through, the rejected one never runs.
    fs::write(
        &hook,
        format!("#!/bin/sh\necho \"$TUNERD_ID\" >> {}\n", seen.display()),
    )
    .expect("write hook");
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod");
    disp.notify(&notification("n-next", 1));
    let delivered = wait_until(Duration::from_secs(5), || {
        disp.stats().sinks[0].delivered == 1
    });
    // Time for a retry of the first, had it been kept.
    std::thread::sleep(Duration::from_millis(600));
    let stats = disp.stats().sinks[0].clone();
    disp.shutdown();
    assert!(delivered, "{stats:?}");
    assert_eq!(
        fs::read_to_string(&seen).unwrap_or_default(),
        "n-next\n",
        "{stats:?}"
    );
    assert_eq!((stats.rejected, stats.delivered), (1, 1), "{stats:?}");
}

/// The child half of [`the_hook_gets_a_blocking_stderr_and_the_default_oom_score`]: runs a
/// dispatcher whose hook records its fd 2 flags and OOM score adjustment. Does nothing unless
/// the parent started it.
#[test]
fn hook_inheritance_child() {
    let Some(dir) = std::env::var_os("TUNERD_HYG_HOOK_CHILD") else {
        return;
    };
    let dir = Path::new(&dir);
    let d = dir.display();
    let script = format!(
        "grep '^flags:' /proc/self/fdinfo/2 > {d}/flags; cat /proc/self/oom_score_adj > {d}/oom; \
         echo 'hello from the hook' >&2"
    );
    let spool = Scratch::new("hyg-inherit-child");
    let disp =
        Dispatcher::start(&spool.root(), exec_config("/bin/sh", &["-c", &script])).expect("start");
    disp.notify(&notification("n-inherit", 1));
    let ok = wait_until(Duration::from_secs(10), || {
        disp.stats().sinks[0].delivered == 1
    });
    let stats = disp.stats().sinks[0].clone();
    disp.shutdown();
    assert!(ok, "{stats:?}");
}

/// Finding 15: the daemon's stderr is O_NONBLOCK (a stuck journal must not stop detection)
/// and the unit gives it OOMScoreAdjust=-1000. The hook inherited both: EAGAIN on its
/// writes to stderr, and never OOM-killed. Here the dispatcher runs in a child of this test
/// whose stderr is non-blocking and whose OOM score is raised to 500 (raising needs no
/// privilege, and leaves this process alone); the hook must see neither.
#[test]
fn the_hook_gets_a_blocking_stderr_and_the_default_oom_score() {
    use std::os::unix::process::CommandExt;
    let scratch = Scratch::new("hyg-inherit");
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([
        "adversarial::hygiene::hook_inheritance_child",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TUNERD_HYG_HOOK_CHILD", &scratch.path)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: fcntl, open, write and close only: async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let flags = libc::fcntl(2, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(2, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
            let fd = libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd >= 0 {
                libc::write(fd, b"500".as_ptr().cast(), 3);
                libc::close(fd);
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {}\n{stderr}",
        out.status
    );
    let flags = fs::read_to_string(scratch.join("flags")).expect("the hook's fd 2 flags");
    let octal = flags.trim().trim_start_matches("flags:").trim();
    let bits = u32::from_str_radix(octal, 8).expect("octal flags");
    assert_eq!(
        bits & libc::O_NONBLOCK as u32,
        0,
        "the hook's stderr is non-blocking: {flags}"
    );
    let oom = fs::read_to_string(scratch.join("oom")).expect("the hook's oom_score_adj");
    assert_eq!(oom.trim(), "0", "the hook kept the daemon's OOM score");
    // What it wrote to stderr is in tunerd's log.
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("alert sink exec:") && l.ends_with("hello from the hook")),
        "{stderr}"
    );
}

/// A scratch root holding only `etc/tunerd/tunerd.toml` with `text`, at `mode`.
fn root_with_config(tag: &str, text: &str, mode: u32) -> Scratch {
    let scratch = Scratch::new(tag);
    let file = scratch.join("etc/tunerd/tunerd.toml");
    fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    fs::write(&file, text).expect("write");
    fs::set_permissions(&file, fs::Permissions::from_mode(mode)).expect("chmod");
    scratch
}

/// `tunerctl --root R check-config`: exit code and stderr.
fn check_config(root: &Path) -> (Option<i32>, String) {
    let out = Command::new(tunerctl())
        .arg("--root")
        .arg(root)
        .arg("check-config")
        .output()
        .expect("run tunerctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Finding 14: a tunerd.toml anyone may write is refused (before: `check-config` said ok),
/// by `check-config` and by a direct apply, each with exit 4 and one line naming the file, its
/// owner and its mode, and by the daemon, which then runs on the built-in configuration and
/// logs that line.
#[test]
fn a_world_writable_tunerd_toml_is_refused() {
    let scratch = root_with_config("hyg-0666", "profile = \"auto\"\n", 0o666);
    let file = scratch.join("etc/tunerd/tunerd.toml");
    let (code, err) = check_config(&scratch.path);
    assert_eq!(code, Some(4), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(
        err.contains("mode 0666") && err.contains("owned by uid"),
        "{err}"
    );

    let apply = Command::new(tunerctl())
        .arg("--root")
        .arg(&scratch.path)
        .args(["--direct", "apply"])
        .output()
        .expect("run tunerctl apply");
    assert_eq!(apply.status.code(), Some(4));
    // The daemon refuses it too, but keeps running: on the built-in configuration, since it
    // accepted nothing before on this root (a tree of its own: no disks, no vm knobs).
    let log = scratch.join("tunerd.log");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_tunerd"))
        .arg("--root")
        .arg(&scratch.path)
        .arg("--no-dbus")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run tunerd");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let derr = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if text.contains("profile ") && text.contains(" knobs set") {
            break text;
        }
        if let Ok(Some(status)) = daemon.try_wait() {
            panic!("tunerd exited ({status}) on a refused configuration: {text}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tunerd never applied: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let alive = matches!(daemon.try_wait(), Ok(None));
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(alive, "{derr}");
    let refused = derr
        .lines()
        .find(|l| l.starts_with("<3>configuration refused: "))
        .unwrap_or_else(|| panic!("no refusal logged: {derr}"));
    assert!(
        refused.contains("mode 0666")
            && refused.ends_with("; running on the built-in configuration"),
        "{refused}"
    );
    // Nothing of the refused file is kept as accepted.
    assert!(!scratch.join("run/tunerd/accepted.json").exists());
    // `tunerctl status` says so, and exits 4.
    let status = Command::new(tunerctl())
        .arg("--root")
        .arg(&scratch.path)
        .args(["--direct", "status"])
        .output()
        .expect("run tunerctl status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(4), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("config    refused: ")
            && l.contains("mode 0666")
            && l.ends_with("shown: the built-in configuration, which tunerd would run on")),
        "{text}"
    );
    // The same file at 0644 (or 0600, for secrets) is fine.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, err) = check_config(&scratch.path);
    assert_eq!(code, Some(0), "{err}");
}

/// Finding 14: the directories and the profile drop-ins are held to the same rule.
#[test]
fn writable_config_directories_and_profiles_are_refused() {
    let scratch = root_with_config("hyg-dirs", "profile = \"auto\"\n", 0o644);
    let dir = scratch.join("etc/tunerd");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, err) = check_config(&scratch.path);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains(&dir.display().to_string()) && err.contains("mode 0777"),
        "{err}"
    );
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");

    let profile = scratch.join("etc/tunerd/profiles.d/san.toml");
    fs::create_dir_all(profile.parent().expect("parent")).expect("mkdir");
    fs::write(&profile, "inherits = \"default\"\n").expect("write");
    fs::set_permissions(&profile, fs::Permissions::from_mode(0o664)).expect("chmod");
    let (code, err) = check_config(&scratch.path);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains(&profile.display().to_string()) && err.contains("mode 0664"),
        "{err}"
    );
    fs::set_permissions(&profile, fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, err) = check_config(&scratch.path);
    assert_eq!(code, Some(0), "{err}");
}

/// Finding 14: the hook runs as root, so it is held to the same rule as the file naming it,
/// and so is every directory above it (its owner could replace it).
#[test]
fn a_hook_owned_by_another_user_is_refused() {
    let Some(_tier) = tier::require(Tier::Kernel) else {
        return;
    };
    let hooks = Scratch::new("hyg-hook");
    let hook = hooks.join("bin/hook.sh");
    fs::create_dir_all(hook.parent().expect("parent")).expect("mkdir");
    fs::write(&hook, "#!/bin/sh\nexit 0\n").expect("write");
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(&hook, Some(65534), Some(65534)).expect("chown 65534");
    let config = |program: &Path| {
        format!(
            "[alert.exec]\nprogram = \"{}\"\n",
            program.display().to_string().replace('"', "\\\"")
        )
    };
    let scratch = root_with_config("hyg-hook-cfg", &config(&hook), 0o644);
    let (code, err) = check_config(&scratch.path);
    assert_eq!(code, Some(4), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&hook.display().to_string()) && err.contains("owned by uid 65534"),
        "{err}"
    );

    // Root's own program, in a directory anyone may write: refused, naming the directory.
    std::os::unix::fs::chown(&hook, Some(0), Some(0)).expect("chown root");
    let bin = hooks.join("bin");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, err) = check_config(&scratch.path);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains(&format!("{}: refused", bin.display())) && err.contains("mode 0777"),
        "{err}"
    );

    // A hook where hooks belong is accepted, and so is one not installed yet.
    for program in ["/bin/true", "/usr/local/sbin/tunerd-hook-not-installed"] {
        let ok = root_with_config("hyg-hook-ok", &config(Path::new(program)), 0o644);
        let (code, err) = check_config(&ok.path);
        assert_eq!(code, Some(0), "{program}: {err}");
    }
}

/// Finding 14: a token in a webhook URL's query (or user information) never appears in an
/// error. Before: `` `url` is not a valid URL (...): "https://hooks.example/x?token=S3CR3T value" ``.
#[test]
fn url_secrets_are_not_echoed_in_errors() {
    for url in [
        "https://hooks.example/x?token=S3CR3T value",
        "hooks.example/x?token=S3CR3T",
        "https://u:S3CR3T@hooks.example/x",
    ] {
        let text = format!("[[alert.webhook]]\nurl = \"{url}\"\n");
        let scratch = root_with_config("hyg-url", &text, 0o600);
        let (code, err) = check_config(&scratch.path);
        assert_eq!(code, Some(4), "{url}: {err}");
        assert!(!err.contains("S3CR3T"), "{url}: {err}");
        assert!(err.contains("url"), "{url}: {err}");
    }
}

/// Finding 14: invalid UTF-8 is an error naming the file, not a U+FFFD in a value.
#[test]
fn invalid_utf8_in_tunerd_toml_is_refused() {
    let scratch = root_with_config("hyg-utf8", "", 0o644);
    let file = scratch.join("etc/tunerd/tunerd.toml");
    fs::write(
        &file,
        b"[alert.exec]\nprogram = \"/bin/true\"\nargs = [\"a\xff\"]\n",
    )
    .expect("write");
    let (code, err) = check_config(&scratch.path);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("not valid UTF-8"), "{err}");
}

/// The package installs tunerd.toml 0600 (it may hold secrets). A user who may not read it
/// still gets `tunerctl status` for a profile named otherwise (the daemon's, or --profile),
/// and the status says the file was not read; one who names no profile gets the permission
/// error, not a silent default.
#[test]
fn a_root_only_tunerd_toml_leaves_status_to_other_users() {
    let Some(_tier) = crate::common::tier::require(crate::common::tier::Tier::Kernel) else {
        return;
    };
    let scratch = root_with_config("hyg-0600", "profile = \"kvm\"\n", 0o600);
    for d in ["sys/block", "proc/self"] {
        fs::create_dir_all(scratch.join(d)).expect("mkdir");
    }
    fs::write(scratch.join("proc/self/mountinfo"), "").expect("mountinfo");
    let nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                tunerctl(),
                "--root",
            ])
            .arg(&scratch.path)
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent")
            .output()
            .expect("setpriv tunerctl")
    };
    let out = nobody(&["--profile", "default", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("profile   default ("), "{text}");
    let json = nobody(&["--profile", "default", "--json", "status"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status --json");
    assert!(
        v["config"].as_str().unwrap_or("").contains("not read"),
        "{v}"
    );
    let out = nobody(&["status"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied")
            || String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
