# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the metrics suite: a cutover-spoa (harness.Agent, through the
shared start_agent fixture of tests/conftest.py) started with a plan of the
case's own and its metrics port, its /metrics page parsed, and the
independent SPOP client from tests/lib."""
import os
import re
import time

import pytest

import harness
import http_once
import spop_client
from system import write_atomic


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


class Agent(harness.Agent):
    """harness.Agent with its plan file (plan) and metrics port, scraped."""

    def __init__(self, plan, **kw):
        self.plan = plan
        super().__init__(plan, metrics=True, log_level="warn", **kw)

    def scrape(self):
        r = http_once.request(self.metrics_port, "GET", "/metrics", timeout=5)
        assert r.status == 200, r.text()
        return Page(r.text())

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


@pytest.fixture
def workdir(tmp_path):
    return str(tmp_path)


@pytest.fixture
def start_agent(start_agent, workdir):
    """start_agent(plan_text, threads=2, **options) -> a running Agent on
    a plan file of its own holding plan_text."""
    count = [0]

    def start(plan_text, threads=2, **kw):
        count[0] += 1
        plan = os.path.join(workdir, "plan%d.yaml" % count[0])
        write_atomic(plan, plan_text)
        return start_agent(plan, cls=Agent, threads=threads, **kw)
    return start
