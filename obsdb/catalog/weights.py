"""Storage of frame weights and of the weights users define by name.

The weights step (:mod:`obsdb.pipeline.weights`) asks :class:`WeightStore` for the numbers the
formulas need and hands back one row per frame; `render --weight` and the front door ask it for a
weight's value on some frames, built in (``noise``, ``fwhm``, ``stars``, ``snr``) or defined by a
user as an expression (:func:`obsdb.catalog.expr.compile_number`).
"""

from __future__ import annotations

import re
from typing import Iterable

from obsdb.catalog.stores import FILE_QUERY_CHUNK, EventLog
from obsdb.errors import ObsdbError

BUILT_IN = {"noise": "noise", "fwhm": "fwhm", "stars": "stars", "snr": "snr",
            "w_noise": "noise", "w_fwhm": "fwhm", "w_stars": "stars", "w_snr": "snr"}
"""Names of the stored weights, as `render --weight` takes them (with or without ``w_``) -> column."""

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,39}$")
"""A defined weight's name: a letter, then up to 39 letters, digits, ``_`` or ``-`` (it goes in a
FITS header card and on a command line)."""


class WeightStore(EventLog):
    """The weights step's storage, and the named weight expressions."""

    def weight_inputs(self, *, nights=None, frame_ids: Iterable[int] | None = None) -> list[dict]:
        """Readable light frames with metrics, each with what the weights need.

        Returns dicts with ``id``, ``set_key`` (night|instrument|band|target), ``background_rms``
        (the metrics', else the pixel statistics'), ``fwhm``, ``n_stars`` and ``fluxes`` (the stored
        stars' fluxes, brightest first, or None).  With ``frame_ids``, the whole sets those frames
        belong to.
        """
        from sqlalchemy import func, select

        from obsdb.catalog.models import Frame, FrameMetrics, FrameStats, Instrument, Night, StarList
        from obsdb.imaging.header import LIGHT_IMAGE_TYPES
        from obsdb.catalog.selectors import night_ids
        from obsdb.imaging.stars import decode_stars

        with self.db.session() as session:
            query = (select(Frame.id, Night.name, Instrument.key, Frame.band, Frame.object,
                            func.coalesce(FrameMetrics.background_rms, FrameStats.background_rms),
                            FrameMetrics.fwhm, FrameMetrics.n_stars, StarList.data)
                     .join(Night, Night.id == Frame.night_id)
                     .join(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                     .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
                     .outerjoin(Instrument, Instrument.id == Frame.instrument_id)
                     .outerjoin(StarList, StarList.frame_id == Frame.id)
                     .where(Frame.readable.is_(True), Frame.image_type.in_(LIGHT_IMAGE_TYPES)))
            if frame_ids is not None:
                ids = list(frame_ids)
                nights_of = set()
                for start in range(0, len(ids), FILE_QUERY_CHUNK):
                    nights_of.update(session.scalars(select(Frame.night_id).where(
                        Frame.id.in_(ids[start:start + FILE_QUERY_CHUNK])).distinct()))
                query = query.where(Frame.night_id.in_(sorted(nights_of)))
            else:
                scope = night_ids(session, nights)
                if scope is not None:
                    query = query.where(Frame.night_id.in_(scope))
            rows = []
            for frame_id, night, instrument, band, target, rms, fwhm, n_stars, data in session.execute(query):
                stars = decode_stars(data) if data is not None else None
                rows.append({"id": frame_id, "set_key": "|".join(str(v or "-") for v in (night, instrument, band,
                                                                                        target)),
                             "background_rms": rms, "fwhm": fwhm, "n_stars": n_stars,
                             "fluxes": stars["flux"] if stars is not None and len(stars) else None})
            return rows

    def store_weights(self, rows: list[dict]) -> None:
        """Replace the weights of these frames (one transaction): dicts with ``frame_id`` and the
        :class:`~obsdb.catalog.models.FrameWeight` columns."""
        from sqlalchemy import delete, insert

        from obsdb.catalog.models import FrameWeight, utcnow

        if not rows:
            return
        now = utcnow()
        with self.db.session() as session:
            ids = [r["frame_id"] for r in rows]
            for start in range(0, len(ids), FILE_QUERY_CHUNK):
                session.execute(delete(FrameWeight).where(FrameWeight.frame_id.in_(ids[start:start + FILE_QUERY_CHUNK])))
            session.execute(insert(FrameWeight), [{**r, "computed_at": now} for r in rows])

    def unweighted(self, frame_ids: Iterable[int], version: str) -> list[int]:
        """The frames among ``frame_ids`` with no weights of ``version`` (never weighted, or stale)."""
        from sqlalchemy import select

        from obsdb.catalog.models import FrameWeight

        ids = list(frame_ids)
        current: set[int] = set()
        with self.db.session() as session:
            for start in range(0, len(ids), FILE_QUERY_CHUNK):
                current.update(session.scalars(select(FrameWeight.frame_id).where(
                    FrameWeight.frame_id.in_(ids[start:start + FILE_QUERY_CHUNK]),
                    FrameWeight.algorithm == version)))
        return [i for i in ids if i not in current]

    def values(self, name: str, frame_ids: Iterable[int]) -> dict[int, float | None]:
        """A weight's value on each of ``frame_ids``: a built-in weight's stored value, or a defined
        weight's expression evaluated over these frames together (``norm()`` is relative to them).

        Raises
        ------
        ObsdbError
            For a name that is neither built in nor defined.
        """
        from sqlalchemy import select

        from obsdb.catalog.models import Frame, FrameMetrics, FrameStats, FrameWeight, Night

        ids = list(frame_ids)
        with self.db.session() as session:
            if name.lower() in BUILT_IN:
                column = getattr(FrameWeight, BUILT_IN[name.lower()])
                query = select(FrameWeight.frame_id, column).where(FrameWeight.frame_id.in_(ids))
            else:
                definition = self._definition(session, name)
                from obsdb.catalog.expr import compile_number

                # The set is every frame asked for, in one query: norm() needs all of them at once.
                query = (select(Frame.id, compile_number(definition.expression)).select_from(Frame)
                         .join(Night, Night.id == Frame.night_id)
                         .outerjoin(FrameStats, FrameStats.frame_id == Frame.id)
                         .outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
                         .where(Frame.id.in_(ids)))
            found = {frame_id: (None if value is None else float(value))
                     for frame_id, value in session.execute(query)}
        return {i: found.get(i) for i in ids}

    def expression_of(self, name: str) -> str:
        """The text of a weight: a defined weight's expression, or the built-in weight's column name."""
        if name.lower() in BUILT_IN:
            return "w_" + BUILT_IN[name.lower()]
        with self.db.session() as session:
            return self._definition(session, name).expression

    def define(self, name: str, expression: str, *, author: str) -> dict:
        """Define (or redefine) a weight by name, after checking that the expression compiles.

        Raises
        ------
        ObsdbError
            For a name that is badly formed or built in, or an expression that does not compile
            (:class:`obsdb.catalog.expr.ExpressionError`).
        """
        from sqlalchemy import select

        from obsdb.catalog.expr import compile_number
        from obsdb.catalog.models import WeightExpression, utcnow
        from obsdb.catalog.writes import record_event

        if not NAME_PATTERN.match(name or ""):
            raise ObsdbError(f"weight name {name!r}: a letter, then up to 39 letters, digits, _ or -")
        if name.lower() in BUILT_IN:
            raise ObsdbError(f"weight name {name!r}: a built-in weight has that name "
                             f"({', '.join(sorted(k for k in BUILT_IN if not k.startswith('w_')))})")
        compile_number(expression)
        with self.db.session() as session:
            row = session.scalars(select(WeightExpression).where(WeightExpression.name == name)).first()
            before = row.expression if row else None
            if row is None:
                row = WeightExpression(name=name, expression=expression, author=author)
                session.add(row)
            else:
                row.expression, row.author, row.created_at = expression, author, utcnow()
            record_event(session, author, "weight", f"weight {name} = {expression}"
                         + (f" (was {before})" if before and before != expression else ""),
                         details={"name": name, "expression": expression, "before": before})
            session.flush()
            return _definition_dict(row)

    def definitions(self) -> list[dict]:
        """Every defined weight, by name."""
        from sqlalchemy import select

        from obsdb.catalog.models import WeightExpression

        with self.db.session() as session:
            return [_definition_dict(row) for row in
                    session.scalars(select(WeightExpression).order_by(WeightExpression.name))]

    def definition(self, name: str) -> dict:
        """One defined weight (ObsdbError naming the defined ones when there is none of that name)."""
        with self.db.session() as session:
            return _definition_dict(self._definition(session, name))

    @staticmethod
    def _definition(session, name: str):
        from sqlalchemy import select

        from obsdb.catalog.models import WeightExpression

        row = session.scalars(select(WeightExpression).where(WeightExpression.name == name)).first()
        if row is None:
            known = list(session.scalars(select(WeightExpression.name).order_by(WeightExpression.name)))
            built_in = ", ".join(k for k in BUILT_IN if not k.startswith("w_"))
            raise ObsdbError(f"weight {name!r}: not defined (built in: {built_in}; defined: "
                             f"{', '.join(known) or 'none'}; define one with `obsdb weight define NAME EXPR`)")
        return row


def _definition_dict(row) -> dict:
    return {"name": row.name, "expression": row.expression, "author": row.author,
            "defined_at": row.created_at.isoformat() if row.created_at else None}
