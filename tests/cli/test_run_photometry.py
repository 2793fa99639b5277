"""`obsdb run FOLDER --out DIR` measures photometry by default, so that `obsdb lightcurve --near X,Y` answers
at once; `--no-photometry` leaves it out."""

import csv
import io

from typer.testing import CliRunner

from obsdb.cli.app import app


def test_run_then_lightcurve_near_a_star_gives_its_light_curve(copy_night, tmp_path):
    truth = copy_night(tmp_path / "night", seed=5, size=192, n_frames=8, bands=("V",), n_groups=1,
                       cloud_fraction=0.0, trail_fraction=0.0, defocus_fraction=0.0)
    runner = CliRunner()
    out = tmp_path / "out"
    ran = runner.invoke(app, ["run", str(tmp_path / "night"), "--out", str(out), "--no-report", "--no-render"])
    assert ran.exit_code in (0, 3), ran.output
    assert "photometry: 8 frames measured" in ran.output
    # The brightest star well inside the reference frame, in the reference's pixels.
    reference = truth.numbers[0]
    x, y, flux = truth.sky_positions_in_frame(reference, margin=20)
    brightest = max(range(len(flux)), key=lambda i: flux[i] if flux[i] < 2e5 else 0)
    db = ["--db", str(out / "obsdb.sqlite")]
    curve = runner.invoke(app, db + ["lightcurve", "--near", f"{x[brightest]:.1f},{y[brightest]:.1f}",
                                     "--format", "csv"])
    assert curve.exit_code == 0, curve.output
    rows = list(csv.DictReader(io.StringIO(curve.stdout)))
    assert [r["band"] for r in rows] == ["V"] * len(rows) and len(rows) >= 6
    assert all(r["mag"] and r["mjd_utc"] and r["status"] for r in rows)
    times = [float(r["mjd_utc"]) for r in rows]
    assert times == sorted(times)


def test_run_without_photometry_leaves_it_out(copy_night, tmp_path):
    copy_night(tmp_path / "night", seed=5, size=192, n_frames=8, bands=("V",), n_groups=1,
               cloud_fraction=0.0, trail_fraction=0.0, defocus_fraction=0.0)
    runner = CliRunner()
    out = tmp_path / "out"
    ran = runner.invoke(app, ["run", str(tmp_path / "night"), "--out", str(out), "--no-report", "--no-render",
                              "--no-photometry"])
    assert ran.exit_code in (0, 3), ran.output
    assert "photometry:" not in ran.output
    refused = runner.invoke(app, ["--db", str(out / "obsdb.sqlite"), "lightcurve", "--near", "90,90"])
    assert refused.exit_code == 1 and "run `obsdb photometry` first" in refused.output
