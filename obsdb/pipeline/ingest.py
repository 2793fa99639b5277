"""Ingest: record every FITS file of a night with its header and statistics.

Each file is read once (bytes hashed, parsed from memory, measured) in a
worker process; the catalog is written from the parent process in batches,
each batch one transaction, so a crash or Ctrl-C leaves complete rows only
and the next run finishes the work.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from obsdb.text import plural
from obsdb.imaging.header import LIGHT_IMAGE_TYPES
from obsdb.config import IngestConfig, login_name
from obsdb.errors import ObsdbError

BATCH_SIZE = 25
"""Frames written per transaction: large enough to amortise the commit, small
enough that an interruption loses little work."""


"""Image types whose stars are measured (a frame of unknown type may be a light frame); bias, dark
and flat frames get pixel statistics only (:mod:`obsdb.pipeline.calib_checks` judges them)."""


class IngestError(ObsdbError):
    """A path given to ingest does not exist or cannot be listed."""


@dataclass
class Measurement:
    """Everything learned from one read of one file (picklable, no ORM objects)."""

    path: str
    size: int
    mtime: float
    sha256: str | None = None
    error: str | None = None
    header: dict | None = None
    columns: dict = field(default_factory=dict)
    width: int | None = None
    height: int | None = None
    bitpix: int | None = None
    stats: dict | None = None
    metrics: dict | None = None
    stars: bytes | None = None
    """The star list (:func:`obsdb.imaging.stars.encode_stars`), measured with the metrics."""
    n_stars_stored: int = 0
    site: dict | None = None
    """The site (:func:`obsdb.imaging.header.site_location`, ``[site]`` of obsdb.toml filling the gaps)."""
    streaks: list[dict] | None = None
    """Satellite streaks found in the same read (light frames; :mod:`obsdb.imaging.streaks`), None when
    the frame was not searched."""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    """What was doubted or left out of a usable file, one sentence each (an implausible DATE-OBS,
    star metrics that could not be measured); :func:`measure_many` issues them as
    :class:`obsdb.imaging.fitsio.FitsWarning`."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class IngestReport:
    """What an ingest run did."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    shared_numbers: dict[tuple[str, int], int] = field(default_factory=dict)
    """(night, number) carried by more than one file of that night, among the files this ingest added
    (the number pattern does not fit these names)."""
    shared_paths: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    """The files behind each shared number."""
    number_pattern: str | None = None
    """The pattern the numbers were taken from file names with (None: the default)."""
    number_pattern_hint: dict[tuple[str, int], str] = field(default_factory=dict)
    """For a shared number, a ``--number-pattern`` that would tell its files apart, when one is found."""
    gone: list[str] = field(default_factory=list)
    """Catalogued files in the scanned folders that are no longer there (kept in the catalog)."""
    folder_nights: set[str] = field(default_factory=set)
    """Nights named after a folder because their files had no usable DATE-OBS."""
    stale: int = 0
    """Unchanged files re-measured because an algorithm version changed."""
    unnamable: list[Path] = field(default_factory=list)
    """Files left out because their path is not valid UTF-8 (the catalog stores paths as text)."""
    own_outputs: list[str] = field(default_factory=list)
    """Files left out because obsdb wrote them (aligned frames, stacks) or they lie in an excluded folder."""

    @property
    def n_files(self) -> int:
        return len(self.added) + len(self.changed) + len(self.unchanged) + len(self.failed)


def discover(paths: Iterable[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """FITS files named by ``paths`` (files, or folders scanned for FITS names).

    In a folder, an entry with a FITS name that is no regular file (a FIFO, a device, a socket)
    is never opened (opening a FIFO waits for a writer: an ingest hung on one), nor is a broken
    link; each is skipped with a :class:`obsdb.imaging.fitsio.FitsWarning`, as is a sub-folder
    that cannot be listed.  Hidden files (``.name``) are left out silently.

    Raises
    ------
    IngestError
        For a path that does not exist, cannot be listed or read (permission denied), or is
        not a regular file or a folder.
    """
    import stat
    import warnings

    from obsdb.imaging.fitsio import FitsWarning, is_fits_name, special_file_kind
    from obsdb.imaging.fitsio.xisf import is_xisf_name

    def is_frame_name(name: str) -> bool:
        """A FITS file's name, or an XISF file's (PixInsight)."""
        return is_fits_name(name) or is_xisf_name(name)

    found: dict[str, Path] = {}

    def scan(folder: Path, top: bool, seen: set) -> None:
        try:
            identity = folder.stat()
            if (identity.st_dev, identity.st_ino) in seen:
                return  # a link back up the tree
            seen = seen | {(identity.st_dev, identity.st_ino)}
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            reason = f"{folder}: cannot be listed ({(exc.strerror or str(exc)).lower()})"
            if top:
                raise IngestError(reason) from None
            warnings.warn(f"{reason}, skipped", FitsWarning, stacklevel=3)
            return
        for entry in entries:
            child = Path(entry.path)
            try:
                st = entry.stat()  # follows links, as a reader would
            except OSError as exc:
                if is_frame_name(entry.name) and not entry.name.startswith("."):
                    broken = "a broken link" if entry.is_symlink() else (exc.strerror or str(exc)).lower()
                    warnings.warn(f"{child}: {broken}, skipped", FitsWarning, stacklevel=3)
                continue
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    scan(child, False, seen)
                continue
            if not is_frame_name(entry.name) or entry.name.startswith("."):
                continue
            kind = special_file_kind(st.st_mode)
            if kind is not None:
                warnings.warn(f"{child}: not a regular file ({kind}), skipped", FitsWarning, stacklevel=3)
                continue
            found[str(child.resolve())] = child.resolve()

    for raw in paths:
        path = Path(raw).expanduser()
        try:
            st = path.stat()
        except FileNotFoundError:
            raise IngestError(f"{path}: no such file or folder") from None
        except OSError as exc:
            raise IngestError(f"{path}: {(exc.strerror or str(exc)).lower()}") from None
        if stat.S_ISDIR(st.st_mode):
            scan(path, True, set())
        elif stat.S_ISREG(st.st_mode):
            if not is_frame_name(path.name) and not _starts_like_fits(path):
                # README.md given by mistake: no permanent "unreadable frame" for it in the catalog.
                raise IngestError(f"{path}: not a FITS file (its name is not .fits/.fit/.fts[.gz] and it does "
                                  "not start with SIMPLE  = T)")
            found[str(path.resolve())] = path.resolve()
        else:
            raise IngestError(f"{path}: not a regular file ({special_file_kind(st.st_mode)})")
    return [found[key] for key in sorted(found)]


def _utf8_name(path: Path) -> bool:
    """True when the path's bytes are UTF-8 (a name read from disk may hold any bytes but / and NUL)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_path(path) -> str:
    """A path as one printable line: undecodable bytes as ``\\xNN``, controls (newlines, escapes) as
    ``\\n``, ``\\x1b``."""
    from obsdb.text import printable

    return printable(os.fsencode(path).decode("utf-8", "backslashreplace"))


