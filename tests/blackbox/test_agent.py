# SPDX-License-Identifier: Apache-2.0
"""Black-box tests of cutover-spoa: the real binary, real sockets, an independent client.

A pytest suite (`/usr/bin/python3 -m pytest tests/blackbox`). The selftest_*
cases check spop_client against every byte example of docs/spop.md; the others start
the agent (the `agent` fixture of conftest.py) on conf/cutover.yaml, copied with
its `phase:` line set, and speak SPOP to it. Expected routing comes from the table of
docs/contracts.md, never from the agent. After every bad-input case the agent must still
be alive and serve a fresh connection; at stop, any sanitizer report fails the case.
"""
import contextlib
import ipaddress
import re
import select
import signal
import socket
import subprocess
import threading
import time

import harness
import spop_client as spop

T = 15.0 if harness.sanitized() else 5.0  # bound of every read, never an assertion
VAR_NAME = re.compile(r"^[A-Za-z0-9._]+$")
BACKENDS = {"old_query", "old_command", "new_query", "new_command"}
ANY_BACKEND = "*"  # for unrouted requests: absent, or the plan's default backend


def h(s):
    return bytes.fromhex(s)


# ------------------------------------------------------------------ agent side

def connect(a, timeout=T):
    return spop.Conn(a.host, a.port, timeout)


def check_meta(n, f, ftype, sid=0, fid=0):
    assert f.type == ftype, "frame type %d, expected %d (%r)" % (f.type, ftype, f)
    assert f.flags == spop.FIN, "flags %#010x, expected exactly FIN" % f.flags
    assert (f.sid, f.fid) == (sid, fid), "ids %d/%d, expected %d/%d" % (f.sid, f.fid, sid, fid)
    assert n > 0


def expect_agent_hello(c):
    """Reads and validates an AGENT-HELLO; returns its KV dict."""
    n, f = c.recv_frame()
    if f.type == spop.AGENT_DISCONNECT:
        raise AssertionError("AGENT-DISCONNECT instead of AGENT-HELLO: %r"
                             % spop.decode_kv(f.payload))
    check_meta(n, f, spop.AGENT_HELLO)
    kv = spop.kv_dict(spop.decode_kv(f.payload))
    assert kv.get("version") == spop.string("2.0"), "version: %r" % (kv,)
    mfs = kv.get("max-frame-size")
    assert mfs is not None and mfs.type in (spop.T_INT32, spop.T_UINT32, spop.T_INT64,
                                            spop.T_UINT64), "max-frame-size: %r" % (kv,)
    caps = kv.get("capabilities")
    assert caps is not None and caps.type == spop.T_STRING, "capabilities: %r" % (kv,)
    names = [x.strip() for x in caps.value.split(",") if x.strip()]
    assert "async" not in names and "fragmentation" not in names, "capabilities %r" % caps
    assert n <= mfs.value, "AGENT-HELLO of %d bytes exceeds its own max %d" % (n, mfs.value)
    return kv


def handshake(c, proposed=16380, capabilities="pipelining,async", **kw):
    """HELLO; returns the negotiated max-frame-size."""
    c.send(spop.hello(max_frame_size=proposed, capabilities=capabilities, **kw))
    kv = expect_agent_hello(c)
    mfs = kv["max-frame-size"].value
    assert 256 <= mfs <= proposed, "max-frame-size %d for a proposal of %d" % (mfs, proposed)
    offered = [x.strip() for x in capabilities.split(",")]
    want = "pipelining" if "pipelining" in offered else ""
    assert kv["capabilities"].value == want, \
        "capabilities %r for an offer of %r" % (kv["capabilities"].value, capabilities)
    return mfs


def expect_disconnect(c, statuses):
    """The next frame is AGENT-DISCONNECT with a status in statuses, then EOF."""
    try:
        n, f = c.recv_frame()
    except spop.Closed:
        raise AssertionError("closed without AGENT-DISCONNECT (wanted status %s)"
                             % (statuses,)) from None
    check_meta(n, f, spop.AGENT_DISCONNECT)
    kv = spop.kv_dict(spop.decode_kv(f.payload))
    st = kv.get("status-code")
    assert st is not None and st.type in (spop.T_UINT32, spop.T_INT32, spop.T_UINT64,
                                          spop.T_INT64), "status-code: %r" % (kv,)
    msg = kv.get("message")
    assert msg is not None and msg.type == spop.T_STRING, "message: %r" % (kv,)
    assert len(msg.value.encode("utf-8", "surrogateescape")) <= 255, "message over 255 bytes"
    assert st.value in statuses, "AGENT-DISCONNECT status %d (%r), expected %s" \
        % (st.value, msg.value, statuses)
    assert not c.frames, "frames after AGENT-DISCONNECT: %r" % (c.frames,)
    extra = c.expect_eof()
    assert not extra, "bytes after AGENT-DISCONNECT: %r" % extra[:64]
    return st.value


MISSING = object()


def request(method="GET", path="/query/api/squids/42", host="shop.example",
            src=MISSING, client=MISSING, id=MISSING, name="cutover"):
    """The message haproxy/cutover.spoe sends (method, path, host); MISSING
    leaves an argument out, None sends NULL. src, client and id are
    arguments HAProxy could send too, which the agent must ignore."""
    args = [("method", method), ("path", path), ("host", host), ("src", src),
            ("client", client), ("id", id)]
    return (name, [(k, v) for k, v in args if v is not MISSING])


def exchange(c, sid, fid, messages):
    """NOTIFY then its ACK; returns the ACK's variables."""
    c.send(spop.notify(sid, fid, messages))
    n, f = c.recv_frame()
    check_meta(n, f, spop.ACK, sid, fid)
    return spop.parse_ack(f)


def txn(v):
    return {name: val for (scope, name), val in v.items() if scope == spop.SCOPE_TXN}


def check_names(v):
    for (scope, name) in v:
        assert VAR_NAME.match(name), "variable name %r" % name
        full = "%s.cutover.%s" % (("proc", "sess", "txn", "req", "res")[scope], name)
        assert len(full) <= 63, "variable %s too long for HAProxy" % full


def check_decision(v, phase, backend=None, path=None, routed=None, status=None,
                   deprecated=False, link=None):
    """v: ACK variables. routed: True/False to check txn.route, None to leave it.
    backend ANY_BACKEND: absent or one of the plan's backends."""
    check_names(v)
    t = txn(v)
    assert t.get("phase") == spop.int64(phase), "txn.phase %r, expected %d (%r)" % (
        t.get("phase"), phase, v)
    proc = {k: x for k, x in v.items() if k[0] == spop.SCOPE_PROC}
    assert not proc, "process-wide variables set: %r" % proc
    if backend == ANY_BACKEND:
        b = t.get("backend")
        assert b is None or (b.type == spop.T_STRING and b.value in BACKENDS), \
            "txn.backend %r is none of the plan's backends" % (b,)
    want = {"backend": backend and spop.string(backend), "path": path and spop.string(path),
            "status": status and spop.int64(status), "link": link and spop.string(link)}
    if backend == ANY_BACKEND:
        del want["backend"]
    for k, w in want.items():
        assert t.get(k) == w, "txn.%s %r, expected %r (all: %r)" % (k, t.get(k), w, t)
    if deprecated:
        assert t.get("deprecated") == spop.boolean(True), "txn.deprecated %r" % (t,)
    else:
        assert "deprecated" not in t, "txn.deprecated set: %r" % (t,)
    if routed is True:
        r = t.get("route")
        assert r is not None and r.type == spop.T_STRING and r.value, "txn.route %r" % (t,)
    elif routed is False:
        assert "route" not in t, "txn.route set on an unrouted request: %r" % (t,)


