"""Benchmark of the QA chain on a simulated night: speed and tag accuracy.

Simulates a night (good, cloud, trail and defocus frames in several bands)
into a temporary folder, measures every frame with
:func:`obsdb.imaging.stars.measure_quality` (timed), computes transparency
against each band's reference frame, applies :func:`obsdb.pipeline.qa_rules.evaluate`,
and prints a confusion table of true kind versus tags given.  For
comparison, photutils' segmentation + SourceCatalog route (Background2D,
detect_sources, SourceCatalog fwhm/elongation) is timed on a few frames of
the same run.

With ``--catalog`` the real pipeline runs instead: the night is ingested
into a temporary catalog (:func:`obsdb.pipeline.ingest.ingest`: read, hash,
statistics and metrics of every file), :func:`obsdb.pipeline.qa.run_qa`
writes the tags, and the confusion table is read back from the catalog's
active tags.

Usage::

    python benchmarks/qa.py --frames 40 --size 2048 --seed 1
    python benchmarks/qa.py --frames 40 --size 2048 --catalog [--workers 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from obsdb.imaging.fitsio import read_fits_image
from obsdb.imaging.stars import measure_quality, transparency
from obsdb.pipeline.qa_rules import FrameMetricsInput, QaThresholds, band_statistics, evaluate
from obsdb.simulate import simulate_night

from _children import machine_line, process_cpu  # noqa: E402 - benchmarks/ is on sys.path when run

EXPECTED = {"cloud": "cloud", "trail": "trail", "defocus": "focus"}
COLUMNS = ("cloud", "bright-sky", "unknown", "trail", "focus", "seeing", "soft", "few-stars", "(none)")


def photutils_quality(data, saturation):
    """The photutils route to the same numbers: background, segmentation, catalog."""
    from astropy.convolution import convolve
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground
    from photutils.segmentation import SourceCatalog, detect_sources, make_2dgaussian_kernel

    bkg = Background2D(data, (128, 128), filter_size=(3, 3), sigma_clip=SigmaClip(3.0),
                       bkg_estimator=MedianBackground())
    sub = data - bkg.background
    kernel = make_2dgaussian_kernel(3.0, size=5)
    conv = convolve(sub, kernel)
    segm = detect_sources(conv, 5.0 * bkg.background_rms, n_pixels=5)
    if segm is None:
        return 0, float("nan")
    cat = SourceCatalog(sub, segm, convolved_data=conv)
    flux = cat.segment_flux
    order = np.argsort(flux)[::-1][:50]
    return len(cat), float(np.nanmedian(np.asarray(cat.fwhm.value)[order]))


def print_confusion(truth, tags, reasons, measured) -> None:
    """Confusion table of true kind versus tags given, then the misses and false tags.

    ``tags``/``reasons``: frame number -> set of tags / list of reasons;
    ``measured``: frame number -> (background, elongation, fwhm).
    """
    table = defaultdict(Counter)
    n_kind = Counter()
    missed, false_tags = [], []
    for number in truth.numbers:
        f = truth.frame(number)
        kind = f["kind"]
        n_kind[kind] += 1
        given = tags.get(number, set())
        for tag in given or {"(none)"}:
            table[kind][tag] += 1
        if kind == "good" and given:
            false_tags.append((number, sorted(given), reasons[number]))
        elif kind in EXPECTED and EXPECTED[kind] not in given:
            missed.append((number, kind, sorted(given), f))

    print()
    print(f"{'true kind':<10}{'frames':>7}" + "".join(f"{c:>11}" for c in COLUMNS))
    for kind in ("good", "cloud", "trail", "defocus"):
        print(f"{kind:<10}{n_kind[kind]:>7}" + "".join(f"{table[kind][c]:>11}" for c in COLUMNS))
    print()
    print(f"bad frames tagged right: {sum(n_kind[k] for k in EXPECTED) - len(missed)}"
          f"/{sum(n_kind[k] for k in EXPECTED)}; good frames tagged: {len(false_tags)}/{n_kind['good']}")
    for number, kind, given, f in missed:
        bg, elong, fwhm = (float("nan") if v is None else v for v in measured.get(number, (None,) * 3))
        print(f"  missed {number} ({kind}: bg {f['background']:.0f}, trail {f['trail_length']:.1f},"
              f" fwhm {f['fwhm']:.2f}) tags {given}; measured bg {bg:.0f},"
              f" elong {elong:.2f}, fwhm {fwhm:.2f}")
    for number, given, why in false_tags:
        print(f"  good frame {number} tagged {given}: {'; '.join(why)}")


def run_catalog(folder: Path, truth, args) -> int:
    """The real pipeline: ingest the night into a temporary catalog, run_qa, tags from the catalog."""
    from obsdb.catalog.db import database_url, upgrade
    from obsdb.api import Catalog
    from obsdb.catalog.queries import frame_records

    with tempfile.TemporaryDirectory(prefix="obsdb-qa-catalog-") as tmp:
        db = str(Path(tmp) / "obsdb.sqlite")
        upgrade(database_url(db))
        catalog = Catalog.open(db)
        try:
            t0, c0 = time.perf_counter(), process_cpu()
            ingested = catalog.ingest([folder], workers=args.workers)
            t_ingest, c_ingest = time.perf_counter() - t0, process_cpu() - c0
            t0, c0 = time.perf_counter(), process_cpu()
            report = catalog.qa(workers=args.workers)
            t_qa, c_qa = time.perf_counter() - t0, process_cpu() - c0
            with catalog.session() as session:
                records = [r.to_json() for r in frame_records(session)]
        finally:
            catalog.close()
    if ingested.failed:
        print(f"  {len(ingested.failed)} files failed: {ingested.failed[:3]}")
    by_number = {r["number"]: r for r in records}
    tags = {n: {t["name"] for t in r["tags"]} for n, r in by_number.items()}
    reasons = {n: r["reasons"] for n, r in by_number.items()}
    measured = {n: tuple((r["metrics"] or {}).get(k) for k in ("background", "elongation", "fwhm"))
                for n, r in by_number.items()}
    print_confusion(truth, tags, reasons, measured)
    status = Counter(r["status"] for r in records)
    print(f"  catalog: {len(records)} frames, {status['rejected']} rejected, {status['accepted']} accepted,"
          f" {status['pending']} pending; transparency references {report.references}")
    n = len(truth.numbers)
    print()
    print(f"{machine_line()}; wall (CPU of this process and the workers it waited for)")
    print(f"ingest (read, hash, stats, metrics; {args.workers} worker{'s' if args.workers > 1 else ''}):"
          f" {t_ingest:.1f} s ({c_ingest:.1f} s), {t_ingest / n:.3f} s ({c_ingest / n:.3f} s) per frame at "
          f"{args.size}x{args.size}")
    print(f"run_qa (transparency, rules, tags): {t_qa:.2f} s ({c_qa:.2f} s), {t_qa / n * 1000:.1f} ms "
          f"({c_qa / n * 1000:.1f} ms) per frame; {len(report.added)} tags added")
    print(f"pipeline total: {(t_ingest + t_qa) / n:.3f} s ({(c_ingest + c_qa) / n:.3f} s) per frame")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames in the night (default 40)")
    parser.add_argument("--size", type=int, default=2048, help="frame size in pixels (default 2048)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the night (default 1)")
    parser.add_argument("--bands", default="B,V,R", help="comma-separated bands (default B,V,R)")
    parser.add_argument("--photutils-frames", type=int, default=3,
                        help="frames timed with the photutils route (default 3; 0 skips)")
    parser.add_argument("--keep", type=Path, help="simulate into this folder and keep it")
    parser.add_argument("--catalog", action="store_true",
                        help="run the real pipeline (ingest + run_qa into a temporary catalog) and read "
                             "the tags back from the catalog")
    parser.add_argument("--workers", type=int, default=1, help="ingest processes with --catalog (default 1)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="obsdb-qa-") as tmp:
        out = args.keep or Path(tmp)
        t0 = time.perf_counter()
        truth = simulate_night(out, seed=args.seed, size=args.size, n_frames=args.frames,
                               bands=tuple(args.bands.split(",")), cloud_fraction=0.2,
                               trail_fraction=0.15, defocus_fraction=0.15)
        t_sim = time.perf_counter() - t0
        print(f"simulated {len(truth.numbers)} frames of {args.size}x{args.size} in {t_sim:.1f} s")
        if args.catalog:
            return run_catalog(out, truth, args)

        quality, seconds, frames, focuser = {}, [], {}, {}
        for number in truth.numbers:
            image = read_fits_image(truth.path(number))
            saturation = float(image.header.get("SATURATE", 65535.0))
            focuser[number] = image.header.get("FOCPOS")
            t0 = time.perf_counter()
            quality[number] = measure_quality(image.data, saturation=saturation)
            seconds.append(time.perf_counter() - t0)
            if len(frames) < args.photutils_frames:
                frames[number] = (image.data, saturation)

        ratio_text = ""
        if frames:
            # Imports and first-call set-up are not part of the per-frame cost.
            photutils_quality(*next(iter(frames.values())))
            pu_seconds, our_seconds = [], []
            for number, (data, saturation) in frames.items():
                t0 = time.perf_counter()
                n_pu, fwhm_pu = photutils_quality(data, saturation)
                pu_seconds.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                q = measure_quality(data, saturation=saturation)
                our_seconds.append(time.perf_counter() - t0)
                print(f"  frame {number}: photutils {n_pu} sources, FWHM {fwhm_pu:.2f} px;"
                      f" obsdb {q.n_stars} stars, FWHM {q.fwhm:.2f} px"
                      f" (truth {truth.frame(number)['fwhm']:.2f})")
            ratio = statistics.median(pu_seconds) / statistics.median(our_seconds)
            ratio_text = (f"photutils SourceCatalog route: {statistics.median(pu_seconds):.3f} s per frame"
                          f" ({ratio:.1f}x slower, {len(frames)} frames)")

        # Reference of each band: its frame with most stars (clear and sharp).
        by_band = defaultdict(list)
        for number in truth.numbers:
            by_band[truth.frame(number)["band"]].append(number)
        reference = {b: max(ns, key=lambda n: quality[n].n_stars) for b, ns in by_band.items()}
        inputs = []
        for number in truth.numbers:
            q = quality[number]
            band = truth.frame(number)["band"]
            tr = transparency(q.stars, quality[reference[band]].stars)
            inputs.append(FrameMetricsInput(number, band, q.n_stars, q.fwhm, q.hfd, q.elongation,
                                            q.background, tr, focus_position=focuser[number],
                                            focus_card="FOCPOS"))
        thresholds = QaThresholds()
        decisions = evaluate(inputs, thresholds)
        tags = defaultdict(set)
        reasons = defaultdict(list)
        for d in decisions:
            tags[d.key].add(d.tag)
            reasons[d.key].append(d.reason)

    stats = band_statistics(inputs, thresholds)
    measured = {n: (q.background, q.elongation, q.fwhm) for n, q in quality.items()}
    print_confusion(truth, tags, reasons, measured)
    for band, s in sorted(stats.items()):
        print(f"  band {band}: {s.n_frames} frames, clear background {s.clear_background:.0f} ADU,"
              f" best FWHM {s.best_fwhm:.2f} px, reference frame {reference[band]}")
    print()
    print(f"measure_quality: {statistics.median(seconds):.3f} s per frame (median of {len(seconds)};"
          f" max {max(seconds):.3f} s) at {args.size}x{args.size}")
    if ratio_text:
        print(ratio_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
