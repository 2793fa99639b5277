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

from obsdb.version import __version__
from obsdb.config import login_name
from obsdb.errors import NothingToProcess, ObsdbError

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
    label_: str = ""

    @property
    def label(self) -> str:
        """How the user names the frame (``NIGHT:NUMBER`` in a catalog of several nights)."""
        from obsdb.catalog.labels import frame_label

        return self.label_ or frame_label(None, self.number, self.name, qualified=False)


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
    reference_label: str = ""
    """How the user names the reference."""
    frames_read: int = 0
    """Frames whose pixels had to be read (stored stars did not match, or were missing)."""

    def __post_init__(self):
        if not self.reference_label:
            self.reference_label = str(self.reference) if self.reference is not None else self.reference_name

    @property
    def reference_selector(self) -> str:
        """A frame selector naming the reference: its path, which (unlike a number) no two files share."""
        return self.reference_path or str(self.reference)

    @property
    def failures(self) -> list[FrameResult]:
        return [r for r in self.results if not r.ok]


STAR_LIST_CHUNK = 100
"""Frames whose stored star lists align reads and matches at a time (26 kB a list of a 2048 px frame:
the whole night's, 13 MB for 500 frames, was read before the first match)."""


ALL_TARGETS = object()
"""``target`` default of :func:`align_auto`: frames of every OBJECT."""


def choose_reference(frames: list):
    """The sharpest frame among those with many stars (at least 70% of the most).

    Raises
    ------
    ObsdbError
        When no frame has metrics with stars.
    """
    measured = [f for f in frames if f.n_stars and f.fwhm]
    if not measured:
        raise NothingToProcess("no frame with quality metrics to choose a reference from: run `obsdb qa` "
                               "or give --reference", "no frame with star metrics to choose a reference from")
    most = max(f.n_stars for f in measured)
    rich = [f for f in measured if f.n_stars >= 0.7 * most]
    return min(rich, key=lambda f: f.fwhm)


def resolve_reference(store, frames: list, reference: str | None):
    """The run's reference: the one frame ``reference`` names, else the night's decided reference
    when it is among ``frames`` (one field), else :func:`choose_reference`.  ``store`` is an
    :class:`obsdb.catalog.stores.AlignStore`."""
    if reference is not None:
        chosen = store.align_frames(selector=reference)
        if len(chosen) != 1:
            raise ObsdbError(f"--reference {reference!r} must name exactly one readable frame "
                             f"(it names {len(chosen)})")
        return chosen[0]
    nights = {f.night_id for f in frames}
    if len(nights) == 1:
        decided = store.decided_reference(next(iter(nights)))
        match = next((f for f in frames if f.id == decided), None)
        if match is not None:
            return match
    return choose_reference(frames)


def _select(store, *, night, status: str, band: str | None, where: str | None, target, stars: bool = True) -> list:
    """The frames to align or group; ``stars=False``: without their star lists (align_auto reads them
    :data:`STAR_LIST_CHUNK` frames at a time)."""
    frames = store.align_frames(nights=night, band=band, status=status, where=where, stars=stars)
    return [f for f in frames if target is ALL_TARGETS or f.object == target]


def _matched_pairs(transform, stars, reference_stars):
    """(frame star, reference star) index pairs within :data:`MATCH_RADIUS` once mapped, as an
    ``(n, 2)`` int32 array: a night's outcomes are held until its run is written, and ~190 pairs
    per frame as tuples of ints took 20 kB a frame (10 MB for 500 frames) where the array takes 1.5 kB."""
    import numpy as np

    from obsdb.imaging.neighbours import nearest_within

    if not len(stars) or not len(reference_stars):
        return np.zeros((0, 2), dtype=np.int32)
    xr, yr = transform.apply(np.asarray(stars["x"], float), np.asarray(stars["y"], float))
    dist, j = nearest_within(np.column_stack([reference_stars["x"], reference_stars["y"]]),
                             np.column_stack([xr, yr]), MATCH_RADIUS)
    found = np.flatnonzero(np.isfinite(dist))
    return np.column_stack([found, j[found]]).astype(np.int32)


