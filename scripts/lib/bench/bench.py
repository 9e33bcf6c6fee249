#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The body of scripts/bench (read its header first).

Three measurements, each alternating its variants round after round (A B C,
C B A, ...) so that drift of a shared, noisy machine spreads over all of them:

  1. end to end: wrk through HAProxy routing natively (native.cfg), through
     HAProxy asking cutover-spoa (haproxy/haproxy.cfg + haproxy/cutover.spoe,
     used as shipped) and, given --peer, through native.cfg plus cutover.spoe's
     exchange with a reference agent that does not route; all in front of the
     stub apps (stubs.cfg);
  2. the agent alone, driven by spop-load with 10 and 1,000 connections;
  3. plans of 4 and 1,000 routes, driven by spop-load, plus an instruction
     count per decision under callgrind when valgrind is there.

Figures are reported, never judged: the last table compares them with issue
13's targets (2.6 or 3.x, from `haproxy -v`) for the reader. Exit 0 with a
table, 1 when something could not be measured (a process failed, a proxy
routed the mix unlike native, or an agent did not answer).
"""
import argparse
import calendar
import email.utils
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.dirname(HERE))
import harness  # noqa: E402  (Proc, free_port, wait_port)
import http_once  # noqa: E402
import plan_phase  # noqa: E402
import plans  # noqa: E402
import system  # noqa: E402  (the HAProxy of haproxy/haproxy.cfg)

BENCH_PHASE = 8
VARIANTS = ("native", "peer", "cutover")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIX = os.path.join(HERE, "mix.txt")


def deprecation_headers(text):
    """The sample plan's (one) deprecation block as native.cfg sends it, in
    the values cutover's agent gives HAProxy: BENCH_DEPRECATION (@epoch),
    BENCH_SUNSET (IMF-fixdate) and BENCH_POLICY."""
    def when(name):
        m = re.search(r"\b%s:\s*(\d{4}-\d{2}-\d{2})(?:T(\d{2}):(\d{2}):(\d{2})Z)?" % name, text)
        if not m:
            raise Failure("the benchmark plan has no deprecation %s" % name)
        day = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%d"))
        return day + sum(int(v or 0) * k for v, k in zip(m.groups()[1:], (3600, 60, 1)))
    policy = re.search(r"\bpolicy:\s*\"?([^\s\",}]+)", text)
    if not policy:
        raise Failure("the benchmark plan has no deprecation policy")
    return {"BENCH_DEPRECATION": "@%d" % when("date"),
            "BENCH_SUNSET": email.utils.formatdate(when("sunset"), usegmt=True),
            "BENCH_POLICY": policy.group(1)}


class Failure(Exception):
    """Something the benchmark needs did not work; the run stops."""


# ---- processes and /proc ----------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of every thread of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wakeups(pid):
    """Voluntary context switches of every thread of pid: how often it slept
    (in epoll_wait, a read, a sleep) and was woken."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        n += int(line.split()[1])
        except OSError:
            pass  # a thread that ended meanwhile
    return n


def machine_ticks():
    """(all, steal) CPU ticks of the machine so far, from /proc/stat: steal
    is the time the hypervisor ran something else while this machine had
    work (on a shared host it makes every figure here noisier)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return sum(ticks[:8]), ticks[7]


class Processes:
    """Everything the run starts, stopped by PID in reverse order."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, argv, name, env=None, port=None, host="127.0.0.1", timeout=10.0):
        p = harness.Proc(argv, name, env=env, workdir=self.workdir)
        self.procs.append(p)
        if port is not None:
            try:
                harness.wait_port(host, port, timeout=timeout, proc=p.proc)
            except AssertionError as e:
                raise Failure("%s: %s\n%s" % (name, e, p.log()[-2000:]))
        return p

    def stop(self, p):
        if p in self.procs:
            self.procs.remove(p)
        try:
            p.stop(signal.SIGTERM, timeout=10.0)
        except AssertionError as e:
            print("bench: %s" % e, file=sys.stderr)

    def stop_all(self):
        while self.procs:
            self.stop(self.procs[-1])


def run(argv, timeout):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True)
    return r.returncode, r.stdout, r.stderr


def run_env(argv, env, timeout):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True, env=dict(os.environ, **env), cwd=ROOT)
    return r.returncode, r.stdout, r.stderr


