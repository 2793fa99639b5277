"""Where an archive-wide listing's time goes: how a page's list of ids is bound, and what a record costs.

Two measurements on one SQLite catalog (default: the 1,000,000-frame catalog of
``benchmarks/catalog.py``), in this process, each the median of ``--repeat`` runs:

1. **A page's lookup by its ids**, the statement ``page_tags`` of :mod:`obsdb.catalog.statements`
   (a page's active tags) for the ids of ``--ids`` rejected V frames, through the stdlib ``sqlite3``
   with the list bound four ways:

   - ``named, new text``: one named parameter per id (``IN (:ids_0, :ids_1, ...)``, as SQLAlchemy
     writes it and the fast path did before 8e7027f), the text new each time, as each page's was
     (a different length or different names): prepared every time;
   - ``named, same text``: the same, with a text sqlite3 has prepared before (its statement cache);
   - ``positional``: one ``?`` per id (SQLAlchemy's own pysqlite binding);
   - ``json_each``: one parameter holding a JSON array, ``IN (SELECT value FROM json_each(:ids))``,
     as the fast path binds a list now (:data:`obsdb.catalog.lite._LIST_OF`).

   SQLite looks each named parameter up among those before it while preparing a statement, so the
   first way costs in proportion to the square of the list's length.

2. **A whole record of the JSON listing** (``obsdb rejected --format json``), per record, over the
   rejected V frames of ``--nights`` nights from the middle of the archive: the fast path's reading
   of the records (SQL, conversions and building the records), ``FrameRecord.to_json``, and the
   standard library's ``json.dumps`` of the result as the listing writes it (compact), and of the
   header (``keywords``) alone.

Run::

    python benchmarks/catalog.py --build-only --db /tmp/obsdb-bench-catalog.sqlite   # once
    python benchmarks/listing_costs.py --db /tmp/obsdb-bench-catalog.sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_DB = "/tmp/obsdb-bench-catalog.sqlite"


def median_ms(run, repeat: int) -> float:
    """The median wall time of ``run()`` in milliseconds, over ``repeat`` runs after one untimed."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def binding_costs(db: Path, n_ids: int, repeat: int) -> list[tuple[str, float, int]]:
    """Milliseconds of one ``page_tags`` lookup for ``n_ids`` ids, per way of binding the list."""
    from obsdb.catalog import lite_sql

    template = "".join(lite_sql.PIECES[i] for i in lite_sql.SQL["page_tags"])
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    ids = [row[0] for row in connection.execute(
        "SELECT id FROM frame WHERE status = 'rejected' AND band = 'V' ORDER BY id LIMIT ?", (n_ids,))]
    named = {f"ids_{i}": value for i, value in enumerate(ids)}
    named_text = template.replace("__[POSTCOMPILE_ids]", ", ".join(f":ids_{i}" for i in range(len(ids))))
    fresh = iter(range(10**9))

    def named_new_text():
        # A comment makes each text new to sqlite3's statement cache, as each page's text was.
        return connection.execute(f"{named_text} -- {next(fresh)}", named).fetchall()

    ways = [
        ("named, new text", named_new_text),
        ("named, same text", lambda: connection.execute(named_text, named).fetchall()),
        ("positional", lambda: connection.execute(
            template.replace("__[POSTCOMPILE_ids]", ", ".join("?" * len(ids))), ids).fetchall()),
        ("json_each", lambda: connection.execute(
            template.replace("__[POSTCOMPILE_ids]", "SELECT value FROM json_each(:ids)"),
            {"ids": json.dumps(ids)}).fetchall()),
    ]
    results = [(label, median_ms(run, repeat), len(run())) for label, run in ways]
    connection.close()
    return results


def record_costs(db: Path, n_nights: int, repeat: int) -> tuple[int, dict[str, float]]:
    """Records read, and microseconds per record of each part of the JSON listing."""
    from obsdb.catalog import readers
    from obsdb.catalog.lite import LiteCatalog
    from obsdb.catalog.records import FrameFilter
    from obsdb.cli.common import _dumps

    catalog = LiteCatalog.open(str(db), None)
    if catalog is None:
        sys.exit(f"{db}: not a catalog the fast path reads (missing, not writable, or another revision)")
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    nights = [row[0] for row in connection.execute("SELECT name FROM night ORDER BY name")]
    connection.close()
    middle = len(nights) // 2
    names = nights[middle:middle + n_nights]
    selection = FrameFilter(nights=names, band="V", status="rejected")
    records = list(readers.iter_frame_records(catalog.run, selection))
    shapes = [record.to_json() for record in records]
    n = max(len(records), 1)
    parts = {
        "read the records (SQL, conversions, records)":
            median_ms(lambda: list(readers.iter_frame_records(catalog.run, selection)), repeat),
        "FrameRecord.to_json": median_ms(lambda: [record.to_json() for record in records], repeat),
        "json.dumps of the record (compact)":
            median_ms(lambda: [_dumps(shape, separators=(",", ":")) for shape in shapes], repeat),
        "  of which the header alone": median_ms(lambda: [json.dumps(shape["keywords"]) for shape in shapes], repeat),
    }
    catalog.close()
    return len(records), {label: ms * 1000 / n for label, ms in parts.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=DEFAULT_DB, help=f"an SQLite catalog (default {DEFAULT_DB})")
    parser.add_argument("--ids", type=int, default=1300, help="ids in the page's lookup (default 1300)")
    parser.add_argument("--nights", type=int, default=40, help="nights whose rejected V frames are read (default 40)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each, median (default 7)")
    args = parser.parse_args(argv)
    db = Path(args.db)
    if not db.is_file():
        sys.exit(f"{db}: no such catalog; build one with python benchmarks/catalog.py --build-only --db {db}")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{now}: python benchmarks/listing_costs.py {' '.join(sys.argv[1:])}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; SQLite {sqlite3.sqlite_version}; catalog {db}")
    print()
    print(f"1. one page_tags lookup by {args.ids} ids, median of {args.repeat}")
    for label, ms, rows in binding_costs(db, args.ids, args.repeat):
        print(f"   {label:<20} {ms:8.2f} ms   ({rows} rows)")
    count, parts = record_costs(db, args.nights, args.repeat)
    print()
    print(f"2. the JSON listing's records, {count} rejected V frames of {args.nights} nights, median of "
          f"{args.repeat}, per record")
    for label, us in parts.items():
        print(f"   {label:<46} {us:7.1f} us")
    print(f"\nload average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