def assert_serves(a):
    """The agent is alive and a fresh connection completes HELLO + NOTIFY + ACK."""
    assert a.alive(), "agent died (exit %s); log tail:\n%s" % (a.proc.poll(), a.log()[-3000:])
    with connect(a) as c:
        handshake(c)
        v = exchange(c, 1, 1, [request()])
        check_decision(v, 1, backend="old_query", routed=True)


def assert_serves_phase(a, phase):
    assert a.alive(), "agent died (exit %s); log tail:\n%s" % (a.proc.poll(), a.log()[-3000:])
    with connect(a) as c:
        handshake(c)
        v = exchange(c, 1, 1, [request("GET", "/health")])
        check_decision(v, phase, routed=False, backend=ANY_BACKEND)


def expect_bad(a, data, statuses, hello_first=True, proposed=16380):
    """On a fresh connection (after a HELLO when hello_first), data must get
    AGENT-DISCONNECT with one of statuses and a close; then the agent still serves."""
    with connect(a) as c:
        if hello_first:
            handshake(c, proposed=proposed)
        c.send(data)
        expect_disconnect(c, statuses)
    assert_serves(a)


def notify_of_size(size, sid=1, fid=1):
    """A valid cutover NOTIFY whose FRAME-LENGTH is exactly size (padding in an
    unknown argument, which the agent ignores)."""
    for pad in range(size, -1, -1):
        name, args = request()
        frame = spop.notify(sid, fid, [(name, args + [("pad", "x" * pad)])])
        if len(frame) - 4 == size:
            return frame
    raise AssertionError("cannot build a NOTIFY of %d bytes" % size)


# --------------------------------------------------- client self-tests (docs/spop.md)

VARINTS = [(0, "00"), (1, "01"), (127, "7F"), (128, "80"), (239, "EF"), (240, "F0 00"),
           (255, "FF 00"), (256, "F0 01"), (300, "FC 03"), (2287, "FF 7F"),
           (2288, "F0 80 00"), (4660, "F4 94 01"), (16380, "FC F0 06"), (65535, "FF F0 1E"),
           (264431, "FF FF 7F"), (264432, "F0 80 80 00"), (33818863, "FF FF FF 7F"),
           (33818864, "F0 80 80 80 00"), (4294967295, "FF F0 FE FE 7E"),
           (2**64 - 1, "FF F0 FE FE FE FE FE FE FE 0E")]


def test_selftest_varint_table():
    for v, hx in VARINTS:
        b = h(hx)
        assert spop.encode_varint(v) == b, "encode %d: %s" % (v, spop.encode_varint(v).hex())
        assert spop.decode_varint(b + b"\x99") == (v, len(b)), "decode %s" % hx
        for cut in range(len(b)):
            with_raises(spop.Incomplete, spop.decode_varint, b[:cut])
    # Range boundaries of docs/spop.md 2.1: lengths 1..5 bytes.
    for top, nbytes in ((239, 1), (2287, 2), (264431, 3), (33818863, 4), (4328786159, 5)):
        assert len(spop.encode_varint(top)) == nbytes
        assert len(spop.encode_varint(top + 1)) == nbytes + 1
    for v in list(range(0, 70000, 7)) + [2**k + d for k in range(8, 64) for d in (-1, 0, 1)]:
        if v <= spop.U64_MAX:
            assert spop.decode_varint(spop.encode_varint(v)) == (v, len(spop.encode_varint(v)))
    with_raises(spop.Invalid, spop.decode_varint, h("FF" + "FF" * 10 + "7F"))


def with_raises(exc, fn, *args):
    try:
        fn(*args)
    except exc:
        return
    raise AssertionError("%s%r did not raise %s" % (fn.__name__, args, exc.__name__))


def test_selftest_typed_data():
    cases = [(spop.null(), "00"), (spop.boolean(False), "01"), (spop.boolean(True), "11"),
             (spop.string(""), "08 00"), (spop.int64(-1), "04 FF F0 FE FE FE FE FE FE FE 0E"),
             (spop.int32(4294967295), "02 FF F0 FE FE 7E"), (spop.uint32(16380), "03 FC F0 06"),
             (spop.ipv4("192.0.2.10"), "06 C0 00 02 0A"),
             (spop.ipv6("::1"), "07" + "00" * 15 + "01"),
             (spop.binary(b"a\x00b"), "09 03 61 00 62"), (spop.string("GET"), "08 03 47 45 54")]
    for t, hx in cases:
        b = h(hx)
        assert spop.encode_typed(t) == b, "%r: %s" % (t, spop.encode_typed(t).hex())
        assert spop.decode_typed(b, 0) == (t, len(b)), "decode %s" % hx
    assert spop.decode_typed(h("11"), 0)[0] == spop.boolean(True)
    assert spop.decode_typed(h("F8 00"), 0)[0] == spop.string("")  # flags are ignored
    for t in range(10, 16):
        with_raises(spop.Invalid, spop.decode_typed, bytes([t]), 0)
    with_raises(spop.Incomplete, spop.decode_typed, h("08 05 61 62"), 0)
    with_raises(spop.Incomplete, spop.decode_typed, h("06 C0 00"), 0)


SPOP_CHECK_HELLO = h(
    "00 00 00 4e 01 00 00 00 01 00 00 12 73 75 70 70"
    "6f 72 74 65 64 2d 76 65 72 73 69 6f 6e 73 08 03"
    "32 2e 30 0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69"
    "7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74"
    "69 65 73 08 00 0b 68 65 61 6c 74 68 63 68 65 63"
    "6b 11")


def test_selftest_spop_check_hello():
    assert len(SPOP_CHECK_HELLO) == 82
    assert spop.healthcheck_hello() == SPOP_CHECK_HELLO
    (n, f), = spop.split_frames(SPOP_CHECK_HELLO)[0]
    assert n == 78 and f.type == spop.HAPROXY_HELLO and f.flags == spop.FIN
    assert spop.decode_kv(f.payload) == [
        ("supported-versions", spop.string("2.0")), ("max-frame-size", spop.uint32(16380)),
        ("capabilities", spop.string("")), ("healthcheck", spop.boolean(True))]


