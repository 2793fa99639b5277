"""Ingest, qa and align write in statements per batch, not per row, and write the same rows as before.

New frames are inserted in one multi-row statement per batch (:func:`obsdb.catalog.writes._insert_new_frames`),
where the ORM sent one INSERT per frame on SQLite; automatic tags in one statement per run.  A frame
measured again (its stored statistics of an older version) still goes through the ORM objects: the
rows of a night ingested once must equal those of the same night written through that path.
"""

from __future__ import annotations

import re

import pytest


def _rows(catalog) -> dict[str, list]:
    """The frames and their measurements as plain values: ids as paths, times left out."""
    from sqlalchemy import select

    from obsdb.catalog.models import Frame, FrameMetrics, FrameStats, StarList, Streak

    with catalog.db.session() as session:
        paths = dict(session.execute(select(Frame.id, Frame.path)).all())
        out = {}
        for model in (Frame, FrameStats, FrameMetrics, StarList, Streak):
            rows = []
            for obj in session.scalars(select(model)):
                row = {}
                for column in model.__table__.columns:
                    name = column.name
                    if name == "id" and model is not Frame or name.endswith("_at"):
                        continue
                    value = getattr(obj, column.key)
                    row[name] = paths.get(value, value) if name in ("id", "frame_id") else value
                rows.append(row)
            out[model.__tablename__] = sorted(rows, key=repr)
    return out


