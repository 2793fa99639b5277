"""Plate solving with astrometry.net's ``solve-field``, and verification of any WCS against reference stars.

A frame's catalogued stars (0-based pixels, :data:`obsdb.imaging.stars.STAR_DTYPE`) are written as an
*xylist* (a FITS table, 1-based as FITS and astrometry.net expect), ``solve-field`` is run on it in a
temporary folder with hints from the header (pointing, pixel scale) and a CPU limit, and the WCS it
writes (``.wcs``, TAN-SIP) is read back.  Nothing is trusted as it comes: :func:`verify_wcs` projects
the index stars the solver matched (its ``.corr`` file) through the WCS onto the frame and looks for a
catalogued star at each; a solution is refused unless enough of them are found close enough
(:data:`MATCH_RADIUS_PIXELS`, :data:`MAX_MEDIAN_RESIDUAL_PIXELS`, :data:`MIN_MATCHED`,
:data:`MIN_MATCH_FRACTION`).  The same check verifies a header's own WCS against any list of sky
positions (the index's stars, :func:`index_stars`, or another frame's stars through its WCS).

The module runs external programs but touches no database: it takes arrays and headers and returns
small records.  Debian packages the solver (``astrometry.net``) and the Tycho-2 index files by field
size (``astrometry-data-tycho2-07`` 22'-30', ``-08`` 30'-44', ``-09`` 44'-60', ``-10-19`` 60'-2000').
"""

from __future__ import annotations

import math
import os
import re
import resource
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from obsdb.errors import ObsdbError

SOLVE_VERSION = "solve-1"
"""Identifies this wrapper and its verification (thresholds below); stored with every solution."""

SOLVER_NAME = "astrometry.net"
"""The solver recorded with a solution."""

SOLVE_FIELD = "solve-field"
"""The solver's program, looked up on ``PATH``."""

INSTALL_ADVICE = ("apt-get install astrometry.net astrometry-data-tycho2-NN (NN by field size: 07 for "
                  "22'-30', 08 30'-44', 09 44'-60', 10-19 60'-2000')")
"""What to install when the solver or its index files are missing."""

INDEX_DIRS = ("/usr/share/astrometry", "/usr/local/astrometry/data", "/usr/local/share/astrometry")
"""Folders searched for index files (``index-*.fits``): Debian's first, then a source install's."""

DEFAULT_CPULIMIT = 60.0
"""CPU seconds ``solve-field`` may spend on one frame (``--cpulimit``).  A hinted solve of a 2-degree
simulated field takes about 1 s (tests/imaging/test_astrometry.py); a blind one of the same field a few."""

MAX_SOLVER_STARS = 100
"""The brightest catalogued stars handed to the solver (``--objs``): it tries each index on batches of
ten, and a field that has not solved in its 100 brightest stars will not solve in fainter ones, while
200 random points cost 27 s of CPU to give up on."""

SCALE_TOLERANCE = 0.15
"""Relative range around the header's pixel scale given as ``--scale-low/--scale-high`` (+-15%:
focal lengths in headers are nominal)."""

MIN_HINT_RADIUS = 2.0
"""Degrees: the least search radius around the header's pointing (``--radius``); telescopes' pointing
cards are often a few arcminutes, sometimes a degree, off.  It grows with the field (two diagonals)."""

MATCH_RADIUS_PIXELS = 3.0
"""A reference star projected through the WCS matches the nearest catalogued star within this many
pixels.  With a few hundred stars on a megapixel frame, a chance match is below 1%."""

MAX_MEDIAN_RESIDUAL_PIXELS = 1.0
"""Refuse a WCS whose median residual (reference star to catalogued star) exceeds this, in pixels
(reported in arcsec).  Solutions of simulated fields give 0.1 px, the DSS pair's header WCS 0.3 px."""

MIN_MATCHED = 4
"""Refuse a WCS that matches fewer reference stars than this.  Four is enough when each match is
checked: on the real M 67 DSS scan (1,298 stars on 1059 x 1059 px) a 3-px circle holds a star by
chance 3% of the time, so four chance matches happen once in a million, and the median residual must
also stay under a pixel.  The smallest index package (Tycho-2 10-19) has only 4 stars in that 30' field.
"""

MIN_MATCH_FRACTION = 0.5
"""Refuse a WCS that matches less than this fraction of the reference stars that fall on the frame."""

