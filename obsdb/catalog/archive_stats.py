"""The archive over nights: integration per target and filter, and each instrument's nights as trends.

``obsdb targets`` adds up exposure per target, filter and night, with target names unified
(:func:`obsdb.imaging.names.target_key`, then the user's alias table) and filter names too
(:func:`obsdb.imaging.names.filter_key`).  ``obsdb trends`` gives per instrument, filter and
night the median FWHM, background and transparency and the acceptance, and flags the nights far
from the instrument's usual: beyond :data:`TREND_K` robust standard deviations (1.4826 x the
median absolute deviation over the instrument's nights in that filter) on the bad side, with the
numbers and the yardstick in the reason, as QA's reasons give them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from obsdb.errors import ObsdbError

TREND_K = 3.0
"""A night is flagged when a median lies more than this many robust standard deviations from the
instrument's usual on the bad side (3: a normal night is flagged about once in 700)."""

TREND_MIN_NIGHTS = 4
"""Nights of one instrument and filter needed before any is flagged: with fewer, the median and the
MAD of the nights say little about what is usual."""

TREND_MIN_SPREAD = {"fwhm": 0.05, "background": 0.10, "transparency": 0.10, "acceptance": 0.05}
"""The smallest robust spread used, as a fraction of the usual value (acceptance: in absolute
fraction): nights that agree almost exactly (simulated ones, or one weather pattern) have a MAD
near 0, and a small difference would otherwise be "many sigma"."""

BAD_SIDE = {"fwhm": 1, "background": 1, "transparency": -1, "acceptance": -1}
"""Which way is worse: a larger FWHM or background, a lower transparency or acceptance.  A night
better than usual is not flagged."""


# -- aliases ------------------------------------------------------------------------------------

def alias_map(session: Session) -> dict[str, str]:
    """The user's aliases, ``{alias key: target}``, each followed to its end (an alias of an alias)."""
    from obsdb.catalog.models import TargetAlias

    direct = dict(session.execute(select(TargetAlias.alias, TargetAlias.target)).all())
    resolved = {}
    for alias, target in direct.items():
        seen = {alias}
        while target in direct and target not in seen:
            seen.add(target)
            target = direct[target]
        resolved[alias] = target
    return resolved


def add_alias(session: Session, alias: str, target: str, *, author: str) -> dict:
    """Make ``alias`` count as ``target`` (both spelled through ``target_key``); replaces an older
    alias of the same name.

    Raises
    ------
    ObsdbError
        For a blank name, or an alias that would name itself.
    """
    from obsdb.catalog.models import TargetAlias, utcnow
    from obsdb.catalog.writes import record_event
    from obsdb.imaging.names import target_key

    key, goal = target_key(alias), target_key(target)
    if key is None or goal is None:
        raise ObsdbError(f"alias {alias!r} -> {target!r}: both names must be given")
    if key == goal:
        raise ObsdbError(f"alias {alias!r}: already spelled as {goal!r}; nothing to add")
    if alias_map(session).get(goal) == key:
        raise ObsdbError(f"alias {alias!r} -> {target!r}: {goal!r} is already an alias of {key!r} (a loop)")
    row = session.scalars(select(TargetAlias).where(TargetAlias.alias == key)).first()
    before = row.target if row else None
    if row is None:
        row = TargetAlias(alias=key, alias_name=alias, target=goal, author=author)
        session.add(row)
    else:
        row.alias_name, row.target, row.author, row.created_at = alias, goal, author, utcnow()
    record_event(session, author, "alias", f"{key} counts as {goal}" + (f" (was {before})" if before else ""),
                 details={"alias": key, "target": goal, "before": before})
    session.flush()
    return {"alias": key, "target": goal, "as_given": alias, "author": author}


def remove_alias(session: Session, alias: str, *, author: str) -> bool:
    """Remove an alias; False when there was none of that name."""
    from obsdb.catalog.models import TargetAlias
    from obsdb.catalog.writes import record_event
    from obsdb.imaging.names import target_key

    row = session.scalars(select(TargetAlias).where(TargetAlias.alias == target_key(alias))).first()
    if row is None:
        return False
    record_event(session, author, "alias", f"{row.alias} no longer counts as {row.target}",
                 details={"alias": row.alias, "target": None, "before": row.target})
    session.delete(row)
    return True


def aliases(session: Session) -> list[dict]:
    """Every alias, by name."""
    from obsdb.catalog.models import TargetAlias

    return [{"alias": r.alias, "target": r.target, "as_given": r.alias_name, "author": r.author,
             "added_at": r.created_at.isoformat()}
            for r in session.scalars(select(TargetAlias).order_by(TargetAlias.alias))]


# -- integration per target -----------------------------------------------------------------------

