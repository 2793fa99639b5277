"""Alignment runs: automatic registration, or the notebook's staged method, with provenance.

Every run is an :class:`~obsdb.catalog.models.AlignmentRun`; every shift is one
or more :class:`~obsdb.catalog.models.ShiftStep` rows whose sum is the frame's
shift in that run; every star position used is a
:class:`~obsdb.catalog.models.Centroid`, so any shift can be re-derived from
the catalog.  A frame that cannot be registered gets an ``unregistered`` tag
with the reason, never a made-up shift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import insert, select

from obsdb import __version__
from obsdb.catalog.models import AlignmentRun, Centroid, Frame, ShiftStep
from obsdb.errors import ObsdbError
from obsdb.pipeline.ingest import login_name

MATCH_RADIUS = 1.5
"""Distance (px) within which a mapped frame star counts as matching a reference star,
when the matched pairs are written to the centroid table."""


@dataclass
class FrameResult:
    """One frame's outcome in a run."""

    number: int | None
    ok: bool
    dx: float | None = None
    dy: float | None = None
    rotation_deg: float = 0.0
    method: str | None = None
    residual_rms: float | None = None
    n_matched: int | None = None
    reason: str = ""
    frame_id: int | None = None
    name: str = ""

    @property
    def label(self) -> str:
        """The frame number, or its file name when it has none."""
        return str(self.number) if self.number is not None else self.name


@dataclass
class AlignReport:
    """What an alignment run did."""

    run_id: int
    method: str
    reference: int | None
    results: list[FrameResult] = field(default_factory=list)
    reference_name: str = ""
    reference_path: str = ""
    target: str | None = None
    """The OBJECT the run was restricted to (None: every frame, or frames without one)."""

    @property
    def reference_label(self) -> str:
        """The reference's number, or its file name when it has none."""
        return str(self.reference) if self.reference is not None else self.reference_name

    @property
    def reference_selector(self) -> str:
        """A frame selector naming the reference: its path, which (unlike a number) no two files share."""
        return self.reference_path or str(self.reference)

    @property
    def failures(self) -> list[FrameResult]:
        return [r for r in self.results if not r.ok]


ALL_TARGETS = object()
"""``target`` default of :func:`align_auto`: frames of every OBJECT."""


def _selected_frames(session, *, status: str, band: str | None, where: str | None = None,
                     target=ALL_TARGETS) -> list[Frame]:
    from obsdb.catalog.queries import frame_records

    records = frame_records(session, band=band, include_unreadable=False, where=where,
                            status=None if status == "any" else status)
    ids = [r["id"] for r in records if r["type"] in ("light", "unknown")
           and (target is ALL_TARGETS or r["object"] == target)]
    frames = session.scalars(select(Frame).where(Frame.id.in_(ids))).all()
    return sorted(frames, key=lambda f: (f.number is None, f.number, f.path))


def choose_reference(frames: list[Frame]) -> Frame:
    """The sharpest frame among those with many stars (at least 70% of the most).

    Raises
    ------
    ObsdbError
        When no frame has metrics with stars.
    """
    measured = [f for f in frames if f.metrics is not None and f.metrics.n_stars and f.metrics.fwhm]
    if not measured:
        raise ObsdbError("no frame with quality metrics to choose a reference from: run `obsdb qa` "
                         "or give --reference")
    most = max(f.metrics.n_stars for f in measured)
    rich = [f for f in measured if f.metrics.n_stars >= 0.7 * most]
    return min(rich, key=lambda f: f.metrics.fwhm)


def _resolve_reference(session, frames: list[Frame], reference: str | None) -> Frame:
    from obsdb.catalog.queries import select_frames

    if reference is not None:
        chosen = select_frames(session, reference, readable_only=True)
        if len(chosen) != 1:
            raise ObsdbError(f"--reference {reference!r} must name exactly one readable frame")
        return chosen[0]
    decided = decided_reference(session)
    # A decided reference serves only when it is among the frames being aligned (one field).
    if decided is not None and decided.id in {f.id for f in frames}:
        return decided
    return choose_reference(frames)


