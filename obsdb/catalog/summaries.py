"""Summaries of the catalog in SQL: counts by status, medians, totals (``obsdb summary``, ``obsdb nights``,
the review desk's archive view), the bands and tags in use, and the QA runs' thresholds.

Each is a GROUP BY query over the frames' status, evaluated once per frame (:func:`_frame_states`).
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from obsdb.catalog.models import Event, Frame, FrameMetrics, FrameStats, Instrument, Night, Tag
from obsdb.catalog.queries import ASSESSED
from obsdb.catalog.selectors import night_ids
from obsdb.catalog.status import status_expression


def _frame_states(condition=True):
    """Each frame's id, night, band, type, exposure, readability and status, the status evaluated once."""
    return (select(Frame.id, Frame.night_id, Frame.band, Frame.image_type, Frame.exptime, Frame.readable,
                   status_expression(assessed=ASSESSED).label("state"))
            .select_from(Frame).outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
            .where(condition).subquery())


def _medians(session: Session, keys: tuple, value, condition=True) -> dict:
    """The median of ``value`` per ``keys`` group, in SQL: PostgreSQL's ``percentile_cont``, elsewhere
    row numbers over each group's sorted values (the middle one, or the mean of the two middle ones)."""
    if session.get_bind().dialect.name == "postgresql":
        # One sort per group inside the aggregate.  The window form below sorted the whole selection
        # at once (1,000,000 rows for `obsdb nights`: on disk past work_mem) and then numbered it
        # twice: 6 s, where this takes a fraction of that.
        median = func.percentile_cont(0.5).within_group(value)
        return {tuple(row[:-1]): row[-1] for row in session.execute(
            select(*keys, median).select_from(Frame).join(value.class_, value.class_.frame_id == Frame.id)
            .where(condition, value.is_not(None)).group_by(*keys))}
    ordered = (select(*keys, value.label("value"),
                      func.row_number().over(partition_by=keys, order_by=value).label("rank"),
                      func.count().over(partition_by=keys).label("n"))
               .select_from(Frame).join(value.class_, value.class_.frame_id == Frame.id)
               .where(condition, value.is_not(None)).subquery())
    group = [ordered.c[k.key] for k in keys]
    # The middle value (odd n), or the mean of the two middle values (even n).
    middle = ordered.c.rank.between((ordered.c.n + 1) // 2, (ordered.c.n + 2) // 2)
    return {tuple(row[:-1]): row[-1] for row in session.execute(
        select(*group, func.avg(ordered.c.value)).where(middle).group_by(*group))}


def band_summary(session: Session, *, nights=None) -> list[dict]:
    """Per band and image type: frame counts by status, median background and FWHM, total exposure.

    One GROUP BY over each frame's status (evaluated once per frame), and one
    query per median.
    """
    scope = night_ids(session, nights)
    condition = True if scope is None else Frame.night_id.in_(scope)
    states = _frame_states(condition)
    band, kind = func.coalesce(states.c.band, ""), func.coalesce(states.c.image_type, "")
    # Grouped by status and readability too, so the status is evaluated once per frame.
    totals = {}
    for b, k, readable, state, n, exptime in session.execute(
            select(band, kind, states.c.readable, states.c.state, func.count(),
                   func.sum(func.coalesce(states.c.exptime, 0.0)))
            .group_by(band, kind, states.c.readable, states.c.state)):
        row = totals.setdefault((b, k), {"frames": 0, "unreadable": 0, "accepted": 0, "rejected": 0, "pending": 0,
                                         "exptime": 0.0})
        row["frames"] += n
        row["exptime"] += float(exptime or 0.0)
        if not readable:
            row["unreadable"] += n
        else:
            row[state] += n
    keys = (func.coalesce(Frame.band, "").label("band"), func.coalesce(Frame.image_type, "").label("kind"))
    backgrounds = _medians(session, keys, FrameStats.background, condition)
    fwhms = _medians(session, keys, FrameMetrics.fwhm, condition)
    return [{"band": b or None, "type": k or None, "frames": row["frames"], "unreadable": row["unreadable"],
             "accepted": row["accepted"], "rejected": row["rejected"], "pending": row["pending"],
             "median_background": backgrounds.get((b, k)), "median_fwhm": fwhms.get((b, k)),
             "exptime": row["exptime"]} for (b, k), row in sorted(totals.items())]


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

    Four set-based queries whatever the number of nights: status counts over each
    frame's status (evaluated once per frame), the distinct (band, target, instrument)
    of each night from an index, the nights, and the median FWHM per night.
    """
    states = _frame_states()
    # Grouped by status too: the status expression then appears once, so it is evaluated once per frame
    # (three sums over it would each evaluate it again).
    counts = defaultdict(lambda: {"frames": 0, "accepted": 0, "rejected": 0, "pending": 0})
    for night_id, state, n in session.execute(select(states.c.night_id, states.c.state, func.count())
                                              .group_by(states.c.night_id, states.c.state)):
        counts[night_id]["frames"] += n
        counts[night_id][state] += n
    facets = {name: defaultdict(set) for name in ("bands", "targets", "instruments")}
    combinations = select(Frame.night_id, Frame.band, Frame.object, Frame.instrument_id).distinct().subquery()
    for night_id, b, target, instrument in session.execute(
            select(combinations.c.night_id, combinations.c.band, combinations.c.object, Instrument.key)
            .outerjoin(Instrument, Instrument.id == combinations.c.instrument_id)):
        for facet, value in (("bands", b), ("targets", target), ("instruments", instrument)):
            if value is not None:
                facets[facet][night_id].add(value)
    fwhms = _medians(session, (Frame.night_id,), FrameMetrics.fwhm)
    out = []
    for i, name, source, first, last in session.execute(
            select(Night.id, Night.name, Night.source, Night.first_date_obs, Night.last_date_obs)
            .order_by(Night.name)):
        c = counts[i]
        out.append({"night": name, "source": source, "first_date_obs": first.isoformat() if first else None,
                    "last_date_obs": last.isoformat() if last else None, "frames": c["frames"],
                    "bands": sorted(facets["bands"][i]), "targets": sorted(facets["targets"][i]),
                    "instruments": sorted(facets["instruments"][i]),
                    "accepted": c["accepted"], "rejected": c["rejected"], "pending": c["pending"],
                    "median_fwhm": fwhms.get((i,))})
    return out


def archive_quality(session: Session) -> list[dict]:
    """Per night, instrument and band: light frames, accepted frames, median FWHM and median background.

    Set-based: one GROUP BY for the counts and one window query per median, whatever the archive's size.
    The background is the ingest's (every readable frame has one), the FWHM the QA metrics'.
    """
    light = Frame.image_type == "light"
    keys = (Frame.night_id, Frame.instrument_id, Frame.band)
    fwhms = _medians(session, keys, FrameMetrics.fwhm, light)
    backgrounds = _medians(session, keys, FrameStats.background, light)
    # The status expression once per frame (grouped by it), as in night_summaries.
    states = (select(Frame.night_id, Frame.instrument_id, Frame.band, status_expression().label("state"))
              .where(light).subquery())
    counts: dict[tuple, dict] = defaultdict(lambda: {"frames": 0, "accepted": 0, "rejected": 0})
    for night_id, instrument_id, b, state, n in session.execute(
            select(states.c.night_id, states.c.instrument_id, states.c.band, states.c.state, func.count())
            .group_by(states.c.night_id, states.c.instrument_id, states.c.band, states.c.state)):
        row = counts[(night_id, instrument_id, b)]
        row["frames"] += n
        if state in row:
            row[state] += n
    names = dict(session.execute(select(Night.id, Night.name)).all())
    instruments = dict(session.execute(select(Instrument.id, Instrument.key)).all())
    out = [{"night": names[n], "instrument": instruments.get(i), "band": b, **c,
            "median_fwhm": fwhms.get((n, i, b)), "median_background": backgrounds.get((n, i, b))}
           for (n, i, b), c in counts.items()]
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
