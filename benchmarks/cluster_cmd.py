"""The simulated NGC 3293 night through the catalog: its CMD against the truth, and the docs' figure.

Simulates the cluster night (``obsdb simulate DIR --cluster``, seed 3293), runs it through ``Catalog.run``
(ingest, QA, align, photometry; no render, no report), then ``Catalog.cmd``: prints how far the instrumental
colours of uncrowded S/N > 50 stars are from the truth (after one constant per colour), and the colour
terms a standards CSV made of the truth recovers; writes the CMD as ``docs/cmd-ngc3293.svg`` (the figure
docs/photometry.md ends in) and the same night's ``obsdb cmd --standards`` input.

Usage::

    python benchmarks/cluster_cmd.py [--work DIR] [--svg docs/cmd-ngc3293.svg]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

UNCROWDED = (10.0, 5.75)
"""No other star within 10 px brighter than 5.75 mag fainter (0.5 % of the flux) in any band, as
tests/imaging/test_cluster_truth.py defines it."""

SNR = 50.0
"""The issue's S/N limit for the colour comparison (per frame: a mean error times sqrt(n) under 1.0857/50)."""

MATCH_ARCSEC = 1.0
"""A source is the simulated star within this distance."""




def write_standards(truth, path: Path) -> Path:
    """The truth's RA, Dec, B, V, R as a user's standards CSV."""
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["RA", "Dec", "B", "V", "R"])
        for i in range(len(truth.stars["id"])):
            out.writerow([f"{truth.stars['ra'][i]:.7f}", f"{truth.stars['dec'][i]:.7f}",
                          *(f"{truth.stars[b][i]:.4f}" for b in "BVR")])
    return path


def compare(table, truth) -> dict:
    """Colour errors of uncrowded S/N > 50 stars (one constant per colour removed) and the truth's matches."""
    from obsdb.imaging.cmd import MAGNITUDE_PER_FLUX, match_sky

    index, _ = match_sky(np.asarray(table["ra"]), np.asarray(table["dec"]), truth.array("ra"), truth.array("dec"),
                         radius=MATCH_ARCSEC)
    blue, red = table.meta["blue"], table.meta["red"]
    limit = MAGNITUDE_PER_FLUX / SNR
    snr_ok = np.ones(len(table), dtype=bool)
    for band in (blue, red):
        n = np.maximum(np.asarray(table[f"n_{band}"]), 1)
        snr_ok &= np.asarray(table[f"mag_err_{band}"]) * np.sqrt(n) < limit
    star = np.where(index >= 0, index, 0)
    chosen = (index >= 0) & snr_ok & truth.uncrowded(*UNCROWDED)[star] & np.isfinite(np.asarray(table["colour"]))
    chosen &= star != list(truth.stars["id"]).index(truth.transit["star"])
    true = truth.array(blue.lower())[star] - truth.array(red.lower())[star]
    difference = np.asarray(table["colour"])[chosen] - true[chosen]
    difference -= np.median(difference)
    return {"n": int(chosen.sum()), "worst": float(np.max(np.abs(difference))),
            "rms": float(np.sqrt(np.mean(difference ** 2))), "chosen": chosen, "star": star}


def expected_colour_terms(truth) -> dict:
    """``V - v = const + k_V (b - v)``: the terms a perfect calibration finds (docs/cmd.md)."""
    terms = truth.system["colour_terms"]
    scale = 1 + terms["B"] - terms["V"]
    return {"B": -terms["B"] / scale, "V": -terms["V"] / scale}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/obsdb-cluster-cmd"))
    parser.add_argument("--svg", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "cmd-ngc3293.svg")
    args = parser.parse_args(argv)
    from obsdb import Catalog
    from obsdb.imaging.fitsio import atomic_write_bytes
    from obsdb.present.photometry_views import cmd_svg, standalone_svg
    from obsdb.simulate.cluster import simulate_cluster_night

    args.work.mkdir(parents=True, exist_ok=True)
    started = time.process_time()
    truth = simulate_cluster_night(args.work / "night", seed=3293)
    db = args.work / "out" / "obsdb.sqlite"
    if db.exists():
        db.unlink()
    Catalog.run(args.work / "night", args.work / "out", render_outputs=False, report=False)
    standards = write_standards(truth, args.work / "standards.csv")
    with Catalog.open(db) as catalog:
        instrumental = catalog.cmd(blue="B", red="V")
        other = catalog.cmd(blue="V", red="R")
        calibrated = catalog.cmd(blue="B", red="V", standards=standards)
    print(f"night simulated and measured in {time.process_time() - started:.0f} s CPU (this process)")
    for table in (instrumental, other):
        found = compare(table, truth)
        print(f"instrumental {table.meta['colour_name']}: {found['n']} uncrowded stars of S/N > {SNR:.0f}, "
              f"largest error {1000 * found['worst']:.1f} mmag, RMS {1000 * found['rms']:.1f} mmag")
    expected = expected_colour_terms(truth)
    for band, fit in calibrated.meta["calibration"].items():
        print(f"calibration {band}: colour term {fit['colour_term']:+.4f} +- {fit['colour_term_err']:.4f} "
              f"(truth {expected[band]:+.4f}), zero point {fit['zero_point']:+.4f}, {fit['n_standards']} of "
              f"{fit['n_matched']} standards, residual RMS {1000 * fit['rms']:.1f} mmag")
    rows = [{name: row[name] for name in instrumental.colnames} for row in instrumental]
    host = compare(instrumental, truth)
    host_index = list(truth.stars["id"]).index(truth.transit["star"])
    hosts = [int(r["id"]) for r, s in zip(rows, host["star"]) if s == host_index]
    figure = cmd_svg(rows, blue="B", red="V", magnitude="V", highlight=hosts[0] if hosts else None,
                     title=f"simulated NGC 3293: V against B - V, {len(rows)} sources (transit host highlighted)")
    atomic_write_bytes(args.svg, standalone_svg(figure).encode())
    print(f"wrote {args.svg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
