#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Does the sample shop's data steps from the agents' effective phase.

  data_steps.py --old OLD.db --new NEW.db --agents HOST:PORT[,HOST:PORT...]
                --listen HOST:PORT [--pidfile-dir DIR] [--poll 0.1]

Watches every agent's /status (their metrics ports) and keeps the replicator
(replicator.py) running exactly while some agent's effective phase is in
[2, 7): it starts it when an agent enters phase 2 (or comes back below 7 with
the plan's override), and drains and stops it once every agent it can reach
is at phase 1 or at 7 or later. Whatever moved the phase (a hand edit,
scripts/walk, a revert) the data follows it; an agent it cannot reach changes
nothing.

It also answers the sample plan's gates:
  GET /replication  200 {"running": 0|1, "behind": N}
running: the replicator runs; behind: change-log entries not yet applied on
the other side, both directions (a side never replicated yet counts its whole
log plus one). The replicator's pid and log go to --pidfile-dir (default: the
OLD db's directory) as replicator.pid and replicator.log.
"""
import argparse
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_FROM, STOP_AT = 2, 7  # replication runs in phases [RUN_FROM, STOP_AT)


def log(msg):
    print("%s data-steps: %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def effective(addr):
    try:
        with urllib.request.urlopen("http://%s/status" % addr, timeout=1) as r:
            return json.load(r)["effective"]
    except (OSError, ValueError, KeyError):
        return None


def behind(old_db, new_db):
    """Unapplied change-log entries, both directions."""
    total = 0
    for src, dst, side in ((old_db, new_db, "old"), (new_db, old_db, "new")):
        try:
            s = sqlite3.connect("file:%s?mode=ro" % src, uri=True, timeout=2)
            d = sqlite3.connect("file:%s?mode=ro" % dst, uri=True, timeout=2)
            head = s.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
            row = d.execute("SELECT seq FROM replication_position WHERE source = ?",
                            (side,)).fetchone()
            s.close()
            d.close()
        except sqlite3.Error:
            return None
        total += head + 1 if row is None else max(head - row[0], 0)
    return total


class Steps:
    def __init__(self, args):
        self.args = args
        self.proc = None
        self.lock = threading.Lock()
        self.pidfile = os.path.join(args.pidfile_dir, "replicator.pid")
        self.logfile = os.path.join(args.pidfile_dir, "replicator.log")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, why):
        log("starting the replicator: %s" % why)
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "replicator.py"), "--old", self.args.old,
                 "--new", self.args.new, "--pidfile", self.pidfile],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def stop(self, why):
        log("draining and stopping the replicator: %s" % why)
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait()
        log("replicator stopped (exit %d)" % rc)
        self.proc = None

    def follow(self, stop):
        while not stop.is_set():
            phases = [effective(a) for a in self.args.agents]
            known = [p for p in phases if p is not None]
            with self.lock:
                want = any(RUN_FROM <= p < STOP_AT for p in known)
                settled = known and len(known) == len(phases)
                if want and not self.running():
                    self.start("effective phases %s" % phases)
                elif not want and settled and self.running():
                    self.stop("effective phases %s" % phases)
            stop.wait(self.args.poll)
        with self.lock:
            if self.running():
                self.stop("exiting")


def serve(args, steps):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/replication":
                self.send_error(404)
                return
            n = behind(args.old, args.new)
            body = json.dumps({"running": 1 if steps.running() else 0,
                               "behind": n if n is not None else -1}).encode()
            self.send_response(200 if n is not None else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    host, port = args.listen.rsplit(":", 1)
    httpd = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main():
    ap = argparse.ArgumentParser(description="sample shop data steps from the effective phase")
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--agents", required=True, type=lambda s: s.split(","),
                    help="the agents' metrics addresses, comma-separated")
    ap.add_argument("--listen", required=True, help="where GET /replication answers")
    ap.add_argument("--pidfile-dir")
    ap.add_argument("--poll", type=float, default=0.1)
    args = ap.parse_args()
    args.pidfile_dir = args.pidfile_dir or os.path.dirname(os.path.abspath(args.old))
    steps = Steps(args)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: stop.set())
    httpd = serve(args, steps)
    log("following %s; /replication on %s" % (",".join(args.agents), args.listen))
    steps.follow(stop)
    httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
