"""Typed records the catalog returns: :class:`FrameRecord` (with :class:`Stats`, :class:`Metrics`,
:class:`Shift`, :class:`Weights`, :class:`TagRecord`, :class:`VerdictSummary`), :class:`FrameList`, and
the :class:`FrameFilter` that selects them.

Pure data, no SQL: the read path that skips SQLAlchemy builds the same records.  One
``to_json()`` per record defines the JSON shape of ``obsdb frames --format json`` (DESIGN.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from obsdb.catalog.fieldnames import METRICS_FIELDS, STATS_FIELDS
from obsdb.text import storable

PENDING_DIGEST = "pending"
"""The digest of an output obsdb is about to write (a write-ahead record, replaced by the file's
SHA-256 once written): a render killed mid-way leaves its own files recognisable."""


TABLE_COLUMNS = ("night", "number", "file_name", "band", "type", "object", "instrument", "exptime", "date_obs",
                 "status", "reasons", "min", "max", "mean", "median", "std", "background", "background_rms",
                 "n_nan", "n_saturated", "n_stars", "fwhm", "hfd", "elongation", "transparency",
                 "background_gradient", "group", "dx", "dy", "rotation_deg", "run", "path")
"""Flat columns of :meth:`FrameList.to_table`: ``stats.median`` is ``median``, the metrics'
background is ``metrics_background``, the current shift is ``dx``, ``dy``, ``rotation_deg``, ``run``."""


@dataclass(frozen=True)
class FrameFilter:
    """Which frames a listing, a step or a command takes: every condition given must hold.

    One value travels from the command line (or a notebook) through the front door to the query,
    in place of a row of keyword arguments at every layer.

    Attributes
    ----------
    nights : str or list of str, optional
        Night name(s), or ``"all"``; None: the catalog's only night, else every night.
    band : str, optional
        A band whatever its case (``v`` finds ``V``); ``=r`` asks for exactly ``r``.
    image_type : str, optional
        One of :data:`obsdb.imaging.header.IMAGE_TYPES`, or a type stored from an obsdb.toml.
    image_types : tuple of str, optional
        Any of these image types, as stored (no check that they are known: the calibration
        frames' listing of `summary` and `rejected`).
    status : str, optional
        One of :data:`obsdb.catalog.status.STATUSES`; ``any`` or None: every status.
    tag : str, optional
        Frames holding this active tag.
    where : str, optional
        A ``--where`` expression (docs/where.md), e.g. ``"fwhm > 3 and EXPTIME >= 30"``.
    include_unreadable : bool
        False leaves out the files that could not be read.
    light_only : bool
        Only :data:`obsdb.imaging.header.LIGHT_IMAGE_TYPES`.
    target : str, optional
        OBJECT; ``""`` for frames without one.
    instrument_id : int, optional
        Catalog key of the instrument.
    frame_ids : tuple of int, optional
        Exactly these frames (a few named by the caller; listings filter in SQL).
    retry_unregistered : bool
        The status as an alignment run selects by (:func:`obsdb.catalog.status.status_condition`).
    """

    nights: object = None
    band: str | None = None
    image_type: str | None = None
    image_types: tuple | None = None
    status: str | None = None
    tag: str | None = None
    where: str | None = None
    include_unreadable: bool = True
    light_only: bool = False
    target: str | None = None
    instrument_id: int | None = None
    frame_ids: tuple | None = None
    retry_unregistered: bool = False

    def __post_init__(self):
        for name in ("frame_ids", "image_types"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        for name in ("band", "image_type", "status", "tag", "target"):
            value = getattr(self, name)
            if isinstance(value, str) and not value.isprintable():
                # As the catalog stores text (an undecodable byte of a command line kept as its
                # escape): a lone surrogate cannot be sent to the database, and matches nothing else.
                object.__setattr__(self, name, storable(value))

    @classmethod
    def of(cls, selection: "FrameFilter | None" = None, **filters) -> "FrameFilter":
        """``selection`` with ``filters`` laid over it (keyword filters alone make a new one).

        ``night`` is taken for ``nights``, as the public methods spell it.
        """
        if "night" in filters:
            filters["nights"] = filters.pop("night")
        return replace(selection, **filters) if selection is not None else cls(**filters)


def _json_of(record, names: tuple[str, ...]) -> dict:
    return {name: getattr(record, name) for name in names}


@dataclass(frozen=True, slots=True)
class Stats:
    """Pixel statistics of a frame (ADU; :mod:`obsdb.imaging.stats`)."""

    min: float | None = None
    max: float | None = None
    mean: float | None = None
    median: float | None = None
    std: float | None = None
    background: float | None = None
    background_rms: float | None = None
    n_nan: int | None = None
    n_saturated: int | None = None
    saturation: float | None = None

    FIELDS = STATS_FIELDS

    def to_json(self) -> dict:
        """``stats`` of ``obsdb frames --format json``."""
        return _json_of(self, self.FIELDS)


@dataclass(frozen=True, slots=True)
class Metrics:
    """Quality metrics of a light frame (:mod:`obsdb.imaging.stars`, :mod:`obsdb.imaging.streaks`)."""

    n_stars: int | None = None
    fwhm: float | None = None
    hfd: float | None = None
    elongation: float | None = None
    background: float | None = None
    background_rms: float | None = None
    background_gradient: float | None = None
    transparency: float | None = None
    n_streaks: int | None = None

    FIELDS = METRICS_FIELDS

    def to_json(self) -> dict:
        """``metrics`` of ``obsdb frames --format json``."""
        return _json_of(self, self.FIELDS)


@dataclass(frozen=True, slots=True)
class Shift:
    """A frame's current shift: the sum of its current run's steps, with the registration's confidence."""

    dx: float
    dy: float
    rotation_deg: float | None
    run: int
    steps: int
    matches: int | None = None
    """Star pairs kept (None for the staged method's steps)."""
    rms: float | None = None
    """Fit residual, px."""
    method: str | None = None

    FIELDS = ("dx", "dy", "rotation_deg", "run", "steps", "matches", "rms", "method")

    def to_json(self) -> dict:
        """``shift`` of ``obsdb frames --format json``."""
        return _json_of(self, self.FIELDS)


@dataclass(frozen=True, slots=True)
class Weights:
    """A frame's stored stacking weights (:mod:`obsdb.imaging.weights`)."""

    noise: float | None = None
    fwhm: float | None = None
    stars: float | None = None
    snr: float | None = None
    snr_value: float | None = None
    set_size: int | None = None
    algorithm: str | None = None

    FIELDS = ("noise", "fwhm", "stars", "snr", "snr_value", "set_size", "algorithm")

    def to_json(self) -> dict:
        """``weights`` of ``obsdb frames --format json``."""
        return _json_of(self, self.FIELDS)


@dataclass(frozen=True, slots=True)
class TagRecord:
    """An active tag: its name, who or what gave it, why, and when (ISO UTC)."""

    name: str
    source: str
    reason: str | None
    author: str | None
    created_at: str
    evidence: dict | None = None

    FIELDS = ("name", "source", "reason", "author", "created_at", "evidence")

    def to_json(self) -> dict:
        """One of ``tags`` in ``obsdb frames --format json``."""
        return _json_of(self, self.FIELDS)


@dataclass(frozen=True, slots=True)
class VerdictSummary:
    """Who decided a frame's status, in words (:class:`obsdb.catalog.status.Verdict`)."""

    decided_by: str | None
    explain: str
    disagreeing: list = field(default_factory=list)

    def to_json(self) -> dict:
        """``verdict`` of ``obsdb frames --format json``."""
        return {"decided_by": self.decided_by, "explain": self.explain, "disagreeing": self.disagreeing}


_PARTS = {"stats": Stats, "metrics": Metrics, "shift": Shift, "weights": Weights, "verdict": VerdictSummary}


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One frame as the catalog knows it.

    Attributes
    ----------
    id : int
        Catalog key.
    night : str
        The night (observing session) it belongs to.
    label : str
        How to name it: its number (``NIGHT:NUMBER`` in a catalog of several nights).
    number : int or None
        Frame number from the file name.
    path, file_name : str
        The file.
    band, type, object, instrument : str or None
        FILTER, normalised image type, OBJECT, instrument key.
    exptime : float or None
        Seconds.
    date_obs : str or None
        ISO UTC start of exposure.
    shape : list or None
        [height, width], px.
    readable : bool
        False when the file could not be read (``error`` says why).
    keywords : dict or None
        Header cards obsdb keeps as columns for ``--where``.
    status : str
        accepted, rejected or pending.
    reasons : list of str
        ``"<tag>: <reason>"`` of each rejecting (and accepting) tag.
    verdict : VerdictSummary or None
        Who decided the status, in words.
    tags : list of TagRecord
        Active tags.
    stats : Stats or None
        Pixel statistics.
    metrics : Metrics or None
        Quality metrics (light frames).
    group : str or None
        Pointing group.
    shift : Shift or None
        Current shift.
    weights : Weights or None
        Stored stacking weights.
    """

    id: int
    night: str
    label: str
    number: int | None
    path: str
    file_name: str
    band: str | None
    type: str | None
    object: str | None
    instrument: str | None
    exptime: float | None
    date_obs: str | None
    shape: list | None
    readable: bool
    error: str | None
    keywords: dict | None = None
    status: str = "pending"
    reasons: list = field(default_factory=list)
    verdict: VerdictSummary | None = None
    tags: list = field(default_factory=list)
    stats: Stats | None = None
    metrics: Metrics | None = None
    group: str | None = None
    shift: Shift | None = None
    weights: Weights | None = None

    @classmethod
    def from_dict(cls, record: dict) -> "FrameRecord":
        """From the JSON shape of ``obsdb frames --format json`` (:meth:`to_json` read back)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in names}
        for name, kind in _PARTS.items():
            if isinstance(values.get(name), dict):
                values[name] = kind(**values[name])
        values["tags"] = [TagRecord(**t) if isinstance(t, dict) else t for t in values.get("tags") or []]
        return cls(**values)

    def to_json(self) -> dict:
        """The JSON shape of ``obsdb frames --format json`` (DESIGN.md), defined here only."""
        return {
            "id": self.id, "night": self.night, "label": self.label, "number": self.number, "path": self.path,
            "file_name": self.file_name, "band": self.band, "type": self.type, "object": self.object,
            "instrument": self.instrument, "exptime": self.exptime, "date_obs": self.date_obs,
            "shape": self.shape, "readable": self.readable, "error": self.error, "keywords": self.keywords,
            "status": self.status, "reasons": self.reasons,
            "verdict": self.verdict.to_json() if self.verdict is not None else None,
            "tags": [t.to_json() for t in self.tags],
            "stats": self.stats.to_json() if self.stats is not None else None,
            "metrics": self.metrics.to_json() if self.metrics is not None else None,
            "group": self.group,
            "shift": self.shift.to_json() if self.shift is not None else None,
            "weights": self.weights.to_json() if self.weights is not None else None,
        }

    def flat(self) -> dict:
        """One level of columns (``stats.median`` -> ``median``), as :meth:`FrameList.to_table` has them."""
        stats, metrics, shift = self.stats or Stats(), self.metrics or Metrics(), self.shift
        row = {k: getattr(self, k) for k in ("night", "number", "file_name", "band", "type", "object",
                                             "instrument", "exptime", "date_obs", "status", "group", "path")}
        row["reasons"] = "; ".join(self.reasons)
        for key in ("min", "max", "mean", "median", "std", "background", "background_rms", "n_nan",
                    "n_saturated"):
            row[key] = getattr(stats, key)
        for key in ("n_stars", "fwhm", "hfd", "elongation", "transparency", "background_gradient"):
            row[key] = getattr(metrics, key)
        row["metrics_background"] = metrics.background
        for key in ("dx", "dy", "rotation_deg", "run"):
            row[key] = getattr(shift, key) if shift is not None else None
        return row


