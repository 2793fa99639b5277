"""`obsdb solve`: plate-solve the reference frames (or named frames) with astrometry.net, verify each
solution against the matched index stars, and record the verified ones.

By default each night's reference of each target is solved: the frame align uses as its reference
(:func:`obsdb.pipeline.align.resolve_reference`: a decided reference, else the sharpest of the rich
frames), since every frame aligned onto it shares its pixel grid and hence its WCS.  A frame whose
header has its own celestial WCS is not solved (that WCS is the frame's; ``force`` solves it anyway), nor
is one already solved by the current :data:`~obsdb.imaging.astrometry.SOLVE_VERSION` (unless ``force``).

Frames are solved one after the other in this process: there is one reference per night and target,
and ``solve-field`` is a program of its own whose CPU limit bounds each frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from obsdb.errors import NothingToProcess, ObsdbError

SOLVED, REFUSED, FAILED, HEADER_WCS, CURRENT, NO_STARS = ("solved", "refused", "failed", "header-wcs",
                                                          "current", "no-stars")
"""The outcomes of one frame: solved and recorded; solved but refused by verification; not solved; not
solved because its header has a WCS; already solved by the current version; no star list to solve."""


@dataclass
class SolveOutcome:
    """What `obsdb solve` did with one frame."""

    frame_id: int
    frame: str
    night: str
    outcome: str
    index: str | None = None
    ra: float | None = None
    dec: float | None = None
    pixel_scale: float | None = None
    n_matched: int | None = None
    n_reference: int | None = None
    residual_arcsec: float | None = None
    cpu_seconds: float | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def solve(db, *, night=None, frame: str | None = None, all_frames: bool = False, force: bool = False,
          cpulimit: float | None = None, user: str | None = None,
          progress: Callable | None = None) -> list[SolveOutcome]:
    """Plate-solve frames and record the verified solutions.

    Parameters
    ----------
    db : obsdb.catalog.db.Database
    night : str or list of str, optional
        Only these nights.
    frame : str, optional
        A frame selector: solve these frames instead of the references.
    all_frames : bool
        Every accepted light frame instead of the references.
    force : bool
        Solve frames with a header WCS or a current solution too.
    cpulimit : float, optional
        CPU seconds per frame (default :data:`obsdb.imaging.astrometry.DEFAULT_CPULIMIT`).
    user : str, optional
        Recorded as the author of each solution's event (default: the login name).
    progress : callable, optional
        Called as ``progress(done, total, label)``.

    Returns
    -------
    list of SolveOutcome
        One per frame considered, in order.

    Raises
    ------
    obsdb.imaging.astrometry.SolverMissing
        When a frame needs solving and ``solve-field`` or its index files are missing (one line saying
        what to install).
    NothingToProcess
        When no frame is selected.
    """
    import getpass

    from obsdb.catalog.astrometry import AstrometryStore
    from obsdb.imaging import astrometry

    store = AstrometryStore(db)
    targets = _targets(db, night=night, frame=frame, all_frames=all_frames)
    if not targets:
        raise NothingToProcess("no frame to solve: ingest and accept light frames first, or name one with --frame",
                               "no frame to solve")
    inputs = store.solve_inputs(targets)
    outcomes: list[SolveOutcome] = []
    todo = []
    for info in inputs:
        base = dict(frame_id=info["id"], frame=str(info["label"]), night=info["night"])
        if info["has_header_wcs"] and not force:
            outcomes.append(SolveOutcome(**base, outcome=HEADER_WCS, reason="its header has a celestial WCS"))
        elif info["solved_with"] == astrometry.SOLVE_VERSION and not force:
            outcomes.append(SolveOutcome(**base, outcome=CURRENT, reason="already solved (--force solves again)"))
        elif info["stars"] is None or not len(info["stars"]):
            outcomes.append(SolveOutcome(**base, outcome=NO_STARS, reason="no current star list: run `obsdb "
                                                                          "ingest` on its folder again"))
        else:
            outcomes.append(SolveOutcome(**base, outcome=""))
            todo.append((len(outcomes) - 1, info))
    if todo:
        astrometry.require_solver()
    author = user or getpass.getuser()
    limit = astrometry.DEFAULT_CPULIMIT if cpulimit is None else cpulimit
    for done, (position, info) in enumerate(todo):
        if progress is not None:
            progress(done, len(todo), str(info["label"]))
        outcomes[position] = _solve_one(store, info, outcomes[position], cpulimit=limit, author=author)
    if progress is not None and todo:
        progress(len(todo), len(todo), "")
    return outcomes


def _solve_one(store, info: dict, outcome: SolveOutcome, *, cpulimit: float, author: str) -> SolveOutcome:
    from obsdb.imaging import astrometry

    hints = astrometry.hints_from_header(info["header"], info["shape"])
    try:
        solution = astrometry.solve_stars(info["stars"], info["shape"], hints=hints, cpulimit=cpulimit)
    except astrometry.SolverMissing:
        raise
    except ObsdbError as exc:
        outcome.outcome, outcome.reason = FAILED, str(exc)
        return outcome
    check = solution.verification
    centre = solution.wcs.all_pix2world([[(info["shape"][1] - 1) / 2, (info["shape"][0] - 1) / 2]], 0)[0]
    outcome.index, outcome.ra, outcome.dec = solution.index, float(centre[0]) % 360.0, float(centre[1])
    outcome.pixel_scale, outcome.n_matched, outcome.n_reference = (check.pixel_scale, check.n_matched,
                                                                    check.n_reference)
    outcome.residual_arcsec = check.residual_arcsec if check.n_matched else None
    outcome.cpu_seconds = solution.cpu_seconds
    if not solution.verified:
        outcome.outcome, outcome.reason = REFUSED, f"verification failed: {check.reason}"
        return outcome
    store.record_solution(info["id"], solution, author=author)
    outcome.outcome = SOLVED
    return outcome


def _targets(db, *, night, frame: str | None, all_frames: bool) -> list[int]:
    """Frame ids to solve: the named frames, every accepted light, or each night's and target's reference."""
    from obsdb.catalog.stores import AlignStore
    from obsdb.pipeline.align import resolve_reference

    store = AlignStore(db)
    if frame is not None:
        chosen = store.align_frames(selector=frame, nights=night)
        if not chosen:
            raise ObsdbError(f"--frame {frame!r} names no readable frame")
        return [f.id for f in chosen]
    frames = store.align_frames(nights=night, status="accepted")
    if all_frames:
        return [f.id for f in frames]
    groups: dict[tuple, list] = {}
    for f in frames:
        groups.setdefault((f.night, f.object or ""), []).append(f)
    references = []
    for key in sorted(groups):
        try:
            references.append(resolve_reference(store, groups[key], None).id)
        except NothingToProcess:
            continue
    return list(dict.fromkeys(references))
