"""The archive over nights, on five simulated nights of one instrument: the numbers of docs/archive.md.

    python benchmarks/archive.py [--out DIR] [--screenshot docs/archive.png]

Simulates five nights (M 80 written three ways, Ha written two ways, Caldwell 80 and NGC 5139 made
one by an alias, and a last night of bloated stars under a bright sky), ingests and judges them,
then prints `obsdb targets --total`, `obsdb trends` and the weights of one night's V frames, and the
CPU time of each command.  With ``--screenshot`` it serves the desk read-only and takes the
archive's trends page with headless Chromium (``CHROMIUM``, default /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

NIGHTS = [
    ("2026-03-14T20:00:00", "M80", {"V": 4, "Ha": 4}, 3.0, 400.0, 30.0),
    ("2026-04-02T20:00:00", "M 80", {"V": 4, "H-alpha": 4}, 3.2, 450.0, 30.0),
    ("2026-04-10T20:00:00", "Caldwell 80", {"V": 4}, 2.9, 420.0, 60.0),
    ("2026-04-20T20:00:00", "NGC5139", {"V": 5}, 3.1, 380.0, 60.0),
    ("2026-05-01T20:00:00", "Messier 80", {"V": 4}, 6.5, 2500.0, 30.0),
]
"""(night start, OBJECT as written, {FILTER as written: frames}, FWHM px, sky ADU, exposure s); the
same scenario as tests/api/test_archive_totals.py."""


def simulate(folder: Path) -> list[Path]:
    from obsdb.simulate import simulate_night
    from obsdb.simulate.model import FrameSpec

    folders = []
    for i, (start, target, bands, fwhm, sky, exptime) in enumerate(NIGHTS):
        specs, number = [], 1001
        for band, n in bands.items():
            for k in range(n):
                specs.append(FrameSpec(number=number, band=band, group=0, kind="good", exptime=exptime,
                                       image_type="Light Frame", offset=(1.5 * k, -0.7 * k), rotation_deg=0.0,
                                       fwhm=fwhm * (1 + 0.03 * k), background=sky * (1 + 0.05 * k),
                                       transparency=1.0))
                number += 1
        night = folder / f"night{i}"
        if not night.exists():
            simulate_night(night, specs, seed=40 + i, size=256, n_stars=80, object_name=target, night_start=start)
        folders.append(night)
    return folders


def obsdb(db: Path, *args: str) -> str:
    """Run one command; print it, its output and its CPU time (the child's user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "obsdb", "--db", str(db), *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "80"}, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"$ obsdb {' '.join(args)}    # {cpu:.2f} s CPU")
    print(done.stdout.rstrip())
    if done.stderr.strip():
        print(done.stderr.rstrip())
    print()
    return done.stdout


def weighted_stack(out: Path) -> None:
    """The noise-weighted mean against the plain mean on six frames whose sky noise differs eightfold
    (the night of tests/pipeline/test_render_weights.py), rendered with nearest-pixel shifts so that
    each frame keeps its noise."""
    import numpy as np
    from astropy.io import fits
    from astropy.stats import mad_std

    from obsdb import Catalog
    from obsdb.simulate import simulate_night
    from obsdb.simulate.model import FrameSpec

    folder = out / "noisy"
    if not folder.exists():
        specs = [FrameSpec(number=100 + i, band="V", group=0, kind="good", exptime=30.0, image_type="Light Frame",
                           offset=(0.0, 0.0), rotation_deg=0.0, fwhm=3.0, background=sky, transparency=1.0)
                 for i, sky in enumerate((300.0, 3000.0, 800.0, 12000.0, 500.0, 6000.0))]
        simulate_night(folder, specs, seed=5, size=256, n_stars=40)
    db = out / "noisy.sqlite"
    if db.exists():
        db.unlink()
    import shutil

    for old in out.glob("stack-*"):  # a new catalog: the last run's outputs are no longer its own
        shutil.rmtree(old)
    with Catalog.open(str(db), create=True) as catalog:
        catalog.ingest([folder])
        catalog.qa()
        catalog.align(status="any")
        rms = np.array([r["stats"]["background_rms"] for r in catalog.frame_dicts()])
        print("frames' sky noise (ADU):", " ".join(f"{v:.1f}" for v in rms))
        for weight in (None, "noise", "snr", "fwhm"):
            report = catalog.render(out / f"stack-{weight}", stack="mean", status="any", interpolation="nearest",
                                    weight=weight)
            noise = float(mad_std(fits.getdata(report.stacks[0]["path"])[20:-20, 20:-20]))
            print(f"mean stack, weight {weight or 'none':5}: noise {noise:6.2f} ADU")
        print(f"predicted: plain mean sqrt(sum s^2)/n = {np.sqrt(np.sum(rms**2)) / len(rms):.2f}, "
              f"inverse-variance sqrt(1/sum(1/s^2)) = {np.sqrt(1 / np.sum(1 / rms**2)):.2f}")
    print()


def screenshot(db: Path, png: Path) -> None:
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as scratch:
        server = subprocess.Popen([sys.executable, "-m", "obsdb", "--db", str(db), "serve", "--read-only", "--port",
                                   str(port), "--author", "observer", "--cache", f"{scratch}/previews"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/archive/trends"
            for _ in range(100):
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.2)
            png.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={scratch}/chromium",
                            "--window-size=1400,820", "--virtual-time-budget=10000", f"--screenshot={png}", url],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            server.terminate()
            server.wait(timeout=10)
    from PIL import Image

    Image.open(png).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
    print(f"screenshot: {png} ({png.stat().st_size:,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/obsdb-archive"))
    parser.add_argument("--screenshot", type=Path)
    arguments = parser.parse_args()
    out = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    folders = simulate(out)
    db = out / "obsdb.sqlite"
    if db.exists():
        db.unlink()
    obsdb(db, "init")
    obsdb(db, "ingest", *map(str, folders))
    obsdb(db, "qa")
    obsdb(db, "alias", "add", "Caldwell 80", "NGC5139")
    obsdb(db, "targets", "--total")
    obsdb(db, "targets")
    obsdb(db, "trends", "--wide")
    obsdb(db, "frames", "--night", "2026-03-14", "--band", "V", "--columns",
          "number,status,fwhm,background,w_noise,w_fwhm,w_stars,w_snr")
    obsdb(db, "weight", "define", "sharp", "w_noise * norm(1 / fwhm)")
    obsdb(db, "weight", "show", "sharp", "--night", "2026-03-14", "--band", "V")
    weighted_stack(out)
    if arguments.screenshot:
        screenshot(db, arguments.screenshot.resolve())


if __name__ == "__main__":
    main()
