"""The derived data kept at write time (obsdb.catalog.maintained): each frame's status column and the
night summaries equal what the rule and a full recomputation give, after random sequences of ingests,
tags, untags, verdicts (accept after reject, retractions), re-QA and alignment, on SQLite and PostgreSQL.
The migration's set-based backfill (0011) gives the same rows as the write-time code."""

from __future__ import annotations

import random
import shutil

import pytest

from obsdb import Catalog

SMALL = dict(size=160, bands=("V", "R"), n_groups=1, cloud_fraction=0.25, trail_fraction=0.2, defocus_fraction=0)
NIGHT1, NIGHT2 = "2026-03-14", "2026-03-16"
VERDICTS = ("reject", "accept", "tracking-big", "great", "okay", "use-if-must", "accept")


@pytest.fixture(scope="module")
def nights(tmp_path_factory, simulated_nights):
    root = tmp_path_factory.mktemp("maintained")
    simulated_nights.copy(root / "n1", seed=41, n_frames=8, **SMALL)
    simulated_nights.copy(root / "n2", seed=42, n_frames=6, night_start="2026-03-16T23:10:00", **SMALL)
    return root


def snapshot(session) -> dict:
    """Every frame's status, every summary row (without row ids), every frame_quality row."""
    from sqlalchemy import select

    from obsdb.catalog.models import Frame, FrameQuality, NightBandSummary, NightSummary

    def rows(model, skip=()):
        columns = [c for c in model.__table__.columns if c.name not in skip]
        return sorted((tuple(r) for r in session.execute(select(*columns))), key=repr)

    return {"status": rows(Frame, skip={c.name for c in Frame.__table__.columns} - {"id", "status"}),
            "night": rows(NightSummary), "band": rows(NightBandSummary, skip={"id"}),
            "quality": rows(FrameQuality)}


def rule_statuses(session) -> dict[int, str]:
    """Each frame's status by the rule's SQL form, evaluated now."""
    from sqlalchemy import select

    from obsdb.catalog.models import Frame
    from obsdb.catalog.status import status_expression

    return dict(session.execute(select(Frame.id, status_expression())).all())


def check(cat: Catalog, where: str) -> None:
    """The kept status equals the rule on every frame; the kept summaries equal a full rebuild."""
    from sqlalchemy import select

    from obsdb.catalog.maintained import rebuild
    from obsdb.catalog.models import Frame

    with cat.session() as session:
        kept = snapshot(session)
        assert dict(session.execute(select(Frame.id, Frame.status)).all()) == rule_statuses(session), where
        report = rebuild(session)
        assert report["changed"] == 0, where
        assert snapshot(session) == kept, where
        session.rollback()


def test_kept_status_and_summaries_equal_recomputed_after_random_writes(nights, tmp_path, catalog_url):
    rng = random.Random(2512)
    night2 = tmp_path / "n2"
    night2.mkdir()
    later = sorted((nights / "n2").glob("*.fits"))
    with Catalog.open(catalog_url, create=True) as cat:
        cat.ingest([nights / "n1"])
        check(cat, "ingest")
        cat.qa()
        check(cat, "qa")
        for step in range(10):
            labels = [r["label"] for r in cat.frame_dicts(night="all")]
            frame = rng.choice(labels)
            action = rng.choice(("tag", "tag", "untag", "qa", "ingest", "align", "rule"))
            if action == "tag":
                cat.tag(frame, rng.choice(VERDICTS), reason=f"step {step}", author=rng.choice(("ana", "ben")))
            elif action == "untag":
                tags = [t["name"] for r in cat.frame_dicts(night="all") if r["label"] == frame for t in r["tags"]]
                if tags:
                    cat.untag(frame, rng.choice(tags), reason=f"step {step}", author="ana")
            elif action == "qa":
                cat.qa()                                                  # re-QA: rule tags kept or replaced
            elif action == "ingest" and later:
                for _ in range(rng.randint(1, 3)):
                    if later:
                        shutil.copy(later.pop(0), night2)
                cat.ingest([night2])
            elif action == "align":
                cat.align()
            else:
                cat.tag(frame, "cloud", reason="cloud: by hand as a rule would", author="ana")
            check(cat, f"step {step}: {action} {frame}")
        import statistics

        for row in cat.summary(night="all"):            # archive-wide medians: the middle of an index
            mine = [r for r in cat.frame_dicts(night="all") if r["band"] == row["band"] and r["type"] == row["type"]]
            fwhms = [r["metrics"]["fwhm"] for r in mine if r["metrics"] and r["metrics"]["fwhm"] is not None]
            backgrounds = [r["stats"]["background"] for r in mine if r["stats"]]
            assert row["median_fwhm"] == (statistics.median(fwhms) if fwhms else None)
            assert row["median_background"] == pytest.approx(statistics.median(backgrounds), rel=1e-12)
            assert row["frames"] == len(mine)
        counts = {n["night"]: n for n in cat.nights()}
        records = cat.frame_dicts(night="all")
        for name, night in counts.items():
            mine = [r for r in records if r["night"] == name]
            assert night["frames"] == len(mine)
            for state in ("accepted", "rejected", "pending"):
                assert night[state] == sum(r["status"] == state for r in mine)


def test_the_migration_backfill_equals_the_write_time_rows(nights, catalog_url):
    """0011's set-based SQL, run on a catalog whose derived rows were cleared, gives the rows kept at
    write time (medians to the last bits: the same middle values)."""
    import importlib.util
    from pathlib import Path

    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from sqlalchemy import delete, update

    from obsdb.catalog.models import Frame, FrameQuality, NightBandSummary, NightSummary

    path = next((Path(__file__).parents[2] / "migrations" / "versions").glob("0011_*.py"))
    spec = importlib.util.spec_from_file_location("migration_0011", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with Catalog.open(catalog_url, create=True) as cat:
        cat.ingest([nights / "n1", nights / "n2"])
        cat.qa()
        first = cat.frame_dicts(night=NIGHT1)[0]["label"]
        cat.tag(first, "reject", reason="wind", author="ana")
        cat.tag(first, "accept", reason="fine after all", author="ben")
        cat.tag(cat.frame_dicts(night=NIGHT2)[1]["label"], "tracking-big", reason="doubled", author="ana")
        with cat.session() as session:
            kept = snapshot(session)
            connection = session.connection()
            for model in (FrameQuality, NightBandSummary, NightSummary):
                connection.execute(delete(model.__table__))
            connection.execute(update(Frame.__table__).values(status="pending"))
            with Operations.context(MigrationContext.configure(connection)):
                migration._backfill()
            backfilled = snapshot(session)
            session.rollback()
    assert backfilled["status"] == kept["status"]
    assert backfilled["quality"] == kept["quality"]
    for key in ("night", "band"):
        assert len(backfilled[key]) == len(kept[key])
        for a, b in zip(backfilled[key], kept[key]):
                assert [pytest.approx(x, rel=1e-12) if isinstance(x, float) else x for x in b] == list(a), key
