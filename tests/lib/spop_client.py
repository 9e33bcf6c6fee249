# SPDX-License-Identifier: Apache-2.0
"""An independent SPOP 2.0 client for black-box tests of cutover-spoa.

Written from docs/spop.md only; it shares no code with the agent, so an
encoding bug in one cannot hide behind the same bug in the other.
Pure codec functions (no I/O) come first, then Conn, a blocking socket client.

Decoders raise Incomplete when the bytes end too early and Invalid when they
can never be valid.
"""
import collections
import ipaddress
import socket
import struct
import time
from collections import namedtuple

# Frame types (docs/spop.md 1.2)
UNSET = 0
HAPROXY_HELLO = 1
HAPROXY_DISCONNECT = 2
NOTIFY = 3
AGENT_HELLO = 101
AGENT_DISCONNECT = 102
ACK = 103

FIN = 0x00000001
ABORT = 0x00000002

# Typed data (docs/spop.md 2.2): the type is the low nibble, flags the high one.
(T_NULL, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64, T_IPV4, T_IPV6, T_STRING,
 T_BINARY) = range(10)
TYPE_NAMES = ("NULL", "BOOL", "INT32", "UINT32", "INT64", "UINT64", "IPV4", "IPV6",
              "STRING", "BINARY")
BOOL_TRUE_FLAG = 0x10

# Action types and variable scopes (docs/spop.md 2.4)
SET_VAR = 1
UNSET_VAR = 2
SCOPE_PROC, SCOPE_SESS, SCOPE_TXN, SCOPE_REQ, SCOPE_RES = range(5)

# DISCONNECT status codes (docs/spop.md 3.5)
ST_NORMAL = 0
ST_IO = 1
ST_TIMEOUT = 2
ST_TOO_BIG = 3
ST_INVALID = 4
ST_NO_VERSION = 5
ST_NO_FRAME_SIZE = 6
ST_NO_CAPABILITIES = 7
ST_BAD_VERSION = 8
ST_BAD_FRAME_SIZE = 9
ST_NO_FRAGMENTATION = 10
ST_INTERLACED = 11
ST_FRAME_ID_NOT_FOUND = 12
ST_RESOURCE = 13
ST_UNKNOWN = 99

U64_MAX = (1 << 64) - 1


class Incomplete(Exception):
    """The bytes end before the item does."""


class Invalid(Exception):
    """The bytes can never form a valid item."""


# ---------------------------------------------------------------- varint (2.1)

def encode_varint(v):
    """HAProxy's varint: one byte below 240, else 0xF0|low nibble then 7-bit groups."""
    if not 0 <= v <= U64_MAX:
        raise ValueError("varint out of range: %r" % v)
    if v < 240:
        return bytes([v])
    out = bytearray([0xF0 | (v & 0x0F)])
    v = (v - 240) >> 4
    while v >= 128:
        out.append((v & 0x7F) | 0x80)
        v = (v - 128) >> 7
    out.append(v)
    return bytes(out)


def decode_varint(buf, pos=0):
    """Returns (value, next position). Values beyond 64 bits are Invalid."""
    if pos >= len(buf):
        raise Incomplete("varint: no byte at %d" % pos)
    b = buf[pos]
    pos += 1
    if b < 240:
        return b, pos
    value = b
    shift = 4
    while True:
        if pos >= len(buf):
            raise Incomplete("varint: truncated at %d" % pos)
        b = buf[pos]
        pos += 1
        value += b << shift
        if value > U64_MAX:
            raise Invalid("varint: overflows 64 bits at %d" % pos)
        shift += 7
        if b < 128:
            return value, pos


# ----------------------------------------------------------- typed data (2.2)

class Typed(namedtuple("Typed", "type value")):
    """A typed value. Python values are: None, bool, int (signed types are read as
    signed 64-bit, unsigned ones as unsigned), IPv4Address/IPv6Address, str, bytes."""

    def __repr__(self):
        return "%s(%r)" % (TYPE_NAMES[self.type], self.value)


