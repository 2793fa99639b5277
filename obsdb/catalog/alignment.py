"""The catalog side of the staged alignment method: the decisions it reads and the run it writes.

The measuring (centroids in boxes, the three stages) is
:func:`obsdb.pipeline.align.align_staged`; this module only reads the night's
decisions and groups, and records a finished run in one transaction.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from obsdb.catalog.decisions import get_decision, list_groups
from obsdb.catalog.models import AlignmentRun, Centroid, Frame, ShiftStep
from obsdb.catalog.selectors import night_ids
from obsdb.catalog.tags import ID_CHUNK
from obsdb.catalog.writes import record_event
from obsdb.errors import ObsdbError


def staged_inputs(session: Session, night=None) -> dict:
    """One night's reference frame, reference star, fine box and pointing groups with their members.

    The night is the one asked for, else the night of the newest reference decision.

    Raises
    ------
    ObsdbError
        When a decision the staged method needs is missing, or several nights are asked for.
    """
    scope = night_ids(session, night)
    if scope is not None and len(scope) != 1:
        raise ObsdbError("the staged method aligns one night at a time: give one --night")
    night_id = scope[0] if scope else getattr(get_decision(session, "reference_frame"), "night_id", None)
    decisions = {key: get_decision(session, key, night_id=night_id)
                 for key in ("reference_frame", "reference_star", "fine_box")}
    missing = [key.replace("_", " ") for key, d in decisions.items() if d is None]
    if missing:
        raise ObsdbError(f"the staged method needs {', '.join(missing)}: apply a plan (`obsdb apply`) "
                         "or let `obsdb group auto` choose them")
    groups = [g for g in list_groups(session, night_ids=None if night_id is None else [night_id]) if g["frame_ids"]]
    if not groups:
        raise ObsdbError("the staged method needs pointing groups with boxes (`obsdb group set` or a plan)")
    for g in groups:
        if g["box"] is None:
            raise ObsdbError(f"group {g['name']} has no box (`obsdb group set {g['name']} ... --box`)")
    reference_id = decisions["reference_frame"].frame_id
    ids = sorted({i for g in groups for i in g["frame_ids"]} | ({reference_id} if reference_id else set()))
    frames = {}
    for start in range(0, len(ids), ID_CHUNK):  # one night's group members
        for f in session.scalars(select(Frame).where(Frame.id.in_(ids[start:start + ID_CHUNK]))):
            frames[f.id] = {"path": f.path, "number": f.number, "file_name": f.file_name, "label": f.label}
    if reference_id not in frames:
        raise ObsdbError(f"reference frame {decisions['reference_frame'].value} is not in the catalog")
    return {"night_id": night_id, "reference_id": reference_id, "star": decisions["reference_star"].value,
            "fine": decisions["fine_box"].value, "groups": groups, "frames": frames}


def record_staged_run(session: Session, *, reference_id: int, author: str, parameters: dict, frames: list[dict],
                      failures: list[tuple[int, str]], software_version: str) -> int:
    """Write a staged run: the run, two box centroids and three shift steps per measured frame.

    Parameters
    ----------
    frames : list of dict
        Per measured frame: ``frame_id``, ``centroids`` (two dicts of Centroid columns: stage 1 and
        stage 3) and ``steps`` (three dicts of ShiftStep columns).  A step's ``centroid`` and
        ``reference_centroid`` name a centroid as ``(frame_id, index)`` into these lists.
    failures : list of (frame id, reason)
        Frames tagged ``unregistered`` with the reason.

    Returns
    -------
    int
        The run id.
    """
    night_id = session.scalar(select(Frame.night_id).where(Frame.id == reference_id))
    run = AlignmentRun(method="staged", reference_frame_id=reference_id, night_id=night_id,
                       software_version=software_version, algorithm=None, author=author, parameters=parameters)
    session.add(run)
    session.flush()
    rows = {}
    for entry in frames:
        for index, columns in enumerate(entry["centroids"]):
            rows[(entry["frame_id"], index)] = Centroid(frame_id=entry["frame_id"], run_id=run.id, **columns)
    session.add_all(rows.values())
    session.flush()  # one batched INSERT gives every centroid its id

    def centroid_id(key):
        return rows[tuple(key)].id if key is not None and tuple(key) in rows else None

    session.add_all(ShiftStep(run_id=run.id, frame_id=entry["frame_id"],
                              centroid_id=centroid_id(step.get("centroid")),
                              reference_centroid_id=centroid_id(step.get("reference_centroid")),
                              **{k: v for k, v in step.items() if k not in ("centroid", "reference_centroid")})
                    for entry in frames for step in entry["steps"])
    record_unregistered(session, run, failures, [entry["frame_id"] for entry in frames], author)
    return run.id


def record_unregistered(session: Session, run, failed: list[tuple[int, str]], registered: list[int],
                        author: str) -> None:
    """Tag each failed frame ``unregistered`` with its reason, retract the tag on the registered ones,
    and log the run's event.

    One set-based write (:func:`obsdb.catalog.tags.sync_rule_tags`) whatever the number of frames: the
    frames are named by id, never loaded (a 500-frame run loaded 500 frames with their headers to
    retract a handful of tags), and the new tags go in one statement.
    """
    from obsdb.catalog.tags import _check_text, sync_rule_tags

    wanted = {}
    for frame_id, reason in failed:
        text = f"run {run.id}: {reason}".strip()
        _check_text(text, "obsdb")
        wanted[(frame_id, "unregistered")] = text
    sync_rule_tags(session, [i for i, _ in failed] + list(registered), wanted, names=("unregistered",),
                   author="obsdb", retract_reason=f"registered in run {run.id}", run_id=run.id)
    aligned = "1 frame" if len(registered) == 1 else f"{len(registered)} frames"
    record_event(session, author, "align", f"run {run.id} ({run.method}): {aligned} aligned, "
                                           f"{len(failed)} unregistered", night_id=run.night_id,
                 details={"run": run.id})
