"""Aperture photometry per frame: obsdb's (sep apertures, sorted-annulus sky) against photutils.

Both measure the same stars on the same simulated 2048^2 frames (Gaussian stars of known flux,
photon and read noise): obsdb's :func:`obsdb.imaging.photometry.aperture_photometry`, and
photutils' ``aperture_photometry`` (exact overlap) with its ``ApertureStats`` sigma-clipped
median in the same annulus, the way its documentation does local background.  The two run
alternately, several times; the script prints the median time per frame of each, their ratio
measured in the same run, and how far the fluxes of the two agree and each is from the truth.

Usage::

    python benchmarks/photometry.py [--stars 400] [--size 2048] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

GAIN, READ_NOISE, SKY, FWHM = 1.5, 6.0, 800.0, 3.0


def simulated_frame(size: int, n_stars: int, seed: int):
    """A 2-D frame with ``n_stars`` Gaussian stars of known flux on a flat sky, with CCD noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(20, size - 20, n_stars)
    y = rng.uniform(20, size - 20, n_stars)
    flux = 10 ** rng.uniform(3.0, 5.5, n_stars)
    sigma = FWHM / 2.3548
    image = np.full((size, size), SKY)
    half = int(6 * sigma) + 2
    for xi, yi, fi in zip(x, y, flux):
        x0, y0 = int(round(xi)), int(round(yi))
        yy, xx = np.mgrid[y0 - half:y0 + half + 1, x0 - half:x0 + half + 1]
        image[y0 - half:y0 + half + 1, x0 - half:x0 + half + 1] += (
            fi * np.exp(-((xx - xi) ** 2 + (yy - yi) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2))
    noisy = (rng.poisson(image * GAIN) + rng.normal(0, READ_NOISE, image.shape)) / GAIN
    return noisy.astype(np.float32), x, y, flux


def obsdb_photometry(image, x, y):
    from obsdb.imaging.photometry import aperture_photometry

    return aperture_photometry(image, x, y, fwhm=FWHM, gain=GAIN).stars["flux"]


def photutils_photometry(image, x, y):
    from photutils.aperture import (ApertureStats, CircularAnnulus, CircularAperture,
                                    aperture_photometry)

    from obsdb.imaging.photometry import aperture_radii

    r, (inner, outer) = aperture_radii(FWHM)
    positions = np.column_stack([x, y])
    aperture = CircularAperture(positions, r=r)
    annulus = CircularAnnulus(positions, r_in=inner, r_out=outer)
    sky = ApertureStats(image, annulus).median            # sigma-clipped (3 sigma) by default
    table = aperture_photometry(image, aperture, method="exact")
    return np.asarray(table["aperture_sum"]) - sky * aperture.area


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=400)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    frames = [simulated_frame(args.size, args.stars, seed) for seed in range(3)]
    from obsdb.imaging.photometry import RADIUS_FWHM

    enclosed = 1 - np.exp(-((RADIUS_FWHM * 2.3548) ** 2) / 2)
    methods = {"obsdb (sep + sorted annulus)": obsdb_photometry, "photutils (ApertureStats)": photutils_photometry}
    times = {name: [] for name in methods}
    fluxes = {}
    for repeat in range(args.repeats):
        for name, method in (methods.items() if repeat % 2 == 0 else reversed(methods.items())):
            image, x, y, _ = frames[repeat % len(frames)]
            start = time.perf_counter()
            fluxes[name, repeat % len(frames)] = method(image, x, y)
            times[name].append(time.perf_counter() - start)

    print(f"{args.stars} stars per frame, {args.size}^2 float32, FWHM {FWHM} px, {args.repeats} runs alternated")
    print(f"{'method':32} {'median ms/frame':>16} {'min':>8}")
    medians = {}
    for name, values in times.items():
        medians[name] = statistics.median(values)
        print(f"{name:32} {1000 * medians[name]:16.1f} {1000 * min(values):8.1f}")
    names = list(methods)
    print(f"ratio photutils / obsdb, same run: {medians[names[1]] / medians[names[0]]:.1f}")

    image, x, y, truth = frames[0]
    ours, theirs = fluxes[names[0], 0], fluxes[names[1], 0]
    bright = truth > 3e4
    print(f"flux, obsdb vs photutils (median |difference| / obsdb's error, all stars): "
          f"{np.median(np.abs(ours - theirs) / obsdb_errors(image, x, y)):.3f}")
    for name, measured in ((names[0], ours), (names[1], theirs)):
        ratio = measured[bright] / (truth[bright] * enclosed)
        print(f"{name:32} bright stars (>{3e4:.0f} ADU, n={bright.sum()}): flux / truth median "
              f"{np.median(ratio):.4f}, scatter {1.4826 * np.median(np.abs(ratio - np.median(ratio))):.4f}")


def obsdb_errors(image, x, y):
    from obsdb.imaging.photometry import aperture_photometry

    return aperture_photometry(image, x, y, fwhm=FWHM, gain=GAIN).stars["flux_err"]


if __name__ == "__main__":
    main()
