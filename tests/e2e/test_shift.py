# SPDX-License-Identifier: Apache-2.0
"""Progressive shift end to end: the real agents (two, one thread each,
/metrics), Debian's HAProxy with haproxy/haproxy.cfg and the sample apps,
on the test plan tests/e2e/plans/shift.yaml, whose phases 2, 3 and 4 send
the OLD API's reads (route squids-query) to the NEW query app for 10%, 50%
and 100% of clients. The phase is changed by editing the plan file, as an
operator does, and each step waits until both agents report it.

  shift_10_50_100  1,000 client keys (X-Api-Client) in each phase, each
                   key twice: every request is answered by the app of the
                   side HAProxy logged (side=, be=); the shares of new are
                   within 3 points of 10, 50 and 100; no key new at 10% is
                   old at 50% or 100%; a key gets the same side on its two
                   requests and from each agent asked directly over SPOP;
                   X-Cutover-Side forces both ways (another value is
                   ignored); --explain --client agrees with HAProxy for a
                   sample of keys; both agents' cutover_split_decisions_total
                   add up to the requests sent by side. Then back at 50%
                   with both agents stopped: the fallback map keeps every
                   client on the old side (docs/plan.md, "Progressive shift").

The shares are printed (pytest -s).
"""
import http.client
import json
import os
import re
import subprocess
import time

import pytest

import harness
import http_once
import spop_client as spop
import system
from system import System

PLAN = os.path.join(harness.ROOT, "tests", "e2e", "plans", "shift.yaml")
LAYOUT = system.Layout(PLAN, system.HAPROXY_CFG, system.haproxy_env,
                       {r: r.split("-")[0] for r in system.ROLES})
KEYS = ["k%04d" % i for i in range(1000)]
PATH = "/query/api/squids?limit=1"
SHARES = {2: 10, 3: 50, 4: 100}  # phase -> percent of clients on new
TOLERANCE = 3.0                  # points
EXPLAIN_SAMPLE = 40              # keys per phase checked with --explain --client
SERVED = {"old-query": "old", "new-query": "new"}
_FIELDS = re.compile(r" (id=.*)$")


class Http:
    """One keep-alive connection to HAProxy, opened again if it closes."""

    def __init__(self, port):
        self.port, self.conn = port, None

    def get(self, path, headers):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request("GET", path, headers=headers)
                r = self.conn.getresponse()
                r.read()
                return r.status, r.getheader("X-Served-By", "")
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def close(self):
        if self.conn:
            self.conn.close()


def send(http, key, side_header=None):
    """GET PATH as client key; the side its answer came from."""
    headers = {"X-Api-Client": key}
    if side_header is not None:
        headers["X-Cutover-Side"] = side_header
    status, served = http.get(PATH, headers)
    assert status == 200 and served in SERVED, \
        "%s: status %d from %r" % (key, status, served)
    return SERVED[served]


def log_records(sysm, want, timeout=10.0):
    """The key=value fields of HAProxy's log lines, once it has want lines."""
    deadline = time.monotonic() + timeout
    while True:
        recs = []
        for line in sysm.haproxy.lines():
            m = _FIELDS.search(line)
            if m:
                recs.append(dict(kv.split("=", 1) for kv in m.group(1).split(" ") if "=" in kv))
        if len(recs) >= want or time.monotonic() > deadline:
            return recs
        time.sleep(0.05)


def split_counts(sysm):
    """{(phase, side): count} of cutover_split_decisions_total, both agents summed."""
    out = {}
    pat = re.compile(r'^cutover_split_decisions_total\{phase="(\d+)",route="squids-query",'
                     r'side="(new|old)"\} (\d+)$')
    for a in sysm.agents:
        page = http_once.request(a.metrics_port, "GET", "/metrics", timeout=5).text()
        for line in page.splitlines():
            m = pat.match(line)
            if m:
                k = (int(m.group(1)), m.group(2))
                out[k] = out.get(k, 0) + int(m.group(3))
    return out


def agent_sides(sysm, keys):
    """[{key: txn.side}] from each agent, asked directly with the client argument."""
    out = []
    for port in sysm.agent_ports:
        s = spop.Session("127.0.0.1", port)
        try:
            got = {}
            for k in keys:
                v = s.decide("GET", "/query/api/squids", [("client", spop.string(k))])
                got[k] = v.get("txn.side")
            out.append(got)
        finally:
            s.close()
    return out


