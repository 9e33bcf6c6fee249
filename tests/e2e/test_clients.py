# SPDX-License-Identifier: Apache-2.0
"""Who still uses the old API, through the real HAProxy and two agents, at
phase 8 of the sample plan (the squids routes deprecated, served by NEW):

  per_client_counts  3 named clients (X-Api-Client, 300/200/100 requests)
                     and 10,000 random client keys (one request each) on
                     the deprecated routes, plus requests on the seafoods
                     routes (not deprecated): summed over both agents'
                     /clients.json and /metrics, each named client's count
                     is exact, named + other = every deprecated request
                     sent, no agent shows more than track + 1 client series,
                     the seafoods requests are in no count, each agent's RSS
                     stays within a bound; `cutover-spoa --clients` prints
                     the same merged list, most recent first.

The named clients send their first half before the random keys (they are
the API's long-time clients) and the rest mixed with them: a client counted
at least twice by an agent is never evicted there by keys seen once
(spoa/client_usage.h). HAProxy would send a light load to one agent only,
so each half goes half to one agent and half to the other (the other one
disabled on HAProxy's CLI meanwhile). Requests go over keep-alive
connections from a few threads. Figures (counts, RSS before and after) are
printed.
"""
import http.client
import json
import random
import re
import subprocess
import threading
import time

import harness
import http_once
from system import System

NAMED = {"acme-corp": 300, "globex": 200, "initech": 100}
RANDOM_KEYS = 10000
NOT_DEPRECATED = 300  # seafoods requests, by named and random clients alike
TRACK = 100           # the sample plan's clients.track (the default)
THREADS = 8
# Growth of an agent's RSS over the 10,000 keys; under ASan, whose
# quarantine holds freed pages (each page the agent renders), 16 MiB.
RSS_BOUND_KIB = 16384 if harness.sanitized() else 1024
DEPRECATED_PATHS = ("/query/api/squids", "/query/api/squids/1", "/query/api/squids/2")
NOT_DEPRECATED_PATHS = ("/query/api/seafoods", "/query/api/seafoods/2")


