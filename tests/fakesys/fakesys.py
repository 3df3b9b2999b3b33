#!/usr/bin/env python3
"""fakesys: a FUSE view of a fixture tree with sysfs/procfs write semantics.

    python3 tests/fakesys/fakesys.py SOURCE_DIR MOUNTPOINT

SOURCE_DIR is a *copy* of a fixture's sys/ or proc/ tree (or of a whole
fixture directory); it is modified in place by accepted writes.  The
filesystem runs in the foreground until it is unmounted (fusermount -u
MOUNTPOINT) or gets SIGINT/SIGTERM (libfuse then unmounts).  The mount is in
/proc/self/mountinfo before the first request is served, with fstype
"fuse.fakesys".

Reads, readdir, readlink and getattr pass through.  Writes behave like the
kernel's store functions (Linux 6.18, CONFIG_HZ=250, 4 KiB pages): a write()
is one store of the whole value, the offset is ignored, O_TRUNC is accepted
and does nothing; rejected values fail with the kernel's errno (mostly
EINVAL); attributes without a store op refuse open(O_WRONLY/O_RDWR) with
EACCES; creating entries fails with EACCES, removing/renaming with EPERM.
See tests/fakesys/README.md for the rules and their kernel sources.

Needs fusepy (pip install fusepy) and libfuse2 (apt-get install fuse libfuse2).
"""

import errno
import os
import re
import stat
import sys

try:
    from fuse import FUSE, FuseOSError, Operations
except ImportError:  # pragma: no cover
    sys.stderr.write("fakesys: fusepy is missing: python3 -m pip install fusepy "
                     "(and apt-get install -y fuse libfuse2)\n")
    sys.exit(2)

HZ = 250                      # Debian's CONFIG_HZ
PAGE_SHIFT = 12
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
INT_MAX = (1 << 31) - 1
STORE_MAX = 4096              # kernfs hands at most PAGE_SIZE bytes to ->store()

SCHED_ALIAS = {"mq-deadline": "deadline"}   # elevator_alias
BLKDEV_MIN_RQ = 4
MAX_SCHED_RQ = 2048           # 16 * BLKDEV_DEFAULT_RQ
BLK_DEF_MAX_SECTORS_CAP = 8192  # 4 MiB since 6.16 (measured: vda max_sectors_kb 4096)
BLK_MIN_SEGMENT_SECTORS = 8     # 4096 / 512

BDI_RATIO_SCALE = 10000
DIRTY_LIMIT_PAGES = (1 << 30) >> PAGE_SHIFT   # notional global dirty limit: 1 GiB

SD_CACHE_TYPES = ["write through", "none", "write back", "write back, no read (daft)"]
SDEV_STATES = ["created", "running", "cancel", "deleted", "quiesce", "offline",
               "transport-offline", "blocked", "created-blocked"]
UEVENT_ACTIONS = ["add", "remove", "change", "move", "online", "offline", "bind", "unbind"]

# attributes without a store op, by directory kind ------------------------------
DISK_RO = {"dev", "size", "removable", "ro", "hidden", "stat", "inflight", "capability",
           "ext_range", "range", "alignment_offset", "discard_alignment", "diskseq",
           "partscan", "events", "events_async", "partition", "start", "serial",
           "nsid", "wwid", "eui", "uuid", "nguid", "metadata_bytes"}
QUEUE_RO = {"max_hw_sectors_kb", "logical_block_size", "hw_sector_size",
            "physical_block_size", "minimum_io_size", "optimal_io_size", "max_segments",
            "max_segment_size", "max_discard_segments", "max_integrity_segments",
            "discard_granularity", "discard_max_hw_bytes", "discard_zeroes_data",
            "write_same_max_bytes", "write_zeroes_max_bytes", "zone_append_max_bytes",
            "zone_write_granularity", "zoned", "nr_zones", "chunk_sectors", "fua", "dax",
            "dma_alignment", "virt_boundary_mask", "max_open_zones", "max_active_zones",
            "atomic_write_max_bytes", "atomic_write_boundary_bytes",
            "atomic_write_unit_min_bytes", "atomic_write_unit_max_bytes",
            "max_write_streams", "write_stream_granularity",
            "write_zeroes_unmap_max_hw_bytes"}
SDEV_RO = {"vendor", "model", "rev", "type", "scsi_level", "device_blocked",
           "iocounterbits", "iodone_cnt", "ioerr_cnt", "iorequest_cnt", "iotmo_cnt",
           "inquiry", "wwid", "queue_type", "modalias", "blacklist", "cdl_supported",
           "vpd_pg0", "vpd_pg80", "vpd_pg83", "vpd_pg89", "vpd_pgb0", "vpd_pgb1",
           "vpd_pgb2", "access_state", "preferred_path", "evt_media_change"}
