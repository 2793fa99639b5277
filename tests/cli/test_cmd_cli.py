"""`obsdb cmd`: the CMD as a table within 80 columns, CSV and JSON; a plot in SVG or PNG; one-line errors."""

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from obsdb.cli.app import app

NIGHT = dict(seed=24, size=192, n_frames=8, bands=("B", "V"), n_groups=1, cloud_fraction=0.0,
             trail_fraction=0.0, defocus_fraction=0.0)


@pytest.fixture(scope="module")
def db(simulated_nights, tmp_path_factory):
    base = tmp_path_factory.mktemp("cmdcli")
    simulated_nights.copy(base / "night", **NIGHT)
    ran = CliRunner().invoke(app, ["run", str(base / "night"), "--out", str(base / "out"), "--no-report",
                                   "--no-render"])
    assert ran.exit_code in (0, 3), ran.output
    return ["--db", str(base / "out" / "obsdb.sqlite")], base


def test_the_table_fits_80_columns_and_csv_json_agree(db):
    args, _ = db
    runner = CliRunner()
    shown = runner.invoke(app, args + ["cmd", "--colour", "B-V"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    assert "CMD V vs B-V" in shown.stdout and "accepted frames: B 4, V 4" in shown.stdout
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, args + ["cmd", "--format", "csv"]).stdout)))
    document = json.loads(runner.invoke(app, args + ["cmd", "--format", "json"]).stdout)
    assert len(rows) == len(document["rows"]) >= 10
    assert document["colour"] == "B-V" and document["frames"] == {"B": 4, "V": 4}
    first = document["rows"][0]
    assert float(rows[0]["colour"]) == pytest.approx(first["colour"])
    assert first["colour"] == pytest.approx(first["mag_B"] - first["mag_V"])


def test_the_plot_is_an_svg_or_a_png(db):
    args, base = db
    runner = CliRunner()
    svg = base / "cmd.svg"
    done = runner.invoke(app, args + ["cmd", "--plot", str(svg), "--format", "csv"])
    assert done.exit_code == 0, done.output
    text = svg.read_text()
    assert text.startswith("<?xml") and "<style>" in text and text.count("<circle") >= 10
    import xml.etree.ElementTree as ET

    ET.fromstring(text.split("\n", 1)[1])          # well formed
    png = base / "cmd.png"
    assert runner.invoke(app, args + ["cmd", "--plot", str(png)]).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra, message", [
    (["--colour", "V-R"], "band R: no photometry"),
    (["--colour", "BV"], "--colour 'BV': two bands joined by a dash"),
    (["--plot", "cmd.pdf"], "a .svg or .png file"),
])
def test_bad_requests_are_one_line(db, extra, message):
    args, _ = db
    done = CliRunner().invoke(app, args + ["cmd", *extra])
    assert done.exit_code == 1
    assert message in done.output and "Traceback" not in done.output
    assert len(done.output.strip().splitlines()) == 1


def test_standards_without_a_wcs_or_unreadable_are_one_line(db):
    args, base = db
    runner = CliRunner()
    good = base / "std.csv"
    good.write_text("RA,Dec,B,V\n10,-58,12,11.5\n10.1,-58.1,13,12.4\n10.2,-58.2,14,13.1\n")
    done = runner.invoke(app, args + ["cmd", "--standards", str(good)])
    assert done.exit_code == 1 and "no sky coordinates" in done.output and "obsdb solve" in done.output
    bad = base / "bad.csv"
    bad.write_text("RA,Dec,V\n10,north,12\n")
    done = runner.invoke(app, args + ["cmd", "--standards", str(bad)])
    assert done.exit_code == 1 and "bad.csv, line 2" in done.output
    assert len(done.output.strip().splitlines()) == 1
