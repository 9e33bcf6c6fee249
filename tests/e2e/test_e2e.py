# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests: the real agent, Debian's HAProxy with haproxy/haproxy.cfg,
the sample apps on SQLite, all on free loopback ports.

  smoke            option spop-check marks both agents UP; a request carries
                   the agent's variables into HAProxy's log line
  routing_table    every phase 1-12 x every path family of the sample plan's
                   table (tests/lib/sample_plan.py, docs/contracts.md):
                   status, X-Served-By, Deprecation/Link (test_deprecation.py
                   checks the deprecation headers in full), and from HAProxy's
                   log the phase, route, backend and rewritten path
  fallback_table   both agents stopped: HAProxy routes by the phase it learned
                   last, with the same results as routing_table
  walk_1_to_12_under_load  scripts/walk from 1 to 12 under load.py's reads and
                   writes (old API until phase 9, new API after): zero
                   failures, zero lost writes, HAProxy's PID unchanged, a log
                   line with phase, route and backend for every request
  rollback_6_to_1_under_load  1 -> 6 -> 1 under the same load: zero failures,
                   zero lost writes (read back through the OLD API at phase 1)

HAPROXY=/path selects the HAProxy binary. Per-phase figures are printed.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import harness
import http_once
from sample_plan import DEPRECATION, PHASES, expected
import system
from system import APPS, System, write_atomic

WALK = os.path.join(harness.ROOT, "scripts", "walk")
LOAD_RATE = 200       # requests/s of load.py during the walks
LOAD_CLIENTS = 8
DWELL_S = 1.5         # load time spent in each phase of a walk
_LOG_LINE = re.compile(r'^\S+ \[[^\]]+\] (\S+) (\S+)/(\S+) \S+ (-?\d+) .*?"(.*)" (id=.*)$')


def start(name, phase):
    """Apps, two agents (one thread, /metrics) and HAProxy: the walk's run dir."""
    return System("e2e-" + name, phase, agents=2, agent_threads=1, metrics=True,
                  data_steps=True, sunset_ahead=True)


def log_fields(sysm, tags):
    """{client tag: fields of its HAProxy log line}; waits for every tag."""
    found = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in sysm.haproxy.lines():
            rec = parse_log(line)
            if rec and rec.get("client") in tags:
                found[rec["client"]] = rec
        if len(found) == len(tags):
            break
        time.sleep(0.05)
    return found


def walk(sysm, to, out):
    r = subprocess.run([sys.executable, WALK, "--run-dir", sysm.dir, "--to", str(to),
                        "--pause", "0"], capture_output=True, text=True, timeout=120)
    out.write(r.stdout + r.stderr)
    assert r.returncode == 0, "scripts/walk --to %d failed:\n%s%s" % (to, r.stdout, r.stderr)


def parse_log(line):
    m = _LOG_LINE.match(line)
    if not m:
        return None
    rec = dict(kv.split("=", 1) for kv in m.group(6).split(" ") if "=" in kv)
    rec.update(frontend=m.group(1), haproxy_backend=m.group(2), server=m.group(3),
               status=int(m.group(4)), request=m.group(5))
    return rec


# --- the sample plan's routing table (tests/lib/sample_plan.py) through HAProxy ---

def app_status(role, method, path):
    """What shop.py answers for path (entity 1 exists on both sides)."""
    p = path.split("?", 1)[0]
    if p == "/healthz":
        return 200
    side, kind = role.split("-")
    base = "/%s/api/%s" % (kind, "squids" if side == "old" else "seafoods")
    if p != base and p != base + "/1":
        return 404
    if kind == "query":
        return 200 if method in ("GET", "HEAD") else 405
    if p == base:
        return 201 if method == "POST" else 405
    return 200 if method == "PUT" else 405


ENTITY = {"name": "e2e squid", "price": 3.5}
# (method, path, body): every path family of the table, a method that does not
# fit its path, a query string, other /query/ and /command/ paths, a path
# outside both, and paths no rewrite may carry.
TABLE = (
    ("GET", "/query/api/squids/1", None),
    ("GET", "/query/api/squids?limit=1", None),
    ("POST", "/query/api/squids", ENTITY),
    ("POST", "/command/api/squids", ENTITY),
    ("PUT", "/command/api/squids/1", ENTITY),
    ("GET", "/query/api/seafoods/1", None),
    ("PUT", "/command/api/seafoods/1", ENTITY),
    ("GET", "/query/api/inventory", None),
    ("POST", "/command/api/orders", ENTITY),
    ("GET", "/healthz", None),
    # a rewrite of these would hold a dot segment: refused from phase 4 / 6
    ("GET", "/query/api/squids/%2e%2e/admin", None),
    ("PUT", "/command/api/squids/./1", ENTITY),
)


