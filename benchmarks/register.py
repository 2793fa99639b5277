"""Registration accuracy and speed against simulated truth.

Compares, on the same simulated frames (good, drifted, rotated, cloud,
trail, defocus):

- ``obsdb``: :func:`obsdb.imaging.register.register`, reference stars
  detected once and reused (as the pipeline does);
- ``astroalign``: ``astroalign.find_transform(frame, reference)`` (detects
  both images on every call, as it is normally used);
- ``notebook``: the seed notebook's method, ``centroid_2dg`` in a raw
  41x41 box around one bright star placed by hand near it in each frame,
  shift rounded to whole pixels, no rotation.

The error of a found transform is the distance between where it and the
truth send the frame centre and the four frame corners; RMS and max are over
those points and over the frames of a class.  A failure is an exception, a
non-finite result, ``ok=False``, or an error above 5 px.

Run::

    python benchmarks/register.py --frames 30 --size 2048 --seed 1
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

from obsdb import simulate as sim
from obsdb.imaging.register import detect_registration_stars, register
from obsdb.imaging.transform import Transform
from obsdb.simulate.frames import _sky_to_frame
from obsdb.simulate.night import _default_n_stars

from _children import machine_line  # noqa: E402 - benchmarks/ is on sys.path when run

FAIL_PX = 5.0
CLASSES = ("good", "bad")


def plan(n, size, rng):
    """Frame specs: kinds, offsets up to +-500 px and rotations up to 0.5 deg."""
    kinds = ["good", "good", "cloud", "trail", "defocus"]
    specs = []
    max_off = min(500.0, 0.25 * size)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        style = i % 3      # 0: small drift, 1: large offset, 2: offset and rotation
        if style == 0:
            off = rng.uniform(-3, 3, 2)
            rot = 0.0
        else:
            off = rng.uniform(-max_off, max_off, 2)
            rot = float(rng.uniform(-0.5, 0.5)) if style == 2 else 0.0
        spec = sim.FrameSpec(number=i + 1, kind=kind, offset=(float(off[0]), float(off[1])),
                             rotation_deg=rot)
        if kind == "cloud" and i % 2:
            spec.transparency = 0.1
        specs.append(spec)
    return specs


def errors(found: Transform, truth: Transform, size) -> np.ndarray:
    """Distances at the centre and the four corners."""
    n = size - 1
    pts = np.array([[n / 2, n / 2], [0, 0], [n, 0], [0, n], [n, n]], dtype=float)
    a = np.column_stack(found.apply(pts[:, 0], pts[:, 1]))
    b = np.column_stack(truth.apply(pts[:, 0], pts[:, 1]))
    return np.hypot(*(a - b).T)


def run_obsdb(frame, reference, ref_stars, saturation, centre, truth_frame):
    res = register(frame, reference, reference_stars=ref_stars, saturation=saturation)
    if not res.ok:
        raise RuntimeError(res.reason)
    return res.transform


def run_astroalign(frame, reference, ref_stars, saturation, centre, truth_frame):
    import astroalign

    t, _ = astroalign.find_transform(frame, reference)
    cx, cy = centre
    m = t.params
    rot = math.degrees(math.atan2(m[1, 0], m[0, 0]))
    scale = math.hypot(m[0, 0], m[1, 0])
    # astroalign's matrix acts about the origin; re-express it about the centre.
    xr, yr = m[0, 0] * cx + m[0, 1] * cy + m[0, 2], m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
    return Transform(xr - cx, yr - cy, rot, scale, cx, cy)


def run_notebook(frame, reference, ref_stars, saturation, centre, truth_frame):
    from photutils.centroids import centroid_2dg

    xr, yr, box_xy = truth_frame
    half = 20

    def centroid(img, x, y):
        x0, y0 = int(round(x)) - half, int(round(y)) - half
        if x0 < 0 or y0 < 0 or x0 + 2 * half + 1 > img.shape[1] or y0 + 2 * half + 1 > img.shape[0]:
            raise RuntimeError("box off the frame")
        cx_, cy_ = centroid_2dg(img[y0:y0 + 2 * half + 1, x0:x0 + 2 * half + 1])
        return x0 + cx_, y0 + cy_

    ax, ay = centroid(reference, xr, yr)
    bx, by = centroid(frame, *box_xy)
    cx, cy = centre
    return Transform(float(round(ax - bx)), float(round(ay - by)), 0.0, 1.0, cx, cy)


METHODS = {"obsdb": run_obsdb, "astroalign": run_astroalign, "notebook 2dg rounded": run_notebook}


def pick_star(truth_t: Transform, ref_xy, ref_flux, size, saturate, rng):
    """A bright unsaturated star well inside both frames, like a person would pick."""
    fx, fy = truth_t.inverse_apply(ref_xy[:, 0], ref_xy[:, 1])
    m = 60
    inside = ((ref_xy[:, 0] > m) & (ref_xy[:, 0] < size - m) & (ref_xy[:, 1] > m)
              & (ref_xy[:, 1] < size - m) & (fx > m) & (fx < size - m) & (fy > m) & (fy < size - m))
    # bright but not saturated: the peak of a FWHM 2.5-3 px Gaussian is ~ flux / 9
    ok = inside & (ref_flux < 0.4 * saturate * 9) & (ref_flux > 3e4)
    idx = np.flatnonzero(ok)
    if not len(idx):
        idx = np.flatnonzero(inside)
    i = idx[np.argmax(ref_flux[idx])]
    # the person draws the box within a few pixels of the star
    jitter = rng.uniform(-4, 4, 2)
    return ref_xy[i, 0], ref_xy[i, 1], (fx[i] + jitter[0], fy[i] + jitter[1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--verbose", action="store_true", help="print every frame's result")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    rng = np.random.default_rng(args.seed)
    size = args.size
    shape = (size, size)
    centre = ((size - 1) / 2.0, (size - 1) / 2.0)
    specs = plan(args.frames, size, rng)
    pad = int(max(math.hypot(*s.offset) for s in specs) + size * 0.01 + 50)
    extent = (size + 2 * pad, size + 2 * pad)
    n_sky = int(round(_default_n_stars(shape) * extent[0] * extent[1] / size ** 2))
    sky = sim.make_sky(seed=rng, n_stars=n_sky, extent=extent, center=centre)
    det = sim.make_detector(seed=rng, size=shape)
    ref_spec = sim.FrameSpec(number=0, kind="good", offset=(0.0, 0.0), rotation_deg=0.0)
    reference, _ = sim.simulate_frame(ref_spec, sky, rng=rng, size=shape, detector=det)
    saturation = det.saturate

    t0 = time.perf_counter()
    ref_stars = detect_registration_stars(reference, saturation=saturation)
    t_ref = time.perf_counter() - t0
    rx, ry = _sky_to_frame(sky.x, sky.y, (0.0, 0.0), 0.0, centre)
    ref_xy = np.column_stack([rx, ry])

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    methods = [next(k for k in METHODS if k.startswith(m)) for m in methods]
    rows = {(m, c): {"err": [], "fail": 0, "n": 0, "time": [], "cpu": []} for m in methods for c in CLASSES}
    for spec in specs:
        frame, truth = sim.simulate_frame(spec, sky, rng=rng, size=shape, detector=det)
        t_true = Transform(truth["dx"], truth["dy"], truth["rotation_deg"], 1.0, *centre)
        star = pick_star(t_true, ref_xy, sky.flux, size, saturation, rng)
        cls = "good" if spec.kind == "good" else "bad"
        for m in methods:
            row = rows[(m, cls)]
            row["n"] += 1
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                found = METHODS[m](frame, reference, ref_stars, saturation, centre, star)
                e = errors(found, t_true, size)
                ok = bool(np.all(np.isfinite(e)) and e.max() <= FAIL_PX)
            except Exception as exc:  # noqa: BLE001 - a benchmark counts every failure
                ok, e = False, None
                found = f"{type(exc).__name__}: {exc}"
            row["time"].append(time.perf_counter() - t0)
            row["cpu"].append(time.process_time() - c0)
            if ok:
                row["err"].append(e)
                if args.verbose:
                    print(f"  {m}: frame {spec.number} {spec.kind} off {spec.offset[0]:.0f},"
                          f"{spec.offset[1]:.0f} rot {spec.rotation_deg:.2f} T {truth['transparency']:.2f}"
                          f" trail {truth['trail_length']:.0f}: max err {e.max():.4f}")
            else:
                row["fail"] += 1
                detail = found if isinstance(found, str) else f"error {np.max(e):.1f} px"
                print(f"  {m}: frame {spec.number} ({spec.kind}) failed: {detail[:120]}")

    print(f"\n{machine_line()}; {args.frames} frames {size}x{size}, seed {args.seed}; reference detected once in "
          f"{t_ref:.3f} s (obsdb); error = centre and corner points vs truth, px; s/frame: median wall, "
          f"CPU: median CPU of this process")
    head = (f"{'method':<24} {'frames':<16} {'n':>3} {'RMS err':>9} {'max err':>9} {'fail':>5} {'s/frame':>8} "
            f"{'CPU s':>6}")
    print(head)
    print("-" * len(head))
    for m in methods:
        for c in CLASSES:
            row = rows[(m, c)]
            if not row["n"]:
                continue
            if row["err"]:
                e = np.concatenate(row["err"])
                rms, mx = f"{math.sqrt(np.mean(e ** 2)):.4f}", f"{e.max():.4f}"
            else:
                rms = mx = "-"
            label = "good" if c == "good" else "cloud/trail/defocus"
            print(f"{m:<24} {label:<16} {row['n']:>3} {rms:>9} {mx:>9} {row['fail']:>5} "
                  f"{np.median(row['time']):>8.3f} {np.median(row['cpu']):>6.3f}")


if __name__ == "__main__":
    main()
