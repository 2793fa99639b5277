"""Catalog reads written once over a ``run(name, **params)`` function, free of SQLAlchemy.

Each reader here is the whole of a query command's read (``obsdb nights``, ``obsdb log``, ``obsdb
summary``, the night scope of ``--night``): which statements of :mod:`obsdb.catalog.statements` to
run with which values, and how their rows become the dicts the CLI prints.  ``run`` is either
:func:`obsdb.catalog.statements.session_runner` (SQLAlchemy, any database: what
:class:`obsdb.api.Catalog` uses) or :meth:`obsdb.catalog.lite.LiteCatalog.run` (the stdlib
``sqlite3`` or psycopg on the same statements' compiled text), so both paths give the same answer by
construction; rows are tuples whose values are the Python types SQLAlchemy gives (aware UTC
datetimes, decoded JSON, bools).
"""

from __future__ import annotations

import math

from obsdb.catalog.labels import frame_label
from obsdb.catalog.maintained import median
from obsdb.catalog.fieldnames import METRICS_FIELDS, STATS_FIELDS
from obsdb.catalog.selection import ALL_NIGHTS, night_ids, resolve_selector, several_nights  # noqa: F401
from obsdb.text import storable

SCOPED_MEDIANS_MAX_NIGHTS = 200
"""Above this many nights in scope, the medians of ``obsdb summary`` are read from the middle of the
``frame_quality`` indexes per band (exact, a few ms each) rather than from the frames of the nights."""

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
    rows = run("event_log", limit=limit, command=storable(command) if command else None, scope=scope)
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


KNOWN_KINDS = ("bands", "tags")
"""What :func:`known_values` can list."""


def known_values(run, kinds=KNOWN_KINDS) -> dict[str, list[str]]:
    """The bands and the active tag names stored in the catalog, for the hint a filter that names none gets.

    Parameters
    ----------
    kinds : sequence of str
        Which of :data:`KNOWN_KINDS` to list: only those are read (the active tag names of an
        archive are a scan of its tags, 12-45 ms over 333,000 of them, which a ``--band`` need not pay).

    Returns
    -------
    dict
        ``{"bands": [...], "tags": [...]}`` (the kinds asked for), each sorted.
    """
    unknown = set(kinds) - set(KNOWN_KINDS)
    if unknown:
        raise ValueError(f"known_values lists {' and '.join(KNOWN_KINDS)}, not {', '.join(sorted(unknown))}")
    return {kind: sorted(value for (value,) in run(f"known_{kind}")) for kind in KNOWN_KINDS if kind in kinds}


def frame_history(run, *, frame_id: int, sha256: str | None, number: int | None, file_name: str,
                  night: str) -> dict:
    """Every run and step for a frame, the sum per run, and which run is current.

    A run measured on other content than the file's current one (it changed
    on re-ingest) is kept and marked ``other_content``; it is never current.
    """
    steps = run("shift_steps", frame=frame_id)
    # Columns of shift_steps: run, stage, id, kind, method, dx, dy, rotation, scale, reference frame,
    # centroid, reference centroid, matched, rms, sha256, parameters.
    run_ids = sorted({s[0] for s in steps})
    runs = {r[0]: r for r in run("alignment_runs", ids=run_ids)}
    centroid_ids = [i for i in {s[10] for s in steps} | {s[11] for s in steps} if i is not None]
    centroids = {c[0]: c for c in run("centroids", ids=centroid_ids)}
    frame_ids = [i for i in {s[9] for s in steps} | {r[6] for r in runs.values()} if i is not None]
    qualified = several_nights(run)
    labels = {i: frame_label(night_name, n, name, qualified=qualified, shared=shared)
              for i, n, name, night_name, shared in run("frame_labels", ids=frame_ids)}
    stale = {s[0] for s in steps if s[14] is not None and s[14] != sha256}
    current = max((r for r in run_ids if r not in stale), default=None)

    def centroid(cid):
        c = centroids.get(cid)
        if c is None:
            return None
        _, x, y, flux, method, x0, x1, y0, y1, of_frame, star_index = c
        box = None if x0 is None else [x0, x1, y0, y1]
        return {"x": x, "y": y, "flux": flux, "method": method, "box": box, "frame_id": of_frame,
                "star_index": star_index}

    history = []
    for run_id in run_ids:
        _, method, created_at, author, version, algorithm, reference, parameters = runs[run_id]
        run_steps = [s for s in steps if s[0] == run_id]
        history.append({
            "run": run_id, "method": method, "created_at": created_at.isoformat(),
            "author": author, "software_version": version, "algorithm": algorithm,
            "reference": labels.get(reference), "parameters": parameters,
            "current": run_id == current, "other_content": run_id in stale,
            "steps": [{"stage": s[1], "kind": s[3], "method": s[4], "dx": s[5], "dy": s[6],
                       "rotation_deg": s[7], "scale": s[8],
                       "reference": labels.get(s[9]), "n_matched": s[12],
                       "residual_rms": s[13], "centroid": centroid(s[10]),
                       "reference_centroid": centroid(s[11]), "parameters": s[15]}
                      for s in run_steps],
            "total": {"dx": math.fsum(s[5] for s in run_steps), "dy": math.fsum(s[6] for s in run_steps),
                      "rotation_deg": math.fsum(s[7] for s in run_steps)},
        })
    return {"number": number, "file_name": file_name, "night": night, "current_run": current, "runs": history}


