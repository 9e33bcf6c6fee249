# SPDX-License-Identifier: Apache-2.0
"""Standard deprecation through the real agent and Debian's HAProxy with
haproxy/haproxy.cfg, on the sample plan (conf/cutover.yaml, its gates left
out) and the sample apps.

  headers_from_phase_8   a deprecated route's responses (a list, an item, a
                   write) carry Deprecation as an RFC 9745 Structured Field
                   Date equal to the plan's date, Sunset as a strict RFC 9110
                   IMF-fixdate equal to the plan's sunset and not before the
                   deprecation, Link values (RFC 8288) with rel="deprecation"
                   -> the plan's policy and rel="successor-version" -> the new
                   path, and the app's own pagination Link beside them; a
                   route that is not deprecated carries none of these (the
                   app's Link still does); before phase 8 nothing either
  fallback_keeps_the_date  both agents stopped: the fallback map still sends
                   the same Deprecation and the successor Link (no Sunset, no
                   policy: docs/plan.md, Deprecation)
  gone_after_sunset  the same plan with a sunset in the past: the deprecated
                   routes answer 410 with the successor in Link and body, the
                   query string kept; a query a Link may not carry is a 400;
                   the other routes are still routed; phase 10's planned 410
                   keeps the query string too

The plan's values are read from conf/cutover.yaml's text here and turned into
epochs by Python's datetime, not by the agent. Header examples are printed.
"""
import datetime
import http.client
import os
import re
import shutil
import tempfile
import time

import pytest

import system
from system import System, write_atomic

PLAN = system.PLAN
IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT")
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


# --- what the plan says ------------------------------------------------------------

def plan_epoch(text):
    """A plan date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC) in seconds."""
    fmt = "%Y-%m-%dT%H:%M:%SZ" if "T" in text else "%Y-%m-%d"
    d = datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp())


def route_deprecation(plan_text, route):
    """{date, sunset, policy} of route's deprecation block, from the text."""
    m = re.search(r"^  - name: %s\b.*?\n(?=  - name: |\n\S)" % re.escape(route), plan_text,
                  re.S | re.M)
    assert m, "route %s not in the plan" % route
    block = m.group(0)
    got = {}
    for key in ("date", "sunset", "policy"):
        v = re.search(r"^      %s: (\S+)" % key, block, re.M)
        assert v, "route %s: no %s in its deprecation block" % (route, key)
        got[key] = v.group(1)
    return got


# --- header parsing ------------------------------------------------------------------

def sf_date(value):
    """RFC 9745's Deprecation value: an RFC 9651 Date, "@" and an Integer
    (at most 15 digits, optional "-"). Returns the integer."""
    m = re.fullmatch(r"@(-?[0-9]{1,15})", value)
    assert m, "Deprecation %r is not a Structured Field Date" % value
    return int(m.group(1))


def imf_fixdate(value):
    """RFC 9110 §5.6.7 IMF-fixdate, strictly (no other HTTP-date form),
    its day name the date's. Returns seconds since the epoch."""
    m = IMF_FIXDATE.fullmatch(value)
    assert m, "Sunset %r is not an IMF-fixdate" % value
    wd, day, mon, year, hh, mm, ss = m.groups()
    d = datetime.datetime(int(year), MONTHS.index(mon) + 1, int(day), int(hh), int(mm),
                          int(ss), tzinfo=datetime.timezone.utc)  # raises on 30 Feb, 24:00
    assert DAYS[d.weekday()] == wd, "Sunset %r: %s is a %s" % (value, d.date(),
                                                               DAYS[d.weekday()])
    return int(d.timestamp())


def _quoted(s, i):
    """RFC 9110 quoted-string at s[i] == '"': (its value, index after it)."""
    out, i = [], i + 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            out.append(s[i + 1])
            i += 2
        elif c == '"':
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise AssertionError("unterminated quoted-string in %r" % s)


