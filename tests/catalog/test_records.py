"""Typed records and the FrameFilter: one JSON shape, one selection value, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from obsdb import Catalog, FrameFilter, FrameRecord
from obsdb.catalog.records import Metrics, Shift, Stats, TagRecord, VerdictSummary

SMALL = dict(size=160, bands=("V", "R"), n_groups=1, cloud_fraction=0.25, trail_fraction=0.0, defocus_fraction=0)


@pytest.fixture()
def judged(catalog_url, tmp_path, simulated_nights):
    """A night ingested, judged and aligned, one frame rejected by a person, opened on each backend."""
    simulated_nights.copy(tmp_path / "night", seed=41, n_frames=8, **SMALL)
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        catalog.qa()
        catalog.align()
        first_v = catalog.frames(band="V")[0]
        catalog.tag(first_v.label, "tracking-big", reason="doubled stars", author="ana")
        yield catalog


def test_records_are_typed_all_the_way_down(judged):
    records = judged.frames()
    assert records and all(isinstance(r, FrameRecord) for r in records)
    measured = [r for r in records if r.metrics is not None]
    assert measured and all(isinstance(r.stats, Stats) and isinstance(r.metrics, Metrics) for r in measured)
    assert all(r.metrics.fwhm > 0 for r in measured if r.metrics.n_stars)
    shifted = [r for r in records if r.shift is not None]
    assert shifted and all(isinstance(r.shift, Shift) and r.shift.run >= 1 for r in shifted)
    assert all(isinstance(r.verdict, VerdictSummary) and r.verdict.explain.startswith(r.status) for r in records)
    [person] = [r for r in records if any(t.name == "tracking-big" for t in r.tags)]
    tag = next(t for t in person.tags if t.name == "tracking-big")
    assert isinstance(tag, TagRecord) and (tag.author, tag.reason, tag.source) == ("ana", "doubled stars", "manual")
    assert person.status == "rejected" and person.verdict.decided_by == "person"


def test_to_json_is_the_json_shape_and_reads_back(judged):
    """frames --format json is FrameRecord.to_json(); from_dict(to_json()) gives the record back."""
    for record, shaped in zip(judged.frames(), judged.frame_dicts()):
        assert record.to_json() == shaped
        assert FrameRecord.from_dict(json.loads(json.dumps(shaped))) == record
        assert list(shaped) == ["id", "night", "label", "number", "path", "file_name", "band", "type", "object",
                                "instrument", "exptime", "date_obs", "shape", "readable", "error", "keywords",
                                "status", "reasons", "verdict", "tags", "stats", "metrics", "group", "shift",
                                "weights"]


def test_a_frame_filter_selects_as_the_keywords_do(judged):
    def ids(records):
        return [r.id for r in records]

    every = judged.frames()
    rejected_v = FrameFilter(band="v", status="rejected")
    assert ids(judged.frames(rejected_v)) == ids(judged.frames(band="v", status="rejected"))
    assert ids(judged.frames(rejected_v)) == [r.id for r in every if r.band == "V" and r.status == "rejected"]
    assert ids(judged.frames(rejected_v)), "the person's rejection at least"
    # Keywords lay themselves over the value: the band stays, the status changes.
    accepted_v = [r.id for r in every if r.band == "V" and r.status == "accepted"]
    assert ids(judged.frames(rejected_v, status="accepted")) == accepted_v
    assert ids(judged.iter_frames(FrameFilter.of(rejected_v, status="accepted"))) == accepted_v
    tagged = FrameFilter(tag="tracking-big")
    assert [r["id"] for r in judged.iter_frame_dicts(tagged)] == [r.id for r in every
                                                                if any(t.name == "tracking-big" for t in r.tags)]
    assert ids(judged.frames(FrameFilter(where="fwhm > 0", band="R"))) == [
        r.id for r in every if r.band == "R" and r.metrics is not None and (r.metrics.fwhm or 0) > 0]


def test_frame_filter_is_a_value():
    a = FrameFilter(nights=["2026-03-14"], band="V", frame_ids=[3, 1])
    assert a.frame_ids == (3, 1) and a == FrameFilter(nights=["2026-03-14"], band="V", frame_ids=(3, 1))
    assert FrameFilter.of(a, night="all").nights == "all" and a.nights == ["2026-03-14"]
    assert FrameFilter.of(None, band="R") == FrameFilter(band="R")
    with pytest.raises(TypeError):
        FrameFilter.of(None, colour="red")


def test_rejected_reasons_are_the_rejected_records_tags(judged):
    """`obsdb rejected`'s lean reader names the frames, bands, types and active tags that the whole
    records of `frames(status="rejected")` hold, in the same order, on each backend."""
    for band in (None, "v", "R"):
        records = judged.frames(band=band, status="rejected")
        lean = judged.rejected_reasons(band=band)
        assert [r["label"] for r in lean] == [r.label for r in records]
        assert records, band  # the simulated clouds and the person's verdict reject frames in both bands
        for row, record in zip(lean, records):
            assert (row["band"], row["type"], row["error"]) == (record.band, record.type, record.error)
            assert row["tags"] == [{"name": t.name, "source": t.source, "author": t.author,
                                    "created_at": t.created_at, "reason": t.reason} for t in record.tags]



def test_rejected_reason_rows_are_the_reasons_flat_on_both_front_doors(judged, catalog_url):
    """`obsdb rejected`'s table is drawn from one flat row per reason: the same frames, tags and order
    as the grouped reader's, from the normal catalog and the fast path alike."""
    from obsdb.catalog.lite import LiteCatalog
    from obsdb.catalog.readers import REJECTED_REASON_FIELDS

    lite = LiteCatalog.open(catalog_url, lambda: pytest.fail("the fast path applies here"))
    assert lite is not None
    try:
        for band in (None, "v", "R"):
            rows = judged.rejected_reason_rows(band=band)
            assert rows and all(len(row) == len(REJECTED_REASON_FIELDS) for row in rows)
            assert lite.rejected_reason_rows(band=band) == rows
            flat = [(r["label"], r["band"], r["type"], r["error"], t["name"], t["source"], t["author"],
                     t["created_at"], t["reason"])
                    for r in judged.rejected_reasons(band=band)
                    for t in r["tags"] or [dict.fromkeys(("name", "source", "author", "created_at", "reason"))]]
            assert [row[1:] for row in rows] == flat
            # A frame's rows are together, each frame once.
            ids = [row[0] for row in rows]
            starts = [frame for i, frame in enumerate(ids) if i == 0 or ids[i - 1] != frame]
            assert len(starts) == len(set(ids)) == len(judged.frames(band=band, status="rejected"))
    finally:
        lite.close()


