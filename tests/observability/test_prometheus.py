# SPDX-License-Identifier: Apache-2.0
"""A real Prometheus (Debian's) scrapes both agents and HAProxy's exporter
every 500 ms while the whole system (tests/lib/system.py) walks the sample
plan 1 -> 4 -> 6 -> 8 under light bounded load (scripts/apps/load.py), then
routes by its fallback while both agents are SIGSTOPped. Every figure is
read back over Prometheus's HTTP API:

  phase_per_agent         both agents reach each phase of the walk
  decisions_per_phase     decisions of every phase visited increased
  fallback_routing        requests taken while no agent is UP, from HAProxy's
                          exporter; the shipped CutoverFallbackRouting alert fires
  plan_rejected           a bad edit: the CutoverPlanRejected alert fires for
                          both agents, the last good phase still serves
  rule_metrics_exist      every metric the alerts read is exported (but the
                          pending sunset one)
  deprecated_per_client   load.py's clients (X-Api-Client load-0, load-1) on
                          the old API at phase 8: Prometheus reads each one's
                          cutover_deprecated_requests_total per agent, equal
                          to the agent's /clients.json, and its last request
  dashboard_queries       every expr of packaging/grafana/cutover.json evaluates
  promtool_rules          promtool check/test rules on packaging/prometheus

One walk serves every case: a module fixture starts the system.System
itself (tests/conftest.py's start_system lives one case) and stops it, and
Prometheus, by PID.
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
import plan_phase
import prom
import system

WALK = (1, 4, 6, 8)
DWELL_S = 3.0          # per phase: several scrapes of the new phase's counts
LOAD = ["--rate", "30", "--clients", "2", "--duration", "60", "--max-requests", "1500",
        "--api", "old", "--timeout", "5"]
FALLBACK_REQUESTS = 40
RULES_DIR = os.path.join(harness.ROOT, "packaging", "prometheus")
DASHBOARD = os.path.join(harness.ROOT, "packaging", "grafana", "cutover.json")
# Grafana's variables, each given a fixed value for Prometheus itself.
# Dashboard queries that may rightly have no data here: no protocol error
# happens, and the fallback's requests are over.
MAY_BE_EMPTY = ("cutover_protocol_errors_total", "== 0")
GRAFANA_VARS = {"$__rate_interval": "2s", "$__interval": "1s", "$__range": "1m",
                "$instance": ".*"}


@pytest.fixture(scope="module")
def observed():
    """The walk, once: {"system", "prom", "phases": {phase: {instance: value}},
    "decisions": {phase: increase}, "fallback": {...}}."""
    s = system.System("observability", WALK[0], metrics=True, replicator=True,
                      sunset_ahead=True)
    p = None
    try:
        agents = ["127.0.0.1:%d" % a.metrics_port for a in s.agents]
        p = prom.Prometheus(agents, ["127.0.0.1:%d" % s.haproxy.prom_port])
        p.wait('sum(up)', lambda r: r and r[0][1] == 3, "every target scraped")
        out = {"system": s, "prom": p, "agents": agents, "phases": {}}
        start = time.time()
        load = harness.Proc([sys.executable, os.path.join(system.APPS, "load.py"),
                             "--url", "http://127.0.0.1:%d" % s.http_port] + LOAD
                            + ["--report", os.path.join(s.dir, "load.json")], "load",
                            workdir=s.dir)
        try:
            for phase in WALK:
                if phase != WALK[0]:
                    s.set_phase(phase)
                    s.wait_phase(phase)
                seen = p.wait('cutover_phase_effective{job="cutover"}',
                              lambda r: len(r) == 2 and all(v == phase for _, v in r),
                              "both agents in phase %d" % phase)
                out["phases"][phase] = {m["instance"]: v for m, v in seen}
                time.sleep(DWELL_S)
                assert load.alive(), "load.py ended early:\n" + load.log()[-3000:]
        finally:
            load.signal(signal.SIGTERM)
            load.proc.wait(30)
            load.stop()
        time.sleep(1.0)  # a last scrape after the load
        out["deprecated"] = deprecated_per_client(s, p)
        window = "%ds" % (time.time() - start + 2)
        out["decisions"] = p.by('sum by (phase) (increase(cutover_decisions_total{job="cutover"}[%s]))'
                                % window, "phase")
        out["decisions_per_agent"] = p.query(
            'sum by (instance, phase) (increase(cutover_decisions_total{job="cutover"}[%s]))' % window)
        out["fallback"] = fallback(s, p)
        out["rejected"] = rejected_edit(s, p)
        yield out
    finally:
        if p is not None:
            p.close()
        # No agent may crash (its files stay for a look when one did).
        crashes = s.stop()
    assert crashes == [], crashes


def deprecated_per_client(s, p):
    """Per (instance, client): Prometheus's cutover_deprecated_requests_total
    and last-request time, and the agent's /clients.json, read after the load."""
    counts = p.query('cutover_deprecated_requests_total{job="cutover"}')
    stamps = p.query('cutover_deprecated_last_request_timestamp_seconds{job="cutover"}')
    agents = {}
    for a in s.agents:
        view = http_once.request(a.metrics_port, "GET", "/clients.json", timeout=5).json()
        agents["127.0.0.1:%d" % a.metrics_port] = view
    return {"counts": {(m["instance"], m["client"]): v for m, v in counts},
            "stamps": {(m["instance"], m["client"]): v for m, v in stamps},
            "agents": agents}


