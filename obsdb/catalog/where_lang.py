"""A small, safe expression language for `obsdb frames --where`.

The text is parsed with Python's own parser (``ast``, eval mode) and only a
whitelist of nodes is compiled, by one compiler (:func:`compile_with`) that checks the language
and its types and hands each part to a *builder*: :mod:`obsdb.catalog.expr` builds SQLAlchemy
expressions (every command), :mod:`obsdb.catalog.where_text` builds the SQL text the query
commands' fast path runs without SQLAlchemy, every value a bound parameter.  This module imports
neither SQLAlchemy nor the models.  Names resolve, case-insensitively, to frame columns, pixel
statistics and quality metrics; any other name is a header keyword
(``EXPTIME``, ``FILTER``); keywords that are not identifiers are written
``header["DATE-OBS"]``.

Examples::

    EXPTIME >= 30 and band in ('V', 'B') and median > 5000
    fwhm > 2 * hfd or not readable
    header["CCD-TEMP"] < -10
    align_matches < 20 or align_rms > 0.1
    status == 'rejected' and fwhm < 3

Limits and types, so that no text can make obsdb or the database work hard or fail
other than with a one-line :class:`ExpressionError`:

- at most :data:`MAX_LENGTH` characters, :data:`MAX_NODES` parts, :data:`MAX_DEPTH`
  levels of nesting and :data:`MAX_ARITHMETIC` arithmetic operators;
- numbers within the 64-bit integer range (:data:`MAX_NUMBER`), non-zero fractions
  no smaller than :data:`MIN_FRACTION`;
- arithmetic on numbers only (``'x' * 3`` is refused); arithmetic on constants alone
  is done here, within those bounds; division by zero in the data gives NULL
  (unknown), as SQLite does;
- a comparison compares like with like (numbers, text, True/False, dates:
  ``date_obs > '2026-03-14'``) and names at least one column or header keyword:
  ``1 < 2`` or ``'a' in ('a',)`` is an error, not "every frame";
- a header keyword takes the type of what it is compared with; a value of another
  type (``OBSERVER > 3`` where OBSERVER is a name) is NULL, so the frame is not selected;
- a column alone is true when set: a number other than 0, text other than '', any date.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import warnings
from datetime import datetime

from obsdb.errors import ObsdbError

MAX_LENGTH = 10_000
"""Longest expression, in characters.  Real ones fit on a line; the bound keeps parsing cheap."""

MAX_DEPTH = 20
"""Deepest nesting of sub-expressions (``and`` in ``or``, ``not``, comparisons, arithmetic), counted
on Python's parse tree.  1,000 nested ``not`` exhausted Python's stack, but SQLite's parser is the
narrower bound: it holds about 100 pending tokens (YYSTACKDEPTH), and ``a or (b and (c or ...))``
with a registration column at the bottom failed at 27 levels inside ``render``'s nested subqueries.
20 leaves room for the brackets of long chains (:data:`_FLAT`).  ``not not`` and ``- -`` fold away."""

MAX_NODES = 2_000
"""Most parts (names, constants, operations) in one expression: bounds the SQL and its
parameters (SQLite takes 32,766) whatever the shape."""

MAX_ARITHMETIC = 10
"""Most arithmetic operators in one expression.  PostgreSQL fails a query whose double-precision
arithmetic overflows (SQLite gives infinity); with numbers bounded by :data:`MAX_NUMBER` and
:data:`MIN_FRACTION`, ten operators reach 1e308 only on data values beyond 1e100."""

MAX_NUMBER = 2**63 - 1
"""Largest magnitude of a number, written or computed: a 64-bit integer.  SQLite and PostgreSQL
refuse bigger integers as parameters (``median > 99999999999999999999999`` overflowed in the driver)."""

MIN_FRACTION = 1e-18
"""Smallest magnitude of a non-zero number, written or computed (see :data:`MAX_ARITHMETIC`)."""

_FLAT = 256
"""Longest ``and``/``or`` chain sent as one flat list; longer ones are bracketed halves.  SQLite
parses ``a AND b AND ...`` into a tree as deep as the chain is long and refuses depth 1,000
(1,100 ``and`` terms failed); each level of brackets costs its parser three tokens (:data:`MAX_DEPTH`)."""

_NUMBER, _TEXT, _BOOL, _TIME, _NULL = "a number", "text", "True/False", "a date", "None"
"""The kinds of value a comparison may relate; each is compared only with its own kind."""

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""Characters an expression may not hold: controls (tabs and newlines become spaces first),
line separators and lone surrogates (undecodable bytes of a command line)."""


