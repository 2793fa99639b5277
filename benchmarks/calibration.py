"""Benchmark calibration against ccdproc: a master bias from 20 raw frames, and one light calibrated.

Usage::

    python benchmarks/calibration.py [--frames 20] [--size 2048] [--rounds 2] [--repeat 15]

Raw frames are simulated uint16 of ``size`` x ``size`` plus 32 overscan columns (BIASSEC, TRIMSEC).

* **Master bias**: each method runs in a fresh child process, obsdb and ccdproc alternated
  ``--rounds`` times.  obsdb: :func:`obsdb.pipeline.calibrate.build_master` (read with SHA-256,
  overscan, trim, sigma-clipped median in bands of rows, atomic write).  ccdproc: ``CCDData.read``,
  ``subtract_overscan(median=True)``, ``trim_image``, ``combine(method='median', sigma_clip=True,
  sigma_clip_func=np.ma.median, sigma_clip_dev_func=mad_std)``, ``write``.  Peak memory is the growth
  of the child's resident high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` after
  the imports) over its resident size then.
* **One light**: in this process, on the frame in memory (no file read): obsdb's
  :func:`obsdb.imaging.calibration.apply_calibration` (overscan, trim, bias, dark scaled x2, flat)
  against ccdproc's ``subtract_overscan``, ``trim_image``, ``subtract_bias``, ``subtract_dark(scale=True)``,
  ``flat_correct(norm_value=1)``, alternated, median of ``--repeat`` runs each; and how far the two
  results differ (relative to the sky).  obsdb is timed twice: ``apply_prepared`` with the masters
  folded once (bias + scaled dark, 1 / flat: what render, qa and ``--write-lights`` do per light, the
  masters being cached per process) and ``apply_calibration``, which folds them on every call.
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

OVERSCAN = 32


def write_raw_frames(folder: str, n: int, size: int) -> list[str]:
    """``n`` raw bias frames: level 1000 ADU with a column pattern, read noise 5 ADU, overscan."""
    from astropy.io import fits

    rng = np.random.default_rng(7)
    pattern = rng.normal(0, 2, size).astype(np.float32)[None, :]
    paths = []
    for i in range(n):
        raw = rng.normal(1000.0 + rng.normal(0, 3), 5.0, (size, size + OVERSCAN)).astype(np.float32)
        raw[:, :size] += pattern
        header = fits.Header()
        header["IMAGETYP"] = "BIAS"
        header["EXPTIME"] = 0.0
        header["BIASSEC"] = f"[{size + 1}:{size + OVERSCAN},1:{size}]"
        header["TRIMSEC"] = f"[1:{size},1:{size}]"
        path = os.path.join(folder, f"bias_{i:03d}.fits")
        fits.PrimaryHDU(np.round(raw).astype(np.uint16), header=header).writeto(path)
        paths.append(path)
    return paths


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def child(kind: str, paths_file: str, out: str) -> None:
    """Build one master bias in this (fresh) process; print seconds and peak memory as JSON."""
    import warnings

    import astropy.io.fits  # noqa: F401  (imports before the baseline)

    warnings.simplefilter("ignore")
    with open(paths_file) as handle:
        paths = handle.read().split("\n")
    if kind == "obsdb":
        from obsdb.imaging.fitsio import read_fits_image
        from obsdb.pipeline.calibrate import build_master

        digests = [read_fits_image(p, hash_mode="inline").sha256 for p in paths]
        job = {"id": 1, "kind": "bias", "path": out, "cards": {}, "bias": None, "dark": None,
               "members": [{"frame_id": i, "path": p, "sha256": d, "file_name": os.path.basename(p), "exptime": 0.0}
                           for i, (p, d) in enumerate(zip(paths, digests))]}

        def run():
            result = build_master(job)
            if "error" in result:
                raise SystemExit(result["error"])
    else:
        import ccdproc
        from astropy.nddata import CCDData
        from astropy.stats import mad_std

        def run():
            ccds = []
            for p in paths:
                ccd = CCDData.read(p, unit="adu")
                ccd = ccdproc.subtract_overscan(ccd, fits_section=ccd.header["BIASSEC"], median=True,
                                                overscan_axis=1)
                ccds.append(ccdproc.trim_image(ccd, fits_section=ccd.header["TRIMSEC"]))
            master = ccdproc.combine(ccds, method="median", sigma_clip=True, sigma_clip_low_thresh=3,
                                     sigma_clip_high_thresh=3, sigma_clip_func=np.ma.median,
                                     sigma_clip_dev_func=mad_std, mem_limit=4e9)
            master.write(out, overwrite=True)

    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current resident size
    base = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    run()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _status_kib("VmHWM")
    print(json.dumps({"seconds": seconds, "cpu": cpu, "extra_mib": (peak - base) / 1024}))


def bench_master(paths: list[str], folder: str, rounds: int) -> dict:
    paths_file = os.path.join(folder, "paths.txt")
    with open(paths_file, "w") as handle:
        handle.write("\n".join(paths))
    rows: dict[str, list[dict]] = {"obsdb": [], "ccdproc": []}
    for _ in range(rounds):
        for kind in ("obsdb", "ccdproc"):
            out = os.path.join(folder, f"master-{kind}.fits")
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind,
                                   "--paths-file", paths_file, "--out", out], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{kind}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            rows[kind].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def bench_light(size: int, repeat: int) -> dict:
    """obsdb's and ccdproc's calibration of one raw light in memory, alternated; medians in ms."""
    import warnings

    import astropy.units as u
    import ccdproc
    from astropy.io import fits
    from astropy.nddata import CCDData

    from obsdb.imaging.calibration import apply_calibration, apply_prepared, prepare_masters

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(3)
    header = fits.Header()
    header["BIASSEC"] = f"[{size + 1}:{size + OVERSCAN},1:{size}]"
    header["TRIMSEC"] = f"[1:{size},1:{size}]"
    header["EXPTIME"] = 120.0
    raw = np.round(rng.normal(1800.0, 30.0, (size, size + OVERSCAN))).astype(np.uint16)
    bias = rng.normal(0.0, 2.0, (size, size)).astype(np.float32)
    dark = rng.normal(3.0, 1.0, (size, size)).astype(np.float32)
    flat = rng.normal(1.0, 0.01, (size, size)).astype(np.float32)
    flat /= np.median(flat)

    def ours():
        return apply_calibration(raw, header, bias=bias, dark=dark, dark_scale=2.0, flat=flat)

    prepared = prepare_masters(bias=bias, dark=dark, dark_scale=2.0, flat=flat)

    def ours_prepared():
        return apply_prepared(raw, header, prepared)

    bias_ccd, flat_ccd = CCDData(bias, unit="adu"), CCDData(flat, unit="adu")
    dark_ccd = CCDData(dark, unit="adu", meta={"EXPTIME": 60.0})

    def theirs():
        ccd = CCDData(raw, unit="adu", meta=header)
        ccd = ccdproc.subtract_overscan(ccd, fits_section=header["BIASSEC"], median=True, overscan_axis=1)
        ccd = ccdproc.trim_image(ccd, fits_section=header["TRIMSEC"])
        ccd = ccdproc.subtract_bias(ccd, bias_ccd)
        ccd = ccdproc.subtract_dark(ccd, dark_ccd, exposure_time="EXPTIME", exposure_unit=u.s, scale=True)
        ccd = ccdproc.flat_correct(ccd, flat_ccd, norm_value=1.0)
        return np.asarray(ccd.data)

    times = {"obsdb": [], "obsdb prepared": [], "ccdproc": []}
    cpu = {name: [] for name in times}
    ours(), ours_prepared(), theirs()  # warm up
    for _ in range(repeat):
        for name, func in (("obsdb", ours), ("obsdb prepared", ours_prepared), ("ccdproc", theirs)):
            t0, c0 = time.perf_counter(), time.process_time()
            func()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    a, b = ours(), theirs()
    return {"obsdb_ms": 1e3 * statistics.median(times["obsdb"]),
            "prepared_ms": 1e3 * statistics.median(times["obsdb prepared"]),
            "ccdproc_ms": 1e3 * statistics.median(times["ccdproc"]),
            "cpu_ms": {name: 1e3 * statistics.median(values) for name, values in cpu.items()},
            "max_rel_diff": float(np.nanmax(np.abs(a - b)) / np.nanmedian(np.abs(b)))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=2, help="obsdb/ccdproc alternations for the master")
    parser.add_argument("--repeat", type=int, default=15, help="runs of each light calibration")
    parser.add_argument("--child")
    parser.add_argument("--paths-file")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.paths_file, args.out)
        return
    import ccdproc

    command = "python benchmarks/calibration.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"{machine_line()}; {command.strip()}  (ccdproc {ccdproc.__version__}, numpy {np.__version__})")
    light = bench_light(args.size, args.repeat)
    with tempfile.TemporaryDirectory(prefix="obsdb-bench-calib-") as folder:
        paths = write_raw_frames(folder, args.frames, args.size)
        masters = bench_master(paths, folder, args.rounds)
    print()
    print(f"| master bias of {args.frames} frames of {args.size}x{args.size} (+{OVERSCAN} overscan) | round | s | "
          "CPU s | peak MiB over start |")
    print("|---|---|---|---|---|")
    for i in range(args.rounds):
        for kind in ("obsdb", "ccdproc"):
            if i < len(masters[kind]):
                row = masters[kind][i]
                print(f"| {kind} | {i + 1} | {row['seconds']:.2f} | {row['cpu']:.2f} | {row['extra_mib']:.0f} |")
    print()
    print(f"| one light of {args.size}x{args.size}: overscan, trim, bias, dark x2, flat | ms (median of "
          f"{args.repeat}) | CPU ms |")
    print("|---|---|---|")
    cpu = light["cpu_ms"]
    print(f"| obsdb apply_prepared (masters folded once per process: render, qa, --write-lights) | "
          f"{light['prepared_ms']:.1f} | {cpu['obsdb prepared']:.1f} |")
    print(f"| obsdb apply_calibration (folds the masters on every call) | {light['obsdb_ms']:.1f} | "
          f"{cpu['obsdb']:.1f} |")
    print(f"| ccdproc chain | {light['ccdproc_ms']:.1f} | {cpu['ccdproc']:.1f} |")
    print(f"\nlargest difference obsdb - ccdproc: {light['max_rel_diff']:.2e} of the sky")


if __name__ == "__main__":
    main()