def run_table(sysm, phase, tag_prefix):
    """Sends TABLE through HAProxy; returns [(request, outcome dict)]."""
    tags, rows = [], []
    for i, (method, path, body) in enumerate(TABLE):
        tag = "%s-%d-%d" % (tag_prefix, phase, i)
        r = sysm.request(method, path, json=body, headers={"X-Api-Client": tag})
        rows.append(((method, path), tag, r.status, r.headers, r.body))
        tags.append(tag)
    logs = log_fields(sysm, set(tags))
    out = []
    for (method, path), tag, status, h, data in rows:
        rec = logs.get(tag, {})
        out.append(((method, path), {
            "status": status, "served_by": h.get("x-served-by", ""),
            "app_saw": h.get("x-request-path"),
            "deprecation": h.get("deprecation"), "link": h.get("link"),
            "list_len": len(json.loads(data)) if "?limit=" in path and status == 200 else None,
            "log": {k: rec.get(k) for k in ("phase", "route", "be", "path", "fb")},
        }))
    return out


def app_link(app_path, limit):
    """shop.py's own pagination Link of a full first page (entity 1 first)."""
    return '<%s?limit=%d>; rel="first", <%s?after=1&limit=%d>; rel="next"' % (
        app_path, limit, app_path, limit)


def want_link(e, path, want_status):
    """The last Link header of the answer (the headers read as a dict): the
    410's successor with the query kept; else the successor HAProxy adds to
    a deprecated route's response (after the policy's, after the app's own);
    else the app's own on a list."""
    query = "?" + path.split("?", 1)[1] if "?" in path else ""
    if e["status"] == 410:
        return '<%s%s>; rel="successor-version"' % (e["link"], query)
    if e["deprecated"] and not e["status"]:
        return '<%s>; rel="successor-version"' % e["path"]
    if "?limit=" in path and want_status == 200:
        return app_link(e["path"] or path.split("?", 1)[0], 1)
    return None


def check_table(phase, results, fallback):
    problems = []
    for (method, path), got in results:
        # the fallback map has no clock: past a sunset it still routes
        e = expected(phase, method, path, now=0 if fallback else None)
        want_status = e["status"] or app_status(e["served_by"], method,
                                                e["path"] or path)
        want = {
            "status": want_status,
            "served_by": e["served_by"],
            # the request target as the app received it: rewritten, query kept
            "app_saw": (((e["path"] or path.split("?", 1)[0])
                         + ("?" + path.split("?", 1)[1] if "?" in path else ""))
                        if e["served_by"] else None),
            "deprecation": DEPRECATION if e["deprecated"] and not e["status"] else None,
            "link": want_link(e, path, want_status),
            "list_len": 1 if "?limit=" in path and want_status == 200 else None,
            "log": {"phase": str(phase), "route": e["route"] or "-",
                    "be": e["backend"] or "-", "path": e["path"] or "-",
                    "fb": "1" if fallback else "-"},
        }
        if got != want:
            problems.append("phase %d %s %s:\n    got  %s\n    want %s"
                            % (phase, method, path, got, want))
    return problems


