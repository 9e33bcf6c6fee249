# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the black-box suite: the real cutover-spoa binary on loopback.

`agent(phase=1, threads=2, **options)` starts the agent (harness.Agent's
options: host="::1", extra=(...)) on the sample plan copied with its
`phase:` line set, and returns it running; usable as a context manager
(`with agent(phase=4) as a:`). The shared start_agent fixture of
tests/conftest.py stops it by PID when the case ends and fails the case on
a sanitizer report or an exit status other than 0. Time limits per case
come from pytest-timeout (tests/pytest.ini).

Environment: CUTOVER_PLAN, another plan with the sample plan's routing
(default conf/cutover.yaml).
"""
import os

import pytest

import system

PLAN = os.environ.get("CUTOVER_PLAN", system.PLAN)


@pytest.fixture(scope="session")
def plan_file(tmp_path_factory):
    """plan_file(phase): the path of the plan with its `phase:` line set."""
    root = tmp_path_factory.mktemp("plans")

    def make(phase):
        path = root / ("phase%d.yaml" % phase)
        if not path.exists():
            path.write_text(system.plan_text(phase, PLAN))
        return str(path)
    return make


@pytest.fixture
def agent(plan_file, start_agent):
    def start(phase=1, threads=2, **kw):
        return start_agent(plan_file(phase), threads=threads, **kw)
    return start
