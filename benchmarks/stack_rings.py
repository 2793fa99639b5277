"""Dark rings in stacks: how far below the sky the darkest stack pixel falls, and how many fall below 6 sigma.

A hot pixel, a cosmic-ray hit or a saturated star core rings through a cubic
spline into a dark halo; in a stack of frames dithered by a few pixels it
does not average out.  This script simulates a night (`obsdb.simulate`, the
demo's defects: hot pixels, cosmic rays, saturated stars), runs `obsdb run`
on it in a temporary folder, and for each band's stack prints the sky (the
median), sigma (1.4826 MAD), the lowest pixel, and the count of pixels below
sky - 6 sigma, with sigma scaled to each pixel's frame count
(``sigma * sqrt(typical count / count)`` from the COVERAGE extension, since a
pixel covered by 2 frames is noisier than one covered by 8).

Run::

    python benchmarks/stack_rings.py                  # the demo night: 36 frames of 512x512
    python benchmarks/stack_rings.py --size 2048 --frames 18
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def stack_rings(path: Path) -> dict:
    """Sky, sigma, lowest pixel and the pixels below sky - 6 local sigma of one stack."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        data = hdul[0].data.astype(float)
        coverage = hdul["COVERAGE"].data.astype(float)
    ok = np.isfinite(data) & (coverage > 0)
    values = data[ok]
    sky = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - sky)))
    typical = float(np.median(coverage[ok]))
    z = (values - sky) / (sigma * np.sqrt(typical / coverage[ok]))
    return {"stack": path.name, "frames": typical, "sky": sky, "sigma": sigma, "min": float(values.min()),
            "lowest_sigma": float(z.min()), "below_6_sigma": int((z < -6).sum())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="obsdb-rings-") as tmp:
        tmp = Path(tmp)
        from obsdb.simulate import simulate_night

        simulate_night(tmp / "night", seed=args.seed, size=args.size, n_frames=args.frames)
        subprocess.run([sys.executable, "-m", "obsdb.cli.app", "run", str(tmp / "night"), "--out", str(tmp / "out"),
                        "--no-report"], check=True, stdout=subprocess.DEVNULL)
        print(f"{args.frames} frames of {args.size}x{args.size}, seed {args.seed}; sigma scaled to each pixel's "
              "frame count")
        print(f"{'stack':16s} {'frames':>6s} {'sky':>9s} {'sigma':>7s} {'min ADU':>9s} {'lowest':>8s} "
              f"{'< -6 sigma':>10s}")
        for path in sorted((tmp / "out" / "aligned").rglob("stack_*.fits")):
            r = stack_rings(path)
            print(f"{r['stack']:16s} {r['frames']:6.0f} {r['sky']:9.1f} {r['sigma']:7.2f} {r['min']:9.1f} "
                  f"{r['lowest_sigma']:8.1f} {r['below_6_sigma']:10d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
