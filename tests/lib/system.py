# SPDX-License-Identifier: Apache-2.0
"""The whole system on free loopback ports: the four sample apps on their
OLD and NEW databases (and optionally the replicator), agents on a private
copy of the sample plan, and Debian's HAProxy with haproxy/haproxy.cfg,
addresses given through its CUTOVER_* environment variables. Or the same
for another plan (a Layout: plan, HAProxy config, SPOE file, apps), such as
SQUID_API, the second plan of conf/examples/squid-api/. Shared by the
e2e and faults suites and by the benchmark (which puts stub apps behind
the same Haproxy).

Every process is started through harness.Proc and stopped by its PID. A
System remembers every agent it started and how each one ended, so that a
case can count crashes: an agent that died unasked, that exited non-zero on
SIGTERM, or that left a sanitizer report.
"""
import calendar
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import harness
import http_once
import plan_phase

ROOT = harness.ROOT
APPS = os.path.join(ROOT, "scripts", "apps")
PLAN = os.path.join(ROOT, "conf", "cutover.yaml")
HAPROXY_CFG = os.path.join(ROOT, "haproxy", "haproxy.cfg")
SPOE_CONF = os.path.join(ROOT, "haproxy", "cutover.spoe")
EXAMPLES = os.path.join(ROOT, "conf", "examples")
ROLES = ("old-query", "old-command", "new-query", "new-command")


SAMPLE_REPLICATION = "127.0.0.1:9005"  # the demo's data_steps.py, as the sample plan's gates name it


def without_gates(text):
    """The plan text without its phases' `gates:` blocks."""
    out, skipping = [], False
    for line in text.splitlines(True):
        if line.split("#")[0].rstrip() == "    gates:":
            skipping = True
            continue
        if skipping and line.startswith("      "):
            continue
        skipping = False
        out.append(line)
    return "".join(out)


_SUNSET = re.compile(r"(\bsunset:\s*)(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}:\d{2}Z)?")


def sunsets_ahead(text, now=None):
    """text with every route's sunset that is less than 30 days ahead of now
    (or past) moved to a year from now: for the walks under load, which hold
    that no request fails in phases 8 and 9, whatever today's date is. Runs
    before the plan's own sunset see the plan unchanged."""
    now = time.time() if now is None else now
    later = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(now + 365 * 86400))

    def move(m):
        at = calendar.timegm(time.strptime(m.group(2), "%Y-%m-%d"))
        return m.group(0) if at >= now + 30 * 86400 else m.group(1) + later
    return _SUNSET.sub(move, text)


def plan_text(phase, plan=PLAN, replication=None, sunset_ahead=False):
    """The plan (the sample's by default) with its one top-level `phase:`
    line set to `phase`. The sample's gates ask a replication status
    endpoint (data_steps.py): at replication (HOST:PORT) when given, else
    the gates are left out, for systems that run no such endpoint.
    sunset_ahead: sunsets_ahead() applied."""
    with open(plan) as f:
        text = f.read()
    if sunset_ahead:
        text = sunsets_ahead(text)
    if replication is None:
        text = without_gates(text)
    else:
        text = text.replace("http://%s/" % SAMPLE_REPLICATION, "http://%s/" % replication)
    try:
        return plan_phase.set_phase(text, phase)
    except ValueError as e:
        raise AssertionError("%s: %s" % (plan, e))


