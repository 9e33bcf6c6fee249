# SPDX-License-Identifier: Apache-2.0
"""pytest setup shared by every Python suite under tests/.

Puts tests/lib (process helpers, the SPOP client, the sample plan's
routing table, the system bring-up) and scripts/lib (the plan's phase
line, the HTTP one-shot) on the import path, and gives two fixtures:
start_agent, agents a case starts, and start_system, whole systems; both
stopped at teardown whatever the case did.

Per-test timeouts come from pytest-timeout (Debian's python3-pytest-timeout):
tests/pytest.ini sets the default, a case that needs longer says so with
@pytest.mark.timeout(seconds). Under an ASan build (CUTOVER_SANITIZED=1)
every timeout is doubled.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts", "lib"))

import harness  # noqa: E402
import system as system_mod  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if not harness.sanitized():
        return
    default = config.getini("timeout")
    for item in items:
        mark = item.get_closest_marker("timeout")
        seconds = float(mark.args[0]) if mark and mark.args else float(default or 0)
        if seconds:
            item.add_marker(pytest.mark.timeout(seconds * 2), append=False)


@pytest.fixture
def start_agent(tmp_path):
    """start_agent(config, cls=harness.Agent, **kw) -> a running agent
    (harness.Agent's options, or those of a subclass cls), each in a
    directory of its own under the case's tmp_path. At teardown every one
    is stopped by PID (SIGTERM; a case may have stopped it already): a
    sanitizer report in its log, or an exit status other than 0, fails
    the case."""
    started = []

    def start(config, cls=harness.Agent, **kw):
        workdir = tmp_path / ("agent%d" % len(started))
        workdir.mkdir()
        a = cls(config, workdir=str(workdir), **kw)
        started.append(a)
        return a

    yield start
    problems = []
    for a in started:
        try:
            rc = a.stop()
        except AssertionError as e:
            problems.append(str(e))
            continue
        if rc != 0:
            problems.append("agent %d exited %s; log tail:\n%s"
                            % (a.pid, rc, a.log()[-3000:]))
    assert not problems, "\n".join(problems)


@pytest.fixture
def start_system():
    """start_system(name, phase, **kw) -> a system.System, stopped at
    teardown (a case that stops it itself and checks the crashes keeps
    that result; the second stop is a no-op)."""
    started = []

    def start(name, phase, **kw):
        s = system_mod.System(name, phase, **kw)
        started.append(s)
        return s

    yield start
    for s in reversed(started):
        s.stop(check=False)

