//! The one root-prefixed handle for every read and write of kernel state, configuration and
//! runtime state.
//!
//! This is the only module that knows `/` exists: everything else takes a [`Root`] and names
//! files relative to it (`sys/block/sda/queue/scheduler`, `proc/sys/vm/swappiness`,
//! `etc/tunerd/tunerd.toml`, `run/tunerd/originals.json`). Tests point a `Root` at a fixture
//! tree; the daemon and `tunerctl` point it at `/`. The code paths are the same.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Where configuration lives, relative to the root.
pub const CONFIG_DIR: &str = "etc/tunerd";
/// Where runtime state (the journal of originals, the lock) lives, relative to the root.
pub use super::state_files::DIR as STATE_DIR;

/// A failed read or write of one file, with the file and the errno, ready for a user to read.
#[derive(Debug)]
pub struct SysError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

impl SysError {
    /// The errno's symbolic name, e.g. `EINVAL`, when the kernel gave one.
    pub fn errno_name(&self) -> Option<String> {
        self.source
            .raw_os_error()
            .map(|code| format!("{:?}", nix::errno::Errno::from_raw(code)))
    }

    /// `Invalid argument (EINVAL)`: the message without the path, for per-knob reports.
    pub fn short(&self) -> String {
        match self.errno_name() {
            Some(name) => format!("{} ({name})", strip_os_suffix(&self.source)),
            None => self.source.to_string(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

/// `io::Error`'s Display appends ` (os error 22)`; the errno name says it better.
fn strip_os_suffix(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.short())
    }
}

impl std::error::Error for SysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// An open sysfs directory (one disk's, say): reads relative to it cost one path lookup
/// instead of walking the whole `/sys/block/sda -> ../devices/pci.../block/sda` chain again
/// for every attribute. On 1,000 disks this halves the system time of an inventory.
pub struct SysDir<'r> {
    root: &'r Root,
    rel: String,
    fd: std::os::fd::OwnedFd,
}

impl<'r> SysDir<'r> {
    /// A directory below this one, or the one a symlink here points to (`sys/block`'s
    /// `sda`), opened relative to this one: the path walk starts here, not at `/`.
    pub fn open_dir(&self, name: &str) -> Result<SysDir<'r>, SysError> {
        use nix::fcntl::{openat, OFlag};
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| self.err("open", name, io::Error::from(e)))?;
        Ok(SysDir {
            root: self.root,
            rel: format!("{}/{name}", self.rel),
            fd,
        })
    }

    /// Where the symlink `name` here really leads, as a path under the root, when this
    /// directory was opened by its real path (see [`Root::sys_real_path`]); `None` when it is
    /// no relative symlink.
    pub fn link_real_path(&self, name: &str) -> Option<String> {
        self.link_real_path_from(&self.rel, name)
    }

    /// [`SysDir::link_real_path`] for a directory opened through a symlink: `real` is where
    /// this directory really is.
    pub fn link_real_path_from(&self, real: &str, name: &str) -> Option<String> {
        let target = nix::fcntl::readlinkat(&self.fd, name).ok()?;
        let target = target.to_str()?;
        if target.starts_with('/') {
            return None;
        }
        Some(join_link(real, target))
    }
}

/// `dir/target` normalised lexically (`..` takes a component away): where a relative symlink
/// in `dir` leads, exact in sysfs (its directories under /sys/devices are real directories).
/// Built in one string (components pushed, `..` truncating back to the last `/`): a
/// `Vec` of components joined at the end cost two allocations and a copy per disk link.
fn join_link(dir: &str, target: &str) -> String {
    let mut out = String::with_capacity(dir.len() + target.len() + 1);
    let push = |out: &mut String, c: &str| {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(c);
    };
    // The directory's components are taken as they are; the target's are resolved.
    for comp in dir.split('/').filter(|c| !c.is_empty()) {
        push(&mut out, comp);
    }
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                let cut = out.rfind('/').unwrap_or(0);
                out.truncate(cut);
            }
            c => push(&mut out, c),
        }
    }
    out
}