def _outcome(result, stars, reference_stars) -> dict:
    out = {"ok": bool(result.ok), "reason": result.reason, "method": result.method,
           "residual_rms": result.residual_rms, "n_matched": result.n_matched, "model": result.model,
           "quality": result.quality, "pairs": [],
           "verification": None if result.verification is None else {
               "ok": result.verification.ok, "matched": result.verification.n_matched,
               "inside": result.verification.n_inside, "expected": result.verification.expected,
               "p_chance": result.verification.p_chance, "radius": result.verification.radius}}
    if result.ok:
        t = result.transform
        out.update(dx=t.dx, dy=t.dy, rotation_deg=t.rotation_deg, scale=t.scale, cx=t.cx, cy=t.cy)
        if result.method == "stars" and stars is not None:
            out["pairs"] = _matched_pairs(t, stars, reference_stars)
    return out


def register_stored(frame, reference) -> dict | None:
    """Register a frame onto the reference from their stored star lists alone (no pixels).

    Returns the outcome, or None when star matching did not succeed (the
    caller then reads the pixels for the fallback methods).
    """
    from obsdb.imaging.register import register

    if frame.id == reference.id:
        # The reference is its own grid: nothing to measure, whatever its star count (a one-star
        # focus frame cannot be matched, and needs not be).
        return {"ok": True, "reason": "", "method": "reference", "residual_rms": 0.0,
                "n_matched": 0 if frame.stars is None else len(frame.stars), "model": "translation",
                "quality": None, "pairs": [], "verification": None, "dx": 0.0, "dy": 0.0, "rotation_deg": 0.0,
                "scale": 1.0, "cx": 0.0, "cy": 0.0}
    if frame.stars is None or reference.stars is None or (frame.width, frame.height) != (reference.width,
                                                                                          reference.height):
        return None
    result = register(None, None, frame_stars=frame.stars, reference_stars=reference.stars, use_xcorr=False,
                      shape=(frame.height, frame.width))
    return _outcome(result, frame.stars, reference.stars) if result.ok else None


def _register_worker_init(reference_path: str, reference_stars):
    global _REFERENCE
    from obsdb.imaging.fitsio import read_fits_image

    image = read_fits_image(reference_path, hash_mode="none")
    if reference_stars is None:
        reference_stars = _detect(image)
    _REFERENCE = (image.data, reference_stars)


def _detect(image):
    """Registration stars of a frame read from disk; a colour mosaic's from its superpixels."""
    from obsdb.imaging.bayer import cfa_pattern_or_none, stars_to_full_resolution, superpixels
    from obsdb.imaging.register import detect_registration_stars
    from obsdb.imaging.stats import saturation_level

    saturation = saturation_level(image.header, image.bitpix)
    if cfa_pattern_or_none(image.header) is None:
        return detect_registration_stars(image.data, saturation=saturation)
    return stars_to_full_resolution(detect_registration_stars(
        superpixels(image.data), saturation=None if saturation is None else 2 * saturation))


_REFERENCE = None


def _register_pixels(task: tuple) -> dict:
    """Register one file onto the worker's reference from its pixels (read once): star matching on
    freshly detected stars, then the cross-correlation fallback."""
    import warnings

    from obsdb.imaging.fitsio import FitsReadError, read_fits_image
    from obsdb.imaging.register import register
    from obsdb.imaging.stars import encode_stars
    from obsdb.imaging.stats import saturation_level

    frame_id, path, stored = task
    reference_data, reference_stars = _REFERENCE
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="astropy.io.fits")  # card notes
            image = read_fits_image(path, hash_mode="none")
            if image.data.shape != reference_data.shape:
                return {"frame_id": frame_id, "ok": False,
                        "reason": f"shape {image.data.shape} differs from the reference's {reference_data.shape}"}
            stars = stored
            if stars is None:
                stars = _detect(image)
            result = register(image.data, reference_data, frame_stars=stars, reference_stars=reference_stars,
                              saturation=saturation_level(image.header, image.bitpix))
    except (FitsReadError, OSError) as exc:
        return {"frame_id": frame_id, "ok": False, "reason": f"cannot read: {exc}"}
    out = _outcome(result, stars, reference_stars)
    out.update(frame_id=frame_id, pixels_read=True)
    if stored is None:
        out["star_list"] = (encode_stars(stars), len(stars))
    return out


def _unique_label(ref, frames: dict) -> str:
    """The reference as the user can find it: its label, or its file name when other frames share its number."""
    shared = ref.number is not None and sum(1 for f in frames.values()
                                            if f.number == ref.number and f.night == ref.night) > 1
    return f"{ref.file_name} (number {ref.number} is shared)" if shared else str(ref.label)


