//! Throughput of the log parsers and the catalog on one core, printed as figures (never
//! asserted):
//! - the real captures of tests/logs/ repeated to ~1,000,000 lines, per input form: kmsg
//!   records (`parse_kmsg_record`, what the daemon's /dev/kmsg reader does), dmesg/journal text
//!   (`parse_log`), journal JSON lines (`parse_journal_json_line`), each followed by `classify`;
//!   and `classify` alone on records already parsed;
//! - a flood of 100,000 identical `I/O error, dev loop0, sector ...` lines, as kmsg records and
//!   as dmesg text.
//!
//! Run: `cargo bench --bench parse` (the release profile: opt-level "s", LTO). Each figure is
//! the median of 5 runs on this thread.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use tunerd::detect::classify::classify;
use tunerd::detect::parse::{parse_journal_json_line, parse_kmsg_record, parse_log};
use tunerd::detect::types::LogRecord;

const TARGET_LINES: usize = 1_000_000;
const FLOOD: usize = 100_000;

fn logs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/logs")
}

fn files(suffix: &str) -> Vec<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(logs())
        .expect("tests/logs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("capture"))
        .collect()
}

/// The kmsg captures as one read() each would return them (record line + continuation lines).
fn kmsg_records() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for text in files(".kmsg") {
        for line in text.lines() {
            if line.starts_with(' ') {
                if let Some(last) = out.last_mut() {
                    last.extend_from_slice(line.as_bytes());
                    last.push(b'\n');
                }
            } else if !line.is_empty() {
                let mut rec = line.as_bytes().to_vec();
                rec.push(b'\n');
                out.push(rec);
            }
        }
    }
    out
}

fn repeat<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    items.iter().cycle().take(n).cloned().collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Runs `f` 5 times over `lines` lines; prints lines per second (median) and ns per line.
fn report(name: &str, lines: usize, mut f: impl FnMut() -> usize) {
    let mut rates = Vec::new();
    let mut found = 0;
    for _ in 0..5 {
        let start = Instant::now();
        found = black_box(f());
        let secs = start.elapsed().as_secs_f64();
        rates.push(lines as f64 / secs);
    }
    let rate = median(rates);
    println!(
        "{name:<58} {lines:>9} lines  {:>6.2} M lines/s  {:>7.1} ns/line  ({found} observations)",
        rate / 1e6,
        1e9 / rate
    );
}

fn main() {
    // 1. kmsg records, the daemon's path.
    let recs = kmsg_records();
    let many = repeat(&recs, TARGET_LINES);
    report(
        "kmsg records: parse_kmsg_record + classify",
        many.len(),
        || {
            many.iter()
                .filter_map(|b| parse_kmsg_record(b))
                .filter_map(|r| classify(&r))
                .count()
        },
    );

    // 2. Text: the dmesg and journalctl text captures, repeated.
    // Each text format is parsed as a file of its own (journal formats are detected per file).
    let dmesg: Vec<String> = files(".dmesg")
        .iter()
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let dmesg_text = repeat(&dmesg, TARGET_LINES).join("\n");
    report("dmesg text: parse_log + classify", TARGET_LINES, || {
        parse_log(&dmesg_text).iter().filter_map(classify).count()
    });
    let journal: Vec<String> = files(".journal.short")
        .iter()
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let journal_text = repeat(&journal, TARGET_LINES).join("\n");
    report(
        "journalctl -k short text: parse_log + classify",
        TARGET_LINES,
        || parse_log(&journal_text).iter().filter_map(classify).count(),
    );

    // 3. journal JSON lines.
    let json: Vec<String> = files(".journal.json")
        .iter()
        .flat_map(|t| t.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let json_many = repeat(&json, TARGET_LINES);
    report(
        "journal JSON: parse_journal_json_line + classify",
        json_many.len(),
        || {
            json_many
                .iter()
                .filter_map(|l| parse_journal_json_line(l))
                .filter_map(|r| classify(&r))
                .count()
        },
    );

    // 4. The catalog alone.
    let parsed: Vec<LogRecord> = many.iter().filter_map(|b| parse_kmsg_record(b)).collect();
    report(
        "classify alone (records parsed beforehand)",
        parsed.len(),
        || parsed.iter().filter_map(classify).count(),
    );
    let unrelated: Vec<LogRecord> = parsed
        .iter()
        .filter(|r| classify(r).is_none())
        .cloned()
        .collect();
    report(
        "classify alone, unrelated lines only (clean boot etc.)",
        unrelated.len(),
        || unrelated.iter().filter_map(classify).count(),
    );

    // 5. A flood of one block-layer error.
    let flood_rec: Vec<Vec<u8>> = (0..FLOOD)
        .map(|i| {
            format!(
                "3,{},{},-;I/O error, dev loop0, sector {} op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 2\n",
                1000 + i,
                5_000_000 + i,
                2048 + 8 * i
            )
            .into_bytes()
        })
        .collect();
    report("flood, kmsg: 100,000 x I/O error, dev loop0", FLOOD, || {
        flood_rec
            .iter()
            .filter_map(|b| parse_kmsg_record(b))
            .filter_map(|r| classify(&r))
            .count()
    });
    let flood_text: String = (0..FLOOD)
        .map(|i| {
            format!(
                "[ {:>4}.{:06}] I/O error, dev loop0, sector {} op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 2\n",
                5 + i / 1_000_000,
                i % 1_000_000,
                2048 + 8 * i
            )
        })
        .collect();
    report(
        "flood, dmesg text: 100,000 x I/O error, dev loop0",
        FLOOD,
        || parse_log(&flood_text).iter().filter_map(classify).count(),
    );
}