SIP_MIN_MATCHES = 30
"""Keep the solver's SIP distortion terms (``--tweak-order 2``) only when it matched at least this many
index stars; with fewer the second-order terms follow the noise, and the solution is fitted again as a
plain TAN projection to the same matches.  On the simulated 2-degree field of
tests/imaging/test_astrometry.py (17 matches) the solver's SIP solution is 1.52\" off the truth at the
worst of seven points, the TAN fit 0.51\" (measured by hand with this constant set to 0 and to 30)."""


class SolverMissing(ObsdbError):
    """``solve-field`` or its index files are not installed."""


class NotSolved(ObsdbError):
    """``solve-field`` ran and found no solution (or failed)."""


@dataclass(frozen=True)
class SolveHints:
    """Where to look: pointing (deg), search radius (deg) and pixel-scale range (arcsec per pixel).

    Every field may be None: ``solve-field`` then searches the whole sky or every scale its indexes cover.
    """

    ra: float | None = None
    dec: float | None = None
    radius: float | None = None
    scale_low: float | None = None
    scale_high: float | None = None

    def arguments(self) -> list[str]:
        """The ``solve-field`` options for these hints."""
        out: list[str] = []
        if self.ra is not None and self.dec is not None:
            out += ["--ra", f"{self.ra:.6f}", "--dec", f"{self.dec:.6f}",
                    "--radius", f"{self.radius if self.radius is not None else 180.0:.4f}"]
        if self.scale_low is not None and self.scale_high is not None:
            out += ["--scale-units", "arcsecperpix", "--scale-low", f"{self.scale_low:.5f}",
                    "--scale-high", f"{self.scale_high:.5f}"]
        return out

    def to_dict(self) -> dict:
        """The hints as a JSON-ready dict (None for each one not given)."""
        return asdict(self)


@dataclass(frozen=True)
class Verification:
    """How well a WCS puts reference stars on catalogued ones.

    Attributes
    ----------
    n_reference : int
        Reference stars that fall on the frame.
    n_matched : int
        Of those, how many have a catalogued star within :data:`MATCH_RADIUS_PIXELS`.
    fraction : float
        ``n_matched / n_reference`` (0 when no reference star falls on the frame).
    residual_arcsec, residual_pixels : float
        Median distance of the matched pairs (NaN when none matched).
    pixel_scale : float
        The WCS's mean pixel scale, arcsec per pixel.
    passed : bool
        Whether every threshold holds.
    reason : str
        Why not, with the numbers and the thresholds (empty when passed).
    """

    n_reference: int
    n_matched: int
    fraction: float
    residual_arcsec: float
    residual_pixels: float
    pixel_scale: float
    passed: bool
    reason: str = ""

    def to_dict(self) -> dict:
        """The verification as a JSON-ready dict (NaN as None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Solution:
    """A plate solution with its provenance and verification.

    Attributes
    ----------
    header_text : str
        The WCS as FITS header cards, one per line (``astropy.io.fits.Header.fromstring(text, sep="\\n")``).
    solver, solver_version : str
        ``astrometry.net`` and its version.
    index : str
        The index file that solved it (file name) and its id, e.g. ``index-tycho2-11 (4111)``.
    hints : SolveHints
    verification : Verification
    cpu_seconds : float
        CPU time of the solver's processes.
    """

    header_text: str
    solver: str
    solver_version: str
    index: str
    hints: SolveHints
    verification: Verification
    cpu_seconds: float = 0.0
    log: str = field(default="", repr=False)

    @property
    def verified(self) -> bool:
        """Whether the solution passed :func:`verify_wcs`."""
        return self.verification.passed

    @property
    def wcs(self):
        """The solution as an :class:`astropy.wcs.WCS`."""
        return wcs_from_text(self.header_text)


# ------------------------------------------------------------------ the solver

def solver_path() -> str | None:
    """Path of ``solve-field``, or None when it is not installed."""
    return shutil.which(SOLVE_FIELD)


def installed_indexes(dirs=INDEX_DIRS) -> list[Path]:
    """Index files found in ``dirs``, sorted by name."""
    out: list[Path] = []
    for folder in dirs:
        out.extend(sorted(Path(folder).glob("index-*.fits")) if Path(folder).is_dir() else [])
    return out


def require_solver() -> str:
    """The path of ``solve-field``.

    Raises
    ------
    SolverMissing
        One line saying what to install, when the program or every index file is missing.
    """
    path = solver_path()
    if path is None:
        raise SolverMissing(f"plate solving needs astrometry.net's {SOLVE_FIELD}, which is not installed: "
                            f"{INSTALL_ADVICE}")
    if not installed_indexes():
        raise SolverMissing(f"{SOLVE_FIELD} has no index files in {', '.join(INDEX_DIRS)}: {INSTALL_ADVICE}")
    return path


def solver_version() -> str:
    """The installed ``solve-field``'s version (``0.93``), or ``unknown``."""
    path = solver_path()
    if path is None:
        return "unknown"
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


