"""Render against simulated truth: aligned outputs measured on the files, stacks, provenance, safety, collect."""

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage
from scipy.spatial import cKDTree
from sqlalchemy import select
from typer.testing import CliRunner

from obsdb.catalog.models import RenderOutput, ShiftStep
from obsdb.catalog.queries import frame_records
from obsdb.cli.app import app
from obsdb.errors import ObsdbError
from obsdb.imaging.stars import detect_stars, measure_quality
from obsdb.pipeline.align import align_auto
from obsdb.pipeline.executors import SerialExecutor
from obsdb.pipeline.render import collect, output_name, render

SIZE = 512


@pytest.fixture(scope="module")
def night(tmp_path_factory, simulated_nights):
    """A 512 px night: 2 bands, 3 pointing groups far apart, drift, rotations up to 0.3 deg, a few bad frames.

    Seed 14 has skies 300 ADU apart in V: a median stack of frames not brought to one sky level
    broadens the stars by 4 %.  Ingested, QA'd, auto-aligned and rendered (spline3, median stacks)
    into ``out/``; then two staged runs are made: integer (the notebook's) and float, left current.
    """
    from obsdb.catalog.db import database_url, upgrade
    from obsdb.api import Catalog

    root = tmp_path_factory.mktemp("render-night")
    folder = root / "frames"
    truth = simulated_nights.copy(folder, seed=14, size=SIZE, n_frames=14, bands=("V", "R"), n_groups=3,
                                  cloud_fraction=0.1, trail_fraction=0.1, defocus_fraction=0.0,
                                  max_group_offset=120, max_rotation_deg=0.3)
    db = str(root / "obsdb.sqlite")
    upgrade(database_url(db))
    catalog = Catalog.open(db)
    catalog.ingest([folder])
    catalog.qa()
    auto = align_auto(catalog.db)
    out = root / "out"
    report = catalog.render(out, run=auto.run_id, stack="median")
    catalog.auto_groups()
    staged_int = catalog.align_staged(integer=True)
    staged = catalog.align_staged()
    with catalog.session() as session:
        accepted = {r["number"]: r for r in [r.to_json() for r in frame_records(session, status="accepted")]}
    yield {"catalog": catalog, "db": db, "truth": truth, "folder": folder, "root": root, "out": out,
           "auto": auto, "report": report, "staged_int": staged_int, "staged": staged, "accepted": accepted}
    catalog.close()


def _read(path):
    with fits.open(path) as hdul:
        return (hdul[0].data.astype(np.float64), hdul[0].header.copy(),
                hdul["COVERAGE"].data.copy() if "COVERAGE" in hdul else None)


def _input_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.fits"))}


def _invoke(db, *args):
    return CliRunner().invoke(app, ["--db", db, *map(str, args)])


# ------------------------------------------------------------------ 1. geometry measured on the output files


def _star_offsets(path, xt, yt):
    """Detected position minus the given position for each star, NaN when unmatched or near missing data."""
    data, _, coverage = _read(path)
    stars = detect_stars(data)
    dist, j = cKDTree(np.column_stack([stars["x"], stars["y"]])).query(np.column_stack([xt, yt]),
                                                                     distance_upper_bound=1.0)
    found = np.isfinite(dist)
    j = np.where(found, j, 0)
    # Stars whose 25x25 neighbourhood is fully covered: a NaN edge would bias the centroid.
    safe = ndimage.binary_erosion(coverage.astype(bool), np.ones((25, 25)), border_value=0)
    inside = safe[np.rint(yt).astype(int), np.rint(xt).astype(int)]
    keep = found & inside
    return np.where(keep, stars["x"][j] - xt, np.nan), np.where(keep, stars["y"][j] - yt, np.nan)


