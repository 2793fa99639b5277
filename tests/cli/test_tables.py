"""The plain table writer draws what rich draws, character for character, when output is not a terminal."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obsdb.cli.plain import ELLIPSIS, line_breaks
from obsdb.cli.tables import Column, choose_columns, elide, plain_table, rich_table

WORD = st.text(alphabet="abcdefghij0123456789.:-", min_size=1, max_size=14)
TEXT = st.lists(WORD, min_size=0, max_size=12).map(" ".join)
NUMBER = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: f"{v:.2f}")


def _rich(title: str, shown: list[Column], cells: list[list[str]], widths: dict | None, width: int, *,
          soft_wrap: bool) -> str:
    """What print_table's rich path draws (its own Table, :func:`rich_table`), into a string."""
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False, highlight=False, markup=False, emoji=False,
            soft_wrap=soft_wrap).print(rich_table(title, shown, cells, widths))
    return out.getvalue()


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(alphabet="ab …", max_size=40), TEXT), st.integers(min_value=1, max_value=20))
def test_lines_break_where_riches_do(text, width):
    """Words one space apart; spaces in runs, leading and trailing; words wider than the line: the
    same offsets (cells are printable, a tab is shown as its escape)."""
    from rich._wrap import divide_line

    assert line_breaks(text, width) == divide_line(text, width, fold=True)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(alphabet="ab …", max_size=60), TEXT),
       st.integers(min_value=1, max_value=20))
def test_a_wrapped_text_is_cut_as_at_riches_breaks(text, width):
    """The one-pass cutting of words one space apart (reasons) gives the lines cut at
    :func:`line_breaks`' offsets, whatever the spacing and the width."""
    from obsdb.cli.plain import folded, folded_at_breaks

    assert folded(text, width) == folded_at_breaks(text, width)


@st.composite
def tables(draw):
    columns = [Column("frame", "frame", priority=0), Column("band", "band", priority=1),
               Column("sky", "sky ADU", numeric=True, priority=2),
               Column("reason", "reason", priority=3, shrink=True, min_width=12, preferred_width=30,
                      wrap=draw(st.booleans())),
               Column("name", "file name", priority=4, shrink=True, min_width=10, preferred_width=20)]
    if draw(st.booleans()):  # the reason last (``obsdb rejected``'s table): its own way of drawing
        columns = columns[:-1]
    n = draw(st.integers(min_value=0, max_value=8))
    rows = [{"frame": draw(WORD), "band": draw(st.sampled_from(["B", "V", "R", "-"])), "sky": draw(NUMBER),
             "reason": draw(TEXT), "name": draw(TEXT)} for _ in range(n)]
    return columns, rows, draw(st.integers(min_value=40, max_value=140))


@settings(max_examples=300, deadline=None)
@given(tables())
def test_plain_tables_are_riches_when_fitted_to_the_page(table):
    columns, rows, width = table
    shown, widths = choose_columns(rows, columns, width)
    cells = [[elide(row[c.key], widths[c.key]) if c.shrink and not c.wrap else row[c.key] for c in shown]
             for row in rows]
    title = f"frames ({len(rows)})"
    text = plain_table(title, shown, cells, widths, width)
    if text is not None:
        assert text == _rich(title, shown, cells, widths, width, soft_wrap=True)


@settings(max_examples=150, deadline=None)
@given(tables())
def test_plain_tables_are_riches_at_their_natural_width(table):
    """--wide and --columns: every column as wide as its text, on a page as wide as the table."""
    columns, rows, width = table
    cells = [[row[c.key] for c in columns] for row in rows]
    natural = sum(max([len(c.header), *(len(r[i]) for r in cells)]) + 3 for i, c in enumerate(columns)) + 1
    page = max(width, natural)
    text = plain_table("rejected frames", columns, cells, None, page, pad_title=True)
    assert text is not None
    assert text == _rich("rejected frames", columns, cells, None, page, soft_wrap=False)


def test_the_writer_steps_aside_where_it_would_differ():
    columns = [Column("frame", "frame"), Column("reason", "reason", shrink=True, wrap=True, min_width=12)]
    assert plain_table("t", columns, [["1", "naïve café"]], None, 80) is None          # not one cell each
    assert plain_table("t", columns, [["1", "x" * 90]], None, 80) is None             # wider than the page
    assert plain_table("t", columns, [["1", f"cut{ELLIPSIS}"]], None, 80) is not None  # elide's own mark


