"""Render: aligned frames and per-band stacks from what the catalog says.

Each frame is resampled ONCE with its total transform in a run (the steps
composed, never shift after shift).  Outputs are written atomically, carry
their provenance in the header, are recorded in the catalog with their hash,
and an input file is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from obsdb.text import not_one_of, plural
from obsdb.version import __version__
from obsdb.errors import NothingToProcess, ObsdbError
from obsdb.config import login_name


@dataclass
class RenderReport:
    """What a render wrote."""

    frames: list[tuple[int | None, str]] = field(default_factory=list)
    stacks: list[dict] = field(default_factory=list)
    skipped: list[tuple[int | str | None, str]] = field(default_factory=list)
    """Frames left out of a stack, with the reason."""
    failed: list[tuple[int | str, str]] = field(default_factory=list)
    """Frames that could not be rendered (input gone or unreadable since ingest), with the reason."""
    previews: list[str] = field(default_factory=list)


def output_name(input_path: str) -> str:
    """The aligned frame's file name: the input's, without ``.gz`` (outputs are plain FITS); an XISF
    input's aligned frame is ``NAME.fits``."""
    name = Path(input_path).name
    if name.lower().endswith(".xisf"):
        return name[:-5] + ".fits"
    return name[:-3] if name.lower().endswith(".gz") else name


def output_names(input_paths: list[str], *, strip_gz: bool = True) -> dict[str, str]:
    """Output path (relative to the output folder) of each input.

    The input's file name, as the design card asks; but when two inputs share a
    file name (``M94/Light_001.fits`` and ``M67/Light_001.fits``: one folder
    per target is common), every output keeps its path below the inputs'
    common folder instead, since one would otherwise overwrite the other.

    Parameters
    ----------
    input_paths : list of str
        Absolute paths of the inputs.
    strip_gz : bool
        Drop a ``.gz`` suffix (aligned frames are written uncompressed).

    Returns
    -------
    dict
        Input path -> relative output path.
    """
    def name_of(path: str) -> str:
        return output_name(path) if strip_gz else Path(path).name

    names = {path: name_of(path) for path in input_paths}
    if len(set(names.values())) == len(names):
        return names
    common = Path(os.path.commonpath([str(Path(path).parent) for path in input_paths]))
    return {path: str(Path(path).parent.relative_to(common) / name_of(path)) for path in input_paths}


def total_transform(steps: list[dict], shape: tuple[int, int]):
    """Compose a frame's steps (in stage order) into one transform about the frame centre."""
    from obsdb.imaging.transform import Transform

    ny, nx = shape
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    total = Transform(0.0, 0.0, 0.0, 1.0, cx, cy)
    for s in steps:
        step_cx = s["cx"] if s["cx"] is not None else cx
        step_cy = s["cy"] if s["cy"] is not None else cy
        step = Transform(s["dx"], s["dy"], s["rotation_deg"] or 0.0, s["scale"] or 1.0, step_cx, step_cy)
        if (step_cx, step_cy) != (cx, cy) and not step.is_translation:
            # Re-express about the frame centre: same mapping, different translation.
            x0, y0 = step.apply(cx, cy)
            step = Transform(float(x0) - cx, float(y0) - cy, step.rotation_deg, step.scale, cx, cy)
        elif (step_cx, step_cy) != (cx, cy):
            step = Transform(step.dx, step.dy, 0.0, 1.0, cx, cy)
        total = total.compose(step)
    return total


def history_line(run: int, step: dict) -> str:
    """One HISTORY card (<= 72 characters) for a shift step; the step's method is left out when it won't fit."""
    rot = f" rot={step['rotation_deg']:+.5f}" if step["rotation_deg"] else ""
    tail = f"dx={step['dx']:+.4f} dy={step['dy']:+.4f}{rot} ref {step['reference']}"
    head = f"obsdb run {run} stage {step['stage']} {step['kind']}"
    line = f"{head} {step['method']}: {tail}"
    return line if len(line) <= 72 else f"{head}: {tail}"


@contextlib.contextmanager
def _card_notes_quiet():
    """astropy's notes on header cards silenced for the block.

    Only in the main thread (serial, or a worker process): ``warnings.catch_warnings`` changes the
    whole process's filters, so the render's threads leave them to :func:`_map_render`, which sets
    them once around all of its threads.
    """
    import threading
    import warnings

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="astropy.io.fits")
        yield