def send_all(port, work, deadline):
    """Sends every (client, path) of work over THREADS keep-alive connections;
    returns the statuses seen, {status: count}."""
    lock = threading.Lock()
    items = list(work)
    statuses = {}
    errors = []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while time.monotonic() < deadline:
                with lock:
                    if not items:
                        return
                    client, path = items.pop()
                conn.request("GET", path, headers={"X-Api-Client": client})
                r = conn.getresponse()
                r.read()
                with lock:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
        except Exception as e:  # reported below: a request that failed
            errors.append(repr(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert not items, "%d requests not sent before the deadline" % len(items)
    return statuses


def clients_json(agent):
    r = http_once.request(agent.metrics_port, "GET", "/clients.json", timeout=5)
    assert r.status == 200, r.text()
    return json.loads(r.text())


_SERIES = re.compile(r'^cutover_deprecated_requests_total\{client="((?:[^"\\]|\\.)*)"\} (\d+)$')


def metric_counts(agent):
    """{client label: count} of cutover_deprecated_requests_total."""
    page = http_once.request(agent.metrics_port, "GET", "/metrics", timeout=5).text()
    out = {}
    for line in page.splitlines():
        m = _SERIES.match(line)
        if m:
            assert m.group(1) not in out, "two series for %s" % m.group(1)
            out[m.group(1)] = int(m.group(2))
    return out


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def only(s, i):
    """HAProxy asks agent i only: the other one disabled, its connections
    shut, and agent i UP."""
    me, other = "spoe_cutover/agent%d" % (i + 1), "spoe_cutover/agent%d" % (2 - i)
    s.cli("enable server " + me)
    s.cli("disable server " + other)
    s.cli("shutdown sessions server " + other)
    deadline = time.monotonic() + 15
    while True:
        st = s.server_states()
        if st.get("agent%d" % (i + 1)) == (2, 3) and st.get("agent%d" % (2 - i), (0,))[0] == 0:
            return
        assert time.monotonic() < deadline, st
        time.sleep(0.05)


def wait_total(agents, want, timeout=10.0):
    """Until the agents' /clients.json requests add up to want."""
    deadline = time.monotonic() + timeout
    while True:
        views = [clients_json(a) for a in agents]
        if sum(v["requests"] for v in views) == want:
            return views
        assert time.monotonic() < deadline, "agents count %s, not %d" % (
            [v["requests"] for v in views], want)
        time.sleep(0.1)


def test_per_client_counts(start_system):
    s = start_system("clients", 8, agents=2, metrics=True)
    rng = random.Random(12)
    deadline = time.monotonic() + 60
    named = [(c, rng.choice(DEPRECATED_PATHS)) for c, n in NAMED.items() for _ in range(n)]
    rng.shuffle(named)
    first, rest = named[:len(named) // 2], named[len(named) // 2:]
    keys = ["rnd-%016x" % rng.getrandbits(64) for _ in range(RANDOM_KEYS)]
    assert len(set(keys)) == RANDOM_KEYS
    mixed = rest + [(k, rng.choice(DEPRECATED_PATHS)) for k in keys]
    mixed += [(rng.choice(list(NAMED) + keys), rng.choice(NOT_DEPRECATED_PATHS))
              for _ in range(NOT_DEPRECATED)]
    rng.shuffle(mixed)

    t0 = time.monotonic()
    statuses = {}

    def send_halves(work):
        for i, part in enumerate((work[:len(work) // 2], work[len(work) // 2:])):
            only(s, i)
            for k, v in send_all(s.http_port, part, deadline).items():
                statuses[k] = statuses.get(k, 0) + v

    send_halves(first)
    views = wait_total(s.agents, len(first))
    # Both agents took part, and each has counted each named client it saw
    # at least twice: what keeps it from eviction (client_usage.h).
    for a, v in zip(s.agents, views):
        seen = {c["client"]: c["requests"] for c in v["clients"]}
        assert v["requests"] > 0, "HAProxy sent nothing to agent on %d" % a.port
        assert all(seen.get(c, 0) >= 2 for c in NAMED), (a.port, seen)
    rss_before = [rss_kib(a.pid) for a in s.agents]

    send_halves(mixed)
    elapsed = time.monotonic() - t0
    assert set(statuses) <= {200, 404}, statuses  # the apps answered, not the proxy
    sent = len(named) + RANDOM_KEYS
    views = wait_total(s.agents, sent)
    rss_after = [rss_kib(a.pid) for a in s.agents]

    # /clients.json, summed over the agents
    by_client, other = {}, 0
    for v in views:
        assert len(v["clients"]) <= TRACK
        assert v["quiet_seconds"] < 30
        for c in v["clients"]:
            by_client[c["client"]] = by_client.get(c["client"], 0) + c["requests"]
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", c["last_request"])
        other += v["other"]["requests"]
    for c, n in NAMED.items():
        assert by_client.get(c) == n, (c, by_client.get(c), n)
    assert sum(by_client.values()) + other == sent
    assert all(c in NAMED or c.startswith("rnd-") for c in by_client), by_client

    # /metrics, summed over the agents: the same figures
    series = [metric_counts(a) for a in s.agents]
    for per_agent in series:
        assert len(per_agent) <= TRACK + 1 and "other" in per_agent
    summed = {}
    for per_agent in series:
        for c, n in per_agent.items():
            summed[c] = summed.get(c, 0) + n
    for c, n in NAMED.items():
        assert summed.get(c) == n, (c, summed.get(c))
    assert sum(summed.values()) == sent
    assert summed["other"] == other

    # Memory: allocated at start, whatever the keys.
    growth = [b - a for a, b in zip(rss_before, rss_after)]
    assert all(g <= RSS_BOUND_KIB for g in growth), (rss_before, rss_after)

    # The command: the same merged list, most recent first.
    r = subprocess.run([harness.agent_binary(), "--clients"] +
                       ["127.0.0.1:%d" % a.metrics_port for a in s.agents],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)  # 1: still in use
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["CLIENT", "REQUESTS", "LAST", "REQUEST", "(UTC)", "AGENTS"]
    listed = {f[0]: (int(f[1]), f[2]) for f in (l.split() for l in lines[1:-2])}
    for c, n in NAMED.items():
        assert listed[c][0] == n, (c, listed[c])
    assert [l[2] for l in (l.split() for l in lines[1:-2])] == sorted(
        (l.split()[2] for l in lines[1:-2]), reverse=True)
    assert lines[-2].split()[:2] == ["(other)", str(other)]
    assert "%d requests on deprecated routes" % sent in lines[-1]
    print("\nper-client counts, %d requests in %.1f s (statuses %s): %s; other %d; "
          "series per agent %s; RSS KiB before %s after %s"
          % (sent + NOT_DEPRECATED, elapsed, statuses, {c: by_client[c] for c in NAMED},
             other, [len(x) for x in series], rss_before, rss_after))
    print(r.stdout)
    assert s.stop() == []