def frame_histories(run, selector: str, *, nights=None) -> list[dict]:
    """:func:`frame_history` of every frame named by a selector (``obsdb history``)."""
    return [frame_history(run, frame_id=f.id, sha256=f.sha256, number=f.number, file_name=f.file_name,
                          night=f.night_name) for f in resolve_selector(run, selector, nights=nights)]


def flags_given(flags, params: dict) -> list[str]:
    """Which of a statement's ``flags`` the ``params`` of a run set, in order: a parameter of the
    flag's name given and not None; ``after`` stands for the keyset parameters ``after_0``, ``after_1``,
    ... of a listing's next page.  The one rule both runners follow (SQLAlchemy's in
    :func:`obsdb.catalog.statements.variant_flags`, the fast path's in :mod:`obsdb.catalog.lite`):
    a runner that missed ``after`` would give a listing's first page again, for ever."""
    return [flag for flag in flags
            if params.get(flag) is not None or (flag == "after" and params.get("after_0") is not None)]


PAGE_SIZE = 2000
"""Frames per page of a streamed listing: bounded memory, few round trips."""

BATCH_FRAMES = 20_000
"""A listing over many nights reads them in batches of consecutive nights (by name) holding about
this many frames (``night_summary.frames``), each batch paged on its own.  Ordered by night name
across the whole archive, one page query would otherwise read every frame of the selection and sort
it for every page (SQLite chose the band index and sorted 333,000 V frames per page of
`obsdb rejected --band V --night all`, 4.9 s a page); within a batch the night index bounds it."""

MAX_BATCH_NIGHTS = 500
"""At most this many nights per batch (a bounded SQL parameter list)."""

REJECTED_BATCH_FRAMES = 100_000
"""The batches of :func:`rejected_reason_rows`, which keeps its whole answer: only each query's
sort is bounded (a fifth of an archive's frames are rejected, 20,000 rows a batch).  Planning each
query costs PostgreSQL 3 ms; 50 batches of 40 nights took 0.50 s of its time, 10 of 200 take 0.33 s
(1,000,000 frames, 2,000 nights)."""

def check_image_type(run, image_type: str) -> None:
    """``--type lights`` is a typo, not an empty answer: the type must be a known one or a stored one."""
    from obsdb.imaging.header import IMAGE_TYPES

    if image_type in IMAGE_TYPES:
        return
    stored = {t for (t,) in run("stored_image_types") if t}
    if image_type in stored:
        return
    from obsdb.errors import SelectorError
    from obsdb.text import not_one_of

    raise SelectorError(not_one_of("--type", image_type, sorted(set(IMAGE_TYPES) | stored)))


