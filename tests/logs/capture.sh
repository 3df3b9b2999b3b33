#!/usr/bin/env bash
# Re-creates the real-kernel captures in this directory (see README.md). Needs root, e2fsprogs,
# xfsprogs, btrfs-progs, util-linux and python3. Touches only what it creates: a temporary
# directory, tmpfs mounts under it, loop devices from `losetup -f`, and (for the hung task, put
# back on exit) kernel.hung_task_timeout_secs and kernel.hung_task_warnings. Everything is
# undone on exit, failure included.
#
#   bash tests/logs/capture.sh [OUTDIR]    (default: this directory)
set -euo pipefail
out=$(cd "${1:-$(dirname "$0")}" && pwd)
work=$(mktemp -d /tmp/tunerd-logcap.XXXXXX)
undo=() # commands run in reverse order on exit

cleanup() {
  set +e
  local i
  for ((i = ${#undo[@]} - 1; i >= 0; i--)); do eval "${undo[i]}"; done
  rm -rf "$work"
}
trap cleanup EXIT

# The kernel log as /dev/kmsg hands it out, one read() per record, non-blocking.
# `kmsg mark` prints "SEQ TS_USEC" of the newest record; `kmsg since SEQ` prints every record
# after SEQ exactly as read (continuation lines included), as `cat /dev/kmsg` does.
kmsg() {
  python3 - "$@" <<'PY'
import os, sys
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
last, after, out = None, None, sys.stdout.buffer
if sys.argv[1] == "since":
    after = int(sys.argv[2])
while True:
    try:
        rec = os.read(fd, 16384)
    except BlockingIOError:
        break
    except BrokenPipeError:  # records overwritten before we read them
        continue
    head = rec.split(b";", 1)[0].split(b",")
    last = (int(head[1]), int(head[2]))
    if after is not None and last[0] > after:
        out.write(rec)
if sys.argv[1] == "mark":
    print(*last)
PY
}

# mark: remember where the kernel log is before an event.
mark() {
  read -r seq0 _ < <(kmsg mark)
  lines0=$(dmesg | wc -l)
}

# Every line of `dmesg ARGS` after the mark. Plain `dmesg` is counted before and after ARGS and
# the whole is retried until nothing was logged in between, so all formats hold the same records.
dmesg_since_mark() {
  local a b c
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    a=$(dmesg | wc -l)
    b=$(dmesg "$@")
    c=$(dmesg | wc -l)
    if [ "$a" = "$c" ]; then
      printf '%s\n' "$b" | tail -n +$((lines0 + 1))
      return 0
    fi
    sleep 0.2
  done
  echo "kernel log kept moving" >&2
  return 1
}

# A tmpfs of $1 holding a sparse image of $2 attached to a new loop device: sets $dev and $tmpfs.
# (Helpers that set variables are not called in $(...): the undo stack must stay in this shell.)
new_loop() {
  tmpfs=$(mktemp -d "$work/tmpfs.XXXX")
  mount -t tmpfs -o "size=$1" tmpfs "$tmpfs"
  undo+=("umount '$tmpfs' || umount -l '$tmpfs'")
  truncate -s "$2" "$tmpfs/disk.img"
  loop_on "$tmpfs/disk.img"
}

# A new loop device on file $1: sets $dev.
loop_on() {
  dev=$(losetup -f --show "$1")
  undo+=("losetup -d '$dev'")
}

# Shrinks $tmpfs to what it holds now plus $1 KiB: the next writes run out of space.
shrink_tmpfs() {
  local used
  used=$(df --output=used -k "$tmpfs" | tail -n 1)
  mount -o "remount,size=$((used + $1))k" "$tmpfs"
}

# Mounts $dev with options $@ on a new directory: sets $mnt.
mount_fs() {
  mnt=$(mktemp -d "$work/mnt.XXXX")
  mount "$@" "$dev" "$mnt"
  undo+=("umount '$mnt' || umount -l '$mnt'")
}

# Unmounts the newest mount (the last undo entry), so its unmount lines are in the capture.
unmount_last() {
  eval "${undo[-1]}"
  unset 'undo[-1]'
}

# Writes more than fits, then waits for the journal commit that notices.
fill() {
  dd if=/dev/urandom of="$1/big" bs=1M count="$2" conv=fsync status=none 2>/dev/null || true
  sync 2>/dev/null || true
  sleep 8
  touch "$1/after" 2>/dev/null || true
}

# One device, two failures: ext4 fails (errors=remount-ro) and is unmounted, the device gets an
# XFS that is then shut down. Two incidents, not one ext4 incident.
event_reuse() {
  new_loop 256m 512M
  mkfs.ext4 -q -F "$dev"
  mount_fs -o errors=remount-ro
  mark
  echo "tunerd capture: first filesystem fails" > "/sys/fs/ext4/$(basename "$dev")/trigger_fs_error"
  touch "$mnt/after" 2>/dev/null || true
  sleep 1
  unmount_last
  mkfs.xfs -q -f "$dev"
  mount_fs
  xfs_io -x -c "shutdown -f" "$mnt"
  touch "$mnt/after" 2>/dev/null || true
  sleep 1
  unmount_last
  sleep 1
  # kmsg only: dmesg_since_mark counts lines, which fails once the ring buffer is full.
  kmsg since "$seq0" > "$out/ext4-then-xfs.kmsg"
  echo "ext4-then-xfs: $dev"
}

echo "kernel: $(uname -r)"

# ONLY=NAME runs the one event event_NAME alone (every other file stays as it is):
#   ONLY=reuse bash tests/logs/capture.sh
if [ -n "${ONLY:-}" ]; then
  "event_$ONLY"
  exit 0
fi

# 0. With CLEAN_BOOT=1 (on a freshly booted machine, before anything else ran): the boot log.
if [ "${CLEAN_BOOT:-0}" = 1 ]; then
  dmesg > "$out/clean-boot.dmesg"
  kmsg since -1 > "$out/clean-boot.kmsg"
fi

# 1. ext4 error injected through sysfs, errors=remount-ro.
new_loop 64m 32M
mkfs.ext4 -q -F "$dev"
mount_fs -o errors=remount-ro
mark
echo "tunerd capture: injected error" > "/sys/fs/ext4/$(basename "$dev")/trigger_fs_error"
touch "$mnt/after" 2>/dev/null || true
sleep 1
unmount_last
kmsg since "$seq0" > "$out/ext4-trigger-error.kmsg"
echo "ext4-trigger-error: $dev"

# 2. ext4 forced shutdown (EXT4_IOC_SHUTDOWN, the same ioctl number as XFS_IOC_GOINGDOWN).
new_loop 64m 32M
mkfs.ext4 -q -F "$dev"
mount_fs
mark
echo data > "$mnt/f"
xfs_io -x -c "shutdown -f" "$mnt"
touch "$mnt/after" 2>/dev/null || true
sleep 1
unmount_last
kmsg since "$seq0" > "$out/ext4-shutdown.kmsg"
echo "ext4-shutdown: $dev"

# 3. ext4 on a loop device whose backing file is on a tmpfs too small for it. On 6.18 the loop
# driver turns the backing file's ENOSPC into BLK_STS_NOSPC: "critical space allocation error".
new_loop 24m 128M
mkfs.ext4 -q -F "$dev"
mount_fs -o errors=remount-ro
mark
fill "$mnt" 64
unmount_last
sleep 1
kmsg since "$seq0" > "$out/ext4-full-tmpfs.kmsg"
dmesg_since_mark > "$out/ext4-full-tmpfs.dmesg"
dmesg_since_mark -t > "$out/ext4-full-tmpfs-t.dmesg"
dmesg_since_mark -x > "$out/ext4-full-tmpfs-x.dmesg"
echo "ext4-full-tmpfs: $dev"

# 4. ext4, XFS and btrfs whose loop device's backing file sits on another ext4 that is shut down
# under it: the backing writes fail with EIO and the block layer says "I/O error".
# eio NAME MKFS [MOUNT OPTIONS...]
eio() {
  local name=$1 mkfs=$2 outer_dev outer
  shift 2
  new_loop 512m 500M
  outer_dev=$dev
  mkfs.ext4 -q -F "$dev"
  mount_fs
  outer=$mnt
  truncate -s 400M "$outer/inner.img"
  loop_on "$outer/inner.img"
  $mkfs "$dev" >/dev/null
  sync
  mount_fs "$@"
  mark
  dd if=/dev/urandom of="$mnt/data" bs=1M count=16 status=none
  xfs_io -x -c "shutdown" "$outer"
  fill "$mnt" 8
  unmount_last
  sleep 1
  kmsg since "$seq0" > "$out/$name.kmsg"
  dmesg_since_mark > "$out/$name.dmesg"
  echo "$name: inner $dev on outer $outer_dev"
}
eio ext4-eio "mkfs.ext4 -q -F" -o errors=remount-ro
eio xfs-eio "mkfs.xfs -q -f"
eio btrfs-eio "mkfs.btrfs -q -f"

# 5. XFS on a tmpfs too small for it (made big enough for mkfs, then shrunk).
new_loop 256m 512M
mkfs.xfs -q -f "$dev"
shrink_tmpfs 16384
mount_fs
mark
fill "$mnt" 128
unmount_last
sleep 1
kmsg since "$seq0" > "$out/xfs-full.kmsg"
dmesg_since_mark > "$out/xfs-full.dmesg"
echo "xfs-full: $dev"

# 6. XFS forced shutdown (XFS_IOC_GOINGDOWN).
new_loop 256m 512M
mkfs.xfs -q -f "$dev"
mount_fs
mark
echo data > "$mnt/f"
xfs_io -x -c "shutdown -f" "$mnt"
touch "$mnt/after" 2>/dev/null || true
sleep 1
unmount_last
kmsg since "$seq0" > "$out/xfs-shutdown.kmsg"
echo "xfs-shutdown: $dev"

# 7. btrfs on a tmpfs too small for it.
new_loop 256m 512M
mkfs.btrfs -q -f "$dev"
shrink_tmpfs 16384
mount_fs
mark
fill "$mnt" 128
unmount_last
sleep 1
kmsg since "$seq0" > "$out/btrfs-full.kmsg"
dmesg_since_mark > "$out/btrfs-full.dmesg"
echo "btrfs-full: $dev"

# 8. A hung task: a writer blocked on a frozen ext4, with the hung-task timeout at 2 s.
new_loop 64m 32M
mkfs.ext4 -q -F "$dev"
mount_fs
timeout_was=$(cat /proc/sys/kernel/hung_task_timeout_secs)
warnings_was=$(cat /proc/sys/kernel/hung_task_warnings)
undo+=("echo $timeout_was > /proc/sys/kernel/hung_task_timeout_secs")
undo+=("echo $warnings_was > /proc/sys/kernel/hung_task_warnings")
fsfreeze -f "$mnt"
undo+=("fsfreeze -u '$mnt' 2>/dev/null")
mark
echo 1 > /proc/sys/kernel/hung_task_warnings
echo 2 > /proc/sys/kernel/hung_task_timeout_secs
bash -c "exec -a tunerd-hung-writer dd if=/dev/zero of='$mnt/f' bs=4k count=1 status=none" &
writer=$!
sleep 8
echo "$timeout_was" > /proc/sys/kernel/hung_task_timeout_secs
echo "$warnings_was" > /proc/sys/kernel/hung_task_warnings
fsfreeze -u "$mnt"
wait "$writer" || true
kmsg since "$seq0" > "$out/hung-task.kmsg"
dmesg_since_mark > "$out/hung-task.dmesg"
echo "hung-task: $dev"
