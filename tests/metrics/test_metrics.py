# SPDX-License-Identifier: Apache-2.0
"""Every family cutover-spoa advertises on /metrics, moved by traffic from the
independent SPOP client (tests/lib/spop_client.py) and read back exactly; the
page checked with promtool; /healthz, /readyz, /version; --listen unix:."""
import collections
import hashlib
import os
import re
import shutil
import socket
import struct
import subprocess
import time

import http_once
import spop_client as spop
from harness import agent_binary
from system import plan_text as sample_plan, write_atomic

FAMILIES = (
    "cutover_build_info", "cutover_plan_info", "cutover_phase_desired",
    "cutover_phase_effective", "cutover_plan_reloads_total",
    "cutover_plan_last_reload_success", "cutover_plan_last_reload_timestamp_seconds",
    "cutover_decisions_total", "cutover_decisions_overflow_total",
    "cutover_decision_duration_seconds", "cutover_open_connections",
    "cutover_connections_accepted_total", "cutover_frames_total",
    "cutover_protocol_errors_total", "cutover_deprecated_requests_total",
    "cutover_deprecated_last_request_timestamp_seconds", "cutover_deprecated_quiet_seconds",
)

# A plan with every outcome a decision can have: a backend, a rewrite that
# grows past the router's 16,380-byte scratch (414), a 410 with a link, a
# 404, a rewrite refused for a dot segment (400) and the default backend.
OUTCOMES_PLAN = """\
phase: 1
backends: [a, b]
default_backend: b
routes:
  - name: grow
    path: /g/{rest...}
  - name: gone
    path: /old/{id}
  - name: nf
    path: /nf
  - name: plain
    path: /p
phases:
  - number: 1
    name: one
    routes:
      grow: { backend: a, rewrite: "/x/{rest}/{rest}/{rest}" }
      gone: { status: 410, link: "/new/{id}" }
      nf: { status: 404 }
      plain: a
"""


def http_get(port, path, method="GET"):
    """(status, body text) of one request to the metrics port."""
    r = http_once.request(port, method, path, timeout=5)
    return r.status, r.text()


def decide(agent, requests):
    """Sends (method, path) NOTIFYs on one connection; returns the ACKs."""
    s = agent.session()
    try:
        return [s.decide(m, p) for m, p in requests]
    finally:
        s.close(graceful=True)


def decisions(page):
    """{(phase, route, backend, status): count} of cutover_decisions_total."""
    return {(d["phase"], d["route"], d["backend"], d["status"]): v
            for d, v in page.series("cutover_decisions_total")}


def test_every_family_is_advertised_with_help_and_type(start_agent):
    page = start_agent(sample_plan(1)).scrape()
    for f in FAMILIES:
        assert "# HELP %s " % f in page.text
        assert "# TYPE %s " % f in page.text


def test_promtool_accepts_the_live_page(start_agent):
    a = start_agent(OUTCOMES_PLAN)
    decide(a, [("GET", "/p"), ("GET", "/nf"), ("GET", "/old/1"), ("GET", "/elsewhere"),
               ("GET", "/g/" + "A" * 6000), ("GET", "/g/%2e%2e/x")])
    with spop.Conn("127.0.0.1", a.port) as c:  # a protocol error, for its series
        c.send(spop.notify(1, 1, []))
        c.read_disconnect()
    text = a.wait_for(lambda p: p.series("cutover_protocol_errors_total"),
                      "a protocol error").text
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (
        r.stdout.decode() + r.stderr.decode() + text)


def test_decisions_by_phase_route_backend_and_status(start_agent):
    a = start_agent(OUTCOMES_PLAN)
    acks = decide(a, [("GET", "/p")] * 3 + [("GET", "/nf")] * 2 + [("GET", "/old/7")] +
                  [("GET", "/elsewhere")] * 4 + [("GET", "/g/" + "A" * 6000)] +
                  [("GET", "/g/%2e%2e/x")] * 2 + [("GET", "/g/ok")])
    # what the ACKs said, so the counts below are of those answers
    assert [k.get("txn.status") for k in acks[3:6]] == [404, 404, 410]
    got = decisions(a.scrape())
    assert got == {
        ("1", "plain", "a", ""): 3,
        ("1", "nf", "", "404"): 2,
        ("1", "gone", "", "410"): 1,
        ("1", "", "b", ""): 4,
        ("1", "grow", "", "414"): 1,
        ("1", "grow", "", "400"): 2,
        ("1", "grow", "a", ""): 1,
    }


