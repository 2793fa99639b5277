"""The catalog on PostgreSQL: the same migrations, writes and --where queries as on SQLite.

Runs only when ``OBSDB_TEST_POSTGRES_URL`` names an empty database, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/obsdb`` (psycopg comes with ``pip install '.[test]'``);
``.ci/run`` creates a fresh one for each run and drops it afterwards.
"""

import json
import os

import pytest
from typer.testing import CliRunner

from obsdb.cli.app import app

URL = os.environ.get("OBSDB_TEST_POSTGRES_URL")
if not URL and os.environ.get("OBSDB_REQUIRE_POSTGRES") == "1":
    raise RuntimeError("OBSDB_REQUIRE_POSTGRES=1 but OBSDB_TEST_POSTGRES_URL is not set")
pytestmark = pytest.mark.skipif(not URL, reason="set OBSDB_TEST_POSTGRES_URL to test PostgreSQL")
runner = CliRunner()


def _drop_everything(url):
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def test_a_night_on_postgresql_matches_the_same_night_on_sqlite(tmp_path, small_night):
    folder, _ = small_night
    _drop_everything(URL)
    answers = {}
    for name, db in (("postgresql", URL), ("sqlite", str(tmp_path / "obsdb.sqlite"))):
        for command in (["init"], ["ingest", str(folder)], ["qa"], ["align"],
                        ["render", "--out", str(tmp_path / name), "--stack", "median"]):
            result = runner.invoke(app, ["--db", db, *command])
            assert result.exit_code == 0, (name, command, result.output)
        queries = {}
        for where in ("EXPTIME >= 30 and band in ('V','B') and median > 500", "header['FILTER'] == 'V'",
                      "fwhm < 4 and n_stars > 10"):
            listed = json.loads(runner.invoke(app, ["--db", db, "frames", "--where", where,
                                                    "--format", "json"]).stdout)
            queries[where] = sorted(r["number"] for r in listed)
        rejected = json.loads(runner.invoke(app, ["--db", db, "rejected", "--format", "json"]).stdout)
        queries["rejected"] = sorted((r["number"], tuple(r["reasons"])) for r in rejected)
        answers[name] = queries
    assert answers["postgresql"] == answers["sqlite"]
    assert answers["sqlite"]["header['FILTER'] == 'V'"]  # the queries select something
