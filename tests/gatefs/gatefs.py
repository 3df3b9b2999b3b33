#!/usr/bin/env python3
"""gatefs: a passthrough FUSE filesystem whose reads and writes wait while a gate file exists
(and take GATE_FILE.slow milliseconds each while that file exists):
a storage backend that stops answering, for stall tests (a loop device backed by a file on
gatefs hangs with requests in flight, as a VM's disk does when its SAN stalls).

    python3 tests/gatefs/gatefs.py SOURCE_DIR MOUNTPOINT GATE_FILE

Needs fusepy and libfuse2 (see tests/fakesys/README.md). Runs in the foreground; unmount with
`fusermount -u MOUNTPOINT` (remove the gate first, or blocked requests keep it busy).
"""
import errno
import os
import sys
import time

from fuse import FUSE, FuseOSError, Operations


class Gate(Operations):
    def __init__(self, source, gate):
        self.source = source
        self.gate = gate

    def _path(self, path):
        return os.path.join(self.source, path.lstrip("/"))

    def _wait(self):
        while os.path.exists(self.gate):
            time.sleep(0.02)
        # A slow backend instead of a stopped one: GATE_FILE.slow holds a delay in ms.
        try:
            with open(self.gate + ".slow") as f:
                time.sleep(int(f.read().strip() or "0") / 1000.0)
        except (OSError, ValueError):
            pass

    def getattr(self, path, fh=None):
        st = os.lstat(self._path(path))
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def open(self, path, flags):
        return os.open(self._path(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def utimens(self, path, times=None):
        os.utime(self._path(path), times)

    def chmod(self, path, mode):
        os.chmod(self._path(path), mode)

    def read(self, path, size, offset, fh):
        self._wait()
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        self._wait()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        os.truncate(self._path(path), length)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        self._wait()
        os.fsync(fh)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        sys.exit(2)
    FUSE(Gate(sys.argv[1], sys.argv[3]), sys.argv[2], foreground=True, nothreads=False,
         direct_io=True, allow_other=False)
