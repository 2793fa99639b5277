"""Verdicts: a person's latest word wins, rules never overturn it, and the three forms of the rule agree."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from typer.testing import CliRunner

from obsdb import Catalog
from obsdb.catalog.status import STATUSES, verdict
from obsdb.cli.app import app

runner = CliRunner()


def invoke(db, *args):
    return runner.invoke(app, ["--db", str(db), *args], terminal_width=300)

T0 = datetime(2026, 12, 6, 21, 0, tzinfo=timezone.utc)


@dataclass
class FakeTag:
    name: str
    source: str = "manual"
    reason: str = "by eye"
    author: str = "ana"
    minute: int = 0

    @property
    def created_at(self):
        return T0 + timedelta(minutes=self.minute)


def test_a_persons_latest_verdict_wins_either_way():
    accept, reject = FakeTag("accept", minute=2), FakeTag("tracking-big", minute=4)
    assert verdict([accept, reject], assessed=True).status == "rejected"
    assert verdict([reject, accept], assessed=True).status == "accepted"
    later = FakeTag("accept", author="bob", minute=6)
    judged = verdict([accept, reject, later], assessed=True)
    assert judged.status == "accepted" and judged.deciding is later
    assert [t.name for t in judged.overruled] == ["tracking-big", "accept"]
    assert judged.explain().startswith("accepted: accept by bob 2026-12-06 21:06, after tracking-big by ana 21:04")


def test_rules_never_overturn_a_person_and_are_shown_disagreeing():
    cloud = FakeTag("cloud", source="rule:cloud", reason="cloud: transparency 0.31 < 0.5", author="obsdb", minute=9)
    accepted = verdict([FakeTag("accept", minute=1), cloud], assessed=True)
    assert accepted.status == "accepted" and accepted.decided_by == "person"
    assert accepted.disagreeing == ["cloud: transparency 0.31 < 0.5"]
    assert "the rules say otherwise: cloud: transparency 0.31" in accepted.explain()
    rejected = verdict([FakeTag("reject", source="web", minute=1), cloud], assessed=True)
    assert rejected.status == "rejected" and rejected.reasons[0] == "reject: by eye"
    assert "the rules agree: cloud" in rejected.explain()
    assert verdict([cloud], assessed=True).status == "rejected"
    assert verdict([cloud], assessed=True).decided_by == "rules"


def test_grades_and_free_text_are_no_verdicts():
    cloud = FakeTag("cloud", source="rule:cloud", reason="cloud: x", author="obsdb")
    assert verdict([cloud, FakeTag("great", minute=3)], assessed=True).status == "rejected"
    assert verdict([FakeTag("okay")], assessed=False).status == "accepted"
    assert verdict([FakeTag("looked at twice")], assessed=False).status == "pending"


def test_unregistered_speaks_only_for_a_frame_no_run_registered():
    failed = FakeTag("unregistered", source="rule:unregistered", reason="run 7: no match", author="obsdb")
    assert verdict([failed], assessed=True, registered=False).status == "rejected"
    assert verdict([failed], assessed=True, registered=True).status == "accepted"


def test_unreadable_is_rejected_whatever_a_person_said():
    judged = verdict([FakeTag("accept")], assessed=False, readable=False, error="truncated")
    assert judged.status == "rejected" and judged.reasons == ["unreadable: truncated"]


@pytest.fixture(scope="module")
def night(tmp_path_factory, simulated_nights):

    root = tmp_path_factory.mktemp("verdicts")
    simulated_nights.copy(root / "night", seed=5, size=192, n_frames=10, bands=("V",), n_groups=1)
    return root / "night"


def _status(cat, label):
    return next(f.status for f in cat.frames() if f.label == label)


def test_accept_reject_accept_on_the_catalog_and_rules_rerun(night, tmp_path, catalog_url):
    """On each backend: the person's latest verdict decides, a QA re-run does not overturn it, every
    form of the rule agrees on every frame, and each tag reports the resulting status."""
    from sqlalchemy import select

    from obsdb.catalog.models import Frame
    from obsdb.catalog.status import status_condition, status_expression

    with Catalog.open(catalog_url, create=True) as cat:
        cat.ingest([night])
        cat.qa()
        frames = cat.frames()
        good = next(f for f in frames if f.status == "accepted").label
        bad = next((f for f in frames if f.status == "rejected"), None)
        steps = [("accept", "accepted", "accepted"), ("tracking-big", "accepted", "rejected"),
                 ("accept", "rejected", "accepted"), ("reject", "accepted", "rejected")]
        for name, before, after in steps:
            done = cat.tag(str(good), name, reason=f"{name} by eye", author="ana")
            assert [(o.before, o.after) for o in done.outcomes] == [(before, after)], name
            assert _status(cat, good) == after
        done = cat.untag(str(good), "reject", reason="misclick", author="ana")
        assert [(o.before, o.after) for o in done.outcomes] == [("rejected", "accepted")]
        if bad is not None:
            cat.tag(str(bad.label), "accept", reason="fine by eye", author="ana")
            cat.qa(recompute=True)
            record = next(r for r in cat.frame_dicts() if r["label"] == bad.label)
            assert record["status"] == "accepted" and record["verdict"]["disagreeing"]
        cat.tag(str(frames[-1].label), "reject", reason="satellite", author="bob")
        cat.qa()
        assert _status(cat, frames[-1].label) == "rejected"
        with cat.session() as session:
            by_case = {s: set(session.scalars(select(Frame.id).where(status_expression() == s))) for s in STATUSES}
            by_condition = {s: set(session.scalars(select(Frame.id).where(status_condition(s)))) for s in STATUSES}
        by_python = {s: {r["id"] for r in cat.frame_dicts() if r["status"] == s} for s in STATUSES}
        assert by_condition == by_case
        python_status = {s: set() for s in STATUSES}
        for r in cat.frame_dicts():
            python_status[_python_status(r)].add(r["id"])
        assert python_status == by_case == by_python


def _python_status(record) -> str:
    """The Python form on a listing's record (its tags and shift)."""
    from types import SimpleNamespace

    tags = [SimpleNamespace(**t) for t in record["tags"]]
    return verdict(tags, assessed=record["metrics"] is not None, registered=record["shift"] is not None,
                   readable=record["readable"]).status