def test_the_fast_path_pages_a_listing_longer_than_a_page(judged, catalog_url):
    """The stdlib/psycopg runner sets the keyset flag of a listing's next page as SQLAlchemy's does:
    without it every page after the first was the first again, for ever (a night of more than
    PAGE_SIZE frames, or a batch of nights holding more)."""
    from itertools import islice

    from obsdb.catalog import readers
    from obsdb.catalog.lite import LiteCatalog

    lite = LiteCatalog.open(catalog_url, lambda: judged)
    assert lite is not None
    try:
        every = [r.id for r in judged.frames()]
        pages = readers.iter_frame_records(lite.run, FrameFilter(), page_size=3)
        assert len(every) > 6 and [r.id for r in islice(pages, len(every) + 1)] == every
    finally:
        lite.close()


@pytest.mark.parametrize("how_many", [0, 1, 5])
def test_the_fast_path_binds_a_list_as_one_parameter(judged, catalog_url, how_many):
    """A list parameter is one value (a JSON array on SQLite, an array on PostgreSQL), so a statement's
    text does not grow with the list; the rows are those SQLAlchemy's expanded ``IN`` gives, and an
    empty list selects nothing."""
    from obsdb.catalog.lite import LiteCatalog
    from obsdb.catalog.statements import session_runner

    lite = LiteCatalog.open(catalog_url, lambda: judged)
    assert lite is not None
    try:
        ids = [r.id for r in judged.frames()][:how_many]
        with judged.session() as session:
            normal = session_runner(session)
            for name, params in [("frame_labels", {"ids": ids}), ("page_tags", {"ids": ids}),
                                 ("night_sizes", {"scope": []}), ("band_spellings", {"scope": [], "band": "v"})]:
                fast_rows, normal_rows = lite.run(name, **params), normal(name, **params)
                assert sorted(fast_rows) == sorted(normal_rows)
        assert len(lite.run("frame_labels", ids=ids)) == how_many
    finally:
        lite.close()


