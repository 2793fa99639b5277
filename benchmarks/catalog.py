"""The catalog at archive scale: 1,000,000 frames over 2,000 nights, queried from the CLI and from Python.

Method
------
1. Build (not timed against any target; build time and file size are
   printed) a catalog of ``--nights`` x ``--per-night`` frames (default
   2,000 x 500): numbers 1001.. in every night, so numbers repeat across
   nights as in a real archive; bands B/V/R round-robin; two instruments
   (one per night); two targets per night.  The schema is made the real way
   (``obsdb --db PATH init``: the Alembic migrations); the rows are then
   bulk-inserted with the stdlib ``sqlite3`` module (``executemany``, one
   transaction per 50 nights, ``journal_mode=WAL``, ``synchronous=OFF``,
   foreign keys off while loading and ``PRAGMA foreign_key_check`` after),
   then the derived data (``frame.status``, the night summaries,
   ``frame_quality``) filled by migration 0011's own set-based backfill, as
   ``obsdb init`` does when it upgrades a catalog of the previous release
   (timed: "0011 backfill").  No ANALYZE by default (``--analyze`` runs one):
   the catalog is measured as users have it, and obsdb keeps its planner
   statistics itself (``PRAGMA optimize`` as each connection closes, see
   ``obsdb/catalog/db.py``), so the first commands timed leave statistics
   behind them ("ANALYZE statistics" in the output says whether there were
   any when the timing started).

   On PostgreSQL (``--backend postgresql``, or ``--db`` a
   ``postgresql+psycopg://`` URL) the same rows (one generator,
   :func:`generate_rows`, feeds both loaders) go into a database of their
   own, created on the server (``CREATE DATABASE``, as ``NAME_building``,
   renamed to ``NAME`` when complete) and given its schema by ``obsdb --db
   URL init``.  They are loaded with psycopg 3 ``COPY ... FROM STDIN``
   (``cursor.copy().write_row``, one transaction per 50 nights, in a UTC
   session, ``synchronous_commit=off``); the foreign keys and the secondary
   indexes are dropped first and made again from their own definitions at
   the end (one validating join per key instead of a trigger per row: the
   counterpart of ``foreign_key_check``), the id sequences are moved past
   the loaded ids, then ``VACUUM (ANALYZE)``: VACUUM sets the visibility
   map that index-only scans need, which a real catalog gets from
   autovacuum soon after a bulk write.  Without ``--analyze`` it runs VACUUM
   alone, and autovacuum analyzes the tables within minutes (the server
   decides; "ANALYZE statistics" in the output says what it found).
   The rows look like those ingest, qa, align and tag write (see
   ``obsdb/catalog/writes.py``, ``catalog.py``, ``pipeline/align.py``):

   - every frame readable, light, with a ~1 kB JSON header, sha256, path
     ``/archive/NIGHT/TARGET_BAND_NUMBER.fits``, ``frame_stats`` and
     ``frame_metrics`` rows (versions from the code: stats-1, metrics-3);
     the last 2 nights are not assessed by QA (``assessed_at`` NULL, no
     rule tags: their frames are ``pending``);
   - tags: about a fifth of the assessed frames carry an active rejecting
     tag (as in the archive the issue describes: some 65,000 of the 333,000
     V frames are rejected; rule ``cloud``/``focus``/``trail``/``few-stars`` with the rule's
     reason text, or a manual ``reject``/``tracking-*``/``use-if-must``/
     ``focus-slight``), some two; 3 % of those are overridden by a manual
     ``accept``; ~8 % of frames have retracted tags (a manual reject
     retracted, a rule tag superseded or no longer holding, a retracted
     ``unregistered``), 5 % a ``great``/``okay``;
   - alignment: one ``auto`` run per target and night with one shift step
     per frame (rejected frames too: the heavier case); every 4th night
     (counted from the middle one) also a newer ``staged`` run for the first
     target with pointing groups, decisions, 3 steps and 2 box centroids per
     frame; the last 20 nights and the middle night also have stored star
     lists (40 stars) and 10 matched-star centroid rows per frame of their
     auto runs;
   - events: ingest, qa, group auto, align and tag/untag per night, and a
     ``content changed`` event for 1 frame in 1,000.

   The catalog is kept in a cache file (default
   ``/tmp/obsdb-bench-catalog.sqlite``, or ``...-NIGHTSxPER.sqlite`` for
   other sizes) or database (default ``obsdb_bench_catalog``, or
   ``..._NIGHTSxPER``, on ``--pg-server``, default
   ``postgresql+psycopg://postgres@127.0.0.1:5432`` or ``$OBSDB_BENCH_PG``)
   and reused when it exists (``--rebuild`` forces a new one; ``--db PATH``
   or ``--db URL`` names another, built there if missing).  Drop a
   PostgreSQL one when done: ``psql -c 'DROP DATABASE obsdb_bench_catalog'``.

2. Time each CLI command as a subprocess, wall clock from start to exit:
   one untimed warm-up, then the median of ``--repeat`` runs (default 5;
   ``--heavy-repeat``, default 3, for the all-nights listing), stdout to
   ``/dev/null`` except for the all-nights listing, whose JSON is read
   through a pipe to count its records.  Peak RSS of every child comes from
   ``/usr/bin/time -f %M`` around it (a direct child's ``ru_maxrss`` would
   start at this script's size: Linux keeps the high-water mark across fork
   and exec); its RSS is also sampled from ``/proc/PID/status`` every 50 ms,
   to tell flat memory from growth for the all-nights listing ("flat": the
   highest RSS in the second half of the run is within 10 % + 16 MiB of the
   highest in the first half, over the time records are being written;
   "?" when that is too short to tell).  The commands: ``rejected
   --night N --band V``, ``frames --night N --where 'median > 5000' --format
   json``, ``history N:1234``, ``show N:1234``, ``nights``, ``summary --night
   N`` (N: the middle night), ``rejected --band V --night all --format
   json``; for information also the all-nights ``rejected`` as a table (one
   run, ``--table-timeout``), and ``python -c pass`` and ``obsdb --help``
   for start-up.

3. Time the Catalog call each command makes (see ``obsdb/cli/*.py``), in
   this process, on one ``obsdb.Catalog.open(DB)``: one warm-up, then the
   median of the repeats ("SQL ms": the SQL plus the ORM and record
   building the command cannot avoid).  The statements of the warm-up are
   captured with a ``before_cursor_execute`` listener on ``cat.engine`` and
   replayed with their parameters through ``sqlite3`` or psycopg
   (``fetchall``, one connection) for "raw SQL ms": the database's own
   share (on PostgreSQL with the round trip to the server).

4. Print ``EXPLAIN QUERY PLAN`` (PostgreSQL: ``EXPLAIN (ANALYZE, BUFFERS)``,
   which runs the statement: they are all reads) for every distinct
   statement captured, and flag each scan of a big table (frame,
   frame_stats, frame_metrics, tag, shift_step, centroid, star_list,
   event): ``FULL SCAN`` without an index (SQLite ``SCAN``, PostgreSQL
   ``Seq Scan``), ``full index scan`` through one (SQLite ``SCAN ... USING``,
   PostgreSQL an index scan with no ``Index Cond``).

5. Print the results table against the targets (issue 25): <= 100 ms SQL
   and <= 0.15 s wall for the single-night and single-frame commands;
   <= 1 s wall for the archive-wide ones (``nights``, ``summary --night
   all``, ``rejected --band V --night all`` as a table and as JSON, the
   latter with flat memory) and <= 1 s SQL for the per-night status counts
   (a GROUP BY on ``frame.status``).  Each CLI figure has its CPU time
   (user + system, ``/usr/bin/time``) beside its wall time; the output
   starts with the date, the command line and the load average.

The machine is shared: the load average is printed with the results.  On
PostgreSQL the server's own settings (shared_buffers, work_mem, JIT) are
part of what is measured; the results line names the server version.

Run::

    python benchmarks/catalog.py                       # 1,000,000 frames (built once, ~minutes), 5 repeats
    python benchmarks/catalog.py --smoke               # 20 nights x 500 frames, 3 repeats: under a minute
    python benchmarks/catalog.py --nights 200 --repeat 3 --json
    python benchmarks/catalog.py --rebuild             # rebuild the cached catalog first
    python benchmarks/catalog.py --db archive.sqlite   # an existing catalog (middle night, frame 1234)

    # PostgreSQL (a server at 127.0.0.1:5432, user postgres with trust auth, or --pg-server URL):
    python benchmarks/catalog.py --backend postgresql --nights 200    # obsdb_bench_catalog_200x500, to try it
    python benchmarks/catalog.py --backend postgresql                 # obsdb_bench_catalog: 1,000,000 frames
    python benchmarks/catalog.py --db postgresql+psycopg://postgres@127.0.0.1:5432/NAME   # built if missing
    psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE obsdb_bench_catalog'               # when done
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from _children import child_env, obsdb_prefix  # noqa: E402 - benchmarks/ is on sys.path when run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = "/tmp/obsdb-bench-catalog.sqlite"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DEFAULT_PG_NAME = "obsdb_bench_catalog"
WIDTH = 110
BIG_TABLES = {"frame", "frame_stats", "frame_metrics", "tag", "shift_step", "centroid", "star_list", "event"}
NIGHTS_PER_TRANSACTION = 50
CENTROID_NIGHTS = 20
PENDING_NIGHTS = 2
STARS_PER_LIST = 40
MATCHED_PER_FRAME = 10
FIRST_NUMBER = 1001
AUTHORS = ("alice", "bob", "carol")
TARGETS = ("NGC3293", "NGC4755", "M83", "NGC5139", "NGC3532", "M4", "NGC6397", "IC2602", "NGC2516",
           "M7", "NGC4372", "NGC6752")
INSTRUMENTS = (
    {"id": 1, "key": "Lesedi 1.0m|FLI PL16803|4096x4096|1x1", "telescope": "Lesedi 1.0m", "camera": "FLI PL16803",
     "width": 4096, "height": 4096, "binning_x": 1, "binning_y": 1, "pixel_size": 9.0},
    {"id": 2, "key": "Elizabeth 1.0m|SBIG STX-16803|2048x2048|2x2", "telescope": "Elizabeth 1.0m",
     "camera": "SBIG STX-16803", "width": 2048, "height": 2048, "binning_x": 2, "binning_y": 2,
     "pixel_size": 18.0},
)
EXPTIME = {"B": 60.0, "V": 30.0, "R": 20.0}
MANUAL_REJECTS = (("reject", "satellite trail across the field"), ("reject", "wind shake, stars doubled"),
                  ("tracking-big", "stars elongated 8 px in ds9"), ("tracking-slight", "slight drift, 2 px"),
                  ("use-if-must", "thin cirrus in the corner"), ("focus-slight", "soft, focus drifting"))
QA_THRESHOLDS = {"cloud_background_ratio": 3.0, "cloud_transparency": 0.5, "trail_elongation": 1.6,
                 "focus_fwhm_ratio": 1.5, "min_stars": 5, "clear_quantile": 0.5, "cloud_background_max": None,
                 "focus_fwhm_max": None}
DT = "%Y-%m-%d %H:%M:%S.%f"                 # how SQLAlchemy stores DateTime on SQLite

# Columns written per table (checked against the schema: every NOT NULL column must be here).
COLUMNS = {
    "night": ("id", "name", "source", "site", "longitude", "first_date_obs", "last_date_obs", "created_at"),
    "instrument": ("id", "key", "telescope", "camera", "width", "height", "binning_x", "binning_y", "pixel_size"),
    "frame": ("id", "night_id", "instrument_id", "path", "file_name", "size", "mtime", "sha256", "number", "band",
              "image_type", "object", "exptime", "date_obs", "airmass", "width", "height", "bitpix", "header",
              "readable", "error", "ingested_at", "measured_at"),
    "frame_stats": ("frame_id", "min", "max", "mean", "median", "std", "background", "background_rms", "n_nan",
                    "n_saturated", "saturation", "algorithm"),
    "frame_metrics": ("frame_id", "n_stars", "fwhm", "hfd", "elongation", "background", "background_rms",
                      "background_gradient", "transparency", "transparency_reference_id", "algorithm",
                      "measured_at", "assessed_at"),
    "star_list": ("frame_id", "n_stars", "data", "algorithm", "measured_at"),
    "tag": ("id", "frame_id", "name", "source", "reason", "author", "created_at", "retracted_at", "retracted_by",
            "retract_reason"),
    "event": ("id", "at", "author", "command", "summary", "frame_id", "night_id", "details"),
    "decision": ("id", "night_id", "key", "frame_id", "value", "source", "author", "note", "created_at"),
    "pointing_group": ("id", "night_id", "name", "band", "reference_frame_id", "box_x0", "box_x1", "box_y0",
                       "box_y1", "ref_star_x", "ref_star_y", "source", "author", "created_at"),
    "group_member": ("group_id", "frame_id"),
    "alignment_run": ("id", "created_at", "method", "night_id", "target", "reference_frame_id", "parameters",
                      "software_version", "algorithm", "author"),
    "centroid": ("id", "frame_id", "run_id", "source", "method", "box_x0", "box_x1", "box_y0", "box_y1", "x", "y",
                 "flux", "star_index", "reference_star_index", "matched_x", "matched_y", "measured_at"),
    "shift_step": ("id", "run_id", "frame_id", "stage", "kind", "method", "dx", "dy", "rotation_deg", "scale",
                   "reference_frame_id", "centroid_id", "reference_centroid_id", "n_matched", "residual_rms",
                   "frame_sha256", "parameters"),
}


# ============================================================ subprocesses

TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def _status_kib(pid: int, *keys: str) -> dict:
    """VmRSS / VmHWM (KiB) of a running process; empty when it is gone."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in keys:
                    found[key] = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return found


