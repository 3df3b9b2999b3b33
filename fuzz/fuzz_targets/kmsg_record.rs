//! One read() of /dev/kmsg, any bytes: parse_kmsg_record, then the catalog on what it made.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunerd::detect::classify::{classify, suppressed};
use tunerd::detect::parse::parse_kmsg_record;

fuzz_target!(|data: &[u8]| {
    if let Some(rec) = parse_kmsg_record(data) {
        let _ = classify(&rec);
        let _ = suppressed(&rec);
    }
});