def align_auto(db, *, night=None, reference: str | None = None, band: str | None = None,
               status: str = "accepted", where: str | None = None, workers: int = 1, user: str | None = None,
               progress: Callable | None = None, target=ALL_TARGETS, frames: list | None = None,
               executor=None) -> AlignReport:
    """Register every selected frame onto one reference: stored stars first, pixels only as a fallback.

    Star matching runs on the star lists ingest stored, so a frame whose
    stars match is aligned without reading its file; the others (and frames
    whose list is missing or of an older version) are read once for fresh
    detection and the cross-correlation fallback.

    Parameters
    ----------
    db : obsdb.catalog.db.Database
        The open catalog's database handle (:attr:`obsdb.Catalog.db`).
    night : str or list of str, optional
        Nights to take frames from (default every night; see :func:`align_each_target`).
    reference : str, optional
        Frame selector of the reference; default the night's decided reference,
        else the sharpest accepted frame with many stars.
    band : str, optional
        Only frames of this band (the reference may be of any band).
    status : {"accepted", "pending", "rejected", "any"}
        Which frames to align.
    where : str, optional
        A ``--where`` expression narrowing the frames, e.g. ``object == 'M94'``.
    workers : int
        Processes for the frames that need their pixels read.
    target : str or None, optional
        Only frames whose OBJECT is this (None: frames without one); default every target.
    frames : list of AlignFrame, optional
        The frames, already selected (by :func:`align_each_target`).

    Returns
    -------
    AlignReport
    """
    from obsdb.catalog.stores import AlignStore

    store = AlignStore(db)
    user = user or login_name()
    if frames is None:
        frames = _select(store, night=night, status=status, band=band, where=where, target=target, stars=False)
    if not frames:
        fact = (f"no {status} frames to align" + (f" in band {band}" if band else "")
                + (f" of target {target!r}" if target is not ALL_TARGETS else ""))
        raise NothingToProcess(fact + ("; run `obsdb qa` first or use --status any" if status == "accepted" else ""),
                               fact)
    ref = resolve_reference(store, frames, reference)
    by_id = {f.id: f for f in frames}
    by_id.setdefault(ref.id, ref)
    if ref.stars is None:
        ref.stars = store.star_lists([ref.id]).get(ref.id)
    if ref.stars is None:
        _detect_reference(store, ref)
    outcomes, fallback = [], []
    ordered = list(by_id.values())
    for start in range(0, len(ordered), STAR_LIST_CHUNK):
        chunk = ordered[start:start + STAR_LIST_CHUNK]
        lists = store.star_lists([f.id for f in chunk if f.stars is None])
        for frame in chunk:
            if frame.stars is None:
                frame.stars = lists.pop(frame.id, None)
            outcome = register_stored(frame, ref)
            if outcome is None:
                fallback.append(frame)  # keeps its stored list: the worker matches it on fresh pixels
            else:
                outcome["frame_id"] = frame.id
                outcomes.append(outcome)
                if frame.id != ref.id:
                    frame.stars = None  # used: the night's star lists are never all held
                if progress:
                    progress(len(outcomes), len(by_id), frame.file_name)
    new_lists = {}
    for outcome in _map_register(ref, fallback, workers, executor):
        outcomes.append(outcome)
        if "star_list" in outcome:
            new_lists[outcome["frame_id"]] = outcome.pop("star_list")
        if progress:
            progress(len(outcomes), len(by_id), by_id[outcome["frame_id"]].file_name)
    if new_lists:
        store.store_star_lists(new_lists)
    nights = {f.night_id for f in by_id.values()}
    parameters = {"status": status, "band": band, "where": where, "workers": workers, "match_radius": MATCH_RADIUS,
                  "night": night if isinstance(night, (str, type(None))) else list(night),
                  "frames_read": len(fallback)}
    if target is not ALL_TARGETS:
        parameters["target"] = target
    run_id = store.record_auto_run(reference=ref, frames=by_id, outcomes=outcomes, parameters=parameters,
                                   night_id=next(iter(nights)) if len(nights) == 1 else None,
                                   target=None if target is ALL_TARGETS else target, author=user)
    report = AlignReport(run_id, "auto", ref.number, reference_name=ref.file_name, reference_path=ref.path,
                         target=None if target is ALL_TARGETS else target, reference_label=_unique_label(ref, by_id),
                         frames_read=len(fallback))
    for outcome in sorted(outcomes, key=lambda o: (by_id[o["frame_id"]].night, by_id[o["frame_id"]].number or 0,
                                                    by_id[o["frame_id"]].path)):
        frame = by_id[outcome["frame_id"]]
        if not outcome["ok"]:
            report.results.append(FrameResult(frame.number, False, reason=outcome["reason"] or "unregistered",
                                              frame_id=frame.id, name=frame.file_name, label_=frame.label))
            continue
        is_reference = frame.id == ref.id
        report.results.append(FrameResult(frame.number, True, outcome["dx"], outcome["dy"], outcome["rotation_deg"],
                                          "reference" if is_reference else outcome["method"],
                                          outcome["residual_rms"], outcome["n_matched"], outcome["reason"],
                                          frame_id=frame.id, name=frame.file_name, label_=frame.label))
    return report


