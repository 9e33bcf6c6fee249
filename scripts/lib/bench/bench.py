#!/usr/bin/env python3
"""The body of scripts/bench (read its header first).

Three measurements, each alternating its variants round after round so that
drift of a shared, noisy machine spreads over all of them:

  1. end to end: wrk through HAProxy routing natively (native.cfg) and through
     HAProxy asking cutover-spoa (haproxy/haproxy.cfg + haproxy/cutover.spoe,
     used as shipped), both in front of the stub apps (stubs.cfg);
  2. the agent alone, driven by spop-load with 10 and 1,000 connections;
  3. plans of 4 and 1,000 routes, driven by spop-load, plus an instruction
     count per decision under callgrind when valgrind is there.

Figures are reported, never judged: the "target" column compares them with
the project's targets for the reader. Exit 0 with a table, 1 when something could
not be measured (a process failed, or native and cutover routed differently).
"""
import argparse
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
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIX = os.path.join(HERE, "mix.txt")


class Failure(Exception):
    """Something the benchmark needs did not work; the run stops."""


# ---- processes and /proc ----------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of every thread of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


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


def wrk(addr, seconds):
    argv = ["wrk", "-t1", "-c50", "-d%ds" % seconds, "--latency",
            "-s", os.path.join(HERE, "mix.lua"), "http://%s/" % addr, "--", MIX]
    rc, out, err = run(argv, seconds + 30)
    if rc != 0:
        raise Failure("wrk failed (%d): %s" % (rc, err))
    return parse_wrk(out)


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
        self.spoa = os.path.join(args.build, "cutover-spoa")
        self.load = os.path.join(args.build, "spop-load")
        self.workdir = tempfile.mkdtemp(prefix="cutover-bench-")
        self.procs = Processes(self.workdir)
        self.e2e = {"native": [], "cutover": []}
        self.direct = {10: [], 1000: []}
        self.routes = {4: [], 1000: []}
        self.instructions = {}
        self.notes = []

    # -- helpers
    def agent(self, plan, name="agent", valgrind=None):
        port = harness.free_port()
        argv = [self.spoa, "--config", plan, "--listen", "127.0.0.1:%d" % port,
                "--threads", "1", "--log-level", "warn", "--max-connections", "4096"]
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
            text = plan_phase.set_phase(text, BENCH_PHASE)
        except ValueError as e:
            raise Failure("%s: %s" % (src, e))
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
        self.agent_e2e = self.agent(plan, "agent-e2e")
        fallback_dir = os.path.join(self.workdir, "fallback")
        os.makedirs(fallback_dir, exist_ok=True)
        rc, out, err = run([self.spoa, "--write-fallback", fallback_dir, plan], 30)
        if rc != 0:
            raise Failure("cannot write the fallback map: %s%s" % (out, err))
        agent_addr = "127.0.0.1:%d" % self.agent_e2e.port

        native_port = harness.free_port()
        env = dict(apps, BENCH_HTTP_BIND="127.0.0.1:%d" % native_port)
        self.native = self.procs.start([self.haproxy, "-db", "-f", os.path.join(HERE, "native.cfg")],
                                       "haproxy-native", env=env, port=native_port)
        self.native.addr = "127.0.0.1:%d" % native_port

        cut_port = harness.free_port()
        # One agent: both server lines of spoe_cutover name it.
        roles = {k.lower().replace("_", "-"): v for k, v in stub.items()}
        env = system.haproxy_env(cut_port, [agent_addr], roles,
                                 os.path.join(self.workdir, "haproxy.sock"), fallback_dir)
        try:
            self.cutover = system.Haproxy(env, self.workdir, name="haproxy-cutover")
        except AssertionError as e:
            raise Failure("haproxy-cutover: %s" % e)
        self.procs.procs.append(self.cutover)
        self.cutover.addr = "127.0.0.1:%d" % cut_port

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
        return (r.status, r.header("X-Served-By"), r.text().strip(), r.header("Deprecation"))

    def fallbacks(self):
        """Requests the cutover HAProxy routed without an agent answer, and
        SPOE errors, in its log since the last truncation."""
        text = self.cutover.log()
        return (len(re.findall(r" fb=1\b", text)), len(re.findall(r" err=\d", text)),
                len(re.findall(r" phase=\d", text)))

    def truncate_logs(self):
        for p in (self.native, self.cutover):
            os.truncate(p.log_path, 0)

    def check_equivalence(self):
        """Native and cutover must route every request of the mix alike, and
        the cutover side must have been decided by the agent."""
        deadline = time.monotonic() + 15
        while True:
            self.truncate_logs()
            diffs = []
            for method, path, host, client in self.mix():
                a = self.fetch(self.native.addr, method, path, host, client)
                b = self.fetch(self.cutover.addr, method, path, host, client)
                if a != b:
                    diffs.append("%s %s: native %s, cutover %s" % (method, path, a, b))
            time.sleep(0.2)  # the log line follows the response
            fb, err, logged = self.fallbacks()
            if not diffs and fb == 0 and err == 0 and logged > 0:
                return
            if time.monotonic() > deadline:
                raise Failure("native and cutover do not route alike (or the agent did not "
                              "decide: %d fallbacks, %d SPOE errors):\n  %s"
                              % (fb, err, "\n  ".join(diffs)))
            time.sleep(0.5)

    def e2e_round(self, variant, seconds, record=True):
        p = self.native if variant == "native" else self.cutover
        self.truncate_logs()
        h0 = cpu_seconds(p.pid)
        a0 = cpu_seconds(self.agent_e2e.pid)
        r = wrk(p.addr, seconds)
        r["haproxy_us"] = (cpu_seconds(p.pid) - h0) * 1e6 / max(r["requests"], 1)
        r["agent_us"] = ((cpu_seconds(self.agent_e2e.pid) - a0) * 1e6 / max(r["requests"], 1)
                         if variant == "cutover" else None)
        if variant == "cutover":
            time.sleep(0.2)
            r["fallbacks"], r["spoe_errors"], _ = self.fallbacks()
        if record:
            self.e2e[variant].append(r)
        return r

    def measure_e2e(self):
        self.start_e2e()
        self.check_equivalence()
        if not self.quick:
            for v in ("native", "cutover"):
                self.e2e_round(v, 2, record=False)  # warm-up
        for i in range(self.rounds):
            order = ("native", "cutover") if i % 2 == 0 else ("cutover", "native")
            for v in order:
                r = self.e2e_round(v, self.wrk_seconds)
                print("bench: e2e round %d %-7s %8.0f req/s p99 %.2f ms" % (
                    i + 1, v, r["rps"], r["p99"] or 0), file=sys.stderr)
        self.procs.stop_all()

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
        # The requested dump is callgrind.out.1; callgrind.out holds start-up
        # (before the zeroing) and shutdown.
        try:
            with open(out + ".1") as fh:
                m = re.search(r"^summary:\s+(\d+)", fh.read(), re.M)
        except OSError:
            m = None
        if m is None:
            self.notes.append("callgrind gave no dump: no instruction counts.")
            return None
        return int(m.group(1)) / requests

    def run(self):
        self.load_start = open("/proc/loadavg").read().split()[0]
        try:
            self.measure_e2e()
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


