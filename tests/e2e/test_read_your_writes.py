# SPDX-License-Identifier: Apache-2.0
"""Read-your-writes through the real system: the sample apps on their OLD
and NEW dbs with the replicator running, two agents, Debian's HAProxy with
haproxy/haproxy.cfg, the sample plan (conf/cutover.yaml: squids-query's
read_your_writes in phases 4 to 6).

A "pair" is what an API client does: POST a squid, then GET it at once.
A miss is a GET that does not answer 200 with the squid just written.

  phases_4_5_6             40 pairs per phase 4, 5, 6, on one keep-alive
                           connection, and on a new connection per request
                           with HAProxy's SPOE connections closed before each
                           request (both agents UP), so that the agents take
                           turns: a write and its read decided by different
                           agents, both seen deciding in their logs. 0 misses;
                           HAProxy's log says ryw=1 (backend old_query) for
                           every read of 4 and 5 and for none of 6 (writes and
                           reads both NEW: a read sent to OLD there could miss)
  without_ryw_reads_miss   the same pairs at phase 4 on the plan without
                           read_your_writes: misses > 0 (the test sees the
                           problem it guards against)
  writes_of_phase_5_read_in_phase_6  replicator paused: 40 squids written
                           at phase 5 (OLD only), the plan moved to 6, each
                           read at once: 0 misses, all from OLD (ryw=1)
  mark_survives_agent_restart  agent 1 SIGKILLed by PID mid-run and started
                           again, then agent 2 stopped: reads decided by the
                           new agent 1 alone still follow writes made before
                           the kill; 0 misses
  two_haproxy_nodes        two HAProxy processes sharing ryw_writes through
                           peers cutover_peers (show peers: connected first),
                           replicator paused: each write on one node, its read
                           at once on the other, both ways, phases 4 to 6:
                           0 misses, every read of 4 and 5 ryw=1 there; then
                           how soon a mark is seen on the other node's stats
                           socket after the write's answer
Figures are printed (-s shows them).
"""
import http.client
import json
import os
import re
import signal
import time

import pytest

import harness
import http_once
import system
from system import System

PAIRS = 40
_FIELDS = re.compile(r" client=(\S*) phase=(\S+) route=(\S+) be=(\S+) path=(\S+) .* ryw=(\S+)$")
_REQ = re.compile(r'"(\S+) (\S+) HTTP/')


def log_lines(lines, client):
    """[(method, path, backend, ryw)] of client's requests in an HAProxy log."""
    out = []
    for line in lines:
        m, r = _FIELDS.search(line), _REQ.search(line)
        if m and r and m.group(1) == client:
            out.append((r.group(1), r.group(2).split("?")[0], m.group(4), m.group(6)))
    return out