def render_frame(task: dict, out_dir: str, interpolation: str, preview: bool) -> dict:
    """Resample one frame once and write it atomically with its provenance (a worker, or a thread)."""
    import numpy as np
    from astropy.io import fits

    from obsdb.imaging.bayer import cfa_pattern_or_none
    from obsdb.imaging.defects import sharp_defects
    from obsdb.imaging.fitsio import FitsReadError, atomic_write_fits, read_fits_image
    from obsdb.imaging.resample import PreparedFrame
    from obsdb.imaging.wcs import replace_wcs

    with _card_notes_quiet():
        try:
            image = read_fits_image(task["path"], hash_mode="none")
        except FitsReadError as exc:
            # Moved, deleted or damaged since ingest: the other frames still render.
            return {"frame_id": task["frame_id"], "number": task["number"], "input": task["path"],
                    "error": f"{task['path']}: {exc}"}
        transform = total_transform(task["steps"], image.data.shape)
        data = image.data
        calibration = task.get("calibration") or []
        if calibration:
            # Calibrated in memory, in the raw frame's geometry (overscan NaN): the one resampling below
            # is the only one, and the alignment's transforms (measured on these pixels) still apply.
            from obsdb.imaging.calibration import calibrate_with

            try:
                data = calibrate_with(data, image.header, calibration, saturation=task.get("saturation"))
            except ValueError as exc:
                return {"frame_id": task["frame_id"], "number": task["number"], "input": task["path"],
                        "error": f"{task['path']}: not calibrated: {exc}"}
        pattern = cfa_pattern_or_none(image.header)
        if pattern is not None:
            # A colour mosaic resampled as grey keeps its checkerboard: demosaic first, write luminance.
            from obsdb.imaging.bayer import luminance

            data = luminance(data, pattern)
        # Hot pixels and cosmic-ray hits would ring through the interpolation: they become NaN, which
        # the resampling leaves uncovered (COVERAGE 0) and the stacks ignore.  Nearest-pixel copies
        # pixels as they are (the notebook's shift, exactly): nothing rings.
        defects = (np.zeros(data.shape, dtype=bool) if interpolation == "nearest"
                   else sharp_defects(data, fwhm=task.get("fwhm")))
        detector = task.get("detector_defects")
        n_detector = 0
        if detector is not None and pattern is None and interpolation != "nearest":
            # Warm pixels too faint to stand out in one frame, found in the night's frames together (see render()).
            flat = defects.reshape(-1)
            if detector.size and int(detector.max()) < flat.size:
                n_detector = int((~flat[detector]).sum())
                flat[detector] = True
        if defects.any():
            data = np.array(data, dtype=np.float32, copy=True)
            data[defects] = np.nan
        streaks = task.get("streaks") or []
        n_streak_px = 0
        if streaks:
            # Masked in the input frame, before the one resampling: the NaN band goes through the same
            # transform as the stars, and the stacks (which read these files) ignore it.
            from obsdb.imaging.streaks import streak_mask

            band = streak_mask(data.shape, streaks)
            n_streak_px = int(band.sum())
            data = np.array(data, dtype=np.float32, copy=True)
            data[band] = np.nan
        # One preparation (the NaN fill) serves the spline pass and the linear values near saturated cores.
        prepared = PreparedFrame(data, transform)
        aligned, coverage = prepared.resample(interpolation)
        n_linear = 0
        if interpolation in ("spline3", "fourier"):
            aligned, n_linear = _linear_near_saturation(aligned, data, prepared, task.get("saturation"))
        # The input's pixels and the padded working copy are done with: freed before the write's buffers.
        header = image.header.copy()
        del prepared, data, image
        for key in ("BZERO", "BSCALE", "BLANK", "DATAMIN", "DATAMAX", "CHECKSUM", "DATASUM"):
            header.remove(key, ignore_missing=True, remove_all=True)
        # The output is on the reference's pixel grid: the frame's own WCS no longer describes it.
        replace_wcs(header, task.get("wcs"), note=f"obsdb: no WCS: the reference {task['reference']} has none")
        header["OBSDB_DX"] = (round(transform.dx, 6), "x shift applied (x_ref - x_frame), px")
        header["OBSDB_DY"] = (round(transform.dy, 6), "y shift applied (y_ref - y_frame), px")
        header["OBSDB_RT"] = (round(transform.rotation_deg, 8), "rotation applied about the centre, deg")
        header["OBSDB_SC"] = (round(transform.scale, 10), "scale applied")
        header["HIERARCH OBSDB_RUN"] = (task["run"], "obsdb alignment run")
        header["HIERARCH OBSDB_REF"] = (task["reference"], "reference frame number")
        header["HIERARCH OBSDB_INTERP"] = (interpolation, "interpolation, one resampling")
        header["HIERARCH OBSDB_VER"] = (__version__, "obsdb version")
        for s in task["steps"]:
            header.add_history(history_line(task["run"], s))
        from obsdb.imaging.calibration import add_calibration_cards

        add_calibration_cards(header, calibration)
        if pattern is not None:
            for key in ("BAYERPAT", "COLORTYP", "BAYER"):
                header.remove(key, ignore_missing=True, remove_all=True)
            header["HIERARCH OBSDB_CFA"] = (pattern, "input was a Bayer mosaic; output is its luminance")
            header.add_history(f"obsdb: {pattern} mosaic demosaiced (bilinear); luminance = (R + G + B) / 3")
        header["HIERARCH OBSDB_NLINEAR"] = (n_linear, "output px near saturated stars, linear interp")
        header["HIERARCH OBSDB_NDEFECT"] = (int(defects.sum()), "hot/cosmic-ray pixels masked before resampling")
        header.add_history(f"obsdb: resampled once with {interpolation}; NaN where no data (COVERAGE ext)")
        header.add_history(f"obsdb: {int(defects.sum())} hot/cosmic-ray pixels masked before resampling")
        if n_detector:
            header.add_history(f"obsdb: {n_detector} of them found only in the night's frames together")
        if streaks:
            header["HIERARCH OBSDB_NSTREAK"] = (len(streaks), "satellite streaks masked (NaN) before resampling")
            for st in streaks:
                # One card each (72 characters): input pixels, as the catalog's streak rows give them.
                header.add_history(f"obsdb: masked satellite streak ({st['x0']:.0f},{st['y0']:.0f})-"
                                   f"({st['x1']:.0f},{st['y1']:.0f}), {st['width']:.0f} px wide")
            header.add_history(f"obsdb: {n_streak_px} input pixels masked along streaks")
        # No copy: astropy byte-swaps a little-endian array in place for the write and swaps it back.
        primary = fits.PrimaryHDU(aligned.astype(np.float32, copy=False), header=header)
        mask = fits.ImageHDU(coverage.astype(np.uint8), name="COVERAGE")
        target = Path(out_dir) / task.get("output", output_name(task["path"]))
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = atomic_write_fits(target, [primary, mask])
        preview_path = None
        if preview:
            from obsdb.imaging.preview import write_preview_png

            preview_path = str(target.with_suffix(".png"))
            write_preview_png(preview_path, aligned, title=f"{task['number']} aligned")
    return {"frame_id": task["frame_id"], "number": task["number"], "path": str(target), "sha256": digest,
            "dx": transform.dx, "dy": transform.dy, "rotation_deg": transform.rotation_deg, "run": task["run"],
            "preview": preview_path, "shape": [int(n) for n in aligned.shape]}