def test_selftest_agent_hello_example():
    wire = h("00 00 00 40 65 00 00 00 01 00 00 07 76 65 72 73 69 6f 6e 08 03 32 2e 30"
             "0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69 7a 65 03 fc f0 06"
             "0c 63 61 70 61 62 69 6c 69 74 69 65 73 08 0a 70 69 70 65 6c 69 6e 69 6e 67")
    assert len(wire) == 68
    items = [("version", "2.0"), ("max-frame-size", spop.uint32(16380)),
             ("capabilities", "pipelining")]
    assert spop.encode_frame(spop.AGENT_HELLO, spop.encode_kv(items)) == wire
    frames, rest = spop.split_frames(wire)
    assert rest == b"" and frames[0][1].type == spop.AGENT_HELLO
    assert spop.kv_dict(spop.decode_kv(frames[0][1].payload)) == {
        "version": spop.string("2.0"), "max-frame-size": spop.uint32(16380),
        "capabilities": spop.string("pipelining")}


NOTIFY_EXAMPLE = h("00 00 00 2e 03 00 00 00 01 05 01"
                   "05 72 6f 75 74 65 03"
                   "06 6d 65 74 68 6f 64 08 03 47 45 54"
                   "04 70 61 74 68 08 04 2f 66 6f 6f"
                   "03 73 72 63 06 c0 00 02 0a")


def test_selftest_notify_example():
    msgs = [("route", [("method", "GET"), ("path", "/foo"), ("src", spop.ipv4("192.0.2.10"))])]
    assert spop.notify(5, 1, msgs) == NOTIFY_EXAMPLE
    (n, f), = spop.split_frames(NOTIFY_EXAMPLE)[0]
    assert (n, f.type, f.flags, f.sid, f.fid) == (46, spop.NOTIFY, spop.FIN, 5, 1)
    assert spop.decode_messages(f.payload) == [
        ("route", [("method", spop.string("GET")), ("path", spop.string("/foo")),
                   ("src", spop.ipv4("192.0.2.10"))])]
    for cut in range(4, len(NOTIFY_EXAMPLE)):  # every truncation is incomplete
        assert spop.split_frames(NOTIFY_EXAMPLE[:cut]) == ([], NOTIFY_EXAMPLE[:cut])


def test_selftest_ack_example():
    wire = h("00 00 00 28 67 00 00 00 01 05 01"
             "01 03 02 07 62 61 63 6b 65 6e 64 08 06 62 65 5f 61 70 70"
             "01 03 02 04 70 61 74 68 08 04 2f 62 61 72")
    acts = [spop.Action(spop.SET_VAR, spop.SCOPE_TXN, "backend", spop.string("be_app")),
            spop.Action(spop.SET_VAR, spop.SCOPE_TXN, "path", spop.string("/bar"))]
    assert spop.ack(5, 1, acts) == wire
    (n, f), = spop.split_frames(wire)[0]
    assert (n, f.sid, f.fid) == (40, 5, 1)
    assert spop.parse_ack(f) == {(2, "backend"): spop.string("be_app"),
                                 (2, "path"): spop.string("/bar")}
    empty = h("00 00 00 07 67 00 00 00 01 05 01")
    assert spop.ack(5, 1, []) == empty
    assert spop.parse_ack(spop.split_frames(empty)[0][0][1]) == {}
    # docs/spop.md 6.2: `01 03 02 "backend" 08 "app"` and `01 03 02 "path" 08 "/v2/foo"`.
    assert spop.encode_actions(
        [spop.Action(spop.SET_VAR, spop.SCOPE_TXN, "backend", spop.string("app"))]) == \
        h("01 03 02 07") + b"backend" + h("08 03") + b"app"
    # Unset-var: 02 02 SCOPE NAME; a set twice is rejected; unknown actions too.
    assert spop.decode_actions(h("02 02 00 01 78")) == [
        spop.Action(spop.UNSET_VAR, spop.SCOPE_PROC, "x", None)]
    twice = spop.Frame(spop.ACK, 1, 1, 1, h("01 03 02 01 78 00 01 03 02 01 78 00"))
    with_raises(spop.Invalid, spop.parse_ack, twice)
    with_raises(spop.Invalid, spop.decode_actions, h("07 03 02 01 78 00"))
    with_raises(spop.Invalid, spop.decode_actions, h("01 02 02 01 78 00"))


def test_selftest_disconnect_example():
    wire = h("00 00 00 25 66 00 00 00 01 00 00 0b 73 74 61 74 75 73 2d 63 6f 64 65 03 00"
             "07 6d 65 73 73 61 67 65 08 06 6e 6f 72 6d 61 6c")
    assert spop.disconnect(0, "normal", spop.AGENT_DISCONNECT) == wire
    (n, f), = spop.split_frames(wire)[0]
    assert n == 37 and f.type == spop.AGENT_DISCONNECT
    assert spop.kv_dict(spop.decode_kv(f.payload)) == {
        "status-code": spop.uint32(0), "message": spop.string("normal")}
    with_raises(spop.Invalid, spop.split_frames, h("00 00 00 00"))
    with_raises(spop.Invalid, spop.split_frames, h("00 00 00 03 66 00 00"))


# ------------------------------------------------------------------- handshake

def test_handshake_capabilities(agent):
    offers = ["pipelining,async", "pipelining", "async,pipelining", "", "async",
              "async,fragmentation", "fragmentation,pipelining,async", "pipe",
              "pipeliningx"]
    with agent() as a:
        for offer in offers:
            with connect(a) as c:
                handshake(c, capabilities=offer)
                check_decision(exchange(c, 3, 1, [request()]), 1, backend="old_query",
                               routed=True)
        assert_serves(a)


def test_handshake_hello_as_31_sends_it(agent):
    # 3.1+: capabilities "pipelining", no engine-id in health checks, one engine-id otherwise.
    with agent() as a, connect(a) as c:
        handshake(c, capabilities="pipelining", engine_id=None)
        check_decision(exchange(c, 1, 1, [request()]), 1, backend="old_query", routed=True)


def test_handshake_keys_compared_exactly(agent):
    """Unknown keys of every type are skipped; keys that are prefixes of known ones
    (or extend them) must not be taken for them."""
    extra = [("max-frame", spop.uint32(300)), ("capa", "pipelining"),
             ("capabilities-x", "pipelining"), ("version", "1.0"),
             ("supported-versions-x", "9.9"), ("k-null", None), ("k-bool", True),
             ("k-int32", spop.int32(-1)), ("k-uint64", spop.uint64(spop.U64_MAX)),
             ("k-ipv4", spop.ipv4("10.0.0.1")), ("k-ipv6", spop.ipv6("2001:db8::1")),
             ("k-bin", spop.binary(b"\x00\x01\x02" * 100)), ("", "empty key")]
    with agent() as a:
        with connect(a) as c:
            big = handshake(c, proposed=65535)
        with connect(a) as c:
            mfs = handshake(c, proposed=16380, capabilities="", extra=extra)
            assert mfs == min(big, 16380), "max-frame-size %d: took a prefix key?" % mfs
            check_decision(exchange(c, 9, 2, [request()]), 1, backend="old_query", routed=True)
        assert_serves(a)


