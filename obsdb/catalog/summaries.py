"""Summaries of the catalog: counts by status, medians, totals (``obsdb summary``, ``obsdb nights``,
the review desk's archive view), the bands and tags in use, and the QA runs' thresholds.

Read from the summary rows kept at write time (:mod:`obsdb.catalog.maintained`): ``night_summary``
(one row per night), ``night_band_summary`` (per night, instrument, band and type) and, for exact
medians over many nights, ``frame_quality`` (each frame's band, type, FWHM and background under
indexes).  An archive-wide answer reads a few thousand rows, never every frame.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from obsdb.catalog.maintained import median
from obsdb.catalog.models import (Event, Frame, FrameQuality, Instrument, Night, NightBandSummary,
                                  NightSummary, Tag)
from obsdb.catalog.selectors import night_ids

SCOPED_MEDIANS_MAX_NIGHTS = 200
"""Above this many nights in scope, the medians of ``obsdb summary`` are read from the middle of the
``frame_quality`` indexes per band (exact, a few ms each) rather than from the frames of the nights."""


def _index_median(session: Session, column, band: str, kind: str, n: int):
    """The median of ``column`` over the frame_quality rows of one band and type, ``n`` of them not NULL:
    the middle one or two entries of its (band, image_type, value) index."""
    if n == 0:
        return None
    values = session.scalars(select(column).where(FrameQuality.band == band, FrameQuality.image_type == kind,
                                                  column.is_not(None))
                             .order_by(column).limit(2 - n % 2).offset((n - 1) // 2)).all()
    return sum(values) / len(values) if len(values) == 2 else values[0]


def band_summary(session: Session, *, nights=None) -> list[dict]:
    """Per band and image type: frame counts by status, median background and FWHM, total exposure.

    Counts and totals are sums of the kept ``night_band_summary`` rows; the medians are exact: over a
    few nights from their frame_quality rows, over the archive from the middle of an index.
    """
    scope = night_ids(session, nights)
    rows = select(NightBandSummary.band, NightBandSummary.image_type, func.sum(NightBandSummary.frames),
                  func.sum(NightBandSummary.unreadable), func.sum(NightBandSummary.accepted),
                  func.sum(NightBandSummary.rejected), func.sum(NightBandSummary.pending),
                  func.sum(NightBandSummary.exptime)).group_by(NightBandSummary.band, NightBandSummary.image_type)
    if scope is not None:
        rows = rows.where(NightBandSummary.night_id.in_(scope))
    totals = {(b, k): (int(n), int(u), int(a), int(r), int(p), float(e or 0.0))
              for b, k, n, u, a, r, p, e in session.execute(rows)}
    medians: dict = {}
    if scope is not None and len(scope) <= SCOPED_MEDIANS_MAX_NIGHTS:
        values: dict = {}
        for b, k, fwhm, background in session.execute(
                select(FrameQuality.band, FrameQuality.image_type, FrameQuality.fwhm, FrameQuality.background)
                .where(FrameQuality.night_id.in_(scope))):
            fw, bg = values.setdefault((b, k), ([], []))
            if fwhm is not None:
                fw.append(fwhm)
            if background is not None:
                bg.append(background)
        medians = {key: (median(bg), median(fw)) for key, (fw, bg) in values.items()}
    else:
        for b, k in totals:
            condition = (FrameQuality.band == b, FrameQuality.image_type == k)
            if scope is not None:
                condition += (FrameQuality.night_id.in_(scope),)
            if scope is None:
                # Each count from its own covering index: one count of both read every row (8.5 s for
                # the three bands of a 1,000,000-frame archive, where these take tens of ms).
                n_fwhm, n_background = (session.scalar(select(func.count()).select_from(FrameQuality)
                                                       .where(*condition, column.is_not(None)))
                                        for column in (FrameQuality.fwhm, FrameQuality.background))
                medians[(b, k)] = (_index_median(session, FrameQuality.background, b, k, n_background),
                                   _index_median(session, FrameQuality.fwhm, b, k, n_fwhm))
            else:
                values = session.execute(select(FrameQuality.fwhm, FrameQuality.background).where(*condition)).all()
                medians[(b, k)] = (median([v[1] for v in values if v[1] is not None]),
                                   median([v[0] for v in values if v[0] is not None]))
    out = []
    for (b, k), (n, unreadable, accepted, rejected, pending, exptime) in sorted(totals.items()):
        background, fwhm = medians.get((b, k), (None, None))
        out.append({"band": b or None, "type": k or None, "frames": n, "unreadable": unreadable,
                    "accepted": accepted, "rejected": rejected - unreadable, "pending": pending,
                    "median_background": background, "median_fwhm": fwhm, "exptime": exptime})
    return out


def known_values(session: Session) -> dict[str, list[str]]:
    """The bands and the active tag names stored in the catalog, for the hint a filter that names none gets.

    Returns
    -------
    dict
        ``{"bands": [...], "tags": [...]}``, each sorted.
    """
    bands = session.scalars(select(Frame.band).where(Frame.band.is_not(None)).distinct())
    tags = session.scalars(select(Tag.name).where(Tag.retracted_at.is_(None)).distinct())
    return {"bands": sorted(bands), "tags": sorted(tags)}


def night_summaries(session: Session) -> list[dict]:
    """Every night with its frames, bands, targets, instruments, status counts and median FWHM.

    One query over the nights and their kept ``night_summary`` rows, whatever the archive's size.
    """
    out = []
    for (name, source, first, last, frames, accepted, rejected, pending, fwhm, bands, targets,
         instruments) in session.execute(
            select(Night.name, Night.source, Night.first_date_obs, Night.last_date_obs, NightSummary.frames,
                   NightSummary.accepted, NightSummary.rejected, NightSummary.pending, NightSummary.median_fwhm,
                   NightSummary.bands, NightSummary.targets, NightSummary.instruments)
            .outerjoin(NightSummary, NightSummary.night_id == Night.id).order_by(Night.name)):
        out.append({"night": name, "source": source, "first_date_obs": first.isoformat() if first else None,
                    "last_date_obs": last.isoformat() if last else None, "frames": frames or 0,
                    "bands": list(bands or []), "targets": list(targets or []),
                    "instruments": list(instruments or []),
                    "accepted": accepted or 0, "rejected": rejected or 0, "pending": pending or 0,
                    "median_fwhm": fwhm})
    return out


def archive_quality(session: Session) -> list[dict]:
    """Per night, instrument and band: light frames, accepted frames, median FWHM and median background.

    The kept ``night_band_summary`` rows of light frames, one query whatever the archive's size.  The
    background is the ingest's (every readable frame has one), the FWHM the QA metrics'.
    """
    out = [{"night": night, "instrument": key, "band": b or None, "frames": n, "accepted": a, "rejected": r,
            "median_fwhm": fwhm, "median_background": background}
           for night, key, b, n, a, r, fwhm, background in session.execute(
               select(Night.name, Instrument.key, NightBandSummary.band, NightBandSummary.frames,
                      NightBandSummary.accepted, NightBandSummary.rejected, NightBandSummary.median_fwhm,
                      NightBandSummary.median_background)
               .join(Night, Night.id == NightBandSummary.night_id)
               .outerjoin(Instrument, Instrument.id == NightBandSummary.instrument_id)
               .where(NightBandSummary.image_type == "light"))]
    return sorted(out, key=lambda r: (r["night"], r["instrument"] or "", r["band"] or ""))


def qa_threshold_events(session: Session, names: set[str] | None = None) -> list[dict]:
    """The newest QA runs (up to 200) that judged any of the nights named (all: None), newest first,
    each as ``at``, ``nights``, ``band`` and ``thresholds`` (the limits the rules used)."""
    events = []
    # QA events name their nights in the details, not in night_id (one run judges several nights).
    for e in session.scalars(select(Event).where(Event.command == "qa").order_by(Event.id.desc()).limit(200)):
        details = e.details if isinstance(e.details, dict) else {}
        judged = [str(n) for n in details.get("nights") or []]
        if names is not None and not names.intersection(judged):
            continue
        events.append({"at": e.at.isoformat(), "nights": judged, "band": details.get("band"),
                       "thresholds": details.get("thresholds") or {}})
    return events