def _child_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
        return int(children[0]) if children else None
    except (OSError, ValueError):
        return None


def run_child(argv, env, *, count_records=False, timeout=None) -> dict:
    """Run ``argv`` to its exit: wall s, exit code, peak RSS in KiB, RSS samples (s, KiB), stderr and,
    with ``count_records``, the number of records in the JSON list it prints on stdout.

    Peak RSS comes from ``/usr/bin/time -f %M`` around the command: a child's own ``ru_maxrss``
    would start at this process's size (Linux keeps the high-water mark across fork and exec), the
    grandchild of the small ``time`` process does not.  A thread samples VmRSS every 50 ms.
    """
    import tempfile
    import threading

    err = tempfile.TemporaryFile()
    rss_file = tempfile.NamedTemporaryFile(prefix="obsdb-bench-rss-", delete=False)
    rss_file.close()
    full = [TIME, "-f", "%U %S %M", "-o", rss_file.name, *argv] if TIME else list(argv)
    samples, hwm, stop = [], [0], threading.Event()
    t0 = time.perf_counter()
    proc = subprocess.Popen(full, env=env, stdin=subprocess.DEVNULL, stderr=err, start_new_session=True,
                            stdout=subprocess.PIPE if count_records else subprocess.DEVNULL)

    def sample():
        target = None
        while not stop.is_set():
            if target is None:
                target = _child_pid(proc.pid) if TIME else proc.pid
            if target is not None:
                status = _status_kib(target, "VmRSS", "VmHWM")
                if "VmRSS" in status:
                    samples.append((time.perf_counter() - t0, status["VmRSS"]))
                    hwm[0] = max(hwm[0], status.get("VmHWM", 0))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    records, timed_out, first_output = 0, False, None

    def kill():
        try:
            os.killpg(proc.pid, 9)                     # the group of this one child (time and obsdb)
        except ProcessLookupError:
            pass

    try:
        if count_records:
            # Records of print_json_stream start with a line '    "id": ...' (2 spaces + json indent 2).
            marker, tail = b'\n    "id": ', b""
            fd = proc.stdout.fileno()
            while True:
                chunk = os.read(fd, 1 << 16)
                if timeout is not None and time.perf_counter() - t0 > timeout and not timed_out:
                    timed_out = True
                    kill()
                if not chunk:
                    break
                if first_output is None:
                    first_output = time.perf_counter() - t0
                data = tail + chunk
                records += data.count(marker)
                tail = data[-(len(marker) - 1):]
            proc.stdout.close()
        try:
            proc.wait(timeout=None if timeout is None else max(0.0, timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            timed_out = True
            kill()
            proc.wait()
    finally:
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
    peak = cpu = None
    try:
        text = Path(rss_file.name).read_text().strip().splitlines()
        fields = text[-1].split() if text else []
        if len(fields) == 3 and fields[2].isdigit():
            cpu, peak = float(fields[0]) + float(fields[1]), int(fields[2])
    except (OSError, ValueError):
        pass
    Path(rss_file.name).unlink(missing_ok=True)
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    err.close()
    if TIME and stderr.rstrip().splitlines()[-1:] and "Command exited with non-zero status" in stderr:
        stderr = "\n".join(line for line in stderr.splitlines() if "Command exited with non-zero" not in line)
    return {"wall": wall, "cpu": cpu, "rc": proc.returncode, "maxrss_kib": peak or hwm[0] or None, "records": records,
            "samples": samples, "first_output": first_output, "stderr": stderr, "timed_out": timed_out}


def time_command(argv, env, repeat, *, count_records=False, warmup=True, timeout=None) -> dict:
    """One warm-up (does it work?), then the median of ``repeat`` runs."""
    if warmup:
        first = run_child(argv, env, count_records=count_records, timeout=timeout)
        if first["rc"] != 0 or first["timed_out"]:
            return {"error": _child_error(first), "walls": [first["wall"]]}
    runs = []
    for _ in range(repeat):
        r = run_child(argv, env, count_records=count_records, timeout=timeout)
        if r["rc"] != 0 or r["timed_out"]:
            return {"error": _child_error(r), "walls": [x["wall"] for x in runs] + [r["wall"]]}
        runs.append(r)
    longest = max(runs, key=lambda r: r["wall"])
    cpus = [r["cpu"] for r in runs if r["cpu"] is not None]
    return {"wall": statistics.median(r["wall"] for r in runs), "walls": [r["wall"] for r in runs],
            "cpu": statistics.median(cpus) if cpus else None,
            "maxrss_mib": max((r["maxrss_kib"] or 0) for r in runs) / 1024, "records": runs[-1]["records"],
            "samples": [(t, rss) for t, rss in longest["samples"] if t >= (longest["first_output"] or 0.0)]}


def _child_error(r) -> str:
    if r["timed_out"]:
        return f"timed out after {r['wall']:.0f} s (peak RSS {(r['maxrss_kib'] or 0) / 1024:.0f} MiB)"
    lines = [line for line in r["stderr"].strip().splitlines() if line.strip()]
    return f"exit code {r['rc']}: " + (" | ".join(lines[-3:]) if lines else "(no stderr)")


def flat_memory(samples) -> tuple[bool | None, str]:
    """Whether RSS stayed flat while records were written (see the module docstring), and a description."""
    if len(samples) < 8:
        return None, f"{len(samples)} RSS samples while writing records: too short a run to tell"
    half = (samples[0][0] + samples[-1][0]) / 2
    first = max(rss for t, rss in samples if t <= half)
    second = max(rss for t, rss in samples if t > half)
    quarters = [samples[min(len(samples) - 1, int(q * len(samples)))][1] / 1024 for q in (0.25, 0.5, 0.75, 0.999)]
    text = "RSS at 25/50/75/100 % of the output: " + " / ".join(f"{q:.0f}" for q in quarters) + " MiB"
    return second <= first * 1.10 + 16 * 1024, text


# ============================================================ building the catalog

def _ts(dt: datetime) -> str:
    return dt.strftime(DT)


def _check_schema(engine) -> None:
    """Every column written exists, and every NOT NULL column without a default is written."""
    from sqlalchemy import inspect

    inspector = inspect(engine)
    problems = []
    for table, columns in COLUMNS.items():
        if not inspector.has_table(table):
            problems.append(f"table {table} missing")
            continue
        info = inspector.get_columns(table)
        primary = set(inspector.get_pk_constraint(table)["constrained_columns"])
        names = {c["name"] for c in info}
        problems += [f"{table}.{c}: not in the schema" for c in columns if c not in names]
        problems += [f"{table}.{c['name']}: NOT NULL and not filled by this benchmark" for c in info
                     if not c["nullable"] and c.get("default") is None and c["name"] not in primary
                     and c["name"] not in columns]
    if problems:
        sys.exit("the schema differs from what benchmarks/catalog.py writes:\n  " + "\n  ".join(problems))


class Ids:
    """Sequential ids per table."""

    def __init__(self):
        self.n = {}

    def __call__(self, table: str) -> int:
        self.n[table] = self.n.get(table, 0) + 1
        return self.n[table]


def build_catalog(store, n_nights: int, per_night: int, *, analyze: bool, seed: int = 1) -> dict:
    """Create the catalog in ``store`` (built under a temporary name, renamed at the end); return build facts.

    The schema comes from ``obsdb init``; the rows from :func:`generate_rows`, the same on every
    backend; only the loader (``store.loader``) differs.
    """
    from sqlalchemy import create_engine, text

    t_start = time.perf_counter()
    tmp = store.building()
    tmp.remove()
    tmp.create()
    r = subprocess.run(obsdb_prefix() + ["--db", tmp.db_arg, "init"], env=child_env(), capture_output=True,
                       text=True)
    if r.returncode != 0:
        sys.exit(f"obsdb init failed ({r.returncode}): {r.stderr.strip()}")
    engine = create_engine(tmp.url)
    try:
        _check_schema(engine)
        with engine.connect() as connection:
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()

    counts = dict.fromkeys(COLUMNS, 0)
    facts = {"header_bytes": 0}
    loader = tmp.loader()
    for batch in generate_rows(n_nights, per_night, facts, seed=seed):
        for table in COLUMNS:
            if batch[table]:
                loader.write(table, batch[table])
                counts[table] += len(batch[table])
        loader.commit()
        done = facts["nights_done"]
        print(f"  built {done:,} of {n_nights:,} nights ({done * per_night:,} frames), "
              f"{time.perf_counter() - t_start:.0f} s", file=sys.stderr, flush=True)
    t_rows = time.perf_counter() - t_start
    timings = loader.finish(analyze=analyze)
    timings.update(backfill_derived(tmp))
    store.replace_with(tmp)
    return {"seconds": time.perf_counter() - t_start, "rows_seconds": t_rows, **timings, "analyzed": analyze,
            "revision": revision, "rows": counts, "mean_header_bytes": facts["header_bytes"] / max(1, counts["frame"])}


def backfill_derived(store) -> dict:
    """Fill the derived data (frame.status, night summaries, frame_quality) of the loaded rows with
    migration 0011's own set-based SQL, as `obsdb init` does when it upgrades a catalog of the previous
    release; its wall and CPU time are the upgrade's data work.  PostgreSQL then gets a plain VACUUM
    (the visibility map after the UPDATE of every frame), as autovacuum would do."""
    import importlib.util

    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import create_engine

    path = next((ROOT / "migrations" / "versions").glob("0011_*.py"))
    spec = importlib.util.spec_from_file_location("obsdb_migration_0011", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    engine = create_engine(store.url)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with engine.begin() as connection, Operations.context(MigrationContext.configure(connection)):
            migration._backfill()
    finally:
        engine.dispose()
    out = {"backfill_seconds": time.perf_counter() - t0, "backfill_cpu_seconds": time.process_time() - c0}
    if store.kind == "postgresql":
        con = store.connect()
        con.autocommit = True
        con.execute("VACUUM")
        con.close()
    return out


def generate_rows(n_nights: int, per_night: int, facts: dict, *, seed: int = 1):
    """The catalog's rows (see the module docstring), as tuples in the order of ``COLUMNS``.

    Yields one dict of table -> rows per ``NIGHTS_PER_TRANSACTION`` nights (the instruments come in
    the first); the lists are reused, so the caller must write them before asking for the next batch.
    ``facts`` gets the running ``header_bytes`` and ``nights_done``.  Timestamps are naive UTC text
    (``DT``), which SQLite keeps as it is and PostgreSQL reads as ``timestamptz`` in a UTC session.
    """
    import numpy as np

    from obsdb import __version__
    from obsdb.imaging.register import REGISTER_VERSION
    from obsdb.imaging.stars import STARS_VERSION, STORED_STAR_DTYPE
    from obsdb.imaging.stats import STATS_VERSION
    from obsdb.catalog.versions import METRICS_VERSION

    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    ids = Ids()
    mid = n_nights // 2
    numbers = list(range(FIRST_NUMBER, FIRST_NUMBER + per_night))
    split = per_night // 2                         # first half target A, second half target B
    start_day = datetime(2019, 1, 1)

    rows = {t: [] for t in COLUMNS}
    rows["instrument"] = [tuple(i[c] for c in COLUMNS["instrument"]) for i in INSTRUMENTS]

    def flush():
        yield rows
        for table in COLUMNS:
            rows[table].clear()

    def tag(frame_id, name, source, reason, author, created, retracted=None, by=None, why=None):
        rows["tag"].append((ids("tag"), frame_id, name, source, reason, author, _ts(created),
                            _ts(retracted) if retracted else None, by, why))

    def event(at, author, command, summary, *, frame_id=None, night_id=None, details=None):
        rows["event"].append((ids("event"), _ts(at), author, command, summary, frame_id, night_id,
                              None if details is None else json.dumps(details)))

    for n in range(n_nights):
        night_id = n + 1
        day = start_day + timedelta(days=n)
        name = day.strftime("%Y-%m-%d")
        inst = INSTRUMENTS[1 if n % 3 == 2 else 0]
        targets = (TARGETS[n % len(TARGETS)], TARGETS[(n + 5) % len(TARGETS)])
        observer = AUTHORS[n % len(AUTHORS)]
        moon = (1 - math.cos(2 * math.pi * n / 29.53)) / 2          # sky brightness follows the moon
        sky = 700.0 + 9000.0 * moon
        assessed = n < n_nights - PENDING_NIGHTS
        staged = (n - mid) % 4 == 0 and assessed
        with_stars = (n >= n_nights - PENDING_NIGHTS - CENTROID_NIGHTS or n == mid) and assessed
        t0 = day + timedelta(hours=18)
        ingested = day + timedelta(days=1, hours=10)
        qa_at = ingested + timedelta(hours=1)
        align_at = ingested + timedelta(hours=2)
        frame_ids, shas, bands, date_obs, fwhms = [], [], [], [], []
        first_id = n * per_night + 1
        ref_by_band = {}
        for k, number in enumerate(numbers):
            fid = first_id + k
            band = "BVR"[k % 3]
            target = targets[0 if k < split else 1]
            obs = t0 + timedelta(seconds=55.0 * k + rng.random())
            file_name = f"{target}_{band}_{number}.fits"
            fpath = f"/archive/{name}/{file_name}"
            sha = hashlib.sha256(fpath.encode()).hexdigest()
            exptime = EXPTIME[band]
            airmass = round(1.0 + 0.8 * abs(k - per_night / 2) / per_night + 0.05 * rng.random(), 4)
            w, h = inst["width"], inst["height"]
            obs_iso = obs.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            header = {"SIMPLE": True, "BITPIX": 16, "NAXIS": 2, "NAXIS1": w, "NAXIS2": h, "BZERO": 32768,
                      "BSCALE": 1, "DATE-OBS": obs_iso, "EXPTIME": exptime, "EXPOSURE": exptime,
                      "SET-TEMP": -25.0, "CCD-TEMP": round(-25.0 + 0.2 * rng.random() - 0.1, 3),
                      "XPIXSZ": inst["pixel_size"], "YPIXSZ": inst["pixel_size"], "XBINNING": inst["binning_x"],
                      "YBINNING": inst["binning_y"], "FILTER": band, "IMAGETYP": "Light Frame", "OBJECT": target,
                      "TELESCOP": inst["telescope"], "INSTRUME": inst["camera"], "OBSERVER": observer,
                      "SITENAME": "Sutherland", "SITELAT": -32.3794, "SITELONG": 20.8107,
                      "OBJCTRA": "10 35 49", "OBJCTDEC": "-58 13 00", "AIRMASS": airmass, "GAIN": 1.4,
                      "RDNOISE": 9.0, "SATURATE": 65535.0, "FOCPOS": 21500 + int(40 * rng.random()),
                      "SWCREATE": "MaxIm DL Version 6.50", "FILENAME": file_name}
            header_json = json.dumps(header)
            facts["header_bytes"] += len(header_json)
            size = 2880 * math.ceil((2880 + w * h * 2) / 2880)
            rows["frame"].append((fid, night_id, inst["id"], fpath, file_name, size,
                                  obs.timestamp() + exptime + 2.0, sha, number, band, "light", target, exptime,
                                  _ts(obs), airmass, w, h, 16, header_json, 1, None, _ts(ingested),
                                  _ts(ingested)))
            # Pixel statistics and quality metrics.
            bkg = sky * (0.85 + 0.3 * rng.random()) * (exptime / 30.0) ** 0.5
            cloud = rng.random() < 0.07
            if cloud:
                bkg *= 3.5
            rms = math.sqrt(bkg / 1.4 + 81.0)
            median = bkg + 2.0 + rng.random()
            rows["frame_stats"].append((fid, bkg - 6 * rms, 65535.0, median + 40.0, median, rms * 3.0, bkg, rms, 0,
                                        int(200 * rng.random()), 65535.0, STATS_VERSION))
            fwhm = max(1.5, rng.gauss(3.0, 0.5)) / inst["binning_x"]
            elong = 1.0 + abs(rng.gauss(0.0, 0.12))
            n_stars = int(rng.uniform(150, 900) / (3.0 if cloud else 1.0))
            ref = ref_by_band.setdefault(band, fid)
            rows["frame_metrics"].append((fid, n_stars, fwhm, fwhm * 1.05, elong, bkg, rms, rms * 0.3 * rng.random(),
                                          round(rng.uniform(0.8, 1.05) / (3.0 if cloud else 1.0), 4),
                                          ref if assessed else None, METRICS_VERSION, _ts(ingested),
                                          _ts(qa_at) if assessed else None))
            # Tags (see the module docstring).
            u = rng.random()
            rejecting = False
            if assessed:
                if cloud:
                    tag(fid, "cloud", "rule:cloud", f"cloud: background {bkg:,.0f} ADU > 3 x band {band} clear "
                        f"median {sky:,.0f} ADU", "obsdb", qa_at)
                    rejecting = True
                elif u < 0.05:
                    tag(fid, "focus", "rule:focus", f"focus: FWHM {fwhm * 1.8:.2f} px > 1.5 x band {band} best "
                        f"{fwhm * 0.9:.2f} px", "obsdb", qa_at)
                    rejecting = True
                elif u < 0.09:
                    tag(fid, "trail", "rule:trail", f"trail: elongation {1.6 + rng.random():.2f} > 1.6", "obsdb",
                        qa_at)
                    rejecting = True
                elif u < 0.11:
                    tag(fid, "few-stars", "rule:few-stars", f"few-stars: {rng.randint(0, 4)} stars < 5", "obsdb",
                        qa_at)
                    rejecting = True
                elif u < 0.135:
                    tag_name, reason = MANUAL_REJECTS[rng.randrange(len(MANUAL_REJECTS))]
                    tag(fid, tag_name, "manual", reason, AUTHORS[rng.randrange(3)],
                        qa_at + timedelta(days=rng.uniform(1, 30)))
                    rejecting = True
                if rejecting and rng.random() < 0.06:
                    tag(fid, "trail", "rule:trail", f"trail: elongation {1.6 + rng.random():.2f} > 1.6", "obsdb",
                        qa_at)
                if rejecting and rng.random() < 0.03:
                    tag(fid, "accept", "manual", "checked by eye: usable", AUTHORS[rng.randrange(3)],
                        qa_at + timedelta(days=rng.uniform(30, 60)))
                v = rng.random()
                if v < 0.04:
                    when = qa_at + timedelta(days=rng.uniform(1, 30))
                    tag(fid, "reject", "manual", "looked trailed", AUTHORS[rng.randrange(3)], when,
                        when + timedelta(hours=2), AUTHORS[rng.randrange(3)], "wrong frame, this one is fine")
                elif v < 0.07:
                    old = qa_at - timedelta(days=1)
                    tag(fid, "cloud", "rule:cloud", f"cloud: background {bkg * 1.1:,.0f} ADU > 3 x band {band} "
                        f"clear median {sky * 0.9:,.0f} ADU", "obsdb", old, qa_at, "obsdb",
                        "no longer holds with thresholds cloud_background_ratio=3.0, trail_elongation=1.6")
                elif v < 0.08:
                    tag(fid, "unregistered", "rule:unregistered", f"run {night_id}: 3 stars matched, need 5",
                        "obsdb", align_at - timedelta(hours=1), align_at, "obsdb", "registered in run")
                if not rejecting and rng.random() < 0.05:
                    tag(fid, rng.choice(("great", "okay")), "manual", "nice round stars",
                        AUTHORS[rng.randrange(3)], qa_at + timedelta(days=2))
            if rng.random() < 0.001:
                event(ingested + timedelta(days=3), "obsdb", "ingest",
                      f"{file_name}: content changed, re-measured; its stars, metrics and alignment are of the "
                      f"new content now", frame_id=fid, night_id=night_id,
                      details={"old_sha256": hashlib.sha256(sha.encode()).hexdigest(), "new_sha256": sha})
            frame_ids.append(fid)
            shas.append(sha)
            bands.append(band)
            date_obs.append(obs)
            fwhms.append(fwhm)
        rows["night"].append((night_id, name, "date-obs", "Sutherland", 20.8107, _ts(date_obs[0]),
                              _ts(date_obs[-1]), _ts(ingested)))
        event(ingested, observer, "ingest", f"{per_night} files: {per_night} added, 0 changed, 0 unchanged, "
              f"0 unreadable", details={"paths": [f"/archive/{name}"], "workers": 2, "night": None})
        if assessed:
            event(qa_at, observer, "qa", f"{per_night} frames assessed", details={
                "nights": [name], "band": None, "thresholds": QA_THRESHOLDS,
                "references": {f"{name} {b}": str(FIRST_NUMBER + "BVR".index(b)) for b in "BVR"}})
        if not assessed:
            continue
        # Star lists: stored for the frames whose matched stars are kept.
        if with_stars:
            for fid in frame_ids:
                s = np.zeros(STARS_PER_LIST, STORED_STAR_DTYPE)
                s["x"], s["y"] = nprng.uniform(0, inst["width"], (2, STARS_PER_LIST))
                s["flux"] = -np.sort(-nprng.lognormal(10.0, 1.0, STARS_PER_LIST))
                s["a"] = nprng.uniform(1.0, 1.6, STARS_PER_LIST)
                s["b"], s["fwhm"], s["hfd"], s["elongation"] = s["a"] * 0.9, 2.8, 2.9, 1.1
                rows["star_list"].append((fid, STARS_PER_LIST, s.tobytes(), STARS_VERSION, _ts(ingested)))
        # Automatic alignment: one run per target, a step per frame.
        for t_index, target in enumerate(targets):
            members = range(0, split) if t_index == 0 else range(split, per_night)
            if not len(members):
                continue
            ref_k = members[0] + 1 if len(members) > 1 else members[0]      # a V frame
            ref_id = frame_ids[ref_k]
            run_id = ids("alignment_run")
            created = align_at + timedelta(minutes=t_index)
            rows["alignment_run"].append((run_id, _ts(created), "auto", night_id, target, ref_id, json.dumps(
                {"status": "accepted", "band": None, "where": None, "workers": 2, "match_radius": 1.5,
                 "night": name, "frames_read": 1, "target": target}), __version__, REGISTER_VERSION, observer))
            cx, cy = inst["width"] / 2 - 0.5, inst["height"] / 2 - 0.5
            for k in members:
                fid = frame_ids[k]
                is_ref = fid == ref_id
                matched = rng.randint(15, 60)
                rows["shift_step"].append((
                    ids("shift_step"), run_id, fid, 1, "auto", "reference" if is_ref else "stars",
                    0.0 if is_ref else rng.gauss(0, 8), 0.0 if is_ref else rng.gauss(0, 8),
                    0.0 if is_ref else rng.gauss(0, 0.01), 1.0, ref_id, None, None, matched,
                    0.0 if is_ref else abs(rng.gauss(0.05, 0.02)), shas[k],
                    json.dumps({"model": "translation", "quality": None, "cx": cx, "cy": cy, "note": None,
                                "pixels_read": False})))
                if with_stars:
                    rows["centroid"].extend(
                        (ids("centroid"), fid, run_id, "detection", "windowed", None, None, None, None, None, None,
                         None, i, i, None, None, _ts(created)) for i in range(MATCHED_PER_FRAME))
            event(created, observer, "align", f"run {run_id} (auto): {len(members)} frames aligned, "
                  f"0 unregistered", night_id=night_id, details={"run": run_id})
        # Staged alignment of the first target: groups, decisions, box centroids, 3 steps per frame.
        if staged and split:
            members = list(range(0, split))
            ref_k = members[1] if len(members) > 1 else members[0]
            ref_id = frame_ids[ref_k]
            star = (1021.4, 987.6)
            fine_box = [1010, 1033, 976, 999]
            group_at = align_at + timedelta(minutes=10)
            for key, value, frame in (("reference_frame", {"frame": numbers[ref_k], "path": None}, ref_id),
                                      ("reference_star", {"frame": numbers[ref_k], "x": star[0], "y": star[1]},
                                       None),
                                      ("fine_box", {"box": fine_box}, None)):
                rows["decision"].append((ids("decision"), night_id, key, frame, json.dumps(value), "auto",
                                         observer, "group auto", _ts(group_at)))
            groups = {}
            for k in members:
                groups.setdefault((bands[k], (k * 2) // max(1, split)), []).append(k)
            group_of = {}
            for (band, g), ks in sorted(groups.items()):
                gid = ids("pointing_group")
                box = (900 + 20 * g, 1150 + 20 * g, 880, 1100)
                rows["pointing_group"].append((gid, night_id, f"{band}-{g + 1}", band, frame_ids[ks[0]], *box,
                                               star[0] - 20 * g, star[1], "auto", observer, _ts(group_at)))
                rows["group_member"].extend((gid, frame_ids[k]) for k in ks)
                for k in ks:
                    group_of[k] = (f"{band}-{g + 1}", box, ks[0])
            event(group_at, observer, "group auto", f"{len(groups)} groups relative to {numbers[ref_k]}, "
                  f"0 frames ungrouped", night_id=night_id, details={"radius": 30.0, "groups": sorted(
                      n for n, _, _ in set(group_of.values()))})
            run_id = ids("alignment_run")
            created = align_at + timedelta(minutes=20)
            rows["alignment_run"].append((run_id, _ts(created), "staged", night_id, None, ref_id, json.dumps(
                {"integer": False, "centroid_method": "2dg", "centroid_background": "median",
                 "fine_box": fine_box, "fine_reference": numbers[ref_k], "reference_star": list(star)}),
                __version__, None, observer))
            c_ids = {}
            for k in members:
                name_g, box, _ = group_of[k]
                c1, c3 = ids("centroid"), ids("centroid")
                c_ids[k] = (c1, c3)
                x, y = rng.uniform(box[0] + 10, box[1] - 10), rng.uniform(box[2] + 10, box[3] - 10)
                rows["centroid"].append((c1, frame_ids[k], run_id, "box", "centroid_2dg", *box, x, y,
                                         rng.uniform(1e5, 1e6), None, None, None, None, _ts(created)))
                rows["centroid"].append((c3, frame_ids[k], run_id, "box", "centroid_2dg", *fine_box,
                                         x + 0.3, y - 0.2, rng.uniform(1e5, 1e6), None, None, None, None,
                                         _ts(created)))
            for k in members:
                name_g, box, group_ref = group_of[k]
                fid = frame_ids[k]
                dx1, dy1, dx2, dy2 = rng.gauss(0, 2), rng.gauss(0, 2), rng.gauss(0, 60), rng.gauss(0, 60)
                rows["shift_step"].extend((
                    (ids("shift_step"), run_id, fid, 1, "within-group", "centroid_2dg", dx1, dy1, 0.0, 1.0,
                     frame_ids[group_ref], c_ids[k][0], c_ids[group_ref][0], None, None, shas[k],
                     json.dumps({"group": name_g, "box": list(box), "integer": False})),
                    (ids("shift_step"), run_id, fid, 2, "group-offset", "coarse-offset", dx2, dy2, 0.0, 1.0,
                     ref_id, None, None, None, None, shas[k],
                     json.dumps({"group": name_g, "star_in_group": [star[0], star[1]],
                                 "star_in_reference": list(star), "integer": False})),
                    (ids("shift_step"), run_id, fid, 3, "fine", "centroid_2dg", rng.gauss(0, 0.1),
                     rng.gauss(0, 0.1), 0.0, 1.0, ref_id, c_ids[k][1], c_ids[ref_k][1], None, None, shas[k],
                     json.dumps({"box": fine_box, "box_in_frame": fine_box, "integer": False}))))
            event(created, observer, "align", f"run {run_id} (staged): {len(members)} frames aligned, "
                  f"0 unregistered", night_id=night_id, details={"run": run_id})
        event(qa_at + timedelta(days=5), AUTHORS[n % 3], "tag", f"reject on some frames of {name}",
              night_id=night_id, details={"tag": "reject"})
        event(qa_at + timedelta(days=6), AUTHORS[n % 3], "untag", f"reject retracted on some frames of {name}",
              night_id=night_id, details={"tag": "reject"})
        if (n + 1) % NIGHTS_PER_TRANSACTION == 0:
            facts["nights_done"] = n + 1
            yield from flush()
    if facts.get("nights_done") != n_nights:          # the last, partial batch (and the pending nights)
        facts["nights_done"] = n_nights
        yield from flush()


# ============================================================ the two backends

_NODE = re.compile(r"^(SCAN|SEARCH) (\w+)(?: AS (\w+))?(.*)$")


class SqliteStore:
    """A catalog file: where it is, how to load it fast, how to read it raw."""

    kind = "sqlite"
    placeholder = "?"
    plan_name = "EXPLAIN QUERY PLAN"

    def __init__(self, path: Path):
        self.path = path
        self.db_arg = str(path)                        # what ``obsdb --db`` is given
        self.url = f"sqlite:///{path}"
        self.label = str(path)

    def exists(self) -> bool:
        return self.path.exists()

    def building(self) -> "SqliteStore":
        return SqliteStore(self.path.with_name(self.path.name + ".building"))

    def create(self) -> None:
        """Nothing to do: ``obsdb init`` creates the file."""

    def remove(self) -> None:
        for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            p.unlink(missing_ok=True)

    def replace_with(self, tmp: "SqliteStore") -> None:
        self.remove()
        tmp.path.rename(self.path)
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp.path}{suffix}").unlink(missing_ok=True)

    def connect(self):
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)

    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def analyzed(self, con) -> bool:
        return bool(con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone()[0])

    def loader(self) -> "SqliteLoader":
        return SqliteLoader(self.path)

    def plan(self, con, sql, params, aliases) -> tuple[list[str], list[str]]:
        """``EXPLAIN QUERY PLAN`` as indented lines, and the scans of big tables it shows."""
        rows = con.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        depth = {0: -1}
        lines, flags = [], []
        for node_id, parent, _, detail in rows:
            depth[node_id] = depth.get(parent, -1) + 1
            m = _NODE.match(detail)
            mark = ""
            if m and m.group(1) == "SCAN":
                table = aliases.get(m.group(2), m.group(2))
                if table in BIG_TABLES:
                    if "USING" in m.group(4):
                        mark = f"   <-- full index scan of {table}"
                    else:
                        mark = f"   <-- FULL SCAN of {table}, no index"
                    flags.append(detail.strip() + mark.replace("   <--", " <--"))
            lines.append("  " * depth[node_id] + detail + mark)
        return lines, flags


class SqliteLoader:
    """Bulk insert through the stdlib ``sqlite3``: ``executemany``, one transaction per batch, foreign keys
    off while loading and ``PRAGMA foreign_key_check`` after."""

    def __init__(self, path: Path):
        self.con = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=OFF", "foreign_keys=OFF", "cache_size=-400000",
                       "temp_store=MEMORY"):
            self.con.execute(f"PRAGMA {pragma}")
        self.con.execute("BEGIN")

    def write(self, table: str, rows) -> None:
        columns = COLUMNS[table]
        self.con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                             f"({', '.join('?' * len(columns))})", rows)

    def commit(self) -> None:
        self.con.execute("COMMIT")
        self.con.execute("BEGIN")

    def finish(self, *, analyze: bool) -> dict:
        self.con.execute("COMMIT")
        t1 = time.perf_counter()
        broken = self.con.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            sys.exit(f"the benchmark's rows break {len(broken)} foreign keys (first: {broken[0]})")
        t_fk = time.perf_counter() - t1
        t1 = time.perf_counter()
        if analyze:
            self.con.execute("ANALYZE")
        t_analyze = time.perf_counter() - t1
        self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.con.close()
        return {"fk_check_seconds": t_fk, "analyze_seconds": t_analyze}


_PG_NODE = re.compile(r"(?:->\s*)?(Parallel )?(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)"
                      r"(?: Backward)?(?: using (\w+))? on (\w+)(?: (\w+))?")


class PostgresStore:
    """A catalog database on a PostgreSQL server (``--db postgresql+psycopg://USER@HOST:PORT/NAME``)."""

    kind = "postgresql"
    placeholder = "%s"
    plan_name = "EXPLAIN (ANALYZE, BUFFERS)"

    def __init__(self, url: str):
        from sqlalchemy.engine import make_url

        self.sa_url = make_url(url)
        if not self.sa_url.database:
            sys.exit(f"{url}: name the database, e.g. {PG_SERVER}/obsdb_bench_catalog")
        self.name = self.sa_url.database
        self.url = self.sa_url.render_as_string(hide_password=False)
        self.db_arg = self.url
        self.label = self.sa_url.render_as_string(hide_password=True)

    def _libpq(self, database: str | None = None) -> str:
        """The URL for psycopg itself (no ``+psycopg``), on ``database`` (default: this one)."""
        return self.sa_url.set(drivername="postgresql", database=database or self.name).render_as_string(
            hide_password=False)

    def _admin(self):
        """An autocommit connection to the server's ``postgres`` database (CREATE/DROP/RENAME DATABASE)."""
        import psycopg

        return psycopg.connect(self._libpq("postgres"), autocommit=True)

    def exists(self) -> bool:
        with self._admin() as con:
            return con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.name,)).fetchone() is not None

    def building(self) -> "PostgresStore":
        return PostgresStore(self.sa_url.set(database=self.name + "_building").render_as_string(hide_password=False))

    def create(self) -> None:
        from psycopg import sql

        with self._admin() as con:
            con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def remove(self) -> None:
        from psycopg import sql

        with self._admin() as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))

    def replace_with(self, tmp: "PostgresStore") -> None:
        from psycopg import sql

        self.remove()
        with self._admin() as con:
            con.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(tmp.name),
                                                                        sql.Identifier(self.name)))

    def connect(self):
        """A connection with the session settings obsdb's own have (no JIT), so that "raw SQL ms" and
        the plans are those of the statements as obsdb runs them."""
        import psycopg

        from obsdb.catalog.db import POSTGRES_OPTIONS

        return psycopg.connect(self._libpq(), autocommit=True, options=POSTGRES_OPTIONS)

    def size_bytes(self) -> int:
        with self.connect() as con:
            return con.execute("SELECT pg_database_size(current_database())").fetchone()[0]

    def version(self) -> str:
        with self.connect() as con:
            return "PostgreSQL " + con.execute("SHOW server_version").fetchone()[0].split()[0]

    def analyzed(self, con) -> bool:
        return bool(con.execute("SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'frame' AND "
                                "(last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)").fetchone()[0])

    def loader(self) -> "PostgresLoader":
        return PostgresLoader(self._libpq())

    def plan(self, con, sql, params, aliases) -> tuple[list[str], list[str]]:
        """``EXPLAIN (ANALYZE, BUFFERS)`` (the statement runs: these are all reads), and the scans of big
        tables: a Seq Scan, or an index scan without an Index Cond (it walks the whole index)."""
        lines = [r[0] for r in con.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()]
        flags, marked = [], list(lines)
        for i, line in enumerate(lines):
            m = _PG_NODE.search(line)
            if not m or m.group(4) not in BIG_TABLES:
                continue
            table, node = m.group(4), m.group(2)
            if node == "Seq Scan":
                mark = f"FULL SCAN of {table}, no index"
            elif node in ("Index Scan", "Index Only Scan"):
                detail = []
                for later in lines[i + 1:]:
                    if "->" in later:
                        break
                    detail.append(later)
                if any("Index Cond" in d for d in detail):
                    continue
                mark = f"full index scan of {table}"
            else:
                continue
            marked[i] = f"{line}   <-- {mark}"
            flags.append(f"{line.strip().lstrip('-> ').split('  (')[0]} <-- {mark}")
        return marked, flags