def null():
    return Typed(T_NULL, None)


def boolean(b):
    return Typed(T_BOOL, bool(b))


def int32(v):
    return Typed(T_INT32, v)


def uint32(v):
    return Typed(T_UINT32, v)


def int64(v):
    return Typed(T_INT64, v)


def uint64(v):
    return Typed(T_UINT64, v)


def ipv4(a):
    return Typed(T_IPV4, ipaddress.IPv4Address(a))


def ipv6(a):
    return Typed(T_IPV6, ipaddress.IPv6Address(a))


def string(s):
    return Typed(T_STRING, s)


def binary(b):
    return Typed(T_BINARY, bytes(b))


def as_typed(v):
    """Plain Python value to Typed: int becomes INT64, as HAProxy sends it."""
    if isinstance(v, Typed):
        return v
    if v is None:
        return null()
    if isinstance(v, bool):
        return boolean(v)
    if isinstance(v, int):
        return int64(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (bytes, bytearray)):
        return binary(v)
    if isinstance(v, ipaddress.IPv4Address):
        return Typed(T_IPV4, v)
    if isinstance(v, ipaddress.IPv6Address):
        return Typed(T_IPV6, v)
    raise TypeError("no SPOP type for %r" % (v,))


def _raw(s):
    return s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)


def encode_bytes(s):
    """Untyped length-prefixed bytes (2.3): keys, message/argument/variable names."""
    b = _raw(s)
    return encode_varint(len(b)) + b


def decode_bytes(buf, pos):
    n, pos = decode_varint(buf, pos)
    if pos + n > len(buf):
        raise Incomplete("bytes: length %d runs past the end" % n)
    return bytes(buf[pos:pos + n]), pos + n


def encode_typed(v):
    t = as_typed(v)
    if t.type == T_NULL:
        return b"\x00"
    if t.type == T_BOOL:
        return bytes([T_BOOL | (BOOL_TRUE_FLAG if t.value else 0)])
    if t.type in (T_INT32, T_UINT32, T_INT64, T_UINT64):
        return bytes([t.type]) + encode_varint(t.value & U64_MAX)  # two's complement
    if t.type == T_IPV4:
        return bytes([T_IPV4]) + t.value.packed
    if t.type == T_IPV6:
        return bytes([T_IPV6]) + t.value.packed
    if t.type in (T_STRING, T_BINARY):
        return bytes([t.type]) + encode_bytes(t.value)
    raise ValueError("bad type %r" % (t.type,))


def _signed64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_typed(buf, pos):
    """Returns (Typed, next position)."""
    if pos >= len(buf):
        raise Incomplete("typed: no type byte")
    tb = buf[pos]
    pos += 1
    t = tb & 0x0F
    if t == T_NULL:
        return null(), pos
    if t == T_BOOL:
        return boolean(tb & BOOL_TRUE_FLAG), pos
    if t in (T_INT32, T_INT64):
        v, pos = decode_varint(buf, pos)
        return Typed(t, _signed64(v)), pos
    if t in (T_UINT32, T_UINT64):
        v, pos = decode_varint(buf, pos)
        return Typed(t, v), pos
    if t in (T_IPV4, T_IPV6):
        n = 4 if t == T_IPV4 else 16
        if pos + n > len(buf):
            raise Incomplete("typed: address truncated")
        raw = bytes(buf[pos:pos + n])
        addr = ipaddress.IPv4Address(raw) if n == 4 else ipaddress.IPv6Address(raw)
        return Typed(t, addr), pos + n
    if t in (T_STRING, T_BINARY):
        b, pos = decode_bytes(buf, pos)
        return Typed(t, b.decode("utf-8", "surrogateescape") if t == T_STRING else b), pos
    raise Invalid("typed: reserved type %d" % t)


# ---------------------------------------------------------- composites (2.4)

def encode_kv(items):
    """items: iterable of (key, value); value as for as_typed."""
    return b"".join(encode_bytes(k) + encode_typed(v) for k, v in items)


