"""Small conveniences: obsdb.toml found beside the data and in the user's config folder (and said by
--verbose and in the event log), shell completion, the export and import commands' help."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from obsdb import Catalog
from obsdb.cli.app import app
from obsdb.config import config_candidates, find_config

runner = CliRunner()


def _frames(folder):
    folder.mkdir(parents=True)
    for name in ("m31-a17.fits", "m31-b18.fits"):
        header = fits.Header({"IMAGETYP": "Light Frame", "FILTER": "V", "EXPTIME": 1.0,
                              "DATE-OBS": "2026-03-14T20:00:00"})
        fits.PrimaryHDU(np.full((16, 16), 100.0, np.float32), header).writeto(folder / name)


@pytest.fixture()
def place(tmp_path, monkeypatch):
    """A working folder, a data folder inside an observing folder, and an XDG config home, all empty."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    data = tmp_path / "obs" / "night1"
    _frames(data)
    return work, data, tmp_path / "xdg" / "obsdb"


# The number pattern takes the digits after a letter: 17 and 18 instead of none (the default needs 3+ digits).
PATTERN = '[ingest]\nnumber_pattern = "[ab](\\\\d+)"\n'


@pytest.mark.parametrize("where, how", [("data", "data folder"), ("beside", "beside the data folder"),
                                        ("user", "user config folder"), ("work", "working folder")])
def test_obsdb_toml_is_found_and_the_one_used_is_said(place, where, how):
    work, data, user = place
    folder = {"data": data, "beside": data.parent, "user": user, "work": work}[where]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "obsdb.toml").write_text(PATTERN)
    db = work / "c.sqlite"
    assert runner.invoke(app, ["--db", str(db), "init"]).exit_code == 0
    result = runner.invoke(app, ["--db", str(db), "--verbose", "ingest", str(data)])
    assert result.exit_code == 0, result.output
    assert f"configuration: {(folder / 'obsdb.toml').resolve()} ({how})" in result.output
    with Catalog.open(db) as catalog:
        assert sorted(r["number"] for r in catalog.frame_dicts()) == [17, 18]
        (event,) = catalog.log(command="ingest")
    assert event["details"]["config"] == str((folder / "obsdb.toml").resolve())


def test_the_working_folder_comes_first_and_without_a_file_the_defaults_say_where_they_looked(place):
    work, data, user = place
    (data / "obsdb.toml").write_text(PATTERN)
    (work / "obsdb.toml").write_text("[qa]\n")
    assert find_config([data]) == (Path("obsdb.toml"), "working folder")
    (work / "obsdb.toml").unlink()
    (data / "obsdb.toml").unlink()
    assert find_config([data]) is None
    assert [how for _, how in config_candidates([data])] == ["working folder", "data folder",
                                                             "beside the data folder", "user config folder"]
    db = work / "c.sqlite"
    runner.invoke(app, ["--db", str(db), "init"])
    result = runner.invoke(app, ["--db", str(db), "-v", "ingest", str(data)])
    assert "configuration: none found (defaults); looked in obsdb.toml" in result.output
    assert str(user / "obsdb.toml") in result.output


def test_a_broken_obsdb_toml_beside_the_data_is_a_one_line_error(place):
    work, data, _ = place
    (data.parent / "obsdb.toml").write_text("[ingest\n")
    db = work / "c.sqlite"
    runner.invoke(app, ["--db", str(db), "init"])
    result = runner.invoke(app, ["--db", str(db), "ingest", str(data)])
    assert result.exit_code == 1 and "obsdb.toml: not valid TOML" in result.output
    assert "Traceback" not in result.output


def test_shell_completion_is_offered_and_completes_commands(monkeypatch):
    # typer asks shellingham which shell runs it, by the process tree; a test run from a job without a
    # shell among its parents would otherwise read "Shell not supported".
    import importlib.util

    if importlib.util.find_spec("shellingham") is not None:
        import shellingham

        monkeypatch.setattr(shellingham, "detect_shell", lambda *args, **kwargs: ("bash", "/bin/bash"))
    monkeypatch.setenv("SHELL", "/bin/bash")
    result = runner.invoke(app, ["--help"], terminal_width=100)
    assert "--install-completion" in result.output and "--show-completion" in result.output
    script = runner.invoke(app, ["--show-completion", "bash"])
    assert "complete -o default -F _obsdb_completion obsdb" in script.output
    monkeypatch.setenv("_OBSDB_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "obsdb export a")
    monkeypatch.setenv("COMP_CWORD", "2")
    done = runner.invoke(app, [], prog_name="obsdb")
    assert done.output.split() == ["astrobin"]