def test_decisions_of_the_sample_plan_without_default_backend(start_agent):
    a = start_agent(sample_plan(1))
    decide(a, [("GET", "/query/api/squids/1"), ("POST", "/command/api/squids"),
               ("GET", "/query/api/seafoods/1"), ("GET", "/static/x")])
    assert decisions(a.scrape()) == {
        ("1", "squids-query", "old_query", ""): 1,
        ("1", "squids-command", "old_command", ""): 1,
        ("1", "seafoods-query", "", "404"): 1,
        ("1", "", "", ""): 1,
    }


def test_decisions_keep_their_phase_across_reloads(start_agent):
    a = start_agent(sample_plan(1), threads=2)
    decide(a, [("GET", "/query/api/squids/1")] * 2)
    write_atomic(a.plan, sample_plan(4))
    a.wait_for(lambda p: p.value("cutover_phase_effective") == 4, "phase 4")
    decide(a, [("GET", "/query/api/squids/1")] * 3)
    write_atomic(a.plan, sample_plan(6))
    a.wait_for(lambda p: p.value("cutover_phase_effective") == 6, "phase 6")
    decide(a, [("GET", "/query/api/squids/1")] * 5)
    write_atomic(a.plan, sample_plan(4))  # back (before the one-way phase 7): adds to 4's
    a.wait_for(lambda p: p.value("cutover_plan_reloads_total", result="accepted") == 3,
               "a third reload")
    decide(a, [("GET", "/query/api/squids/1")])
    assert decisions(a.scrape()) == {
        ("1", "squids-query", "old_query", ""): 2,
        ("4", "squids-query", "new_query", ""): 4,
        ("6", "squids-query", "new_query", ""): 5,
    }


def test_histogram_counts_every_decision(start_agent):
    a = start_agent(OUTCOMES_PLAN, threads=2)
    for _ in range(2):
        decide(a, [("GET", "/p"), ("GET", "/nf"), ("GET", "/old/1"), ("GET", "/x")] * 5)
    page = a.scrape()
    total = sum(v for _, v in page.series("cutover_decisions_total"))
    assert total == 40
    name = "cutover_decision_duration_seconds"
    assert page.value(name + "_count") == total
    buckets = sorted(((float(d["le"]), v) for d, v in page.series(name + "_bucket")))
    assert buckets[-1] == (float("inf"), total)
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "buckets must be cumulative: %r" % buckets
    assert page.value(name + "_sum") > 0


def test_frames_by_direction_and_type(start_agent):
    a = start_agent(sample_plan(1), threads=1)
    s = a.session()
    for _ in range(3):
        s.decide("GET", "/query/api/squids/1")
    s.conn.send(spop.encode_frame(42, b"", sid=1, fid=1))  # unknown: ignored
    s.decide("GET", "/query/api/squids/1")
    s.conn.send(spop.disconnect())
    assert s.conn.read_disconnect() == spop.ST_NORMAL
    s.conn.close()
    want = {("in", "haproxy_hello"): 1, ("in", "notify"): 4, ("in", "haproxy_disconnect"): 1,
            ("in", "unknown"): 1, ("out", "agent_hello"): 1, ("out", "ack"): 4,
            ("out", "agent_disconnect"): 1}
    page = a.wait_for(lambda p: p.value("cutover_frames_total", direction="out",
                                        type="agent_disconnect") == 1, "AGENT-DISCONNECT")
    got = {(d["direction"], d["type"]): v for d, v in page.series("cutover_frames_total")}
    assert got == want


