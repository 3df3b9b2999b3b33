#!/usr/bin/python3
"""A webhook receiver for the test guest's cloud boots (tests/it/guest.rs): listens on the
guest's own loopback, answers every POST with 204 and appends it as one JSON line
({"received_ms", "path", "headers", "body"}) to the file named by its second argument,
fsynced, so that the check scripts (cloud.sh, cloud-broken.sh) read what tunerd delivered and
when. Started by tunerd-guest-receiver.service before cloud-final.service, that is before
cloud-init installs and configures tunerd. Usage: receiver.py PORT FILE [READY-FILE]."""
import http.server
import json
import os
import sys
import time

PORT = int(sys.argv[1])
LOG = sys.argv[2]
READY = sys.argv[3] if len(sys.argv) > 3 else None


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        received_ms = int(time.time() * 1000)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        entry = {
            "received_ms": received_ms,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.send_response(204)
        self.end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write("receiver: " + (fmt % args) + "\n")


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
if READY:
    with open(READY, "w", encoding="utf-8") as f:
        f.write(f"{os.getpid()}\n")
server.serve_forever()