def band_spellings(run, band: str, scope: list[int] | None) -> list[str]:
    """The bands stored in scope that are ``band`` whatever the case (``v`` -> ``['V']``)."""
    return [b for (b,) in run("band_spellings", band=band.lower(), scope=scope)]


def bands_matching(run, band: str | None, scope: list[int] | None) -> list[str] | None:
    """The stored bands ``--band`` asks for (None: no restriction): whatever their case (``v`` finds
    ``V``), or exactly one with ``=`` (``=r``, where a night holds both Johnson R and SDSS r)."""
    if not band:
        return None
    band = storable(band)  # as a band is stored: an undecodable byte kept as its escape
    if band.startswith("=") and len(band) > 1:
        return [band[1:]]
    return band_spellings(run, band, scope) or [band]


def iter_frame_records(run, selection=None, *, sa_conditions=None, text_where=None, page_size: int = PAGE_SIZE):
    """The frames a :class:`~obsdb.catalog.records.FrameFilter` picks (None: every frame of the default
    nights), as typed :class:`~obsdb.catalog.records.FrameRecord` records, streamed in pages.

    Ordered by night, number and path in natural order.  Each page of :data:`PAGE_SIZE` frames
    costs five queries, whatever the catalog's size: the page itself (keyset-paged, the filter and
    the status evaluated once per frame, plain columns rather than ORM objects), then the page's
    active tags, current shifts, groups and weights, looked up by the page's ids.

    A band matches whatever its case (``v`` finds ``V``; ``=r`` asks for exactly ``r``, where a night
    holds both Johnson R and SDSS r); ``image_type`` must be a known or a stored type.  The filters
    only SQLAlchemy can express (``where`` and the rest) are ``sa_conditions(scope)``'s: a further
    condition and the status rule of an alignment run's selection (see
    :func:`obsdb.catalog.queries.iter_frame_records`); without it they must be unset, but for ``where``,
    which the fast path writes as SQL text: ``text_where(scope)`` gives its condition and values
    (:mod:`obsdb.catalog.where_text`).
    """
    from obsdb.catalog.records import FrameFilter
    from obsdb.catalog.status import STATUSES, check_status

    selection = selection if selection is not None else FrameFilter()
    scope = night_ids(run, selection.nights)
    band, image_type, status = selection.band, selection.image_type, selection.status
    bands = bands_matching(run, band, scope)
    if image_type:
        check_image_type(run, image_type)
    check_status(status or None)
    extra, status_rule = sa_conditions(scope) if sa_conditions is not None else (None, None)
    where = text_where(scope) if text_where is not None else None
    qualified = several_nights(run)
    types = [image_type] if image_type else (list(selection.image_types) if selection.image_types is not None
                                              else None)
    frame_ids = selection.frame_ids
    filters = {"scope": scope, "bands": bands, "image_types": types,
               "status": status if status in STATUSES else None, "tag": selection.tag or None,
               "frame_ids": None if frame_ids is None else list(frame_ids), "sa_extra": extra,
               "sa_status_rule": status_rule, "where": where}
    # A few frames named by id are found by their ids, whatever the nights.
    for batch in [None] if frame_ids is not None else _night_batches(run, scope, bands=bands, image_types=types):
        yield from _pages(run, {**filters, "batch": batch}, qualified, page_size)


def check_bare_keywords(run, text: str, bare: list, scope: list[int] | None) -> None:
    """A ``--where`` header keyword written as a bare name (``bare``, from the compiler) must be held by
    some frame in ``scope``: a typo or an unquoted string is an error, not an empty answer
    (:func:`obsdb.catalog.where_lang.check_bare_keywords` words it)."""
    from obsdb.catalog.where_lang import check_bare_keywords as check

    def present(key: str) -> bool:
        return bool(run("frames_with_keyword", key=key, scope=scope))

    def known_keys() -> list[str]:
        # The keywords of a few frames: enough to suggest FILTER for FILTR.
        return [key for (header,) in run("sample_headers", scope=scope) for key in (header or {})]

    check(text, bare, present, known_keys)


