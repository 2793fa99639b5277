"""`--where` expressions as SQL text, for the query commands' fast path (:mod:`obsdb.catalog.lite`).

The language is :mod:`obsdb.catalog.where_lang`'s: the same compiler checks it and its types and
asks a builder for each part, here :class:`TextBuilder`, which writes SQL text instead of
SQLAlchemy elements, so that ``obsdb frames --where ...`` never imports SQLAlchemy.  Nothing the
user typed reaches the text: names become the SQL text compiled from the SQLAlchemy builder's own
expressions (``WHERE_NAMES`` of the generated :mod:`obsdb.catalog.lite_sql` and
:mod:`obsdb.catalog.pg_sql`), header keywords and constants become bound parameters, and the
operators and functions are this module's.  A test runs random expressions through both builders on
SQLite and PostgreSQL and compares the frames they select.
"""

from __future__ import annotations

from datetime import datetime, timezone

from obsdb.catalog.where_lang import _BOOL, _NUMBER, _TEXT, _TIME, Builder, compile_with, header_sql

_OR, _AND, _NOT, _COMPARISON, _SUM, _PRODUCT, _SIGN, _ATOM = range(1, 9)
"""Operator precedence, loosest first: an operand of a tighter operator is bracketed."""

_OPERATORS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

_POSTGRES_CASTS = {int: "::BIGINT", float: "::FLOAT", str: "::VARCHAR", bool: "::BOOLEAN",
                   datetime: "::TIMESTAMP WITH TIME ZONE"}
"""The type each bound value is cast to on PostgreSQL, as SQLAlchemy's psycopg dialect writes them: psycopg2
sends values as literals, and ``number > 2.5`` must compare in double precision as SQLAlchemy's path does."""

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy stores a timestamp in SQLite (naive UTC text), which a date is compared with."""


class _Sql:
    """SQL text, the precedence of its outermost operator, and whether it holds integers."""

    __slots__ = ("text", "precedence", "integer")

    def __init__(self, text: str, precedence: int = _ATOM, integer: bool = False):
        self.text, self.precedence, self.integer = text, precedence, integer

    def at(self, precedence: int) -> str:
        """The text as an operand of an operator of ``precedence`` (bracketed where it binds looser)."""
        return self.text if self.precedence >= precedence else f"({self.text})"


class TextBuilder(Builder):
    """SQL text of an expression for ``database`` (``sqlite`` or ``postgresql``), over the tables of a
    frame listing (``frame``, ``night``, ``frame_stats``, ``frame_metrics``); the bound values are
    collected in :attr:`values`.

    Parameters
    ----------
    database : str
        ``sqlite`` or ``postgresql``.
    generated : module
        The generated module of that database (``WHERE_NAMES``, ``PLACEHOLDER``).
    """

    PREFIX = "where_"
    """The names of the bound parameters (``where_0``, ...): none of the statement's own."""

    def __init__(self, database: str, generated):
        self.database = database
        self.names = generated.WHERE_NAMES
        self.placeholder = generated.PLACEHOLDER
        self.values: dict[str, object] = {}

    def bind(self, value) -> _Sql:
        """A bound parameter holding ``value`` (cast on PostgreSQL as SQLAlchemy casts it)."""
        name = f"{self.PREFIX}{len(self.values)}"
        cast = ""
        if self.database == "postgresql":
            cast = _POSTGRES_CASTS[type(value)]
        self.values[name] = value
        return _Sql(self.placeholder.format(name) + cast)

    def name(self, key: str):
        sql, kind, integer = self.names[key]
        return _Sql(sql, _ATOM, integer), kind

    def header(self, key: str, kind: str):
        keyword = self.bind(key)
        kind = kind if kind in (_NUMBER, _BOOL) else _TEXT
        return _Sql(header_sql(self.database, kind, "frame.header", lambda: keyword.text))

    def number(self, value):
        return self.bind(value)

    def constant(self, value, kind: str):
        if kind == _TIME:
            # As UtcDateTime binds it: naive values are UTC; SQLite compares its stored text.
            value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
            value = value.replace(tzinfo=None).strftime(SQLITE_TIME) if self.database == "sqlite" else value
        elif kind == _BOOL and self.database == "sqlite":
            value = int(value)
        return self.bind(value)

    def compare(self, op: str, left, right):
        return _Sql(f"{left.at(_SUM)} {_OPERATORS[op]} {right.at(_SUM)}", _COMPARISON)

    def is_null(self, value, negated: bool):
        return _Sql(f"{value.at(_SUM)} IS {'NOT ' if negated else ''}NULL", _COMPARISON)

    def in_(self, value, items: list):
        if not items:  # as SQLAlchemy's empty IN: false, whatever the value (NULL too)
            return _Sql("1 != 1", _COMPARISON)
        return _Sql(f"{value.at(_SUM)} IN ({', '.join(item.text for item in items)})", _COMPARISON)

    def not_(self, condition):
        return _Sql(f"NOT {condition.at(_ATOM)}", _NOT)

    def and_(self, *conditions):
        return _Sql(" AND ".join(c.at(_NOT) for c in conditions), _AND)

    def or_(self, *conditions):
        return _Sql(" OR ".join(c.at(_AND) for c in conditions), _OR)

    def bracket(self, condition):
        return _Sql(f"({condition.text})")

    def arithmetic(self, op: str, left, right):
        if op in "+-":
            return _Sql(f"{left.at(_SUM)} {op} {right.at(_PRODUCT)}", _SUM)
        return _Sql(f"{left.at(_PRODUCT)} {op} {right.at(_SIGN)}", _PRODUCT)

    def negative(self, value):
        # Bracketed unless a column or a parameter: "--" would start a comment.
        return _Sql(f"-{value.at(_ATOM)}", _SIGN)

    def divisor(self, value):
        if self.database == "sqlite":
            return _Sql(f"(nullif({value.text}, 0) + 0.0)")
        return _Sql(f"CAST(nullif({value.text}, 0) AS FLOAT)")

    def as_float(self, value):
        return _Sql(f"CAST({value.text} AS FLOAT)") if value.integer else value

    def function(self, name: str, value):
        if name == "abs":
            return _Sql(f"abs({value.text})")
        if name == "sqrt":
            return _Sql(f"sqrt(CASE WHEN {value.at(_SUM)} >= 0 THEN {value.text} END)")
        raise NotImplementedError(f"{name}() is a weight's function, not a WHERE clause's")


def compile_where(text: str, database: str, generated) -> tuple[str, dict, list]:
    """``text`` as a WHERE condition of a frame listing on ``database``, for the fast path.

    Parameters
    ----------
    text : str
        The ``--where`` expression as typed.
    database : str
        ``sqlite`` or ``postgresql``.
    generated : module
        That database's generated module (:mod:`obsdb.catalog.lite_sql`, :mod:`obsdb.catalog.pg_sql`).

    Returns
    -------
    sql : str
        The condition, every value in it a bound parameter.
    values : dict
        The parameters' values.
    bare_keywords : list
        The header keywords written as bare names, for
        :func:`obsdb.catalog.where_lang.check_bare_keywords`.

    Raises
    ------
    ExpressionError
        As :func:`obsdb.catalog.expr.compile_expression` does, with the same message.
    """
    builder = TextBuilder(database, generated)
    bare: list = []
    condition = compile_with(builder, text, bare)
    return condition.text, builder.values, bare