def test_every_aligned_output_puts_stars_on_the_reference(night):
    truth, out, auto = night["truth"], night["out"], night["auto"]
    accepted = night["accepted"]
    assert len(night["report"].frames) == len(accepted) >= 10
    rotations = [abs(r.rotation_deg or 0.0) for r in auto.results if r.ok]
    assert max(rotations) > 0.1  # the night is not only translations
    assert max(np.hypot(r.dx, r.dy) for r in auto.results if r.ok) > 30
    # True star positions in the reference, bright and isolated, away from the edges.
    xt, yt, flux = truth.sky_positions_in_frame(auto.reference, margin=13)
    nearest = cKDTree(np.column_stack([xt, yt])).query(np.column_stack([xt, yt]), k=2)[0][:, 1]
    keep = (nearest > 10) & (flux > np.median(flux))
    xt, yt = xt[keep], yt[keep]
    ref_dx, ref_dy = _star_offsets(out / output_name(accepted[auto.reference]["path"]), xt, yt)
    # The reference's own output is the reference: its stars are where the truth says.
    assert abs(np.nanmedian(ref_dx)) < 0.03 and abs(np.nanmedian(ref_dy)) < 0.03
    for number, record in sorted(accepted.items()):
        path = out / output_name(record["path"])
        dx, dy = _star_offsets(path, xt, yt)
        ddx, ddy = dx - ref_dx, dy - ref_dy
        both = np.isfinite(ddx) & np.isfinite(ddy)
        assert both.sum() >= 20, (number, int(both.sum()))
        median = np.hypot(np.median(ddx[both]), np.median(ddy[both]))
        assert median < 0.05, (number, median)
        # Every star, not just the middle: a missed rotation (0.3 deg = 1.3 px at the corners) shows here.
        spread = np.sqrt(np.mean(ddx[both] ** 2 + ddy[both] ** 2))
        assert spread < 0.15, (number, spread)


# ------------------------------------------------------------------ 2. stacks


def test_one_stack_per_band_with_coverage_exposure_and_sharpness(night):
    out, accepted, folder = night["out"], night["accepted"], night["folder"]
    bands = sorted({r["band"] for r in accepted.values()})
    assert sorted(s["band"] for s in night["report"].stacks) == bands == ["R", "V"]
    assert sorted(p.name for p in out.glob("stack_*.fits")) == [f"stack_{b}.fits" for b in bands]
    for band in bands:
        members = [r for r in accepted.values() if r["band"] == band]
        assert len(members) >= 3
        stack, header, coverage = _read(out / f"stack_{band}.fits")
        assert (out / f"stack_{band}.png").stat().st_size > 0
        assert header["NCOMBINE"] == len(members)
        exptime = sum(fits.getheader(folder / os.path.basename(r["path"]))["EXPTIME"] for r in members)
        assert header["EXPTIME"] == pytest.approx(exptime)
        frames = [_read(out / output_name(r["path"])) for r in members]
        expected = sum(c.astype(int) for _, _, c in frames)
        np.testing.assert_array_equal(coverage, expected)
        everywhere = coverage == len(members)
        assert everywhere.mean() > 0.3  # groups far apart, yet a real common area
        assert np.isfinite(stack[everywhere]).all() and not np.isfinite(stack[coverage == 0]).any()
        quality_in = [measure_quality(d) for d, _, _ in frames]
        quality = measure_quality(stack)
        fwhm_in = np.mean([q.fwhm for q in quality_in])
        assert quality.fwhm <= 1.03 * fwhm_in, (band, quality.fwhm, fwhm_in)
        # Frames were brought to the band's median sky before combining.
        skies = [r["stats"]["background"] for r in members]
        assert header["OBSDB_SKY"] == pytest.approx(np.median(skies), abs=1e-3)
        assert quality.background == pytest.approx(np.median(skies), abs=3.0)
        # A stack, not a copy of one frame: the noise went down.
        assert quality.background_rms < 0.8 * min(q.background_rms for q in quality_in)


# ------------------------------------------------------------------ 3. provenance


