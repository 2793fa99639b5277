"""The catalog side of the calibration checks (:mod:`obsdb.pipeline.calib_checks`): bias, dark and
flat frames with their pixel statistics, and their automatic tags."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from obsdb.imaging.header import CALIBRATION_IMAGE_TYPES
from obsdb.catalog.models import Frame, FrameMetrics, FrameStats, Instrument, Night, StarList, Tag, utcnow

"""Image types that hold no stars: judged by their own checks, never by the light-frame rules."""


def calibration_records(session: Session, *, nights=None) -> list[dict]:
    """Readable bias, dark and flat frames with their statistics, as plain dicts.

    Each has ``id``, ``label``, ``night``, ``instrument`` (key), ``type``, ``band``, ``exptime``,
    ``pixels`` (width x height) and the :class:`FrameStats` columns ``median``, ``std``,
    ``background``, ``background_rms``, ``n_saturated``, ``saturation`` (None without statistics).
    """
    from obsdb.catalog.selectors import frame_label, night_ids

    scope = night_ids(session, nights)
    qualified = session.scalar(select(func.count(Night.id))) > 1
    query = (select(Frame.id, Frame.number, Frame.file_name, Night.name, Instrument.key, Frame.image_type,
                    Frame.band, Frame.exptime, Frame.width, Frame.height, FrameStats.median, FrameStats.std,
                    FrameStats.background, FrameStats.background_rms, FrameStats.n_saturated,
                    FrameStats.saturation)
             .join(Night, Night.id == Frame.night_id)
             .outerjoin(Instrument, Instrument.id == Frame.instrument_id)
             .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
             .where(Frame.readable.is_(True), Frame.image_type.in_(CALIBRATION_IMAGE_TYPES))
             .order_by(Night.name, Frame.number, Frame.path))
    if scope is not None:
        query = query.where(Frame.night_id.in_(scope))
    out = []
    for (fid, number, name, night, instrument, kind, band, exptime, width, height, median, std, background,
         rms, n_saturated, saturation) in session.execute(query):
        out.append({"id": fid, "label": frame_label(night, number, name, qualified=qualified), "night": night,
                    "instrument": instrument, "type": kind, "band": band, "exptime": exptime,
                    "pixels": (width or 0) * (height or 0), "median": median, "std": std,
                    "background": background, "background_rms": rms, "n_saturated": n_saturated,
                    "saturation": saturation})
    return out


def apply_calibration_tags(session: Session, frame_ids: list[int], wanted: dict[tuple[int, str], str],
                           evidence: dict[tuple[int, str], dict], *, names: tuple[str, ...], author: str,
                           retract_reason: str):
    """The calibration tags ``names`` on ``frame_ids`` made exactly ``wanted`` (with their evidence), and
    what older versions left on these frames undone: star metrics and star lists (a "FWHM" of a
    bias frame's noise) are deleted, and active automatic tags of the light-frame rules are retracted.

    Returns
    -------
    TagSummary
    """
    from obsdb.catalog.status import CALIBRATION_TAGS
    from obsdb.catalog.tags import ID_CHUNK, TagSummary, _retract, sync_rule_tags

    from obsdb.catalog.maintained import touch_frames

    if not frame_ids:
        return TagSummary()
    change = sync_rule_tags(session, frame_ids, wanted, names=names, author=author,
                            retract_reason=retract_reason, evidence=evidence)
    summary = change.summary()
    now = utcnow()
    # Every calibration check's tags are left alone, not only those of the check calling now.
    own = [f"rule:{name}" for name in CALIBRATION_TAGS]
    for start in range(0, len(frame_ids), ID_CHUNK):
        chunk = frame_ids[start:start + ID_CHUNK]
        for tag in session.scalars(select(Tag).where(Tag.frame_id.in_(chunk), Tag.retracted_at.is_(None),
                                                     Tag.source.like("rule:%"), Tag.source.not_in(own))):
            _retract(tag, author, "a calibration frame: the light-frame rules do not apply to it", now)
            summary.retracted.append((tag.frame_id, tag.name, tag.reason))
        session.execute(delete(StarList).where(StarList.frame_id.in_(chunk)))
        session.execute(delete(FrameMetrics).where(FrameMetrics.frame_id.in_(chunk)))
        touch_frames(session, chunk)  # their metrics are gone: status and summaries follow
    return summary
