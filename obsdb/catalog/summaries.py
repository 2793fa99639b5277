"""Summaries of the catalog: counts by status, medians, totals (``obsdb summary``, ``obsdb nights``,
the review desk's archive view), the bands and tags in use, and the QA runs' thresholds.

Read from the summary rows kept at write time (:mod:`obsdb.catalog.maintained`): ``night_summary``
(one row per night), ``night_band_summary`` (per night, instrument, band and type) and, for exact
medians over many nights, ``frame_quality`` (each frame's band, type, FWHM and background under
indexes).  An archive-wide answer reads a few thousand rows, never every frame.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from obsdb.catalog import readers
from obsdb.catalog.models import Event, Instrument, Night, NightBandSummary
from obsdb.catalog.readers import SCOPED_MEDIANS_MAX_NIGHTS  # noqa: F401  (re-exported)
from obsdb.catalog.statements import session_runner


def band_summary(session: Session, *, nights=None) -> list[dict]:
    """Per band and image type: frame counts by status, median background and FWHM, total exposure
    (:func:`obsdb.catalog.readers.band_summary`)."""
    return readers.band_summary(session_runner(session), nights=nights)


def known_values(session: Session, kinds=readers.KNOWN_KINDS) -> dict[str, list[str]]:
    """The bands and the active tag names stored in the catalog (:func:`obsdb.catalog.readers.known_values`)."""
    return readers.known_values(session_runner(session), kinds)


def rejected_reasons(session: Session, *, nights=None, band: str | None = None) -> list[dict]:
    """The rejected frames with their active tags (:func:`obsdb.catalog.readers.rejected_reasons`)."""
    return readers.rejected_reasons(session_runner(session), nights=nights, band=band)


def rejected_reason_rows(session: Session, *, nights=None, band: str | None = None) -> list[tuple]:
    """The rejected frames' reasons, a flat row each (:func:`obsdb.catalog.readers.rejected_reason_rows`)."""
    return readers.rejected_reason_rows(session_runner(session), nights=nights, band=band)


def night_summaries(session: Session) -> list[dict]:
    """Every night with its frames, bands, targets, instruments, status counts and median FWHM
    (:func:`obsdb.catalog.readers.night_summaries`)."""
    return readers.night_summaries(session_runner(session))


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
