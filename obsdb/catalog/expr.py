"""`obsdb frames --where` and weight expressions as SQLAlchemy expressions.

The language, its limits and its types are :mod:`obsdb.catalog.where_lang`'s (one compiler, written
once); this module is its SQLAlchemy builder, used by every command that filters frames.  The query
commands' fast path writes the same compilation as SQL text (:mod:`obsdb.catalog.where_text`), from the
texts of the names this builder makes (compiled into the generated modules), and a test runs both on
random expressions and compares the frames they select.  The language's examples and rules are in
:mod:`obsdb.catalog.where_lang`.
"""

from __future__ import annotations

import operator

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, Numeric, String, and_, cast, func, literal
from sqlalchemy import not_, or_, type_coerce
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from obsdb.catalog.models import Frame, FrameMetrics, FrameStats, FrameWeight, NinaImage, Night, ShiftStep
from obsdb.catalog.where_lang import (  # noqa: F401  (the language's names, re-exported)
    _BOOL, _NUMBER, _TEXT, _TIME, ALIGN_COLUMNS, FRAME_COLUMNS, FUNCTIONS, MAX_ARITHMETIC,
    MAX_DEPTH, MAX_LENGTH, MAX_NODES, MAX_NUMBER, METRICS_COLUMNS, MIN_FRACTION, NINA_COLUMNS, STATS_COLUMNS,
    UNPREFIXED, WEIGHT_COLUMNS, Builder, ExpressionError, _measure, check_bare_keywords, compile_number_with,
    compile_with, header_sql, quote_bare_dates)

_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


class _HeaderValue(FunctionElement):
    """A header keyword's value of one kind (:data:`obsdb.catalog.where_lang.HEADER_SQL`)."""

    inherit_cache = True
    kind = ""


class _HeaderNumber(_HeaderValue):
    type = Float()
    inherit_cache = True
    name = "header_number"
    kind = _NUMBER


class _HeaderBoolean(_HeaderValue):
    type = Boolean()
    inherit_cache = True
    name = "header_boolean"
    kind = _BOOL


class _HeaderText(_HeaderValue):
    type = String()
    inherit_cache = True
    name = "header_text"
    kind = _TEXT


class _HeaderPresent(_HeaderValue):
    """Whether a header holds a keyword (whatever its value)."""

    type = Boolean()
    inherit_cache = True
    name = "header_present"
    kind = "present"


class _Bracket(FunctionElement):
    """``(condition)`` as one operand: ``and_``/``or_`` flatten nested chains, and brackets are what keep
    a long chain shallow for SQLite (see :data:`obsdb.catalog.where_lang._FLAT`)."""

    type = Boolean()
    inherit_cache = True
    name = "bracket"


@compiles(_HeaderValue)
def _header_value(element, compiler, **kw):
    header, key = element.clauses.clauses
    # The key is rendered at each use: positional drivers (SQLite) bind one value per placeholder.
    return header_sql(compiler.dialect.name, element.kind, compiler.process(header, **kw),
                      lambda: compiler.process(key, **kw))


@compiles(_Bracket)
def _bracket(element, compiler, **kw):
    return f"({compiler.process(element.clauses, **kw)})"


def _kind_of(sql) -> str:
    """The kind (:data:`obsdb.catalog.where_lang._NUMBER` ...) of a column or SQL expression, from its SQL type."""
    sql_type = sql.type
    sql_type = getattr(sql_type, "impl_instance", sql_type)  # a TypeDecorator (UtcDateTime): what it stores
    if isinstance(sql_type, Boolean):
        return _BOOL
    if isinstance(sql_type, DateTime):
        return _TIME
    if isinstance(sql_type, (Integer, Float, Numeric)):
        return _NUMBER
    if isinstance(sql_type, String):
        return _TEXT
    raise TypeError(f"no --where kind for the SQL type {sql_type!r}")  # a programming error: a new column's type


def _number_literal(value):
    """A bound number typed by itself: bound against an INTEGER column, PostgreSQL would cast
    3000000000 to a 32-bit integer and fail."""
    return literal(value, BigInteger() if isinstance(value, int) else Float())


def _current_run_value(aggregate, column):
    """``aggregate(column)`` over the frame's steps in its current run (the newest run with steps for it)."""
    from sqlalchemy import select
    from sqlalchemy.orm import aliased

    from obsdb.catalog.runs import current_run_of_frame

    step = aliased(ShiftStep)
    return (select(aggregate(getattr(step, column))).where(step.frame_id == Frame.id,
                                                           step.run_id == current_run_of_frame())
            .correlate(Frame).scalar_subquery())