impl SysDir<'_> {
    fn err(&self, op: &'static str, name: &str, source: io::Error) -> SysError {
        self.root.err(op, &format!("{}/{name}", self.rel), source)
    }

    pub fn rel(&self) -> &str {
        &self.rel
    }

    pub fn read(&self, name: &str) -> Result<String, SysError> {
        self.read_raw(name).map_err(|e| self.err("read", name, e))
    }

    /// [`SysDir::read`] without the path in the error: for reads whose error is dropped (a
    /// disk's absent `serial`, `diskseq`), which then cost no path building.
    fn read_raw(&self, name: &str) -> io::Result<String> {
        use nix::fcntl::{openat, OFlag};
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        read_attr(File::from(fd))
    }

    /// Writes one value as [`SysDir::write`] does and reads the attribute back, as
    /// [`SysDir::read`] would, from the same descriptor: `O_RDWR`, then `pread` at offset 0
    /// (sysfs shows the value afresh on every read from offset 0), which saves the second
    /// `openat` and `close` of every knob an apply writes. An attribute that cannot be opened
    /// for both (write-only ones: kernfs refuses `O_RDWR` with EACCES) takes the two opens as
    /// before, so errors and values are the same either way.
    pub fn write_read_back(
        &self,
        name: &str,
        value: &str,
    ) -> (Result<(), SysError>, Result<String, SysError>) {
        use nix::fcntl::{openat, OFlag};
        let fd = match openat(
            &self.fd,
            name,
            OFlag::O_RDWR | OFlag::O_TRUNC | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(_) => return (self.write(name, value), self.read(name)),
        };
        let file = File::from(fd);
        let line = format!("{value}\n");
        let written = (&file)
            .write_all(line.as_bytes())
            .map_err(|e| self.err("write", name, e));
        let back = read_attr_at(&file).map_err(|e| self.err("read", name, e));
        (written, back)
    }

    /// Writes one value, as [`Root::write`] does, relative to this directory.
    pub fn write(&self, name: &str, value: &str) -> Result<(), SysError> {
        use nix::fcntl::{openat, OFlag};
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_WRONLY | OFlag::O_TRUNC | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| self.err("open", name, io::Error::from(e)))?;
        let line = format!("{value}\n");
        File::from(fd)
            .write_all(line.as_bytes())
            .map_err(|e| self.err("write", name, e))
    }

    /// `None` when absent or unreadable: for descriptive attributes.
    pub fn read_lossy(&self, name: &str) -> Option<String> {
        self.read_raw(name).ok()
    }

    pub fn exists(&self, name: &str) -> bool {
        nix::sys::stat::fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// The last component of the symlink `name` points to (`driver` -> `sd`).
    pub fn link_name(&self, name: &str) -> Option<String> {
        let target = nix::fcntl::readlinkat(&self.fd, name).ok()?;
        let target = target.to_string_lossy();
        target.rsplit('/').next().map(str::to_string)
    }

    /// Names in the subdirectory `name`, sorted; empty when it does not exist. Read with
    /// getdents64 on the fd (rustix's `RawDir`): libc's `fdopendir` would add an fstat and
    /// two fcntls to each of the two listings (holders, slaves) of every disk.
    pub fn list(&self, name: &str) -> Result<Vec<String>, SysError> {
        use nix::fcntl::{openat, OFlag};
        use std::mem::MaybeUninit;
        let fd = match openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", name, io::Error::from(e))),
        };
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut dir = rustix::fs::RawDir::new(&fd, &mut buf);
        let mut names = Vec::new();
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(|e| self.err("list", name, io::Error::from(e)))?;
            let n = entry.file_name().to_string_lossy();
            if n != "." && n != ".." {
                names.push(n.into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Reads and writes of many attributes, most of them under `sys/block/NAME/`: each disk's
/// directory is opened once and its attributes reached relative to it (see [`SysDir`]), the
/// rest go through the root. Callers that visit paths disk by disk get one path walk per disk.
pub struct Attrs<'r> {
    root: &'r Root,
    /// `sys/block`, opened once: each disk's directory is then opened relative to it.
    block: Option<Option<SysDir<'r>>>,
    open: Option<(String, SysDir<'r>)>,
}

/// `sys/block/sda/queue/scheduler` -> (`sys/block/sda`, `queue/scheduler`).
fn disk_dir_split(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("sys/block/")?;
    let slash = rest.find('/')?;
    let cut = "sys/block/".len() + slash;
    Some((&path[..cut], &path[cut + 1..]))
}

impl<'r> Attrs<'r> {
    pub fn new(root: &'r Root) -> Attrs<'r> {
        Attrs {
            root,
            block: None,
            open: None,
        }
    }

    fn dir(&mut self, dir: &str) -> Option<&SysDir<'r>> {
        if self.open.as_ref().is_none_or(|(d, _)| d != dir) {
            let root = self.root;
            let block = self
                .block
                .get_or_insert_with(|| root.open_dir("sys/block").ok());
            let opened = match (block, dir.strip_prefix("sys/block/")) {
                (Some(b), Some(name)) => b.open_dir(name),
                _ => root.open_dir(dir),
            };
            self.open = opened.ok().map(|h| (dir.to_string(), h));
        }
        self.open.as_ref().map(|(_, h)| h)
    }

    pub fn read(&mut self, path: &str) -> Result<String, SysError> {
        match disk_dir_split(path) {
            Some((dir, attr)) => match self.dir(dir) {
                Some(h) => h.read(attr),
                None => self.root.read(path),
            },
            None => self.root.read(path),
        }
    }

    /// [`Attrs::read`], `None` on any error (the error is not built).
    pub fn read_ok(&mut self, path: &str) -> Option<String> {
        match disk_dir_split(path) {
            Some((dir, attr)) => match self.dir(dir) {
                Some(h) => h.read_raw(attr).ok(),
                None => self.root.read(path).ok(),
            },
            None => self.root.read(path).ok(),
        }
    }

    /// Writes `value` to `path` and reads it back ([`SysDir::write_read_back`] for a disk's
    /// attributes): the write's result and the value read after it.
    pub fn write_read_back(
        &mut self,
        path: &str,
        value: &str,
    ) -> (Result<(), SysError>, Result<String, SysError>) {
        if let Some((dir, attr)) = disk_dir_split(path) {
            if let Some(h) = self.dir(dir) {
                return h.write_read_back(attr, value);
            }
        }
        let written = self.write(path, value);
        (written, self.read(path))
    }

    pub fn write(&mut self, path: &str, value: &str) -> Result<(), SysError> {
        match disk_dir_split(path) {
            Some((dir, attr)) => match self.dir(dir) {
                Some(h) => h.write(attr, value),
                None => self.root.write(path, value),
            },
            None => self.root.write(path, value),
        }
    }
}

/// How many threads [`in_chunks`] runs `items` items on.
pub fn threads_for(items: usize, per_thread: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(4)
        .min(items / per_thread.max(1))
        .max(1)
}

/// Runs `work` on consecutive chunks of `items`, on up to 4 threads (one per CPU, and one for
/// each `per_thread` items: fewer items stay on this thread), and returns the chunks' results
/// in order. For the many-disk reads and writes of an inventory, a plan and an apply: their
/// time is kernel path lookups and sysfs calls, which run in parallel.
pub fn in_chunks<T: Sync, R: Send>(
    items: &[T],
    per_thread: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let threads = threads_for(items.len(), per_thread);
    if threads == 1 {
        return vec![work(items)];
    }
    let per = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| s.spawn(move || work(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// One sysfs attribute: sysfs hands the whole value (at most a page) to the first read, so
/// one `read(2)` does; a full buffer (a long value, or not a sysfs attribute after all) falls
/// back to the loop, which reads on from there. 512 bytes hold nearly every attribute: the
/// buffer is zeroed on every read, and zeroing a page each time was a fifth of a plan's
/// instructions.
fn read_attr(mut file: File) -> io::Result<String> {
    let mut chunk = [0u8; 512];
    let n = loop {
        match file.read(&mut chunk) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    if n == chunk.len() {
        let rest = read_all(file)?;
        let mut text = String::from_utf8_lossy(&chunk).into_owned();
        text.push_str(&rest);
        return Ok(text.trim_end_matches(['\n', ' ', '\0']).to_string());
    }
    let text = String::from_utf8_lossy(&chunk[..n]);
    Ok(text.trim_end_matches(['\n', ' ', '\0']).to_string())
}

/// [`read_attr`] with `pread` from offset 0: for a descriptor just written to.
fn read_attr_at(file: &File) -> io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match file.read_at(&mut chunk, bytes.len() as u64) {
            Ok(0) => break,
            Ok(n) if bytes.is_empty() && n < chunk.len() => {
                // The whole value in one read, as sysfs gives it: no copy into `bytes`.
                let text = String::from_utf8_lossy(&chunk[..n]);
                return Ok(text.trim_end_matches(['\n', ' ', '\0']).to_string());
            }
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.trim_end_matches(['\n', ' ', '\0']).to_string())
}

/// A plain read loop: `read_to_string` would first stat and seek the file for a size hint,
/// two wasted syscalls on every sysfs attribute (which reports size 4096 anyway). Trims the
/// trailing newline (and the trailing blank some attributes, like `queue/scheduler`, carry).
fn read_all(mut file: File) -> io::Result<String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.trim_end_matches(['\n', ' ', '\0']).to_string())
}

/// A directory that stands for `/`: the real one, or a fixture tree.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
}

impl Default for Root {
    fn default() -> Self {
        Self::host()
    }
}

impl Root {
    /// The machine this process runs on.
    pub fn host() -> Self {
        Root {
            base: PathBuf::from("/"),
        }
    }

    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    /// The absolute path of `rel` under this root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.base.join(rel.trim_start_matches('/'))
    }

    /// How a path is shown to users: `/sys/block/sda/queue/scheduler` on the host, the full
    /// fixture path elsewhere.
    pub fn display(&self, rel: &str) -> String {
        // What `self.path(rel).display()` shows, built as one string when the base is UTF-8
        // (an apply of 1,000 disks asks for 2,000 of these): `Path::join` adds a `/` unless
        // the base is empty or ends in one.
        let rel = rel.trim_start_matches('/');
        match self.base.to_str() {
            Some(base) => {
                let mut out = String::with_capacity(base.len() + 1 + rel.len());
                out.push_str(base);
                if !base.is_empty() && !base.ends_with('/') {
                    out.push('/');
                }
                out.push_str(rel);
                out
            }
            None => self.path(rel).display().to_string(),
        }
    }

    fn err(&self, op: &'static str, rel: &str, source: io::Error) -> SysError {
        SysError {
            op,
            path: self.path(rel),
            source,
        }
    }

    /// Reads an attribute, trimmed of the trailing newline (and of the trailing blank that some
    /// attributes, like `queue/scheduler`, carry).
    pub fn read(&self, rel: &str) -> Result<String, SysError> {
        let file = File::open(self.path(rel)).map_err(|e| self.err("read", rel, e))?;
        read_all(file).map_err(|e| self.err("read", rel, e))
    }

    /// Reads an attribute that may not exist: `None` when it is absent.
    pub fn read_opt(&self, rel: &str) -> Result<Option<String>, SysError> {
        match self.read(rel) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads an attribute, `None` on any error: for descriptive attributes (vendor, model)
    /// whose absence or unreadability changes nothing but a label.
    pub fn read_lossy(&self, rel: &str) -> Option<String> {
        self.read(rel).ok()
    }

    /// Writes one value to one attribute, as `echo VALUE > FILE` does: one `write(2)` of the
    /// whole value, so sysfs sees it in one store call and the errno is the kernel's.
    pub fn write(&self, rel: &str, value: &str) -> Result<(), SysError> {
        let mut file = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path(rel))
            .map_err(|e| self.err("open", rel, e))?;
        let line = format!("{value}\n");
        file.write_all(line.as_bytes())
            .map_err(|e| self.err("write", rel, e))
    }

    /// Opens a directory for relative reads (see [`SysDir`]).
    pub fn open_dir(&self, rel: &str) -> Result<SysDir<'_>, SysError> {
        use nix::fcntl::OFlag;
        let fd = nix::fcntl::open(
            &self.path(rel),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| self.err("open", rel, io::Error::from(e)))?;
        Ok(SysDir {
            root: self,
            rel: rel.to_string(),
            fd,
        })
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Names in a directory, sorted; empty when the directory does not exist.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, SysError> {
        let entries = match fs::read_dir(self.path(rel)) {
            Ok(it) => it,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", rel, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.err("list", rel, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// The last path component a symlink points to (`driver` -> `sd`), if it is a symlink.
    pub fn link_name(&self, rel: &str) -> Option<String> {
        let target = fs::read_link(self.path(rel)).ok()?;
        target.file_name().map(|n| n.to_string_lossy().into_owned())
    }

    /// Where a sysfs object really lives, as a path under `sys/` (`sys/devices/pci0000:00/...`).
    /// `rel` is a real path whose last component may be a symlink (`sys/block/sda`), or such a
    /// link's real path plus one more link (`sys/devices/.../block/sda/device`). Resolved by
    /// reading that one link and normalising lexically, which is exact in sysfs (its
    /// directories under /sys/devices are real directories) and costs one readlink instead of
    /// a readlink per path component.
    pub fn sys_real_path(&self, rel: &str) -> Option<String> {
        let target = match fs::read_link(self.path(rel)) {
            Ok(t) => t,
            // Not a link: a real directory already.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Some(rel.to_string()),
            Err(_) => return None,
        };
        let target = target.to_str()?;
        if target.starts_with('/') {
            // Absolute links are not how sysfs links; fall back to the kernel's resolution.
            let sys = fs::canonicalize(self.path("sys")).ok()?;
            let real = fs::canonicalize(self.path(rel)).ok()?;
            return Some(format!("sys/{}", real.strip_prefix(&sys).ok()?.display()));
        }
        let dir = rel.rsplit_once('/').map_or("", |(d, _)| d);
        Some(join_link(dir, target))
    }

    /// Creates a directory under the root (and its parents). A state directory it creates
    /// gets its mode from [`super::state_files::dir_mode`] explicitly (`fchmod`), not from the
    /// umask; an existing directory is left as it is.
    pub fn create_dir(&self, rel: &str) -> Result<(), SysError> {
        let rel = rel.trim_matches('/');
        if self.path(rel).is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.base).map_err(|e| self.err("create", "", e))?;
        let mut prefix = String::new();
        for comp in rel.split('/').filter(|c| !c.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            match fs::create_dir(self.path(&prefix)) {
                Ok(()) => {
                    if let Some(mode) = super::state_files::dir_mode(&prefix) {
                        self.chmod_dir(&prefix, mode)?;
                    }
                }
                // Another process made it first, or it was there: not ours to change.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.err("create", &prefix, e)),
            }
        }
        Ok(())
    }

    /// Sets a directory's mode without following a symlink: the directory is opened with
    /// `O_NOFOLLOW|O_DIRECTORY` and changed through that descriptor, so a link planted at
    /// `rel` is refused (ELOOP or ENOTDIR) instead of changing whatever it points to.
    pub fn chmod_dir(&self, rel: &str, mode: u32) -> Result<(), SysError> {
        use nix::fcntl::OFlag;
        use nix::sys::stat::Mode;
        let fd = nix::fcntl::open(
            &self.path(rel),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err("chmod", rel, io::Error::from(e)))?;
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
            .map_err(|e| self.err("chmod", rel, io::Error::from(e)))
    }

    /// Replaces a file atomically, with the mode the state-file table gives it
    /// ([`super::state_files::mode_of`]: 0644 for anything not in it). See
    /// [`Root::write_atomic_mode`].
    pub fn write_atomic(&self, rel: &str, contents: &[u8]) -> Result<(), SysError> {
        self.write_atomic_mode(rel, contents, super::state_files::mode_of(rel))
    }

    /// Replaces a file atomically: write a temporary file beside it, fsync, rename over the
    /// old one, fsync the directory. A reader (or a crash) sees the old file or the new one,
    /// never a mix. The file gets exactly `mode` (set with `fchmod`, whatever the umask).
    ///
    /// The temporary is `.NAME.tmp.PID.N`, unique to this write, and created with
    /// `O_CREAT|O_EXCL|O_NOFOLLOW`: two writers in one directory never share one (a fixed
    /// `NAME.tmp` let `originals.prom` and `originals.json` trade contents, security review
    /// finding 11), and a file or symlink planted at the name is never opened (finding 12).
    /// A temporary left by a crash is removed by
    /// [`super::state_files::clean_leftovers`].
    pub fn write_atomic_mode(&self, rel: &str, contents: &[u8], mode: u32) -> Result<(), SysError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        use std::sync::atomic::{AtomicU64, Ordering};
        // Distinguishes the temporaries of one process's concurrent writes.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let rel = rel.trim_start_matches('/');
        let (dir_rel, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if name.is_empty() || name == "." || name == ".." {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not a file name");
            return Err(self.err("write", rel, e));
        }
        self.create_dir(dir_rel)?;
        let join = |file: &str| match dir_rel {
            "" => file.to_string(),
            dir => format!("{dir}/{file}"),
        };
        // A name taken (by a planted file, or a writer of a recycled pid) is skipped, never
        // opened: a few more tries, then the error names the last one.
        let mut tries = 0;
        let (tmp_rel, mut file) = loop {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let tmp_rel = join(&format!(".{name}.tmp.{}.{seq}", std::process::id()));
            let opened = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(self.path(&tmp_rel));
            match opened {
                Ok(file) => break (tmp_rel, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                Err(e) => return Err(self.err("create", &tmp_rel, e)),
            }
        };
        let written = (|| {
            // The umask may have taken bits away from the mode at create: the table decides.
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file.write_all(contents)?;
            file.sync_all()?;
            fs::rename(self.path(&tmp_rel), self.path(rel))
        })();
        if let Err(e) = written {
            // Best effort: a temporary that cannot be removed is cleaned at the next start.
            let _ = fs::remove_file(self.path(&tmp_rel));
            return Err(self.err("write", &tmp_rel, e));
        }
        File::open(self.path(dir_rel))
            .and_then(|d| d.sync_all())
            .map_err(|e| self.err("sync", dir_rel, e))
    }

    /// Removes, from the directory `dir_rel`, the temporaries of [`Root::write_atomic`] whose
    /// writer is no longer alive, and the entries `old` names (fixed-name temporaries of
    /// earlier versions). Only files and symlinks go (a link is removed, never followed).
    /// Returns the paths removed.
    pub fn remove_dead_temporaries(
        &self,
        dir_rel: &str,
        old: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut removed = Vec::new();
        for name in self.list(dir_rel).unwrap_or_default() {
            let stale = old(&name) || temporary_writer(&name).is_some_and(|pid| !alive(pid));
            if !stale {
                continue;
            }
            let rel = format!("{dir_rel}/{name}");
            let removable = fs::symlink_metadata(self.path(&rel))
                .is_ok_and(|m| m.file_type().is_file() || m.file_type().is_symlink());
            if removable && fs::remove_file(self.path(&rel)).is_ok() {
                removed.push(self.display(&rel));
            }
        }
        removed
    }

    /// Removes a file; absent is fine.
    pub fn remove(&self, rel: &str) -> Result<(), SysError> {
        match fs::remove_file(self.path(rel)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("remove", rel, e)),
        }
    }

    /// Takes the exclusive lock on the runtime state so that two appliers (the daemon and
    /// `tunerctl`, or two `tunerctl`s) never interleave their writes or their journals.
    ///
    /// Never waits long: the daemon takes it on its event loop, and a holder that never lets
    /// go (a crashed tool's inherited descriptor, or any process that can open the file)
    /// must not stop detection. A non-blocking `flock` is retried for at most
    /// [`LOCK_PATIENCE`], then the error says who holds it; the caller reports it and tries
    /// again later. The file is mode 0600 (root's only: `flock` works on a read-only
    /// descriptor, so a readable lock is one every user can hold, security review finding 1)
    /// and opened with `O_NOFOLLOW`.
    pub fn lock_state(&self) -> Result<File, SysError> {
        let rel = super::state_files::LOCK;
        self.create_dir(STATE_DIR)?;
        let started = std::time::Instant::now();
        let mut delay = std::time::Duration::from_millis(10);
        loop {
            let file = self.open_lock(rel)?;
            match file.try_lock() {
                // Replaced between our open and our lock (its mode repaired by another
                // applier): the lock is the file at the path now, so take that one.
                Ok(()) if !self.is_file_at(&file, rel) => continue,
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => return Err(self.err("lock", rel, e)),
            }
            let waited = started.elapsed();
            if waited >= LOCK_PATIENCE {
                let holder =
                    lock_holder(&file).map_or(String::new(), |pid| format!(" (pid {pid})"));
                let e = io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "held by another process{holder} for more than {} ms; try again",
                        LOCK_PATIENCE.as_millis()
                    ),
                );
                return Err(self.err("lock", rel, e));
            }
            std::thread::sleep(delay.min(LOCK_PATIENCE - waited));
            delay *= 2;
        }
    }

    /// Opens (creating it 0600) the lock file. One with another mode or owner (created by an
    /// earlier version with the umask's 0644) is replaced by a fresh 0600 one, not just
    /// chmodded: a descriptor opened while it was readable would otherwise keep working.
    fn open_lock(&self, rel: &str) -> Result<File, SysError> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let mode = super::state_files::mode_of(rel);
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(mode)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(self.path(rel))
                .map_err(|e| self.err("open", rel, e))
        };
        let file = open()?;
        let meta = file.metadata().map_err(|e| self.err("stat", rel, e))?;
        let ours = meta.uid() == nix::unistd::geteuid().as_raw();
        if meta.is_file() && ours && meta.mode() & 0o7777 == mode {
            return Ok(file);
        }
        self.write_atomic_mode(rel, b"", mode)?;
        open()
    }

    /// Whether `file` is the file at `rel` now (same device and inode).
    fn is_file_at(&self, file: &File, rel: &str) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::symlink_metadata(self.path(rel))) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
}

