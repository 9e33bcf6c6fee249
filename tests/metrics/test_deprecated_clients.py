# SPDX-License-Identifier: Apache-2.0
"""Deprecated-route requests per client, from the independent SPOP client
(tests/lib/spop_client.py) straight to one agent, read back from /metrics,
/clients and /clients.json:

  counts_by_client      exact counts per client key, the others and the
                        not-deprecated routes apart; several connections
                        over two worker threads add up
  track_bounds_series   a plan's clients.track caps the client series (the
                        rest is other, totals kept); a reload with a smaller
                        track keeps the top clients and the total; with two
                        worker threads too
  labels_escaped        keys with quotes, backslashes, control and non-ASCII
                        bytes: printable labels promtool accepts, distinct
  no_clients_block      a plan without clients: every request is other
  quiet_seconds         since the start while nothing came, since the last
                        deprecated request after; other routes do not reset it
"""
import json
import re
import shutil
import subprocess
import time

import http_once
import spop_client as spop
from system import write_atomic

PLAN = """\
phase: 2
clients:
  key: X-Api-Client
  track: %(track)d
backends: [old, new]
routes:
  - name: legacy
    path: /v1/{rest...}
    deprecation: { date: 2026-12-01, sunset: 2099-12-31 }
  - name: current
    path: /v2/{rest...}
phases:
  - number: 1
    name: one
    routes:
      legacy: old
      current: new
  - number: 2
    name: two
    routes:
      legacy: { backend: new, deprecated: true }
"""


def plan(track=100, clients=True):
    text = PLAN % {"track": track}
    if not clients:
        text = re.sub(r"clients:\n(  .*\n)+", "", text)
    return text


def send(agent, requests, connections=1):
    """(client or None, path) NOTIFYs, round-robin over several connections;
    each ACK read before the next request on its connection."""
    sessions = [agent.session() for _ in range(connections)]
    try:
        for n, (client, path) in enumerate(requests):
            s = sessions[n % connections]
            args = [("method", spop.string("GET")), ("path", spop.string(path))]
            if client is not None:
                args.append(("client", spop.string(client)))
            sid, s.next_sid = s.next_sid, s.next_sid + 1
            s.conn.send(spop.notify(sid, 1, [("cutover", args)]))
            _, f = s.conn.recv_frame()
            assert f.type == spop.ACK, f.type
    finally:
        for s in sessions:
            s.close(graceful=True)


def clients_json(agent):
    r = http_once.request(agent.metrics_port, "GET", "/clients.json", timeout=5)
    assert r.status == 200 and r.header("content-type") == "application/json", r.text()
    return json.loads(r.text())