def test_handshake_version_lists(agent):
    with agent() as a:
        for versions in ("2.0", "1.0,2.0", "2.0, 3.0", " 2.0 ", "1.0 , 2.0"):
            with connect(a) as c:
                handshake(c, versions=versions)
                check_decision(exchange(c, 1, 1, [request()]), 1, backend="old_query",
                               routed=True)


def test_handshake_then_notify_in_one_write(agent):
    with agent() as a, connect(a) as c:
        c.send(spop.hello() + spop.notify(7, 1, [request()]))
        expect_agent_hello(c)
        n, f = c.recv_frame()
        check_meta(n, f, spop.ACK, 7, 1)
        check_decision(spop.parse_ack(f), 1, backend="old_query", routed=True)


def test_healthcheck_hello_replied_then_closed(agent):
    with agent() as a:
        with connect(a) as c:
            c.send(SPOP_CHECK_HELLO)
            kv = expect_agent_hello(c)
            assert kv["capabilities"] == spop.string(""), kv
            assert 256 <= kv["max-frame-size"].value <= 16380, kv
            assert not c.frames
            extra = c.expect_eof()
            assert not extra, "bytes after the health-check AGENT-HELLO: %r" % extra
        assert_serves(a)


def test_healthcheck_false_is_a_normal_connection(agent):
    with agent() as a, connect(a) as c:
        handshake(c, healthcheck=False)
        check_decision(exchange(c, 1, 1, [request()]), 1, backend="old_query", routed=True)


def test_frame_size_negotiation(agent):
    with agent() as a:
        answers = {}
        for proposed in (4294967295, 65535, 16380, 1000, 256, 257):
            with connect(a) as c:
                answers[proposed] = handshake(c, proposed=proposed)
                check_decision(exchange(c, 1, 1, [request()]), 1, backend="old_query",
                               routed=True)
        own = answers[4294967295]  # the agent's own limit
        for proposed, got in answers.items():
            assert got == min(own, proposed), \
                "proposed %d, got %d, agent's limit %d" % (proposed, got, own)
        assert answers[256] == 256
        assert_serves(a)


def test_frame_size_below_256_rejected(agent):
    with agent() as a:
        for proposed in (255, 100, 0):
            with connect(a) as c:
                c.send(spop.hello(max_frame_size=proposed))
                expect_disconnect(c, {spop.ST_BAD_FRAME_SIZE})
            assert_serves(a)


def test_hello_missing_max_frame_size(agent):
    with agent() as a:
        with connect(a) as c:
            c.send(spop.hello(omit=("max-frame-size",)))
            expect_disconnect(c, {spop.ST_NO_FRAME_SIZE})
        assert_serves(a)


def test_hello_missing_version(agent):
    with agent() as a:
        with connect(a) as c:
            c.send(spop.hello(omit=("supported-versions",)))
            expect_disconnect(c, {spop.ST_NO_VERSION})
        assert_serves(a)


def test_hello_bad_version(agent):
    with agent() as a:
        for versions in ("1.0", "3.0", "2.1", "1.0,3.0"):
            with connect(a) as c:
                c.send(spop.hello(versions=versions))
                expect_disconnect(c, {spop.ST_BAD_VERSION})
            assert_serves(a)


# ------------------------------------------------------------------- bad input

def test_oversized_frame(agent):
    with agent() as a:
        with connect(a) as c:
            mfs = handshake(c, proposed=1000)
            c.send(notify_of_size(mfs, sid=11, fid=1))  # exactly the limit: fine
            n, f = c.recv_frame()
            check_meta(n, f, spop.ACK, 11, 1)
            check_decision(spop.parse_ack(f), 1, backend="old_query", routed=True)
            c.send(notify_of_size(mfs + 1, sid=13, fid=1))
            expect_disconnect(c, {spop.ST_TOO_BIG})
        assert_serves(a)
        # A length far over any limit, announced by its 4 bytes alone.
        expect_bad(a, h("7F FF FF FF"), {spop.ST_TOO_BIG})
        expect_bad(a, h("7F FF FF FF"), {spop.ST_TOO_BIG}, hello_first=False)
        expect_bad(a, h("01 00 00 00") + b"\x01" * 64, {spop.ST_TOO_BIG}, hello_first=False)


def test_zero_length_frame(agent):
    with agent() as a:
        expect_bad(a, h("00 00 00 00"), {spop.ST_TOO_BIG, spop.ST_INVALID}, hello_first=False)
        expect_bad(a, h("00 00 00 00"), {spop.ST_TOO_BIG, spop.ST_INVALID})


def test_short_frame_header(agent):
    with agent() as a:
        for body in ("03", "03 00 00 00", "03 00 00 00 01", "03 00 00 00 01 05",
                     "03 00 00 00 01 F0", "03 00 00 00 01 05 F0 80",
                     "03 00 00 00 01 F0" + " 80" * 10 + " 00 01",  # stream-id > 64 bits
                     "03 00 00 00 01 05 FF" + " FF" * 10 + " 7F"):  # frame-id > 64 bits
            expect_bad(a, spop.raw_frame(h(body)), {spop.ST_INVALID})
        expect_bad(a, spop.raw_frame(h("01 00 00 00 01 00")), {spop.ST_INVALID},
                   hello_first=False)


def hello_body(items_bytes):
    return spop.raw_frame(h("01 00 00 00 01 00 00") + items_bytes)


def good_hello_items():
    return spop.encode_kv([("supported-versions", "2.0"), ("max-frame-size", spop.uint32(16380)),
                           ("capabilities", "pipelining")])


def test_bad_kv_item_in_hello(agent):
    bad = [spop.encode_bytes("k") + bytes([t]) + b"\x00" * 4 for t in range(10, 16)]
    bad += [spop.encode_bytes("k") + bytes([0xF0 | t]) for t in range(10, 16)]
    bad += [
        spop.encode_bytes("max-frame-size") + h("03 FC"),          # truncated varint
        spop.encode_bytes("max-frame-size") + h("03 FF FF FF"),    # truncated varint
        spop.encode_bytes("max-frame-size") + h("03") + h("F0" + "80" * 10 + "00"),  # > 64 bits
        spop.encode_bytes("engine-id") + h("08 32") + b"abc",      # string past the end
        spop.encode_bytes("engine-id") + h("09 FF 7F") + b"\x00",  # binary past the end
        spop.encode_bytes("k") + h("06 7F 00"),                    # IPv4 truncated
        spop.encode_bytes("k") + h("07") + b"\x00" * 15,           # IPv6 truncated
        h("20") + b"abc",                                          # key past the end
        h("F0") ,                                                  # key length truncated
        spop.encode_bytes("dangling-key"),                         # key without a value
    ]
    with agent() as a:
        for item in bad:
            with connect(a) as c:
                c.send(hello_body(good_hello_items() + item))
                expect_disconnect(c, {spop.ST_INVALID})
            assert_serves(a)