class ExpressionError(ObsdbError, ValueError):
    """A malformed expression; the message points at the problem."""

    def __init__(self, text: str, message: str, column: int | None = None):
        where = f" at column {column + 1}" if column is not None else ""
        pointer = ""
        if column is not None:
            pointer = f": {text[:column]}▶{text[column:]}"
        super().__init__(f"{message}{where}{pointer}")
        self.column = column


FRAME_COLUMNS = {
    "id": "id", "number": "number", "path": "path", "file_name": "file_name", "name": "file_name", "band": "band",
    "type": "image_type", "image_type": "image_type", "object": "object", "exptime": "exptime",
    "date_obs": "date_obs", "airmass": "airmass", "width": "width", "height": "height", "bitpix": "bitpix",
    "size": "size", "readable": "readable", "sha256": "sha256", "error": "error", "night": "night",
    "status": "status",
}
"""A frame's names and the column of table ``frame`` each reads (``night`` is the night's name).
``status`` is the frame's accepted / rejected / pending as ``--status`` reads it: the column kept in the
same transaction as every tag, retraction and verdict (:func:`obsdb.catalog.status.verdict`'s rule; a
test checks the column against the rule evaluated afresh)."""
STATS_COLUMNS = {name: name for name in (
    "min", "max", "mean", "median", "std", "background", "background_rms", "n_nan", "n_saturated", "saturation")}
"""Pixel statistics (table ``frame_stats``)."""
METRICS_COLUMNS = {name: name for name in (
    "n_stars", "fwhm", "hfd", "elongation", "background", "background_rms", "background_gradient", "transparency",
    "n_streaks")}
"""Quality metrics (table ``frame_metrics``)."""

ALIGN_COLUMNS = {"align_matches": ("max", "n_matched"), "align_rms": ("max", "residual_rms"),
                 "align_dx": ("sum", "dx"), "align_dy": ("sum", "dy"), "align_rotation": ("sum", "rotation_deg")}
"""The current registration's confidence and shift: star pairs kept in the fit, its residual RMS (px),
and the summed shift and rotation of the current run (NULL for frames never registered), each the
aggregate of a column of ``shift_step``."""

NINA_COLUMNS = {"nina_hfr": "hfr", "nina_stars": "detected_stars", "nina_fwhm": "fwhm",
                "guiding_rms": "guiding_rms_arcsec", "guiding_rms_px": "guiding_rms",
                "focuser_position": "focuser_position", "focuser_temp": "focuser_temp", "camera_temp": "camera_temp"}
"""N.I.N.A.'s values joined by ``obsdb import nina`` (table ``nina_image``): HFR (px), star count, FWHM,
total guiding RMS in arcsec (``guiding_rms``) or guide-camera px, focuser position (steps) and
temperatures (C).  NULL for frames without an imported row."""

WEIGHT_COLUMNS = {"w_noise": "noise", "w_fwhm": "fwhm", "w_stars": "stars", "w_snr": "snr", "snr": "snr_value"}
"""A frame's stored weights (:class:`obsdb.catalog.models.FrameWeight`, written by `obsdb qa`): Siril's
noise, weighted-FWHM and star-count weights and the S/N weight, each of mean 1 over the frame's set,
and ``snr``, the S/N the last one squares.  NULL for a frame never weighted."""

FUNCTIONS = {"abs": "the magnitude of a number", "sqrt": "the square root (NULL below 0)",
             "norm": "min-max normalised over the frames weighed together: (x - min) / (max - min), "
                     "PixInsight SubframeSelector's normalisation (weight expressions only)"}
"""Functions of one number that expressions may call (``norm`` only in a weight expression: it is
relative to the set of frames, which a WHERE clause cannot see)."""

UNPREFIXED = {**{name: f"metrics.{name}" for name in METRICS_COLUMNS},
              **{name: f"stats.{name}" for name in STATS_COLUMNS},
              **{name: f"frame.{name}" for name in FRAME_COLUMNS}}
"""Bare names and the key (:data:`NAME_KEYS`) each reads: frame columns first, then stats
(``background`` is the pixel statistic; the metric is ``metrics.background``), then metrics."""