/// How long [`Root::lock_state`] tries before it gives up: long enough for another applier's
/// journal update (milliseconds), short enough that the event loop does not notice.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(200);

/// The pid in a temporary's name (`.NAME.tmp.PID.N`), if `name` is one.
fn temporary_writer(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let mut parts = rest.rsplitn(3, '.');
    let seq = parts.next()?;
    let pid = parts.next()?;
    let stem = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (stem.ends_with(".tmp") && digits(seq) && digits(pid))
        .then(|| pid.parse().ok())
        .flatten()
}

/// Whether a process of this pid exists (EPERM: it does, and is someone else's).
fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The pid the kernel lists as holding a lock on `file`, from `/proc/locks`
/// (`1: FLOCK  ADVISORY  READ 4242 fe:00:5464081 0 EOF`). This is the machine's own
/// `/proc`, not the root's: the lock is a real kernel object whatever the root is. `None`
/// when it cannot be told (no /proc, another pid namespace's holder).
fn lock_holder(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let id = format!(
        "{:02x}:{:02x}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev),
        meta.ino()
    );
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Waiters are listed as `N: -> FLOCK ...`: not holders.
        if fields.get(1) != Some(&"FLOCK") || fields.get(5) != Some(&id.as_str()) {
            return None;
        }
        fields.get(4)?.parse().ok().filter(|pid| *pid > 0)
    })
}