# ------------------------------------------------------------------ hints from a header

def pixel_scale_from_header(header) -> float | None:
    """Arcseconds per pixel from a header, or None when it does not say.

    PIXSCALE/SECPIX/SCALE; else a DSS plate scale (PLTSCALE arcsec/mm with XPIXELSZ micron); else
    FOCALLEN (mm) with XPIXSZ (micron, as binned: MaxIm DL's convention).  The header's own WCS is not
    used: a frame with one is not solved.
    """
    def number(key):
        value = header.get(key)
        if isinstance(value, bool):
            return None
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) and value > 0 else None

    for key in ("PIXSCALE", "SECPIX", "SECPIX1", "SCALE"):
        if number(key):
            return number(key)
    if number("PLTSCALE") and number("XPIXELSZ"):
        return number("PLTSCALE") * number("XPIXELSZ") * 1e-3
    if number("FOCALLEN") and number("XPIXSZ"):
        return 206264.806 * number("XPIXSZ") * 1e-3 / number("FOCALLEN")
    return None


def hints_from_header(header, shape: tuple[int, int]) -> SolveHints:
    """Hints for ``solve-field`` from a frame's header and shape ``(ny, nx)``.

    The pointing comes from the first readable pair of :data:`obsdb.imaging.sky.TARGET_CARDS`; the
    radius is two field diagonals, at least :data:`MIN_HINT_RADIUS`; the scale range is
    :data:`SCALE_TOLERANCE` around :func:`pixel_scale_from_header`.
    """
    from obsdb.imaging.sky import target_from_header

    header = dict(header or {})
    scale = pixel_scale_from_header(header)
    target = target_from_header({k: v for k, v in header.items() if not k.startswith(("CTYPE", "CRVAL"))})
    ra = dec = radius = None
    if target is not None:
        ra, dec = target
        diagonal = math.hypot(*shape) * scale / 3600.0 if scale else 0.0
        radius = max(MIN_HINT_RADIUS, 2.0 * diagonal)
    low = high = None
    if scale:
        low, high = scale * (1.0 - SCALE_TOLERANCE), scale * (1.0 + SCALE_TOLERANCE)
    return SolveHints(ra=ra, dec=dec, radius=radius, scale_low=low, scale_high=high)


# ------------------------------------------------------------------ files

def write_xylist(path: str | os.PathLike, stars) -> int:
    """Write catalogued stars as an xylist for ``solve-field``: columns X, Y (1-based) and FLUX, brightest first.

    Stars whose position or flux is not finite are left out.  Returns how many were written.
    """
    import numpy as np
    from astropy.io import fits

    x, y = np.asarray(stars["x"], float), np.asarray(stars["y"], float)
    flux = np.asarray(stars["flux"], float)
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(flux)
    order = np.argsort(-flux[keep], kind="stable")
    columns = [fits.Column(name="X", format="D", array=x[keep][order] + 1.0),
               fits.Column(name="Y", format="D", array=y[keep][order] + 1.0),
               fits.Column(name="FLUX", format="D", array=flux[keep][order])]
    fits.BinTableHDU.from_columns(columns).writeto(path, overwrite=True)
    return int(keep.sum())


def wcs_from_text(text: str):
    """An :class:`astropy.wcs.WCS` from header cards written one per line (:attr:`Solution.header_text`)."""
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FITSFixedWarning)
        return WCS(fits.Header.fromstring(text, sep="\n"), relax=True)


def wcs_text(wcs) -> str:
    """A WCS as header cards, one per line (SIP kept)."""
    return wcs.to_header(relax=True).tostring(sep="\n", endcard=False, padding=False).strip()


def read_corr(path: str | os.PathLike):
    """The index stars the solver matched, ``(ra, dec)`` in degrees, from its ``.corr`` file."""
    import numpy as np
    from astropy.io import fits

    with fits.open(path) as hdus:
        data = hdus[1].data
        return np.asarray(data["index_ra"], float), np.asarray(data["index_dec"], float)


