#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Black-box check of the agent's log lines: a real agent is started on a
copy of the sample plan, edited, sent SIGHUP and given a bad plan; every line
it writes must parse, in logfmt (the default) and with --log-format json,
and the phase_change, plan_reloaded and plan_rejected events must carry
their keys (plain messages, such as the listening line, are msg="..."). The logfmt parser below is written from the format's contract
(key=value, bare or double-quoted with JSON escapes), not from the agent.

    test_logs.py AGENT_BINARY PLAN      exit 0 when every check passed
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

WAIT = 10.0  # seconds to wait for a line; a bound, not a measurement


def parse_logfmt(line):
    """key=value pairs of one logfmt line, in order; raises ValueError."""
    pairs, i, n = [], 0, len(line)
    while i < n:
        m = re.compile(r"([a-z0-9_]+)=").match(line, i)
        if not m:
            raise ValueError("no key at %d: %r" % (i, line))
        key, i = m.group(1), m.end()
        if i < n and line[i] == '"':
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            if j >= n:
                raise ValueError("unterminated quote: %r" % line)
            value = json.loads(line[i:j + 1])
            i = j + 1
        else:
            j = line.find(" ", i)
            j = n if j < 0 else j
            value = line[i:j]
            if not value or any(c in value for c in '"=\\'):
                raise ValueError("bad bare value %r: %r" % (value, line))
            i = j
        pairs.append((key, value))
        if i < n:
            if line[i] != " ":
                raise ValueError("no space after %s: %r" % (key, line))
            i += 1
    return pairs


def parse(fmt, line):
    if fmt == "json":
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        return list(obj.items())
    return parse_logfmt(line)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def replace(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def run(agent, sample, fmt):
    with tempfile.TemporaryDirectory() as d:
        plan = os.path.join(d, "plan.yaml")
        good = re.sub(r"(?m)^phase: .*$", "phase: 1", sample)
        replace(plan, good)
        log_path = os.path.join(d, "agent.log")
        args = [agent, "--config", plan, "--listen", "127.0.0.1:%d" % free_port(), "--threads", "1"]
        if fmt == "json":
            args += ["--log-format", "json"]
        log = open(log_path, "w")
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        events = []

        def wait_for(what, found):
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                with open(log_path) as f:
                    lines = f.read().splitlines()
                events[:] = [(ln, dict(parse(fmt, ln))) for ln in lines]
                for ln, kv in events:
                    if found(kv):
                        return kv
                if p.poll() is not None:
                    raise AssertionError("agent exited %s: %s" % (p.returncode, lines))
                time.sleep(0.05)
            raise AssertionError("no %s in %s" % (what, [ln for ln, _ in events]))

        def wait_event(name):
            return wait_for("%s event" % name, lambda kv: kv.get("event") == name)

        try:
            start = wait_for("listening line", lambda kv: " listening on " in kv.get("msg", ""))
            replace(plan, re.sub(r"(?m)^phase: .*$", "phase: 2", good))
            change = wait_event("phase_change")
            p.send_signal(signal.SIGHUP)
            reload_ = wait_event("plan_reloaded")
            replace(plan, good.replace("phases:", "no_such_key: 1\nphases:", 1))
            reject = wait_event("plan_rejected")
        finally:
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=WAIT)
            log.close()
        with open(log_path) as f:
            lines = f.read().splitlines()
        for ln in lines:  # every line, plain messages too
            kv = parse(fmt, ln)
            keys = [k for k, _ in kv]
            assert keys[:2] == ["ts", "level"], "ts, level first: %r" % ln
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", kv[0][1]), ln
            assert ("event" in keys) or ("msg" in keys), ln
        num = int if fmt == "logfmt" else (lambda v: v)  # JSON numbers are numbers
        assert rc == 0, "agent exit %s" % rc
        assert ("plan %s," % plan) in start["msg"], start  # a message with spaces, quoted
        assert (num(change["from"]), num(change["to"])) == (1, 2), change
        assert change["plan"] == plan and change["level"] == "info", change
        assert num(reload_["phase"]) == 2 and reload_["plan"] == plan, reload_
        assert reject["level"] == "error", reject
        assert re.match(re.escape(plan) + r":\d+:\d+: ", reject["reason"]), reject
        assert num(reject["phase"]) == 2, reject  # the plan that keeps serving
        if fmt == "json":
            for k in ("from", "to", "generation"):
                assert isinstance(change[k], int), (k, change)
        return len(lines)


def main():
    agent, plan = sys.argv[1], sys.argv[2]
    with open(plan) as f:
        sample = f.read()
    failed = 0
    for fmt in ("logfmt", "json"):
        try:
            n = run(agent, sample, fmt)
            print("ok   log lines parse as %s (%d lines; 3 events and a message checked)" % (fmt, n))
        except Exception as e:  # report and go on to the other format
            print("FAIL log lines as %s: %s" % (fmt, e))
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
