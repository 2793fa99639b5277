"""Faults a user meets: outputs inside the night's folder, files that could not be read once, ..."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsdb import Catalog

# The faults injected into whole commands on a night are system tests, run by .ci/run with the slow ones;
# the sentences each fault becomes are checked here by default.
SYSTEM = pytest.mark.system

SMALL = dict(size=192, n_frames=4, bands=("V",), n_groups=1, cloud_fraction=0, trail_fraction=0,
             defocus_fraction=0)


@SYSTEM
def test_run_twice_with_its_output_inside_the_night_ingests_no_output(tmp_path, copy_night):
    """`obsdb run NIGHT --out NIGHT/processed`, twice: the aligned frames and stacks are never frames."""
    from obsdb.api import Catalog

    night = tmp_path / "night"
    copy_night(night, seed=61, **SMALL)
    out = night / "processed"
    Catalog.run(night, out, report=False)
    Catalog.run(night, out, report=False)
    with Catalog.open(out / "obsdb.sqlite") as catalog:
        paths = [record["path"] for record in catalog.frame_dicts()]
    assert len(paths) == 4 and not any("/processed/" in path for path in paths)
    # A plain ingest of the night later, into the same catalog: the outputs are recognised by the catalog.
    with Catalog.open(out / "obsdb.sqlite") as catalog:
        report = catalog.ingest([night], recursive=True)
        assert len(report.own_outputs) >= 5          # 4 aligned frames and the stack
        assert len(catalog.frame_dicts()) == 4


@SYSTEM
def test_a_file_that_failed_to_read_is_read_again_by_the_next_ingest(tmp_path, monkeypatch, copy_night):
    """Permission denied for one user (or a file still being copied) is no verdict on the file."""
    from obsdb.imaging import fitsio

    night = tmp_path / "night"
    copy_night(night, seed=62, **SMALL)
    victim = sorted(night.glob("*.fits"))[0]
    real = fitsio.read_fits_image

    def denied(path, **kwargs):
        if Path(path).name == victim.name:
            raise fitsio.FitsReadError("cannot open: Permission denied")
        return real(path, **kwargs)

    with Catalog.open(tmp_path / "obsdb.sqlite", create=True) as catalog:
        monkeypatch.setattr(fitsio, "read_fits_image", denied)
        first = catalog.ingest([night])
        assert [Path(path).name for path, _ in first.failed] == [victim.name]
        monkeypatch.setattr(fitsio, "read_fits_image", real)
        second = catalog.ingest([night])          # same size and mtime: read again all the same
        assert second.failed == [] and len(second.unchanged) == 3
        record = next(r for r in catalog.frame_dicts() if r["file_name"] == victim.name)
        assert record["readable"] and record["stats"]["median"] > 0


@SYSTEM
@pytest.mark.parametrize("text, message", [
    ('[ingest]\nnumber_pattern = "(\\\\d+"\n', "ingest.number_pattern: not a valid regular expression"),
    ('[ingest]\nnumber_patern = "(\\\\d+)"\n', "unknown key ingest.number_patern (did you mean 'number_pattern'?)"),
    ("[ingest]\nmeasure_quality = 1\n", "ingest.measure_quality: must be true or false"),
    ("ingest = 3\n", "ingest: must be a table"),
])
def test_a_bad_configuration_is_one_line_naming_the_key(tmp_path, text, message, copy_night):
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    config = tmp_path / "obsdb.toml"
    config.write_text(text)
    copy_night(tmp_path / "night", seed=63, **SMALL)
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "c.sqlite"), "--config", str(config), "ingest",
                                      str(tmp_path / "night")])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output


@SYSTEM
def test_writes_to_a_read_only_catalog_are_one_line_and_change_nothing(tmp_path, copy_night):
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    copy_night(tmp_path / "night", seed=64, **SMALL)
    db = tmp_path / "c.sqlite"
    with Catalog.open(db, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
    before = db.read_bytes()
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    runner = CliRunner()
    for command in (["qa"], ["tag", "1001", "great", "--reason", "sharp"], ["align", "--status", "any"]):
        result = runner.invoke(app, ["--db", read_only, *command])
        assert result.exit_code == 1, (command, result.output)
        assert "is read-only for you: nothing was changed" in result.output, result.output
        assert "unexpected" not in result.output and len(result.output.strip().splitlines()) == 1
    assert runner.invoke(app, ["--db", read_only, "frames", "--format", "json"]).exit_code == 0
    assert db.read_bytes() == before


@pytest.mark.parametrize("exc, sentence", [
    (OSError(28, "No space left on device", "/data/out/x.fits"), "/data/out/x.fits: the disk is full"),
    (OSError(30, "Read-only file system", "/mnt/ro/out"), "/mnt/ro/out: the file system is read-only"),
    (PermissionError(13, "Permission denied", "/root/out"), "/root/out: permission denied"),
    (MemoryError(), "out of memory: nothing was changed"),
])
def test_failures_of_the_machine_are_sentences(exc, sentence):
    from obsdb.failures import known_failure

    assert known_failure(exc).startswith(sentence)


def test_a_full_disk_under_the_catalog_is_named_as_such(monkeypatch):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from obsdb.failures import known_failure

    full = OperationalError("INSERT INTO tag ...", {}, sqlite3.OperationalError("database or disk is full"))
    assert known_failure(full).startswith("the disk holding the catalog is full: nothing was changed")


@SYSTEM
def test_render_and_report_refuse_an_out_that_is_a_file(tmp_path, copy_night):
    from obsdb.errors import ObsdbError
    from obsdb.report.build import build_report

    copy_night(tmp_path / "night", seed=65, **SMALL)
    (tmp_path / "a-file").write_text("mine")
    with Catalog.open(tmp_path / "c.sqlite", create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        catalog.qa()
        catalog.align()
        with pytest.raises(ObsdbError, match="is a file, not a folder"):
            catalog.render(tmp_path / "a-file")
        with pytest.raises(ObsdbError, match="is a file, not a folder"):
            build_report(catalog, tmp_path / "a-file")
    assert (tmp_path / "a-file").read_text() == "mine"


@SYSTEM
def test_errors_point_the_right_way(tmp_path, copy_night, monkeypatch):
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["run", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "no FITS files" in result.output and "obsdb qa" not in result.output
    copy_night(tmp_path / "night", seed=66, **SMALL)
    db = str(tmp_path / "c.sqlite")
    for command in (["init"], ["ingest", str(tmp_path / "night")], ["qa"], ["align"]):
        assert runner.invoke(app, ["--db", db, *command]).exit_code == 0
    nothing = runner.invoke(app, ["--db", db, "render", "--out", str(tmp_path / "r"), "--where", "fwhm > 100"])
    assert nothing.exit_code == 1 and "no frame matches --status accepted, --where 'fwhm > 100'" in nothing.output
    # A driver that is not installed (psycopg2 is, with the test extra: hidden here as if it were not;
    # None in sys.modules makes its import raise ModuleNotFoundError).
    import sys

    monkeypatch.setitem(sys.modules, "psycopg2", None)
    missing = runner.invoke(app, ["--db", "postgresql+psycopg2://u@127.0.0.1/x", "frames"])
    assert missing.exit_code == 1 and "need the Python package psycopg2 (pip install 'obsdb[postgres]')" \
        in missing.output, missing.output
    unknown = runner.invoke(app, ["--db", "postgresql+nosuchdriver://u@127.0.0.1/x", "frames"])
    assert unknown.exit_code == 1 and "not a kind of database obsdb knows" in unknown.output, unknown.output


@SYSTEM
def test_a_text_file_given_by_name_is_refused_and_not_catalogued(tmp_path, copy_night):
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    (tmp_path / "README.md").write_text("# my notes\n")
    copy_night(tmp_path / "night", seed=67, **SMALL)
    frame = sorted((tmp_path / "night").glob("*.fits"))[0]
    renamed = tmp_path / "frame.data"                     # a FITS file by content, whatever its name
    renamed.write_bytes(frame.read_bytes())
    db = str(tmp_path / "c.sqlite")
    runner = CliRunner()
    assert runner.invoke(app, ["--db", db, "init"]).exit_code == 0
    result = runner.invoke(app, ["--db", db, "ingest", str(tmp_path / "README.md")])
    assert result.exit_code == 1 and "README.md: not a FITS file" in result.output, result.output
    assert runner.invoke(app, ["--db", db, "ingest", str(renamed)]).exit_code == 0
    with Catalog.open(db) as catalog:
        assert [r["file_name"] for r in catalog.frame_dicts()] == ["frame.data"]


def _fake(name: str, module: str, base=Exception):
    return type(name, (base,), {"__module__": module})


@pytest.mark.parametrize("exc, sentence", [
    (_fake("FutureCancelledError", "distributed.client")("f-1 cancelled"), "the Dask cluster stopped"),
    (_fake("KilledWorker", "distributed.scheduler")("worker died"), "the Dask cluster stopped"),
    (_fake("CommClosedError", "distributed.comm.core")("closed"), "the Dask cluster stopped"),
])
def test_a_dying_dask_cluster_is_one_sentence(exc, sentence):
    from obsdb.failures import known_failure

    assert known_failure(exc).startswith(sentence)


@pytest.mark.parametrize("message, sentence", [
    ("server closed the connection unexpectedly", "the catalog's database server stopped during the command"),
    ("terminating connection due to administrator command", "the catalog's database server stopped"),
    ("the database system is shutting down", "the catalog's database server stopped"),
])
def test_a_database_server_that_stops_is_one_sentence(message, sentence):
    from sqlalchemy.exc import OperationalError

    from obsdb.failures import known_failure

    failure = known_failure(OperationalError("INSERT INTO frame ...", {}, _fake("OperationalError", "psycopg")(message)))
    assert failure.startswith(sentence) and "run the command again" in failure


def test_a_database_role_that_may_only_read_is_one_sentence():
    from sqlalchemy.exc import ProgrammingError

    from obsdb.failures import known_failure

    orig = _fake("InsufficientPrivilege", "psycopg.errors")("permission denied for table tag")
    failure = known_failure(ProgrammingError("INSERT INTO tag ...", {}, orig))
    assert "is read-only for you" in failure and "nothing was changed" in failure
