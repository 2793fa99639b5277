"""The Dask executor on a LocalCluster: the same catalog as a serial run, and a killed worker's task retried."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from obsdb import Catalog

distributed = pytest.importorskip("distributed", reason="pip install 'obsdb[dask]' for the Dask executor")

# Local clusters of worker processes: a system test, run by .ci/run with the slow ones.
pytestmark = pytest.mark.system

SMALL = dict(size=160, bands=("V", "R"), n_groups=1, cloud_fraction=0, trail_fraction=0.2, defocus_fraction=0)


@pytest.fixture(scope="module")
def cluster():
    from obsdb.pipeline.executors import DaskExecutor

    executor = DaskExecutor(workers=2)
    yield executor
    executor.close()


def _facts(url) -> list[tuple]:
    with Catalog.open(url) as catalog:
        return sorted((r["file_name"], r["readable"], r["status"], tuple(r["reasons"]),
                       None if not r["stats"] else round(r["stats"]["median"], 6),
                       None if not r["metrics"] else (r["metrics"]["n_stars"], round(r["metrics"]["fwhm"], 6)),
                       None if not r["shift"] else (round(r["shift"]["dx"], 6), round(r["shift"]["dy"], 6)))
                      for r in catalog.frame_dicts())


def test_a_night_on_a_local_cluster_is_the_serial_night(tmp_path, cluster, copy_night):
    copy_night(tmp_path / "night", seed=95, n_frames=8, **SMALL)
    (tmp_path / "night" / "broken_9999.fits").write_bytes(b"SIMPLE  = T" + b" " * 69)
    answers = {}
    for name, executor in (("serial", None), ("dask", cluster)):
        with Catalog.open(tmp_path / f"{name}.sqlite", create=True) as catalog:
            report = catalog.ingest([tmp_path / "night"], executor=executor)
            assert len(report.failed) == 1 and len(report.added) == 8
            catalog.qa()
            catalog.align(executor=executor)
        answers[name] = _facts(tmp_path / f"{name}.sqlite")
    assert answers["dask"] == answers["serial"]
    assert sum(1 for f in answers["serial"] if f[6] is not None) >= 5       # frames were registered


def die_the_first_time(item, marker_dir):
    """A task whose worker process dies the first time it runs item 3 (os._exit: no clean-up)."""
    marker = Path(marker_dir) / f"ran-{item}"
    if item == 3 and not marker.exists():
        marker.write_text("once")
        os._exit(1)
    return item * item


def test_a_task_lost_with_its_worker_is_run_again(tmp_path, cluster):
    results = dict(cluster.map(die_the_first_time, list(range(8)), args=(str(tmp_path),)))
    assert results == {i: i * i for i in range(8)}
    assert (tmp_path / "ran-3").exists()


def test_the_executor_options_are_checked():
    from obsdb.errors import ObsdbError
    from obsdb.pipeline.executors import make_executor

    with pytest.raises(ObsdbError, match="did you mean 'dask'"):
        make_executor("dusk")
    with pytest.raises(ObsdbError, match="only for --executor dask"):
        make_executor("processes", scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ObsdbError, match="cannot reach the Dask scheduler"):
        make_executor("dask", scheduler="tcp://127.0.0.1:9")


def test_the_command_line_runs_ingest_and_align_on_a_local_cluster(tmp_path, copy_night):
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    copy_night(tmp_path / "night", seed=96, n_frames=4, **SMALL)
    db = str(tmp_path / "c.sqlite")
    runner = CliRunner()
    assert runner.invoke(app, ["--db", db, "init"]).exit_code == 0
    for command in (["ingest", str(tmp_path / "night")], ["qa"], ["align"]):
        extra = ["--executor", "dask", "--workers", "2"] if command[0] != "qa" else []
        result = runner.invoke(app, ["--db", db, *command, *extra])
        assert result.exit_code == 0, result.output
    with Catalog.open(db) as catalog:
        assert sum(1 for r in catalog.frame_dicts() if r["shift"]) >= 2
        assert any("dask (2 workers" in str((e.get("details") or {}).get("executor")) for e in catalog.log())
    bad = runner.invoke(app, ["--db", db, "ingest", str(tmp_path / "night"), "--executor", "dusk"])
    assert bad.exit_code == 1 and "--executor 'dusk': did you mean 'dask'?" in bad.output


def test_render_and_report_on_a_local_cluster_write_what_serial_writes(tmp_path, cluster, copy_night):
    from obsdb.report.build import build_report

    copy_night(tmp_path / "night", seed=99, n_frames=5, **SMALL)
    with Catalog.open(tmp_path / "c.sqlite", create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        catalog.qa()
        catalog.align()
        serial = catalog.render(tmp_path / "serial")
        dask = catalog.render(tmp_path / "dask", executor=cluster)
        page = build_report(catalog, tmp_path / "report", executor=cluster)
    assert sorted(Path(p).name for _, p in dask.frames) == sorted(Path(p).name for _, p in serial.frames)
    for _, path in serial.frames:
        assert (tmp_path / "dask" / Path(path).name).read_bytes() == Path(path).read_bytes()
    assert page.n_thumbnails_drawn >= 5 and not page.warnings


def test_calibration_on_a_local_cluster_gives_the_serial_masters_and_lights(tmp_path, cluster):
    """Masters built and lights calibrated through Dask equal the serial ones, pixel for pixel."""
    import numpy as np
    from astropy.io import fits

    from obsdb.simulate_raw import simulate_raw_night

    simulate_raw_night(tmp_path / "night", seed=5, size=(96, 128), n_stars=15)
    made = {}
    for name, executor in (("serial", None), ("dask", cluster)):
        with Catalog.open(tmp_path / f"{name}.sqlite", create=True) as catalog:
            catalog.ingest([tmp_path / "night"])
            catalog.qa()
            report = catalog.calibrate(tmp_path / name, executor=executor, write_lights=True)
        made[name] = report
    serial, dask = made["serial"], made["dask"]
    assert [m["key"] for m in dask.built] == [m["key"] for m in serial.built] and serial.built
    assert sorted((r["frame_id"], r["kind"], r["master_id"]) for r in dask.matches) == sorted(
        (r["frame_id"], r["kind"], r["master_id"]) for r in serial.matches)
    pairs = list(zip(sorted(m["path"] for m in serial.built), sorted(m["path"] for m in dask.built)))
    pairs += list(zip(sorted(serial.lights_written), sorted(dask.lights_written)))
    assert len(pairs) > len(serial.built)
    for one, other in pairs:
        assert Path(one).name == Path(other).name
        assert np.array_equal(fits.getdata(one), fits.getdata(other), equal_nan=True)


def test_ctrl_c_on_a_local_cluster_stops_the_workers_and_keeps_complete_rows(tmp_path):
    """SIGINT to the process group (Ctrl-C) mid-ingest on `--executor dask`: exit 130 with one line, only
    complete rows in the catalog, no process of the cluster left behind (checked by the helper), and a rerun
    finishes the night."""
    import signal
    import sqlite3

    from obsdb.api import Catalog
    from tests.pipeline.test_ingest import STATS_ONLY, _interrupted_ingest

    code, err, catalogued, orphans, folder, db, total = _interrupted_ingest(
        tmp_path, signal.SIGINT, n_frames=120, workers=2, options=("--executor", "dask"))
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert 0 < catalogued < total and orphans == 0
    catalog = Catalog.open(str(db))
    try:
        catalog.ingest([folder], config=STATS_ONLY)
    finally:
        catalog.close()
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM frame_stats").fetchone()[0] == total
