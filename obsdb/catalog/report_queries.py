"""What ``obsdb report`` reads: the frames, runs, per-run shifts and stacks (:func:`report_facts`), and
nights, instruments, per-frame extras, tag and shift histories and QA thresholds (:func:`report_details`),
each in one transaction."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from obsdb.catalog.models import (AlignmentRun, Frame, Instrument, Night, PENDING_DIGEST, RenderOutput,
                                  ShiftStep, Tag)
from obsdb.catalog.queries import iter_frame_records
from obsdb.catalog.records import FrameFilter
from obsdb.catalog.selectors import night_ids
from obsdb.catalog.summaries import qa_threshold_events


def report_facts(session: Session, *, nights=None) -> dict:
    """What ``obsdb report`` shows: the frames, the runs, each frame's shift per run, the stacks.

    With ``nights``, only those nights' frames and the runs made on them (a run across nights
    counts when its reference frame is of one of them), and the stacks of those runs.
    """
    scope = night_ids(session, nights)
    run_query = select(AlignmentRun, Frame.number).outerjoin(Frame, Frame.id == AlignmentRun.reference_frame_id)
    if scope is not None:
        run_query = run_query.where(Frame.night_id.in_(scope))
    runs = [{"id": run.id, "created_at": run.created_at, "method": run.method, "reference": number,
             "author": run.author, "software_version": run.software_version}
            for run, number in session.execute(run_query.order_by(AlignmentRun.id))]
    run_ids = [run["id"] for run in runs]
    run_shifts: dict[int, dict[int, tuple[float, float]]] = defaultdict(dict)
    # A frame's shift in a run is the sum of its steps (design card).
    shift_query = (select(ShiftStep.run_id, ShiftStep.frame_id, func.sum(ShiftStep.dx), func.sum(ShiftStep.dy))
                   .group_by(ShiftStep.run_id, ShiftStep.frame_id))
    stack_query = select(RenderOutput).where(RenderOutput.kind == "stack", RenderOutput.sha256 != PENDING_DIGEST
                                             ).order_by(RenderOutput.id)
    if scope is not None:
        shift_query = shift_query.where(ShiftStep.run_id.in_(run_ids))  # a report's few runs
        stack_query = stack_query.where(RenderOutput.run_id.in_(run_ids))
    for run_id, frame_id, dx, dy in session.execute(shift_query):
        run_shifts[run_id][frame_id] = (dx, dy)
    stacks = [{"id": s.id, "band": s.band, "path": s.path, "run": s.run_id, "created_at": s.created_at,
               "parameters": s.parameters, "interpolation": s.interpolation}
              for s in session.scalars(stack_query)]
    return {"records": [r.to_json() for r in iter_frame_records(session, FrameFilter(nights=nights))], "runs": runs,
            "run_shifts": dict(run_shifts), "stacks": stacks}


REPORT_HEADER_KEYWORDS = ("OBSERVER", "SITENAME", "OBSERVAT", "SITE", "TELESCOP", "INSTRUME", "PIXSCALE", "SECPIX",
                          "SECPIX1", "SCALE", "CDELT1", "CDELT2", "CD1_1", "CD1_2", "FOCALLEN", "XPIXSZ",
                          "PIXSIZE1", "XBINNING", "GAIN", "CCD-TEMP", "FOCUSPOS", "EXPTIME")
"""Header keywords :func:`report_details` keeps per frame (observer, site, pixel scale and the like)."""


REPORT_STARS = 40
"""Brightest stored stars per frame :func:`report_details` returns (the report zooms on a few of them)."""


def report_details(session: Session, *, nights=None) -> dict:
    """What ``obsdb report`` shows beyond :func:`report_facts`: nights, instruments, per-frame extras,
    every tag and shift step, aligned files and the QA runs' thresholds.

    Set-based: one query per kind of row over the frames in scope, whatever their number.

    Returns
    -------
    dict
        ``nights`` (name, site, longitude, first and last DATE-OBS), ``instruments`` by key (telescope,
        camera, shape, binning, pixel size), ``frames`` by frame id (airmass, instrument key, a few header
        keywords of :data:`REPORT_HEADER_KEYWORDS`, the brightest stored stars as (x, y, flux, fwhm, flag)),
        ``tag_history`` by frame id (every tag, retracted ones too), ``steps`` by frame id (every shift step
        of every run, oldest first), ``renders`` by frame id (aligned files), ``run_references`` (each
        alignment run's reference frame id, by run id) and ``qa_events`` (newest first: when, nights, band,
        thresholds).
    """
    from obsdb.imaging.stars import decode_stars
    from obsdb.catalog.models import StarList

    scope = night_ids(session, nights)
    in_scope = True if scope is None else Frame.night_id.in_(scope)
    night_query = select(Night).order_by(Night.name)
    if scope is not None:
        night_query = night_query.where(Night.id.in_(scope))
    night_rows = [{"name": n.name, "site": n.site, "longitude": n.longitude,
                   "first_date_obs": n.first_date_obs.isoformat() if n.first_date_obs else None,
                   "last_date_obs": n.last_date_obs.isoformat() if n.last_date_obs else None}
                  for n in session.scalars(night_query)]
    used = select(Frame.instrument_id).where(in_scope).distinct()
    instruments = {i.key: {"telescope": i.telescope, "camera": i.camera, "width": i.width, "height": i.height,
                           "binning_x": i.binning_x, "binning_y": i.binning_y, "pixel_size": i.pixel_size}
                   for i in session.scalars(select(Instrument).where(Instrument.id.in_(used)))}
    frames = {}
    for frame_id, airmass, header, key in session.execute(
            select(Frame.id, Frame.airmass, Frame.header, Instrument.key)
            .outerjoin(Instrument, Instrument.id == Frame.instrument_id).where(in_scope)):
        header = header if isinstance(header, dict) else {}
        frames[frame_id] = {"airmass": airmass, "instrument": key, "stars": [],
                            "header": {k: header[k] for k in REPORT_HEADER_KEYWORDS if k in header}}
    for frame_id, data in session.execute(select(StarList.frame_id, StarList.data)
                                          .join(Frame, Frame.id == StarList.frame_id).where(in_scope)):
        try:
            stars = decode_stars(data)[:REPORT_STARS]
        except ValueError:
            continue  # a list of another detection version's layout: no zoom, not an error
        if frame_id in frames:
            frames[frame_id]["stars"] = [(float(s["x"]), float(s["y"]), float(s["flux"]), float(s["fwhm"]),
                                          int(s["flag"])) for s in stars]
    tag_history = defaultdict(list)
    for t in session.scalars(select(Tag).join(Frame, Frame.id == Tag.frame_id).where(in_scope).order_by(Tag.id)):
        tag_history[t.frame_id].append({
            "name": t.name, "source": t.source, "reason": t.reason, "author": t.author,
            "created_at": t.created_at.isoformat(),
            "retracted_at": t.retracted_at.isoformat() if t.retracted_at else None,
            "retracted_by": t.retracted_by, "retract_reason": t.retract_reason})
    reference = Frame.__table__.alias("reference")
    steps = defaultdict(list)
    for s, ref_number, ref_name in session.execute(
            select(ShiftStep, reference.c.number, reference.c.file_name)
            .join(Frame, Frame.id == ShiftStep.frame_id)
            .outerjoin(reference, reference.c.id == ShiftStep.reference_frame_id)
            .where(in_scope).order_by(ShiftStep.run_id, ShiftStep.stage, ShiftStep.id)):
        steps[s.frame_id].append({
            "run": s.run_id, "stage": s.stage, "kind": s.kind, "method": s.method, "dx": s.dx, "dy": s.dy,
            "rotation_deg": s.rotation_deg, "scale": s.scale, "n_matched": s.n_matched,
            "residual_rms": s.residual_rms, "parameters": s.parameters,
            "reference": ref_name if ref_number is None else str(ref_number)})
    renders = defaultdict(list)
    for r in session.scalars(select(RenderOutput).join(Frame, Frame.id == RenderOutput.frame_id)
                             .where(in_scope, RenderOutput.kind == "aligned", RenderOutput.sha256 != PENDING_DIGEST)
                             .order_by(RenderOutput.id)):
        renders[r.frame_id].append({"path": r.path, "run": r.run_id, "created_at": r.created_at.isoformat()})
    run_ids = select(ShiftStep.run_id).join(Frame, Frame.id == ShiftStep.frame_id).where(in_scope).distinct()
    run_references = dict(session.execute(select(AlignmentRun.id, AlignmentRun.reference_frame_id)
                                          .where(AlignmentRun.id.in_(run_ids))).all())
    qa_events = qa_threshold_events(session, None if scope is None else {n["name"] for n in night_rows})
    return {"nights": night_rows, "instruments": instruments, "frames": frames, "tag_history": dict(tag_history),
            "steps": dict(steps), "renders": dict(renders), "run_references": run_references,
            "qa_events": qa_events}