def fallback(s, p):
    """Both agents SIGSTOPped: HAProxy takes them out of spoe_cutover and
    routes by its fallback; requests sent then, as the exporter and the
    rules see them. The agents are resumed after."""
    for a in s.agents:
        a.signal(signal.SIGSTOP)
    try:
        s.wait_agents_down()
        p.wait('haproxy_backend_active_servers{job="haproxy", proxy="spoe_cutover"}',
               lambda r: r and r[0][1] == 0, "Prometheus sees no agent UP in HAProxy")
        log_before = len(s.haproxy.lines())
        statuses = [s.request("GET", "/query/api/squids", timeout=5).status
                    for _ in range(FALLBACK_REQUESTS)]
        alert = p.wait('ALERTS{alertname="CutoverFallbackRouting", alertstate="firing"}',
                       lambda r: len(r) == 1, "the fallback alert firing")
        routed = p.wait('sum by (instance) (increase(haproxy_frontend_http_requests_total'
                        '{job="haproxy", proxy="cutover_http"}[5s])) and on (instance) '
                        'haproxy_backend_active_servers{job="haproxy", proxy="spoe_cutover"} == 0',
                        lambda r: r and r[0][1] > 0, "requests counted while no agent is UP")
        fb_lines = [l for l in s.haproxy.lines()[log_before:] if " fb=1 " in l]
        return {"statuses": statuses, "alert": alert, "routed": routed[0][1],
                "fb_lines": len(fb_lines)}
    finally:
        for a in s.agents:
            a.signal(signal.SIGCONT)
        s.wait_agents_up()
        p.wait('sum(up)', lambda r: r and r[0][1] == 3, "every target scraped again")
        time.sleep(2.0)  # samples enough for the dashboard's rates


def rejected_edit(s, p):
    """A plan edit both agents refuse, as Prometheus and the shipped
    CutoverPlanRejected alert see it; then the good plan again."""
    good = system.plan_text(WALK[-1])
    system.write_atomic(s.plan, plan_phase.set_phase(good, "[%d" % WALK[-1]))  # not YAML
    success = p.wait('cutover_plan_last_reload_success{job="cutover"}',
                     lambda r: len(r) == 2 and all(v == 0 for _, v in r), "both agents reject")
    alert = p.wait('ALERTS{alertname="CutoverPlanRejected", alertstate="firing"}',
                   lambda r: len(r) == 2, "the plan-rejected alert firing for both agents")
    phases = p.by('cutover_phase_effective{job="cutover"}', "instance")
    system.write_atomic(s.plan, good)
    p.wait('cutover_plan_last_reload_success{job="cutover"}',
           lambda r: len(r) == 2 and all(v == 1 for _, v in r), "both agents accept again")
    return {"success": success, "alert": alert, "phases": phases}


def test_phase_per_agent(observed):
    for phase in WALK:
        seen = observed["phases"][phase]
        print("phase %d: %s" % (phase, seen))
        assert sorted(seen) == sorted(observed["agents"]), seen
        assert set(seen.values()) == {phase}, seen


def test_decisions_per_phase(observed):
    d = observed["decisions"]
    print("decisions per phase over the walk: %s" % {k: round(v, 1) for k, v in sorted(d.items())})
    for phase in WALK:
        assert d.get(str(phase), 0) > 0, "no decision counted in phase %d: %s" % (phase, d)
    # Which agent decided is HAProxy's choice (SPOE reuses one connection).
    print("per agent: %s" % {(m["instance"], m["phase"]): round(v, 1)
                             for m, v in observed["decisions_per_agent"]})