def test_headers_carry_the_catalogs_shift_run_and_steps(night):
    db, root, staged, auto = night["db"], night["root"], night["staged"], night["auto"]
    records = json.loads(_invoke(db, "frames", "--format", "json").stdout)
    current = {r["number"]: r["shift"] for r in records if r.get("shift")}
    out = root / "staged"
    render(night["catalog"], out, run=staged.run_id, interpolation="linear")
    rendered = [r for r in staged.results if r.ok]
    assert len(rendered) >= 10
    for result in rendered:
        path = out / output_name(night["accepted"][result.number]["path"])
        header = fits.getheader(path)
        shift = current[result.number]
        assert shift["run"] == staged.run_id
        assert header["OBSDB_DX"] == pytest.approx(shift["dx"], abs=1e-6)
        assert header["OBSDB_DY"] == pytest.approx(shift["dy"], abs=1e-6)
        assert header["OBSDB_RUN"] == staged.run_id
        assert header["OBSDB_REF"] == staged.reference
        assert header["OBSDB_INTERP"] == "linear"
        steps = [h for h in header["HISTORY"] if f"run {staged.run_id} " in h]
        assert len(steps) == 3, list(header["HISTORY"])
        assert [s.split("stage ")[1][0] for s in steps] == ["1", "2", "3"]
        assert "within-group" in steps[0] and "group-offset" in steps[1] and "fine" in steps[2]
        # One card per step: a line too long for a card would wrap into a stray fragment card.
        assert all(h.startswith("obsdb") for h in header["HISTORY"]), list(header["HISTORY"])
    # The auto outputs carry the auto run's total, rotation included (about the frame centre).
    for result in (r for r in auto.results if r.ok):
        header = fits.getheader(night["out"] / output_name(night["accepted"][result.number]["path"]))
        assert header["OBSDB_RUN"] == auto.run_id and header["OBSDB_REF"] == auto.reference
        assert header["OBSDB_INTERP"] == "spline3"
        assert header["OBSDB_DX"] == pytest.approx(result.dx, abs=1e-6)
        assert header["OBSDB_DY"] == pytest.approx(result.dy, abs=1e-6)
        assert header["OBSDB_RT"] == pytest.approx(result.rotation_deg or 0.0, abs=1e-7)
        assert len([h for h in header["HISTORY"] if f"run {auto.run_id} " in h]) == 1
        assert all(h.startswith("obsdb") for h in header["HISTORY"]), list(header["HISTORY"])


# ------------------------------------------------------------------ 4. repeatability, inputs never overwritten


def test_rerender_is_identical_and_recorded(night):
    catalog, root, staged = night["catalog"], night["root"], night["staged"]
    first, second, third = root / "again-1", root / "again-2", root / "again-3"
    catalog.render(first, run=staged.run_id)  # on the render's two threads
    catalog.render(second, run=staged.run_id, workers=2)  # and the process pool gives the same bytes
    catalog.render(third, run=staged.run_id, executor=SerialExecutor(chosen=True))  # and one thread
    names = sorted(p.name for p in first.glob("*.fits"))
    assert names == sorted(p.name for p in second.glob("*.fits")) and len(names) >= 10
    assert names == sorted(p.name for p in third.glob("*.fits"))
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes() == (third / name).read_bytes(), name
    with catalog.session() as session:
        rows = session.scalars(select(RenderOutput).where(RenderOutput.kind == "aligned")).all()
    recorded = {}
    for row in rows:
        recorded.setdefault(os.path.dirname(row.path), {})[os.path.basename(row.path)] = row
    for folder in (first, second, third):
        assert sorted(recorded[str(folder)]) == names
        for name, row in recorded[str(folder)].items():
            assert row.sha256 == hashlib.sha256((folder / name).read_bytes()).hexdigest()
            assert row.run_id == staged.run_id and row.interpolation == "spline3"
    assert {r.sha256 for r in recorded[str(first)].values()} == {r.sha256 for r in recorded[str(second)].values()}


def test_render_into_the_input_folder_is_refused(night):
    folder, db = night["folder"], night["db"]
    before = _input_bytes(folder)
    result = _invoke(db, "render", "--out", folder, "--stack", "median")
    assert result.exit_code == 1
    message = result.stderr.strip() if result.stderr_bytes is not None else result.output.strip()
    assert len(message.splitlines()) == 1 and "input" in message and "Traceback" not in message, message
    assert _input_bytes(folder) == before
    assert not list(folder.glob("stack_*")) and not list(folder.glob("*.part"))
    with pytest.raises(ObsdbError, match="input frame"):
        render(night["catalog"], folder)
    assert _input_bytes(folder) == before


# ------------------------------------------------------------------ 5. interrupted writes


