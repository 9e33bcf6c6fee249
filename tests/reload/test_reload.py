# SPDX-License-Identifier: Apache-2.0
"""Live reload of the plan file, against the real cutover-spoa binary.

Each case starts the agent on a private copy of conf/cutover.yaml, changes the
`phase:` line one way (in place, rename-over, ConfigMap symlink swap, delete
and recreate, SIGHUP), and checks the reload contract of docs/contracts.md: the new plan is
in force within one second (asserted with slack: PICKUP seconds from the
write), seen both in the agent's log and in a real SPOP answer; a bad edit is
logged as file:line:column and the last good plan keeps answering; the agent
never exits.
"""
import os
import re
import shutil
import signal
import tempfile
import threading
import time

import harness
import http_once
import plan_phase
import sample_plan
import spop_client
from system import plan_text

PICKUP = 1.5   # seconds: the one-second contract plus slack for a loaded machine
QUIET = 1.2    # seconds to watch for a repeated log line (several watcher polls)
PROBE = ("GET", "/query/api/squids/42")


def expected(phase):
    """The sample plan's decision for PROBE: (backend, status)."""
    e = sample_plan.expected(phase, *PROBE)
    return e["backend"], e["status"]


def write_in_place(path, text):
    with open(path, "w") as f:  # same inode: truncate, then write
        f.write(text)


def write_by_rename(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class Run:
    """An agent serving a private copy of the plan; stopped and checked on exit."""

    def __init__(self, phase, configmap=False, metrics=False):
        self.dir = tempfile.mkdtemp(prefix="cutover-reload-")
        self.swaps = 0
        if configmap:
            self.path = os.path.join(self.dir, "cutover.yaml")
            self._configmap_swap(plan_text(phase))
            os.symlink(os.path.join("..data", "cutover.yaml"), self.path)
        else:
            self.path = os.path.join(self.dir, "cutover.yaml")
            write_in_place(self.path, plan_text(phase))
        self.agent = harness.Agent(self.path, threads=2, workdir=self.dir, metrics=metrics)
        self.host, self.port = self.agent.host, self.agent.port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        alive = self.agent.alive()
        rc = self.agent.stop()
        if exc[0] is None:
            assert alive, "agent exited during the case:\n" + self.agent.log()[-3000:]
            assert rc == 0, "agent exit status %s" % rc
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def _configmap_swap(self, text):
        """What the kubelet does: a new timestamped dir, ..data re-pointed by
        renaming a fresh symlink over it, the old dir removed."""
        self.swaps += 1
        stamp = "..2026_11_27_03_00_%02d.%06d" % (self.swaps, os.getpid())
        os.mkdir(os.path.join(self.dir, stamp))
        with open(os.path.join(self.dir, stamp, "cutover.yaml"), "w") as f:
            f.write(text)
        data = os.path.join(self.dir, "..data")
        old = os.readlink(data) if os.path.islink(data) else None
        os.symlink(stamp, os.path.join(self.dir, "..data_tmp"))
        os.rename(os.path.join(self.dir, "..data_tmp"), data)
        if old:
            shutil.rmtree(os.path.join(self.dir, old))

    def configmap_swap(self, phase):
        self._configmap_swap(plan_text(phase))

    # -- observing the agent
    def mark(self):
        return len(self.agent.log())

    def wait_log(self, pattern, since, deadline, what):
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.agent.log()[since:])
            if m:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError("%s: no log line /%s/ in time; log tail:\n%s"
                                     % (what, pattern, self.agent.log()[since:][-3000:]))
            time.sleep(0.02)

    def count(self, pattern, since=0):
        return len(re.findall(pattern, self.agent.log()[since:]))

    def tail(self, since=0):
        return "log since the edit:\n" + self.agent.log()[since:][-3000:]

    def decide(self, client=None):
        if client is not None:
            return client.decide(*PROBE)
        return spop_client.decide_once(self.host, self.port, *PROBE)

    def assert_serving(self, phase, client=None):
        check_decision(self.decide(client), phase)

    def wait_serving(self, phase, deadline, client=None):
        """Polls real SPOP answers until they show phase, or fails at deadline."""
        while True:
            ans = self.decide(client)
            if ans.get("txn.phase") == phase:
                check_decision(ans, phase)
                return
            if time.monotonic() >= deadline:
                raise AssertionError("SPOP still answers %r, want phase %d" % (ans, phase))
            time.sleep(0.02)

    def assert_pickup(self, old, new, since, t0, client=None):
        """The change old -> new is logged once and served within PICKUP of t0."""
        pattern = r"event=phase_change from=%d from_name=\S+ to=%d to_name=\S+ plan=%s " % (
            old, new, re.escape(self.path))
        self.wait_log(pattern, since, t0 + PICKUP, "phase %d -> %d" % (old, new))
        self.wait_serving(new, t0 + PICKUP)
        if client is not None:  # a connection opened before the change follows it
            self.assert_serving(new, client)
        return pattern