def render(db, out_dir: str | Path, *, run: int | None = None, interpolation: str = "spline3",
           status: str = "accepted", band: str | None = None, where: str | None = None,
           stack: str | None = None, nights=None, weight: str | None = None,
           previews: bool = False, workers: int = 1, memory_limit_mb: float = 512, user: str | None = None,
           progress: Callable | None = None, executor=None) -> RenderReport:
    """Write aligned frames (and stacks) for the selected frames.

    Parameters
    ----------
    db : obsdb.catalog.db.Database
        The open catalog's database handle (:attr:`obsdb.Catalog.db`).
    out_dir : path
        Output folder; must not hold any input frame of the catalog.
    run : int, optional
        Alignment run to render (default: each frame's current run).
    interpolation : str
        One of :data:`obsdb.imaging.resample.INTERPOLATIONS`.
    status : {"accepted", "pending", "rejected", "any"}
    band : str, optional
    where : str, optional
        A ``--where`` expression narrowing the frames.
    nights : str or list of str, optional
        Nights to render (``"all"``: every night); needed only when the catalog holds several.
    stack : {"median", "mean", "sigma-clip"}, optional
        Also write ``stack_<band>.fits`` per band.
    weight : str, optional
        Weigh the ``mean`` stack's frames by this weight: built in (``noise``, ``fwhm``, ``stars``,
        ``snr``) or defined with `obsdb weight define` (:mod:`obsdb.catalog.weights`).
    previews : bool
        PNG previews of the aligned frames (stacks always get one).
    workers : int
        Processes.
    executor : obsdb.pipeline.executors.Executor, optional
        Where the frames are resampled (default: this process, or a pool of ``workers``).

    Returns
    -------
    RenderReport
    """
    from obsdb.catalog.stores import RenderStore
    from obsdb.imaging.resample import INTERPOLATIONS
    from obsdb.imaging.stack import STACK_METHODS

    store = RenderStore(db)
    if interpolation not in INTERPOLATIONS:
        raise ObsdbError(not_one_of("--interp", interpolation, INTERPOLATIONS))
    if stack is not None and stack not in STACK_METHODS:
        raise ObsdbError(not_one_of("--stack", stack, STACK_METHODS))
    if weight is not None and stack != "mean":
        raise ObsdbError(f"--weight {weight}: weights are for --stack mean (not {stack or 'no stack'})")
    if weight is not None:
        from obsdb.catalog.weights import WeightStore

        WeightStore(db).expression_of(weight)  # an unknown name fails before any file is written
    user = user or login_name()
    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise ObsdbError(f"--out {out_dir}: is a file, not a folder")
    tasks = store.render_plan(run=run, status=status, band=band, where=where, nights=nights)
    if not tasks:
        matching = next(store.iter_frame_dicts(night=nights, band=band, where=where, include_unreadable=False,
                                               status=None if status == "any" else status), None)
        if matching is None:
            chosen = ", ".join(part for part in (f"--status {status}", band and f"--band {band}",
                                                 where and f"--where {where!r}") if part)
            raise NothingToProcess(f"nothing to render: no frame matches {chosen}")
        raise NothingToProcess("nothing to render: no selected frame has a shift (run `obsdb align` first)",
                               "nothing to render: no selected frame has a shift")
    outputs = output_names([task["path"] for task in tasks])
    wcs = _reference_wcs({task["reference_path"] for task in tasks})
    for task in tasks:
        task["output"] = outputs[task["path"]]
        task["wcs"] = wcs.get(task["reference_path"])
    inputs = store.catalogued_among([str(out_dir / task["output"]) for task in tasks])
    if inputs:
        raise ObsdbError(f"{sorted(inputs)[0]}: is an input frame; refusing to overwrite it (choose another --out)")
    from obsdb.pipeline.outputs import refuse_foreign, remove_own_leftovers

    targets = [out_dir / task["output"] for task in tasks]
    targets += [target.with_suffix(".png") for target in targets] if previews else []
    # An output folder may hold the user's own files: only what obsdb wrote (and nobody changed) is replaced.
    refuse_foreign(targets, store.written_outputs([str(t) for t in targets]), what="render")
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_own_leftovers(targets)
    # Write-ahead: the catalog knows every file about to be written before the first is, and each
    # file's digest as soon as it is written, so a render killed at any point leaves no file of
    # its own that the next render would take for the user's.
    store.record_render_intents(
        [{"kind": "aligned", "path": str(out_dir / task["output"]), "frame_id": task["frame_id"],
          "band": task["band"]} for task in tasks]
        + ([{"kind": "preview", "path": str((out_dir / task["output"]).with_suffix(".png")),
             "frame_id": task["frame_id"], "band": task["band"]} for task in tasks] if previews else []))
    streaks = {f["id"]: f["streaks"] for f in store.frame_streaks([task["frame_id"] for task in tasks])}
    for task in tasks:
        task["streaks"] = streaks.get(task["frame_id"], [])
    from obsdb.catalog.masters import MasterStore

    calibrations = MasterStore(db).light_calibrations([task["frame_id"] for task in tasks])
    for task in tasks:
        task["calibration"] = calibrations.get(task["frame_id"], [])
    if interpolation != "nearest":
        from obsdb.catalog.defect_maps import DetectorDefectStore

        _attach_detector_defects(tasks, DetectorDefectStore(db))
    report = RenderReport()
    results = []
    unrecorded: list[dict] = []
    last_record = time.monotonic()
    try:
        for done, result in enumerate(_map_render(tasks, str(out_dir), interpolation, previews, workers,
                                                  executor), start=1):
            if "error" in result:
                report.failed.append((result["number"] if result["number"] is not None
                                      else Path(result["input"]).name, result["error"]))
            else:
                results.append(result)
                unrecorded.append(result)
                # Recorded in batches as they are written (one transaction per batch, not per frame); a
                # failure records what was written, and a kill leaves the rest as write-ahead intents.
                if len(unrecorded) >= RECORD_BATCH or time.monotonic() - last_record >= RECORD_SECONDS:
                    _record_frames(store, tasks, unrecorded, interpolation, report)
                    unrecorded, last_record = [], time.monotonic()
            if progress:
                progress(done, len(tasks), Path(result.get("path") or result["input"]).name)
    except BaseException:
        try:
            _record_frames(store, tasks, unrecorded, interpolation, report)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise
    _record_frames(store, tasks, unrecorded, interpolation, report)
    if stack:
        report.stacks = write_stacks(store, tasks, results, out_dir, method=stack,
                                     memory_limit_mb=memory_limit_mb, left_out=report.skipped,
                                     weight=_stack_weights(db, weight, results, report.skipped) if weight else None)
    store.record_event(user, "render", f"{plural(len(results), 'aligned frame')}, {plural(len(report.stacks), 'stack')} "
                                       f"into {out_dir}",
                       details={"interpolation": interpolation, "run": run, "stack": stack, "weight": weight})
    return report


