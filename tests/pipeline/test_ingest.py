"""Ingest: simulated and real nights, idempotence, changed files, bad input, interruption."""

import gzip
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from obsdb.catalog.models import Event, Frame, FrameStats
from obsdb.catalog.queries import frame_records
from obsdb.config import IngestConfig
from obsdb.pipeline.ingest import discover, measure_file
from tests.conftest import write_fits

STATS_ONLY = IngestConfig(measure_quality=False)


def test_simulated_night_is_catalogued(catalog, small_night):
    folder, truth = small_night
    report = catalog.ingest([folder], config=STATS_ONLY)
    assert len(report.added) == len(truth.frames) and not report.failed
    with catalog.session() as session:
        records = [r.to_json() for r in frame_records(session)]
    by_number = {r["number"]: r for r in records}
    assert set(by_number) == {f["number"] for f in truth.frames}
    for frame in truth.frames:
        record = by_number[frame["number"]]
        assert record["band"] == frame["band"]
        assert record["type"] == "light"
        assert record["exptime"] == pytest.approx(frame["exptime"])
        assert record["date_obs"] is not None
        # The clipped background tracks the simulated sky level.
        assert record["stats"]["background"] == pytest.approx(frame["background"], rel=0.1)


def test_stats_in_catalog_match_numpy_on_the_file(catalog, small_night):
    from astropy.io import fits

    folder, truth = small_night
    path = folder / truth.frames[0]["file"]
    catalog.ingest([path], config=STATS_ONLY)
    data = fits.getdata(path).astype(np.float64)
    with catalog.session() as session:
        stats = session.scalars(select(FrameStats)).one()
        assert stats.median == pytest.approx(np.median(data))
        assert stats.mean == pytest.approx(data.mean(), rel=1e-6)
        assert stats.max == pytest.approx(data.max())


def test_reingest_is_idempotent_and_changes_are_logged(catalog, tmp_path):
    rng = np.random.default_rng(0)
    path = write_fits(tmp_path / "night" / "f_0101.fits", rng.normal(100, 5, (64, 64)).astype(np.float32),
                      {"FILTER": "V"})
    first = catalog.ingest([path.parent], config=STATS_ONLY)
    assert len(first.added) == 1
    with catalog.session() as session:
        before = session.scalars(select(Frame)).one()
        stamp = before.measured_at
    again = catalog.ingest([path.parent], config=STATS_ONLY)
    assert again.unchanged == [str(path.resolve())] and not again.added and not again.changed
    # Touched but identical content: still unchanged, nothing re-measured.
    os.utime(path, (time.time() + 10, time.time() + 10))
    touched = catalog.ingest([path.parent], config=STATS_ONLY)
    assert touched.unchanged and not touched.changed
    with catalog.session() as session:
        assert session.scalars(select(Frame)).one().measured_at == stamp
    # New content: re-measured, event with old and new hash.
    old_hash = before.sha256
    write_fits(path, rng.normal(500, 5, (64, 64)).astype(np.float32), {"FILTER": "V"})
    changed = catalog.ingest([path.parent], config=STATS_ONLY)
    assert changed.changed == [str(path.resolve())]
    with catalog.session() as session:
        frame = session.scalars(select(Frame)).one()
        assert frame.stats.median == pytest.approx(500, abs=2)
        events = session.scalars(select(Event).where(Event.frame_id == frame.id)).all()
        assert len(events) == 1
        assert events[0].details == {"old_sha256": old_hash, "new_sha256": frame.sha256}


