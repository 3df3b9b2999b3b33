# Helpers of the test guest's scripts (tests/it/guest.rs), sourced by install.sh and check.sh
# (installed as /usr/local/lib/tunerd-guest/lib.sh). Everything goes to the second serial port
# (/dev/ttyS1; the kernel console is on ttyS0), one line each, which the host parses:
#   CHECK name=NAME ok=0|1 detail=TEXT      one assertion
#   FIGURE name=NAME value=TEXT             a measured or recorded figure
#   INFO TEXT                               context (command output)
#   MARK READY-FOR-HOTPLUG                  the host now hot-adds a VMware disk through QMP
#   MARK END failed=N                       the last line; then the guest powers off
# Checks never stop a script: every one is reported, then the guest powers off.
# Check conditions are single-quoted code run by eval in check(): shellcheck cannot see
# the variables they read.
# shellcheck shell=bash disable=SC2034
set -u
exec >/dev/ttyS1 2>&1
stty -F /dev/ttyS1 -onlcr 2>/dev/null || true
export LC_ALL=C.UTF-8 SYSTEMD_COLORS=0 SYSTEMD_PAGER='' PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

failed=0
one_line() { printf '%s' "$*" | tr '\n\t' '  ' | tr -s ' ' | cut -c1-600; }
# check NAME CONDITION DETAIL...: CONDITION is shell code, evaluated here (single-quote it).
check() {
    local name=$1 cond=$2 ok=0
    shift 2
    if eval "$cond" >/dev/null 2>&1; then ok=1; fi
    echo "CHECK name=$name ok=$ok detail=$(one_line "$*")"
    [ "$ok" = 1 ] || failed=$((failed + 1))
}
figure() { echo "FIGURE name=$1 value=$(one_line "$2")"; }
info() { while IFS= read -r line; do echo "INFO $line"; done; }
now_ms() { date +%s%3N; }
prop() { systemctl show "${2:-tunerd.service}" -p "$1" --value; }
timeout_of() { cat "/sys/block/$1/device/timeout" 2>/dev/null || echo absent; }
sched_of() { cat "/sys/block/$1/queue/scheduler" 2>/dev/null || echo absent; }
# Waits up to $1 seconds (0.2 s steps) for the command after it to succeed; prints the
# milliseconds it took, or "timeout".
wait_for() {
    local limit_ms=$(($1 * 1000)) start
    shift
    start=$(now_ms)
    while true; do
        if "$@" >/dev/null 2>&1; then
            echo $(($(now_ms) - start))
            return 0
        fi
        if [ $(($(now_ms) - start)) -ge $limit_ms ]; then
            echo timeout
            return 1
        fi
        sleep 0.2
    done
}
daemon_on_bus() { tunerctl status 2>/dev/null | grep -q '^daemon    running (pid '; }
journal_value() { jq -r --arg k "$1" '.originals[] | select(.key == $k) | .value' /run/tunerd/originals.json 2>/dev/null; }

# The package as the guest installs it: /root/tunerd.deb, then /root/tunerd-newer.deb (the same
# build repacked with a higher version) for the upgrade. apt installs them offline: every
# dependency is in the image already.
export DEBIAN_FRONTEND=noninteractive
DEB=/root/tunerd.deb
NEWER_DEB=/root/tunerd-newer.deb
# "ii 0.1.0-1" when installed; "rc 0.1.0-1" when removed with its configuration kept.
pkg_state() { dpkg-query -W -f='${db:Status-Abbrev}${Version}' tunerd 2>/dev/null | tr -s ' '; }
# Where the journal ends now: `journalctl --after-cursor` then shows what came later.
journal_cursor() { journalctl -n 1 -q --show-cursor -o cat --no-pager | sed -n 's/^-- cursor: //p'; }
# apt-get with its output as INFO lines; returns apt's exit status.
apt_get() {
    local out rc
    out=$(apt-get -y -q "$@" 2>&1)
    rc=$?
    echo "INFO ---- apt-get $* (exit $rc) ----"
    info <<<"$out"
    return $rc
}
# The last line, then the guest powers itself off.
finish() {
    echo "MARK END failed=$failed"
    sync
    systemctl poweroff --no-block
}

# Requests to the host (the lab boot): `host_do qmp|qga JSON [SECONDS]` prints
# `MARK HOST n=N qmp|qga JSON` for tests/it/guest.rs, which runs the command on QEMU's monitor
# or on this guest's qemu-guest-agent and answers on the virtio-serial port org.tunerd.host.0
# with one line, {"n":N,"ok":true,"return":...,"ms":M} or {"n":N,"ok":false,"error":...};
# host_do prints that line (or an "ok":false one when no answer came in time).
# The request number lives in a file: host_do mostly runs in a command substitution.
HOST_PORT=/dev/virtio-ports/org.tunerd.host.0
HOST_N=/run/tunerd-guest-host-n
host_open() { [ -e "$HOST_PORT" ] && exec 9<"$HOST_PORT"; }
host_do() {
    local json reply limit=${3:-90} start host_n
    json=$(jq -c . <<<"$2") || json=$2
    host_n=$(($(cat $HOST_N 2>/dev/null || echo 0) + 1))
    echo $host_n >$HOST_N
    # No answer port on this boot (host_open found none): say so at once, not after the limit.
    if ! { true <&9; } 2>/dev/null; then
        echo "{\"n\":$host_n,\"ok\":false,\"error\":\"no answer port $HOST_PORT on this boot\"}"
        return 1
    fi
    echo "MARK HOST n=$host_n $1 $json" >/dev/ttyS1
    start=$(date +%s)
    # A read returns at once with nothing (end of file) while no host side is connected to the
    # port (virtio_console's port_fops_read): wait for it rather than give up, until the limit.
    local left rc eofs=0
    while left=$((limit - ($(date +%s) - start))) && [ "$left" -gt 0 ]; do
        rc=0
        read -t "$left" -r reply <&9 || rc=$?
        if [ $rc -eq 0 ]; then
            [ "$(jq -r .n <<<"$reply" 2>/dev/null)" = "$host_n" ] && { echo "$reply"; return 0; }
        elif [ $rc -gt 128 ]; then
            break
        else
            eofs=$((eofs + 1))
            sleep 0.2
        fi
    done
    echo "{\"n\":$host_n,\"ok\":false,\"error\":\"no answer from the host in $limit s ($eofs reads found no host connected)\"}"
    return 1
}
host_ok() { jq -e '.ok == true' <<<"$1" >/dev/null 2>&1; }

# Captures for tests/logs: `capture NAME <lines` sends each line as `CAPTURE file=NAME LINE`;
# the host writes them to last-run/captures/NAME. The kernel log's raw records (as read()
# returns them from /dev/kmsg, continuation lines included) after a sequence number:
# `kmsg_seq` prints the newest one's, `kmsg_since SEQ` the records after it.
capture() { while IFS= read -r line; do printf 'CAPTURE file=%s %s\n' "$1" "$line"; done; }
kmsg_seq() {
    python3 -c '
import os
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
last = -1
while True:
    try:
        rec = os.read(fd, 8192)
    except BlockingIOError:
        break
    except OSError:
        continue
    last = int(rec.split(b",", 2)[1])
print(last)'
}
kmsg_since() {
    python3 -c '
import os, sys
mark = int(sys.argv[1])
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
out = sys.stdout.buffer
while True:
    try:
        rec = os.read(fd, 8192)
    except BlockingIOError:
        break
    except OSError:
        continue
    if int(rec.split(b",", 2)[1]) > mark:
        out.write(rec)
out.flush()' "$1"
}