def test_the_cli_reports_the_resulting_status(night, tmp_path):
    db = tmp_path / "c.sqlite"
    assert invoke(db, "init").exit_code == 0
    assert invoke(db, "ingest", str(night)).exit_code == 0
    assert invoke(db, "qa").exit_code == 0
    number = json.loads(invoke(db, "frames", "--status", "accepted", "--format", "json").stdout)[0]["number"]
    first = invoke(db, "tag", str(number), "accept", "-m", "sharp", "--author", "ana")
    assert f"{number}: still accepted (accepted: accept by ana" in first.stdout
    second = invoke(db, "tag", str(number), "tracking-big", "-m", "doubled", "--author", "ana")
    assert f"{number}: accepted -> rejected (rejected: tracking-big by ana" in second.stdout
    assert "after accept by ana" in second.stdout
    third = json.loads(invoke(db, "tag", str(number), "accept", "-m", "fine", "--format", "json").stdout)
    assert third["frames"][0]["before"] == "rejected" and third["frames"][0]["status"] == "accepted"
    shown = json.loads(invoke(db, "show", str(number), "--format", "json").stdout)[0]
    assert shown["status"] == "accepted" and shown["verdict"]["decided_by"] == "person"
    assert shown["verdict"]["explain"].startswith("accepted: accept by")


