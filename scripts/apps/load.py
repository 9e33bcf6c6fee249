#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Bounded load generator for the sample shop, used by the e2e and faults tests.

  load.py --url http://127.0.0.1:8080 --rate 300 --duration 30 [--clients 8]
          [--api old|new|auto] [--api-switch-file F] [--phase-file F]
          [--command-url URL] [--settle 0] [--layout split|single]
          [--verify-url URL [--verify-api new|old] [--verify-patience 5]]
          [--report FILE] [--requests-log FILE] [--max-requests N]
          [--timeout 10] [--client-id load] [--seed 1]

Each client thread owns one HTTP/1.1 keep-alive connection per base URL and
sends at rate/clients requests per second until --duration has passed or
--max-requests (default rate*duration) have been sent, whichever comes first.
A connection idle for more than IDLE_REUSE_S is closed and a new one opened,
so the client never races a proxy closing idle connections; nothing is ever
retried: every request counts once.

Mix: create (POST) 20%, update (PUT) 20%, delete 10%, read by id 35%, list
15%. A client reads, updates and deletes only entities it created itself,
each client sending its own X-Api-Client (`<client-id>-<n>`). By default it
touches an entity again at once after its write: the sample plan's
read_your_writes sends its reads where its writes went while replication
between OLD and NEW catches up. --settle S waits until the last acknowledged
write to the entity is S seconds old instead (with nothing settled it
creates): for a plan without read_your_writes (the second plan), or a run
through agent outages (HAProxy's fallback keeps no client state).

API: `old` uses /query/api/squids and /command/api/squids, `new` uses
seafoods, `auto` reads the choice from --api-switch-file (its first word is
`old` or `new`; missing or empty means old), polled every 20 ms; the walk
writes `new` there at phase 9. --phase-file is polled the same way and its
first line tags every request (per-phase counts in the report).
--command-url sends writes to another base URL (apps run without a proxy).
--layout single: the API of conf/examples/squid-api/plan.yaml instead,
/api/squids or /api/seafoods for reads and writes alike, served by *-api apps.

A request FAILS when: the connection fails or times out; the status is not
the expected one (create 201, update 200, delete 204, read 200, list 200);
the body is not the expected JSON (create and update echo the name and price
sent, a create brings an id no create returned before, a read carries the id
asked for, a list is an array); or the answer lacks X-Served-By or comes from
the wrong kind of app (writes from a *-command app, reads from a *-query app).
NOT a failure, but counted: a read whose body differs from the last
acknowledged state (`stale_reads`), and responses carrying a Deprecation
header (`deprecated`).
A write that failed leaves its entity `uncertain`: it is no longer used and
not verified.

Verification (--verify-url, a base URL where reads of --verify-api answer,
default the NEW API): every entity whose last acknowledged write was a create
or update must read back (GET /query/api/<entity>/{id}) with that name and
price, and every acknowledged delete must read 404 (else `resurrected`).
Mismatches are re-checked for up to --verify-patience seconds (default 5;
replication may still be copying) before they count as lost; lost writes are also counted by the phase
their last acknowledged write was made in. Verify only once everything that
should reach the verified db has (e.g. the replicator drained).

Each request's record (--requests-log, failure samples) has its time, phase,
API, op, method, path, status, X-Served-By, latency, error, and the
X-Cutover-Id the app echoed (HAProxy's unique id: the key to its log line).

The report (JSON, --report or stdout) holds totals, failures with samples,
per-op, per-status, per-served-by, per-phase and per-second counts, latency
percentiles and the verification. SIGTERM/SIGINT end the load early; the
verification and the report still happen. Exit 0 when there was no failure
and no lost write, 1 otherwise.
"""
import argparse
import http.client
import itertools
import json
import math
import os
import random
import signal
import sys
import threading
import time
import urllib.parse

IDLE_REUSE_S = 0.5
POLL_S = 0.02
LIVE_CAP = 40          # entities a client keeps alive; above it, it deletes
FAILURE_SAMPLES = 30
MIX = (("create", 20), ("update", 20), ("delete", 10), ("read", 35), ("list", 15))
EXPECTED = {"create": 201, "update": 200, "delete": 204, "read": 200, "list": 200}
WRITES = ("create", "update", "delete")


class Control:
    """Current API choice and phase label, read from files by one poller thread."""

    def __init__(self, api, api_file, phase_file):
        self.fixed_api, self.api_file, self.phase_file = api, api_file, phase_file
        self.api = "old" if api == "auto" else api
        self.phase = None
        self.done = threading.Event()
        self.poll()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def poll(self):
        if self.fixed_api == "auto":
            words = _read_first(self.api_file).split()
            self.api = "new" if words and words[0] == "new" else "old"
        if self.phase_file:
            self.phase = _read_first(self.phase_file).strip() or None

    def loop(self):
        while not self.done.wait(POLL_S):
            self.poll()


def _read_first(path):
    try:
        with open(path) as f:
            return f.readline()
    except OSError:
        return ""


class Entity:
    """What a client knows of one entity: its last acknowledged state, when
    (monotonic time) and in which phase that write was acknowledged."""
    __slots__ = ("eid", "name", "price", "state", "acked", "phase")

    def __init__(self, eid, name, price, acked, phase):
        self.eid, self.name, self.price, self.acked, self.phase = eid, name, price, acked, phase
        self.state = "live"  # live | deleted | uncertain


class Recorder:
    """Every request, in memory (and as JSON lines in --requests-log)."""

    def __init__(self, log_path):
        self.lock = threading.Lock()
        self.records = []
        self.log = open(log_path, "w", buffering=1) if log_path else None  # tail-able

    def add(self, rec):
        with self.lock:
            self.records.append(rec)
            if self.log:
                self.log.write(json.dumps(rec) + "\n")

    def close(self):
        if self.log:
            self.log.close()


class Endpoint:
    """A keep-alive HTTP/1.1 connection to one base URL, renewed when idle."""

    def __init__(self, base, timeout):
        u = urllib.parse.urlsplit(base)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit("load.py: only http://HOST:PORT URLs are supported: %r" % base)
        self.host, self.port = u.hostname, u.port or 80
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.conn = None
        self.last_used = 0.0

    def request(self, method, path, body, headers):
        now = time.monotonic()
        if self.conn is not None and now - self.last_used > IDLE_REUSE_S:
            self.close()
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request(method, self.prefix + path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        self.last_used = time.monotonic()
        if resp.will_close:
            self.close()
        return resp, data

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def paths(api, layout):
    """(read path, write path) of an API in a layout."""
    e = "squids" if api == "old" else "seafoods"
    if layout == "single":
        return "/api/" + e, "/api/" + e
    return "/query/api/" + e, "/command/api/" + e


class Client(threading.Thread):
    def __init__(self, n, args, control, recorder, budget, t0, stop, ids):
        super().__init__(name="client-%d" % n, daemon=True)
        self.n, self.args, self.control, self.rec = n, args, control, recorder
        self.budget, self.t0, self.stop = budget, t0, stop
        self.ids = ids  # every id any client was given: id -> client number
        self.rng = random.Random(args.seed * 1000 + n)
        self.query = Endpoint(args.url, args.timeout)
        self.command = Endpoint(args.command_url or args.url, args.timeout)
        self.entities = {}
        self.live = []
        self.headers = {"X-Api-Client": "%s-%d" % (args.client_id, n),
                        "Content-Type": "application/json"}
        self.stale_reads = self.deprecated = 0
        self.behind = 0.0

    def run(self):
        interval = self.args.clients / self.args.rate
        next_t = self.t0 + interval * self.n / self.args.clients
        end = self.t0 + self.args.duration
        try:
            while True:
                now = time.monotonic()
                if next_t >= end:
                    break
                if next_t > now and self.stop.wait(next_t - now):
                    break
                if self.stop.is_set() or next(self.budget, None) is None:
                    break
                self.one()
                next_t += interval
                lag = time.monotonic() - next_t
                if lag > 1.0:  # never burst to catch up more than a second
                    self.behind += lag
                    next_t = time.monotonic()
        finally:
            self.query.close()
            self.command.close()

    def pick(self):
        now = time.monotonic()
        op = self.rng.choices([m[0] for m in MIX], [m[1] for m in MIX])[0]
        if len(self.live) >= LIVE_CAP and op == "create":
            op = "delete"
        if op in ("update", "delete", "read"):
            settled = [e for e in self.live if now - e.acked >= self.args.settle]
            if not settled:
                return ("create" if len(self.live) < LIVE_CAP else "list"), None
            return op, self.rng.choice(settled)
        return op, None

    def one(self):
        op, ent = self.pick()
        api, phase = self.control.api, self.control.phase
        qpath, cpath = paths(api, self.args.layout)
        body = None
        if op == "create":
            method, path = "POST", cpath
            want = {"name": "%s-%d-%d" % (self.args.client_id, self.n, self.rng.randrange(10**9)),
                    "price": self.rng.randrange(1, 100000) / 100}
            body = json.dumps(want).encode()
        elif op == "update":
            method, path = "PUT", "%s/%d" % (cpath, ent.eid)
            want = {"name": ent.name.split("~")[0] + "~" + str(self.rng.randrange(10**6)),
                    "price": self.rng.randrange(1, 100000) / 100}
            body = json.dumps(want).encode()
        elif op == "delete":
            method, path, want = "DELETE", "%s/%d" % (cpath, ent.eid), None
        elif op == "read":
            method, path, want = "GET", "%s/%d" % (qpath, ent.eid), None
        else:
            method, path, want = "GET", qpath + "?limit=20", None
        endpoint = self.command if op in WRITES else self.query
        start = time.monotonic()
        status, served, error, data, deprecated, rid = None, None, None, b"", False, None
        try:
            resp, data = endpoint.request(method, path, body, self.headers)
            status = resp.status
            served = resp.getheader("X-Served-By")
            deprecated = resp.getheader("Deprecation") is not None
            rid = resp.getheader("X-Cutover-Id")
        except Exception as e:  # noqa: BLE001 - every transport error is a failure
            error = "%s: %s" % (type(e).__name__, e)
        done = time.monotonic()
        if error is None:
            error = self.judge(op, ent, want, status, served, data, done, phase)
        elif op in ("update", "delete"):
            self._forget(ent)
        if deprecated:
            self.deprecated += 1
        self.rec.add({"t": round(done - self.t0, 4), "phase": phase, "api": api,
                      "client": self.n, "op": op, "method": method, "path": path,
                      "status": status, "served_by": served, "request_id": rid,
                      "latency_ms": round((done - start) * 1000, 2), "error": error})

    def judge(self, op, ent, want, status, served, data, now, phase):
        """Checks one answer, updates what the client knows; returns an error or None."""
        if status != EXPECTED[op]:
            if op in ("update", "delete"):
                self._forget(ent)
            return "status %s, expected %d: %s" % (status, EXPECTED[op], data[:200].decode(
                "utf-8", "replace"))
        kind = "api" if self.args.layout == "single" else (
            "command" if op in WRITES else "query")
        if not served or not served.endswith("-" + kind):
            if op in ("update", "delete"):
                self._forget(ent)
            return "X-Served-By %r, expected a %s app" % (served, kind)
        if op == "delete":
            ent.state, ent.acked, ent.phase = "deleted", now, phase
            self.live.remove(ent)
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        if op == "list":
            return None if isinstance(doc, list) else "list body is not a JSON array"
        if not isinstance(doc, dict):
            if op == "update":
                self._forget(ent)
            return "body is not a JSON object: %r" % data[:200]
        if op == "create":
            eid = doc.get("id")
            if not isinstance(eid, int) or doc.get("name") != want["name"] \
                    or doc.get("price") != want["price"]:
                return "create answered %r for %r" % (doc, want)
            if self.ids.setdefault(eid, self.n) != self.n or eid in self.entities:
                return "create returned id %d, already given to client %d" % (eid, self.ids[eid])
            e = Entity(eid, want["name"], want["price"], now, phase)
            self.entities[eid] = e
            self.live.append(e)
            return None
        if op == "update":
            if doc.get("id") != ent.eid or doc.get("name") != want["name"] \
                    or doc.get("price") != want["price"]:
                self._forget(ent)
                return "update answered %r for %r" % (doc, want)
            ent.name, ent.price, ent.acked, ent.phase = want["name"], want["price"], now, phase
            return None
        if doc.get("id") != ent.eid:  # read
            return "read of %d answered %r" % (ent.eid, doc)
        if doc.get("name") != ent.name or doc.get("price") != ent.price:
            self.stale_reads += 1
        return None

    def _forget(self, ent):
        """After a failed write its entity's state is unknown: stop using it."""
        if ent is not None and ent.state == "live":
            ent.state = "uncertain"
            self.live.remove(ent)


def verify(base, api, layout, entities, timeout, patience, deadline):
    """Reads every tracked entity back through `api`; returns a summary."""
    pending = [e for e in entities if e.state in ("live", "deleted")]
    result = {"url": base, "api": api, "checked": len(pending), "lost": 0, "resurrected": 0,
              "errors": 0, "lost_by_phase": {}, "samples": []}
    if not pending:
        return result
    retry_until = time.monotonic() + patience
    qpath = paths(api, layout)[0]
    bad = _verify_round(base, qpath, pending, timeout, deadline)
    while bad and time.monotonic() < min(retry_until, deadline):
        time.sleep(0.1)
        bad = _verify_round(base, qpath, [e for e, _ in bad], timeout, deadline)
    for e, why in bad:
        key = "errors" if why.startswith("error") else (
            "resurrected" if e.state == "deleted" else "lost")
        result[key] += 1
        if key != "errors":
            p = str(e.phase)
            result["lost_by_phase"][p] = result["lost_by_phase"].get(p, 0) + 1
        if len(result["samples"]) < FAILURE_SAMPLES:
            result["samples"].append({"id": e.eid, "phase": e.phase, "got": why,
                                      "expected": e.state if e.state == "deleted"
                                      else {"name": e.name, "price": e.price}})
    return result


def _verify_round(base, qpath, ents, timeout, deadline):
    """Checks ents with 4 connections; returns [(entity, what is wrong)]."""
    out, lock = [], threading.Lock()
    chunks = [ents[i::4] for i in range(4)]

    def work(chunk):
        ep = Endpoint(base, timeout)
        try:
            for e in chunk:
                why = None
                if time.monotonic() >= deadline:
                    why = "error: verification deadline passed"
                else:
                    try:
                        resp, data = ep.request("GET", "%s/%d" % (qpath, e.eid), None, {})
                        if e.state == "deleted":
                            if resp.status != 404:
                                why = "status %d: %s" % (resp.status, data[:200].decode())
                        elif resp.status != 200:
                            why = "status %d: %s" % (resp.status, data[:200].decode())
                        else:
                            doc = json.loads(data)
                            if doc.get("name") != e.name or doc.get("price") != e.price:
                                why = "got %r" % doc
                    except Exception as ex:  # noqa: BLE001
                        why = "error: %s: %s" % (type(ex).__name__, ex)
                if why:
                    with lock:
                        out.append((e, why))
        finally:
            ep.close()

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def summarize(records, clients, elapsed, args):
    fails = [r for r in records if r["error"]]
    def bump(d, k, failed):
        c = d.setdefault(str(k), {"requests": 0, "failures": 0})
        c["requests"] += 1
        c["failures"] += failed
    by_op, by_status, by_served, by_api, per_phase, per_second = {}, {}, {}, {}, {}, {}
    for r in records:
        f = 1 if r["error"] else 0
        bump(by_op, r["op"], f)
        bump(by_status, r["status"] if r["status"] is not None else "none", f)
        bump(by_served, r["served_by"] or "none", f)
        bump(by_api, r["api"], f)
        bump(per_second, int(r["t"]), f)
        if args.phase_file:
            p = per_phase.setdefault(str(r["phase"]), {"requests": 0, "failures": 0,
                                                       "served_by": {}})
            p["requests"] += 1
            p["failures"] += f
            sb = r["served_by"] or "none"
            p["served_by"][sb] = p["served_by"].get(sb, 0) + 1
    lat = sorted(r["latency_ms"] for r in records)
    ents = [e for c in clients for e in c.entities.values()]
    return {
        "requests": len(records),
        "failures": len(fails),
        "elapsed_s": round(elapsed, 3),
        "rate_achieved": round(len(records) / elapsed, 1) if elapsed > 0 else None,
        "behind_s": round(sum(c.behind for c in clients), 3),
        "by_op": by_op, "by_status": by_status, "by_served_by": by_served, "by_api": by_api,
        "per_phase": per_phase if args.phase_file else None,
        "per_second": [[int(k), v["requests"], v["failures"]]
                       for k, v in sorted(per_second.items(), key=lambda kv: int(kv[0]))],
        "latency_ms": {"p50": percentile(lat, 50), "p90": percentile(lat, 90),
                       "p99": percentile(lat, 99), "max": lat[-1] if lat else None},
        "stale_reads": sum(c.stale_reads for c in clients),
        "deprecated": sum(c.deprecated for c in clients),
        "entities": {s: sum(1 for e in ents if e.state == s)
                     for s in ("live", "deleted", "uncertain")},
        "failure_samples": fails[:FAILURE_SAMPLES],
    }


def main():
    ap = argparse.ArgumentParser(description="bounded load for the cutover sample shop")
    ap.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--command-url", help="base URL for writes (default: --url)")
    ap.add_argument("--rate", type=float, required=True, help="requests per second, all clients")
    ap.add_argument("--duration", type=float, required=True, help="seconds of load")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-requests", type=int, help="default: rate * duration")
    ap.add_argument("--api", choices=("old", "new", "auto"), default="old")
    ap.add_argument("--layout", choices=("split", "single"), default="split",
                    help="split: /query/api and /command/api (the sample); single: /api")
    ap.add_argument("--api-switch-file", help="with --api auto: holds `old` or `new`")
    ap.add_argument("--phase-file", help="its first line tags each request")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds after a write before the entity is touched again "
                         "(0: at once; for plans without read_your_writes, or runs "
                         "through agent outages)")
    ap.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    ap.add_argument("--verify-url", help="base URL where the --verify-api reads answer")
    ap.add_argument("--verify-api", choices=("old", "new"), default="new",
                    help="API the verification reads through (default new: seafoods)")
    ap.add_argument("--verify-patience", type=float, default=5.0,
                    help="seconds a mismatch is re-checked before it counts as lost")
    ap.add_argument("--verify-timeout", type=float, default=60.0,
                    help="bound on the whole verification, seconds")
    ap.add_argument("--report", help="write the JSON report here (default: stdout)")
    ap.add_argument("--requests-log", help="write every request here, one JSON line each")
    ap.add_argument("--client-id", default="load", help="X-Api-Client prefix")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.rate <= 0 or args.duration <= 0 or args.clients < 1:
        ap.error("--rate, --duration and --clients must be positive")
    if args.api == "auto" and not args.api_switch_file:
        ap.error("--api auto needs --api-switch-file")
    max_requests = args.max_requests or max(1, math.ceil(args.rate * args.duration))

    control = Control(args.api, args.api_switch_file, args.phase_file)
    recorder = Recorder(args.requests_log)
    budget = itertools.islice(itertools.count(), max_requests)  # next() is atomic
    stop = threading.Event()  # SIGTERM/SIGINT: stop sending, still verify and report
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: stop.set())
    t0 = time.monotonic()
    ids = {}  # dict.setdefault is atomic: a duplicate id cannot slip through
    clients = [Client(n, args, control, recorder, budget, t0, stop, ids)
               for n in range(args.clients)]
    for c in clients:
        c.start()
    for c in clients:  # each stops by itself: duration, then at most one request's timeout
        c.join(args.duration + args.timeout + 5)
    elapsed = time.monotonic() - t0
    control.done.set()
    stuck = sum(1 for c in clients if c.is_alive())
    with recorder.lock:
        records = list(recorder.records)
    recorder.close()

    report = summarize(records, clients, elapsed, args)
    report["config"] = {"url": args.url, "command_url": args.command_url, "rate": args.rate,
                        "duration": args.duration, "clients": args.clients, "api": args.api,
                        "max_requests": max_requests, "settle": args.settle}
    report["stuck_clients"] = stuck
    report["interrupted"] = stop.is_set()
    report["verify"] = None
    if args.verify_url:
        ents = [e for c in clients for e in list(c.entities.values())]
        report["verify"] = verify(args.verify_url, args.verify_api, args.layout, ents, args.timeout,
                                  args.verify_patience,
                                  time.monotonic() + args.verify_timeout)
    v = report["verify"] or {}
    report["lost_writes"] = v.get("lost", 0) + v.get("resurrected", 0)
    report["ok"] = (report["failures"] == 0 and report["lost_writes"] == 0
                    and not v.get("errors") and not stuck)
    text = json.dumps(report, indent=1)
    if args.report:
        with open(args.report + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(args.report + ".tmp", args.report)
    else:
        print(text)
    print("load: %d requests in %.1fs (%.0f/s), %d failures, %d lost writes%s"
          % (report["requests"], elapsed, report["rate_achieved"] or 0, report["failures"],
             report["lost_writes"],
             ", verified %d" % v["checked"] if v else ""), file=sys.stderr)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
