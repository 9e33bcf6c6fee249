# SPDX-License-Identifier: Apache-2.0
"""The processes a Python suite starts: any child (Proc) and the agent under
test (Agent), each with its output in a log file and stopped by its PID,
never by name. The suites run under pytest (tests/conftest.py); this module
only starts and stops things.

CUTOVER_SPOA names the agent binary (default build/cutover-spoa);
CUTOVER_SANITIZED=1 says it is an ASan/UBSan build (scripts/test sets both).
"""
import os
import random
import signal
import socket
import subprocess
import tempfile
import time

import http_once

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
def agent_binary():
    return os.environ.get("CUTOVER_SPOA", os.path.join(ROOT, "build", "cutover-spoa"))


def sanitized():
    """True when the agent under test was built with ASan (scripts/test sets it)."""
    return os.environ.get("CUTOVER_SANITIZED") == "1"


_given = set()
_random = random.SystemRandom()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host="127.0.0.1"):
    """A port free now, for a listener started later. It is drawn below the
    kernel's ephemeral range: an ephemeral port can be taken meanwhile by any
    outgoing connection (HAProxy's, load.py's), so that a process restarted
    on its port would find it in use. Never the same port twice in a run."""
    low = min(_ephemeral_low(), 32768)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = _random.randrange(10000, low)
        if port in _given:
            continue
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise AssertionError("no free port found below %d" % low)


def wait_port(host, port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited with %s before listening on %s:%d"
                                 % (proc.returncode, host, port))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on %s:%d after %.1fs" % (host, port, timeout))


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


class Proc:
    """A child process with its output in a log file, stopped by PID."""

    def __init__(self, argv, name, env=None, workdir=None, stderr_name=None, cwd=None):
        """stderr_name: stderr to its own log file, not with stdout."""
        self.workdir = workdir or tempfile.mkdtemp(prefix="cutover-")
        self.log_path = os.path.join(self.workdir, name + ".log")
        self._log = open(self.log_path, "ab")
        self._err = (open(os.path.join(self.workdir, stderr_name + ".log"), "ab")
                     if stderr_name else None)
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(argv, stdout=self._log,
                                     stderr=self._err or subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=e, cwd=cwd)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops the process; returns its exit code (negative: killed by signal)."""
        if self.alive():
            os.kill(self.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
                raise AssertionError("%s did not stop within %.0fs of signal %d"
                                     % (self.log_path, timeout, sig))
        self._log.close()
        if self._err:
            self._err.close()
        return self.proc.returncode

    # Defined after stop(): in the class body this name shadows the signal
    # module, which stop()'s default argument needs.
    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def sanitizer_report(self):
        text = self.log()
        for m in SANITIZER_MARKS:
            if m in text:
                return text
        return None


class Agent(Proc):
    """The real cutover-spoa binary on a free loopback port (host may be
    "::1"), or on listen ("unix:/path") when given; with metrics, its
    metrics port too. Running when the constructor returns: with metrics,
    /readyz answers 200; without, it accepts a connection. Stopping it (stop(), or leaving a
    `with` block) fails on a sanitizer report in its log; a second stop
    only returns the exit code."""

    def __init__(self, config, threads=1, extra=(), host="127.0.0.1", port=None,
                 metrics=False, workdir=None, listen=None, log_level="debug"):
        self.host = host
        self.port = None if listen else (port or free_port(host))
        self.listen = listen or "%s:%d" % ("[%s]" % host if ":" in host else host, self.port)
        self.metrics_port = free_port() if metrics else None
        self._stopped = False
        argv = [agent_binary(), "--config", config, "--listen", self.listen,
                "--threads", str(threads), "--log-level", log_level]
        if self.metrics_port:
            argv += ["--metrics", "127.0.0.1:%d" % self.metrics_port]
        argv += list(extra)
        super().__init__(argv, "agent", workdir=workdir)
        try:
            self._wait_ready(30.0 if sanitized() else 10.0)
        except AssertionError as e:
            self.stop(check=False)
            raise AssertionError("%s; agent log:\n%s" % (e, self.log()[-3000:])) from None

    def _wait_ready(self, timeout):
        """With metrics, /readyz (a plan loaded, listening), which opens no
        SPOP connection the agent would count; else a connection to it."""
        deadline = time.monotonic() + timeout
        while self.metrics_port:
            assert self.alive(), "agent exited with %s" % self.proc.returncode
            try:
                if http_once.request(self.metrics_port, "GET", "/readyz", timeout=1).status == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "agent not ready after %.0fs" % timeout
            time.sleep(0.05)
        if self.port:
            wait_port(self.host, self.port, timeout, proc=self.proc)
        else:
            path = self.listen[len("unix:"):]
            while not os.path.exists(path):
                assert self.alive() and time.monotonic() < deadline, \
                    "agent has no socket at %s" % path
                time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout=10.0, check=True):
        """Stops the agent; returns its exit code. check: fail on a
        sanitizer report in its log."""
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        rc = super().stop(sig, timeout)
        report = self.sanitizer_report() if check else None
        if report:
            raise AssertionError("sanitizer report in agent log:\n" + report[-4000:])
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
