"""The command line as a new observer meets it (issue 22, item 7): tables that fit 80 columns without
splitting a number, a quiet broken pipe, --columns for CSV and JSON, hints for filters that name nothing,
near-miss tags refused, `status` in --where, to_pandas without pandas, and ``python -m obsdb``."""

import json
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from obsdb.cli.app import app

runner = CliRunner()

LONG_REASON = ("tracking error visible in the stars across the whole frame, worst in the corner at "
               "x=1,234.5 y=2,048.25 where the stars are drawn out to 35.607 px against 2.75 px elsewhere")
"""A manual reason long enough to wrap at 80 columns, with numbers that must stay whole."""


def _env(db, columns: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OBSDB_DB", "OBSDB_CONFIG")}
    env.update(COLUMNS=str(columns), OBSDB_DB=str(db))
    return env


def _run(db, columns: int, *args: str) -> subprocess.CompletedProcess:
    """``obsdb ARGS`` as a script or a terminal of ``columns`` sees it (stdout a pipe, COLUMNS set)."""
    return subprocess.run([sys.executable, "-m", "obsdb", *args], capture_output=True, text=True,
                          env=_env(db, columns))


@pytest.fixture(scope="module")
def night(tmp_path_factory, small_night):
    """The small night ingested, judged, grouped, aligned, and one frame rejected by hand with a long reason."""
    folder, truth = small_night
    db = tmp_path_factory.mktemp("papercuts") / "obsdb.sqlite"
    for command in (["init"], ["ingest", str(folder)], ["qa"], ["group", "auto"]):
        result = runner.invoke(app, ["--db", str(db), *command])
        assert result.exit_code == 0, result.output
    aligned = _run(db, 80, "align")
    assert aligned.returncode == 0, aligned.stderr
    number = min(f["number"] for f in truth.frames)
    tagged = runner.invoke(app, ["--db", str(db), "tag", str(number), "reject", "-m", LONG_REASON])
    assert tagged.exit_code == 0, tagged.output
    return db, truth, number, aligned.stdout


def _tokens(text: str) -> set[str]:
    """The words of ``text`` that hold a digit, with the punctuation around them taken off (paths, which
    `show` folds when longer than the line, are no numbers and are left out)."""
    words = text.replace("…", " ").split()
    stripped = (w.strip(",;:()[]'\"").rstrip(".") for w in words)
    return {w for w in stripped if any(ch.isdigit() for ch in w) and "/" not in w}


TABLE_COMMANDS = [["frames"], ["summary"], ["nights"], ["groups"], ["history", "{n}"], ["show", "{n}"],
                  ["rejected"], ["log"]]


@pytest.mark.parametrize("command", TABLE_COMMANDS, ids=lambda c: c[0])
def test_every_table_fits_80_columns_and_splits_no_number(night, command):
    db, _, number, _ = night
    args = [a.format(n=number) for a in command]
    narrow = _run(db, 80, *args)
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert lines and max(len(line) for line in lines) <= 80, max(lines, key=len)
    # The same command on a terminal wide enough for every line whole: every number and date
    # printed at 80 columns is one it prints there (a number split over two lines, "35.6" / "07",
    # or cut, "58…", is not).
    wide = _run(db, 4000, *args, *(["--wide"] if command[0] != "log" else []))
    assert wide.returncode == 0, wide.stderr
    missing = _tokens(narrow.stdout) - _tokens(wide.stdout)
    assert not missing, f"split or cut at 80 columns: {sorted(missing)[:10]}"
    if "more column" in narrow.stderr:
        assert "--wide shows all" in narrow.stderr or "--format json" in narrow.stderr


def test_align_fits_80_columns(night):
    _, _, _, aligned = night
    assert max(len(line) for line in aligned.splitlines()) <= 80


def test_rejected_reason_wraps_whole(night):
    """`rejected` is read for its reasons: at 80 columns the long one wraps at spaces, every word kept."""
    db, _, _, _ = night
    out = _run(db, 80, "rejected").stdout
    words = " ".join(out.split())
    for number in ("1,234.5", "2,048.25", "35.607", "2.75"):
        assert number in words


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_a_closed_pipe_stops_quietly(night, fmt):
    """`obsdb frames --format csv | head -1`: no "error: Broken pipe", the status of a Unix tool."""
    db, _, _, _ = night
    process = subprocess.Popen([sys.executable, "-m", "obsdb", "frames", "--format", fmt],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(db, 80))
    process.stdout.close()  # the reader goes away before the first line is written
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait() in (0, 141)
    assert stderr == ""


def test_a_pipe_read_to_one_line_stops_quietly(night):
    db, _, _, _ = night
    result = subprocess.run(f"{sys.executable} -m obsdb frames --format csv | head -1", shell=True,
                            capture_output=True, text=True, env=_env(db, 80))
    assert result.stdout.startswith("number,") and result.stdout.count("\n") == 1
    assert result.stderr == ""


def test_columns_selects_csv_columns_and_json_keys(night):
    db, truth, _, _ = night
    csv_out = _run(db, 80, "frames", "--format", "csv", "--columns", "number,band,fwhm").stdout.splitlines()
    assert csv_out[0] == "number,band,fwhm" and len(csv_out) == len(truth.frames) + 1
    items = json.loads(_run(db, 80, "frames", "--format", "json", "--columns", "fwhm,number").stdout)
    assert len(items) == len(truth.frames) and all(list(item) == ["fwhm", "number"] for item in items)
    assert {item["number"] for item in items} == {f["number"] for f in truth.frames}
    rejected = json.loads(_run(db, 80, "rejected", "--format", "json", "--columns", "frame,tag,reason").stdout)
    assert any(r["reason"] == LONG_REASON and r["tag"] == "reject" for r in rejected)
    assert all(list(r) == ["frame", "tag", "reason"] for r in rejected)
    bad = _run(db, 80, "frames", "--format", "csv", "--columns", "numbr")
    assert bad.returncode == 1 and "did you mean 'number'?" in bad.stderr and len(bad.stderr.splitlines()) == 1


@pytest.mark.parametrize("option, value, hint", [("--tag", "rejct", "did you mean 'reject'?"),
                                                  ("--band", "Q", "known: B, R, V")])
def test_a_filter_that_names_nothing_says_so(night, option, value, hint):
    db, _, _, _ = night
    result = _run(db, 80, "frames", option, value, "--format", "json")
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert hint in result.stderr and len(result.stderr.strip().splitlines()) == 1
    # A value the catalog holds gets no note (bands match whatever their case).
    for known in (["--tag", "reject"], ["--band", "v"]):
        assert "names no" not in _run(db, 80, "frames", *known, "--format", "json").stderr


@pytest.mark.parametrize("command", [["frames", "--tag"], ["frames", "--band"], ["rejected", "--band"],
                                     ["frames", "--type"], ["log", "--command"], ["untag", "{n}", "-m", "why"]])
def test_an_undecodable_byte_in_a_filter_is_no_crash(night, command):
    """A byte that is not UTF-8 (a lone surrogate once decoded from the command line) cannot be sent to
    the database; it is taken as the catalog stores such text (its escape), so it names nothing."""
    db, _, number, _ = night
    args = [part.format(n=number) for part in command]
    if args[0] == "untag":
        args.insert(2, "\udcff")
    else:
        args.append("\udcff")
    result = subprocess.run([sys.executable, "-m", "obsdb", *args], capture_output=True, env=_env(db, 80))
    stderr = result.stderr.decode("utf-8", "replace")
    assert "unexpected" not in stderr and "Traceback" not in stderr, stderr
    assert result.returncode == (1 if args[0] == "untag" or "--type" in args else 0), stderr


def test_a_near_miss_tag_is_refused_unless_free_text(night):
    db, _, number, _ = night
    refused = runner.invoke(app, ["--db", str(db), "tag", str(number), "tracking-slite", "-m", "typo"])
    assert refused.exit_code == 1
    assert "did you mean tracking-slight? (free text is allowed: --free-text)" in refused.output
    allowed = runner.invoke(app, ["--db", str(db), "tag", str(number), "tracking-slite", "-m", "as written",
                                  "--free-text"])
    assert allowed.exit_code == 0 and "free-text tag" in allowed.output
    # A free-text tag far from every known one needs no flag.
    assert runner.invoke(app, ["--db", str(db), "tag", str(number), "nice-sky", "-m", "x"]).exit_code == 0


def test_the_catalog_and_plans_refuse_a_near_miss_too(night, tmp_path):
    from obsdb.api import Catalog
    from obsdb.errors import ObsdbError
    from obsdb.pipeline.plan import load_plan

    db, _, number, _ = night
    with Catalog.open(str(db)) as catalog:
        with pytest.raises(ObsdbError, match="did you mean reject"):
            catalog.tag(str(number), "rejcet", reason="typo")
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[[tags]]\nframes = "{number}"\ntag = "focus-slite"\nreason = "soft"\n')
    with pytest.raises(ObsdbError, match=r"tags\[0\]\.tag.*did you mean focus-slight\? .*free_text = true"):
        load_plan(plan)
    plan.write_text(f'[[tags]]\nframes = "{number}"\ntag = "focus-slite"\nreason = "soft"\nfree_text = true\n')
    assert load_plan(plan).tags[0].free_text is True


def test_where_status_equals_the_status_option(catalog_url, small_night):
    """`--where "status == 'rejected'"` selects what `--status rejected` does, on SQLite and PostgreSQL."""
    from obsdb.api import Catalog

    folder, truth = small_night
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([folder])
        catalog.qa()
        accepted = [r.number for r in catalog.frames(status="accepted")]
        catalog.tag(str(accepted[0]), "reject", reason="by hand")
        seen = set()
        for status in ("accepted", "rejected", "pending"):
            by_option = sorted(r.number for r in catalog.frames(status=status))
            by_where = sorted(r.number for r in catalog.frames(where=f"status == '{status}'"))
            assert by_where == by_option
            seen.update(by_option)
            others = sorted(r.number for r in catalog.frames(where=f"status != '{status}' and number > 0"))
            assert not set(others) & set(by_option)
        assert seen == {f["number"] for f in truth.frames}
        assert catalog.frames(status="rejected") and catalog.frames(status="accepted")
        combined = catalog.frames(where="status == 'rejected' and band == 'V'")
        assert {r.number for r in combined} == {r.number for r in catalog.frames(status="rejected", band="V")}


def test_to_pandas_without_pandas_says_how_to_install(night, monkeypatch):
    import builtins

    from obsdb.api import Catalog
    from obsdb.errors import ObsdbError

    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    db, _, _, _ = night
    with Catalog.open(str(db)) as catalog:
        listing = catalog.frames()
    monkeypatch.setattr(builtins, "__import__", no_pandas)
    monkeypatch.delitem(sys.modules, "pandas", raising=False)
    with pytest.raises(ObsdbError, match=re.escape("to_pandas needs pandas: pip install 'obsdb[pandas]'")):
        listing.to_pandas()


def test_python_dash_m_obsdb_runs_the_command():
    from obsdb import __version__

    result = subprocess.run([sys.executable, "-m", "obsdb", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"obsdb {__version__}"


def test_one_did_you_mean():
    from obsdb.text import closest, did_you_mean, not_one_of

    assert closest("clod", ["cloud", "trail"]) == "cloud"
    assert closest("xyz", ["cloud", "trail"]) is None
    assert did_you_mean("numbr", ["number"]) == " (did you mean 'number'?)"
    assert not_one_of("--type", "lights", ["light", "bias"]).startswith("--type 'lights': did you mean 'light'?")