def decided_reference(session) -> Frame | None:
    """The frame of the current ``reference_frame`` decision (by number, else by path)."""
    from obsdb.catalog.decisions import get_decision

    decided = get_decision(session, "reference_frame")
    if decided is None:
        return None
    if decided.value.get("frame") is not None:
        return session.scalars(select(Frame).where(Frame.number == decided.value["frame"])).first()
    if decided.value.get("path"):
        return session.scalars(select(Frame).where(Frame.path == decided.value["path"])).first()
    return None


def _new_run(session, method: str, reference: Frame, parameters: dict, user: str) -> AlignmentRun:
    run = AlignmentRun(method=method, reference_frame_id=reference.id, parameters=parameters,
                       software_version=__version__, author=user)
    session.add(run)
    session.flush()
    return run


def _register_worker_init(reference_path: str):
    global _REFERENCE
    from obsdb.imaging.fitsio import read_fits_image
    from obsdb.imaging.register import detect_registration_stars
    from obsdb.imaging.stats import saturation_level

    image = read_fits_image(reference_path, hash_mode="none")
    saturation = saturation_level(image.header, image.bitpix)
    _REFERENCE = (image.data, detect_registration_stars(image.data, saturation=saturation))


_REFERENCE = None


def _register_one(path: str) -> dict:
    """Register one file onto the worker's reference (read once)."""
    import warnings

    import numpy as np
    from scipy.spatial import cKDTree

    from obsdb.imaging.fitsio import FitsReadError, read_fits_image
    from obsdb.imaging.register import detect_registration_stars, register
    from obsdb.imaging.stats import saturation_level

    reference_data, reference_stars = _REFERENCE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = read_fits_image(path, hash_mode="none")
            if image.data.shape != reference_data.shape:
                return {"path": path, "ok": False,
                        "reason": f"shape {image.data.shape} differs from the reference's {reference_data.shape}"}
            saturation = saturation_level(image.header, image.bitpix)
            stars = detect_registration_stars(image.data, saturation=saturation)
            result = register(image.data, reference_data, frame_stars=stars, reference_stars=reference_stars,
                              saturation=saturation)
    except (FitsReadError, OSError) as exc:
        return {"path": path, "ok": False, "reason": f"cannot read: {exc}"}
    out = {"path": path, "ok": bool(result.ok), "reason": result.reason, "method": result.method,
           "residual_rms": result.residual_rms, "n_matched": result.n_matched, "model": result.model,
           "quality": result.quality, "stars": []}
    if not result.ok:
        return out
    t = result.transform
    out.update(dx=t.dx, dy=t.dy, rotation_deg=t.rotation_deg, scale=t.scale, cx=t.cx, cy=t.cy)
    if len(stars) and len(reference_stars):
        xr, yr = t.apply(stars["x"], stars["y"])
        tree = cKDTree(np.column_stack([reference_stars["x"], reference_stars["y"]]))
        dist, j = tree.query(np.column_stack([xr, yr]), distance_upper_bound=MATCH_RADIUS)
        for k in range(len(stars)):
            matched = bool(np.isfinite(dist[k]))
            out["stars"].append((float(stars["x"][k]), float(stars["y"][k]), float(stars["flux"][k]),
                                 float(reference_stars["x"][j[k]]) if matched else None,
                                 float(reference_stars["y"][j[k]]) if matched else None))
    return out


