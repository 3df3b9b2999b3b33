#!/usr/bin/env bash
# Makes the journalctl captures in this directory from REAL journald output: runs
# systemd-journald (the Debian `systemd` package; no systemd as PID 1 needed) in a private mount
# namespace with its own tmpfs /run and /var/log, lets it import the kernel ring buffer, and
# cuts the records of each capture out of `journalctl -k` in several output formats. The
# records of an event must still be in the ring buffer: run right after capture.sh.
#
#   bash tests/logs/journal.sh [DIR]     (default: this directory)
#
# For NAME in the list below, DIR/NAME.kmsg gives the window (first and last TS_USEC); the
# records with _SOURCE_MONOTONIC_TIMESTAMP in it are written as NAME.journal.json (-o json),
# NAME.journal.short (default), NAME.journal.iso (-o short-iso), NAME.journal.precise
# (-o short-precise) and NAME.journal.mono (-o short-monotonic). The record count must equal
# the .kmsg capture's. Side effect outside the namespace: journald logs one line
# ("systemd-journald[PID]: Received SIGTERM ...") to the kernel log when it is stopped.
set -euo pipefail
dir=$(cd "${1:-$(dirname "$0")}" && pwd)
names=(ext4-full-tmpfs clean-boot)
tmp=$(mktemp -d /tmp/tunerd-journal.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

unshare -m --propagation private bash -c '
set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal
mount -t tmpfs tmpfs /var/log
/lib/systemd/systemd-journald >/dev/null 2>&1 &
pid=$!
sleep 4
kill $pid
wait $pid || true
cp -a /run/log/journal "$1/journal"
' _ "$tmp"

for fmt in json short short-iso short-precise short-monotonic; do
  journalctl -D "$tmp/journal" -k -o "$fmt" --no-pager > "$tmp/all.$fmt"
done

python3 - "$dir" "$tmp" "${names[@]}" <<'PY'
import json, sys
d, tmp, names = sys.argv[1], sys.argv[2], sys.argv[3:]
recs = [json.loads(l) for l in open(f"{tmp}/all.json")]

def text_records(fmt):
    """The lines of one text output grouped per record (continuation lines are indented)."""
    groups = []
    for line in open(f"{tmp}/all.{fmt}"):
        if line.startswith("-- "):
            continue
        if line[:1].isspace() and groups:
            groups[-1].append(line)
        else:
            groups.append([line])
    if len(groups) != len(recs):
        sys.exit(f"{fmt}: {len(groups)} records, json has {len(recs)}")
    return groups

texts = {fmt: text_records(fmt) for fmt in ("short", "short-iso", "short-precise", "short-monotonic")}
suffix = {"short": "short", "short-iso": "iso", "short-precise": "precise", "short-monotonic": "mono"}
for name in names:
    kmsg = open(f"{d}/{name}.kmsg", "rb").read().split(b"\n")
    heads = [l.split(b";", 1)[0].split(b",") for l in kmsg if l and not l.startswith(b" ")]
    t0, t1 = int(heads[0][2]), int(heads[-1][2])
    idx = [i for i, r in enumerate(recs) if t0 <= int(r.get("_SOURCE_MONOTONIC_TIMESTAMP", -1)) <= t1]
    if len(idx) != len(heads):
        sys.exit(f"{name}: {len(idx)} journal records in [{t0}, {t1}], {len(heads)} in {name}.kmsg")
    with open(f"{d}/{name}.journal.json", "w") as f:
        for i in idx:
            f.write(json.dumps(recs[i], separators=(",", ":")) + "\n")
    for fmt, groups in texts.items():
        with open(f"{d}/{name}.journal.{suffix[fmt]}", "w") as f:
            for i in idx:
                f.writelines(groups[i])
    print(f"{name}: {len(idx)} records")
PY
