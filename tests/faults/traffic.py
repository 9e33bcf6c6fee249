# SPDX-License-Identifier: Apache-2.0
"""Steady load through a system.System's HAProxy: scripts/apps/load.py (reads and
writes of the OLD API, every request judged, every acknowledged write
verified at the end against the NEW query app), run as a child process."""
import json
import os
import signal
import sys

import harness

LOAD = os.path.join(harness.ROOT, "scripts", "apps", "load.py")
WRITE_PERCENT = 50  # load.py's mix: create 20, update 20, delete 10, reads 50


class LoadRun:
    def __init__(self, stack, seconds, rate, clients=8):
        self.seconds, self.rate, self.clients = seconds, rate, clients
        self.write_percent = WRITE_PERCENT
        self.elapsed = None
        self.report_path = os.path.join(stack.dir, "load-%d.json" % id(self))
        argv = [sys.executable, LOAD, "--url", "http://127.0.0.1:%d" % stack.http_port,
                "--rate", str(rate), "--duration", str(seconds), "--clients", str(clients),
                "--api", "old", "--timeout", "10", "--verify-timeout", "30",
                "--verify-url", "http://127.0.0.1:%d" % stack.app_ports["new-query"],
                "--client-id", "faults", "--report", self.report_path,
                # Agents die here: HAProxy's fallback keeps no client state,
                # so read_your_writes pauses while it routes; a client's
                # reads wait for replication (1 s after its write) instead.
                "--settle", "1"]
        self.proc = harness.Proc(argv, "load-%d" % id(self), workdir=stack.dir)

    def wait(self):
        """Waits for the run (bounded: duration + timeouts + verification);
        returns sent, failed, lost, failures (samples) and the full report."""
        self.proc.proc.wait(self.seconds + 10 + 30 + 30)
        self.proc.stop()
        if not os.path.exists(self.report_path):
            raise AssertionError("load.py wrote no report (exit %s):\n%s"
                                 % (self.proc.proc.returncode, self.proc.log()[-3000:]))
        with open(self.report_path) as f:
            rep = json.load(f)
        verify = rep.get("verify") or {}
        failures = rep.get("failure_samples", [])
        if rep.get("stuck_clients"):
            failures = failures + ["%d load clients stuck" % rep["stuck_clients"]]
        if verify.get("errors"):
            failures = failures + ["verification errors: %r" % (verify["errors"],)]
        self.elapsed = rep.get("elapsed_s", self.seconds)
        return {"sent": rep["requests"], "failed": rep["failures"] + rep.get("stuck_clients", 0)
                + verify.get("errors", 0),
                "lost": rep["lost_writes"], "failures": failures, "report": rep}

    def end(self):
        """Ends the load early (SIGTERM: load.py stops sending, then still
        verifies and reports)."""
        self.proc.signal(signal.SIGTERM)

    def abort(self):
        if self.proc.alive():
            self.proc.stop(signal.SIGKILL)
