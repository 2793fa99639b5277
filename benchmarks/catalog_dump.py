"""Compare the rows of two catalogs, table by table: did a change of how obsdb writes change what it writes?

Each table's rows are read as plain values; ids are left out (a batched insert may number rows
otherwise), every column naming a frame (``frame_id``, ``reference_frame_id``, ...) is replaced by
that frame's path, and times (columns ending in ``_at``, ``at``) are left out, as are the events'
details (they hold timings and temporary paths).  The rows of a table are then compared as
multisets; a difference prints the table and a few rows on each side.

Run on the catalogs ``night.py --keep`` leaves, of the old code and the new::

    python benchmarks/catalog_dump.py OLD.sqlite NEW.sqlite
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter

SKIPPED_TABLES = ("alembic_version", "sqlite_sequence", "sqlite_stat1", "sqlite_stat4")
"""Bookkeeping tables, not obsdb's rows."""


def dump(path: str) -> dict[str, Counter]:
    """Every table of a SQLite catalog as a multiset of rows (JSON strings), ids and times left out."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    paths = dict(db.execute("SELECT id, path FROM frame"))
    out = {}
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        if table in SKIPPED_TABLES:
            continue
        cursor = db.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cursor.description]
        rows = Counter()
        for values in cursor:
            row = {}
            for name, value in zip(names, values):
                if name == "id" or name == "at" or name.endswith("_at") or (table == "event" and name == "details"):
                    continue
                if name.endswith("frame_id") or (table == "frame" and name == "id"):
                    value = paths.get(value, value)
                if isinstance(value, bytes):
                    value = value.hex()
                row[name] = value
            rows[json.dumps(row, sort_keys=True, default=str)] += 1
        out[table] = rows
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--show", type=int, default=3, help="rows shown per side of a difference")
    args = parser.parse_args(argv)
    old, new = dump(args.old), dump(args.new)
    differ = 0
    for table in sorted(set(old) | set(new)):
        a, b = old.get(table, Counter()), new.get(table, Counter())
        if a == b:
            print(f"{table:24s} {sum(a.values()):8d} rows, identical")
            continue
        differ += 1
        only_old, only_new = a - b, b - a
        print(f"{table:24s} {sum(a.values()):8d} rows old, {sum(b.values())} new: "
              f"{sum(only_old.values())} only in old, {sum(only_new.values())} only in new")
        for side, rows in (("old", only_old), ("new", only_new)):
            for row in list(rows)[:args.show]:
                print(f"    {side}: {row[:300]}")
    print("identical" if not differ else f"{differ} tables differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