def _detect_reference(store, ref) -> None:
    """Detect (and store) the stars of a reference whose stored list is missing or stale."""
    from obsdb.imaging.fitsio import read_fits_image
    from obsdb.imaging.stars import encode_stars

    image = read_fits_image(ref.path, hash_mode="none")
    ref.stars = _detect(image)
    store.store_star_lists({ref.id: (encode_stars(ref.stars), len(ref.stars))})


def align_each_target(db, *, night=None, reference: str | None = None, band: str | None = None,
                      status: str = "accepted", where: str | None = None, workers: int = 1,
                      user: str | None = None, progress: Callable | None = None,
                      executor=None) -> list[AlignReport]:
    """:func:`align_auto` once per night and target (OBJECT), each on its own reference.

    One reference serves one field and one night's pointing: frames of
    another target share no stars with it.  So by default every night in
    ``night`` (every night when None) gets one run per target, the target
    with the most frames first.  With an explicit ``reference``, or with
    ``night="all"``, frames of every selected night are aligned together, so
    a project observed over several nights is stacked on one grid (one run
    per target, or a single run onto the given reference).

    Returns
    -------
    list of AlignReport
        One per run.
    """
    from collections import Counter

    from obsdb.catalog.selectors import ALL_NIGHTS
    from obsdb.catalog.stores import AlignStore

    options = dict(band=band, status=status, where=where, workers=workers, user=user, progress=progress,
                   executor=executor)
    frames = _select(AlignStore(db), night=night, status=status, band=band, where=where, target=ALL_TARGETS,
                     stars=False)
    if reference is not None:
        return [align_auto(db, reference=reference, frames=frames or None, night=night, **options)]
    together = night == ALL_NIGHTS or (isinstance(night, (list, tuple)) and ALL_NIGHTS in night)
    by_night: dict = {}
    for frame in frames:
        by_night.setdefault(None if together else frame.night, []).append(frame)
    if not by_night:
        return [align_auto(db, night=night, frames=[], **options)]
    reports = []
    for night_name in sorted(by_night, key=lambda n: n or ""):
        members = by_night[night_name]
        counts = Counter(f.object for f in members)
        targets = sorted(counts, key=lambda name: (-counts[name], name is None, name or ""))
        for name in targets:
            chosen = [f for f in members if f.object == name]
            reports.append(align_auto(db, night=night if together else night_name, frames=chosen,
                                      target=ALL_TARGETS if len(counts) == 1 else name, **options))
    return reports


def _register_onto(task: tuple, reference_path: str, reference_stars) -> dict:
    """:func:`_register_pixels` in any worker: the reference is read once per worker and kept."""
    global _REFERENCE_PATH
    if _REFERENCE is None or _REFERENCE_PATH != reference_path:
        _register_worker_init(reference_path, reference_stars)
        _REFERENCE_PATH = reference_path
    return _register_pixels(task)


_REFERENCE_PATH = None


def _map_register(reference, frames: list, workers: int, executor=None):
    from obsdb.pipeline.executors import SerialExecutor, TaskFailed, executor_for
    from obsdb.pipeline.pool import ChildCrashed

    if not frames:
        return
    tasks = [(f.id, f.path, f.stars) for f in frames]
    executor = executor_for(executor, workers)
    if len(tasks) <= 2 and executor.kind == "processes":
        executor = SerialExecutor()  # a pool costs more than it saves on two frames
    for task, outcome in executor.map(_register_onto, tasks, args=(reference.path, reference.stars)):
        if isinstance(outcome, (ChildCrashed, TaskFailed)):
            # The frame is recorded unregistered with the reason, never lost.
            outcome = {"frame_id": task[0], "ok": False, "reason": f"registration could not run: {outcome}"}
        yield outcome


