//! A device-mapper table, read through the control device (`dev/mapper/control`) with the
//! `DM_TABLE_STATUS` ioctl, the way `dmsetup table NAME` reads it: for a multipath map, its
//! features say whether it queues I/O when its last path goes (`queue_if_no_path`), which no
//! sysfs file shows.
//!
//! Written by hand: tunerd needs this one read-only call (about sixty lines over
//! include/uapi/linux/dm-ioctl.h); the devicemapper crate would bring a dozen dependencies
//! into every VM image for it, and libdevmapper a C library.

use std::os::fd::AsRawFd;

use super::sys::Root;

/// `DM_NAME_LEN`, `DM_UUID_LEN`, `DM_MAX_TYPE_NAME` (dm-ioctl.h).
const NAME_LEN: usize = 128;
const UUID_LEN: usize = 129;
const TYPE_LEN: usize = 16;
/// `sizeof(struct dm_ioctl)`: version[3], data_size, data_start, target_count, open_count,
/// flags, event_nr, padding (4 bytes each), dev (8), name, uuid, data[7].
const HEADER: usize = 4 * 10 + 8 + NAME_LEN + UUID_LEN + 7;
/// `sizeof(struct dm_target_spec)`: sector_start, length (8 each), status, next (4 each),
/// target_type.
const SPEC: usize = 8 + 8 + 4 + 4 + TYPE_LEN;
/// `DM_TABLE_STATUS_CMD`, and the flags: `DM_STATUS_TABLE_FLAG` (the table, not the status),
/// `DM_BUFFER_FULL_FLAG` (out: the buffer was too small).
const TABLE_STATUS_CMD: u8 = 12;
const STATUS_TABLE_FLAG: u32 = 1 << 4;
const BUFFER_FULL_FLAG: u32 = 1 << 8;

/// One target line of a table: `multipath` and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub target_type: String,
    pub params: String,
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0)
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    if let Some(b) = buf.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_ne_bytes());
    }
}

fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `DM_TABLE_STATUS`: `_IOWR(DM_IOCTL, DM_TABLE_STATUS_CMD, struct dm_ioctl)`, 0xc138fd0c, as
/// libdevmapper and dmsetup send it. The request carries the size of the header, not of the
/// buffer: nix's `ioctl_readwrite_buf!` would put the buffer's length there (16 KiB and more
/// overflow the 14-bit size field into the direction bits). dm ignores the size (it reads
/// `data_size`), so that worked, but strace and seccomp filters see the kernel's number.
const TABLE_STATUS: nix::sys::ioctl::ioctl_num_type =
    nix::request_code_readwrite!(0xfd, TABLE_STATUS_CMD, HEADER) as _;

/// The table of the map `name` (`mpatha`); an error when there is no control device (a
/// fixture tree, a kernel without dm) or no such map.
pub(crate) fn table(root: &Root, name: &str) -> Result<Vec<Target>, String> {
    if name.is_empty() || name.len() >= NAME_LEN {
        return Err(format!("{name:?}: not a dm name"));
    }
    let control = std::fs::File::open(root.path("dev/mapper/control"))
        .map_err(|e| format!("dev/mapper/control: {e}"))?;
    let mut size = 16 * 1024;
    loop {
        let mut buf = vec![0u8; size];
        for (i, v) in [4u32, 0, 0].into_iter().enumerate() {
            put_u32(&mut buf, i * 4, v);
        }
        put_u32(&mut buf, 12, size as u32); // data_size
        put_u32(&mut buf, 16, HEADER as u32); // data_start
        put_u32(&mut buf, 28, STATUS_TABLE_FLAG); // flags
        buf[48..48 + name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: the buffer is `size` bytes, as data_size tells the kernel; the kernel reads
        // the header and writes at most data_size bytes.
        let rc = unsafe { nix::libc::ioctl(control.as_raw_fd(), TABLE_STATUS, buf.as_mut_ptr()) };
        if rc < 0 {
            return Err(format!(
                "DM_TABLE_STATUS {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
        if u32_at(&buf, 28) & BUFFER_FULL_FLAG != 0 && size < 1 << 20 {
            size *= 4;
            continue;
        }
        let count = u32_at(&buf, 20) as usize; // target_count
        let mut at = u32_at(&buf, 16) as usize;
        let mut out = Vec::new();
        for _ in 0..count {
            let Some(spec) = buf.get(at..at + SPEC) else {
                break;
            };
            let next = u32_at(spec, 20) as usize;
            let target_type = c_str(&spec[24..24 + TYPE_LEN]);
            let params = c_str(buf.get(at + SPEC..).unwrap_or(&[]));
            out.push(Target {
                target_type,
                params,
            });
            if next == 0 {
                break;
            }
            // `next` is the offset of the next spec from the start of the data (dm-ioctl.c
            // retrieve_status: relative to the first spec). Seen right on Debian 12's 6.1 in
            // the guest lab (tests/guest/lab.sh): the table of a two-path map, as dmsetup
            // prints it.
            at = u32_at(&buf, 16) as usize + next;
        }
        return Ok(out);
    }
}

/// A multipath table's features (`1 queue_if_no_path`): whether it queues with no path.
pub(crate) fn queues_if_no_path(params: &str) -> bool {
    let mut words = params.split_whitespace();
    let count: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    words.take(count).any(|w| w == "queue_if_no_path")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_the_kernels_size() {
        // sizeof(struct dm_ioctl) == 312, sizeof(struct dm_target_spec) == 40 on every ABI.
        assert_eq!(HEADER, 312);
        assert_eq!(SPEC, 40);
        // dm-ioctl.h's DM_TABLE_STATUS: _IOWR(0xfd, 0xc, struct dm_ioctl), 312 = 0x138 bytes.
        assert_eq!(TABLE_STATUS, 0xc138_fd0c);
    }

    #[test]
    fn multipath_features() {
        // `dmsetup table` lines of multipath-tools maps (its own man page and test suite).
        assert!(queues_if_no_path(
            "1 queue_if_no_path 1 alua 1 1 service-time 0 2 1 8:16 1 8:32 1"
        ));
        assert!(queues_if_no_path(
            "2 queue_if_no_path retain_attached_hw_handler 0 1 1 round-robin 0 1 1 8:16 1"
        ));
        assert!(!queues_if_no_path(
            "0 0 1 1 service-time 0 2 1 8:16 1 8:32 1"
        ));
        // The table DM_TABLE_STATUS read in the guest lab (tests/guest/lab.sh, Debian 12's
        // 6.1, multipath-tools 0.9.4 with no_path_retry 6), as `dmsetup table` printed it.
        assert!(queues_if_no_path(
            "1 queue_if_no_path 0 2 1 service-time 0 1 2 8:48 1 1 service-time 0 1 2 8:32 1 1"
        ));
        assert!(!queues_if_no_path(
            "1 retain_attached_hw_handler 1 queue_if_no_path 1 1"
        ));
    }
}