def target_integration(session: Session, *, nights=None, per_night: bool = True) -> list[dict]:
    """Light frames and hours per target, filter and night (``per_night=False``: over all nights).

    One GROUP BY over the frames (night, OBJECT, FILTER, status); the names are unified afterwards,
    so ``M 80``, ``M80`` and an alias of it add up.  Each row has ``target``, ``filter``, ``night``
    (None over all nights), ``nights``, ``frames``, ``accepted``, ``hours``, ``accepted_hours``,
    ``objects`` and ``filters`` (the OBJECT and FILTER spellings that were added up).
    """
    from obsdb.catalog.models import Frame, Night
    from obsdb.imaging.header import LIGHT_IMAGE_TYPES
    from obsdb.catalog.selectors import night_ids
    from obsdb.catalog.status import status_expression
    from obsdb.imaging.names import filter_key, target_key

    scope = night_ids(session, nights)
    state = status_expression().label("state")
    inner = (select(Night.name.label("night"), Frame.object, Frame.band, Frame.exptime, state)
             .join(Night, Night.id == Frame.night_id).where(Frame.image_type.in_(LIGHT_IMAGE_TYPES)))
    if scope is not None:
        inner = inner.where(Frame.night_id.in_(scope))
    inner = inner.subquery()
    query = (select(inner.c.night, inner.c.object, inner.c.band, inner.c.state, func.count(),
                    func.coalesce(func.sum(inner.c.exptime), 0.0))
             .group_by(inner.c.night, inner.c.object, inner.c.band, inner.c.state))
    mapping = alias_map(session)
    rows: dict[tuple, dict] = {}
    for night, target, band, status, n, seconds in session.execute(query):
        key = target_key(target)
        name = mapping.get(key, key) if key else None
        group = (name, filter_key(band), night if per_night else None)
        row = rows.setdefault(group, {"target": group[0], "filter": group[1], "night": group[2], "nights": set(),
                                      "frames": 0, "accepted": 0, "seconds": 0.0, "accepted_seconds": 0.0,
                                      "objects": set(), "filters": set()})
        row["nights"].add(night)
        row["frames"] += n
        row["seconds"] += float(seconds)
        if status == "accepted":
            row["accepted"] += n
            row["accepted_seconds"] += float(seconds)
        row["objects"].update([target] if target else [])
        row["filters"].update([band] if band else [])
    out = []
    for row in rows.values():
        out.append({"target": row["target"], "filter": row["filter"], "night": row["night"],
                    "nights": len(row["nights"]), "frames": row["frames"], "accepted": row["accepted"],
                    "hours": round(row["seconds"] / 3600.0, 4), "accepted_hours": round(row["accepted_seconds"] / 3600.0, 4),
                    "objects": sorted(row["objects"]), "filters": sorted(row["filters"])})
    return sorted(out, key=lambda r: (r["target"] or "\uffff", r["filter"] or "", r["night"] or ""))


# -- trends ---------------------------------------------------------------------------------------

TRANSPARENCY_PROXY = ("star-count proxy (median stars per frame; photometry's zero points are relative "
                      "within a night)")
"""What the trends' transparency is.  Not photometry's zero point: that is each frame's offset from
the mean frame of its own night's ensemble, so its nightly median is about 0 whatever the sky."""