def test_interrupted_write_leaves_no_partial_file(night, monkeypatch):
    import obsdb.imaging.fitsio.write as fitsio_write

    catalog, root, staged = night["catalog"], night["root"], night["staged"]
    out = root / "interrupted"

    def no_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fitsio_write.os, "fsync", no_disk)
    with pytest.raises(OSError, match="No space"):
        catalog.render(out, run=staged.run_id)
    assert list(out.iterdir()) == []  # no target, no .part

    def broken_writeto(self, *args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(fits.HDUList, "writeto", broken_writeto)
    with pytest.raises(RuntimeError):
        catalog.render(out, run=staged.run_id)
    assert list(out.iterdir()) == []
    monkeypatch.undo()

    # A good render, then a failing re-render over it: the old files stay whole.
    catalog.render(out, run=staged.run_id, stack="mean")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert any(n.startswith("stack_") for n in before)
    monkeypatch.setattr(fitsio_write.os, "fsync", no_disk)
    with pytest.raises(OSError):
        catalog.render(out, run=staged.run_id, interpolation="linear", stack="mean")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_failure_mid_render_records_the_files_written(night, monkeypatch):
    """Frames written before a failure are in the catalog with the hash of what is on disk."""
    import obsdb.imaging.fitsio.write as fitsio_write

    catalog, root, staged = night["catalog"], night["root"], night["staged"]
    out = root / "half"
    real_fsync, calls = os.fsync, []

    def fail_third(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(fitsio_write.os, "fsync", fail_third)
    with pytest.raises(OSError):
        catalog.render(out, run=staged.run_id)
    monkeypatch.undo()
    written = sorted(out.glob("*.fits"))
    # Two frames before the failing third write; the render's second thread may have written others
    # meanwhile (then they are recorded too).  Whatever failed left no file.
    assert len(written) >= 2 and not list(out.glob("*.part"))
    with catalog.session() as session:
        every = session.scalars(select(RenderOutput).where(RenderOutput.path.like(f"{out}/%"))).all()
    # The frames not written are left as write-ahead records (pending), nothing else.
    rows = [r for r in every if r.sha256 != "pending"]
    assert any(r.sha256 == "pending" for r in every)
    assert {r.path for r in every if r.sha256 == "pending"}.isdisjoint(str(p) for p in written)
    assert sorted(r.path for r in rows) == [str(p) for p in written]
    for row in rows:
        assert row.sha256 == hashlib.sha256(open(row.path, "rb").read()).hexdigest()


# ------------------------------------------------------------------ 6. nearest + integer = the notebook


def test_nearest_integer_staged_is_the_notebooks_shift(night):
    catalog, root, staged_int = night["catalog"], night["root"], night["staged_int"]
    out = root / "nearest"
    catalog.render(out, run=staged_int.run_id, interpolation="nearest")
    with catalog.session() as session:
        steps = session.execute(select(ShiftStep.frame_id, ShiftStep.dx, ShiftStep.dy).where(
            ShiftStep.run_id == staged_int.run_id)).all()
        by_id = {r["id"]: r for r in [r.to_json() for r in frame_records(session)]}
    totals = {}
    for frame_id, dx, dy in steps:
        assert float(dx).is_integer() and float(dy).is_integer()
        t = totals.setdefault(frame_id, [0.0, 0.0])
        t[0] += dx
        t[1] += dy
    assert len(totals) >= 10 and max(abs(v) for t in totals.values() for v in t) > 30
    for frame_id, (dx, dy) in totals.items():
        source = by_id[frame_id]["path"]
        data = fits.getdata(source).astype(np.float32)
        notebook = ndimage.shift(data, (dy, dx), order=0, mode="constant", cval=-1000)
        outside = ndimage.shift(np.ones_like(data), (dy, dx), order=0, mode="constant", cval=0) == 0
        expected = np.where(outside, np.nan, notebook)
        aligned, header, coverage = _read(out / output_name(source))
        np.testing.assert_array_equal(aligned, expected)
        np.testing.assert_array_equal(coverage.astype(bool), ~outside)
        assert header["OBSDB_INTERP"] == "nearest"


# ------------------------------------------------------------------ 7. collect


def test_collect_copies_exactly_the_accepted_frames(night):
    db, root, folder, accepted = night["db"], night["root"], night["folder"], night["accepted"]
    with night["catalog"].session() as session:
        everything = [r.to_json() for r in frame_records(session)]
    assert len(everything) > len(accepted)  # some frames are rejected, so "exactly" means something
    wanted = sorted(os.path.basename(r["path"]) for r in accepted.values())
    copies = root / "selected"
    result = _invoke(db, "collect", "--out", copies)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in copies.iterdir()) == wanted
    for name in wanted:
        assert (copies / name).read_bytes() == (folder / name).read_bytes()
        assert not os.path.samefile(copies / name, folder / name)
    links = root / "linked"
    result = _invoke(db, "collect", "--out", links, "--link")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in links.iterdir()) == wanted
    for name in wanted:
        assert os.path.samefile(links / name, folder / name)
    with pytest.raises(ObsdbError, match="catalogued input frame"):
        collect(night["catalog"], folder)


