# SPDX-License-Identifier: Apache-2.0
"""The sample shop's storage: one SQLite file per side, shared by its apps and
the replicator.

OLD keeps squids, NEW keeps seafoods; both tables are (id, name, price).
Contracts every program of scripts/apps relies on:
- ids never collide between the sides: OLD allocates odd ids (1, 3, 5, ...),
  NEW allocates even ids (2, 4, 6, ...), each from a counter that only grows,
  so a deleted id is never handed out again.
- every change to the entity table is appended to `changes` by triggers, in
  commit order (seq only grows), with the row's state after the change and its
  origin: 'replica' when the replicator wrote it, 'local' otherwise. The
  replicator sets replication_state.applying = 1 inside its own transaction;
  SQLite has one writer at a time, so no other writer ever sees that flag.
- replication_position (in the target db) holds, per source side, the last
  change seq applied; it is written in the same transaction as the changes.
- every row carries the version of its last write, and every deleted id a
  tombstone with the version of its delete. A version is the writer's clock
  in nanoseconds, above the version that row or tombstone has on this side,
  with the side's parity (odd on OLD, even on NEW), so no two writes to an
  id share one. The replicator applies a change only over an older version
  (last writer wins): when both sides take writes to one entity before it
  copies either, as while the agents switch writes from OLD to NEW, both end
  with the later write, and a delete stays a delete. Causally ordered writes
  (a client's next write sent after the answer to its last) are ordered so
  when the sides' clocks agree; on one host they do.
- writes go through write_row and delete_row (or the replicator), which
  keep the versions and tombstones; a direct INSERT gets version 0, older
  than any write.
"""
import sqlite3
import time

SIDES = {
    "old": {"table": "squids", "first_id": 1},
    "new": {"table": "seafoods", "first_id": 2},
}
ID_STEP = 2  # odd ids on OLD, even ids on NEW
BUSY_TIMEOUT_MS = 10000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {t} (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    price NUMERIC NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tombstones (
    id INTEGER PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS id_counter (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    next INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    id INTEGER NOT NULL,
    name TEXT,
    price NUMERIC,
    version INTEGER NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('local', 'replica'))
);
CREATE TABLE IF NOT EXISTS replication_state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    applying INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS replication_position (
    source TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO replication_state (one, applying) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS {t}_log_insert AFTER INSERT ON {t} BEGIN
    INSERT INTO changes (op, id, name, price, version, origin)
    SELECT 'insert', NEW.id, NEW.name, NEW.price, NEW.version,
           CASE applying WHEN 1 THEN 'replica' ELSE 'local' END
    FROM replication_state;
END;
CREATE TRIGGER IF NOT EXISTS {t}_log_update AFTER UPDATE ON {t} BEGIN
    INSERT INTO changes (op, id, name, price, version, origin)
    SELECT 'update', NEW.id, NEW.name, NEW.price, NEW.version,
           CASE applying WHEN 1 THEN 'replica' ELSE 'local' END
    FROM replication_state;
END;
CREATE TRIGGER IF NOT EXISTS {t}_log_delete AFTER DELETE ON {t} BEGIN
    INSERT INTO changes (op, id, name, price, version, origin)
    SELECT 'delete', OLD.id, NULL, NULL,
           coalesce((SELECT version FROM tombstones WHERE id = OLD.id), OLD.version),
           CASE applying WHEN 1 THEN 'replica' ELSE 'local' END
    FROM replication_state;
END;
"""


def table(side):
    return SIDES[side]["table"]


def connect(path):
    """A connection in autocommit mode; callers open transactions explicitly."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000.0, isolation_level=None)
    db.execute("PRAGMA busy_timeout = %d" % BUSY_TIMEOUT_MS)
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def open_side(path, side):
    """Opens (creating if needed) the db of one side and checks it is that side's.

    Several processes may call this at once on a fresh file; every step is
    idempotent and runs under SQLite's write lock.
    """
    db = connect(path)
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000.0
    while True:  # switching to WAL can report "locked" while another opener does it
        try:
            db.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    t = table(side)
    db.execute("BEGIN IMMEDIATE")
    try:
        for stmt in _statements(_SCHEMA.format(t=t)):
            db.execute(stmt)
        columns = [r[1] for r in db.execute("PRAGMA table_info(%s)" % t)]
        if "version" not in columns:
            raise SystemExit("%s: made by an older scripts/apps (no row versions); "
                             "remove it to start afresh" % path)
        row = db.execute("SELECT value FROM meta WHERE key = 'side'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta (key, value) VALUES ('side', ?)", (side,))
        elif row[0] != side:
            raise SystemExit("%s: this is the %s database, not %s" % (path, row[0], side))
        top = db.execute("SELECT max(id) FROM %s WHERE id %% 2 = ?" % t,
                         (SIDES[side]["first_id"] % 2,)).fetchone()[0]
        first = SIDES[side]["first_id"] if top is None else top + ID_STEP
        db.execute("INSERT OR IGNORE INTO id_counter (one, next) VALUES (1, ?)", (first,))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return db


def _statements(script):
    """Splits the schema script into statements (trigger bodies hold ';')."""
    out, buf = [], []
    for line in script.splitlines():
        if not line.strip():
            continue
        buf.append(line)
        text = "\n".join(buf)
        if sqlite3.complete_statement(text):
            out.append(text)
            buf = []
    return out


def allocate_id(db):
    """Next id of this side; call inside a write transaction."""
    (nid,) = db.execute("UPDATE id_counter SET next = next + ? WHERE one = 1 "
                        "RETURNING next - ?", (ID_STEP, ID_STEP)).fetchone()
    return nid


def next_version(db, side, eid):
    """The version of a write to eid made now on this side; call inside a
    write transaction."""
    t = table(side)
    (seen,) = db.execute("SELECT max(coalesce((SELECT version FROM %s WHERE id = ?), 0), "
                         "coalesce((SELECT version FROM tombstones WHERE id = ?), 0))" % t,
                         (eid, eid)).fetchone()
    v = max(time.time_ns(), seen + 1)
    return v if v % 2 == SIDES[side]["first_id"] % 2 else v + 1


def write_row(db, side, eid, fields, insert=False):
    """Inserts eid or sets the given fields of it, as a local write; returns
    (id, name, price), or None when an update finds no row. Call inside a
    write transaction."""
    v = next_version(db, side, eid)
    if insert:
        db.execute("INSERT INTO %s (id, name, price, version) VALUES (?, ?, ?, ?)" % table(side),
                   (eid, fields["name"], fields["price"], v))
        return eid, fields["name"], fields["price"]
    sets = "".join("%s = ?, " % k for k in sorted(fields))
    return db.execute("UPDATE %s SET %sversion = ? WHERE id = ? RETURNING id, name, price"
                      % (table(side), sets),
                      [fields[k] for k in sorted(fields)] + [v, eid]).fetchone()


def delete_row(db, side, eid):
    """Deletes eid as a local write, leaving its tombstone; True when it was
    there. Call inside a write transaction."""
    v = next_version(db, side, eid)
    if db.execute("SELECT 1 FROM %s WHERE id = ?" % table(side), (eid,)).fetchone() is None:
        return False
    bury(db, eid, v)
    db.execute("DELETE FROM %s WHERE id = ?" % table(side), (eid,))
    return True


def bury(db, eid, version):
    """Records that eid was deleted at version (keeping a newer tombstone)."""
    db.execute("INSERT INTO tombstones (id, version) VALUES (?, ?) ON CONFLICT (id) "
               "DO UPDATE SET version = max(version, excluded.version)", (eid, version))
