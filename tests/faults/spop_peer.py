"""SPOP 2.0 from HAProxy's side, for the fault tests: a well-behaved client
and the raw pieces hostile peers are built from.

Written from spop.md (sections 1-3) and sharing no code with the agent or with
the black-box suite. Only what the fault cases need: HELLO, NOTIFY, DISCONNECT
out; AGENT-HELLO, ACK, AGENT-DISCONNECT in.
"""
import socket
import struct

HAPROXY_HELLO, HAPROXY_DISCONNECT, NOTIFY = 1, 2, 3
AGENT_HELLO, AGENT_DISCONNECT, ACK = 101, 102, 103
FIN = 1

T_NULL, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64 = 0, 1, 2, 3, 4, 5
T_IPV4, T_IPV6, T_STRING, T_BINARY = 6, 7, 8, 9
SCOPES = {0: "proc", 1: "sess", 2: "txn", 3: "req", 4: "res"}


# --- encoding -------------------------------------------------------------

def varint(v):
    """HAProxy's varint (spop.md 2.1), not LEB128."""
    v &= (1 << 64) - 1
    if v < 240:
        return bytes([v])
    out = [0xF0 | (v & 0x0F)]
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v & 0x7F) | 0x80)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


def lstr(b):
    """Length-prefixed bytes without a type byte (keys, names)."""
    if isinstance(b, str):
        b = b.encode()
    return varint(len(b)) + b


def t_string(b):
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    return bytes([T_STRING]) + lstr(b)


def t_uint32(v):
    return bytes([T_UINT32]) + varint(v)


def t_bool(v):
    return bytes([T_BOOL | (0x10 if v else 0)])


def t_ipv4(addr):
    return bytes([T_IPV4]) + socket.inet_aton(addr)


T_NULL_BYTES = bytes([T_NULL])


def frame(ftype, payload=b"", sid=0, fid=0, flags=FIN):
    body = bytes([ftype]) + struct.pack(">I", flags) + varint(sid) + varint(fid) + payload
    return struct.pack(">I", len(body)) + body


def kvlist(items):
    return b"".join(lstr(k) + v for k, v in items)


def hello(max_frame=16380, caps="pipelining", healthcheck=False):
    items = [("supported-versions", t_string("2.0")),
             ("max-frame-size", t_uint32(max_frame)),
             ("capabilities", t_string(caps))]
    if healthcheck:
        items.append(("healthcheck", t_bool(True)))
    else:
        items.append(("engine-id", t_string("faults-0000")))
    return frame(HAPROXY_HELLO, kvlist(items))


def haproxy_disconnect(status=0, message="normal"):
    return frame(HAPROXY_DISCONNECT, kvlist([("status-code", t_uint32(status)),
                                             ("message", t_string(message))]))


def message(name, args):
    """args: list of (name, typed value bytes)."""
    return lstr(name) + bytes([len(args)]) + b"".join(lstr(k) + v for k, v in args)


def request_args(method, path, host="shop.test", src="127.0.0.1", client=None, rid="r"):
    """The named args of the `cutover` message (design contract)."""
    def s(v):
        return T_NULL_BYTES if v is None else t_string(v)
    return [("method", s(method)), ("path", s(path)), ("host", s(host)),
            ("src", t_ipv4(src)), ("client", s(client)), ("id", s(rid))]


def notify(sid, fid, method, path, **kw):
    return frame(NOTIFY, message("cutover", request_args(method, path, **kw)), sid, fid)


# --- decoding -------------------------------------------------------------

class Malformed(Exception):
    pass


def read_varint(buf, i):
    if i >= len(buf):
        raise Malformed("varint past end")
    v = buf[i]
    i += 1
    if v < 240:
        return v, i
    shift = 4
    while True:
        if i >= len(buf) or shift > 70:
            raise Malformed("bad varint")
        b = buf[i]
        i += 1
        v += b << shift
        shift += 7
        if b < 128:
            return v & ((1 << 64) - 1), i


def read_lstr(buf, i):
    n, i = read_varint(buf, i)
    if i + n > len(buf):
        raise Malformed("string past end")
    return bytes(buf[i:i + n]), i + n


def read_typed(buf, i):
    if i >= len(buf):
        raise Malformed("typed value past end")
    tb = buf[i]
    t = tb & 0x0F
    i += 1
    if t == T_NULL:
        return None, i
    if t == T_BOOL:
        return bool(tb & 0x10), i
    if t in (T_INT32, T_UINT32, T_INT64, T_UINT64):
        v, i = read_varint(buf, i)
        if t in (T_INT32, T_INT64) and v >= 1 << 63:
            v -= 1 << 64
        return v, i
    if t == T_IPV4:
        return socket.inet_ntop(socket.AF_INET, bytes(buf[i:i + 4])), i + 4
    if t == T_IPV6:
        return socket.inet_ntop(socket.AF_INET6, bytes(buf[i:i + 16])), i + 16
    if t in (T_STRING, T_BINARY):
        return read_lstr(buf, i)
    raise Malformed("reserved type %d" % t)