# ------------------------------------------------------------------ 8. CLI


def test_cli_render_with_stack(night):
    db, root = night["db"], night["root"]
    out = root / "cli"
    result = _invoke(db, "render", "--out", out, "--stack", "median")
    assert result.exit_code == 0, result.output
    assert "aligned frames" in result.stdout
    n = len(night["accepted"])
    assert len([p for p in out.glob("*.fits") if not p.name.startswith("stack_")]) == n
    assert (out / "stack_V.fits").is_file() and (out / "stack_R.fits").is_file()
    assert not list(out.glob("*.part"))
    # The default run is each frame's current one: the float staged run.
    header = fits.getheader(next(p for p in out.glob("*.fits") if not p.name.startswith("stack_")))
    assert header["OBSDB_RUN"] == night["staged"].run_id


def test_cli_bad_interpolation_is_one_line(night):
    out = night["root"] / "bad-interp"
    result = _invoke(night["db"], "render", "--out", out, "--interp", "cubic")
    assert result.exit_code != 0
    message = result.stderr.strip() if result.stderr_bytes is not None else result.output.strip()
    assert len(message.splitlines()) == 1 and "cubic" in message and "spline3" in message, message
    assert "Traceback" not in result.output and not out.exists()


# ------------------------------------------------------------------ inputs that share a file name


def test_output_names_keep_file_names_unless_two_inputs_share_one():
    from obsdb.pipeline.render import output_names

    assert output_names(["/n/a/x_1.fits.gz", "/n/b/x_2.fits"]) == {"/n/a/x_1.fits.gz": "x_1.fits",
                                                                  "/n/b/x_2.fits": "x_2.fits"}
    shared = output_names(["/n/M94/L_1.fits", "/n/M67/L_1.fits", "/n/M67/deep/L_2.fits.gz"])
    assert shared == {"/n/M94/L_1.fits": "M94/L_1.fits", "/n/M67/L_1.fits": "M67/L_1.fits",
                      "/n/M67/deep/L_2.fits.gz": "M67/deep/L_2.fits"}
    assert output_names(["/n/a/L.fits.gz", "/n/b/L.fits.gz"], strip_gz=False) == {
        "/n/a/L.fits.gz": "a/L.fits.gz", "/n/b/L.fits.gz": "b/L.fits.gz"}


# ------------------------------------------------------------------ awkward inputs

QUIET = dict(size=256, bands=("V",), n_groups=1, cloud_fraction=0, trail_fraction=0, defocus_fraction=0)
"""A small night of good V frames in one pointing group."""


@contextmanager
def _aligned(folder, db, *, recursive=False):
    """A fresh catalog at ``db`` of the frames in ``folder``, ingested, QA'd and auto-aligned;
    yields (catalog, alignment report) and closes the catalog."""
    from obsdb.catalog.db import database_url, upgrade
    from obsdb.api import Catalog

    upgrade(database_url(str(db)))
    catalog = Catalog.open(str(db))
    try:
        catalog.ingest([folder], recursive=recursive)
        catalog.qa()
        yield catalog, align_auto(catalog.db)
    finally:
        catalog.close()


