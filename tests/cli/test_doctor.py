"""`obsdb doctor --rebuild-summaries`: puts right a status and a summary written behind obsdb's back."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from obsdb.cli.app import app

runner = CliRunner()


def invoke(db, *args):
    return runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False)


def test_rebuild_summaries_repairs_what_was_changed_behind_obsdbs_back(tmp_path, small_night):
    folder, _ = small_night
    db = tmp_path / "c.sqlite"
    assert invoke(db, "init").exit_code == 0
    assert invoke(db, "ingest", str(folder), "--no-metrics").exit_code == 0
    before = invoke(db, "nights", "--format", "json").stdout
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as c:                   # a hand-made change: statuses and a count now wrong
        c.execute(text("UPDATE frame SET status = 'accepted' WHERE id <= 3"))
        c.execute(text("UPDATE night_summary SET frames = 999"))
    engine.dispose()
    assert invoke(db, "nights", "--format", "json").stdout != before
    result = invoke(db, "doctor", "--rebuild-summaries")
    assert result.exit_code == 0, result.output
    assert "3 statuses corrected" in result.stdout
    assert invoke(db, "nights", "--format", "json").stdout == before
    assert "0 statuses corrected" in invoke(db, "doctor", "--rebuild-summaries").stdout


def test_doctor_without_a_task_says_what_it_can_do(tmp_path):
    db = tmp_path / "c.sqlite"
    invoke(db, "init")
    result = invoke(db, "doctor")
    assert result.exit_code == 2 and "--rebuild-summaries" in result.output