def align_auto(catalog, *, reference: str | None = None, band: str | None = None, status: str = "accepted",
               where: str | None = None, workers: int = 1, user: str | None = None,
               progress: Callable | None = None, target=ALL_TARGETS) -> AlignReport:
    """Register every selected frame onto the reference by star matching (cross-correlation fallback).

    Parameters
    ----------
    catalog : Catalog
    reference : str, optional
        Frame selector of the reference; default the plan's reference, else
        the sharpest accepted frame with many stars.
    band : str, optional
        Only frames of this band (the reference may be of any band).
    status : {"accepted", "pending", "any"}
        Which frames to align.
    where : str, optional
        A ``--where`` expression narrowing the frames, e.g. ``object == 'M94'``
        (one reference serves one field).
    workers : int
        Processes.
    target : str or None, optional
        Only frames whose OBJECT is this (None: frames without one); default
        every target (see :func:`align_each_target`).

    Returns
    -------
    AlignReport
    """
    user = user or login_name()
    with catalog.session() as session:
        frames = _selected_frames(session, status=status, band=band, where=where, target=target)
        for frame in frames:
            _ = frame.metrics
        if not frames:
            raise ObsdbError(f"no {status} frames to align" + (f" in band {band}" if band else "")
                             + (f" of target {target!r}" if target is not ALL_TARGETS else "")
                             + ("; run `obsdb qa` first or use --status any" if status == "accepted" else ""))
        ref = _resolve_reference(session, frames, reference)
        ref_number, ref_id, ref_path = ref.number, ref.id, ref.path
        by_path = {f.path: (f.id, f.number) for f in frames}
        by_path.setdefault(ref_path, (ref_id, ref_number))
    paths = list(by_path)
    results = []
    for done, outcome in enumerate(_map_register(ref_path, paths, workers), start=1):
        results.append(outcome)
        if progress:
            progress(done, len(paths), outcome["path"].rsplit("/", 1)[-1])

    with catalog.session() as session:
        ref_frame = session.get(Frame, ref_id)
        parameters = {"status": status, "band": band, "where": where, "workers": workers,
                      "match_radius": MATCH_RADIUS}
        if target is not ALL_TARGETS:
            parameters["target"] = target
        run = _new_run(session, "auto", ref_frame, parameters, user)
        report = AlignReport(run.id, "auto", ref_number, reference_name=Path(ref_path).name,
                             reference_path=ref_path, target=None if target is ALL_TARGETS else target)
        centroid_rows = []
        failed_frames = []
        registered = []
        for outcome in results:
            frame_id, number = by_path[outcome["path"]]
            if not outcome["ok"]:
                report.results.append(FrameResult(number, False, reason=outcome["reason"] or "unregistered",
                                                  frame_id=frame_id, name=Path(outcome["path"]).name))
                failed_frames.append((frame_id, outcome["reason"] or "registration failed"))
                continue
            is_reference = frame_id == ref_id
            session.add(ShiftStep(
                run_id=run.id, frame_id=frame_id, stage=1, kind="auto",
                method="reference" if is_reference else outcome["method"],
                dx=0.0 if is_reference else outcome["dx"], dy=0.0 if is_reference else outcome["dy"],
                rotation_deg=0.0 if is_reference else outcome["rotation_deg"],
                scale=1.0 if is_reference else outcome["scale"], reference_frame_id=ref_id,
                n_matched=outcome["n_matched"], residual_rms=outcome["residual_rms"],
                parameters={"model": outcome["model"], "quality": outcome["quality"], "cx": outcome["cx"],
                            "cy": outcome["cy"], "note": outcome["reason"] or None}))
            registered.append(frame_id)
            for x, y, flux, mx, my in outcome["stars"]:
                centroid_rows.append({"frame_id": frame_id, "run_id": run.id, "source": "detection",
                                      "method": "windowed", "x": x, "y": y, "flux": flux,
                                      "matched_x": mx, "matched_y": my})
            report.results.append(FrameResult(number, True, outcome["dx"], outcome["dy"],
                                              outcome["rotation_deg"],
                                              "reference" if is_reference else outcome["method"],
                                              outcome["residual_rms"], outcome["n_matched"], outcome["reason"],
                                              frame_id=frame_id, name=Path(outcome["path"]).name))
        if centroid_rows:
            session.execute(insert(Centroid), centroid_rows)
        _record_unregistered(session, run, failed_frames, registered, user)
    return report


def align_each_target(catalog, *, reference: str | None = None, band: str | None = None,
                      status: str = "accepted", where: str | None = None, workers: int = 1,
                      user: str | None = None, progress: Callable | None = None) -> list[AlignReport]:
    """:func:`align_auto` once per target (OBJECT), each on its own reference.

    One reference serves one field: frames of another target share no stars
    with it and would all end up ``unregistered``.  So a night of several
    targets gets one alignment run per target, the target with the most
    frames first.  With an explicit ``reference`` there is a single run, as
    asked.  Parameters as :func:`align_auto`.

    Returns
    -------
    list of AlignReport
        One per run.
    """
    if reference is not None:
        return [align_auto(catalog, reference=reference, band=band, status=status, where=where,
                           workers=workers, user=user, progress=progress)]
    from collections import Counter

    with catalog.session() as session:
        counts = Counter(frame.object for frame in _selected_frames(session, status=status, band=band,
                                                                     where=where))
    if len(counts) <= 1:
        return [align_auto(catalog, band=band, status=status, where=where, workers=workers, user=user,
                           progress=progress)]
    targets = sorted(counts, key=lambda name: (-counts[name], name is None, name or ""))
    return [align_auto(catalog, band=band, status=status, where=where, workers=workers, user=user,
                       progress=progress, target=name) for name in targets]


