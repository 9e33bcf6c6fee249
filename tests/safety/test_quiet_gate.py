# SPDX-License-Identifier: Apache-2.0
"""The gate "no deprecated traffic for T before the old API goes" (docs/plan.md,
"Doors and gates"): an http gate on each agent's own /clients.json, json
quiet_seconds, min T, through the real HAProxy and two agents on a plan of
this test's own (phase 9: the squids route deprecated; phase 10: 410):

  quiet_gate  just after the agents start, with no traffic, the step to 10
              waits until they have been up T seconds (quiet_seconds counts
              from the start); back at 9, deprecated requests through HAProxy
              keep the step held (`/status` says which gate, and why) however
              long they go on; once they stop, both agents step to 10 after T,
              not before, and HAProxy answers 410. By then /clients.json lists
              400 clients with long keys, over the 16 KiB a gate reads: the
              gate judges its start, where quiet_seconds is.

One gate per agent: each agent sees only the requests HAProxy sent it, so
the plan asks every agent's /clients.json (here HAProxy sends the light load
to one agent only, and the other agent's gate alone would pass).
"""
import json
import threading
import time
import http.client

import http_once
from system import HAPROXY_CFG, Layout, SAMPLE, haproxy_env, write_atomic

T = 4.0          # seconds of quiet the gate asks for
TRAFFIC_S = 6.0  # deprecated requests for longer than T: the step stays held
BULK = 400       # clients with 64-byte keys: /clients.json over 16 KiB

PLAN = """\
phase: %(phase)s
clients:
  key: X-Api-Client
  track: 400
backends: [old_query, new_query]
routes:
  - name: squids
    path: /query/api/squids{rest...}
    deprecation: { date: 2026-12-01, sunset: 2099-12-31 }
  - name: seafoods
    path: /query/api/seafoods{rest...}
phases:
  - number: 9
    name: clients-change-api
    routes:
      squids: { backend: new_query, rewrite: "/query/api/seafoods{rest}", deprecated: true }
      seafoods: new_query
  - number: 10
    name: remove-old-routing
%(gates)s    routes:
      squids: { status: 410, link: "/query/api/seafoods{rest}" }
"""

GATE = """\
      - name: quiet-agent%(n)d
        http: http://127.0.0.1:%(port)d/clients.json
        json: quiet_seconds
        min: %(t)g
        interval: 0.2
"""


def plan(phase, metrics_ports=()):
    gates = "".join(GATE % {"n": n + 1, "port": p, "t": T} for n, p in enumerate(metrics_ports))
    return PLAN % {"phase": phase, "gates": "    gates:\n" + gates if gates else ""}


def status(agent):
    return json.loads(http_once.request(agent.metrics_port, "GET", "/status", timeout=5).text())


def quiet(agent):
    r = http_once.request(agent.metrics_port, "GET", "/clients.json", timeout=5)
    return json.loads(r.text())["quiet_seconds"]


def wait_effective(s, phase, timeout):
    """Until every agent is at phase; returns when that was seen."""
    deadline = time.monotonic() + timeout
    while True:
        if all(status(a)["effective"] == phase for a in s.agents):
            return time.monotonic()
        assert time.monotonic() < deadline, [status(a) for a in s.agents]
        time.sleep(0.05)


def test_quiet_gate(start_system, tmp_path):
    template = tmp_path / "plan.yaml"
    template.write_text(plan(9))
    layout = Layout(str(template), HAPROXY_CFG, haproxy_env, SAMPLE.apps)
    born = time.monotonic()
    s = start_system("quiet-gate", 9, agents=2, metrics=True, layout=layout)
    ports = [a.metrics_port for a in s.agents]

    # A fresh start counts as no quiet yet: the step waits until T after it.
    quiet_now = max(quiet(a) for a in s.agents)
    assert quiet_now <= time.monotonic() - born, "quiet longer than the agents ran"
    started = time.monotonic() - quiet_now
    assert time.monotonic() - started < T - 1, "the system took too long to start"
    write_atomic(s.plan, plan(10, ports))
    first = wait_effective(s, 10, T + 5)
    assert first - started >= T, (first - started)

    # Back to 9 (no gate), then deprecated traffic while 10 is asked for.
    write_atomic(s.plan, plan(9, ports))
    wait_effective(s, 9, 5)
    conn = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=5)
    for i in range(BULK):
        conn.request("GET", "/query/api/squids", headers={"X-Api-Client": "bulk-%059d" % i})
        r = conn.getresponse()
        r.read()
    conn.close()
    big = max(len(http_once.request(a.metrics_port, "GET", "/clients.json", timeout=5).body)
              for a in s.agents)
    assert big > 16384, big
    stop = threading.Event()
    sent = []

    def traffic():
        conn = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=5)
        while not stop.is_set():
            conn.request("GET", "/query/api/squids/%d" % len(sent),
                         headers={"X-Api-Client": "late-client"})
            r = conn.getresponse()
            r.read()
            sent.append((time.monotonic(), r.status))
            time.sleep(0.05)
        conn.close()

    t = threading.Thread(target=traffic)
    t.start()
    try:
        time.sleep(0.5)
        write_atomic(s.plan, plan(10, ports))
        held_until = time.monotonic() + TRAFFIC_S
        while time.monotonic() < held_until:
            for a in s.agents:
                st = status(a)
                assert st["effective"] == 9, st
            time.sleep(0.2)
        waits = [status(a) for a in s.agents]
    finally:
        stop.set()
        t.join()
    last = sent[-1][0]
    assert {st for _, st in sent} <= {200, 404}, set(st for _, st in sent)
    assert len(sent) > TRAFFIC_S / 0.1, len(sent)  # it went on all along
    for w in waits:
        assert w["waiting"] and w["waiting"].startswith("quiet-agent"), w
        assert "quiet_seconds" in w["waiting_why"], w

    stepped = wait_effective(s, 10, T + 5)
    assert stepped - last >= T - 0.1, (stepped - last)  # the last one may be 0.1 s old
    r = s.request("GET", "/query/api/squids/1", headers={"X-Api-Client": "late-client"})
    assert r.status == 410, r.status
    print("\nquiet gate: step %.1f s after the start, held for %.1f s of deprecated "
          "traffic (%d requests), stepped %.1f s after the last; /clients.json %d bytes"
          % (first - started, TRAFFIC_S, len(sent), stepped - last, big))
