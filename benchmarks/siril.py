"""obsdb align + render + median stack against Siril's register + stack, on one simulated night.

Target (issue 25, item 6; issue 13 asked 2x): obsdb's align + render + median
stack of one band takes <= 1.5x the wall time of Siril (``siril-cli``)
registering and median-stacking the same frames at 1024^2, <= 1.0x at 2048^2,
at obsdb's accuracy.

Method.  The script

1. simulates one night with ``obsdb simulate DIR --frames N --size S --seed
   SEED --bands BANDS`` into a temporary folder (the true shift of every
   frame onto the night's first frame is in ``DIR/truth.json``, key ``dx``,
   ``dy``: ``x_reference - x_frame``) and reads every file once so that all
   timed reads come from the page cache (not timed);
2. makes one catalog with ``obsdb --db X init``, ``ingest DIR``, ``qa`` (not
   timed: ingest and qa are obsdb's own work, Siril has no counterpart, its
   job here is only to register and stack).  The band is ``--band``, by
   default the band with the most accepted frames; the frames both tools get
   are that band's accepted light frames (qa's rejects, clouds, trails and
   defocus, are left out of both);
3. runs one untimed warm-up round (it writes ``.pyc`` files and Siril's
   config, checks that every method works and that both stacks hold the same
   frames), then ``--repeat`` timed rounds.  Round ``i`` runs every method
   once, in an order rotated by ``i``; each obsdb method works on a fresh copy
   of the catalog of step 2:

   (a) ``cli``: ``obsdb --db X align --band B`` then ``obsdb --db X render
       --out OUT --band B --stack median`` (``-j W`` on both with
       ``--workers``), as subprocesses, wall clock start to exit; the sum is
       the method's time, each part is reported too;
   (b) ``api``: one Python process (``python benchmarks/siril.py --child
       api``) doing ``Catalog.open(X).align(band=B)`` then
       ``catalog.render(OUT, band=B,
       stack="median")``.  Two figures: the align + render calls in the
       process (imports and start-up excluded), and the child's whole wall
       time;
   (c) ``siril``: a fresh folder with a symbolic link to every frame of (a),
       then ``siril-cli -s script.ssf -d FOLDER`` with ``XDG_CONFIG_HOME``
       in the temporary folder (Siril's default settings, not the user's),
       wall clock start to exit.  The script (Siril 1.0 syntax; 1.2's
       ``register`` writes no images unless told, see ``SCRIPT_1_2``)::

           requires 1.0.0
           convert f
           register f
           stack r_f med -norm=add -out=stack

       ``convert`` of FITS input links the files into the sequence ``f_``,
       ``register`` is the global star alignment (Siril's default
       transformation) and writes the registered images ``r_f_*``, ``stack``
       is the median of those.  ``-norm=add`` (additive normalisation) is
       the nearest to obsdb's stack, which offsets every frame to the band's
       median sky first; ``--siril-norm none`` gives ``-nonorm``.

4. measures both accuracies against the truth: RMS over the frames of
   (measured - true) shift, px, with the true shifts re-referred to the
   tool's own reference (each tool picks its own; the reference frame itself,
   zero by construction, is left out of the RMS).  obsdb's shifts are read
   from the catalog of the warm-up round's (a) (``Catalog.frames``, the
   current shift of each frame).  Siril 1.0 keeps no shift of a global star
   alignment in its ``.seq`` file (its ``R`` lines hold zeros), so its
   shifts are read from its log: the ``Transformation Matrix`` printed before
   ``Matching stars in image K: done``, the frame-to-reference homography in
   Siril's coordinates (y up), evaluated at the frame centre (y negated to
   obsdb's rows).  Each matrix is checked against the two-decimal ``dx:``
   ``dy:`` lines Siril logs for the same image; when they disagree (threads
   interleaving their output) those rounded values are used and the output
   says so.  With Siril 1.2 the ``R`` lines carry the matrix (``H``), and
   those are used;
5. prints the per-method medians, the ratios (a)/(c) and (b)/(c) per round
   and their medians, both accuracies, and pass/fail against :func:`target_ratio`;
6. with ``--old DIR`` (another checkout of obsdb, e.g. ``git archive`` of main unpacked in DIR), a
   fourth method ``old``: (a) with DIR first on ``PYTHONPATH`` (the same interpreter and packages),
   in the same rotation, and the per-round ratio (a) / old; the warm-up round's outputs of (a) and
   old are compared byte for byte (every aligned frame, the stack and its preview); and both
   checkouts' two commands run ``--repeat`` more times each, alternated, under ``python -X
   importtime``: the median of the total import time (the ``cumulative`` column summed over the
   outermost imports) and of each heavy package's (``benchmarks/startup.py``'s
   ``parse_importtime``);
7. unless ``--no-profile``, profiles (b) once (``cProfile`` around the align
   + render calls in the child, on another fresh copy) and prints the top
   entries by cumulative and by own time.

Which obsdb is measured: the checkout this script belongs to (its parent
directory is put first on ``PYTHONPATH``), through the ``obsdb`` console
script next to ``sys.executable`` (``python -m obsdb.cli.app`` when there is
none), from ``.pyc`` files as an installed copy (``PYTHONDONTWRITEBYTECODE`` is
dropped: ``_children.installed_env``).  Siril uses every core it finds (it logs "Using 2 logical
processors"); obsdb uses one process unless ``--workers`` says otherwise.
The machine is shared: compare the ratios (measured alternately), not the
absolute times.  When ``siril-cli`` is not installed, the script says so in
one line and exits 0.  Everything is written in one temporary folder,
removed at the end.

Run::

    python benchmarks/siril.py                                  # 21 frames of 1024x1024, 5 rounds
    python benchmarks/siril.py --frames 50 --size 2048 --repeat 3
    python benchmarks/siril.py --frames 9 --size 512 --repeat 1 --no-profile   # quick check
    python benchmarks/siril.py --json > siril.json
    git -C /work/main archive main | tar -x -C /tmp/old-obsdb
    python benchmarks/siril.py --repeat 3 --no-profile --old /tmp/old-obsdb   # this checkout against that one
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this checkout's obsdb, for the parent too

from _children import ROOT, installed_env, obsdb_prefix, tune_allocator_as_the_commands_do  # noqa: E402
from startup import parse_importtime  # noqa: E402

def target_ratio(size: int) -> float:
    """The largest obsdb / Siril wall-time ratio allowed for frames of ``size`` px (issue 25, item 6)."""
    return 1.5 if size <= 1024 else 1.0


WIDTH = 98
METHODS = ("cli", "api", "siril")
LABELS = {
    "cli": "(a) obsdb align + render --stack median, commands",
    "api": "(b) obsdb Catalog.align + render, in one process",
    "siril": "(c) siril-cli: convert + register + stack med",
    "old": "(a') the same commands, --old checkout",
}
# Rows left out of the cumulative table: import machinery, exec/__import__, module bodies and this script.
SKIP_CUMULATIVE = ("<frozen", "~:0(<built-in method builtins.", "~:0(<method 'enable'", "benchmarks/siril.py")
SEQUENCE = "f"
SCRIPT_1_0 = """requires 1.0.0
convert {seq}
register {seq}
stack r_{seq} med {norm} -out=stack
"""
# Siril 1.2: register computes the transforms (-2pass) and seqapplyreg writes the images.
SCRIPT_1_2 = """requires 1.2.0
convert {seq}
register {seq}_ -2pass
seqapplyreg {seq}_
stack r_{seq}_ med {norm} -out=stack
"""
SIRIL_NORMS = {"add": "-norm=add", "none": "-nonorm"}


# --------------------------------------------------------------------------- helpers

def timed(argv: list[str], cwd: Path, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of one command (start to exit) and its result; exits with its output if it failed."""
    global LAST_CPU
    before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    LAST_CPU = _children_cpu() - before
    if done.returncode != 0:
        raise SystemExit(f"failed (exit code {done.returncode}): {' '.join(map(str, argv))}\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, done


LAST_CPU = 0.0
"""CPU seconds (user + system) of the last :func:`timed` command and the processes it waited for: on a
shared machine wall time says how much of the cores a command got, CPU time what its work cost."""


def _children_cpu() -> float:
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def rms(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else float("nan")


def siril_command() -> str | None:
    """The ``siril-cli`` to run, or None when there is none that answers ``--version``."""
    for candidate in (shutil.which("siril-cli"), "/usr/bin/siril-cli"):
        if candidate and Path(candidate).is_file():
            try:
                done = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if done.returncode == 0:
                return candidate
    return None


def siril_version(siril: str) -> tuple[str, tuple[int, ...]]:
    text = subprocess.run([siril, "--version"], capture_output=True, text=True).stdout.strip()
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return text, tuple(int(g) for g in found.groups()) if found else (1, 0, 0)


# --------------------------------------------------------------------------- child side

def child_api(db: Path, out: Path, band: str, workers: int, profile: Path | None) -> dict:
    """align + render in this process, cold (first call: lazy imports paid) then warm; seconds of each call.

    The warm pass runs on a copy of the catalog made before the cold pass, into ``OUT-warm``: every
    import is done by then (and in-process caches are warm), so it is what align + render cost alone.
    """
    marks = {}
    start = time.perf_counter()
    from obsdb import Catalog

    marks["import"] = time.perf_counter() - start
    tune_allocator_as_the_commands_do()
    warm_db = db.with_name(db.stem + "-warm.sqlite")
    shutil.copyfile(db, warm_db)
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
    for suffix, catalog_path, target in (("", db, out), ("_warm", warm_db, out.with_name(out.name + "-warm"))):
        with Catalog.open(catalog_path) as cat:
            t = time.perf_counter()
            if profiler and not suffix:
                profiler.enable()
            cat.align(band=band, workers=workers)
            marks["align" + suffix] = time.perf_counter() - t
            t = time.perf_counter()
            report = cat.render(target, band=band, stack="median", workers=workers)
            marks["render" + suffix] = time.perf_counter() - t
            if profiler and not suffix:
                profiler.disable()
                profiler.dump_stats(str(profile))
        if report.failed or len(report.stacks) != 1:
            raise SystemExit(f"render failed: {report.failed[:3]}, stacks {report.stacks}")
        marks["align+render" + suffix] = marks["align" + suffix] + marks["render" + suffix]
        if suffix:
            shutil.rmtree(target, ignore_errors=True)
    return marks


# --------------------------------------------------------------------------- parent side

class Bench:
    """The night, the prepared catalog and the three methods."""

    def __init__(self, tmp: Path, args, siril: str):
        self.tmp, self.args, self.siril = tmp, args, siril
        self.env = installed_env()
        self.obsdb = obsdb_prefix()
        self.night = tmp / "night"
        self.base = tmp / "base.sqlite"
        # Siril reads and writes its settings under $XDG_CONFIG_HOME/siril: a folder of its own here,
        # so its defaults are used, whatever the user set.
        self.siril_env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "config")}
        self.counter = 0
        self.version_text, self.version = siril_version(siril)
        template = SCRIPT_1_2 if self.version >= (1, 2) else SCRIPT_1_0
        self.script = template.format(seq=SEQUENCE, norm=SIRIL_NORMS[args.siril_norm])
        self.script_path = tmp / "script.ssf"
        self.script_path.write_text(self.script)
        self.jobs = ["-j", str(args.workers)] if args.workers > 1 else []

    def fresh(self, what: str) -> Path:
        self.counter += 1
        return self.tmp / f"{what}-{self.counter}"

    # ------------------------------------------------------------ preparation (untimed)

    def prepare(self) -> None:
        a = self.args
        timed([*self.obsdb, "simulate", str(self.night), "--frames", str(a.frames), "--size", str(a.size),
               "--seed", str(a.seed), "--bands", a.bands], self.tmp, self.env)
        for path in self.night.glob("*.fits"):
            path.read_bytes()
        db = ["--db", str(self.base)]
        timed([*self.obsdb, *db, "init"], self.tmp, self.env)
        timed([*self.obsdb, *db, "ingest", str(self.night)], self.tmp, self.env)
        timed([*self.obsdb, *db, "qa"], self.tmp, self.env)
        from obsdb import Catalog

        with Catalog.open(self.base) as cat:
            accepted = cat.frames(image_type="light", status="accepted")
            every = cat.frames(image_type="light")
        counts = {}
        for record in accepted:
            counts[record.band] = counts.get(record.band, 0) + 1
        if not counts:
            raise SystemExit("qa accepted no frame: nothing to align")
        self.band = a.band or sorted(counts, key=lambda b: (-counts[b], b))[0]
        self.frames = sorted((r.path for r in accepted if r.band == self.band), key=lambda p: Path(p).name)
        self.in_band = sum(1 for r in every if r.band == self.band)
        if len(self.frames) < 2:
            raise SystemExit(f"band {self.band}: {len(self.frames)} accepted frame(s), nothing to stack")
        from obsdb.simulate import NightTruth

        truth = NightTruth.load(self.night)
        self.truth = {str(self.night / f["file"]): (f["dx"], f["dy"]) for f in truth.frames}

    def copy_base(self) -> Path:
        db = self.fresh("catalog").with_suffix(".sqlite")
        shutil.copyfile(self.base, db)
        return db

    # ------------------------------------------------------------ the methods

    def run_cli(self, env: dict | None = None) -> dict:
        db, out = self.copy_base(), self.fresh("out")
        env = env or self.env
        align, _ = timed([*self.obsdb, "--db", str(db), "align", "--band", self.band, *self.jobs], self.tmp, env)
        cpu = LAST_CPU
        render, _ = timed([*self.obsdb, "--db", str(db), "render", "--out", str(out), "--band", self.band,
                           "--stack", "median", *self.jobs], self.tmp, env)
        return {"time": align + render, "align": align, "render": render, "cpu": cpu + LAST_CPU, "db": db, "out": out}

    def run_old(self) -> dict:
        """(a) with the ``--old`` checkout first on the path."""
        return self.run_cli(self.old_env())

    def old_env(self) -> dict:
        return {**self.env, "PYTHONPATH": os.pathsep.join((str(self.args.old), self.env["PYTHONPATH"]))}

    def import_times(self, env: dict) -> dict:
        """Import ms of align and render run as commands under ``-X importtime``: the total and the heavy packages'."""
        db, out = self.copy_base(), self.fresh("out")
        prefix = obsdb_prefix(("-X", "importtime"))
        found = {}
        for step, args in (("align", ["align", "--band", self.band]),
                           ("render", ["render", "--out", str(out), "--band", self.band, "--stack", "median"])):
            _, done = timed([*prefix, "--db", str(db), *args, *self.jobs], self.tmp, env)
            found[step] = {"total": import_total(done.stderr), **parse_importtime(done.stderr)}
        shutil.rmtree(out, ignore_errors=True)
        return found

    def run_api(self, profile: Path | None = None) -> dict:
        db, out = self.copy_base(), self.fresh("out")
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", "api", "--db", str(db), "--out", str(out),
                "--band", self.band, "--workers", str(self.args.workers)]
        if profile is not None:
            argv += ["--profile-to", str(profile)]
        wall, done = timed(argv, self.tmp, self.env)
        marks = json.loads(done.stdout.strip().splitlines()[-1])
        return {"time": marks["align+render"], "wall": wall, "warm": marks["align+render_warm"], **marks,
                "cpu": LAST_CPU, "db": db, "out": out}

    def run_siril(self) -> dict:
        work = self.fresh("siril")
        work.mkdir()
        for path in self.frames:
            (work / Path(path).name).symlink_to(path)
        argv = [self.siril, "-s", str(self.script_path), "-d", str(work)]
        wall, done = timed(argv, work, self.siril_env)
        cpu = LAST_CPU
        log = done.stdout
        if "Script execution finished successfully" not in log or not list(work.glob("stack.fit*")):
            raise SystemExit(f"siril-cli did not finish its script:\n{log[-3000:]}\n{done.stderr[-2000:]}")
        stacked = re.search(r"(\d+) images have been stacked", log)
        return {"time": wall, "cpu": cpu, "work": work, "log": log,
                "stacked": int(stacked.group(1)) if stacked else None}

    # ------------------------------------------------------------ accuracy

    def obsdb_shifts(self, db: Path) -> tuple[dict, str | None]:
        from obsdb import Catalog

        with Catalog.open(db) as cat:
            records = cat.frames(band=self.band, image_type="light", status="accepted")
        shifts, reference = {}, None
        for r in records:
            if r.shift:
                shifts[r.path] = (r.shift.dx, r.shift.dy)
                if r.shift.method == "reference":
                    reference = r.path
        return shifts, reference

    def siril_shifts(self, work: Path, log: str) -> tuple[dict, str | None, int, list]:
        """Siril's shift of every frame (obsdb's convention), its reference, how many matrices were
        replaced by the logged two-decimal shifts, and the frames Siril skipped."""
        images = {}  # Siril's 1-based image index -> input path, from the links convert made
        for link in sorted(work.glob(f"{SEQUENCE}_*.fit*")):
            found = re.fullmatch(rf"{SEQUENCE}_(\d+)\.fits?", link.name)
            if found:
                images[int(found.group(1))] = str(Path(os.path.realpath(link)))
        ny = nx = self.args.size
        cx, cy = (nx - 1) / 2, (ny - 1) / 2
        matrices = self._matrices_from_seq(work) or self._matrices_from_log(log)
        skipped = matrices.pop("skipped", set())
        shifts, replaced = {}, 0
        for index, (h, rounded) in matrices.items():
            w = h[2][0] * cx + h[2][1] * cy + h[2][2]
            xs = (h[0][0] * cx + h[0][1] * cy + h[0][2]) / w
            ys = (h[1][0] * cx + h[1][1] * cy + h[1][2]) / w
            dx, dy = xs - cx, -(ys - cy)
            if rounded is not None and (abs(-h[0][2] - rounded[0]) > 0.0051 or abs(-h[1][2] - rounded[1]) > 0.0051):
                dx, dy, replaced = -rounded[0], rounded[1], replaced + 1
            shifts[images[index]] = (dx, dy)
        missing = [path for i, path in images.items() if i not in matrices and i not in skipped]
        reference = missing[0] if len(missing) == 1 else None
        if reference:
            shifts[reference] = (0.0, 0.0)
        return shifts, reference, replaced, sorted(images[i] for i in skipped if i in images)

    @staticmethod
    def _matrices_from_seq(work: Path) -> dict:
        """Siril 1.2+: ``R`` lines with ``H h00 ... h22`` in the registered-from sequence."""
        seq = work / f"{SEQUENCE}_.seq"
        if not seq.is_file():
            return {}
        matrices, image = {}, 0
        for line in seq.read_text().splitlines():
            if re.match(r"R0? ", line):
                image += 1  # one R line per image, in image order (mono: layer 0 only)
                if " H " in line:
                    values = [float(v) for v in line.split(" H ", 1)[1].split()[:9]]
                    h = [values[0:3], values[3:6], values[6:9]]
                    if h != [[1, 0, 0], [0, 1, 0], [0, 0, 1]]:
                        matrices[image] = (h, None)
        return matrices

    @staticmethod
    def _matrices_from_log(log: str) -> dict:
        """Siril 1.0: each ``Transformation Matrix`` block and the image named by the next ``Matching stars``.

        A matrix is printed before its image is judged: when the image is then skipped (too few star
        pairs) the matrix is dropped.  Skipped images are returned under the key ``"skipped"``.
        """
        lines = [line for line in log.splitlines() if "progress:" not in line]
        matrices, pending, skipped = {}, [], set()
        number = r"([+-]?\d+(?:\.\d*)?(?:e[+-]?\d+)?)"
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.strip() == "Transformation Matrix:":
                rows = []
                for row in lines[i + 1:i + 4]:
                    found = re.fullmatch(rf"\s*{number}\s+{number}\s+{number}\s*", row)
                    if found:
                        rows.append([float(v) for v in found.groups()])
                pending.append(rows if len(rows) == 3 else None)
                i += 4
                continue
            found = re.search(r"Image (\d+) skipped", line)
            if found:
                skipped.add(int(found.group(1)))
                if "star pairs" in line and pending:
                    pending.pop()
            found = re.search(r"Matching stars in image (\d+): done", line)
            if found and pending:
                index, matrix = int(found.group(1)), pending.pop()
                dx = dy = None
                for later in lines[i + 1:i + 12]:
                    mx = re.search(r"log: dx:\s*([+-]?\d+\.\d+) px", later)
                    my = re.search(r"log: dy:\s*([+-]?\d+\.\d+) px", later)
                    dx = float(mx.group(1)) if mx and dx is None else dx
                    dy = float(my.group(1)) if my and dy is None else dy
                    if re.search(r"Matching stars in image \d+", later):
                        break
                rounded = (dx, dy) if dx is not None and dy is not None else None
                if matrix is None and rounded is not None:  # the matrix lines were broken by other output
                    matrix = [[1.0, 0.0, -dx], [0.0, 1.0, -dy], [0.0, 0.0, 1.0]]
                if matrix is not None:
                    matrices[index] = (matrix, rounded)
            i += 1
        if skipped:
            matrices["skipped"] = skipped
        return matrices

    def accuracy(self, shifts: dict, reference: str | None) -> dict:
        """RMS of measured - true shift over the frames, the truth re-referred to the tool's reference."""
        if reference is None or reference not in self.truth:
            return {"rms": float("nan"), "n": 0, "reference": None, "max": float("nan")}
        rx, ry = self.truth[reference]
        errors = []
        for path, (dx, dy) in shifts.items():
            if path == reference:
                continue
            tx, ty = self.truth[path]
            errors.append(math.hypot(dx - (tx - rx), dy - (ty - ry)))
        return {"rms": rms(errors), "n": len(errors), "reference": Path(reference).name,
                "max": max(errors) if errors else float("nan")}

    def run(self, method: str) -> dict:
        return {"cli": self.run_cli, "api": self.run_api, "siril": self.run_siril, "old": self.run_old}[method]()


