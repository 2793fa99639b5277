"""The photometry step's CPU per frame, from 50 to 500 frames: is it flat?

One simulated night of ``--base`` frames (``--size`` px, about 400 stars found per frame) is copied under
new numbers into nights of 50, 200 and 500 frames (same sky, same pointing pattern); each is ingested,
judged and aligned once, then the step's parts are timed in CPU seconds of this process (serial, so the
measuring is in it too):

- ``read``: reading the frames (``read_fits_image``), timed on its own and left out of the rest;
- ``measure``: :func:`obsdb.pipeline.photometry.measure_frame` less the reading (apertures, sky, flags);
- ``store``: writing the rows (:meth:`PhotometryStore.store_measurements`, one executemany per table);
- ``identify``: identification and ensemble zero points (:func:`obsdb.pipeline.photometry.identify`);
- ``plan``: reading the star lists and staleness (:meth:`PhotometryStore.frames_to_measure`).

With ``--pure``, the measuring alone as the issue states its target: CPU per frame of
:func:`obsdb.imaging.photometry.aperture_photometry` on 2048^2 float32 frames with 400 stars (the frames of
``benchmarks/photometry.py``), median over ``--repeats`` frames; ``benchmarks/photometry.py`` times the same
in wall-clock seconds against photutils.

Usage::

    python benchmarks/photometry_step.py [--frames 50,200,500] [--size 512] [--base 25]
    python benchmarks/photometry_step.py --pure [--repeats 9]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def make_night(folder: Path, template: Path, n_frames: int) -> None:
    """``n_frames`` copies of the template night's frames, numbered 10001, 10002, ... in turn."""
    frames = sorted(template.glob("*.fits"))
    folder.mkdir(parents=True)
    for k in range(n_frames):
        source = frames[k % len(frames)]
        shutil.copyfile(source, folder / f"copy_{source.stem.split('_')[1]}_{10001 + k}.fits")


def time_step(db_path: str, frames: Path) -> dict:
    """Ingest, QA and align the night, then time the photometry step's parts (CPU seconds)."""
    from obsdb.api import Catalog
    from obsdb.catalog.photometry import PhotometryStore
    from obsdb.imaging.fitsio import read_fits_image
    from obsdb.pipeline.photometry import PhotometryReport, _rows, identify, measure_frame

    with Catalog.open(db_path, create=True) as catalog:
        catalog.ingest([frames])
        catalog.qa()
        catalog.align()
        store = PhotometryStore(catalog.db)
        cpu = {}
        start = time.process_time()
        tasks = store.frames_to_measure(fingerprint=lambda base: base + "|r=1.5fwhm")
        cpu["plan"] = time.process_time() - start
        start = time.process_time()
        for task in tasks:
            read_fits_image(task["path"], hash_mode="none")
        cpu["read"] = time.process_time() - start
        start = time.process_time()
        results = [measure_frame(task, None) for task in tasks]
        cpu["measure"] = time.process_time() - start - cpu["read"]
        start = time.process_time()
        store.store_measurements([{"frame": r["frame"], "stars": _rows(r["arrays"])} for r in results])
        cpu["store"] = time.process_time() - start
        report = PhotometryReport()
        start = time.process_time()
        identify(store, report)
        cpu["identify"] = time.process_time() - start
        stars = statistics.median(r["frame"]["n_stars"] for r in results)
        return {"frames": len(tasks), "stars": stars, "sources": report.sources,
                "identified": report.identified, **cpu}


def time_pure(repeats: int) -> None:
    """CPU per frame of the aperture photometry alone, 2048^2 float32, 400 stars (median of ``repeats``)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from photometry import simulated_frame

    from obsdb.imaging.photometry import aperture_photometry

    image, x, y, _ = simulated_frame(2048, 400, 1)
    aperture_photometry(image, x, y, fwhm=3.0, gain=1.5, saturation=60000)      # imports, caches
    times = []
    for _ in range(repeats):
        start = time.process_time()
        aperture_photometry(image, x, y, fwhm=3.0, gain=1.5, saturation=60000)
        times.append(time.process_time() - start)
    print(f"aperture_photometry, 2048^2 float32, 400 stars: CPU {1000 * statistics.median(times):.1f} ms per frame "
          f"(median of {repeats}; min {1000 * min(times):.1f}, max {1000 * max(times):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="50,200,500", help="Night sizes to time, comma-separated.")
    parser.add_argument("--size", type=int, default=512, help="Frame size, px.")
    parser.add_argument("--base", type=int, default=25, help="Frames simulated (the rest are copies).")
    parser.add_argument("--pure", action="store_true", help="Time the aperture photometry alone (2048^2, 400 stars).")
    parser.add_argument("--repeats", type=int, default=9, help="Frames timed with --pure.")
    args = parser.parse_args()
    if args.pure:
        time_pure(args.repeats)
        return
    from obsdb.simulate import simulate_night

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        simulate_night(tmp / "template", seed=8, size=args.size, n_frames=args.base, bands=("V", "R"), n_groups=2,
                       n_stars=int(700 * (args.size / 512) ** 2), cloud_fraction=0.0, trail_fraction=0.0,
                       defocus_fraction=0.0, max_group_offset=40)
        print(f"{args.size}x{args.size} frames, CPU ms per frame (the reading timed on its own and left out):")
        print(f"{'frames':>6} {'stars':>6} {'sources':>7} {'plan':>6} {'measure':>8} {'store':>6} {'identify':>8} "
              f"{'total':>6} {'read':>6}")
        for n in (int(v) for v in args.frames.split(",")):
            make_night(tmp / f"n{n}", tmp / "template", n)
            t = time_step(str(tmp / f"n{n}.sqlite"), tmp / f"n{n}")
            per = {k: 1000 * t[k] / t["frames"] for k in ("plan", "measure", "store", "identify", "read")}
            total = per["plan"] + per["measure"] + per["store"] + per["identify"]
            print(f"{t['frames']:>6} {t['stars']:>6.0f} {t['sources']:>7} {per['plan']:>6.1f} {per['measure']:>8.1f} "
                  f"{per['store']:>6.1f} {per['identify']:>8.1f} {total:>6.1f} {per['read']:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
