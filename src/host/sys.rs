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

impl SysDir<'_> {
    fn err(&self, op: &'static str, name: &str, source: io::Error) -> SysError {
        self.root.err(op, &format!("{}/{name}", self.rel), source)
    }

    pub fn rel(&self) -> &str {
        &self.rel
    }

    pub fn read(&self, name: &str) -> Result<String, SysError> {
        use nix::fcntl::{openat, OFlag};
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| self.err("read", name, io::Error::from(e)))?;
        read_attr(File::from(fd)).map_err(|e| self.err("read", name, e))
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
        self.read(name).ok()
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

    /// Names in the subdirectory `name`, sorted; empty when it does not exist.
    pub fn list(&self, name: &str) -> Result<Vec<String>, SysError> {
        use nix::fcntl::OFlag;
        let dir = match nix::dir::Dir::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", name, io::Error::from(e))),
        };
        let mut names = Vec::new();
        for entry in dir {
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
        Attrs { root, open: None }
    }

    fn dir(&mut self, dir: &str) -> Option<&SysDir<'r>> {
        if self.open.as_ref().is_none_or(|(d, _)| d != dir) {
            self.open = self.root.open_dir(dir).ok().map(|h| (dir.to_string(), h));
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

/// One sysfs attribute: sysfs hands the whole value (at most a page) to the first read, so
/// one `read(2)` does; a full page (not a sysfs attribute after all) falls back to the loop.
fn read_attr(mut file: File) -> io::Result<String> {
    let mut chunk = [0u8; 4096];
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
        self.path(rel).display().to_string()
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
        let mut parts: Vec<&str> = rel.split('/').collect();
        parts.pop();
        for comp in target.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        Some(parts.join("/"))
    }

    /// Creates a directory under the root (and its parents).
    pub fn create_dir(&self, rel: &str) -> Result<(), SysError> {
        fs::create_dir_all(self.path(rel)).map_err(|e| self.err("create", rel, e))
    }

    /// Replaces a file atomically: write a temporary file beside it, fsync, rename over the
    /// old one, fsync the directory. A reader (or a crash) sees the old file or the new one,
    /// never a mix.
    pub fn write_atomic(&self, rel: &str, contents: &[u8]) -> Result<(), SysError> {
        let path = self.path(rel);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let tmp = path.with_extension("tmp");
        let tmp_rel = format!("{rel}.tmp");
        (|| {
            fs::create_dir_all(&dir)?;
            let mut file = File::create(&tmp)?;
            file.write_all(contents)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&dir)?.sync_all()
        })()
        .map_err(|e| self.err("write", &tmp_rel, e))
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
    pub fn lock_state(&self) -> Result<File, SysError> {
        let rel = super::state_files::LOCK;
        self.create_dir(STATE_DIR)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path(rel))
            .map_err(|e| self.err("open", rel, e))?;
        file.lock().map_err(|e| self.err("lock", rel, e))?;
        Ok(file)
    }
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
