# SPDX-License-Identifier: Apache-2.0
"""The agent keeps the migration safe however the plan file is edited: one-way
doors, gates, desired vs effective phase, the audit journal and the state file
(docs/plan.md, "Doors and gates"), against the real cutover-spoa binary.

Each case runs an agent on a private plan with --state-dir and --journal, and
a gate endpoint served from this process whose answer the case sets. What the
agent does is read from three independent places: SPOP answers (what HAProxy
would be told), /status and /metrics, and the journal.
"""
import http.server
import json
import os
import re
import tempfile
import threading
import time

import harness
import spop_client

WAIT = 10.0  # seconds: an upper bound for things that take well under one


class GateServer:
    """GET /lag answers {"lag_seconds": <lag>} with status <status>."""

    def __init__(self):
        self.lag, self.status, self.hits = 5, 200, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                body = json.dumps({"lag_seconds": outer.lag}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def plan_text(phase, gate_port, phase1_r="a", override=""):
    """Phases 1-4: 2 gated on the lag endpoint, 3 one-way (r moves to b),
    4 gated on 1.5 s in phase 3 (q moves to b)."""
    return """phase: %s
%sbackends: [a, b]
routes:
  - name: r
    path: /r/{rest...}
  - name: q
    path: /q
phases:
  - number: 1
    name: one
    routes: { r: %s, q: a }
  - number: 2
    name: two
    gates:
      - http: http://127.0.0.1:%d/lag
        json: lag_seconds
        max: 1
        timeout: 1
        interval: 0.1
  - number: 3
    name: three
    one_way: true
    routes: { r: b }
  - number: 4
    name: four
    gates:
      - min_time_in_previous: 1.5
    routes: { q: b }
""" % (phase, override, phase1_r, gate_port)


class Run:
    def __init__(self, phase, gate, state_dir=None, text=None):
        self.dir = tempfile.mkdtemp(prefix="cutover-safety-")
        self.gate = gate
        self.plan = os.path.join(self.dir, "plan.yaml")
        self.state = state_dir or os.path.join(self.dir, "state")
        os.makedirs(self.state, exist_ok=True)
        self.journal = os.path.join(self.state, "journal.jsonl")
        self.write(text or plan_text(phase, gate.port))
        self.start()

    def start(self):
        self.agent = harness.Agent(self.plan, metrics=True, workdir=self.dir,
                                   extra=["--state-dir", self.state, "--journal", self.journal])

    def stop(self):
        assert self.agent.alive(), "the agent exited:\n" + self.agent.log()[-3000:]
        assert self.agent.stop() == 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.agent.alive():
            self.stop()

    def write(self, text):
        tmp = self.plan + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.plan)

    def edit(self, phase, **kw):
        self.write(plan_text(phase, self.gate.port, **kw))

    def get(self, path):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.agent.metrics_port, path),
                                    timeout=5) as r:
            return r.read().decode()

    def status(self):
        return json.loads(self.get("/status"))

    def wait_status(self, pred, what):
        deadline = time.monotonic() + WAIT
        while True:
            st = self.status()
            if pred(st):
                return st
            assert time.monotonic() < deadline, "no %s: /status says %r" % (what, st)
            time.sleep(0.05)

    def mark(self):
        """Where the log ends now: wait_log(since=mark) looks only after it."""
        return len(self.agent.log())

    def wait_log(self, pattern, what, since=0):
        deadline = time.monotonic() + WAIT
        while not re.search(pattern, self.agent.log()[since:]):
            assert time.monotonic() < deadline, "no %s in the log:\n%s" % (
                what, self.agent.log()[-3000:])
            time.sleep(0.05)

    def records(self, event=None):
        with open(self.journal) as f:
            recs = [json.loads(line) for line in f]
        return [r for r in recs if event is None or r["event"] == event]

    def decide(self, path="/r/x"):
        """The SPOP answer's (phase, backend) for GET path."""
        ans = spop_client.decide_once("127.0.0.1", self.agent.port, "GET", path)
        return ans.get("txn.phase"), ans.get("txn.backend")


def test_back_across_a_one_way_phase_is_refused_whole():
    gate = GateServer()
    try:
        with Run(4, gate) as run:  # a first start takes the file's phase
            assert run.decide() == (4, "b")
            run.edit(1)
            run.wait_log(r"event=plan_refused reason=\"phase 3 three is one-way", "refusal")
            st = run.status()
            assert (st["effective"], st["desired"]) == (4, 4), st
            assert st["last_reload_ok"] is False
            assert run.decide() == (4, "b"), "a refused edit changed the routing"
            assert run.decide("/q") == (4, "b")
            refused = run.records("refused")
            assert len(refused) == 1
            r = refused[0]
            assert (r["from"], r["desired"]) == (4, 1)
            assert "override" in r["reason"] and r["file_uid"] == os.getuid()
            assert re.fullmatch(r"[0-9a-f]{64}", r["plan"])
            # The same edit with an explicit override walks back, gate included.
            gate.lag = 0
            run.edit(1, override='override: { allow_back_across: 3, reason: "restore drill" }\n')
            run.wait_status(lambda s: s["effective"] == 1, "walk back to 1")
            assert run.decide() == (1, "a")
            over = run.records("override")
            assert len(over) == 1 and over[0]["reason"] == "restore drill"
            assert re.search(r"event=door_override door=3 .*reason=\"restore drill\"",
                             run.agent.log())
    finally:
        gate.close()


