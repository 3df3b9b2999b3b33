//! The tier helper itself (`common::tier`): the skip line, the failure under
//! `TUNERD_TEST_ALL_TIERS=1`, the fake-missing override and the turns of the tiers.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::common::tier::{missing_of, skip, skip_line, Tier, Turns};

const TIERS: [Tier; 4] = [Tier::Fixture, Tier::Kernel, Tier::Receiver, Tier::Guest];

#[test]
fn a_skip_is_one_line_naming_the_tier_the_test_and_each_fix() {
    let missing: Vec<_> = missing_of(Tier::Receiver.needs(), "alertmanager, openssl")
        .into_iter()
        .filter(|n| n.name == "alertmanager" || n.name == "openssl")
        .collect();
    assert_eq!(missing.len(), 2, "both named ones count as missing");
    assert_eq!(
        skip_line(Tier::Receiver, "receiver::alert_alertmanager::x", &missing),
        "SKIPPED receiver tier (receiver::alert_alertmanager::x): no openssl (apt-get install \
         openssl), no /usr/bin/prometheus-alertmanager (apt-get install \
         prometheus-alertmanager); see README \"Run the tests\""
    );
    let root: Vec<_> = missing_of(Tier::Kernel.needs(), "root")
        .into_iter()
        .filter(|n| n.name == "root")
        .collect();
    assert_eq!(
        skip_line(Tier::Kernel, "kernel::daemon::y", &root),
        "SKIPPED kernel tier (kernel::daemon::y): not root (run as root); see README \"Run the \
         tests\""
    );
}

#[test]
fn fake_missing_names_only_whole_names() {
    let named = |tier: Tier, fake: &str, name: &str| {
        missing_of(tier.needs(), fake)
            .iter()
            .any(|n| n.name == name)
    };
    assert!(named(Tier::Receiver, "alertmanager,qemu", "alertmanager"));
    assert!(named(Tier::Guest, "alertmanager,qemu", "qemu"));
    // "alertmanage" is not "alertmanager": missing only if it really is.
    let installed = std::path::Path::new("/usr/bin/prometheus-alertmanager").exists();
    assert_eq!(
        named(Tier::Receiver, "alertmanage", "alertmanager"),
        !installed
    );
}

#[test]
fn every_need_has_a_name_unique_in_its_tier_and_a_fix() {
    for tier in TIERS {
        let needs = tier.needs();
        for (i, n) in needs.iter().enumerate() {
            assert!(!n.name.is_empty() && !n.fix.is_empty());
            assert!(
                needs[..i].iter().all(|m| m.name != n.name),
                "{} twice in the {} tier",
                n.name,
                tier.name()
            );
        }
    }
}

#[test]
fn all_tiers_turns_a_skip_into_a_failure() {
    let line =
        "SKIPPED guest tier (guest::z): no qemu-system-x86_64 (apt-get install qemu-system-x86)";
    let failed = std::panic::catch_unwind(|| skip(line, true));
    let message = failed.expect_err("TUNERD_TEST_ALL_TIERS=1 fails the test");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(text.starts_with(line), "{text}");
    assert!(text.contains("TUNERD_TEST_ALL_TIERS=1"), "{text}");
}

/// Polls until `cond` holds (at most 10 s).
fn until(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}

#[test]
fn tiers_take_turns_and_a_waiting_tier_goes_next() {
    static TURNS: Turns = Turns::new();
    let k1 = TURNS.enter(Tier::Kernel);
    let k2 = TURNS.enter(Tier::Kernel);
    let (entered, entries) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let tx = entered.clone();
    let receiver = thread::spawn(move || {
        let _r = TURNS.enter(Tier::Receiver);
        tx.send(Tier::Receiver).expect("send");
        let _ = released.recv();
    });
    assert!(until(|| TURNS.waiting(Tier::Receiver) == 1));
    assert!(
        entries.try_recv().is_err(),
        "a receiver test waits while kernel tests run"
    );
    // The receiver tier waits now: another kernel test does not start before it.
    let kernel = thread::spawn(move || {
        let _k = TURNS.enter(Tier::Kernel);
        entered.send(Tier::Kernel).expect("send");
    });
    assert!(until(|| TURNS.waiting(Tier::Kernel) == 1));
    drop(k1);
    assert!(entries.try_recv().is_err(), "still one kernel test running");
    drop(k2);
    assert_eq!(
        entries.recv_timeout(Duration::from_secs(10)),
        Ok(Tier::Receiver),
        "the waiting tier goes once the last kernel test ended"
    );
    assert!(
        entries.try_recv().is_err(),
        "no kernel test while the receiver test runs"
    );
    release.send(()).expect("release");
    assert_eq!(
        entries.recv_timeout(Duration::from_secs(10)),
        Ok(Tier::Kernel)
    );
    receiver.join().expect("receiver thread");
    kernel.join().expect("kernel thread");
}
