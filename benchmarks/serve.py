"""How fast the review desk answers: a 2048² frame's review page, and a 500-frame night's grid.

Issue 14's targets: the review page of a 2048 x 2048 frame appears in
<= 300 ms after the first view of the night (pictures cached on disk per frame
and stretch), and a 500-frame night's grid page loads in <= 1 s.

Method.

1. Two simulated nights (``obsdb.simulate``, float32 frames, cached under
   ``--cache`` with their catalogs, built once through ingest, qa and align):
   ``--review-frames`` (default 12) frames of 2048 x 2048 in one band, and
   ``--grid-frames`` (default 500) frames of ``--grid-size`` (default 256) in
   two bands.  The grid page's cost is the catalog query, the HTML and the
   cached thumbnails, none of which depends on the frame size; drawing a
   thumbnail does, and it happens once, in the background, after the night's
   first view (``--grid-size 2048`` measures the same with big frames, given
   the disk space: 16 MB a frame).
2. ``obsdb serve`` is started as a user starts it (a child process, port
   chosen free).  The first view of each night is made (its pictures start
   being drawn), and the benchmark waits until the cache folder holds them.
3. Timed, in headless Chromium (Playwright; ``--no-browser`` or a missing
   browser falls back to plain HTTP, whose figure is the sum of the page,
   the frame's PNG, its star cut-outs and its facts):

   - ``review``: open ``/review/NIGHT/BAND?frame=ID`` for every frame in turn,
     from navigation start until the frame's image and its star cut-outs
     have loaded and the facts panel is filled, on the page's own clock
     (``performance.now()``); median and max over frames, ``--repeat``
     rounds (default 3);
   - ``next``: on the review page, the right-arrow key until the next frame's
     image has loaded (what a reviewer waits for between two verdicts);
   - ``blink``: on the review page, ``b`` twice (the reference, then the frame resampled onto the
     reference's grid) until that image has loaded; in the first round the first frame's aligned preview
     is drawn then, the next ones were fetched ahead once the reviewer blinked; later rounds find them cached;
   - ``zoom``: ``z`` with the cursor on the frame, until the 1:1 crop (the image box's size) has loaded,
     and ``z`` again;
   - ``grid``: open ``/night/NIGHT?view=grid`` until the load event (the
     navigation timing's ``loadEventEnd``: every thumbnail in the window
     loaded; the rest are lazy), and until every thumbnail on the page has
     loaded once all are made eager.
4. The medians are printed with pass/fail against 300 ms and 1 s.

Run::

    python benchmarks/serve.py
    python benchmarks/serve.py --grid-frames 500 --grid-size 2048 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _children import machine_line  # noqa: E402 - benchmarks/ is on sys.path when run

CHROMIUM = os.environ.get("OBSDB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def build_night(folder: Path, frames: int, size: int, bands: tuple[str, ...], seed: int) -> Path:
    """A simulated night with its catalog (ingest, qa, align), reused when it exists."""
    from obsdb import Catalog
    from obsdb.simulate import simulate_night

    db = folder / "obsdb.sqlite"
    if db.exists():
        return db
    folder.mkdir(parents=True, exist_ok=True)
    print(f"simulating {frames} frames of {size}x{size} in {folder} ...", flush=True)
    simulate_night(folder / "night", seed=seed, n_frames=frames, size=size, bands=bands, n_groups=1)
    partial = folder / "building.sqlite"
    partial.unlink(missing_ok=True)
    catalog = Catalog.open(partial, create=True)
    catalog.ingest([folder / "night"], workers=2)
    catalog.qa()
    catalog.align()
    catalog.close()
    partial.rename(db)
    return db


def start_server(db: Path, cache: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = subprocess.Popen([sys.executable, "-m", "obsdb.cli.app", "--db", str(db), "serve", "--port", str(port),
                              "--cache", str(cache), "--read-only"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = child.stdout.readline()
    match = re.search(r"review desk at (\S+)", line)
    if not match:
        raise SystemExit(f"obsdb serve did not start: {line.strip()}")
    for _ in range(300):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return child, match.group(1).rstrip("/")
        time.sleep(0.1)
    child.kill()
    raise SystemExit("obsdb serve did not listen within 30 s")


def wait_for_pictures(cache: Path, ids: list[int], kinds: tuple[str, ...], timeout: float) -> float:
    """Seconds until the cache holds every kind of picture of every frame (or the timeout)."""
    start = time.perf_counter()
    wanted = {(i, k) for i in ids for k in kinds}
    while time.perf_counter() - start < timeout:
        have = set()
        for name in os.listdir(cache) if cache.exists() else []:
            match = re.fullmatch(r"(\d+)-\d+-\d+-(\w+)\.png", name)
            if match:
                have.add((int(match.group(1)), match.group(2)))
        if wanted <= have:
            return time.perf_counter() - start
        time.sleep(0.25)
    raise SystemExit(f"the cache did not fill in {timeout:.0f} s ({len(wanted - have)} pictures missing)")


def review_data(address: str, night: str, band: str) -> dict:
    page = urllib.request.urlopen(f"{address}/review/{night}/{band}").read().decode()
    return json.loads(re.search(r"<script id='review-data' type='application/json'>(.*?)</script>", page).group(1))


def http_review_ms(address: str, night: str, band: str, frame: int) -> float:
    start = time.perf_counter()
    for url in (f"/review/{night}/{band}?frame={frame}", f"/frame/{frame}.png", f"/frame/{frame}/stars.png",
                f"/frame/{frame}.json"):
        urllib.request.urlopen(address + url).read()
    return (time.perf_counter() - start) * 1000


READY = """(id) => { const f = document.getElementById('frame'), s = document.getElementById('stars');
    const ready = f.complete && f.naturalWidth > 0 && (s.style.display === 'none' || s.complete)
        && document.getElementById('desk').dataset.shown === String(id);
    return ready ? performance.now() : false; }"""
"""The review page is ready: the frame's image and star cut-outs loaded, its facts and history shown.
Returns the page's clock then (ms since the navigation started), so the figure is the browser's own,
without the driver's round trips."""