def write_fallback(fallback_dir, plan, stats_socket=None):
    """Writes the fallback map of plan into fallback_dir with the agent's
    --write-fallback, and installs it in a running HAProxy when stats_socket
    is given: what an operator does before HAProxy first starts."""
    os.makedirs(fallback_dir, exist_ok=True)
    argv = [harness.agent_binary(), "--write-fallback", fallback_dir]
    if stats_socket:
        argv += ["--haproxy-socket", stats_socket]
    r = subprocess.run(argv + [plan], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "--write-fallback: %s%s" % (r.stdout, r.stderr)


def write_atomic(path, data):
    """Replaces path by rename, as editors and deploy tools do."""
    tmp = path + ".tmp-%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.rename(tmp, path)


def haproxy_env(http_port, agents, apps, stats_socket, fallback_dir):
    """The CUTOVER_* variables haproxy/haproxy.cfg reads. agents: the two
    agent addresses; apps: {role: "host:port"}; fallback_dir: where the
    agent wrote the fallback map (write_fallback). One HAProxy thread: with
    two, one may drop its log line while the other holds stdout
    (DroppedLogs); with one, every line is written."""
    return {
        "CUTOVER_HTTP_BIND": "127.0.0.1:%d" % http_port,
        "CUTOVER_AGENT1": agents[0],
        "CUTOVER_AGENT2": agents[-1],
        "CUTOVER_OLD_QUERY": apps["old-query"],
        "CUTOVER_OLD_COMMAND": apps["old-command"],
        "CUTOVER_NEW_QUERY": apps["new-query"],
        "CUTOVER_NEW_COMMAND": apps["new-command"],
        "CUTOVER_DEFAULT_APP": apps["old-query"],
        "CUTOVER_SPOE_CONF": SPOE_CONF,
        "CUTOVER_STATS_SOCKET": stats_socket,
        "CUTOVER_LOG": "stdout",
        "CUTOVER_FALLBACK_DIR": fallback_dir,
        "CUTOVER_NBTHREAD": "1",
        "CUTOVER_PROM_BIND": "127.0.0.1:%d" % harness.free_port(),
    }


def squid_api_env(http_port, agents, apps, stats_socket, fallback_dir):
    """The variables conf/examples/squid-api/haproxy.cfg reads (the README's
    config): apps {"old-api", "new-api", "admin": "host:port"}."""
    return {
        "CUTOVER_HTTP_BIND": "127.0.0.1:%d" % http_port,
        "CUTOVER_AGENT1": agents[0],
        "CUTOVER_AGENT2": agents[-1],
        "OLD_API": apps["old-api"],
        "NEW_API": apps["new-api"],
        "ADMIN_APP": apps["admin"],
        "CUTOVER_SPOE_CONF": os.path.join(EXAMPLES, "squid-api", "cutover.spoe"),
        "CUTOVER_STATS_SOCKET": stats_socket,
        "CUTOVER_LOG": "stdout",
        "CUTOVER_FALLBACK_DIR": fallback_dir,
    }


class Layout:
    """What a System runs: a plan, the HAProxy config and the env function
    that fills its variables (haproxy_env's signature), and the apps: shop.py
    roles, each on the db of a side."""

    def __init__(self, plan, haproxy_cfg, env, apps):
        self.plan, self.haproxy_cfg, self.env, self.apps = plan, haproxy_cfg, env, apps


SAMPLE = Layout(PLAN, HAPROXY_CFG, haproxy_env, {r: r.split("-")[0] for r in ROLES})
SQUID_API = Layout(os.path.join(EXAMPLES, "squid-api", "plan.yaml"),
                   os.path.join(EXAMPLES, "squid-api", "haproxy.cfg"), squid_api_env,
                   {"old-api": "old", "new-api": "new", "admin": "old"})


class Haproxy(harness.Proc):
    """HAProxy in the foreground (-db) on cfg (haproxy.cfg by default) with
    env (haproxy_env's variables), the config checked with -c first:
    its stdout (log target "stdout") is the access log (log_path), stderr
    its own notices. Ready once it listens on HTTP and has its stats
    socket (it may listen a moment before the socket exists)."""

    def __init__(self, env, workdir, name="haproxy", cfg=HAPROXY_CFG):
        binary = os.environ.get("HAPROXY", "haproxy")
        e = dict(os.environ, **env)
        check = subprocess.run([binary, "-c", "-f", cfg], env=e, capture_output=True,
                               text=True, cwd=ROOT)
        assert check.returncode == 0, "haproxy -c: %s%s" % (check.stdout, check.stderr)
        super().__init__([binary, "-db", "-f", cfg], name, env=env, workdir=workdir,
                         stderr_name=name + "-notices", cwd=ROOT)
        self.stats_socket = env.get("CUTOVER_STATS_SOCKET")
        self.http_port = int(env["CUTOVER_HTTP_BIND"].rsplit(":", 1)[1])
        # HAProxy's Prometheus exporter (0: the caller's env has none).
        self.prom_port = int(env.get("CUTOVER_PROM_BIND", ":0").rsplit(":", 1)[1])
        harness.wait_port("127.0.0.1", self.http_port, proc=self.proc)
        deadline = time.monotonic() + 10
        while self.stats_socket and not os.path.exists(self.stats_socket):
            assert self.alive() and time.monotonic() < deadline, \
                "HAProxy has no stats socket at %s" % self.stats_socket
            time.sleep(0.02)

    def cli(self, command):
        """One command on the stats socket; its whole answer."""
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

    def lines(self):
        with open(self.log_path, errors="replace") as f:
            return f.read().splitlines()


class System:
    def __init__(self, name, phase, agents=2, agent_threads=1, agent_log_level="debug",
                 metrics=False, replicator=False, agent_override=None, start_agents=True,
                 layout=SAMPLE, data_steps=False, sunset_ahead=False):
        """agents: how many agents this System runs (HAProxy's two server
        lines name the first and the last). agent_override: HAProxy's agent
        addresses, for agents the caller runs itself (then agents=0).
        start_agents=False: HAProxy starts while no agent runs; start_agent(i)
        starts them later. metrics: each agent serves /metrics. layout: the
        plan, HAProxy config and apps (SAMPLE, or e.g. SQUID_API). data_steps:
        scripts/apps/data_steps.py runs the replicator from the agents'
        effective phase and answers the plan's gates (needs metrics); each
        agent then keeps a state directory and a journal (agentN.journal).
        sunset_ahead: the plan's sunsets kept ahead of today (sunsets_ahead),
        for runs under load.py, which counts a 410 as a failed request."""
        self.dir = tempfile.mkdtemp(prefix="cutover-%s-" % name)
        self.layout = layout
        self.plan = os.path.join(self.dir, "cutover.yaml")
        self.replication = "127.0.0.1:%d" % harness.free_port() if data_steps else None
        self.sunset_ahead = sunset_ahead
        write_atomic(self.plan, plan_text(phase, layout.plan, self.replication, sunset_ahead))
        self.agent_threads, self.metrics = agent_threads, metrics
        self.agent_log_level = agent_log_level
        self.procs, self.haproxy, self.stopped = [], None, None
        self.agents = [None] * agents
        self.agent_ports = [harness.free_port() for _ in range(agents)]
        self.agent_addrs = agent_override or ["127.0.0.1:%d" % p for p in self.agent_ports]
        self.agent_history = []  # [agent, how it was stopped: None | signal]
        self.crashes = []
        self.db = {side: os.path.join(self.dir, side + ".db") for side in ("old", "new")}
        self.app_ports = {}
        try:
            self._start(phase, replicator, start_agents)
        except BaseException:
            self.stop(check=False)
            raise

    def _start(self, phase, replicator, start_agents):
        for role, side in self.layout.apps.items():
            port = harness.free_port()
            self.app_ports[role] = port
            self.procs.append(harness.Proc(
                [sys.executable, os.path.join(APPS, "shop.py"), "--role", role,
                 "--db", self.db[side], "--listen", "127.0.0.1:%d" % port],
                role, workdir=self.dir))
        for role, p in zip(self.layout.apps, self.procs):
            harness.wait_port("127.0.0.1", self.app_ports[role], proc=p.proc)
        if replicator:
            self.procs.append(harness.Proc(
                [sys.executable, os.path.join(APPS, "replicator.py"), "--old", self.db["old"],
                 "--new", self.db["new"]], "replicator", workdir=self.dir))
        self.stats_socket = os.path.join(self.dir, "haproxy.sock")
        self.fallback_dir = os.path.join(self.dir, "fallback")
        write_fallback(self.fallback_dir, self.plan)
        for i in range(len(self.agents) if start_agents else 0):
            self.start_agent(i)
        if self.replication:
            p = harness.Proc(
                [sys.executable, os.path.join(APPS, "data_steps.py"), "--old", self.db["old"],
                 "--new", self.db["new"], "--listen", self.replication, "--pidfile-dir",
                 self.dir, "--agents",
                 ",".join("127.0.0.1:%d" % a.metrics_port for a in self.agents)],
                "data-steps", workdir=self.dir)
            self.procs.append(p)
            harness.wait_port("127.0.0.1", int(self.replication.split(":")[1]), proc=p.proc)
        self.http_port = harness.free_port()
        env = self.layout.env(self.http_port, self.agent_addrs,
                              {r: "127.0.0.1:%d" % p for r, p in self.app_ports.items()},
                              self.stats_socket, self.fallback_dir)
        self.haproxy = Haproxy(env, self.dir, cfg=self.layout.haproxy_cfg)
        self.procs.append(self.haproxy)
        self.haproxy_pid = self.haproxy.pid
        if self.layout is SAMPLE:
            self._write_walk_env()
        if start_agents and self.agents:
            self.wait_agents_up()

    def _write_walk_env(self):
        """cutover.env, as scripts/demo writes it, for scripts/walk --run-dir."""
        with open(os.path.join(self.dir, "cutover.env"), "w") as f:
            f.write("CUTOVER_PLAN=%s\nCUTOVER_SPOA=%s\nCUTOVER_HTTP=127.0.0.1:%d\n"
                    "CUTOVER_METRICS=%s\nCUTOVER_OLD_DB=%s\nCUTOVER_NEW_DB=%s\n"
                    "CUTOVER_NEW_QUERY=127.0.0.1:%d\nCUTOVER_NEW_COMMAND=127.0.0.1:%d\n"
                    "CUTOVER_HAPROXY_LOG=%s\n"
                    % (self.plan, harness.agent_binary(), self.http_port,
                       ",".join("127.0.0.1:%d" % a.metrics_port for a in self.agents
                                if a is not None and a.metrics_port),
                       self.db["old"], self.db["new"], self.app_ports["new-query"],
                       self.app_ports["new-command"], self.haproxy.log_path))

    # --- agents ---------------------------------------------------------------

    def start_agent(self, i):
        """Starts agent i on its port (again, after a stop)."""
        if self.agents[i] is not None and self.agents[i].alive():
            raise AssertionError("agent %d is still running" % i)
        runs = sum(1 for a, _ in self.agent_history if a.port == self.agent_ports[i])
        d = os.path.join(self.dir, "agent%d-run%d" % (i + 1, runs + 1))
        os.makedirs(d)
        # The last --log-level given wins over the harness's debug.
        a = harness.Agent(self.plan, threads=self.agent_threads, port=self.agent_ports[i],
                          metrics=self.metrics, workdir=d,
                          extra=["--log-level", self.agent_log_level,
                                 "--fallback-dir", self.fallback_dir,
                                 "--haproxy-socket", self.stats_socket] + self._safety_args(i))
        self.agents[i] = a
        self.agent_history.append([a, None])
        return a

    def stop_agent(self, i, sig=signal.SIGTERM):
        """Stops agent i with sig; returns its exit code. SIGTERM must end
        in exit 0, anything else counts as a crash."""
        a = self.agents[i]
        for entry in self.agent_history:
            if entry[0] is a:
                if not a.alive():
                    self.crashes.append("agent %d (pid %d) was already dead: exit %s"
                                        % (i + 1, a.pid, a.proc.returncode))
                entry[1] = sig
        try:
            rc = a.stop(sig)
        except AssertionError as e:  # sanitizer report, or did not stop
            self.crashes.append("agent %d (pid %d): %s" % (i + 1, a.pid, str(e)[:2000]))
            return None
        if sig == signal.SIGTERM and rc != 0:
            self.crashes.append("agent %d (pid %d) exited %s on SIGTERM" % (i + 1, a.pid, rc))
        return rc

    def agent_log(self, i=None):
        """Text of every log of agent i (all its runs), or of all agents."""
        return "".join(a.log() for a, _ in self.agent_history
                       if i is None or a.port == self.agent_ports[i])

    def agent_phases(self):
        """The phase each running agent reports on /metrics (None: no answer)."""
        out = []
        for a in self.agents:
            try:
                page = http_once.request(a.metrics_port, "GET", "/metrics", timeout=2).text()
                out.append(phase_metric(page))
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

    def set_phase(self, phase):
        write_atomic(self.plan, plan_text(phase, self.layout.plan, self.replication,
                                          self.sunset_ahead))

    # --- HAProxy --------------------------------------------------------------

    def cli(self, command):
        return self.haproxy.cli(command)

    def server_states(self):
        """{server: (operational state, check result)} of the agents'
        backend: (2, 3) is running with its last check passed, 0 down."""
        states = {}
        for line in self.cli("show servers state spoe_cutover").splitlines():
            f = line.split()
            if len(f) > 11 and f[1] == "spoe_cutover":
                states[f[3]] = (int(f[5]), int(f[11]))
        return states

    def wait_agents_up(self, names=None, timeout=15.0):
        """Until HAProxy runs the agents (all this System started, or the
        servers named) with a passed check; returns server_states()."""
        names = names or ["agent%d" % (i + 1) for i, a in enumerate(self.agents)
                          if a is not None and a.alive()]
        deadline = time.monotonic() + timeout
        while True:
            st = self.server_states()
            if all(st.get(n) == (2, 3) for n in names):
                return st
            if time.monotonic() > deadline:
                raise AssertionError("HAProxy does not see %s UP: %r" % (names, st))
            time.sleep(0.1)

    def wait_agents_down(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            st = self.server_states()
            if st and all(s[0] == 0 for s in st.values()):
                return st
            if time.monotonic() > deadline:
                raise AssertionError("HAProxy still sees agents: %r" % st)
            time.sleep(0.1)

    def request(self, method, path, body=None, headers=None, json=None, timeout=10):
        """One request through HAProxy: an http_once.Reply."""
        return http_once.request(self.http_port, method, path, body=body, headers=headers,
                                 json=json, timeout=timeout)

    def haproxy_log(self):
        return self.haproxy.log()

    def _safety_args(self, i):
        if not self.replication:
            return []
        state = os.path.join(self.dir, "agent%d-state" % (i + 1))
        os.makedirs(state, exist_ok=True)
        return ["--state-dir", state, "--journal", self.journal(i)]

    def journal(self, i):
        return os.path.join(self.dir, "agent%d.journal" % (i + 1))

    # --- stop -----------------------------------------------------------------

    def stop(self, check=True):
        """Stops everything (a replicator scripts/walk started, the agents,
        then the rest, HAProxy first) and returns the crashes seen: agents
        dead unasked, non-zero exits, sanitizer reports, HAProxy or an app
        found dead. The files go when nothing crashed (check=True), unless
        CUTOVER_KEEP_LOGS=1. A second call returns the same list."""
        if self.stopped is not None:
            return self.stopped
        self._stop_walk_replicator()
        for i, a in enumerate(self.agents):
            if a is not None and a.alive():
                self.stop_agent(i)
            elif a is not None and not any(e[0] is a and e[1] for e in self.agent_history):
                self.crashes.append("agent %d (pid %d) died unasked: exit %s"
                                    % (i + 1, a.pid, a.proc.returncode))
                try:
                    a.stop()
                except AssertionError as e:
                    self.crashes.append(str(e)[:2000])
        for p in reversed(self.procs):
            name = os.path.basename(p.log_path)
            if not p.alive():
                self.crashes.append("%s (pid %d) died: exit %s" % (name, p.pid, p.proc.returncode))
            try:
                p.stop()
            except AssertionError as e:
                self.crashes.append(str(e))
        self.stopped = self.crashes
        if check and not self.crashes and os.environ.get("CUTOVER_KEEP_LOGS") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.crashes

    def _stop_walk_replicator(self):
        pidfile = os.path.join(self.dir, "replicator.pid")
        if not os.path.exists(pidfile):  # started by scripts/walk: not our child
            return
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


def phase_metric(page):
    """cutover_phase_effective from a /metrics page, or None."""
    for line in page.splitlines():
        if line.startswith("cutover_phase_effective ") or line.startswith("cutover_phase_effective{"):
            value = line.rsplit(None, 1)[-1]
            return int(value) if value.isdigit() else None
    return None
