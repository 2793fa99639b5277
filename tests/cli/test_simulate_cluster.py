"""`obsdb simulate --cluster`: the cluster night of known magnitudes from the command line, and ingested."""

import json

from typer.testing import CliRunner

from obsdb.cli.app import app

runner = CliRunner()


def test_simulate_cluster_writes_frames_and_truth_that_ingest(tmp_path):
    night = tmp_path / "cluster"
    result = runner.invoke(app, ["simulate", str(night), "--cluster", "--frames", "6", "--size", "256",
                                 "--seed", "4"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "6 frames of 256x256" in result.output and "cluster.json" in result.output
    truth = json.loads((night / "cluster.json").read_text())
    assert [f["band"] for f in truth["frames"]] == ["B", "V", "R"] * 2
    assert {"mid_mjd", "mid_bjd_tdb", "depth", "star"} <= set(truth["transit"])
    assert sorted(p.name for p in night.glob("*.fits"))[0] == "NGC3293_B_1001.fits"
    db = tmp_path / "obsdb.sqlite"
    assert runner.invoke(app, ["--db", str(db), "init"]).exit_code == 0
    ingest = runner.invoke(app, ["--db", str(db), "ingest", str(night), "--no-metrics"], catch_exceptions=False)
    assert ingest.exit_code == 0, ingest.output
    listed = runner.invoke(app, ["--db", str(db), "frames", "--format", "json"], catch_exceptions=False)
    frames = json.loads(listed.output)
    assert sorted(f["band"] for f in frames) == ["B", "B", "R", "R", "V", "V"]


def test_simulate_cluster_refuses_frames_too_small_in_one_line(tmp_path):
    result = runner.invoke(app, ["simulate", str(tmp_path / "c"), "--cluster", "--size", "128"])
    assert result.exit_code == 1
    assert "--size 128" in result.output and "256" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "c").exists()
