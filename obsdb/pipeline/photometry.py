"""Photometry: every light frame's stored stars measured in apertures, identified across the night,
and each frame's ensemble zero point.

1. **Measure.**  For each readable light frame with a current star list (the stars detected once at
   ingest; nothing is detected again), aperture photometry at those positions on the frame's own
   pixels, calibrated with its masters where the catalog has them
   (:func:`obsdb.imaging.photometry.aperture_photometry`), through the executor like every per-frame
   step.  A frame is measured again only when it is stale: no photometry yet, another algorithm
   version, or other inputs (the file's digest, its star list, its masters, the radius rule).
2. **Identify.**  Each frame's stars are mapped into its reference's pixel grid through the shift
   steps of its current alignment run (the automatic method records only verified registrations)
   and matched into sources (:func:`obsdb.imaging.ensemble.identify_sources`), the reference first
   so that its stars keep the lowest, stable numbers.  A frame without a current shift is left out,
   with the reason.  Sources are shared by the bands of one reference.
3. **Zero points.**  Per reference and band, the ensemble fit ``m = M + Z``
   (:func:`obsdb.imaging.ensemble.ensemble_zero_points`) over the unflagged measurements gives
   each frame's zero point (its transparency), each source's mean magnitude and its variability
   index: the reduced chi-square of its magnitudes about that mean once zero points are removed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from obsdb.config import login_name
from obsdb.text import plural

MAG_OFFSET = 25.0
"""Instrumental magnitudes are ``MAG_OFFSET - 2.5 log10(flux / exptime)`` (ADU per second): frames of
different exposures then share one scale and a zero point measures transparency alone."""

EXCLUDED_FLAGS = 1 | 2 | 4 | 8 | 16
"""Measurements with these flags (saturated, edge, defect, blended, sky) neither set zero points nor enter a
source's mean and variability index.  Blended ones too: how much of a neighbour's light falls in the
aperture changes with the seeing, and on a simulated night of constant stars the only ones flagged
variable were such pairs 3 px apart (reduced chi-square 36 and 130).  Their light curves still list
them, with the flag."""

BRIGHT_ERROR = 2.5 / math.log(10) / 100.0
"""A magnitude error below this (S/N above 100) makes a star 'bright' for the repeatability figure."""


@dataclass
class PhotometryReport:
    """What a photometry run did."""

    measured: int = 0
    """Frames measured now."""
    current: int = 0
    """Frames whose photometry was already current (not measured again)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """Frames that could not be measured, with the reason."""
    not_identified: list[tuple[int, str]] = field(default_factory=list)
    """Frames (id) left out of identification, with the reason."""
    identified: int = 0
    """Frames whose stars were identified into sources."""
    sources: int = 0
    variables: int = 0
    """Sources flagged variable in some band."""
    zero_point_errors: list[float] = field(default_factory=list)
    """Every identified frame's zero-point error, mag."""
    repeatability: dict[str, float] = field(default_factory=dict)
    """Per band: the median over bright constant stars (S/N > 100) of the standard deviation of their
    differential magnitudes across frames, mag."""
    cpu_seconds: float = 0.0
    """CPU time of this process (the workers' measuring excluded when they are other processes)."""

    @property
    def median_zero_point_error(self) -> float | None:
        """The median zero-point error, mag (None without zero points)."""
        import statistics

        return statistics.median(self.zero_point_errors) if self.zero_point_errors else None