def _night_with_a_broken_file(copy_night, folder):
    copy_night(folder, seed=3, size=256, n_frames=18, bands=("B", "V", "R"), n_groups=3)
    (folder / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    return folder


def test_new_frames_are_written_as_a_measured_again_frame_is(database_factory, copy_night, tmp_path):
    """The multi-row insert of new frames gives the rows the ORM path gives a frame measured again."""
    from sqlalchemy import update

    from obsdb import Catalog
    from obsdb.catalog.models import FrameStats
    from obsdb.imaging.header import DEFAULT_NUMBER_PATTERN, frame_number
    from obsdb.text import natural_key

    folder = _night_with_a_broken_file(copy_night, tmp_path / "night")
    with Catalog.open(database_factory(), create=True) as once:
        report = once.ingest([folder])
        assert len(report.added) == 18 and len(report.failed) == 1
        batched = _rows(once)
    with Catalog.open(database_factory(), create=True) as again:
        again.ingest([folder])
        with again.db.session() as session:  # stale statistics: every readable frame is measured again
            session.execute(update(FrameStats).values(algorithm="stats-0"))
        report = again.ingest([folder])
        assert report.stale == 18
        remeasured = _rows(again)
    for table, rows in batched.items():
        assert rows == remeasured[table], table
    frames = batched["frame"]
    assert len(frames) == 19 and len(batched["star_list"]) == 18 and len(batched["frame_stats"]) == 18
    broken = next(f for f in frames if f["path"].endswith("broken.fits"))
    assert broken["readable"] is False and broken["error"] and broken["header"] is None and broken["band"] is None
    for frame in frames:  # the columns only the first write sets
        name = frame["path"].rsplit("/", 1)[-1]
        assert frame["file_name"] == name and frame["number"] == frame_number(name, DEFAULT_NUMBER_PATTERN)
        assert frame["sort_key"] == natural_key(frame["path"]) and frame["number_shared"] is False
    assert {f["status"] for f in frames} <= {"accepted", "pending", "rejected"}


def _count_inserts(catalog):
    from sqlalchemy import event

    counts: dict[str, int] = {}

    def count(_conn, _cursor, statement, *_args):
        found = re.match(r"\s*INSERT INTO (\w+)", statement)
        if found:
            counts[found.group(1)] = counts.get(found.group(1), 0) + 1

    event.listen(catalog.db.engine, "before_cursor_execute", count)
    return counts


def test_statements_do_not_grow_with_the_frames(catalog_url, copy_night, tmp_path):
    """One INSERT per table and batch in ingest (per set of columns), one for qa's tags, one for align's
    unregistered tags, whatever the number of frames and tags."""
    from obsdb import Catalog
    from obsdb.pipeline.ingest import BATCH_SIZE

    folder = _night_with_a_broken_file(copy_night, tmp_path / "night")
    with Catalog.open(catalog_url, create=True) as catalog:
        counts = _count_inserts(catalog)
        catalog.ingest([folder])
        assert BATCH_SIZE >= 19
        assert counts["frame"] <= 2  # the readable frames' columns, the broken file's
        assert counts["frame_stats"] == counts["frame_metrics"] == counts["star_list"] == 1
        counts.clear()
        report = catalog.qa()
        assert len(report.added) >= 2
        assert counts.get("tag", 0) == 1


def test_unregistered_tags_in_one_statement(catalog_url, copy_night, tmp_path):
    """A run's failed frames get ``unregistered`` with the run and the reason, in one INSERT; a later run
    that registers them retracts the tags, naming itself."""
    from sqlalchemy import select

    from obsdb import Catalog
    from obsdb.catalog.alignment import record_unregistered
    from obsdb.catalog.models import AlignmentRun, Frame, Tag

    folder = tmp_path / "night"
    copy_night(folder, seed=3, size=256, n_frames=18, bands=("B", "V", "R"), n_groups=3)
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([folder])
        with catalog.db.session() as session:
            ids = sorted(session.scalars(select(Frame.id)))
            first, second = (AlignmentRun(method="auto", reference_frame_id=ids[0], parameters={}, author="t",
                                          software_version="test")
                             for _ in range(2))
            session.add_all([first, second])
            session.flush()
            counts = _count_inserts(catalog)
            record_unregistered(session, first, [(i, f"{i} matched no star ") for i in ids[1:5]], ids[5:], "t")
            assert counts["tag"] == 1
            tags = session.scalars(select(Tag).where(Tag.name == "unregistered").order_by(Tag.frame_id)).all()
            assert [(t.frame_id, t.source, t.author, t.run_id, t.reason) for t in tags] == [
                (i, "rule:unregistered", "obsdb", first.id, f"run {first.id}: {i} matched no star") for i in ids[1:5]]
            record_unregistered(session, second, [(ids[1], "again")], ids[2:], "t")
            session.expire_all()
            active = session.scalars(select(Tag).where(Tag.name == "unregistered", Tag.retracted_at.is_(None))).all()
            assert [(t.frame_id, t.reason, t.run_id) for t in active] == [(ids[1], f"run {second.id}: again", second.id)]
            retracted = {t.frame_id: t for t in session.scalars(select(Tag).where(Tag.retracted_at.is_not(None)))}
            assert sorted(retracted) == ids[1:5]
            assert retracted[ids[2]].retract_reason == f"registered in run {second.id}"
            assert retracted[ids[1]].retract_reason == f"superseded: run {second.id}: again"
            assert all(t.retracted_by == "obsdb" for t in retracted.values())


@pytest.mark.parametrize("chunk", [1, 100])
def test_align_reads_star_lists_in_chunks_with_the_same_result(catalog, copy_night, tmp_path, monkeypatch, chunk):
    """Align's shifts do not depend on how many star lists it reads at a time."""
    import obsdb.pipeline.align as align

    folder = tmp_path / "night"
    copy_night(folder, seed=3, size=256, n_frames=18, bands=("B", "V", "R"), n_groups=3)
    catalog.ingest([folder])
    catalog.qa()
    monkeypatch.setattr(align, "STAR_LIST_CHUNK", chunk)
    results = sorted((r.name, r.ok, round(r.dx or 0, 6), round(r.dy or 0, 6))
                     for run in catalog.align(status="any") for r in run.results)
    monkeypatch.setattr(align, "STAR_LIST_CHUNK", 1000)
    again = sorted((r.name, r.ok, round(r.dx or 0, 6), round(r.dy or 0, 6))
                   for run in catalog.align(status="any") for r in run.results)
    assert results == again and sum(ok for _, ok, _, _ in results) >= 15
