//! Tests across the layers: what one part promises another. They may use any module (no
//! layer imports this one); everything else keeps to the dependency rules in `lib.rs`.

use std::path::PathBuf;

use crate::config::WatchSettings;
use crate::detect::parse::parse_log;
use crate::detect::sources::kmsg::Batch;
use crate::detect::types::Incident;
use crate::host::inventory::Inventory;
use crate::host::sys::Root;

/// A root with no disks and no mounts: the daemon's view of a machine that is not the one
/// the log came from, as `scan` assumes.
struct EmptyMachine(PathBuf);

impl EmptyMachine {
    fn new(tag: &str) -> EmptyMachine {
        let dir = std::env::temp_dir().join(format!("tunerd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sys/block")).expect("mkdir");
        std::fs::create_dir_all(dir.join("proc/self")).expect("mkdir");
        std::fs::write(dir.join("proc/self/mountinfo"), "").expect("mountinfo");
        std::fs::write(dir.join("proc/stat"), "btime 0\n").expect("stat");
        EmptyMachine(dir)
    }
}

impl Drop for EmptyMachine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn captures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/logs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/logs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.ends_with(".md") && !name.ends_with(".sh")
        })
        .collect();
    files.sort();
    files
}

/// What must be the same whichever path folded the records; with `times`, also the ids and
/// times (which depend on the records' stamps).
fn essence(list: &[Incident], times: bool) -> Vec<String> {
    list.iter()
        .map(|i| {
            let mut s = format!(
                "{:?} {:?} {:?} {:?} {:?} {} {:?} {:?}",
                i.kind, i.severity, i.state, i.device, i.disk, i.count, i.evidence, i.summary
            );
            if times {
                s.push_str(&format!(
                    " {} {} {} {:?}",
                    i.id, i.started, i.last_seen, i.ended
                ));
            }
            s
        })
        .collect()
}

#[test]
fn the_daemon_and_scan_fold_one_record_set_into_the_same_incidents() {
    let machine = EmptyMachine::new("same-fold");
    let root = Root::new(&machine.0);
    let inv = Inventory::read(&root).expect("inventory of the empty machine");
    let mut compared = 0;
    for file in captures() {
        let text = std::fs::read_to_string(&file).expect("capture");
        let records = parse_log(&text);
        let scanned = crate::cli::scan::fold(&records).all();

        let _ = std::fs::remove_dir_all(machine.0.join("run"));
        let mut daemon =
            crate::service::detection::Detection::new(&root, &WatchSettings::default());
        // The kernel log as the daemon reads it: one batch per 4096 records.
        for chunk in records.chunks(4096) {
            daemon.on_kmsg(
                &root,
                &inv,
                Batch {
                    records: chunk.to_vec(),
                    lost: None,
                },
            );
        }
        let events = daemon.events();
        let mut through_daemon = events.open.clone();
        through_daemon.extend(events.recent.iter().cloned());
        through_daemon.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));

        let stamped = records
            .iter()
            .all(|r| r.realtime_us.is_some() || r.monotonic_us.is_some());
        assert_eq!(
            essence(&through_daemon, stamped),
            essence(&scanned, stamped),
            "{}: the daemon and scan disagree",
            file.display()
        );
        compared += usize::from(!scanned.is_empty());
    }
    // Most captures are failures: the comparison is not of empty lists.
    assert!(compared >= 10, "only {compared} captures had incidents");
}

/// Who may import whom, between the crate's top-level modules (the table in `lib.rs`).
const MAY_IMPORT: &[(&str, &[&str])] = &[
    ("util", &[]),
    ("host", &["util"]),
    ("tune", &["host", "util"]),
    ("detect", &["host", "util"]),
    ("alert", &["detect", "host", "util"]),
    ("config", &["tune", "detect", "alert", "host", "util"]),
    ("api", &["config", "detect", "tune", "util"]),
    (
        "service",
        &["api", "config", "alert", "detect", "tune", "host", "util"],
    ),
    ("cli", &["api", "config", "detect", "tune", "host", "util"]),
];

/// Every `crate::NAME` a Rust file refers to, outside comments, with its line number.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `$crate::log!` and `crate::log!` are the macro, which lives in util.
            let name = if name == "log" {
                "util".to_string()
            } else {
                name
            };
            if !name.is_empty() {
                out.push((n + 1, name));
            }
            rest = after;
        }
    }
    out
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_import_circle_and_no_upward_import() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut edges: std::collections::BTreeSet<(String, String)> = Default::default();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or("")
            .trim_end_matches(".rs")
            .to_string();
        // The crate root, the binaries and these cross-layer tests are above every layer.
        if matches!(top.as_str(), "lib" | "bin" | "tests") {
            continue;
        }
        let allowed = MAY_IMPORT
            .iter()
            .find(|(m, _)| *m == top)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("{}: module `{top}` is not in MAY_IMPORT", rel.display()));
        let text = std::fs::read_to_string(file).expect("read");
        for (line, to) in crate_refs(&text) {
            if to == top {
                continue;
            }
            edges.insert((top.clone(), to.clone()));
            if !allowed.contains(&to.as_str()) {
                violations.push(format!("src/{}:{line}: {top} -> {to}", rel.display()));
            }
        }
        // Inside the service, the state and its halves never reach the loop or the bus.
        let name = rel.to_str().unwrap_or("");
        if matches!(
            name,
            "service/state.rs" | "service/tuning.rs" | "service/detection.rs"
        ) {
            for (n, l) in text.lines().enumerate() {
                let code = l.split("//").next().unwrap_or("");
                if code.contains("super::bus") || code.contains("service::bus") {
                    violations.push(format!("src/{name}:{}: state -> bus", n + 1));
                }
            }
        }
    }
    // A circle between the top-level modules, whatever the table says.
    fn reaches(edges: &std::collections::BTreeSet<(String, String)>, from: &str, to: &str) -> bool {
        let mut seen = vec![from.to_string()];
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for (a, b) in edges.iter().filter(|(a, _)| *a == m) {
                let _ = a;
                if b == to {
                    return true;
                }
                if !seen.contains(b) {
                    seen.push(b.clone());
                    stack.push(b.clone());
                }
            }
        }
        false
    }
    for (a, b) in &edges {
        if reaches(&edges, b, a) {
            violations.push(format!("circle: {a} -> {b} -> ... -> {a}"));
        }
    }
    assert!(
        violations.is_empty(),
        "imports that break the layering:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_layering_check_sees_a_reference() {
    let refs = crate_refs("use crate::service::State; // crate::cli in a comment\n$crate::log!(x)");
    assert_eq!(
        refs,
        vec![(1, "service".to_string()), (2, "util".to_string())]
    );
}