def _stack_weights(db, name: str, results: list[dict], left_out: list) -> dict:
    """``{"name", "expression", "values": {frame id: weight}}`` for the frames rendered; frames without
    a usable weight (none, negative, not finite) are left out of the stack with the reason."""
    import math

    from obsdb.catalog.weights import WeightStore
    from obsdb.pipeline.weights import ensure_weights

    ids = [r["frame_id"] for r in results]
    ensure_weights(db, ids)
    store = WeightStore(db)
    values = store.values(name, ids)
    usable = {}
    for r in results:
        value = values.get(r["frame_id"])
        if value is None or not math.isfinite(value) or value < 0:
            left_out.append((r["number"] if r["number"] is not None else Path(r["path"]).name,
                             f"left out of the weighted stack: weight {name} is "
                             f"{'unknown' if value is None else value}"))
        else:
            usable[r["frame_id"]] = value
    return {"name": name, "expression": store.expression_of(name), "values": usable}


def _record_frames(store, tasks, results, interpolation, report) -> None:
    """RenderOutput rows (and the report's lists) for the aligned frames written."""
    if not results:
        return
    bands = {t["frame_id"]: t["band"] for t in tasks}
    from obsdb.pipeline.outputs import file_sha256

    rows = [{"run_id": result["run"], "frame_id": result["frame_id"], "kind": "aligned",
             "band": bands[result["frame_id"]], "path": result["path"], "sha256": result["sha256"],
             "interpolation": interpolation,
             "parameters": {"dx": result["dx"], "dy": result["dy"], "rotation_deg": result["rotation_deg"]}}
            for result in results]
    # Previews are recorded too: a later render replaces them only while they are still obsdb's.
    rows += [{"run_id": result["run"], "frame_id": result["frame_id"], "kind": "preview",
              "band": bands[result["frame_id"]], "path": result["preview"], "sha256": file_sha256(result["preview"]),
              "interpolation": interpolation, "parameters": None}
             for result in results if result["preview"]]
    store.record_render_outputs(rows)
    for result in results:
        report.frames.append((result["number"], result["path"]))
        if result["preview"]:
            report.previews.append(result["preview"])


RECORD_BATCH = 25
"""Aligned frames whose output rows are inserted in one transaction (a 500-frame night: 20, not 500)."""