def test_frames_that_share_a_file_name_are_rendered_and_collected_apart(tmp_path, copy_night):
    """One folder per session with the same file names in each: no output may overwrite another."""
    first = copy_night(tmp_path / "night" / "early", seed=41, first_number=1001, n_frames=3, **QUIET)
    second = copy_night(tmp_path / "night" / "late", seed=41, first_number=2001, n_frames=3, **QUIET)
    for a, b in zip(first.frames, second.frames):
        late = tmp_path / "night" / "late" / a["file"]
        (tmp_path / "night" / "late" / b["file"]).rename(late)
        fits.setval(late, "SESSION", value="late")  # the same seed made the same pixels
    out = tmp_path / "out"
    with _aligned(tmp_path / "night", tmp_path / "obsdb.sqlite", recursive=True) as (catalog, _):
        report = catalog.render(out, stack="median")
        copied = catalog.collect(tmp_path / "selected")
    written = sorted(Path(path).relative_to(out).as_posix() for _, path in report.frames)
    assert written == sorted(f"{session}/{f['file']}" for session in ("early", "late") for f in first.frames)
    # Each output comes from its own input: the late session's files carry SESSION, the early ones not.
    for _, path in report.frames:
        assert fits.getheader(path).get("SESSION", "early") == Path(path).relative_to(out).parts[0], path
    assert report.stacks[0]["frames"] == 6
    assert sorted(Path(p).relative_to(tmp_path / "selected").as_posix() for p in copied.written) == sorted(
        f"{session}/{f['file']}" for session in ("early", "late") for f in first.frames)


def test_a_frame_of_another_shape_is_not_stacked_with_the_others(tmp_path, copy_night):
    """A cropped frame is refused by the auto alignment with the reason (so never stacked), and a
    stack given frames of two shapes (e.g. from a staged run) keeps the common shape and names the
    frame left out, rather than failing."""
    from obsdb.pipeline.render import _one_shape

    truth = copy_night(tmp_path / "night", seed=43, n_frames=5, **QUIET)
    cropped = truth.frames[-1]
    path = tmp_path / "night" / cropped["file"]
    with fits.open(path) as hdul:
        fits.writeto(path, hdul[0].data[:200], hdul[0].header, overwrite=True)
    with _aligned(tmp_path / "night", tmp_path / "obsdb.sqlite") as (catalog, aligned):
        report = catalog.render(tmp_path / "out", stack="median")
    assert [(f.number, f.reason) for f in aligned.failures] == [
        (cropped["number"], "shape (200, 256) differs from the reference's (256, 256)")]
    assert len(report.frames) == 4 and [s["frames"] for s in report.stacks] == [4] and not report.skipped

    members = [{"number": n, "path": f"/x/{n}.fits", "shape": shape}
               for n, shape in ((1, [256, 256]), (2, [200, 256]), (3, [256, 256]), (None, [256, 256]))]
    left_out = []
    assert [m["number"] for m in _one_shape(members, "V", left_out)] == [1, 3, None]
    assert left_out == [(2, "left out of the V stack: shape 256x200 differs from 256x256, the shape of 3 of "
                            "its frames")]


def test_an_input_gone_since_ingest_is_named_and_the_rest_renders(tmp_path, copy_night):
    truth = copy_night(tmp_path / "night", seed=44, n_frames=5, **QUIET)
    db = tmp_path / "obsdb.sqlite"
    with _aligned(tmp_path / "night", db):
        pass
    gone = truth.frames[2]
    (tmp_path / "night" / gone["file"]).unlink()
    result = _invoke(str(db), "render", "--out", tmp_path / "out", "--stack", "median")
    assert result.exit_code == 1
    assert f"not rendered: {gone['number']}: " in result.output and "No such file" in result.output
    assert "unexpected" not in result.output and "Traceback" not in result.output
    rendered = sorted(p.name for p in (tmp_path / "out").glob("NGC*.fits"))
    assert rendered == sorted(f["file"] for f in truth.frames if f is not gone)
    with fits.open(tmp_path / "out" / "stack_V.fits") as stack:
        assert stack[0].header["NCOMBINE"] == 4


def test_outputs_have_the_usual_permissions(night, tmp_path):
    """Aligned frames, stacks and previews are 0644 under umask 022 (mkstemp alone gives 0600)."""
    import stat

    from obsdb.pipeline.render import render

    old = os.umask(0o022)
    try:
        report = render(night["catalog"], tmp_path / "out", stack="median", previews=True)
    finally:
        os.umask(old)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert report.frames and any(p.suffix == ".png" for p in written) and any("stack_" in p.name for p in written)
    assert {stat.S_IMODE(p.stat().st_mode) for p in written} == {0o644}


