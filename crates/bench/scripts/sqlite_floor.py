#!/usr/bin/env python3
"""What SQLite alone needs to store signals, on this machine.

Replays, into a copy of a database filled by `opsdesk-bench events`, the rows one occurrence of
a signal writes: its receipt, the signal row (a stored one copied, with the next id and the
current time), its audit entry (likewise), its ticket's new state and its problem's
correlation. Groups of N events go in one transaction, with the pragmas of opsdesk's writer.
No HTTP, no JSON parsing, no ingest logic: the time is SQLite's (and this script's, which it
measures too, so that it can be taken off).

    python3 sqlite_floor.py COPY_OF_DB [--without INDEX ...] [GROUP_SIZE ...]

The database is written to; pass a copy. `--without` drops an index first, to see what it
costs. Prints microseconds per event for each group size, in total and per kind of row.
"""

import hashlib
import os
import random
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone

EVENTS = 4_500


def connect(path):
    c = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode = wal",
        "synchronous = normal",
        "wal_autocheckpoint = 0",
        "cache_size = -16384",
        "temp_store = memory",
        "foreign_keys = on",
    ):
        c.execute(f"PRAGMA {pragma}")
    return c


class Replay:
    def __init__(self, c):
        self.c = c
        self.signal_columns = [r[1] for r in c.execute("PRAGMA table_info(signals)")]
        self.signals = c.execute("SELECT * FROM signals ORDER BY random() LIMIT 500").fetchall()
        self.audits = c.execute(
            "SELECT * FROM audit_log WHERE action = 'ticket.occurrence' ORDER BY random() LIMIT 500"
        ).fetchall()
        self.problems = c.execute("SELECT source, dedup_key, ticket_id FROM correlations").fetchall()
        if not (self.signals and self.audits and self.problems):
            sys.exit("the database holds no signals, occurrences or correlations: fill it first")
        self.next_id = c.execute("SELECT MAX(id) FROM signals").fetchone()[0] + 1
        self.next_seq = c.execute("SELECT MAX(seq) FROM audit_log").fetchone()[0] + 1
        self.clock = datetime(2027, 1, 1, tzinfo=timezone.utc)
        self.at = self.signal_columns.index("received_at")
        self.ticket_at = self.signal_columns.index("ticket_id")
        insert = ", ".join("?" * len(self.signal_columns))
        self.sql = {
            "receipt": "INSERT INTO signal_receipts (receipt_key, received_at) VALUES (?, ?) "
            "ON CONFLICT (receipt_key) DO NOTHING",
            "signal": f"INSERT INTO signals ({', '.join(self.signal_columns)}) VALUES ({insert})",
            "audit": "INSERT INTO audit_log (seq, at, actor, action, ticket_id, changes, prev_hash, "
            "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            "ticket": "UPDATE tickets SET updated_at = ?, version = version + 1 WHERE id = ?",
            "correlation": "UPDATE correlations SET occurrences = occurrences + 1, last_seen_at = ? "
            "WHERE source = ? AND dedup_key = ?",
        }

    def now(self):
        self.clock += timedelta(milliseconds=1)
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def rows(self, kind, n):
        out = []
        for _ in range(n):
            source, dedup_key, ticket = random.choice(self.problems)
            now = self.now()
            if kind == "receipt":
                out.append((hashlib.sha256(os.urandom(16)).hexdigest(), now))
            elif kind == "signal":
                row = list(random.choice(self.signals))
                row[0], row[self.at], row[self.ticket_at] = self.next_id, now, ticket
                self.next_id += 1
                out.append(row)
            elif kind == "audit":
                row = list(random.choice(self.audits))
                row[0], row[1], row[4] = self.next_seq, now, ticket
                self.next_seq += 1
                out.append(row)
            elif kind == "ticket":
                out.append((now, ticket))
            else:
                out.append((now, source, dedup_key))
        return out

    def run(self, kinds, n):
        """Microseconds per event, writing `kinds` for groups of `n` events."""
        groups = max(2, EVENTS // n)
        spent = 0.0
        for _ in range(groups):
            batches = [(k, self.rows(k, n)) for k in kinds]
            start = time.perf_counter()
            self.c.execute("BEGIN IMMEDIATE")
            for kind, rows in batches:
                self.c.executemany(self.sql[kind], rows)
            self.c.execute("COMMIT")
            spent += time.perf_counter() - start
        return spent / (groups * n) * 1e6


def own_cost(replay, n):
    """This script's share: the same signal rows into a memory table with no index."""
    m = sqlite3.connect(":memory:", isolation_level=None)
    m.execute(f"CREATE TABLE signals ({', '.join(replay.signal_columns)})")
    insert = ", ".join("?" * len(replay.signal_columns))
    groups = max(2, EVENTS // n)
    spent = 0.0
    for _ in range(groups):
        rows = replay.rows("signal", n)
        start = time.perf_counter()
        m.execute("BEGIN")
        m.executemany(f"INSERT INTO signals VALUES ({insert})", rows)
        m.execute("COMMIT")
        spent += time.perf_counter() - start
    return spent / (groups * n) * 1e6


def main():
    if len(sys.argv) < 2 or not os.path.isfile(sys.argv[1]):
        sys.exit(__doc__)
    args = sys.argv[2:]
    dropped = []
    while args and args[0] == "--without" and len(args) > 1:
        dropped.append(args[1])
        args = args[2:]
    sizes = [int(s) for s in args] or [15, 100, 800]
    c = connect(sys.argv[1])
    for index in dropped:
        try:
            c.execute(f'DROP INDEX "{index}"')
        except sqlite3.OperationalError as e:
            sys.exit(f"cannot leave out index {index!r}: {e}")
    replay = Replay(c)
    kinds = ["receipt", "signal", "audit", "ticket", "correlation"]
    without = f"; without {', '.join(dropped)}" if dropped else ""
    print(f"SQLite {sqlite3.sqlite_version}; {EVENTS} events per measurement{without}")
    for n in sizes:
        total = replay.run(kinds, n)
        parts = {k: replay.run([k], n) for k in kinds}
        shown = ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
        print(
            f"{n:4d} events per commit: {total:6.1f} us per event "
            f"({shown}); this script's own share about {own_cost(replay, n):.1f} us per row"
        )


if __name__ == "__main__":
    main()