def decode_kv(payload):
    """Returns a list of (key str, Typed); the payload must be used up exactly."""
    out = []
    pos = 0
    while pos < len(payload):
        k, pos = decode_bytes(payload, pos)
        v, pos = decode_typed(payload, pos)
        out.append((k.decode("utf-8", "surrogateescape"), v))
    return out


def kv_dict(items):
    """KV list to dict; a repeated key is Invalid."""
    d = {}
    for k, v in items:
        if k in d:
            raise Invalid("duplicate key %r" % k)
        d[k] = v
    return d


def encode_messages(messages):
    """messages: iterable of (name, args); args: iterable of (arg name, value)."""
    out = bytearray()
    for name, args in messages:
        args = list(args)
        out += encode_bytes(name) + bytes([len(args)])
        for an, av in args:
            out += encode_bytes(an) + encode_typed(av)
    return bytes(out)


def decode_messages(payload):
    out = []
    pos = 0
    while pos < len(payload):
        name, pos = decode_bytes(payload, pos)
        if pos >= len(payload):
            raise Incomplete("message: no nb-args")
        nb = payload[pos]
        pos += 1
        args = []
        for _ in range(nb):
            an, pos = decode_bytes(payload, pos)
            av, pos = decode_typed(payload, pos)
            args.append((an.decode("utf-8", "surrogateescape"), av))
        out.append((name.decode("utf-8", "surrogateescape"), args))
    return out


Action = namedtuple("Action", "kind scope name value")  # value: Typed, None for unset-var


def encode_actions(actions):
    """actions: iterable of Action."""
    out = bytearray()
    for a in actions:
        if a.kind == SET_VAR:
            out += bytes([SET_VAR, 3, a.scope]) + encode_bytes(a.name) + encode_typed(a.value)
        elif a.kind == UNSET_VAR:
            out += bytes([UNSET_VAR, 2, a.scope]) + encode_bytes(a.name)
        else:
            raise ValueError("bad action kind %r" % (a.kind,))
    return bytes(out)


def decode_actions(payload):
    """Strict: unknown actions, wrong NB-ARGS and bad scopes are Invalid."""
    out = []
    pos = 0
    while pos < len(payload):
        if pos + 3 > len(payload):
            raise Incomplete("action: header truncated")
        kind, nb, scope = payload[pos], payload[pos + 1], payload[pos + 2]
        pos += 3
        if kind not in (SET_VAR, UNSET_VAR):
            raise Invalid("action: unknown type %d" % kind)
        if nb != (3 if kind == SET_VAR else 2):
            raise Invalid("action: type %d with nb-args %d" % (kind, nb))
        if scope > SCOPE_RES:
            raise Invalid("action: bad scope %d" % scope)
        name, pos = decode_bytes(payload, pos)
        value = None
        if kind == SET_VAR:
            value, pos = decode_typed(payload, pos)
        out.append(Action(kind, scope, name.decode("utf-8", "surrogateescape"), value))
    return out


# --------------------------------------------------------------- frames (1.1)

Frame = namedtuple("Frame", "type flags sid fid payload")


def encode_frame(ftype, payload=b"", flags=FIN, sid=0, fid=0):
    """A whole frame on the wire, with its 4-byte length."""
    body = bytes([ftype]) + struct.pack(">I", flags) + encode_varint(sid) + \
        encode_varint(fid) + bytes(payload)
    return struct.pack(">I", len(body)) + body


def raw_frame(body):
    """Length prefix + arbitrary bytes, for malformed frames."""
    return struct.pack(">I", len(body)) + bytes(body)


def decode_frame(body):
    """body: the FRAME-LENGTH bytes after the length prefix."""
    if len(body) < 7:
        raise Invalid("frame: %d bytes cannot hold type, flags and ids" % len(body))
    ftype = body[0]
    flags = struct.unpack(">I", body[1:5])[0]
    try:
        sid, pos = decode_varint(body, 5)
        fid, pos = decode_varint(body, pos)
    except Incomplete as e:
        raise Invalid("frame: ids run past the frame: %s" % e) from None
    return Frame(ftype, flags, sid, fid, bytes(body[pos:]))