def measure_frame(task: dict, radius: float | None) -> dict:
    """Aperture photometry of one frame at its stored star positions (a worker; never raises for bad input).

    Returns ``{"frame_id", "frame": frame_photometry columns, "arrays": per-star arrays}`` or
    ``{"frame_id", "path", "error"}``.
    """
    import numpy as np

    from obsdb.imaging.fitsio import FitsReadError, read_fits_image
    from obsdb.imaging.photometry import PHOTOMETRY_VERSION, RADIUS_FWHM, aperture_photometry

    path = task["path"]
    try:
        image = read_fits_image(path, hash_mode="none")
    except FitsReadError as exc:
        return {"frame_id": task["frame_id"], "path": path, "error": f"{path}: {exc}"}
    data = image.data
    if task["calibration"]:
        from obsdb.imaging.calibration import calibrate_with

        try:
            data = calibrate_with(data, image.header, task["calibration"], saturation=task["saturation"])
        except ValueError as exc:
            return {"frame_id": task["frame_id"], "path": path, "error": f"{path}: not calibrated: {exc}"}
    fwhm = task["fwhm"]
    if not (fwhm and math.isfinite(fwhm) and fwhm > 0):
        if radius is None:
            return {"frame_id": task["frame_id"], "path": path,
                    "error": f"{path}: no FWHM measured for the apertures (give a fixed --radius)"}
        fwhm = radius / RADIUS_FWHM
    phot = aperture_photometry(data, task["x"], task["y"], fwhm=fwhm, radius=radius, header=image.header,
                               saturation=task["saturation"], neighbours_flux=task["flux"])
    exptime = task["exptime"] if task["exptime"] and task["exptime"] > 0 else None
    mag, mag_err = phot.magnitudes(MAG_OFFSET + (2.5 * math.log10(exptime) if exptime else 0.0))
    stars = phot.stars
    frame = {"frame_id": task["frame_id"], "n_stars": int(len(stars)), "radius": float(phot.radius),
             "radius_rule": "fixed" if radius is not None else "fwhm", "radius_fwhm": float(phot.radius / fwhm),
             "fwhm": float(task["fwhm"]) if task["fwhm"] else None, "annulus_inner": float(phot.annulus[0]),
             "annulus_outer": float(phot.annulus[1]), "gain": float(phot.gain), "gain_source": phot.gain_source,
             "exptime": exptime, "calibration": task["calibration_signature"], "inputs": task["inputs"],
             "algorithm": PHOTOMETRY_VERSION}
    arrays = {"x": stars["x"], "y": stars["y"], "flux": stars["flux"], "flux_err": stars["flux_err"],
              "sky": stars["sky"], "sky_rms": stars["sky_rms"], "mag": mag, "mag_err": mag_err,
              "flags": stars["flags"].astype(np.int64)}
    return {"frame_id": task["frame_id"], "frame": frame, "arrays": arrays}


def _rows(arrays: dict) -> list[dict]:
    """Per-star column dicts (plain Python numbers, NaN as NULL) from a worker's arrays."""
    columns = {name: values.tolist() for name, values in arrays.items()}
    n = len(columns["x"])
    rows = []
    for i in range(n):
        row = {"star_index": i}
        for name, values in columns.items():
            value = values[i]
            row[name] = None if isinstance(value, float) and not math.isfinite(value) else value
        rows.append(row)
    return rows


def photometer(db, *, night=None, radius: float | None = None, workers: int = 1, executor=None,
               progress: Callable | None = None, user: str | None = None) -> PhotometryReport:
    """Measure the stale frames of the catalog (or of ``night``), identify sources and fit zero points.

    Parameters
    ----------
    db : obsdb.catalog.db.Database
        The catalog's handle.
    night : str or list of str, optional
        The night(s); default all.
    radius : float, optional
        A fixed aperture radius in pixels; default :data:`obsdb.imaging.photometry.RADIUS_FWHM` times
        each frame's FWHM.  Changing it makes every frame stale.
    workers : int
        Local processes for the measuring (without ``executor``).
    executor : obsdb.pipeline.executors.Executor, optional
        Where the per-frame measuring runs.
    progress : callable, optional
        ``progress(done, total, file name)`` after each frame measured.

    Returns
    -------
    PhotometryReport
    """
    from obsdb.catalog.photometry import PhotometryStore
    from obsdb.errors import ObsdbError
    from obsdb.imaging.photometry import RADIUS_FWHM
    from obsdb.pipeline.executors import TaskFailed, executor_for

    if radius is not None and not (math.isfinite(radius) and radius > 0):
        raise ObsdbError(f"--radius {radius:g}: a positive number of pixels")
    cpu = time.process_time()
    store = PhotometryStore(db)
    rule = f"r={radius:g}px" if radius is not None else f"r={RADIUS_FWHM:g}fwhm"
    tasks = store.frames_to_measure(nights=night, fingerprint=lambda base: f"{base}|{rule}")
    stale = [t for t in tasks if t["stale"]]
    report = PhotometryReport(current=len(tasks) - len(stale))
    batch: list[dict] = []
    run = executor_for(executor, workers)
    try:
        for done, (task, result) in enumerate(run.map(measure_frame, stale, args=(radius,)), start=1):
            if isinstance(result, BaseException) or isinstance(result, TaskFailed):
                report.failed.append((task["path"], f"{task['path']}: {result}"))
            elif "error" in result:
                report.failed.append((task["path"], result["error"]))
            else:
                batch.append({"frame": result["frame"], "stars": _rows(result["arrays"])})
                report.measured += 1
            if len(batch) >= 50:
                store.store_measurements(batch)
                batch.clear()
            if progress:
                progress(done, len(stale), task["path"].rsplit("/", 1)[-1])
    finally:
        if executor is None:
            run.close()
    store.store_measurements(batch)
    identify(store, report, nights=night)
    report.cpu_seconds = time.process_time() - cpu
    store.record_event(user or login_name(), "photometry", summarize(report),
                       details={"measured": report.measured, "current": report.current,
                                "failed": [reason for _, reason in report.failed], "radius": rule,
                                "sources": report.sources, "identified": report.identified})
    return report