def haproxy_version(binary):
    """(first line of `haproxy -v`, (major, minor))."""
    out = subprocess.run([binary, "-v"], stdout=subprocess.PIPE, text=True).stdout
    line = out.splitlines()[0] if out else binary
    m = re.search(r"version (\d+)\.(\d+)", line)
    return line, (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def unique_id_format():
    """haproxy/haproxy.cfg's unique-id-format, when cutover.spoe's message
    sends the unique id (the peer variant must compute it too); else None."""
    with open(system.SPOE_CONF) as f:
        if not re.search(r"^\s*args\b.*\bunique-id\b", f.read(), re.M):
            return None
    with open(system.HAPROXY_CFG) as f:
        m = re.search(r"^\s*unique-id-format\s+(.+?)\s*$", f.read(), re.M)
    if not m:
        return None
    value = m.group(1)
    if len(value) > 1 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value.replace("\\ ", " ")


# ---- measurements -----------------------------------------------------------

def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out):
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    n = re.search(r"(\d+) requests in", out)
    if not m or not n:
        raise Failure("wrk printed no result:\n" + out)
    lat = {p: to_ms(v, u) for p, v, u in
           re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return {"rps": float(m.group(1)), "requests": int(n.group(1)),
            "p50": lat.get("50"), "p99": lat.get("99"), "errors": errors}


def parse_kv(out):
    line = out.strip().splitlines()[-1] if out.strip() else ""
    kv = dict(item.split("=", 1) for item in line.split() if "=" in item)
    if "decisions" not in kv:
        raise Failure("spop-load printed no result:\n" + out)
    return kv


def wrk(addr, seconds, connections=50):
    argv = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--latency",
            "-s", os.path.join(HERE, "mix.lua"), "http://%s/" % addr, "--", MIX]
    rc, out, err = run(argv, seconds + 30)
    if rc != 0:
        raise Failure("wrk failed (%d): %s" % (rc, err))
    return parse_wrk(out)