def split_frames(buf):
    """Returns (list of (length, Frame), rest of buf). A zero length is Invalid."""
    frames = []
    pos = 0
    while len(buf) - pos >= 4:
        n = struct.unpack(">I", buf[pos:pos + 4])[0]
        if n == 0:
            raise Invalid("frame: zero length")
        if len(buf) - pos - 4 < n:
            break
        frames.append((n, decode_frame(buf[pos + 4:pos + 4 + n])))
        pos += 4 + n
    return frames, bytes(buf[pos:])


# ------------------------------------------------------------ frame builders

def hello(versions="2.0", max_frame_size=16380, capabilities="pipelining,async",
          engine_id="6b3e1f7c-2d4a-4f0e-9c1b-8a5d2e7f3c10", healthcheck=None, extra=(),
          omit=()):
    """HAPROXY-HELLO as 2.6 sends it by default. omit: keys to leave out; extra:
    more (key, value) items appended; engine_id/healthcheck None leave them out."""
    items = [("supported-versions", versions),
             ("max-frame-size", max_frame_size if isinstance(max_frame_size, Typed)
              else uint32(max_frame_size)),
             ("capabilities", capabilities)]
    if engine_id is not None:
        items.append(("engine-id", engine_id))
    if healthcheck is not None:
        items.append(("healthcheck", boolean(healthcheck)))
    items = [(k, v) for k, v in items if k not in omit] + list(extra)
    return encode_frame(HAPROXY_HELLO, encode_kv(items))


def healthcheck_hello():
    """The exact `option spop-check` HELLO of docs/spop.md 3.1."""
    return encode_frame(HAPROXY_HELLO, encode_kv([
        ("supported-versions", "2.0"), ("max-frame-size", uint32(16380)),
        ("capabilities", ""), ("healthcheck", True)]))


def notify(sid, fid, messages, flags=FIN):
    return encode_frame(NOTIFY, encode_messages(messages), flags=flags, sid=sid, fid=fid)


def cutover_message(method, path, host="shop.test"):
    """The `cutover` message with every argument haproxy/cutover.spoe sends
    (docs/contracts.md); None sends NULL."""
    return ("cutover", [("method", method), ("path", path), ("host", host)])


def disconnect(status=0, message="normal", ftype=HAPROXY_DISCONNECT):
    return encode_frame(ftype, encode_kv([("status-code", uint32(status)),
                                          ("message", message)]))


def agent_hello(version="2.0", max_frame_size=16380, capabilities="pipelining"):
    """AGENT-HELLO, for tests that play the agent."""
    return encode_frame(AGENT_HELLO, encode_kv([("version", version),
                                                ("max-frame-size", uint32(max_frame_size)),
                                                ("capabilities", capabilities)]))


def ack(sid, fid, actions):
    return encode_frame(ACK, encode_actions(actions), sid=sid, fid=fid)


def parse_ack(frame):
    """ACK frame to {(scope, name): value}; value is the Typed of set-var, None for
    unset-var. A variable set twice is Invalid."""
    if frame.type != ACK:
        raise Invalid("not an ACK: type %d" % frame.type)
    out = {}
    for a in decode_actions(frame.payload):
        key = (a.scope, a.name)
        if key in out:
            raise Invalid("ACK sets %r twice" % (key,))
        out[key] = a.value
    return out


def disconnect_status(frame):
    """status-code of a DISCONNECT frame, None when it has none."""
    v = dict(decode_kv(frame.payload)).get("status-code")
    return None if v is None else v.value


# --------------------------------------------------------------------- client

class Closed(Exception):
    """The peer closed the connection."""


class Disconnected(Closed):
    """The agent sent AGENT-DISCONNECT; .status is its status-code (None if absent)."""

    def __init__(self, status, message):
        super().__init__("AGENT-DISCONNECT status %r: %r" % (status, message))
        self.status = status


