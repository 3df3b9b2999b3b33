//! Alert delivery to a real Alertmanager (Debian's `prometheus-alertmanager`, 0.25): API v2
//! `POST /api/v2/alerts`, labels as the identity, re-sent while firing, resolved with
//! `endsAt`. Needs `apt-get install -y prometheus-alertmanager`.
//!
//! Each test runs its own Alertmanager in the foreground on 127.0.0.1 (clustering off), its
//! storage and configuration in a directory on /dev/shm; a `Drop` guard stops it and removes
//! the directory, also when the test fails.

use crate::common;

use std::fs;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::tier::{self, Tier};
use crate::common::Scratch;
use tunerd::alert::{AlertConfig, Dispatcher, Format, RetryConfig, WebhookConfig, SPOOL_DIR};
use tunerd::detect::types::{Incident, IncidentState, Kind, Notification, Severity};
use tunerd::host::sys::Root;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// An HTTP client for the test's own requests: no proxy from the environment, statuses as
/// values.
fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent()
}

/// A running Alertmanager; stopped (SIGTERM, then SIGKILL) and its directory removed on drop.
struct Alertmanager {
    child: Child,
    port: u16,
    dir: Scratch,
}

impl Alertmanager {
    fn start() -> Alertmanager {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "{BINARY} is missing: apt-get install -y prometheus-alertmanager"
        );
        let dir = Scratch::new("am");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path.join("alertmanager.yml");
        fs::write(
            &config,
            "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
        )
        .expect("write the config");
        let log = fs::File::create(dir.path.join("alertmanager.log")).expect("log file");
        let mut cmd = Command::new(BINARY);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // If the test process dies without unwinding, the kernel stops Alertmanager too.
        common::harness::kill_with_parent_thread(&mut cmd);
        let child = cmd.spawn().expect("start prometheus-alertmanager");
        let mut am = Alertmanager { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client()
                .get(&am.url("/-/ready"))
                .call()
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ready {
                break;
            }
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!("alertmanager exited ({status}):\n{}", am.log());
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager not ready:\n{}",
                am.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        am
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path.join("alertmanager.log")).unwrap_or_default()
    }

    /// `GET /api/v2/alerts`: every alert it holds that has not ended.
    fn alerts(&self) -> Vec<serde_json::Value> {
        let mut resp = client()
            .get(&self.url("/api/v2/alerts"))
            .call()
            .expect("GET /api/v2/alerts");
        assert_eq!(resp.status().as_u16(), 200);
        let text = resp.body_mut().read_to_string().expect("body");
        serde_json::from_str(&text).expect("a JSON array")
    }

    /// The alerts whose `incident_id` label is `incident`.
    fn alerts_of(&self, incident: &str) -> Vec<serde_json::Value> {
        self.alerts()
            .into_iter()
            .filter(|a| a["labels"]["incident_id"] == incident)
            .collect()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn incident(id: &str, severity: Severity, started: u64) -> Incident {
    Incident {
        id: id.to_string(),
        kind: Kind::Ext4JournalAbort,
        severity,
        state: IncidentState::Firing,
        summary: "ext4 journal aborted on loop3 (/mnt/a)".to_string(),
        disk: Some("loop3".to_string()),
        device: Some("loop3".to_string()),
        mounts: vec!["/mnt/a".to_string(), "/mnt/b".to_string()],
        fstype: Some("ext4".to_string()),
        started,
        last_seen: started,
        ended: None,
        count: 3,
        evidence: vec![
            "EXT4-fs error (device loop3): trigger_test_error:1: comm bash: x".to_string(),
            "Aborting journal on device loop3-8.".to_string(),
        ],
        source: "kmsg".to_string(),
    }
}

fn notify_of(id: &str, inc: &Incident, event: IncidentState) -> Notification {
    let mut inc = inc.clone();
    inc.state = event;
    if event == IncidentState::Resolved {
        inc.ended = Some(now_secs());
    }
    Notification {
        id: id.to_string(),
        event,
        incident: inc,
        created_ms: now_secs() * 1000,
    }
}

fn config(am: &Alertmanager) -> AlertConfig {
    let mut hook = WebhookConfig::new("am", &am.url(""));
    hook.format = Format::Alertmanager;
    let mut cfg = AlertConfig {
        host: Some("testhost".to_string()),
        webhooks: vec![hook],
        retry: RetryConfig {
            initial_ms: 100,
            max_ms: 1000,
        },
        ..AlertConfig::default()
    };
    // endsAt is 4 intervals ahead: 4 s here, so re-sending is what keeps an alert active.
    cfg.alertmanager.resend_interval_secs = 1;
    cfg
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn rfc3339(secs: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%S.000Z"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn firing_is_listed_with_its_labels_kept_alive_by_resends_then_resolved() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let am = Alertmanager::start();
    let scratch = Scratch::new("fire");
    let root = Root::new(&scratch.path);
    let d = Dispatcher::start(&root, config(&am)).expect("start");
    let started = now_secs() - 10;
    let inc = incident(
        &format!("ext4_journal_abort/loop3/{started}"),
        Severity::Critical,
        started,
    );

    d.notify(&notify_of("am-fire-1", &inc, IncidentState::Firing));
    assert!(
        wait_until(Duration::from_secs(10), || !am
            .alerts_of(&inc.id)
            .is_empty()),
        "not listed: {:?}\n{}",
        d.stats(),
        am.log()
    );
    let alerts = am.alerts_of(&inc.id);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["status"]["state"], "active");
    let labels = &a["labels"];
    assert_eq!(labels["alertname"], "ext4_journal_abort");
    assert_eq!(labels["instance"], "testhost");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["disk"], "loop3");
    assert_eq!(labels["device"], "loop3");
    assert_eq!(labels["mount"], "/mnt/a,/mnt/b");
    assert_eq!(labels["job"], "tunerd");
    assert_eq!(a["annotations"]["summary"], inc.summary.as_str());
    assert!(a["annotations"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("Aborting journal")));
    assert_eq!(a["startsAt"], rfc3339(started).as_str());

    // endsAt is 4 s ahead; only re-sending keeps it active past that.
    let first_update = a["updatedAt"].as_str().unwrap_or_default().to_string();
    thread::sleep(Duration::from_secs(6));
    let alerts = am.alerts_of(&inc.id);
    assert_eq!(alerts.len(), 1, "expired without re-sends: {alerts:?}");
    assert_eq!(alerts[0]["status"]["state"], "active");
    assert_ne!(alerts[0]["updatedAt"], first_update.as_str());
    let s = d.stats().sinks[0].clone();
    assert!(s.resent >= 3, "{s:?}");
    assert_eq!(s.delivered, 1);

    d.notify(&notify_of("am-fire-2", &inc, IncidentState::Resolved));
    assert!(
        wait_until(Duration::from_secs(10), || am.alerts_of(&inc.id).is_empty()),
        "still active after the resolution: {:?}",
        am.alerts_of(&inc.id)
    );
    // Resolved stays resolved: it is not re-sent as firing.
    thread::sleep(Duration::from_millis(2500));
    assert!(am.alerts_of(&inc.id).is_empty());
    let s = d.stats().sinks[0].clone();
    assert_eq!((s.delivered, s.queued, s.failed_attempts), (2, 0, 0));
    let active = fs::read_to_string(root.path(&format!("{SPOOL_DIR}/am/active.json")))
        .expect("the active set");
    assert_eq!(active.trim(), "{}");
    d.shutdown();
}