def test_protocol_errors_by_status(start_agent):
    a = start_agent(sample_plan(1), threads=1)
    seen = collections.Counter()
    with spop.Conn("127.0.0.1", a.port) as c:  # NOTIFY before HELLO
        c.send(spop.notify(1, 1, []))
        seen[c.read_disconnect()] += 1
    for _ in range(2):  # a frame over max-frame-size
        with spop.Conn("127.0.0.1", a.port) as c:
            c.send(spop.hello(max_frame_size=16380))
            c.recv_frame()
            c.send(struct.pack(">I", 70000) + b"\x03" + b"\0" * 64)
            seen[c.read_disconnect()] += 1
    assert seen == {spop.ST_INVALID: 1, spop.ST_TOO_BIG: 2}, seen
    page = a.wait_for(lambda p: len(p.series("cutover_protocol_errors_total")) == 2,
                      "two error statuses")
    got = {d["status"]: v for d, v in page.series("cutover_protocol_errors_total")}
    assert got == {str(spop.ST_INVALID): 1, str(spop.ST_TOO_BIG): 2}


def test_open_and_accepted_connections(start_agent):
    a = start_agent(sample_plan(1), threads=2)
    sessions = [a.session() for _ in range(3)]
    page = a.wait_for(lambda p: p.value("cutover_open_connections") == 3, "3 open")
    assert page.value("cutover_connections_accepted_total") == 3
    for s in sessions[:2]:
        s.close(graceful=True)
    page = a.wait_for(lambda p: p.value("cutover_open_connections") == 1, "1 open")
    assert page.value("cutover_connections_accepted_total") == 3
    sessions[2].close()
    a.wait_for(lambda p: p.value("cutover_open_connections") == 0, "none open")


def test_reloads_results_success_timestamp_and_plan_hash(start_agent):
    text1 = sample_plan(1)
    a = start_agent(text1)
    page = a.scrape()
    started = page.value("cutover_plan_last_reload_timestamp_seconds")
    assert page.value("cutover_plan_info", hash=hashlib.sha256(text1.encode()).hexdigest(),
                      generation="1") == 1
    assert page.value("cutover_plan_last_reload_success") == 1
    assert page.value("cutover_plan_reloads_total", result="accepted") == 0
    assert page.value("cutover_plan_reloads_total", result="rejected") == 0
    assert page.value("cutover_phase_desired") == page.value("cutover_phase_effective") == 1

    while time.time() < started + 0.05:  # so that a stale timestamp shows
        time.sleep(0.01)
    before = time.time()
    write_atomic(a.plan, text1.replace("phase: 1", "phase: 99"))  # no such phase
    page = a.wait_for(lambda p: p.value("cutover_plan_reloads_total", result="rejected") == 1,
                      "a rejected reload")
    after = time.time()
    assert page.value("cutover_plan_last_reload_success") == 0
    stamp = page.value("cutover_plan_last_reload_timestamp_seconds")
    assert before - 0.001 <= stamp <= after + 0.001  # printed to the millisecond
    assert page.value("cutover_plan_reloads_total", result="accepted") == 0
    assert page.value("cutover_plan_info", hash=hashlib.sha256(text1.encode()).hexdigest(),
                      generation="1") == 1, "a rejected plan changes nothing"
    assert page.value("cutover_phase_effective") == 1

    text4 = sample_plan(4)
    while time.time() < stamp + 0.05:
        time.sleep(0.01)
    before = time.time()
    write_atomic(a.plan, text4)
    page = a.wait_for(lambda p: p.value("cutover_plan_reloads_total", result="accepted") == 1,
                      "an accepted reload")
    assert page.value("cutover_plan_last_reload_success") == 1
    assert page.value("cutover_plan_last_reload_timestamp_seconds") >= before - 0.001
    assert page.value("cutover_plan_reloads_total", result="rejected") == 1
    assert page.series("cutover_plan_info") == [
        ({"hash": hashlib.sha256(text4.encode()).hexdigest(), "generation": "2"}, 1)]
    assert page.value("cutover_phase_desired") == page.value("cutover_phase_effective") == 4


def test_build_info_and_version_match_the_binary(start_agent):
    out = subprocess.run([agent_binary(), "--version"], capture_output=True, text=True,
                         timeout=10).stdout.strip()
    m = re.fullmatch(r"cutover-spoa (\S+)(?: \((\S+)\))?", out)
    assert m, out
    version, revision = m.group(1), m.group(2) or m.group(1)
    a = start_agent(sample_plan(1))
    assert a.scrape().series("cutover_build_info") == [
        ({"version": version, "revision": revision}, 1)]
    assert http_get(a.metrics_port, "/version") == (200, out + "\n")