def _night_batches(run, scope: list[int] | None, *, bands: list[str] | None = None,
                   image_types: list[str] | None = None, frames_per_batch: int = BATCH_FRAMES):
    """Batches of nights in name order for a listing over ``scope`` (None: all), each about
    ``frames_per_batch`` frames by the kept night summaries; ``[None]`` when the scope is small.
    A listing of some image types reads only the nights holding such frames (of those bands)."""
    if scope is not None and len(scope) <= 1:
        yield None
        return
    if image_types is None:
        # Batches by every frame of the night, not only the band's: a batch's status-filtered page
        # stays one page (a band is in nearly every night; the archive's few flats are not).
        sizes = run("night_sizes", scope=scope)
    else:
        sizes = run("night_sizes_holding", scope=scope, bands=bands, image_types=image_types)
    batch, frames = [], 0
    for night_id, n in sizes:
        batch.append(night_id)
        frames += n
        if frames >= frames_per_batch or len(batch) >= MAX_BATCH_NIGHTS:
            yield batch
            batch, frames = [], 0
    if batch:
        yield batch


N_FRAME, N_STATS, N_METRICS, N_ORDER = 15, len(STATS_FIELDS), len(METRICS_FIELDS), 4
"""Columns of a listing's page (:data:`obsdb.catalog.statements.FRAME_COLUMNS`, the statistics and
metrics fields, the order key); a test checks them against the statement."""


class _TagRow:
    """An active tag of a page, with the attributes :func:`obsdb.catalog.status.verdict` reads."""

    __slots__ = ("frame_id", "id", "name", "source", "reason", "author", "created_at", "evidence")

    def __init__(self, row):
        (self.frame_id, self.id, self.name, self.source, self.reason, self.author, self.created_at,
         self.evidence) = row


def _pages(run, filters: dict, qualified: bool, page_size: int):
    """The records of one keyset-paged listing (see :func:`iter_frame_records`)."""
    from collections import defaultdict

    from obsdb.catalog.records import Shift, Weights

    last: dict = {}
    while True:
        rows = run("frame_page", **filters, **last, limit=page_size)
        if not rows:
            return
        # One page's ids (at most PAGE_SIZE): bounded lists, never the whole selection's.
        ids = [row[0] for row in rows]
        tags = defaultdict(list)
        for t in run("page_tags", ids=ids):
            tags[t[0]].append(_TagRow(t))
        # The registration's confidence travels with the shift: star pairs kept, fit residual, method
        # (the staged method's three steps have no pairs: None).
        shifts = {frame_id: Shift(dx, dy, rot, run_id, n, matches, rms, method if n == 1 else "staged")
                  for frame_id, run_id, dx, dy, rot, n, matches, rms, method in run("page_shifts", ids=ids)}
        groups = dict(run("page_groups", ids=ids))
        weights = {row[0]: Weights(*row[1:]) for row in run("page_weights", ids=ids)}
        for row in rows:
            yield frame_record(row, tags.get(row[0], []), shifts, groups, weights, qualified)
        last = {f"after_{i}": value for i, value in enumerate(rows[-1][-N_ORDER:])}
        if len(rows) < page_size:
            return


REJECTED_REASON_FIELDS = ("frame", "label", "band", "type", "error", "tag", "source", "author", "created_at",
                          "reason")
"""The fields of a row of :func:`rejected_reason_rows`, in order: the frame's id, label, band, type
and read error, then one active tag's name, source, author, time (ISO 8601) and reason (all five None
for a frame without an active tag: an unreadable file)."""