class FrameList(list):
    """A list of :class:`FrameRecord` that turns into a table."""

    def to_table(self):
        """An :class:`astropy.table.Table` with one row per frame and flat columns (see :data:`TABLE_COLUMNS`).

        Missing values are masked.
        """
        from astropy.table import MaskedColumn, Table

        rows = [r.flat() for r in self]
        names = list(TABLE_COLUMNS) + ["metrics_background"]
        table = Table()
        for name in names:
            values = [row.get(name) for row in rows]
            known = [v for v in values if v is not None]
            if known and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in known):
                kind = float if any(isinstance(v, float) for v in known) or len(known) < len(values) else int
                filled = [kind(v) if v is not None else kind(0) for v in values]
                table[name] = MaskedColumn(filled, mask=[v is None for v in values])
                if kind is float:
                    # Shifts to the milli-pixel; other numbers to 6 significant digits (the values are exact).
                    table[name].format = ".3f" if name in ("dx", "dy", "rotation_deg") else ".6g"
            else:
                table[name] = MaskedColumn([("" if v is None else str(v)) for v in values],
                                           mask=[v is None for v in values], dtype=str)
        return table

    def to_pandas(self):
        """A :class:`pandas.DataFrame` with the columns of :meth:`to_table` (needs ``pip install
        'obsdb[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError:
            from obsdb.errors import ObsdbError

            raise ObsdbError("to_pandas needs pandas: pip install 'obsdb[pandas]'") from None
        return pd.DataFrame([r.flat() for r in self], columns=list(TABLE_COLUMNS) + ["metrics_background"])


@dataclass
class QaFrame:
    """What `obsdb qa` needs of one frame: its group, metrics and stored star list."""

    id: int
    label: str
    night: str
    instrument: str | None
    band: str | None
    object: str | None
    exptime: float | None
    background: float | None
    n_stars: int
    fwhm: float | None
    hfd: float | None
    elongation: float | None
    stars: object = None
    """The stored star list (structured array), or None."""
    date_obs: object = None
    airmass: float | None = None
    header: dict | None = None
    """The stored header (site, target and focuser cards are read from it)."""
    site: tuple | None = None
    """The night's (latitude, longitude, elevation) when the catalog knows them."""
    saturation: float | None = None
    shape: tuple | None = None
    """(height, width), px."""
    n_streaks: int | None = None
    assessed: bool = False
    """True when QA has judged the frame before."""

    @property
    def group_key(self) -> tuple:
        """Frames are judged against the others of their night, instrument, band and target."""
        return (self.night, self.instrument, self.band, self.object)


@dataclass
class AlignFrame:
    """What `obsdb align` needs of one frame: identity, shape, metrics and its stored star list."""

    id: int
    label: str
    night_id: int
    night: str
    path: str
    file_name: str
    number: int | None
    object: str | None
    width: int | None
    height: int | None
    sha256: str | None
    band: str | None = None
    date_obs: object = None
    n_stars: int | None = None
    fwhm: float | None = None
    stars: object = None
    """The stored star list when it is of the current detection version, else None."""
