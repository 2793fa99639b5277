"""Satellite streaks: detection rate against per-pixel signal-to-noise, false positives, time per frame.

Run ``python benchmarks/streaks.py`` (``--trials N`` streaks per cell, default 12; ``--quick`` for 4).

Detection rate
    A streak of FWHM 3 px (Gaussian cross profile, :func:`obsdb.simulate.render_streak`) is added at a
    random angle and offset, from one edge of the frame to another, at a peak of ``snr`` times the
    frame's pixel noise (the MAD of the frame), into

    - ``synthetic 2048``: a simulated 2048x2048 star field (``simulate_frame``: 2,000 stars per
      2048^2 ... the simulator's default density, FWHM 3 px, 800 ADU sky, noise, hot pixels, cosmic
      rays), a new field and streak per trial;
    - ``M67 (real)``: the real POSS-I plate scan of M67 (1059x1059, ~1,400 stars; its noise is
      correlated: an 8x8-pixel block's noise is about twice white noise's), a new streak per trial.

    A trial counts as found when a streak is reported within 1 degree of the true direction and with
    both end points within 6 px of the true line; "angle err" and "end err" are the medians over found
    streaks (end err: the largest distance of a reported end point from the true line).
False positives
    Streaks reported on every real frame of ``../shared/data/real`` (none has a satellite), and on
    simulated 1024x1024 frames with trailed stars, dense fields with a strong gradient, and saturated
    stars with bleed columns, diffraction spikes, hot columns and many cosmic rays (the cases of
    tests/imaging/test_streaks.py).
Time
    :func:`obsdb.imaging.streaks.find_streaks` on a 2048x2048 float32 frame, median of ``--repeat``
    runs (default 7) after one warm-up, with and without a streak.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "data" / "real"

from obsdb.imaging.streaks import STREAKS_VERSION, find_streaks  # noqa: E402
from obsdb.simulate import FrameSpec, make_detector, make_sky, render_streak, simulate_frame  # noqa: E402


def star_field(size, seed, **spec):
    rng = np.random.default_rng(seed)
    n = spec.pop("n_stars", int(300 * size * size / 512**2))
    sky = make_sky(seed=rng, n_stars=n, extent=(size + 200, size + 200), center=(size / 2, size / 2))
    detector = make_detector(seed=rng, size=(size, size))
    frame_spec = FrameSpec(number=1, offset=(0.0, 0.0), rotation_deg=0.0, fwhm=3.0, background=800.0,
                           transparency=1.0, trail_length=spec.pop("trail_length", 0.0),
                           trail_angle_deg=spec.pop("trail_angle_deg", 0.0))
    data, _ = simulate_frame(frame_spec, sky, rng=rng, size=(size, size), detector=detector, **spec)
    return data


def noise(data) -> float:
    sample = np.asarray(data, float)[::4, ::4]
    return float(1.4826 * np.median(np.abs(sample - np.median(sample))))


def random_line(rng, ny, nx):
    """A line through a random point of the frame's central half at a random angle, to its edges."""
    cx, cy = rng.uniform(0.25, 0.75) * nx, rng.uniform(0.25, 0.75) * ny
    angle = rng.uniform(0, math.pi)
    # Avoid the detector axes, which the detector treats as possible column defects (AXIS_TOLERANCE_DEG).
    while min(math.degrees(angle) % 90, 90 - math.degrees(angle) % 90) < 1.0:
        angle = rng.uniform(0, math.pi)
    ux, uy = math.cos(angle), math.sin(angle)
    far = 2 * (nx + ny)
    return cx - far * ux, cy - far * uy, cx + far * ux, cy + far * uy


def line_distance(px, py, line):
    x0, y0, x1, y1 = line
    return abs((px - x0) * (y1 - y0) - (py - y0) * (x1 - x0)) / math.hypot(x1 - x0, y1 - y0)


def score(found, line):
    true_angle = math.degrees(math.atan2(line[3] - line[1], line[2] - line[0])) % 180
    for s in found:
        d = abs(s.angle_deg - true_angle) % 180
        d = min(d, 180 - d)
        end = max(line_distance(s.x0, s.y0, line), line_distance(s.x1, s.y1, line))
        if d < 1.0 and end < 6.0:
            return d, end
    return None