def test_bad_item_in_notify(agent):
    name, args = request()
    good_args = b"".join(spop.encode_bytes(k) + spop.encode_typed(v) for k, v in args)
    head = spop.encode_bytes(name)
    bad = [head + bytes([len(args) + 1]) + good_args + spop.encode_bytes("x") + bytes([t])
           for t in range(10, 16)]
    bad += [
        head + bytes([len(args) + 1]) + good_args,                        # nb-args too high
        head + bytes([len(args)]) + good_args[:-2],                        # value cut short
        head + bytes([1]) + spop.encode_bytes("path") + h("08 40") + b"/q",  # string past end
        head + bytes([1]) + spop.encode_bytes("path") + h("08 F5"),        # truncated varint
        head + bytes([1]) + spop.encode_bytes("src") + h("06 7F"),          # IPv4 truncated
        head + bytes([1]) + h("30") + b"pa",                               # arg name past end
        head,                                                             # no nb-args
        h("40") + b"cutover",                                             # name past end
    ]
    with agent() as a:
        for payload in bad:
            expect_bad(a, spop.encode_frame(spop.NOTIFY, payload, sid=1, fid=1),
                       {spop.ST_INVALID})


def test_valid_then_malformed_in_one_write(agent):
    """The NOTIFY before the bad frame may be ACKed; then AGENT-DISCONNECT 4."""
    with agent() as a:
        with connect(a) as c:
            handshake(c)
            c.send(spop.notify(1, 1, [request()]) +
                   spop.encode_frame(spop.NOTIFY, h("40") + b"cutover", sid=2, fid=1))
            n, f = c.recv_frame()
            if f.type == spop.ACK:
                check_meta(n, f, spop.ACK, 1, 1)
                check_decision(spop.parse_ack(f), 1, backend="old_query", routed=True)
            else:
                c.frames.appendleft((n, f))
            expect_disconnect(c, {spop.ST_INVALID})
        assert_serves(a)


def test_notify_before_hello(agent):
    with agent() as a:
        expect_bad(a, spop.notify(1, 1, [request()]), {spop.ST_INVALID}, hello_first=False)
        expect_bad(a, spop.encode_frame(50, b"", sid=1, fid=1), {spop.ST_INVALID},
                   hello_first=False)
        expect_bad(a, spop.ack(1, 1, []), {spop.ST_INVALID}, hello_first=False)


def test_unknown_frame_type_ignored(agent):
    with agent() as a:
        with connect(a) as c:
            handshake(c)
            c.send(spop.encode_frame(50, b"\x01\x02\x03", sid=1, fid=1) +
                   spop.encode_frame(200, b"", sid=3, fid=1) +
                   spop.notify(5, 1, [request()]))
            n, f = c.recv_frame()
            check_meta(n, f, spop.ACK, 5, 1)
            check_decision(spop.parse_ack(f), 1, backend="old_query", routed=True)
            c.send(spop.encode_frame(99, b"junk" * 10, sid=7, fid=1))
            check_decision(exchange(c, 9, 1, [request()]), 1, backend="old_query", routed=True)
        assert_serves(a)


def test_fragmented_frame_rejected(agent):
    with agent() as a:
        expect_bad(a, spop.notify(1, 1, [request()], flags=0), {spop.ST_NO_FRAGMENTATION})
        expect_bad(a, spop.notify(1, 1, [request()], flags=spop.ABORT),
                   {spop.ST_NO_FRAGMENTATION})


def test_abrupt_close_mid_frame(agent):
    note = spop.notify(1, 1, [request()])
    hello = spop.hello()
    with agent() as a:
        for cut in (2, 4, 10, len(hello) - 1):
            c = connect(a)
            c.send(hello[:cut])
            c.close()
        for cut in (2, 4, 9, len(note) - 1):
            for rst in (False, True):
                c = connect(a)
                handshake(c)
                c.send(note[:cut])
                c.abort() if rst else c.close()
        # Closed while ACKs are still to be written: the agent must survive EPIPE.
        for rst in (False, True):
            c = connect(a)
            handshake(c)
            c.send(b"".join(spop.notify(i, 1, [request()]) for i in range(200)))
            c.abort() if rst else c.close()
        assert_serves(a)


# ------------------------------------------------------------------ pipelining

REQUESTS = [  # (method, path, expected decision in phase 1, from docs/contracts.md)
    ("GET", "/query/api/squids/42", dict(backend="old_query", routed=True)),
    ("PUT", "/command/api/squids/42", dict(backend="old_command", routed=True)),
    ("GET", "/query/api/seafoods/7", dict(status=404)),
    ("GET", "/health", dict(routed=False, backend=ANY_BACKEND)),
]


def test_pipelined_50_notifies_one_write(agent):
    ids = [(0, 1), (1, 1), (2**32 - 1, 1), (2**40, 1), (1, 2**32 - 1), (2**40 + 1, 2**40),
           (2**64 - 1, 2**64 - 1), (239, 240), (240, 239), (2287, 2288)]
    ids += [(1000 + i, 1 + i % 3) for i in range(50 - len(ids))]
    assert len(set(ids)) == 50
    with agent() as a:
        with connect(a) as c:
            mfs = handshake(c)
            data = b"".join(spop.notify(sid, fid, [request(*REQUESTS[i % 4][:2], id="r%d" % i)])
                            for i, (sid, fid) in enumerate(ids))
            c.send(data)
            got = {}
            for _ in ids:
                n, f = c.recv_frame()
                assert f.type == spop.ACK and f.flags == spop.FIN, f
                assert n <= mfs
                assert (f.sid, f.fid) not in got, "two ACKs for %d/%d" % (f.sid, f.fid)
                got[(f.sid, f.fid)] = spop.parse_ack(f)
            assert set(got) == set(ids), "ACK ids %s" % sorted(set(got) ^ set(ids))
            for i, key in enumerate(ids):
                check_decision(got[key], 1, **REQUESTS[i % 4][2])
            check_decision(exchange(c, 5, 5, [request()]), 1, backend="old_query", routed=True)
        assert_serves(a)


def test_notify_one_byte_at_a_time(agent):
    with agent() as a, connect(a) as c:
        c.send_bytewise(spop.hello())
        expect_agent_hello(c)
        c.send_bytewise(spop.notify(77, 3, [request()]))
        n, f = c.recv_frame()
        check_meta(n, f, spop.ACK, 77, 3)
        check_decision(spop.parse_ack(f), 1, backend="old_query", routed=True)


def test_slow_reader_gets_every_ack(agent):
    """The client writes 20000 NOTIFYs before reading anything: the agent must buffer
    or stop reading (back-pressure), and still answer every one."""
    count = 20000
    with agent() as a, connect(a) as c:
        handshake(c)
        data = b"".join(spop.notify(i, 1, [request()]) for i in range(count))
        err = []

        def writer():
            try:
                c.sock.sendall(data)
            except OSError as e:
                err.append(e)
        w = threading.Thread(target=writer, daemon=True)
        w.start()
        time.sleep(0.5)  # not reading yet: lets the agent's output back up
        seen = set()
        deadline = time.monotonic() + 4 * T
        while len(seen) < count:
            assert time.monotonic() < deadline, "%d of %d ACKs" % (len(seen), count)
            n, f = c.recv_frame()
            assert f.type == spop.ACK and f.fid == 1 and f.sid not in seen, f
            seen.add(f.sid)
        w.join(T)
        assert not err, err
        check_decision(spop.parse_ack(f), 1, backend="old_query", routed=True)
        assert seen == set(range(count))