def link_values(headers):
    """Every link-value (RFC 8288 §3) of every Link header, in order:
    [(target, {param: value})], rel's value lowercased."""
    out = []
    for value in headers:
        i, n = 0, len(value)
        while i < n:
            while i < n and value[i] in " \t,":
                i += 1
            if i >= n:
                break
            assert value[i] == "<", "Link %r: no '<' at %d" % (value, i)
            end = value.index(">", i)
            target, i, params = value[i + 1:end], end + 1, {}
            while True:
                while i < n and value[i] in " \t":
                    i += 1
                if i >= n or value[i] == ",":
                    break
                assert value[i] == ";", "Link %r: junk at %d" % (value, i)
                m = re.compile(r"[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*").match(value, i + 1)
                assert m, "Link %r: bad parameter at %d" % (value, i)
                name, i = m.group(1).lower(), m.end()
                pval = ""
                if i < n and value[i] == "=":
                    i += 1
                    while i < n and value[i] in " \t":
                        i += 1
                    if i < n and value[i] == '"':
                        pval, i = _quoted(value, i)
                    else:
                        m = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").match(value, i)
                        assert m, "Link %r: bad token at %d" % (value, i)
                        pval, i = m.group(0), m.end()
                params.setdefault(name, pval.lower() if name == "rel" else pval)
            out.append((target, params))
    return out


def rels(links):
    """{rel type: [targets]} (a rel may hold several types)."""
    by = {}
    for target, params in links:
        for r in params.get("rel", "").split():
            by.setdefault(r, []).append(target)
    return by


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.body = status, body
        self.headers = headers  # [(name, value)] in order, duplicates kept

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def show(self, names=("deprecation", "sunset", "link")):
        return "\n".join("      %s: %s" % (k, v) for k, v in self.headers
                         if k.lower() in names)