def test_aligned_frames_and_stacks_carry_the_references_wcs_and_times(real_data, tmp_path):
    """The real DSS pair: the aligned frame is on the reference's grid, so the reference's WCS
    describes it; the stack says when it was observed and from which files."""
    import shutil
    import warnings

    from astropy.wcs import WCS

    from obsdb import Catalog

    night = tmp_path / "pair"
    shutil.copytree(real_data / "pair_dss", night)
    with Catalog.open(tmp_path / "c.sqlite", create=True) as cat:
        cat.ingest([night])
        reports = cat.align(reference=str(night / "dss_test2.fits"), status="any")
        assert [r.ok for r in reports[0].results].count(True) == 2, reports[0].results
        cat.render(tmp_path / "out", status="any", stack="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = WCS(fits.getheader(night / "dss_test1.fits"))
        with fits.open(tmp_path / "out" / "dss_test1.fits") as hdul:
            aligned = WCS(hdul[0].header)
            shift = hdul[0].header["OBSDB_DX"], hdul[0].header["OBSDB_DY"]
        # Pixel (88, 88) of test1 sits at (88 + dx, 88 + dy) of the aligned frame: the same sky.
        before = original.pixel_to_world(88, 88)
        after = aligned.pixel_to_world(88 + shift[0], 88 + shift[1])
        assert before.separation(after).arcsec < 2.0
        reference = WCS(fits.getheader(night / "dss_test2.fits"))
        # The two plates name different OBJECTs: one stack each, both on the reference's grid.
        stacks = sorted((tmp_path / "out").rglob("stack_*.fits"))
        assert len(stacks) == 2
        files = set()
        for path in stacks:
            header = fits.getheader(path)
            files.add(header["FILE0001"])
            assert header["NCOMBINE"] == 1 and header["DATE-OBS"] <= header["DATE-END"] and "MJD-MID" in header
            assert WCS(header).pixel_to_world(40, 50).separation(reference.pixel_to_world(40, 50)).arcsec < 0.01
    assert files == {"dss_test1.fits", "dss_test2.fits"}


# ------------------------------------------------------------------ outputs are obsdb's, or left alone


def test_render_replaces_only_its_own_unchanged_outputs_and_removes_its_leftovers(tmp_path, copy_night):
    """A user's file under an output's name, or an output changed since, is never replaced."""
    copy_night(tmp_path / "night", seed=43, n_frames=3, **QUIET)
    out = tmp_path / "out"
    with _aligned(tmp_path / "night", tmp_path / "obsdb.sqlite") as (catalog, _):
        first = catalog.render(out, stack="median", previews=True)
        outputs = [Path(path) for _, path in first.frames]
        # A killed render's temporary file, and a stranger's hidden file that only looks alike.
        leftover = outputs[0].parent / f".{outputs[0].name}.abcd1234.part"
        leftover.write_bytes(b"half a frame")
        stranger = outputs[0].parent / f".{outputs[0].name}.notes.part"
        stranger.write_bytes(b"mine")
        again = catalog.render(out, stack="median", previews=True)      # its own files: replaced
        assert len(again.frames) == len(first.frames)
        assert not leftover.exists() and stranger.read_bytes() == b"mine"
        # The user edits an aligned frame: the next render refuses to replace it, and says why.
        with fits.open(outputs[1], mode="update") as hdul:
            hdul[0].header["NOTE"] = "mine now"
        edited = outputs[1].read_bytes()
        with pytest.raises(ObsdbError, match="changed since"):
            catalog.render(out)
        assert outputs[1].read_bytes() == edited
        # A file obsdb never wrote, under a stack's name.
        other = tmp_path / "other"
        other.mkdir()
        (other / "stack_V.fits").write_bytes(b"the user's own stack")
        with pytest.raises(ObsdbError, match="not written by obsdb"):
            catalog.render(other, stack="median")
        assert (other / "stack_V.fits").read_bytes() == b"the user's own stack"


def test_collect_never_replaces_a_file_it_did_not_write(tmp_path, copy_night):
    copy_night(tmp_path / "night", seed=44, n_frames=3, **QUIET)
    with _aligned(tmp_path / "night", tmp_path / "obsdb.sqlite") as (catalog, _):
        copied = catalog.collect(tmp_path / "selected")
        assert len(copied.written) == 3
        again = catalog.collect(tmp_path / "selected", link=True)        # identical copies: left alone
        assert again.written == [] and len(again.present) == 3
        victim = Path(copied.written[0])
        victim.write_bytes(b"the user's notes")
        with pytest.raises(ObsdbError, match="not a copy of"):
            catalog.collect(tmp_path / "selected", link=True)
        assert victim.read_bytes() == b"the user's notes"
        (tmp_path / "a-file").write_text("x")
        with pytest.raises(ObsdbError, match="is a file, not a folder"):
            catalog.collect(tmp_path / "a-file")


def test_collect_link_across_filesystems_copies_and_says_so(tmp_path, monkeypatch, copy_night):
    import errno

    copy_night(tmp_path / "night", seed=45, n_frames=2, **QUIET)

    def cross_device(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    with _aligned(tmp_path / "night", tmp_path / "obsdb.sqlite") as (catalog, _):
        real_link = os.link
        monkeypatch.setattr(os, "link", lambda a, b: cross_device(a, b) if ".part" not in str(a)
                            else real_link(a, b))
        done = catalog.collect(tmp_path / "selected", link=True)
    assert done.copied_not_linked == 2 and len(done.written) == 2
    for path in done.written:
        assert os.stat(path).st_nlink == 1 and Path(path).stat().st_size > 2880


def test_a_render_killed_after_writing_a_file_it_had_not_recorded_does_not_block_the_next(tmp_path, monkeypatch, copy_night):
    """kill -9 between a file's rename into place and its record (the worst moment): the catalog knew it
    was about to be written (a write-ahead record), so the next render replaces it and finishes the night.
    A file put there by someone else is still refused."""
    import obsdb.pipeline.render as render_module

    copy_night(tmp_path / "night", seed=45, n_frames=3, **QUIET)
    out = tmp_path / "out"
    monkeypatch.setattr(render_module, "RECORD_BATCH", 1)  # each frame's record right after its file
    with _aligned(tmp_path / "night", tmp_path / "obsdb.sqlite") as (catalog, _):
        real_record = render_module._record_frames

        def dies_before_the_second_record(catalog_, tasks, results, interpolation, report):
            if report.frames:
                raise KeyboardInterrupt("killed between writing the file and recording it")
            real_record(catalog_, tasks, results, interpolation, report)

        monkeypatch.setattr(render_module, "_record_frames", dies_before_the_second_record)
        with pytest.raises(KeyboardInterrupt):
            catalog.render(out, stack="median", previews=True)
        monkeypatch.setattr(render_module, "_record_frames", real_record)
        written = sorted(p.name for p in out.glob("*.fits"))
        assert len(written) >= 2                              # the second file is on disk, unrecorded
        again = catalog.render(out, stack="median", previews=True)
        assert len(again.frames) == 3 and again.stacks
        # Nothing pending is left, and `show` lists only files really written.
        from obsdb.catalog.models import PENDING_DIGEST, RenderOutput
        from sqlalchemy import func, select

        with catalog.session() as session:
            assert session.scalar(select(func.count()).where(RenderOutput.sha256 == PENDING_DIGEST)) == 0
        # A stranger's file in a new folder is still refused.
        other = tmp_path / "other"
        other.mkdir()
        (other / written[0]).write_bytes(b"the user's own file")
        with pytest.raises(ObsdbError, match="not written by obsdb"):
            catalog.render(other)


def test_output_rows_are_inserted_in_batches_and_all_recorded(night, monkeypatch):
    """RECORD_BATCH frames' rows per transaction (not one per frame), the last batch too."""
    import obsdb.pipeline.render as render_module
    from obsdb.catalog.stores import RenderStore

    catalog, root = night["catalog"], night["root"]
    batches = []
    real = RenderStore.record_render_outputs

    def counting(self, rows):
        batches.append(sum(1 for row in rows if row["kind"] == "aligned"))
        return real(self, rows)

    monkeypatch.setattr(render_module, "RECORD_BATCH", 3)
    monkeypatch.setattr(RenderStore, "record_render_outputs", counting)
    out = root / "batched"
    report = catalog.render(out)
    n = len(report.frames)
    assert n >= 5
    assert batches == [3] * (n // 3) + ([n % 3] if n % 3 else [])
    with catalog.session() as session:
        rows = session.scalars(select(RenderOutput).where(RenderOutput.path.like(f"{out}/%"))).all()
    assert sorted(r.path for r in rows) == sorted(str(p) for p in out.glob("*.fits"))
    assert all(r.sha256 != "pending" for r in rows)
