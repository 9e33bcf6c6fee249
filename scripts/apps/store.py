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
    price NUMERIC NOT NULL
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
    INSERT INTO changes (op, id, name, price, origin)
    SELECT 'insert', NEW.id, NEW.name, NEW.price,
           CASE applying WHEN 1 THEN 'replica' ELSE 'local' END
    FROM replication_state;
END;
CREATE TRIGGER IF NOT EXISTS {t}_log_update AFTER UPDATE ON {t} BEGIN
    INSERT INTO changes (op, id, name, price, origin)
    SELECT 'update', NEW.id, NEW.name, NEW.price,
           CASE applying WHEN 1 THEN 'replica' ELSE 'local' END
    FROM replication_state;
END;
CREATE TRIGGER IF NOT EXISTS {t}_log_delete AFTER DELETE ON {t} BEGIN
    INSERT INTO changes (op, id, name, price, origin)
    SELECT 'delete', OLD.id, NULL, NULL,
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