def send(sysm, method, path, body=None):
    """One request through HAProxy, every header line kept."""
    c = http.client.HTTPConnection("127.0.0.1", sysm.http_port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return Answer(r.status, r.getheaders(), r.read())
    finally:
        c.close()


# --- cases ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def phase8():
    """The sample plan at phase 7, two agents; two squids written through
    the squids write route (to NEW, as seafoods). The first case moves it
    to phase 8."""
    s = System("deprecation", 7, agents=2, agent_threads=1, metrics=True)
    try:
        for name in ("first squid", "second squid"):
            r = send(s, "POST", "/command/api/squids", b'{"name": "%s", "price": 2}'
                     % name.encode())
            assert r.status == 201, (r.status, r.body)
        yield s
    finally:
        crashes = s.stop()
    assert not crashes, "; ".join(crashes)


def check_deprecated(r, dep, successor, app_rels=()):
    """r is a deprecated route's answer under the plan's block dep."""
    date, sunset = plan_epoch(dep["date"]), plan_epoch(dep["sunset"])
    assert len(r.all("Deprecation")) == 1, r.headers
    assert sf_date(r.all("Deprecation")[0]) == date
    assert len(r.all("Sunset")) == 1, r.headers
    got_sunset = imf_fixdate(r.all("Sunset")[0])
    assert got_sunset == sunset
    assert got_sunset >= date, "Sunset before Deprecation (RFC 8594 §3)"
    by = rels(link_values(r.all("Link")))
    assert by.get("deprecation") == [dep["policy"]], by
    assert by.get("successor-version") == [successor], by
    for rel in app_rels:
        assert rel in by, "the app's own Link rel=%s is gone: %s" % (rel, r.headers)


def check_plain(r):
    """No deprecation header, no link HAProxy adds."""
    assert not r.all("Deprecation") and not r.all("Sunset"), r.headers
    by = rels(link_values(r.all("Link")))
    assert "deprecation" not in by and "successor-version" not in by, by


def test_headers_from_phase_8(phase8):
    s = phase8
    # Phase 7: the route is not deprecated yet: nothing but the app's Link.
    before = send(s, "GET", "/query/api/squids?limit=1")
    assert before.status == 200, (before.status, before.body)
    check_plain(before)
    assert "next" in rels(link_values(before.all("Link"))), before.headers
    s.set_phase(8)
    s.wait_phase(8)

    with open(s.plan) as f:
        text = f.read()
    dq, dc = route_deprecation(text, "squids-query"), route_deprecation(text, "squids-command")
    lst = send(s, "GET", "/query/api/squids?limit=1")
    assert lst.status == 200, (lst.status, lst.body)
    check_deprecated(lst, dq, "/query/api/seafoods", app_rels=("first", "next"))
    by = rels(link_values(lst.all("Link")))
    first_id = int(re.search(rb'"id": ([0-9]+)', lst.body).group(1))
    # the app's own header is there as the app sent it: one line, both rels
    assert lst.all("Link")[0] == ('</query/api/seafoods?limit=1>; rel="first", '
                                  '</query/api/seafoods?after=%d&limit=1>; rel="next"'
                                  % first_id), lst.headers
    assert by["next"] == ["/query/api/seafoods?after=%d&limit=1" % first_id]

    item = send(s, "GET", "/query/api/squids/%d" % first_id)
    assert item.status == 200, (item.status, item.body)
    check_deprecated(item, dq, "/query/api/seafoods/%d" % first_id)
    write = send(s, "PUT", "/command/api/squids/%d" % first_id,
                 b'{"name": "renamed squid", "price": 3}')
    assert write.status == 200, (write.status, write.body)
    check_deprecated(write, dc, "/command/api/seafoods/%d" % first_id)

    new = send(s, "GET", "/query/api/seafoods?limit=1")
    assert new.status == 200, (new.status, new.body)
    check_plain(new)
    assert "next" in rels(link_values(new.all("Link"))), new.headers
    check_plain(send(s, "GET", "/query/api/inventory"))

    print("\n  phase 8, GET /query/api/squids?limit=1 -> %d\n%s"
          % (lst.status, lst.show()))
    print("  phase 8, PUT /command/api/squids/%d -> %d\n%s"
          % (first_id, write.status, write.show()))
    print("  phase 8, GET /query/api/seafoods?limit=1 (not deprecated) -> %d\n%s"
          % (new.status, new.show()))


def test_fallback_keeps_the_date(phase8):
    s = phase8
    s.set_phase(8)  # as the case before left it, if it ran
    s.wait_phase(8)
    with open(s.plan) as f:
        dq = route_deprecation(f.read(), "squids-query")
    for i in range(len(s.agents)):
        s.stop_agent(i)
    s.wait_agents_down()
    r = send(s, "GET", "/query/api/squids?limit=1")
    assert r.status == 200, (r.status, r.body)
    assert [sf_date(v) for v in r.all("Deprecation")] == [plan_epoch(dq["date"])]
    assert r.all("Sunset") == []
    by = rels(link_values(r.all("Link")))
    assert by.get("successor-version") == ["/query/api/seafoods"], by
    assert "deprecation" not in by and "next" in by, by
    deadline = time.monotonic() + 5  # the log line may come a moment later
    while not [ln for ln in s.haproxy.lines() if "/query/api/squids?limit=1" in ln
               and "fb=1" in ln and "dep=1" in ln]:
        assert time.monotonic() < deadline, "no deprecated request logged as the fallback's"
        time.sleep(0.05)
    print("\n  fallback (no agent), GET /query/api/squids?limit=1 -> %d\n%s"
          % (r.status, r.show()))


@pytest.fixture(scope="module")
def past_sunset():
    """The sample plan with the OLD API's sunset in the past."""
    with open(PLAN) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^      date: 2026-12-01\b.*$", "      date: 2025-06-01", text)
    text, k = re.subn(r"(?m)^      sunset: 2027-06-30T00:00:00Z\b.*$",
                      "      sunset: 2026-01-01T00:00:00Z", text)
    assert n == 2 and k == 2, "the sample plan's deprecation blocks moved (%d, %d)" % (n, k)
    d = tempfile.mkdtemp(prefix="cutover-deprecation-past-")
    path = os.path.join(d, "cutover.yaml")
    write_atomic(path, text)
    layout = system.Layout(path, system.HAPROXY_CFG, system.haproxy_env, system.SAMPLE.apps)
    try:
        s = System("deprecation-past", 8, agents=1, agent_threads=1, metrics=True,
                   layout=layout)
        try:
            yield s
        finally:
            crashes = s.stop()
        assert not crashes, "; ".join(crashes)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def gone(r, link):
    assert r.status == 410, (r.status, r.body, r.headers)
    by = rels(link_values(r.all("Link")))
    assert by == {"successor-version": [link]}, r.headers
    assert r.body == b"gone: use %s\n" % link.encode(), r.body
    assert not r.all("Deprecation") and not r.all("Sunset"), r.headers


def test_gone_after_sunset(past_sunset):
    s = past_sunset
    assert time.time() >= plan_epoch("2026-01-01T00:00:00Z")
    r = send(s, "GET", "/query/api/squids/7?fields=name&page=2&q=a%20b")
    gone(r, "/query/api/seafoods/7?fields=name&page=2&q=a%20b")
    print("\n  past the sunset, GET /query/api/squids/7?fields=name&page=2&q=a%%20b -> %d\n%s"
          "\n      body: %r" % (r.status, r.show(), r.body))
    gone(send(s, "GET", "/query/api/squids/7"), "/query/api/seafoods/7")
    gone(send(s, "POST", "/command/api/squids?dry_run=1", b'{"name": "x", "price": 1}'),
         "/command/api/seafoods?dry_run=1")
    gone(send(s, "GET", "/query/api/squids"), "/query/api/seafoods")
    # a query a Link header may not carry between '<' and '>'
    bad = send(s, "GET", "/query/api/squids/7?a=<b>")
    assert bad.status == 400 and bad.body == b"cannot route this query\n", (bad.status, bad.body)
    # not deprecated: routed as phase 8 says
    ok = send(s, "GET", "/query/api/seafoods?limit=1")
    assert ok.status == 200 and ok.all("X-Served-By") == ["new-query"], ok.headers
    check_plain(ok)
    deadline = time.monotonic() + 5  # the log line may come a moment later
    while not [ln for ln in s.haproxy.lines() if "/query/api/squids/7?fields" in ln]:
        assert time.monotonic() < deadline, "the 410 is not logged"
        time.sleep(0.05)
    line = [ln for ln in s.haproxy.lines() if "/query/api/squids/7?fields" in ln][0]
    assert " 410 " in line and "st=410" in line and "dep=1" in line and "be=-" in line \
        and "fb=-" in line, line
    # the plan's own 410 (phase 10) keeps the query string as well
    s.set_phase(10)
    s.wait_phase(10)
    gone(send(s, "GET", "/query/api/squids/7?page=3"), "/query/api/seafoods/7?page=3")


def test_walks_keep_the_sunset_ahead():
    """The walks under load (System(sunset_ahead=True)) hold that no request
    fails in phases 8 and 9: on a day within 30 days of the sample's sunset,
    or past it, their copy of the plan moves the sunset a year ahead, and
    the agent accepts that copy; before, the copy is the plan unchanged."""
    import calendar
    import subprocess
    import harness

    for plan in (system.PLAN, os.path.join(system.EXAMPLES, "squid-api", "plan.yaml")):
        with open(plan) as f:
            text = f.read()
        sunsets = re.findall(r"\bsunset:\s*(\d{4}-\d{2}-\d{2})", text)
        assert sunsets, plan
        first = min(calendar.timegm(time.strptime(s, "%Y-%m-%d")) for s in sunsets)
        assert system.sunsets_ahead(text, now=first - 31 * 86400) == text
        late = first + 86400
        moved = system.sunsets_ahead(text, now=late)
        ahead = time.strftime("%Y-%m-%d", time.gmtime(late + 365 * 86400))
        assert re.findall(r"\bsunset:\s*(\d{4}-\d{2}-\d{2})", moved) == [ahead] * len(sunsets)
        d = tempfile.mkdtemp(prefix="cutover-sunset-ahead-")
        try:
            path = os.path.join(d, "plan.yaml")
            write_atomic(path, moved)
            r = subprocess.run([harness.agent_binary(), "--check", path], capture_output=True,
                               text=True, timeout=30)
            assert r.returncode == 0, r.stdout + r.stderr
        finally:
            shutil.rmtree(d)
