//! Alert delivery against real HTTP receivers on 127.0.0.1 (`common::receiver`: Content-Length
//! and chunked bodies, keep-alive, and told to answer 2xx, 4xx, 5xx, 429 with Retry-After,
//! hang, or be down), a real exec hook, a real kill -9 of a process holding
//! a backlog, and the Prometheus textfile.
//!
//! Nothing here targets any address but 127.0.0.1. Scratch roots live on /dev/shm and every
//! server, child process and directory is cleaned up by a `Drop` guard, also on failure.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::receiver::{free_port, Receiver, Reply, Request};
use crate::common::tier::{self, Tier};
use crate::common::Scratch;
use base64::Engine;
use tunerd::alert::{
    render_textfile, write_textfile, AlertConfig, AlertError, Dispatcher, ExecConfig, Metrics,
    RetryConfig, Secret, SpoolConfig, TextfileConfig, WebhookConfig, SPOOL_DIR,
};
use tunerd::detect::types::{Incident, IncidentState, Kind, Notification, Severity};
use tunerd::host::sys::Root;

// ---------------------------------------------------------------------------------------------
// Notifications and dispatchers
// ---------------------------------------------------------------------------------------------

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn notification(id: &str, severity: Severity, event: IncidentState) -> Notification {
    let started = now_secs() - 5;
    Notification {
        id: id.to_string(),
        event,
        incident: Incident {
            id: format!("ext4_journal_abort/loop3/{started}-{id}"),
            kind: Kind::Ext4JournalAbort,
            severity,
            state: event,
            summary: format!("ext4 journal aborted on loop3 (/mnt/a) [{id}]"),
            disk: Some("loop3".to_string()),
            device: Some("loop3".to_string()),
            mounts: vec!["/mnt/a".to_string(), "/mnt/b".to_string()],
            fstype: Some("ext4".to_string()),
            started,
            last_seen: started + 1,
            ended: (event == IncidentState::Resolved).then_some(started + 4),
            count: 2,
            evidence: vec!["Aborting journal on device loop3-8.".to_string()],
            source: "kmsg".to_string(),
        },
        created_ms: now_secs() * 1000,
    }
}

fn firing(id: &str, severity: Severity) -> Notification {
    notification(id, severity, IncidentState::Firing)
}

