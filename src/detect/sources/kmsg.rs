//! The kernel log, live, straight from /dev/kmsg: during a storage failure journald itself may
//! be stuck on the failing disk, so tunerd reads the kernel's ring buffer itself.
//!
//! Resumes after the last sequence number it handled (kept in /run/tunerd, with the boot id),
//! so nothing is missed or reported twice across restarts; records the kernel overwrote before
//! tunerd read them (`read()` says EPIPE, or the sequence jumps) are reported as a gap.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use serde::{Deserialize, Serialize};

use crate::detect::parse::parse_kmsg_record;
use crate::detect::types::LogRecord;
use crate::host::sys::Root;

use crate::host::state_files::KMSG_POSITION as STATE;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Position {
    boot_id: String,
    seq: u64,
}

/// What one read of the ring gave.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub records: Vec<LogRecord>,
    /// Records lost before they could be read (ring overwrite), when known; `Some(0)` when
    /// the kernel said records were lost without saying how many.
    pub lost: Option<u64>,
}

pub(crate) struct KmsgReader {
    file: File,
    boot_id: String,
    /// The last sequence number handled and committed.
    committed: Option<u64>,
    /// The last sequence number read (committed once its notifications are spooled).
    read_up_to: Option<u64>,
    /// The start of a record whose end a read has not returned yet: /dev/kmsg returns one
    /// whole record per read, but a FIFO standing in for it (a fixture root, the tests)
    /// returns whatever was written, several records or part of one.
    partial: Vec<u8>,
}

impl KmsgReader {
    /// Opens /dev/kmsg (non-blocking) at the oldest record still held; records up to the
    /// saved position of this boot are skipped as they come.
    pub(crate) fn open(root: &Root) -> io::Result<KmsgReader> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(root.path("dev/kmsg"))?;
        let boot_id = root
            .read_lossy("proc/sys/kernel/random/boot_id")
            .unwrap_or_default();
        let committed = root
            .read_opt(STATE)
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str::<Position>(&t).ok())
            .filter(|p| p.boot_id == boot_id)
            .map(|p| p.seq);
        Ok(KmsgReader {
            file,
            boot_id,
            committed,
            read_up_to: committed,
            partial: Vec::new(),
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Reads what is available, at most `max` records.
    pub(crate) fn read(&mut self, max: usize) -> Batch {
        let mut batch = Batch::default();
        // One read() returns one record; 8 KiB is more than a record can be (EINVAL below).
        let mut buf = vec![0u8; 8192];
        while batch.records.len() < max {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for record in self.split(&buf[..n]) {
                        self.take(&record, &mut batch);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The reader's position was overwritten. Whether anything not yet handled was
                // lost, the next record's sequence number tells (counted above): EPIPE while
                // skipping old records handled before a restart loses nothing. Without a
                // position (first start of this boot) nobody can tell: say records were lost.
                Err(e) if e.raw_os_error() == Some(nix::libc::EPIPE) => {
                    if self.read_up_to.is_none() {
                        batch.lost.get_or_insert(0);
                    }
                }
                Err(_) => break,
            }
        }
        batch
    }

    /// The whole records in what one read returned (a record is a line and the continuation
    /// lines after it, which start with a blank); an unfinished last one waits for the next
    /// read. From /dev/kmsg this is always exactly the one record read.
    fn split(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.partial.extend_from_slice(chunk);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            // A record longer than a kernel record can be is not one: drop it.
            if self.partial.len() > 65_536 {
                self.partial.clear();
            }
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        let mut records: Vec<Vec<u8>> = Vec::new();
        for line in complete.split_inclusive(|&b| b == b'\n') {
            match records.last_mut() {
                Some(rec) if line.first() == Some(&b' ') => rec.extend_from_slice(line),
                _ => records.push(line.to_vec()),
            }
        }
        records
    }

    fn take(&mut self, record: &[u8], batch: &mut Batch) {
        let Some(rec) = parse_kmsg_record(record) else {
            return;
        };
        let Some(seq) = rec.seq else { return };
        if self.read_up_to.is_some_and(|last| seq <= last) {
            return; // handled before a restart
        }
        if let Some(last) = self.read_up_to {
            if seq > last + 1 {
                let lost = seq - last - 1;
                batch.lost = Some(batch.lost.unwrap_or(0) + lost);
            }
        }
        self.read_up_to = Some(seq);
        batch.records.push(rec);
    }

    /// Records the position after the notifications of everything read were handed over.
    pub(crate) fn commit(&mut self, root: &Root) {
        if self.read_up_to == self.committed {
            return;
        }
        let Some(seq) = self.read_up_to else { return };
        let pos = Position {
            boot_id: self.boot_id.clone(),
            seq,
        };
        if let Ok(text) = serde_json::to_vec(&pos) {
            if root.write_atomic(STATE, &text).is_ok() {
                self.committed = Some(seq);
            }
        }
    }
}