# ---------------------------------------------------------------------------- staged


def _round(value: float) -> float:
    # Python's round (banker's rounding), as the notebook did.
    return float(round(value))


CENTROID_BACKGROUNDS = ("box", "frame-median")
"""Sky subtracted before a staged centroid: the box's sigma-clipped median (default), or the
whole frame's median as the seed notebook did (``temp - np.ma.median(temp)``)."""


def _measure_group(g: dict, reference_id: int, numbers: dict, paths: dict, star_ref: tuple, fine_box: tuple,
                   sky: str, rounder, centroid, tick, measurements: dict, failures: dict) -> None:
    """Stages 1 and 2 of one pointing group, and each member's stage-3 centroid in the fine box placed
    by the shift so far; into ``measurements`` (by frame id), or the reason into ``failures``."""
    import numpy as np

    from obsdb.imaging.fitsio import read_fits_image

    members = sorted(g["frame_ids"], key=lambda i: (numbers[i] is None, numbers[i]))
    if reference_id in members:
        group_ref = reference_id
    elif g["reference_frame_id"] in members:
        group_ref = g["reference_frame_id"]
    else:
        group_ref = members[0]
    if g["ref_star"] is None:
        for i in members:
            failures[i] = f"group {g['name']} has no reference-star position (stage 2)"
            tick()
        return
    dx2 = rounder(star_ref[0] - g["ref_star"][0])
    dy2 = rounder(star_ref[1] - g["ref_star"][1])
    ordered = [group_ref] + [i for i in members if i != group_ref]
    group_ref_centroid = None
    for frame_id in ordered:
        tick(frame_id)
        try:
            data = read_fits_image(paths[frame_id], hash_mode="none").data
            level = "median" if sky == "box" else float(np.nanmedian(data))
            c1 = centroid(data, g["box"], level)
        except Exception as exc:  # noqa: BLE001 - one frame's failure is recorded, not fatal
            failures[frame_id] = f"stage 1 centroid in box {g['box']}: {exc}"
            if frame_id == group_ref:
                for other in members:
                    failures.setdefault(other, f"group reference {numbers[group_ref]} failed stage 1")
                return
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
            c3 = centroid(data, box3, level)
        except Exception as exc:  # noqa: BLE001
            failures[frame_id] = f"stage 3 centroid in box {box3}: {exc}"
            continue
        measurements[frame_id] = {"group": g, "group_ref": group_ref, "c1": c1, "ref_c1": group_ref_centroid,
                                  "dx1": dx1, "dy1": dy1, "dx2": dx2, "dy2": dy2, "box3": box3, "c3": c3,
                                  "aligned3": (c3[0] + sx, c3[1] + sy)}