def make_bad_files(folder: Path) -> dict[str, str]:
    """Each bad input beside the reason fragment ingest must give."""
    from astropy.io import fits

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notfits_0001.fits").write_text("this is not a FITS file\n")
    (folder / "empty_0002.fits").write_bytes(b"")
    good = write_fits(folder / "tmp.fits", np.ones((100, 100), np.float32))
    raw = good.read_bytes()
    good.unlink()
    (folder / "truncated_0003.fits").write_bytes(raw[: len(raw) - 8000])
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="a", format="E", array=np.arange(3.0))])]).writeto(folder / "table_0004.fits")
    write_fits(folder / "cube_0005.fits", np.zeros((3, 20, 20), np.float32))
    write_fits(folder / "nan_0006.fits", np.full((20, 20), np.nan, np.float32))
    noisy = write_fits(folder / "tmp2.fits", np.random.default_rng(1).normal(size=(64, 64)).astype(np.float32))
    compressed = gzip.compress(noisy.read_bytes())
    noisy.unlink()
    (folder / "badgzip_0007.fits.gz").write_bytes(compressed[: len(compressed) // 2])
    (folder / "notes.txt").write_text("ignored: not a FITS name")
    return {"notfits_0001.fits": "not a FITS file", "empty_0002.fits": "empty file",
            "truncated_0003.fits": "truncated", "table_0004.fits": "no image data",
            "cube_0005.fits": "not a 2-D image", "nan_0006.fits": "all pixels are NaN",
            "badgzip_0007.fits.gz": "gzip"}


def test_each_bad_input_is_recorded_with_its_reason(catalog, tmp_path):
    folder = tmp_path / "bad"
    expected = make_bad_files(folder)
    write_fits(folder / "good_0100.fits", np.random.default_rng(2).normal(10, 1, (50, 50)).astype(np.float32))
    report = catalog.ingest([folder], config=STATS_ONLY)
    assert [Path(p).name for p in report.added] == ["good_0100.fits"]
    reasons = {Path(p).name: reason for p, reason in report.failed}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name]
    with catalog.session() as session:
        rows = {f.file_name: f for f in session.scalars(select(Frame))}
        assert "notes.txt" not in rows
        for name in expected:
            assert rows[name].readable is False and rows[name].error == reasons[name]
        assert rows["good_0100.fits"].stats is not None
    # Unchanged bad files are reported again, without re-reading them.
    again = catalog.ingest([folder], config=STATS_ONLY)
    assert len(again.failed) == len(expected) and len(again.unchanged) == 1


def test_inputs_are_never_modified(catalog, small_night):
    folder, truth = small_night
    before = {p.name: p.read_bytes() for p in sorted(folder.glob("*.fits"))[:3]}
    catalog.ingest([folder / name for name in before], config=STATS_ONLY)
    assert {name: (folder / name).read_bytes() for name in before} == before


def test_gzipped_frames_and_workers_agree(catalog, tmp_path, small_night):
    folder, truth = small_night
    target = tmp_path / "gz"
    target.mkdir()
    names = [f["file"] for f in truth.frames[:4]]
    for name in names:
        (target / (name + ".gz")).write_bytes(gzip.compress((folder / name).read_bytes()))
    single = {Path(m.path).name: m.stats for m in (measure_file(str(folder / n), STATS_ONLY) for n in names)}
    report = catalog.ingest([target], workers=2, config=STATS_ONLY)
    assert len(report.added) == 4
    with catalog.session() as session:
        for frame in session.scalars(select(Frame)):
            assert frame.stats.median == single[frame.file_name[:-3]]["median"]


def test_discover_filters_and_recurses(tmp_path):
    write_fits(tmp_path / "a_0001.fits", np.zeros((4, 4)))
    write_fits(tmp_path / "sub" / "b_0002.fit", np.zeros((4, 4)))
    (tmp_path / "c.txt").write_text("x")
    assert [p.name for p in discover([tmp_path])] == ["a_0001.fits"]
    assert sorted(p.name for p in discover([tmp_path], recursive=True)) == ["a_0001.fits", "b_0002.fit"]


def test_real_frames_ingest(catalog, real_data):
    report = catalog.ingest([real_data], recursive=True, config=STATS_ONLY)
    assert len(report.added) >= 30 and not report.failed, report.failed
    with catalog.session() as session:
        rows = {f.file_name: f for f in session.scalars(select(Frame).options(selectinload(Frame.stats)))}
    types = {name: rows[name].image_type for name in rows if name.startswith("msumastro")}
    assert types["msumastro_biastest1.fit"] == "bias"
    assert types["msumastro_darktest1.fit"] == "dark"
    assert types["msumastro_aspen_trimmed.fit"] == "flat"
    assert types["msumastro_maximdl_6_18_header.fit"] == "light"
    saao = rows["ccdproc_SAAO1m_a8280271.fits.gz"]
    assert (saao.width, saao.height, saao.bitpix) == (536, 520, 16)
    assert saao.date_obs is not None and saao.exptime == pytest.approx(150.04)
    cloudy, starry = rows["iceact_cloudy.fits"], rows["iceact_starry.fits"]
    assert cloudy.stats.median == pytest.approx(52_000, rel=0.05)
    assert cloudy.stats.background > 5 * starry.stats.background
    emmi = rows["sep_NTT_EMMI_image.fits"]
    assert emmi.header["EXPTIME"] == 1200.0 and emmi.stats.n_nan == 0


def _interrupted_ingest(tmp_path, sig, *, n_frames, workers=1, attempts=3, options=()):
    """Start `obsdb ingest` on a fresh night and send ``sig`` to its process group once the first
    batch is committed.

    On a loaded machine the test may see that commit only after the ingest has finished; the
    night is then doubled and tried again, so what is checked is always an interruption
    mid-way.  Returns (returncode, stderr, frames in the catalog, frames without stats, folder,
    catalog, frames in the night).  ``options`` are more arguments of `obsdb ingest` (``--executor dask``).
    """
    for attempt in range(attempts):
        total = n_frames * 2 ** attempt
        outcome = _ingest_and_signal(tmp_path / f"attempt-{attempt}", sig, total, workers, options)
        if outcome[2] < total:
            return (*outcome, total)
    pytest.fail(f"the ingest of {total} frames always finished before the signal reached it")


def _ingest_and_signal(root, sig, n_frames, workers, options=()):
    from obsdb.catalog.db import database_url, upgrade

    folder = root / "many"
    rng = np.random.default_rng(5)
    for i in range(n_frames):
        write_fits(folder / f"k_{i:04d}.fits", rng.normal(100, 5, (192, 192)).astype(np.float32), {"FILTER": "V"})
    db = root / "k.sqlite"
    upgrade(database_url(str(db)))
    process = subprocess.Popen(
        [sys.executable, "-m", "obsdb.cli.app", "ingest", str(folder), "--no-metrics", "--workers", str(workers),
         *options],
        env={**os.environ, "OBSDB_DB": str(db)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        try:
            with sqlite3.connect(db, timeout=1) as connection:
                if connection.execute("SELECT count(*) FROM frame").fetchone()[0] > 0:
                    os.killpg(process.pid, sig)
                    break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.01)
    _, err = process.communicate(timeout=120)
    # Whatever the command started (pool workers, a Dask cluster) is in its process group: none outlives it.
    deadline = time.time() + 30
    while True:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        assert time.time() < deadline, f"processes of the {sig!r}-ed ingest are still running 30 s after it ended"
        time.sleep(0.2)
    with sqlite3.connect(db) as connection:
        n_frames_in = connection.execute("SELECT count(*) FROM frame").fetchone()[0]
        orphans = connection.execute(
            "SELECT count(*) FROM frame LEFT JOIN frame_stats ON frame.id = frame_stats.frame_id "
            "WHERE frame_stats.frame_id IS NULL").fetchone()[0]
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return process.returncode, err, n_frames_in, orphans, folder, db


@pytest.mark.system  # a command killed or interrupted in a subprocess
def test_killed_ingest_leaves_a_consistent_catalog(tmp_path):
    """SIGKILL mid-ingest: only complete rows are present, and a rerun completes the night."""
    from obsdb.api import Catalog

    code, _, n_frames, orphans, folder, db, total = _interrupted_ingest(tmp_path, signal.SIGKILL, n_frames=120)
    assert code == -signal.SIGKILL and orphans == 0 and 0 < n_frames < total
    catalog = Catalog.open(str(db))
    try:
        report = catalog.ingest([folder], config=STATS_ONLY)
        assert len(report.unchanged) == n_frames and len(report.added) == total - n_frames
        with catalog.session() as session:
            assert session.scalar(select(func.count()).select_from(FrameStats)) == total
    finally:
        catalog.close()


@pytest.mark.system  # a command killed or interrupted in a subprocess
def test_ctrl_c_with_workers_exits_cleanly_and_keeps_complete_rows(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C does) mid-ingest with 2 workers."""
    code, err, n_frames, orphans, _, _, total = _interrupted_ingest(tmp_path, signal.SIGINT, n_frames=150,
                                                                    workers=2)
    assert code == 130, err
    # Workers ignore SIGINT, so only the parent's one line reaches the terminal.
    assert "interrupted" in err and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert 0 < n_frames < total and orphans == 0, (n_frames, orphans, err)


def test_shared_numbers_are_reported_and_a_new_pattern_renumbers_without_reading(catalog, tmp_path):
    folder = tmp_path / "seestar-like"
    for stamp in (212046, 212249, 212454):
        write_fits(folder / f"m94_set1_{stamp}_bin2_crop512.fits", np.ones((8, 8), np.float32))
    first = catalog.ingest([folder], config=STATS_ONLY)
    # No DATE-OBS: the night is named after the folder (and ingest says so).
    assert first.folder_nights == {"seestar-like"}
    key = ("seestar-like", 512)
    assert first.shared_numbers == {key: 3}  # the default rule takes the last run of digits
    assert first.number_pattern_hint == {key: r"set1_(\d+)"}  # and ingest says what would fit
    pattern = IngestConfig(measure_quality=False, number_pattern=first.number_pattern_hint[key])
    again = catalog.ingest([folder], config=pattern)
    assert len(again.unchanged) == 3 and not again.added and again.shared_numbers == {}
    with catalog.session() as session:
        assert sorted(session.scalars(select(Frame.number))) == [212046, 212249, 212454]
        assert any("renumbered" in e.summary for e in session.scalars(select(Event)))


@pytest.mark.parametrize("compressed", [False, True])
def test_every_hash_mode_hashes_the_bytes_on_disk(tmp_path, compressed):
    """The thread and inline hashes are the file's SHA-256 (compressed bytes for .gz); readers
    that need only the pixels skip it and get the same pixels."""
    import hashlib

    from obsdb.imaging.fitsio import read_fits_image

    path = tmp_path / "h.fits"
    data = np.random.default_rng(2).normal(100, 5, (64, 80)).astype(np.float32)
    write_fits(path, data, {"FILTER": "V"})
    if compressed:
        gz = tmp_path / "h.fits.gz"
        gz.write_bytes(gzip.compress(path.read_bytes()))
        path = gz
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    threaded, inline, bare = (read_fits_image(path, hash_mode=mode) for mode in ("thread", "inline", "none"))
    assert threaded.sha256 == inline.sha256 == expected and bare.sha256 is None
    assert np.array_equal(bare.data, data) and np.array_equal(threaded.data, data)
    with pytest.raises(ValueError, match="hash_mode"):
        read_fits_image(path, hash_mode="md5")
    # Ingest with 2 workers hashes inline on this 2-core machine: the same digest is recorded.
    assert measure_file(str(path), STATS_ONLY, "inline").sha256 == expected


def test_file_buffer_reuse_never_mixes_two_files(tmp_path):
    """The reused file buffer waits for the previous file's hash before taking the next bytes,
    and grows for a bigger file: every hash and every image stays its own."""
    import hashlib

    from obsdb.imaging.fitsio import read_fits_image

    rng = np.random.default_rng(9)
    paths, images = [], []
    for i, shape in enumerate([(300, 300), (300, 300), (500, 400), (64, 64)]):
        images.append(rng.normal(100 * i, 5, shape).astype(np.float32))
        paths.append(write_fits(tmp_path / f"b{i}.fits", images[-1]))
    read = [read_fits_image(path) for path in paths]  # hashes may still be running when the next read starts
    for path, image, got in zip(paths, images, read):
        assert got.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert np.array_equal(got.data, image)


def test_file_buffer_waits_for_the_hash_that_still_reads_it():
    from obsdb.imaging.fitsio.stream import _FileBuffer

    class PendingHash:
        waited = False

        def result(self):
            self.waited = True
            return "digest"

    buffer = _FileBuffer()
    first = buffer.take(1000)
    pending = buffer.in_use = PendingHash()
    second = buffer.take(800)
    assert pending.waited and buffer.in_use is None
    assert np.shares_memory(first, second)  # reused, not reallocated
    assert buffer.take(5000).size == 5000  # and grown when a bigger file comes


def test_files_gone_from_a_scanned_folder_are_reported_and_kept(catalog, tmp_path):
    folder = tmp_path / "night"
    for i in range(3):
        write_fits(folder / f"f_{1001 + i}.fits", np.full((8, 8), float(i), np.float32))
    write_fits(folder / "sub" / "f_2001.fits", np.ones((8, 8), np.float32))
    assert len(catalog.ingest([folder], recursive=True, config=STATS_ONLY).added) == 4
    (folder / "f_1002.fits").unlink()
    (folder / "sub" / "f_2001.fits").unlink()
    flat = catalog.ingest([folder], config=STATS_ONLY)
    assert flat.gone == [str((folder / "f_1002.fits").resolve())]  # sub-folders only with --recursive
    deep = catalog.ingest([folder], recursive=True, config=STATS_ONLY)
    assert deep.gone == sorted(str(p.resolve()) for p in (folder / "f_1002.fits", folder / "sub" / "f_2001.fits"))
    with catalog.session() as session:
        assert session.scalar(select(func.count()).select_from(Frame)) == 4  # nothing deleted


# ------------------------------------------------------------------ hostile files (issue 11)

CRASH_MARK = 12345.0
"""The first pixel of the frame whose star detection the tests below make crash."""


def _night_with_one_marked_frame(folder: Path, n: int = 6, marked: int = 2) -> list[Path]:
    rng = np.random.default_rng(11)
    paths = []
    for i in range(n):
        data = rng.normal(100, 5, (64, 64)).astype(np.float32)
        if i == marked:
            data[0, 0] = CRASH_MARK
        paths.append(write_fits(folder / f"{'crash' if i == marked else 'ok'}_{i + 1:04d}.fits", data,
                                {"FILTER": "V"}))
    return paths


@pytest.mark.parametrize("workers", [1, 2])
def test_a_crash_in_star_detection_costs_that_frame_its_metrics_only(catalog, tmp_path, monkeypatch, workers):
    """sep died with SIGSEGV on one frame and took the ingest with it: now the frame keeps its stats."""
    import obsdb.pipeline.metrics as metrics
    from obsdb.imaging.fitsio import FitsWarning

    original = metrics.metrics_from_image

    def crashing(data, saturation, **kwargs):
        if data[0, 0] == CRASH_MARK:
            os.kill(os.getpid(), signal.SIGSEGV)
        return original(data, saturation, **kwargs)

    monkeypatch.setattr(metrics, "metrics_from_image", crashing)
    paths = _night_with_one_marked_frame(tmp_path / "night")
    with pytest.warns(FitsWarning, match=r"crash_0003.fits: star detection crashed \(killed by SIGSEGV\)"):
        report = catalog.ingest([tmp_path / "night"], workers=workers)
    assert len(report.added) == len(paths) and not report.failed
    with catalog.session() as session:
        frames = {f.file_name: f for f in session.scalars(select(Frame))}
        assert all(f.stats is not None for f in frames.values())
        assert frames["crash_0003.fits"].metrics is None
        assert all(f.metrics is not None for name, f in frames.items() if name != "crash_0003.fits")


@pytest.mark.parametrize("death", ["SIGSEGV", "exit"])
def test_a_worker_that_dies_costs_only_its_file(catalog, tmp_path, monkeypatch, death):
    """A crash outside star detection kills a pool worker (BrokenProcessPool): a new pool takes the rest."""
    import obsdb.pipeline.ingest as ingest_module

    original = ingest_module._measure

    def dying(path, config, hash_mode="thread"):
        if "crash" in Path(path).name:
            if death == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGSEGV)
        return original(path, config, hash_mode)

    monkeypatch.setattr(ingest_module, "_measure", dying)
    paths = _night_with_one_marked_frame(tmp_path / "night", n=12, marked=3)
    report = catalog.ingest([tmp_path / "night"], workers=2, config=STATS_ONLY)
    assert sorted(Path(p).name for p in report.added) == sorted(p.name for p in paths if "crash" not in p.name)
    [(path, reason)] = report.failed
    assert Path(path).name == "crash_0004.fits"
    assert reason == ("measuring this file crashed its process "
                      + ("(killed by SIGSEGV)" if death == "SIGSEGV" else "(exited with status 3 without an answer)"))


def test_run_contained_returns_raises_and_reports_deaths():
    from obsdb.pipeline.pool import ChildCrashed, run_contained

    big = np.arange(1_000_000, dtype=np.float32)
    assert run_contained(lambda a, b: float(a.sum()) + b, big, 1.0) == float(big.sum()) + 1.0
    with pytest.raises(KeyError, match="NAXIS1"):
        run_contained(lambda: {}["NAXIS1"])
    with pytest.raises(ChildCrashed, match="killed by SIGSEGV"):
        run_contained(lambda: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(ChildCrashed, match="stopped after 1 s"):
        run_contained(time.sleep, 30, timeout=1.0)


@pytest.mark.parametrize("shape, hot", [((1, 5000), False), ((5000, 1), False), ((200, 300), True)])
def test_valid_odd_frames_get_their_stats(tmp_path, shape, hot):
    """A single-row frame and a flat frame with one hot pixel were refused ("every pixel is masked")."""
    data = np.random.default_rng(3).normal(100, 5, shape).astype(np.float32)
    if hot:
        data[:] = 500.0
        data[50, 60] = 60000.0
    path = write_fits(tmp_path / "odd_0001.fits", data)
    m = measure_file(str(path), IngestConfig())
    assert m.ok, m.error
    assert m.stats["median"] == pytest.approx(float(np.median(data)))
    assert m.stats["max"] == pytest.approx(float(data.max()))
    assert m.metrics is not None and m.metrics["n_stars"] == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_a_folder_is_skipped_and_one_given_directly_is_refused(catalog, tmp_path):
    """A FIFO named x.fits hung the ingest that opened it: it is never opened now."""
    from obsdb.imaging.fitsio import FitsWarning
    from obsdb.pipeline.ingest import IngestError

    folder = tmp_path / "night"
    write_fits(folder / "good_0001.fits", np.random.default_rng(1).normal(10, 1, (32, 32)).astype(np.float32))
    os.mkfifo(folder / "pipe_0002.fits")
    with pytest.warns(FitsWarning, match=r"pipe_0002.fits: not a regular file \(a FIFO\), skipped"):
        report = catalog.ingest([folder], config=STATS_ONLY)
    assert [Path(p).name for p in report.added] == ["good_0001.fits"] and not report.failed
    with pytest.raises(IngestError, match=r"pipe_0002.fits: not a regular file \(a FIFO\)$"):
        discover([folder / "pipe_0002.fits"])
    with pytest.raises(IngestError, match=r"null: not a regular file \(a character device\)$"):
        discover(["/dev/null"])
    # Read directly (a file replaced by a FIFO after discovery), the reader refuses without waiting.
    assert measure_file(str(folder / "pipe_0002.fits"), STATS_ONLY).error == "not a regular file (a FIFO)"


def test_a_sub_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch):
    """An unreadable sub-folder was skipped silently (root reads any folder: the refusal is simulated)."""
    from obsdb.imaging.fitsio import FitsWarning
    from obsdb.pipeline.ingest import IngestError

    write_fits(tmp_path / "night" / "a_0001.fits", np.zeros((4, 4)))
    write_fits(tmp_path / "night" / "locked" / "b_0002.fits", np.zeros((4, 4)))
    locked = str(tmp_path / "night" / "locked")
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.warns(FitsWarning, match=r"locked: cannot be listed \(permission denied\), skipped"):
        assert [p.name for p in discover([tmp_path / "night"], recursive=True)] == ["a_0001.fits"]
    with pytest.raises(IngestError, match=r"locked: cannot be listed \(permission denied\)$"):
        discover([locked])


def test_implausible_dates_and_duplicated_cards_are_recorded_with_a_warning(catalog, tmp_path):
    """DATE-OBS 9999-12-31 broke obsdb report later; two FILTER cards gave band "['V', 'B']"."""
    from astropy.io import fits

    from obsdb.imaging.fitsio import FitsWarning

    folder = tmp_path / "night"
    data = np.random.default_rng(2).normal(100, 5, (32, 32)).astype(np.float32)
    write_fits(folder / "future_0001.fits", data, {"DATE-OBS": "9999-12-31T23:59:59"})
    write_fits(folder / "clock_0002.fits", data, {"DATE-OBS": "2013-07-13", "TIME-OBS": "99:99:99"})
    hdu = fits.PrimaryHDU(data)
    for card in (("FILTER", "V"), ("EXPTIME", 30.0), ("FILTER", "B"), ("EXPTIME", 60.0)):
        hdu.header.append(card)
    hdu.writeto(folder / "twice_0003.fits")
    with pytest.warns(FitsWarning) as noted:
        report = catalog.ingest([folder], config=STATS_ONLY)
    assert len(report.added) == 3 and not report.failed
    messages = sorted(str(w.message) for w in noted if issubclass(w.category, FitsWarning))
    assert any(m.endswith("clock_0002.fits: TIME-OBS '99:99:99' is not a time of day: date recorded as unknown")
               for m in messages), messages
    assert any("future_0001.fits: DATE-OBS '9999-12-31T23:59:59' is in the future" in m for m in messages)
    assert any(m.endswith("twice_0003.fits: FILTER is given 2 times ('V', 'B'): the first is used") for m in messages)
    with catalog.session() as session:
        frames = {f.file_name: f for f in session.scalars(select(Frame))}
    assert frames["future_0001.fits"].date_obs is None and frames["clock_0002.fits"].date_obs is None
    assert frames["twice_0003.fits"].band == "V" and frames["twice_0003.fits"].exptime == 30.0
    assert frames["future_0001.fits"].header["DATE-OBS"] == "9999-12-31T23:59:59"  # the raw value is kept


def _card_edit(raw: bytes, keyword: str, image: bytes | None) -> bytes:
    key = keyword.encode().ljust(8)
    for start in range(0, 2880 * 4, 80):
        if raw[start:start + 8] == key:
            if image is None:
                return raw[:start] + raw[start + 80:2880] + b" " * 80 + raw[2880:]
            return raw[:start] + image.ljust(80)[:80] + raw[start + 80:]
    raise AssertionError(f"no {keyword} card")


def _gzip_damaged(raw: bytes) -> bytes:
    packed = bytearray(gzip.compress(raw))
    packed[len(packed) // 2] ^= 0xFF
    return bytes(packed)


@pytest.mark.parametrize("damage, reason", [
    (lambda raw: _card_edit(raw, "NAXIS1", None), "header: card 'NAXIS1' missing"),
    (lambda raw: _card_edit(raw, "BITPIX", None), "header: card 'BITPIX' missing"),
    (lambda raw: _card_edit(raw, "NAXIS2", b"NAXIS2  = 1.2.3"), "header: card 'NAXIS2' cannot be parsed: "
                                                                 "'NAXIS2  = 1.2.3'"),
    (lambda raw: _card_edit(raw, "NAXIS1", b"NAXIS1  =                   4\t0"),
     r"header: card 'NAXIS1' cannot be parsed: 'NAXIS1  =                   4\\t0'"),
    (lambda raw: _card_edit(raw, "NAXIS1", b"NAXIS1  = 99999999999999999999999"),
     "header: NAXIS1 99999999999999999999999 is not an axis length"),
    (lambda raw: _card_edit(raw, "BITPIX", b"BITPIX  =                   13"),
     "header: BITPIX 13 is not a FITS data type (8, 16, 32, 64, -32 or -64)"),
    (lambda raw: _card_edit(raw, "NAXIS1", b"NAXIS1  = 'abc'"), "header: NAXIS1 'abc' is not an integer"),
    (lambda raw: raw.replace(b"END" + b" " * 77, b" " * 80), "header: no END card (the header never ends)"),
    (lambda raw: _gzip_damaged(raw), "gzip stream damaged at byte "),
    (lambda raw: gzip.compress(raw)[:-200], "gzip stream ends at byte "),
])
def test_header_and_gzip_damage_is_named_in_one_sentence(tmp_path, damage, reason):
    """KeyError 'NAXIS1', VerifyError, zlib errors: each was 'unexpected ...'."""
    data = np.random.default_rng(6).normal(100, 5, (40, 48)).astype(np.float32)
    raw = write_fits(tmp_path / "ok.fits", data, {"FILTER": "V", "OBJECT": "x"}).read_bytes()
    path = tmp_path / "bad_0001.fits"
    path.write_bytes(damage(raw))
    m = measure_file(str(path), STATS_ONLY)
    assert m.error is not None and m.error.startswith(reason), m.error
    assert "\n" not in m.error and "unexpected" not in m.error


def test_control_characters_in_values_are_shown_not_refused(tmp_path):
    """A TAB, NUL or ESC in a value (FITS forbids them; PostgreSQL text refuses NUL) made astropy raise."""
    data = np.random.default_rng(6).normal(100, 5, (40, 48)).astype(np.float32)
    raw = write_fits(tmp_path / "ok.fits", data, {"FILTER": "V", "OBJECT": "x"}).read_bytes()
    path = tmp_path / "ctl_0001.fits"
    path.write_bytes(_card_edit(_card_edit(raw, "OBJECT", b"OBJECT  = 'M\x1b42\tx'"), "FILTER",
                                b"FILTER  = 'V\x00'"))
    m = measure_file(str(path), STATS_ONLY)
    assert m.ok, m.error
    assert m.header["OBJECT"] == "M?42?x" and m.columns["object"] == "M?42?x"
    assert "\x00" not in json_dumps(m.header)
    assert m.warnings == ["header: cards FILTER, OBJECT cannot be parsed: kept as text",
                          "header: cards FILTER, OBJECT hold control characters: shown as '?'"]


def json_dumps(value) -> str:
    import json

    return json.dumps(value)


def test_frames_above_the_budget_are_refused_before_allocation(tmp_path, monkeypatch):
    """A 2 GiB frame peaked at 11.9 GB: the budget (max_frame_mb, OBSDB_MAX_FRAME_MB) refuses it unread."""
    from obsdb.config import ConfigError

    data = np.zeros((512, 600), np.float32)
    path = write_fits(tmp_path / "big_0001.fits", data)
    m = measure_file(str(path), IngestConfig(measure_quality=False, max_frame_mb=1))
    assert m.error == ("frame of 600 x 512 pixels needs 1 MB decoded, above the frame budget of 1 MB "
                       "(OBSDB_MAX_FRAME_MB or [ingest] max_frame_mb sets it)")
    monkeypatch.setenv("OBSDB_MAX_FRAME_MB", "0.5")
    assert IngestConfig().max_frame_mb == 0.5
    assert measure_file(str(path), IngestConfig()).error.startswith("frame of 600 x 512 pixels needs 1 MB")
    monkeypatch.setenv("OBSDB_MAX_FRAME_MB", "lots")
    with pytest.raises(ConfigError, match="OBSDB_MAX_FRAME_MB 'lots': expected a positive number of megabytes"):
        IngestConfig()


def test_any_finite_looks_past_the_first_rows():
    from obsdb.pipeline.ingest import _any_finite

    frame = np.full((300, 200), np.nan, np.float32)
    assert not _any_finite(frame)
    frame[-1, -1] = 7.0
    assert _any_finite(frame)
    frame[-1, -1] = np.inf
    assert not _any_finite(frame)
    frame[0, 3] = 1.0
    assert _any_finite(frame)


def test_serial_ingest_forks_no_child_per_frame(catalog, tmp_path, monkeypatch):
    """Serial ingest measures in one long-lived worker, where the detection runs in place: the
    per-frame fork (run_contained) cost 40-60 ms of CPU on a 2k frame (issue 25)."""
    import obsdb.pipeline.pool as pool

    def no_fork(*args, **kwargs):
        raise AssertionError("run_contained called")

    monkeypatch.setattr(pool, "run_contained", no_fork)
    _night_with_one_marked_frame(tmp_path / "night", n=4)
    report = catalog.ingest([tmp_path / "night"])
    assert len(report.added) == 4 and not report.failed
    with catalog.session() as session:
        assert all(f.metrics is not None for f in session.scalars(select(Frame)))