RECORD_SECONDS = 10.0
"""...or fewer, when this many seconds have passed since the last batch (a slow render records as it goes)."""

SATURATION_GUARD = 8
"""Output pixels within this many pixels of a saturated input pixel are interpolated linearly."""


def _linear_near_saturation(aligned, data, prepared, saturation):
    """Replace the spline's output around saturated star cores by linear interpolation.

    A clipped core is a flat top with a sharp rim: a cubic spline (or a phase
    shift) rings around it, a dark halo 4-6 px out that every frame repeats
    and a stack keeps.  Linear interpolation cannot undershoot (each output is
    a weighted mean of its four inputs), and the core carries no measurement
    anyway.  Returns the output (``aligned`` itself, changed in place) and the
    number of pixels replaced.

    The region is the cores grown by :data:`SATURATION_GUARD` pixels, resampled
    linearly onto the reference grid (> 1 %); the linear values are computed
    at its pixels only (:meth:`~obsdb.imaging.resample.PreparedFrame.values_at`),
    since the cores cover a few hundred pixels of millions.
    """
    import numpy as np

    from obsdb.imaging.resample import grow_mask, resampled_mask

    if saturation is None or not np.isfinite(saturation):
        return aligned, 0
    with np.errstate(invalid="ignore"):
        core = np.asarray(data) >= float(saturation)
    if not core.any():
        return aligned, 0
    near = grow_mask(core, SATURATION_GUARD)
    region = resampled_mask(near, prepared.transform, shape=prepared.out_shape, interpolation="linear",
                            threshold=0.01)
    rows, cols = np.divmod(np.flatnonzero(region), region.shape[1])  # 2-D nonzero is several times slower
    # The linear resampling leaves no data (0) beyond the frame: not part of the region.
    inside = prepared.inside(rows, cols)
    rows, cols = rows[inside], cols[inside]
    aligned[rows, cols] = prepared.values_at(rows, cols, "linear")
    return aligned, int(rows.size)


DETECTOR_SAMPLE_BYTES = 256 * 2 ** 20
"""Memory for the frames whose median shows a night's detector defects (fewer frames when they are large)."""


def _attach_detector_defects(tasks: list[dict], store=None) -> None:
    """Give each task the flat indices of its detector's defects, from the lower quartile of the night's frames.

    Frames are grouped by night, instrument and size; up to
    :data:`obsdb.imaging.defects.DETECTOR_SAMPLE` of each group, spread over
    the night, are read and their median searched (:func:`detector_defects`).
    Colour mosaics are left to the per-frame search: their pixels are not
    comparable neighbour to neighbour.

    With a ``store`` (:class:`obsdb.catalog.defect_maps.DetectorDefectStore`) a group's map is read
    from the catalog when it was computed from the same frames (ids and file digests), FWHM and
    search version, and kept there after it is computed: a second render of a night reads no frame
    for it (0.4 s and 200 MB for nine 2k frames).
    """
    import numpy as np

    from obsdb.imaging.bayer import cfa_pattern_or_none
    from obsdb.imaging.defects import DETECTOR_DEFECTS_VERSION, DETECTOR_SAMPLE, detector_defects, levelled_frame
    from obsdb.imaging.fitsio import FitsReadError, read_fits_image

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for task in tasks:
        if task.get("shape") and None not in task["shape"]:
            groups[(task.get("night_id"), task.get("instrument_id"), tuple(task["shape"]))].append(task)
    for (_, _, shape), members in groups.items():
        room = DETECTOR_SAMPLE_BYTES // max(1, 4 * shape[0] * shape[1])
        count = min(DETECTOR_SAMPLE, len(members), room)
        if count < 3:
            continue
        ordered = sorted(members, key=lambda t: (t.get("date_obs") or "", t["path"]))
        chosen = [ordered[round(i * (len(ordered) - 1) / (count - 1))] for i in range(count)]
        fwhms = [t["fwhm"] for t in members if t.get("fwhm") and np.isfinite(t["fwhm"])]
        fwhm = float(np.median(fwhms)) if fwhms else None
        key = (members[0].get("night_id"), members[0].get("instrument_id"), shape)
        sample = store.sample_digest([t["frame_id"] for t in chosen], fwhm, DETECTOR_DEFECTS_VERSION) if store else None
        indices = store.load(*key, version=DETECTOR_DEFECTS_VERSION, sample=sample) if store else None
        if indices is None:
            frames = []
            complete = True
            for task in chosen:
                try:
                    image = read_fits_image(task["path"], hash_mode="none")
                except FitsReadError:
                    complete = False  # render_frame reports it; a map without this frame is not kept
                    continue
                if cfa_pattern_or_none(image.header) is not None or image.data.shape != shape:
                    frames = []
                    break
                frames.append(levelled_frame(image.data))  # only the levelled copy is kept
                del image
            mask = detector_defects(frames, fwhm=fwhm)
            del frames
            indices = np.flatnonzero(mask).astype(np.int64)
            if store is not None and complete:
                store.save(*key, indices, version=DETECTOR_DEFECTS_VERSION, sample=sample)
        if indices.size:
            for task in members:
                task["detector_defects"] = indices