# ------------------------------------------------------------------ verification

def verify_wcs(wcs, stars, reference_ra, reference_dec, *, shape: tuple[int, int]) -> Verification:
    """Check a WCS by projecting reference stars onto the frame and finding a catalogued star at each.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The frame's WCS (FITS convention; it is applied to 0-based pixels here).
    stars : structured array or mapping
        The frame's catalogued stars, 0-based ``x`` and ``y``.
    reference_ra, reference_dec : array_like
        Reference stars, degrees (the solver's matched index stars, the index itself, another
        frame's stars through its own WCS).
    shape : (ny, nx)
        The frame's shape: reference stars that fall outside are not counted.

    Returns
    -------
    Verification
        ``passed`` only when at least :data:`MIN_MATCHED` reference stars and
        :data:`MIN_MATCH_FRACTION` of those on the frame have a catalogued star within
        :data:`MATCH_RADIUS_PIXELS`, and their median residual is at most
        :data:`MAX_MEDIAN_RESIDUAL_PIXELS`.
    """
    import numpy as np
    from astropy.wcs.utils import proj_plane_pixel_scales
    from scipy.spatial import cKDTree

    celestial = wcs.celestial
    scale = float(np.mean(proj_plane_pixel_scales(celestial)) * 3600.0)
    ra, dec = np.asarray(reference_ra, float), np.asarray(reference_dec, float)
    x = np.asarray(stars["x"], float)
    y = np.asarray(stars["y"], float)
    good = np.isfinite(x) & np.isfinite(y)
    x, y = x[good], y[good]
    n_reference = n_matched = 0
    residual_px = residual_as = math.nan
    if len(ra):
        with np.errstate(invalid="ignore"):
            try:
                px, py = celestial.all_world2pix(ra, dec, 0, quiet=True)
            except Exception:  # noqa: BLE001 - a WCS that cannot place the stars places none of them
                px = py = np.full(len(ra), np.nan)
        on_frame = (np.isfinite(px) & np.isfinite(py) & (px >= -0.5) & (py >= -0.5)
                    & (px <= shape[1] - 0.5) & (py <= shape[0] - 0.5))
        n_reference = int(on_frame.sum())
        if n_reference and len(x):
            distance, nearest = cKDTree(np.column_stack([x, y])).query(
                np.column_stack([px[on_frame], py[on_frame]]), distance_upper_bound=MATCH_RADIUS_PIXELS)
            matched = np.isfinite(distance)
            n_matched = int(matched.sum())
            if n_matched:
                residual_px = float(np.median(distance[matched]))
                star_ra, star_dec = celestial.all_pix2world(x[nearest[matched]], y[nearest[matched]], 0)
                residual_as = float(np.median(_separation_arcsec(star_ra, star_dec, ra[on_frame][matched],
                                                                 dec[on_frame][matched])))
    fraction = n_matched / n_reference if n_reference else 0.0
    problems = []
    if n_matched < MIN_MATCHED:
        problems.append(f"{n_matched} of {n_reference} reference stars matched within "
                        f"{MATCH_RADIUS_PIXELS:g} px (at least {MIN_MATCHED} needed)")
    elif fraction < MIN_MATCH_FRACTION:
        problems.append(f"{n_matched} of {n_reference} reference stars matched ({fraction:.0%}; at least "
                        f"{MIN_MATCH_FRACTION:.0%} needed)")
    if n_matched and residual_px > MAX_MEDIAN_RESIDUAL_PIXELS:
        problems.append(f"median residual {residual_as:.2f}\" = {residual_px:.2f} px (at most "
                        f"{MAX_MEDIAN_RESIDUAL_PIXELS:g} px)")
    return Verification(n_reference=n_reference, n_matched=n_matched, fraction=fraction,
                        residual_arcsec=residual_as, residual_pixels=residual_px, pixel_scale=scale,
                        passed=not problems, reason="; ".join(problems))


def _separation_arcsec(ra1, dec1, ra2, dec2):
    """Angular distances (arcsec) between positions in degrees (haversine: exact at small separations)."""
    import numpy as np

    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, float)) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))) * 3600.0


# ------------------------------------------------------------------ solving