SDISK_RO = {"FUA", "manage_start_stop", "protection_mode", "app_tag_own",
            "thin_provisioning", "zoned_cap", "max_medium_access_timeouts_ro"}
SHOST_RO = {"proc_name", "unique_id", "host_busy", "cmd_per_lun", "sg_tablesize",
            "sg_prot_tablesize", "prot_capabilities", "prot_guard_type", "nr_hw_queues",
            "use_blk_mq", "active_mode", "supported_mode", "host_reset_count"}
NVME_CTRL_RO = {"model", "serial", "firmware_rev", "transport", "state", "address",
                "cntlid", "numa_node", "subsysnqn", "queue_count", "sqsize", "kato",
                "hostnqn", "hostid", "cntrltype", "dctype", "passthru_err_log_enabled"}
GENERIC_RO = {"vendor", "device", "class", "subsystem_vendor", "subsystem_device",
              "revision", "modalias", "features", "status", "irq", "resource",
              "proc_name", "targetname", "model", "firmware_rev", "transport"}
PROC_RO = {"mountinfo", "mounts", "mountstats", "diskstats", "meminfo", "vmstat",
           "cmdline", "stat", "status", "version", "partitions", "filesystems"}

HCTL_RE = re.compile(r"^\d+:\d+:\d+:\d+$")
NVME_CTRL_RE = re.compile(r"^nvme\d+$")


def err(code):
    return FuseOSError(code)


# --------------------------------------------------------------------------
# kernel number parsers
# --------------------------------------------------------------------------

def _parse_radix(s, base):
    if base == 0:
        if s[:2].lower() == "0x" and len(s) > 2:
            return s[2:], 16
        if s[:1] == "0" and len(s) > 1:
            return s[1:], 8
        return s, 10
    if base == 16 and s[:2].lower() == "0x":
        return s[2:], 16
    return s, base


def _digits_ok(s, base):
    if not s:
        return False
    digits = "0123456789abcdef"[:base]
    return all(c in digits for c in s.lower())


def kstrtoull(buf, base=10):
    """lib/kstrtox.c: optional '+', digits, one optional trailing newline."""
    s = buf
    if s.startswith("+"):
        s = s[1:]
    if s.endswith("\n"):
        s = s[:-1]
    s, b = _parse_radix(s, base)
    if not _digits_ok(s, b):
        raise err(errno.EINVAL)
    v = int(s, b)
    if v > U64:
        raise err(errno.ERANGE)
    return v


def kstrtouint(buf, base=10):
    v = kstrtoull(buf, base)
    if v > U32:
        raise err(errno.ERANGE)
    return v


def kstrtoint(buf, base=10):
    if buf.startswith("-"):
        v = kstrtoull(buf[1:], base)
        if v > INT_MAX + 1:
            raise err(errno.ERANGE)
        return -v
    v = kstrtoull(buf, base)
    if v > INT_MAX:
        raise err(errno.ERANGE)
    return v


def queue_var_store(buf):
    """block/blk-sysfs.c queue_var_store(): kstrtoul, > UINT_MAX is EINVAL."""
    try:
        v = kstrtoull(buf)
    except FuseOSError:
        raise err(errno.EINVAL)
    if v > U32:
        raise err(errno.EINVAL)
    return v


def simple_strtoul(buf, base=0):
    """Leading number, the rest ignored, 0 when there is none."""
    s, b = _parse_radix(buf, base)
    n = 0
    digits = "0123456789abcdef"[:b]
    for c in s.lower():
        if c not in digits:
            break
        n = n * b + digits.index(c)
    return n & U64


def kstrtobool(buf):
    if not buf:
        raise err(errno.EINVAL)
    c = buf[0]
    if c in "yY1tT":
        return True
    if c in "nN0fF":
        return False
    if c in "oO" and len(buf) > 1:
        if buf[1] in "nN":
            return True
        if buf[1] in "fF":
            return False
    raise err(errno.EINVAL)


def sysfs_streq(a, b):
    a = a[:-1] if a.endswith("\n") else a
    b = b[:-1] if b.endswith("\n") else b
    return a == b


