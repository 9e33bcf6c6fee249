"""End-to-end tests: the real agent, Debian's HAProxy with haproxy/haproxy.cfg,
the sample apps on SQLite, all on free loopback ports.

  smoke            option spop-check marks both agents UP; a request carries
                   the agent's variables into HAProxy's log line
  routing_table    every phase 1-12 x every path family of design.md's table:
                   status, X-Served-By, Deprecation/Link, and from HAProxy's
                   log the phase, route, backend and rewritten path
  fallback_table   both agents stopped: HAProxy routes by the phase it learned
                   last, with the same results as routing_table
  walk_1_to_12_under_load  scripts/walk from 1 to 12 under load.py's reads and
                   writes (old API until phase 9, new API after): zero
                   failures, zero lost writes, HAProxy's PID unchanged, a log
                   line with phase, route and backend for every request
  rollback_6_to_1_under_load  1 -> 6 -> 1 under the same load: zero failures,
                   zero lost writes (read back through the OLD API at phase 1)

HAPROXY=/path selects the HAProxy binary. Per-phase figures are printed.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
import harness  # noqa: E402
from system import APPS, HAPROXY_CFG, ROLES, SPOE_CONF, plan_text, write_atomic  # noqa: E402

ROOT = harness.ROOT
WALK = os.path.join(ROOT, "scripts", "walk")
HAPROXY = os.environ.get("HAPROXY", "haproxy")
PHASES = range(1, 13)
LOAD_RATE = 200       # requests/s of load.py during the walks
LOAD_CLIENTS = 8
DWELL_S = 1.5         # load time spent in each phase of a walk
_LOG_LINE = re.compile(r'^\S+ \[[^\]]+\] (\S+) (\S+)/(\S+) \S+ (-?\d+) .*?"(.*)" (id=.*)$')


# --- the system under test --------------------------------------------------------

def request(port, method, path, body=None, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


class Haproxy:
    """HAProxy in the foreground: stdout (log target "stdout") is the access
    log, stderr its own notices. One thread: HAProxy never blocks on a log
    write, and with two threads one may drop its line when the other holds
    stdout while descheduled (DroppedLogs); with one, every line is written."""

    def __init__(self, workdir, env):
        self.access_log = os.path.join(workdir, "haproxy.log")
        self.notices = os.path.join(workdir, "haproxy-notices.log")
        e = dict(os.environ)
        e.update(env, CUTOVER_LOG="stdout", CUTOVER_NBTHREAD="1")
        check = subprocess.run([HAPROXY, "-c", "-f", HAPROXY_CFG], env=e, capture_output=True,
                               text=True)
        assert check.returncode == 0, "haproxy -c: %s%s" % (check.stdout, check.stderr)
        self._out = open(self.access_log, "ab")
        self._err = open(self.notices, "ab")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", HAPROXY_CFG], env=e,
                                     stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, cwd=ROOT)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()
        self._err.close()

    def lines(self):
        with open(self.access_log, errors="replace") as f:
            return f.read().splitlines()


class System:
    """Apps, two agents and HAProxy in one temporary directory (the walk's run dir)."""

    def __init__(self, name, phase=1):
        self.dir = tempfile.mkdtemp(prefix="cutover-e2e-%s-" % name)
        self.plan = os.path.join(self.dir, "cutover.yaml")
        self.set_plan_phase(phase)
        self.procs, self.agents, self.haproxy = [], [], None
        self.db = {"old": os.path.join(self.dir, "old.db"), "new": os.path.join(self.dir, "new.db")}
        self.ports = {}
        try:
            self._start(phase)
        except BaseException:
            self.stop()
            raise

    def _start(self, phase):
        for role in ROLES:
            self.ports[role] = harness.free_port()
            self.procs.append(harness.Proc(
                [sys.executable, os.path.join(APPS, "shop.py"), "--role", role,
                 "--db", self.db[role.split("-")[0]], "--listen",
                 "127.0.0.1:%d" % self.ports[role]], role, workdir=self.dir))
        for role, p in zip(ROLES, self.procs):
            harness.wait_port("127.0.0.1", self.ports[role], proc=p.proc)
        self.agent_ports = [harness.free_port(), harness.free_port()]
        for port in self.agent_ports:
            self.start_agent(port)
        self.http_port = harness.free_port()
        self.stats_socket = os.path.join(self.dir, "haproxy.sock")
        self.haproxy = Haproxy(self.dir, {
            "CUTOVER_HTTP_BIND": "127.0.0.1:%d" % self.http_port,
            "CUTOVER_AGENT1": "127.0.0.1:%d" % self.agent_ports[0],
            "CUTOVER_AGENT2": "127.0.0.1:%d" % self.agent_ports[1],
            "CUTOVER_OLD_QUERY": "127.0.0.1:%d" % self.ports["old-query"],
            "CUTOVER_OLD_COMMAND": "127.0.0.1:%d" % self.ports["old-command"],
            "CUTOVER_NEW_QUERY": "127.0.0.1:%d" % self.ports["new-query"],
            "CUTOVER_NEW_COMMAND": "127.0.0.1:%d" % self.ports["new-command"],
            "CUTOVER_DEFAULT_APP": "127.0.0.1:%d" % self.ports["old-query"],
            "CUTOVER_SPOE_CONF": SPOE_CONF,
            "CUTOVER_STATS_SOCKET": self.stats_socket,
            "CUTOVER_START_PHASE": str(phase),
        })
        harness.wait_port("127.0.0.1", self.http_port, proc=self.haproxy.proc)
        with open(os.path.join(self.dir, "cutover.env"), "w") as f:
            f.write("CUTOVER_PLAN=%s\nCUTOVER_SPOA=%s\nCUTOVER_HTTP=127.0.0.1:%d\n"
                    "CUTOVER_METRICS=%s\nCUTOVER_OLD_DB=%s\nCUTOVER_NEW_DB=%s\n"
                    "CUTOVER_NEW_QUERY=127.0.0.1:%d\nCUTOVER_NEW_COMMAND=127.0.0.1:%d\n"
                    "CUTOVER_HAPROXY_LOG=%s\n"
                    % (self.plan, harness.agent_binary(), self.http_port,
                       ",".join("127.0.0.1:%d" % a.metrics_port for a in self.agents),
                       self.db["old"], self.db["new"], self.ports["new-query"],
                       self.ports["new-command"], self.haproxy.access_log))
        self.wait_agents_up()

    def start_agent(self, port):
        a = harness.Agent(self.plan, threads=1, port=port, metrics=True, workdir=self.dir)
        self.agents.append(a)
        return a

    def stop_agents(self):
        for a in self.agents:
            rc = a.stop()
            assert rc == 0, "agent on %d exited %s on SIGTERM" % (a.port, rc)
        self.agents = []

    def stop(self):
        errors = []
        pidfile = os.path.join(self.dir, "replicator.pid")
        if os.path.exists(pidfile):  # started by scripts/walk: not our child
            try:
                with open(pidfile) as f:
                    pid = int(f.read())
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except (OSError, ValueError):
                pass
        if self.haproxy:
            self.haproxy.stop()
        for p in self.agents + self.procs:
            try:
                p.stop()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            raise AssertionError("; ".join(errors))
        if os.environ.get("CUTOVER_KEEP_LOGS") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- controls -------------------------------------------------------------

    def set_plan_phase(self, phase):
        write_atomic(self.plan, plan_text(phase))

    def agent_phases(self):
        out = []
        for a in self.agents:
            try:
                _, _, body = request(a.metrics_port, "GET", "/metrics", timeout=2)
                m = re.search(r"^cutover_phase_effective\s+(\d+)", body.decode(), re.M)
                out.append(int(m.group(1)) if m else None)
            except OSError:
                out.append(None)
        return out

    def wait_phase(self, phase, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p == phase for p in self.agent_phases()):
                return
            time.sleep(0.05)
        raise AssertionError("agents report %s, not phase %d, %.0fs after the edit"
                             % (self.agent_phases(), phase, timeout))

    def cli(self, command):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.stats_socket)
            s.sendall((command + "\n").encode())
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    return out.decode()
                out += d

    def agent_states(self):
        """{server: (operational state, check result)} of the agents' backend."""
        states = {}
        for line in self.cli("show servers state spoe_cutover").splitlines():
            f = line.split()
            if len(f) > 11 and f[1] == "spoe_cutover":
                states[f[3]] = (int(f[5]), int(f[11]))
        return states

    def wait_agents_up(self, up=True, timeout=10.0):
        """Until both agents are UP with a passed check (2, 3), or DOWN (0, _)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.agent_states()
            if len(st) == 2 and all((s == (2, 3)) if up else s[0] == 0 for s in st.values()):
                return st
            time.sleep(0.1)
        raise AssertionError("agents not %s after %.0fs: %s"
                             % ("UP" if up else "DOWN", timeout, self.agent_states()))

    def log_fields(self, tags):
        """{client tag: fields of its HAProxy log line}; waits for every tag."""
        found = {}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for line in self.haproxy.lines():
                rec = parse_log(line)
                if rec and rec.get("client") in tags:
                    found[rec["client"]] = rec
            if len(found) == len(tags):
                break
            time.sleep(0.05)
        return found

    def walk(self, to, out):
        r = subprocess.run([sys.executable, WALK, "--run-dir", self.dir, "--to", str(to),
                            "--pause", "0"], capture_output=True, text=True, timeout=120)
        out.write(r.stdout + r.stderr)
        assert r.returncode == 0, "scripts/walk --to %d failed:\n%s%s" % (to, r.stdout, r.stderr)


def parse_log(line):
    m = _LOG_LINE.match(line)
    if not m:
        return None
    rec = dict(kv.split("=", 1) for kv in m.group(6).split(" ") if "=" in kv)
    rec.update(frontend=m.group(1), haproxy_backend=m.group(2), server=m.group(3),
               status=int(m.group(4)), request=m.group(5))
    return rec


# --- design.md's table, written out independently of the plan and the agent ------

def expected(phase, method, path):
    """What design.md says of one request: route, backend, rewritten path,
    proxy status, deprecation, link, and the app that serves it."""
    p = path.split("?", 1)[0]
    e = {"route": None, "backend": None, "path": None, "status": None,
         "deprecated": False, "link": None}

    def new(old, newp):
        return newp + p[len(old):]

    if p.startswith("/query/api/squids"):
        e["route"] = "squids-query"
        if phase <= 3:
            e["backend"] = "old_query"
        elif phase <= 9:
            e.update(backend="new_query", path=new("/query/api/squids", "/query/api/seafoods"),
                     deprecated=phase >= 8)
        else:
            e.update(status=410, link=new("/query/api/squids", "/query/api/seafoods"))
    elif p.startswith("/command/api/squids"):
        e["route"] = "squids-command"
        if phase <= 5:
            e["backend"] = "old_command"
        elif phase <= 9:
            e.update(backend="new_command",
                     path=new("/command/api/squids", "/command/api/seafoods"),
                     deprecated=phase >= 8)
        else:
            e.update(status=410, link=new("/command/api/squids", "/command/api/seafoods"))
    elif p.startswith("/query/api/seafoods"):
        e["route"] = "seafoods-query"
        if phase <= 7:
            e["status"] = 404
        else:
            e["backend"] = "new_query"
    elif p.startswith("/command/api/seafoods"):
        e["route"] = "seafoods-command"
        if phase <= 7:
            e["status"] = 404
        else:
            e["backend"] = "new_command"
    elif p.startswith("/query/"):
        e.update(route="query", backend="old_query" if phase <= 3 else "new_query")
    elif p.startswith("/command/"):
        e.update(route="command", backend="old_command" if phase <= 5 else "new_command")
    # A rewrite or link that would carry a dot segment is refused: 400.
    if any(x and re.search(r"(^|/)(\.|%2e){1,2}(/|$)", x, re.I) for x in (e["path"], e["link"])):
        e.update(status=400, backend=None, path=None, link=None)
    # HAProxy's default backend (the OLD query app here) serves the rest.
    e["served_by"] = (e["backend"] or ("old_query" if e["status"] is None else "")).replace("_", "-")
    return e


def app_status(role, method, path):
    """What shop.py answers for path (entity 1 exists on both sides)."""
    p = path.split("?", 1)[0]
    if p == "/healthz":
        return 200
    side, kind = role.split("-")
    base = "/%s/api/%s" % (kind, "squids" if side == "old" else "seafoods")
    if p != base and p != base + "/1":
        return 404
    if kind == "query":
        return 200 if method in ("GET", "HEAD") else 405
    if p == base:
        return 201 if method == "POST" else 405
    return 200 if method == "PUT" else 405


ENTITY = {"name": "e2e squid", "price": 3.5}
# (method, path, body): every path family of the table, a method that does not
# fit its path, a query string, other /query/ and /command/ paths, a path
# outside both, and paths no rewrite may carry.
TABLE = (
    ("GET", "/query/api/squids/1", None),
    ("GET", "/query/api/squids?limit=1", None),
    ("POST", "/query/api/squids", ENTITY),
    ("POST", "/command/api/squids", ENTITY),
    ("PUT", "/command/api/squids/1", ENTITY),
    ("GET", "/query/api/seafoods/1", None),
    ("PUT", "/command/api/seafoods/1", ENTITY),
    ("GET", "/query/api/inventory", None),
    ("POST", "/command/api/orders", ENTITY),
    ("GET", "/healthz", None),
    # a rewrite of these would hold a dot segment: refused from phase 4 / 6
    ("GET", "/query/api/squids/%2e%2e/admin", None),
    ("PUT", "/command/api/squids/./1", ENTITY),
)


def run_table(sysm, phase, tag_prefix):
    """Sends TABLE through HAProxy; returns [(request, outcome dict)]."""
    tags, rows = [], []
    for i, (method, path, body) in enumerate(TABLE):
        tag = "%s-%d-%d" % (tag_prefix, phase, i)
        status, h, data = request(sysm.http_port, method, path, body, {"X-Api-Client": tag})
        rows.append(((method, path), tag, status, h, data))
        tags.append(tag)
    logs = sysm.log_fields(set(tags))
    out = []
    for (method, path), tag, status, h, data in rows:
        rec = logs.get(tag, {})
        out.append(((method, path), {
            "status": status, "served_by": h.get("x-served-by", ""),
            "app_saw": h.get("x-request-path"),
            "deprecation": h.get("deprecation"), "link": h.get("link"),
            "list_len": len(json.loads(data)) if "?limit=" in path and status == 200 else None,
            "log": {k: rec.get(k) for k in ("phase", "route", "be", "path", "fb")},
        }))
    return out


def check_table(phase, results, fallback):
    problems = []
    for (method, path), got in results:
        e = expected(phase, method, path)
        want_status = e["status"] or app_status(e["served_by"], method,
                                                e["path"] or path)
        want = {
            "status": want_status,
            "served_by": e["served_by"],
            # the request target as the app received it: rewritten, query kept
            "app_saw": (((e["path"] or path.split("?", 1)[0])
                         + ("?" + path.split("?", 1)[1] if "?" in path else ""))
                        if e["served_by"] else None),
            "deprecation": "true" if e["deprecated"] and not e["status"] else None,
            "link": ('<%s>; rel="successor-version"' % (e["link"] or e["path"])
                     if e["status"] == 410 or (e["deprecated"] and not e["status"]) else None),
            "list_len": 1 if "?limit=" in path and want_status == 200 else None,
            "log": {"phase": str(phase), "route": e["route"] or "-",
                    "be": e["backend"] or "-", "path": e["path"] or "-",
                    "fb": "1" if fallback else "-"},
        }
        if got != want:
            problems.append("phase %d %s %s:\n    got  %s\n    want %s"
                            % (phase, method, path, got, want))
    return problems


# --- cases ------------------------------------------------------------------------

_shared = {}


def shared_system():
    if "sys" not in _shared:
        s = System("table", phase=1)
        _shared["sys"] = s
        # Entity 1 on both sides: a squid on OLD, copied to NEW as a seafood.
        status, _, data = request(s.ports["old-command"], "POST", "/command/api/squids",
                                  {"name": "seed squid", "price": 1})
        assert status == 201 and json.loads(data)["id"] == 1, (status, data)
        r = subprocess.run([sys.executable, os.path.join(APPS, "replicator.py"), "--old",
                            s.db["old"], "--new", s.db["new"], "--drain-once"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    return _shared["sys"]


@harness.case
def smoke():
    s = shared_system()
    states = s.wait_agents_up()
    # 2 = running, 3 = check passed: spop-check got a valid AGENT-HELLO from each.
    assert states == {"agent1": (2, 3), "agent2": (2, 3)}, states
    status, h, _ = request(s.http_port, "GET", "/query/api/squids/1",
                           headers={"X-Api-Client": "smoke", "X-Cutover-Id": "spoofed"})
    assert status == 200 and h.get("x-served-by") == "old-query", (status, h)
    rec = s.log_fields({"smoke"}).get("smoke")
    assert rec, "no HAProxy log line for the smoke request"
    # The app got HAProxy's unique id (the one sent to the agent), not the client's.
    assert h.get("x-cutover-id") == rec["id"], (h, rec["id"])
    assert (rec["phase"], rec["route"], rec["be"], rec["fb"], rec["err"]) == \
        ("1", "squids-query", "old_query", "-", "-"), rec
    assert rec["pt"].isdigit(), rec
    assert s.cli("get var proc.cutover.phase").strip().endswith("value=<1>"), \
        s.cli("get var proc.cutover.phase")
    print("  agents UP by spop-check: %s; log: phase=%s route=%s be=%s pt=%sms"
          % (sorted(states), rec["phase"], rec["route"], rec["be"], rec["pt"]))


@harness.case
def routing_table():
    s = shared_system()
    problems, results = [], {}
    for phase in PHASES:
        s.set_plan_phase(phase)
        s.wait_phase(phase)
        results[phase] = run_table(s, phase, "table")
        problems += check_table(phase, results[phase], fallback=False)
    _shared["table"] = results
    assert not problems, "%d cells differ from design.md:\n%s" % (len(problems),
                                                                  "\n".join(problems))
    print("  %d phases x %d requests match design.md" % (len(PHASES), len(TABLE)))


@harness.case
def fallback_table():
    """Both agents gone: HAProxy keeps routing by the phase it learned last."""
    s = shared_system()
    s.set_plan_phase(8)
    s.wait_phase(8)
    request(s.http_port, "GET", "/healthz")  # an answer carries proc.cutover.phase = 8
    s.stop_agents()
    s.wait_agents_up(up=False)
    learned = s.cli("get var proc.cutover.phase")
    assert learned.strip().endswith("value=<8>"), learned
    problems = []
    results = run_table(s, 8, "learned")
    problems += check_table(8, results, fallback=True)
    agent_results = _shared.get("table")
    for phase in PHASES:
        # Stands for "the last phase an agent reported" without restarting agents.
        s.cli("experimental-mode on; set var proc.cutover.phase int(%d)" % phase)
        results = run_table(s, phase, "fallback")
        problems += check_table(phase, results, fallback=True)
        if agent_results:
            for (req, fb), (_, ag) in zip(results, agent_results[phase]):
                a = dict(ag, log=dict(ag["log"], fb="1"))
                if fb != a:
                    problems.append("phase %d %s: fallback %s, agent %s" % (phase, req, fb, a))
    errs = {r.get("err") for r in (parse_log(x) for x in s.haproxy.lines())
            if r and r.get("fb") == "1"}
    teardown()  # the walks start systems of their own
    assert not problems, "%d differences:\n%s" % (len(problems), "\n".join(problems))
    print("  %d phases x %d requests routed by the fallback as by the agents "
          "(SPOE errors seen: %s)" % (len(PHASES), len(TABLE), ", ".join(sorted(errs))))


def walk_under_load(name, forward_to, back_to, api_switch_at, verify_api):
    """Walks a fresh system phase by phase under load.py; returns the figures."""
    s = System(name, phase=1)
    try:
        api_file = os.path.join(s.dir, "api")
        phase_file = os.path.join(s.dir, "phase")
        write_atomic(api_file, "old\n")
        write_atomic(phase_file, "1\n")
        report = os.path.join(s.dir, "load.json")
        max_s = 150  # a bound: the load is stopped by SIGTERM when the walk ends
        load = harness.Proc(
            [sys.executable, os.path.join(APPS, "load.py"),
             "--url", "http://127.0.0.1:%d" % s.http_port, "--rate", str(LOAD_RATE),
             "--duration", str(max_s), "--clients", str(LOAD_CLIENTS), "--api", "auto",
             "--api-switch-file", api_file, "--phase-file", phase_file,
             "--verify-url", "http://127.0.0.1:%d" % s.http_port, "--verify-api", verify_api,
             "--report", report, "--requests-log", os.path.join(s.dir, "requests.jsonl"),
             "--timeout", "10"], "load", workdir=s.dir)
        pid0 = s.haproxy.pid
        walk_log = open(os.path.join(s.dir, "walk.log"), "w")
        steps = list(range(2, forward_to + 1)) + list(range(forward_to - 1, back_to - 1, -1))
        time.sleep(DWELL_S)
        labels = ["1"]
        for i, phase in enumerate(steps):
            s.walk(phase, walk_log)
            labels.append("%d%s" % (phase, " back" if i and phase < steps[i - 1] else ""))
            write_atomic(phase_file, labels[-1] + "\n")
            if phase == api_switch_at:
                write_atomic(api_file, "new\n")
            time.sleep(DWELL_S)
            assert load.alive(), "load.py ended early:\n" + load.log()[-3000:]
        walk_log.close()
        load.signal(signal.SIGTERM)
        deadline = time.monotonic() + 120
        while load.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        load.stop()
        with open(report) as f:
            rep = json.load(f)
        assert s.haproxy.alive() and s.haproxy.pid == pid0, "HAProxy was restarted"
        info = s.cli("show info")
        m = re.search(r"^Pid: (\d+)", info, re.M)
        assert m and int(m.group(1)) == pid0, info[:300]
        m = re.search(r"^DroppedLogs: (\d+)", info, re.M)
        rep["dropped_logs"] = int(m.group(1)) if m else None
        lines = [r for r in (parse_log(x) for x in s.haproxy.lines())
                 if r and r.get("client", "").startswith("load-")]
        unlabeled = [r for r in lines if "-" in (r["phase"], r["route"], r["be"])]
        with open(os.path.join(s.dir, "requests.jsonl")) as f:
            sent = [json.loads(x) for x in f]
        logged = {r["id"]: r["phase"] for r in lines}
        rep["unlogged"] = [r for r in sent if r["request_id"] not in logged]
        rep["labels"] = labels
        rep["haproxy_phases"] = {}  # label -> {phase HAProxy logged: requests}
        for r in sent:
            d = rep["haproxy_phases"].setdefault(r["phase"], {})
            ph = logged.get(r["request_id"], "unlogged")
            d[ph] = d.get(ph, 0) + 1
        return s, rep, lines, unlabeled
    except BaseException:
        s.stop()
        raise


def print_figures(title, rep):
    per_phase = rep.get("per_phase") or {}
    lost = (rep.get("verify") or {}).get("lost_by_phase", {})
    print("  %s: %d requests, %d failures, %d lost writes, %d verified, %.0f req/s, "
          "p99 %s ms" % (title, rep["requests"], rep["failures"], rep["lost_writes"],
                         (rep.get("verify") or {}).get("checked", 0),
                         rep.get("rate_achieved") or 0, rep["latency_ms"]["p99"]))
    # A row per step of the walk: the requests load.py sent once the walk had
    # reached that phase (lost: writes last acknowledged then), the app that
    # served them, and the phase HAProxy's log line gives their decision (the
    # next phase already, for those sent while the walk was stepping on).
    print("    phase     requests failures lost  served by / phase in HAProxy's log")
    for label in rep["labels"]:
        v = per_phase.get(label, {"requests": 0, "failures": 0})
        print("    %-8s  %8d %8d %4d  %s / %s" % (
            label, v["requests"], v["failures"], lost.get(label, 0),
            json.dumps(v.get("served_by", {}), sort_keys=True),
            json.dumps(rep["haproxy_phases"].get(label, {}), sort_keys=True)))


def check_load(s, rep, lines, unlabeled):
    assert rep["failures"] == 0, "failed requests: %s" % json.dumps(rep["failure_samples"][:5])
    assert rep["lost_writes"] == 0, "lost writes: %s" % json.dumps(rep["verify"])
    assert not (rep["verify"] or {}).get("errors"), rep["verify"]
    assert rep["requests"] >= LOAD_RATE * 5, "too little load: %d" % rep["requests"]
    assert rep["dropped_logs"] == 0, "HAProxy dropped %s log lines" % rep["dropped_logs"]
    assert not rep["unlogged"], "%d of %d requests have no HAProxy log line, e.g. %s" % (
        len(rep["unlogged"]), rep["requests"], rep["unlogged"][:3])
    assert len(lines) == rep["requests"], \
        "HAProxy logged %d load requests, load.py sent %d" % (len(lines), rep["requests"])
    assert not unlabeled, "log lines without phase/route/backend: %s" % unlabeled[:3]


@harness.case
def walk_1_to_12_under_load():
    s, rep, lines, unlabeled = walk_under_load("walk", 12, 12, api_switch_at=9,
                                               verify_api="new")
    try:
        print_figures("walk 1->12", rep)
        check_load(s, rep, lines, unlabeled)
    finally:
        s.stop()


@harness.case
def rollback_6_to_1_under_load():
    s, rep, lines, unlabeled = walk_under_load("rollback", 6, 1, api_switch_at=None,
                                               verify_api="old")
    try:
        print_figures("walk 1->6->1", rep)
        check_load(s, rep, lines, unlabeled)
    finally:
        s.stop()


def teardown():
    if "sys" in _shared:
        _shared.pop("sys").stop()


if __name__ == "__main__":
    try:
        harness.main("e2e")
    finally:
        teardown()
