#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The sample shop: one of its four apps, an HTTP/1.1 JSON service on SQLite.

  shop.py --role old-query|old-command|new-query|new-command|old-api|new-api|admin
          --db FILE --listen HOST:PORT [--pidfile FILE] [--access-log FILE]

OLD roles serve squids from the OLD db, NEW roles serve seafoods from the NEW
db (scripts/apps/store.py holds the schema and the id rule: odd ids on OLD,
even ids on NEW). A query app answers only reads of its API, a command app
only writes:

  GET    /query/api/<e>            200, JSON array ordered by id (?limit=1..1000,
                                   default 100; ?after=ID for the next page),
                                   with its own pagination Link header:
                                   <...?limit=N>; rel="first", and when the
                                   page is full <...?after=ID&limit=N>; rel="next"
  GET    /query/api/<e>/<id>       200 entity | 404
  POST   /command/api/<e>          {"name": str, "price": number >= 0} -> 201 entity
  PUT    /command/api/<e>/<id>     same body -> 200 entity | 404
  PATCH  /command/api/<e>/<id>     either field -> 200 entity | 404
  DELETE /command/api/<e>/<id>     204 | 404
  GET    /healthz                  200 (HAProxy's health check; checks the db)

The roles old-api and new-api serve the second plan's API
(conf/examples/squid-api/plan.yaml), one app for reads and writes, told apart
by method, under /api/<e> instead of /query/api/<e> and /command/api/<e>,
plus a sub-resource (photos on OLD, images on NEW):

  GET|HEAD /api/<e>, /api/<e>/<id>   as the query app
  POST /api/<e>, PUT|PATCH|DELETE /api/<e>/<id>   as the command app
  GET    /api/squids/<id>/photos     (old-api) 200 array | 404
  GET    /api/seafoods/<id>/images   (new-api) 200 array | 404

The role admin (the same plan's admin host) answers GET /stats with the
number of squids in the OLD db, and /healthz.

HEAD is served wherever GET is. A method the app does not serve on its own
path gets 405 with Allow; any other path gets 404, so a request routed to the
wrong app shows up instead of being served. A body that is not JSON, or not
the fields above, gets 400. Every response carries X-Served-By: <role>, and
echoes the request's X-Cutover-Id (HAProxy's unique id) when it has a sane
one, so a client can find its request in HAProxy's log, and X-Request-Path:
the request target as the app received it (after any rewrite by the proxy),
when it is printable ASCII of at most 2048 bytes.
SIGTERM/SIGINT stop it (exit 0).
"""
import argparse
import http.server
import json
import math
import os
import re
import signal
import socket
import sqlite3
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import store  # noqa: E402

ROLES = ("old-query", "old-command", "new-query", "new-command", "old-api", "new-api", "admin")
SUBRESOURCE = {"old": "photos", "new": "images"}  # /api/<e>/<id>/<this> on *-api
MAX_BODY = 64 * 1024
MAX_NAME = 200
LIST_DEFAULT, LIST_MAX = 100, 1000
# Idle keep-alive connections are closed after this; keep it above HAProxy's
# server-side idle time so HAProxy, not the app, ends idle connections.
IDLE_TIMEOUT_S = 300
REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
PRINTABLE_TARGET = re.compile(r"[!-~]{1,2048}")


class BadRequest(Exception):
    pass


def parse_entity(body, partial):
    """Validated {"name", "price"} from a request body; raises BadRequest."""
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("invalid JSON: %s" % e)
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(doc) - {"name", "price"}
    if unknown:
        raise BadRequest("unknown field(s): %s" % ", ".join(sorted(unknown)))
    if not partial and set(doc) != {"name", "price"}:
        raise BadRequest("name and price are required")
    if partial and not doc:
        raise BadRequest("name or price is required")
    if "name" in doc:
        name = doc["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise BadRequest("name must be a non-empty string of at most %d characters"
                             % MAX_NAME)
    if "price" in doc:
        price = doc["price"]
        if (isinstance(price, bool) or not isinstance(price, (int, float))
                or not math.isfinite(price) or price < 0 or abs(price) > 1e15):
            raise BadRequest("price must be a finite number >= 0")
    return doc


def _reject_constant(name):
    raise ValueError("%s is not a number" % name)


class Shop:
    """The data side of one app: role, table and a connection per thread."""

    def __init__(self, role, db_path):
        self.role = role
        self.db_path = db_path
        self.local = threading.local()
        # admin: the OLD db's numbers
        self.side, self.kind = ("old", "admin") if role == "admin" else role.split("-")
        store.open_side(db_path, self.side).close()
        self.table = store.table(self.side)
        base = ("/api/%s" if self.kind in ("api", "admin") else "/%s/api/%%s" % self.kind) \
            % self.table
        self.collection = base
        self.item = re.compile(re.escape(base) + r"/([0-9]{1,18})")
        self.sub = re.compile(re.escape(base) + r"/([0-9]{1,18})/" + SUBRESOURCE[self.side])

    def db(self):
        conn = getattr(self.local, "db", None)
        if conn is None:
            conn = self.local.db = store.connect(self.db_path)
        return conn

    def get(self, eid):
        row = self.db().execute("SELECT id, name, price FROM %s WHERE id = ?" % self.table,
                                (eid,)).fetchone()
        return _entity(row) if row else None

    def list(self, after, limit):
        rows = self.db().execute(
            "SELECT id, name, price FROM %s WHERE id > ? ORDER BY id LIMIT ?" % self.table,
            (after, limit)).fetchall()
        return [_entity(r) for r in rows]

    def create(self, doc):
        def write(db):
            eid = store.allocate_id(db)
            return store.write_row(db, self.side, eid, doc, insert=True)
        return _entity(self.write(write))

    def update(self, eid, doc):
        """Sets the given fields; returns the entity, or None when absent."""
        row = self.write(lambda db: store.write_row(db, self.side, eid, doc))
        return _entity(row) if row else None

    def delete(self, eid):
        return self.write(lambda db: store.delete_row(db, self.side, eid))

    def write(self, fn):
        """fn(db) in one write transaction; its result."""
        db = self.db()
        db.execute("BEGIN IMMEDIATE")
        try:
            out = fn(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return out

    def count(self):
        return self.db().execute("SELECT count(*) FROM %s" % self.table).fetchone()[0]

    def healthy(self):
        self.db().execute("SELECT 1 FROM %s LIMIT 1" % self.table).fetchall()
        return True


def _entity(row):
    return {"id": row[0], "name": row[1], "price": row[2]}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True  # headers and body are separate writes
    shop = None        # set by main()
    access_log = None  # file object or None

    # -- plumbing ---------------------------------------------------------
    def version_string(self):
        return "cutover-shop"

    def reply(self, status, doc=None, extra=()):
        body = b"" if doc is None else (json.dumps(doc) + "\n").encode()
        self.send_response(status)
        self.send_header("X-Served-By", self.shop.role)
        rid = self.request_id()
        if rid:
            self.send_header("X-Cutover-Id", rid)
        target = getattr(self, "path", "")
        if PRINTABLE_TARGET.fullmatch(target):
            self.send_header("X-Request-Path", target)
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """Errors found by http.server itself (bad request line, ...), same shape."""
        self.close_connection = True
        try:
            self.reply(code, {"error": message or self.responses.get(code, ("error",))[0]})
        except OSError:
            pass

    def request_id(self):
        headers = getattr(self, "headers", None)  # absent when the request line was bad
        rid = headers.get("X-Cutover-Id", "") if headers else ""
        return rid if REQUEST_ID.fullmatch(rid) else None

    def log_request(self, code="-", size="-"):
        if self.access_log:
            self.access_log.write('%s "%s" %s id=%s\n' % (
                self.log_date_time_string(), self.requestline, code, self.request_id() or "-"))
            self.access_log.flush()

    def log_message(self, fmt, *args):
        pass  # quiet: one access-log line per request at most (log_request)

    def read_body(self):
        """The request body; when it cannot be read whole, the connection is
        closed after the answer (the rest of the stream is not a request)."""
        self.close_connection = True
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest("chunked bodies are not accepted; send Content-Length")
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise BadRequest("bad Content-Length")
        if n < 0 or n > MAX_BODY:
            raise BadRequest("body must be 0..%d bytes" % MAX_BODY)
        body = self.rfile.read(n)
        self.close_connection = self.client_wants_close
        return body

    # -- dispatch ---------------------------------------------------------
    def do_GET(self):
        self.dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def dispatch(self):
        self.client_wants_close = self.close_connection
        try:
            body = b""
            if self.command in ("POST", "PUT", "PATCH") or self.headers.get("Content-Length"):
                body = self.read_body()
            self.route(body)
        except BadRequest as e:
            self.reply(400, {"error": str(e)})
        except sqlite3.Error as e:
            self.reply(503, {"error": "database: %s" % e})

    def route(self, body):
        url = urllib.parse.urlsplit(self.path)
        path, shop, m = url.path, self.shop, self.command
        if path == "/healthz":
            if m not in ("GET", "HEAD"):
                return self.reply(405, {"error": "method not allowed"}, [("Allow", "GET, HEAD")])
            shop.healthy()
            return self.reply(200, {"role": shop.role, "status": "ok"})
        if shop.kind == "admin":
            if path != "/stats":
                return self.reply(404, {"error": "no such path on %s" % shop.role})
            if m not in ("GET", "HEAD"):
                return self.reply(405, {"error": "method not allowed"}, [("Allow", "GET, HEAD")])
            return self.reply(200, {shop.table: shop.count()})
        sub = shop.sub.fullmatch(path) if shop.kind == "api" else None
        if sub:
            if m not in ("GET", "HEAD"):
                return self.reply(405, {"error": "method not allowed"}, [("Allow", "GET, HEAD")])
            eid = int(sub.group(1))
            if not shop.get(eid):
                return self.not_found(eid)
            kind = SUBRESOURCE[shop.side]
            return self.reply(200, [{"url": "/media/%s/%d/1.jpg" % (kind, eid)}])
        item = shop.item.fullmatch(path)
        if path != shop.collection and not item:
            return self.reply(404, {"error": "no such path on %s" % shop.role})
        eid = int(item.group(1)) if item else None
        reads = shop.kind in ("query", "api")
        writes = shop.kind in ("command", "api")
        if reads and m in ("GET", "HEAD"):
            if eid is None:
                after, limit = _list_args(url.query)
                rows = shop.list(after, limit)
                return self.reply(200, rows, [("Link", _pagination(path, rows, limit))])
            found = shop.get(eid)
            return self.reply(200, found) if found else self.not_found(eid)
        if writes and m == "POST" and eid is None:
            return self.reply(201, shop.create(parse_entity(body, partial=False)))
        if writes and m in ("PUT", "PATCH") and eid is not None:
            found = shop.update(eid, parse_entity(body, partial=(m == "PATCH")))
            return self.reply(200, found) if found else self.not_found(eid)
        if writes and m == "DELETE" and eid is not None:
            return self.reply(204) if shop.delete(eid) else self.not_found(eid)
        allowed = ["GET, HEAD"] if reads else []
        if writes:
            allowed.append("PUT, PATCH, DELETE" if eid is not None else "POST")
        return self.reply(405, {"error": "%s is not served by %s" % (m, shop.role)},
                          [("Allow", ", ".join(allowed))])

    def not_found(self, eid):
        self.reply(404, {"error": "%s %d not found" % (self.shop.table[:-1], eid)})


def _list_args(query):
    q = urllib.parse.parse_qs(query)
    try:
        after = int(q.get("after", ["0"])[0])
        limit = int(q.get("limit", [str(LIST_DEFAULT)])[0])
    except ValueError:
        raise BadRequest("after and limit must be integers")
    if not 1 <= limit <= LIST_MAX:
        raise BadRequest("limit must be 1..%d" % LIST_MAX)
    return after, limit


def _pagination(collection, rows, limit):
    """The list's own Link header (RFC 8288): its first page, and the next
    one when this page is full. The proxy adds its deprecation links beside
    it, never instead of it."""
    links = ['<%s?limit=%d>; rel="first"' % (collection, limit)]
    if len(rows) == limit:
        links.append('<%s?after=%d&limit=%d>; rel="next"' % (collection, rows[-1]["id"], limit))
    return ", ".join(links)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # HAProxy may open many connections at once


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]") or "127.0.0.1", int(port)


def main():
    ap = argparse.ArgumentParser(description="cutover sample shop app")
    ap.add_argument("--role", required=True, choices=ROLES)
    ap.add_argument("--db", required=True, help="SQLite file of the role's side")
    ap.add_argument("--listen", required=True, type=parse_listen, help="HOST:PORT")
    ap.add_argument("--pidfile")
    ap.add_argument("--access-log", help="append one line per request to this file")
    args = ap.parse_args()

    Handler.shop = Shop(args.role, args.db)
    if args.access_log:
        Handler.access_log = open(args.access_log, "a", buffering=1)
    host, port = args.listen
    if ":" in host:
        Server.address_family = socket.AF_INET6
    server = Server((host, port), Handler)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("shop %s serving %s on %s:%d" % (args.role, args.db, host, port), flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    if args.pidfile:
        try:
            os.unlink(args.pidfile)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