def detection_table(trials, snrs):
    rows = []
    m67 = None
    if REAL.is_dir():
        from obsdb.imaging.fitsio import read_fits_image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m67 = read_fits_image(REAL / "single" / "M67_DSS_POSS1_M6707HH.fits.gz", hash_mode="none").data
        m67 = m67.astype(np.float32)
    for name in ("synthetic 2048", "M67 (real)"):
        if name.startswith("M67") and m67 is None:
            continue
        for snr in snrs:
            rng = np.random.default_rng(int(snr * 100) + (7 if name.startswith("M67") else 0))
            hits, angle_err, end_err, spurious = 0, [], [], 0
            for trial in range(trials):
                base = star_field(2048, 1000 + trial) if name.startswith("synthetic") else m67
                sigma = noise(base)
                line = random_line(rng, *base.shape)
                data = base + render_streak(base.shape, *line, 3.0, snr * sigma).astype(np.float32)
                found = find_streaks(data)
                got = score(found, line)
                if got:
                    hits += 1
                    angle_err.append(got[0])
                    end_err.append(got[1])
                spurious += max(0, len(found) - (1 if got else 0))
            rows.append((name, snr, hits, trials, statistics.median(angle_err) if angle_err else float("nan"),
                         statistics.median(end_err) if end_err else float("nan"), spurious))
    print("Detection of one injected streak (FWHM 3 px), by peak signal-to-noise per pixel")
    print(f"{'field':16s} {'S/N/px':>6s} {'found':>9s} {'angle err':>10s} {'end err':>8s} {'other':>6s}")
    for name, snr, hits, n, a, e, other in rows:
        print(f"{name:16s} {snr:6.2f} {hits:4d}/{n:<4d} {a:9.3f}d {e:7.2f}px {other:6d}")
    print()


def false_positive_table():
    print("False positives (streaks reported on frames without one)")
    cases = []
    if REAL.is_dir():
        from obsdb.imaging.fitsio import read_fits_image

        for path in sorted(REAL.rglob("*.fit*")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    data = read_fits_image(path, hash_mode="none").data
                except Exception:  # noqa: BLE001 - a file the reader refuses is not a frame to judge
                    continue
            cases.append((f"real {path.parent.name}/{path.name}", data))
    else:
        print(f"  (real frames not found at {REAL})")
    for length, angle in ((6.0, 30.0), (9.0, 0.0), (25.0, 75.0), (40.0, 120.0)):
        cases.append((f"sim trailed {length:.0f} px at {angle:.0f} deg", star_field(1024, 30, n_stars=2000,
                                                                                   trail_length=length,
                                                                                   trail_angle_deg=angle)))
    dense = star_field(1024, 20, n_stars=6000)
    yy, xx = np.mgrid[0:1024, 0:1024]
    cases.append(("sim 6000 stars + gradient", dense + (0.6 * xx + 0.3 * yy).astype(np.float32)))
    data = star_field(1024, 40, n_cosmic_rays=300)
    sigma = noise(data)
    rng = np.random.default_rng(41)
    for _ in range(6):
        x, y = rng.uniform(100, 900, 2)
        data = np.minimum(data + render_streak(data.shape, x - 0.01, y, x + 0.01, y, 6.0, 60000.0).astype(np.float32),
                          65535.0)
        data[max(0, int(y) - 120):int(y) + 120, int(x) - 1:int(x) + 2] = 65535.0
        for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            for r in range(0, 150, 10):
                data += render_streak(data.shape, x + r * dx / 1.414, y + r * dy / 1.414, x + (r + 10) * dx / 1.414,
                                      y + (r + 10) * dy / 1.414, 2.0,
                                      100 * sigma * math.exp(-r / 50)).astype(np.float32)
    data[:, 517] += 8 * sigma
    data[300, :] += 5 * sigma
    cases.append(("sim saturated+bleeds+spikes+hot cols+300 CRs", data))
    total = 0
    for name, frame in cases:
        found = find_streaks(frame)
        total += len(found)
        if found:
            print(f"  {name}: {len(found)} -> {[(round(s.x0), round(s.y0), round(s.x1), round(s.y1)) for s in found]}")
    n_real = sum(name.startswith("real ") for name, _ in cases)
    print(f"  {n_real} real frames (every FITS file of {REAL.name}/), {len(cases) - n_real} simulated: "
          f"{total} streaks reported")
    print()


def timing_table(repeat):
    print(f"Time of find_streaks on 2048x2048 float32 (median of {repeat} runs after a warm-up)")
    base = star_field(2048, 5)
    sigma = noise(base)
    streaked = base + render_streak(base.shape, 0, 300, 2047, 1900, 3.0, 2 * sigma).astype(np.float32)
    for name, frame in (("star field, no streak", base), ("star field + streak (2 sigma/px)", streaked)):
        find_streaks(frame)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            find_streaks(frame)
            times.append(time.perf_counter() - start)
        print(f"  {name:34s} {1000 * statistics.median(times):6.0f} ms  (min {1000 * min(times):.0f} ms)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="4 trials per cell")
    args = parser.parse_args()
    trials = 4 if args.quick else args.trials
    print(f"obsdb streak detector {STREAKS_VERSION}\n")
    detection_table(trials, (0.5, 0.65, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 20.0))
    false_positive_table()
    timing_table(args.repeat)


if __name__ == "__main__":
    main()