def test_an_older_catalogs_accepts_stay_in_force(tmp_path):
    """A 0003 catalog where an accept came before a manual reject keeps the frame accepted at head."""
    from alembic import command

    from obsdb.catalog.db import alembic_config, database_url, make_engine, upgrade

    path = tmp_path / "old.sqlite"
    url = database_url(str(path))
    command.upgrade(alembic_config(url), "0003")
    engine = make_engine(url)
    stamp = "2026-03-15 08:00:00"
    with engine.begin() as c:
        c.execute(text("INSERT INTO night (id, name, source, created_at) VALUES (1, '2026-03-14', 'date-obs', :t)"),
                  {"t": stamp})
        for frame_id in (1, 2, 3, 4):
            c.execute(text(
                "INSERT INTO frame (id, night_id, path, file_name, size, mtime, number, band, image_type, readable, "
                "ingested_at, measured_at) VALUES (:id, 1, :path, :name, 10, 0, :number, 'V', 'light', 1, :t, :t)"),
                {"id": frame_id, "path": f"/n/f{1000 + frame_id}.fits", "name": f"f{1000 + frame_id}.fits",
                 "number": 1000 + frame_id, "t": stamp})
            c.execute(text("INSERT INTO frame_metrics (frame_id, n_stars, algorithm, measured_at, assessed_at) "
                           "VALUES (:id, 20, 'm', :t, :t)"), {"id": frame_id, "t": stamp})
        for frame_id, names in ((1, ("accept", "reject")), (2, ("reject", "accept")), (3, ("reject",)),
                                (4, ("accept", "tracking-big", "reject"))):
            for name in names:
                c.execute(text("INSERT INTO tag (frame_id, name, source, reason, author, created_at) VALUES "
                               "(:f, :n, 'manual', 'old', 'nico', :t)"), {"f": frame_id, "n": name, "t": stamp})
    engine.dispose()
    assert upgrade(url)[0] == "0003"
    with Catalog.open(path) as cat:
        assert [f.status for f in cat.frames()] == ["accepted", "accepted", "rejected", "accepted"]
        history = cat.frame_verdicts(1)["tag_history"]
        carried = [t for t in history if t["name"] == "accept"]
        assert len(carried) == 2 and carried[0]["retracted_at"] and not carried[1]["retracted_at"]
        assert carried[1]["author"] == "nico" and carried[1]["reason"] == "old"
        # From here on, the latest word wins: a reject now rejects.
        cat.tag("1001", "reject", reason="now it counts", author="nico")
        assert cat.frames()[0].status == "rejected"


def test_a_number_several_files_of_one_night_share_names_none_of_them(tmp_path):
    from astropy.io import fits
    import numpy as np

    folder = tmp_path / "seestar"
    folder.mkdir()
    for minute in range(3):
        header = fits.Header({"DATE-OBS": f"2025-03-26T21:2{minute}:00", "IMAGETYP": "Light", "FILTER": "L"})
        fits.writeto(folder / f"m94_21{minute}046_crop512.fits", np.zeros((32, 32), "u2") + 100 + minute, header)
    db = tmp_path / "c.sqlite"
    assert invoke(db, "init").exit_code == 0
    ingested = invoke(db, "ingest", str(folder))
    assert ingested.exit_code == 0
    assert f"{folder}: numbers are the last run of 3 or more digits" in ingested.stderr
    assert "512 (3 files)" in ingested.stderr and "--number-pattern" in ingested.stderr
    refused = invoke(db, "tag", "512", "reject", "-m", "only the first")
    assert refused.exit_code != 0
    assert "frame number 512 names 3 files of night 2025-03-26" in refused.stderr
    assert "m94_210046_crop512.fits (" in refused.stderr and str(folder) in refused.stderr
    assert invoke(db, "tag", "500-600", "reject", "-m", "x").exit_code != 0
    listed = json.loads(invoke(db, "frames", "--format", "json").stdout)
    assert sorted(r["label"] for r in listed) == sorted(p.name for p in folder.iterdir())
    one = invoke(db, "tag", listed[0]["label"], "reject", "-m", "only the first")
    assert one.exit_code == 0 and "tagged 1 frame" in one.stdout
    assert invoke(db, "tag", f"2025-03-26:{listed[1]['label']}", "reject", "-m", "x").exit_code == 0
    statuses = [r["status"] for r in json.loads(invoke(db, "frames", "--format", "json").stdout)]
    assert statuses.count("rejected") == 2