# --- cases ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def table_system():
    """One system for the table cases, at phase 1, entity 1 on both sides:
    a squid on OLD, copied to NEW as a seafood. Stopped (and its crashes
    checked) once the module's cases are done, or by fallback_table."""
    s = start("table", 1)
    try:
        r = http_once.request(s.app_ports["old-command"], "POST", "/command/api/squids",
                              json={"name": "seed squid", "price": 1})
        assert r.status == 201 and r.json()["id"] == 1, (r.status, r.body)
        r = subprocess.run([sys.executable, os.path.join(APPS, "replicator.py"), "--old",
                            s.db["old"], "--new", s.db["new"], "--drain-once"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        yield s
    finally:
        crashes = s.stop()
    assert not crashes, "; ".join(crashes)


@pytest.fixture(scope="module")
def agent_results():
    """routing_table's outcomes by phase, for fallback_table to compare with."""
    return {}


def test_smoke(table_system):
    s = table_system
    states = s.wait_agents_up()
    # 2 = running, 3 = check passed: spop-check got a valid AGENT-HELLO from each.
    assert states == {"agent1": (2, 3), "agent2": (2, 3)}, states
    r = s.request("GET", "/query/api/squids/1",
                  headers={"X-Api-Client": "smoke", "X-Cutover-Id": "spoofed"})
    status, h = r.status, r.headers
    assert status == 200 and h.get("x-served-by") == "old-query", (status, h)
    rec = log_fields(s, {"smoke"}).get("smoke")
    assert rec, "no HAProxy log line for the smoke request"
    # The app got HAProxy's unique id (the one logged), not the client's.
    assert h.get("x-cutover-id") == rec["id"], (h, rec["id"])
    assert (rec["phase"], rec["route"], rec["be"], rec["fb"], rec["err"]) == \
        ("1", "squids-query", "old_query", "-", "-"), rec
    assert rec["pt"].isdigit(), rec
    assert map_phases(s) == {"1"}, s.cli("show map " + fallback_map(s))
    print("  agents UP by spop-check: %s; log: phase=%s route=%s be=%s pt=%sms"
          % (sorted(states), rec["phase"], rec["route"], rec["be"], rec["pt"]))


@pytest.mark.timeout(240)
def test_routing_table(table_system, agent_results):
    s = table_system
    problems, results = [], {}
    for phase in PHASES:
        s.set_phase(phase)
        s.wait_phase(phase)
        results[phase] = run_table(s, phase, "table")
        problems += check_table(phase, results[phase], fallback=False)
    agent_results.update(results)
    assert not problems, "%d cells differ from the sample plan's table:\n%s" % (
        len(problems), "\n".join(problems))
    print("  %d phases x %d requests match the sample plan's table" % (len(PHASES), len(TABLE)))


def fallback_map(s):
    return os.path.join(s.fallback_dir, "cutover.map")


def map_phases(s):
    """The phases of the fallback map HAProxy holds in memory (its first
    field of every entry): what it routes by when no agent answers."""
    lines = [l.split(None, 2) for l in s.cli("show map " + fallback_map(s)).splitlines()]
    return {l[2].split("|", 1)[0] for l in lines if len(l) == 3}


@pytest.mark.timeout(240)
def test_fallback_table(table_system, agent_results):
    """Both agents gone: HAProxy keeps routing by the map the agents gave it
    last, and by any map written for it while they are down."""
    s = table_system
    s.set_phase(8)
    s.wait_phase(8)
    for i in range(2):
        rc = s.stop_agent(i)
        assert rc == 0, "agent %d exited %s on SIGTERM" % (i + 1, rc)
    s.wait_agents_down()
    assert map_phases(s) == {"8"}, s.cli("show map " + fallback_map(s))
    problems = []
    results = run_table(s, 8, "learned")
    problems += check_table(8, results, fallback=True)
    for phase in PHASES:
        # What an agent would install on accepting the plan at this phase.
        copy = os.path.join(s.dir, "plan-phase%d.yaml" % phase)
        system.write_atomic(copy, system.plan_text(phase))
        system.write_fallback(s.fallback_dir, copy, s.stats_socket)
        assert map_phases(s) == {str(phase)}, s.cli("show map " + fallback_map(s))
        results = run_table(s, phase, "fallback")
        problems += check_table(phase, results, fallback=True)
        if agent_results:
            for (req, fb), (_, ag) in zip(results, agent_results[phase]):
                a = dict(ag, log=dict(ag["log"], fb="1"))
                if fb != a:
                    problems.append("phase %d %s: fallback %s, agent %s" % (phase, req, fb, a))
    errs = {r.get("err") for r in (parse_log(x) for x in s.haproxy.lines())
            if r and r.get("fb") == "1"}
    crashes = s.stop()  # the walks start systems of their own
    assert not crashes, "; ".join(crashes)
    assert not problems, "%d differences:\n%s" % (len(problems), "\n".join(problems))
    print("  %d phases x %d requests routed by the fallback as by the agents "
          "(SPOE errors seen: %s)" % (len(PHASES), len(TABLE), ", ".join(sorted(errs))))


def walk_under_load(name, forward_to, back_to, api_switch_at, verify_api):
    """Walks a fresh system phase by phase under load.py; returns the figures."""
    s = start(name, 1)
    try:
        api_file = os.path.join(s.dir, "api")
        phase_file = os.path.join(s.dir, "phase")
        write_atomic(api_file, "old\n")
        write_atomic(phase_file, "1\n")
        report = os.path.join(s.dir, "load.json")
        max_s = 150  # a bound: the load is stopped by SIGTERM when the walk ends
        load = harness.Proc(
            [sys.executable, os.path.join(APPS, "load.py"),
             "--url", "http://127.0.0.1:%d" % s.http_port, "--rate", str(LOAD_RATE),
             "--duration", str(max_s), "--clients", str(LOAD_CLIENTS), "--api", "auto",
             "--api-switch-file", api_file, "--phase-file", phase_file,
             "--verify-url", "http://127.0.0.1:%d" % s.http_port, "--verify-api", verify_api,
             "--report", report, "--requests-log", os.path.join(s.dir, "requests.jsonl"),
             "--timeout", "10"], "load", workdir=s.dir)
        pid0 = s.haproxy.pid
        walk_log = open(os.path.join(s.dir, "walk.log"), "w")
        steps = list(range(2, forward_to + 1)) + list(range(forward_to - 1, back_to - 1, -1))
        time.sleep(DWELL_S)
        labels = ["1"]
        for i, phase in enumerate(steps):
            walk(s, phase, walk_log)
            labels.append("%d%s" % (phase, " back" if i and phase < steps[i - 1] else ""))
            write_atomic(phase_file, labels[-1] + "\n")
            if phase == api_switch_at:
                write_atomic(api_file, "new\n")
            time.sleep(DWELL_S)
            assert load.alive(), "load.py ended early:\n" + load.log()[-3000:]
        walk_log.close()
        load.signal(signal.SIGTERM)
        deadline = time.monotonic() + 120
        while load.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        load.stop()
        with open(report) as f:
            rep = json.load(f)
        assert s.haproxy.alive() and s.haproxy.pid == pid0, "HAProxy was restarted"
        info = s.cli("show info")
        m = re.search(r"^Pid: (\d+)", info, re.M)
        assert m and int(m.group(1)) == pid0, info[:300]
        m = re.search(r"^DroppedLogs: (\d+)", info, re.M)
        rep["dropped_logs"] = int(m.group(1)) if m else None
        lines = [r for r in (parse_log(x) for x in s.haproxy.lines())
                 if r and r.get("client", "").startswith("load-")]
        unlabeled = [r for r in lines if "-" in (r["phase"], r["route"], r["be"])]
        with open(os.path.join(s.dir, "requests.jsonl")) as f:
            sent = [json.loads(x) for x in f]
        logged = {r["id"]: r["phase"] for r in lines}
        rep["unlogged"] = [r for r in sent if r["request_id"] not in logged]
        rep["labels"] = labels
        rep["haproxy_phases"] = {}  # label -> {phase HAProxy logged: requests}
        for r in sent:
            d = rep["haproxy_phases"].setdefault(r["phase"], {})
            ph = logged.get(r["request_id"], "unlogged")
            d[ph] = d.get(ph, 0) + 1
        return s, rep, lines, unlabeled
    except BaseException:
        s.stop()
        raise


def print_figures(title, rep):
    per_phase = rep.get("per_phase") or {}
    lost = (rep.get("verify") or {}).get("lost_by_phase", {})
    print("  %s: %d requests, %d failures, %d lost writes, %d verified, %.0f req/s, "
          "p99 %s ms" % (title, rep["requests"], rep["failures"], rep["lost_writes"],
                         (rep.get("verify") or {}).get("checked", 0),
                         rep.get("rate_achieved") or 0, rep["latency_ms"]["p99"]))
    # A row per step of the walk: the requests load.py sent once the walk had
    # reached that phase (lost: writes last acknowledged then), the app that
    # served them, and the phase HAProxy's log line gives their decision (the
    # next phase already, for those sent while the walk was stepping on).
    print("    phase     requests failures lost  served by / phase in HAProxy's log")
    for label in rep["labels"]:
        v = per_phase.get(label, {"requests": 0, "failures": 0})
        print("    %-8s  %8d %8d %4d  %s / %s" % (
            label, v["requests"], v["failures"], lost.get(label, 0),
            json.dumps(v.get("served_by", {}), sort_keys=True),
            json.dumps(rep["haproxy_phases"].get(label, {}), sort_keys=True)))


def check_load(s, rep, lines, unlabeled):
    assert rep["failures"] == 0, "failed requests: %s" % json.dumps(rep["failure_samples"][:5])
    assert rep["lost_writes"] == 0, "lost writes: %s" % json.dumps(rep["verify"])
    assert not (rep["verify"] or {}).get("errors"), rep["verify"]
    assert rep["requests"] >= LOAD_RATE * 5, "too little load: %d" % rep["requests"]
    assert rep["dropped_logs"] == 0, "HAProxy dropped %s log lines" % rep["dropped_logs"]
    assert not rep["unlogged"], "%d of %d requests have no HAProxy log line, e.g. %s" % (
        len(rep["unlogged"]), rep["requests"], rep["unlogged"][:3])
    assert len(lines) == rep["requests"], \
        "HAProxy logged %d load requests, load.py sent %d" % (len(lines), rep["requests"])
    assert not unlabeled, "log lines without phase/route/backend: %s" % unlabeled[:3]


@pytest.mark.timeout(400)
def test_walk_1_to_12_under_load():
    s, rep, lines, unlabeled = walk_under_load("walk", 12, 12, api_switch_at=9,
                                               verify_api="new")
    try:
        print_figures("walk 1->12", rep)
        check_load(s, rep, lines, unlabeled)
    finally:
        s.stop()


@pytest.mark.timeout(400)
def test_rollback_6_to_1_under_load():
    s, rep, lines, unlabeled = walk_under_load("rollback", 6, 1, api_switch_at=None,
                                               verify_api="old")
    try:
        print_figures("walk 1->6->1", rep)
        check_load(s, rep, lines, unlabeled)
    finally:
        s.stop()
