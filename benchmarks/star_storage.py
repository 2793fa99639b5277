"""How to store each frame's detected star list: one row per star, or one blob per frame.

Stars are measured once at ingest and read back by align and QA.  Two
layouts are compared, on SQLite (a file in a temporary folder) and on
PostgreSQL (a fresh database, dropped at the end):

- ``table``: a ``star`` table, one row per star, primary key
  ``(frame_id, idx)``; the float fields are 32-bit ``REAL``;
- ``blob``: a ``frame_stars`` table, one row per frame, whose ``data``
  column (``BYTEA`` / ``BLOB``) holds the frame's numpy structured array
  (little-endian float32 ``x y flux peak a b theta hfd``, int32 ``flags``)
  as ``arr.tobytes()``, read back with ``np.frombuffer``.

Per backend and layout (median of ``--repeat`` runs, fresh tables each run):

- write: SQLAlchemy Core ``insert()`` executemany with lists of dicts,
  25 frames per transaction as obsdb's ingest commits; building the
  parameters from the numpy arrays is inside the timed section;
- read 27 / read 500: one query (``WHERE frame_id IN (...)``, or all rows)
  into one structured array per frame, conversion included.  Both reads
  run once untimed first (after an ``ANALYZE`` on PostgreSQL): the timed
  reads are of a settled, cached catalog, as align and QA see it.  The
  garbage collector stays on, as in a real process (``gc.collect()``
  before each timed section); it costs the row layout, with its many
  Python objects, up to ~2x on reads and is most of the noise there;
- size: SQLite file size after ``VACUUM``; PostgreSQL
  ``pg_total_relation_size`` (heap, indexes and TOAST).

Run::

    python benchmarks/star_storage.py                  # 500 frames x 400 stars, 3 repeats
    python benchmarks/star_storage.py --no-postgres --frames 100 --repeat 1
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from numpy.lib.recfunctions import repack_fields

BATCH = 25
FIELDS = ("x", "y", "flux", "peak", "a", "b", "theta", "hfd")
DTYPE = np.dtype([(f, "<f4") for f in FIELDS] + [("flags", "<i4")])
ROW_DTYPE = np.dtype([("frame_id", "<i8")] + [(f, "<f4") for f in FIELDS] + [("flags", "<i4")])

metadata = sa.MetaData()
star = sa.Table(
    "star", metadata,
    sa.Column("frame_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    *(sa.Column(f, sa.REAL, nullable=False) for f in FIELDS),
    sa.Column("flags", sa.Integer, nullable=False),
)
frame_stars = sa.Table(
    "frame_stars", metadata,
    sa.Column("frame_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
TABLES = {"table": star, "blob": frame_stars}


def make_stars(n_frames, n_stars, seed=1):
    """Synthetic star lists, brightest first.

    Returns
    -------
    dict of int to numpy.ndarray
        Frame id (1..n_frames) -> structured array of dtype ``DTYPE``.
    """
    rng = np.random.default_rng(seed)
    frames = {}
    for fid in range(1, n_frames + 1):
        s = np.zeros(n_stars, DTYPE)
        s["x"], s["y"] = rng.uniform(0, 2048, (2, n_stars))
        s["flux"] = -np.sort(-rng.lognormal(8.0, 1.2, n_stars))
        s["a"] = rng.uniform(1.2, 3.0, n_stars)
        s["b"] = s["a"] * rng.uniform(0.7, 1.0, n_stars)
        s["theta"] = rng.uniform(-np.pi / 2, np.pi / 2, n_stars)
        s["peak"] = np.minimum(s["flux"] / (2 * np.pi * s["a"] * s["b"]), 65535.0)
        s["hfd"] = rng.normal(3.5, 0.4, n_stars)
        s["flags"] = np.where(rng.random(n_stars) < 0.05, rng.integers(1, 16, n_stars), 0)
        frames[fid] = s
    return frames


def write(engine, layout, frames):
    """Insert every frame's stars, ``BATCH`` frames per transaction; return seconds."""
    ids, keys = sorted(frames), ("frame_id", "idx", *DTYPE.names)
    t0 = time.perf_counter()
    for start in range(0, len(ids), BATCH):
        rows = []
        for fid in ids[start:start + BATCH]:
            s = frames[fid]
            if layout == "table":
                rows.extend(dict(zip(keys, (fid, i, *values))) for i, values in enumerate(s.tolist()))
            else:
                rows.append({"frame_id": fid, "n": len(s), "version": "stars-1", "data": s.tobytes()})
        with engine.begin() as conn:
            conn.execute(sa.insert(TABLES[layout]), rows)
    return time.perf_counter() - t0


