"""Registration on hard cases: any rotation, a mirror, another scale, little overlap, and no answer.

Compares, on the same simulated frames:

- ``obsdb``: :func:`obsdb.imaging.register.register` called as
  ``register(frame, reference, saturation=...)`` (both images detected on
  every call);
- ``astroalign``: ``astroalign.find_transform(frame, reference)``; every
  exception it raises (``MaxIterError``, ``ValueError``, ...) counts as a
  refusal.  Its matrix acts about the origin and is re-expressed about the
  frame centre as :mod:`benchmarks.register` does.

Classes (``--per-class`` frames each, default 8, all from fixed seeds):

``rot90``, ``rot180``, ``rot121.5``
    The star-rich sky of the test fixture (the density of
    ``make_sky(n_stars=700, extent=(800, 800))``, over a larger extent), the
    same detector, the frame turned by that angle about its centre and moved by
    a random offset of up to +-20 px in x and y.
``mirrored``
    ``np.fliplr`` of a frame simulated like the above (rotation 0, offset up to
    +-20 px).  The right answer is to refuse.  The true mapping is frame pixel
    ``(x, y)`` -> ``T(nx - 1 - x, y)``; a registration is scored against it, so
    only a parity flip could count as right, and a similarity (all either
    method can return) is "wrong".
``scale0.5``, ``scale2``
    A frame of another pixel scale ``s`` (frame pixel = ``s`` reference pixels;
    the truth transform has ``scale = s``).  ``simulate_frame`` has no scale,
    so the frame is rendered from a :class:`obsdb.simulate.SkyField` whose star
    positions are the reference sky's scaled about the frame centre,
    ``c + (S - c) / s``, with the same total fluxes, the FWHM divided by ``s``
    (the same seeing in arcseconds; ~1.3 px at ``s = 2``) and the sky level per
    pixel multiplied by ``s**2`` (the same surface brightness).  The offset
    ``o`` given to ``simulate_frame`` is in the scaled sky, so the true shift
    is ``s * o``; truth is exact, no image is resampled.
``overlap30``
    Rotation 0, an offset for which exactly 30 % of the frame area overlaps
    the reference: ``(1 - |ox|/n) (1 - |oy|/n) = 0.3``, the split between x and
    y and the signs random.
``faint+pattern``
    As ``test_a_faint_frame_with_fixed_pattern_is_registered_right_or_refused``
    in tests/imaging/test_register.py, one sky per frame: 40 stars per 512x512 field of
    700x700 px (fluxes 300-20,000 per 30 s, so the brightest are a few tens of
    sigma and most are near 5 sigma), 5 s exposures on an 800 ADU sky, 400 hot
    pixels, and the same ``_fixed_pattern`` (column offsets, warm columns, a
    gradient) added to frame and reference; true shifts 10-40 px in x and in y,
    random signs.  The right answer is a registration within 0.5 px or a
    refusal, so here "wrong" is an error above 0.5 px and the "0.05-1 px"
    column holds 0.05-0.5 px.
``faint cluster``
    The same, but a crowded faint field: 3000 stars per 512x512 field of
    700x700 px with fluxes 200-6,000 per 30 s, so a 5 s frame has only a
    handful above the usual detection and many a matched filter still finds
    (as ``test_a_faint_crowded_frame_is_registered_from_its_faint_stars``).
``noise``
    Gaussian noise (mean 800, sigma 25 ADU) plus the detector's hot pixels, no
    stars.  No true answer.
``other field``
    A frame of another sky (another seed, the same density and detector).  No
    true answer.
``flat``
    ``simulate_frame`` of an ``image_type="Flat Field"`` (smooth vignetted
    illumination ~25,000 ADU, its shot noise, hot pixels, cosmic rays), no
    stars.  No true answer.

The shared detector has the simulator's default hot pixels (about 20 per
512x512, ``--hot-pixels`` to change; the test fixture's 200 make
astroalign, which does not know about them, match the hot pixels at zero shift
in nearly every class).

Scoring: the error of a found transform is the largest distance between where
it and the truth send the frame pixels that land inside the reference, over a
41x41 grid (``overlap_error`` of tests/imaging/test_register.py).  Each frame is
"within 0.05 px", "0.05-1 px" (loose), "wrong" (above 1 px, or any
registration where the class has no true answer, or a non-finite result) or
"refused".  The reference of the geometric classes and of ``noise``, ``other
field`` and ``flat`` is one frame of the star-rich sky at offset 0, rotation
0.  Times are wall clock per call, detection included, on whatever else the
machine is doing.

Targets, per class: obsdb is never wrong, and registers within 0.05 px at
least as many frames as astroalign.  Printed as MET or MISS.

Run::

    python benchmarks/register_hard.py                      # 8 frames per class, 512x512
    python benchmarks/register_hard.py --per-class 20 --size 1024 --seed 2
    python benchmarks/register_hard.py --classes rot90,mirrored --verbose
    python benchmarks/register_hard.py --json > hard.json   # the table, then one JSON document
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import re
import statistics
import time
import warnings

import numpy as np

from obsdb import simulate as sim
from obsdb.imaging.register import register
from obsdb.imaging.transform import Transform

from _children import machine_line  # noqa: E402 - benchmarks/ is on sys.path when run

WITHIN_PX = 0.05
LOOSE_PX = 1.0
FAINT_WRONG_PX = 0.5
DENSITY = 700 / 800**2          # stars per pixel of the test fixture's sky
OUTCOMES = ("within", "loose", "wrong", "refused")
CLASSES = ("rot90", "rot180", "rot121.5", "mirrored", "scale0.5", "scale2", "overlap30", "faint+pattern",
           "faint cluster", "noise", "other field", "flat")
FAINT_CLASSES = ("faint+pattern", "faint cluster")
NO_ANSWER = {"noise", "other field", "flat"}


# --------------------------------------------------------------------------- truth and scoring


def _fixed_pattern(shape, seed):
    """A sensor's fixed pattern: column offsets, a few warm columns and a vertical gradient.

    The same as ``_fixed_pattern`` in tests/imaging/test_register.py.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    pattern = np.tile(rng.normal(0.0, 15.0, nx), (ny, 1))
    for column in rng.choice(nx, 4, replace=False):
        pattern[:, column] += rng.uniform(200, 800)
    return pattern + np.linspace(0, 40, ny)[:, None]


