//! One line of `journalctl -o json`, any text: parse_journal_json_line, then the catalog.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunerd::detect::classify::classify;
use tunerd::detect::parse::parse_journal_json_line;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        if let Some(rec) = parse_journal_json_line(line) {
            let _ = classify(&rec);
        }
    }
});
