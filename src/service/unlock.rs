//! Gives back the pages of the daemon's own binary that `mlockall(MCL_CURRENT)` locked but
//! nothing reads after start: the unwind tables (`.eh_frame`, `.eh_frame_hdr`,
//! `.gcc_except_table`) and the dynamic relocations (`.rela.dyn`).
//!
//! The release build aborts on panic (`panic = "abort"`), so no unwinding ever reads the
//! tables; only a backtrace would (`RUST_BACKTRACE=1`, printed just before the abort), and it
//! then reads them back from the binary. The relocations are read once, by ld.so, before
//! `main`. Together about 0.4 MB of the 3.5 MB binary (docs/performance.md).
//!
//! The sections are found in the binary's own ELF section headers (`/proc/self/exe`, read
//! with a few `pread`s: the headers, not the file) and placed with the load address of its
//! program headers (`getauxval(AT_PHDR)`). Written by hand: the crates that parse ELF
//! (object, goblin) are large for four fields of two tables, and this runs once.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// The sections given back.
const SECTIONS: [&str; 4] = [
    ".eh_frame_hdr",
    ".eh_frame",
    ".gcc_except_table",
    ".rela.dyn",
];

/// Unlocks and drops the pages wholly inside [`SECTIONS`] of the running binary; the bytes
/// given back, 0 when anything is not as expected (nothing is changed then).
pub(crate) fn release_unread_sections() -> usize {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return 0;
    };
    let Some((ranges, phdr_vaddr)) = sections(&exe) else {
        return 0;
    };
    // SAFETY: getauxval only reads the process's auxiliary vector.
    let phdr_at = unsafe { nix::libc::getauxval(nix::libc::AT_PHDR) };
    let Some(bias) = phdr_at.checked_sub(phdr_vaddr) else {
        return 0;
    };
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096);
    let mut released = 0;
    for (start, end) in ranges {
        // Whole pages only: the first and last may hold other sections' bytes.
        let from = (start + bias).div_ceil(page) * page;
        let to = (end + bias) / page * page;
        if to <= from {
            continue;
        }
        let len = (to - from) as usize;
        let Some(addr) = std::ptr::NonNull::new(from as *mut std::ffi::c_void) else {
            continue;
        };
        // SAFETY: the range is inside the binary's read-only mapping of these sections,
        // which nothing in the process writes or holds references into; dropped pages of a
        // private file mapping that was never written read back from the file.
        let done = unsafe {
            nix::sys::mman::munlock(addr, len).is_ok()
                && nix::sys::mman::madvise(addr, len, nix::sys::mman::MmapAdvise::MADV_DONTNEED)
                    .is_ok()
        };
        if done {
            released += len;
        }
    }
    released
}

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?).into())
}

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?).into())
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn read_at(f: &File, offset: u64, len: u64) -> Option<Vec<u8>> {
    // Headers and the section name table are a few kB; anything larger is not an ELF file
    // this code understands.
    if len > 1 << 20 {
        return None;
    }
    let mut buf = vec![0; usize::try_from(len).ok()?];
    f.read_exact_at(&mut buf, offset).ok()?;
    Some(buf)
}

/// The link-time address ranges `[start, end)` of [`SECTIONS`], merged where adjacent, and
/// the link-time address of the program headers (PT_PHDR), from a 64-bit little-endian ELF.
fn sections(f: &File) -> Option<(Vec<(u64, u64)>, u64)> {
    let eh = read_at(f, 0, 64)?;
    if eh.get(..4)? != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let (phoff, shoff) = (u64_at(&eh, 0x20)?, u64_at(&eh, 0x28)?);
    let (phentsize, phnum) = (u16_at(&eh, 0x36)?, u16_at(&eh, 0x38)?);
    let (shentsize, shnum, shstrndx) = (u16_at(&eh, 0x3a)?, u16_at(&eh, 0x3c)?, u16_at(&eh, 0x3e)?);
    if phentsize < 56 || shentsize < 64 || shstrndx >= shnum {
        return None;
    }
    let ph = read_at(f, phoff, phentsize * phnum)?;
    let phdr_vaddr = (0..phnum).find_map(|i| {
        let at = (i * phentsize) as usize;
        // PT_PHDR
        (u32_at(&ph, at)? == 6)
            .then(|| u64_at(&ph, at + 0x10))
            .flatten()
    })?;
    let sh = read_at(f, shoff, shentsize * shnum)?;
    let field = |i: u64, at: usize| u64_at(&sh, (i * shentsize) as usize + at);
    let name_of = |i: u64| u32_at(&sh, (i * shentsize) as usize);
    let names = read_at(f, field(shstrndx, 0x18)?, field(shstrndx, 0x20)?)?;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for i in 0..shnum {
        let start = usize::try_from(name_of(i)?).ok()?;
        let name = names.get(start..)?.split(|b| *b == 0).next()?;
        if !SECTIONS.iter().any(|s| s.as_bytes() == name) {
            continue;
        }
        let (addr, size) = (field(i, 0x10)?, field(i, 0x20)?);
        if addr == 0 || size == 0 {
            continue;
        }
        ranges.push((addr, addr.checked_add(size)?));
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in ranges {
        match merged.last_mut() {
            // Adjacent up to alignment padding: the pages between are theirs too.
            Some(last) if s <= last.1 + 16 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    Some((merged, phdr_vaddr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary's own sections are found, inside its mapping, and giving back their
    /// pages leaves it running (the tables are read again from the file if ever needed).
    #[test]
    fn the_running_binarys_unwind_tables_are_found_and_given_back() {
        let exe = File::open("/proc/self/exe").expect("exe");
        let (ranges, phdr) = sections(&exe).expect("a 64-bit ELF with section headers");
        assert!(phdr > 0 || !ranges.is_empty());
        assert!(!ranges.is_empty(), "no unwind tables in a test binary?");
        for (s, e) in &ranges {
            assert!(s < e, "{s:#x}..{e:#x}");
        }
        let released = release_unread_sections();
        assert!(released > 0, "nothing given back of {ranges:x?}");
        // Still runs, and can still unwind: a panic caught here reads .eh_frame again.
        let caught = std::panic::catch_unwind(|| panic!("after the release"));
        assert!(caught.is_err());
    }
}
