# SPDX-License-Identifier: Apache-2.0
"""Self-test of the sample shop (scripts/apps), without HAProxy: the four apps
(and the second plan's three), the replicator and the load generator, on free
loopback ports and temp dbs."""
import contextlib
import http.client
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

import harness
import http_once

APPS = os.path.join(harness.ROOT, "scripts", "apps")
ENTITY = {"old": "squids", "new": "seafoods"}


class App:
    def __init__(self, role, db, workdir):
        self.role, self.port = role, harness.free_port()
        self.proc = harness.Proc([sys.executable, os.path.join(APPS, "shop.py"), "--role", role,
                                  "--db", db, "--listen", "127.0.0.1:%d" % self.port],
                                 role, workdir=workdir)
        harness.wait_port("127.0.0.1", self.port, proc=self.proc.proc)
        self.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, path, body=None, raw=None, headers=None):
        """One request on a fresh connection: (status, http_once.Reply, parsed JSON or None)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        r = http_once.request(self.port, method, path, body=data, headers=headers)
        return r.status, r, r.json()


class Shop:
    """Both sides' apps (and optionally the replicator) in one temp dir."""

    def __init__(self, replicator=False, interval="0.02"):
        self.dir = tempfile.mkdtemp(prefix="cutover-apps-")
        self.db = {s: os.path.join(self.dir, s + ".db") for s in ("old", "new")}
        self.apps = {}
        self.rep = None
        try:
            for role in ("old-query", "old-command", "new-query", "new-command"):
                self.apps[role] = App(role, self.db[role.split("-")[0]], self.dir)
            if replicator:
                self.start_replicator(interval)
        except BaseException:
            self.stop()
            raise

    def __getitem__(self, role):
        return self.apps[role]

    def start_replicator(self, interval="0.02", *extra):
        self.rep = harness.Proc([sys.executable, os.path.join(APPS, "replicator.py"),
                                 "--old", self.db["old"], "--new", self.db["new"],
                                 "--interval", interval] + list(extra),
                                "replicator", workdir=self.dir)
        wait_for(lambda: self.rep.log().count("first sync") == 2 or None, "replicator start",
                 proc=self.rep)
        return self.rep

    def stop(self):
        codes = {}
        for p in [a.proc for a in self.apps.values()] + ([self.rep] if self.rep else []):
            codes[p.log_path] = p.stop()
        return codes


@contextlib.contextmanager
def shop(**kw):
    s = Shop(**kw)
    try:
        yield s
    finally:
        codes = s.stop()
        bad = {k: v for k, v in codes.items() if v != 0}
        assert not bad, "exit codes after SIGTERM: %s" % bad


def wait_for(fn, what, timeout=15.0, proc=None):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v is not None:
            return v
        if proc is not None and not proc.alive():
            raise AssertionError("%s: process exited; log:\n%s" % (what, proc.log()[-2000:]))
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def create(app, side, name="x", price=1):
    st, r, doc = app.call("POST", "/command/api/%s" % ENTITY[side], {"name": name, "price": price})
    assert st == 201, (st, doc)
    return doc


def seq(db):
    """High-water mark of a db's change log (AUTOINCREMENT survives pruning)."""
    with contextlib.closing(sqlite3.connect(db)) as c:
        row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
    return row[0] if row else 0