impl crate::util::toml::ConfigError {
    /// A file that could not be read, as a configuration error naming it.
    pub fn from_sys(err: &SysError) -> Self {
        crate::util::toml::ConfigError::file(&err.path.display().to_string(), err.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_joined_path_shown() {
        for base in ["/", "", "/tmp/x", "/tmp/x/", "rel/dir", "/a//"] {
            let root = Root::new(base);
            for rel in [
                "",
                "/",
                "sys/block/sda/queue/scheduler",
                "/proc/sys/vm",
                "a//b",
            ] {
                assert_eq!(
                    root.display(rel),
                    root.path(rel).display().to_string(),
                    "{base:?} {rel:?}"
                );
            }
        }
    }

    #[test]
    fn links_join_as_before() {
        // The former implementation, kept here as the reference.
        fn reference(dir: &str, target: &str) -> String {
            let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
            for comp in target.split('/') {
                match comp {
                    "" | "." => {}
                    ".." => {
                        parts.pop();
                    }
                    c => parts.push(c),
                }
            }
            parts.join("/")
        }
        for dir in [
            "sys/block",
            "sys/devices/pci0000:00/0000:00:02.0/host0/target0:0:0/0:0:0:0/block/sda",
            "",
            "a/./b",
            "a/../b",
            "/x//y/",
        ] {
            for target in [
                "../devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
                "../../../0:0:175:1",
                "x",
                "",
                "..",
                "../../../../../..",
                "./a/../b/.",
                "a//b",
            ] {
                assert_eq!(
                    join_link(dir, target),
                    reference(dir, target),
                    "{dir:?} {target:?}"
                );
            }
        }
    }

    #[test]
    fn paths_are_under_the_root_and_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("tunerd-sys-{}", std::process::id()));
        let root = Root::new(&dir);
        root.create_dir("sys/block/x/queue").expect("mkdir");
        root.write("sys/block/x/queue/scheduler", "none [mq-deadline] ")
            .expect_err("write without the file must fail like sysfs: no create");
        fs::write(
            root.path("sys/block/x/queue/scheduler"),
            "none [mq-deadline] \n",
        )
        .expect("seed");
        assert_eq!(
            root.read("sys/block/x/queue/scheduler").expect("read"),
            "none [mq-deadline]"
        );
        assert_eq!(root.read_opt("sys/block/x/nothing").expect("opt"), None);
        let err = root.read("sys/block/x/nothing").expect_err("absent");
        let text = err.to_string();
        assert!(text.contains("sys/block/x/nothing"), "{text}");
        assert!(text.contains("ENOENT"), "{text}");
        root.write_atomic("run/tunerd/state.json", b"{}")
            .expect("atomic");
        assert_eq!(root.read("run/tunerd/state.json").expect("read"), "{}");
        assert_eq!(
            root.sys_real_path("sys/block/x").as_deref(),
            Some("sys/block/x")
        );
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