def check_decision(ans, phase):
    backend, status = expected(phase)
    assert ans.get("txn.phase") == phase, "txn.phase in %r, want %d" % (ans, phase)
    assert not [k for k in ans if k.startswith("proc.")], "process-wide variables in %r" % ans
    assert ans.get("txn.backend") == backend, "txn.backend in %r, want %r" % (ans, backend)
    assert ans.get("txn.status") == status, "txn.status in %r, want %r" % (ans, status)


def assert_rejected(run, since, t0, line=None, column=None):
    """A rejection naming file:line:column and the plan that keeps serving."""
    m = run.wait_log(r"event=plan_rejected reason=\"%s:(\d+):(\d+): [^\n]*generation=\d+"
                     % re.escape(run.path), since, t0 + PICKUP, "rejection")
    if line is not None:
        assert int(m.group(1)) == line, "rejected at line %s, want %d: %s" % (
            m.group(1), line, m.group(0))
    if column is not None:
        assert int(m.group(2)) == column, "rejected at column %s, want %d: %s" % (
            m.group(2), column, m.group(0))
    return m


def test_in_place_write():
    with Run(3) as run:
        client = spop_client.Session(run.host, run.port)
        run.assert_serving(3, client)
        since, t0 = run.mark(), time.monotonic()
        write_in_place(run.path, plan_text(4))
        pattern = run.assert_pickup(3, 4, since, t0, client)
        since, t0 = run.mark(), time.monotonic()
        write_in_place(run.path, plan_text(3))  # and back: a rollback
        run.assert_pickup(4, 3, since, t0, client)
        client.close()
        time.sleep(QUIET)
        assert run.count(pattern) == 1, run.tail()


def test_rename_over():
    with Run(4) as run:
        run.assert_serving(4)
        for old, new in ((4, 9), (9, 10)):  # twice: the second rename hits a new inode
            since, t0 = run.mark(), time.monotonic()
            write_by_rename(run.path, plan_text(new))
            run.assert_pickup(old, new, since, t0)


def test_configmap_symlink_swap():
    with Run(2, configmap=True) as run:
        assert os.path.islink(run.path)
        run.assert_serving(2)
        for old, new in ((2, 5), (5, 1)):  # twice: the watcher follows the new target
            since, t0 = run.mark(), time.monotonic()
            run.configmap_swap(new)
            run.assert_pickup(old, new, since, t0)


def test_delete_then_recreate():
    with Run(3) as run:
        since, t0 = run.mark(), time.monotonic()
        os.unlink(run.path)
        run.wait_log(r"event=plan_rejected reason=\"%s: No such file[^\n]*generation="
                     % re.escape(run.path), since, t0 + PICKUP, "deleted file")
        run.assert_serving(3)
        since, t0 = run.mark(), time.monotonic()
        write_in_place(run.path, plan_text(6))
        run.assert_pickup(3, 6, since, t0)


def test_burst_of_edits_ends_on_the_last():
    with Run(1) as run:
        since = run.mark()
        for phase in (2, 3, 4, 5, 6, 7):
            write_in_place(run.path, plan_text(phase))
        t0 = time.monotonic()
        run.wait_log(r"event=phase_change from=\d+ from_name=\S+ to=7 ", since, t0 + PICKUP, "last edit")
        run.wait_serving(7, t0 + PICKUP)


def test_sighup_rereads():
    with Run(8) as run:
        since, t0 = run.mark(), time.monotonic()
        run.agent.signal(signal.SIGHUP)
        run.wait_log(r"event=plan_reloaded phase=8 phase_name=\S+ plan=%s generation=2"
                     % re.escape(run.path), since, t0 + PICKUP, "SIGHUP")
        run.assert_serving(8)