def crud(s, side):
    q, c, e = s[side + "-query"], s[side + "-command"], ENTITY[side]
    doc = create(c, side, "first", 12.5)
    eid = doc["id"]
    assert doc == {"id": eid, "name": "first", "price": 12.5}, doc
    st, r, got = q.call("GET", "/query/api/%s/%d?x=1" % (e, eid))
    assert (st, got, r.header("X-Served-By")) == (200, doc, side + "-query"), (st, got)
    assert r.header("X-Request-Path") == "/query/api/%s/%d?x=1" % (e, eid)
    st, r, got = c.call("PUT", "/command/api/%s/%d" % (e, eid), {"name": "second", "price": 3})
    assert (st, got, r.header("X-Served-By")) == (
        200, {"id": eid, "name": "second", "price": 3}, side + "-command"), (st, got)
    st, r, got = c.call("PATCH", "/command/api/%s/%d" % (e, eid), {"price": 4})
    assert (st, got) == (200, {"id": eid, "name": "second", "price": 4}), (st, got)
    st, r, got = q.call("GET", "/query/api/%s" % e)
    assert st == 200 and {"id": eid, "name": "second", "price": 4} in got, (st, got)
    st, r, got = q.call("HEAD", "/query/api/%s/%d" % (e, eid))
    assert st == 200 and int(r.header("Content-Length")) > 0 and got is None
    st, r, got = c.call("DELETE", "/command/api/%s/%d" % (e, eid))
    assert (st, got, r.header("Content-Length")) == (204, None, "0"), (st, got)
    for app, method, path in ((q, "GET", "/query/api/%s/%d" % (e, eid)),
                              (c, "DELETE", "/command/api/%s/%d" % (e, eid)),
                              (c, "PUT", "/command/api/%s/%d" % (e, eid))):
        st, r, got = app.call(method, path, {"name": "n", "price": 1})
        assert st == 404 and r.header("X-Served-By") == app.role, (method, path, st)
    # the other kind's methods and paths, and the other side's API
    other = ENTITY["new" if side == "old" else "old"]
    for app, method, path, want in (
            (q, "POST", "/query/api/%s" % e, 405), (q, "DELETE", "/query/api/%s/1" % e, 405),
            (c, "GET", "/command/api/%s" % e, 405), (c, "POST", "/command/api/%s/1" % e, 405),
            (q, "GET", "/command/api/%s" % e, 404), (c, "POST", "/query/api/%s" % e, 404),
            (q, "GET", "/query/api/%s" % other, 404), (c, "POST", "/command/api/%s" % other, 404),
            (q, "GET", "/query/api/%s/abc" % e, 404), (q, "GET", "/", 404)):
        st, r, got = app.call(method, path, {"name": "n", "price": 1})
        assert st == want and r.header("X-Served-By") == app.role, (app.role, method, path, st)
        assert "error" in got, got
    for raw in ('{"name":', "[1]", '{"name": "a"}', '{"name": "a", "price": -1}',
                '{"name": "a", "price": true}', '{"name": "", "price": 1}',
                '{"name": "a", "price": 1, "id": 5}', '{"name": "a", "price": NaN}'):
        st, r, got = c.call("POST", "/command/api/%s" % e, raw=raw)
        assert st == 400 and r.header("X-Served-By") == c.role, (raw, st, got)
    for app in (q, c):
        st, r, got = app.call("GET", "/healthz")
        assert st == 200 and r.header("X-Served-By") == app.role, (st, got)
    # HAProxy's unique id comes back; anything that is not an id does not
    rid = "7F000001:DE78_7F000001:A2E9_6B08F455_0BB7:7DC2"
    for sent, back in ((rid, rid), ("a b", None), ("x" * 200, None)):
        st, r, got = q.call("GET", "/query/api/%s" % e, headers={"X-Cutover-Id": sent})
        assert st == 200 and r.header("X-Cutover-Id") == back, (sent, r.header("X-Cutover-Id"))
    # keep-alive: three requests on one connection, each with Content-Length
    conn = http.client.HTTPConnection("127.0.0.1", q.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/query/api/%s?limit=5" % e)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200 and resp.getheader("Content-Length") and not resp.will_close
    finally:
        conn.close()


def test_crud_on_both_sides():
    with shop() as s:
        crud(s, "old")
        crud(s, "new")


def test_ids_are_disjoint_and_never_reused():
    with shop() as s:
        ids = {side: [create(s[side + "-command"], side)["id"] for _ in range(5)]
               for side in ("old", "new")}
        assert all(i % 2 == 1 for i in ids["old"]), ids
        assert all(i % 2 == 0 for i in ids["new"]), ids
        for side in ("old", "new"):
            last = ids[side][-1]
            st, _, _ = s[side + "-command"].call("DELETE", "/command/api/%s/%d"
                                                 % (ENTITY[side], last))
            assert st == 204
            again = create(s[side + "-command"], side)["id"]
            assert again > last, (side, last, again)


def replicates(s, src, dst):
    e_src, e_dst = ENTITY[src], ENTITY[dst]
    c, q = s[src + "-command"], s[dst + "-query"]

    def seen(eid, want_status, want=None):
        def check():
            st, _, got = q.call("GET", "/query/api/%s/%d" % (e_dst, eid))
            return True if st == want_status and (want is None or got == want) else None
        return check

    doc = create(c, src, "made-on-" + src, 7)
    wait_for(seen(doc["id"], 200, doc), "create %s->%s" % (src, dst))
    st, _, upd = c.call("PUT", "/command/api/%s/%d" % (e_src, doc["id"]), {"name": "u", "price": 8})
    assert st == 200
    wait_for(seen(doc["id"], 200, upd), "update %s->%s" % (src, dst))
    st, _, _ = c.call("DELETE", "/command/api/%s/%d" % (e_src, doc["id"]))
    assert st == 204
    wait_for(seen(doc["id"], 404), "delete %s->%s" % (src, dst))


def test_replication_old_to_new_and_back():
    with shop(replicator=True) as s:
        replicates(s, "old", "new")
        replicates(s, "new", "old")


def drain_once(s):
    out = subprocess.run([sys.executable, os.path.join(APPS, "replicator.py"), "--old",
                          s.db["old"], "--new", s.db["new"], "--drain-once"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_replication_does_not_ping_pong():
    with shop() as s:
        for side, other in (("old", "new"), ("new", "old")):
            eid = create(s[side + "-command"], side, "pp", 1)["id"]
            drain_once(s)
            before = seq(s.db[side]), seq(s.db[other])
            st, _, _ = s[side + "-command"].call("PUT", "/command/api/%s/%d" % (ENTITY[side], eid),
                                                 {"name": "pp2", "price": 2})
            assert st == 200
            for _ in range(3):  # a ping-pong would add changes on every run
                drain_once(s)
            after = seq(s.db[side]), seq(s.db[other])
            # one change where it was made, one where it was copied, no echo
            assert (after[0] - before[0], after[1] - before[1]) == (1, 1), (side, before, after)
            st, _, got = s[other + "-query"].call("GET", "/query/api/%s/%d" % (ENTITY[other], eid))
            assert (st, got) == (200, {"id": eid, "name": "pp2", "price": 2}), (st, got)


def test_concurrent_writes_to_both_sides_last_one_wins():
    """While the agents switch writes from OLD to NEW (phase 6), both sides take
    writes to one entity before the replicator copies either: a client's PUT
    on OLD, then its next PUT on NEW. Both sides end with the later write: a
    delete is not undone by an older update copied after it, nor a newer
    update by an older delete."""
    def put(side, eid, name):
        st, _, got = s[side + "-command"].call("PUT", "/command/api/%s/%d" % (ENTITY[side], eid),
                                               {"name": name, "price": 1})
        assert st == 200, (st, got)

    def on(side, eid):
        st, _, got = s[side + "-query"].call("GET", "/query/api/%s/%d" % (ENTITY[side], eid))
        return st, got["name"] if st == 200 else None

    with shop() as s:
        for first, then in (("old", "new"), ("new", "old")):
            eid = create(s[first + "-command"], first, "made", 1)["id"]
            drain_once(s)
            put(first, eid, "earlier on " + first)
            put(then, eid, "later on " + then)
            drain_once(s)
            assert [on(side, eid) for side in ("old", "new")] == [(200, "later on " + then)] * 2
            put(first, eid, "updated on " + first)
            st, _, _ = s[then + "-command"].call("DELETE", "/command/api/%s/%d"
                                                 % (ENTITY[then], eid))
            assert st == 204
            drain_once(s)
            assert [on(side, eid)[0] for side in ("old", "new")] == [404, 404], (first, then)
            # A write acknowledged after a delete the other side took wins too.
            eid = create(s[first + "-command"], first, "made", 1)["id"]
            drain_once(s)
            st, _, _ = s[then + "-command"].call("DELETE", "/command/api/%s/%d"
                                                 % (ENTITY[then], eid))
            assert st == 204
            put(first, eid, "after the delete on " + first)
            drain_once(s)
            assert [on(side, eid) for side in ("old", "new")] == \
                [(200, "after the delete on " + first)] * 2
            # The copies settled: another pass changes nothing on either side.
            before = seq(s.db["old"]), seq(s.db["new"])
            drain_once(s)
            assert (seq(s.db["old"]), seq(s.db["new"])) == before


def test_sigterm_drains_everything_then_resumes():
    with shop() as s:
        # A long idle interval: what it copies after its first sync, it copies
        # because SIGTERM made it drain.
        rep = s.start_replicator("60")
        olds = [create(s["old-command"], "old", "o%d" % i, i)["id"] for i in range(30)]
        news = [create(s["new-command"], "new", "n%d" % i, i)["id"] for i in range(10)]
        st, _, _ = s["old-command"].call("DELETE", "/command/api/squids/%d" % olds[0])
        assert st == 204
        assert rep.stop() == 0, rep.log()
        s.rep = None
        assert "stopped" in rep.log(), rep.log()
        for eid in olds[1:]:
            assert s["new-query"].call("GET", "/query/api/seafoods/%d" % eid)[0] == 200, eid
        assert s["new-query"].call("GET", "/query/api/seafoods/%d" % olds[0])[0] == 404
        for eid in news:
            assert s["old-query"].call("GET", "/query/api/squids/%d" % eid)[0] == 200, eid
        # While stopped, OLD takes a write; the next run resumes from its
        # persisted position (no second snapshot) and copies just that.
        late = create(s["old-command"], "old", "late", 1)["id"]
        err = drain_once(s)
        assert "first sync" not in err and "old->new applied 1 " in err, err
        assert s["new-query"].call("GET", "/query/api/seafoods/%d" % late)[0] == 200


def test_first_sync_copies_only_each_sides_own_rows():
    d = tempfile.mkdtemp(prefix="cutover-apps-")
    old, new = os.path.join(d, "old.db"), os.path.join(d, "new.db")
    sys.path.insert(0, APPS)
    import store
    for path, side, rows in ((old, "old", [(1, "squid", 1)]),
                             (new, "new", [(2, "tuna", 2), (3, "stale copy", 3)])):
        db = store.open_side(path, side)
        db.executemany("INSERT INTO %s (id, name, price) VALUES (?, ?, ?)" % store.table(side),
                       rows)
        db.close()
    # NEW holds a copy of OLD's id 3, which OLD no longer has: the first sync
    # must not bring it back into OLD.
    out = subprocess.run([sys.executable, os.path.join(APPS, "replicator.py"), "--old", old,
                          "--new", new, "--drain-once"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    with contextlib.closing(sqlite3.connect(old)) as c:
        assert c.execute("SELECT id, name, price FROM squids ORDER BY id").fetchall() == [
            (1, "squid", 1), (2, "tuna", 2)]
    with contextlib.closing(sqlite3.connect(new)) as c:
        assert (1, "squid", 1) in c.execute("SELECT id, name, price FROM seafoods").fetchall()


def run_load(*args, timeout=60):
    report = tempfile.mktemp(prefix="cutover-load-", suffix=".json")
    out = subprocess.run([sys.executable, os.path.join(APPS, "load.py"), "--report", report]
                         + list(args), capture_output=True, text=True, timeout=timeout)
    with open(report) as f:
        rep = json.load(f)
    os.unlink(report)
    return out.returncode, rep, out.stderr


def test_load_through_old_api_verified_on_new():
    with shop(replicator=True) as s:
        rc, rep, err = run_load("--url", s["old-query"].url, "--command-url", s["old-command"].url,
                                "--api", "old", "--rate", "200", "--duration", "4",
                                "--clients", "6", "--verify-url", s["new-query"].url)
        assert rc == 0 and rep["ok"], (err, rep["failure_samples"][:3], rep["verify"])
        assert rep["failures"] == 0 and rep["lost_writes"] == 0
        assert 0 < rep["requests"] <= 800, rep["requests"]
        assert set(rep["by_served_by"]) == {"old-query", "old-command"}, rep["by_served_by"]
        assert set(rep["by_op"]) == {"create", "update", "delete", "read", "list"}, rep["by_op"]
        assert rep["verify"]["checked"] > 0 and rep["entities"]["deleted"] > 0, rep["entities"]


def test_load_counts_failures_lost_writes_and_phases():
    with shop() as s:
        d = tempfile.mkdtemp(prefix="cutover-load-")
        api, phase = os.path.join(d, "api"), os.path.join(d, "phase")
        for path, text in ((api, "old\n"), (phase, "8\n")):
            with open(path, "w") as f:
                f.write(text)
        # Against the NEW apps the old API is a routing mistake (404 each);
        # verifying against the OLD query app finds no seafood: all lost.
        p = subprocess.Popen([sys.executable, os.path.join(APPS, "load.py"),
                              "--url", s["new-query"].url, "--command-url", s["new-command"].url,
                              "--api", "auto", "--api-switch-file", api, "--phase-file", phase,
                              "--rate", "150", "--duration", "3", "--clients", "4",
                              "--settle", "0.2", "--verify-url", s["old-query"].url,
                              "--verify-patience", "0.5",
                              "--report", os.path.join(d, "report.json"),
                              "--requests-log", os.path.join(d, "requests.jsonl")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def sent_some():
            try:
                with open(os.path.join(d, "requests.jsonl")) as f:
                    return True if sum(1 for _ in f) >= 20 else None
            except OSError:
                return None
        wait_for(sent_some, "load.py's first requests")
        for path, text in ((phase, "9\n"), (api, "new\n")):
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
        _, err = p.communicate(timeout=60)
        with open(os.path.join(d, "report.json")) as f:
            rep = json.load(f)
        assert p.returncode == 1 and not rep["ok"], err
        old, new = rep["by_api"]["old"], rep["by_api"]["new"]
        assert old["requests"] > 0 and old["failures"] == old["requests"], old
        assert new["requests"] > 0 and new["failures"] == 0, new
        assert rep["failures"] == old["requests"] and rep["failure_samples"], rep["failures"]
        assert set(rep["per_phase"]) <= {"8", "9"} and "9" in rep["per_phase"], rep["per_phase"]
        assert sum(v["requests"] for v in rep["per_phase"].values()) == rep["requests"]
        live = rep["entities"]["live"]
        assert live > 0 and rep["verify"]["lost"] == live, (live, rep["verify"])


def test_single_api_roles():
    """The second plan's apps: one app serves its API's reads and writes,
    the photos/images sub-resource, and admin counts the OLD db's squids;
    load.py --layout single through old-api, verified on new-api."""
    d = tempfile.mkdtemp(prefix="cutover-apps-")
    db = {s: os.path.join(d, s + ".db") for s in ("old", "new")}
    apps = {r: App(r, db[side], d) for r, side in
            (("old-api", "old"), ("new-api", "new"), ("admin", "old"))}
    rep = harness.Proc([sys.executable, os.path.join(APPS, "replicator.py"), "--old", db["old"],
                        "--new", db["new"], "--interval", "0.02"], "replicator", workdir=d)
    try:
        old, new = apps["old-api"], apps["new-api"]
        st, r, doc = old.call("POST", "/api/squids", {"name": "a", "price": 1})
        assert (st, doc["id"], r.header("x-served-by")) == (201, 1, "old-api"), (st, doc)
        assert old.call("PUT", "/api/squids/1", {"name": "b", "price": 2})[0] == 200
        assert old.call("GET", "/api/squids/1")[2] == {"id": 1, "name": "b", "price": 2}
        st, r, _ = old.call("POST", "/api/squids/1")
        assert (st, r.header("allow")) == (405, "GET, HEAD, PUT, PATCH, DELETE"), st
        assert old.call("GET", "/api/squids/1/photos")[:3:2] == (
            200, [{"url": "/media/photos/1/1.jpg"}])
        assert old.call("GET", "/api/squids/9/photos")[0] == 404
        assert old.call("GET", "/api/squids/1/images")[0] == 404
        assert old.call("GET", "/query/api/squids/1")[0] == 404
        assert apps["admin"].call("GET", "/stats")[:3:2] == (200, {"squids": 1})
        assert apps["admin"].call("GET", "/api/squids")[0] == 404
        wait_for(lambda: new.call("GET", "/api/seafoods/1/images")[0] == 200 or None,
                 "replication of squid 1", proc=rep)
        rc, out, err = run_load("--url", old.url, "--layout", "single", "--api", "old",
                                "--rate", "150", "--duration", "3", "--clients", "4",
                                "--verify-url", new.url, "--verify-api", "new")
        assert rc == 0 and out["failures"] == 0 and out["lost_writes"] == 0, (
            err, out["failure_samples"][:3], out["verify"])
        assert set(out["by_served_by"]) == {"old-api"}, out["by_served_by"]
        assert out["verify"]["checked"] > 0, out["verify"]
    finally:
        codes = [p.stop() for p in [a.proc for a in apps.values()] + [rep]]
    assert codes == [0] * 4, codes