@pytest.mark.parametrize("command", [["frames"], ["rejected"], ["nights"], ["frames", "--wide"]])
def test_commands_print_the_same_tables_either_way(command, tmp_path, monkeypatch, simulated_nights):
    """A whole command's table through the plain writer and through rich (forced) are the same text."""
    from typer.testing import CliRunner

    from obsdb.cli import tables
    from obsdb.cli.app import app

    simulated_nights.copy(tmp_path / "night", seed=5, n_frames=6, size=128, bands=("V", "R"), n_groups=1)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for step in (["init"], ["ingest", "night"], ["qa"], ["align"]):
        assert runner.invoke(app, step).exit_code == 0
    assert runner.invoke(app, ["tag", "1002", "reject", "--reason", "doubled stars and a long reason " * 4]
                         ).exit_code == 0
    plain = runner.invoke(app, command)
    monkeypatch.setattr(tables, "plain_table", lambda *args, **kwargs: None)
    drawn = runner.invoke(app, command)
    assert plain.exit_code == drawn.exit_code == 0
    assert plain.stdout == drawn.stdout and "──" in plain.stdout


def _rich_console(width: int):
    from rich.console import Console

    return Console(file=io.StringIO(), width=width, force_terminal=False, highlight=False, markup=False,
                   emoji=False, soft_wrap=True)


KEY = st.text(alphabet="abcdefghij_ ", min_size=1, max_size=12)
VALUE = st.one_of(TEXT, st.text(alphabet="ab -", max_size=60), st.text(alphabet="abc", min_size=30, max_size=90))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(KEY, VALUE), min_size=1, max_size=6), st.integers(min_value=16, max_value=120))
def test_plain_grids_are_riches(rows, width):
    """``obsdb show``'s facts: keys that do not wrap, values that wrap at spaces, two spaces between;
    short values, long ones, words wider than the value column, runs of spaces."""
    from obsdb.cli.tables import GRID_GAP, plain_grid, rich_grid

    text = plain_grid(rows, width)
    if text is None:  # rich's to draw: only where a value's column would be narrower than one cell
        assert max(len(key) for key, _ in rows) + GRID_GAP + 1 > width
        return
    console = _rich_console(width)
    console.print(rich_grid(rows))
    assert text == console.file.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abc 0123:.-_", max_size=90), st.integers(min_value=5, max_value=120))
def test_plain_rules_are_riches(title, width):
    from obsdb.cli.plain import plain_rule

    text = plain_rule(title, width)
    if text is None:
        assert not title or len(title) > width - 4
        return
    console = _rich_console(width)
    console.rule(title)
    assert text == console.file.getvalue()


def test_the_grid_and_the_rule_step_aside_where_they_would_differ():
    from obsdb.cli.plain import plain_rule
    from obsdb.cli.tables import plain_grid

    assert plain_grid([("path", "naïve/café.fits")], 80) is None        # not one cell each
    assert plain_grid([("path", "a\tb")], 80) is None                   # not printable
    assert plain_grid([], 80) is None
    assert plain_rule("frame 1  東京.fits", 80) is None
    assert plain_rule("", 80) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(TEXT, st.text(alphabet="ab ", max_size=50)), min_size=1, max_size=3),
       st.integers(min_value=8, max_value=100), st.booleans())
def test_lines_without_soft_wrap_are_riches(parts, width, styled_label):
    """``console.print(text, soft_wrap=False)`` (show's statistics, its header) written without rich."""
    import sys

    from obsdb.cli.common import LazyConsole, styled

    objects = [styled("stats", "bold", ": " + parts[0]) if styled_label else parts[0], *parts[1:]]
    settings_ = dict(highlight=False, markup=False, emoji=False, soft_wrap=True)
    lazy, stream = LazyConsole(**settings_), io.StringIO()
    real = sys.stdout
    sys.stdout = stream
    try:
        import os

        os.environ["COLUMNS"] = str(width)
        lazy.print(*objects, soft_wrap=False)
    finally:
        sys.stdout = real
        del os.environ["COLUMNS"]
    console = _rich_console(width)
    console.print(*objects, soft_wrap=False)
    assert stream.getvalue() == console.file.getvalue()
