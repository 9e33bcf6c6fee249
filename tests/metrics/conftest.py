"""Fixtures for the metrics suite: a cutover-spoa started on free loopback
ports with a plan of the test's own, its /metrics page parsed, and the
independent SPOP client from tests/lib. Self-contained on purpose (the
shared fixtures of tests/conftest.py may replace it). Every process started
here is stopped by its PID."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import spop_client  # noqa: E402
from system import without_gates  # noqa: E402

SAMPLE = os.path.join(ROOT, "conf", "cutover.yaml")
_PHASE_LINE = re.compile(r"^phase:[^\n]*$", re.M)


def agent_binary():
    return os.environ.get("CUTOVER_SPOA", os.path.join(ROOT, "build", "cutover-spoa"))


def sample_plan(phase):
    """The sample plan's text with its top-level `phase:` line set, without
    its gates (no replication status endpoint runs here)."""
    with open(SAMPLE) as f:
        text, n = _PHASE_LINE.subn("phase: %s" % phase, without_gates(f.read()))
    assert n == 1, "%s: expected one top-level phase: line" % SAMPLE
    return text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def http_get(port, path, method="GET"):
    """(status, body) of one request to the metrics port."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


_SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_page(text):
    """{(name, frozenset of (label, value)): float} for every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_LINE.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class Page:
    """One scrape of /metrics."""

    def __init__(self, text):
        self.text = text
        self.samples = parse_page(text)

    def value(self, name, **labels):
        """The sample's value; AssertionError when it is not on the page."""
        key = (name, frozenset(labels.items()))
        assert key in self.samples, "%s%r not on the page:\n%s" % (name, labels, self.text)
        return self.samples[key]

    def series(self, name):
        """[(labels dict, value)] of every sample of name."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]


class Agent:
    def __init__(self, workdir, plan_text, threads=2, listen=None):
        self.plan = os.path.join(workdir, "plan.yaml")
        write_atomic(self.plan, plan_text)
        self.port = free_port()
        self.metrics_port = free_port()
        self.listen = listen or "127.0.0.1:%d" % self.port
        self.log = open(os.path.join(workdir, "agent.log"), "w+")
        self.proc = subprocess.Popen(
            [agent_binary(), "--config", self.plan, "--listen", self.listen,
             "--metrics", "127.0.0.1:%d" % self.metrics_port, "--threads", str(threads),
             "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, "agent exited: %s" % self.log_text()
            try:
                if http_get(self.metrics_port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "agent not ready: %s" % self.log_text()
            time.sleep(0.05)

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def scrape(self):
        status, body = http_get(self.metrics_port, "/metrics")
        assert status == 200, body
        return Page(body)

    def wait_for(self, predicate, what, timeout=10.0):
        """The first page for which predicate(page) holds; fails after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            page = self.scrape()
            if predicate(page):
                return page
            assert time.monotonic() < deadline, "timed out waiting for %s:\n%s" % (
                what, page.text)
            time.sleep(0.1)

    def session(self):
        return spop_client.Session("127.0.0.1", self.port)

    def stop(self):
        """SIGTERM; returns what went wrong on the way out ("" if nothing):
        a status other than 0, or a sanitizer report in the log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.log.closed:
            return ""
        log = self.log_text()
        self.log.close()
        if self.proc.returncode != 0 or "Sanitizer" in log:
            return "agent exited with %s:\n%s" % (self.proc.returncode, log[-3000:])
        return ""


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="cutover-metrics-") as d:
        yield d


@pytest.fixture
def start_agent(workdir):
    """start_agent(plan_text, **options) -> a running Agent, stopped after the test."""
    agents = []

    def start(plan_text, **kw):
        sub = os.path.join(workdir, "agent%d" % len(agents))
        os.mkdir(sub)
        a = Agent(sub, plan_text, **kw)
        agents.append(a)
        return a

    yield start
    problems = [p for p in (a.stop() for a in agents) if p]
    assert not problems, "\n".join(problems)
