# SPDX-License-Identifier: Apache-2.0
"""Parity: with no agent reachable, HAProxy routes every request exactly as
the agent would.

For each plan (the sample at each of its phases, and plans drawn from a
fixed seed at each of theirs): start the real agent on the plan with
--fallback-dir (it writes the map), ask it over SPOP for every request, then
start HAProxy with haproxy/haproxy.cfg's own frontend, that map, the plan's
backends (tiny stubs that echo their name and the path they got) and agents
at addresses where nothing listens. Each request is then sent to HAProxy.
Compared, per request, with no exception list:
  - the decision, from HAProxy's log line (phase, route, be, path, st, dep;
    fb=1 proves the fallback made it) against the agent's ACK;
  - the answer: status, backend that served it, path it received, Link and
    Deprecation headers, against what haproxy.cfg does with the agent's ACK.
    The Link compared is the last one (the successor, after the policy's);
    Sunset and the policy Link are the agent's alone (the map has neither).
"""
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import plans  # noqa: E402
import spop_client as spop  # noqa: E402
import system  # noqa: E402

SEED = 20261202
GENERATED_PLANS = 24
SAMPLE = os.path.join(ROOT, "conf", "cutover.yaml")
SAMPLE_BACKENDS = ["old_query", "old_command", "new_query", "new_command"]
# The known drift of the hand-written fallback (issue 10), among others.
SAMPLE_PATHS = ["/query/api/seafoodsbar/1", "/query/api/squidsfoo", "/query/api/squids-archive/1",
                "/query/api/squids", "/query/api/squids/42", "/query/api/squids/a%20b",
                "/query/api/squids/../x", "/query/api/squids/%2e%2e", "/query/api/seafoods/1",
                "/command/api/squids", "/command/api/squids/7", "/command/api/squidsfoo", "/command/api/seafoods",
                "/query/orders", "/command/orders/1", "/query/", "/query", "/health",
                "/query//api/squids/1", "/Query/api/squids/1", "/query/api/squids/x|y"]
TOTALS = {"plans": 0, "requests": 0, "differences": 0, "rejected": 0}
LAST_ANSWERS = []  # HAProxy's answers in the last run_plan, for tests that look closer
KINDS = {}  # what the agent decided, over every request: so the run shows what it covered

LOG_FIELDS = re.compile(r" client=(\S+) phase=(\S+) route=(\S+) be=(\S+) path=(\S+) st=(\S+)"
                        r" dep=(\S+) fb=(\S+)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, ok, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("%s: process exited with %s" % (what, proc.returncode))
        if ok():
            return
        time.sleep(0.02)
    raise AssertionError("%s: not ready after %.0fs" % (what, timeout))


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Agent:
    """The real cutover-spoa on one plan; asked over SPOP with every arg
    HAProxy sends, the host included."""

    def __init__(self, binary, plan_file, fallback_dir, log, extra=()):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--config", plan_file, "--listen", "127.0.0.1:%d" % self.port,
             "--threads", "1", "--fallback-dir", fallback_dir] + list(extra),
            stdout=log, stderr=log)
        wait_for("agent", lambda: listening(self.port), self.proc)
        self.conn = spop.Conn("127.0.0.1", self.port, 5.0)
        self.conn.send(spop.hello(capabilities="pipelining"))
        _, f = self.conn.recv_frame()
        assert f.type == spop.AGENT_HELLO
        self.sid = 0

    def decide(self, method, path, host):
        self.sid += 1
        msg = spop.cutover_message(method, path, host=host)
        self.conn.send(spop.notify(self.sid, 1, [msg]))
        _, f = self.conn.recv_frame()
        assert f.type == spop.ACK, "agent answered frame type %d" % f.type
        return {"%s.%s" % (spop.SCOPE_NAMES[s], n): None if v is None else v.value
                for (s, n), v in spop.parse_ack(f).items()}

    def close(self):
        self.conn.close()
        stop(self.proc)


def haproxy_config(configured, stub_port):
    """haproxy/haproxy.cfg with its plan backends replaced by stubs for this
    plan's: everything else (frontend, fallback block, SPOE) as shipped."""
    with open(os.path.join(ROOT, "haproxy", "haproxy.cfg")) as f:
        text = f.read()
    start = text.index("# ---- the plan's backends")
    end = text.index("\nbackend cutover_default") + 1
    stubs = "".join("backend cutover_%s\n    http-request set-header X-Stub-Backend %s\n"
                    "    server app 127.0.0.1:%d\n\n" % (b, b, stub_port) for b in configured)
    return text[:start] + stubs + text[end:]


