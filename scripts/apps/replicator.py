#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Replicates the sample shop between its OLD and NEW databases.

  replicator.py --old OLD.db --new NEW.db [--interval 0.05] [--pidfile FILE]
                [--drain-once] [--drain-timeout 30]

OLD squids are copied into NEW seafoods, and NEW seafoods back into OLD
squids, so that stepping back from phase 6 (writes on NEW) loses nothing.
How (schema in store.py):
- each db has a change log filled by triggers; every entry carries the row's
  state after the change and its origin. Only 'local' changes are copied; the
  replicator's own writes are logged as 'replica', so nothing ping-pongs.
- changes are applied in seq order, in batches; each batch and the new
  position (the last seq applied, kept in the target db) commit together, so
  a restart resumes exactly where the last run stopped.
- the first time a target meets a source (no position yet) it copies a
  consistent snapshot of the rows the source side owns (its id parity)
  instead of replaying the log; rows the source holds as copies of the
  target's may be stale there.
- inserts and updates are applied as upserts of the logged state, deletes as
  deletes with a tombstone, each only over an older version of the row (last
  writer wins, store.py), so writes both sides took to one entity end the
  same on both, and applying a change twice would be harmless too.
- applied log entries are pruned from the source about once a second.

SIGTERM/SIGINT: stop taking new work, apply everything the logs held at that
moment in both directions, then exit 0 (1 if that takes over --drain-timeout).
--drain-once: apply everything pending, then exit.
"""
import argparse
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import store  # noqa: E402

BATCH = 500
PRUNE_EVERY_S = 1.0


def log(msg):
    print("%s replicator: %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


class Direction:
    """One way of the replication: source side's changes into the target side."""

    def __init__(self, src_side, src, dst_side, dst):
        self.src_side, self.src = src_side, src
        self.dst_side, self.dst = dst_side, dst
        self.src_table, self.dst_table = store.table(src_side), store.table(dst_side)
        self.name = "%s->%s" % (src_side, dst_side)
        self.applied = 0
        self.pruned_at = 0.0

    def position(self):
        row = self.dst.execute("SELECT seq FROM replication_position WHERE source = ?",
                               (self.src_side,)).fetchone()
        return None if row is None else row[0]

    def head(self):
        """The newest seq in the source log (0 when empty)."""
        return self.src.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]

    def step(self):
        """Applies one batch; returns how many log entries it consumed."""
        pos = self.position()
        if pos is None:
            return self.snapshot()
        entries = self.src.execute(
            "SELECT seq, op, id, name, price, version, origin FROM changes WHERE seq > ? "
            "ORDER BY seq LIMIT ?", (pos, BATCH)).fetchall()
        if entries:
            local = [e for e in entries if e[6] == "local"]
            self.apply((e[1:6] for e in local), entries[-1][0])
            self.applied += len(local)
            pos = entries[-1][0]
        self.prune(pos)
        return len(entries)

    def snapshot(self):
        self.src.execute("BEGIN")  # one read transaction: rows and head agree
        try:
            head = self.head()
            # Only the source side's own rows (by id parity): rows it holds as
            # copies of the target's may be stale there by now.
            rows = self.src.execute("SELECT id, name, price, version FROM %s WHERE id %% 2 = ?"
                                    % self.src_table,
                                    (store.SIDES[self.src_side]["first_id"] % 2,)).fetchall()
        finally:
            self.src.execute("COMMIT")
        self.apply((("insert",) + r for r in rows), head)
        self.applied += len(rows)
        log("%s: first sync, snapshot of %d rows up to change %d"
            % (self.name, len(rows), head))
        return max(len(rows), 1)

    def apply(self, changes, new_pos):
        db, t = self.dst, self.dst_table
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("UPDATE replication_state SET applying = 1")
            for op, eid, name, price, version in changes:
                if op == "delete":
                    store.bury(db, eid, version)
                    db.execute("DELETE FROM %s WHERE id = ? AND version < ?" % t, (eid, version))
                    continue
                buried = db.execute("SELECT version FROM tombstones WHERE id = ?",
                                    (eid,)).fetchone()
                if buried is not None and buried[0] > version:
                    continue  # deleted here after this write
                db.execute("INSERT INTO %s (id, name, price, version) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                           "price = excluded.price, version = excluded.version "
                           "WHERE version < excluded.version" % t, (eid, name, price, version))
            db.execute("INSERT INTO replication_position (source, seq) VALUES (?, ?) "
                       "ON CONFLICT (source) DO UPDATE SET seq = excluded.seq",
                       (self.src_side, new_pos))
            db.execute("UPDATE replication_state SET applying = 0")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def prune(self, pos):
        now = time.monotonic()
        if now - self.pruned_at >= PRUNE_EVERY_S:
            self.src.execute("DELETE FROM changes WHERE seq <= ?", (pos,))
            self.pruned_at = now


class Replicator:
    def __init__(self, old_path, new_path):
        old = store.open_side(old_path, "old")
        new = store.open_side(new_path, "new")
        self.directions = [Direction("old", old, "new", new), Direction("new", new, "old", old)]
        self.stop = threading.Event()

    def pass_once(self):
        return sum(d.step() for d in self.directions)

    def drain(self, timeout):
        """Applies every change logged up to now; False if not done in time."""
        targets = [(d, d.head()) for d in self.directions]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all((d.position() or 0) >= head for d, head in targets):
                return True
            self.pass_once()
        return False

    def run(self, interval, drain_timeout):
        while not self.stop.is_set():
            if self.pass_once() == 0:
                self.stop.wait(interval)
        ok = self.drain(drain_timeout)
        self.report("stopped" if ok else "drain timed out")
        return 0 if ok else 1

    def report(self, what):
        log("%s: %s" % (what, ", ".join("%s applied %d (position %s)"
                                        % (d.name, d.applied, d.position())
                                        for d in self.directions)))


def main():
    ap = argparse.ArgumentParser(description="cutover sample shop replicator (OLD <-> NEW)")
    ap.add_argument("--old", required=True, help="OLD db (squids)")
    ap.add_argument("--new", required=True, help="NEW db (seafoods)")
    ap.add_argument("--interval", type=float, default=0.05,
                    help="seconds between polls when idle (default 0.05)")
    ap.add_argument("--drain-timeout", type=float, default=30.0,
                    help="seconds allowed to drain on stop (default 30)")
    ap.add_argument("--drain-once", action="store_true",
                    help="apply everything pending, then exit")
    ap.add_argument("--pidfile")
    args = ap.parse_args()

    rep = Replicator(args.old, args.new)
    if args.drain_once:
        ok = rep.drain(args.drain_timeout)
        rep.report("drained" if ok else "drain timed out")
        return 0 if ok else 1
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: rep.stop.set())
    log("running: %s <-> %s, every %.3fs when idle" % (args.old, args.new, args.interval))
    try:
        return rep.run(args.interval, args.drain_timeout)
    finally:
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
