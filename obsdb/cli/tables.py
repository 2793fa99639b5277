"""Tables that stay readable at 80 columns: the columns that fit, never a number split across lines.

A listing has more columns than a terminal has room for.  Rather than let
rich squeeze every column to two characters (a frame number printed as
``10``/``04``), each column has a priority: the table keeps the most
important columns that fit whole, cuts only free text (reasons, names) with
an ellipsis at a space (never inside a number), and says on stderr which columns it left out and how to see
them (``--wide``, ``--columns``, ``--format json``).
"""

from __future__ import annotations

from dataclasses import dataclass

from obsdb.cli.plain import ELLIPSIS, RULE, folded, one_cell_each, plain_wrapped
from obsdb.text import printable

CELL_PADDING = 3
"""Characters a column costs besides its text (a space of padding on each side, and the rule between)."""


@dataclass(frozen=True)
class Column:
    """One column of a listing.

    Attributes
    ----------
    key : str
        The row key, and the name ``--columns`` takes.
    header : str
        The heading shown.
    numeric : bool
        Right-aligned and never cut or wrapped.
    priority : int
        Lower is more important: kept first when the width is short.
    shrink : bool
        Free text that may be cut with an ellipsis to fit (at least ``min_width``).
    min_width : int
        Narrowest a shrinkable column is shown.
    preferred_width : int
        Width a shrinkable column takes before the less important columns get
        their place; any room left at the end widens it further.
    wrap : bool
        A shrinkable column whose text wraps at spaces onto more lines instead of
        being cut (the reasons of ``rejected``, which are what the listing is for).
    """

    key: str
    header: str
    numeric: bool = False
    priority: int = 50
    shrink: bool = False
    min_width: int = 12
    preferred_width: int = 32
    wrap: bool = False


def choose_columns(rows: list[dict], columns: list[Column], width: int,
                   texts: dict[str, list] | None = None) -> tuple[list[Column], dict[str, int]]:
    """The columns that fit in ``width`` characters, in their table order, and each one's width.

    Columns are taken by priority: a fixed column only whole, a shrinkable
    one (free text) up to its preferred width when there is room, else what
    room is left (at least ``min_width``); so most of a reason is read before
    a less important number gets a place.  Room left at the end widens the
    shrinkable columns up to their natural width.  ``texts``: each column's
    cells of ``rows`` already read (key -> list), as :func:`print_table` has them.
    """
    def column(key):
        return texts[key] if texts is not None else [row.get(key, "") for row in rows]

    natural = {c.key: max(len(c.header), max(map(len, _as_text(column(c.key), str)), default=0)) for c in columns}
    chosen: dict[str, int] = {}
    used = -CELL_PADDING + 2  # no rule before the first column; the edges keep no padding either
    by_priority = sorted(columns, key=lambda c: c.priority)
    for column in by_priority:
        room = width - used - CELL_PADDING
        if column.shrink:
            need = min(natural[column.key], max(column.min_width, min(column.preferred_width, room)))
        else:
            need = natural[column.key]
        if need <= room:
            chosen[column.key] = need
            used += need + CELL_PADDING
    for column in by_priority:
        if column.shrink and column.key in chosen:
            extra = min(natural[column.key] - chosen[column.key], width - used)
            if extra > 0:
                chosen[column.key] += extra
                used += extra
    return [c for c in columns if c.key in chosen], chosen


def _as_text(values: list, convert) -> list[str]:
    """A column's cells, each through ``convert`` unless the whole column is already text that needs
    nothing (one check over the column instead of one call a cell: an archive's table has hundreds of
    thousands)."""
    try:
        joined = "".join(values)
    except TypeError:  # a cell that is not text
        return [convert(value) for value in values]
    return values if convert is str or joined.isprintable() else [convert(value) for value in values]