def overlap_error(found, truth, size) -> float:
    """Largest distance between two mappings over the frame pixels that ``truth`` puts in the reference.

    ``found`` and ``truth`` are callables ``(x, y) -> (x_ref, y_ref)``.
    """
    grid = np.linspace(0, size - 1, 41)
    x, y = (a.ravel() for a in np.meshgrid(grid, grid))
    tx, ty = truth(x, y)
    inside = (tx >= 0) & (tx <= size - 1) & (ty >= 0) & (ty <= size - 1)
    if not inside.any():
        return float("nan")
    fx, fy = found(x[inside], y[inside])
    return float(np.hypot(fx - tx[inside], fy - ty[inside]).max())


def astroalign_transform(params, centre) -> Transform:
    """astroalign's 3x3 similarity matrix (about the origin) as a Transform about ``centre``."""
    cx, cy = centre
    m = params
    rot = math.degrees(math.atan2(m[1, 0], m[0, 0]))
    scale = math.hypot(m[0, 0], m[1, 0])
    xr, yr = m[0, 0] * cx + m[0, 1] * cy + m[0, 2], m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
    return Transform(xr - cx, yr - cy, rot, scale, cx, cy)


# --------------------------------------------------------------------------- methods


def run_obsdb(frame, reference, saturation, centre):
    """(transform or None, reason)."""
    try:
        res = register(frame, reference, saturation=saturation)
    except Exception as exc:  # noqa: BLE001 - a benchmark counts every failure (and names it)
        return None, f"raised {type(exc).__name__}: {exc}"
    if not res.ok:
        return None, res.reason
    if res.transform is None:
        return None, f"ok but no transform ({res.reason})"
    return res.transform, f"{res.method}: {res.reason}"


def run_astroalign(frame, reference, saturation, centre):
    import astroalign

    try:
        t, _ = astroalign.find_transform(np.ascontiguousarray(frame, dtype=float),
                                         np.ascontiguousarray(reference, dtype=float))
    except Exception as exc:  # noqa: BLE001 - every astroalign exception is a refusal
        return None, f"{type(exc).__name__}: {exc}"
    m = np.asarray(t.params, dtype=float)
    if not np.all(np.isfinite(m)):
        return Transform(float("nan"), float("nan"), cx=centre[0], cy=centre[1]), "non-finite matrix"
    if np.linalg.det(m[:2, :2]) < 0:
        # A parity flip cannot be a Transform: score the raw matrix instead.
        return (lambda x, y: (m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2])), \
            "parity-flipping matrix"
    return astroalign_transform(m, centre), ""


METHODS = {"obsdb": run_obsdb, "astroalign": run_astroalign}


# --------------------------------------------------------------------------- the cases


