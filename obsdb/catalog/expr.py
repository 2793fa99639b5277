"""A small, safe expression language for `obsdb frames --where`.

The text is parsed with Python's own parser (``ast``, eval mode) and only a
whitelist of nodes is compiled — into SQLAlchemy expressions, never into SQL
strings.  Names resolve, case-insensitively, to frame columns, pixel
statistics and quality metrics; any other name is a header keyword
(``EXPTIME``, ``FILTER``); keywords that are not identifiers are written
``header["DATE-OBS"]``.

Examples::

    EXPTIME >= 30 and band in ('V', 'B') and median > 5000
    fwhm > 2 * hfd or not readable
    header["CCD-TEMP"] < -10
    align_matches < 20 or align_rms > 0.1
"""

from __future__ import annotations

import ast
import operator
import re
from datetime import datetime

from sqlalchemy import and_, not_, or_

from obsdb.catalog.models import Frame, FrameMetrics, FrameStats, Night, ShiftStep
from obsdb.errors import ObsdbError


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
    "id": Frame.id, "number": Frame.number, "path": Frame.path, "file_name": Frame.file_name,
    "name": Frame.file_name, "band": Frame.band, "type": Frame.image_type,
    "image_type": Frame.image_type, "object": Frame.object, "exptime": Frame.exptime,
    "date_obs": Frame.date_obs, "airmass": Frame.airmass, "width": Frame.width,
    "height": Frame.height, "bitpix": Frame.bitpix, "size": Frame.size,
    "readable": Frame.readable, "sha256": Frame.sha256, "error": Frame.error,
    "night": Night.name,
}
STATS_COLUMNS = {name: getattr(FrameStats, name) for name in (
    "min", "max", "mean", "median", "std", "background", "background_rms", "n_nan",
    "n_saturated", "saturation")}
METRICS_COLUMNS = {name: getattr(FrameMetrics, name) for name in (
    "n_stars", "fwhm", "hfd", "elongation", "background", "background_rms",
    "background_gradient", "transparency")}


def _current_run_value(aggregate, column):
    """``aggregate(column)`` over the frame's steps in its current run (the newest run with steps for it)."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import aliased

    step, latest = aliased(ShiftStep), aliased(ShiftStep)
    current = select(func.max(latest.run_id)).where(latest.frame_id == Frame.id).correlate(Frame).scalar_subquery()
    return (select(aggregate(getattr(step, column))).where(step.frame_id == Frame.id, step.run_id == current)
            .correlate(Frame).scalar_subquery())


ALIGN_COLUMNS = {"align_matches": ("max", "n_matched"), "align_rms": ("max", "residual_rms"),
                 "align_dx": ("sum", "dx"), "align_dy": ("sum", "dy"), "align_rotation": ("sum", "rotation_deg")}
"""The current registration's confidence and shift: star pairs kept in the fit, its residual RMS (px),
and the summed shift and rotation of the current run (NULL for frames never registered).  Built
when an expression names one: the subqueries cost 20 ms at import, on every command."""


def _align_column(name: str):
    from sqlalchemy import func

    aggregate, column = ALIGN_COLUMNS[name]
    return _current_run_value(getattr(func, aggregate), column)


UNPREFIXED = {**{k: v for k, v in METRICS_COLUMNS.items()}, **STATS_COLUMNS, **FRAME_COLUMNS}
"""Bare names: frame columns first, then stats (``background`` is the pixel
statistic; the metric is ``metrics.background``), then metrics."""

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class _Header:
    """A header keyword whose SQL type is decided by what it is compared with."""

    def __init__(self, key: str):
        self.key = key

    def typed(self, example):
        element = Frame.header[self.key]
        if isinstance(example, bool):
            return element.as_boolean()
        if isinstance(example, (int, float)):
            return element.as_float()
        if isinstance(example, str):
            return element.as_string()
        return element.as_float()


def compile_expression(text: str):
    """Compile ``text`` into a SQLAlchemy boolean expression over Frame, FrameStats, FrameMetrics.

    The query must outer-join ``FrameStats`` and ``FrameMetrics``.

    Raises
    ------
    ExpressionError
        With the column of the offending part.
    """
    if not text or not text.strip():
        raise ExpressionError(text, "empty expression")
    text = quote_bare_dates(text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        detail = "" if exc.msg == "invalid syntax" else f" ({exc.msg})"
        if not exc.offset:
            # Python gives no column when the text ends before the expression does ("fwhm >").
            detail = detail or " (the expression ends too early)"
            column = len(text.strip())
        else:
            column = min(max(exc.offset - 1, 0), len(text.strip()))
        raise ExpressionError(text, f"invalid syntax{detail}", column) from None
    return _Compiler(text.strip()).boolean(tree.body)


_BARE_DATE = re.compile(r"(?<![\w.])(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?)(?![\w.:-])")


def quote_bare_dates(text: str) -> str:
    """``date_obs > 2026-03-14`` means the date, not 2026 minus 3 minus 14: quote such dates.

    Only outside string literals; a quoted date is left as it is.
    """
    pieces = re.split(r"""('[^']*'|"[^"]*")""", text)
    return "".join(piece if piece[:1] in ("'", '"') else _BARE_DATE.sub(r"'\1'", piece) for piece in pieces)