def test_peer_not_reading_is_back_pressured(agent):
    """A peer that sends without reading must not make the agent buffer without
    bound: with 96 MB of NOTIFYs (8 KB paths, rewritten in phase 4, so 96 MB of
    ACKs) sent and nothing read, the sender must stall; once it reads, every
    NOTIFY is answered, each ACK with the rewrite: a full output buffer may
    delay an answer, never change it."""
    path = "/query/api/squids/" + "p" * 8000
    total = 12000
    with agent(phase=4) as a, connect(a) as c:
        handshake(c)
        frame = spop.notify(1, 1, [request(path=path)])
        sent = [0]
        err = []

        def writer():
            try:
                for _ in range(total):
                    c.sock.sendall(frame)
                    sent[0] += 1
            except OSError as e:
                err.append(e)
        c.sock.settimeout(None)
        w = threading.Thread(target=writer, daemon=True)
        w.start()
        deadline = time.monotonic() + 4 * T
        last = -1
        while sent[0] != last and sent[0] < total and time.monotonic() < deadline:
            last = sent[0]
            time.sleep(1.0)  # progress stopped for a second: the sender is stalled
        assert sent[0] < total, "all %d MB sent while nothing was read: no back-pressure" \
            % (total * len(frame) >> 20)
        got = 0
        end = time.monotonic() + 8 * T
        want = path.replace("squids", "seafoods", 1)
        while got < total:
            assert time.monotonic() < end, "%d of %d ACKs" % (got, total)
            n, f = c.recv_frame()
            check_meta(n, f, spop.ACK, 1, 1)
            v = spop.parse_ack(f)
            assert txn(v).get("status") is None, "ACK %d of %d: status %r instead of the " \
                "rewrite" % (got + 1, total, txn(v)["status"])
            check_decision(v, 4, backend="new_query", routed=True, path=want)
            got += 1
        w.join(T)
        assert not err and sent[0] == total, (err, sent[0])


