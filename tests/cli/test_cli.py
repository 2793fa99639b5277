"""The command line through typer's CliRunner: contract, JSON shape, one-line errors, help texts."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from obsdb.cli.app import app
from tests.conftest import write_fits

runner = CliRunner()


def invoke(db, *args):
    return runner.invoke(app, ["--db", str(db), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, small_night):
    folder, truth = small_night
    db = tmp_path_factory.mktemp("cli") / "obsdb.sqlite"
    assert invoke(db, "init").exit_code == 0
    result = invoke(db, "ingest", str(folder), "--no-metrics")
    assert result.exit_code == 0, result.output
    return db, truth


def test_command_without_catalog_says_run_init(tmp_path):
    result = invoke(tmp_path / "none.sqlite", "frames")
    assert result.exit_code == 1
    assert "obsdb init" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_frames_json_lists_the_band_with_stats(ingested):
    db, truth = ingested
    result = invoke(db, "frames", "--band", "V", "--format", "json")
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    expected = sorted(f["number"] for f in truth.frames if f["band"] == "V")
    assert [r["number"] for r in records] == expected
    for record in records:
        assert {"number", "path", "band", "status", "reasons", "tags", "stats", "metrics", "group",
                "shift"} <= set(record)
        assert record["band"] == "V" and record["status"] in ("accepted", "rejected", "pending")
        assert record["stats"]["median"] > 0 and record["shift"] is None


def test_frames_where_and_csv(ingested):
    db, truth = ingested
    result = invoke(db, "frames", "--where", "band == 'B' and EXPTIME > 0", "--format", "csv")
    assert result.exit_code == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("number,file_name,band")
    assert len(lines) - 1 == sum(f["band"] == "B" for f in truth.frames)


def test_bad_where_is_one_line(ingested):
    db, _ = ingested
    result = invoke(db, "frames", "--where", "EXPTIME >>= 30")
    assert result.exit_code == 1
    assert "invalid syntax" in result.output and len(result.output.strip().splitlines()) == 1


def test_show_by_number_and_range(ingested):
    db, truth = ingested
    number = truth.frames[0]["number"]
    result = invoke(db, "show", str(number), "--format", "json")
    assert result.exit_code == 0
    [detail] = json.loads(result.stdout)      # always a list, one object per frame named
    assert detail["number"] == number and detail["header"]["FILTER"] == truth.frames[0]["band"]
    assert len(detail["sha256"]) == 64 and detail["tag_history"] == []
    numbers = [f["number"] for f in truth.frames[:3]]
    many = json.loads(invoke(db, "show", f"{numbers[0]}-{numbers[2]}", "--format", "json").stdout)
    assert [d["number"] for d in many] == numbers
    missing = invoke(db, "show", "999999")
    assert missing.exit_code == 1 and "no frame" in missing.output


def test_ingest_bad_files_exit_nonzero_and_name_them(tmp_path):
    db = tmp_path / "c.sqlite"
    invoke(db, "init")
    write_fits(tmp_path / "n" / "ok_0001.fits", np.ones((16, 16), np.float32))
    (tmp_path / "n" / "bad_0002.fits").write_text("nope")
    result = invoke(db, "ingest", str(tmp_path / "n"), "--no-metrics")
    assert result.exit_code == 1
    assert "bad_0002.fits: not a FITS file" in result.output
    assert "Traceback" not in result.output


def test_ingest_missing_path_is_one_line(tmp_path):
    db = tmp_path / "c.sqlite"
    invoke(db, "init")
    result = invoke(db, "ingest", str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "no such file or folder" in result.output


def _commands(group, prefix=()):
    import typer.main

    click_group = typer.main.get_command(group)
    stack = [(prefix, click_group)]
    while stack:
        path, command = stack.pop()
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            stack.append((path + (name,), sub))


def test_every_command_has_help():
    """Like sqlite-utils' test_docs: a command without help text fails the build."""
    for path, command in _commands(app):
        if not path:
            continue
        assert command.help and command.help.strip(), f"obsdb {' '.join(path)} has no help text"
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"obsdb {' '.join(path)} {param.opts[0]} has no help"


def test_log_lists_the_commands_that_changed_the_catalog(ingested):
    db, truth = ingested
    events = json.loads(invoke(db, "log", "--format", "json").stdout)
    ingests = [e for e in events if e["command"] == "ingest"]
    assert ingests and f"{len(truth.frames)} files" in ingests[-1]["summary"]
    assert all(e["author"] for e in events)
    only = json.loads(invoke(db, "log", "--command", "qa", "--format", "json").stdout)
    assert all(e["command"] == "qa" for e in only)


def test_text_in_square_brackets_is_printed_as_it_is(ingested, tmp_path):
    """Reasons, paths and messages are data, not rich markup: '[see ds9]' must not vanish."""
    db, truth = ingested
    number = truth.frames[0]["number"]
    reason = "stars doubled [see ds9, frame [3]] [bold]"
    assert invoke(db, "tag", str(number), "reject", "--reason", reason).exit_code == 0
    try:
        assert reason in runner.invoke(app, ["--db", str(db), "rejected"], terminal_width=300).output
        assert reason in runner.invoke(app, ["--db", str(db), "show", str(number)], terminal_width=300).output
    finally:
        invoke(db, "untag", str(number), "reject", "--reason", "test over")
    plan = tmp_path / "plan.toml"
    plan.write_text('[tags]\nreject = "1-3"\n')
    result = runner.invoke(app, ["--db", str(db), "apply", str(plan)], terminal_width=300)
    assert result.exit_code == 1 and "must be a list of [[tags]] entries" in result.output, result.output