NAME_KEYS = (*(f"frame.{name}" for name in FRAME_COLUMNS), *(f"stats.{name}" for name in STATS_COLUMNS),
             *(f"metrics.{name}" for name in METRICS_COLUMNS), *(f"align.{name}" for name in ALIGN_COLUMNS),
             *(f"nina.{name}" for name in NINA_COLUMNS),
             *(f"weight.{name}" for name in WEIGHT_COLUMNS))
"""Every value an expression can name, as ``table.name``: what a builder's ``name(key)`` resolves (the
fast path's generated modules hold each one's SQL text, :mod:`obsdb.catalog.statements`)."""

_PREFIXED = {"frame": FRAME_COLUMNS, "stats": STATS_COLUMNS, "metrics": METRICS_COLUMNS}
"""The prefixes a name may be written with (``stats.median``, ``metrics.background``, ``frame.band``)."""

ALL_NAMES = sorted([*UNPREFIXED, *ALIGN_COLUMNS, *NINA_COLUMNS, *WEIGHT_COLUMNS])
"""Every bare name, for messages."""

_COMPARE = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_FOLD = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
"""Arithmetic on constants alone, done here (within :data:`MAX_NUMBER`)."""
_SPACES = str.maketrans("\t\n\r\f\v", "     ")

HEADER_SQL = {
    ("sqlite", _NUMBER): "CASE WHEN json_type({h}, '$.\"' || {k} || '\"') IN ('integer', 'real') "
                         "THEN json_extract({h}, '$.\"' || {k} || '\"') END",
    ("postgresql", _NUMBER): "CASE WHEN jsonb_typeof({h} -> {k}) = 'number' THEN CAST({h} ->> {k} AS FLOAT) END",
    ("sqlite", _BOOL): "CASE json_type({h}, '$.\"' || {k} || '\"') WHEN 'true' THEN 1 WHEN 'false' THEN 0 END",
    ("postgresql", _BOOL): "CASE WHEN jsonb_typeof({h} -> {k}) = 'boolean' THEN CAST({h} ->> {k} AS BOOLEAN) END",
    ("sqlite", _TEXT): "CAST(json_extract({h}, '$.\"' || {k} || '\"') AS VARCHAR)",
    ("postgresql", _TEXT): "CAST(({h} ->> {k}) AS VARCHAR)",
    ("sqlite", "present"): "(json_type({h}, '$.\"' || {k} || '\"') IS NOT NULL)",
    ("postgresql", "present"): "({h} ? {k})",
}
"""A header keyword's value as a number, True/False or text (NULL where it holds another type), and
whether the header holds it at all, in each database's SQL: ``{h}`` the header column, ``{k}`` the
keyword (a bound parameter).  PostgreSQL fails the whole query on ``CAST('nico' AS FLOAT)`` and SQLite
turns it into 0: both would misjudge ``OBSERVER > -1``, hence the type tests.  Both builders write
these texts (:func:`header_sql`)."""


def header_sql(database: str, kind: str, header: str, key) -> str:
    """The SQL of :data:`HEADER_SQL` for ``kind`` (:data:`_NUMBER`, :data:`_BOOL`, :data:`_TEXT`, or
    ``present``) on ``database``; ``key()`` renders the keyword's parameter at each use (a positional
    driver binds one value per placeholder)."""
    template = HEADER_SQL[database if database == "postgresql" else "sqlite", kind].replace("{h}", header)
    first, *rest = template.split("{k}")
    return first + "".join(key() + piece for piece in rest)

class _Const:
    """A constant of the expression: a Python number, string, bool or None, and where it was written."""

    __slots__ = ("value", "node")

    def __init__(self, value, node):
        self.value, self.node = value, node

    @property
    def kind(self) -> str:
        if self.value is None:
            return _NULL
        if isinstance(self.value, bool):
            return _BOOL
        return _TEXT if isinstance(self.value, str) else _NUMBER


class _Sql:
    """A builder's SQL for a named value or an expression of them, its kind, and the key of the name."""

    __slots__ = ("sql", "kind", "key")

    def __init__(self, sql, kind: str, key: str | None = None):
        self.sql, self.kind, self.key = sql, kind, key


class _Header:
    """A header keyword, whose SQL type is decided by what it is compared with."""

    kind = "a header keyword"

    def __init__(self, key: str):
        self.key = key