def test_a_gate_holds_the_step_until_it_passes():
    gate = GateServer()
    try:
        with Run(1, gate) as run:
            run.edit(2)
            run.wait_log(r"event=phase_held effective=1 next=2 .*why=\"status 200, "
                         r"lag_seconds 5 > 1\"", "hold")
            st = run.status()
            assert (st["effective"], st["desired"]) == (1, 2), st
            assert st["waiting"].startswith("http http://127.0.0.1:%d/lag" % gate.port)
            assert run.decide() == (1, "a")
            page = run.get("/metrics")
            assert re.search(r'(?m)^cutover_phase_waiting\{gate="http [^"]+"\} 1$', page)
            assert re.search(r"(?m)^cutover_phase_desired 2$", page)
            assert re.search(r"(?m)^cutover_phase_effective 1$", page)
            gate.status = 503  # the status counts too
            gate.lag = 0
            hits = gate.hits
            deadline = time.monotonic() + WAIT
            while gate.hits < hits + 2:
                assert time.monotonic() < deadline, "the gate is not retried"
                time.sleep(0.05)
            assert run.status()["effective"] == 1
            gate.status = 200
            run.wait_status(lambda s: s["effective"] == 2 and s["waiting"] is None, "step")
            assert run.decide() == (2, "a")
            held, step = run.records("held"), run.records("step")
            assert len(held) == 1 and held[0]["gates"][0]["ok"] is False
            assert [(s["from"], s["to"]) for s in step] == [(1, 2)]
            assert step[0]["gates"][0]["ok"] is True
            assert "lag_seconds 0 within bounds" in step[0]["gates"][0]["detail"]
    finally:
        gate.close()


def test_a_jump_walks_through_every_gate_in_order():
    gate = GateServer()
    gate.lag = 0
    try:
        with Run(1, gate) as run:
            run.edit(4)
            run.wait_status(lambda s: s["effective"] == 4, "phase 4")
            steps = run.records("step")
            assert [(s["from"], s["to"]) for s in steps] == [(1, 2), (2, 3), (3, 4)]
            assert [g["gate"] for g in steps[0]["gates"]] == [
                "http http://127.0.0.1:%d/lag lag_seconds" % gate.port]
            assert steps[1]["gates"] == []
            assert steps[2]["gates"][0]["gate"] == "min_time_in_previous 1.5s"
            assert all(g["ok"] for s in steps for g in s["gates"])
            # Route changes as each step made them.
            assert steps[1]["routes"] == [{"route": "r", "from": "backend a", "to": "backend b"}]
            assert steps[2]["routes"] == [{"route": "q", "from": "backend a", "to": "backend b"}]
            # The minimum time in phase 3 held, by the agent's own clock.
            held = [h for h in run.records("held") if h["to"] == 4]
            assert len(held) == 1
            entered3 = steps[1]["time"]
            assert time_of(steps[2]["time"]) - time_of(entered3) >= 1.5
            assert run.decide("/q") == (4, "b")
    finally:
        gate.close()


def time_of(iso):
    import datetime
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_an_inherited_change_is_journaled_route_by_route():
    gate = GateServer()
    gate.lag = 0
    try:
        with Run(2, gate) as run:
            assert run.decide() == (2, "a")
            run.edit(2, phase1_r="{ status: 404 }")  # phase 2 inherits r from phase 1
            run.wait_log(r"event=plan_reloaded phase=2 ", "reload")
            edit = run.records("edit")
            assert len(edit) == 1
            assert edit[0]["routes"] == [{"route": "r", "from": "backend a", "to": "status 404"}]
            assert edit[0]["effective"] == 2
    finally:
        gate.close()


def test_a_restart_keeps_the_effective_phase():
    gate = GateServer()
    gate.lag = 0
    try:
        with Run(4, gate) as run:
            run.stop()
            # Behind the door in the file, past it in the state: the door holds.
            run.edit(1)
            run.start()
            st = run.status()
            assert (st["effective"], st["desired"]) == (4, 1), st
            assert st["waiting"] == "one-way phase 3"
            assert run.decide() == (4, "b")
            assert run.records("refused")[-1]["desired"] == 1
            time.sleep(0.5)
            assert run.status()["effective"] == 4
            run.stop()
        # Held at a gate when stopped: a restart does not skip it.
        with Run(1, gate, state_dir=tempfile.mkdtemp(prefix="cutover-state-")) as run:
            gate.lag = 5
            run.edit(4)
            run.wait_log(r"event=phase_held effective=1 next=2 ", "hold")
            run.stop()
            since = run.mark()
            run.start()
            st = run.status()
            assert (st["effective"], st["desired"]) == (1, 4), st
            assert run.decide() == (1, "a")
            run.wait_log(r"event=phase_held effective=1 next=2 ", "hold after restart", since)
            gate.lag = 0
            run.wait_status(lambda s: s["effective"] == 4, "phase 4 after restart")
            with open(os.path.join(run.state, "effective.json")) as f:
                assert json.load(f)["phase"] == 4
    finally:
        gate.close()