class PostgresLoader:
    """Bulk load through psycopg 3 ``COPY ... FROM STDIN`` (``cursor.copy``, ``write_row``).

    As on SQLite, the foreign keys are not checked row by row while loading: they are dropped and
    added again at the end (one validating join per key instead of a trigger per row), and so are
    the secondary indexes (one sort each instead of a million inserts), from the definitions
    ``obsdb init`` made, so the schema ends exactly as the migrations left it.  Then the id
    sequences are moved past the loaded ids (obsdb can go on writing) and ``VACUUM ANALYZE`` runs:
    VACUUM sets the visibility map that index-only scans need, which a real catalog gets from
    autovacuum soon after any bulk write, and a measurement should not depend on whether autovacuum
    has got there yet.
    """

    def __init__(self, url: str):
        import psycopg

        self.con = psycopg.connect(url)
        self.con.execute("SET TimeZone = 'UTC'")           # the naive timestamps are UTC
        self.con.execute("SET synchronous_commit = off")
        self.con.execute("SET maintenance_work_mem = '256MB'")
        self.foreign_keys = self.con.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND connamespace = 'public'::regnamespace ORDER BY conrelid, conname").fetchall()
        # Indexes that back no constraint (primary keys and UNIQUE stay: the keys point at them).
        self.indexes = self.con.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relnamespace = 'public'::regnamespace "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
            "ORDER BY c.relname").fetchall()
        for table, name, _ in self.foreign_keys:
            self.con.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in self.indexes:
            self.con.execute(f'DROP INDEX "{name}"')
        self.con.commit()

    def write(self, table: str, rows) -> None:
        with self.con.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def commit(self) -> None:
        self.con.commit()

    def finish(self, *, analyze: bool) -> dict:
        import psycopg

        self.con.commit()
        t1 = time.perf_counter()
        for _, definition in self.indexes:
            self.con.execute(definition)
        self.con.commit()
        t_index = time.perf_counter() - t1
        t1 = time.perf_counter()
        try:
            for table, name, definition in self.foreign_keys:
                self.con.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        except psycopg.errors.ForeignKeyViolation as exc:
            sys.exit(f"the benchmark's rows break a foreign key: {str(exc).splitlines()[0]}")
        self.con.commit()
        t_fk = time.perf_counter() - t1
        serials = self.con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND column_default LIKE 'nextval(%'").fetchall()
        for table, column in serials:
            self.con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                             f"coalesce(max({column}), 0) + 1, false) FROM {table}")
        self.con.commit()
        self.con.autocommit = True                          # VACUUM cannot run inside a transaction
        t1 = time.perf_counter()
        self.con.execute("VACUUM (ANALYZE)" if analyze else "VACUUM")
        t_analyze = time.perf_counter() - t1
        self.con.close()
        return {"index_seconds": t_index, "fk_check_seconds": t_fk, "analyze_seconds": t_analyze}


def open_store(args) -> SqliteStore | PostgresStore:
    """The catalog ``--db`` and ``--backend`` name (default: a cache named after the size)."""
    if args.db and "://" in args.db:
        if not args.db.startswith("postgresql"):
            sys.exit(f"{args.db}: only SQLite files and postgresql+psycopg:// URLs are benchmarked")
        return PostgresStore(args.db)
    if args.db:
        if args.backend == "postgresql":
            sys.exit("--backend postgresql takes --db postgresql+psycopg://USER@HOST:PORT/NAME, not a path")
        return SqliteStore(Path(args.db).expanduser().resolve())
    size = "" if (args.nights, args.per_night) == (2000, 500) else f"-{args.nights}x{args.per_night}"
    if args.backend == "postgresql":
        return PostgresStore(f"{args.pg_server.rstrip('/')}/{DEFAULT_PG_NAME}{size.replace('-', '_')}")
    return SqliteStore(Path(DEFAULT_DB) if not size else Path(DEFAULT_DB).with_name(f"obsdb-bench-catalog{size}.sqlite"))


def describe_catalog(store) -> dict:
    """Row counts, nights, whether ANALYZE statistics exist; from the database itself."""
    con = store.connect()
    try:
        try:
            con.execute("SELECT version_num FROM alembic_version").fetchone()
        except Exception:  # sqlite3's and psycopg's errors alike: no catalog was ever made here
            sys.exit(f"{store.label}: exists but holds no obsdb catalog (drop it, or name a new one: it is "
                     "built when missing)")
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COLUMNS}
        names = [r[0] for r in con.execute("SELECT name FROM night ORDER BY name")]
        analyzed = store.analyzed(con)
        revision = con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        con.close()
    return {"rows": counts, "nights": names, "analyzed": analyzed, "revision": revision}


# ============================================================ in-process timing and plans

class Capture:
    """Statements the Catalog sends to the database, with their parameters."""

    def __init__(self, engine):
        self.engine = engine
        self.statements: list[tuple[str, tuple | dict]] = []
        self.on = False
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        if self.on and not executemany:
            if parameters is None:
                parameters = ()
            self.statements.append((statement, parameters if isinstance(parameters, dict) else tuple(parameters)))


def time_inprocess(call, capture: Capture, repeat: int) -> dict:
    """Warm-up with capture, then the median of ``repeat`` calls; result size from the warm-up."""
    capture.statements = []
    capture.on = True
    try:
        result = call()
    except Exception as exc:                               # noqa: BLE001 - reported, the benchmark goes on
        capture.on = False
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    capture.on = False
    statements = list(capture.statements)
    size = result if isinstance(result, int) else len(result)
    del result
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - t0) * 1e3)
        del result
    return {"ms": statistics.median(times), "times_ms": times, "rows": size, "statements": statements}


def replay_ms(store, statements, repeat: int) -> tuple[float, dict[str, float]]:
    """The captured statements run again through the driver itself (``sqlite3`` or psycopg, fetchall):
    the median of ``repeat`` totals, and per distinct statement the median of its summed time, in ms."""
    con = store.connect()
    try:
        for sql, params in statements:                  # warm the page cache
            con.execute(sql, params).fetchall()
        totals, per = [], {}
        for _ in range(repeat):
            this = {}
            t_all = time.perf_counter()
            for sql, params in statements:
                t0 = time.perf_counter()
                con.execute(sql, params).fetchall()
                this[sql] = this.get(sql, 0.0) + (time.perf_counter() - t0) * 1e3
            totals.append((time.perf_counter() - t_all) * 1e3)
            for sql, ms in this.items():
                per.setdefault(sql, []).append(ms)
    finally:
        con.close()
    return statistics.median(totals), {sql: statistics.median(v) for sql, v in per.items()}


def query_plans(store, statements) -> list[dict]:
    """The plan of each distinct statement (first parameters), with flags for scans of big tables."""
    con = store.connect()
    plans, seen = [], {}
    try:
        for sql, params in statements:
            if sql in seen:
                seen[sql]["times"] += 1
                continue
            aliases = {alias: table for table, alias in re.findall(r"\b(\w+) AS (\w+)\b", sql)
                       if table in BIG_TABLES or table in COLUMNS}
            lines, flags = store.plan(con, sql, params, aliases)
            entry = {"sql": sql, "params": params, "plan": lines, "flags": flags, "times": 1}
            seen[sql] = entry
            plans.append(entry)
    finally:
        con.close()
    return plans


# ============================================================ report

def fmt_s(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def print_plans(label, plans, out):
    print(f"--- {label}: {len(plans)} distinct statements", file=out)
    for i, p in enumerate(plans, 1):
        sql = " ".join(p["sql"].split())
        shown = sql if len(sql) <= 600 else sql[:600] + f" ... ({len(sql)} chars)"
        raw = "" if p.get("raw_ms") is None else f", raw {p['raw_ms']:.1f} ms in all"
        print(f"[{i}] x{p['times']}{raw}  {shown}", file=out)
        if p["params"]:
            values = ([f"{k}={v!r}" for k, v in p["params"].items()] if isinstance(p["params"], dict)
                      else [repr(v) for v in p["params"]])
            params = ", ".join(values[:12]) + (" ..." if len(values) > 12 else "")
            print(f"    params: {params}", file=out)
        for line in p["plan"]:
            print(f"    {line}", file=out)
    print(file=out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help=f"catalog file (default {DEFAULT_DB}, or ...-NIGHTSxPER.sqlite for other sizes) "
                                 "or a postgresql+psycopg:// URL naming a database; built if missing, reused if "
                                 "present")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                    help=f"where the default catalog lives: a file in /tmp, or the database {DEFAULT_PG_NAME} "
                         "(..._NIGHTSxPER for other sizes) on --pg-server (default sqlite; a --db URL implies "
                         "postgresql)")
    ap.add_argument("--pg-server", default=os.environ.get("OBSDB_BENCH_PG", PG_SERVER),
                    help=f"PostgreSQL server for --backend postgresql (default $OBSDB_BENCH_PG or {PG_SERVER})")
    ap.add_argument("--rebuild", action="store_true",
                    help="build the catalog again even if the file or database exists")
    ap.add_argument("--nights", type=int, default=2000, help="nights to build (default 2000)")
    ap.add_argument("--per-night", type=int, default=500, help="frames per night (default 500)")
    ap.add_argument("--analyze", action="store_true",
                    help="run ANALYZE after building (default: no; obsdb keeps its statistics itself, with "
                         "PRAGMA optimize as connections close, and PostgreSQL's autovacuum)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per command (median; default 5)")
    ap.add_argument("--heavy-repeat", type=int, default=3,
                    help="timed runs of the all-nights listing (median; default 3)")
    ap.add_argument("--table-timeout", type=float, default=180.0,
                    help="seconds allowed to the one run of the all-nights table (default 180; 0 skips it)")
    ap.add_argument("--frame", type=int, help="frame number for show/history (default 1234, or the middle one)")
    ap.add_argument("--smoke", action="store_true",
                    help="quick check: --nights 20, --repeat 3, --heavy-repeat 1, --table-timeout 60")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    ap.add_argument("--build-only", action="store_true", help="build (or check) the catalog, time nothing")
    args = ap.parse_args(argv)
    if args.smoke:
        args.nights, args.repeat, args.heavy_repeat = 20, 3, 1
        args.table_timeout = min(args.table_timeout, 60.0)
    if min(args.repeat, args.heavy_repeat, args.nights, args.per_night) < 1:
        ap.error("--repeat, --heavy-repeat, --nights and --per-night must be at least 1")
    out = sys.stdout
    env = child_env()

    # ---------------------------------------------------------------- 1. the catalog
    store = open_store(args)
    db = store.label
    build = None
    if args.rebuild or not store.exists():
        print(f"building {args.nights:,} nights x {args.per_night:,} frames in {db} ...", file=sys.stderr,
              flush=True)
        build = build_catalog(store, args.nights, args.per_night, analyze=args.analyze)
    facts = describe_catalog(store)
    names = facts["nights"]
    if not names:
        sys.exit(f"{db}: no nights in the catalog")
    night = names[len(names) // 2]
    con = store.connect()
    numbers = [r[0] for r in con.execute("SELECT f.number FROM frame f JOIN night n ON n.id = f.night_id "
                                         f"WHERE n.name = {store.placeholder} AND f.number IS NOT NULL "
                                         "ORDER BY f.number", (night,))]
    con.close()
    size_gib = store.size_bytes() / 2**30
    number = args.frame if args.frame is not None else (1234 if 1234 in numbers else numbers[len(numbers) // 2])
    selector = f"{night}:{number}"
    if args.build_only:
        print(f"catalog {db}: {facts['rows']['frame']:,} frames, {len(names):,} nights, revision "
              f"{facts['revision']}, {size_gib:.2f} GiB")
        if build:
            print(json.dumps(build, indent=2))
        return

    from obsdb import Catalog

    cat = Catalog.open(store.db_arg)                     # refuses a catalog behind the code's schema
    capture = Capture(cat.engine)

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--short", "--", "obsdb", "migrations"],
                           capture_output=True, text=True)
    n_dirty = len([line for line in dirty.stdout.splitlines() if line.strip()])
    print(f"{datetime.utcnow():%Y-%m-%d %H:%M} UTC: python benchmarks/catalog.py {' '.join(argv or sys.argv[1:])}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    print(f"obsdb from {ROOT} (git {head.stdout.strip() or '?'}, {n_dirty} files changed under obsdb/ and "
          f"migrations/ since); {sys.executable} (Python {sys.version.split()[0]}, {store.version()})")
    print(f"catalog {db}: {facts['rows']['frame']:,} frames, {len(names):,} nights, revision {facts['revision']}, "
          f"{size_gib:.2f} GiB, ANALYZE statistics: {'yes' if facts['analyzed'] else 'no'}")
    if build:
        steps = (("rows", "rows_seconds"), ("indexes", "index_seconds"), ("foreign keys", "fk_check_seconds"),
                 ("0011 backfill", "backfill_seconds"),
                 ("VACUUM ANALYZE" if store.kind == "postgresql" else "ANALYZE", "analyze_seconds"))
        print(f"built in {build['seconds']:.0f} s ("
              + ", ".join(f"{label} {build[key]:.0f} s" for label, key in steps if key in build)
              + f"); mean header {build['mean_header_bytes']:.0f} bytes")
    else:
        print("reused (not rebuilt; --rebuild builds it again)")
    print("rows: " + ", ".join(f"{t} {n:,}" for t, n in facts["rows"].items()))
    print(f"night N = {night} (the middle one), frame {selector}; median of {args.repeat} runs after one "
          f"warm-up ({args.heavy_repeat} for the all-nights listing); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()

    # ---------------------------------------------------------------- 2 and 3. commands
    o = obsdb_prefix() + ["--db", store.db_arg]
    single = {"sql_ms": 100.0, "wall_s": 0.15}
    archive = {"wall_s": 1.0}

    def night_counts():
        from sqlalchemy import func, select

        from obsdb.catalog.models import Frame

        with cat.session() as session:
            return session.execute(select(Frame.night_id, Frame.status, func.count())
                                   .group_by(Frame.night_id, Frame.status)).all()

    commands = [
        {"label": "rejected --night N --band V", "argv": o + ["rejected", "--night", night, "--band", "V"],
         "call": lambda: cat.frame_dicts(night=[night], band="V", status="rejected"),
         "api": "cat.frame_dicts(night=[N], band='V', status='rejected')", "target": single},
        {"label": "frames --night N --where 'median > 5000' --format json",
         "argv": o + ["frames", "--night", night, "--where", "median > 5000", "--format", "json"],
         "call": lambda: list(cat.iter_frame_dicts(night=[night], band=None, image_type=None, status=None,
                                                   tag=None, where="median > 5000")),
         "api": "cat.iter_frame_dicts(night=[N], where='median > 5000')", "target": single},
        {"label": f"history N:{number}", "argv": o + ["history", selector],
         "call": lambda: cat.history(selector, night=None), "api": f"cat.history('N:{number}')", "target": single},
        {"label": f"show N:{number}", "argv": o + ["show", selector],
         "call": lambda: cat.show(selector, night=None), "api": f"cat.show('N:{number}')", "target": single},
        {"label": "summary --night N", "argv": o + ["summary", "--night", night],
         "call": lambda: cat.summary(night=[night]), "api": "cat.summary(night=[N])", "target": single},
        {"label": "nights", "argv": o + ["nights"], "call": lambda: cat.nights(), "api": "cat.nights()",
         "target": archive},
        {"label": "summary --night all", "argv": o + ["summary", "--night", "all"],
         "call": lambda: cat.summary(night=["all"]), "api": "cat.summary(night=['all'])", "target": archive},
        {"label": "per-night counts (frame.status GROUP BY)", "argv": None, "call": night_counts,
         "api": "SELECT night_id, status, count(*) FROM frame GROUP BY 1, 2", "target": {"sql_ms": 1000.0}},
        {"label": "rejected --band V --night all (table)", "argv": o + ["rejected", "--band", "V", "--night", "all"],
         "call": lambda: cat.rejected_reason_rows(night=["all"], band="V"),
         "api": "cat.rejected_reason_rows(night=['all'], band='V')", "target": archive, "heavy": True},
        {"label": "rejected --band V --night all --format json",
         "argv": o + ["rejected", "--band", "V", "--night", "all", "--format", "json"],
         "call": lambda: sum(1 for _ in cat.iter_frame_dicts(night=["all"], band="V", status="rejected")),
         "api": "cat.iter_frame_dicts(night=['all'], band='V', status='rejected')",
         "target": {**archive, "flat": True}, "heavy": True, "count": True},
    ]
    results = []
    for c in commands:
        print(f"timing {c['label']} ...", file=sys.stderr, flush=True)
        repeat = args.heavy_repeat if c.get("heavy") else args.repeat
        inproc = time_inprocess(c["call"], capture, repeat)
        if "statements" in inproc:
            inproc["raw_sql_ms"], per_statement = replay_ms(store, inproc["statements"], repeat)
            inproc["plans"] = query_plans(store, inproc["statements"])
            for p in inproc["plans"]:
                p["raw_ms"] = per_statement.get(p["sql"])
        wall = (time_command(c["argv"], env, repeat, count_records=c.get("count", False)) if c["argv"]
                else {"wall": None})
        results.append({**c, "inproc": inproc, "cli": wall})
    table_run = None
    if args.table_timeout > 0:
        print("timing rejected --band V --night all (table, one run) ...", file=sys.stderr, flush=True)
        r = run_child(o + ["rejected", "--band", "V", "--night", "all"], env, timeout=args.table_timeout)
        table_run = {"wall": r["wall"], "maxrss_mib": (r["maxrss_kib"] or 0) / 1024,
                     "error": None if r["rc"] == 0 and not r["timed_out"] else _child_error(r)}
    reference = []
    for label, argv in (("python -c pass", [sys.executable, "-c", "pass"]), ("obsdb --help", obsdb_prefix() + ["--help"])):
        reference.append((label, time_command(argv, env, args.repeat)))
    cat.close()

    # ---------------------------------------------------------------- 4. plans
    driver = "sqlite3" if store.kind == "sqlite" else "psycopg"
    print(f"{store.plan_name} of every distinct statement each Catalog call sent (first parameters; "
          f"xN: times sent; raw: replayed through {driver}, all N times, median)")
    print("=" * WIDTH)
    for r in results:
        if "plans" in r["inproc"]:
            print_plans(f"{r['label']}  ->  {r['api']}", r["inproc"]["plans"], out)
        else:
            print(f"--- {r['label']}: {r['inproc'].get('error')}\n")
    flagged = [(r["label"], f) for r in results for p in r["inproc"].get("plans", []) for f in p["flags"]]
    print("scans of big tables (frame, frame_stats, frame_metrics, tag, shift_step, centroid, star_list, event):")
    if not flagged:
        print("  none")
    for label, f in dict.fromkeys(flagged):
        print(f"  {label}: {f}")
    print()

    # ---------------------------------------------------------------- 5. results
    print(f"results on {store.version()} (SQL ms: the Catalog call in-process, median; raw SQL ms: its statements "
          f"replayed through {driver}; wall s and CPU s: the CLI command, median, CPU user+system from /usr/bin/time)")
    head = (f"{'command':<52} {'rows':>8} {'stmts':>5} {'SQL ms':>9} {'raw ms':>9} {'wall s':>8} {'CPU s':>7} "
            f"{'RSS MiB':>8}  "
            f"{'target':<27} met?")
    print(head)
    print("-" * len(head))
    summary, missed = [], []
    for r in results:
        ip, cli, target = r["inproc"], r["cli"], r["target"]
        sql_ms, raw = ip.get("ms"), ip.get("raw_sql_ms")
        wall = cli.get("wall")
        checks, text = [], []
        if "sql_ms" in target:
            checks.append(sql_ms is not None and sql_ms <= target["sql_ms"])
            text.append(f"<={target['sql_ms']:.0f} ms SQL")
        if "wall_s" in target:
            checks.append(wall is not None and wall <= target["wall_s"])
            text.append(f"<={target['wall_s']:g} s wall")
        flat, flat_text = (None, "")
        if target.get("flat"):
            flat, flat_text = flat_memory(cli.get("samples") or [])
            checks.append(flat)                          # None: too short a run to tell
            text.append("flat RSS")
        if "error" in ip or "error" in cli or False in checks:
            met = "NO"
        else:
            met = "yes" if all(checks) else "?"
        rows = cli.get("records") if r.get("count") and cli.get("records") else ip.get("rows")
        print(f"{r['label']:<52} {fmt_s(rows, 0) if rows is not None else '-':>8} "
              f"{len(ip.get('statements', [])) or '-':>5} {fmt_s(sql_ms, 1):>9} {fmt_s(raw, 1):>9} "
              f"{fmt_s(wall):>8} {fmt_s(cli.get('cpu')):>7} {fmt_s(cli.get('maxrss_mib'), 0):>8}  {', '.join(text):<27} "
              f"{met}")
        notes = []
        if "error" in ip:
            notes.append(f"in-process error: {ip['error']}")
        if "error" in cli:
            notes.append(f"CLI error: {cli['error']}")
        if flat_text:
            notes.append({True: "flat: ", False: "NOT flat: ", None: "memory: "}[flat] + flat_text)
        if target.get("info_sql_ms") and sql_ms is not None:
            notes.append(f"single-night target for information: {sql_ms:.0f} ms SQL vs <= 100, {fmt_s(wall)} s "
                         f"wall vs <= 0.35")
        if r.get("count") and cli.get("records") and wall:
            notes.append(f"{cli['records'] / wall:,.0f} records/s from the CLI; "
                         f"{ip.get('rows', 0) / (sql_ms / 1e3) if sql_ms else 0:,.0f} records/s in-process")
        for note in notes:
            print(f"{'':<52}   {note}")
        if met != "yes":
            missed.append(r["label"] + ("" if met == "NO" else " (undecided)"))
        summary.append({"command": r["label"], "argv": r["argv"][len(o):] if r["argv"] else None, "catalog_call": r["api"], "rows": rows,
                        "statements": len(ip.get("statements", [])), "sql_ms": sql_ms,
                        "sql_ms_runs": ip.get("times_ms"), "raw_sql_ms": raw, "wall_s": wall, "cpu_s": cli.get("cpu"),
                        "wall_s_runs": cli.get("walls"), "peak_rss_mib": cli.get("maxrss_mib"),
                        "flat_memory": flat, "memory": flat_text or None, "target": target, "met": met == "yes",
                        "errors": [n for n in notes if "error" in n] or None,
                        "flags": [f for p in ip.get("plans", []) for f in p["flags"]]})
    if table_run is not None:
        state = table_run["error"] or "ok"
        print(f"{'rejected --band V --night all (table, 1 run, info)':<52} {'':>8} {'':>5} {'':>9} {'':>9} {'':>7} "
              f"{fmt_s(table_run['wall']):>8} {fmt_s(table_run['maxrss_mib'], 0):>8}  {state}")
    for label, r in reference:
        print(f"{label + ' (reference)':<52} {'':>8} {'':>5} {'':>9} {'':>9} {fmt_s(r.get('wall')):>8} "
              f"{fmt_s(r.get('cpu')):>7} {fmt_s(r.get('maxrss_mib'), 0):>8}  {r.get('error', '')}")
    print()
    print("targets missed: " + (", ".join(missed) if missed else "none"))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    if args.json:
        print(json.dumps({"catalog": {"path": db, "backend": store.kind, "server": store.version(),
                                      "size_bytes": store.size_bytes(), "nights": len(names),
                                      "frames": facts["rows"]["frame"], "rows": facts["rows"],
                                      "revision": facts["revision"], "analyzed": facts["analyzed"],
                                      "build": build, "night": night, "frame": selector},
                          "repeat": args.repeat, "heavy_repeat": args.heavy_repeat, "results": summary,
                          "table_all_nights": table_run,
                          "reference": [{"command": label, "wall_s": r.get("wall"), "peak_rss_mib": r.get("maxrss_mib")}
                                        for label, r in reference],
                          "plans": {r["label"]: [{"sql": p["sql"], "plan": p["plan"], "times": p["times"], "raw_ms": p.get("raw_ms")}
                                                 for p in r["inproc"].get("plans", [])] for r in results}},
                         indent=2))


if __name__ == "__main__":
    main()