def parse_kvlist(payload):
    out, i = {}, 0
    while i < len(payload):
        k, i = read_lstr(payload, i)
        v, i = read_typed(payload, i)
        out[k.decode("latin-1")] = v
    return out


def parse_messages(payload):
    """NOTIFY payload -> [(message name, {arg name: value})]."""
    out, i = [], 0
    while i < len(payload):
        name, i = read_lstr(payload, i)
        if i >= len(payload):
            raise Malformed("nb-args past end")
        nargs = payload[i]
        i += 1
        args = {}
        for _ in range(nargs):
            k, i = read_lstr(payload, i)
            args[k.decode("latin-1")], i = read_typed(payload, i)
        out.append((name.decode("latin-1"), args))
    return out


def parse_actions(payload):
    """ACK payload -> {"txn.backend": value, "proc.phase": value, ...}.
    A set-var with a NULL value is kept as None (it unsets)."""
    out, i = {}, 0
    while i < len(payload):
        if i + 2 > len(payload):
            raise Malformed("action header past end")
        atype, nargs = payload[i], payload[i + 1]
        i += 2
        if atype == 1 and nargs == 3:
            scope = payload[i]
            name, i = read_lstr(payload, i + 1)
            value, i = read_typed(payload, i)
        elif atype == 2 and nargs == 2:
            scope = payload[i]
            name, i = read_lstr(payload, i + 1)
            value = None
        else:
            raise Malformed("unknown action %d/%d" % (atype, nargs))
        out["%s.%s" % (SCOPES.get(scope, "?%d" % scope), name.decode("latin-1"))] = value
    return out


def split_frames(buf):
    """Complete frames at the start of buf -> ([(type, flags, sid, fid, payload)], rest)."""
    frames, i = [], 0
    while len(buf) - i >= 4:
        n = struct.unpack_from(">I", buf, i)[0]
        if len(buf) - i - 4 < n:
            break
        body = bytes(buf[i + 4:i + 4 + n])
        i += 4 + n
        if n < 5:
            raise Malformed("frame of %d bytes" % n)
        flags = struct.unpack_from(">I", body, 1)[0]
        sid, j = read_varint(body, 5)
        fid, j = read_varint(body, j)
        frames.append((body[0], flags, sid, fid, body[j:]))
    return frames, bytes(buf[i:])


# --- a well-behaved client ------------------------------------------------

class Closed(Exception):
    """The agent closed the connection; .disconnect holds its AGENT-DISCONNECT
    KV list if it sent one first."""

    def __init__(self, disconnect):
        super().__init__("agent closed the connection (disconnect=%r)" % (disconnect,))
        self.disconnect = disconnect


class Client:
    """One SPOP connection doing what HAProxy does: HELLO, then NOTIFYs."""

    def __init__(self, host, port, timeout=5.0, max_frame=16380):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pending = []
        self.sid = 0
        self.sock.sendall(hello(max_frame))
        ftype, _, _, _, payload = self.read_frame()
        if ftype != AGENT_HELLO:
            raise AssertionError("expected AGENT-HELLO, got type %d %r" % (ftype, payload))
        self.agent_hello = parse_kvlist(payload)

    def read_frame(self):
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise Closed(None)
            frames, self.buf = split_frames(self.buf + data)
            self.pending.extend(frames)
        f = self.pending.pop(0)
        if f[0] == AGENT_DISCONNECT:
            raise Closed(parse_kvlist(f[4]))
        return f

    def decide(self, method, path, **kw):
        """One NOTIFY, its ACK's variables."""
        self.sid += 1
        self.sock.sendall(notify(self.sid, 1, method, path, rid="f%d" % self.sid, **kw))
        while True:
            ftype, _, sid, fid, payload = self.read_frame()
            if ftype == ACK and (sid, fid) == (self.sid, 1):
                return parse_actions(payload)
            if ftype != ACK:
                raise AssertionError("unexpected frame type %d" % ftype)

    def close(self):
        try:
            self.sock.sendall(haproxy_disconnect())
        except OSError:
            pass
        self.sock.close()


def read_disconnect(sock, timeout=5.0):
    """Reads until the agent closes; returns the AGENT-DISCONNECT KV list it
    sent (None when it closed without one). Frames before it are skipped."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return None
        buf += data
        try:
            frames, buf = split_frames(buf)
        except Malformed:
            return None
        for f in frames:
            if f[0] == AGENT_DISCONNECT:
                return parse_kvlist(f[4])


# --- the agent's side, for a rogue agent ------------------------------------

def agent_hello(max_frame=16380, caps="pipelining"):
    return frame(AGENT_HELLO, kvlist([("version", t_string("2.0")),
                                      ("max-frame-size", t_uint32(max_frame)),
                                      ("capabilities", t_string(caps))]))


def set_var(scope, name, typed):
    """scope: 0 proc .. 4 res; typed: encoded typed value."""
    return bytes([1, 3, scope]) + lstr(name) + typed


def ack(sid, fid, actions=b""):
    return frame(ACK, actions, sid, fid)


def agent_disconnect(status=0, message="normal"):
    return frame(AGENT_DISCONNECT, kvlist([("status-code", t_uint32(status)),
                                           ("message", t_string(message))]))