fn config(webhooks: Vec<WebhookConfig>) -> AlertConfig {
    AlertConfig {
        host: Some("testhost".to_string()),
        webhooks,
        retry: RetryConfig {
            initial_ms: 50,
            max_ms: 400,
        },
        ..AlertConfig::default()
    }
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// The ids of a sink's spool files.
fn spooled_ids(root: &Root, sink: &str) -> Vec<String> {
    let dir = root.path(&format!("{SPOOL_DIR}/{sink}"));
    let mut out = Vec::new();
    for name in root
        .list(&format!("{SPOOL_DIR}/{sink}"))
        .expect("list the spool")
    {
        if name.ends_with(".json") && name != "active.json" {
            let text = fs::read_to_string(dir.join(&name)).expect("read a spool file");
            let v: serde_json::Value = serde_json::from_str(&text).expect("spool JSON");
            out.push(
                v["notification"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn signed_body_verifies_with_the_secret_and_unsigned_has_no_signature() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let scratch = Scratch::new("sign");
    let signed = Receiver::start();
    let plain = Receiver::start();
    let key = b"0123456789abcdef-test-key";
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let mut hook = WebhookConfig::new("signed", &signed.url("/hooks/tunerd?x=1"));
    hook.secret = Some(Secret::new(secret));
    hook.headers = vec![
        ("Authorization".to_string(), Secret::new("Bearer t0ken")),
        ("X-Team".to_string(), Secret::new("storage")),
    ];
    let d = Dispatcher::start(
        &scratch.root(),
        config(vec![hook, WebhookConfig::new("plain", &plain.url("/"))]),
    )
    .expect("start");
    let n = firing("n-sign-1", Severity::Critical);
    d.notify(&n);
    let req = signed.wait_requests(1, Duration::from_secs(10)).remove(0);
    let other = plain.wait_requests(1, Duration::from_secs(10)).remove(0);

    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks/tunerd?x=1");
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(req.header("x-team"), Some("storage"));
    assert_eq!(req.id(), "n-sign-1");
    let ts: u64 = req
        .header("webhook-timestamp")
        .expect("timestamp")
        .parse()
        .expect("integer timestamp");
    assert!(now_secs().abs_diff(ts) < 300, "timestamp {ts}");
    // Standard Webhooks: v1,base64(HMAC-SHA256(key, id.timestamp.body)), computed here anew.
    let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut signed_content = format!("{}.{ts}.", req.id()).into_bytes();
    signed_content.extend_from_slice(req.body.as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD
            .encode(ring::hmac::sign(&mac_key, &signed_content).as_ref())
    );
    assert_eq!(req.header("webhook-signature"), Some(expected.as_str()));
    let sig = req
        .header("webhook-signature")
        .and_then(|s| s.strip_prefix("v1,"))
        .expect("v1 signature");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .expect("base64");
    assert!(ring::hmac::verify(&mac_key, &signed_content, &raw).is_ok());
    let mut tampered = signed_content.clone();
    tampered.push(b' ');
    assert!(ring::hmac::verify(&mac_key, &tampered, &raw).is_err());

    let body = req.json();
    assert_eq!(body["version"], 1);
    assert_eq!(body["id"], "n-sign-1");
    assert_eq!(body["event"], "firing");
    assert_eq!(body["host"], "testhost");
    assert_eq!(body["incident"]["id"], n.incident.id.as_str());
    assert_eq!(body["incident"]["kind"], "ext4_journal_abort");
    assert_eq!(body["incident"]["severity"], "critical");
    assert_eq!(body["incident"]["mounts"][1], "/mnt/b");
    assert!(body["sent_at"].as_str().is_some_and(|s| s.ends_with('Z')));

    assert_eq!(other.header("webhook-signature"), None);
    assert_eq!(other.id(), "n-sign-1");
    assert_eq!(other.header("authorization"), None);

    assert!(wait_until(Duration::from_secs(5), || {
        let s = d.stats();
        s.sinks.iter().all(|s| s.delivered == 1 && s.queued == 0)
    }));
    assert!(spooled_ids(&scratch.root(), "signed").is_empty());
    assert!(spooled_ids(&scratch.root(), "plain").is_empty());
    d.shutdown();
}

#[test]
fn receiver_down_then_up_gets_every_notification_once_in_order() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let scratch = Scratch::new("down");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let d = Dispatcher::start(
        &scratch.root(),
        config(vec![WebhookConfig::new("ops", &url)]),
    )
    .expect("start");
    let ids: Vec<String> = (1..=6).map(|i| format!("n-down-{i}")).collect();
    let sev = [Severity::Info, Severity::Warning, Severity::Critical];
    for (i, id) in ids.iter().enumerate() {
        d.notify(&firing(id, sev[i % 3]));
    }
    assert_eq!(
        spooled_ids(&scratch.root(), "ops"),
        ids,
        "spooled before handed over"
    );
    assert!(
        wait_until(Duration::from_secs(10), || d.stats().sinks[0]
            .failed_attempts
            >= 3),
        "retries while down: {:?}",
        d.stats()
    );
    assert_eq!(d.stats().sinks[0].queued, 6);
    assert_eq!(d.stats().sinks[0].delivered, 0);

    let receiver = Receiver::on_port(port);
    let reqs = receiver.wait_requests(6, Duration::from_secs(10));
    // Several backoff periods more: a 2xx must have ended every retry.
    thread::sleep(Duration::from_millis(1200));
    let reqs_after = receiver.requests();
    assert_eq!(
        reqs_after.len(),
        6,
        "no id twice after a 2xx: {:?}",
        reqs_after.iter().map(Request::id).collect::<Vec<_>>()
    );
    let got: Vec<String> = reqs.iter().map(Request::id).collect();
    assert_eq!(got, ids, "every id once, in order");
    let s = d.stats();
    assert_eq!((s.sinks[0].delivered, s.sinks[0].queued), (6, 0));
    assert!(spooled_ids(&scratch.root(), "ops").is_empty());
    d.shutdown();
}

/// Not a test of its own: the child process of
/// `kill_9_with_a_backlog_then_a_new_dispatcher_delivers_everything`, run from this same test
/// binary. It starts a dispatcher on the given root, queues notifications to a receiver that
/// is down, says so on stdout, and waits to be killed.
#[test]
fn child_process_holding_a_backlog() {
    let (Ok(root), Ok(url), Ok(count)) = (
        std::env::var("TUNERD_ALERT_CHILD_ROOT"),
        std::env::var("TUNERD_ALERT_CHILD_URL"),
        std::env::var("TUNERD_ALERT_CHILD_COUNT"),
    ) else {
        return;
    };
    let count: usize = count.parse().expect("count");
    let d = Dispatcher::start(
        &Root::new(root),
        config(vec![WebhookConfig::new("ops", &url)]),
    )
    .expect("child start");
    for i in 1..=count {
        d.notify(&firing(&format!("n-kill-{i}"), Severity::Warning));
    }
    println!("TUNERD-ALERT-CHILD-QUEUED");
    let _ = std::io::stdout().flush();
    loop {
        thread::sleep(Duration::from_secs(1));
    }
}

/// The kernel kills the child if the thread that started it ends without its guard running
/// (a test binary that aborts).
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A child process killed by the test when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_with_a_backlog_then_a_new_dispatcher_delivers_everything() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let scratch = Scratch::new("kill");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let count = 25;
    let exe = std::env::current_exe().expect("the test binary");
    // The test's name in this binary: its module path without the crate's name.
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, rest)| rest);
    let child_test = format!("{module}::child_process_holding_a_backlog");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        child_test.as_str(),
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TUNERD_ALERT_CHILD_ROOT", &scratch.path)
    .env("TUNERD_ALERT_CHILD_URL", &url)
    .env("TUNERD_ALERT_CHILD_COUNT", count.to_string())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let mut child = ChildGuard(cmd.spawn().expect("spawn the child"));
    let stdout = child.0.stdout.take().expect("child stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("TUNERD-ALERT-CHILD-QUEUED") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the child queued its backlog");
    assert_eq!(spooled_ids(&scratch.root(), "ops").len(), count);

    // The spool is the child's while it lives.
    match Dispatcher::start(
        &scratch.root(),
        config(vec![WebhookConfig::new("ops", &url)]),
    ) {
        Err(AlertError::Busy(_)) => {}
        Err(e) => panic!("expected Busy, got {e}"),
        Ok(_) => panic!("two dispatchers on one spool"),
    }

    // kill -9: no destructor, no flush.
    child.0.kill().expect("SIGKILL");
    let status = child.0.wait().expect("reap");
    assert!(!status.success());

    let receiver = Receiver::on_port(port);
    let d = Dispatcher::start(
        &scratch.root(),
        config(vec![WebhookConfig::new("ops", &url)]),
    )
    .expect("restart on the same spool");
    let reqs = receiver.wait_requests(count, Duration::from_secs(20));
    let ids: BTreeSet<String> = reqs.iter().map(Request::id).collect();
    let want: BTreeSet<String> = (1..=count).map(|i| format!("n-kill-{i}")).collect();
    assert_eq!(ids, want);
    assert!(wait_until(Duration::from_secs(5), || d.stats().sinks[0]
        .delivered
        == count as u64));
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        receiver.requests().len(),
        count,
        "each once: the receiver never failed"
    );
    assert!(spooled_ids(&scratch.root(), "ops").is_empty());
    d.shutdown();
}