def _reference_wcs(paths) -> dict:
    """Each reference file's celestial WCS cards (None when it has none or cannot be read)."""
    import warnings

    from astropy.io import fits

    from obsdb.imaging.wcs import celestial_wcs_cards

    out = {}
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning, module="astropy.io.fits")  # card notes
                out[path] = celestial_wcs_cards(fits.getheader(path))
        except (OSError, ValueError, TypeError):  # moved since ingest: the outputs then say so
            out[path] = None
    return out


def _map_render(tasks, out_dir, interpolation, previews, workers, executor=None):
    """Resample every task's frame (in the executor's workers, which write the files); yield the results.

    With one worker and no executor chosen by name, the frames go to two threads of this process: the
    resampling, the hashing and the writes release the GIL, so a night of 2048² frames renders in
    0.6-0.75 of the time on two cores (``benchmarks/render_threads.py``, ``benchmarks/render_night.py``).
    """
    from obsdb.pipeline.executors import TaskFailed, in_process_threads
    from obsdb.pipeline.pool import ChildCrashed

    executor = in_process_threads(executor, workers)
    with _card_notes_quiet():  # set here, once, in the main thread: render_frame's threads leave filters be
        for task, result in executor.map(render_frame, tasks, args=(out_dir, interpolation, previews)):
            if isinstance(result, (ChildCrashed, TaskFailed)):
                result = {"frame_id": task["frame_id"], "number": task["number"], "input": task["path"],
                          "error": f"{task['path']}: rendering could not run: {result}"}
            yield result


def write_stacks(store, tasks: list[dict], results: list[dict], out_dir: Path, *, method: str,
                 memory_limit_mb: float = 512, left_out: list | None = None,
                 weight: dict | None = None) -> list[dict]:
    """Stack the aligned frames of each band into ``stack_<band>.fits`` (+ a PNG preview).

    Frames whose shape differs from that of most of their band's frames (a
    crop, another binning) cannot be stacked with them: they are left out, and
    ``(frame, reason)`` is appended to ``left_out``.

    When the frames belong to several targets (OBJECT), each target's bands are
    stacked apart, into ``<target>/stack_<band>.fits``: a median of different
    fields is no image of anything.

    ``weight`` (``{"name", "expression", "values": {frame id: weight}}``) weighs a mean stack's
    members; a frame without a value is not stacked, and the header names the weight
    (``OBSDB_WT``, its expression in ``OBSDB_WX`` and HISTORY) and each member's weight.
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from astropy.io import fits

    from obsdb.imaging.fitsio import atomic_write_fits
    from obsdb.imaging.preview import write_stack_preview_png
    from obsdb.imaging.stack import stack_files
    from obsdb.pipeline.outputs import file_sha256, refuse_foreign, remove_own_leftovers

    by_id = {t["frame_id"]: t for t in tasks}
    several_targets = len({by_id[r["frame_id"]]["object"] for r in results}) > 1
    stacks: dict[tuple[str | None, str], list[dict]] = defaultdict(list)
    for result in results:
        if weight is not None and result["frame_id"] not in weight["values"]:
            continue
        task = by_id[result["frame_id"]]
        stacks[(task["object"] if several_targets else None, task["band"] or "none")].append(result)
    written = []
    for (target, band), members in sorted(stacks.items(), key=lambda item: (item[0][0] or "", item[0][1])):
        members.sort(key=lambda r: (r["number"] is None, r["number"]))
        members = _one_shape(members, band, left_out if left_out is not None else [])
        # Frames are brought to the band's median sky first: a per-pixel median of frames whose skies
        # differ takes a star's core from one frame and its wings from another, broadening it.
        skies = [_sky_level(by_id[r["frame_id"]]["sky"], r["path"]) for r in members]
        level = float(np.median(skies))
        offsets = [level - sky for sky in skies]
        member_weights = [weight["values"][r["frame_id"]] for r in members] if weight else None
        stacked = stack_files([r["path"] for r in members], offsets=offsets, method=method,
                              memory_limit_mb=memory_limit_mb, weights=member_weights)
        exposure = sum(by_id[r["frame_id"]]["exptime"] or 0.0 for r in members)
        header = fits.Header()
        header["FILTER"] = (band, "band of the stacked frames")
        objects = {by_id[r["frame_id"]]["object"] for r in members}
        if len(objects) == 1 and None not in objects:
            header["OBJECT"] = (objects.pop(), "target of the stacked frames")
        header["EXPTIME"] = (exposure, "summed exposure of the stacked frames, s")
        header["NCOMBINE"] = (len(members), "frames stacked")
        header["OBSDB_ST"] = (method, "stack method")
        if weight:
            _weight_cards(header, weight, members, member_weights)
        _observation_cards(header, [by_id[r["frame_id"]] for r in members])
        header["HIERARCH OBSDB_SKY"] = (round(level, 3), "sky level every frame was offset to, ADU")
        runs = sorted({r["run"] for r in members})
        header["HIERARCH OBSDB_RUN"] = (runs[0] if len(runs) == 1 else ",".join(map(str, runs)), "alignment run(s)")
        header["HIERARCH OBSDB_VER"] = (__version__, "obsdb version")
        for r in members:
            header.add_history(f"obsdb stack: {Path(r['path']).name} run {r['run']} "
                               f"dx={r['dx']:+.4f} dy={r['dy']:+.4f}")
        # The masters the members were calibrated with (each member's own header names its own).
        used = Counter((row["kind"], row["master"], Path(row["path"]).name, row["sha256"])
                       for r in members for row in by_id[r["frame_id"]].get("calibration") or [])
        header["OBSDBCAL"] = (sum(1 for r in members if by_id[r["frame_id"]].get("calibration")),
                              "members calibrated by obsdb (masters below)")
        for (kind, master_id, name, sha), count in sorted(used.items(), key=lambda item: str(item[0])):
            header.add_history(f"obsdb: {kind} master {master_id} ({count} members): {name}"[:72])
            header.add_history(f"sha256 {sha}")
        folder = out_dir / _file_safe(target or "no-object") if several_targets else out_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"stack_{_file_safe(band)}.fits"
        refuse_foreign([path, path.with_suffix(".png")],
                       store.written_outputs([str(path), str(path.with_suffix(".png"))]), what="render")
        remove_own_leftovers([path, path.with_suffix(".png")])
        store.record_render_intents([{"kind": kind, "path": str(target), "band": band}
                                     for kind, target in (("stack", path), ("preview", path.with_suffix(".png")))])
        title = f"{target + ' ' if several_targets and target else ''}{band}: {method} of {plural(len(members), 'frame')}"
        with ThreadPoolExecutor(1, thread_name_prefix="obsdb-preview") as beside:
            # The preview is drawn while the stack is written (both release the GIL for most of their time);
            # the write gets its own float32 copy, the preview reads the stack as it is.
            drawing = beside.submit(write_stack_preview_png, path.with_suffix(".png"), stacked.data, title=title)
            digest = atomic_write_fits(path, [fits.PrimaryHDU(stacked.data.astype(np.float32), header=header),
                                              fits.ImageHDU(stacked.coverage, name="COVERAGE")])
            preview = drawing.result()
        store.record_render_outputs([{
            "run_id": runs[0] if len(runs) == 1 else None, "frame_id": None, "kind": "stack", "band": band,
            "path": str(path), "sha256": digest, "interpolation": None,
            "parameters": {"method": method, "frames": [r["number"] for r in members], "target": target,
                           "exptime": exposure, "preview": str(preview),
                           "sky_offsets": [round(o, 3) for o in offsets],
                           "weight": {"name": weight["name"], "expression": weight["expression"],
                                      "values": member_weights} if weight else None}},
            {"run_id": runs[0] if len(runs) == 1 else None, "frame_id": None, "kind": "preview", "band": band,
             "path": str(preview), "sha256": file_sha256(preview), "interpolation": None, "parameters": None}])
        written.append({"band": band, "target": target, "path": str(path), "frames": len(members),
                        "exptime": exposure, "preview": str(preview)})
    return written


def _weight_cards(header, weight: dict, members: list[dict], values: list[float]) -> None:
    """The weight a stack was made with: its name, its expression, and each member's weight."""
    header["OBSDB_WT"] = (weight["name"][:68], "frame weight of the mean (obsdb weight)")
    expression = " ".join(weight["expression"].split())
    if len(expression) <= 68:
        header["OBSDB_WX"] = (expression, "the weight's expression")
    for start in range(0, len(expression), 50):
        header.add_history(f"obsdb weight {weight['name'][:12]}: {expression[start:start + 50]}")
    for r, value in zip(members, values):
        header.add_history(f"obsdb weight: {Path(r['path']).name[:40]} w={value:.6g}")