class Conn:
    """One blocking TCP connection to the agent. Every read is bounded by timeout."""

    def __init__(self, host, port, timeout=5.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.frames = collections.deque()  # decoded, not yet returned

    def close(self):
        self.sock.close()

    def abort(self):
        """Close with a RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_bytewise(self, data, pause=0.0005):
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            time.sleep(pause)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete frame within %.1fs" % self.timeout)
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise Closed("closed by peer with %d bytes pending" % len(self.buf))
        self.buf += data

    def recv_frame(self, timeout=None):
        """Next frame as (length, Frame)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.frames:
            frames, self.buf = split_frames(self.buf)
            self.frames.extend(frames)
            if not self.frames:
                self._fill(deadline)
        return self.frames.popleft()

    def read_disconnect(self, timeout=None):
        """Reads until the peer closes, skipping other frames; returns the
        status-code of the AGENT-DISCONNECT it sent, None when it closed
        without one or sent bytes that are not frames. socket.timeout when
        it neither closes nor disconnects in time."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                _, f = self.recv_frame(max(deadline - time.monotonic(), 0.001))
            except (Closed, Invalid):
                return None
            if f.type == AGENT_DISCONNECT:
                return disconnect_status(f)

    def expect_eof(self, timeout=None):
        """Waits for the peer to close; returns whatever arrived before it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        extra = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("connection still open after %.1fs"
                                     % (timeout or self.timeout))
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return extra
            if not data:
                return extra
            extra += data


SCOPE_NAMES = ("proc", "sess", "txn", "req", "res")


class Session:
    """A connection past HELLO, as HAProxy opens it, for suites that only need
    routing decisions (reload, faults). Raises AssertionError on anything else."""

    def __init__(self, host, port, timeout=3.0, full_args=False):
        """full_args: every NOTIFY carries all the args HAProxy sends
        (cutover_message), not only method and path."""
        self.conn = Conn(host, port, timeout)
        self.full_args = full_args
        self.next_sid = 1
        self.conn.send(hello(capabilities="pipelining"))
        _, f = self.conn.recv_frame()
        if f.type != AGENT_HELLO:
            raise AssertionError("expected AGENT-HELLO, got frame type %d" % f.type)
        kv = kv_dict(decode_kv(f.payload))
        if kv.get("version") != string("2.0"):
            raise AssertionError("AGENT-HELLO without version 2.0: %r" % kv)

    def decide(self, method, path, extra=()):
        """NOTIFY of message `cutover` {method, path} and the (name, value)
        arguments extra (e.g. ("client", "acme")); returns the ACK's variables
        as {"txn.phase": 3, "txn.backend": "old_query", ...}.
        Raises Disconnected when the agent answers with AGENT-DISCONNECT."""
        sid, self.next_sid = self.next_sid, self.next_sid + 1
        if self.full_args:
            message = cutover_message(method, path)
        else:
            message = ("cutover", [("method", string(method)), ("path", string(path))])
        message[1].extend(list(extra))
        self.conn.send(notify(sid, 1, [message]))
        _, f = self.conn.recv_frame()
        if f.type == AGENT_DISCONNECT:
            raise Disconnected(disconnect_status(f), dict(decode_kv(f.payload)).get("message"))
        if f.type != ACK or (f.sid, f.fid) != (sid, 1):
            raise AssertionError("expected ACK %d/1, got type %d %d/%d"
                                 % (sid, f.type, f.sid, f.fid))
        return {"%s.%s" % (SCOPE_NAMES[scope], name): None if v is None else v.value
                for (scope, name), v in parse_ack(f).items()}

    def close(self, graceful=False):
        """graceful: say HAPROXY-DISCONNECT first, as HAProxy does."""
        if graceful:
            try:
                self.conn.send(disconnect())
            except OSError:
                pass
        self.conn.close()


def decide_once(host, port, method, path):
    s = Session(host, port)
    try:
        return s.decide(method, path)
    finally:
        s.close()