def align_staged(db, *, integer: bool = False, method: str | None = None, background: str | None = None,
                 user: str | None = None, progress: Callable | None = None, night=None) -> AlignReport:
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
    from obsdb.imaging.centroid import centroid_in_box

    from obsdb.catalog.stores import AlignStore

    store = AlignStore(db)
    user = user or login_name()
    inputs = store.staged_inputs(night)
    fine_decision, groups, frames = inputs["fine"], inputs["groups"], inputs["frames"]
    reference_id = inputs["reference_id"]
    reference = frames[reference_id]
    paths = {i: f["path"] for i, f in frames.items()}
    numbers = {i: f["number"] for i, f in frames.items()}
    centroid_method = method or fine_decision.get("method", "2dg")
    sky = background or fine_decision.get("background", "box")
    if sky not in CENTROID_BACKGROUNDS:
        raise ObsdbError(f"centroid background {sky!r}: expected one of {', '.join(CENTROID_BACKGROUNDS)}")
    fine_box = tuple(fine_decision["box"])
    star_ref = (float(inputs["star"]["x"]), float(inputs["star"]["y"]))
    rounder = _round if integer else float

    reference_group = next((g for g in groups if reference_id in g["frame_ids"]), None)
    if reference_group is None:
        raise ObsdbError(f"reference frame {reference['label']} is in no pointing group")

    measurements: dict[int, dict] = {}
    failures: dict[int, str] = {}
    total = sum(len(g["frame_ids"]) for g in groups)
    done = [0]

    def tick(frame_id=None) -> None:
        done[0] += 1
        if progress and frame_id is not None:
            progress(done[0], total, str(numbers[frame_id]))

    def centroid(data, box, level):
        return centroid_in_box(data, box, method=centroid_method, background=level)

    for g in groups:
        _measure_group(g, reference_id, numbers, paths, star_ref, fine_box, sky, rounder, centroid, tick,
                       measurements, failures)
    if reference_id not in measurements:
        raise ObsdbError(f"the night's reference {reference['label']} could not be measured: "
                         f"{failures.get(reference_id, 'unknown reason')}")
    # Stage 3 refers to the night's reference, unless the plan names another frame (the notebook
    # took the first frame of its first group).
    fine_number = fine_decision.get("reference")
    fine_ref_id = reference_id
    if fine_number is not None:
        fine_ref_id = next((i for i, n in numbers.items() if n == fine_number), None)
        if fine_ref_id not in measurements:
            raise ObsdbError(f"the fine stage's reference {fine_number} is not a measured group member: "
                             f"{failures.get(fine_ref_id, 'not in any group')}")
    ref_fine = measurements[fine_ref_id]["aligned3"]

    method_name = f"centroid_{centroid_method}"
    rows = []
    for frame_id, m in measurements.items():
        g = m["group"]
        dx3 = rounder(ref_fine[0] - m["aligned3"][0])
        dy3 = rounder(ref_fine[1] - m["aligned3"][1])
        m["total"] = (m["dx1"] + m["dx2"] + dx3, m["dy1"] + m["dy2"] + dy3)
        box_centroid = {"source": "box", "method": method_name}
        rows.append({"frame_id": frame_id, "centroids": [
            {**box_centroid, "box_x0": g["box"][0], "box_x1": g["box"][1], "box_y0": g["box"][2],
             "box_y1": g["box"][3], "x": m["c1"][0], "y": m["c1"][1], "flux": m["c1"][2]},
            {**box_centroid, "box_x0": m["box3"][0], "box_x1": m["box3"][1], "box_y0": m["box3"][2],
             "box_y1": m["box3"][3], "x": m["c3"][0], "y": m["c3"][1], "flux": m["c3"][2]}], "steps": [
            {"stage": 1, "kind": "within-group", "method": method_name, "dx": m["dx1"], "dy": m["dy1"],
             "reference_frame_id": m["group_ref"], "centroid": (frame_id, 0),
             "reference_centroid": (m["group_ref"], 0) if m["group_ref"] in measurements else None,
             "parameters": {"group": g["name"], "box": g["box"], "integer": integer}},
            {"stage": 2, "kind": "group-offset",
             "method": "manual" if g["source"] in ("manual", "plan") else "coarse-offset",
             "dx": m["dx2"], "dy": m["dy2"], "reference_frame_id": reference_id,
             "parameters": {"group": g["name"], "star_in_group": g["ref_star"], "star_in_reference": list(star_ref),
                            "integer": integer}},
            {"stage": 3, "kind": "fine", "method": method_name, "dx": dx3, "dy": dy3,
             "reference_frame_id": fine_ref_id, "centroid": (frame_id, 1), "reference_centroid": (fine_ref_id, 1),
             "parameters": {"box": list(fine_box), "box_in_frame": list(m["box3"]), "integer": integer}}]})
    run_id = store.record_staged_run(
        reference_id=reference_id, author=user, software_version=__version__, frames=rows,
        failures=list(failures.items()), parameters={
            "integer": integer, "centroid_method": centroid_method, "centroid_background": sky,
            "fine_box": list(fine_box),
            "fine_reference": fine_number if fine_number is not None else reference["number"],
            "reference_star": list(star_ref), "groups": {g["name"]: {"box": g["box"], "ref_star": g["ref_star"]}
                                                         for g in groups}})
    report = AlignReport(run_id, "staged", reference["number"], reference_name=reference["file_name"],
                         reference_path=reference["path"])
    for frame_id, m in measurements.items():
        report.results.append(FrameResult(numbers[frame_id], True, m["total"][0], m["total"][1], 0.0, "staged",
                                          frame_id=frame_id, name=Path(paths[frame_id]).name))
    for frame_id, reason in failures.items():
        report.results.append(FrameResult(numbers[frame_id], False, reason=reason, frame_id=frame_id,
                                          name=Path(paths[frame_id]).name))
    report.results.sort(key=lambda r: (r.number is None, r.number))
    return report