def test_concurrent_200_clients(agent):
    clients, notifies = 200, 5
    errors = []
    done = []
    with agent() as a:
        start = threading.Barrier(clients, timeout=4 * T)

        def client(k):
            try:
                with connect(a, timeout=4 * T) as c:
                    start.wait()
                    handshake(c)
                    for j in range(notifies):
                        method, path, want = REQUESTS[(k + j) % 4]
                        v = exchange(c, k * 100 + j, j + 1,
                                     [request(method, path, id="c%d-%d" % (k, j))])
                        check_decision(v, 1, **want)
                done.append(k)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("client %d: %r" % (k, e))
        threads = [threading.Thread(target=client, args=(k,), daemon=True)
                   for k in range(clients)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 8 * T
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        assert not errors, "%d clients failed, first: %s" % (len(errors), errors[:3])
        assert len(done) == clients, "%d of %d clients finished" % (len(done), clients)
        assert_serves(a)


# ------------------------------------------------------------------ disconnect

def test_haproxy_disconnect_answered(agent):
    with agent() as a:
        with connect(a) as c:
            handshake(c)
            c.send(spop.disconnect(0, "normal"))
            expect_disconnect(c, {0})
        with connect(a) as c:
            handshake(c)
            c.send(spop.disconnect(2, "a timeout occurred"))
            expect_disconnect(c, {0, 2})
        with connect(a) as c:  # nothing is answered after the DISCONNECT
            handshake(c)
            c.send(spop.disconnect(0, "normal") + spop.notify(1, 1, [request()]))
            expect_disconnect(c, {0})
        with connect(a) as c:  # a malformed DISCONNECT still ends the connection
            handshake(c)
            c.send(spop.encode_frame(spop.HAPROXY_DISCONNECT,
                                     spop.encode_bytes("status-code") + h("0C")))
            expect_disconnect(c, {0, spop.ST_INVALID})
        assert_serves(a)


def test_haproxy_disconnect_after_pipelined_notifies(agent):
    """ACKs may precede the AGENT-DISCONNECT; nothing follows it."""
    with agent() as a:
        with connect(a) as c:
            handshake(c)
            ids = {(i, 1) for i in range(1, 11)}
            c.send(b"".join(spop.notify(s, f, [request()]) for s, f in sorted(ids)) +
                   spop.disconnect(0, "normal"))
            while True:
                n, f = c.recv_frame()
                if f.type != spop.ACK:
                    break
                assert (f.sid, f.fid) in ids, f
                ids.discard((f.sid, f.fid))
            c.frames.appendleft((n, f))
            expect_disconnect(c, {0})
        assert_serves(a)


# ------------------------------------------------------------- message content

def test_unknown_message_name_still_acked(agent):
    with agent() as a, connect(a) as c:
        handshake(c)
        v = exchange(c, 1, 1, [request(name="other")])
        assert txn(v) == {}, "variables for a message that is not cutover: %r" % v
        v = exchange(c, 2, 1, [request(name="cutover-x"), request(name="cutove")])
        assert txn(v) == {}, "a prefix/extension of the name was taken: %r" % v
        v = exchange(c, 3, 1, [request(name="other"), request()])
        check_decision(v, 1, backend="old_query", routed=True)


def test_empty_notify_still_acked(agent):
    with agent() as a, connect(a) as c:
        handshake(c)
        v = exchange(c, 1, 1, [])
        assert v == {}, "variables for an empty NOTIFY: %r" % v
        check_decision(exchange(c, 3, 1, [request()]), 1, backend="old_query", routed=True)


def test_null_missing_and_ipv6_args(agent):
    ok = dict(backend="old_query", routed=True)
    with agent() as a, connect(a) as c:
        handshake(c)
        sid = iter(range(1, 100))
        check_decision(exchange(c, next(sid), 1, [request(host=None, client=None)]), 1, **ok)
        check_decision(exchange(c, next(sid), 1, [request(host=MISSING, client=MISSING,
                                                          id=MISSING)]), 1, **ok)
        check_decision(exchange(c, next(sid), 1, [request(src=spop.ipv6("2001:db8::7"))]),
                       1, **ok)
        check_decision(exchange(c, next(sid), 1, [request(src=None)]), 1, **ok)
        check_decision(exchange(c, next(sid), 1, [request(src=MISSING)]), 1, **ok)
        # What HAProxy sent before it sent only what the agent reads.
        check_decision(exchange(c, next(sid), 1, [request(
            src=ipaddress.IPv4Address("192.0.2.10"), client="portal-a", id="req-1")]), 1, **ok)
        # Argument order and unknown arguments do not matter.
        name, args = request()
        check_decision(exchange(c, next(sid), 1, [(name, [("x-unknown", 5)] + args[::-1])]),
                       1, **ok)
        # Without a path nothing can match a route; the phase is still reported.
        for msg in (request(path=None), request(path=MISSING), ("cutover", [])):
            check_decision(exchange(c, next(sid), 1, [msg]), 1, routed=False,
                           backend=ANY_BACKEND)
        # Where the contract leaves the decision open, the ACK still reports the phase.
        for msg in (request(method=None), request(method=MISSING),
                    request(method=spop.binary(b"GET"), path=spop.int64(-1))):
            v = exchange(c, next(sid), 1, [msg])
            check_names(v)
            assert txn(v).get("phase") == spop.int64(1), v
            assert set(s for s, _ in v) == {spop.SCOPE_TXN}, v
        check_decision(exchange(c, next(sid), 1, [request()]), 1, **ok)


def squids_read_ack(phase, rest, whole):
    """The variables of the ACK for GET /query/api/squids<rest> in phase 4 or 8
    (design table: new_query, rewritten to seafoods): whole, or cut to the 414
    answer (route and phase kept; no backend, path or link)."""
    v = {(spop.SCOPE_TXN, "phase"): spop.int64(phase),
         (spop.SCOPE_TXN, "route"): spop.string("squids-query")}
    if phase == 8:
        v[(spop.SCOPE_TXN, "deprecated")] = spop.boolean(True)
    if whole:
        v[(spop.SCOPE_TXN, "backend")] = spop.string("new_query")
        v[(spop.SCOPE_TXN, "path")] = spop.string("/query/api/seafoods" + rest)
    else:
        v[(spop.SCOPE_TXN, "status")] = spop.int64(414)
    return v


def ack_size(sid, fid, variables):
    """FRAME-LENGTH of an ACK setting variables, built by the client's own encoder
    (the order of the actions does not change the size)."""
    acts = [spop.Action(spop.SET_VAR, scope, name, value)
            for (scope, name), value in variables.items()]
    return len(spop.ack(sid, fid, acts)) - 4


def test_ack_fits_negotiated_size(agent):
    """Around the negotiated max-frame-size (256 and 16380), for every path length
    whose whole ACK would be a few bytes under, at, or over the limit: an ACK that
    fits carries the whole decision (backend and rewritten path); one byte over,
    the agent sends the 414 answer instead, never an unrewritten route. Every ACK
    is checked variable by variable."""
    with agent(phase=4) as a:
        for proposed in (256, 16380):
            with connect(a) as c:
                mfs = handshake(c, proposed=proposed)
                base = "/" + "x" * (mfs - 200)
                lengths = []
                for extra in range(0, 200):
                    size = ack_size(1, 1, squids_read_ack(4, base + "y" * extra, True))
                    if mfs - 3 <= size <= mfs + 3:
                        lengths.append(extra)
                assert any(ack_size(1, 1, squids_read_ack(4, base + "y" * e, True)) == mfs
                           for e in lengths), "no path gives an ACK of exactly %d" % mfs
                for sid, extra in enumerate(lengths, 1):
                    rest = base + "y" * extra
                    fits = ack_size(sid, 1, squids_read_ack(4, rest, True)) <= mfs
                    c.send(spop.notify(sid, 1, [("cutover", [
                        ("method", "GET"), ("path", "/query/api/squids" + rest)])]))
                    n, f = c.recv_frame()
                    check_meta(n, f, spop.ACK, sid, 1)
                    assert n <= mfs, "ACK of %d bytes over the negotiated %d" % (n, mfs)
                    v = spop.parse_ack(f)
                    check_names(v)
                    want = squids_read_ack(4, rest, fits)
                    assert v == want, "max-frame-size %d, whole ACK %s: got %r" % (
                        mfs, "fits" if fits else "over", sorted(v))
                check_decision(exchange(c, 999, 1, [request()]), 4, backend="new_query",
                               path="/query/api/seafoods/42", routed=True)
        assert_serves_phase(a, 4)


def test_path_bytes_kept(agent):
    """The rest of a rewritten path is copied byte for byte when it holds only URL
    path characters (escapes kept as they are); a capture with bytes outside them
    (NUL, non-UTF-8) is never rewritten: the route gets status 400, no backend,
    path or link (docs/plan.md, refused rewrites)."""
    esc = "surrogateescape"
    with agent(phase=4) as a, connect(a) as c:
        handshake(c)
        rest = "/%00a%FF;b=1,c~d"
        v = exchange(c, 1, 1, [request(path="/query/api/squids" + rest)])
        assert v == squids_read_ack(4, rest, True), v
        raw = b"/\x00a\xff\x80b"
        v = exchange(c, 2, 1, [request(path="/query/api/squids" + raw.decode("utf-8", esc))])
        check_decision(v, 4, status=400, routed=True)
        assert txn(v)["route"] == spop.string("squids-query"), v
        check_decision(exchange(c, 3, 1, [request()]), 4, backend="new_query",
                       path="/query/api/seafoods/42", routed=True)


def test_batch_wait_holds_reads_for_the_window(agent):
    """With --batch-wait 10000, after a turn of fewer than 8 NOTIFYs a worker
    waits 10 ms before reading again, so three NOTIFYs sent 1 ms apart after
    one was answered get no ACK until the window closes, then all are
    answered. (Without the wait each is answered within microseconds.) A
    client descheduled past the window tries again, three times at most."""
    with agent(extra=("--batch-wait", "10000")) as a:
        with connect(a) as c:
            handshake(c)
            for attempt in range(3):
                base = 10 * attempt
                c.send(spop.notify(base + 1, 1, [request()]))
                n, f = c.recv_frame()  # the first is answered at once
                assert (f.type, f.sid) == (spop.ACK, base + 1), f
                early = False
                for k in range(2, 5):
                    c.send(spop.notify(base + k, 1, [request()]))
                    time.sleep(0.001)
                    early |= bool(select.select([c.sock], [], [], 0)[0])
                sids = set()
                for _ in range(3):
                    n, f = c.recv_frame()
                    assert f.type == spop.ACK, f
                    sids.add(f.sid)
                    check_decision(spop.parse_ack(f), 1, backend="old_query", routed=True)
                assert sids == {base + 2, base + 3, base + 4}, sids
                if not early:
                    break
            assert not early, "ACKs came while the window was open, in 3 tries of 3"
        assert_serves(a)


def test_batch_wait_not_after_a_large_batch(agent):
    """After a turn of 8 NOTIFYs or more the worker polls at once: with
    --batch-wait 10000, a NOTIFY sent right after the ACKs of ten sent in one
    write is answered well inside the 10 ms it would otherwise wait (5 ms is
    allowed; three tries, for a client descheduled meanwhile)."""
    with agent(threads=1, extra=("--batch-wait", "10000")) as a:
        with connect(a) as c:
            handshake(c)
            prompt = False
            for attempt in range(3):
                base = 100 * attempt
                time.sleep(0.02)  # past any window: the ten are read in one turn
                c.send(b"".join(spop.notify(base + k, 1, [request()]) for k in range(10)))
                for _ in range(10):
                    c.recv_frame()
                c.send(spop.notify(base + 50, 1, [request()]))
                prompt = bool(select.select([c.sock], [], [], 0.005)[0])
                n, f = c.recv_frame()
                assert (f.type, f.sid) == (spop.ACK, base + 50), f
                if prompt:
                    break
            assert prompt, "the NOTIFY after a batch of ten waited, in 3 tries of 3"
        assert_serves(a)


def test_batch_wait_bounds(start_agent, plan_file):
    """--batch-wait takes 0 to 10000 microseconds; anything else is refused at
    start with exit status 2 and says so."""
    for bad in ("10001", "-1", "2ms", ""):
        r = subprocess.run([harness.agent_binary(), "--config", plan_file(1), "--batch-wait", bad],
                           capture_output=True, text=True, timeout=T)
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert "--batch-wait: 0 to 10000 microseconds" in r.stderr, (bad, r.stderr)
    with start_agent(plan_file(1), extra=("--batch-wait", "0")) as a:
        assert_serves(a)


def test_max_connections_cap(agent):
    """With --max-connections 4, no fifth connection is served while four are open;
    once they close, new connections are served again."""
    with agent(extra=("--max-connections", "4")) as a:
        held = []
        for k in range(4):
            c = connect(a)
            handshake(c)
            held.append(c)
        extra = []
        for k in range(3):
            try:
                c = connect(a)
                c.send(spop.hello())
                extra.append(c)
            except OSError:
                pass  # refused or reset: the cap at work
        for c in extra:
            try:
                n, f = c.recv_frame(timeout=0.5)
                assert f.type == spop.AGENT_DISCONNECT, \
                    "a fifth connection got %r while four are open" % (f,)
            except (spop.Closed, socket.timeout, OSError):
                pass  # closed, or left waiting: both keep the cap
            c.close()
        for c in held:
            check_decision(exchange(c, 1, 1, [request()]), 1, backend="old_query",
                           routed=True)
            c.close()
        assert_serves(a)


def test_ipv6_listen(agent):
    with agent(host="::1") as a:
        with connect(a) as c:
            handshake(c)
            v = exchange(c, 1, 1, [request(src=spop.ipv6("::1"))])
            check_decision(v, 1, backend="old_query", routed=True)
        assert_serves(a)


# ------------------------------------------------------------ the ACK contract

def test_ack_contract_phase1(agent):
    with agent() as a, connect(a) as c:
        handshake(c)
        v = exchange(c, 1, 1, [request("GET", "/query/api/squids/42")])
        check_decision(v, 1, backend="old_query", routed=True)
        assert txn(v)["phase"].type == spop.T_INT64
        assert set(s for s, _ in v) == {spop.SCOPE_TXN}, v
        for path in ("/health", "/", "/queryx/api/squids/42", "/api/squids/42"):
            v = exchange(c, 2, 1, [request("GET", path)])
            check_decision(v, 1, routed=False, backend=ANY_BACKEND)
            assert "status" not in txn(v) and "path" not in txn(v), (path, v)


def design_expectation(phase, method, path):
    """Expected decision for phase, from docs/contracts.md's table (not from the agent)."""
    m = re.match(r"^/(query|command)/api/(squids|seafoods)((?:/.*)?)$", path)
    side = re.match(r"^/(query|command)/", path)
    if m:
        kind, api, rest = m.groups()
        new_path = "/%s/api/seafoods%s" % (kind, rest)
        if api == "seafoods":
            if phase < 8:
                return dict(status=404)
            return dict(backend="new_" + kind, routed=True)
        switch = 4 if kind == "query" else 6
        if phase < switch:
            return dict(backend="old_" + kind, routed=True)
        if phase < 8:
            return dict(backend="new_" + kind, path=new_path, routed=True)
        if phase < 10:
            return dict(backend="new_" + kind, path=new_path, deprecated=True, routed=True)
        return dict(status=410, link=new_path)
    if side:
        kind = side.group(1)
        switch = 4 if kind == "query" else 6
        return dict(backend=("new_" if phase >= switch else "old_") + kind, routed=True)
    return None  # outside both: default backend, no route


ROUTING_REQUESTS = [("GET", "/query/api/squids/42"), ("GET", "/query/api/squids"),
                    ("PUT", "/command/api/squids/42"), ("POST", "/command/api/squids"),
                    ("GET", "/query/api/seafoods/42"), ("DELETE", "/command/api/seafoods/42"),
                    ("GET", "/query/api/orders/9"), ("POST", "/command/api/orders"),
                    ("GET", "/health")]


def test_routing_follows_design_table_in_every_phase(agent):
    failures = []
    for phase in range(1, 13):
        with agent(phase=phase, threads=1) as a, connect(a) as c:
            handshake(c)
            for i, (method, path) in enumerate(ROUTING_REQUESTS):
                v = exchange(c, i, 1, [request(method, path)])
                want = design_expectation(phase, method, path)
                if want is None:
                    want = dict(routed=False, backend=ANY_BACKEND)
                try:
                    check_decision(v, phase, **want)
                except AssertionError as e:
                    failures.append("phase %d %s %s: %s" % (phase, method, path, e))
    assert not failures, "%d mismatches:\n  %s" % (len(failures), "\n  ".join(failures))


# --------------------------------------------------------------- graceful stop

def graceful_stop(agent, sig):
    a = agent(phase=1)
    try:
        conns = []
        for k in range(32):
            c = connect(a)
            handshake(c)
            check_decision(exchange(c, k, 1, [request()]), 1, backend="old_query", routed=True)
            conns.append(c)
        waiting = connect(a)  # connected, HELLO never sent
        busy = connect(a)
        handshake(busy)
        inflight = {(i, 1) for i in range(100)}
        busy.send(b"".join(spop.notify(s, f, [request()]) for s, f in sorted(inflight)))
        a.signal(sig)
        for c in conns:
            expect_disconnect(c, {spop.ST_NORMAL})
            c.close()
        while True:  # in-flight NOTIFYs may be answered before the AGENT-DISCONNECT
            n, f = busy.recv_frame()
            if f.type != spop.ACK:
                busy.frames.appendleft((n, f))
                break
            assert (f.sid, f.fid) in inflight, f
            inflight.discard((f.sid, f.fid))
            check_decision(spop.parse_ack(f), 1, backend="old_query", routed=True)
        expect_disconnect(busy, {spop.ST_NORMAL})
        busy.close()
        try:
            n, f = waiting.recv_frame()
            check_meta(n, f, spop.AGENT_DISCONNECT)
            waiting.expect_eof()
        except spop.Closed:
            pass  # a plain close is fine before the HELLO
        waiting.close()
        try:
            a.proc.wait(3 * T)
        except Exception:  # noqa: BLE001
            raise AssertionError("agent still running %.0fs after signal %d" % (3 * T, sig))
    finally:
        rc = a.stop()
    assert rc == 0, "agent exited %s on signal %d; log tail:\n%s" % (rc, sig, a.log()[-2000:])
    with contextlib.suppress(OSError), socket.create_connection((a.host, a.port), 0.5):
        raise AssertionError("still accepting after exit")


def test_graceful_stop_sigterm(agent):
    graceful_stop(agent, signal.SIGTERM)


def test_graceful_stop_sigint(agent):
    graceful_stop(agent, signal.SIGINT)