def print_table(rows: list[dict], columns: list[Column], *, title: str, wide: bool = False,
                only: list[str] | None = None, styles: list[str | None] | None = None,
                hint: str = "--wide shows all, --columns picks, --format json has everything") -> list[str]:
    """Print ``rows`` (cells already formatted as text) and return the keys of the columns left out.

    Parameters
    ----------
    rows : list of dict
        Column key -> text.
    columns : list of Column
        Every column the listing has, in table order.
    title : str
    wide : bool
        Every column, as wide as its text (lines longer than the terminal).
    only : list of str, optional
        Exactly these columns, in this order (``--columns``); validated by :func:`parse_columns`.
    styles : list, optional
        A rich style per row (e.g. red for rejected frames).
    hint : str
        How to see the columns left out, said with their names on stderr.
    """
    raw = {c.key: [row.get(c.key, "") for row in rows] for c in columns}  # each column read once
    return print_columns(raw, columns, title=title, wide=wide, only=only, styles=styles, hint=hint)


def print_columns(raw: dict[str, list], columns: list[Column], *, title: str, wide: bool = False,
                  only: list[str] | None = None, styles: list[str | None] | None = None,
                  hint: str = "--wide shows all, --columns picks, --format json has everything") -> list[str]:
    """:func:`print_table` of cells given column by column (``raw[key]``: that column's text in every
    row, each list as long): for a listing built a column at a time (``obsdb rejected`` over an
    archive: 100,000 rows), no dict per row to build and read back."""
    from obsdb.cli.common import console, err_console

    by_key = {c.key: c for c in columns}
    rows = range(len(next(iter(raw.values()), [])))
    if only:
        shown = [by_key[key] for key in only]
        widths = None
    elif wide:
        shown, widths = list(columns), None
    else:
        shown, widths = choose_columns(rows, columns, console.width, texts=raw)

    cut = {c.key: widths[c.key] for c in shown if widths and c.shrink and not c.wrap}
    by_column = []
    for column in shown:
        texts = _as_text(raw[column.key], printable)
        by_column.append([elide(text, cut[column.key]) for text in texts] if column.key in cut else texts)
    hidden = [c.key for c in columns if c not in shown]
    page_width = console.width if widths else max(console.width, _natural_width(raw, shown))
    text = None if console.is_terminal else plain_table_of_columns(title, shown, by_column, widths, page_width,
                                                                   pad_title=not widths)
    if text is not None:
        # Not a terminal: no colours to draw, and rich's layout written directly costs a hundredth of
        # drawing it (63,000 rejected frames of an archive: seconds instead of minutes).
        console.file.write(text)
        console.file.flush()
    else:
        cells = [list(texts) for texts in zip(*by_column)] if by_column else [[] for _ in rows]
        _print_rich_table(title, shown, cells, widths, styles, wide or bool(only), raw)
    if hidden and not only:
        err_console.print(f"({len(hidden)} more column{'s' if len(hidden) != 1 else ''}: {', '.join(hidden)}; "
                          f"{hint})", soft_wrap=True)  # one line, for a script to read
    return hidden