class Builder:
    """What the compiler asks of a builder: SQL for each part of an expression, in the builder's own
    representation (SQLAlchemy elements, or SQL text).  The compiler has checked the language and the
    types before it asks; a builder only writes.

    ``op`` is one of ``== != < <= > >=`` (:meth:`compare`) or ``+ - * /`` (:meth:`arithmetic`).
    """

    def name(self, key: str):
        """``(sql, kind)`` of a name of :data:`NAME_KEYS`."""
        raise NotImplementedError

    def header(self, key: str, kind: str):
        """A header keyword's value as ``kind`` (:data:`HEADER_SQL`; text for any other kind)."""
        raise NotImplementedError

    def number(self, value):
        """A number, typed by itself (a 64-bit integer or a double)."""
        raise NotImplementedError

    def constant(self, value, kind: str):
        """A text, True/False or a date (a naive datetime, UTC) compared with a value of ``kind``."""
        raise NotImplementedError

    def compare(self, op: str, left, right):
        raise NotImplementedError

    def is_null(self, value, negated: bool):
        raise NotImplementedError

    def in_(self, value, items: list):
        """``value IN (items)``; an empty list selects nothing."""
        raise NotImplementedError

    def not_(self, condition):
        raise NotImplementedError

    def and_(self, *conditions):
        raise NotImplementedError

    def or_(self, *conditions):
        raise NotImplementedError

    def bracket(self, condition):
        """``(condition)`` as one operand (see :data:`_FLAT`)."""
        raise NotImplementedError

    def arithmetic(self, op: str, left, right):
        raise NotImplementedError

    def negative(self, value):
        raise NotImplementedError

    def divisor(self, value):
        """A divisor: NULL for 0, as SQLite does (PostgreSQL would fail the query), in double precision."""
        raise NotImplementedError

    def as_float(self, value):
        """A number in double precision: an integer cast (integer arithmetic overflows, an error on
        PostgreSQL), anything else as it is."""
        raise NotImplementedError

    def function(self, name: str, value):
        """``abs``, ``sqrt`` (NULL below 0 on both databases) or ``norm`` of :data:`FUNCTIONS`."""
        raise NotImplementedError


def _balanced(builder: Builder, combine, parts):
    """``combine(*parts)``, as bracketed halves when there are more than :data:`_FLAT` parts."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) <= _FLAT:
        return combine(*parts)
    middle = len(parts) // 2
    return combine(builder.bracket(_balanced(builder, combine, parts[:middle])),
                   builder.bracket(_balanced(builder, combine, parts[middle:])))

def _measure(tree) -> tuple[int, int]:
    """The number of sub-expressions of ``tree`` and how deep they nest, without recursion."""
    nodes, deepest, stack = 0, 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr))
    return nodes, deepest


def _parse(text: str):
    """The checked text and its parse tree (the limits of the module docstring), or an ExpressionError."""
    if not text or not text.strip():
        raise ExpressionError(text or "", "empty expression (write a condition, e.g. exptime >= 30)")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(text, f"the expression is {len(text):,} characters long; the limit is {MAX_LENGTH:,}")
    text = text.translate(_SPACES)
    bad = _UNPRINTABLE.search(text)
    if bad:
        raise ExpressionError(text, f"the character U+{ord(bad.group()):04X} at column {bad.start() + 1} "
                                    f"is not allowed in an expression")
    text = quote_bare_dates(text).strip()
    try:
        with warnings.catch_warnings():
            # Python's own warnings about its source ("invalid escape sequence") are not the user's business.
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        message = " ".join(str(exc.msg).split())
        if "integer string conversion" in message:
            raise ExpressionError(text, f"a number beyond the 64-bit range (±{MAX_NUMBER})") from None
        detail = "" if message == "invalid syntax" else f" ({message})"
        if not exc.offset:
            # Python gives no column when the text ends before the expression does ("fwhm >").
            detail = detail or " (the expression ends too early)"
            column = len(text)
        else:
            column = min(max(exc.offset - 1, 0), len(text))
        raise ExpressionError(text, f"invalid syntax{detail}", column) from None
    except (RecursionError, MemoryError):
        # Python's parser gives up on a few thousand nested signs or brackets, with these.
        raise ExpressionError(text, f"the expression nests too deeply (the limit is {MAX_DEPTH} levels)") from None
    nodes, depth = _measure(tree.body)
    if nodes > MAX_NODES:
        raise ExpressionError(text, f"the expression has {nodes:,} parts; the limit is {MAX_NODES:,}")
    if depth > MAX_DEPTH:
        raise ExpressionError(text, f"the expression nests {depth} levels deep; the limit is {MAX_DEPTH}")
    return text, tree


def compile_with(builder: Builder, text: str, bare_keywords: list | None = None):
    """Compile the condition ``text`` with ``builder``: the builder's boolean SQL for a WHERE clause.

    The limits and typing rules are in the module docstring.

    Parameters
    ----------
    builder : Builder
        Writes the SQL (:class:`obsdb.catalog.expr.SqlAlchemyBuilder`,
        :class:`obsdb.catalog.where_text.TextBuilder`).
    text : str
        The expression as typed, e.g. ``"fwhm > 3 and EXPTIME >= 30"``.
    bare_keywords : list, optional
        Receives ``(keyword, column, text)`` for each header keyword written as a bare name, for
        :func:`check_bare_keywords` (a typo, or a string left unquoted).

    Raises
    ------
    ExpressionError
        For an empty, malformed, too large or ill-typed expression, with the
        column of the offending part where there is one.
    """
    text, tree = _parse(text)
    compiler = _Compiler(text, builder)
    condition = compiler.boolean(tree.body)
    if bare_keywords is not None:
        # With the text as compiled (spaces for tabs and newlines, dates quoted): the columns are its own.
        bare_keywords.extend((key, column, text) for key, column in compiler.bare_keywords)
    return condition


def compile_number_with(builder: Builder, text: str):
    """Compile the weight expression ``text`` with ``builder``: a number per frame, from the
    ``--where`` language's names and arithmetic plus the functions of :data:`FUNCTIONS`."""
    text, tree = _parse(text)
    compiler = _Compiler(text, builder, set_functions=True)
    node = tree.body
    if isinstance(node, (ast.Compare, ast.BoolOp)) or isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        compiler.fail(node, f"a weight is a number (names, numbers, + - * / and {', '.join(FUNCTIONS)}); "
                            f"{compiler.show(node)} is a condition")
    value = compiler.number_operand(node)
    if isinstance(value, _Const):
        compiler.fail(node, f"{compiler.show(node)} is a constant; a weight names a column or a weight "
                            f"(e.g. w_noise * w_fwhm)")
    return compiler.number_sql(value)