def test_ingest_of_a_folder_without_fits_files_says_so(tmp_path):
    db = tmp_path / "c.sqlite"
    invoke(db, "init")
    (tmp_path / "night" / "sub").mkdir(parents=True)
    (tmp_path / "night" / "notes.txt").write_text("clouds after 2am")
    result = runner.invoke(app, ["--db", str(db), "ingest", str(tmp_path / "night")], terminal_width=300)
    assert result.exit_code == 0 and "no FITS files" in result.output and "--recursive" in result.output


def test_streamed_json_is_one_document_with_nan_as_null(capsys):
    from obsdb.cli.common import print_json_stream

    items = [{"a": 1.5, "b": [float("nan"), 2]}, {"a": float("inf"), "b": []}]
    print_json_stream(iter(items))
    text = capsys.readouterr().out
    assert json.loads(text) == [{"a": 1.5, "b": [None, 2]}, {"a": None, "b": []}]
    assert len(text.splitlines()) == 4  # piped: one compact item per line
    print_json_stream(iter([]))
    assert json.loads(capsys.readouterr().out) == []


def test_help_keeps_every_bracketed_word_and_the_short_options():
    """Rich markup once ate "[qa]" from "obsdb.toml's [qa] section"; -h and --version exist."""
    import re

    for path, command in _commands(app):
        texts = [command.help or ""] + [param.help or "" for param in command.params
                                        if getattr(param, "help", None)]
        bracketed = {word for text in texts for word in re.findall(r"\[[A-Za-z_][\w.-]*\]", text)}
        for flag in ("--help", "-h"):
            result = runner.invoke(app, [*path, flag], terminal_width=100)
            assert result.exit_code == 0, (path, result.output)
            flat = " ".join(result.output.split())
            for word in bracketed:
                assert word in flat, f"obsdb {' '.join(path)} --help lost {word}"
            assert "<bool>" not in flat
    assert runner.invoke(app, ["--version"]).output.startswith("obsdb ")


def test_only_formats_a_command_can_write_are_offered():
    for command in ("show", "qa", "log", "rejected"):
        result = runner.invoke(app, [command, "--help"], terminal_width=100)
        assert "csv" not in result.output, command


@pytest.mark.parametrize("args, message", [
    (["frames", "--type", "lights"], "--type 'lights': did you mean 'light'?"),
    (["frames", "--status", "rejectd"], "--status 'rejectd': did you mean 'rejected'?"),
    (["render", "--out", "x", "--interp", "spline"], "--interp 'spline': did you mean 'spline3'?"),
    (["render", "--out", "x", "--status", "acepted"], "--status 'acepted': did you mean 'accepted'?"),
    (["align", "--method", "stagged"], "--method 'stagged': did you mean 'staged'?"),
])
def test_every_enumerated_option_is_checked_with_a_did_you_mean(ingested, args, message):
    db, _ = ingested
    result = invoke(db, *args)
    assert result.exit_code == 1 and message in result.output, result.output


@pytest.fixture(scope="module")
def assessed(tmp_path_factory, small_night):
    """The small night ingested with metrics, judged and aligned: long reasons, shifts, every column filled."""
    folder, truth = small_night
    db = tmp_path_factory.mktemp("widths") / "obsdb.sqlite"
    for command in (["init"], ["ingest", str(folder)], ["qa"], ["align"]):
        assert invoke(db, *command).exit_code == 0
    return db, truth


def _piped(db, columns: int, *args: str):
    """The command as a script sees it: stdout a pipe, COLUMNS set."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OBSDB_DB", "OBSDB_CONFIG")}
    env.update(COLUMNS=str(columns), OBSDB_DB=str(db))
    return subprocess.run([sys.executable, "-m", "obsdb.cli.app", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command", [["frames"], ["frames", "--band", "V"], ["rejected"], ["log"]])
def test_tables_fit_the_terminal_and_never_split_a_number(assessed, columns, command):
    import re

    db, truth = assessed
    result = _piped(db, columns, *command)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= columns, max(lines, key=len)
    if command[0] == "frames":
        numbers = {f["number"] for f in truth.frames}
        rows = [line for line in lines if re.match(r"^\d{4}\b", line)]
        # Each row starts with a whole frame number: none folded onto two lines.
        assert rows and all(int(line.split()[0]) in numbers for line in rows)
        assert {"band", "status", "FWHM px"} <= set(re.split(r"\s{2,}", lines[1].strip()))
        assert "--wide shows all" in result.stderr
    if command[0] == "rejected":
        assert not re.search(r"\b(\w[\w-]*)\s+\1: ", result.stdout)        # a reason never repeats its tag
    wide = _piped(db, columns, *command, "--wide")
    assert wide.returncode == 0 and "more column" not in wide.stderr
    assert max(len(line) for line in wide.stdout.splitlines()) >= max(len(line) for line in lines)