def _map_register(reference_path: str, paths: list[str], workers: int):
    from obsdb.pipeline.pool import process_pool

    if workers <= 1 or len(paths) <= 2:
        _register_worker_init(reference_path)
        for path in paths:
            yield _register_one(path)
        return
    pool = process_pool(workers, initializer=_register_worker_init, initargs=(reference_path,))
    try:
        yield from pool.map(_register_one, paths, chunksize=2)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _record_unregistered(session, run: AlignmentRun, failed: list[tuple[int, str]], registered: list[int],
                         user: str) -> None:
    from obsdb.catalog.tags import add_tags, retract_tags
    from obsdb.catalog.writes import record_event

    frames = {f.id: f for f in session.scalars(select(Frame).where(
        Frame.id.in_([i for i, _ in failed] + registered)))}
    for frame_id, reason in failed:
        add_tags(session, [frames[frame_id]], "unregistered", reason=f"run {run.id}: {reason}",
                 source="rule:unregistered", author="obsdb")
    if registered:
        retract_tags(session, [frames[i] for i in registered], "unregistered", source="rule:unregistered",
                     reason=f"registered in run {run.id}", author="obsdb")
    record_event(session, user, "align", f"run {run.id} ({run.method}): {len(registered)} aligned, "
                                         f"{len(failed)} unregistered", details={"run": run.id})


# ---------------------------------------------------------------------------- staged


def _round(value: float) -> float:
    # Python's round (banker's rounding), as the notebook did.
    return float(round(value))


CENTROID_BACKGROUNDS = ("box", "frame-median")
"""Sky subtracted before a staged centroid: the box's sigma-clipped median (default), or the
whole frame's median as the seed notebook did (``temp - np.ma.median(temp)``)."""