def test_the_field_names_are_the_records_fields_in_order():
    """:mod:`obsdb.catalog.fieldnames` names the record classes' fields (the readers and statements
    read the listing's columns by them without defining the records)."""
    from dataclasses import fields

    from obsdb.catalog.fieldnames import METRICS_FIELDS, STATS_FIELDS
    from obsdb.catalog.records import Metrics, Stats

    assert tuple(f.name for f in fields(Stats)) == STATS_FIELDS == Stats.FIELDS
    assert tuple(f.name for f in fields(Metrics)) == METRICS_FIELDS == Metrics.FIELDS


def test_the_rejected_listing_reads_no_frame_row_on_postgresql(judged, catalog_url, monkeypatch):
    """On PostgreSQL `obsdb rejected`'s statement is answered from the partial index of the rejected
    frames alone (an index-only scan): a column added to the statement but not to the index's INCLUDE,
    or a status given as a parameter (which no partial index can be proved to hold), fails here."""
    if not catalog_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's index-only scan (SQLite's partial index holds no other column)")
    import psycopg

    from obsdb.catalog import lite as lite_module
    from obsdb.catalog.lite import LiteCatalog

    ran = []
    real_fetch = lite_module._fetch
    monkeypatch.setattr(lite_module, "_fetch", lambda c, sql, values=None: ran.append((sql, values)) or
                        real_fetch(c, sql, values))
    lite = LiteCatalog.open(catalog_url, lambda: pytest.fail("the fast path applies here"))
    try:
        assert lite.rejected_reason_rows(band="V")
    finally:
        lite.close()
    (sql, values), = [(sql, values) for sql, values in ran if "tag.reason" in sql]
    libpq = catalog_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as connection:
        connection.execute("VACUUM frame")  # what autovacuum does: the pages marked visible
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_indexscan"):
            connection.execute(f"SET {setting} = off")  # only an index-only scan is left cheap
        # The fast path's text takes psycopg2's %(name)s parameters, which psycopg 3 reads too.
        plan = "\n".join(row[0] for row in connection.execute(f"EXPLAIN {sql}", values or {}))
    assert "Index Only Scan using ix_frame_rejected on frame" in plan, plan


def test_a_rejected_frame_with_a_long_path_is_written_on_both_backends(catalog_url, tmp_path):
    """The index of the rejected frames holds each one's path, natural sort key and file name: a
    frame whose path is 1,000 characters long is still tagged, rejected and listed (PostgreSQL's index
    entries are at most 2,704 bytes)."""
    import numpy as np

    from tests.conftest import write_fits

    folder = tmp_path
    while len(str(folder)) < 900:
        folder = folder / ("d" * 120)
    name = "f" * (1000 - len(str(folder)) - 1 - len("_1.fits")) + "_1.fits"
    path = write_fits(folder / name, np.full((32, 32), 100.0, dtype=np.float32), {"FILTER": "V"})
    assert len(str(path)) == 1000
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([folder])
        (record,) = catalog.frames()
        catalog.tag(record.label, "tracking-big", reason="doubled stars", author="ana")
        rows = catalog.rejected_reason_rows()
        assert [(row[0], row[5]) for row in rows] == [(record.id, "tracking-big")]
        assert catalog.frames(status="rejected")[0].path == str(path)


def test_an_unreadable_file_is_listed_with_its_read_error_on_both_front_doors(catalog_url, tmp_path):
    """A file that cannot be read is rejected without a tag: its row carries the read error, which the
    listing's statement reads from the frame's row (the index of the rejected frames does not hold it)."""
    import numpy as np

    from obsdb.catalog.lite import LiteCatalog
    from tests.conftest import write_fits

    write_fits(tmp_path / "night" / "good_1.fits", np.full((32, 32), 100.0, dtype=np.float32), {"FILTER": "V"})
    (tmp_path / "night" / "broken_2.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        (broken,) = [r for r in catalog.frames() if not r.readable]
        assert broken.error and broken.status == "rejected"
        rows = catalog.rejected_reason_rows()
        assert [row[0] for row in rows] == [broken.id]
        assert rows[0][4] == broken.error and rows[0][5:] == (None,) * 5
        lite = LiteCatalog.open(catalog_url, lambda: pytest.fail("the fast path applies here"))
        try:
            assert lite.rejected_reason_rows() == rows
        finally:
            lite.close()
