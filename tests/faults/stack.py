"""The whole system on free loopback ports, for the fault cases: the four
sample apps on their OLD and NEW databases, the replicator, two agents on a
private copy of conf/cutover.yaml, and HAProxy with haproxy/haproxy.cfg
(addresses through its CUTOVER_* environment variables).

Every process is started through the harness and stopped by its PID. The
Stack remembers every agent it started and how each one ended, so a case can
count crashes: an agent that died without being told to, that exited non-zero
on SIGTERM, or that left a sanitizer report.
"""
import http.client
import os
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

# info, not the harness's debug: a line per frame would be most of the
# agent's work under load (the last --log-level given wins).
AGENT_LOG_LEVEL = ["--log-level", "info"]


class Stack:
    def __init__(self, phase, name="stack", agents=2, replicator=True, agent_override=None,
                 start_agents=True):
        """agent_override: HAProxy's two agent addresses, for agents the
        caller runs itself (then pass agents=0). start_agents=False: HAProxy
        starts while no agent runs; start_agent(i) starts them later."""
        self.start_agents = start_agents
        self.dir = tempfile.mkdtemp(prefix="cutover-faults-%s-" % name)
        self.plan_path = os.path.join(self.dir, "cutover.yaml")
        write_atomic(self.plan_path, plan_text(phase))
        self.procs = []
        self.agents = [None] * agents
        self.agent_ports = [harness.free_port() for _ in range(agents)]
        self.agent_addrs = agent_override or ["127.0.0.1:%d" % p for p in self.agent_ports]
        self.agent_history = []  # (agent, how it was stopped: None | signal)
        self.crashes = []
        try:
            self._start(phase, replicator)
        except BaseException:
            self.stop(check=False)
            raise

    # --- start ----------------------------------------------------------------

    def _start(self, phase, replicator):
        self.db = {side: os.path.join(self.dir, side + ".db") for side in ("old", "new")}
        self.app_ports = {}
        for role in ROLES:
            port = harness.free_port()
            self.app_ports[role] = port
            p = harness.Proc([sys.executable, os.path.join(APPS, "shop.py"), "--role", role,
                              "--db", self.db[role.split("-")[0]], "--listen",
                              "127.0.0.1:%d" % port], role, workdir=self.dir)
            self.procs.append(p)
        for role in ROLES:
            harness.wait_port("127.0.0.1", self.app_ports[role], proc=self._proc(role).proc)
        if replicator:
            self.procs.append(harness.Proc(
                [sys.executable, os.path.join(APPS, "replicator.py"), "--old", self.db["old"],
                 "--new", self.db["new"]], "replicator", workdir=self.dir))
        for i in range(len(self.agents) if self.start_agents else 0):
            self.start_agent(i)
        self.http_port = harness.free_port()
        self.stats_socket = os.path.join(self.dir, "haproxy.sock")
        env = {
            "CUTOVER_HTTP_BIND": "127.0.0.1:%d" % self.http_port,
            "CUTOVER_AGENT1": self.agent_addrs[0],
            "CUTOVER_AGENT2": self.agent_addrs[-1],
            "CUTOVER_OLD_QUERY": "127.0.0.1:%d" % self.app_ports["old-query"],
            "CUTOVER_OLD_COMMAND": "127.0.0.1:%d" % self.app_ports["old-command"],
            "CUTOVER_NEW_QUERY": "127.0.0.1:%d" % self.app_ports["new-query"],
            "CUTOVER_NEW_COMMAND": "127.0.0.1:%d" % self.app_ports["new-command"],
            "CUTOVER_DEFAULT_APP": "127.0.0.1:%d" % self.app_ports["old-query"],
            "CUTOVER_SPOE_CONF": SPOE_CONF,
            "CUTOVER_STATS_SOCKET": self.stats_socket,
            "CUTOVER_LOG": "stdout",
            "CUTOVER_START_PHASE": str(phase),
            # One thread, as the e2e suite: with two, HAProxy may drop a log
            # line when the other thread holds stdout.
            "CUTOVER_NBTHREAD": "1",
        }
        haproxy = os.environ.get("HAPROXY", "haproxy")
        e = dict(os.environ, **env)
        check = subprocess.run([haproxy, "-c", "-f", HAPROXY_CFG], env=e, capture_output=True,
                               text=True, cwd=harness.ROOT)
        assert check.returncode == 0, "haproxy -c: %s%s" % (check.stdout, check.stderr)
        self.haproxy = harness.Proc([haproxy, "-db", "-f", HAPROXY_CFG], "haproxy", env=env,
                                    workdir=self.dir)
        self.procs.append(self.haproxy)
        self.haproxy_pid = self.haproxy.pid
        harness.wait_port("127.0.0.1", self.http_port, proc=self.haproxy.proc)
        # HAProxy may listen on HTTP a moment before its stats socket exists.
        deadline = time.monotonic() + 10
        while not os.path.exists(self.stats_socket):
            assert self.haproxy.alive() and time.monotonic() < deadline, \
                "HAProxy has no stats socket at %s" % self.stats_socket
            time.sleep(0.02)
        if self.start_agents:
            self.wait_agents_up()

    def _proc(self, name):
        return next(p for p in self.procs if os.path.basename(p.log_path) == name + ".log")

    def start_agent(self, i):
        """Starts agent i on its port (again, after a stop)."""
        if self.agents[i] is not None and self.agents[i].alive():
            raise AssertionError("agent %d is still running" % i)
        a = harness.Agent(self.plan_path, threads=2, port=self.agent_ports[i],
                          extra=AGENT_LOG_LEVEL, workdir=self._agent_dir(i))
        self.agents[i] = a
        self.agent_history.append([a, None])
        return a

    def _agent_dir(self, i):
        runs = sum(1 for a, _ in self.agent_history if a.port == self.agent_ports[i])
        d = os.path.join(self.dir, "agent%d-run%d" % (i + 1, runs + 1))
        os.makedirs(d)
        return d

    # --- faults ---------------------------------------------------------------

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
        out = []
        for a, _ in self.agent_history:
            if i is None or a.port == self.agent_ports[i]:
                out.append(a.log())
        return "".join(out)

    def set_phase(self, phase):
        write_atomic(self.plan_path, plan_text(phase))

    # --- HAProxy --------------------------------------------------------------

    def haproxy_cmd(self, cmd):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.stats_socket)
        s.sendall(cmd.encode() + b"\n")
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        s.close()
        return out.decode()

    def agent_states(self):
        """{"agent1": "UP"|"DOWN"|..., ...} from HAProxy's stats."""
        out = {}
        for line in self.haproxy_cmd("show stat").splitlines():
            f = line.split(",")
            if len(f) > 17 and f[0] == "spoe_cutover" and f[1].startswith("agent"):
                out[f[1]] = f[17]
        return out

    def wait_agents_up(self, names=None, timeout=15.0):
        names = names or ["agent%d" % (i + 1) for i in range(len(self.agents))
                          if self.agents[i] is not None and self.agents[i].alive()]
        deadline = time.monotonic() + timeout
        while True:
            st = self.agent_states()
            if all(st.get(n, "").startswith("UP") for n in names):
                return
            if time.monotonic() > deadline:
                raise AssertionError("HAProxy does not see %s UP: %r" % (names, st))
            time.sleep(0.1)

    def wait_agents_down(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            st = self.agent_states()
            if st and all(v.startswith("DOWN") for v in st.values()):
                return
            if time.monotonic() > deadline:
                raise AssertionError("HAProxy still sees agents: %r" % st)
            time.sleep(0.1)

    def request(self, method, path, body=None, timeout=10):
        """One request through HAProxy -> (status, X-Served-By, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            return r.status, r.getheader("X-Served-By"), data
        finally:
            c.close()

    def haproxy_log(self):
        return self.haproxy.log()

    # --- stop -----------------------------------------------------------------

    def stop(self, check=True):
        """Stops everything (agents first, HAProxy last) and returns the
        crashes seen: agents dead unasked, non-zero exits, sanitizer reports,
        HAProxy or an app found dead."""
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
        if check and not self.crashes and os.environ.get("CUTOVER_KEEP_LOGS") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.crashes