def explain_side(plan, phase, key):
    r = subprocess.run([harness.agent_binary(), "--explain", plan, "GET", "/query/api/squids",
                        "--phase", str(phase), "--client", key, "--json"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)["decisions"][0]
    return d.get("side") or ("new" if d["backend"] == "new_query" else "old"), d["backend"]


@pytest.mark.timeout(180)
def test_shift_10_50_100(start_system):
    sysm = start_system("shift", 1, agents=2, agent_threads=1, metrics=True, layout=LAYOUT)
    http = Http(sysm.http_port)
    sides, sent = {}, {}   # phase -> {key: side}; (phase, side) -> decisions asked
    try:
        assert send(http, "k-start") == "old"  # phase 1: nobody is split
        logged = 1
        for phase, percent in SHARES.items():
            sysm.set_phase(phase)
            sysm.wait_phase(phase)
            first = {k: send(http, k) for k in KEYS}
            again = {k: send(http, k) for k in KEYS}
            flapped = [k for k in KEYS if first[k] != again[k]]
            assert not flapped, "phase %d: %d keys changed side: %s" % (phase, len(flapped),
                                                                         flapped[:5])
            sides[phase] = first
            # Raising the share only moves keys from old to new.
            for lo in sides:
                back = [k for k in KEYS if sides[lo][k] == "new" and first[k] == "old"]
                assert not back, "new at phase %d, old at %d: %s" % (lo, phase, back[:5])
            news = sum(1 for k in KEYS if first[k] == "new")
            share = 100.0 * news / len(KEYS)
            print("phase %d (%d%%): %d of %d keys on new, %.1f%%"
                  % (phase, percent, news, len(KEYS), share))
            assert abs(share - percent) <= TOLERANCE, \
                "phase %d: %.1f%% on new, want %d%% +- %.0f" % (phase, share, percent, TOLERANCE)
            for side in ("new", "old"):
                n = sum(1 for k in KEYS if first[k] == side)
                sent[(phase, side)] = sent.get((phase, side), 0) + 2 * n
            logged += 2 * len(KEYS)

            # X-Cutover-Side: old keys forced new, new keys forced old, and a
            # value that is neither leaves the key where its hash put it.
            if percent < 100:
                olds = [k for k in KEYS if first[k] == "old"][:30]
                newk = [k for k in KEYS if first[k] == "new"][:30]
                for k in olds:
                    assert send(http, k, "new") == "new", "%s not forced to new" % k
                for k in newk:
                    assert send(http, k, "OLD") == "old", "%s not forced to old" % k
                for k in olds[:10] + newk[:10]:
                    assert send(http, k, "sideways") == first[k], "%s: 'sideways' moved it" % k
                sent[(phase, "new")] += len(olds) + 10
                sent[(phase, "old")] += len(newk) + 10
                logged += len(olds) + len(newk) + 20

            # HAProxy's log: each request's side and backend are those of the
            # app that answered it, and a key's unforced requests one side.
            # A line is written once its response has gone: wait for this
            # phase's own lines, not for a total that other lines may fill.
            forced = set(olds + newk) if percent < 100 else set()
            want = 2 * len(KEYS) + (len(forced) + 20 if forced else 0)
            deadline = time.monotonic() + 10
            while True:
                recs = [r for r in log_records(sysm, logged)
                        if r.get("phase") == str(phase) and r.get("client") in first]
                if len(recs) >= want or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert len(recs) == want, "phase %d: %d log lines" % (phase, len(recs))
            logged_sides = {}
            for r in recs:
                if percent == 100:
                    assert r.get("side") == "-" and r.get("be") == "new_query", "log %r" % r
                    continue
                assert r.get("side") in ("new", "old"), "log %r" % r
                assert r.get("be") == r["side"] + "_query", "log %r" % r
                logged_sides.setdefault(r["client"], set()).add(r["side"])
            for k in KEYS:
                if percent < 100 and k not in forced:
                    assert logged_sides[k] == {first[k]}, "%s logged %r, served %s" % (
                        k, logged_sides[k], first[k])

            # Each agent, asked directly, puts every key on the side HAProxy used.
            for i, got in enumerate(agent_sides(sysm, KEYS)):
                for k in KEYS:
                    want = first[k] if percent < 100 else None
                    assert got[k] == want, "agent %d: %s is %r, HAProxy used %s" % (
                        i + 1, k, got[k], first[k])
                if percent < 100:
                    for side in ("new", "old"):
                        sent[(phase, side)] += sum(1 for k in KEYS if first[k] == side)

            # --explain --client: the same side for a sample of keys.
            for k in KEYS[:EXPLAIN_SAMPLE // 2] + [k for k in KEYS if first[k] == "new"][
                    :EXPLAIN_SAMPLE // 2]:
                side, backend = explain_side(sysm.plan, phase, k)
                assert side == first[k], "--explain --client %s: %s, HAProxy: %s" % (
                    k, side, first[k])
                assert backend == ("new_query" if side == "new" else "old_query")

        # /metrics: both agents' split counts are exactly what was asked.
        counts = split_counts(sysm)
        for phase in (2, 3):
            for side in ("new", "old"):
                assert counts.get((phase, side), 0) == sent[(phase, side)], \
                    "phase %d %s: metrics %d, sent %d" % (phase, side,
                                                          counts.get((phase, side), 0),
                                                          sent[(phase, side)])
        assert not [k for k in counts if k[0] == 4], "phase 4 is not split: %r" % counts
        print("split decisions counted by the agents: %s" % sorted(counts.items()))

        # Agents down at 50%: the fallback map keeps every client on the old side.
        sysm.set_phase(3)
        sysm.wait_phase(3)
        before = len(sysm.haproxy.lines())
        sysm.stop_agent(0)
        sysm.stop_agent(1)
        sysm.wait_agents_down()
        newk = [k for k in KEYS if sides[3][k] == "new"][:50]
        for k in newk:
            assert send(http, k) == "old", "%s: fallback sent it to new" % k
        recs = log_records(sysm, before + len(newk))[-len(newk):]
        assert all(r.get("fb") == "1" and r.get("side") == "-" and r.get("be") == "old_query"
                   for r in recs), recs[:3]
    finally:
        http.close()
    crashes = sysm.stop()
    assert not crashes, crashes