def rejected_reason_rows(run, *, nights=None, band: str | None = None) -> list[tuple]:
    """The reasons of the rejected frames (``obsdb rejected``) in a listing's order: one flat row per
    active tag (:data:`REJECTED_REASON_FIELDS`), a frame's rows together.

    One query per batch of nights, one row per tag, and only what the answer shows: a whole record
    per frame, with its statistics, metrics, shift and weights, costs ten times as much over an
    archive's rejects, and a dict per frame and per tag (:func:`rejected_reasons`) a quarter more
    (0.52 s against 0.42 s for the 63,421 rejected V frames of 1,000,000).

    Parameters
    ----------
    run : callable
        The statements' runner (see the module docstring).
    nights : list of str, optional
        Night names (None: every night).
    band : str, optional
        Only this band (its spellings, as ``--band`` matches them).

    Returns
    -------
    list of tuple
    """
    scope = night_ids(run, nights)
    qualified = several_nights(run)
    bands = bands_matching(run, band, scope)
    out: list[tuple] = []
    append = out.append
    last_id = label = None
    times: dict = {}  # the tags of one QA run share its time: each written out once
    for batch in _night_batches(run, scope, frames_per_batch=REJECTED_BATCH_FRAMES):
        for frame_id, number, file_name, night_name, shared, band_, kind, error, name, source, author, created_at, \
                reason in run("rejected_reasons", scope=scope, bands=bands, batch=batch):
            if frame_id != last_id:
                last_id = frame_id
                label = frame_label(night_name, number, file_name, qualified=qualified, shared=shared)
            if name is None:
                append((frame_id, label, band_, kind, error, None, None, None, None, None))
                continue
            when = times.get(created_at)
            if when is None:
                when = times[created_at] = created_at.isoformat()
            append((frame_id, label, band_, kind, error, name, source, author, when, reason))
    return out


def rejected_reasons(run, *, nights=None, band: str | None = None) -> list[dict]:
    """The rejected frames (``obsdb rejected``) in a listing's order, each with its active tags: the
    rows of :func:`rejected_reason_rows` gathered by frame.

    Returns
    -------
    list of dict
        ``{"label", "band", "type", "error", "tags": [{"name", "source", "author", "created_at",
        "reason"}]}``, ``created_at`` in ISO 8601.
    """
    out: list[dict] = []
    last_id = None
    tags: list[dict] = []
    for frame_id, label, band_, kind, error, name, source, author, when, reason in rejected_reason_rows(
            run, nights=nights, band=band):
        if frame_id != last_id:
            last_id = frame_id
            tags = []
            out.append({"label": label, "band": band_, "type": kind, "error": error, "tags": tags})
        if name is not None:
            tags.append({"name": name, "source": source, "author": author, "created_at": when, "reason": reason})
    return out


def frame_record(row, frame_tags, shifts: dict, groups: dict, weights: dict, qualified: bool):
    """One row of a listing's page and its lookups as a :class:`~obsdb.catalog.records.FrameRecord`."""
    from obsdb.catalog.records import FrameRecord, Metrics, Stats, TagRecord, VerdictSummary
    from obsdb.catalog.status import verdict

    (frame_id, number, path, file_name, band_, kind, target_, exptime, date_obs, height, width, readable,
     error, shared, keywords) = row[:N_FRAME]
    night_name, instrument, stats_id = row[N_FRAME:N_FRAME + 3]
    stats = row[N_FRAME + 3:N_FRAME + 3 + N_STATS]
    at = N_FRAME + 3 + N_STATS
    metrics_id, assessed_at = row[at:at + 2]
    metrics = row[at + 2:at + 2 + N_METRICS]
    state = row[at + 2 + N_METRICS]
    judged = verdict(frame_tags, assessed=metrics_id is not None and assessed_at is not None,
                     registered=frame_id in shifts, readable=readable, error=error)
    return FrameRecord(
        id=frame_id, night=night_name,
        label=frame_label(night_name, number, file_name, qualified=qualified, shared=shared),
        number=number, path=path, file_name=file_name, band=band_, type=kind, object=target_,
        instrument=instrument, exptime=exptime, date_obs=date_obs.isoformat() if date_obs else None,
        shape=[height, width] if width else None, readable=readable, error=error, keywords=keywords,
        status=state, reasons=judged.reasons,
        verdict=VerdictSummary(judged.decided_by, judged.explain(), judged.disagreeing),
        tags=[TagRecord(t.name, t.source, t.reason, t.author, t.created_at.isoformat(), t.evidence)
              for t in frame_tags],
        stats=None if stats_id is None else Stats(*stats),
        metrics=None if metrics_id is None else Metrics(*metrics),
        group=groups.get(frame_id), shift=shifts.get(frame_id), weights=weights.get(frame_id))


