# SPDX-License-Identifier: Apache-2.0
"""Hostile SPOP peers for the fault tests. Every loop is bounded in count and
in time; every socket is closed by its owner.

- MALFORMED: bad frames, each sent on a fresh connection;
- open_at_once(): many connections at once, each doing HELLO then one NOTIFY;
- IdlePeers: connections that never send a byte;
- SlowPeer: a client that sends one byte a second;
- NonReader: floods NOTIFYs and never reads its ACKs;
- Prober: a well-behaved client asking for decisions the whole time;
- RogueAgent: an agent that answers whatever it is told to, to see what
  haproxy.cfg lets an agent do;
- RssSampler: the peak resident memory of the process under attack.
"""
import selectors
import socket
import struct
import threading
import time

import spop_client as sc


def _hello(**kw):
    """HAPROXY-HELLO as the fault peers send it."""
    kw.setdefault("engine_id", "faults-0000")
    return sc.hello(capabilities="pipelining", **kw)


def _notify(sid, fid, method, path, flags=sc.FIN):
    return sc.notify(sid, fid, [sc.cutover_message(method, path)], flags=flags)


def _notify_ok(sid=1, fid=1):
    return _notify(sid, fid, "GET", "/query/api/squids/1")


# (name, bytes sent after connecting, whether a valid HELLO goes first,
#  the right answer: a set of SPOP statuses; None = any non-zero status or a
#  close; "ignored" = the frame is skipped and the next NOTIFY is ACKed, as
#  docs/spop.md 7.6 says of unknown types with valid ids; "close" = the client
#  closes mid-frame)
MALFORMED = [
    ("oversized frame", struct.pack(">I", 1 << 20) + b"\x03" * 64, True, {3}),
    ("zero-length frame", struct.pack(">I", 0), True, {3, 4}),
    ("bad varint stream-id", sc.raw_frame(bytes([sc.NOTIFY]) + struct.pack(">I", sc.FIN)
                                          + b"\xff" * 12), True, {4}),
    ("NOTIFY before HELLO", _notify_ok(), False, {4}),
    ("NOTIFY without FIN", _notify(1, 1, "GET", "/x", flags=0), True, {10}),
    ("reserved typed-data type in KV", sc.encode_frame(
        sc.HAPROXY_HELLO, sc.encode_bytes("supported-versions") + b"\x0a\x03abc"), False, {4}),
    ("KV key past the end", sc.encode_frame(sc.HAPROXY_HELLO, b"\x50abc"), False, {4}),
    ("HELLO with version 1.0", _hello(versions="1.0", engine_id=None), False, {8}),
    ("HELLO with max-frame-size 100", _hello(max_frame_size=100), False, {9}),
    ("NOTIFY arg value past the end", sc.encode_frame(
        sc.NOTIFY, sc.encode_bytes("cutover") + b"\x01" + sc.encode_bytes("path")
        + b"\x08\x40/x"), True, {4}),
    ("frame shorter than its header", struct.pack(">I", 3) + b"\x03\x00\x00", True, {4}),
    ("fragment continuation (type 0) without a start",
     sc.encode_frame(sc.UNSET, b"abc", sid=1, fid=1), True, "ignored"),
    ("unknown frame type 42", sc.encode_frame(42, b"\x00" * 8, sid=3, fid=1), True, "ignored"),
    ("second HELLO after HELLO", _hello(), True, {4}),
    ("truncated frame then close", _notify(1, 1, "GET", "/x")[:-3], True, "close"),
    ("binary garbage", bytes(range(256)) * 4, False, None),
]


def send_malformed(host, port, name, data, hello_first, expect=None, timeout=5.0):
    """Sends one bad input on a fresh connection; returns the AGENT-DISCONNECT
    status the agent answered with, None when it closed without one, "close"
    for the truncated case (the client closes), "ignored" when expect is
    "ignored" and the next NOTIFY got its ACK."""
    c = sc.Conn(host, port, timeout)
    try:
        if hello_first:
            c.send(_hello())
            try:
                _, f = c.recv_frame()
            except sc.Closed:
                raise AssertionError("%s: agent closed before AGENT-HELLO" % name) from None
            if f.type != sc.AGENT_HELLO:
                raise AssertionError("%s: no AGENT-HELLO" % name)
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if name.startswith("truncated"):
            return "close"
        if expect == "ignored":
            c.send(_notify_ok(7, 1))
            deadline = time.monotonic() + timeout
            while True:
                try:
                    _, f = c.recv_frame(max(deadline - time.monotonic(), 0.001))
                except sc.Closed:
                    return "closed"
                except socket.timeout:
                    return "no ACK within %.0f s" % timeout
                if f.type == sc.ACK and (f.sid, f.fid) == (7, 1):
                    return "ignored"
                if f.type == sc.AGENT_DISCONNECT:
                    return sc.disconnect_status(f)
        try:
            return c.read_disconnect(timeout)
        except socket.timeout:
            return "no answer within %.0f s" % timeout
    finally:
        c.close()


