# SPDX-License-Identifier: Apache-2.0
"""End to end on the second plan, conf/examples/squid-api/plan.yaml: one API
without the /query /command split (reads and writes told apart by method), a
mid-path rewrite, a host route, a default backend, phases 10 to 60 with a 410
phase, behind exactly the HAProxy configuration README.md shows.

  explain_says_what_the_plan_says  --explain --json (with --host) gives the
                   decision written out by hand for every probe and phase
  readme_config    README.md's "Putting cutover beside your own HAProxy"
                   holds conf/examples/squid-api/haproxy.cfg and cutover.spoe
                   byte for byte, the frontend's fixed rules are
                   haproxy/haproxy.cfg's, and haproxy -c accepts the config
  walk_under_load  the apps (old-api, new-api, admin on SQLite, the
                   replicator), two agents and that HAProxy: every phase in
                   plan order under load.py's reads and writes (old API until
                   phase 50, new API after), with PROBES in each phase checked
                   against the plan (status, app, path as the app got it incl.
                   the mid-path rewrite, host route, 410 + Link, Deprecation,
                   and phase/route/backend/path from HAProxy's log): zero
                   failed requests, zero lost writes. Then both agents
                   stopped: for each phase, the fallback map the agent writes,
                   the same PROBES routed exactly as the agents routed them,
                   and a burst of load at the last phase without a failure.

HAPROXY=/path selects the HAProxy binary. Per-phase figures are printed.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import harness
import http_once
import system
from system import APPS, SQUID_API, write_atomic
from test_e2e import parse_log

README = os.path.join(harness.ROOT, "README.md")
EXAMPLE = os.path.join(system.EXAMPLES, "squid-api")
SECTION = "## Putting cutover beside your own HAProxy"
PHASES = (10, 20, 30, 40, 50, 60)
API_SWITCH_AT = 50    # the new API opens here; the old one answers 410 at 60
LOAD_RATE = 150       # requests/s of load.py during the walk
LOAD_CLIENTS = 6
DWELL_S = 2.0         # load time spent in each phase
ADMIN = "admin.example.test"
ENTITY = {"name": "probe squid", "price": 2.5}

# (method, path, Host or None, body): the method split on one path, a query
# string, a write, the mid-path sub-resource, the new API and its
# sub-resource, the admin host (also in capitals and with a port), the same
# path on another host (default backend), a method neither split route takes,
# a path no route claims, and a path no rewrite may carry (dot segment).
PROBES = (
    ("GET", "/api/squids/1", None, None),
    ("HEAD", "/api/squids/1", None, None),
    ("GET", "/api/squids?limit=1", None, None),
    ("POST", "/api/squids", None, ENTITY),
    ("PUT", "/api/squids/1", None, ENTITY),
    ("GET", "/api/squids/1/photos", None, None),
    ("GET", "/api/seafoods/1", None, None),
    ("GET", "/api/seafoods/1/images", None, None),
    ("GET", "/stats", ADMIN, None),
    ("GET", "/stats", "ADMIN.Example.TEST:8080", None),
    ("GET", "/stats", None, None),
    ("OPTIONS", "/api/squids", None, None),
    ("GET", "/api/inventory", None, None),
    ("GET", "/api/squids/%2e%2e/stats", None, None),
)


# --- the README's configuration -------------------------------------------------

def readme_blocks():
    """The fenced ```haproxy blocks of README.md's section SECTION."""
    with open(README) as f:
        text = f.read()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"^```haproxy\n(.*?)^```$", text[start:end if end > 0 else None],
                      re.S | re.M)


def fixed_rules(cfg_text):
    """The frontend's rules that hold nothing of any plan: from the comment
    "The agent has answered" to the one before the log-format."""
    a = cfg_text.index("    # The agent has answered")
    b = cfg_text.index("    # One line per request", a)
    return cfg_text[a:b]


def test_readme_config():
    blocks = readme_blocks()
    with open(os.path.join(EXAMPLE, "haproxy.cfg")) as f:
        cfg = f.read()
    with open(os.path.join(EXAMPLE, "cutover.spoe")) as f:
        spoe = f.read()
    assert len(blocks) == 2, "README's section has %d haproxy blocks, not 2" % len(blocks)
    assert blocks[0] == cfg, "README's haproxy.cfg differs from %s/haproxy.cfg" % EXAMPLE
    assert blocks[1] == spoe, "README's cutover.spoe differs from %s/cutover.spoe" % EXAMPLE
    with open(system.HAPROXY_CFG) as f:
        sample = f.read()
    want = fixed_rules(sample).replace('"${CUTOVER_FALLBACK_DIR-run/fallback}/',
                                       '"${CUTOVER_FALLBACK_DIR-/var/lib/cutover}/')
    assert fixed_rules(cfg) == want, "the example's fixed rules are not haproxy/haproxy.cfg's"
    d = tempfile.mkdtemp(prefix="cutover-readme-")
    try:
        check_config(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("  README's config is %s/haproxy.cfg and cutover.spoe; haproxy -c and "
          "--check --haproxy-config accept it" % os.path.relpath(EXAMPLE, harness.ROOT))


def check_config(d):
    """haproxy -c on the example, with the map the agent writes in d; the
    agent's --check --haproxy-config finds a backend for each of the plan's."""
    system.write_fallback(d, SQUID_API.plan)
    env = dict(os.environ, CUTOVER_FALLBACK_DIR=d,
               CUTOVER_SPOE_CONF=os.path.join(EXAMPLE, "cutover.spoe"),
               CUTOVER_STATS_SOCKET=os.path.join(d, "admin.sock"))
    r = subprocess.run([os.environ.get("HAPROXY", "haproxy"), "-c", "-f",
                        os.path.join(EXAMPLE, "haproxy.cfg")],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "haproxy -c: %s%s" % (r.stdout, r.stderr)
    r = subprocess.run([harness.agent_binary(), "--check", SQUID_API.plan, "--haproxy-config",
                        os.path.join(EXAMPLE, "haproxy.cfg")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


# --- what the plan says, written out by hand --------------------------------------

SUNSET_EPOCH = 1814313600  # the plan's sunset, 2027-06-30 (`date -u -d 2027-06-30 +%s`)


def expected(phase, method, path, host, now=None):
    """The plan's decision for one request, from its text (not from the
    agent): route, backend, rewritten path, status, link, deprecated. From
    the sunset on (now, default the real clock) a deprecated route is the
    agent's 410 with its successor as the link."""
    p = path.split("?", 1)[0]
    host = (host or "").lower().rsplit(":", 1)[0]
    d = {"route": None, "backend": "old_api", "path": None, "status": None, "link": None,
         "deprecated": False}
    reads = method in ("GET", "HEAD")
    writes = method in ("POST", "PUT", "PATCH", "DELETE")
    photos = re.fullmatch(r"/api/squids/([^/]+)/photos", p)
    if photos:
        d["route"], moved_at = "squid-photos", 30
        successor = "/api/seafoods/%s/images" % photos.group(1)
    elif (p == "/api/squids" or p.startswith("/api/squids/")) and (reads or writes):
        d["route"], moved_at = ("squids-read", 30) if reads else ("squids-write", 40)
        successor = "/api/seafoods" + p[len("/api/squids"):]
    elif p == "/api/seafoods" or p.startswith("/api/seafoods/"):
        d["route"] = "seafoods"
        if phase < 50:
            d.update(backend=None, status=404)
        else:
            d["backend"] = "new_api"
        return d
    elif host == ADMIN:
        d.update(route="admin", backend="admin")
        return d
    else:
        return d  # no route: the plan's default_backend
    if phase >= 60:
        d.update(backend=None, status=410, link=successor)
    elif phase >= moved_at:
        d.update(backend="new_api", path=successor, deprecated=phase >= 50)
    if d["deprecated"] and (time.time() if now is None else now) >= SUNSET_EPOCH:
        d.update(backend=None, path=None, status=410, link=successor)
    dot = re.search(r"(^|/)(\.|%2e){1,2}(/|$)", successor, re.I)
    if dot and (d["path"] or d["link"]):  # a rewrite or link no path may carry
        d.update(backend=None, path=None, link=None, status=400)  # still deprecated
    return d


APP_OF = {"old_api": "old-api", "new_api": "new-api", "admin": "admin"}


def app_status(app, method, path):
    """What shop.py answers (entity 1 exists on both sides)."""
    p = path.split("?", 1)[0]
    if app == "admin":
        return 200 if p == "/stats" and method in ("GET", "HEAD") else 404
    base, sub = ("/api/squids", "photos") if app == "old-api" else ("/api/seafoods", "images")
    if p == base + "/1/" + sub:
        return 200 if method in ("GET", "HEAD") else 405
    if p not in (base, base + "/1"):
        return 404
    if method in ("GET", "HEAD"):
        return 200
    if method == "POST" and p == base:
        return 201
    if method == "PUT" and p != base:
        return 200
    return 405


def want_outcome(phase, method, path, host, fallback):
    # the fallback map has no clock: past a sunset it still routes
    e = expected(phase, method, path, host, now=0 if fallback else None)
    query = "?" + path.split("?", 1)[1] if "?" in path else ""
    app = APP_OF.get(e["backend"]) if not e["status"] else None
    app_path = (e["path"] or path.split("?", 1)[0]) if app else None
    status = e["status"] or app_status(app, method, app_path)
    # the last Link header (headers read as a dict): the 410's successor,
    # query kept; HAProxy's successor after a deprecated route's own; the
    # app's pagination on a list (entity 1 first, limit=1: a full page)
    if e["link"]:
        link = '<%s%s>; rel="successor-version"' % (e["link"], query)
    elif e["deprecated"] and not e["status"]:
        link = '<%s>; rel="successor-version"' % e["path"]
    elif "?limit=" in path and status == 200:
        link = '<%s?limit=1>; rel="first", <%s?after=1&limit=1>; rel="next"' % (app_path,
                                                                               app_path)
    else:
        link = None
    return {
        "status": status,
        "served_by": app or "",
        "app_saw": app_path + query if app else None,
        # the plan's deprecation date, 2026-12-01 (`date -u -d 2026-12-01 +%s`)
        "deprecation": "@1796083200" if e["deprecated"] and not e["status"] else None,
        "link": link,
        "log": {"phase": str(phase), "route": e["route"] or "-", "be": e["backend"] or "-",
                "path": e["path"] or "-", "st": str(e["status"] or "-"),
                "dep": "1" if e["deprecated"] else "-", "fb": "1" if fallback else "-"},
    }


def explained(method, path, host):
    """{phase: --explain --json's decision} for one request, every phase."""
    argv = [harness.agent_binary(), "--explain", SQUID_API.plan, method, path.split("?", 1)[0],
            "--all-phases", "--json"] + (["--host", host] if host else [])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return {d["phase"]: d for d in json.loads(r.stdout)["decisions"]}


def test_explain_says_what_the_plan_says():
    """--explain (--host for the admin route) gives, for every probe and
    phase, the decision written out by hand in expected()."""
    problems = []
    for method, path, host, _ in PROBES:
        got = explained(method, path, host)
        assert sorted(got) == list(PHASES), got
        for phase in PHASES:
            e = expected(phase, method, path, host)
            g = {k: got[phase][k] for k in e}
            if g != e:
                problems.append("phase %d %s %s host %s: explain %s, plan %s"
                                % (phase, method, path, host, g, e))
    assert not problems, "\n".join(problems)
    print("  --explain: %d probes x %d phases as the plan says" % (len(PROBES), len(PHASES)))


# --- probes through HAProxy -------------------------------------------------------

def send_probes(s, phase, tag):
    """PROBES through HAProxy; [(probe, outcome)], outcome as want_outcome's."""
    rows = []
    for i, (method, path, host, body) in enumerate(PROBES):
        client = "%s-%d-%d" % (tag, phase, i)
        headers = {"X-Api-Client": client}
        if host:
            headers["Host"] = host
        r = s.request(method, path, json=body, headers=headers)
        rows.append((client, r))
    logs = {}
    deadline = time.monotonic() + 5
    while len(logs) < len(rows) and time.monotonic() < deadline:
        with open(s.haproxy.log_path, errors="replace") as f:
            text = f.read()
        for line in text[:text.rfind("\n") + 1].splitlines():  # whole lines only
            rec = parse_log(line)
            if rec and rec.get("client", "").startswith("%s-%d-" % (tag, phase)):
                logs[rec["client"]] = rec
        time.sleep(0.05)
    out = []
    for probe, (client, r) in zip(PROBES, rows):
        rec = logs.get(client, {})
        out.append((probe, {
            "status": r.status, "served_by": r.headers.get("x-served-by", ""),
            "app_saw": r.headers.get("x-request-path"),
            "deprecation": r.headers.get("deprecation"), "link": r.headers.get("link"),
            "log": {k: rec.get(k) for k in ("phase", "route", "be", "path", "st", "dep", "fb")},
        }))
    return out


def differences(phase, results, fallback):
    problems = []
    for (method, path, host, _), got in results:
        want = want_outcome(phase, method, path, host, fallback)
        if got != want:
            problems.append("phase %d %s %s host %s:\n    got  %s\n    want %s"
                            % (phase, method, path, host, got, want))
    return problems


# --- the walk -----------------------------------------------------------------------

def start_load(s, seconds, tag, api):
    """load.py against HAProxy, single layout, bounded by seconds; it follows
    the run dir's api and phase files."""
    write_atomic(os.path.join(s.dir, "api"), api + "\n")
    argv = [sys.executable, os.path.join(APPS, "load.py"), "--layout", "single",
            "--url", "http://127.0.0.1:%d" % s.http_port, "--rate", str(LOAD_RATE),
            "--duration", str(seconds), "--clients", str(LOAD_CLIENTS), "--api", "auto",
            "--api-switch-file", os.path.join(s.dir, "api"),
            "--phase-file", os.path.join(s.dir, "phase"),
            "--verify-url", "http://127.0.0.1:%d" % s.http_port, "--verify-api", "new",
            "--report", os.path.join(s.dir, tag + ".json"), "--client-id", tag,
            "--timeout", "10",
            # This plan has no read_your_writes: a client's reads wait for
            # replication (1 s after its write) instead.
            "--settle", "1"]
    return harness.Proc(argv, tag, workdir=s.dir)


def finish_load(s, load, tag, interrupt=True):
    """Its report, once it ended: at once (SIGTERM) or at its --duration."""
    if interrupt:
        load.signal(signal.SIGTERM)
    deadline = time.monotonic() + 120
    while load.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    load.stop()
    with open(os.path.join(s.dir, tag + ".json")) as f:
        return json.load(f)


def print_figures(title, rep):
    print("  %s: %d requests, %d failures, %d lost writes, %d verified, %.0f req/s"
          % (title, rep["requests"], rep["failures"], rep["lost_writes"],
             (rep.get("verify") or {}).get("checked", 0), rep.get("rate_achieved") or 0))
    for label, v in sorted((rep.get("per_phase") or {}).items()):
        print("    phase %-14s %6d requests %3d failures  %s" % (
            label, v["requests"], v["failures"], json.dumps(v.get("served_by", {}),
                                                            sort_keys=True)))


def check_load(rep, min_requests):
    assert rep["failures"] == 0, "failed requests: %s" % json.dumps(rep["failure_samples"][:5])
    assert rep["lost_writes"] == 0, "lost writes: %s" % json.dumps(rep["verify"])
    assert not (rep["verify"] or {}).get("errors"), rep["verify"]
    assert rep["requests"] >= min_requests, "too little load: %d" % rep["requests"]


@pytest.mark.timeout(400)
def test_walk_under_load(start_system):
    s = start_system("second", PHASES[0], agents=2, metrics=True, replicator=True,
                     sunset_ahead=True,
                     layout=SQUID_API)
    # Entity 1 on OLD, copied by the replicator to NEW.
    r = s.request("POST", "/api/squids", json={"name": "seed squid", "price": 1})
    assert r.status == 201 and r.json()["id"] == 1, (r.status, r.body)
    deadline = time.monotonic() + 10
    while http_once.request(s.app_ports["new-api"], "GET", "/api/seafoods/1").status != 200:
        assert time.monotonic() < deadline, "entity 1 not replicated to NEW"
        time.sleep(0.1)

    write_atomic(os.path.join(s.dir, "phase"), "%d\n" % PHASES[0])
    load = start_load(s, 150, "load", "old")  # bounded; stopped when the walk ends
    problems, agent_results = [], {}
    for phase in PHASES:
        s.set_phase(phase)
        s.wait_phase(phase)
        write_atomic(os.path.join(s.dir, "phase"), "%d\n" % phase)
        if phase == API_SWITCH_AT:
            write_atomic(os.path.join(s.dir, "api"), "new\n")
        agent_results[phase] = send_probes(s, phase, "agents")
        problems += differences(phase, agent_results[phase], fallback=False)
        time.sleep(DWELL_S)
        assert load.alive(), "load.py ended early:\n" + load.log()[-3000:]
    rep = finish_load(s, load, "load")
    print_figures("walk 10->60", rep)
    check_load(rep, LOAD_RATE * len(PHASES))
    # A request tagged N was sent once the agents were at phase N, before
    # they were at N+2: those of 10 all reach the OLD app, those of 40 on
    # the NEW one.
    served = {label: set(v.get("served_by", {})) for label, v in rep["per_phase"].items()}
    assert served.get("10") == {"old-api"}, served
    assert all(served.get(str(p)) == {"new-api"} for p in (40, 50, 60)), served
    assert not problems, "%d probes differ from the plan:\n%s" % (len(problems),
                                                                 "\n".join(problems))
    print("  %d phases x %d probes routed as the plan says" % (len(PHASES), len(PROBES)))

    # Both agents stopped: HAProxy routes by the fallback map alone.
    for i in range(2):
        assert s.stop_agent(i) == 0, "agent %d did not exit 0 on SIGTERM" % (i + 1)
    s.wait_agents_down()
    for phase in PHASES:
        copy = os.path.join(s.dir, "plan-%d.yaml" % phase)
        write_atomic(copy, system.plan_text(phase, SQUID_API.plan))
        system.write_fallback(s.fallback_dir, copy, s.stats_socket)
        results = send_probes(s, phase, "fallback")
        problems += differences(phase, results, fallback=True)
        for (probe, fb), (_, ag) in zip(results, agent_results[phase]):
            if fb != dict(ag, log=dict(ag["log"], fb="1")):
                problems.append("phase %d %s: fallback %s, agents %s" % (phase, probe, fb, ag))
    write_atomic(os.path.join(s.dir, "phase"), "%d-fallback\n" % PHASES[-1])
    load = start_load(s, 3, "fbload", "new")
    rep = finish_load(s, load, "fbload", interrupt=False)
    print_figures("phase %d, agents stopped" % PHASES[-1], rep)
    check_load(rep, LOAD_RATE)
    crashes = s.stop()
    assert not crashes, "; ".join(crashes)
    assert not problems, "%d differences:\n%s" % (len(problems), "\n".join(problems))
    print("  agents stopped: %d phases x %d probes routed by the fallback as by the agents"
          % (len(PHASES), len(PROBES)))