def frame_calibration(run, frame_id: int) -> list[dict]:
    """The calibration rows of one light: kind, master (id, file, sha256), scale, reason, when."""
    return [{"kind": kind, "master": master, "path": path, "sha256": sha, "scale": scale, "hours": score,
             "reason": reason, "matched_at": created_at.isoformat()}
            for kind, master, path, sha, scale, score, reason, created_at in run("frame_calibration", frame=frame_id)]


def calibration_line(rows: list[dict]) -> str | None:
    """One line for `obsdb show`: each kind's master, or why none, e.g. ``bias 3; dark none; flat 5``."""
    if not rows:
        return None
    parts = []
    for row in rows:
        if row["master"] is None:
            parts.append(row["reason"].split(";")[0])
        else:
            name = row["path"].rsplit("/", 1)[-1] if row["path"] else "?"
            scale = f" x{row['scale']:.4g}" if row.get("scale") not in (None, 1.0) else ""
            parts.append(f"{row['kind']} master {row['master']} ({name}{scale})")
    return "; ".join(parts)


def tag_dict(name, source, reason, author, created_at, retracted_at, retracted_by, retract_reason) -> dict:
    """A tag as ``obsdb show`` lists it in the tag history (retracted ones too)."""
    return {"name": name, "source": source, "reason": reason, "author": author,
            "created_at": created_at.isoformat(),
            "retracted_at": retracted_at.isoformat() if retracted_at else None,
            "retracted_by": retracted_by, "retract_reason": retract_reason}


def frame_details(run, *, frame_id: int, sha256: str | None, number: int | None, file_name: str,
                  night: str) -> dict:
    """Everything known about one frame: its record plus header, tag history, events,
    every alignment run with its steps, and the files rendered from it."""
    from obsdb.catalog.records import FrameFilter

    record = next(iter_frame_records(run, FrameFilter(nights=ALL_NIGHTS, frame_ids=(frame_id,)))).to_json()
    ((size, sha, airmass, bitpix, ingested_at, measured_at, stats_version, metrics_version, stars_version,
      n_stars, header),) = run("frame_facts", frame=frame_id)
    rows = frame_calibration(run, frame_id)
    record.update({
        "size": size, "sha256": sha, "airmass": airmass, "bitpix": bitpix,
        "ingested_at": ingested_at.isoformat(), "measured_at": measured_at.isoformat(),
        "versions": {"stats": stats_version, "metrics": metrics_version, "stars": stars_version},
        "stored_stars": n_stars if stars_version is not None else 0,
        "header": header,
        "tag_history": [tag_dict(*t) for t in run("tag_history", frame=frame_id)],
        "events": [{"at": at.isoformat(), "author": author, "command": command, "summary": summary,
                    "details": details} for at, author, command, summary, details in run("frame_events", frame=frame_id)],
        "alignment": frame_history(run, frame_id=frame_id, sha256=sha256, number=number, file_name=file_name,
                                   night=night)["runs"],
        "renders": [{"path": path, "sha256": digest, "run": run_id, "interpolation": interpolation,
                     "created_at": created_at.isoformat()}
                    for path, digest, run_id, interpolation, created_at in run("frame_renders", frame=frame_id)],
        "calibration": calibration_line(rows), "calibration_rows": rows,
    })
    return record


def frames_details(run, selector: str, *, nights=None) -> list[dict]:
    """:func:`frame_details` of every frame named by a selector (``obsdb show``)."""
    return [frame_details(run, frame_id=f.id, sha256=f.sha256, number=f.number, file_name=f.file_name,
                          night=f.night_name) for f in resolve_selector(run, selector, nights=nights)]