class Bench:
    """The shared sky, detector and reference, and a generator of (frame, reference, truth) per class."""

    def __init__(self, size, seed, hot_pixels=None):
        self.size = size
        self.shape = (size, size)
        self.centre = ((size - 1) / 2.0, (size - 1) / 2.0)
        ss = np.random.SeedSequence(seed)
        sky_ss, det_ss, ref_ss, class_ss = ss.spawn(4)
        # One seed per class, spawned once: a class's frames do not depend on which other classes run.
        self.class_ss = dict(zip(CLASSES, class_ss.spawn(len(CLASSES))))
        # Room for a 30 % overlap (offsets up to 0.7 n) and a half-scale frame (+-n about the centre).
        extent = int(math.ceil(2 * (1.2 * size + 40)))
        self.sky = sim.make_sky(seed=np.random.default_rng(sky_ss), n_stars=int(round(DENSITY * extent**2)),
                                extent=(extent, extent), center=self.centre)
        self.extent = extent
        self.det = sim.make_detector(seed=np.random.default_rng(det_ss), size=self.shape,
                                     n_hot_pixels=None if hot_pixels is None else int(round(
                                         hot_pixels * size**2 / 512**2)))
        self.reference, _ = sim.simulate_frame(sim.FrameSpec(0, offset=(0.0, 0.0), rotation_deg=0.0), self.sky,
                                               rng=np.random.default_rng(ref_ss), size=self.shape,
                                               detector=self.det)
        self.saturation = self.det.saturate

    def _truth(self, truth, scale=1.0):
        t = Transform(truth["dx"], truth["dy"], truth["rotation_deg"], scale, *self.centre)
        return t

    def _frame(self, rng, sky=None, **spec):
        frame, truth = sim.simulate_frame(sim.FrameSpec(1, **spec), self.sky if sky is None else sky, rng=rng,
                                          size=self.shape, detector=self.det)
        return frame, truth

    def cases(self, cls, n):
        """Yield (index, frame, reference, truth mapping or None, truth Transform or None, note)."""
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(
            self.class_ss[cls].entropy, spawn_key=self.class_ss[cls].spawn_key).spawn(n)]
        size, centre = self.size, self.centre
        for i, rng in enumerate(rngs):
            small = tuple(float(v) for v in rng.uniform(-20, 20, 2))
            if cls.startswith("rot"):
                rot = float(cls[3:])
                frame, truth = self._frame(rng, kind="good", offset=small, rotation_deg=rot)
                t = self._truth(truth)
                yield i, frame, self.reference, t.apply, t, f"offset {small[0]:+.1f},{small[1]:+.1f} rot {rot}"
            elif cls == "mirrored":
                frame, truth = self._frame(rng, kind="good", offset=small, rotation_deg=0.0)
                t = self._truth(truth)
                n1 = size - 1

                def flipped(x, y, t=t, n1=n1):
                    return t.apply(n1 - np.asarray(x, dtype=float), y)

                yield i, np.fliplr(frame), self.reference, flipped, None, \
                    f"fliplr of offset {small[0]:+.1f},{small[1]:+.1f}"
            elif cls.startswith("scale"):
                s = float(cls[5:])
                cx, cy = centre
                sky = sim.SkyField(cx + (self.sky.x - cx) / s, cy + (self.sky.y - cy) / s, self.sky.flux,
                                   self.sky.extent, self.sky.center)
                fwhm = float(rng.uniform(2.5, 3.0)) / s
                background = float(rng.uniform(500.0, 900.0)) * s * s
                frame, truth = self._frame(rng, sky=sky, kind="good", offset=small, rotation_deg=0.0, fwhm=fwhm,
                                           background=background)
                t = Transform(s * truth["dx"], s * truth["dy"], truth["rotation_deg"], s, *centre)
                yield i, frame, self.reference, t.apply, t, \
                    f"scale {s} offset {s * small[0]:+.1f},{s * small[1]:+.1f} (ref px) fwhm {fwhm:.2f}"
            elif cls == "overlap30":
                a = float(rng.uniform(0.3, 1.0))
                b = 0.3 / a
                signs = rng.choice([-1.0, 1.0], 2)
                off = (float(signs[0] * (1 - a) * size), float(signs[1] * (1 - b) * size))
                frame, truth = self._frame(rng, kind="good", offset=off, rotation_deg=0.0)
                t = self._truth(truth)
                yield i, frame, self.reference, t.apply, t, f"offset {off[0]:+.1f},{off[1]:+.1f}"
            elif cls in FAINT_CLASSES:
                seed = int(rng.integers(1 << 31))
                fext = int(round(700 * size / 512))
                cluster = cls == "faint cluster"
                fsky = sim.make_sky(seed=seed, n_stars=int(round((3000 if cluster else 40) * size**2 / 512**2)),
                                    extent=(fext, fext), center=centre, flux_min=200.0 if cluster else 300.0,
                                    flux_max=6000.0 if cluster else 2.0e4)
                det = sim.make_detector(seed=seed + 1, size=self.shape, n_hot_pixels=int(round(400 * size**2
                                                                                              / 512**2)))
                pattern = _fixed_pattern(self.shape, seed + 2)
                spec = dict(kind="good", exptime=5.0, rotation_deg=0.0, background=800.0)
                off = tuple(float(v) for v in rng.uniform(10, 40, 2) * rng.choice([-1.0, 1.0], 2))
                reference, _ = sim.simulate_frame(sim.FrameSpec(0, offset=(0.0, 0.0), **spec), fsky, rng=rng,
                                                  size=self.shape, detector=det)
                frame, truth = sim.simulate_frame(sim.FrameSpec(1, offset=off, **spec), fsky, rng=rng,
                                                  size=self.shape, detector=det)
                t = self._truth(truth)
                yield i, frame + pattern, reference + pattern, t.apply, t, \
                    f"shift {off[0]:+.1f},{off[1]:+.1f}"
            elif cls == "noise":
                noise = rng.normal(800.0, 25.0, self.shape).astype(np.float32)
                noise[self.det.hot_y, self.det.hot_x] += np.minimum(self.det.hot_value, 60000)
                yield i, noise, self.reference, None, None, "noise + hot pixels"
            elif cls == "other field":
                sky = sim.make_sky(seed=rng, n_stars=len(self.sky), extent=(self.extent, self.extent),
                                   center=centre)
                frame, _ = self._frame(rng, sky=sky, kind="good", offset=small, rotation_deg=0.0)
                yield i, frame, self.reference, None, None, "another sky"
            elif cls == "flat":
                exptime = float(rng.uniform(1.0, 10.0))
                frame, _ = self._frame(rng, image_type="Flat Field", exptime=exptime, offset=(0.0, 0.0),
                                       rotation_deg=0.0)
                yield i, frame, self.reference, None, None, f"flat {exptime:.1f} s"
            else:
                raise ValueError(cls)


