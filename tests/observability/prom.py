# SPDX-License-Identifier: Apache-2.0
"""Debian's Prometheus on a free loopback port, for the observability suite:
a generated config that scrapes the agents' metrics ports (job "cutover")
and HAProxy's exporter (job "haproxy") every 500 ms, loads the repository's
alerting rules, and keeps its TSDB in a temporary directory. Stopped by its
PID. query() asks /api/v1/query and fails on any error status."""
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import harness

RULES = os.path.join(harness.ROOT, "packaging", "prometheus", "cutover-rules.yml")
SCRAPE = "500ms"


class QueryError(AssertionError):
    pass


class Prometheus(harness.Proc):
    def __init__(self, agent_targets, haproxy_targets):
        self.dir = tempfile.mkdtemp(prefix="cutover-prometheus-")
        self.port = harness.free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(config_text(agent_targets, haproxy_targets))
        binary = os.environ.get("PROMETHEUS", "prometheus")
        super().__init__([binary, "--config.file", config,
                          "--storage.tsdb.path", os.path.join(self.dir, "data"),
                          "--web.listen-address", "127.0.0.1:%d" % self.port,
                          "--log.level", "warn"], "prometheus", workdir=self.dir)
        harness.wait_port("127.0.0.1", self.port, timeout=30, proc=self.proc)
        deadline = time.monotonic() + 30
        while True:  # ready once the TSDB is open and the config loaded
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                            timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert self.alive() and time.monotonic() < deadline, \
                "prometheus not ready:\n" + self.log()[-3000:]
            time.sleep(0.1)

    def api(self, path, **params):
        """The decoded JSON answer of /api/v1/<path>; QueryError unless its
        status is success."""
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (self.port, path,
                                                     urllib.parse.urlencode(params))
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                answer = json.load(r)
        except urllib.error.HTTPError as e:
            answer = json.load(e)
        if answer.get("status") != "success":
            raise QueryError("%s %r: %s: %s" % (path, params, answer.get("errorType"),
                                                answer.get("error")))
        return answer["data"]

    def query(self, expr):
        """An instant vector or scalar: [(labels, float value)]."""
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            return [(r["metric"], float(r["value"][1])) for r in data["result"]]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        raise QueryError("%s: a %s, not a vector" % (expr, data["resultType"]))

    def by(self, expr, label):
        """{label value: sample value} of an instant query."""
        return {m.get(label, ""): v for m, v in self.query(expr)}

    def wait(self, expr, ok, what, timeout=15.0):
        """Polls expr until ok(result) holds; returns the result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if ok(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError("%s: %s is still %r after %.0fs"
                                     % (what, expr, result, timeout))
            time.sleep(0.25)

    def close(self):
        rc = self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


def config_text(agent_targets, haproxy_targets):
    def targets(ts):
        return "[%s]" % ", ".join('"%s"' % t for t in ts)
    return ("global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n"
            "rule_files: [\"%s\"]\n"
            "scrape_configs:\n"
            "  - job_name: cutover\n    static_configs:\n      - targets: %s\n"
            "  - job_name: haproxy\n    static_configs:\n      - targets: %s\n"
            % (SCRAPE, SCRAPE, SCRAPE, RULES, targets(agent_targets), targets(haproxy_targets)))