#[test]
fn a_restarted_dispatcher_keeps_re_sending_what_was_firing() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let am = Alertmanager::start();
    let scratch = Scratch::new("restart");
    let root = Root::new(&scratch.path);
    let started = now_secs() - 3;
    let inc = incident(
        &format!("io_stall/loop4/{started}"),
        Severity::Warning,
        started,
    );
    let d = Dispatcher::start(&root, config(&am)).expect("start");
    d.notify(&notify_of("am-restart-1", &inc, IncidentState::Firing));
    assert!(wait_until(Duration::from_secs(10), || {
        d.stats().sinks[0].delivered == 1
    }));
    d.shutdown();

    // A new process would start from the same spool: the firing set is in it.
    let d = Dispatcher::start(&root, config(&am)).expect("restart");
    thread::sleep(Duration::from_secs(6));
    let alerts = am.alerts_of(&inc.id);
    assert_eq!(alerts.len(), 1, "expired after the restart: {alerts:?}");
    assert_eq!(alerts[0]["status"]["state"], "active");
    assert!(d.stats().sinks[0].resent >= 3);
    d.shutdown();
}

#[test]
fn a_changed_identity_ends_the_old_alert_and_fires_the_new_one() {
    let Some(_tier) = tier::require(Tier::Receiver) else {
        return;
    };
    let am = Alertmanager::start();
    let scratch = Scratch::new("escalate");
    let root = Root::new(&scratch.path);
    let started = now_secs() - 3;
    let warning = incident(
        &format!("scsi_timeout/loop5/{started}"),
        Severity::Warning,
        started,
    );
    let d = Dispatcher::start(&root, config(&am)).expect("start");
    d.notify(&notify_of("am-esc-1", &warning, IncidentState::Firing));
    assert!(wait_until(Duration::from_secs(10), || {
        am.alerts_of(&warning.id).len() == 1
    }));
    // The same incident escalated: a new label set.
    let mut critical = warning.clone();
    critical.severity = Severity::Critical;
    d.notify(&notify_of("am-esc-2", &critical, IncidentState::Firing));
    assert!(
        wait_until(Duration::from_secs(10), || {
            let alerts = am.alerts_of(&warning.id);
            alerts.len() == 1 && alerts[0]["labels"]["severity"] == "critical"
        }),
        "{:?}",
        am.alerts_of(&warning.id)
    );
    d.shutdown();
}
