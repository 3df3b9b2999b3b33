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