def rich_table(title: str, shown: list[Column], cells: list[list[str]], widths: dict | None, styles=None):
    """The :class:`rich.table.Table` of a listing (``widths`` from :func:`choose_columns`, or None for
    every column as wide as its text); :func:`plain_table` writes the same characters without rich."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    for column in shown:
        # A wrapping column breaks at spaces; rich folds a word only when it is wider than the column.
        folds = bool(widths) and column.shrink and column.wrap
        table.add_column(column.header, justify="right" if column.numeric else "left", no_wrap=not folds,
                         overflow="fold" if folds else "ellipsis", max_width=widths[column.key] if widths else None,
                         min_width=widths[column.key] if widths and not column.shrink else None)
    for index, row_cells in enumerate(cells):
        table.add_row(*row_cells, style=styles[index] if styles else None)
    return table


def _print_rich_table(title: str, shown: list[Column], cells: list[list[str]], widths: dict | None,
                      styles, natural: bool, raw: dict[str, list]) -> None:
    """Draw the table with rich (a terminal: colours per row)."""
    from obsdb.cli.common import console

    table = rich_table(title, shown, cells, widths, styles)
    if natural:
        # As wide as the text: a script or a wide window gets whole lines, never folded ones.
        from rich.console import Console

        Console(highlight=False, markup=False, emoji=False, width=max(console.width, _natural_width(raw, shown)),
                file=console.file, force_terminal=console.is_terminal,
                no_color=console.no_color).print(table)
    else:
        console.print(table)


def plain_table(title: str, shown: list[Column], cells: list[list[str]], widths: dict | None,
                page_width: int, *, pad_title: bool = False) -> str | None:
    """The table as :func:`print_table` draws it with rich (``box.SIMPLE_HEAD``, no edge, the title
    on its own line), without colours; None when the layout is one this does not reproduce (a
    character that is not one cell wide, a table wider than the page, a heading wider than its
    column), which rich then draws.  ``pad_title``: the title line is padded to the table's width (as
    rich pads it on a console without soft wrapping: ``--wide`` and ``--columns``).

    Each column is as wide as its widest text (heading included), within the width
    :func:`choose_columns` gave it; numbers are right-aligned; a wrapping column breaks its text at
    spaces (a word wider than the column is folded), as rich does, the other columns' cells staying on
    the row's first line.  ``tests/cli/test_tables.py`` checks that the output is rich's, character
    for character, on random tables.
    """
    by_column = [list(texts) for texts in zip(*cells)] if cells else [[] for _ in shown]
    return plain_table_of_columns(title, shown, by_column, widths, page_width, pad_title=pad_title)


def plain_table_of_columns(title: str, shown: list[Column], by_column: list[list[str]], widths: dict | None,
                           page_width: int, *, pad_title: bool = False) -> str | None:
    """:func:`plain_table` of the cells given column by column (``by_column[i]``: column ``shown[i]``'s
    text in every row), as :func:`print_table` has them: no table of rows to build and read back."""
    sizes, longest = [], []
    for column, texts in zip(shown, by_column):
        if not ("".join(texts).isascii() and column.header.isascii()) and not all(
                one_cell_each(t) for t in (column.header, *texts)):
            return None
        longest.append(max(map(len, texts), default=0))
        size = max(len(column.header), longest[-1])
        limit = widths.get(column.key) if widths else None
        if limit is not None:
            size = min(size if column.shrink else max(size, limit), limit)
        sizes.append(size)
    total = sum(sizes) + CELL_PADDING * (len(sizes) - 1)
    if not sizes or total > page_width or len(title) > total:
        return None
    if any(len(c.header) > size for c, size in zip(shown, sizes)):
        return None
    folding = [bool(widths) and c.shrink and c.wrap for c in shown]
    gap = " " * CELL_PADDING

    aligns = [str.rjust if column.numeric else str.ljust for column in shown]
    spaces = [" " * size for size in sizes]

    def row_lines(texts: list[str]) -> list[str] | None:
        parts = []
        for index, (text, size, folds) in enumerate(zip(texts, sizes, folding)):
            if len(text) <= size:
                parts.append([aligns[index](text, size)])
                continue
            pieces = folded(text, size) if folds else [text[:max(size - 1, 0)] + ELLIPSIS]
            if pieces is None:
                return None
            parts.append([aligns[index](piece, size) for piece in pieces])
        height = max(len(p) for p in parts)
        return [gap.join([p[i] if i < len(p) else blank for p, blank in zip(parts, spaces)])
                for i in range(height)]

    lines = ([title.ljust(total) if pad_title else title] if title else []) + row_lines([c.header for c in shown]) + [RULE * total]
    # Row by row: most cells fit their column and are only padded, and a row of them is one line,
    # written by one %-format of the whole row (the 67,267 rows of an archive's rejects: 0.19 s
    # against 0.27 s padding each cell and joining them).  The rows holding a cell too long for its
    # column (a reason to wrap, a name to cut) are drawn cell by cell.
    line_of = gap.join(f"%{'' if column.numeric else '-'}{size}s" for column, size in zip(shown, sizes)).__mod__
    long_columns = [index for index, (size, length) in enumerate(zip(sizes, longest)) if length > size]
    if not long_columns:
        lines += map(line_of, zip(*by_column))
        return "\n".join(lines) + "\n"
    last = len(sizes) - 1
    if long_columns == [last] and folding[last]:
        # Only the last column (a reason) wraps: each long row is its first line, then the rest of
        # its text under that column, the other columns blank.
        size, align = sizes[last], aligns[last]
        under = gap.join(spaces[:last]) + gap if last else ""
        append = lines.append
        for texts in zip(*by_column):
            text = texts[last]
            if len(text) <= size:
                append(line_of(texts))
                continue
            pieces = folded(text, size)
            if pieces is None:
                return None
            append(line_of((*texts[:last], pieces[0])))
            lines += [under + align(piece, size) for piece in pieces[1:]]
        return "\n".join(lines) + "\n"
    long_rows = {r for index in long_columns for r, text in enumerate(by_column[index]) if len(text) > sizes[index]}
    for r, texts in enumerate(zip(*by_column)):
        if r not in long_rows:
            lines.append(line_of(texts))
            continue
        drawn = row_lines(list(texts))
        if drawn is None:
            return None
        lines += drawn
    return "\n".join(lines) + "\n"


GRID_GAP = 2
"""Spaces between a key and its value in :func:`plain_grid` (``Table.grid(padding=(0, 2))``)."""


def plain_grid(rows: list[tuple[str, str]], width: int) -> str | None:
    """Key-value lines as rich draws a two-column ``Table.grid(padding=(0, GRID_GAP))`` whose keys do not
    wrap and whose values wrap at spaces, ``width`` wide: each line padded to the grid's width (the
    widest value's, or the page's when a value is longer), a long value continued under itself.
    None where rich draws it otherwise (a word wider than the value column, a character that is not
    one cell wide).  ``tests/cli/test_tables.py`` compares it with rich's on random grids."""
    texts = [text for row in rows for text in row]
    if not rows or not all(text.isprintable() and one_cell_each(text) for text in texts):
        return None
    key_width = max(len(key) for key, _ in rows)
    natural = max(1, *(len(value) for _, value in rows))  # rich gives an empty column one cell
    value_width = natural if key_width + GRID_GAP + natural <= width else width - key_width - GRID_GAP
    if value_width < 1:
        return None
    lines = []
    under = " " * (key_width + GRID_GAP)
    for key, value in rows:
        pieces = plain_wrapped(value, value_width)
        if pieces is None:
            return None
        lines.append(key.ljust(key_width) + " " * GRID_GAP + pieces[0].ljust(value_width))
        lines += [under + piece.ljust(value_width) for piece in pieces[1:]]
    return "\n".join(lines) + "\n"