def browser_timings(review_address: str, grid_address: str, setup: dict, grid_night: str, repeat: int) -> dict:
    """Milliseconds, in headless Chromium, for the review page, the next-frame key and the grid page."""
    from playwright.sync_api import sync_playwright

    out = {"review": [], "next": [], "grid_load": [], "grid_all": [], "blink_first": [], "blink": [], "zoom": []}
    night, ids = setup["night"], setup["ids"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for round_ in range(repeat):
            for frame in ids:
                page.goto(f"{review_address}/review/{night}/V?frame={frame}")
                out["review"].append(page.wait_for_function(READY, arg=frame, polling=5).json_value())
            page.goto(f"{review_address}/review/{night}/V")
            page.wait_for_function(READY, arg=ids[0], polling=5)
            for frame in ids[1:]:
                start = time.perf_counter()
                page.keyboard.press("ArrowRight")
                page.wait_for_function(f"document.getElementById('frame').src.includes('/frame/{frame}.png') && "
                                       "document.getElementById('frame').complete", polling=5)
                out["next"].append((time.perf_counter() - start) * 1000)
            page.goto(f"{review_address}/review/{night}/V")
            page.wait_for_function(READY, arg=ids[0], polling=5)
            for k, frame in enumerate(ids):
                if k:
                    page.keyboard.press("ArrowRight")
                    page.wait_for_function(READY, arg=frame, polling=5)
                start = time.perf_counter()
                page.keyboard.press("b")
                page.keyboard.press("b")
                page.wait_for_function("document.getElementById('frame').src.includes('aligned.png') || "
                                       "/reference:|unaligned/.test(document.getElementById('caption').textContent) ? "
                                       "document.getElementById('frame').complete : false", polling=5)
                out["blink_first" if round_ == 0 else "blink"].append((time.perf_counter() - start) * 1000)
                page.keyboard.press("Escape")
                box = page.locator("#frame").bounding_box()
                page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
                start = time.perf_counter()
                page.keyboard.press("z")
                page.wait_for_function("document.getElementById('frame').src.includes('crop.png') && "
                                       "document.getElementById('frame').complete", polling=5)
                out["zoom"].append((time.perf_counter() - start) * 1000)
                page.keyboard.press("z")
            page.goto(f"{grid_address}/night/{grid_night}?view=grid", wait_until="load")
            start = time.perf_counter()
            out["grid_load"].append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
            page.evaluate("""async () => {
                for (const img of document.images) img.loading = 'eager';
                await Promise.all([...document.images].map(i => i.complete ? null :
                    new Promise(done => { i.onload = i.onerror = done; })));
            }""")
            out["grid_all"].append(out["grid_load"][-1] + (time.perf_counter() - start) * 1000)
        browser.close()
    return out


def first_night(address: str) -> str:
    import html

    return html.unescape(re.search(r"href='/night/([^']+)'", urllib.request.urlopen(address + "/").read().decode())
                         .group(1))


def server_cpu_ms(child: subprocess.Popen) -> float:
    """CPU milliseconds (user + system) the server process has used so far, from ``/proc``."""
    fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def timed_get_ms(url: str) -> float:
    start = time.perf_counter()
    urllib.request.urlopen(url).read()
    return (time.perf_counter() - start) * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "obsdb-bench-serve",
                    help="where the simulated nights and their catalogs are kept (default %(default)s)")
    ap.add_argument("--review-frames", type=int, default=12, help="2048x2048 frames to review (default 12)")
    ap.add_argument("--grid-frames", type=int, default=500, help="frames of the grid night (default 500)")
    ap.add_argument("--grid-size", type=int, default=256, help="side of the grid night's frames (default 256)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--no-browser", action="store_true", help="time over plain HTTP only")
    args = ap.parse_args(argv)

    review_db = build_night(args.cache / "review-2048", args.review_frames, 2048, ("V",), seed=3)
    grid_db = build_night(args.cache / f"grid-{args.grid_frames}x{args.grid_size}", args.grid_frames,
                          args.grid_size, ("V", "R"), seed=4)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        review_cache, grid_cache = Path(scratch) / "review", Path(scratch) / "grid"
        review_server, review_address = start_server(review_db, review_cache)
        grid_server, grid_address = start_server(grid_db, grid_cache)
        try:
            night = first_night(review_address)
            first_view = timed_get_ms(f"{review_address}/night/{night}")      # the night's first view
            ids = [f["id"] for f in review_data(review_address, night, "V")["frames"]]
            drawn = wait_for_pictures(review_cache, ids, ("zscale", "thumb", "stars"), 1800)
            setup = {"night": night, "ids": ids, "first_view_ms": first_view, "drawn_s": drawn}
            cpu = server_cpu_ms(review_server)
            results["http_review_ms"] = [http_review_ms(review_address, night, "V", i)
                                         for _ in range(args.repeat) for i in ids]
            results["http_review_cpu_ms"] = (server_cpu_ms(review_server) - cpu) / len(results["http_review_ms"])
            grid_night = first_night(grid_address)
            grid_url = f"{grid_address}/night/{grid_night}?view=grid"
            first_view = timed_get_ms(grid_url)
            thumbs = [int(i) for i in re.findall(r"src='/frame/(\d+)\.png\?size=thumb'",
                                                 urllib.request.urlopen(grid_url).read().decode())]
            drawn = wait_for_pictures(grid_cache, thumbs, ("thumb",), 3600)
            results["grid_setup"] = {"frames": len(thumbs), "first_view_ms": first_view, "drawn_s": drawn}
            results["review_setup"] = setup
            cpu = server_cpu_ms(grid_server)
            results["http_grid_html_ms"] = [timed_get_ms(grid_url) for _ in range(args.repeat * 3)]
            results["http_grid_cpu_ms"] = (server_cpu_ms(grid_server) - cpu) / len(results["http_grid_html_ms"])
            if args.no_browser:
                pass
            elif not Path(CHROMIUM).is_file():
                print(f"no Chromium at {CHROMIUM}: browser timings left out", file=sys.stderr)
            else:
                try:
                    import playwright  # noqa: F401
                except ImportError:
                    print("playwright is not installed: browser timings left out", file=sys.stderr)
                else:
                    results["browser"] = browser_timings(review_address, grid_address, setup, grid_night,
                                                         args.repeat)
        finally:
            for child in (review_server, grid_server):
                child.terminate()
                child.wait(10)
    report(results, args)
    return 0