def test_bad_edit_unknown_key_keeps_plan():
    with Run(3) as run:
        good = plan_text(4)
        bad = good + "no_such_key: 1\n"
        since, t0 = run.mark(), time.monotonic()
        # Whole, by rename: an in-place write paused between truncate and
        # write would be two versions, each rightly read once.
        write_by_rename(run.path, bad)
        m = assert_rejected(run, since, t0, line=bad.count("\n"), column=1)
        run.assert_serving(3)
        time.sleep(QUIET)  # the unchanged bad file is not rejected again and again
        assert run.count(re.escape(m.group(0)), since) == 1, run.tail(since)
        run.assert_serving(3)
        since, t0 = run.mark(), time.monotonic()
        write_in_place(run.path, good)  # the fix
        run.assert_pickup(3, 4, since, t0)


def test_bad_edit_yaml_syntax_keeps_plan():
    with Run(5) as run:
        bad = plan_text(6).replace("phase: 6", "phase: [6", 1)
        since, t0 = run.mark(), time.monotonic()
        write_by_rename(run.path, bad)
        m = assert_rejected(run, since, t0)
        assert plan_phase.line_number(plan_text(6)) <= int(m.group(1)) <= bad.count("\n") + 1, m.group(0)
        run.assert_serving(5)
        since, t0 = run.mark(), time.monotonic()
        write_by_rename(run.path, plan_text(6))
        run.assert_pickup(5, 6, since, t0)


def test_bad_phase_then_sighup_relogs_once():
    with Run(7) as run:
        bad = plan_text(99)
        since, t0 = run.mark(), time.monotonic()
        write_by_rename(run.path, bad)  # whole, as above
        m = assert_rejected(run, since, t0, line=plan_phase.line_number(bad))
        time.sleep(QUIET)
        rejection = re.escape(m.group(0))
        assert run.count(rejection, since) == 1, run.tail(since)
        t0 = time.monotonic()
        run.agent.signal(signal.SIGHUP)  # forced: the same file is read and rejected again
        deadline = t0 + PICKUP
        while run.count(rejection, since) < 2:
            assert time.monotonic() < deadline, "SIGHUP: no re-read; " + run.tail(since)
            time.sleep(0.02)
        run.assert_serving(7)


def test_reload_counters_in_metrics():
    with Run(3, metrics=True) as run:
        since, t0 = run.mark(), time.monotonic()
        write_by_rename(run.path, plan_text(4) + "no_such_key: 1\n")
        assert_rejected(run, since, t0)
        since, t0 = run.mark(), time.monotonic()
        write_by_rename(run.path, plan_text(4))
        run.assert_pickup(3, 4, since, t0)
        reply = http_once.request(run.agent.metrics_port, "GET", "/metrics", timeout=3)
        assert reply.status == 200, reply.status
        page = reply.text()
        for line in ('cutover_plan_reloads_total{result="accepted"} 1',
                     'cutover_plan_reloads_total{result="rejected"} 1',
                     "cutover_phase_effective 4"):
            assert line in page.splitlines(), "%r not in /metrics:\n%s" % (line, page)


def test_reloads_under_traffic_answer_whole_plans():
    """Clients on open connections keep asking while the plan flips 3 <-> 4:
    every answer is one whole plan's decision, and no request fails."""
    reloads = 16
    with Run(3) as run:
        stop, errors, answers = threading.Event(), [], [0]

        def ask():
            try:
                c = spop_client.Session(run.host, run.port)
                while not stop.is_set():
                    ans = c.decide(*PROBE)
                    assert ans.get("txn.phase") in (3, 4), ans
                    check_decision(ans, ans["txn.phase"])
                    answers[0] += 1
                c.close()
            except Exception as e:  # noqa: BLE001 - reported by the case
                errors.append(repr(e))

        clients = [threading.Thread(target=ask) for _ in range(2)]
        for t in clients:
            t.start()
        try:
            phase = 3
            for _ in range(reloads):
                phase = 7 - phase
                t0 = time.monotonic()
                write_by_rename(run.path, plan_text(phase))
                run.wait_serving(phase, t0 + PICKUP)
        finally:
            stop.set()
            for t in clients:
                t.join(10)
        assert not errors, errors
        assert answers[0] > reloads, "only %d answers" % answers[0]
        assert run.count(r"generation=%d\b" % (reloads + 1)) == 1, "not every reload was applied"
