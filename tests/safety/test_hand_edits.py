# SPDX-License-Identifier: Apache-2.0
"""Hand edits of the sample plan's `phase:` line through the whole system
(apps, two agents with state and journals, data_steps.py, HAProxy), under
load.py's reads and writes: the agents keep the migration safe whatever the
edit. Figures are printed (run with -s to see them):

  walk_by_edits       1 -> 12, one edit of `phase:` every 2 s (temp file and
                      rename), no scripts/walk: 0 failed requests, 0 lost
                      writes; the share of requests decided in a phase other
                      than the majority's of their 100 ms window
  jump_and_door       1 -> 8 in one edit walks through every gate in order;
                      8 -> 1 is refused (journal, log) and sends no write to
                      OLD; then on to 12; how far apart (journal times) the
                      two agents entered each phase
"""
import datetime
import json
import os
import re
import signal
import sys
import time

import pytest

import harness
import http_once
from system import System, plan_text, write_atomic

APPS = os.path.join(harness.ROOT, "scripts", "apps")
RATE, CLIENTS = 200, 8
WAIT = 60.0
_LINE = re.compile(r"^\S+ \[([^\]]+)\] .* id=\S+ client=(\S*) phase=(\S*) ")


def start_load(s, max_s=150):
    api_file = os.path.join(s.dir, "api")
    write_atomic(api_file, "old\n")
    load = harness.Proc(
        [sys.executable, os.path.join(APPS, "load.py"), "--url", "http://127.0.0.1:%d" % s.http_port,
         "--rate", str(RATE), "--duration", str(max_s), "--clients", str(CLIENTS),
         "--api", "auto", "--api-switch-file", api_file,
         "--verify-url", "http://127.0.0.1:%d" % s.http_port, "--verify-api", "new",
         "--report", os.path.join(s.dir, "load.json"), "--timeout", "10"], "load", workdir=s.dir)
    return load, api_file


def stop_load(s, load):
    load.signal(signal.SIGTERM)
    deadline = time.monotonic() + 120
    while load.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    load.stop()
    with open(os.path.join(s.dir, "load.json")) as f:
        return json.load(f)


def status(s, i):
    r = http_once.request("127.0.0.1:%d" % s.agents[i].metrics_port, "GET", "/status", timeout=2)
    return json.loads(r.text())


def wait_effective(s, phase):
    deadline = time.monotonic() + WAIT
    while True:
        sts = [status(s, i) for i in range(len(s.agents))]
        if all(st["effective"] == phase for st in sts):
            return
        assert time.monotonic() < deadline, "agents at %s, want %d" % (sts, phase)
        time.sleep(0.05)


def journal(s, i):
    with open(s.journal(i)) as f:
        return [json.loads(line) for line in f]


def off_majority(s):
    """(requests, off-majority) over load.py's requests in HAProxy's log: a
    request is off-majority when its phase is not the one most requests of
    its 100 ms window were decided in."""
    buckets = {}
    for line in s.haproxy.lines():
        m = _LINE.match(line)
        if not m or not m.group(2).startswith("load-") or m.group(3) == "-":
            continue
        t = datetime.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S.%f").timestamp()
        buckets.setdefault(int(t * 10), []).append(m.group(3))
    total = off = 0
    for phases in buckets.values():
        top = max(set(phases), key=phases.count)
        total += len(phases)
        off += sum(1 for p in phases if p != top)
    return total, off


def check(rep):
    assert rep["failures"] == 0, "failed requests: %s" % json.dumps(rep["failure_samples"][:5])
    assert rep["lost_writes"] == 0, "lost writes: %s" % json.dumps(rep["verify"])
    assert not (rep["verify"] or {}).get("errors"), rep["verify"]
    assert rep["requests"] >= RATE * 5, "too little load: %d" % rep["requests"]