#[test]
fn retry_after_is_honoured_5xx_retried_and_other_4xx_not() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let scratch = Scratch::new("codes");
    let r = Receiver::start();
    let d = Dispatcher::start(
        &scratch.root(),
        config(vec![WebhookConfig::new("ops", &r.url("/"))]),
    )
    .expect("start");

    // 429 with Retry-After: 2.
    r.push(Reply::RetryAfter(429, 2));
    d.notify(&firing("n-429", Severity::Warning));
    let reqs = r.wait_requests(2, Duration::from_secs(10));
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(1950) && gap < Duration::from_millis(3500),
        "Retry-After 2 s, retried after {gap:?}"
    );
    assert_eq!(
        (reqs[0].id(), reqs[1].id()),
        ("n-429".into(), "n-429".into())
    );

    // 500 and 503 (no Retry-After): retried with the short backoff, same id.
    r.push(Reply::Status(500));
    r.push(Reply::Status(503));
    d.notify(&firing("n-5xx", Severity::Warning));
    let reqs = r.wait_requests(5, Duration::from_secs(10));
    let ids: Vec<String> = reqs[2..].iter().map(Request::id).collect();
    assert_eq!(ids, ["n-5xx", "n-5xx", "n-5xx"]);
    assert!(reqs[4].at - reqs[2].at < Duration::from_secs(2));

    // 400: refused for good, never retried.
    r.push(Reply::Status(400));
    d.notify(&firing("n-400", Severity::Critical));
    r.wait_requests(6, Duration::from_secs(10));
    thread::sleep(Duration::from_millis(800));
    assert_eq!(r.requests().len(), 6, "a 400 is not retried");
    let s = d.stats().sinks[0].clone();
    assert_eq!(s.delivered, 2);
    assert_eq!(s.rejected, 1);
    assert_eq!(s.failed_attempts, 4);
    assert_eq!(s.queued, 0);
    assert!(s.last_error.is_some_and(|e| e.contains("400")));
    assert!(spooled_ids(&scratch.root(), "ops").is_empty());
    d.shutdown();
}

