# SPDX-License-Identifier: Apache-2.0
"""What the sample plan (conf/cutover.yaml) does with a request in each of
its phases 1-12: the routing table of docs/contracts.md, written out here
independently of the plan file and of the agent, so that the suites can
hold both to it. The C unit tests keep tables of their own."""
import re
import time

PHASES = range(1, 13)
# The OLD API's `deprecation:` block (both squids routes), as the headers
# carry it: `date -u -d 2026-12-01 +%s`, and 2027-06-30T00:00:00Z written
# as an IMF-fixdate by hand.
DEPRECATION = "@1796083200"
SUNSET = "Wed, 30 Jun 2027 00:00:00 GMT"
SUNSET_EPOCH = 1814313600
POLICY = "https://example.com/api/deprecation"
_DOT_SEGMENT = re.compile(r"(^|/)(\.|%2e){1,2}(/|$)", re.I)


def _successor(path, old, new):
    return new + path[len(old):]


def expected(phase, method, path, now=None):
    """The agent's decision for one request: a dict with route (the plan's
    route name or None), backend (or None), path (the rewrite or None),
    status (the proxy answers itself: 404, 410, 400; or None), deprecated,
    link (the successor path of a 410), and served_by (the app role that
    serves it, "" when the proxy answers). From the sunset on (the clock of
    now, seconds since the epoch, default the real one), a deprecated route
    is the agent's 410 with its successor as the link."""
    p = path.split("?", 1)[0]
    e = {"route": None, "backend": None, "path": None, "status": None,
         "deprecated": False, "link": None}
    if p.startswith("/query/api/squids"):
        e["route"] = "squids-query"
        new = _successor(p, "/query/api/squids", "/query/api/seafoods")
        if phase <= 3:
            e["backend"] = "old_query"
        elif phase <= 9:
            e.update(backend="new_query", path=new, deprecated=phase >= 8)
        else:
            e.update(status=410, link=new)
    elif p.startswith("/command/api/squids"):
        e["route"] = "squids-command"
        new = _successor(p, "/command/api/squids", "/command/api/seafoods")
        if phase <= 5:
            e["backend"] = "old_command"
        elif phase <= 9:
            e.update(backend="new_command", path=new, deprecated=phase >= 8)
        else:
            e.update(status=410, link=new)
    elif p.startswith("/query/api/seafoods"):
        e["route"] = "seafoods-query"
        if phase <= 7:
            e["status"] = 404
        else:
            e["backend"] = "new_query"
    elif p.startswith("/command/api/seafoods"):
        e["route"] = "seafoods-command"
        if phase <= 7:
            e["status"] = 404
        else:
            e["backend"] = "new_command"
    elif p.startswith("/query/"):
        e.update(route="query", backend="old_query" if phase <= 3 else "new_query")
    elif p.startswith("/command/"):
        e.update(route="command", backend="old_command" if phase <= 5 else "new_command")
    if e["deprecated"] and (time.time() if now is None else now) >= SUNSET_EPOCH:
        e.update(status=410, backend=None, link=e["path"], path=None)
    # A rewrite or link that would carry a dot segment is refused: 400.
    if any(x and _DOT_SEGMENT.search(x) for x in (e["path"], e["link"])):
        e.update(status=400, backend=None, path=None, link=None)
    # HAProxy's default backend (the OLD query app) serves the rest.
    e["served_by"] = (e["backend"] or ("old_query" if e["status"] is None else "")).replace("_", "-")
    return e


def successor_bytes(raw_path):
    """A squids path's NEW name, as bytes: the rewrite the plan makes of
    /query/api/squids... and /command/api/squids... (other paths unchanged)."""
    return re.sub(rb"^/(query|command)/api/squids", rb"/\1/api/seafoods", raw_path)
