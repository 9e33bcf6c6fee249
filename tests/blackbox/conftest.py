"""Fixtures of the black-box suite: the real cutover-spoa binary on loopback.

- `agent`: a function that starts the agent (`agent(phase=1, host=..., threads=2,
  extra=())`) on the sample plan copied with its `phase:` line set, and returns
  it running; usable as a context manager (`with agent(phase=4) as a:`). Every
  agent a test started is stopped by PID when the test ends; a sanitizer report
  in its log fails the test.
- A time limit per test (SIGALRM), so a hung agent fails one test, not the run.

Environment: CUTOVER_SPOA (the binary, default build/cutover-spoa),
CUTOVER_SANITIZED=1 (an ASan build: longer limits), CUTOVER_PLAN (another
plan with the sample plan's routing; default conf/cutover.yaml).
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPOA = os.environ.get("CUTOVER_SPOA", os.path.join(ROOT, "build", "cutover-spoa"))
SANITIZED = os.environ.get("CUTOVER_SANITIZED") == "1"
PLAN = os.environ.get("CUTOVER_PLAN", os.path.join(ROOT, "conf", "cutover.yaml"))
TEST_TIME_LIMIT = 300 if SANITIZED else 120  # seconds; a bound, never a measurement
THREADS = 2
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def free_port(host):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Agent:
    """One cutover-spoa process, its output in a log file, stopped by PID."""

    def __init__(self, config, workdir, threads, host, extra):
        self.host = host
        self.port = free_port(host)
        self.log_path = os.path.join(workdir, "agent-%d.log" % self.port)
        argv = [SPOA, "--config", config, "--listen",
                "%s:%d" % ("[%s]" % host if ":" in host else host, self.port),
                "--threads", str(threads), "--log-level", "debug"] + list(extra)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        self._stopped = False
        self._wait_listening(30.0 if SANITIZED else 10.0)

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("agent exited with %s before listening; log:\n%s"
                                     % (self.proc.returncode, self.log()[-3000:]))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("agent not listening on port %d after %.0fs" % (self.port, timeout))

    def alive(self):
        return self.proc.poll() is None

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops the agent (once; later calls only return the exit code) and
        fails on a sanitizer report in its log."""
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        if self.alive():
            os.kill(self.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("agent did not stop within %.0fs of signal %d"
                                     % (timeout, sig)) from None
        text = self.log()
        if any(m in text for m in SANITIZER_MARKS):
            raise AssertionError("sanitizer report in agent log:\n" + text[-4000:])
        return self.proc.returncode

    # After stop(): in the class body this name hides the signal module,
    # which stop()'s default argument needs.
    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture(scope="session")
def plan_file(tmp_path_factory):
    """plan_file(phase): the sample plan with its top-level `phase:` set."""
    root = tmp_path_factory.mktemp("plans")

    def make(phase):
        path = root / ("phase%d.yaml" % phase)
        if not path.exists():
            with open(PLAN) as f:
                text = f.read()
            text, n = re.subn(r"(?m)^phase:.*$", "phase: %d" % phase, text, count=1)
            assert n == 1, "%s has no top-level phase: line" % PLAN
            path.write_text(text)
        return str(path)
    return make


@pytest.fixture
def agent(plan_file, tmp_path):
    started = []

    def start(phase=1, host="127.0.0.1", threads=THREADS, extra=()):
        a = Agent(plan_file(phase), str(tmp_path), threads, host, extra)
        started.append(a)
        return a
    yield start
    errors = []
    for a in started:
        try:
            a.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture(autouse=True)
def time_limit(request):
    def expired(signum, frame):
        raise TimeoutError("%s: over its %d s limit" % (request.node.name, TEST_TIME_LIMIT))
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIME_LIMIT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)