def check_bare_keywords(text: str, keywords, present, known_keys) -> None:
    """Refuse a bare upper-case name that no frame in scope has as a header keyword.

    ``band == V`` and ``FILTR == 'V'`` would otherwise select nothing and say
    nothing.  The message offers the closest keyword of the catalog, or a
    column, and the hint to quote a string.

    Parameters
    ----------
    text : str
        The expression, for the pointer in the message.
    keywords : list of (str, int, str)
        From :func:`compile_expression`'s ``bare_keywords``: keyword, column, the text as compiled.
    present : callable
        ``present(key) -> bool``: some frame in scope has it.
    known_keys : callable
        ``known_keys() -> list of str``: keywords frames in scope have, for the did-you-mean.
    """
    from obsdb.text import closest

    for key, column, *compiled in keywords:
        shown = compiled[0] if compiled else text
        if present(key):
            continue
        names = sorted(set(known_keys()))
        close = closest(key, names, cutoff=0.7)
        column_name = closest(key.lower(), ALL_NAMES, cutoff=0.8)
        hint = (f"did you mean {close}?" if close else
                f"did you mean the column {column_name}?" if column_name else
                f"to compare with the text {key}, quote it: '{key}'")
        raise ExpressionError(shown, f"no catalogued frame has a header keyword {key} ({hint})", column)


_BARE_DATE = re.compile(r"(?<![\w.])(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?)(?![\w.:-])")


def quote_bare_dates(text: str) -> str:
    """``date_obs > 2026-03-14`` means the date, not 2026 minus 3 minus 14: quote such dates.

    Only outside string literals; a quoted date is left as it is.
    """
    pieces = re.split(r"""('[^']*'|"[^"]*")""", text)
    return "".join(piece if piece[:1] in ("'", '"') else _BARE_DATE.sub(r"'\1'", piece) for piece in pieces)


