"""Catalog reads written once over a ``run(name, **params)`` function, free of SQLAlchemy.

Each reader here is the whole of a query command's read (``obsdb nights``, ``obsdb log``, ``obsdb
summary``, the night scope of ``--night``): which statements of :mod:`obsdb.catalog.statements` to
run with which values, and how their rows become the dicts the CLI prints.  ``run`` is either
:func:`obsdb.catalog.statements.session_runner` (SQLAlchemy, any database: what
:class:`obsdb.api.Catalog` uses) or :meth:`obsdb.catalog.lite.LiteCatalog.run` (the stdlib
``sqlite3`` on the same statements' compiled text), so both paths give the same answer by
construction; rows are tuples whose values are the Python types SQLAlchemy gives (aware UTC
datetimes, decoded JSON, bools).
"""

from __future__ import annotations

from obsdb.catalog.labels import frame_label
from obsdb.catalog.maintained import median

ALL_NIGHTS = "all"
"""``--night all``: every night, and no ambiguity error for numbers several nights share."""

SCOPED_MEDIANS_MAX_NIGHTS = 200
"""Above this many nights in scope, the medians of ``obsdb summary`` are read from the middle of the
``frame_quality`` indexes per band (exact, a few ms each) rather than from the frames of the nights."""

KNOWN_NIGHTS_LISTED = 10
"""Nights an unknown ``--night`` error lists (the newest)."""


def night_ids(run, nights) -> list[int] | None:
    """The night ids a ``--night`` option names; None for no restriction (``None`` or ``all``).

    Raises
    ------
    obsdb.catalog.selectors.SelectorError
        For a night that is not in the catalog (the message lists the nights there are).
    """
    if nights is None:
        return None
    names = [nights] if isinstance(nights, str) else list(nights)
    if not names or ALL_NIGHTS in names:
        return None
    found = dict(run("nights_named", names=names))
    missing = [n for n in names if n not in found]
    if missing:
        from obsdb.errors import SelectorError

        known = [name for (name,) in run("newest_night_names", limit=KNOWN_NIGHTS_LISTED)]
        more = " ..." if len(known) == KNOWN_NIGHTS_LISTED else ""
        hint = f" (nights: {', '.join(known)}{more})" if known else " (no nights yet)"
        raise SelectorError(f"no night {', '.join(map(repr, missing))} in the catalog{hint}")
    return [found[n] for n in names]


def several_nights(run) -> bool:
    """True when the catalog holds more than one night (frames are then named ``NIGHT:NUMBER``)."""
    return run("night_count")[0][0] > 1


def night_summaries(run) -> list[dict]:
    """Every night with its frames, bands, targets, instruments, status counts and median FWHM.

    One query over the nights and their kept ``night_summary`` rows, whatever the archive's size.
    """
    out = []
    for (name, source, first, last, frames, accepted, rejected, pending, fwhm, bands, targets,
         instruments) in run("night_summaries"):
        out.append({"night": name, "source": source, "first_date_obs": first.isoformat() if first else None,
                    "last_date_obs": last.isoformat() if last else None, "frames": frames or 0,
                    "bands": list(bands or []), "targets": list(targets or []),
                    "instruments": list(instruments or []),
                    "accepted": accepted or 0, "rejected": rejected or 0, "pending": pending or 0,
                    "median_fwhm": fwhm})
    return out


def event_log(run, *, limit: int = 50, command: str | None = None, nights=None) -> list[dict]:
    """The newest events (every command that changed the catalog), newest first."""
    scope = night_ids(run, nights)
    rows = run("event_log", limit=limit, command=command or None, scope=scope)
    qualified = several_nights(run)
    return [{"id": id_, "at": at.isoformat(), "author": author, "command": command_, "summary": summary,
             "night": night, "frame": None if name is None else frame_label(night, number, name, qualified=qualified,
                                                                            shared=shared),
             "details": details}
            for id_, at, author, command_, summary, details, number, name, night, shared in rows]


def _index_median(run, column: str, band: str, kind: str, n: int):
    """The median of ``column`` over the frame_quality rows of one band and type, ``n`` of them not NULL:
    the middle one or two entries of its (band, image_type, value) index."""
    if n == 0:
        return None
    values = [v for (v,) in run(f"quality_middle_{column}", band=band, kind=kind, limit=2 - n % 2,
                                offset=(n - 1) // 2)]
    return sum(values) / len(values) if len(values) == 2 else values[0]


def band_summary(run, *, nights=None) -> list[dict]:
    """Per band and image type: frame counts by status, median background and FWHM, total exposure.

    Counts and totals are sums of the kept ``night_band_summary`` rows; the medians are exact: over a
    few nights from their frame_quality rows, over the archive from the middle of an index.
    """
    scope = night_ids(run, nights)
    totals = {(b, k): (int(n), int(u), int(a), int(r), int(p), float(e or 0.0))
              for b, k, n, u, a, r, p, e in run("band_totals", scope=scope)}
    medians: dict = {}
    if scope is not None and len(scope) <= SCOPED_MEDIANS_MAX_NIGHTS:
        values: dict = {}
        for b, k, fwhm, background in run("quality_values", scope=scope):
            fw, bg = values.setdefault((b, k), ([], []))
            if fwhm is not None:
                fw.append(fwhm)
            if background is not None:
                bg.append(background)
        medians = {key: (median(bg), median(fw)) for key, (fw, bg) in values.items()}
    else:
        for b, k in totals:
            if scope is None:
                n_fwhm, n_background = (run(f"quality_count_{column}", band=b, kind=k)[0][0]
                                        for column in ("fwhm", "background"))
                medians[(b, k)] = (_index_median(run, "background", b, k, n_background),
                                   _index_median(run, "fwhm", b, k, n_fwhm))
            else:
                values = run("quality_values", band=b, kind=k, scope=scope)
                medians[(b, k)] = (median([v[3] for v in values if v[3] is not None]),
                                   median([v[2] for v in values if v[2] is not None]))
    out = []
    for (b, k), (n, unreadable, accepted, rejected, pending, exptime) in sorted(totals.items()):
        background, fwhm = medians.get((b, k), (None, None))
        out.append({"band": b or None, "type": k or None, "frames": n, "unreadable": unreadable,
                    "accepted": accepted, "rejected": rejected - unreadable, "pending": pending,
                    "median_background": background, "median_fwhm": fwhm, "exptime": exptime})
    return out


def known_values(run) -> dict[str, list[str]]:
    """The bands and the active tag names stored in the catalog, for the hint a filter that names none gets.

    Returns
    -------
    dict
        ``{"bands": [...], "tags": [...]}``, each sorted.
    """
    return {"bands": sorted(b for (b,) in run("known_bands")), "tags": sorted(t for (t,) in run("known_tags"))}