def open_at_once(host, port, count, timeout=30.0):
    """Opens count connections without waiting between them, sends HELLO on
    each, then one NOTIFY on each. Returns (hellos answered, ACKs received,
    closed by the agent)."""
    sel = selectors.DefaultSelector()
    socks = []
    deadline = time.monotonic() + timeout
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            s.setblocking(False)
            s.connect_ex((host, port))
            socks.append(s)
            st = {"sock": s, "out": _hello(), "buf": b"", "state": "hello", "sid": len(socks)}
            sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, st)
        hellos = acks = closed = 0
        active = count
        while active and time.monotonic() < deadline:
            for key, ev in sel.select(0.5):
                st = key.data
                s = st["sock"]
                if ev & selectors.EVENT_WRITE and st["out"]:
                    try:
                        n = s.send(st["out"])
                        st["out"] = st["out"][n:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        st["state"] = "closed"
                if ev & selectors.EVENT_READ:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        st["state"] = "closed"
                    else:
                        frames, st["buf"] = sc.split_frames(st["buf"] + data)
                        for _, f in frames:
                            if f.type == sc.AGENT_HELLO and st["state"] == "hello":
                                hellos += 1
                                st["state"] = "notify"
                                st["out"] += _notify(st["sid"], 1, "GET", "/query/api/squids/7")
                            elif f.type == sc.ACK and st["state"] == "notify":
                                acks += 1
                                st["state"] = "done"
                            elif f.type == sc.AGENT_DISCONNECT:
                                st["state"] = "closed"
                if st["state"] in ("done", "closed"):
                    closed += st["state"] == "closed"
                    sel.unregister(s)
                    active -= 1
                else:
                    want = selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] else 0)
                    if key.events != want:
                        sel.modify(s, want, st)
        return hellos, acks, closed
    finally:
        sel.close()
        for s in socks:
            s.close()


class IdlePeers:
    """count connections that send nothing. closed() tells how many of them
    the agent has closed so far (its hello timeout)."""

    def __init__(self, host, port, count):
        self.socks = [socket.create_connection((host, port), timeout=5) for _ in range(count)]
        for s in self.socks:
            s.setblocking(False)

    def closed(self):
        """How many more of them the agent closed since the last call."""
        n, still = 0, []
        for s in self.socks:
            try:
                if s.recv(65536) == b"":
                    n += 1
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                n += 1
                s.close()
                continue
            still.append(s)
        self.socks = still
        return n

    def close(self):
        for s in self.socks:
            s.close()