def test_fallback_routing(observed):
    fb = observed["fallback"]
    print("fallback: %d requests sent, HAProxy logged %d with fb=1, Prometheus counted %.1f "
          "while no agent was UP" % (FALLBACK_REQUESTS, fb["fb_lines"], fb["routed"]))
    assert fb["statuses"] == [200] * FALLBACK_REQUESTS, fb["statuses"]
    assert fb["fb_lines"] == FALLBACK_REQUESTS
    assert fb["routed"] > 0
    assert fb["alert"][0][0].get("severity") == "critical"


def test_plan_rejected(observed):
    r = observed["rejected"]
    assert sorted(m["instance"] for m, _ in r["alert"]) == sorted(observed["agents"])
    # The last good plan keeps serving.
    assert r["phases"] == {a: WALK[-1] for a in observed["agents"]}, r["phases"]


def test_deprecated_per_client(observed):
    d = observed["deprecated"]
    print("deprecated requests per (agent, client): %s" % d["counts"])
    from_agents = {}
    for instance, view in d["agents"].items():
        for c in view["clients"]:
            from_agents[(instance, c["client"])] = c["requests"]
        from_agents[(instance, "other")] = view["other"]["requests"]
    assert d["counts"] == from_agents
    by_client = {}
    for (_, client), v in d["counts"].items():
        by_client[client] = by_client.get(client, 0) + v
    assert by_client.get("load-0", 0) > 0 and by_client.get("load-1", 0) > 0, by_client
    now = time.time()
    for key, v in d["counts"].items():
        if key[1] != "other":
            assert now - 600 < d["stamps"][key] <= now, (key, d["stamps"].get(key))


def rule_metric_names():
    """The metric names the alerting rules read (quoted label values and
    label names inside braces or by/on/without lists left out)."""
    with open(os.path.join(RULES_DIR, "cutover-rules.yml")) as f:
        exprs = re.findall(r"^\s+expr: (?:\|\n((?:\s{10}.*\n)+)|(.*)\n)", f.read(), re.M)
    names = set()
    for block, line in exprs:
        e = re.sub(r'"[^"]*"', "", block or line)
        e = re.sub(r"\{[^}]*\}|\((?=[a-z_, ]*\))[a-z_, ]*\)|\[[^]]*\]", " ", e)
        names |= set(re.findall(r"\b(?:cutover|haproxy)_[a-z_]+|\bup\b", e))
    return names


def test_rule_metrics_exist(observed):
    """Every metric an alert reads is one the agents or HAProxy export,
    but the sunset rule's, which no agent exports yet (its comment says so)."""
    p = observed["prom"]
    names = rule_metric_names()
    assert {"up", "cutover_plan_info", "haproxy_backend_active_servers"} <= names, names
    missing = sorted(n for n in names if not p.query('count({__name__="%s"})' % n))
    print("metrics the rules read: %s; not exported: %s" % (sorted(names), missing))
    assert missing == ["cutover_route_sunset_timestamp_seconds"]


def dashboard_exprs():
    """Every expr of the dashboard, Grafana's variables replaced."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    found = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(dash)
    out = []
    for e in found:
        for var, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
            e = e.replace(var, value)
        assert "$" not in e, "a Grafana variable the test does not know: %s" % e
        out.append(e)
    return out


def test_dashboard_queries(observed):
    p = observed["prom"]
    exprs = dashboard_exprs()
    assert len(exprs) >= 14, exprs
    errors, empty = [], []
    for e in exprs:
        try:
            if not p.query(e):
                empty.append(e)
        except prom.QueryError as err:
            errors.append(str(err))
    print("%d dashboard queries, %d without data now: %s" % (len(exprs), len(empty), empty))
    assert not errors, "\n".join(errors)
    assert [e for e in empty if not any(m in e for m in MAY_BE_EMPTY)] == []


@pytest.mark.parametrize("command", [["check", "rules", "cutover-rules.yml"],
                                     ["test", "rules", "cutover-rules.test.yml"]])
def test_promtool_rules(command):
    r = subprocess.run(["promtool"] + command, cwd=RULES_DIR, capture_output=True, text=True)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout
