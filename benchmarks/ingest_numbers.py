"""What ingest stores for each frame, old code against new: metrics, statistics, star lists, streaks.

Every real frame of ``../shared/data/real`` (and, with ``--night N``, the first N frames of
``benchmarks/night.py``'s simulated 2048 x 2048 night) is measured by
:func:`obsdb.pipeline.ingest.measure_file` in a child process per code version (``PYTHONPATH``),
as a pool worker measures it.  The table gives, per frame, the stars found (``n_stars``), the
stars stored, the median FWHM, HFD and elongation, the background and its rms, for the old code
and the new; then, per stored number, on how many frames it differs at all and its largest
relative difference, and whether the stored star lists (every field of every star) and the
streaks are identical.  A cell holds one value where the versions agree, ``old>new`` where not.

Run::

    git -C /work/main archive main | tar -x -C /tmp/old-ingest
    python benchmarks/ingest_numbers.py --old /tmp/old-ingest
    python benchmarks/ingest_numbers.py --old /tmp/old-ingest --night 20 --no-real
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REAL = ROOT.parent / "shared" / "data" / "real"

SHOWN = ("n_stars", "stored", "fwhm", "hfd", "elongation", "background", "background_rms")
"""Columns of the per-frame table (``stored``: stars in the stored list)."""


def child(paths: list[str]) -> dict:
    """Every stored number of each file, as the worker measures it."""
    import warnings

    import obsdb
    import obsdb.pipeline.pool as pool
    from obsdb.config import IngestConfig
    from obsdb.pipeline.ingest import measure_file

    warnings.filterwarnings("ignore")
    pool._IN_POOL_WORKER = True
    config = IngestConfig()
    out = {}
    for path in paths:
        m = measure_file(path, config)
        out[path] = {"error": m.error, "metrics": m.metrics, "stats": m.stats, "stars": m.stars,
                     "stored": m.n_stars_stored, "streaks": m.streaks}
    return {"code": str(Path(obsdb.__file__).resolve().parents[1]), "results": out}


def measure(code: Path, paths: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="obsdb-numbers-") as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths))
        output = Path(tmp) / "out.pickle"
        env = {k: v for k, v in os.environ.items() if k not in ("OBSDB_DB", "OBSDB_CONFIG")}
        env["PYTHONPATH"] = str(code)
        done = subprocess.run([sys.executable, __file__, "--child", str(listing), str(output)],
                              capture_output=True, text=True, env=env, cwd=tmp)
        if done.returncode != 0:
            raise SystemExit(f"child ({code}) failed: {done.stderr[-2000:]}")
        answer = pickle.loads(output.read_bytes())
    if Path(answer["code"]) != code.resolve():
        raise SystemExit(f"child imported {answer['code']}, not {code}")
    return answer["results"]


def _value(result: dict, key: str):
    if key == "stored":
        return result["stored"]
    return (result["metrics"] or {}).get(key)


def _show(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _relative(a, b) -> float:
    """|a - b| / |a| (0 when equal, inf when one is missing)."""
    if a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
        return 0.0
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return math.inf
    return abs(a - b) / abs(a) if a else math.inf


def _compare_star_lists(old: dict, new: dict, paths: list[str]) -> None:
    """How far the stored stars moved between the versions: positions (px) and aperture fluxes, over
    every star of every frame whose lists hold the same stars (in the same order)."""
    import numpy as np

    from obsdb.imaging.stars import decode_stars

    moved, ratio, same_length = [], [], 0
    for path in paths:
        if old[path]["stars"] is None or new[path]["stars"] is None:
            continue
        a, b = decode_stars(old[path]["stars"]), decode_stars(new[path]["stars"])
        if len(a) != len(b) or not np.array_equal(a["flux_iso"], b["flux_iso"]):
            continue
        same_length += 1
        moved.append(np.hypot(a["x"] - b["x"], a["y"] - b["y"]))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio.append(np.abs(b["flux"] / a["flux"] - 1.0))
    if not moved:
        return
    moved, ratio = np.concatenate(moved), np.concatenate(ratio)
    print(f"stored stars on {same_length} frames with the same detections: {moved.size} stars, "
          f"{np.mean(moved > 0.001):.1%} moved by more than 0.001 px ({np.mean(moved > 0.01):.2%} by more "
          f"than 0.01 px; 99th percentile {np.percentile(moved, 99):.4f} px, largest {moved.max():.3f} px); "
          f"aperture flux: median change {np.nanmedian(ratio):.2e}, 99th percentile "
          f"{np.nanpercentile(ratio, 99):.2e}, largest {np.nanmax(ratio):.2e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="a checkout of the old code (without it: this code alone)")
    parser.add_argument("--data", type=Path, default=REAL)
    parser.add_argument("--no-real", action="store_true", help="leave out the real frames")
    parser.add_argument("--night", type=int, default=0, help="also the first N frames of night.py's night")
    parser.add_argument("--night-frames", type=int, default=50, help="the night (of night.py) they come from")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "obsdb-bench-night")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        listing, output = args.child
        answer = child([p for p in Path(listing).read_text().splitlines() if p])
        Path(output).write_bytes(pickle.dumps(answer))
        return 0

    paths: list[str] = []
    if not args.no_real:
        paths += sorted(str(p) for p in args.data.rglob("*") if p.is_file()
                        and p.name.lower().endswith((".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")))
    if args.night:
        sys.path.insert(0, str(HERE))
        from night import simulated_night

        args.cache.mkdir(parents=True, exist_ok=True)
        folder = simulated_night(args.cache, args.night_frames, 2048)
        paths += sorted(str(p) for p in folder.glob("*.fits"))[:args.night]
    versions = {"new": ROOT} if args.old is None else {"old": args.old, "new": ROOT}
    results = {name: measure(code, paths) for name, code in versions.items()}
    names = list(versions)
    # One value per cell when the versions agree, "old>new" when they do not.
    print(f"{'file':40s}" + "".join(f"{c:>15s}" for c in SHOWN))
    for path in paths:
        label = Path(path).relative_to(args.data) if path.startswith(str(args.data)) else Path(path).name
        cells = ""
        for column in SHOWN:
            shown = [_show(_value(results[n][path], column)) for n in names]
            cells += f"{shown[0] if len(set(shown)) == 1 else '>'.join(shown):>15s}"
        print(f"{str(label)[:40]:40s}{cells}")
    if args.old is None:
        return 0
    old, new = results["old"], results["new"]
    print()
    keys = sorted({k for r in (*old.values(), *new.values()) for k in (r["metrics"] or {})} - {"algorithm"})
    for group, fields in (("metrics", keys), ("stats", sorted({k for r in old.values() for k in (r["stats"] or {})}))):
        for key in fields:
            diffs = [_relative((old[p][group] or {}).get(key), (new[p][group] or {}).get(key)) for p in paths]
            changed = [d for d in diffs if d]
            worst = max(changed) if changed else 0.0
            print(f"{group} {key:24s} differs on {len(changed):3d} of {len(paths)} frames; largest relative "
                  f"difference {worst:.2e}")
    same_stars = sum(old[p]["stars"] == new[p]["stars"] for p in paths)
    _compare_star_lists(old, new, paths)
    same_streaks = sum(old[p]["streaks"] == new[p]["streaks"] for p in paths)
    same_errors = sum(old[p]["error"] == new[p]["error"] for p in paths)
    versions_seen = {(old[p]["metrics"] or {}).get("algorithm") for p in paths} | {
        (new[p]["metrics"] or {}).get("algorithm") for p in paths}
    print(f"star lists identical (every field of every stored star) on {same_stars} of {len(paths)} frames")
    print(f"streaks identical on {same_streaks} of {len(paths)} frames; errors identical on {same_errors}")
    print(f"metric versions seen: {', '.join(sorted(v for v in versions_seen if v))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
