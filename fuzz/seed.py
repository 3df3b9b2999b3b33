#!/usr/bin/env python3
"""Seeds corpus/<target>/ from the real captures in ../tests/logs: one kmsg record (with its
continuation lines) per file for kmsg_record, 20-line chunks of every capture for log_text, one
JSON line per file for journal_json."""
import glob
import hashlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))
LOGS = os.path.join(HERE, "..", "tests", "logs")


def put(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


for path in glob.glob(os.path.join(LOGS, "*.kmsg")):
    rec = b""
    for line in open(path, "rb").read().split(b"\n"):
        if line.startswith(b" ") and rec:
            rec += line + b"\n"
        elif line:
            if rec:
                put("kmsg_record", rec)
            rec = line + b"\n"
    if rec:
        put("kmsg_record", rec)

for path in glob.glob(os.path.join(LOGS, "*")):
    if path.endswith((".sh", ".md")):
        continue
    lines = open(path, "rb").read().split(b"\n")
    for i in range(0, len(lines), 20):
        put("log_text", b"\n".join(lines[i : i + 20]))
    if path.endswith(".json"):
        for line in lines:
            if line:
                put("journal_json", line)

for t in ("kmsg_record", "log_text", "journal_json"):
    print(t, len(os.listdir(os.path.join(HERE, "corpus", t))))