def summarize(report: PhotometryReport) -> str:
    """One line for the event log."""
    zp = report.median_zero_point_error
    return (f"{plural(report.measured, 'frame')} measured ({report.current} current, {len(report.failed)} failed); "
            f"{plural(report.sources, 'source')} in {plural(report.identified, 'frame')}"
            + (f"; median zero-point error {zp * 1000:.1f} mmag" if zp is not None else ""))


def identify(store, report: PhotometryReport, *, nights=None) -> None:
    """Identify sources per reference and fit the zero points per reference and band (see the module)."""
    from collections import defaultdict

    frames = store.identification_inputs(nights=nights)
    by_reference: dict[int, list[dict]] = defaultdict(list)
    left_out = []
    for frame in frames:
        if frame["reference_id"] is None:
            left_out.append({"frame_id": frame["frame_id"],
                             "identification": "no verified transform: the frame has no shift in a current "
                                               "alignment run (rejected before align, or not registered)"})
        else:
            by_reference[frame["reference_id"]].append(frame)
    store.mark_not_identified(left_out)
    report.not_identified.extend((row["frame_id"], row["identification"]) for row in left_out)
    for reference_id, members in sorted(by_reference.items()):
        _identify_reference(store, report, reference_id, members)


def _identify_reference(store, report: PhotometryReport, reference_id: int, frames: list[dict]) -> None:
    import numpy as np

    from obsdb.imaging.ensemble import ensemble_zero_points, identify_sources
    from obsdb.pipeline.render import total_transform

    frames = sorted(frames, key=lambda f: (f["frame_id"] != reference_id, f["frame_id"]))
    positions = []
    for frame in frames:
        if frame["shape"][0] and frame["steps"]:
            xr, yr = total_transform(frame["steps"], frame["shape"]).apply(frame["x"], frame["y"])
        else:
            xr, yr = frame["x"], frame["y"]
        positions.append(np.column_stack([xr, yr]) if len(frame["x"]) else np.zeros((0, 2)))
    centres, members = identify_sources(positions)
    n_sources = len(centres)
    n_frames = np.zeros(n_sources, dtype=int)
    member_rows = []
    for frame, ids in zip(frames, members):
        seen = ids >= 0
        n_frames[ids[seen]] += 1
        member_rows.extend(zip(frame["id"][seen].tolist(), ids[seen].tolist()))
    ra, dec = _sky_positions(store.reference_wcs_header(reference_id), centres)
    sources = [{"number": i, "x": float(centres[i, 0]), "y": float(centres[i, 1]),
                "ra": ra[i], "dec": dec[i], "n_frames": int(n_frames[i])} for i in range(n_sources)]
    bands, zero_points = [], []
    for band in sorted({f["band"] for f in frames}):
        chosen = [(f, ids) for f, ids in zip(frames, members) if f["band"] == band]
        mag = np.full((len(chosen), n_sources), np.nan)
        err = np.full_like(mag, np.nan)
        for row, (frame, ids) in enumerate(chosen):
            good = (ids >= 0) & ((frame["flags"] & EXCLUDED_FLAGS) == 0) & np.isfinite(frame["mag"])
            mag[row, ids[good]] = frame["mag"][good]
            err[row, ids[good]] = frame["mag_err"][good]
        # Only the sources measured in this band: a column with no measurement has no magnitude, and
        # its NaN would reach every frame's weighted sum.
        present = np.flatnonzero(np.isfinite(mag).any(axis=0))
        mag, err = mag[:, present], err[:, present]
        fit = ensemble_zero_points(mag, err)
        counted = np.isfinite(mag)
        comparisons = (counted & fit.comparison[None, :]).sum(axis=1)
        for row, (frame, _) in enumerate(chosen):
            zp = fit.zero_point[row]
            zero_points.append({"frame_id": frame["frame_id"],
                                "zero_point": float(zp) if np.isfinite(zp) else None,
                                "zero_point_err": float(fit.zero_point_err[row]) if np.isfinite(zp) else None,
                                "n_comparison": int(comparisons[row])})
            if np.isfinite(zp):
                report.zero_point_errors.append(float(fit.zero_point_err[row]))
        for column, s in enumerate(present):
            bands.append({"number": int(s), "band": band, "mag": _number(fit.magnitude[column]),
                          "mag_err": _number(fit.magnitude_err[column]), "n_frames": int(counted[:, column].sum()),
                          "chi2": _number(fit.chi2[column]), "variable": bool(fit.variable[column]),
                          "comparison": bool(fit.comparison[column])})
        spread = repeatability(mag, err, fit)
        if spread is not None:
            report.repeatability[band if band else "(none)"] = spread
        report.variables += int(fit.variable.sum())
    store.store_identification(reference_id=reference_id, sources=sources, bands=bands, members=member_rows,
                               zero_points=zero_points, not_identified=[])
    report.sources += n_sources
    report.identified += len(frames)