class HAProxy:
    def __init__(self, binary, workdir, cfg_text, fallback_dir, stub_port):
        self.port = free_port()
        # Agent addresses where nothing can listen while this HAProxy runs:
        # ports held bound, never listening, so connecting is refused and no
        # other process (a later agent) can take them.
        self.dead = []
        for _ in range(2):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            self.dead.append(sock)
        cfg = os.path.join(workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(cfg_text)
        env = dict(os.environ,
                   CUTOVER_HTTP_BIND="127.0.0.1:%d" % self.port,
                   CUTOVER_AGENT1="127.0.0.1:%d" % self.dead[0].getsockname()[1],
                   CUTOVER_AGENT2="127.0.0.1:%d" % self.dead[1].getsockname()[1],
                   CUTOVER_DEFAULT_APP="127.0.0.1:%d" % stub_port,
                   CUTOVER_SPOE_CONF=os.path.join(ROOT, "haproxy", "cutover.spoe"),
                   CUTOVER_STATS_SOCKET=os.path.join(workdir, "haproxy.sock"),
                   CUTOVER_FALLBACK_DIR=fallback_dir, CUTOVER_LOG="stdout",
                   CUTOVER_NBTHREAD="1", CUTOVER_PROM_BIND="127.0.0.1:%d" % free_port())
        self.log_path = os.path.join(workdir, "haproxy.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "-db", "-f", cfg], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, cwd=workdir)
        try:
            wait_for("haproxy", lambda: listening(self.port), self.proc)
            # Not needed for parity, only for speed: until its health checks
            # find no agent, each request waits `timeout processing` first.
            wait_for("agents DOWN", self.no_agent, self.proc)
        except AssertionError:
            self.close()
            with open(self.log_path) as f:
                raise AssertionError("HAProxy did not start:\n" + f.read()[-2000:])

    def no_agent(self):
        self.log.flush()
        with open(self.log_path, encoding="latin-1") as f:
            return "backend 'spoe_cutover' has no server available" in f.read()

    def ask(self, method, path, host, tag):
        req = ("%s %s?tag=%s HTTP/1.1\r\nHost: %s\r\nX-Api-Client: %s\r\n"
               "Connection: close\r\n\r\n" % (method, path, tag, host, tag))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(req.encode("latin-1"))
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def log_lines(self):
        """{tag: decision fields} once HAProxy logged every request."""
        self.log.flush()
        with open(self.log_path, encoding="latin-1") as f:
            found = {}
            for line in f:
                m = LOG_FIELDS.search(line)
                if m:
                    found[m.group(1)] = m.groups()[1:]
        return found

    def close(self):
        stop(self.proc)
        self.log.close()
        for sock in self.dead:
            sock.close()


def expected_decision(v):
    """The log fields haproxy.cfg writes for the agent's ACK v."""
    def field(name):
        x = v.get("txn." + name)
        if x is None:
            return "-"
        if x is True:
            return "1"
        return str(x)
    return (field("phase"), field("route"), field("backend"), field("path"), field("status"),
            field("deprecated"), "1")


def expected_answer(v, path, configured, query):
    """What haproxy.cfg's apply rules make of the ACK v for a request with
    that query string: (status, backend that served, path it got, Link,
    Deprecation)."""
    status, backend = v.get("txn.status"), v.get("txn.backend")
    link, new_path = v.get("txn.link"), v.get("txn.path")
    if status == 410 and link:  # the successor keeps the query string
        return (410, None, None, '<%s?%s>; rel="successor-version"' % (link, query), None)
    if status:
        return (status, None, None, None, None)
    if backend is None:
        return (200, "(default)", path, None, None)
    if backend not in configured:
        return (503, None, None, None, None)
    successor = link or new_path
    return (200, backend, new_path or path,
            '<%s>; rel="successor-version"' % successor if v.get("txn.deprecated") and successor
            else None,
            v.get("txn.deprecation"))


def answer(status, headers):
    if status == 200:
        return (200, headers.get("x-stub-backend"), headers.get("x-stub-path", "").split("?tag=")[0],
                headers.get("link"), headers.get("deprecation"))
    return (status, None, None, headers.get("link") if status == 410 else None, None)


def run_plan(label, plan_text, configured, reqs, binaries, stub_port):
    """Returns the list of differences for one plan at its current phase."""
    agent_binary, haproxy_binary = binaries
    with tempfile.TemporaryDirectory(prefix="cutover-parity-") as work:
        plan_file = os.path.join(work, "plan.yaml")
        with open(plan_file, "w") as f:
            f.write(plan_text)
        fb_dir = os.path.join(work, "fallback")
        os.mkdir(fb_dir)
        with open(os.path.join(work, "agent.log"), "w") as alog:
            agent = Agent(agent_binary, plan_file, fb_dir, alog)
            try:
                wait_for("fallback map", lambda: os.path.exists(
                    os.path.join(fb_dir, "cutover.map")), agent.proc)
                wanted = [agent.decide(m, p, h) for m, p, h in reqs]
            finally:
                agent.close()
        hap = HAProxy(haproxy_binary, work, haproxy_config(configured, stub_port), fb_dir,
                      stub_port)
        try:
            got = [hap.ask(m, p, h, "t%d" % i) for i, (m, p, h) in enumerate(reqs)]
            tags = {"t%d" % i for i in range(len(reqs))}
            deadline = time.monotonic() + 5
            logged = hap.log_lines()
            while not tags <= logged.keys() and time.monotonic() < deadline:
                time.sleep(0.05)
                logged = hap.log_lines()
        finally:
            hap.close()
    diffs = []
    for v in wanted:
        kind = ("status %s" % v["txn.status"] if v.get("txn.status")
                else "rewrite" if v.get("txn.path") else "route" if v.get("txn.route")
                else "no route")
        KINDS[kind] = KINDS.get(kind, 0) + 1
    LAST_ANSWERS[:] = [answer(status, headers) for status, headers in got]
    for i, ((m, p, h), v, (status, headers)) in enumerate(zip(reqs, wanted, got)):
        want_d, got_d = expected_decision(v), logged.get("t%d" % i)
        want_a, got_a = expected_answer(v, p, configured, "tag=t%d" % i), answer(status, headers)
        if want_d != got_d or want_a != got_a:
            diffs.append("%s: %s %s host %s:\n  agent    %s %s\n  fallback %s %s"
                         % (label, m, p, h, want_d, want_a, got_d, got_a))
    return diffs


def sample_cases():
    """The sample at each phase, its sunsets moved far off: past a sunset the
    agent answers 410 where the map, which has no clock, still routes
    (docs/plan.md, Deprecation); test_deprecation.py covers that 410."""
    with open(SAMPLE) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^(      sunset: )\S+", r"\g<1>2099-12-31", text)
    assert n == 2, "the sample's two sunsets not found"
    for phase in range(1, 13):
        yield ("sample@%d" % phase, re.sub(r"(?m)^phase: .*$", "phase: %d" % phase, text))


def sample_requests():
    return [(m, p, "shop.test") for p in SAMPLE_PATHS for m in ("GET", "POST", "DELETE")]


def generated_cases(agent_binary):
    """(label, plan text, plan) for every phase of every valid drawn plan."""
    rng = random.Random(SEED)
    out = []
    with tempfile.TemporaryDirectory(prefix="cutover-parity-gen-") as work:
        index = 0
        while len(out) < GENERATED_PLANS and index < GENERATED_PLANS * 10:
            plan = plans.Plan(rng, index)
            index += 1
            path = os.path.join(work, "p.yaml")
            with open(path, "w") as f:
                f.write(plan.yaml(plan.phases[0][0]))
            r = subprocess.run([agent_binary, "--check", path], capture_output=True, text=True)
            if r.returncode != 0:
                TOTALS["rejected"] += 1
                continue
            out.append(plan)
    assert len(out) == GENERATED_PLANS, "only %d valid plans drawn" % len(out)
    return rng, out


@pytest.fixture(scope="module")
def binaries(agent_binary, haproxy_binary):
    return agent_binary, haproxy_binary


def test_sample_plan_every_phase(binaries, stub_port):
    diffs = []
    reqs = sample_requests()
    for label, text in sample_cases():
        diffs += run_plan(label, text, SAMPLE_BACKENDS, reqs, binaries, stub_port)
        TOTALS["plans"] += 1
        TOTALS["requests"] += len(reqs)
    TOTALS["differences"] += len(diffs)
    assert not diffs, "%d differences:\n%s" % (len(diffs), "\n".join(diffs[:20]))


def test_generated_plans_every_phase(binaries, stub_port):
    rng, drawn = generated_cases(binaries[0])
    diffs = []
    for plan in drawn:
        for num, _, _ in plan.phases:
            reqs = plans.requests(rng, plan)
            diffs += run_plan("%s@%d" % (plan.name, num), plan.yaml(num), plan.configured,
                              reqs, binaries, stub_port)
            TOTALS["plans"] += 1
            TOTALS["requests"] += len(reqs)
    TOTALS["differences"] += len(diffs)
    assert not diffs, "%d differences:\n%s" % (len(diffs), "\n".join(diffs[:20]))


def test_figures():
    """Prints the figures of the run (last, so the others have counted)."""
    print("\nparity: %(plans)d plan phases (%(rejected)d drawn plans rejected by --check), "
          "%(requests)d requests, %(differences)d differences" % TOTALS)
    print("parity: agent decisions: " + ", ".join("%s %d" % kv for kv in sorted(KINDS.items())))
    assert TOTALS["plans"] > 0


def test_agent_rewrites_map_for_each_accepted_plan(binaries):
    """The running agent keeps the map in step with the plan: a new phase is
    written, a rejected edit leaves the last good map in place."""
    with tempfile.TemporaryDirectory(prefix="cutover-parity-reload-") as work:
        plan_file = os.path.join(work, "plan.yaml")
        fb = os.path.join(work, "fallback")
        os.mkdir(fb)
        map_file = os.path.join(fb, "cutover.map")
        with open(SAMPLE) as f:
            text = system.without_gates(f.read())  # no replication endpoint here

        def write(phase_line):
            tmp = plan_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(re.sub(r"(?m)^phase: .*$", phase_line, text))
            os.replace(tmp, plan_file)

        def map_phase():
            with open(map_file) as f:
                return f.read().rsplit("\n^ ", 1)[1].split("|")[0]

        write("phase: 3")
        with open(os.path.join(work, "agent.log"), "w") as log:
            agent = Agent(binaries[0], plan_file, fb, log)
            try:
                assert map_phase() == "3"  # written before the agent listens
                write("phase: 8")
                wait_for("map at phase 8", lambda: map_phase() == "8", agent.proc)
                write("phase: 99")  # not in the plan: rejected
                wait_for("rejection logged", lambda: "phase '99' is not in the plan"
                         in open(log.name).read(), agent.proc)
                assert map_phase() == "8"
                assert os.listdir(fb) == ["cutover.map"]
            finally:
                agent.close()


def test_agent_installs_map_in_running_haproxy(binaries, stub_port):
    """Given HAProxy's admin socket, the agent installs each new map in the
    running HAProxy (Runtime API): no reload, the fallback follows the plan.
    It also names the plan backend that HAProxy lacks."""
    with tempfile.TemporaryDirectory(prefix="cutover-parity-runtime-") as work:
        plan_file = os.path.join(work, "plan.yaml")
        fb = os.path.join(work, "fallback")
        os.mkdir(fb)
        with open(SAMPLE) as f:
            text = system.without_gates(f.read())  # no replication endpoint here

        def write(phase):
            tmp = plan_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(re.sub(r"(?m)^phase: .*$", "phase: %d" % phase, text))
            os.replace(tmp, plan_file)

        write(3)
        subprocess.run([binaries[0], "--write-fallback", fb, plan_file], check=True,
                       capture_output=True)
        configured = [b for b in SAMPLE_BACKENDS if b != "new_command"]
        hap = HAProxy(binaries[1], work, haproxy_config(configured, stub_port), fb, stub_port)
        agent = None
        try:
            assert hap.ask("GET", "/query/api/seafoods/1", "shop.test", "a")[0] == 404
            with open(os.path.join(work, "agent.log"), "w") as log:
                agent = Agent(binaries[0], plan_file, fb, log,
                              ["--haproxy-socket", os.path.join(work, "haproxy.sock")])
                write(8)
                wait_for("HAProxy routes by phase 8", lambda: hap.ask(
                    "GET", "/query/api/seafoods/1", "shop.test", "b")[0] == 200, agent.proc)
                status, headers = hap.ask("GET", "/query/api/squids/1", "shop.test", "c")
                assert (status, headers.get("x-stub-backend"), headers.get("deprecation"),
                        headers.get("x-stub-path")) == \
                    (200, "new_query", "@1796083200", "/query/api/seafoods/1?tag=c")
                with open(log.name) as f:
                    agent_log = f.read()
                assert "not installed" not in agent_log, agent_log
                assert "HAProxy has no backend cutover_<name> for plan backends: " \
                    "new_command;" in agent_log, agent_log
            agent.close()
            agent = None
            # Every agent down, the plan moves on: the command line installs it.
            write(10)
            r = subprocess.run([binaries[0], "--write-fallback", fb, "--haproxy-socket",
                                os.path.join(work, "haproxy.sock"), plan_file],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            status, headers = hap.ask("GET", "/query/api/squids/1", "shop.test", "d")
            assert (status, headers.get("link")) == \
                (410, '</query/api/seafoods/1?tag=d>; rel="successor-version"')
        finally:
            if agent:
                agent.close()
            hap.close()


def test_restart_with_agents_down_routes_by_current_phase(binaries, stub_port):
    """Issue 10's case: the plan at phase 8, HAProxy (re)started while every
    agent is down. A write of the OLD API must reach new_command, rewritten,
    never old_command (the OLD database after the point of no return)."""
    with open(SAMPLE) as f:
        text = re.sub(r"(?m)^phase: .*$", "phase: 8", f.read())
    reqs = [("POST", "/command/api/squids", "shop.test")]
    assert run_plan("sample@8", text, SAMPLE_BACKENDS, reqs, binaries, stub_port) == []
    assert LAST_ANSWERS[0] == (200, "new_command", "/command/api/seafoods",
                               '</command/api/seafoods>; rel="successor-version"', "@1796083200")