def _observation_cards(header, members: list[dict]) -> None:
    """What science needs of a stack: when (DATE-OBS, DATE-END, MJD-MID), airmass, inputs, WCS."""
    from datetime import datetime, timedelta

    from obsdb.imaging.wcs import replace_wcs

    starts = [(datetime.fromisoformat(t["date_obs"]), t) for t in members if t.get("date_obs")]
    if starts:
        first = min(starts, key=lambda item: item[0])[0]
        end = max(when + timedelta(seconds=t["exptime"] or 0.0) for when, t in starts)
        header["DATE-OBS"] = (first.replace(tzinfo=None).isoformat(), "start of the first frame (UTC)")
        header["DATE-END"] = (end.replace(tzinfo=None).isoformat(), "end of the last frame (UTC)")
        mid = first + (end - first) / 2
        header["MJD-MID"] = (round((mid.replace(tzinfo=None) - datetime(1858, 11, 17)).total_seconds() / 86400, 8),
                             "MJD midway between DATE-OBS and DATE-END")
    weighted = [(t["airmass"], t["exptime"] or 0.0) for t in members if t.get("airmass") is not None]
    if weighted and sum(w for _, w in weighted) > 0:
        header["AIRMASS"] = (round(sum(a * w for a, w in weighted) / sum(w for _, w in weighted), 5),
                             "exposure-weighted mean airmass of the frames")
    for index, task in enumerate(members, start=1):
        header[f"FILE{index:04d}"] = (Path(task["path"]).name[:60], "input frame")
    wcs = {id(t.get("wcs")): t.get("wcs") for t in members}
    replace_wcs(header, next(iter(wcs.values())) if len(wcs) == 1 else None,
                note="obsdb: no WCS: the reference has none" if len(wcs) == 1 else
                "obsdb: no WCS: the frames were aligned onto different references")


