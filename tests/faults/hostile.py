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

import spop_peer as sp


def _notify_ok(sid=1, fid=1):
    return sp.notify(sid, fid, "GET", "/query/api/squids/1")


def _frame_raw(ftype, flags, meta, payload):
    body = bytes([ftype]) + struct.pack(">I", flags) + meta + payload
    return struct.pack(">I", len(body)) + body


# (name, bytes sent after connecting, whether a valid HELLO goes first,
#  the right answer: a set of SPOP statuses; None = any non-zero status or a
#  close; "ignored" = the frame is skipped and the next NOTIFY is ACKed, as
#  spop.md 7.6 says of unknown types with valid ids; "close" = the client
#  closes mid-frame)
MALFORMED = [
    ("oversized frame", struct.pack(">I", 1 << 20) + b"\x03" * 64, True, {3}),
    ("zero-length frame", struct.pack(">I", 0), True, {3, 4}),
    ("bad varint stream-id", _frame_raw(sp.NOTIFY, sp.FIN, b"\xff" * 12, b""), True, {4}),
    ("NOTIFY before HELLO", _notify_ok(), False, {4}),
    ("NOTIFY without FIN", sp.frame(sp.NOTIFY, sp.message("cutover", sp.request_args(
        "GET", "/x")), 1, 1, flags=0), True, {10}),
    ("reserved typed-data type in KV", sp.frame(sp.HAPROXY_HELLO, sp.lstr("supported-versions")
                                                 + b"\x0a\x03abc"), False, {4}),
    ("KV key past the end", sp.frame(sp.HAPROXY_HELLO, b"\x50abc"), False, {4}),
    ("HELLO with version 1.0", sp.frame(sp.HAPROXY_HELLO, sp.kvlist([
        ("supported-versions", sp.t_string("1.0")),
        ("max-frame-size", sp.t_uint32(16380)),
        ("capabilities", sp.t_string("pipelining"))])), False, {8}),
    ("HELLO with max-frame-size 100", sp.hello(max_frame=100), False, {9}),
    ("NOTIFY arg value past the end", sp.frame(sp.NOTIFY, sp.lstr("cutover") + b"\x01"
                                               + sp.lstr("path") + b"\x08\x40/x"), True, {4}),
    ("frame shorter than its header", struct.pack(">I", 3) + b"\x03\x00\x00", True, {4}),
    ("fragment continuation (type 0) without a start", sp.frame(0, b"abc", 1, 1), True, "ignored"),
    ("unknown frame type 42", sp.frame(42, b"\x00" * 8, 3, 1), True, "ignored"),
    ("second HELLO after HELLO", sp.hello(), True, {4}),
    ("truncated frame then close", sp.notify(1, 1, "GET", "/x")[:-3], True, "close"),
    ("binary garbage", bytes(range(256)) * 4, False, None),
]


def send_malformed(host, port, name, data, hello_first, expect=None, timeout=5.0):
    """Sends one bad input on a fresh connection; returns the AGENT-DISCONNECT
    status the agent answered with, None when it closed without one, "close"
    for the truncated case (the client closes), "ignored" when expect is
    "ignored" and the next NOTIFY got its ACK."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        if hello_first:
            s.sendall(sp.hello())
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError("%s: agent closed before AGENT-HELLO" % name)
                buf += chunk
                frames, buf = sp.split_frames(buf)
                if frames:
                    if frames[0][0] != sp.AGENT_HELLO:
                        raise AssertionError("%s: no AGENT-HELLO" % name)
                    break
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if name.startswith("truncated"):
            return "close"
        if expect == "ignored":
            s.sendall(_notify_ok(7, 1))
            buf = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    return "closed"
                frames, buf = sp.split_frames(buf + chunk)
                for f in frames:
                    if f[0] == sp.ACK and (f[2], f[3]) == (7, 1):
                        return "ignored"
                    if f[0] == sp.AGENT_DISCONNECT:
                        return sp.parse_kvlist(f[4]).get("status-code")
            return "no ACK within %.0f s" % timeout
        try:
            kv = sp.read_disconnect(s, timeout)
        except socket.timeout:
            return "no answer within %.0f s" % timeout
        return None if kv is None else kv.get("status-code")
    finally:
        s.close()


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
            st = {"sock": s, "out": sp.hello(), "buf": b"", "state": "hello", "sid": len(socks)}
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
                        frames, st["buf"] = sp.split_frames(st["buf"] + data)
                        for f in frames:
                            if f[0] == sp.AGENT_HELLO and st["state"] == "hello":
                                hellos += 1
                                st["state"] = "notify"
                                st["out"] += sp.notify(st["sid"], 1, "GET", "/query/api/squids/7")
                            elif f[0] == sp.ACK and st["state"] == "notify":
                                acks += 1
                                st["state"] = "done"
                            elif f[0] == sp.AGENT_DISCONNECT:
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
        data = sp.hello() + _notify_ok()
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
        self.sock.sendall(sp.hello())
        buf = b""
        while True:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("agent closed before AGENT-HELLO")
            frames, buf = sp.split_frames(buf + chunk)
            if frames:
                break
        self.sent_bytes = 0
        self.sent_frames = 0
        self.stalled = False
        self.closed_by_agent = False

    def flood(self, seconds=10.0, max_bytes=256 << 20, stall=2.0):
        batch = b"".join(sp.notify(i % 100000 + 1, 1, "GET", "/query/api/squids/%d" % i)
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
                    client = sp.Client(self.host, self.port, timeout=5)
                v = client.decide("GET", "/query/api/squids/%d" % n)
                if "txn.phase" not in v:
                    raise AssertionError("ACK without txn.phase: %r" % v)
                self.phases.add(v["txn.phase"])
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure is counted
                self.failed += 1
                self.last_error = repr(e)
                if client is not None:
                    client.sock.close()
                client = None
            self.stop_event.wait(self.interval)
        if client is not None:
            client.close()


class RogueAgent(_Thread):
    """An agent that answers every NOTIFY with the actions answer(args)
    returns (bytes of set-var actions): a stand-in for a compromised or buggy
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
                    except sp.Malformed:
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
            raise sp.Malformed("frame length %d" % struct.unpack_from(">I", buf)[0])
        frames, state["buf"] = sp.split_frames(buf)
        out = b""
        for ftype, _, sid, fid, payload in frames:
            if ftype == sp.HAPROXY_HELLO:
                kv = sp.parse_kvlist(payload)
                out += sp.agent_hello(min(16380, kv.get("max-frame-size", 16380)))
            elif ftype == sp.NOTIFY:
                self.notifies += 1
                args = {}
                for _, a in sp.parse_messages(payload):
                    args.update(a)
                out += sp.ack(sid, fid, self.answer(args))
            elif ftype == sp.HAPROXY_DISCONNECT:
                out += sp.agent_disconnect()
            else:
                raise sp.Malformed("frame type %d" % ftype)
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
