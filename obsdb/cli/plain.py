"""Text as rich draws it, written without rich: a command whose output is no terminal need not import it.

rich draws nothing but characters off a terminal (no colours, no cursor moves), so a line, a rule or
a table can be written directly when it is certain what rich would write.  Each function here
returns None where it is not (a character that is not one cell wide, a layout it does not
reproduce), and the caller lets rich draw.  ``tests/cli/test_tables.py`` compares every one with
rich's own output on random input.  Apart from :mod:`obsdb.cli.tables` and :mod:`obsdb.cli.common`,
which both use it, so that it imports neither.
"""

from __future__ import annotations

import re

RULE = "\u2500"
"""The line under the headings (rich's ``box.SIMPLE_HEAD``)."""


def plain_rule(title: str, width: int) -> str | None:
    """The line rich's ``Console.rule(title)`` draws ``width`` wide (the title centred between rules, a
    space either side, the left rule the shorter by one when they differ); None where rich draws it
    otherwise (no title, a title it would cut, a character that is not one cell wide).
    ``tests/cli/test_tables.py`` compares it with rich's on random titles."""
    if not title or not (title.isprintable() and one_cell_each(title)) or len(title) > width - 4:
        return None
    left = (width - len(title)) // 2 - 1
    return RULE * left + " " + title + " " + RULE * (width - left - len(title) - 2) + "\n"


def plain_wrapped(line: str, width: int) -> list[str] | None:
    """The lines rich prints for one printable ``line`` without soft wrapping (``Console.print(line,
    soft_wrap=False)``): broken at spaces to ``width``; None where rich would fold a word or a
    character is not one cell wide."""
    if not one_cell_each(line):
        return None
    return [line] if len(line) <= width else folded(line, width)


def folded(text: str, size: int) -> list[str] | None:
    """The lines of a wrapping column's ``text`` ``size`` wide, as rich breaks them; None when rich
    would fold a line otherwise (a word wider than the column is then rich's to draw)."""
    if not ("  " in text or text[:1] == " " or text[-1:] == " "):
        # Words apart by one space (a reason), the common case, in one pass: each line ends with its
        # last space within the width, kept where it fits the column (rich's rstrip_end).
        pieces: list[str] = []
        start = 0
        while len(text) - start > size:
            space = text.rfind(" ", start, start + size + 1)
            if space <= start:  # a word wider than the column: rich folds it, below
                break
            pieces.append(text[start:min(space + 1, start + size)])
            start = space + 1
        else:
            pieces.append(text[start:])
            return pieces
    return folded_at_breaks(text, size)


def folded_at_breaks(text: str, size: int) -> list[str] | None:
    """:func:`folded` for any text, cut at :func:`line_breaks` (``tests/cli/test_tables.py`` checks that
    the one-pass case of :func:`folded` gives the same lines)."""
    breaks = [0, *line_breaks(text, size), len(text)]
    # A line keeps its spaces up to the column's width (rich's rstrip_end).
    pieces = [text[a:b][:size] if not text[a:b][size:].strip() else text[a:b] for a, b in zip(breaks, breaks[1:])]
    return None if any(len(piece) > size for piece in pieces) else pieces


_WORD = re.compile(r"\s*\S+\s*")
"""A word and the spaces after it (and, first in a text, before it), as rich's wrapping reads them."""


def line_breaks(text: str, width: int) -> list[int]:
    """Where rich's ``divide_line(text, width, fold=True)`` breaks a printable text of one-cell
    characters: each word goes on the line if it fits (its trailing spaces may overhang), else starts
    the next one.

    The same offsets as rich's (``tests/cli/test_tables.py`` compares them on random text), without
    measuring each word's cells: a table of 100,000 wrapped reasons is drawn in a third of the time.
    A word wider than ``width`` is folded by rich's own function.
    """
    if "  " in text or text[:1] == " " or text[-1:] == " ":
        return _word_breaks(text, width)
    # Words apart by one space (a reason): a line ends at its last space within the width.
    breaks: list[int] = []
    start = 0
    while len(text) - start > width:
        space = text.rfind(" ", start, start + width + 1)
        if space <= start:  # a word wider than the line
            from rich._wrap import divide_line

            return divide_line(text, width, fold=True)
        start = space + 1
        breaks.append(start)
    return breaks


def _word_breaks(text: str, width: int) -> list[int]:
    """:func:`line_breaks` word by word, for any spacing."""
    breaks: list[int] = []
    offset = 0
    for match in _WORD.finditer(text):
        start, end = match.span()
        length = len(match.group().rstrip())
        if width - offset >= length:
            offset += end - start
        elif length > width:
            from rich._wrap import divide_line

            return divide_line(text, width, fold=True)
        elif offset and start:
            breaks.append(start)
            offset = end - start
    return breaks


def one_cell_each(text: str) -> bool:
    """Every character is one cell wide on a terminal (ASCII, or the ellipsis :func:`elide` adds)."""
    return text.isascii() or all(c.isascii() or c == ELLIPSIS for c in text)


ELLIPSIS = "…"