def test_healthz_readyz_and_unknown_paths(start_agent):
    a = start_agent(sample_plan(1))
    assert http_get(a.metrics_port, "/healthz") == (200, "ok\n")
    assert http_get(a.metrics_port, "/readyz") == (200, "ready\n")
    assert http_get(a.metrics_port, "/metrics?x=1")[0] == 200
    assert http_get(a.metrics_port, "/nope")[0] == 404
    assert http_get(a.metrics_port, "/healthzz")[0] == 404
    assert http_get(a.metrics_port, "/metrics", method="POST")[0] == 405


def unix_session(path):
    c = spop.Conn.__new__(spop.Conn)
    c.timeout, c.buf, c.frames = 5.0, b"", collections.deque()
    c.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.sock.settimeout(5.0)
    c.sock.connect(path)
    return c


def unix_decide(path, method, uri):
    with unix_session(path) as c:
        c.send(spop.hello(capabilities="pipelining"))
        assert c.recv_frame()[1].type == spop.AGENT_HELLO
        c.send(spop.notify(1, 1, [("cutover", [("method", spop.string(method)),
                                                ("path", spop.string(uri))])]))
        f = c.recv_frame()[1]
        assert f.type == spop.ACK
        return {name: v.value for (_, name), v in spop.parse_ack(f).items()}


def test_listen_unix_serves_and_removes_its_socket(start_agent, workdir):
    path = os.path.join(workdir, "spoa.sock")
    stale = socket.socket(socket.AF_UNIX)  # a file left by a process that is gone
    stale.bind(path)
    stale.close()
    a = start_agent(sample_plan(4), listen="unix:" + path, threads=2)
    for _ in range(3):
        assert unix_decide(path, "GET", "/query/api/squids/7")["backend"] == "new_query"
    assert a.scrape().value("cutover_decisions_total", phase="4", route="squids-query",
                            backend="new_query", status="") == 3
    assert a.stop() == 0
    assert not os.path.exists(path)


def test_listen_unix_in_use_is_refused_and_left_alone(start_agent, workdir):
    path = os.path.join(workdir, "busy.sock")
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen(1)
        plan = os.path.join(workdir, "plan.yaml")
        write_atomic(plan, sample_plan(1))
        r = subprocess.run([agent_binary(), "--config", plan, "--listen", "unix:" + path,
                            "--threads", "1"], capture_output=True, text=True, timeout=20)
        assert r.returncode != 0
        assert "Address already in use" in r.stderr, r.stderr
        assert os.path.exists(path), "the other process's socket must stay"


def wide_plan(phase, routes=1000):
    """routes routes /r<i>, all to backend a, one phase numbered phase."""
    lines = ["phase: %d" % phase, "backends: [a]", "routes:"]
    lines += ["  - name: r%d\n    path: /r%d" % (i, i) for i in range(routes)]
    lines += ["phases:", "  - number: %d" % phase, "    name: p", "    routes:"]
    lines += ["      r%d: a" % i for i in range(routes)]
    return "\n".join(lines) + "\n"


def pipelined(agent, paths):
    """One NOTIFY per path on one connection, sent at once; waits for every ACK."""
    s = agent.session()
    try:
        s.conn.send(b"".join(spop.notify(i + 1, 1, [("cutover", [
            ("method", spop.string("GET")), ("path", spop.string(p))])])
            for i, p in enumerate(paths)))
        for _ in paths:
            assert s.conn.recv_frame()[1].type == spop.ACK
    finally:
        s.close(graceful=True)


def test_totals_are_capped_and_the_rest_counted_as_overflow(start_agent):
    cap, routes = 16384, 1000
    a = start_agent(wide_plan(1), threads=1)
    plans = cap // routes + 2  # 18 plans: 17 folded (17,000 label sets), 1 live
    for k in range(1, plans + 1):
        if k > 1:
            write_atomic(a.plan, wide_plan(k))
            a.wait_for(lambda p: p.value("cutover_phase_effective") == k, "phase %d" % k)
        pipelined(a, ["/r%d" % i for i in range(routes)])
    page = a.scrape()
    series = page.series("cutover_decisions_total")
    overflow = page.value("cutover_decisions_overflow_total")
    assert overflow == (plans - 1) * routes - cap
    assert len(series) == cap + routes
    assert all(v == 1 for _, v in series)
    assert sum(v for _, v in series) + overflow == plans * routes