def _one_shape(members: list[dict], band: str, left_out: list) -> list[dict]:
    """The members of the most common shape (ties: the first frame's); the others go to ``left_out``."""
    shapes = Counter(tuple(r["shape"]) for r in members)
    if len(shapes) <= 1:
        return members
    first = tuple(members[0]["shape"])
    keep = max(shapes, key=lambda shape: (shapes[shape], shape == first))
    for r in members:
        if tuple(r["shape"]) != keep:
            label = r["number"] if r["number"] is not None else Path(r["path"]).name
            left_out.append((label, f"left out of the {band} stack: shape {r['shape'][1]}x{r['shape'][0]} "
                                    f"differs from {keep[1]}x{keep[0]}, the shape of {shapes[keep]} of its frames"))
    return [r for r in members if tuple(r["shape"]) == keep]


def _file_safe(name: str) -> str:
    """A band or target name as a file-name part: 'NA36Rc50  sum of 3' -> 'NA36Rc50_sum_of_3'."""
    import re

    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "none"


def _sky_level(catalog_sky: float | None, path: str) -> float:
    """A frame's sky: the catalog's sigma-clipped background, else the aligned file's median."""
    import numpy as np
    from astropy.io import fits

    if catalog_sky is not None and np.isfinite(catalog_sky):
        return float(catalog_sky)
    with fits.open(path, memmap=True) as hdul:
        return float(np.nanmedian(hdul[0].data))


@dataclass
class CollectReport:
    """What ``collect`` did."""

    written: list[str] = field(default_factory=list)
    """Copies and links made now."""
    present: list[str] = field(default_factory=list)
    """Targets that already were the input (a link) or a byte-identical copy: left as they are."""
    copied_not_linked: int = 0
    """Links asked for across filesystems (a hard link cannot cross one): copied instead."""


def collect(db, out_dir: str | Path, *, status: str = "accepted", band: str | None = None,
            link: bool = False, nights=None) -> CollectReport:
    """Copy (or hard-link) the selected input frames into a folder, like the notebook's ``selected/``.

    A file already in the folder under a target's name is never replaced: it
    is left alone when it is the input itself (a link) or a byte-identical
    copy of it, and refused otherwise (it may be another night's input, or
    the user's own file).  A hard link across filesystems falls back to a copy.  ``db`` is the open
    catalog's database handle (:attr:`obsdb.Catalog.db`).
    """
    import errno
    import shutil
    import tempfile

    from obsdb.catalog.stores import RenderStore
    from obsdb.imaging.fitsio.write import _umask
    from obsdb.pipeline.outputs import file_sha256, remove_own_leftovers

    out_dir = Path(out_dir).expanduser().resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise ObsdbError(f"--out {out_dir}: is a file, not a folder")
    store = RenderStore(db)
    records = store.frame_dicts(night=nights, band=band, include_unreadable=False,
                                status=None if status == "any" else status)
    if not records:
        raise ObsdbError(f"no {status} frames to collect")
    outputs = output_names([record["path"] for record in records], strip_gz=False)
    # Never write over (or unlink) a catalogued input, this night's or another's.
    clashes = store.catalogued_among([str(out_dir / name) for name in outputs.values()])
    if clashes:
        raise ObsdbError(f"{sorted(clashes)[0]}: is a catalogued input frame; refusing to replace it "
                         "(choose another --out)")
    report = CollectReport()
    todo = []
    for record in records:
        source = Path(record["path"])
        target = out_dir / outputs[record["path"]]
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise ObsdbError(f"{target}: exists and is not a plain file; refusing to replace it "
                             "(choose another --out)")
        if target.exists():
            if target.resolve() == source.resolve() or os.path.samefile(target, source):
                report.present.append(str(target))
                continue
            if target.stat().st_size != source.stat().st_size or file_sha256(target) != file_sha256(source):
                raise ObsdbError(f"{target}: exists and is not a copy of {source}; refusing to replace it "
                                 "(move it, or choose another --out)")
            report.present.append(str(target))
            continue
        todo.append((source, target))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ObsdbError(f"--out {out_dir}: cannot create the folder: {exc.strerror}") from None
    remove_own_leftovers([target for _, target in todo])
    for source, target in todo:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if link:
                try:
                    os.link(source, target)
                    report.written.append(str(target))
                    continue
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    report.copied_not_linked += 1
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            os.close(fd)
            try:
                shutil.copy2(source, tmp)
                os.chmod(tmp, 0o666 & ~_umask())
                _publish_without_replacing(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except FileExistsError:
            raise ObsdbError(f"{target}: appeared while collecting; refusing to replace it") from None
        except OSError as exc:
            raise ObsdbError(f"{target}: cannot write: {exc.strerror or exc}") from None
        report.written.append(str(target))
    return report


def _publish_without_replacing(tmp: str, target: Path) -> None:
    """Give the finished temporary file its name, never replacing a file that appeared meanwhile."""
    import errno

    try:
        # link() refuses an existing target where rename() would replace it.
        os.link(tmp, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        # A filesystem without hard links: check, then rename (a narrow race, on such filesystems only).
        if target.exists():
            raise FileExistsError(str(target)) from None
        os.replace(tmp, target)