def score(cls, found, truth_map, size):
    """(outcome, error in px or None)."""
    if found is None:
        return "refused", None
    if truth_map is None:
        return "wrong", None
    fmap = found.apply if isinstance(found, Transform) else found
    err = overlap_error(fmap, truth_map, size)
    if not math.isfinite(err):
        return "wrong", err
    wrong_px = FAINT_WRONG_PX if cls in FAINT_CLASSES else LOOSE_PX
    if err <= WITHIN_PX:
        return "within", err
    return ("loose", err) if err <= wrong_px else ("wrong", err)


def describe(t) -> str:
    if t is None:
        return "-"
    if not isinstance(t, Transform):
        return "parity-flipping matrix"
    return f"dx {t.dx:+.3f} dy {t.dy:+.3f} rot {t.rotation_deg:+.4f} scale {t.scale:.5f}"


def _reason_key(reason: str) -> str:
    """A reason with its numbers masked, to count reasons that differ only in figures."""
    return re.sub(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#", reason)


# --------------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=8, help="frames per class (default 8)")
    ap.add_argument("--size", type=int, default=512, help="frame size in pixels, e.g. 512 or 1024 (default 512)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--classes", default=",".join(CLASSES), help="comma-separated subset of " + ", ".join(CLASSES))
    ap.add_argument("--hot-pixels", type=int, default=None,
                    help="hot pixels per 512x512 of the shared detector (default: the simulator's, ~20; "
                         "the test fixture has 200)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    ap.add_argument("--verbose", action="store_true", help="print every frame's result")
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON document")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    for c in classes:
        if c not in CLASSES:
            ap.error(f"unknown class {c!r}; expected some of {', '.join(CLASSES)}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bench = Bench(args.size, args.seed, args.hot_pixels)
    size = args.size

    rows = {(m, c): {o: 0 for o in OUTCOMES} | {"n": 0, "time": [], "cpu": []} for c in classes for m in methods}
    frames = []
    for cls in classes:
        for i, frame, reference, truth_map, truth_t, note in bench.cases(cls, args.per_class):
            for m in methods:
                t0, c0 = time.perf_counter(), time.process_time()
                found, reason = METHODS[m](frame, reference, bench.saturation, bench.centre)
                dt, cpu = time.perf_counter() - t0, time.process_time() - c0
                outcome, err = score(cls, found, truth_map, size)
                row = rows[(m, cls)]
                row["n"] += 1
                row[outcome] += 1
                row["time"].append(dt)
                row["cpu"].append(cpu)
                rec = {"class": cls, "frame": i, "method": m, "outcome": outcome, "error_px": err,
                       "seconds": dt, "case": note, "found": describe(found), "truth": describe(truth_t),
                       "reason": reason}
                frames.append(rec)
                if args.verbose:
                    e = "-" if err is None else f"{err:.4f}"
                    print(f"  {cls:<13} #{i} {m:<10} {outcome:<7} err {e:>8}  {note}; found {rec['found']}"
                          f"  {reason[:100] if outcome != 'within' else ''}", flush=True)

    print(f"\n{machine_line()}; s/frame: median wall, CPU: median CPU of this process")
    print(f"{args.per_class} frames per class, {size}x{size}, seed {args.seed}, {len(bench.det.hot_x)} hot pixels "
          f"on the shared detector; error = max over the frame pixels "
          f"landing in the reference (41x41 grid), px")
    head = (f"{'class':<14}| {'method':<10}| {'n':>3} | {'within 0.05 px':>14} | {'0.05-1 px':>9} | {'wrong':>5} "
            f"| {'refused':>7} | {'median s/frame':>14} | {'CPU s':>6}")
    print(head)
    print("-" * len(head))
    for cls in classes:
        for m in methods:
            r = rows[(m, cls)]
            med = statistics.median(r["time"]) if r["time"] else float("nan")
            cpu = statistics.median(r["cpu"]) if r["cpu"] else float("nan")
            print(f"{cls:<14}| {m:<10}| {r['n']:>3} | {r['within']:>14} | {r['loose']:>9} | {r['wrong']:>5} "
                  f"| {r['refused']:>7} | {med:>14.3f} | {cpu:>6.3f}")
    if set(FAINT_CLASSES) & set(classes):
        print(f"(faint+pattern, faint cluster: wrong = error > {FAINT_WRONG_PX} px, the middle column is 0.05-{FAINT_WRONG_PX} px; "
              f"{', '.join(sorted(NO_ANSWER | {'mirrored'}))}: any registration is wrong)")

    reasons_out = {}
    if "obsdb" in methods:
        print("\nobsdb's most common refusal reason per class (first 100 chars):")
        for cls in classes:
            refused = [f["reason"] for f in frames if f["class"] == cls and f["method"] == "obsdb"
                       and f["outcome"] == "refused"]
            if not refused:
                print(f"  {cls:<14} (no refusals)")
                continue
            counts = collections.Counter(_reason_key(r) for r in refused)
            key, k = counts.most_common(1)[0]
            example = next(r for r in refused if _reason_key(r) == key)
            reasons_out[cls] = {"reason": example, "count": k, "refused": len(refused)}
            print(f"  {cls:<14} [{k}/{len(refused)}] {example[:100]}")

    targets = {}
    if {"obsdb", "astroalign"} <= set(methods):
        print("\ntargets: obsdb wrong = 0; obsdb within 0.05 px >= astroalign's")
        for cls in classes:
            o, a = rows[("obsdb", cls)], rows[("astroalign", cls)]
            ok_wrong = o["wrong"] == 0
            ok_within = o["within"] >= a["within"]
            met = ok_wrong and ok_within
            targets[cls] = {"met": met, "obsdb_wrong": o["wrong"], "obsdb_within": o["within"],
                            "astroalign_within": a["within"]}
            print(f"  {cls:<14} {'MET ' if met else 'MISS'}  wrong {o['wrong']}{'' if ok_wrong else ' (!)'}, "
                  f"within {o['within']} vs {a['within']}{'' if ok_within else ' (!)'}")
        print(f"  all classes: {'MET' if all(t['met'] for t in targets.values()) else 'MISS'}")

    if args.json:
        print(json.dumps({
            "per_class": args.per_class, "size": size, "seed": args.seed, "hot_pixels": len(bench.det.hot_x),
            "rows": [{"class": c, "method": m, "n": rows[(m, c)]["n"],
                      **{o: rows[(m, c)][o] for o in OUTCOMES},
                      "median_seconds": statistics.median(rows[(m, c)]["time"]) if rows[(m, c)]["time"] else None}
                     for c in classes for m in methods],
            "obsdb_refusal_reasons": reasons_out, "targets": targets, "frames": frames,
        }, indent=2, default=float))


if __name__ == "__main__":
    main()