def align_staged(catalog, *, integer: bool = False, method: str | None = None, background: str | None = None,
                 user: str | None = None, progress: Callable | None = None) -> AlignReport:
    """The notebook's three stages, from the catalog's groups, boxes and decisions.

    Stage 1 (within-group): centroid in the group's box, relative to the group's
    reference member (the night's reference when it is a member).  Stage 2
    (group-offset): the reference star's position in the night's reference minus
    its position in the group.  Stage 3 (fine): centroid in the common fine box,
    placed in each frame by the shift so far, relative to the night's reference.
    ``integer=True`` rounds each stage as the notebook did; ``background``
    (one of :data:`CENTROID_BACKGROUNDS`, default the plan's, else ``box``) says
    which sky is subtracted before each centroid.

    Raises
    ------
    ObsdbError
        When a decision the method needs (reference frame, reference star, fine
        box, group boxes) is missing.
    """
    import numpy as np

    from obsdb.catalog.decisions import get_decision, list_groups
    from obsdb.imaging.centroid import centroid_in_box
    from obsdb.imaging.fitsio import read_fits_image

    user = user or login_name()
    with catalog.session() as session:
        ref_decision = get_decision(session, "reference_frame")
        star_decision = get_decision(session, "reference_star")
        fine_decision = get_decision(session, "fine_box")
        missing = [name for name, d in (("reference frame", ref_decision), ("reference star", star_decision),
                                        ("fine box", fine_decision)) if d is None]
        if missing:
            raise ObsdbError(f"the staged method needs {', '.join(missing)}: apply a plan (`obsdb apply`) "
                             "or let `obsdb group auto` choose them")
        groups = [g for g in list_groups(session) if g["frame_ids"]]
        if not groups:
            raise ObsdbError("the staged method needs pointing groups with boxes (`obsdb group set` or a plan)")
        for g in groups:
            if g["box"] is None:
                raise ObsdbError(f"group {g['name']} has no box (`obsdb group set {g['name']} ... --box`)")
        frames = {f.id: f for f in session.scalars(select(Frame).where(
            Frame.id.in_([i for g in groups for i in g["frame_ids"]])))}
        reference = decided_reference(session)
        if reference is None:
            raise ObsdbError(f"reference frame {ref_decision.value} is not in the catalog")
        paths = {i: f.path for i, f in frames.items()}
        numbers = {i: f.number for i, f in frames.items()}
    centroid_method = method or fine_decision.value.get("method", "2dg")
    sky = background or fine_decision.value.get("background", "box")
    if sky not in CENTROID_BACKGROUNDS:
        raise ObsdbError(f"centroid background {sky!r}: expected one of {', '.join(CENTROID_BACKGROUNDS)}")
    fine_box = tuple(fine_decision.value["box"])
    star_ref = (float(star_decision.value["x"]), float(star_decision.value["y"]))
    rounder = _round if integer else float

    reference_group = next((g for g in groups if reference.id in g["frame_ids"]), None)
    if reference_group is None:
        raise ObsdbError(f"reference frame {reference.label} is in no pointing group")

    measurements: dict[int, dict] = {}
    failures: dict[int, str] = {}
    total = sum(len(g["frame_ids"]) for g in groups)
    done = 0
    for g in groups:
        members = sorted(g["frame_ids"], key=lambda i: (numbers[i] is None, numbers[i]))
        if reference.id in members:
            group_ref = reference.id
        elif g["reference_frame_id"] in members:
            group_ref = g["reference_frame_id"]
        else:
            group_ref = members[0]
        if g["ref_star"] is None:
            for i in members:
                failures[i] = f"group {g['name']} has no reference-star position (stage 2)"
            done += len(members)
            continue
        dx2 = rounder(star_ref[0] - g["ref_star"][0])
        dy2 = rounder(star_ref[1] - g["ref_star"][1])
        ordered = [group_ref] + [i for i in members if i != group_ref]
        group_ref_centroid = None
        for frame_id in ordered:
            done += 1
            if progress:
                progress(done, total, str(numbers[frame_id]))
            try:
                data = read_fits_image(paths[frame_id], hash_mode="none").data
                level = "median" if sky == "box" else float(np.nanmedian(data))
                c1 = centroid_in_box(data, g["box"], method=centroid_method, background=level)
            except Exception as exc:  # noqa: BLE001 - one frame's failure is recorded, not fatal
                failures[frame_id] = f"stage 1 centroid in box {g['box']}: {exc}"
                if frame_id == group_ref:
                    for other in members:
                        failures.setdefault(other, f"group reference {numbers[group_ref]} failed stage 1")
                    break
                continue
            if frame_id == group_ref:
                group_ref_centroid = c1
            dx1 = rounder(group_ref_centroid[0] - c1[0])
            dy1 = rounder(group_ref_centroid[1] - c1[1])
            sx, sy = dx1 + dx2, dy1 + dy2
            # The fine box is in reference coordinates; place it in this frame by the shift so far.
            box3 = (int(round(fine_box[0] - sx)), int(round(fine_box[1] - sx)),
                    int(round(fine_box[2] - sy)), int(round(fine_box[3] - sy)))
            try:
                c3 = centroid_in_box(data, box3, method=centroid_method, background=level)
            except Exception as exc:  # noqa: BLE001
                failures[frame_id] = f"stage 3 centroid in box {box3}: {exc}"
                continue
            measurements[frame_id] = {"group": g, "group_ref": group_ref, "c1": c1, "ref_c1": group_ref_centroid,
                                      "dx1": dx1, "dy1": dy1, "dx2": dx2, "dy2": dy2, "box3": box3, "c3": c3,
                                      "aligned3": (c3[0] + sx, c3[1] + sy)}
    if reference.id not in measurements:
        raise ObsdbError(f"the night's reference {reference.label} could not be measured: "
                         f"{failures.get(reference.id, 'unknown reason')}")
    # Stage 3 refers to the night's reference, unless the plan names another frame (the notebook
    # took the first frame of its first group).
    fine_number = fine_decision.value.get("reference")
    fine_ref_id = reference.id
    if fine_number is not None:
        fine_ref_id = next((i for i, n in numbers.items() if n == fine_number), None)
        if fine_ref_id not in measurements:
            raise ObsdbError(f"the fine stage's reference {fine_number} is not a measured group member: "
                             f"{failures.get(fine_ref_id, 'not in any group')}")
    ref_fine = measurements[fine_ref_id]["aligned3"]

    with catalog.session() as session:
        ref_frame = session.get(Frame, reference.id)
        run = _new_run(session, "staged", ref_frame, {
            "integer": integer, "centroid_method": centroid_method, "centroid_background": sky,
            "fine_box": list(fine_box),
            "fine_reference": fine_number if fine_number is not None else reference.number,
            "reference_star": list(star_ref), "groups": {g["name"]: {"box": g["box"], "ref_star": g["ref_star"]}
                                                         for g in groups}}, user)
        report = AlignReport(run.id, "staged", reference.number, reference_name=reference.file_name,
                             reference_path=reference.path)
        method_name = f"centroid_{centroid_method}"
        centroids = {}
        for frame_id, m in measurements.items():
            g = m["group"]
            centroids[frame_id] = (
                Centroid(frame_id=frame_id, run_id=run.id, source="box", method=method_name,
                         box_x0=g["box"][0], box_x1=g["box"][1], box_y0=g["box"][2], box_y1=g["box"][3],
                         x=m["c1"][0], y=m["c1"][1], flux=m["c1"][2]),
                Centroid(frame_id=frame_id, run_id=run.id, source="box", method=method_name,
                         box_x0=m["box3"][0], box_x1=m["box3"][1], box_y0=m["box3"][2], box_y1=m["box3"][3],
                         x=m["c3"][0], y=m["c3"][1], flux=m["c3"][2]))
            session.add_all(centroids[frame_id])
        session.flush()  # one batched INSERT gives every centroid its id
        for frame_id, (c1, c3) in centroids.items():
            measurements[frame_id]["centroid_ids"] = (c1.id, c3.id)
        for frame_id, m in measurements.items():
            g = m["group"]
            ref_c1_id = measurements.get(m["group_ref"], {}).get("centroid_ids", (None,))[0]
            ref_c3_id = measurements[fine_ref_id]["centroid_ids"][1]
            dx3 = rounder(ref_fine[0] - m["aligned3"][0])
            dy3 = rounder(ref_fine[1] - m["aligned3"][1])
            session.add_all([
                ShiftStep(run_id=run.id, frame_id=frame_id, stage=1, kind="within-group", method=method_name,
                          dx=m["dx1"], dy=m["dy1"], reference_frame_id=m["group_ref"],
                          centroid_id=m["centroid_ids"][0], reference_centroid_id=ref_c1_id,
                          parameters={"group": g["name"], "box": g["box"], "integer": integer}),
                ShiftStep(run_id=run.id, frame_id=frame_id, stage=2, kind="group-offset",
                          method="manual" if g["source"] in ("manual", "plan") else "coarse-offset",
                          dx=m["dx2"], dy=m["dy2"], reference_frame_id=reference.id,
                          parameters={"group": g["name"], "star_in_group": g["ref_star"],
                                      "star_in_reference": list(star_ref), "integer": integer}),
                ShiftStep(run_id=run.id, frame_id=frame_id, stage=3, kind="fine", method=method_name,
                          dx=dx3, dy=dy3, reference_frame_id=fine_ref_id, centroid_id=m["centroid_ids"][1],
                          reference_centroid_id=ref_c3_id,
                          parameters={"box": list(fine_box), "box_in_frame": list(m["box3"]), "integer": integer}),
            ])
            total_dx, total_dy = m["dx1"] + m["dx2"] + dx3, m["dy1"] + m["dy2"] + dy3
            report.results.append(FrameResult(numbers[frame_id], True, total_dx, total_dy, 0.0, "staged",
                                              frame_id=frame_id, name=Path(paths[frame_id]).name))
        for frame_id, reason in failures.items():
            report.results.append(FrameResult(numbers[frame_id], False, reason=reason, frame_id=frame_id,
                                              name=Path(paths[frame_id]).name))
        _record_unregistered(session, run, list(failures.items()), list(measurements), user)
    report.results.sort(key=lambda r: (r.number is None, r.number))
    return report