#[test]
fn a_hanging_receiver_delays_neither_the_caller_nor_another_receiver() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let scratch = Scratch::new("hang");
    let hanging = Receiver::start();
    hanging.set_default(Reply::Hang);
    let fast = Receiver::start();
    let mut slow = WebhookConfig::new("hanging", &hanging.url("/"));
    slow.timeout_ms = 4000;
    let d = Dispatcher::start(
        &scratch.root(),
        config(vec![slow, WebhookConfig::new("fast", &fast.url("/"))]),
    )
    .expect("start");

    let t0 = Instant::now();
    let mut slowest_notify = Duration::ZERO;
    for i in 1..=5 {
        let t = Instant::now();
        d.notify(&firing(&format!("n-hang-{i}"), Severity::Critical));
        slowest_notify = slowest_notify.max(t.elapsed());
    }
    let reqs = fast.wait_requests(5, Duration::from_secs(10));
    let fast_done = t0.elapsed();
    hanging.wait_requests(1, Duration::from_secs(5));
    assert!(
        slowest_notify < Duration::from_millis(100),
        "notify waited {slowest_notify:?}"
    );
    assert!(
        fast_done < Duration::from_millis(1500),
        "the fast receiver waited for the hanging one: {fast_done:?}"
    );
    assert_eq!(reqs.len(), 5);
    assert!(wait_until(Duration::from_secs(2), || {
        d.stats().sink("fast").map(|s| (s.delivered, s.queued)) == Some((5, 0))
    }));
    let s = d.stats();
    assert_eq!(
        s.sink("hanging").map(|s| (s.delivered, s.queued)),
        Some((0, 5))
    );
    // The hanging attempt times out and counts as a failure, then backs off.
    assert!(wait_until(Duration::from_secs(8), || {
        d.stats()
            .sink("hanging")
            .is_some_and(|s| s.failed_attempts >= 1)
    }));
    let t = Instant::now();
    d.shutdown();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t.elapsed()
    );
    // A reload: a new dispatcher takes the spool although the old hanging worker may still be
    // inside an attempt, and finds the 5 notifications still owed to the hanging receiver.
    let d = Dispatcher::start(
        &scratch.root(),
        config(vec![WebhookConfig::new("hanging", &hanging.url("/"))]),
    )
    .expect("start again after shutdown");
    assert_eq!(d.stats().sinks[0].queued, 5);
    d.shutdown();
}