class _Compiler:
    def __init__(self, text: str):
        self.text = text

    def fail(self, node, message):
        raise ExpressionError(self.text, message, getattr(node, "col_offset", None))

    def boolean(self, node):
        if isinstance(node, ast.BoolOp):
            parts = [self.boolean(v) for v in node.values]
            return and_(*parts) if isinstance(node.op, ast.And) else or_(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not_(self.boolean(node.operand))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Name):
            value = self.value(node)
            if isinstance(value, _Header):
                return value.typed(True)
            return value
        self.fail(node, "expected a comparison (e.g. exptime >= 30)")

    def compare(self, node):
        clauses = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators):
            clauses.append(self.one_comparison(left_node, op, right_node))
            left_node = right_node
        return and_(*clauses) if len(clauses) > 1 else clauses[0]

    def one_comparison(self, left_node, op, right_node):
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right_node, (ast.Tuple, ast.List, ast.Set)):
                self.fail(right_node, "'in' needs a list of values, e.g. band in ('V', 'B')")
            values = [self.constant(e) for e in right_node.elts]
            left = self.value(left_node)
            if isinstance(left, _Header):
                left = left.typed(values[0] if values else "")
            clause = left.in_(values)
            return ~clause if isinstance(op, ast.NotIn) else clause
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                self.fail(right_node, "'is' only compares with None")
            left = self.value(left_node)
            if isinstance(left, _Header):
                left = left.typed(None)
            return left.is_(None) if isinstance(op, ast.Is) else left.is_not(None)
        if type(op) not in _COMPARE:
            self.fail(right_node, "unsupported comparison")
        left, right = self.value(left_node), self.value(right_node)
        left, right = self.resolve_header(left, right), self.resolve_header(right, left)
        # A night is named by its date: compare the text, not a timestamp.
        if left is Night.name and isinstance(right, datetime):
            right = right.date().isoformat()
        if right is Night.name and isinstance(left, datetime):
            left = left.date().isoformat()
        if right is None or left is None:
            if isinstance(op, ast.Eq):
                return (left if right is None else right).is_(None)
            if isinstance(op, ast.NotEq):
                return (left if right is None else right).is_not(None)
            self.fail(right_node, "None can only be compared with == or !=")
        return _COMPARE[type(op)](left, right)

    @staticmethod
    def resolve_header(value, other):
        if isinstance(value, _Header):
            example = other if isinstance(other, (bool, int, float, str)) else 0.0
            return value.typed(example)
        return value

    def value(self, node):
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node.id, node)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            prefix = node.value.id.lower()
            table = {"stats": STATS_COLUMNS, "metrics": METRICS_COLUMNS, "frame": FRAME_COLUMNS}.get(prefix)
            if prefix == "header":
                return _Header(node.attr.upper())
            if table is None or node.attr.lower() not in table:
                self.fail(node, f"unknown name {node.value.id}.{node.attr}")
            return table[node.attr.lower()]
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "header":
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                return _Header(key.value.upper())
            self.fail(node, 'header keywords are written header["KEY"]')
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            left, right = self.value(node.left), self.value(node.right)
            left, right = self.resolve_header(left, 0.0), self.resolve_header(right, 0.0)
            return _ARITH[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = self.resolve_header(self.value(node.operand), 0.0)
            return -operand
        self.fail(node, "unsupported expression (allowed: names, numbers, strings, comparisons, "
                        "and/or/not, in, + - * /)")

    def constant(self, node):
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            value = node.operand.value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value
        if not isinstance(node, ast.Constant) or not isinstance(node.value, (str, int, float, bool, type(None))):
            self.fail(node, "expected a number, a string, True, False or None")
        value = node.value
        if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[:4].isdigit():
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                return value
        return value

    def name(self, name: str, node):
        lowered = name.lower()
        if lowered in ("true", "false", "none"):
            return {"true": True, "false": False, "none": None}[lowered]
        if lowered in UNPREFIXED:
            return UNPREFIXED[lowered]
        if lowered in ALIGN_COLUMNS:
            return _align_column(lowered)
        if name.isupper() or name.replace("_", "").isupper():
            return _Header(name)
        known = ", ".join(sorted([*UNPREFIXED, *ALIGN_COLUMNS]))
        self.fail(node, f"unknown name '{name}' (header keywords are upper case; columns: {known})")