def solve_stars(stars, shape: tuple[int, int], *, hints: SolveHints | None = None,
                cpulimit: float = DEFAULT_CPULIMIT, index_dirs=None) -> Solution:
    """Plate-solve a frame from its catalogued stars with ``solve-field``, then verify the solution.

    Parameters
    ----------
    stars : structured array
        The frame's stars (0-based ``x``, ``y`` and ``flux``), e.g. its stored star list.
    shape : (ny, nx)
        The frame's shape.
    hints : SolveHints, optional
        Pointing and scale (:func:`hints_from_header`); none: a blind solve.
    cpulimit : float
        CPU seconds the solver may spend (:data:`DEFAULT_CPULIMIT`).
    index_dirs : list of str, optional
        Folders of index files instead of the solver's configuration.

    Returns
    -------
    Solution
        With its :class:`Verification`: check :attr:`Solution.verified` before using it; a refused
        solution is returned (to be reported), never to be recorded.

    Raises
    ------
    SolverMissing
        When ``solve-field`` or the index files are not installed.
    NotSolved
        When the solver finds no solution within the CPU limit, or fails.
    """
    program = require_solver()
    hints = hints or SolveHints()
    with tempfile.TemporaryDirectory(prefix="obsdb-solve-") as folder:
        folder = Path(folder)
        n = write_xylist(folder / "stars.xyls", stars)
        if n < 4:
            raise NotSolved(f"{n} catalogued stars: a plate solution needs at least 4 (more than 10 in practice)")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        log = _run_solve_field(program, folder, shape, hints, cpulimit, index_dirs)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if not (folder / "stars.wcs").exists():
            raise NotSolved(f"{SOLVE_FIELD} found no solution for {n} stars "
                            f"({_describe_hints(hints)}; CPU limit {cpulimit:g} s)")
        wcs = _read_wcs(folder / "stars.wcs")
        reference_ra, reference_dec = read_corr(folder / "stars.corr")
        if len(reference_ra) < SIP_MIN_MATCHES:
            wcs = _tan_fit(folder / "stars.corr", wcs)
        verification = verify_wcs(wcs, stars, reference_ra, reference_dec, shape=shape)
        return Solution(header_text=wcs_text(wcs), solver=SOLVER_NAME, solver_version=solver_version(),
                        index=_index_used(log, folder / "stars.match"), hints=hints,
                        verification=verification, cpu_seconds=cpu, log=log)


def _run_solve_field(program: str, folder: Path, shape, hints: SolveHints, cpulimit: float, index_dirs) -> str:
    """Run ``solve-field`` on ``folder/stars.xyls``; its outputs land in ``folder``.  Returns its log."""
    command = [program, str(folder / "stars.xyls"), "--width", str(shape[1]), "--height", str(shape[0]),
               "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX", "--objs", str(MAX_SOLVER_STARS),
               "--no-plots", "--overwrite",
               "--no-remove-lines", "--uniformize", "0", "--dir", str(folder), "--cpulimit", f"{cpulimit:g}",
               "--new-fits", "none", "--index-xyls", "none", "--temp-dir", str(folder), *hints.arguments()]
    if index_dirs:
        config = folder / "astrometry.cfg"
        config.write_text("".join(f"add_path {d}\n" for d in index_dirs) + "autoindex\n")
        command += ["--config", str(config)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=cpulimit * 3 + 60,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise NotSolved(f"{SOLVE_FIELD} ran past {exc.timeout:g} s and was stopped") from None
    except OSError as exc:
        raise SolverMissing(f"{SOLVE_FIELD} could not be started ({exc.strerror}): {INSTALL_ADVICE}") from None
    log = (done.stdout or "") + (done.stderr or "")
    if done.returncode != 0 and not (folder / "stars.wcs").exists():
        last = next((line for line in reversed(log.strip().splitlines()) if line.strip()), "no output")
        raise NotSolved(f"{SOLVE_FIELD} failed (exit {done.returncode}): {last.strip()}")
    return log


def _tan_fit(corr: Path, solved):
    """A TAN WCS fitted to the solver's matched pairs (0-based field positions, index sky positions)."""
    import numpy as np
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs.utils import fit_wcs_from_points

    with fits.open(corr) as hdus:
        data = hdus[1].data
        x, y = np.asarray(data["field_x"], float) - 1.0, np.asarray(data["field_y"], float) - 1.0
        sky = SkyCoord(np.asarray(data["index_ra"], float), np.asarray(data["index_dec"], float), unit="deg")
    if len(x) < 4:
        return solved
    return fit_wcs_from_points((x, y), sky, projection="TAN")


def _read_wcs(path: Path):
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FITSFixedWarning)
        return WCS(fits.getheader(path), relax=True)