@pytest.fixture(scope="module")
def two_fields(tmp_path_factory, simulated_nights):
    """Two nights of two unrelated star fields (different seeds), so that one cannot register the other."""
    root = tmp_path_factory.mktemp("fields")
    simulated_nights.copy(root / "a", seed=21, size=192, n_frames=4, bands=("V",), n_groups=1, object_name="FIELD-A")
    simulated_nights.copy(root / "b", seed=42, size=192, n_frames=4, bands=("V",), n_groups=1, object_name="FIELD-B",
                          night_start="2026-04-02T21:30:00")
    return root


def test_a_failed_cross_night_alignment_condemns_no_frame(two_fields, tmp_path, catalog_url):
    """Aligning night B onto night A's reference fails for B's frames: they are tagged `unregistered` for
    that run only.  Frames B's own run registered stay accepted; a never-registered frame is left out
    until a run registers it, and re-aligning night B works."""
    with Catalog.open(catalog_url, create=True) as cat:
        cat.ingest([two_fields / "a", two_fields / "b"])
        cat.qa()
        nights = sorted(n["night"] for n in cat.nights())
        cat.align(night=nights[1])
        accepted_b = {f.id for f in cat.frames(night=nights[1], status="accepted")}
        assert accepted_b
        reference_a = next(f for f in cat.frames(night=nights[0], status="accepted"))
        reports = cat.align(night="all", reference=str(reference_a.label))
        failed = {r.frame_id for report in reports for r in report.results if not r.ok}
        assert failed and failed <= {f.id for f in cat.frames(night=nights[1])}
        # The failure is recorded with its run, and rejects nothing that another run registered.
        after = {r["id"]: r for r in cat.frame_dicts(night=nights[1])}
        assert {i for i, r in after.items() if r["status"] == "accepted"} == accepted_b
        tagged = [t for i in failed for t in after[i]["tags"] if t["name"] == "unregistered"]
        assert len(tagged) == len(failed)
        # Re-aligning night B works, and registers its frames again (the tags are retracted).
        again = cat.align(night=nights[1])
        assert all(r.ok for report in again for r in report.results)
        assert not [t for r in cat.frame_dicts(night=nights[1]) for t in r["tags"] if t["name"] == "unregistered"]


def test_a_night_never_registered_can_be_aligned_after_a_failed_cross_night_run(two_fields, tmp_path):
    with Catalog.open(tmp_path / "c.sqlite", create=True) as cat:
        cat.ingest([two_fields / "a", two_fields / "b"])
        cat.qa()
        nights = sorted(n["night"] for n in cat.nights())
        reference_a = next(f for f in cat.frames(night=nights[0], status="accepted"))
        cat.align(night="all", reference=str(reference_a.label))
        left_out = [f for f in cat.frames(night=nights[1], status="rejected")
                    if any(r.startswith("unregistered: run") for r in f.reasons)]
        assert left_out
        again = cat.align(night=nights[1])
        registered = {r.frame_id for report in again for r in report.results if r.ok}
        assert {f.id for f in left_out} <= registered
        still = {f.id for f in cat.frames(night=nights[1], status="rejected")}
        assert not still & registered - {f.id for f in left_out if len(f.reasons) > 1}


def test_a_reason_with_an_undecodable_byte_is_stored_not_a_crash(night, tmp_path, catalog_url):
    """A reason holding a lone surrogate (an undecodable byte of a command line or a request body, as the
    desk's fuzzing sent) is kept as its escape, on each backend; the accept that supersedes the verdict
    writes it into the retraction too."""
    with Catalog.open(catalog_url, create=True) as cat:
        cat.ingest([night])
        label = cat.frames()[0].label
        cat.tag(label, "tracking-slight", reason="doubled \ud800 stars", author="ana")
        cat.tag(label, "tracking-slight", reason="\ud800", author="ana")     # supersedes the first
        cat.tag(label, "accept", reason="\ud800", author="ana")
        record = next(f for f in cat.frames() if f.label == label)
        assert record.status == "accepted"
        assert [t.reason for t in record.tags if t.name == "accept"] == ["\\ud800"]
        history = cat.show(label)[0]["tag_history"]
        first = next(t for t in history if t["name"] == "tracking-slight")
        assert first["reason"] == "doubled \\ud800 stars" and first["retract_reason"] == "superseded: \\ud800"
