"""Benchmark rendering: resampling per interpolation, and stacking against ccdproc.

Usage::

    python benchmarks/render.py [--frames 20] [--size 2048] [--repeat 3]

Resampling is timed in this process (median of ``--repeat`` runs, seconds
per frame) for a sub-pixel shift and for a rotated transform.  Each stack is
run in a fresh subprocess so that peak memories do not mix: the peak is the
growth of the resident set's high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs`` after the imports) over the resident size then.
It counts every page touched, memory-mapped file pages included.
``ru_maxrss`` would not do: Linux carries the parent's peak into a child.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from _children import machine_line  # noqa: E402 - benchmarks/ is on sys.path when run

STACKERS = {
    "obsdb median": "obsdb stack_files(method='median')",
    "obsdb mean": "obsdb stack_files(method='mean')",
    "obsdb sigma-clip": "obsdb stack_files(method='sigma-clip')",
    "ccdproc Combiner median": "ccdproc.Combiner(...).median_combine()",
    "ccdproc combine median": "ccdproc.combine(method='median', mem_limit=512 MB)",
}


def star_field(size: int, rng, n_stars: int = 300) -> np.ndarray:
    """Sky noise plus Gaussian stars, float32."""
    image = rng.normal(1000.0, 15.0, (size, size)).astype(np.float32)
    yy, xx = np.mgrid[-8:9, -8:9]
    for _ in range(n_stars):
        x, y = rng.uniform(10, size - 10, 2)
        ix, iy = int(x), int(y)
        stamp = rng.uniform(500, 40000) * np.exp(
            -((xx - (x - ix)) ** 2 + (yy - (y - iy)) ** 2) / (2 * 2.0**2))
        image[iy - 8:iy + 9, ix - 8:ix + 9] += stamp.astype(np.float32)
    return image


def bench_resample(size: int, repeat: int):
    from scipy import ndimage

    from obsdb.imaging.resample import INTERPOLATIONS, resample
    from obsdb.imaging.transform import Transform

    frame = star_field(size, np.random.default_rng(0))
    shift = Transform(12.37, -7.61)
    rotated = Transform(12.37, -7.61, rotation_deg=0.3, cx=size / 2, cy=size / 2)

    def timed(func):
        # CPU time of this process, the figure compared (on a shared machine wall time says how much
        # of a core we got), and the wall time beside it: medians of (CPU, wall).
        cpu, wall = [], []
        for _ in range(repeat):
            t0, w0 = time.process_time(), time.perf_counter()
            func()
            cpu.append(time.process_time() - t0)
            wall.append(time.perf_counter() - w0)
        return statistics.median(cpu), statistics.median(wall)

    rows = []
    for name in INTERPOLATIONS:
        t_shift = timed(lambda: resample(frame, shift, interpolation=name))
        t_rot = (timed(lambda: resample(frame, rotated, interpolation=name))
                 if name != "fourier" else None)
        rows.append((f"obsdb {name}", t_shift, t_rot))
    # The notebook's way: whole-pixel shift with order=0, three times in a row.
    t_nb = timed(lambda: ndimage.shift(ndimage.shift(ndimage.shift(
        frame, (-8, 12), order=0), (0, 0), order=0), (0, 0), order=0))
    rows.append(("notebook 3x shift(order=0)", t_nb, None))
    return rows


def write_frames(folder: str, n: int, size: int) -> list[str]:
    """Aligned-looking frames: noise, a common star field, NaN borders of varying width."""
    from astropy.io import fits

    rng = np.random.default_rng(1)
    sky = star_field(size, rng) - 1000.0
    paths = []
    for i in range(n):
        frame = rng.normal(1000.0, 15.0, (size, size)).astype(np.float32) + sky
        frame[rng.random(frame.shape) < 1e-4] = 50000.0  # cosmic rays
        bx, by = rng.integers(0, 60, 2)
        frame[:, :bx] = np.nan
        frame[size - by:, :] = np.nan
        path = os.path.join(folder, f"aligned_{i:04d}.fits")
        fits.PrimaryHDU(frame).writeto(path)
        paths.append(path)
    return paths


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def child(kind: str, paths_file: str, repeat: int, out: str) -> None:
    """Run one stacker in this (fresh) process and print time and peak memory."""
    import astropy.io.fits  # noqa: F401  (imports before the baseline)
    import bottleneck  # noqa: F401

    with open(paths_file) as handle:
        paths = handle.read().split("\n")
    if kind.startswith("obsdb"):
        from obsdb.imaging.stack import stack_files

        method = kind.split()[-1]

        def run():
            return stack_files(paths, method=method).data
    else:
        import warnings

        import ccdproc
        from astropy.nddata import CCDData

        warnings.simplefilter("ignore")

        if "Combiner" in kind:
            def run():
                ccds = [CCDData.read(p, unit="adu") for p in paths]
                return np.asarray(ccdproc.Combiner(ccds).median_combine().data)
        else:
            def run():
                return np.asarray(ccdproc.combine(paths, method="median", unit="adu",
                                                  mem_limit=512e6).data)

    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current resident size
    base = _status_kib("VmRSS")
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        del result
    peak = _status_kib("VmHWM")
    # The result for the agreement check, outside the measured runs.
    np.save(out, np.asarray(run(), dtype=np.float32))
    print(json.dumps({"seconds": statistics.median(times), "cpu": statistics.median(cpu),
                      "extra_mib": (peak - base) / 1024}))


def bench_stack(paths: list[str], folder: str, repeat: int, kinds=None):
    paths_file = os.path.join(folder, "paths.txt")
    with open(paths_file, "w") as handle:
        handle.write("\n".join(paths))
    rows = {}
    for kind in kinds or STACKERS:
        out = os.path.join(folder, kind.replace(" ", "_") + ".npy")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind,
                               "--paths-file", paths_file, "--repeat", str(repeat),
                               "--out", out], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{kind}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["data"] = np.load(out)
        rows[kind] = result
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames to stack")
    parser.add_argument("--size", type=int, default=2048, help="frame side in pixels")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--workdir", default=None, help="folder for the temporary frames")
    parser.add_argument("--stack-only", action="store_true",
                        help="skip the resampling table and ccdproc (e.g. for 200 frames: ccdproc's "
                             "Combiner would need ~20 GB)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--paths-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.paths_file, args.repeat, args.out)
        return

    if not args.stack_only:
        print(f"# resample: one {args.size}x{args.size} frame, median of {args.repeat} runs, CPU s (wall s); "
              f"{machine_line()}")
        rows = bench_resample(args.size, args.repeat)
        ref = rows[0][1][0]
        print(f"{'method':<28} {'shift s/frame':>16} {'rotated s/frame':>16} {'shift / spline3':>16}")
        for name, (t_shift, w_shift), t_rot in rows:
            rot = f"{t_rot[0]:.3f} ({t_rot[1]:.3f})" if t_rot is not None else "n/a"
            print(f"{name:<28} {f'{t_shift:.3f} ({w_shift:.3f})':>16} {rot:>16} {t_shift / ref:>16.2f}")

    print(f"\n# stack: median of {args.frames} frames of {args.size}x{args.size}, "
          f"each stacker in its own process, median of {args.repeat} runs; "
          f"{machine_line()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        paths = write_frames(folder, args.frames, args.size)
        kinds = [k for k in STACKERS if k.startswith("obsdb")] if args.stack_only else None
        results = bench_stack(paths, folder, args.repeat, kinds)
    base = results.get("obsdb median")
    print(f"{'stacker':<26} {'seconds':>8} {'CPU s':>6} {'peak extra MiB':>15} {'time x':>7} "
          f"{'memory x':>9} {'max |diff| vs obsdb median':>27}")
    for kind, r in results.items():
        t_ratio = r["seconds"] / base["seconds"] if base else float("nan")
        m_ratio = r["extra_mib"] / base["extra_mib"] if base and base["extra_mib"] else float("nan")
        diff = "-"
        if base is not None and kind.startswith("ccdproc"):
            both = np.isfinite(r["data"]) & np.isfinite(base["data"])
            diff = f"{np.abs(r['data'][both] - base['data'][both]).max():.3g}"
        print(f"{kind:<26} {r['seconds']:>8.2f} {r['cpu']:>6.2f} {r['extra_mib']:>15.0f} {t_ratio:>7.2f} "
              f"{m_ratio:>9.2f} {diff:>27}")


if __name__ == "__main__":
    main()