def verdict(ok):
    return "met" if ok else "**missed**"


def report(b):
    lines = []
    out = lines.append
    nat, cut = b.e2e["native"], b.e2e["cutover"]
    hv = subprocess.run([b.haproxy, "-v"], stdout=subprocess.PIPE, text=True).stdout.splitlines()
    load_end = open("/proc/loadavg").read().split()[0]
    out("# cutover benchmark, %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    out("")
    out("%s; %d CPUs; load average %s at the start, %s at the end; %s; %d round(s), "
        "variants alternated." % (hv[0] if hv else b.haproxy, os.cpu_count(), b.load_start, load_end,
           "quick run (tiny durations: indicative only)" if b.quick else "full run", b.rounds))
    out("Medians, with (min–max) over the rounds.")
    out("")
    out("## 1. End to end: wrk -t1 -c50, %d s a round, HAProxy nbthread 1, agent --threads 1"
        % b.wrk_seconds)
    out("")
    out("| variant | requests/s | p50 ms | p99 ms | HAProxy CPU µs/req | agent CPU µs/req | errors |")
    out("|---|---|---|---|---|---|---|")
    for name, rs in (("native (ACLs)", nat), ("cutover (SPOE)", cut)):
        out("| %s | %s | %s | %s | %s | %s | %d |" % (
            name, fmt(med([r["rps"] for r in rs])), fmt(med([r["p50"] for r in rs]), 2),
            fmt(med([r["p99"] for r in rs]), 2), fmt(med([r["haproxy_us"] for r in rs]), 1),
            fmt(med([r["agent_us"] for r in rs]), 2) if rs is cut else "–",
            sum(r["errors"] for r in rs)))
    ratio = [c["rps"] / n["rps"] for n, c in zip(nat, cut)]
    dp99 = [c["p99"] - n["p99"] for n, c in zip(nat, cut) if c["p99"] is not None and n["p99"] is not None]
    out("| cutover/native | %s | | %s ms | | | |" % (fmt(med(ratio), 3), fmt(med(dp99), 2)))
    fb = sum(r.get("fallbacks", 0) for r in cut)
    se = sum(r.get("spoe_errors", 0) for r in cut)
    out("")
    out("Ratios are taken round by round (each round runs both variants back to back). "
        "Requests the cutover HAProxy routed without an agent answer (fallback): %d; "
        "SPOE errors: %d." % (fb, se))
    out("")
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
    cost = [float(big["agent_cpu_us_per_decision"]) / float(small["agent_cpu_us_per_decision"])
            for small, big in zip(b.routes[4], b.routes[1000])]
    thr = [float(big["rate"]) / float(small["rate"]) for small, big in zip(b.routes[4], b.routes[1000])]
    ins_ratio = (b.instructions[1000] / b.instructions[4]
                 if b.instructions.get(4) and b.instructions.get(1000) else None)
    out("| 1000/4 | %s | %s | %s |" % (fmt(med(thr), 3), fmt(med(cost), 3),
                                        "%.3f" % ins_ratio if ins_ratio else "n/a"))
    out("")
    out("## Against the targets")
    out("")
    out("| target | figure | |")
    out("|---|---|---|")
    r_m = med(ratio)[0]
    out("| cutover ≥ 0.70 of native throughput | %.3f | %s |" % (r_m, verdict(r_m >= 0.70)))
    d_m = med(dp99)[0]
    if d_m is not None:
        out("| cutover p99 ≤ native p99 + 1 ms | %+.2f ms | %s |" % (d_m, verdict(d_m <= 1.0)))
    a_m = med([r["agent_us"] for r in cut])[0]
    out("| agent CPU ≤ 5 µs per decision (end to end) | %.2f µs | %s |" % (a_m, verdict(a_m <= 5.0)))
    rate10 = med([float(r["rate"]) for r in b.direct[10]])[0]
    cap10 = med([1e6 / float(r["agent_cpu_us_per_decision"]) for r in b.direct[10]])[0]
    out("| ≥ 300,000 decisions/s on one agent thread | {:,.0f}/s measured (10 connections); "
        "{:,.0f} per agent CPU-second | {} |".format(rate10, cap10, verdict(rate10 >= 300000)))
    rss = med([int(r["agent_rss_kib"]) / 1024 for r in b.direct[1000]])[0]
    out("| ≤ 32 MiB resident with 1,000 connections | %.1f MiB | %s |" % (rss, verdict(rss <= 32)))
    c_m = med(cost)[0]
    out("| 1,000 routes cost ≤ 1.5 × 4 routes | %.3f × in agent CPU per decision (%s) | %s |" % (
        c_m, "instructions: %.3f ×" % ins_ratio if ins_ratio else "no instruction count",
        verdict(c_m <= 1.5)))
    for n in b.notes:
        out("")
        out(n)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.rounds < 3 or args.seconds < 1 or args.rounds * args.seconds > 150:
        ap.error("--rounds at least 3, rounds x seconds at most 150 (the run stays under 10 min)")
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
