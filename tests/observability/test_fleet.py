# SPDX-License-Identifier: Apache-2.0
"""scripts/fleet against a fleet on loopback: six agents sharing one plan
file, behind three HAProxy processes (two agents each, as haproxy.cfg
names them). Two layouts of the shared file, each a fleet of its own:

  file       one plan file, edited by rename-over
  configmap  Kubernetes style: plan.yaml -> ..data/plan.yaml, ..data ->
             a timestamped directory; an edit writes a new directory and
             swaps the ..data link by rename

For each: the fleet agrees at start; after an edit it converges (the
time is printed, bounded by a generous 10 s, never asserted closer); a
rejected edit leaves every agent on the old hash with its last reload
failed; an agent that does not answer is exit 2. Every process is stopped
by its PID.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import harness
import system

FLEET = os.path.join(harness.ROOT, "scripts", "fleet")
AGENTS, HAPROXIES = 6, 3
CONVERGE_BOUND_S = 10


class PlanFile:
    """The shared plan, in one of the two layouts; path is what agents watch."""

    def __init__(self, root, layout):
        self.root, self.layout = root, layout
        self.path = os.path.join(root, "plan.yaml")
        self.edits = 0

    def write(self, text):
        if self.layout == "file":
            system.write_atomic(self.path, text)
            return
        self.edits += 1
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + "%06d" % self.edits
        new = os.path.join(self.root, stamp)
        os.mkdir(new)
        with open(os.path.join(new, "plan.yaml"), "w") as f:
            f.write(text)
        data = os.path.join(self.root, "..data")
        old = os.readlink(data) if os.path.islink(data) else None
        os.symlink(stamp, data + "_tmp")
        os.rename(data + "_tmp", data)
        if not os.path.islink(self.path):
            os.symlink(os.path.join("..data", "plan.yaml"), self.path)
        if old:
            shutil.rmtree(os.path.join(self.root, old))

    def sha256(self):
        with open(self.path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()


def server_states(h):
    """{server: operational state} of spoe_cutover in HAProxy h (2: UP)."""
    out = {}
    for line in h.cli("show servers state spoe_cutover").splitlines():
        f = line.split()
        if len(f) > 5 and f[1] == "spoe_cutover":
            out[f[3]] = int(f[5])
    return out


@pytest.fixture(scope="module", params=["file", "configmap"])
def fleet(request):
    root = tempfile.mkdtemp(prefix="cutover-fleet-%s-" % request.param)
    plan = PlanFile(root, request.param)
    plan.write(system.plan_text(1))
    procs = []
    try:
        agents = []
        for i in range(AGENTS):
            d = os.path.join(root, "agent%d" % (i + 1))
            os.mkdir(d)
            agents.append(harness.Agent(plan.path, metrics=True, workdir=d,
                                        extra=["--log-level", "info"]))
            procs.append(agents[-1])
        nowhere = "127.0.0.1:%d" % harness.free_port()  # no app: no request is sent
        for j in range(HAPROXIES):
            d = os.path.join(root, "haproxy%d" % (j + 1))
            os.mkdir(d)
            pair = ["127.0.0.1:%d" % a.port for a in agents[2 * j:2 * j + 2]]
            fallback_dir = os.path.join(d, "fallback")
            system.write_fallback(fallback_dir, plan.path)
            env = system.haproxy_env(harness.free_port(), pair,
                                     {r: nowhere for r in system.ROLES},
                                     os.path.join(d, "haproxy.sock"), fallback_dir)
            procs.append(system.Haproxy(env, d))
        deadline = time.monotonic() + 15
        for h in procs[AGENTS:]:  # each HAProxy holds its two agents UP
            while server_states(h) != {"agent1": 2, "agent2": 2}:
                assert time.monotonic() < deadline, server_states(h)
                time.sleep(0.1)
        yield {"plan": plan, "agents": agents, "haproxies": procs[AGENTS:],
               "addrs": ["127.0.0.1:%d" % a.metrics_port for a in agents]}
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_fleet(addrs, *args):
    """(exit status, decoded --json output) of scripts/fleet."""
    r = subprocess.run([sys.executable, FLEET, "--json"] + list(args) + addrs,
                       capture_output=True, text=True, timeout=60)
    assert r.stderr == "", r.stderr
    return r.returncode, json.loads(r.stdout)


def edit_and_wait(fleet, text):
    """Writes text as the plan; returns scripts/fleet --wait's answer and
    how long after the edit the last agent reloaded."""
    plan = fleet["plan"]
    t_edit = time.time()
    plan.write(text)
    rc, out = run_fleet(fleet["addrs"], "--plan", plan.path, "--wait", str(CONVERGE_BOUND_S))
    last = max(a["last_reload_time"] for a in out["agents"])
    return rc, out, last - t_edit


def test_agree_at_start(fleet):
    rc, out = run_fleet(fleet["addrs"], "--plan", fleet["plan"].path)
    assert rc == 0, out["fleet"]
    assert out["fleet"]["agree"] and len(out["agents"]) == AGENTS
    assert {a["hash"] for a in out["agents"]} == {fleet["plan"].sha256()}
    assert {(a["desired"], a["effective"]) for a in out["agents"]} == {(1, 1)}
    text = subprocess.run([sys.executable, FLEET, "--plan", fleet["plan"].path] + fleet["addrs"],
                          capture_output=True, text=True, timeout=60).stdout
    print(text)
    verdicts = [l for l in text.splitlines() if l.startswith(("AGREE", "DISAGREE"))]
    assert verdicts == ["AGREE: 6 agents serve plan %s in phase 1" % fleet["plan"].sha256()[:12]]


@pytest.mark.parametrize("phase", [4, 8])
def test_edit_converges(fleet, phase):
    rc, out, spread = edit_and_wait(fleet, system.plan_text(phase))
    v = out["fleet"]
    print("%s layout, edit to phase %d: fleet agreed after %.3f s (%d polls); the last agent "
          "reloaded %.3f s after the edit (%.3f s after the file's mtime, as fleet says)"
          % (fleet["plan"].layout, phase, v["waited_s"], v["polls"], spread,
             v["loaded_after_edit_s"]))
    assert rc == 0 and v["converged"], v
    assert 0 <= v["loaded_after_edit_s"] <= CONVERGE_BOUND_S
    assert v["waited_s"] <= CONVERGE_BOUND_S + 1
    assert v["hashes"] == [fleet["plan"].sha256()]
    assert v["phases"] == [[phase, phase]]
    assert all(a["last_reload_success"] for a in out["agents"])


def test_rejected_edit(fleet):
    good = system.plan_text(9)  # forward: the fleet may be past the one-way phase 7
    rc, out, _ = edit_and_wait(fleet, good)
    assert rc == 0, out["fleet"]
    good_hash = fleet["plan"].sha256()
    fleet["plan"].write(good.replace("phase: 9", "phase: [9", 1))  # unbalanced flow sequence
    bad_hash = fleet["plan"].sha256()
    assert bad_hash != good_hash
    deadline = time.monotonic() + CONVERGE_BOUND_S
    while True:  # until every agent has tried the bad file
        rc, out = run_fleet(fleet["addrs"], "--plan", fleet["plan"].path)
        if all(a["last_reload_success"] is False for a in out["agents"]):
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.1)
    v = out["fleet"]
    print(v["summary"])
    assert rc == 1 and not v["agree"]
    assert [a["hash"] for a in out["agents"]] == [good_hash] * AGENTS
    assert [a["effective"] for a in out["agents"]] == [9] * AGENTS
    assert v["rejected"] == fleet["addrs"]
    # Without --plan the agents agree with each other, and the line says what failed.
    rc, out = run_fleet(fleet["addrs"])
    assert rc == 0 and "6 agents rejected their last reload" in out["fleet"]["summary"]
    # --wait gives up, exit 1; a good edit afterwards converges again.
    rc, out = run_fleet(fleet["addrs"], "--plan", fleet["plan"].path, "--wait", "0.5")
    assert rc == 1 and out["fleet"]["converged"] is False
    rc, out, _ = edit_and_wait(fleet, system.plan_text(10))
    assert rc == 0 and all(a["last_reload_success"] for a in out["agents"]), out["fleet"]


def test_unreachable_agent(fleet):
    nobody = "127.0.0.1:%d" % harness.free_port()
    rc, out = run_fleet(fleet["addrs"] + [nobody])
    assert rc == 2, out["fleet"]
    assert out["fleet"]["down"] == [nobody]
    assert [a["up"] for a in out["agents"]] == [True] * AGENTS + [False]