def import_total(stderr: str) -> float:
    """Milliseconds of every import of a ``-X importtime`` run: the cumulative times of the outermost ones."""
    total = 0
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and name.startswith(" ") and not name.startswith("  "):
                total += int(cumulative)
    return total / 1000


def same_outputs(new: Path, old: Path) -> tuple[int, list[str]]:
    """How many files two render folders hold, and the names of those that differ (or are missing)."""
    names = sorted({p.relative_to(new) for p in new.rglob("*") if p.is_file()}
                   | {p.relative_to(old) for p in old.rglob("*") if p.is_file()})
    differ = [str(n) for n in names if not (new / n).is_file() or not (old / n).is_file()
              or (new / n).read_bytes() != (old / n).read_bytes()]
    return len(names), differ


# --------------------------------------------------------------------------- profile

def print_profile(path: Path, top: int) -> list[dict]:
    import pstats

    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, name), (cc, nc, tt, ct, _callers) in stats.stats.items():
        where = file.replace(str(ROOT) + "/", "")
        for marker in ("site-packages/", "lib/python3"):
            if marker in where:
                where = where.split(marker, 1)[1]
        rows.append({"function": f"{where}:{line}({name})", "calls": nc, "own": tt, "cumulative": ct})
    total = stats.total_tt  # align + render: every profiled second
    imports = sum(r["cumulative"] for r in rows if r["function"].endswith("(_find_and_load)"))
    print(f"\nprofile of (b), cold: {total:.2f} s, of which {imports:.2f} s imports done inside the calls "
          f"(lazy imports: matplotlib, scipy.ndimage, astropy.wcs ...)")
    for key, title in (("cumulative", "by cumulative time"), ("own", "by own time")):
        print(f"\nprofile of (b) align + render, {title} (total {total:.2f} s):")
        print(f"{'cumulative s':>12} {'own s':>8} {'calls':>8}  function")
        shown = 0
        for r in sorted(rows, key=lambda r: -r[key]):
            if key == "cumulative" and (r["function"].startswith(SKIP_CUMULATIVE) or "importlib/" in r["function"]
                                      or r["function"].endswith("(<module>)")):
                continue
            print(f"{r['cumulative']:12.3f} {r['own']:8.3f} {r['calls']:8d}  {r['function'][:70]}")
            shown += 1
            if shown >= top:
                break
    return sorted(rows, key=lambda r: -r["cumulative"])[:top]


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=21, help="frames in the night (default 21)")
    parser.add_argument("--size", type=int, default=1024, help="frame size, px (default 1024)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the night (default 13)")
    parser.add_argument("--bands", default="B,V,R", help="bands of the night (default B,V,R, simulate's)")
    parser.add_argument("--band", default=None, help="band stacked (default: the one with most accepted frames)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--workers", type=int, default=1, help="obsdb processes, -j (default 1)")
    parser.add_argument("--siril-norm", choices=sorted(SIRIL_NORMS), default="add",
                        help="Siril stack normalisation: add (-norm=add, default) or none (-nonorm)")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile of (b)")
    parser.add_argument("--top", type=int, default=25, help="profile rows shown (default 25)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--old", type=Path, help="another obsdb checkout whose commands are timed too (method old)")
    parser.add_argument("--child", choices=["api"], help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "api":
        print(json.dumps(child_api(args.db, args.out, args.band, args.workers, args.profile_to)))
        return 0

    siril = siril_command()
    if siril is None:
        print("siril-cli not found (or it does not answer --version): Siril comparison skipped")
        return 0
    say = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print

    methods = METHODS + (("old",) if args.old else ())
    if args.old and not (args.old / "obsdb" / "__init__.py").is_file():
        print(f"--old {args.old}: not an obsdb checkout (no obsdb/__init__.py)", file=sys.stderr)
        return 2
    started, load_before = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="obsdb-siril-") as name:
        bench = Bench(Path(name), args, siril)
        say(f"simulating {args.frames} frames of {args.size}x{args.size} (bands {args.bands}), ingest + qa "
            f"(untimed) ...", flush=True)
        bench.prepare()
        say(f"band {bench.band}: {len(bench.frames)} accepted of {bench.in_band} light frames; "
            f"{bench.version_text}", flush=True)

        warm = {m: bench.run(m) for m in methods}
        compared = same_outputs(warm["cli"]["out"], warm["old"]["out"]) if args.old else None
        obsdb_acc = bench.accuracy(*bench.obsdb_shifts(warm["cli"]["db"]))
        api_acc = bench.accuracy(*bench.obsdb_shifts(warm["api"]["db"]))
        siril_shifts, siril_reference, replaced, siril_skipped = bench.siril_shifts(warm["siril"]["work"], warm["siril"]["log"])
        siril_acc = bench.accuracy(siril_shifts, siril_reference)
        stacked_obsdb = len([p for p in warm["cli"]["out"].glob("*.fits") if not p.name.startswith("stack_")])
        same_frames = (stacked_obsdb == len(bench.frames) == warm["siril"]["stacked"]
                       and set(siril_shifts) == set(bench.frames))
        for r in warm.values():
            for key in ("out", "work"):
                if key in r:
                    shutil.rmtree(r[key], ignore_errors=True)

        rounds = []
        for i in range(args.repeat):
            order = methods[i % len(methods):] + methods[:i % len(methods)]
            results = {}
            for method in order:
                r = bench.run(method)
                results[method] = {k: v for k, v in r.items() if isinstance(v, (int, float))}
                for key in ("out", "work"):
                    if key in r:
                        shutil.rmtree(r[key], ignore_errors=True)
            results["order"] = list(order)
            rounds.append(results)
            say(f"round {i + 1}/{args.repeat} ({', '.join(order)}): "
                + ", ".join(f"{m} {results[m]['time']:.2f} s" for m in methods), flush=True)

        imports = {"new": [], "old": []}
        for i in range(args.repeat if args.old else 0):
            for which in (("new", "old") if i % 2 == 0 else ("old", "new")):
                imports[which].append(bench.import_times(bench.env if which == "new" else bench.old_env()))
        profile_rows = None
        if not args.no_profile:
            profile = Path(name) / "api.prof"
            bench.run_api(profile)
            if not args.json:
                profile_rows = print_profile(profile, args.top)
            else:
                import contextlib
                import io

                with contextlib.redirect_stdout(io.StringIO()):
                    profile_rows = print_profile(profile, args.top)

    def median(method, key="time"):
        return statistics.median(r[method][key] for r in rounds)

    ratio_cli = statistics.median(r["cli"]["time"] / r["siril"]["time"] for r in rounds)
    ratio_api = statistics.median(r["api"]["time"] / r["siril"]["time"] for r in rounds)
    ratio_api_wall = statistics.median(r["api"]["wall"] / r["siril"]["time"] for r in rounds)
    ratio_api_warm = statistics.median(r["api"]["warm"] / r["siril"]["time"] for r in rounds)
    old = {}
    if args.old:
        old = {"checkout": str(args.old), "median_s": median("old"), "median_align_s": median("old", "align"),
               "median_render_s": median("old", "render"), "median_cpu_s": median("old", "cpu"),
               "ratio_cli/old": statistics.median(r["cli"]["time"] / r["old"]["time"] for r in rounds),
               "ratio_align/old": statistics.median(r["cli"]["align"] / r["old"]["align"] for r in rounds),
               "ratio_render/old": statistics.median(r["cli"]["render"] / r["old"]["render"] for r in rounds),
               "ratio_old/siril": statistics.median(r["old"]["time"] / r["siril"]["time"] for r in rounds),
               "outputs_compared": compared[0], "outputs_differing": compared[1],
               "import_ms": {which: {step: {pkg: statistics.median(run[step].get(pkg, 0.0) for run in runs)
                                            for pkg in sorted({p for run in runs for p in run[step]})}
                                     for step in ("align", "render")} for which, runs in imports.items()}}
    result = {
        "frames": args.frames, "size": args.size, "seed": args.seed, "bands": args.bands, "band": bench.band,
        "stacked_frames": len(bench.frames), "repeat": args.repeat, "workers": args.workers,
        "siril": bench.version_text, "siril_script": bench.script,
        "median_s": {"cli": median("cli"), "cli_align": median("cli", "align"), "cli_render": median("cli", "render"),
                     "api": median("api"), "api_align": median("api", "align"),
                     "api_render": median("api", "render"), "api_wall": median("api", "wall"),
                     "api_warm": median("api", "warm"), "api_warm_align": median("api", "align_warm"),
                     "api_warm_render": median("api", "render_warm"),
                     "siril": median("siril")},
        "ratio": {"cli/siril": ratio_cli, "api/siril": ratio_api, "api_wall/siril": ratio_api_wall,
                  "api_warm/siril": ratio_api_warm},
        "accuracy_px": {"obsdb": obsdb_acc, "obsdb_api": api_acc, "siril": siril_acc,
                        "siril_matrices_replaced_by_rounded": replaced},
        "siril_skipped": [Path(p).name for p in siril_skipped],
        "same_frames": same_frames, "rounds": rounds, "profile": profile_rows,
        "median_cpu_s": {m: median(m, "cpu") for m in ("cli", "api", "siril")},
        "started": started, "finished": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "load": (load_before, os.getloadavg()[0]),
        "old": old, "target": target_ratio(args.size),
        "pass": ratio_cli <= target_ratio(args.size) and obsdb_acc["rms"] <= siril_acc["rms"] + 1e-12,
    }
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return 0

    m = result["median_s"]
    print("\n" + "=" * WIDTH)
    print(f"{args.frames} frames of {args.size}x{args.size}, band {bench.band}: {len(bench.frames)} frames aligned "
          f"and median-stacked; medians of {args.repeat} rounds, methods alternated")
    print("=" * WIDTH)
    print(f"{'method':<62}{'median s':>10}")
    print(f"{LABELS['cli']:<62}{m['cli']:10.2f}")
    print(f"{'      align':<62}{m['cli_align']:10.2f}")
    print(f"{'      render --stack median':<62}{m['cli_render']:10.2f}")
    print(f"{LABELS['api']:<62}{m['api']:10.2f}")
    print(f"{'      align':<62}{m['api_align']:10.2f}")
    print(f"{'      render (stack median)':<62}{m['api_render']:10.2f}")
    print(f"{'      the whole child process (start-up, imports)':<62}{m['api_wall']:10.2f}")
    print(f"{'      warm: again, every import done (align + render)':<62}{m['api_warm']:10.2f}")
    print(f"{'            align':<62}{m['api_warm_align']:10.2f}")
    print(f"{'            render (stack median)':<62}{m['api_warm_render']:10.2f}")
    print(f"{LABELS['siril']:<62}{m['siril']:10.2f}")
    print("-" * WIDTH)
    print("CPU s (median; each command with the processes it waited for, (b) its whole child process): "
          + ", ".join(f"({k}) {result['median_cpu_s'][m]:.2f}" for k, m in (("a", "cli"), ("b", "api"), ("c", "siril"))))
    print(f"measured {result['started']} to {result['finished']} UTC; load average (1 min) "
          f"{result['load'][0]:.2f} before, {result['load'][1]:.2f} after")
    print("per round, obsdb / Siril: (a) " + " ".join(f"{r['cli']['time'] / r['siril']['time']:.2f}" for r in rounds)
          + ";  (b) " + " ".join(f"{r['api']['time'] / r['siril']['time']:.2f}" for r in rounds))
    target = target_ratio(args.size)
    verdict = "meets" if ratio_cli <= target else "MISSES"
    print(f"(a) / (c): {ratio_cli:.2f}x ({verdict} target <= {target:g}x)")
    verdict = "meets" if ratio_api <= target else "MISSES"
    print(f"(b) / (c): {ratio_api:.2f}x in-process calls ({verdict} {target:g}x); "
          f"{ratio_api_wall:.2f}x as the whole process, {ratio_api_warm:.2f}x warm")
    print("-" * WIDTH)
    print("accuracy, RMS of (measured - true) shift over the frames, relative to each tool's reference:")
    for label, acc in (("obsdb (a)", obsdb_acc), ("obsdb (b)", api_acc), ("Siril", siril_acc)):
        print(f"  {label:<10} {acc['rms']:.4f} px (max {acc['max']:.4f}) over {acc['n']} frames, "
              f"reference {acc['reference']}")
    if replaced:
        print(f"  ({replaced} Siril matrices disagreed with its logged dx/dy: the 2-decimal values were used)")
    if siril_skipped:
        print(f"  Siril skipped (not registered, not stacked): {', '.join(Path(p).name for p in siril_skipped)}")
    print(f"same frames in both stacks: {'yes' if same_frames else 'NO'} (obsdb rendered {stacked_obsdb}, "
          f"Siril stacked {warm['siril']['stacked']}, given {len(bench.frames)})")
    if old:
        print("-" * WIDTH)
        print(f"{LABELS['old']:<62}{old['median_s']:10.2f}")
        print(f"{'      align':<62}{old['median_align_s']:10.2f}")
        print(f"{'      render --stack median':<62}{old['median_render_s']:10.2f}")
        print(f"(a) / (a'), this checkout / {args.old}: {old['ratio_cli/old']:.2f}x (align {old['ratio_align/old']:.2f}x, "
              f"render {old['ratio_render/old']:.2f}x); (a') / (c) {old['ratio_old/siril']:.2f}x; CPU s (a') "
              f"{old['median_cpu_s']:.2f}")
        print("per round, (a) / (a'): " + " ".join(f"{r['cli']['time'] / r['old']['time']:.2f}" for r in rounds))
        for step in ("align", "render"):
            new_ms, old_ms = old["import_ms"]["new"][step], old["import_ms"]["old"][step]
            heavy = sorted((p for p in new_ms.keys() | old_ms.keys() if p != "total"),
                           key=lambda p: -old_ms.get(p, 0.0))
            print(f"-X importtime, {step}, ms (median of {args.repeat}): total {new_ms['total']:.0f} (a) against "
                  f"{old_ms['total']:.0f} (a'); " + ", ".join(f"{p} {new_ms.get(p, 0):.0f}/{old_ms.get(p, 0):.0f}"
                                                             for p in heavy))
        print(f"outputs of (a) and (a'): {old['outputs_compared']} files, "
              + ("all byte-identical" if not old["outputs_differing"] else
                 f"{len(old['outputs_differing'])} DIFFER: {', '.join(old['outputs_differing'][:5])}"))
    print(f"Siril script ({bench.version_text}):\n  " + bench.script.strip().replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
