//! `tunerctl scan FILE`: the incidents a saved kernel log shows, through the same
//! [`Engine`](crate::detect::Engine) the daemon feeds, so it finds what the daemon would have
//! raised. The log may come from another machine: devices stay as the log names them, and
//! times are the log's own.

use std::io::Read;
use std::path::Path;

use crate::api::exit;
use crate::detect::incidents::IncidentConfig;
use crate::detect::parse::parse_log;
use crate::detect::types::LogRecord;
use crate::detect::{Clock, Engine};

use super::render::{row, table};
use super::{json, Failure, Output};

/// A saved log's records through the engine, as `scan` folds them.
pub(crate) fn fold(records: &[LogRecord]) -> Engine {
    let mut engine = Engine::new(
        IncidentConfig {
            max_open: 4096,
            ..Default::default()
        },
        Default::default(),
        Clock::Saved,
    );
    // The saved clock takes the log's own times; `now` only caps live clocks.
    engine.records(records, None, u64::MAX);
    engine
}

pub(super) fn scan(file: &Path, as_json: bool) -> Result<Output, Failure> {
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.map_err(|e| Failure {
        message: format!("{}: {e}", file.display()),
        code: exit::FAILURE,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| Failure {
        message: format!("{}: {e}", file.display()),
        code: exit::FAILURE,
    })?;
    let records = parse_log(&text);
    let engine = fold(&records);
    let incidents = engine.all();
    let code = if incidents.is_empty() {
        exit::OK
    } else {
        exit::INCIDENT
    };
    let text = if as_json {
        json(&serde_json::json!({
            "records": records.len(),
            "observations": engine.recognised,
            "incidents": incidents,
        }))
    } else if incidents.is_empty() {
        format!("{} records, no storage trouble found\n", records.len())
    } else {
        let mut rows = vec![row(&["KIND", "SEVERITY", "DEVICE", "COUNT", "FIRST LINE"])];
        for i in &incidents {
            rows.push(vec![
                i.kind.name(),
                i.severity.as_str().to_string(),
                i.device.clone().unwrap_or_else(|| "-".into()),
                i.count.to_string(),
                i.evidence.first().cloned().unwrap_or_default(),
            ]);
        }
        format!(
            "{}\n{} records, {} lines about storage trouble, {} incidents\n",
            table(&rows),
            records.len(),
            engine.recognised,
            incidents.len()
        )
    };
    Ok(Output { text, code })
}