#[test]
fn a_full_spool_keeps_criticals_and_drops_lesser_ones_counted() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let scratch = Scratch::new("bound");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut cfg = config(vec![WebhookConfig::new("ops", &url)]);
    cfg.spool = SpoolConfig { max_entries: 3 };
    // A long backoff: after the first refused connect nothing is in flight.
    cfg.retry = RetryConfig {
        initial_ms: 60_000,
        max_ms: 60_000,
    };
    let d = Dispatcher::start(&scratch.root(), cfg).expect("start");
    d.notify(&firing("c0", Severity::Critical));
    assert!(wait_until(Duration::from_secs(5), || d.stats().sinks[0]
        .failed_attempts
        >= 1));
    let steps = [
        ("i1", Severity::Info, 0),
        ("w1", Severity::Warning, 0),
        ("c1", Severity::Critical, 1), // evicts i1
        ("i2", Severity::Info, 2),     // dropped itself: all queued are more severe
        ("c2", Severity::Critical, 3), // evicts w1
        ("w2", Severity::Warning, 4),  // dropped itself
    ];
    for (id, sev, dropped) in steps {
        d.notify(&firing(id, sev));
        let s = d.stats().sinks[0].clone();
        assert_eq!(s.dropped, dropped, "after {id}: {s:?}");
        assert!(s.queued <= 3);
    }
    let mut spooled = spooled_ids(&scratch.root(), "ops");
    spooled.sort();
    assert_eq!(spooled, ["c0", "c1", "c2"]);
    d.shutdown();

    // What was kept is delivered once the receiver is up (by a new dispatcher on the spool).
    let receiver = Receiver::on_port(port);
    let d = Dispatcher::start(
        &scratch.root(),
        config(vec![WebhookConfig::new("ops", &url)]),
    )
    .expect("restart");
    let ids: Vec<String> = receiver
        .wait_requests(3, Duration::from_secs(10))
        .iter()
        .map(Request::id)
        .collect();
    assert_eq!(ids, ["c0", "c1", "c2"]);
    d.shutdown();
}

#[test]
fn min_severity_filters_per_sink() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let scratch = Scratch::new("minsev");
    let all = Receiver::start();
    let crit = Receiver::start();
    let mut only_critical = WebhookConfig::new("pager", &crit.url("/"));
    only_critical.min_severity = Severity::Critical;
    let d = Dispatcher::start(
        &scratch.root(),
        config(vec![
            WebhookConfig::new("all", &all.url("/")),
            only_critical,
        ]),
    )
    .expect("start");
    d.notify(&firing("m-info", Severity::Info));
    d.notify(&firing("m-crit", Severity::Critical));
    let got: Vec<String> = all
        .wait_requests(2, Duration::from_secs(10))
        .iter()
        .map(Request::id)
        .collect();
    assert_eq!(got, ["m-info", "m-crit"]);
    let got: Vec<String> = crit
        .wait_requests(1, Duration::from_secs(10))
        .iter()
        .map(Request::id)
        .collect();
    assert_eq!(got, ["m-crit"]);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(crit.requests().len(), 1);
    d.shutdown();
}

fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(path).expect("the hook's env file");
    // `env` prints one variable per line; TUNERD_JSON has no newline (compact JSON).
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn exec_hook_gets_the_variables_is_retried_and_timed_out() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let scratch = Scratch::new("exec");
    let dir = scratch.path.join("hook");
    fs::create_dir_all(&dir).expect("hook dir");
    let d = dir.display();
    // Fails the first time (exit 3), writes its environment the second.
    let script = format!(
        "if [ -e {d}/failed-once ]; then env > {d}/env.$TUNERD_ID; else touch {d}/failed-once; exit 3; fi"
    );
    let mut cfg = config(Vec::new());
    cfg.exec = Some(ExecConfig::new("/bin/sh", &["-c", &script]));
    let disp = Dispatcher::start(&scratch.root(), cfg).expect("start");
    let mut n = notification("n-exec-1", Severity::Critical, IncidentState::Resolved);
    n.incident.summary = "ext4 journal aborted on loop3 (/mnt/a); it's \"bad\"".to_string();
    disp.notify(&n);
    let env_file = dir.join("env.n-exec-1");
    assert!(
        wait_until(Duration::from_secs(10), || env_file.exists()
            && disp.stats().sinks[0].delivered == 1),
        "{:?}",
        disp.stats()
    );
    let env = read_env_file(&env_file);
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("TUNERD_EVENT"), Some("resolved"));
    assert_eq!(get("TUNERD_ID"), Some("n-exec-1"));
    assert_eq!(get("TUNERD_INCIDENT_ID"), Some(n.incident.id.as_str()));
    assert_eq!(get("TUNERD_KIND"), Some("ext4_journal_abort"));
    assert_eq!(get("TUNERD_SEVERITY"), Some("critical"));
    assert_eq!(get("TUNERD_DISK"), Some("loop3"));
    assert_eq!(get("TUNERD_MOUNTS"), Some("/mnt/a /mnt/b"));
    assert_eq!(get("TUNERD_SUMMARY"), Some(n.incident.summary.as_str()));
    assert_eq!(get("TUNERD_HOST"), Some("testhost"));
    let json: serde_json::Value =
        serde_json::from_str(get("TUNERD_JSON").expect("TUNERD_JSON")).expect("JSON");
    assert_eq!(json["id"], "n-exec-1");
    assert_eq!(json["event"], "resolved");
    assert_eq!(json["incident"]["ended"], n.incident.ended.expect("ended"));
    assert!(
        env.keys().all(|k| !k.starts_with("CARGO")),
        "the daemon's environment leaked: {env:?}"
    );
    let s = disp.stats().sinks[0].clone();
    assert_eq!(
        (s.sink.as_str(), s.failed_attempts, s.delivered),
        ("exec", 1, 1)
    );
    disp.shutdown();

    // A hook that hangs is killed at its timeout and retried; shutdown does not wait for it.
    let scratch2 = Scratch::new("exec-timeout");
    let pidfile = scratch2.path.join("pid");
    let mut cfg = config(Vec::new());
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let mut exec = ExecConfig::new("/bin/sh", &["-c", &script]);
    exec.timeout_ms = 300;
    cfg.exec = Some(exec);
    // No second attempt during the test: the pid file names the first one.
    cfg.retry = RetryConfig {
        initial_ms: 60_000,
        max_ms: 60_000,
    };
    let disp = Dispatcher::start(&scratch2.root(), cfg).expect("start");
    let t = Instant::now();
    disp.notify(&firing("n-exec-slow", Severity::Warning));
    assert!(t.elapsed() < Duration::from_millis(100));
    assert!(wait_until(Duration::from_secs(5), || {
        disp.stats().sinks[0].failed_attempts >= 1
    }));
    let s = disp.stats().sinks[0].clone();
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("killed")),
        "{s:?}"
    );
    let pid: i32 = fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    assert!(
        wait_until(Duration::from_secs(2), || {
            // Gone, or a zombie of a later attempt's reaping.
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
        }),
        "the timed-out hook still runs"
    );
    disp.shutdown();
}

