"""A minimal SPOP client for the reload tests: HELLO, then NOTIFY/ACK.

Written from spop.md alone; it shares no code with the agent or with the
black-box suite's client, so a codec bug cannot hide behind a matching one.
It speaks just enough to ask the agent for one decision and read the
set-var actions of the ACK.
"""
import socket
import struct

HAPROXY_HELLO, HAPROXY_DISCONNECT, NOTIFY = 1, 2, 3
AGENT_HELLO, AGENT_DISCONNECT, ACK = 101, 102, 103
FIN = 1
T_NULL, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64 = 0, 1, 2, 3, 4, 5
T_IPV4, T_IPV6, T_STRING, T_BINARY = 6, 7, 8, 9
SCOPES = {0: "proc", 1: "sess", 2: "txn", 3: "req", 4: "res"}


def varint(v):
    """HAProxy's varint (spop.md 2.1), not LEB128."""
    if v < 240:
        return bytes([v])
    out = bytearray([0xF0 | (v & 0x0F)])
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v & 0x7F) | 0x80)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


class Reader:
    """A cursor over one frame's bytes; any overrun raises ValueError."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def left(self):
        return len(self.data) - self.pos

    def byte(self):
        if self.pos >= len(self.data):
            raise ValueError("frame truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n):
        if n > self.left():
            raise ValueError("frame truncated")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def varint(self):
        b = self.byte()
        if b < 240:
            return b
        value, shift = b, 4
        for _ in range(10):
            b = self.byte()
            value += b << shift
            shift += 7
            if b < 128:
                return value
        raise ValueError("varint too long")

    def string(self):
        return self.take(self.varint())

    def typed(self):
        t = self.byte()
        kind, flags = t & 0x0F, t & 0xF0
        if kind == T_NULL:
            return None
        if kind == T_BOOL:
            return bool(flags & 0x10)
        if kind in (T_INT32, T_INT64):
            v = self.varint()
            return v - (1 << 64) if v >= 1 << 63 else v
        if kind in (T_UINT32, T_UINT64):
            return self.varint()
        if kind == T_IPV4:
            return socket.inet_ntop(socket.AF_INET, self.take(4))
        if kind == T_IPV6:
            return socket.inet_ntop(socket.AF_INET6, self.take(16))
        if kind == T_STRING:
            return self.string().decode("utf-8", "replace")
        if kind == T_BINARY:
            return self.string()
        raise ValueError("unknown data type %d" % kind)


def kv_string(key, value):
    v = value.encode()
    return varint(len(key)) + key.encode() + bytes([T_STRING]) + varint(len(v)) + v


def frame(ftype, stream_id, frame_id, payload):
    body = bytes([ftype]) + struct.pack(">I", FIN) + varint(stream_id) + varint(frame_id) + payload
    return struct.pack(">I", len(body)) + body


class Client:
    """One SPOP connection, past HELLO. Raises on anything unexpected."""

    def __init__(self, host, port, timeout=3.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.next_id = 1
        hello = (kv_string("supported-versions", "2.0")
                 + varint(len("max-frame-size")) + b"max-frame-size"
                 + bytes([T_UINT32]) + varint(16380)
                 + kv_string("capabilities", "pipelining"))
        self.sock.sendall(frame(HAPROXY_HELLO, 0, 0, hello))
        ftype, _, _, payload = self.read_frame()
        if ftype != AGENT_HELLO:
            raise AssertionError("expected AGENT-HELLO, got frame type %d" % ftype)
        r, kv = Reader(payload), {}
        while r.left():
            key = r.string().decode()
            kv[key] = r.typed()
        if kv.get("version") != "2.0":
            raise AssertionError("AGENT-HELLO without version 2.0: %r" % kv)

    def read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise AssertionError("agent closed the connection")
            buf += chunk
        return buf

    def read_frame(self):
        (length,) = struct.unpack(">I", self.read_exact(4))
        r = Reader(self.read_exact(length))
        ftype = r.byte()
        flags = struct.unpack(">I", r.take(4))[0]
        if not flags & FIN:
            raise AssertionError("frame without FIN")
        sid, fid = r.varint(), r.varint()
        return ftype, sid, fid, r.data[r.pos:]

    def decide(self, method, path):
        """Sends message `cutover` {method, path}; returns {"txn.phase": 3, ...}."""
        args = b""
        for name, value in (("method", method), ("path", path)):
            v = value.encode()
            args += varint(len(name)) + name.encode() + bytes([T_STRING]) + varint(len(v)) + v
        msg = varint(len("cutover")) + b"cutover" + bytes([2]) + args
        sid, self.next_id = self.next_id, self.next_id + 1
        self.sock.sendall(frame(NOTIFY, sid, 1, msg))
        ftype, rsid, rfid, payload = self.read_frame()
        if ftype != ACK or (rsid, rfid) != (sid, 1):
            raise AssertionError("expected ACK %d/1, got type %d %d/%d" % (sid, ftype, rsid, rfid))
        r, out = Reader(payload), {}
        while r.left():
            action, nargs = r.byte(), r.byte()
            if action != 1 or nargs != 3:
                raise AssertionError("unexpected action %d with %d args" % (action, nargs))
            scope = SCOPES.get(r.byte(), "?")
            name = r.string().decode()
            out["%s.%s" % (scope, name)] = r.typed()
        return out

    def close(self):
        self.sock.close()


def decide_once(host, port, method, path):
    c = Client(host, port)
    try:
        return c.decide(method, path)
    finally:
        c.close()