_SOLVED_WITH = re.compile(r"solved with index (\S+?)(?:\.fits)?\.?$", re.MULTILINE)


def _index_used(log: str, match_file: Path) -> str:
    """The index file and id that solved the field, from the log and the ``.match`` file."""
    name = None
    found = _SOLVED_WITH.search(log)
    if found:
        name = found.group(1).replace(".littleendian", "").replace(".bigendian", "")
    index_id = None
    if match_file.exists():
        from astropy.io import fits

        with fits.open(match_file) as hdus:
            index_id = int(hdus[1].data["INDEXID"][0])
    if name and index_id is not None:
        return f"{name} ({index_id})"
    return name or (str(index_id) if index_id is not None else "unknown")


def _describe_hints(hints: SolveHints) -> str:
    parts = []
    if hints.ra is not None and hints.dec is not None:
        parts.append(f"within {hints.radius:.1f} deg of RA {hints.ra:.4f}, Dec {hints.dec:+.4f}")
    else:
        parts.append("no pointing in the header: whole sky")
    if hints.scale_low is not None:
        parts.append(f"scale {hints.scale_low:.3f}-{hints.scale_high:.3f}\"/px")
    else:
        parts.append("no pixel scale in the header: every scale")
    return ", ".join(parts)


# ------------------------------------------------------------------ the index's own stars

def index_stars(ra: float, dec: float, radius: float, *, index: str | os.PathLike | None = None):
    """Stars of an installed index file within ``radius`` degrees of ``(ra, dec)``, via ``query-starkd``.

    Parameters
    ----------
    index : path, optional
        The index file; default the densest installed one (the lowest scale number).

    Returns
    -------
    (ra, dec, mag) : tuple of numpy arrays
        Degrees, and the Tycho-2 VT magnitude (NaN when the index carries none).

    Raises
    ------
    SolverMissing
        When no index file or no ``query-starkd`` is installed.
    """
    import numpy as np
    from astropy.io import fits

    program = shutil.which("query-starkd")
    indexes = [Path(index)] if index is not None else installed_indexes()
    if program is None or not indexes:
        raise SolverMissing(f"reading index stars needs astrometry.net's query-starkd and an index file: "
                            f"{INSTALL_ADVICE}")
    with tempfile.TemporaryDirectory(prefix="obsdb-index-") as folder:
        out = Path(folder) / "stars.fits"
        done = subprocess.run([program, "-T", "-r", f"{ra:.6f}", "-d", f"{dec:.6f}", "-R", f"{radius:.6f}",
                               "-o", str(out), str(indexes[0])], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0 or not out.exists():
            raise NotSolved(f"query-starkd failed on {indexes[0]}: {(done.stderr or done.stdout).strip()[-200:]}")
        with fits.open(out) as hdus:
            data = hdus[1].data
            mag = np.asarray(data["MAG_VT"], float) if "MAG_VT" in data.names else np.full(len(data), np.nan)
            return np.asarray(data["RA"], float), np.asarray(data["DEC"], float), mag


# ------------------------------------------------------------------ a header's own WCS

def header_wcs(header):
    """The celestial WCS of a header (a FITS header or the catalog's JSON dict of one), or None.

    Standard, SIP, TPV and DSS plate solutions count (:func:`obsdb.imaging.wcs.celestial_wcs_cards`);
    numbers written as text (Lowell's SCAMP headers) are read as numbers.
    """
    import warnings

    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning
    from astropy.wcs import WCS, FITSFixedWarning

    from obsdb.imaging.wcs import celestial_wcs_cards

    if not header:
        return None
    if not isinstance(header, fits.Header):
        converted = fits.Header()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=VerifyWarning)
            for key, value in header.items():
                if isinstance(value, (str, int, float)) and len(key) <= 8:
                    try:
                        converted[key] = value
                    except (ValueError, KeyError):
                        continue
        header = converted
    cards = celestial_wcs_cards(header)
    if cards is None:
        return None
    clean = fits.Header()
    for keyword, value, comment in cards:
        clean[keyword] = (value, comment)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FITSFixedWarning)
        warnings.filterwarnings("ignore", category=VerifyWarning)
        try:
            return WCS(clean, relax=True).celestial
        except Exception:  # noqa: BLE001 - a WCS astropy cannot build is no WCS
            return None