def repeatability(mag, err, fit, *, bright_error: float = BRIGHT_ERROR, min_frames: int = 3) -> float | None:
    """The median over bright constant stars (median error below ``bright_error``, not variable, in at
    least ``min_frames`` frames) of the standard deviation of their differential magnitudes, mag."""
    import numpy as np

    differential = fit.differential(mag)
    with np.errstate(all="ignore"):
        typical_err = np.nanmedian(np.where(np.isfinite(mag), err, np.nan), axis=0)
    counted = np.isfinite(differential).sum(axis=0)
    bright = (typical_err < bright_error) & ~fit.variable & (counted >= min_frames)
    if not bright.any():
        return None
    with np.errstate(all="ignore"):
        spreads = np.nanstd(differential[:, bright], axis=0, ddof=1)
    return float(np.nanmedian(spreads))


def _number(value) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _sky_positions(header: dict | None, centres) -> tuple[list, list]:
    """RA and Dec (degrees) of reference pixel positions when the reference's header has a celestial WCS;
    lists of None otherwise."""
    none = [None] * len(centres)
    if not header or not len(centres):
        return none, none
    import warnings

    from astropy.io import fits

    from obsdb.imaging.wcs import celestial_wcs_cards

    cards = fits.Header()
    for key, value in header.items():
        if isinstance(value, (list, dict)) or value is None or len(key) > 8:
            continue
        try:
            cards[key] = value
        except (ValueError, TypeError):
            continue
    wcs_cards = celestial_wcs_cards(cards)
    if not wcs_cards:
        return none, none
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=fits.verify.VerifyWarning)
        from astropy.wcs import FITSFixedWarning

        warnings.simplefilter("ignore", category=FITSFixedWarning)
        wcs_header = fits.Header()
        for key, value, comment in wcs_cards:
            wcs_header[key] = value
        try:
            wcs = WCS(wcs_header, relax=True).celestial
            ra, dec = wcs.all_pix2world(centres[:, 0], centres[:, 1], 0)
        except Exception:  # noqa: BLE001 - a WCS astropy cannot evaluate gives no sky positions
            return none, none
    return [_number(v) for v in ra], [_number(v) for v in dec]