def callgrind_dumped(out):
    """Instructions counted between `callgrind_control --zero` and the first
    `--dump` of a run writing to out: that dump is out.1 (out holds start-up,
    before the zeroing, and shutdown). None without one."""
    try:
        with open(out + ".1") as fh:
            m = re.search(r"^summary:\s+(\d+)", fh.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def spop_load(binary, port, pid, connections, seconds, paths, requests=None, inflight=20):
    argv = [binary, "--connect", "127.0.0.1:%d" % port, "--connections", str(connections),
            "--inflight", str(inflight), "--duration", str(seconds), "--paths", paths,
            "--pid", str(pid)]
    if requests:
        argv += ["--requests", str(requests)]
    rc, out, err = run(argv, seconds + 60)
    kv = parse_kv(out)
    if rc != 0:
        raise Failure("spop-load reported errors (%d): %s\n%s" % (rc, out.strip(), err[-2000:]))
    return kv


# ---- the run ----------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.rounds = 1 if self.quick else args.rounds
        self.wrk_seconds = 1 if self.quick else args.seconds
        self.direct_seconds = 1 if self.quick else max(2, args.seconds // 2)
        self.haproxy = os.environ.get("HAPROXY", "haproxy")
        self.version = haproxy_version(self.haproxy)
        self.peer_binary = args.peer
        self.agent_threads = args.agent_threads
        self.variants = [v for v in VARIANTS if v != "peer" or self.peer_binary]
        self.spoa = os.path.join(args.build, "cutover-spoa")
        self.load = os.path.join(args.build, "spop-load")
        self.workdir = tempfile.mkdtemp(prefix="cutover-bench-")
        self.procs = Processes(self.workdir)
        self.e2e = {v: [] for v in self.variants}
        self.proxies, self.agents_e2e = {}, {}
        self.launch = {}  # variant: (argv, env, cwd) of its proxy, for callgrind
        self.haproxy_instructions = {}
        self.direct = {10: [], 1000: []}
        self.routes = {4: [], 1000: []}
        self.instructions = {}
        self.notes = []

    # -- helpers
    def agent(self, plan, name="agent", valgrind=None, threads=1):
        port = harness.free_port()
        argv = [self.spoa, "--config", plan, "--listen", "127.0.0.1:%d" % port,
                "--threads", str(threads), "--log-level", "warn", "--max-connections", "4096"]
        if valgrind:
            argv = valgrind + argv
        p = self.procs.start(argv, name, port=port, timeout=60.0 if valgrind else 10.0)
        p.port = port
        return p

    def phase_plan(self):
        src = os.path.join(ROOT, "conf", "cutover.yaml")
        with open(src) as f:
            text = f.read()
        try:
            # Past the sunset the agent would answer 410 where native routes.
            text = plan_phase.set_phase(system.sunsets_ahead(text), BENCH_PHASE)
        except ValueError as e:
            raise Failure("%s: %s" % (src, e))
        self.deprecation_headers = deprecation_headers(text)
        path = os.path.join(self.workdir, "plan-phase%d.yaml" % BENCH_PHASE)
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = run([self.spoa, "--check", path], 30)
        if rc != 0:
            raise Failure("the benchmark plan does not load: %s%s" % (out, err))
        return path

    # -- 1. end to end
    def start_e2e(self):
        stub = {k: "127.0.0.1:%d" % harness.free_port() for k in
                ("OLD_QUERY", "OLD_COMMAND", "NEW_QUERY", "NEW_COMMAND")}
        env = {"BENCH_" + k: v for k, v in stub.items()}
        self.procs.start([self.haproxy, "-db", "-f", os.path.join(HERE, "stubs.cfg")], "stubs",
                         env=env, port=int(stub["NEW_COMMAND"].split(":")[1]))
        apps = {"CUTOVER_" + k: v for k, v in stub.items()}
        apps["CUTOVER_DEFAULT_APP"] = stub["OLD_QUERY"]

        plan = self.phase_plan()
        apps.update(self.deprecation_headers)
        self.proxies["native"] = self.native_proxy("haproxy-native", apps)

        if self.peer_binary:
            port = harness.free_port()
            # The reference agent's options: -p port, -n worker threads, -c capability.
            self.agents_e2e["peer"] = self.procs.start(
                [self.peer_binary, "-p", str(port), "-n", str(self.agent_threads),
                 "-c", "pipelining"], "peer", port=port)
            spoe = {"BENCH_SPOE_CONF": system.SPOE_CONF, "BENCH_PEER_ADDR": "127.0.0.1:%d" % port}
            uid = unique_id_format()
            if uid:
                spoe["BENCH_UNIQUE_ID_FORMAT"] = uid
            self.proxies["peer"] = self.native_proxy("haproxy-peer", dict(apps, **spoe))

        fallback_dir = os.path.join(self.workdir, "fallback")
        os.makedirs(fallback_dir, exist_ok=True)
        rc, out, err = run([self.spoa, "--write-fallback", fallback_dir, plan], 30)
        if rc != 0:
            raise Failure("cannot write the fallback map: %s%s" % (out, err))
        agent = self.agent(plan, "agent-e2e", threads=self.agent_threads)
        self.agents_e2e["cutover"] = agent
        cut_port = harness.free_port()
        # One agent: both server lines of spoe_cutover name it.
        roles = {k.lower().replace("_", "-"): v for k, v in stub.items()}
        env = system.haproxy_env(cut_port, ["127.0.0.1:%d" % agent.port], roles,
                                 os.path.join(self.workdir, "haproxy.sock"), fallback_dir)
        try:
            cutover = system.Haproxy(env, self.workdir, name="haproxy-cutover")
        except AssertionError as e:
            raise Failure("haproxy-cutover: %s" % e)
        self.launch["cutover"] = ([self.haproxy, "-db", "-f", system.HAPROXY_CFG], env, ROOT)
        self.procs.procs.append(cutover)
        cutover.addr = "127.0.0.1:%d" % cut_port
        self.proxies["cutover"] = cutover

    def native_proxy(self, name, env):
        """HAProxy on native.cfg; with BENCH_SPOE_CONF in env, the peer variant."""
        port = harness.free_port()
        env = dict(env, BENCH_HTTP_BIND="127.0.0.1:%d" % port)
        cfg = os.path.join(HERE, "native.cfg")
        rc, out, err = run_env([self.haproxy, "-c", "-f", cfg], env, 30)
        if rc != 0:
            raise Failure("%s: haproxy -c: %s%s" % (name, out, err))
        p = self.procs.start([self.haproxy, "-db", "-f", cfg], name, env=env, port=port)
        p.addr = "127.0.0.1:%d" % port
        self.launch["peer" if "BENCH_SPOE_CONF" in env else "native"] = (
            [self.haproxy, "-db", "-f", cfg], env, None)
        return p

    @staticmethod
    def mix():
        with open(MIX) as f:
            for line in f:
                fields = line.split()
                if fields and not fields[0].startswith("#"):
                    yield fields

    @staticmethod
    def fetch(addr, method, path, host, client):
        headers = {}
        if host != "-":
            headers["Host"] = host
        if client != "-":
            headers["X-Api-Client"] = client
        r = http_once.request(addr, method, path, headers=headers, timeout=5)
        return (r.status, r.header("X-Served-By"), r.text().strip(), r.header("Deprecation"),
                r.header("Sunset"), r.header("Link"))

    def exchanges(self, variant):
        """From the cutover or peer proxy's log since the last truncation:
        (requests the fallback routed, SPOE errors, requests logged with an
        exchange). cutover logs fb= and phase= (the agent decided); the peer
        variant logs pt= (the exchange took place) and err=, never falls back."""
        text = self.proxies[variant].log()
        errors = len(re.findall(r" err=\d", text))
        if variant == "cutover":
            return (len(re.findall(r" fb=1\b", text)), errors,
                    len(re.findall(r" phase=\d", text)))
        return 0, errors, len(re.findall(r" pt=\d", text))

    def truncate_logs(self):
        for p in self.proxies.values():
            os.truncate(p.log_path, 0)

    def check_equivalence(self):
        """Every proxy must route every request of the mix as native does; the
        cutover side must have been decided by the agent, and the peer side
        must have exchanged with its agent, without error."""
        deadline = time.monotonic() + 15
        while True:
            self.truncate_logs()
            diffs = []
            for method, path, host, client in self.mix():
                a = self.fetch(self.proxies["native"].addr, method, path, host, client)
                for v in self.variants[1:]:
                    b = self.fetch(self.proxies[v].addr, method, path, host, client)
                    if a != b:
                        diffs.append("%s %s: native %s, %s %s" % (method, path, a, v, b))
            time.sleep(0.2)  # the log line follows the response
            bad = []
            for v in self.variants[1:]:
                fb, err, exchanged = self.exchanges(v)
                if fb or err or not exchanged:
                    bad.append("%s: %d fallbacks, %d SPOE errors, %d exchanges logged"
                               % (v, fb, err, exchanged))
            if not diffs and not bad:
                return
            if time.monotonic() > deadline:
                raise Failure("the proxies do not route alike, or an agent did not answer:"
                              "\n  %s" % "\n  ".join(bad + diffs))
            time.sleep(0.5)

    def e2e_round(self, variant, seconds, record=True):
        p = self.proxies[variant]
        agent = self.agents_e2e.get(variant)
        self.truncate_logs()
        h0, hw0 = cpu_seconds(p.pid), wakeups(p.pid)
        a0, aw0 = (cpu_seconds(agent.pid), wakeups(agent.pid)) if agent else (None, None)
        r = wrk(p.addr, seconds)
        n = max(r["requests"], 1)
        r["haproxy_us"] = (cpu_seconds(p.pid) - h0) * 1e6 / n
        r["haproxy_wakeups"] = (wakeups(p.pid) - hw0) / n
        r["agent_us"] = (cpu_seconds(agent.pid) - a0) * 1e6 / n if agent else None
        r["agent_wakeups"] = (wakeups(agent.pid) - aw0) / n if agent else None
        if agent:
            time.sleep(0.2)
            r["fallbacks"], r["spoe_errors"], _ = self.exchanges(variant)
        if record:
            self.e2e[variant].append(r)
        return r

    def measure_e2e(self):
        self.start_e2e()
        self.check_equivalence()
        if not self.quick:
            for v in self.variants:
                self.e2e_round(v, 2, record=False)  # warm-up
        for i in range(self.rounds):
            order = self.variants if i % 2 == 0 else self.variants[::-1]
            for v in order:
                r = self.e2e_round(v, self.wrk_seconds)
                print("bench: e2e round %d %-7s %8.0f req/s p99 %.2f ms" % (
                    i + 1, v, r["rps"], r["p99"] or 0), file=sys.stderr)
        self.haproxy_work()
        self.procs.stop_all()

    def haproxy_work(self):
        """HAProxy's own work per request, per variant, in instructions
        (user space), which other load on the machine does not change: a
        second HAProxy of the same configuration under callgrind, on fresh
        ports, beside the first (same agents, same apps), asked by wrk with
        10 connections; its counters are zeroed after a warm-up and dumped
        after the load, and divided by the requests wrk completed."""
        if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
            self.notes.append("valgrind not found: no HAProxy instruction counts.")
            return
        for v in self.variants:
            argv, env, cwd = self.launch[v]
            port = harness.free_port()
            env = dict(env)
            for k in ("BENCH_HTTP_BIND", "CUTOVER_HTTP_BIND"):
                if k in env:
                    env[k] = "127.0.0.1:%d" % port
            if "CUTOVER_PROM_BIND" in env:
                env["CUTOVER_PROM_BIND"] = "127.0.0.1:%d" % harness.free_port()
            if "CUTOVER_STATS_SOCKET" in env:
                env["CUTOVER_STATS_SOCKET"] = os.path.join(self.workdir, "callgrind-%s.sock" % v)
            out = os.path.join(self.workdir, "callgrind-haproxy-%s.out" % v)
            p = harness.Proc(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out] + argv,
                             "haproxy-%s-callgrind" % v, env=env, workdir=self.workdir, cwd=cwd)
            self.procs.procs.append(p)
            addr = "127.0.0.1:%d" % port
            try:
                harness.wait_port("127.0.0.1", port, timeout=60, proc=p.proc)
            except AssertionError as e:
                raise Failure("%s under callgrind: %s\n%s" % (v, e, p.log()[-2000:]))
            wrk(addr, 1 if self.quick else 2, connections=10)
            run(["callgrind_control", "--zero", str(p.pid)], 30)
            r = wrk(addr, 2 if self.quick else 6, connections=10)
            run(["callgrind_control", "--dump", str(p.pid)], 30)
            self.procs.stop(p)
            total = callgrind_dumped(out)
            if total is None or not r["requests"]:
                self.notes.append("callgrind gave no count for HAProxy (%s)." % v)
                continue
            self.haproxy_instructions[v] = total / r["requests"]
            print("bench: HAProxy %-7s %8.0f instructions/request (callgrind, %d requests)"
                  % (v, self.haproxy_instructions[v], r["requests"]), file=sys.stderr)

    # -- 2. the agent alone
    def measure_direct(self):
        plan = self.phase_plan()
        for i in range(self.rounds):
            for conns in ((10, 1000) if i % 2 == 0 else (1000, 10)):
                a = self.agent(plan, "agent-direct")
                kv = spop_load(self.load, a.port, a.pid, conns, self.direct_seconds, MIX)
                self.procs.stop(a)
                self.direct[conns].append(kv)
                print("bench: direct round %d %4d conns %8s decisions/s p99 %s us rss %s KiB"
                      % (i + 1, conns, kv["rate"], kv["p99_us"], kv.get("agent_rss_kib")),
                      file=sys.stderr)

    # -- 3. 4 routes against 1,000
    def measure_routes(self):
        files = {}
        for n in (4, 1000):
            plan = os.path.join(self.workdir, "plan-%d-routes.yaml" % n)
            paths = os.path.join(self.workdir, "paths-%d-routes.txt" % n)
            plans.write(n, plan, paths)
            rc, out, err = run([self.spoa, "--check", plan], 60)
            if rc != 0:
                raise Failure("generated %d-route plan does not load: %s%s" % (n, out, err))
            files[n] = (plan, paths)
        for i in range(self.rounds):
            for n in ((4, 1000) if i % 2 == 0 else (1000, 4)):
                a = self.agent(files[n][0], "agent-routes")
                kv = spop_load(self.load, a.port, a.pid, 10, self.direct_seconds, files[n][1])
                self.procs.stop(a)
                self.routes[n].append(kv)
                print("bench: routes round %d %4d routes %8s decisions/s %s us CPU/decision"
                      % (i + 1, n, kv["rate"], kv.get("agent_cpu_us_per_decision")),
                      file=sys.stderr)
        if shutil.which("valgrind") and shutil.which("callgrind_control"):
            for n in (4, 1000):
                self.instructions[n] = self.callgrind(files[n][0], files[n][1])
        else:
            self.notes.append("valgrind not found: no instruction counts.")

    def callgrind(self, plan, paths):
        """Instructions the agent executes per decision, counted by callgrind
        between a zeroing after start-up and a dump after the load."""
        requests = 2000 if self.quick else 20000
        out = os.path.join(self.workdir, "callgrind.out")
        for f in os.listdir(self.workdir):
            if f.startswith("callgrind.out"):
                os.unlink(os.path.join(self.workdir, f))
        a = self.agent(plan, "agent-callgrind",
                       valgrind=["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out])
        run(["callgrind_control", "--zero", str(a.pid)], 30)
        spop_load(self.load, a.port, a.pid, 10, 120, paths, requests=requests)
        run(["callgrind_control", "--dump", str(a.pid)], 30)
        self.procs.stop(a)
        total = callgrind_dumped(out)
        if total is None:
            self.notes.append("callgrind gave no dump: no instruction counts.")
            return None
        return total / requests

    def run(self):
        self.load_start = open("/proc/loadavg").read().split()[0]
        self.ticks_start = machine_ticks()
        try:
            self.measure_e2e()
            if not self.args.e2e_only:
                self.measure_direct()
                self.measure_routes()
        finally:
            self.procs.stop_all()


# ---- the tables -------------------------------------------------------------

def med(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def fmt(triple, digits=0, thousands=True):
    m, lo, hi = triple
    if m is None:
        return "n/a"
    f = "{:,.%df}" % digits if thousands else "{:.%df}" % digits
    if lo == hi:
        return f.format(m)
    return "%s (%s–%s)" % (f.format(m), f.format(lo), f.format(hi))


def agent_pct(kv):
    return 100.0 * float(kv["agent_cpu_s"]) / float(kv["seconds"])


LABELS = {"native": "native (ACLs)", "peer": "peer (SPOE, exchange only)",
          "cutover": "cutover (SPOE)"}


def within(b, variant, base, key="rps"):
    """variant/base of one figure, round by round (both ran in that round)."""
    return [v[key] / n[key] for n, v in zip(b.e2e[base], b.e2e[variant]) if n[key]]


def report_e2e(b, out):
    out("## 1. End to end: wrk -t1 -c50, %d s a round, HAProxy nbthread 1, agents with %d "
        "thread(s)" % (b.wrk_seconds, b.agent_threads))
    out("")
    out("| variant | requests/s | × native | p50 ms | p99 ms | HAProxy CPU µs/req | "
        "agent CPU µs/req | HAProxy wake-ups/req | agent wake-ups/req | "
        "HAProxy instructions/req | errors |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    for v in b.variants:
        rs = b.e2e[v]
        ins = b.haproxy_instructions.get(v)
        out("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            LABELS[v], fmt(med([r["rps"] for r in rs])),
            fmt(med(within(b, v, "native")), 3) if v != "native" else "1",
            fmt(med([r["p50"] for r in rs]), 2), fmt(med([r["p99"] for r in rs]), 2),
            fmt(med([r["haproxy_us"] for r in rs]), 1),
            fmt(med([r["agent_us"] for r in rs]), 2) if v != "native" else "–",
            fmt(med([r["haproxy_wakeups"] for r in rs]), 3),
            fmt(med([r["agent_wakeups"] for r in rs]), 3) if v != "native" else "–",
            "{:,.0f}".format(ins) if ins else "n/a",
            sum(r["errors"] for r in rs)))
    if "peer" in b.variants:
        ins = instructions_within(b, "cutover", "peer")
        out("| cutover/peer | %s | | | | %s | %s | | | %s | |" % (
            fmt(med(within(b, "cutover", "peer")), 3),
            fmt(med(within(b, "cutover", "peer", "haproxy_us")), 3),
            fmt(med(within(b, "cutover", "peer", "agent_us")), 3),
            "%.3f" % ins if ins else "n/a"))
    out("")
    out("Medians (min–max) over the rounds; every ratio is taken within a round (the "
        "variants ran back to back) and then its median. CPU is utime + stime from "
        "/proc over the wrk run, divided by the requests wrk completed; wake-ups are "
        "voluntary context switches (every thread), likewise. HAProxy instructions/req: "
        "one run per variant of a second HAProxy of the same configuration under callgrind "
        "(user space only, so not its system calls), wrk -c10, counted after a warm-up; "
        "unlike CPU time they do not depend on what else the machine runs.")
    if "peer" in b.variants:
        out("The peer is `%s -n %d -c pipelining`, asked cutover.spoe's message with its "
            "arguments by native.cfg: it answers without routing, HAProxy routes with its "
            "ACLs, so its row is native routing plus the cost of the exchange alone."
            % (os.path.basename(b.peer_binary), b.agent_threads))
    cut = b.e2e["cutover"]
    out("Cutover: requests routed without an agent answer (fallback): %d; SPOE errors: %d."
        % (sum(r["fallbacks"] for r in cut), sum(r["spoe_errors"] for r in cut)))
    if "peer" in b.variants:
        out("Peer: SPOE errors: %d (each such request waited for the exchange, up to "
            "`timeout processing`, then went on; the ACLs route it either way)."
            % sum(r["spoe_errors"] for r in b.e2e["peer"]))


def instructions_within(b, variant, base):
    a, n = b.haproxy_instructions.get(variant), b.haproxy_instructions.get(base)
    return a / n if a and n else None


def times(triple):
    """A ratio's median and range: 0.812× (0.701–0.930)."""
    m, lo, hi = triple
    return "n/a" if m is None else "%.3f× (%.3f–%.3f)" % (m, lo, hi)


def report_summary(b, out):
    """One row in the form of issue 13's table, for this HAProxy."""
    def cpu(v, key):
        return fmt(med([r[key] for r in b.e2e[v]]), 1 if key == "haproxy_us" else 2)

    peer = "peer" in b.variants
    out("## In issue 13's form")
    out("")
    out("| HAProxy | native ACLs | SPOE + %s | SPOE + cutover | HAProxy µs/req (native / peer / "
        "cutover) | agent µs/req (peer / cutover) | HAProxy instructions/req (native / peer / "
        "cutover) |" % (os.path.basename(b.peer_binary) if peer else "peer"))
    out("|---|---|---|---|---|---|---|")
    ins = [b.haproxy_instructions.get(v) for v in ("native", "peer", "cutover")]
    out("| %s | %s req/s | %s | %s | %s / %s / %s | %s / %s | %s |" % (
        b.version[0].split()[2] if len(b.version[0].split()) > 2 else b.version[0],
        fmt(med([r["rps"] for r in b.e2e["native"]])),
        "%s; %s" % (fmt(med([r["rps"] for r in b.e2e["peer"]])),
                    times(med(within(b, "peer", "native")))) if peer else "–",
        "%s; %s" % (fmt(med([r["rps"] for r in b.e2e["cutover"]])),
                    times(med(within(b, "cutover", "native")))),
        cpu("native", "haproxy_us"), cpu("peer", "haproxy_us") if peer else "–",
        cpu("cutover", "haproxy_us"), cpu("peer", "agent_us") if peer else "–",
        cpu("cutover", "agent_us"),
        " / ".join("{:,.0f}".format(x) if x else "–" for x in ins)))
    out("")
    out("Medians (min–max over the rounds); the × figures are the medians of the per-round "
        "ratios to native.")


def report_direct(b, out):
    out("## 2. The agent alone: spop-load, 20 NOTIFYs in flight per connection, agent --threads 1")
    out("")
    out("| connections | decisions/s | agent CPU % | decisions per agent CPU-second | "
        "p50 µs/frame | p99 µs/frame | agent CPU µs/decision | agent RSS MiB | load generator CPU % |")
    out("|---|---|---|---|---|---|---|---|---|")
    for conns, rs in sorted(b.direct.items()):
        out("| %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            conns, fmt(med([float(r["rate"]) for r in rs])),
            fmt(med([agent_pct(r) for r in rs])),
            fmt(med([1e6 / float(r["agent_cpu_us_per_decision"]) for r in rs])),
            fmt(med([float(r["p50_us"]) for r in rs]), 0),
            fmt(med([float(r["p99_us"]) for r in rs]), 0),
            fmt(med([float(r["agent_cpu_us_per_decision"]) for r in rs]), 2),
            fmt(med([int(r["agent_rss_kib"]) / 1024 for r in rs]), 1),
            fmt(med([float(r["load_cpu_pct"]) for r in rs]), 0)))
    out("")
    out("RSS is VmRSS of the agent read while every connection is still open, after the load.")
    out("")
    out("## 3. Plan size: 4 routes against 1,000 (spop-load, 10 connections)")
    out("")
    out("| routes | decisions/s | agent CPU µs/decision | instructions/decision (callgrind) |")
    out("|---|---|---|---|")
    for n, rs in sorted(b.routes.items()):
        ins = b.instructions.get(n)
        out("| %d | %s | %s | %s |" % (
            n, fmt(med([float(r["rate"]) for r in rs])),
            fmt(med([float(r["agent_cpu_us_per_decision"]) for r in rs]), 2),
            "{:,.0f}".format(ins) if ins else "n/a"))
    out("| 1000/4 | %s | %s | %s |" % (fmt(med(route_ratio(b, "rate")), 3),
                                        fmt(med(route_ratio(b, "agent_cpu_us_per_decision")), 3),
                                        "%.3f" % instruction_ratio(b) if instruction_ratio(b)
                                        else "n/a"))


def route_ratio(b, key):
    return [float(big[key]) / float(small[key]) for small, big in zip(b.routes[4], b.routes[1000])]


def instruction_ratio(b):
    if b.instructions.get(4) and b.instructions.get(1000):
        return b.instructions[1000] / b.instructions[4]
    return None


def targets(b):
    """Issue 13's targets: (target, figure, met) rows; met is None when the
    run did not measure it."""
    v3 = b.version[1] >= (3, 0)
    rows = []
    floor = 0.65 if v3 else 0.75
    r = med(within(b, "cutover", "native"))[0]
    rows.append(("cutover ≥ %.2f× native (HAProxy %s)" % (floor, "3.x" if v3 else "2.6"),
                 "%.3f×" % r, r >= floor))
    if "peer" in b.variants:
        r = med(within(b, "cutover", "peer"))[0]
        rows.append(("cutover ahead of the peer (same run)", "%.3f× the peer's req/s" % r, r > 1))
        if v3:
            c = med([x["haproxy_us"] for x in b.e2e["cutover"]])[0]
            p = med([x["haproxy_us"] for x in b.e2e["peer"]])[0]
            ins = instructions_within(b, "cutover", "peer")
            rows.append(("HAProxy µs/req with cutover ≤ with the peer",
                         "%.1f against %.1f µs (instructions/req: cutover/peer %s)"
                         % (c, p, "%.3f" % ins if ins else "not counted"), c <= p))
    else:
        rows.append(("cutover ahead of the peer (same run)", "no --peer given", None))
    limit = 3.0 if v3 else 2.0
    a = med([x["agent_us"] for x in b.e2e["cutover"]])[0]
    rows.append(("agent ≤ %.0f µs CPU per decision, end to end" % limit, "%.2f µs" % a, a <= limit))
    if b.args.e2e_only:
        return rows
    rate = med([float(x["rate"]) for x in b.direct[10]])[0]
    cap = med([1e6 / float(x["agent_cpu_us_per_decision"]) for x in b.direct[10]])[0]
    rows.append(("≥ 1,000,000 decisions/s per agent thread (spop-load)",
                 "{:,.0f}/s measured, 10 connections ({:,.0f} per agent CPU-second)".format(rate, cap),
                 rate >= 1e6))
    c = med(route_ratio(b, "agent_cpu_us_per_decision"))[0]
    ins = instruction_ratio(b)
    rows.append(("1,000 routes ≤ 1.2× the CPU of 4", "%.3f× (instructions: %s)" % (
        c, "%.3f×" % ins if ins else "not counted"), c <= 1.2))
    rss = med([int(x["agent_rss_kib"]) / 1024 for x in b.direct[1000]])[0]
    rows.append(("RSS ≤ 32 MiB at 1,000 connections", "%.1f MiB" % rss, rss <= 32))
    return rows


def report(b):
    lines = []
    out = lines.append
    load_end = open("/proc/loadavg").read().split()[0]
    ticks_end = machine_ticks()
    all_ticks = ticks_end[0] - b.ticks_start[0]
    steal = 100.0 * (ticks_end[1] - b.ticks_start[1]) / all_ticks if all_ticks else 0.0
    out("# cutover benchmark, %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    out("")
    out("%s; %d CPUs; load average %s at the start, %s at the end; CPU time taken by the "
        "hypervisor (steal) %.1f %%; %s; %d round(s), variants alternated." % (
            b.version[0], os.cpu_count(), b.load_start, load_end, steal,
            "quick run (tiny durations: indicative only)" if b.quick else "full run", b.rounds))
    out("")
    report_summary(b, out)
    out("")
    report_e2e(b, out)
    if not b.args.e2e_only:
        out("")
        report_direct(b, out)
    out("")
    out("## Against issue 13's targets")
    out("")
    out("| target | figure | |")
    out("|---|---|---|")
    for target, figure, met in targets(b):
        out("| %s | %s | %s |" % (target, figure,
                                  "not measured" if met is None else "met" if met else "**not met**"))
    for n in b.notes:
        out("")
        out(n)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--peer", help="a reference SPOP agent binary (spoa-example's options)")
    ap.add_argument("--agent-threads", type=int, default=2)
    ap.add_argument("--e2e-only", action="store_true")
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.rounds < 5 or args.seconds < 1 or args.rounds * args.seconds > 150:
        ap.error("--rounds at least 5, rounds x seconds at most 150 (the run stays under 10 min)")
    if not 1 <= args.agent_threads <= 8:
        ap.error("--agent-threads: 1 to 8")
    if args.peer and not os.access(args.peer, os.X_OK):
        ap.error("--peer %s: not an executable" % args.peer)
    b = Bench(args)
    try:
        b.run()
    except (Failure, AssertionError, OSError, subprocess.TimeoutExpired) as e:
        print("bench: %s" % e, file=sys.stderr)
        print("bench: logs kept in %s" % b.workdir, file=sys.stderr)
        return 1
    text = report(b)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    print("bench: table written to %s" % args.out, file=sys.stderr)
    shutil.rmtree(b.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
