# SPDX-License-Identifier: Apache-2.0
"""Faults suite: restarts, crashes, all agents down, bad plans
applied live, hostile SPOP peers, security properties and a valgrind run.

Every case runs the real agent (CUTOVER_SPOA, default build/cutover-spoa) and,
except the SPOP-only parts, the real HAProxy and sample apps under a steady
bounded load of reads and writes (scripts/apps/load.py). Each case prints one
FIGURES line: what was injected, the load, requests sent and failed, plans
rejected, crashes. docs/reliability.md is filled from those lines.
Set CUTOVER_FAULTS_FIGURES=FILE to also get them as JSON lines. The system
is tests/lib/system.py's, each case on its own (started through the
fault_system fixture, so that it is stopped whatever the case did).
"""
import concurrent.futures
import contextlib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import bad_plans
import harness
import hostile
import spop_client as sc
from sample_plan import successor_bytes
from system import plan_text, write_atomic
from traffic import LoadRun

# 1,000 client connections here and as many in the agent: children inherit
# the raised soft limit.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_want = 16384 if _hard == resource.RLIM_INFINITY else min(_hard, 16384)
if _soft < _want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))

LOAD_RATE = 200           # requests per second through HAProxy, reads and writes
TIMEOUT = 300             # seconds, per case (pytest-timeout); bad plans get twice that
REJECT_LINE = r"%s:\d+:\d+: "  # the agent's rejection of a bad plan (docs/contracts.md)
REJECT_LINE_REST = r"%s:(\d+:\d+: [^;\n\"\\]*)"  # line, column and reason (up to a quote)


def figures(name, injected, load, sent, failed, rejected, crashes, **extra):
    row = dict(case=name, injected=injected, load=load, sent=sent, failed=failed,
               rejected=rejected, crashes=crashes, **extra)
    print("FIGURES " + json.dumps(row, sort_keys=True))
    out = os.environ.get("CUTOVER_FAULTS_FIGURES")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")


def load_desc(run):
    return "%d req/s for %.0f s, %d%% writes, %d clients" % (
        run.rate, run.elapsed or run.seconds, run.write_percent, run.clients)


def finish(stack, run, name, injected, rejected=0, **extra):
    """Waits for the load, stops the stack, prints the figures and asserts
    zero failed requests, zero lost writes, zero crashes, same HAProxy."""
    res = run.wait()
    desc = load_desc(run)
    same_haproxy = stack.haproxy.alive() and stack.haproxy.pid == stack.haproxy_pid
    crashes = stack.stop()
    figures(name, injected, desc, res["sent"], res["failed"], rejected,
            len(crashes), lost_writes=res["lost"], **extra)
    assert not crashes, "crashes: %s" % crashes
    assert same_haproxy, "HAProxy was restarted or died"
    assert res["sent"] > 0, "the load sent nothing"
    assert res["failed"] == 0, "%d of %d requests failed: %s" % (
        res["failed"], res["sent"], res["failures"][:5])
    assert res["lost"] == 0, "%d acknowledged writes lost" % res["lost"]


@pytest.fixture
def fault_system(start_system):
    """fault_system(name, phase, **kw): apps, the replicator (unless
    replicator=False), two agents of two threads logging at info (a line per
    frame at debug would be most of their work under load) and HAProxy."""
    def start(name, phase, **kw):
        kw.setdefault("replicator", True)
        kw.setdefault("agent_threads", 2)
        return start_system("faults-" + name, phase, agent_log_level="info",
                            sunset_ahead=True, **kw)
    return start


# --- agents restarted, killed, all down ---------------------------------------

@pytest.mark.timeout(TIMEOUT)
def test_planned_restart_of_one_agent(fault_system):
    stack = fault_system("restart", 6)
    run = LoadRun(stack, seconds=12, rate=LOAD_RATE)
    try:
        time.sleep(3)
        rc = stack.stop_agent(0, signal.SIGTERM)
        assert rc == 0, "agent 1 exited %s on SIGTERM" % rc
        time.sleep(2)
        stack.start_agent(0)
        stack.wait_agents_up()
    except BaseException:
        run.abort()
        stack.stop(check=False)
        raise
    errs = spoe_errors(stack)
    finish(stack, run, "planned restart of one of two agents",
           "SIGTERM to agent 1 at 3 s, started again 2 s later",
           spoe_errors=sum(errs.values()))


