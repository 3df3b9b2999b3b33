//! A saved log, any text: parse_log, then the catalog on every record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunerd::detect::classify::{classify, suppressed};
use tunerd::detect::parse::parse_log;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for rec in parse_log(&text) {
        let _ = classify(&rec);
        let _ = suppressed(&rec);
    }
});
