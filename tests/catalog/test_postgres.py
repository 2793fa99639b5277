"""The catalog on PostgreSQL: the same migrations, writes and --where queries as on SQLite.

Runs on a database created for it on the server the catalog tests use (``OBSDB_TEST_POSTGRES_URL``,
else a local one that answers; see ``tests/conftest.py``), dropped afterwards.
"""

import json

import pytest
from typer.testing import CliRunner

from obsdb.cli.app import app

runner = CliRunner()


@pytest.mark.parametrize("database_factory", ["postgresql"], indirect=True)
def test_a_night_on_postgresql_matches_the_same_night_on_sqlite(tmp_path, small_night, database_factory):
    folder, _ = small_night
    answers = {}
    for name, db in (("postgresql", database_factory()), ("sqlite", str(tmp_path / "obsdb.sqlite"))):
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