def rich_grid(rows: list[tuple[str, str]]):
    """The :class:`rich.table.Table` that :func:`plain_grid` writes without rich (a terminal draws it)."""
    from rich.table import Table

    grid = Table.grid(padding=(0, GRID_GAP))
    # Values wrap at spaces; a path longer than the line folds rather than losing its end to an ellipsis.
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def elide(text: str, width: int) -> str:
    """``text`` in ``width`` characters: cut at the last space that fits, with an ellipsis.

    A reason's numbers stay whole or go whole ("background 10,302 ADU = 17.5 x …", never "… 58…");
    text without a space in its second half (a file name) is cut where it must be.
    """
    if len(text) <= width:
        return text
    cut = text[:max(width - 1, 0)]
    space = cut.rfind(" ")
    if space >= width // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:=") + ELLIPSIS


def _natural_width(raw: dict[str, list], columns: list[Column]) -> int:
    """The width of the table with every column as wide as its text (``raw``: each column's cells)."""
    return sum(max(len(c.header), max(map(len, _as_text(raw[c.key], str)), default=0)) + CELL_PADDING
               for c in columns) + 1


def parse_columns(text: str | None, columns: list) -> list[str] | None:
    """``--columns number,band,fwhm`` as column keys; an unknown name is an error with a did-you-mean.

    ``columns`` are :class:`Column` (a table) or plain names (the fields of CSV and JSON).
    """
    from obsdb.errors import ObsdbError
    from obsdb.text import did_you_mean

    if text is None:
        return None
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys:
        raise ObsdbError("--columns: name at least one column")
    known = [c if isinstance(c, str) else c.key for c in columns]
    for key in keys:
        if key not in known:
            hint = did_you_mean(key, known)
            raise ObsdbError(f"--columns: unknown column {key!r}{hint}; known: {', '.join(known)}")
    return keys