def wait_logged(haproxy, client, count, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = log_lines(haproxy.lines(), client)
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


class KeepAlive:
    """One HTTP/1.1 connection for every request of a client."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def __call__(self, method, path, headers, body=None):
        self.c.request(method, path, body=body, headers=headers)
        r = self.c.getresponse()
        return r.status, r.read()

    def close(self):
        self.c.close()


def one_shot(port):
    def send(method, path, headers, body=None):
        r = http_once.request(port, method, path, body=body, headers=headers)
        return r.status, r.body
    send.close = lambda: None
    return send


def post(send, client, i):
    doc = {"name": "%s-%d" % (client, i), "price": 1.5}
    status, body = send("POST", "/command/api/squids", {"X-Api-Client": client,
                        "Content-Type": "application/json"}, json.dumps(doc).encode())
    assert status == 201, (status, body)
    return json.loads(body)


def get_ok(send, client, ent):
    status, body = send("GET", "/query/api/squids/%d" % ent["id"], {"X-Api-Client": client})
    return status == 200 and json.loads(body) == ent


def pairs(write, read, client, n=PAIRS, between=None, before=None):
    """n pairs: a POST through write, then at once the GET through read;
    before() runs before each request, between(i) after pair i. Returns
    the misses (an exception, such as a POST not answered 201, fails the
    case instead)."""
    misses = 0
    for i in range(n):
        if before:
            before()
        ent = post(write, client, i)
        if before:
            before()
        misses += not get_ok(read, client, ent)
        if between:
            between(i)
    return misses


def rotate_agents(s):
    """Closes HAProxy's SPOE connections (the agents stay UP): the next
    request opens one to the next agent in turn."""
    for name in ("agent1", "agent2"):
        s.cli("shutdown sessions server spoe_cutover/%s" % name)


def replicator(s):
    return next(p for p in s.procs if os.path.basename(p.log_path) == "replicator.log")


def agents_deciding(s):
    """How many decisions with read-your-writes each agent logged."""
    return [s.agent_log(i).count(" ryw") for i in range(len(s.agents))]


def plan_without_ryw(tmp_path):
    """The sample plan with its read_your_writes block (and phase 7's
    restatement that only drops it) taken out."""
    with open(system.PLAN) as f:
        text = f.read()
    block = re.compile(r"\n        # Writes still go to OLD.*?          backend: old_query\n", re.S)
    text, n = block.subn("\n", text)
    assert n == 1
    seven = re.compile(r"    routes:\n      # Every write has gone to NEW.*?rewrite: \S+\n", re.S)
    text, n = seven.subn("", text)
    assert n == 1 and not re.search(r"^ *read_your_writes:", text, re.M)
    path = str(tmp_path / "no-ryw.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.fixture
def stack(request):
    started = []

    def start(name, phase, **kw):
        s = System("ryw-" + name, phase, agents=2, replicator=True, metrics=True, **kw)
        started.append(s)
        return s

    yield start
    problems = []
    for s in started:
        rep = replicator(s)
        rep.signal(signal.SIGCONT)
        problems += s.stop()
    assert not problems, problems


@pytest.mark.timeout(60)
def test_phases_4_5_6(stack):
    s = stack("phases", 4)
    figures = {}
    for phase in (4, 5, 6):
        s.set_phase(phase)
        s.wait_phase(phase)
        send = KeepAlive(s.http_port)
        try:
            figures["p%d-keepalive" % phase] = pairs(send, send, "p%d-keepalive" % phase)
        finally:
            send.close()
        # A new connection per request, and before each request HAProxy's
        # SPOE connection closed (both agents stay UP): the next one goes
        # to the other agent (balance roundrobin), so a write and its read
        # are decided by different agents.
        client = "p%d-newconn" % phase
        figures[client] = pairs(one_shot(s.http_port), one_shot(s.http_port), client,
                                before=lambda: rotate_agents(s))
        for client in ("p%d-keepalive" % phase, "p%d-newconn" % phase):
            n = PAIRS
            reads = [l for l in wait_logged(s.haproxy, client, 2 * n) if l[0] == "GET"]
            assert len(reads) == n, (client, reads)
            # 4, 5: every read follows its write to OLD; 6: writes go to
            # NEW, so no read is sent to OLD.
            ryw = sum(1 for l in reads if l[3] == "1")
            assert ryw == (n if phase < 6 else 0), (client, reads[:3])
            assert all(l[2] == ("old_query" if phase < 6 else "new_query") for l in reads)
    deciding = agents_deciding(s)
    print("\nread-your-writes misses per case (of %d): %s; decisions with ryw per agent: %s"
          % (PAIRS, figures, deciding))
    assert all(st == (2, 3) for st in s.server_states().values()), s.server_states()
    assert all(n > 0 for n in deciding), deciding
    assert sum(figures.values()) == 0, figures


@pytest.mark.timeout(60)
def test_without_ryw_reads_miss(stack, tmp_path):
    layout = system.Layout(plan_without_ryw(tmp_path), system.HAPROXY_CFG, system.haproxy_env,
                           system.SAMPLE.apps)
    s = stack("control", 4, layout=layout)
    send = KeepAlive(s.http_port)
    try:
        misses = pairs(send, send, "control")
    finally:
        send.close()
    print("\nwithout read_your_writes, phase 4: %d misses of %d" % (misses, PAIRS))
    assert misses > 0


@pytest.mark.timeout(60)
def test_writes_of_phase_5_read_in_phase_6(stack):
    s = stack("five-six", 5)
    rep = replicator(s)
    send = KeepAlive(s.http_port)
    try:
        rep.signal(signal.SIGSTOP)
        written = [post(send, "fivesix", i) for i in range(PAIRS)]
        t0 = time.monotonic()
        s.set_phase(6)
        s.wait_phase(6)
        misses = sum(not get_ok(send, "fivesix", e) for e in written)
        elapsed = time.monotonic() - t0
    finally:
        rep.signal(signal.SIGCONT)
        send.close()
    reads = [l for l in wait_logged(s.haproxy, "fivesix", 2 * PAIRS) if l[0] == "GET"]
    print("\nwritten at phase 5 (replicator paused), read at phase 6 %.1fs later: "
          "%d misses of %d, %d via OLD" % (elapsed, misses, PAIRS,
                                           sum(1 for l in reads if l[3] == "1")))
    assert elapsed < 4, "the reads must fall inside the 5 s window"
    assert len(reads) == PAIRS and all(l[3] == "1" and l[2] == "old_query" for l in reads)
    assert misses == 0


@pytest.mark.timeout(60)
def test_mark_survives_agent_restart(stack):
    s = stack("restart", 4)
    send = KeepAlive(s.http_port)
    before = []

    def kill_midway(i):
        if i == PAIRS // 2:
            s.stop_agent(0, signal.SIGKILL)
            s.start_agent(0)

    try:
        misses = pairs(send, send, "restart", between=kill_midway)
        # Writes whose marks only HAProxy holds now: the agent that saw them
        # is gone, and the other one stops too.
        before = [post(send, "restart2", i) for i in range(10)]
        rep = replicator(s)
        rep.signal(signal.SIGSTOP)  # so that only OLD has what follows
        before += [post(send, "restart2", i) for i in range(10, 20)]
        s.stop_agent(0, signal.SIGKILL)
        s.start_agent(0)
        s.wait_agents_up(["agent1"])
        s.stop_agent(1)
        late = sum(not get_ok(send, "restart2", e) for e in before)
    finally:
        replicator(s).signal(signal.SIGCONT)
        send.close()
    reads = [l for l in wait_logged(s.haproxy, "restart2", 40) if l[0] == "GET"]
    print("\nagent 1 killed mid-run: %d misses of %d; reads after the restart, by the "
          "new agent alone: %d misses of %d" % (misses, PAIRS, late, len(before)))
    assert len(reads) == len(before) and all(l[3] == "1" for l in reads), reads
    assert s.agent_log(0).count(" ryw") > 0
    assert misses == 0 and late == 0


def peer_env(base, local, peers):
    return dict(base, CUTOVER_PEER_LOCAL=local,
                CUTOVER_PEER1_NAME="node1", CUTOVER_PEER1_ADDR=peers[0],
                CUTOVER_PEER2_NAME="node2", CUTOVER_PEER2_ADDR=peers[1])


def wait_peer_connected(h, remote, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        out = h.cli("show peers")
        for line in out.splitlines():
            if "id=%s(remote" % remote in line and "last_status=ESTA" in line:
                return out
        if time.monotonic() > deadline:
            raise AssertionError("peer %s not connected:\n%s" % (remote, out))
        time.sleep(0.05)


def wait_agents_up_on(h, timeout=15.0):
    """Until HAProxy h runs both agents with a passed check (as
    System.wait_agents_up does for the System's own HAProxy)."""
    deadline = time.monotonic() + timeout
    while True:
        up = set()
        for line in h.cli("show servers state spoe_cutover").splitlines():
            f = line.split()
            if len(f) > 11 and f[1] == "spoe_cutover" and (f[5], f[11]) == ("2", "3"):
                up.add(f[3])
        if up == {"agent1", "agent2"}:
            return
        if time.monotonic() > deadline:
            raise AssertionError("HAProxy does not see both agents UP: %s" % sorted(up))
        time.sleep(0.05)


def wait_peers_deliver(write, writer, reader, tag, timeout=10.0):
    """A canary write through `write` (a connection to node `writer`), then
    wait until node `reader` holds its mark: the peer link from writer to
    reader delivers. Two HAProxy 2.6 nodes started together collide on their
    first peer sessions ("coll=1" in show peers), drop them about 0.8 s
    later and reconnect within another second, with or without a phase
    change; marks made meanwhile reach the other node only after that.
    Measuring reads then would measure the nodes' start-up, not
    read-your-writes."""
    client = "canary-%s" % tag
    post(write, client, 0)
    deadline = time.monotonic() + timeout
    while not mark_on(reader, client):
        if time.monotonic() > deadline:
            raise AssertionError("%s: the mark never reached the other node:\n%s\n%s" % (
                client, writer.cli("show peers"), reader.cli("show peers")))
        time.sleep(0.05)


def mark_on(h, client):
    """None when the stats socket gave no answer (it sometimes closes at
    once under a tight loop), else whether the client has a mark there."""
    out = h.cli("show table ryw_writes key %s" % client)
    if not out.strip():
        return None
    return re.search(r"key=%s .*gpt0=[1-9].* gpt1=[1-9]" % re.escape(client), out) is not None


@pytest.mark.timeout(60)
def test_two_haproxy_nodes(stack):
    peers = ["127.0.0.1:%d" % harness.free_port() for _ in range(2)]
    layout = system.Layout(system.PLAN, system.HAPROXY_CFG,
                           lambda *a: peer_env(system.haproxy_env(*a), "node1", peers),
                           system.SAMPLE.apps)
    s = stack("peers", 4, layout=layout)
    env2 = peer_env(system.haproxy_env(
        harness.free_port(), s.agent_addrs,
        {r: "127.0.0.1:%d" % p for r, p in s.app_ports.items()},
        os.path.join(s.dir, "haproxy2.sock"), s.fallback_dir), "node2", peers)
    h2 = system.Haproxy(env2, s.dir, name="haproxy2")
    s.procs.append(h2)
    wait_peer_connected(s.haproxy, "node2")
    wait_peer_connected(h2, "node1")
    # Until node 2's checks pass, its fallback routes, and the fallback has
    # no client state: both agents UP there before the first pair.
    wait_agents_up_on(h2)
    # Replication paused: a read finds its write on OLD only if the other
    # node had the mark when the read arrived.
    replicator(s).signal(signal.SIGSTOP)
    figures, seen = {}, []
    for phase in (4, 5, 6):
        if phase != 4:
            s.set_phase(phase)
            s.wait_phase(phase)
        # Writes on one node, reads on the other, each way.
        for src, dst, a, b in (("1", "2", s.http_port, h2.http_port),
                               ("2", "1", h2.http_port, s.http_port)):
            client = "peers-p%d-%s%s" % (phase, src, dst)
            w, r = KeepAlive(a), KeepAlive(b)
            try:
                wait_peers_deliver(w, h2 if src == "2" else s.haproxy,
                                   h2 if dst == "2" else s.haproxy, "p%d-%s%s" % (phase, src, dst))
                figures[client] = pairs(w, r, client)
            finally:
                w.close()
                r.close()
            reads = [l for l in wait_logged(h2 if dst == "2" else s.haproxy, client, PAIRS)
                     if l[0] == "GET"]
            assert len(reads) == PAIRS
            node = h2 if dst == "2" else s.haproxy
            assert sum(1 for l in reads if l[3] == "1") == (PAIRS if phase < 6 else 0), (
                "%s: misses %d; its reads as node %s logged them:\n%s" % (
                    client, figures[client], dst,
                    "\n".join([l for l in node.lines() if client in l and '"GET ' in l][:5])))
    # Propagation: a mark made on node 1, looked for on node 2's stats
    # socket right after the write's answer.
    for i in range(20):
        client = "prop-%d" % i
        send = KeepAlive(s.http_port)
        post(send, client, 0)
        t0 = time.monotonic()
        send.close()
        missing = 0  # answers from node 2 without the mark yet
        while True:
            on = mark_on(h2, client)
            if on:
                break
            missing += on is False
            assert time.monotonic() - t0 < 2, h2.cli("show table ryw_writes")
            time.sleep(0.001)
        seen.append((missing, (time.monotonic() - t0) * 1000))
    print("\ntwo HAProxy nodes, write on one, read on the other: misses %s; marks looked for "
          "on the other node after the write's answer: %d of %d there at its first answer, "
          "seen within %s ms (the socket's silences included)"
          % (figures, sum(1 for m, _ in seen if m == 0), len(seen),
             sorted(round(ms, 1) for _, ms in seen)))
    assert sum(figures.values()) == 0, figures