def _starts_like_fits(path: Path) -> bool:
    """Whether a file begins as a FITS file does (``SIMPLE  =``), or as a gzip stream might hold one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(10)
    except OSError:
        return True  # let the reader say what is wrong with it
    return head.startswith(b"SIMPLE  =") or head.startswith(b"\x1f\x8b")


def measure_file(path: str, config: IngestConfig, hash_mode: str = "thread",
                 calibrations: dict | None = None) -> Measurement:
    """Read one file once and measure it; never raises for bad input (see :func:`_measure`).
    ``calibrations``: path to the masters its metrics are measured after (see :func:`_measure`)."""
    try:
        calibration = (calibrations or {}).get(path)
        if calibration is None:
            return _measure(path, config, hash_mode)
        return _measure(path, config, hash_mode, calibration)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the night
        detail = str(exc).splitlines()[0] if str(exc) else ""
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime
        except OSError:
            size, mtime = 0, 0.0
        return Measurement(path, size, mtime, error=f"unexpected {type(exc).__name__}: {detail}")


def _measure(path: str, config: IngestConfig, hash_mode: str = "thread", calibration: list | None = None) -> Measurement:
    """Read one file once and measure it; never raises for bad input.

    Parameters
    ----------
    path : str
        The file.
    config : IngestConfig
        Number pattern, type mapping, saturation default, whether to run QA metrics.
    hash_mode : {"thread", "inline"}
        Where the SHA-256 is computed (see :func:`obsdb.imaging.fitsio.read_fits_image`).
    calibration : list of dict, optional
        The light's calibration rows (:meth:`obsdb.catalog.masters.MasterStore.light_calibrations`):
        stars and metrics are measured on the pixels calibrated with them (the raw frame's geometry,
        so positions stay the raw frame's), and the metrics name them (``calibration``).  The pixel
        statistics stay those of the raw file.

    Returns
    -------
    Measurement
        With ``error`` set (one line) when the file could not be used.
    """
    from obsdb.imaging.bayer import cfa_pattern_or_none
    from obsdb.imaging.fitsio import FitsReadError, FrameTooLargeError, read_fits_image
    from obsdb.imaging.header import frame_columns, header_to_json, site_location
    from obsdb.imaging.stats import EmptyImageError, pixel_stats, saturation_level, stored_as_integers

    start = time.perf_counter()
    try:
        st = os.stat(path)
    except OSError as exc:
        return Measurement(path, 0, 0.0, error=f"cannot stat: {exc.strerror}")
    result = Measurement(path, st.st_size, st.st_mtime)
    try:
        image = read_fits_image(path, hash_mode=hash_mode, max_frame_bytes=config.max_frame_bytes)
    except FrameTooLargeError as exc:
        result.error = f"{exc} (OBSDB_MAX_FRAME_MB or [ingest] max_frame_mb sets it)"
        return result
    except FitsReadError as exc:
        result.error = str(exc)
        return result
    result.size = image.size
    header = header_to_json(image.header, result.warnings)
    result.header = header
    result.columns = frame_columns(header, image_types=config.image_types, picttypes=config.picttypes,
                                   problems=result.warnings)
    result.site = site_location(header, config.site)
    result.height, result.width = (int(n) for n in image.data.shape)
    result.bitpix = image.bitpix
    saturation = saturation_level(header, image.bitpix, config.float_saturation)
    # Taken once for the detection's checks and the statistics (NaN when a pixel is NaN).
    extremes = (float(image.data.min()), float(image.data.max())) if image.data.size else None
    finite = extremes is not None and all(math.isfinite(v) for v in extremes)
    try:
        # Bias, dark and flat frames hold no stars: a "FWHM" measured on their noise means nothing.
        if (config.measure_quality and result.columns["image_type"] in LIGHT_IMAGE_TYPES
                and (finite or _any_finite(image.data))):
            from obsdb.imaging.stars import encode_stars
            from obsdb.pipeline.pool import ChildCrashed, in_pool_worker

            pixels, used = image.data, None
            if calibration:
                from obsdb.catalog.masters import calibration_signature
                from obsdb.imaging.calibration import calibrate_with

                try:
                    pixels = calibrate_with(image.data, image.header, calibration, saturation=saturation)
                    used = calibration_signature(calibration)
                except ValueError as exc:
                    result.warnings.append(f"measured uncalibrated: {exc}")
            try:
                # In a pool worker the worker's own death is contained (resilient_map): a fork per frame
                # would cost 40-60 ms of a 120 ms detection on 2048 x 2048 for nothing.
                quality = quality_metrics(pixels, saturation, cfa=cfa_pattern_or_none(image.header),
                                          contained=not in_pool_worker(),
                                          streaks=True,  # a light frame: searched for satellite streaks too
                                          extremes=extremes if pixels is image.data else None)
            except ChildCrashed as exc:
                result.warnings.append(f"star detection crashed ({exc}): stats recorded without star metrics")
            except Exception as exc:  # noqa: BLE001 - a frame whose stars cannot be measured keeps its stats
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                result.warnings.append(f"no star metrics: {detail}")
            else:
                result.metrics = {**quality.metrics, "calibration": used}
                result.stars, result.n_stars_stored = encode_stars(quality.stars), len(quality.stars)
                result.streaks = quality.streaks
        # The image is ours and used for nothing after this: the median may
        # partition it in place rather than copy a whole frame.
        result.stats = pixel_stats(image.data, saturation=saturation, overwrite_input=True, extremes=extremes,
                                   integers=stored_as_integers(image.header, image.bitpix)).as_dict()
    except EmptyImageError as exc:
        result.error = str(exc)
        result.metrics = None
        return result
    finally:
        # Read only now: the hash has been running in a thread beside the pixel work.
        result.sha256 = image.sha256
    result.seconds = time.perf_counter() - start
    return result


def _any_finite(data) -> bool:
    """Whether an image has a finite pixel, mostly from its first rows (a whole-frame mask costs 2-4 ms)."""
    import numpy as np

    flat = data.reshape(-1)
    return bool(np.isfinite(flat[:4096]).any() or np.isfinite(flat[4096:]).any())


def quality_metrics(data, saturation, *, cfa: str | None = None, contained: bool = True, streaks: bool = False,
                    extremes: tuple[float, float] | None = None):
    """Star and PSF metrics of a frame and its star list (:class:`obsdb.pipeline.metrics.FrameQuality`).

    Parameters
    ----------
    data : numpy.ndarray
        The frame.
    saturation : float or None
        Saturation level.
    cfa : str, optional
        The Bayer pattern of a colour sensor's mosaic.
    contained : bool
        Detect in a forked child (:func:`obsdb.pipeline.pool.run_contained`): sep is C code that a
        hostile frame can crash, and the crash must cost this frame's metrics only.  The fork
        shares the image; its cost is measured in ``benchmarks/ingest.py``.
    extremes : (float, float), optional
        ``data.min()`` and ``data.max()``, when the caller has them (one pass over the frame fewer).

    Raises
    ------
    obsdb.pipeline.pool.ChildCrashed
        When the detection's process died or ran out of time
        (:data:`obsdb.pipeline.metrics.DETECTION_SECONDS`).
    ValueError
        When the frame has no pixel to detect on.
    """
    from functools import partial

    from obsdb.pipeline.metrics import detection_time_limit, metrics_from_image
    from obsdb.pipeline.pool import run_contained

    if not contained:
        return metrics_from_image(data, saturation, cfa=cfa, streaks=streaks, extremes=extremes)
    return run_contained(partial(metrics_from_image, cfa=cfa, streaks=streaks, extremes=extremes), data, saturation,
                         timeout=detection_time_limit(data.size))




def ingest(db, paths: Iterable[str | os.PathLike], *, recursive: bool = False, workers: int = 1,
           config: IngestConfig | None = None, user: str | None = None, night: str | None = None,
           exclude: Iterable[str | os.PathLike] = (), executor=None,
           progress: Callable[[int, int, str], None] | None = None) -> IngestReport:
    """Ingest files into the catalog.

    Parameters
    ----------
    db : obsdb.catalog.db.Database
        The open catalog's database handle (:attr:`obsdb.Catalog.db`).
    paths : iterable of path-like
        Files and folders.
    recursive : bool
        Descend into sub-folders.
    workers : int
        Processes for the pixel work (1: in this process).
    config : IngestConfig, optional
    user : str, optional
        Recorded in the event log (default: login name).
    night : str, optional
        Put every file in this night (default: the night its DATE-OBS gives,
        else one named after its folder).
    exclude : iterable of path-like
        Folders whose files are never ingested (``obsdb run``'s output folder, when it lies
        inside the night's folder).  Files obsdb wrote itself (recorded render outputs) are
        never ingested either.
    executor : obsdb.pipeline.executors.Executor, optional
        Where the files are measured (default: this process, or a pool of ``workers``).
    progress : callable, optional
        ``progress(done, total, file_name)`` after each file.

    Returns
    -------
    IngestReport
    """
    from obsdb.catalog.stores import IngestStore
    from obsdb.imaging.header import frame_number, suggest_number_pattern

    store = IngestStore(db)
    config = config or IngestConfig()
    user = user or login_name()
    start = time.perf_counter()
    files = discover(paths, recursive)
    report = IngestReport(number_pattern=config.number_pattern)
    # A name that is not UTF-8 cannot be stored as text on either backend: that file is left out and
    # said so, the others are catalogued.
    report.unnamable = [p for p in files if not _utf8_name(p)]
    if report.unnamable:
        files = [p for p in files if _utf8_name(p)]
    # obsdb's own outputs are no observations: an aligned frame ingested as a frame would be a copy.
    excluded = [Path(p).expanduser().resolve() for p in exclude]
    own = set(store.written_outputs([str(p) for p in files]))
    report.own_outputs = [str(p) for p in files
                          if str(p) in own or any(p == folder or folder in p.parents for folder in excluded)]
    if report.own_outputs:
        skipped = set(report.own_outputs)
        files = [p for p in files if str(p) not in skipped]
    known = store.known_files([str(p) for p in files])
    folders = [Path(p).expanduser().resolve() for p in paths if Path(p).expanduser().is_dir()]
    report.gone = store.gone_from(folders, recursive=recursive, present={str(p) for p in files})
    todo: list[str] = []
    renumbered: dict[int, int | None] = {}
    for path in files:
        key = str(path)
        row = known.get(key)
        try:
            st = path.stat()
        except OSError:
            todo.append(key)
            continue
        unchanged = row is not None and row["size"] == st.st_size and row["mtime"] == st.st_mtime
        if unchanged and row["stale"] and config.measure_quality:
            # Measured by an older algorithm: measure again (the content hash decides what changed).
            report.stale += 1
            todo.append(key)
        elif unchanged and not row["readable"]:
            # Read again: the failure may have been this user's permissions, or a file still being written.
            todo.append(key)
        elif unchanged:
            report.unchanged.append(key)
            # The number comes from the name alone: a new --number-pattern renumbers without a read.
            number = frame_number(path.name, config.number_pattern)
            if number != row["number"]:
                renumbered[row["id"]] = number
        else:
            todo.append(key)
    if renumbered:
        store.renumber(renumbered, pattern=config.number_pattern, author=user)

    total = len(files)
    done = total - len(todo)
    if progress:
        progress(done, total, "")
    batch: list[Measurement] = []
    new_ids: list[int] = []

    def flush() -> None:
        if not batch:
            return
        outcome = store.write_measurements(batch, number_pattern=config.number_pattern, author=user, night=night)
        report.added.extend(outcome["added"])
        report.changed.extend(outcome["changed"])
        report.unchanged.extend(outcome["unchanged"])
        report.failed.extend(outcome["failed"])
        report.folder_nights |= outcome["folder_nights"]
        new_ids.extend(outcome["new_ids"])
        batch.clear()

    from obsdb.pipeline.pool import deferred_interrupt

    with deferred_interrupt() as interrupt:
        for measurement in measure_many(todo, config, workers, executor):
            batch.append(measurement)
            done += 1
            if progress:
                progress(done, total, Path(measurement.path).name)
            if len(batch) >= BATCH_SIZE or interrupt.requested:
                flush()
            # Ctrl-C takes effect here, between transactions, once the completed work is committed.
            interrupt.raise_if_requested()
        flush()
    report.seconds = time.perf_counter() - start
    # Only clashes this ingest created: a later ingest of other files does not repeat them.
    for (night_name, number), paths in store.shared_numbers(new_ids).items():
        report.shared_numbers[(night_name, number)] = len(paths)
        report.shared_paths[(night_name, number)] = sorted(paths)
        hint = suggest_number_pattern(sorted(Path(p).name for p in paths))
        if hint:
            report.number_pattern_hint[(night_name, number)] = hint
    store.record_event(user, "ingest",
                       f"{plural(report.n_files, 'file')}: {len(report.added)} added, {len(report.changed)} changed, "
                       f"{len(report.unchanged)} unchanged, {len(report.failed)} unreadable"
                       + (f", {report.stale} re-measured (newer algorithm)" if report.stale else ""),
                       details={"paths": [str(p) for p in paths], "workers": workers, "night": night,
                                "executor": executor.describe() if executor is not None else None,
                                "config": config.source})
    return report


def measure_many(paths: list[str], config: IngestConfig, workers: int, executor=None,
                 calibrations: dict | None = None):
    """Yield measurements, in this process or in a pool of ``workers``.

    Each measurement's :attr:`Measurement.warnings` are issued here, in the caller's process, as
    :class:`obsdb.imaging.fitsio.FitsWarning` naming the file.  A worker that dies (a crash in C
    code outside the contained star detection) costs only the file that killed it, recorded
    unreadable; the other files are measured by a new pool (:func:`obsdb.pipeline.pool.resilient_map`).
    ``calibrations`` (path to calibration rows) go to :func:`measure_file`.
    """
    import warnings

    from obsdb.imaging.fitsio import FitsWarning

    def announced(measurement: Measurement) -> Measurement:
        for text in measurement.warnings:
            warnings.warn(f"{measurement.path}: {text}", FitsWarning, stacklevel=3)
        return measurement

    from obsdb.pipeline.executors import executor_for

    executor = executor_for(executor, workers)
    if len(paths) <= 1 or (executor.workers <= 1 and executor.kind == "dask"):
        for path in paths:
            yield announced(measure_file(path, config, calibrations=calibrations))
        return
    if executor.workers <= 1:
        # One long-lived worker measures the files in turn, its death contained like a pool's: no
        # fork per frame for the star detection (see serial_worker_map).
        from obsdb.pipeline.pool import serial_worker_map

        for path, outcome in serial_worker_map(measure_file, paths, args=(config, "thread", calibrations),
                                               timeout=_time_limit):
            yield announced(_crashed(path, outcome))
        return
    if executor.kind == "processes":
        preload_worker_modules()
    # With a worker on every core, a hashing thread per worker has no core of its own: hash inline.
    # (Same speed here, 2 workers on 2 cores, memory-bound either way; fewer threads to schedule.)
    hash_mode = "thread" if executor.kind == "processes" and executor.workers < (os.cpu_count() or 1) else "inline"
    for path, outcome in executor.map(measure_file, paths, args=(config, hash_mode, calibrations)):
        yield announced(_crashed(path, outcome))


WORKER_MODULES = (
    "numpy", "sep", "astropy.io.fits", "astropy.stats",
    "obsdb.imaging.fitsio", "obsdb.imaging.header", "obsdb.imaging.bayer", "obsdb.imaging.stats",
    "obsdb.imaging.stars", "obsdb.imaging.centroid", "obsdb.imaging.register", "obsdb.imaging.streaks",
    "obsdb.imaging.regions", "obsdb.pipeline.metrics",
)
"""What :func:`measure_file` imports to measure a light frame (``tests/pipeline/test_ingest_preload.py``
checks that it imports nothing more of astropy, scipy, sep or obsdb.imaging)."""


def preload_worker_modules() -> None:
    """Import :data:`WORKER_MODULES` here, before a pool of forked workers starts.

    Each forked worker inherits the parent's modules; without this every worker imported them on
    its first frame, about 0.5 s of CPU each (astropy.io.fits the most; scipy.ndimage too, until the
    streak search did without it): with two workers 1.1 s, 22 ms a frame of a 50-frame night.
    Imported once here, they cost 0.5 s, paid by the parent (47 MB more of its memory, which the qa
    and align steps import anyway).
    """
    import importlib

    for name in WORKER_MODULES:
        importlib.import_module(name)


def _crashed(path: str, outcome):
    """The measurement, or an unreadable-file record when measuring it killed its process."""
    from obsdb.pipeline.executors import TaskFailed
    from obsdb.pipeline.pool import ChildCrashed

    if not isinstance(outcome, (ChildCrashed, TaskFailed)):
        return outcome
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        size, mtime = 0, 0.0
    return Measurement(path, size, mtime, error=f"measuring this file crashed its process ({outcome})")


def _time_limit(path: str) -> float:
    """Seconds the serial worker may spend on one file: the detection's limit for as many pixels as
    the file has bytes (a pixel takes at least one byte), plus a minute for reading and the rest."""
    from obsdb.pipeline.metrics import detection_time_limit

    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    if path.lower().endswith(".gz"):
        size *= GZIP_RATIO_BOUND
    return 60.0 + detection_time_limit(size)


GZIP_RATIO_BOUND = 10
"""How many times its size a compressed FITS file is taken to hold, for :func:`_time_limit`."""