class _Thread(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.stop_event = threading.Event()
        self.error = None

    def stop(self, timeout=10.0):
        self.stop_event.set()
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("%s did not stop" % type(self).__name__)


class SlowPeer(_Thread):
    """Sends a HELLO and then a NOTIFY one byte a second, for at most
    `seconds`. Records how many bytes went out and whether the agent closed
    the connection (a hello or idle timeout) or answered."""

    def __init__(self, host, port, seconds):
        super().__init__()
        self.sock = socket.create_connection((host, port), timeout=5)
        self.seconds = seconds
        self.sent = 0
        self.outcome = "still open"

    def run(self):
        data = _hello() + _notify_ok()
        end = time.monotonic() + self.seconds
        self.sock.settimeout(1.0)
        try:
            while (self.sent < len(data) and time.monotonic() < end
                   and not self.stop_event.is_set()):
                self.sock.send(data[self.sent:self.sent + 1])
                self.sent += 1
                try:
                    got = self.sock.recv(65536)
                    if not got:
                        self.outcome = "closed by agent after %d bytes" % self.sent
                        return
                    self.outcome = "answered"
                except socket.timeout:
                    pass
        except OSError as e:
            self.outcome = "closed by agent after %d bytes (%s)" % (self.sent,
                                                                    e.__class__.__name__)
        finally:
            self.sock.close()


class NonReader:
    """HELLO, then NOTIFYs as fast as the socket takes them, never reading an
    ACK, until the socket stops taking them for `stall` seconds (the agent
    stopped reading: back-pressure), or max_bytes, or `seconds` pass.
    The socket stays open, unread, until close()."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.sendall(_hello())
        buf = b""
        while True:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("agent closed before AGENT-HELLO")
            frames, buf = sc.split_frames(buf + chunk)
            if frames:
                break
        self.sent_bytes = 0
        self.sent_frames = 0
        self.stalled = False
        self.closed_by_agent = False

    def flood(self, seconds=10.0, max_bytes=256 << 20, stall=2.0):
        batch = b"".join(_notify(i % 100000 + 1, 1, "GET", "/query/api/squids/%d" % i)
                         for i in range(200))
        self.sock.setblocking(False)
        end = time.monotonic() + seconds
        last_progress = time.monotonic()
        pending = batch
        while time.monotonic() < end and self.sent_bytes < max_bytes:
            try:
                n = self.sock.send(pending)
            except BlockingIOError:
                if time.monotonic() - last_progress > stall:
                    self.stalled = True
                    return
                time.sleep(0.01)
                continue
            except OSError:
                self.closed_by_agent = True
                return
            self.sent_bytes += n
            last_progress = time.monotonic()
            pending = pending[n:]
            if not pending:
                self.sent_frames += 200
                pending = batch

    def close(self):
        self.sock.close()


class Prober(_Thread):
    """A normal client asking for decisions throughout; reconnects after a
    failure. ok/failed count the decisions; `gaps` counts failures."""

    def __init__(self, host, port, interval=0.02, limit=100000):
        super().__init__()
        self.host, self.port = host, port
        self.interval = interval
        self.limit = limit
        self.ok = 0
        self.failed = 0
        self.last_error = None
        self.phases = set()

    def run(self):
        client = None
        n = 0
        while not self.stop_event.is_set() and n < self.limit:
            n += 1
            try:
                if client is None:
                    client = sc.Session(self.host, self.port, timeout=5, full_args=True)
                v = client.decide("GET", "/query/api/squids/%d" % n)
                if "txn.phase" not in v:
                    raise AssertionError("ACK without txn.phase: %r" % v)
                self.phases.add(v["txn.phase"])
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure is counted
                self.failed += 1
                self.last_error = repr(e)
                if client is not None:
                    client.close()
                client = None
            self.stop_event.wait(self.interval)
        if client is not None:
            client.close(graceful=True)


class RogueAgent(_Thread):
    """An agent that answers every NOTIFY with the actions answer(args)
    returns (a list of spop_client.Action): a stand-in for a compromised or buggy
    agent, to see what haproxy.cfg lets it do. Serves health checks too."""

    def __init__(self, answer, host="127.0.0.1", port=0):
        super().__init__()
        self.answer = answer
        self.lsock = socket.create_server((host, port))
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.notifies = 0

    def run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.lsock, selectors.EVENT_READ, None)
        try:
            while not self.stop_event.is_set():
                for key, _ in sel.select(0.2):
                    if key.data is None:
                        try:
                            c, _ = self.lsock.accept()
                        except OSError:
                            continue
                        c.setblocking(True)
                        c.settimeout(2)
                        sel.register(c, selectors.EVENT_READ, {"buf": b""})
                        continue
                    c = key.fileobj
                    try:
                        data = c.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(c)
                        c.close()
                        continue
                    try:
                        out = self._answer(key.data, data)
                    except (sc.Invalid, sc.Incomplete):
                        out = None  # not SPOP (HAProxy sent it HTTP?): drop it
                    if out is None:
                        sel.unregister(c)
                        c.close()
                        continue
                    if out:
                        try:
                            c.sendall(out)
                        except OSError:
                            sel.unregister(c)
                            c.close()
        except Exception as e:  # noqa: BLE001 - reported by the case
            self.error = repr(e)
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            sel.close()

    def _answer(self, state, data):
        buf = state["buf"] + data
        if len(buf) >= 4 and struct.unpack_from(">I", buf)[0] > 16380:
            raise sc.Invalid("frame length %d" % struct.unpack_from(">I", buf)[0])
        frames, state["buf"] = sc.split_frames(buf)
        out = b""
        for _, f in frames:
            if f.type == sc.HAPROXY_HELLO:
                mfs = dict(sc.decode_kv(f.payload)).get("max-frame-size")
                out += sc.agent_hello(max_frame_size=min(16380, mfs.value if mfs else 16380))
            elif f.type == sc.NOTIFY:
                self.notifies += 1
                args = {}
                for _, a in sc.decode_messages(f.payload):
                    args.update((k, v.value) for k, v in a)
                out += sc.ack(f.sid, f.fid, self.answer(args))
            elif f.type == sc.HAPROXY_DISCONNECT:
                out += sc.disconnect(ftype=sc.AGENT_DISCONNECT)
            else:
                raise sc.Invalid("frame type %d" % f.type)
        return out


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class RssSampler(_Thread):
    """Samples a process's resident memory every 50 ms; .peak in KiB."""

    def __init__(self, pid):
        super().__init__()
        self.pid = pid
        self.peak = vm_rss_kib(pid)

    def run(self):
        while not self.stop_event.wait(0.05):
            try:
                self.peak = max(self.peak, vm_rss_kib(self.pid))
            except (OSError, AssertionError):
                return  # the process is gone; the case sees that itself