def report(results: dict, args) -> None:
    def line(name, values, target=None):
        if not values:
            return
        med = statistics.median(values)
        verdict = "" if target is None else ("  PASS" if med <= target else "  MISS") + f" (target <= {target:g} ms)"
        print(f"  {name:<44} median {med:8.1f} ms   max {max(values):8.1f} ms   n={len(values)}{verdict}")

    setup = results["review_setup"]
    grid = results["grid_setup"]
    print(machine_line())
    print(f"review night: {len(setup['ids'])} frames of 2048x2048; first view {setup['first_view_ms']:.0f} ms, "
          f"pictures drawn in the background in {setup['drawn_s']:.1f} s")
    print(f"grid night: {grid['frames']} frames of {args.grid_size}x{args.grid_size}; first view "
          f"{grid['first_view_ms']:.0f} ms, thumbnails drawn in {grid['drawn_s']:.1f} s")
    browser = results.get("browser")
    if browser:
        print("in Chromium (after the night's first view, pictures cached):")
        line("review page of a 2048x2048 frame", browser["review"], 300)
        line("next frame (right arrow) until its image shows", browser["next"], 300)
        line("blink (b b), first round (drawn or fetched ahead)", browser.get("blink_first"))
        line("blink (b b), later rounds (cached)", browser.get("blink"))
        line("1:1 zoom (z) until the crop shows", browser.get("zoom"))
        line(f"grid page, {grid['frames']} frames, load event", browser["grid_load"], 1000)
        line("grid page, every thumbnail loaded", browser["grid_all"])
    print("over HTTP (page + PNG + star cut-outs + facts), wall; the server's CPU per request after it:")
    line("review of a 2048x2048 frame", results["http_review_ms"], 300)
    print(f"  {'':<44} server CPU {results['http_review_cpu_ms']:.1f} ms per review")
    line(f"grid page HTML, {grid['frames']} frames", results["http_grid_html_ms"], 1000)
    print(f"  {'':<44} server CPU {results['http_grid_cpu_ms']:.1f} ms per page")


if __name__ == "__main__":
    sys.exit(main())
