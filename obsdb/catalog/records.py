"""Typed records the catalog returns: :class:`FrameRecord` and :class:`FrameList`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

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
    status : str
        accepted, rejected or pending.
    reasons : list of str
        ``"<tag>: <reason>"`` of each rejecting (and accepting) tag.
    tags : list of dict
        Active tags with source, reason, author, time.
    stats, metrics : dict or None
        Pixel statistics and quality metrics (see ``obsdb frames --format json``).
    group : str or None
        Pointing group.
    shift : dict or None
        Current shift: dx, dy, rotation_deg, run, steps.
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
    status: str
    reasons: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    stats: dict | None = None
    metrics: dict | None = None
    group: str | None = None
    shift: dict | None = None

    @classmethod
    def from_dict(cls, record: dict) -> "FrameRecord":
        """From the JSON shape of ``obsdb frames --format json``."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def to_json(self) -> dict:
        """The JSON shape of ``obsdb frames --format json``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def flat(self) -> dict:
        """One level of columns (``stats.median`` -> ``median``), as :meth:`FrameList.to_table` has them."""
        stats, metrics, shift = self.stats or {}, self.metrics or {}, self.shift or {}
        row = {k: getattr(self, k) for k in ("night", "number", "file_name", "band", "type", "object",
                                             "instrument", "exptime", "date_obs", "status", "group", "path")}
        row["reasons"] = "; ".join(self.reasons)
        for key in ("min", "max", "mean", "median", "std", "background", "background_rms", "n_nan",
                    "n_saturated"):
            row[key] = stats.get(key)
        for key in ("n_stars", "fwhm", "hfd", "elongation", "transparency", "background_gradient"):
            row[key] = metrics.get(key)
        row["metrics_background"] = metrics.get("background")
        for key in ("dx", "dy", "rotation_deg", "run"):
            row[key] = shift.get(key)
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