def trend_rows(session: Session, *, nights=None) -> dict:
    """Per instrument, filter and night, the medians of the light frames, and the nights flagged.

    Returns ``{"rows": [...], "transparency_source": ...}``; each row has ``instrument``, ``filter``,
    ``night``, ``frames``, ``accepted``, ``acceptance``, ``fwhm`` (px), ``background`` (ADU),
    ``transparency`` and ``flags`` (a list of reasons; empty when the night is usual).  The transparency
    is a star-count proxy: the median number of stars per frame, which clouds lower
    (``transparency_source`` says so; see :data:`TRANSPARENCY_PROXY`).
    """
    from obsdb.catalog.models import Frame, FrameMetrics, FrameStats, Instrument, Night
    from obsdb.imaging.header import LIGHT_IMAGE_TYPES
    from obsdb.catalog.selectors import night_ids
    from obsdb.catalog.status import status_expression
    from obsdb.imaging.names import filter_key

    # Photometry's zero points (frame_photometry) are offsets from the mean frame of each night's own
    # ensemble: always about 0 per night, so not comparable across nights.  Stars per frame are.
    source = TRANSPARENCY_PROXY
    scope = night_ids(session, nights)
    query = (select(Instrument.key, Frame.band, Night.name, FrameMetrics.fwhm,
                    func.coalesce(FrameStats.background, FrameMetrics.background),
                    FrameMetrics.n_stars,
                    status_expression().label("state"))
             .join(Night, Night.id == Frame.night_id)
             .outerjoin(Instrument, Instrument.id == Frame.instrument_id)
             .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
             .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
             .where(Frame.image_type.in_(LIGHT_IMAGE_TYPES), Frame.readable.is_(True)))
    if scope is not None:
        query = query.where(Frame.night_id.in_(scope))
    cells: dict[tuple, dict] = defaultdict(lambda: {"frames": 0, "accepted": 0, "fwhm": [], "background": [],
                                                    "transparency": []})
    for instrument, band, night, fwhm, background, clarity, state in session.execute(query):
        cell = cells[(instrument, filter_key(band), night)]
        cell["frames"] += 1
        cell["accepted"] += state == "accepted"
        for name, value in (("fwhm", fwhm), ("background", background), ("transparency", clarity)):
            if value is not None:
                cell[name].append(float(value))
    rows = []
    for (instrument, band, night), cell in cells.items():
        rows.append({"instrument": instrument, "filter": band, "night": night, "frames": cell["frames"],
                     "accepted": cell["accepted"], "acceptance": round(cell["accepted"] / cell["frames"], 4),
                     **{name: _median(cell[name]) for name in ("fwhm", "background", "transparency")},
                     "flags": []})
    rows.sort(key=lambda r: (r["instrument"] or "", r["filter"] or "", r["night"]))
    flag_unusual_nights(rows)
    return {"rows": rows, "transparency_source": source}


def flag_unusual_nights(rows: list[dict]) -> None:
    """Append to each row's ``flags`` the metrics far from its instrument and filter's usual nights.

    Examples
    --------
    >>> rows = [{"instrument": "t", "filter": "V", "night": f"n{i}", "fwhm": f, "background": 100.0,
    ...          "transparency": 50.0, "acceptance": 1.0, "flags": []}
    ...         for i, f in enumerate([3.0, 3.1, 2.9, 3.0, 6.0])]
    >>> flag_unusual_nights(rows)
    >>> rows[-1]["flags"]  # doctest: +ELLIPSIS
    ["FWHM 6 px is 20 sigma above the usual 3 px (median of the instrument's 5 nights in V; robust sigma ...)"]
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["instrument"], row["filter"])].append(row)
    from astropy.stats import mad_std

    for (instrument, band), members in groups.items():
        if len(members) < TREND_MIN_NIGHTS:
            continue
        for name, side in BAD_SIDE.items():
            values = [r[name] for r in members if r.get(name) is not None]
            if len(values) < TREND_MIN_NIGHTS:
                continue
            usual = statistics.median(values)
            floor = TREND_MIN_SPREAD[name] * (1.0 if name == "acceptance" else abs(usual))
            sigma = max(float(mad_std(values)), floor)
            if sigma <= 0:
                continue
            for row in members:
                value = row.get(name)
                if value is None or (value - usual) * side <= TREND_K * sigma:
                    continue
                row["flags"].append(_reason(name, value, usual, sigma, len(values), instrument, band))


_LABELS = {"fwhm": ("FWHM", " px", ".3g"), "background": ("background", " ADU", ",.0f"),
           "transparency": ("transparency", "", ".3g"), "acceptance": ("acceptance", "", ".0%")}


def _reason(name, value, usual, sigma, n_nights, instrument, band) -> str:
    label, unit, spec = _LABELS[name]
    where = "above" if value > usual else "below"
    how_far = abs(value - usual) / sigma
    # The row names the instrument; the reason names the yardstick: how many of its nights, which filter.
    return (f"{label} {format(value, spec)}{unit} is {how_far:.0f} sigma {where} the usual "
            f"{format(usual, spec)}{unit} (median of the instrument's {n_nights} nights in {band or '-'}; "
            f"robust sigma {format(sigma, '.2g')}{unit}, flagged beyond {TREND_K:g})")


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def instrument_headers(session: Session) -> dict[str, tuple[dict, float | None]]:
    """One light frame's header per instrument, with the instrument's pixel size (for its pixel scale)."""
    from obsdb.catalog.models import Frame, Instrument
    from obsdb.imaging.header import LIGHT_IMAGE_TYPES

    first = (select(Frame.instrument_id, func.min(Frame.id).label("frame_id"))
             .where(Frame.image_type.in_(LIGHT_IMAGE_TYPES), Frame.readable.is_(True))
             .group_by(Frame.instrument_id).subquery())
    query = (select(Instrument.key, Instrument.pixel_size, Frame.header)
             .join(first, first.c.instrument_id == Instrument.id).join(Frame, Frame.id == first.c.frame_id))
    return {key: (header or {}, pixel_size) for key, pixel_size, header in session.execute(query)}