#[test]
fn textfile_is_written_atomically_in_the_exposition_format() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let scratch = Scratch::new("textfile");
    let root = scratch.root();
    let mut m = Metrics::default();
    m.incidents_open
        .insert((Kind::Ext4JournalAbort, Severity::Critical), 1);
    m.incidents_open
        .insert((Kind::IoStall, Severity::Warning), 2);
    m.incidents_total.insert(Kind::Ext4JournalAbort, 3);
    m.delivered.insert("ops".to_string(), 7);
    m.failed.insert("ops".to_string(), 2);
    m.dropped.insert("ops".to_string(), 0);
    m.spool_entries = 1;
    m.knobs_applied = 12;
    m.drift_total = 4;
    m.rideout = vec![
        ("/".to_string(), None),
        ("/srv/a \"b\"".to_string(), Some(120)),
    ];
    write_textfile(&root, "/run/prometheus/tunerd.prom", &m).expect("write");
    let text = fs::read_to_string(root.path("run/prometheus/tunerd.prom")).expect("read");
    let expected = "\
# HELP tunerd_incidents_open Storage incidents open now.
# TYPE tunerd_incidents_open gauge
tunerd_incidents_open{kind=\"ext4_journal_abort\",severity=\"critical\"} 1
tunerd_incidents_open{kind=\"io_stall\",severity=\"warning\"} 2
# HELP tunerd_incidents_total Storage incidents opened since tunerd started.
# TYPE tunerd_incidents_total counter
tunerd_incidents_total{kind=\"ext4_journal_abort\"} 3
# HELP tunerd_notifications_delivered_total Notifications acknowledged by a sink.
# TYPE tunerd_notifications_delivered_total counter
tunerd_notifications_delivered_total{sink=\"ops\"} 7
# HELP tunerd_notifications_failed_total Failed delivery attempts (each retry counts).
# TYPE tunerd_notifications_failed_total counter
tunerd_notifications_failed_total{sink=\"ops\"} 2
# HELP tunerd_notifications_dropped_total Notifications dropped because the sink's spool was full.
# TYPE tunerd_notifications_dropped_total counter
tunerd_notifications_dropped_total{sink=\"ops\"} 0
# HELP tunerd_spool_entries Notifications waiting in the spool.
# TYPE tunerd_spool_entries gauge
tunerd_spool_entries 1
# HELP tunerd_knobs_applied Knobs held at the profile's value.
# TYPE tunerd_knobs_applied gauge
tunerd_knobs_applied 12
# HELP tunerd_drift_total Knobs found drifted from the profile since tunerd started.
# TYPE tunerd_drift_total counter
tunerd_drift_total 4
# HELP tunerd_rideout_seconds How long a storage stall may last before the guest fails I/O on the mount (+Inf: never).
# TYPE tunerd_rideout_seconds gauge
tunerd_rideout_seconds{mount=\"/\"} +Inf
tunerd_rideout_seconds{mount=\"/srv/a \\\"b\\\"\"} 120
";
    assert_eq!(text, expected);
    assert_eq!(render_textfile(&m), expected);
    assert_eq!(
        root.list("run/prometheus").expect("list"),
        ["tunerd.prom"],
        "no temporary file left"
    );

    // Through the dispatcher: its own counters are filled in, written on its thread.
    let r = Receiver::start();
    let mut cfg = config(vec![WebhookConfig::new("ops", &r.url("/"))]);
    cfg.textfile = Some(TextfileConfig {
        path: "/run/prometheus/tunerd.prom".to_string(),
    });
    let d = Dispatcher::start(&root, cfg).expect("start");
    d.notify(&firing("n-metrics", Severity::Info));
    r.wait_requests(1, Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || d.stats().sinks[0]
        .delivered
        == 1));
    d.publish_metrics(Metrics {
        knobs_applied: 5,
        ..Metrics::default()
    });
    assert!(wait_until(Duration::from_secs(5), || {
        fs::read_to_string(root.path("run/prometheus/tunerd.prom")).is_ok_and(|t| {
            t.contains("tunerd_notifications_delivered_total{sink=\"ops\"} 1\n")
                && t.contains("tunerd_knobs_applied 5\n")
                && t.contains("tunerd_spool_entries 0\n")
        })
    }));
    d.shutdown();
}

/// An HTTPS receiver: Python's http.server behind ssl, with a certificate for 127.0.0.1 from
/// a throwaway CA made with the openssl command. Killed on drop.
struct TlsReceiver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl TlsReceiver {
    /// Makes the CA and the server certificate in `dir`; returns the CA's PEM.
    fn start(dir: &Path) -> (TlsReceiver, String) {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
        ca.extend(["-subj", "/CN=tunerd test CA"]);
        run(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        run(&csr);
        fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext file");
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ]);
        let script = r#"
import http.server, os, ssl, sys
d = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with open(os.path.join(d, "requests.log"), "a") as f:
            f.write(self.headers.get("webhook-id", "") + "\n")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(os.path.join(d, "leaf.pem"), os.path.join(d, "leaf.key"))
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(os.path.join(d, "port.tmp"), "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
srv.serve_forever()
"#;
        fs::write(dir.join("server.py"), script).expect("server script");
        let mut cmd = Command::new("python3");
        cmd.arg(dir.join("server.py"))
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("python3");
        let mut rx = TlsReceiver {
            child,
            port: 0,
            log: dir.join("requests.log"),
        };
        assert!(
            wait_until(Duration::from_secs(20), || dir.join("port").exists()),
            "the TLS receiver did not start"
        );
        rx.port = fs::read_to_string(dir.join("port"))
            .expect("port")
            .trim()
            .parse()
            .expect("port number");
        let ca = fs::read_to_string(dir.join("ca.pem")).expect("ca.pem");
        (rx, ca)
    }

    fn ids(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_verifies_the_receiver_with_the_roots_read_at_start() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let certs = Scratch::new("tls-certs");
    let (rx, ca) = TlsReceiver::start(&certs.path);
    let url = format!("https://127.0.0.1:{}/hook", rx.port);

    // The root's CA bundle trusts the test CA: delivered.
    let trusted = Scratch::new("tls-trusted");
    let root = trusted.root();
    root.write_atomic("etc/ssl/certs/ca-certificates.crt", ca.as_bytes())
        .expect("CA bundle");
    let d = Dispatcher::start(&root, config(vec![WebhookConfig::new("tls", &url)])).expect("start");
    // Read at start only: the bundle can go (a hung disk) and delivery still verifies.
    fs::remove_dir_all(root.path("etc")).expect("remove the bundle");
    d.notify(&firing("n-tls-1", Severity::Critical));
    assert!(
        wait_until(Duration::from_secs(10), || rx.ids() == ["n-tls-1"]),
        "{:?} {:?}",
        rx.ids(),
        d.stats()
    );
    assert!(wait_until(Duration::from_secs(5), || d.stats().sinks[0]
        .delivered
        == 1));
    d.shutdown();

    // No bundle under this root: the built-in Mozilla roots, which do not know the test CA.
    let untrusted = Scratch::new("tls-untrusted");
    let d = Dispatcher::start(
        &untrusted.root(),
        config(vec![WebhookConfig::new("tls", &url)]),
    )
    .expect("start");
    d.notify(&firing("n-tls-2", Severity::Critical));
    assert!(wait_until(Duration::from_secs(10), || {
        d.stats().sinks[0].failed_attempts >= 2
    }));
    let s = d.stats().sinks[0].clone();
    assert_eq!((s.delivered, s.queued), (0, 1));
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.to_ascii_lowercase().contains("certificate")),
        "{s:?}"
    );
    assert_eq!(rx.ids(), ["n-tls-1"]);
    d.shutdown();
}
