//! Filesystem errors reported by fanotify's FAN_FS_ERROR (Linux 5.16+, ext4): the kernel
//! tells us directly, with the errno and a count, even when the log is rate-limited or lost.
//! One group for all ext4 mounts; events are told apart by the filesystem id (fsid) of the
//! FID record, matched to the fsid of each marked mount.
//!
//! The record layouts are the kernel's (include/uapi/linux/fanotify.h); nix reads the event
//! metadata but not the info records, so those are parsed here.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};

use crate::host::inventory::Mount;

/// FAN_REPORT_FID: events carry the filesystem id and a file handle (needed for FS_ERROR).
const FAN_REPORT_FID: u32 = 0x0000_0200;
const FAN_FS_ERROR: u64 = 0x0000_8000;
const FAN_EVENT_INFO_TYPE_FID: u8 = 1;
const FAN_EVENT_INFO_TYPE_ERROR: u8 = 5;

/// One FS_ERROR event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FsError {
    pub mount_point: String,
    pub source: String,
    /// The errno-style code the filesystem reported (EFSCORRUPTED = 117, EIO = 5, ...).
    pub error: i32,
    /// Errors since the last event read (the kernel merges them).
    pub count: u32,
}

pub(crate) struct FsErrorWatch {
    group: Fanotify,
    /// fsid -> (mount point, source).
    marked: BTreeMap<[i32; 2], (String, String)>,
}

fn fsid_of(path: &str) -> Option<[i32; 2]> {
    let st = nix::sys::statfs::statfs(path).ok()?;
    let id = st.filesystem_id();
    // SAFETY: fsid_t is `struct { int val[2]; }` (repr(C)), whose field libc keeps private.
    Some(unsafe { std::mem::transmute::<nix::sys::statfs::fsid_t, [i32; 2]>(id) })
}

impl FsErrorWatch {
    pub(crate) fn open() -> nix::Result<FsErrorWatch> {
        let flags = InitFlags::FAN_CLASS_NOTIF
            | InitFlags::FAN_CLOEXEC
            | InitFlags::FAN_NONBLOCK
            | InitFlags::from_bits_retain(FAN_REPORT_FID);
        let group = Fanotify::init(flags, EventFFlags::O_RDONLY)?;
        Ok(FsErrorWatch {
            group,
            marked: BTreeMap::new(),
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
    }

    /// Marks every ext4 mount not marked yet (FS_ERROR is reported by ext4 only). Marks of
    /// unmounted filesystems go with their superblock; their entries are dropped here.
    pub(crate) fn sync(&mut self, mounts: &[Mount]) {
        let mut keep = BTreeMap::new();
        for m in mounts.iter().filter(|m| m.fstype == "ext4") {
            let Some(fsid) = fsid_of(&m.mount_point) else {
                continue;
            };
            if keep.contains_key(&fsid) {
                continue; // a bind mount of one filesystem
            }
            if !self.marked.contains_key(&fsid) {
                // The path is absolute: the directory fd argument is not used.
                let res = self.group.mark(
                    MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM,
                    MaskFlags::from_bits_retain(FAN_FS_ERROR),
                    self.group.as_fd(),
                    Some(m.mount_point.as_str()),
                );
                if let Err(e) = res {
                    crate::log!(warn, "fanotify: cannot watch {}: {e}", m.mount_point);
                    continue;
                }
            }
            keep.insert(fsid, (m.mount_point.clone(), m.source.clone()));
        }
        self.marked = keep;
    }

    /// The errors waiting (non-blocking).
    pub(crate) fn read(&mut self) -> Vec<FsError> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match nix::unistd::read(self.group.as_fd(), &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            out.extend(parse_events(&buf[..n], &self.marked));
        }
        out
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses `struct fanotify_event_metadata` records with their info records.
pub(crate) fn parse_events(
    buf: &[u8],
    marked: &BTreeMap<[i32; 2], (String, String)>,
) -> Vec<FsError> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 24 <= buf.len() {
        let Some(event_len) = u32_at(buf, off).map(|v| v as usize) else {
            break;
        };
        let Some(meta_len) = u16_at(buf, off + 6).map(|v| v as usize) else {
            break;
        };
        let mask = u64_at(buf, off + 8).unwrap_or(0);
        if event_len < 24 || off + event_len > buf.len() {
            break;
        }
        if mask & FAN_FS_ERROR != 0 {
            let mut error = 0;
            let mut count = 0;
            let mut fsid = None;
            let mut info = off + meta_len;
            while info + 4 <= off + event_len {
                let kind = buf[info];
                let len = u16_at(buf, info + 2).unwrap_or(0) as usize;
                if len < 4 {
                    break;
                }
                match kind {
                    FAN_EVENT_INFO_TYPE_ERROR => {
                        error = i32_at(buf, info + 4).unwrap_or(0);
                        count = u32_at(buf, info + 8).unwrap_or(0);
                    }
                    FAN_EVENT_INFO_TYPE_FID => {
                        fsid = Some([
                            i32_at(buf, info + 4).unwrap_or(0),
                            i32_at(buf, info + 8).unwrap_or(0),
                        ]);
                    }
                    _ => {}
                }
                info += len;
            }
            let (mount_point, source) = fsid
                .and_then(|f| marked.get(&f).cloned())
                .unwrap_or_default();
            out.push(FsError {
                mount_point,
                source,
                error,
                count,
            });
        }
        off += event_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_and_fid_records() {
        let mut ev = Vec::new();
        // metadata: len, vers 3, reserved, metadata_len 24, mask, fd -1 (FAN_NOFD), pid 0
        let total: u32 = 24 + 12 + 20;
        ev.extend_from_slice(&total.to_ne_bytes());
        ev.extend_from_slice(&[3, 0]);
        ev.extend_from_slice(&24u16.to_ne_bytes());
        ev.extend_from_slice(&FAN_FS_ERROR.to_ne_bytes());
        ev.extend_from_slice(&(-2i32).to_ne_bytes());
        ev.extend_from_slice(&0i32.to_ne_bytes());
        // error record
        ev.extend_from_slice(&[FAN_EVENT_INFO_TYPE_ERROR, 0]);
        ev.extend_from_slice(&12u16.to_ne_bytes());
        ev.extend_from_slice(&117i32.to_ne_bytes());
        ev.extend_from_slice(&1u32.to_ne_bytes());
        // fid record: header, fsid, (a short file handle)
        ev.extend_from_slice(&[FAN_EVENT_INFO_TYPE_FID, 0]);
        ev.extend_from_slice(&20u16.to_ne_bytes());
        ev.extend_from_slice(&7i32.to_ne_bytes());
        ev.extend_from_slice(&9i32.to_ne_bytes());
        ev.extend_from_slice(&[0u8; 8]);
        let mut marked = BTreeMap::new();
        marked.insert([7, 9], ("/mnt".to_string(), "/dev/loop2".to_string()));
        let got = parse_events(&ev, &marked);
        assert_eq!(
            got,
            vec![FsError {
                mount_point: "/mnt".into(),
                source: "/dev/loop2".into(),
                error: 117,
                count: 1
            }]
        );
        assert!(
            parse_events(&ev[..30], &marked).is_empty(),
            "truncated input"
        );
    }
}