def unescape(label):
    """A label value as Prometheus reads it: \\, \" and \n undone."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), label)


def counts(page):
    return {unescape(d["client"]): v
            for d, v in page.series("cutover_deprecated_requests_total")}


def test_counts_by_client(start_agent):
    a = start_agent(plan(), threads=2)
    want = {"acme": 40, "globex": 25, "initech": 7}
    reqs = [(c, "/v1/things/%d" % i) for c, n in want.items() for i in range(n)]
    reqs += [(None, "/v1/x")] * 3            # no key: other
    reqs += [("acme", "/v2/things")] * 11    # not deprecated: not counted
    reqs += [("zzz", "/v2/things")] * 5
    send(a, reqs, connections=6)
    page = a.scrape()
    assert counts(page) == dict(want, other=3)
    view = clients_json(a)
    assert view["requests"] == sum(want.values()) + 3
    assert {c["client"]: c["requests"] for c in view["clients"]} == want
    assert view["other"]["requests"] == 3
    stamps = {d["client"]: v for d, v in
              page.series("cutover_deprecated_last_request_timestamp_seconds")}
    assert set(stamps) == set(want) | {"other"}
    assert all(abs(t - time.time()) < 60 for t in stamps.values()), stamps
    text = http_once.request(a.metrics_port, "GET", "/clients", timeout=5).text()
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["CLIENT", "REQUESTS"]
    rows = {l.split()[0]: int(l.split()[1]) for l in lines[1:-1]}
    assert rows == dict(want, **{"(other)": 3}), text
    assert lines[-1].startswith("%d requests on deprecated routes" % (sum(want.values()) + 3))


def test_track_bounds_series(start_agent):
    a = start_agent(plan(track=3), threads=1)
    # a 6, b 5 stay; d evicts c (4, the fewest), then each new key the last
    reqs = [(c, "/v1/") for c, n in (("a", 6), ("b", 5), ("c", 4)) for _ in range(n)]
    reqs += [(k, "/v1/") for k in "defghijk"]
    send(a, reqs)
    got = counts(a.scrape())
    assert len(got) <= 3 + 1
    assert {k: got[k] for k in "ab"} == {"a": 6, "b": 5}
    assert sum(got.values()) == len(reqs)
    # A smaller track on reload: the top ones and the total carried over.
    write_atomic(a.plan, plan(track=1))
    a.wait_for(lambda p: p.value("cutover_plan_reloads_total", result="accepted") == 1,
               "the reload")
    send(a, [("a", "/v1/")])  # the worker takes the new plan with a request
    got = counts(a.scrape())
    assert got == {"a": 7, "other": len(reqs) - 6}, got


def test_track_bounds_series_over_workers(start_agent):
    """Two workers, each with a table of 3: the page merges them into 3
    clients and other (12 connections: both workers take some)."""
    a = start_agent(plan(track=3), threads=2)
    reqs = [("k%02d" % i, "/v1/") for i in range(30) for _ in range(1 + i % 4)]
    send(a, reqs, connections=12)
    got = counts(a.scrape())
    assert len(got) == 3 + 1, got
    assert sum(got.values()) == len(reqs)
    view = clients_json(a)
    assert len(view["clients"]) == 3
    assert sum(c["requests"] for c in view["clients"]) + view["other"]["requests"] == len(reqs)


def test_labels_escaped(start_agent):
    a = start_agent(plan(), threads=1)
    weird = ['we"ird', "back\\slash", "new\nline", "ctl\x01", "caf\u00e9", "50%", "other"]
    send(a, [(k, "/v1/") for k in weird])
    page = a.scrape()
    got = counts(page)
    assert got == {'we"ird': 1, "back\\slash": 1, "new%0Aline": 1, "ctl%01": 1,
                   "caf%C3%A9": 1, "50%25": 1, "other": 1}, got
    assert 'client="we\\"ird"' in page.text and 'client="back\\\\slash"' in page.text
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    r = subprocess.run([promtool, "check", "metrics"], input=page.text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (
        r.stdout.decode() + r.stderr.decode())
    listed = {c["client"] for c in clients_json(a)["clients"]}
    assert listed == {'we"ird', "back\\slash", "new%0Aline", "ctl%01", "caf%C3%A9", "50%25",
                      "other"}


def test_no_clients_block(start_agent):
    a = start_agent(plan(clients=False), threads=1)
    send(a, [("acme", "/v1/")] * 4 + [(None, "/v1/")])
    assert counts(a.scrape()) == {"other": 5}
    assert clients_json(a)["clients"] == []


def test_quiet_seconds(start_agent):
    born = time.monotonic()
    a = start_agent(plan(), threads=1)
    q0 = clients_json(a)["quiet_seconds"]
    assert q0 <= time.monotonic() - born, q0  # not older than the agent
    time.sleep(1.0)
    q1 = clients_json(a)["quiet_seconds"]
    assert 0 <= q0 < q1 and q1 - q0 >= 0.9, (q0, q1)  # since the start
    send(a, [("acme", "/v1/")])
    q2 = clients_json(a)["quiet_seconds"]
    assert q2 < 0.5, q2
    time.sleep(0.6)
    send(a, [("acme", "/v2/")] * 3)           # not deprecated
    q3 = clients_json(a)["quiet_seconds"]
    assert q3 >= 0.6, q3
    page = a.scrape()
    assert page.value("cutover_deprecated_quiet_seconds") >= 0.6
