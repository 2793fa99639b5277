"""The fast path's `--where` (SQL text, no SQLAlchemy) selects what the SQLAlchemy path selects.

Both are one compiler (obsdb.catalog.where_lang) with two builders.  Hypothesis draws the
expressions of tests/catalog/test_where_properties.py (random text, token soups, nested
well-typed conditions) and night scopes; each is listed by the normal catalog and by the
LiteCatalog on the same catalog, on SQLite and on PostgreSQL, and the two answers must be the same
records, or the same one-line error.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from obsdb.catalog import lite_sql, pg_sql, statements
from obsdb.catalog.lite import LiteCatalog
from obsdb.catalog.records import FrameFilter
from obsdb.errors import ObsdbError
from tests.catalog.test_where_properties import EXAMPLE, SLOW, archive, conditions, scopes, wheres  # noqa: F401

CONDITIONS = [
    "fwhm > 2", "EXPTIME >= 30 and band in ('V', 'B')", "not readable or -fwhm < -2.5 and SIMPLE",
    "status == 'rejected' or align_rms < 1", "align_matches > 3 or align_dx != 0", "date_obs > 2026-03-15",
    "night == 2026-03-15", "night == '2026-03-15T23:00'", "band in ()", "band not in ()", "OBSERVER > -1",
    "OBSERVER == 'nico'", 'header["CCD-TEMP"] < -10', "exptime / number > 1", "exptime / (number - number) is None",
    "abs(-n_saturated) > 10", "sqrt(median - 100) > 1", "readable == True", "SIMPLE == False", "band",
    "fwhm * 2 - hfd / 3 + 1 > 0.5", "- - exptime > 0", "n_stars - -3 > 0", "exptime -(-3) > 0",
    "metrics.background > stats.background", "frame.band == 'V'", "nina_hfr > 1 or w_fwhm > 0.5 or snr is None",
    "date_obs is not None and object != ''", "1 < number <= 1005", "(fwhm > 2 or fwhm < 1) and not (band == 'R')",
]
"""Hand-picked conditions over every kind of name, operator and constant, beside the random ones."""

expressions = st.one_of(conditions, conditions, wheres)
"""Mostly nested conditions, which reach the database more often than random text does."""


filters = st.fixed_dictionaries({}, optional={
    "band": st.sampled_from(["V", "v", "=R", "B", "nope"]), "status": st.sampled_from(["rejected", "accepted", "pending"]),
    "tag": st.sampled_from(["cloud", "focus", "reject", "accept"]), "image_type": st.sampled_from(["light", "flat"])})
"""The listing's other filters, combined with a ``--where`` (each a flag of the listing's statement)."""


def _answer(list_frames, where, nights, others):
    """The records ``list_frames`` gives, or the ObsdbError's message."""
    try:
        return list_frames(FrameFilter(nights=nights, where=where, **others))
    except ObsdbError as exc:
        return f"error: {exc}"


def _both(catalog, url, where, nights, others=None):
    normal = _answer(catalog.frame_dicts, where, nights, others or {})
    fast_catalog = LiteCatalog.open(url, lambda: pytest.fail("the fast path fell back to the normal one"))
    assert fast_catalog is not None, "the test catalog is one the fast path reads"
    with fast_catalog:
        fast = _answer(fast_catalog.frame_dicts, where, nights, others or {})
    return normal, fast


@pytest.mark.parametrize("where", CONDITIONS)
def test_the_fast_path_selects_what_sqlalchemy_selects(archive, catalog_url, where):  # noqa: F811
    normal, fast = _both(archive, catalog_url, where, "all")
    assert isinstance(normal, list), normal  # each of these is a valid condition
    assert fast == normal


@settings(max_examples=60, **EXAMPLE)
@given(where=expressions, nights=scopes)
def test_any_where_gives_the_same_answer_on_both_paths(archive, catalog_url, where, nights):  # noqa: F811
    normal, fast = _both(archive, catalog_url, where, nights)
    event("rows" if isinstance(normal, list) else "error")
    assert fast == normal


@settings(max_examples=40, **EXAMPLE)
@given(where=st.sampled_from(CONDITIONS), nights=scopes, others=filters)
def test_a_where_with_the_other_filters_gives_the_same_answer_on_both_paths(archive, catalog_url, where,  # noqa: F811
                                                                           nights, others):
    normal, fast = _both(archive, catalog_url, where, nights, others)
    event("rows" if normal and isinstance(normal, list) else "none" if isinstance(normal, list) else "error")
    assert fast == normal


@SLOW
@settings(max_examples=1500, **EXAMPLE)
@given(where=expressions, nights=scopes, others=filters)
def test_many_wheres_give_the_same_answer_on_both_paths(archive, catalog_url, where, nights, others):  # noqa: F811
    normal, fast = _both(archive, catalog_url, where, nights, others)
    assert fast == normal


def test_values_never_become_sql_text(archive, catalog_url):  # noqa: F811
    hostile = "band == \"'); DROP TABLE frame; --\" or OBSERVER == \"x' OR '1'='1\""
    normal, fast = _both(archive, catalog_url, hostile, "all")
    assert fast == normal == []
    assert len(archive.frame_dicts(nights="all")) > 0


def test_the_mark_of_the_where_clause_is_the_statements_own():
    assert lite_sql.WHERE_MARK == pg_sql.WHERE_MARK == statements.WHERE_MARK


def test_a_where_on_the_fast_path_imports_no_sqlalchemy(tmp_path):
    from obsdb import Catalog

    db = tmp_path / "c.sqlite"
    Catalog.open(str(db), create=True).close()
    code = ("import sys\nfrom obsdb.catalog.lite import LiteCatalog\n"
            f"c = LiteCatalog.open({str(db)!r}, None)\n"
            "print(c.frame_dicts(where=\"fwhm > 2 and band in ('V',) and status == 'rejected'\"))\n"
            "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "[]"]


def test_a_database_error_on_the_first_page_is_answered_by_the_normal_catalog(archive, catalog_url,  # noqa: F811
                                                                             monkeypatch):
    """A text the database refuses (a builder's bug) costs the fast path, not the answer."""
    from obsdb.catalog import where_text

    monkeypatch.setattr(where_text, "compile_where", lambda text, database, generated: ("no_such_column > 1", {}, []))
    normal = archive.frame_dicts(nights="all", where="fwhm > 2 or band == 'V'")
    opened = []

    def fallback():
        opened.append(True)
        from obsdb import Catalog

        return Catalog.open(catalog_url)

    with LiteCatalog.open(catalog_url, fallback) as fast:
        assert fast.frame_dicts(nights="all", where="fwhm > 2 or band == 'V'") == normal
    assert opened and len(normal) > 0