def proc_number(buf, signed, lo=None, hi=None):
    """kernel/sysctl.c proc_get_long() for one value: leading blanks, base 0,
    '-' for ints, the number must be followed by blank/newline or the end."""
    s = buf.lstrip(" \t\n")
    if not s:
        raise err(errno.EINVAL)
    neg = False
    if s.startswith("-"):
        neg = True
        s = s[1:]
    m = re.match(r"(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", s)
    if not m:
        raise err(errno.EINVAL)
    tail = s[m.end():]
    if tail and tail[0] not in " \t\n":
        raise err(errno.EINVAL)
    tok = m.group(1)
    v = int(tok, 16) if tok[:2].lower() == "0x" else (int(tok, 8) if tok.startswith("0") else int(tok))
    if v > U64:
        raise err(errno.EINVAL)
    if neg:
        if not signed:
            raise err(errno.EINVAL)
        v = -v
    if signed and not (-INT_MAX - 1 <= v <= INT_MAX):
        raise err(errno.EINVAL)
    if lo is not None and v < lo:
        raise err(errno.EINVAL)
    if hi is not None and v > hi:
        raise err(errno.EINVAL)
    return v


def msecs_to_jiffies(ms):
    if ms > INT_MAX:                        # (int)m < 0: MAX_JIFFY_OFFSET
        return ((((1 << 63) - 1) >> 1) - 1)
    return (ms + (1000 // HZ) - 1) // (1000 // HZ)


def jiffies_to_msecs(j):
    return ((1000 // HZ) * j) & U32         # returns unsigned int


# --------------------------------------------------------------------------
# the filesystem
# --------------------------------------------------------------------------

class FakeSys(Operations):
    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.queues = {}     # queue dir -> hidden state
        self.sdevs = {}      # scsi device dir -> hidden state
        self.bdi_dirs = None    # lazily scanned: all bdi dirs
        self.bdi_queues = None  # lazily scanned: bdi dir -> queue dirs

    # paths ---------------------------------------------------------------
    def full(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def inside(self, p):
        return p == self.root or p.startswith(self.root + os.sep)

    def rd(self, p):
        with open(p, "r", encoding="utf-8", newline="") as f:
            s = f.read()
        return s[:-1] if s.endswith("\n") else s

    def wr(self, p, value):
        with open(p, "w", encoding="utf-8", newline="") as f:
            f.write(value if value.endswith("\n") else value + "\n")

    def resolve(self, p):
        r = os.path.realpath(p)
        return r if self.inside(r) and os.path.exists(r) else None

    # hidden state --------------------------------------------------------
    def qstate(self, qdir):
        st = self.queues.get(qdir)
        if st is None:
            disk = os.path.dirname(qdir)
            sched = self.read_sched(qdir)
            nr = None
            if os.path.exists(os.path.join(qdir, "nr_requests")):
                nr = int(self.rd(os.path.join(qdir, "nr_requests")))
            tags_file = os.path.join(disk, "mq", "0", "nr_tags")
            if os.path.exists(tags_file):
                tags = int(self.rd(tags_file))
            elif sched and sched[1] == "none" and nr is not None:
                tags = nr
            else:
                tags = 128
            wc_file = os.path.join(qdir, "write_cache")
            wc = self.rd(wc_file) if os.path.exists(wc_file) else "write through"
            st = {"tags": tags, "wc_feature": wc == "write back", "wc_disabled": False}
            self.queues[qdir] = st
        return st

    def sdstate(self, sdev):
        st = self.sdevs.get(sdev)
        if st is None:
            qd = os.path.join(sdev, "queue_depth")
            st = {"max_depth": int(self.rd(qd)) if os.path.exists(qd) else 1}
            self.sdevs[sdev] = st
        return st

    def read_sched(self, qdir):
        p = os.path.join(qdir, "scheduler")
        if not os.path.exists(p):
            return None
        names, active = [], None
        for tok in self.rd(p).split():
            if tok.startswith("[") and tok.endswith("]"):
                tok = tok[1:-1]
                active = tok
            names.append(tok)
        return names, active

    def write_sched(self, qdir, names, active):
        self.wr(os.path.join(qdir, "scheduler"),
                "".join(("[%s] " % n) if n == active else ("%s " % n) for n in names))

    def all_bdis(self):
        if self.bdi_dirs is None:
            found = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                if os.path.basename(os.path.dirname(dirpath)) == "bdi" and "max_ratio" in filenames:
                    found.append(dirpath)
            self.bdi_dirs = found
        return self.bdi_dirs

    def queues_of_bdi(self, bdi_dir):
        """queue dirs of the disks whose bdi symlink points at bdi_dir
        (the tree's shape never changes, so the map is built once)."""
        if self.bdi_queues is None:
            m = {}
            for dirpath, dirnames, filenames in os.walk(self.root):
                if "queue" in dirnames and os.path.islink(os.path.join(dirpath, "bdi")):
                    b = self.resolve(os.path.join(dirpath, "bdi"))
                    if b:
                        m.setdefault(b, []).append(os.path.join(dirpath, "queue"))
            self.bdi_queues = m
        return self.bdi_queues.get(bdi_dir, [])

    # classification ------------------------------------------------------
    def classify(self, p):
        """Return a store function, None for a plain overwrite, or 'ro'."""
        rel = os.path.relpath(p, self.root)
        parts = rel.split(os.sep)
        name = parts[-1]
        parent = parts[-2] if len(parts) >= 2 else ""
        gparent = parts[-3] if len(parts) >= 3 else ""
        dirs = parts[:-1]

        if name == "uevent":
            return self.st_uevent
        # procfs
        if parent == "vm" and gparent == "sys":
            return getattr(self, "st_vm_" + name, None)
        if parent == "kernel" and gparent == "sys":
            return getattr(self, "st_kernel_" + name, None)
        if name in PROC_RO and ("self" in dirs or parent in ("", "proc") or
                                (parent.isdigit())):
            return "ro"
        # block layer
        if parent == "queue":
            if name in QUEUE_RO:
                return "ro"
            return getattr(self, "st_q_" + name, None)
        if "mq" in dirs:
            return "ro"
        if parent in ("dm", "md", "loop") or gparent == "md":
            return "ro"
        if gparent == "bdi":
            if name == "stable_pages_required":
                return "ro"
            return getattr(self, "st_bdi_" + name, None)
        # SCSI
        if HCTL_RE.match(parent) and gparent.startswith("target"):
            if name in SDEV_RO:
                return "ro"
            return getattr(self, "st_sdev_" + name, None)
        if gparent == "scsi_disk":
            if name in SDISK_RO:
                return "ro"
            return getattr(self, "st_sdisk_" + name, None)
        if gparent == "scsi_host":
            return "ro" if name in SHOST_RO else None
        if gparent == "iscsi_session":
            if name == "targetname":
                return "ro"
            return getattr(self, "st_iscsi_" + name, None)
        # NVMe controller
        if NVME_CTRL_RE.match(parent) and gparent == "nvme":
            return "ro" if name in NVME_CTRL_RO else None
        # identity
        if parent == "id" and gparent == "dmi":
            return "ro"
        if parent == "hypervisor" or "hypervisor" in dirs[:1]:
            return "ro"
        if name in DISK_RO and os.path.exists(os.path.join(os.path.dirname(p), "dev")):
            return "ro"
        if name in GENERIC_RO:
            return "ro"
        return None

    # FUSE operations -----------------------------------------------------
    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self.full(path))
        except OSError as e:
            raise err(e.errno)
        return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid",
                                            "st_size", "st_atime", "st_mtime", "st_ctime")}

    def readdir(self, path, fh):
        try:
            return [".", ".."] + sorted(os.listdir(self.full(path)))
        except OSError as e:
            raise err(e.errno)

    def readlink(self, path):
        try:
            return os.readlink(self.full(path))
        except OSError as e:
            raise err(e.errno)

    def access(self, path, amode):
        if not os.path.lexists(self.full(path)):
            raise err(errno.ENOENT)
        return 0

    def open(self, path, flags):
        p = self.full(path)
        if not os.path.lexists(p):
            raise err(errno.ENOENT)
        if os.path.isdir(p):
            if flags & os.O_ACCMODE != os.O_RDONLY:
                raise err(errno.EISDIR)
            return 0
        if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
            if self.classify(p) == "ro":
                raise err(errno.EACCES)
        return 0

    def read(self, path, size, offset, fh):
        try:
            with open(self.full(path), "rb") as f:
                f.seek(offset)
                return f.read(size)
        except OSError as e:
            raise err(e.errno)

    def write(self, path, data, offset, fh):
        p = self.full(path)
        if not data:
            return 0
        if len(data) > STORE_MAX:
            data = data[:STORE_MAX]
        try:
            buf = data.decode("utf-8")
        except UnicodeDecodeError:
            buf = data.decode("latin-1")
        h = self.classify(p)
        if h == "ro":
            raise err(errno.EACCES)
        if h is None:
            self.wr(p, buf)
        else:
            h(p, buf)
        return len(data)

    def truncate(self, path, length, fh=None):
        # sysfs ignores truncation (O_TRUNC on open is accepted and does nothing)
        if not os.path.lexists(self.full(path)):
            raise err(errno.ENOENT)
        return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        return 0

    def opendir(self, path):
        if not os.path.isdir(self.full(path)):
            raise err(errno.ENOTDIR)
        return 0

    def releasedir(self, path, fh):
        return 0

    def chmod(self, path, mode):
        os.chmod(self.full(path), mode)
        return 0

    def chown(self, path, uid, gid):
        os.lchown(self.full(path), uid, gid)
        return 0

    def utimens(self, path, times=None):
        os.utime(self.full(path), times, follow_symlinks=False)
        return 0

    def statfs(self, path):
        sv = os.statvfs(self.root)
        return {k: getattr(sv, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree",
                                            "f_bavail", "f_files", "f_ffree", "f_namemax")}

    # kernfs has no create/mknod; no mkdir/unlink/rmdir/rename/link/symlink
    def create(self, path, mode, fi=None):
        raise err(errno.EACCES)

    def mknod(self, path, mode, dev):
        raise err(errno.EPERM)

    def mkdir(self, path, mode):
        raise err(errno.EPERM)

    def unlink(self, path):
        raise err(errno.EPERM)

    def rmdir(self, path):
        raise err(errno.EPERM)

    def rename(self, old, new):
        raise err(errno.EPERM)

    def link(self, target, source):
        raise err(errno.EPERM)

    def symlink(self, target, source):
        raise err(errno.EPERM)

    def setxattr(self, path, name, value, options, position=0):
        raise err(errno.EOPNOTSUPP)

    # ------------------------------------------------------------------
    # store functions: (path, buf) -> None, raising FuseOSError
    # ------------------------------------------------------------------
    def st_uevent(self, p, buf):
        # kobject_synth_uevent(): ACTION [UUID [KEY=VALUE...]]
        s = buf[:-1] if buf.endswith("\n") else buf
        action = s.split(" ", 1)[0]
        if action not in UEVENT_ACTIONS:
            raise err(errno.EINVAL)
        # a synthetic event changes nothing readable

    # block queue -----------------------------------------------------------
    def st_q_scheduler(self, p, buf):
        qdir = os.path.dirname(p)
        st = self.qstate(qdir)
        names, active = self.read_sched(qdir)
        # strscpy into char[ELV_NAME_MAX=16], then strstrip()
        name = buf.split("\0", 1)[0][:15].strip()

        def match(e):
            return name == e or SCHED_ALIAS.get(e) == name

        if active != "none" and match(active):
            return                                  # same elevator: nothing happens
        if name[:4] == "none":                      # strncmp(name, "none", 4)
            new = "none"
            nr = st["tags"]
        else:
            cands = [e for e in names if e != "none" and match(e)]
            if not cands:
                raise err(errno.EINVAL)
            new = cands[0]
            nr = 2 * min(st["tags"], 128)           # blk_mq_default_nr_requests()
        self.write_sched(qdir, names, new)
        nrp = os.path.join(qdir, "nr_requests")
        if os.path.exists(nrp):
            self.wr(nrp, str(nr))

    def st_q_nr_requests(self, p, buf):
        qdir = os.path.dirname(p)
        st = self.qstate(qdir)
        nr = queue_var_store(buf)
        if nr == int(self.rd(p)):
            return
        if nr < BLKDEV_MIN_RQ:
            nr = BLKDEV_MIN_RQ
        sched = self.read_sched(qdir)
        has_elv = sched is not None and sched[1] != "none"
        if (has_elv and nr > MAX_SCHED_RQ) or (not has_elv and nr > st["tags"]):
            raise err(errno.EINVAL)
        self.wr(p, str(nr))

    def st_q_read_ahead_kb(self, p, buf):
        kb = queue_var_store(buf)
        shown = (kb >> (PAGE_SHIFT - 10)) << (PAGE_SHIFT - 10)
        self.wr(p, str(shown))
        bdi = self.resolve(os.path.join(os.path.dirname(os.path.dirname(p)), "bdi"))
        if bdi and os.path.exists(os.path.join(bdi, "read_ahead_kb")):
            self.wr(os.path.join(bdi, "read_ahead_kb"), str(shown))

    def st_q_max_sectors_kb(self, p, buf):
        qdir = os.path.dirname(p)
        kb = queue_var_store(buf)
        user = (kb << 1) & U32                      # max_user_sectors is unsigned int
        hw = int(self.rd(os.path.join(qdir, "max_hw_sectors_kb"))) << 1
        lbs = 512
        lp = os.path.join(qdir, "logical_block_size")
        if os.path.exists(lp):
            lbs = int(self.rd(lp))
        if user == 0:
            sectors = min(hw, BLK_DEF_MAX_SECTORS_CAP)
        elif user < BLK_MIN_SEGMENT_SECTORS:
            raise err(errno.EINVAL)
        else:
            sectors = min(hw, user)                 # clamped, not rejected, since 6.10
        step = max(lbs >> 9, 1)
        sectors -= sectors % step
        self.wr(p, str(sectors >> 1))

    def _q_flag(self, p, buf):
        v = queue_var_store(buf)
        self.wr(p, "1" if v else "0")

    st_q_rotational = _q_flag
    st_q_add_random = _q_flag
    st_q_iostats = _q_flag
    st_q_stable_writes = _q_flag

    def st_q_nomerges(self, p, buf):
        v = queue_var_store(buf)
        self.wr(p, "2" if v == 2 else ("1" if v else "0"))

    def st_q_rq_affinity(self, p, buf):
        v = queue_var_store(buf)
        if v in (0, 1, 2):                           # anything else: accepted, no change
            self.wr(p, str(v))

    def st_q_io_timeout(self, p, buf):
        try:
            ms = kstrtouint(buf)
        except FuseOSError:
            raise err(errno.EINVAL)
        if ms == 0:
            raise err(errno.EINVAL)
        self._set_rq_timeout(os.path.dirname(p), msecs_to_jiffies(ms) & U32)

    def _set_rq_timeout(self, qdir, rq_jiffies):
        """q->rq_timeout is shared by queue/io_timeout and SCSI device/timeout."""
        iot = os.path.join(qdir, "io_timeout")
        if os.path.exists(iot):
            self.wr(iot, str(jiffies_to_msecs(rq_jiffies)))
        dev = self.resolve(os.path.join(os.path.dirname(qdir), "device"))
        if dev and os.path.exists(os.path.join(dev, "timeout")) and \
                os.path.exists(os.path.join(dev, "eh_timeout")):
            self.wr(os.path.join(dev, "timeout"), str(rq_jiffies // HZ))

    def st_q_write_cache(self, p, buf):
        qdir = os.path.dirname(p)
        st = self.qstate(qdir)
        if buf.startswith("write back"):
            st["wc_disabled"] = False
        elif buf.startswith("write through") or buf.startswith("none"):
            st["wc_disabled"] = True
        else:
            raise err(errno.EINVAL)
        self._show_wc(qdir)

    def _show_wc(self, qdir):
        st = self.qstate(qdir)
        on = st["wc_feature"] and not st["wc_disabled"]
        self.wr(os.path.join(qdir, "write_cache"), "write back" if on else "write through")

    # SCSI device -----------------------------------------------------------
    def _sdev_queues(self, sdev):
        blk = os.path.join(sdev, "block")
        if not os.path.isdir(blk):
            return []
        return [os.path.join(blk, d, "queue") for d in sorted(os.listdir(blk))
                if os.path.isdir(os.path.join(blk, d, "queue"))]

    def st_sdev_timeout(self, p, buf):
        # sdev_store_timeout(): sscanf("%d\n"); blk_queue_rq_timeout(q, timeout * HZ)
        m = re.match(r"^\s*([+-]?\d+)\s*$", buf)
        if not m or int(m.group(1)) < 0 or int(m.group(1)) > INT_MAX:
            raise err(errno.EINVAL)
        rq = (int(m.group(1)) * HZ) & U32
        sdev = os.path.dirname(p)
        queues = self._sdev_queues(sdev)
        self.wr(p, str(rq // HZ))
        for q in queues:
            iot = os.path.join(q, "io_timeout")
            if os.path.exists(iot):
                self.wr(iot, str(jiffies_to_msecs(rq)))

    def st_sdev_eh_timeout(self, p, buf):
        v = kstrtouint(buf)
        self.wr(p, str(((v * HZ) & U32) // HZ))

    def st_sdev_queue_depth(self, p, buf):
        st = self.sdstate(os.path.dirname(p))
        depth = simple_strtoul(buf, 0)
        if depth < 1 or depth > st["max_depth"]:
            raise err(errno.EINVAL)
        self.wr(p, str(depth))

    def st_sdev_state(self, p, buf):
        new = None
        for n in SDEV_STATES:                       # needs the trailing newline
            if buf.startswith(n) and buf[len(n):len(n) + 1] == "\n":
                new = n
                break
        if new not in ("running", "offline"):
            raise err(errno.EINVAL)
        if self.rd(p) not in ("running", "offline"):
            raise err(errno.EINVAL)
        self.wr(p, new)

    # scsi_disk ----------------------------------------------------------------
    def st_sdisk_cache_type(self, p, buf):
        sdev = os.path.dirname(os.path.dirname(os.path.dirname(p)))
        tp = os.path.join(sdev, "type")
        if os.path.exists(tp) and self.rd(tp) not in ("0", "20"):   # TYPE_DISK, TYPE_ZBC
            raise err(errno.EINVAL)
        s = buf[len("temporary "):] if buf.startswith("temporary ") else buf
        ct = next((i for i, n in enumerate(SD_CACHE_TYPES) if sysfs_streq(s, n)), -1)
        if ct < 0:
            raise err(errno.EINVAL)
        self.wr(p, SD_CACHE_TYPES[ct])
        wce = bool(ct & 2)
        for q in self._sdev_queues(sdev):
            if os.path.exists(os.path.join(q, "write_cache")):
                self.qstate(q)["wc_feature"] = wce
                self._show_wc(q)

    def st_sdisk_allow_restart(self, p, buf):
        self.wr(p, "1" if kstrtobool(buf) else "0")

    def st_sdisk_max_retries(self, p, buf):
        # sd.c max_retries_store(): kstrtoint, then -1 (no limit) or at most SD_MAX_RETRIES
        # (5). The kernel checks no lower bound but -1's, so -3 is taken too.
        v = kstrtoint(buf)
        if not (v == -1 or v <= 5):
            raise err(errno.EINVAL)
        self.wr(p, str(v))

    def st_iscsi_recovery_tmo(self, p, buf):
        # scsi_transport_iscsi.c store_priv_session_recovery_tmo(): EBUSY on a FREE or
        # FAILED session; "off" is -1 (queue forever); else kstrtoint. Shown with "%d".
        state = os.path.join(os.path.dirname(p), "state")
        if os.path.exists(state) and self.rd(state) in ("FREE", "FAILED"):
            raise err(errno.EBUSY)
        if buf.startswith("off"):
            v = -1
        else:
            v = kstrtoint(buf)
        self.wr(p, str(v))

    # /proc/sys/kernel -----------------------------------------------------------
    def st_kernel_hung_task_warnings(self, p, buf):
        # kernel/hung_task.c: proc_dointvec_minmax, extra1 = SYSCTL_NEG_ONE.
        self.wr(p, str(proc_number(buf, True, -1)))

    def st_kernel_hung_task_timeout_secs(self, p, buf):
        # proc_dohung_task_timeout_secs: proc_doulongvec_minmax up to LONG_MAX / HZ.
        self.wr(p, str(proc_number(buf, False, 0, ((1 << 63) - 1) // HZ)))

    # bdi ----------------------------------------------------------------------
    def _bdi_bytes(self, ratio_fine):
        return (DIRTY_LIMIT_PAGES * (1 << PAGE_SHIFT) * ratio_fine) // BDI_RATIO_SCALE // 100

    def _bdi_get(self, bdi, name):
        return int(self.rd(os.path.join(bdi, name)))

    def _bdi_put_ratio(self, bdi, which, fine):
        self.wr(os.path.join(bdi, which + "_ratio_fine"), str(fine))
        self.wr(os.path.join(bdi, which + "_ratio"), str(fine // BDI_RATIO_SCALE))
        self.wr(os.path.join(bdi, which + "_bytes"), str(self._bdi_bytes(fine)))

    def _bdi_set_min(self, bdi, fine):
        if fine > 100 * BDI_RATIO_SCALE:
            raise err(errno.EINVAL)
        cur = self._bdi_get(bdi, "min_ratio_fine")
        if fine > self._bdi_get(bdi, "max_ratio_fine"):
            raise err(errno.EINVAL)
        if fine > cur:
            total = sum(self._bdi_get(b, "min_ratio_fine") for b in self.all_bdis()
                        if os.path.exists(os.path.join(b, "min_ratio_fine")))
            if total + (fine - cur) >= 100 * BDI_RATIO_SCALE:
                raise err(errno.EINVAL)
        self._bdi_put_ratio(bdi, "min", fine)

    def _bdi_set_max(self, bdi, fine):
        if fine > 100 * BDI_RATIO_SCALE:
            raise err(errno.EINVAL)
        if self._bdi_get(bdi, "min_ratio_fine") > fine:
            raise err(errno.EINVAL)
        self._bdi_put_ratio(bdi, "max", fine)

    def _ratio_from_bytes(self, nbytes):
        pages = nbytes >> PAGE_SHIFT
        return (pages * 100 * BDI_RATIO_SCALE) // DIRTY_LIMIT_PAGES

    def st_bdi_min_ratio(self, p, buf):
        self._bdi_set_min(os.path.dirname(p), (kstrtouint(buf) * BDI_RATIO_SCALE) & U32)

    def st_bdi_min_ratio_fine(self, p, buf):
        self._bdi_set_min(os.path.dirname(p), kstrtouint(buf))

    def st_bdi_min_bytes(self, p, buf):
        self._bdi_set_min(os.path.dirname(p), self._ratio_from_bytes(kstrtoull(buf)))

    def st_bdi_max_ratio(self, p, buf):
        self._bdi_set_max(os.path.dirname(p), (kstrtouint(buf) * BDI_RATIO_SCALE) & U32)

    def st_bdi_max_ratio_fine(self, p, buf):
        self._bdi_set_max(os.path.dirname(p), kstrtouint(buf))

    def st_bdi_max_bytes(self, p, buf):
        self._bdi_set_max(os.path.dirname(p), self._ratio_from_bytes(kstrtoull(buf)))

    def st_bdi_strict_limit(self, p, buf):
        v = kstrtouint(buf)
        if v > 1:
            raise err(errno.EINVAL)
        self.wr(p, str(v))

    def st_bdi_read_ahead_kb(self, p, buf):
        kb = kstrtoull(buf)
        shown = ((kb >> (PAGE_SHIFT - 10)) << (PAGE_SHIFT - 10)) & U64
        self.wr(p, str(shown))
        for q in self.queues_of_bdi(os.path.dirname(p)):
            if os.path.exists(os.path.join(q, "read_ahead_kb")):
                self.wr(os.path.join(q, "read_ahead_kb"), str(shown))

    # /proc/sys/vm ---------------------------------------------------------------
    def _vm(self, p, name):
        return os.path.join(os.path.dirname(p), name)

    def st_vm_swappiness(self, p, buf):
        self.wr(p, str(proc_number(buf, True, 0, 200)))

    def st_vm_dirty_ratio(self, p, buf):
        v = proc_number(buf, True, 0, 100)
        old = int(self.rd(p))
        self.wr(p, str(v))
        if v != old and os.path.exists(self._vm(p, "dirty_bytes")):
            self.wr(self._vm(p, "dirty_bytes"), "0")

    def st_vm_dirty_bytes(self, p, buf):
        v = proc_number(buf, False, 2 << PAGE_SHIFT)
        old = int(self.rd(p))
        if v != old:
            if -(-v // (1 << PAGE_SHIFT)) > U32:
                raise err(errno.ERANGE)
            if os.path.exists(self._vm(p, "dirty_ratio")):
                self.wr(self._vm(p, "dirty_ratio"), "0")
        self.wr(p, str(v))

    def st_vm_dirty_background_ratio(self, p, buf):
        v = proc_number(buf, True, 0, 100)
        self.wr(p, str(v))
        if os.path.exists(self._vm(p, "dirty_background_bytes")):
            self.wr(self._vm(p, "dirty_background_bytes"), "0")

    def st_vm_dirty_background_bytes(self, p, buf):
        v = proc_number(buf, False, 1)
        if -(-v // (1 << PAGE_SHIFT)) > INT_MAX:
            raise err(errno.ERANGE)
        self.wr(p, str(v))
        if os.path.exists(self._vm(p, "dirty_background_ratio")):
            self.wr(self._vm(p, "dirty_background_ratio"), "0")

    def st_vm_dirty_expire_centisecs(self, p, buf):
        self.wr(p, str(proc_number(buf, True, 0)))

    def st_vm_dirty_writeback_centisecs(self, p, buf):
        self.wr(p, str(proc_number(buf, True)))     # plain proc_dointvec


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: %s SOURCE_DIR MOUNTPOINT\n" % os.path.basename(argv[0]))
        return 2
    src, mnt = argv[1], argv[2]
    if not os.path.isdir(src):
        sys.stderr.write("fakesys: %s is not a directory\n" % src)
        return 2
    if not os.path.isdir(mnt):
        sys.stderr.write("fakesys: mount point %s is not a directory\n" % mnt)
        return 2
    FUSE(FakeSys(src), mnt, foreground=True, nothreads=True, fsname="fakesys",
         subtype="fakesys", direct_io=True, attr_timeout=0, entry_timeout=0,
         negative_timeout=0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