class _Compiler:
    """One expression's compilation: typed values in, the builder's SQL out (see the module docstring)."""

    def __init__(self, text: str, builder: Builder, *, set_functions: bool = False):
        self.text = text
        self.sql = builder
        self.set_functions = set_functions
        """Whether functions over the set of frames (``norm``) are allowed: in a weight, not in WHERE."""
        self.operators = 0
        self.bare_keywords: list[tuple[str, int | None]] = []
        """Header keywords written as bare names (``FILTER``, not ``header["FILTER"]``), with their column."""

    def fail(self, node, message):
        raise ExpressionError(self.text, message, getattr(node, "col_offset", None))

    def show(self, node) -> str:
        """The source text of ``node``, shortened, for a message."""
        segment = ast.get_source_segment(self.text, node) or type(node).__name__
        return segment if len(segment) <= 40 else segment[:37] + "..."

    def boolean(self, node):
        if isinstance(node, ast.BoolOp):
            combine = self.sql.and_ if isinstance(node.op, ast.And) else self.sql.or_
            return _balanced(self.sql, combine, [self.boolean(v) for v in node.values])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            # not not x is x (in three-valued logic too): no nesting is sent for SQLite's parser to hold.
            negated = False
            while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                negated, node = not negated, node.operand
            return self.sql.not_(self.boolean(node)) if negated else self.boolean(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.BinOp, ast.UnaryOp, ast.Constant)):
            return self.truth(self.value(node), node)
        self.fail(node, "expected a comparison (e.g. exptime >= 30)")

    def truth(self, value, node):
        """A value used as a condition: true when set (a number other than 0, text other than '', any date)."""
        if isinstance(value, _Const):
            self.fail(node, f"expected a comparison (e.g. exptime >= 30): {self.show(node)} is a constant; "
                            f"name a column or header keyword")
        if isinstance(value, _Header):
            return self.sql.header(value.key, _BOOL)
        if value.kind == _BOOL:
            return value.sql
        if value.kind == _NUMBER:
            return self.sql.compare("!=", value.sql, self.sql.number(0))
        if value.kind == _TEXT:
            return self.sql.compare("!=", value.sql, self.sql.constant("", _TEXT))
        return self.sql.is_null(value.sql, negated=True)

    def compare(self, node):
        clauses = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators):
            clauses.append(self.one_comparison(left_node, op, right_node))
            left_node = right_node
        return _balanced(self.sql, self.sql.and_, clauses)

    def constants_only(self, left_node, right_node):
        shown = self.text[left_node.col_offset:right_node.end_col_offset]
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        self.fail(left_node, f"{shown} compares constants only; name a column or header keyword "
                             f"(e.g. exptime >= 30)")

    def one_comparison(self, left_node, op, right_node):
        if isinstance(op, (ast.In, ast.NotIn)):
            clause = self.membership(left_node, right_node)
            return self.sql.not_(clause) if isinstance(op, ast.NotIn) else clause
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                self.fail(right_node, "'is' only compares with None")
            left = self.value(left_node)
            if isinstance(left, _Const):
                self.constants_only(left_node, right_node)
            left = self.sql.header(left.key, _NULL) if isinstance(left, _Header) else left.sql
            return self.sql.is_null(left, negated=isinstance(op, ast.IsNot))
        if type(op) not in _COMPARE:
            self.fail(right_node, "unsupported comparison")
        left, right = self.value(left_node), self.value(right_node)
        if isinstance(left, _Const) and isinstance(right, _Const):
            self.constants_only(left_node, right_node)
        if _NULL in (left.kind, right.kind):
            if not isinstance(op, (ast.Eq, ast.NotEq)):
                self.fail(right_node, "None can only be compared with == or !=")
            subject = right if isinstance(left, _Const) else left
            subject = self.sql.header(subject.key, _NULL) if isinstance(subject, _Header) else subject.sql
            return self.sql.is_null(subject, negated=isinstance(op, ast.NotEq))
        kind = self.common_kind(left, left_node, right, right_node)
        if kind == _BOOL and not isinstance(op, (ast.Eq, ast.NotEq)):
            self.fail(right_node, "True and False can only be compared with == or !=")
        return self.sql.compare(_COMPARE[type(op)], self.typed(left, kind, right, left_node),
                                self.typed(right, kind, left, right_node))

    def membership(self, left_node, right_node):
        if not isinstance(right_node, (ast.Tuple, ast.List, ast.Set)):
            self.fail(right_node, "'in' needs a list of values, e.g. band in ('V', 'B')")
        left = self.value(left_node)
        values = [self.value(e) for e in right_node.elts]
        for value, element in zip(values, right_node.elts):
            if not isinstance(value, _Const):
                self.fail(element, "an 'in' list holds numbers, strings, True or False, e.g. band in ('V', 'B')")
            if value.value is None:
                self.fail(element, "None matches nothing in an 'in' list; write ... is None")
        if isinstance(left, _Const):
            self.constants_only(left_node, right_node)
        kind = (values[0].kind if values else _TEXT) if isinstance(left, _Header) else left.kind
        typed = [self.typed(self.matched(value, kind, left, element, left_node), kind, left, element)
                 for value, element in zip(values, right_node.elts)]
        return self.sql.in_(self.sql.header(left.key, kind) if isinstance(left, _Header) else left.sql, typed)

    def common_kind(self, left, left_node, right, right_node) -> str:
        """The kind both sides are compared as, or an error naming both."""
        if isinstance(left, _Header) and isinstance(right, _Header):
            return _NUMBER
        if isinstance(left, _Header) or isinstance(right, _Header):
            header, other, other_node = (left, right, right_node) if isinstance(left, _Header) else (
                right, left, left_node)
            if other.kind == _TIME:
                self.fail(other_node, f"header keywords hold text or numbers: compare {header.key} with a date in "
                                      f"quotes (e.g. '2026-03-14'), not with {self.show(other_node)}")
            return other.kind
        if isinstance(right, _Const):
            self.matched(right, left.kind, left, right_node, left_node)
            return left.kind
        if isinstance(left, _Const):
            self.matched(left, right.kind, right, left_node, right_node)
            return right.kind
        if left.kind != right.kind:
            self.fail(right_node, f"cannot compare {self.show(left_node)} ({left.kind}) "
                                  f"with {self.show(right_node)} ({right.kind})")
        return left.kind

    def matched(self, constant: _Const, kind: str, other, node, other_node) -> _Const:
        """``constant``, checked to be comparable with ``other`` of ``kind`` (a date given as text for a date)."""
        if constant.kind == kind or (kind == _TIME and constant.kind == _TEXT):
            return constant
        self.fail(node, f"cannot compare {self.show(other_node)} ({kind}) with {self.show(node)} ({constant.kind})")

    def typed(self, value, kind: str, other, node):
        """``value`` as the builder's SQL of ``kind``, beside ``other``."""
        if isinstance(value, _Header):
            return self.sql.header(value.key, kind)
        if isinstance(value, _Sql):
            return value.sql
        if kind == _NUMBER:
            return self.sql.number(value.value)
        if kind == _TIME:
            try:
                return self.sql.constant(datetime.fromisoformat(value.value), _TIME)
            except ValueError:
                self.fail(node, f"{self.show(node)} is not a date (write e.g. '2026-03-14' or '2026-03-14T22:05')")
        if kind == _TEXT and isinstance(other, _Sql) and other.key == "frame.night" and _looks_like_date(value.value):
            # A night is named by its date: compare the text of the date, not a timestamp.
            try:
                return self.sql.constant(datetime.fromisoformat(value.value).date().isoformat(), _TEXT)
            except ValueError:
                pass
        return self.sql.constant(value.value, kind)

    def value(self, node):
        if isinstance(node, ast.Constant):
            return _Const(self.constant(node), node)
        if isinstance(node, ast.Name):
            return self.name(node.id, node)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            prefix = node.value.id.lower()
            if prefix == "header":
                return self.header(node.attr.upper(), node)
            if node.attr.lower() not in _PREFIXED.get(prefix, ()):
                self.fail(node, f"unknown name {node.value.id}.{node.attr}")
            return self.named(f"{prefix}.{node.attr.lower()}")
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "header":
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                return self.header(key.value.upper(), node)
            self.fail(node, 'header keywords are written header["KEY"]')
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return self.arithmetic(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            # Signs fold into one (- - x is x), as for not.
            negated, inner = False, node
            while isinstance(inner, ast.UnaryOp) and isinstance(inner.op, (ast.USub, ast.UAdd)):
                negated, inner = negated != isinstance(inner.op, ast.USub), inner.operand
            operand = self.number_operand(inner)
            if not negated:
                return operand
            if isinstance(operand, _Const):
                return _Const(self.bounded(-operand.value, node), node)
            return _Sql(self.sql.negative(self.number_sql(operand)), _NUMBER)
        if isinstance(node, ast.Call):
            return self.call(node)
        self.fail(node, "unsupported expression (allowed: names, numbers, strings, comparisons, "
                        "and/or/not, in, + - * /)")

    def arithmetic(self, node):
        self.operators += 1
        if self.operators > MAX_ARITHMETIC:
            self.fail(node, f"more than {MAX_ARITHMETIC} arithmetic operators in one expression")
        left, right = self.number_operand(node.left), self.number_operand(node.right)
        divide = isinstance(node.op, ast.Div)
        if divide and isinstance(right, _Const) and right.value == 0:
            self.fail(node.right, "division by zero")
        if isinstance(left, _Const) and isinstance(right, _Const):
            # Both operands are bounded (see MAX_NUMBER), so this costs nothing whatever they are.
            return _Const(self.bounded(_FOLD[_ARITH[type(node.op)]](left.value, right.value), node), node)
        left_sql, right_sql = self.number_sql(left), self.number_sql(right)
        if divide:
            right_sql = self.sql.divisor(right_sql)
        return _Sql(self.sql.arithmetic(_ARITH[type(node.op)], left_sql, right_sql), _NUMBER)

    def call(self, node):
        """``abs(x)``, ``sqrt(x)``, ``norm(x)`` (see :data:`FUNCTIONS`)."""
        name = node.func.id.lower() if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            self.fail(node, f"unsupported function {self.show(node.func)} (functions: {', '.join(FUNCTIONS)})")
        if len(node.args) != 1 or node.keywords:
            self.fail(node, f"{name}() takes one number")
        if name == "norm" and not self.set_functions:
            self.fail(node, "norm() compares a frame with the others weighed with it: only in a weight expression")
        operand = self.number_operand(node.args[0])
        if isinstance(operand, _Const):
            self.fail(node, f"{self.show(node)} is a constant; name a column or a weight")
        return _Sql(self.sql.function(name, self.number_sql(operand)), _NUMBER)

    def number_operand(self, node):
        value = self.value(node)
        if not isinstance(value, _Header) and value.kind != _NUMBER:
            self.fail(node, f"arithmetic (+ - * /) works on numbers only; {self.show(node)} is {value.kind}")
        return value

    def number_sql(self, value):
        """A number operand as SQL in double precision: integer arithmetic would overflow (an error on PostgreSQL)."""
        if isinstance(value, _Const):
            return self.sql.number(float(value.value))
        if isinstance(value, _Header):
            return self.sql.header(value.key, _NUMBER)
        return self.sql.as_float(value.sql)

    def bounded(self, value, node):
        """``value``, checked against :data:`MAX_NUMBER` and :data:`MIN_FRACTION`."""
        if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_NUMBER:
            self.fail(node, f"{self.show(node)} is beyond the 64-bit range of numbers (±{MAX_NUMBER})")
        if value and abs(value) < MIN_FRACTION:
            self.fail(node, f"{self.show(node)} is closer to 0 than {MIN_FRACTION:g}, the smallest number allowed")
        return value

    def constant(self, node):
        value = node.value
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                self.fail(node, "strings may not hold NUL or unpaired surrogate characters")
            return value
        if isinstance(value, (int, float)):
            return self.bounded(value, node)
        self.fail(node, "expected a number, a string, True, False or None")

    def header(self, key: str, node) -> _Header:
        if not key or len(key) > 72 or '"' in key or "\\" in key:
            self.fail(node, "a header keyword has 1 to 72 characters, none of them quotes or backslashes")
        return _Header(key)

    def name(self, name: str, node):
        lowered = name.lower()
        if lowered in ("true", "false", "none"):
            return _Const({"true": True, "false": False, "none": None}[lowered], node)
        if lowered in UNPREFIXED:
            return self.named(UNPREFIXED[lowered])
        for table, names in (("align", ALIGN_COLUMNS), ("nina", NINA_COLUMNS), ("weight", WEIGHT_COLUMNS)):
            if lowered in names:
                return self.named(f"{table}.{lowered}")
        if name.isupper() or name.replace("_", "").isupper():
            self.bare_keywords.append((name, getattr(node, "col_offset", None)))
            return self.header(name, node)
        from obsdb.text import did_you_mean

        hint = did_you_mean(lowered, ALL_NAMES, 0.7, template="did you mean {}? ")
        self.fail(node, f"unknown name '{name}' ({hint}header keywords are upper case; columns: "
                        f"{', '.join(ALL_NAMES)})")

    def named(self, key: str) -> _Sql:
        sql, kind = self.sql.name(key)
        return _Sql(sql, kind, key)


_UNSTORABLE = re.compile("[\\x00\\ud800-\\udfff]")
"""Characters no database stores as text (a string literal may write them as escapes: '\\x00')."""


def _looks_like_date(text: str) -> bool:
    return len(text) >= 10 and text[4:5] == "-" and text[:4].isdigit()