@pytest.mark.timeout(TIMEOUT)
def test_crash_of_one_agent(fault_system):
    """SIGKILL at a random moment; then the busier agent frozen for 100 ms
    (SIGSTOP: HAProxy's NOTIFYs pile up unanswered) and killed, so that some
    requests surely had their NOTIFY in flight on the killed agent."""
    seed = int(os.environ.get("CUTOVER_FAULTS_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    stack = fault_system("crash", 6)
    run = LoadRun(stack, seconds=14, rate=LOAD_RATE)
    at = rnd.uniform(2.0, 5.0)
    victim = rnd.randrange(2)
    try:
        time.sleep(at)
        stack.stop_agent(victim, signal.SIGKILL)
        time.sleep(2)
        stack.start_agent(victim)
        stack.wait_agents_up()
        time.sleep(rnd.uniform(1.0, 2.0))
        busy = max(range(2), key=lambda i: established(stack.agent_ports[i]))
        stack.agents[busy].signal(signal.SIGSTOP)
        time.sleep(0.1)
        stack.stop_agent(busy, signal.SIGKILL)
        time.sleep(2)
        stack.start_agent(busy)
        stack.wait_agents_up()
    except BaseException:
        run.abort()
        stack.stop(check=False)
        raise
    errs = spoe_errors(stack)
    finish(stack, run, "crash of one of two agents",
           "SIGKILL to agent %d at %.2f s (seed %d); later agent %d frozen 100 ms then "
           "SIGKILLed; each started again 2 s later" % (victim + 1, at, seed, busy + 1),
           spoe_errors=sum(errs.values()))
    assert errs, "no request met a killed agent: the in-flight case was not exercised"


def spoe_errors(stack):
    """{SPOE error code: requests} from HAProxy's log: requests whose
    exchange with an agent failed and that the fallback routed."""
    errs = {}
    for m in re.finditer(r" fb=(\S+) err=(\S+) ", stack.haproxy_log()):
        if m.group(2) != "-":
            errs[m.group(2)] = errs.get(m.group(2), 0) + 1
    print("requests whose SPOE exchange failed, by SPOE error: %s" % errs)
    return errs


def established(port):
    """Established TCP connections to a local port (HAProxy's SPOP links)."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    n += 1
    return n


@pytest.mark.timeout(TIMEOUT)
def test_all_agents_down(fault_system):
    """Both agents stop; HAProxy keeps routing by the last phase an agent
    reported (6: writes to NEW). The plan moves to 5 (writes back to OLD)
    while nobody reads it; when an agent returns, routing follows the plan."""
    stack = fault_system("alldown", 6)
    run = LoadRun(stack, seconds=16, rate=LOAD_RATE)
    observed = {}
    try:
        time.sleep(2)
        observed["up, phase 6"] = probe_write(stack)
        for i in range(2):
            assert stack.stop_agent(i) == 0
        stack.wait_agents_down()
        observed["down, last phase 6"] = probe_write(stack)
        stack.set_phase(5)
        time.sleep(1.5)
        observed["down, plan at 5"] = probe_write(stack)
        stack.start_agent(1)
        stack.wait_agents_up(["agent2"])
        observed["agent 2 back, plan at 5"] = probe_write(stack, until="old-command")
        stack.start_agent(0)
        stack.wait_agents_up()
    except BaseException:
        run.abort()
        stack.stop(check=False)
        raise
    fallback_lines = len(re.findall(r" fb=1 ", stack.haproxy_log()))
    errs = spoe_errors(stack)
    print("routing of a write seen at each step: %s" % observed)
    want = {"up, phase 6": "new-command", "down, last phase 6": "new-command",
            "down, plan at 5": "new-command", "agent 2 back, plan at 5": "old-command"}
    finish(stack, run, "all agents down",
           "SIGTERM to both agents at 2 s; plan moved 6 -> 5 while down; agent 2 then "
           "agent 1 started again", fallback_requests=fallback_lines,
           spoe_errors=sum(errs.values()))
    assert observed == want, "routing while down/after: %r, want %r" % (observed, want)
    assert fallback_lines > 0, "no request was routed by the fallback"


@pytest.mark.timeout(TIMEOUT)
def test_haproxy_starts_with_no_agent(fault_system):
    """HAProxy starts while no agent runs: it routes by the fallback map
    written before it started (the plan at 6). The plan moves to 5 before
    any agent runs, so nothing rewrites the map; once an agent runs, it
    installs the map of phase 5 and its answers follow the plan."""
    stack = fault_system("noagent", 6, start_agents=False)
    run = LoadRun(stack, seconds=10, rate=LOAD_RATE)
    t0 = time.monotonic()
    observed = {}
    try:
        time.sleep(1.5)
        observed["no agent yet, started at 6"] = probe_write(stack)
        stack.set_phase(5)
        time.sleep(1)
        observed["no agent yet, plan at 5"] = probe_write(stack)
        agents_at = time.monotonic() - t0
        stack.start_agent(0)
        stack.start_agent(1)
        stack.wait_agents_up()
        observed["agents up, plan at 5"] = probe_write(stack, until="old-command")
    except BaseException:
        run.abort()
        stack.stop(check=False)
        raise
    fallback_lines = len(re.findall(r" fb=1 ", stack.haproxy_log()))
    errs = spoe_errors(stack)
    print("routing of a write seen at each step: %s" % observed)
    want = {"no agent yet, started at 6": "new-command", "no agent yet, plan at 5": "new-command",
            "agents up, plan at 5": "old-command"}
    finish(stack, run, "HAProxy starts with no agent running",
           "no agent when HAProxy started (plan at 6); plan moved to 5 at 1.5 s; both "
           "agents started at %.1f s" % agents_at,
           fallback_requests=fallback_lines, spoe_errors=sum(errs.values()))
    assert observed == want, "routing before/after the agents: %r, want %r" % (observed, want)
    assert fallback_lines > 0, "no request was routed by the fallback"


def probe_write(stack, until=None, timeout=3.0):
    """Which app served a write of the OLD API (new-command from phase 6).
    With until: probes again (at most timeout seconds) until that app
    serves: the first exchanges with an agent that just came back may still
    go through the fallback while HAProxy connects to it."""
    deadline = time.monotonic() + timeout
    while True:
        r = stack.request("POST", "/command/api/squids", json={"name": "probe", "price": 1})
        st, served, body = r.status, r.header("X-Served-By"), r.body
        assert st == 201, "probe write: %d %r" % (st, body[:200])
        if until is None or served == until or time.monotonic() > deadline:
            return served
        time.sleep(0.05)


# --- bad plans applied live ---------------------------------------------------

def agent_check(path):
    """`cutover-spoa --check path` -> (exit code, output)."""
    p = subprocess.run([harness.agent_binary(), "--check", path], capture_output=True,
                       timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def plan_backends(text):
    """Backend names the plan declares, as `--check` lists them."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        rc, out = agent_check(f.name)
    m = re.search(r"^\s*backends:\s*\d+: (.*)$", out, re.M)
    assert rc == 0 and m, "--check gives no backends: %r" % out
    return [b.strip() for b in m.group(1).split(",")]


@pytest.mark.timeout(2 * TIMEOUT)
def test_bad_plans_applied_live(fault_system):
    stack = fault_system("badplans", 6)
    good = plan_text(6)
    # Stage every edit and let --check classify it (a truncation that keeps a
    # whole plan is not a bad edit); the kinds of MUST_REJECT must be rejected.
    # Two at a time: an ASan build takes a while to start.
    generated = list(bad_plans.bad_edits(good, plan_backends(good)))

    def classify(n):
        kind, what, content = generated[n]
        if content is None:
            return "bad", None
        stage = os.path.join(stack.dir, "staged-%d.yaml" % n)
        with open(stage, "wb") as f:
            f.write(content)
        rc, out = agent_check(stage)
        os.unlink(stage)
        if rc == 0:
            return "good", None
        if not re.search(REJECT_LINE % re.escape(stage), out):
            return "no line:column", out[:300]
        return "bad", out

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        verdicts = list(pool.map(classify, range(len(generated))))
    edits, skipped = [], 0
    for (kind, what, content), (verdict, out) in zip(generated, verdicts):
        assert verdict != "no line:column", \
            "--check rejects %s (%s) without file:line:column: %r" % (kind, what, out)
        if verdict == "good":
            assert kind not in bad_plans.MUST_REJECT, "--check accepts %s: %s" % (kind, what)
            skipped += 1
            continue
        edits.append((kind, what, content, out))
    assert len(edits) >= 100, "only %d bad edits generated" % len(edits)

    # Ended early, once the good edit is seen (edits take ~0.2 s each).
    run = LoadRun(stack, seconds=len(edits) * 0.5 + 10, rate=LOAD_RATE)
    prober = hostile.Prober("127.0.0.1", stack.agent_ports[0], interval=0.05)
    prober.start()
    pattern = re.compile(REJECT_LINE % re.escape(stack.plan))
    live_line = re.compile(REJECT_LINE_REST % re.escape(stack.plan))
    staged_line = re.compile(REJECT_LINE_REST % r"\S+staged-\d+\.yaml")
    tail = LogTail(stack.agents[0].log_path)
    unseen, differ, on_delete = [], [], None
    expected = 0
    try:
        time.sleep(2)
        for kind, what, content, check_out in edits:
            tail.read()
            if content is None:
                # Deleting the plan is also how a delete-then-recreate edit
                # starts: the agent keeps its plan and waits; no line:column.
                os.unlink(stack.plan)
                time.sleep(1.2)
                on_delete = tail.read()[-400:] or "(nothing logged)"
                continue
            expected += 1
            write_atomic(stack.plan, content)
            # Each edit must be picked up (within 1 s by contract) and
            # rejected with its line and column; wait up to 3 s for it.
            deadline = time.monotonic() + 3.0
            while True:
                m = live_line.search(tail.read())
                if m:
                    # The live agent gives the same line, column and reason
                    # as --check.
                    want = staged_line.search(check_out).group(1)
                    if m.group(1) != want:
                        differ.append("%s (%s): live %r, --check %r"
                                      % (kind, what, m.group(1), want))
                    break
                if time.monotonic() > deadline:
                    unseen.append("%s: %s" % (kind, what))
                    break
                time.sleep(0.02)
            time.sleep(0.1)
        served_phase_during = set(prober.phases)
        r = stack.request("GET", "/query/api/squids")
        http_during = r.status, r.header("X-Served-By")
        # A good edit afterwards is picked up.
        write_atomic(stack.plan, plan_text(5))
        deadline = time.monotonic() + 3.0
        c = session("127.0.0.1", stack.agent_ports[0])
        while True:
            phase_after = c.decide("GET", "/query/api/squids/1").get("txn.phase")
            if phase_after == 5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        c.close(graceful=True)
        time.sleep(1)
        run.end()
    except BaseException:
        prober.stop()
        run.abort()
        stack.stop(check=False)
        raise
    prober.stop()
    rejected1 = len(pattern.findall(stack.agent_log(0)))
    rejected2 = len(pattern.findall(stack.agent_log(1)))
    finish(stack, run, "bad plans applied live",
           "%d generated bad edits of the live plan, the file deleted once, then a good edit "
           "(%d generated truncations that --check accepts were not applied)"
           % (expected, skipped), rejected=rejected1, rejected_agent2=rejected2,
           probe_failures=prober.failed)
    print("rejections logged: agent 1 %d, agent 2 %d, for %d bad edits"
          % (rejected1, rejected2, expected))
    print("agent 1 on deletion: %s" % on_delete)
    assert not unseen, "%d edits not rejected within 3 s: %s" % (len(unseen), unseen[:10])
    assert not differ, "%d rejections differ from --check: %s" % (len(differ), differ[:5])
    assert rejected1 >= expected and rejected2 >= expected, \
        "rejection lines: %d and %d for %d edits" % (rejected1, rejected2, expected)
    assert served_phase_during == {6}, "phases served during bad edits: %r" % served_phase_during
    assert prober.failed == 0, "SPOP probe failed %d times: %s" % (prober.failed,
                                                                   prober.last_error)
    assert http_during == (200, "new-query"), "HTTP probe during bad edits: %r" % (http_during,)
    assert phase_after == 5, "good edit not picked up: phase %r" % phase_after


def session(host, port):
    """An SPOP connection past HELLO sending every arg HAProxy sends."""
    return sc.Session(host, port, timeout=5.0, full_args=True)


class LogTail:
    """New complete lines of a growing log file, read incrementally."""

    def __init__(self, path):
        self.path = path
        self.offset = 0

    def read(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end].decode("utf-8", "replace")


# --- hostile SPOP peers -------------------------------------------------------

@pytest.mark.timeout(TIMEOUT)
def test_hostile_spop_peers(fault_system):
    stack = fault_system("hostile", 6)
    run = LoadRun(stack, seconds=25, rate=LOAD_RATE)
    agent = stack.agents[0]
    host, port = "127.0.0.1", agent.port
    time.sleep(1.5)
    rss_before = hostile.vm_rss_kib(agent.pid)
    rss = hostile.RssSampler(agent.pid)
    rss.start()
    prober = hostile.Prober(host, port, interval=0.02)
    prober.start()
    results = {}
    try:
        # Bad frames, each on its own connection.
        wrong = []
        for name, data, hello_first, statuses in hostile.MALFORMED:
            got = hostile.send_malformed(host, port, name, data, hello_first, statuses)
            results["malformed: " + name] = got
            if statuses in ("close", "ignored"):
                ok = got == statuses
            elif statuses is None:
                ok = got is None or isinstance(got, int) and got != 0
            else:
                ok = got in statuses
            if not ok:
                wrong.append("%s: status %r, want %r" % (name, got, statuses))
            assert agent.alive(), "agent exited after %s" % name
        # Connections that send nothing, and one byte a second.
        idle = hostile.IdlePeers(host, port, 50)
        idle_since = time.monotonic()
        slow = hostile.SlowPeer(host, port, seconds=14)
        slow.start()
        # A peer that never reads its ACKs.
        nonreader = hostile.NonReader(host, port)
        nonreader.flood(seconds=8, max_bytes=64 << 20, stall=2.0)
        results["non-reader"] = "%d MiB sent, back-pressure: %s, closed by agent: %s" % (
            nonreader.sent_bytes >> 20, nonreader.stalled, nonreader.closed_by_agent)
        # 1,000 connections at once, while all the above are still open.
        hellos, acks, closed = hostile.open_at_once(host, port, 1000, timeout=30)
        results["1000 at once"] = "%d hellos, %d acks, %d closed" % (hellos, acks, closed)
        slow.join(16)
        results["slow peer"] = slow.outcome
        # The agent's hello timeout reaps connections that never say HELLO;
        # look for at most 20 s after they opened.
        idle_closed = idle.closed()
        while idle_closed < 50 and time.monotonic() < idle_since + 20:
            time.sleep(0.25)
            idle_closed += idle.closed()
        results["idle peers closed by agent"] = "%d of 50 within %.0f s" % (
            idle_closed, time.monotonic() - idle_since)
        idle.close()
        nonreader.close()
        time.sleep(1)
        rss_after = hostile.vm_rss_kib(agent.pid)
        assert agent.alive(), "agent exited"
    except BaseException:
        rss.stop()
        prober.stop()
        run.abort()
        stack.stop(check=False)
        raise
    prober.stop()
    rss.stop()
    rss_peak = rss.peak
    limit = 512 << 10 if harness.sanitized() else 64 << 10
    for k, v in results.items():
        print("  %s: %s" % (k, v))
    print("agent RSS (sampled every 50 ms): before %d KiB, peak %d KiB, after %d KiB "
          "(bound %d KiB); "
          "probe %d ok, %d failed" % (rss_before, rss_peak, rss_after, limit, prober.ok,
                                     prober.failed))
    finish(stack, run, "hostile SPOP peers against a loaded agent",
           "%d malformed frames, 50 idle clients, a 1-byte/s client, a never-reading "
           "flooder (%d MiB), 1,000 connections at once, all on agent 1"
           % (len(hostile.MALFORMED), nonreader.sent_bytes >> 20),
           rss_kib=[rss_before, rss_peak, rss_after], probe_ok=prober.ok,
           probe_failed=prober.failed)
    assert not wrong, "wrong DISCONNECT statuses: %s" % wrong
    assert idle_closed == 50, "idle peers closed: %s" % results["idle peers closed by agent"]
    assert slow.outcome.startswith("closed by agent"), "slow peer: %s" % slow.outcome
    assert hellos == 1000 and acks == 1000, "1,000 at once: %s" % results["1000 at once"]
    assert nonreader.stalled or nonreader.closed_by_agent, \
        "the agent read %d MiB from a peer that never reads its ACKs" % (
            nonreader.sent_bytes >> 20)
    assert rss_peak < limit, "agent RSS peaked at %d KiB, over %d" % (rss_peak, limit)
    assert prober.ok > 0 and prober.failed == 0, \
        "normal client: %d ok, %d failed (%s)" % (prober.ok, prober.failed, prober.last_error)


# --- security -----------------------------------------------------------------

def listening_sockets(pid):
    """[(address, port)] of the TCP sockets PID listens on, from its own
    network namespace's /proc/PID/net/tcp{,6} and its fds."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(m.group(1))
    out = []
    for fam, name in ((socket.AF_INET, "tcp"), (socket.AF_INET6, "tcp6")):
        with open("/proc/%d/net/%s" % (pid, name)) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A" or inode not in inodes:
                    continue
                addr_hex, port_hex = local.split(":")
                raw = bytes.fromhex(addr_hex)
                # /proc prints each 32-bit word in host (little-endian) order.
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                out.append((socket.inet_ntop(fam, raw), int(port_hex, 16)))
    return out


def default_listen_check(config, workdir):
    """Starts the agent with no --listen and returns where it listens. In a
    private network namespace when possible (so port 12345 is free there)."""
    argv = [harness.agent_binary(), "--config", config, "--threads", "2"]
    netns = shutil.which("unshare") and subprocess.run(
        ["unshare", "-n", "true"], capture_output=True).returncode == 0
    if netns:
        argv = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"] + argv
    else:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 12345))
            except OSError:
                return None, "port 12345 is busy and no network namespace can be made"
    p = harness.Proc(argv, "agent-default-listen", workdir=workdir)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not p.alive():
                raise AssertionError("agent exited: %s" % p.log()[-2000:])
            socks = listening_sockets(p.pid)
            if socks:
                time.sleep(0.3)  # let every worker bind
                return listening_sockets(p.pid), "netns" if netns else "host"
            time.sleep(0.05)
        raise AssertionError("agent listens nowhere after 15 s")
    finally:
        rc = p.stop()
        report = p.sanitizer_report()
        assert not report, report[-3000:]
        assert rc == 0, "agent exited %s on SIGTERM" % rc


HOSTILE_PATHS = [
    "/query/api/squids/1\r\nX-Injected: 1",
    "/query/api/squids/1\nGET /admin HTTP/1.1",
    "/query/api/squids/1\x00/admin",
    "/query/api/squids/1 HTTP/1.1\r\nHost: evil",
    "/query/api/squids/\t1",
    "/query/api/squids/1\x7f",
    "/query/api/squids/%0d%0aX-Evil:%201",
    "/query/api/squids/%00",
    "/query/api/squids/%2e%2e/%2e%2e/admin",
    "/query/api/squids/../../admin",
    "/query/api/squids/1?admin=1",
    "/query/api/squids/1#frag",
    "/query/api/squids//1",
    "/query/api/squids/%ZZ",
    "/query/api/squids/\udcff\udcfe",
    "/query/api/squids/" + "a" * 15000,
    "/query/api/squids/" + "%0a" * 4000,
]
_PATH_SAFE = re.compile(rb"^/[\x21-\x7e]*$")


@pytest.mark.timeout(TIMEOUT)
def test_security(fault_system):
    workdir = tempfile.mkdtemp(prefix="cutover-faults-security-")
    config = os.path.join(workdir, "cutover.yaml")
    write_atomic(config, plan_text(6))
    text = plan_text(6)
    backends = set(plan_backends(text))
    checked = {}

    # 1. Loopback unless told otherwise.
    socks, where = default_listen_check(config, workdir)
    if socks is None:
        print("SKIP default listen address: %s" % where)
    else:
        print("default listen (%s): %s" % (where, socks))
        assert socks, "no listening socket"
        assert all(a in ("127.0.0.1", "::1") and port == 12345 for a, port in socks), \
            "agent without --listen listens on %s" % socks
        checked["default listen"] = sorted(set(socks))

    # 2. Only backends the plan declares, in every phase, for every request
    #    family and hostile input.  3. Hostile paths never rewrite unsafely.
    agent = harness.Agent(config, threads=1, workdir=workdir)
    decisions = bad_paths = 0
    outcomes = {}
    try:
        requests = []
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW", ""):
            for prefix in ("/query/api/squids", "/command/api/squids", "/query/api/seafoods",
                           "/command/api/seafoods", "/query/other", "/command/other", "/",
                           "/admin", ""):
                for tail in ("", "/", "/42", "/42/x"):
                    requests.append((method, prefix + tail))
        requests += [("GET", p) for p in HOSTILE_PATHS]
        requests += [("PUT", p.replace("/query/", "/command/")) for p in HOSTILE_PATHS]
        for phase in range(1, 13):
            write_atomic(config, plan_text(phase))
            agent.signal(signal.SIGHUP)
            c = session("127.0.0.1", agent.port)
            deadline = time.monotonic() + 3
            while c.decide("GET", "/")["txn.phase"] != phase:
                assert time.monotonic() < deadline, "phase %d not loaded" % phase
                time.sleep(0.05)
            for method, path in requests:
                v = c.decide(method, path)
                decisions += 1
                be = v.get("txn.backend")
                assert be is None or be in backends, \
                    "phase %d %s %r -> backend %r not in the plan" % (phase, method, path[:60], be)
                assert not [k for k in v if k.startswith("proc.")], "process-wide %r" % v
                p = v.get("txn.path")
                raw = path.encode("utf-8", "surrogateescape")
                expect = successor_bytes(raw)
                for var in ("txn.path", "txn.link"):
                    got = v.get(var)
                    if got is not None:
                        got = got.encode("utf-8", "surrogateescape")
                    if got is not None and (not _PATH_SAFE.match(got) or got != expect):
                        bad_paths += 1
                        print("UNSAFE %s phase %d %r -> %r" % (var, phase, raw[:80], got[:80]))
                if path in HOSTILE_PATHS or path.replace("/command/", "/query/") in HOSTILE_PATHS:
                    key = "%r" % raw[:40]
                    outcomes.setdefault(key, set()).add(
                        "rewritten" if p is not None else
                        "status %s" % v["txn.status"] if "txn.status" in v else
                        "backend %s" % (be if be else "none"))
            c.close(graceful=True)
        # 64 KiB: no frame carries it; the agent refuses the frame and lives on.
        c = session("127.0.0.1", agent.port)
        try:
            c.decide("GET", "/query/api/squids/" + "a" * 65536)
            big = "answered"
        except sc.Disconnected as e:
            big = "connection closed, status %s" % e.status
        except sc.Closed:
            big = "connection closed, status None"
        except (BrokenPipeError, ConnectionResetError) as e:
            big = "connection closed (%s)" % e.__class__.__name__
        c.close()
        assert session("127.0.0.1", agent.port).decide("GET", "/")["txn.phase"] == 12
        outcomes["64 KiB path over SPOP"] = {big}
    finally:
        rc = agent.stop()
    assert rc == 0, "agent exited %s" % rc
    for k, v in outcomes.items():
        print("  hostile path %s: %s" % (k, ", ".join(sorted(v))))
    checked["decisions checked"] = decisions

    # 4. haproxy.cfg: the only dynamic use_backend carries the cutover_ prefix,
    #    and the only cutover_* backends are the plan's and the default.
    with open(os.path.join(harness.ROOT, "haproxy", "haproxy.cfg")) as f:
        cfg = f.read()
    lines = [l.strip() for l in cfg.splitlines() if l.strip().startswith("use_backend")]
    dynamic = [l for l in lines if "%[" in l]
    assert dynamic and all(l.startswith("use_backend cutover_%[var(txn.cutover.backend)]")
                           for l in dynamic), "use_backend lines: %r" % lines
    assert all(l.startswith("use_backend cutover_default ") for l in lines
               if l not in dynamic), "use_backend lines: %r" % lines
    # 4. The same hostile paths through HAProxy and the real agents: what
    #    the app receives is the exact rewrite or nothing.
    http_results = {}
    unsafe_http = []
    for phase in (6, 10):
        stack = fault_system("paths%d" % phase, phase, replicator=False)
        try:
            for target in HTTP_HOSTILE:
                st, headers = raw_http(stack.http_port, "GET", target)
                verdict = judge_http(target, st, headers, phase)
                http_results["phase %d %r (%d bytes)" % (phase, target[:40], len(target))] = \
                    "%s %s" % (st, verdict)
                if verdict.startswith("UNSAFE"):
                    unsafe_http.append("phase %d %r: %s" % (phase, target[:60], verdict))
            crashes = stack.stop()
        except BaseException:
            stack.stop(check=False)
            raise
        assert not crashes, crashes
    for k, v in http_results.items():
        print("  through HAProxy %s -> %s" % (k, v))

    declared = set(re.findall(r"^backend\s+(\S+)", cfg, re.M))
    checked["backends in haproxy.cfg"] = sorted(declared)
    rogue = rogue_agent_check(declared | {"old_query/../x", "cutover_old_query", ""},
                              fault_system)
    figures("security", "default listen address; %d decisions over 12 phases with hostile "
            "paths and methods; a rogue agent naming every HAProxy backend" % decisions,
            "SPOP direct; HTTP through HAProxy for the rogue agent",
            rogue["sent"], rogue["failed"], 0, 0, unsafe_rewrites=bad_paths)
    print("checked: %s" % checked)
    print("rogue agent: %s" % rogue)
    assert bad_paths == 0, "%d unsafe rewrites" % bad_paths
    assert not unsafe_http, "through HAProxy: %s" % unsafe_http
    assert not rogue["escaped"], ("a backend variable from the agent selected HAProxy backends "
                                  "outside the plan's: %s" % rogue["escaped"])
    remove_workdir(workdir)


# Request targets as they go on the wire: raw control bytes and spaces (the
# proxy must refuse them), and encoded or odd ones that are valid HTTP.
HTTP_HOSTILE = [
    b"/query/api/squids/1\r\nX-Injected: 1",
    b"/query/api/squids/1\x00/admin",
    b"/query/api/squids/\t1",
    b"/query/api/squids/1\x7f",
    b"/query/api/squids/\xff\xfe",
    b"/query/api/squids/%0d%0aX-Injected:%201",
    b"/query/api/squids/%00",
    b"/query/api/squids/%2e%2e/%2e%2e/admin",
    b"/query/api/squids/../../admin",
    b"/query/api/squids//1",
    b"/query/api/squids/%ZZ",
    b"/query/api/squids/1;x=1",
    b"/query/api/squids/1?next=%0d%0a&x=/query/api/squids",
    b'/query/api/squids/1?a=<b>"c',       # a query a 410's Link may not carry
    b"/query/api/squids/1?a=%3Cb%3E%22c",  # the same, encoded: kept in the link
    b"/query/api/squids/" + b"a" * 2000,
    b"/query/api/squids/" + b"a" * 65536,
]


def raw_http(port, method, target):
    """One request written byte for byte -> (status, [(name, value)])."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(method.encode() + b" " + target + b" HTTP/1.1\r\nHost: shop.test\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    if not head[0].startswith("HTTP/1."):
        return None, []
    headers = [tuple(x.strip() for x in l.split(":", 1)) for l in head[1:] if ":" in l]
    return int(head[0].split()[1]), headers


def judge_http(target, status, headers, phase):
    """SAFE/UNSAFE verdict on one answer to a hostile target."""
    h = {k.lower(): v for k, v in headers}
    if any(k.lower() == "x-injected" for k, _ in headers):
        return "UNSAFE: response carries an injected header"
    path, sep, query = target.partition(b"?")
    expect = successor_bytes(path) + sep + query
    if status is None:
        return "closed by the proxy"
    if "x-served-by" in h:
        seen = h.get("x-request-path")
        if seen is None:
            return "UNSAFE: served by %s, path not echoed" % h["x-served-by"]
        if seen.encode("latin-1") != expect:
            return "UNSAFE: %s received %r, not %r" % (h["x-served-by"], seen[:60], expect[:60])
        return "served by %s with the exact rewrite" % h["x-served-by"]
    # a 410's link is the successor with the request's query string kept
    if "link" in h and h["link"].encode("latin-1") != b"<" + expect + \
            b'>; rel="successor-version"':
        return "UNSAFE: link %r" % h["link"][:80]
    if status >= 500:
        return "UNSAFE: the proxy answered %d (a server error for a client's bad path)" % status
    return "answered by the proxy"


@contextlib.contextmanager
def rogue_agent_stack(fault_system, name, answer):
    """The system at phase 6 with both agents replaced by one rogue agent
    that answers each NOTIFY's arguments with answer(args)'s actions;
    yields (stack, rogue). At exit both stop, and HAProxy must not have
    crashed."""
    rogue = hostile.RogueAgent(answer)
    rogue.start()
    stack = None
    try:
        stack = fault_system(name, 6, agents=0, replicator=False,
                             agent_override=["127.0.0.1:%d" % rogue.port] * 2)
        yield stack, rogue
    finally:
        crashes = stack.stop() if stack is not None else []
        rogue.stop()
    assert not crashes, "with the rogue agent: %s" % crashes


def rogue_agent_check(names, fault_system):
    """HAProxy with both agents replaced by a rogue one that names, as the
    backend, every name in `names`, bare and without its cutover_ prefix (the
    agent sends plan names; haproxy.cfg adds the prefix). Returns the
    backends HAProxy then used that are not cutover_<plan backend> or
    cutover_default (the proxy answering itself is fine, and so is
    unknown_backend's 503 for a name HAProxy lacks)."""
    names = sorted({n for n in names} | {n[len("cutover_"):] for n in names
                                         if n.startswith("cutover_")})
    state = {"i": 0}

    def answer(args):
        name = names[state["i"] % len(names)]
        state["i"] += 1
        return [sc.Action(sc.SET_VAR, sc.SCOPE_TXN, "backend", sc.string(name)),
                sc.Action(sc.SET_VAR, sc.SCOPE_TXN, "phase", sc.int64(6)),
                sc.Action(sc.SET_VAR, sc.SCOPE_PROC, "phase", sc.int64(6))]

    sent = failed = 0
    escaped = {}
    with rogue_agent_stack(fault_system, "rogue", answer) as (stack, rogue):
        for _ in range(len(names) * 3):
            sent += 1
            try:
                stack.request("GET", "/query/api/squids/1")
            except OSError:
                failed += 1
        for line in stack.haproxy_log().splitlines():
            m = re.search(r" cutover_http (\S+)/\S+ \S+ (\d+) .*\"GET /query/api/squids/1 ", line)
            if not m:
                continue
            backend, status = m.groups()
            # A name HAProxy lacks ends in unknown_backend's own 503.
            refused = backend == "unknown_backend" and status == "503"
            if not refused and backend not in {"cutover_old_query", "cutover_old_command",
                                               "cutover_new_query", "cutover_new_command",
                                               "cutover_default", "cutover_http"}:
                escaped[backend] = escaped.get(backend, 0) + 1
    return {"sent": sent, "failed": failed, "escaped": escaped, "notifies": rogue.notifies}


# Rewrites HAProxy must refuse whoever built them (haproxy.cfg's
# cutover_bad_path): a byte a path may not carry, a dot segment, plain or
# encoded in either case, and a leading "//".
UNSAFE_REWRITES = ["/query/api/x/../admin", "/query/api/x/..", "/..", "/.", "/a/./b",
                   "/query/api/%2e%2e/admin", "/query/api/%2E%2e", "/q/%2E/x", "//evil.example/x",
                   "/query/api/x y", "/query/api/x\"y", "/query/api/<x>", "/query/api/x#y"]
SAFE_REWRITES = ["/query/api/seafoods/1", "/query/api/A-Z_a.z~!$&'()*+,;=:@%41",
                 "/query/api/...", "/query/api/x..y", "/query/api/.x"]


@pytest.mark.timeout(TIMEOUT)
def test_rogue_agent_unsafe_rewrites_refused(fault_system):
    """An agent that answers an unsafe path (or 410 link) gets a 400 from
    HAProxy, never a request with it to an app; safe ones reach the app
    (the path) or come back as the Link (the 410). The agent never builds such a
    rewrite (the router refuses it): these rules are HAProxy's own guard."""
    cases = [(p, "path") for p in UNSAFE_REWRITES + SAFE_REWRITES]
    cases += [(p, "link") for p in UNSAFE_REWRITES + SAFE_REWRITES]
    state = {"i": 0}

    def answer(args):
        value, kind = cases[state["i"] % len(cases)]
        state["i"] += 1
        actions = [sc.Action(sc.SET_VAR, sc.SCOPE_TXN, "phase", sc.int64(6)),
                   sc.Action(sc.SET_VAR, sc.SCOPE_TXN, "route", sc.string("squids-query"))]
        if kind == "path":
            actions += [sc.Action(sc.SET_VAR, sc.SCOPE_TXN, "backend", sc.string("old_query")),
                        sc.Action(sc.SET_VAR, sc.SCOPE_TXN, "path", sc.string(value))]
        else:
            actions += [sc.Action(sc.SET_VAR, sc.SCOPE_TXN, "status", sc.int64(410)),
                        sc.Action(sc.SET_VAR, sc.SCOPE_TXN, "link", sc.string(value))]
        return actions

    wrong = []
    with rogue_agent_stack(fault_system, "rogue-paths", answer) as (stack, _):
        for value, kind in cases:  # one HTTP request per NOTIFY, in order
            r = stack.request("GET", "/query/api/squids/1")
            unsafe = value in UNSAFE_REWRITES
            if unsafe:
                ok = r.status == 400 and "cannot route this path" in r.text()
            elif kind == "path":  # reached the app: its page, or its own 404
                ok = r.status in (200, 404) and "old-query" in r.text() + str(r.header("X-Served-By"))
            else:
                ok = r.status == 410 and r.header("Link") == "<%s>; rel=\"successor-version\"" % value
            if not ok:
                wrong.append("%s %r: %d %r %r" % (kind, value, r.status, r.header("Link"),
                                                   r.text()[:80]))
    assert state["i"] >= len(cases), "the rogue agent was asked %d times" % state["i"]
    assert not wrong, "\n".join(wrong)


# --- valgrind -----------------------------------------------------------------

@pytest.mark.timeout(TIMEOUT)
def test_valgrind_no_definite_leak():
    if harness.sanitized():
        pytest.skip("valgrind does not run ASan builds; the gcc build covers this case")
    workdir = tempfile.mkdtemp(prefix="cutover-faults-valgrind-")
    config = os.path.join(workdir, "cutover.yaml")
    write_atomic(config, plan_text(6))
    port = harness.free_port()
    vlog = os.path.join(workdir, "valgrind.log")
    argv = ["valgrind", "--tool=memcheck", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--error-exitcode=97", "--log-file=" + vlog, harness.agent_binary(),
            "--config", config, "--listen", "127.0.0.1:%d" % port, "--threads", "2",
            "--log-level", "info"]
    p = harness.Proc(argv, "agent-valgrind", workdir=workdir)
    decisions = reloads = 0
    try:
        harness.wait_port("127.0.0.1", port, timeout=30, proc=p.proc)
        deadline = time.monotonic() + 20
        clients = [session("127.0.0.1", port) for _ in range(4)]
        # Back and forth, never back across the one-way phase 7 (refused).
        for phase in (7, 8, 10, "garbage", 9, 11):
            if phase == "garbage":
                write_atomic(config, "phases: [unclosed\n")
            else:
                write_atomic(config, plan_text(phase))
                reloads += 1
            if phase in (8, 9):
                p.signal(signal.SIGHUP)
            t_end = min(time.monotonic() + 2.0, deadline)
            n = 0
            while time.monotonic() < t_end and n < 2000:
                for c in clients:
                    c.decide("PUT" if n % 3 else "GET", "/command/api/squids/%d" % n)
                    n += 1
            decisions += n
        for c in clients[:2]:
            c.close(graceful=True)
        for name, data, hello_first, expect in hostile.MALFORMED[:6]:
            hostile.send_malformed("127.0.0.1", port, name, data, hello_first, expect)
        assert p.alive(), "agent under valgrind exited"
    finally:
        rc = p.stop(timeout=30)
    with open(vlog) as f:
        report = f.read()
    rejected = len(re.findall(REJECT_LINE % re.escape(config), p.log()))
    applied = len(re.findall(r"event=phase_change ", p.log()))
    m = re.search(r"definitely lost: ([\d,]+) bytes", report)
    summary = m.group(0) if m else ("no leaks are possible" if "no leaks are possible" in report
                                    else "?")
    figures("valgrind run with reloads", "memcheck, %d reloads (%d by SIGHUP) and %d bad plan, "
            "6 malformed frames" % (reloads, 2, rejected),
            "%d SPOP decisions over 4 connections" % decisions, decisions, 0, rejected,
            0 if rc == 0 else 1, leak=summary)
    assert rejected >= 1, "the bad plan was not rejected with its line and column"
    assert applied == reloads, "%d phase changes logged for %d good edits" % (applied, reloads)
    assert rc == 0, "valgrind/agent exit %s (97 = memcheck errors or definite leaks):\n%s" % (
        rc, report[-4000:])
    assert m is None or m.group(1) == "0", summary
    remove_workdir(workdir)


def remove_workdir(path):
    """A passed case's files go, unless CUTOVER_KEEP_LOGS=1."""
    if os.environ.get("CUTOVER_KEEP_LOGS") != "1":
        shutil.rmtree(path, ignore_errors=True)