def read(engine, layout, ids=None):
    """Read star lists back, one query.

    Parameters
    ----------
    ids : list of int, optional
        Frame ids to read (``WHERE frame_id IN (...)``); all frames if None.

    Returns
    -------
    dict of int to numpy.ndarray
        Frame id -> structured array of dtype ``DTYPE``.
    """
    table = TABLES[layout]
    if layout == "table":
        query = sa.select(*(table.c[k] for k in ROW_DTYPE.names)).order_by(table.c.frame_id, table.c.idx)
    else:
        query = sa.select(table.c.frame_id, table.c.data)
    if ids is not None:
        query = query.where(table.c.frame_id.in_(ids))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    if layout == "blob":
        return {fid: np.frombuffer(data, DTYPE) for fid, data in rows}
    flat = np.array([tuple(r) for r in rows], ROW_DTYPE)
    fids, starts = np.unique(flat["frame_id"], return_index=True)
    body = repack_fields(flat[list(DTYPE.names)])
    return {int(f): part for f, part in zip(fids, np.split(body, starts[1:]))}


def size_bytes(engine, layout, path=None):
    """Bytes on disk: the SQLite file after VACUUM, or PostgreSQL's total relation size."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if path is not None:
            conn.exec_driver_sql("VACUUM")
            return path.stat().st_size
        return conn.scalar(sa.text("SELECT pg_total_relation_size(:t)"), {"t": TABLES[layout].name})


def run_once(engine, layout, frames, some_ids, path=None):
    """One repeat on fresh tables; return (write s, read-27 ms, read-all ms, bytes)."""
    metadata.drop_all(engine)
    TABLES[layout].create(engine)
    gc.collect()
    seconds = write(engine, layout, frames)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"ANALYZE {TABLES[layout].name}")
    back = read(engine, layout)  # untimed warm-up (and statement cache), and a round-trip check
    assert all(np.array_equal(back[f], frames[f]) for f in frames), f"{layout}: round trip differs"
    assert len(read(engine, layout, some_ids)) == len(some_ids)
    del back
    timings = []
    for ids in (some_ids, None):
        gc.collect()
        t0 = time.perf_counter()
        read(engine, layout, ids)
        timings.append((time.perf_counter() - t0) * 1e3)
    return seconds, *timings, size_bytes(engine, layout, path)


def bench(backend, make_engine, frames, some_ids, repeat):
    """Median of ``repeat`` runs per layout; ``make_engine(layout, i)`` -> (engine, path)."""
    results = {}
    for layout in TABLES:
        runs = []
        for i in range(repeat):
            engine, path = make_engine(layout, i)
            try:
                runs.append(run_once(engine, layout, frames, some_ids, path))
            finally:
                engine.dispose()
        results[(backend, layout)] = [statistics.median(col) for col in zip(*runs)]
    return results


def postgres_database(url):
    """Create a fresh database; return (its URL, a function that drops it), or None if unreachable."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"obsdb_bench_stars_{os.getpid()}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        admin.dispose()
        print(f"PostgreSQL not reachable at {url} ({type(exc.orig).__name__}); SQLite only.")
        return None

    def drop():
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return sa.make_url(url).set(database=name), drop


def report(results, n_frames, n_stars, n_some, repeat):
    """Print the results table, then the table/blob ratios per backend."""
    some, every = f"read {n_some} ms", f"read {n_frames} ms"
    print(f"\n{n_frames} frames x {n_stars} stars, median of {repeat}; "
          f"writes in transactions of {BATCH} frames")
    head = (f"{'backend':<10} {'layout':<6} {'write s':>8} {'write ms/frame':>14} "
            f"{some:>10} {every:>11} {'size MiB':>9}")
    print(head)
    print("-" * len(head))
    for (backend, layout), (w, r27, rall, size) in results.items():
        print(f"{backend:<10} {layout:<6} {w:>8.3f} {w / n_frames * 1e3:>14.3f} "
              f"{r27:>10.2f} {rall:>11.1f} {size / 2**20:>9.2f}")
    print("\ntable / blob:")
    for backend in dict.fromkeys(b for b, _ in results):
        t, b = results[(backend, "table")], results[(backend, "blob")]
        w, r27, rall, size = (x / y for x, y in zip(t, b))
        print(f"  {backend:<10} write x{w:.1f}, {some[:-3]} x{r27:.1f}, {every[:-3]} x{rall:.1f}, "
              f"size x{size:.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--stars", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--no-postgres", action="store_true", help="run SQLite only")
    args = ap.parse_args(argv)

    frames = make_stars(args.frames, args.stars)
    some_ids = sorted({int(i) for i in np.linspace(1, args.frames, min(27, args.frames))})
    results = {}
    with tempfile.TemporaryDirectory(prefix="obsdb-stars-") as tmp:
        def sqlite_engine(layout, i):
            path = Path(tmp) / f"{layout}-{i}.sqlite"
            return sa.create_engine(f"sqlite:///{path}"), path

        results.update(bench("sqlite", sqlite_engine, frames, some_ids, args.repeat))

    pg = None if args.no_postgres else postgres_database(args.postgres_url)
    if pg is not None:
        url, drop = pg
        try:
            results.update(bench("postgresql", lambda layout, i: (sa.create_engine(url), None),
                                 frames, some_ids, args.repeat))
        finally:
            drop()
    report(results, args.frames, args.stars, len(some_ids), args.repeat)


if __name__ == "__main__":
    main()