@pytest.mark.timeout(400)
def test_walk_by_edits_of_the_phase_line():
    s = System("safety-walk", 1, agents=2, metrics=True, data_steps=True,
               sunset_ahead=True)
    try:
        load, api_file = start_load(s)
        time.sleep(2)
        for phase in range(2, 13):
            write_atomic(s.plan, plan_text(phase, replication=s.replication))
            if phase == 9:  # clients may use the NEW API from phase 8 on
                write_atomic(api_file, "new\n")
            time.sleep(2)
            assert load.alive(), load.log()[-2000:]
        wait_effective(s, 12)
        rep = stop_load(s, load)
        total, off = off_majority(s)
        steps = [(r["from"], r["to"]) for r in journal(s, 0) if r["event"] == "step"]
        print("\n  walk 1->12 by edits: %d requests, %d failures, %d lost writes, %d verified; "
              "%d of %d requests (%.3f%%) decided off their 100 ms window's majority phase"
              % (rep["requests"], rep["failures"], rep["lost_writes"],
                 (rep.get("verify") or {}).get("checked", 0), off, total,
                 100.0 * off / max(total, 1)))
        check(rep)
        assert steps == [(k, k + 1) for k in range(1, 12)], steps
        assert not [r for r in journal(s, 0) + journal(s, 1) if r["event"] == "refused"]
    finally:
        s.stop()


@pytest.mark.timeout(400)
def test_jump_through_gates_then_the_door_holds():
    s = System("safety-jump", 1, agents=2, metrics=True, data_steps=True,
               sunset_ahead=True)
    try:
        load, api_file = start_load(s)
        time.sleep(2)
        write_atomic(s.plan, plan_text(8, replication=s.replication))  # one edit, seven steps
        wait_effective(s, 8)
        entered = {}  # phase -> when each agent stepped into it
        for i in range(2):
            recs = journal(s, i)
            steps = [r for r in recs if r["event"] == "step"]
            for r in steps:
                entered.setdefault(r["to"], []).append(
                    datetime.datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S.%fZ"))
            assert [(r["from"], r["to"]) for r in steps] == [(k, k + 1) for k in range(1, 8)]
            gated = {r["to"]: [g["gate"] for g in r["gates"] if g["ok"]] for r in steps}
            assert gated[4] == gated[6] == ["replicator-running", "new-db-caught-up"], gated
            assert gated[8] == ["replicator-stopped"], gated  # 7's data step was done
            # Phase 4 was held until replication ran: the journal says so.
            assert [r for r in recs if r["event"] == "held" and r["to"] == 4], recs
        time.sleep(2)
        write_atomic(s.plan, plan_text(1, replication=s.replication))  # back across 7
        for i in range(2):
            deadline = time.monotonic() + WAIT
            while not [r for r in journal(s, i) if r["event"] == "refused"]:
                assert time.monotonic() < deadline, "agent %d did not refuse 8 -> 1" % (i + 1)
                time.sleep(0.05)
            assert "event=plan_refused" in s.agents[i].log()
        served = []
        for k in range(10):
            r = http_once.request("127.0.0.1:%d" % s.http_port, "POST", "/command/api/squids",
                                  json={"name": "door squid %d" % k, "price": 1}, timeout=5)
            assert r.status == 201, r.status
            served.append(r.headers.get("x-served-by"))
        assert served == ["new-command"] * 10, served
        assert [status(s, i)["effective"] for i in range(2)] == [8, 8]
        write_atomic(api_file, "new\n")
        write_atomic(s.plan, plan_text(12, replication=s.replication))
        wait_effective(s, 12)
        time.sleep(2)
        rep = stop_load(s, load)
        apart = {p: abs((t[0] - t[1]).total_seconds()) * 1000 for p, t in entered.items()}
        print("\n  jump 1->8, refused 8->1, on to 12: %d requests, %d failures, %d lost writes; "
              "the two agents entered phases 4, 6 and 8 (gated) %s ms apart, the others %s ms"
              % (rep["requests"], rep["failures"], rep["lost_writes"],
                 "/".join("%.0f" % apart[p] for p in (4, 6, 8)),
                 "/".join("%.0f" % apart[p] for p in (2, 3, 5, 7))))
        check(rep)
    finally:
        s.stop()