def _joined_value(model, column: str):
    """A frame's value in a table of one row per frame (N.I.N.A.'s, the weights'), as a subquery."""
    from sqlalchemy import select

    return (select(getattr(model, column)).where(model.frame_id == Frame.id).correlate(Frame)
            .scalar_subquery())


class SqlAlchemyBuilder(Builder):
    """The SQLAlchemy builder of :func:`obsdb.catalog.where_lang.compile_with`: SQLAlchemy elements over
    Frame, Night, FrameStats and FrameMetrics (the query outer-joins the last two)."""

    def name(self, key: str):
        table, _, name = key.partition(".")
        if table == "frame":
            sql = Night.name if name == "night" else getattr(Frame, FRAME_COLUMNS[name])
        elif table in ("stats", "metrics"):
            sql = getattr(FrameStats if table == "stats" else FrameMetrics, name)
        elif table == "align":
            # Built only when an expression names one: the subqueries cost 20 ms at import, on every command.
            aggregate, column = ALIGN_COLUMNS[name]
            return _current_run_value(getattr(func, aggregate), column), _NUMBER
        elif table == "nina":
            return _joined_value(NinaImage, NINA_COLUMNS[name]), _NUMBER
        elif table == "weight":
            return _joined_value(FrameWeight, WEIGHT_COLUMNS[name]), _NUMBER
        else:
            raise KeyError(key)
        return sql, _kind_of(sql)

    def header(self, key: str, kind: str):
        element = {_NUMBER: _HeaderNumber, _BOOL: _HeaderBoolean}.get(kind, _HeaderText)
        return element(Frame.header, literal(key, String()))

    def number(self, value):
        return _number_literal(value)

    def constant(self, value, kind: str):
        return value  # bound by SQLAlchemy as the type of what it is compared with

    def compare(self, op: str, left, right):
        return _COMPARE[op](left, right)

    def is_null(self, value, negated: bool):
        return value.is_not(None) if negated else value.is_(None)

    def in_(self, value, items: list):
        return value.in_(items)

    def not_(self, condition):
        return not_(condition)

    def and_(self, *conditions):
        return and_(*conditions)

    def or_(self, *conditions):
        return or_(*conditions)

    def bracket(self, condition):
        return _Bracket(condition)

    def arithmetic(self, op: str, left, right):
        return _ARITH[op](left, right)

    def negative(self, value):
        return -value

    def divisor(self, value):
        return type_coerce(func.nullif(value, 0), Float())

    def as_float(self, value):
        return cast(value, Float()) if isinstance(value.type, Integer) else value

    def function(self, name: str, value):
        if name == "abs":
            return func.abs(value)
        if name == "sqrt":
            from sqlalchemy import case

            return type_coerce(func.sqrt(case((value >= 0, value))), Float())
        low, high = func.min(value).over(), func.max(value).over()
        return (value - low) / type_coerce(func.nullif(high - low, 0), Float())


def compile_expression(text: str, bare_keywords: list | None = None):
    """Compile ``text`` into a SQLAlchemy boolean expression over Frame, FrameStats, FrameMetrics.

    The query must outer-join ``FrameStats`` and ``FrameMetrics``.  The limits and
    typing rules are in :mod:`obsdb.catalog.where_lang`.

    Parameters
    ----------
    text : str
        The expression as typed, e.g. ``"fwhm > 3 and EXPTIME >= 30"``.
    bare_keywords : list, optional
        Receives ``(keyword, column, text)`` for each header keyword written as a
        bare name, for :func:`check_bare_keywords` (a typo, or a string left unquoted).

    Returns
    -------
    sqlalchemy.sql.ColumnElement
        A boolean condition for a WHERE clause.

    Raises
    ------
    ExpressionError
        For an empty, malformed, too large or ill-typed expression, with the
        column of the offending part where there is one.
    """
    return compile_with(SqlAlchemyBuilder(), text, bare_keywords)


def compile_number(text: str):
    """Compile a weight expression: a number per frame, from the ``--where`` language's names and
    arithmetic plus the functions of :data:`FUNCTIONS`.

    The query must outer-join ``FrameStats`` and ``FrameMetrics`` (as for :func:`compile_expression`);
    ``norm()`` is taken over the rows the query selects.

    Examples
    --------
    >>> compile_number("w_noise * w_fwhm") is not None
    True
    """
    return compile_number_with(SqlAlchemyBuilder(), text)


def header_has(key):
    """SQL: the frame's header holds ``key`` (any value; a string, or a bound parameter)."""
    return _HeaderPresent(Frame.header, key if not isinstance(key, str) else literal(key, String()))
