# SPDX-License-Identifier: Apache-2.0
"""scripts/apps/data_steps.py, the demo's data steps: the replicator runs
exactly while some agent's effective phase is in [2, 7), whatever moved it,
and GET /replication answers the sample plan's gates. The agents are stand-ins
serving /status from this process; the databases and the replicator are real.
"""
import http.server
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request

import harness

APPS = os.path.join(harness.ROOT, "scripts", "apps")
sys.path.insert(0, APPS)
import store  # noqa: E402

WAIT = 15.0


class FakeAgent:
    def __init__(self, effective):
        self.effective = effective
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"effective": outer.effective}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = "127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def replication(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/replication" % port, timeout=5) as r:
        return json.load(r)


def wait_for(pred, what):
    deadline = time.monotonic() + WAIT
    while not pred():
        assert time.monotonic() < deadline, "no %s" % what
        time.sleep(0.05)


def test_replicator_follows_the_effective_phase():
    d = tempfile.mkdtemp(prefix="cutover-data-steps-")
    old, new = os.path.join(d, "old.db"), os.path.join(d, "new.db")
    db = store.open_side(old, "old")
    db.execute("INSERT INTO squids (id, name, price) VALUES (1, 'humboldt squid', 12.5)")
    db.close()
    store.open_side(new, "new").close()
    agents = [FakeAgent(1), FakeAgent(1)]
    port = harness.free_port()
    pidfile = os.path.join(d, "replicator.pid")
    p = harness.Proc([sys.executable, os.path.join(APPS, "data_steps.py"), "--old", old,
                      "--new", new, "--agents", ",".join(a.addr for a in agents),
                      "--listen", "127.0.0.1:%d" % port, "--pidfile-dir", d], "data-steps",
                     workdir=d)
    try:
        harness.wait_port("127.0.0.1", port, proc=p.proc)
        time.sleep(0.5)  # several polls at phase 1
        st = replication(port)
        assert st["running"] == 0 and not os.path.exists(pidfile)
        assert st["behind"] >= 2, "never replicated, yet not behind: %r" % st
        agents[0].effective = 2  # one agent entered phase 2
        wait_for(lambda: replication(port)["running"] == 1, "replicator start at phase 2")
        wait_for(lambda: replication(port)["behind"] == 0, "NEW catching up")
        agents[1].effective = 4
        agents[0].effective = 7  # one agent past the door, one not: keeps running
        time.sleep(0.5)
        assert replication(port)["running"] == 1
        agents[1].effective = 7
        wait_for(lambda: replication(port)["running"] == 0, "replicator stop at phase 7")
        assert not os.path.exists(pidfile), "the replicator did not exit"
        assert "draining and stopping the replicator" in p.log()
        agents[0].effective = agents[1].effective = 6  # back with an override
        wait_for(lambda: replication(port)["running"] == 1, "replicator restart below 7")
        agents[0].effective = agents[1].effective = 1
        wait_for(lambda: replication(port)["running"] == 0, "replicator stop at phase 1")
        with open(os.path.join(d, "replicator.log")) as f:
            assert f.read().count("stopped:") == 2  # drained twice, cleanly
    finally:
        assert p.stop() == 0, p.log()
        for a in agents:
            a.close()
