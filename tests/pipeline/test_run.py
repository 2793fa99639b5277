"""`obsdb run` end to end on a small simulated night, and the demo command."""

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from obsdb.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def night_run(tmp_path_factory, simulated_nights):
    root = tmp_path_factory.mktemp("run")
    truth = simulated_nights.copy(root / "night", seed=21, size=256, n_frames=15, bands=("V", "R"), n_groups=2)
    out = root / "out"
    result = runner.invoke(app, ["run", str(root / "night"), "--out", str(out)], catch_exceptions=False)
    return result, out, truth


def test_run_does_every_step(night_run):
    result, out, truth = night_run
    assert result.exit_code == 0, result.output
    for step in ("ingest:", "qa:", "align:", "group:", "render:", "report:"):
        assert step in result.output
    assert "night summary by band" in result.output
    assert (out / "obsdb.sqlite").exists()
    assert (out / "report" / "index.html").exists()
    bands = {f["band"] for f in truth.frames}
    for band in bands:
        assert (out / "aligned" / f"stack_{band}.fits").exists()


def test_run_rejects_defects_and_aligns_the_rest(night_run):
    result, out, truth = night_run
    records = json.loads(runner.invoke(app, ["--db", str(out / "obsdb.sqlite"), "frames", "--format",
                                             "json"]).stdout)
    by_number = {r["number"]: r for r in records}
    for frame in truth.frames:
        record = by_number[frame["number"]]
        if frame["kind"] != "good":
            assert record["status"] == "rejected", (frame["number"], frame["kind"], record["reasons"])
        else:
            assert record["status"] == "accepted", (frame["number"], record["reasons"])
            assert record["shift"] is not None
            assert (out / "aligned" / frame["file"]).exists()


def test_run_is_repeatable(night_run, tmp_path):
    """A second run over the same folder re-ingests nothing and makes a new alignment run."""
    result, out, truth = night_run
    again = runner.invoke(app, ["run", str(Path(truth.directory) if truth.directory else out.parent / "night"),
                                "--out", str(out)], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "0 new" in again.output and "run 2:" in again.output


def test_run_on_missing_folder_is_one_line(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "not a folder" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_run_on_frames_without_numbers(tmp_path, copy_night):
    """File names with no frame number (e.g. light_a.fits): frames are named by file instead."""
    night = tmp_path / "night"
    truth = copy_night(night, seed=5, size=256, n_frames=6, bands=("V",), n_groups=1,
                       cloud_fraction=0, trail_fraction=0, defocus_fraction=0)
    for index, frame in enumerate(truth.frames):
        (night / frame["file"]).rename(night / f"light_{'abcdef'[index]}.fits")
    result = runner.invoke(app, ["run", str(night), "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "frames aligned to light_" in result.output and "None" not in result.output
    records = json.loads(runner.invoke(app, ["--db", str(tmp_path / "out" / "obsdb.sqlite"), "frames",
                                             "--format", "json"]).stdout)
    assert len(records) == 6 and all(r["number"] is None and r["shift"] is not None for r in records)
    # A rejection of a frame with no number names its file, in the table and in qa's report.
    db = str(tmp_path / "out" / "obsdb.sqlite")
    tagged = runner.invoke(app, ["--db", db, "tag", "light_c.fits", "reject", "--reason", "satellite"])
    assert tagged.exit_code == 0, tagged.output
    table = runner.invoke(app, ["--db", db, "rejected"], terminal_width=200).output
    assert "light_c.fits" in table and "satellite" in table and "None" not in table
    qa = runner.invoke(app, ["--db", db, "qa", "--format", "json"], terminal_width=200)
    assert qa.exit_code == 0 and "None" not in json.dumps(json.loads(qa.stdout)["references"])


def test_run_on_a_night_of_two_targets_aligns_and_stacks_each_on_its_own(tmp_path, copy_night):
    """Two fields in one folder: one alignment run per target, each frame's shift right against its
    own target's reference, and stacks per target and band (never a median of two fields)."""
    import numpy as np
    from astropy.io import fits

    night = tmp_path / "night"
    quiet = dict(size=256, n_frames=6, bands=("V",), n_groups=1, cloud_fraction=0, trail_fraction=0,
                 defocus_fraction=0)
    truths = {"FIELD-A": copy_night(night, seed=31, object_name="FIELD-A", first_number=1001, **quiet),
              "FIELD-B": copy_night(night, seed=32, object_name="FIELD-B", first_number=2001, **quiet)}
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(night), "--out", str(out)], terminal_width=200,
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "(target FIELD-A)" in result.output and "(target FIELD-B)" in result.output
    assert "night summary by target and band" in result.output
    assert re.search(r"pointing groups? of target FIELD-[AB]", result.output), result.output

    db = str(out / "obsdb.sqlite")
    aligned = runner.invoke(app, ["--db", db, "align", "--format", "json"])
    assert aligned.exit_code == 0, aligned.output
    runs = {run["target"]: run for run in json.loads(aligned.stdout)["runs"]}
    assert set(runs) == set(truths)
    for target, run in runs.items():
        truth = truths[target]
        reference = int(run["reference"])
        assert reference in {f["number"] for f in truth.frames}, (target, reference)
        assert {f["number"] for f in run["frames"]} == {f["number"] for f in truth.frames}
        errors = [np.hypot(f["dx"] - truth.shift(f["number"], reference=reference)[0],
                           f["dy"] - truth.shift(f["number"], reference=reference)[1]) for f in run["frames"]]
        assert all(f["ok"] for f in run["frames"]) and max(errors) < 0.05, (target, errors)

    for target, truth in truths.items():
        with fits.open(out / "aligned" / target / "stack_V.fits") as stack:
            assert stack[0].header["OBJECT"] == target
            assert stack[0].header["NCOMBINE"] == len(truth.frames)
    assert not (out / "aligned" / "stack_V.fits").exists()
    page = (out / "report" / "index.html").read_text()
    assert "FIELD-A, band V" in page and "FIELD-B, band V" in page

    # Grouping asked for another target: only that field's frames are grouped, against its own reference.
    grouped = runner.invoke(app, ["--db", db, "group", "auto", "--target", "FIELD-B",
                                  "--reference", str(runs["FIELD-B"]["reference"])], terminal_width=200)
    assert grouped.exit_code == 0, grouped.output
    assert "(target FIELD-B)" in grouped.output and "ungrouped" not in grouped.output
    members = [m for g in json.loads(runner.invoke(app, ["--db", db, "groups", "--format", "json"]).stdout)
               if g["source"] == "auto" for m in g["members"]]
    assert sorted(members) == sorted(f["number"] for f in truths["FIELD-B"].frames)
    # By default, the reference's own field.
    grouped = runner.invoke(app, ["--db", db, "group", "auto", "--reference", str(runs["FIELD-A"]["reference"])],
                            terminal_width=200)
    assert "(target FIELD-A)" in grouped.output and "ungrouped" not in grouped.output, grouped.output


def test_band_table_leaves_the_reference_out_of_the_fit_rms():
    from obsdb.pipeline.align import AlignReport, FrameResult
    from obsdb.pipeline.run import band_table

    run = AlignReport(1, "auto", 1, results=[
        FrameResult(1, True, 0.0, 0.0, method="reference", residual_rms=0.0, frame_id=1),
        FrameResult(2, True, 1.5, -2.0, method="stars", residual_rms=0.02, frame_id=2),
        FrameResult(3, True, 3.0, 1.0, method="stars", residual_rms=0.04, frame_id=3)])
    records = [{"id": i, "band": "V", "object": "M1", "status": "accepted", "tags": []} for i in (1, 2, 3)]
    (row,) = band_table(records, [run], stacks=[])
    assert row["aligned"] == 3 and row["median_rms"] == pytest.approx(0.03)
    only_reference = AlignReport(2, "auto", 1, results=run.results[:1])
    assert band_table(records[:1], [only_reference], stacks=[])[0]["median_rms"] is None


def test_run_follows_the_config_and_says_when_numbers_clash(tmp_path, copy_night):
    """obsdb.toml's [ingest] and [qa] apply to `obsdb run` as to ingest and qa; clashing frame
    numbers are reported with a pattern that would tell the files apart."""
    night = tmp_path / "night"
    truth = copy_night(night, seed=7, size=256, n_frames=6, bands=("V",), n_groups=1, cloud_fraction=0,
                       defocus_fraction=0, trail_fraction=0.34)
    for frame in truth.frames:  # Seestar-like names: the last digits are the crop size
        (night / frame["file"]).rename(night / f"m1_set1_{frame['number']}_crop512.fits")
    clash = runner.invoke(app, ["run", str(night), "--out", str(tmp_path / "a")], terminal_width=300)
    assert clash.exit_code == 0, clash.output
    assert "frame number 512 is shared by 6 files; set [ingest] number_pattern = 'set1_(\\d+)'" in clash.output
    assert re.search(r"aligned to m1_set1_\d+_crop512\.fits \(number 512 is shared\)", clash.output), clash.output
    assert "trail" in clash.output  # the default trail rule finds the trailed frames

    config = tmp_path / "obsdb.toml"
    config.write_text("[ingest]\nnumber_pattern = 'set1_(\\d+)'\n[qa]\ntrail_elongation = 50\n")
    fixed = runner.invoke(app, ["--config", str(config), "run", str(night), "--out", str(tmp_path / "b")],
                          terminal_width=300)
    assert fixed.exit_code == 0, fixed.output
    assert "is shared by" not in fixed.output and "trail" not in fixed.output
    records = json.loads(runner.invoke(app, ["--db", str(tmp_path / "b" / "obsdb.sqlite"), "frames",
                                             "--format", "json"]).stdout)
    assert sorted(r["number"] for r in records) == sorted(f["number"] for f in truth.frames)


def test_run_without_render_and_report_catalogues_and_aligns_only(tmp_path, copy_night):
    night = tmp_path / "night"
    copy_night(night, seed=6, size=256, n_frames=6, bands=("V",), n_groups=1,
               cloud_fraction=0, trail_fraction=0, defocus_fraction=0)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(night), "--out", str(out), "--no-render", "--no-report"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["obsdb.sqlite"]
    records = json.loads(runner.invoke(app, ["--db", str(out / "obsdb.sqlite"), "frames",
                                             "--format", "json"]).stdout)
    assert len(records) == 6 and sum(r["shift"] is not None for r in records) >= 5


# -- a night that gives no stack, a partial night, and which catalog `run` writes ------------------

def _starless(night: Path, truth, frames=None) -> None:
    """Replace the pixels of ``frames`` (default all) by a flat sky with noise: no star for QA to find."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(4)
    for frame in frames if frames is not None else truth.frames:
        with fits.open(night / frame["file"], mode="update") as hdul:
            hdul[0].data = (1000 + rng.normal(0, 10, hdul[0].data.shape)).astype(hdul[0].data.dtype)


QUIET = dict(size=256, n_groups=1, cloud_fraction=0, trail_fraction=0, defocus_fraction=0)


def test_run_on_a_night_qa_rejects_entirely_reports_every_step_and_why(tmp_path, copy_night):
    """QA accepts nothing: every step still reports, the report says per band why nothing was stacked,
    the exit code is NO_STACK_EXIT and the advice names the run's own catalog, not `obsdb qa`."""
    from obsdb.pipeline.run import NO_STACK_EXIT

    night, out = tmp_path / "night", tmp_path / "out"
    truth = copy_night(night, seed=41, n_frames=6, bands=("V",), **QUIET)
    _starless(night, truth)
    result = runner.invoke(app, ["run", str(night), "--out", str(out)], terminal_width=300)
    assert result.exit_code == NO_STACK_EXIT == 3, result.output
    db = out / "obsdb.sqlite"
    lines = result.output.splitlines()
    assert f"catalog: {db} (new)" in lines, result.output
    assert "ingest: 6 files (6 new, 0 unreadable)" in result.output
    qa = next(line for line in lines if line.startswith("qa: "))
    assert re.search(r"0 of 6 light frames accepted, 6 rejected \([a-z-]+ 6\)", qa), qa
    assert "align: nothing aligned: no accepted frames to align" in lines
    assert "render: nothing to render: no frame was aligned" in lines
    assert f"report: {out / 'report' / 'index.html'}" in lines
    why = re.search(r"V: 0 of 6 frames accepted \([a-z-]+ 6\): nothing to align or stack", result.output)
    assert why, result.output
    # Advice true for `run`: its catalog by name, no `--status` (run has none), no "run `obsdb qa` first".
    assert f"obsdb --db {db} rejected" in result.output
    assert "--status" not in result.output and "obsdb qa" not in result.output
    assert "no accepted frames to align; run" not in result.output
    page = (out / "report" / "index.html").read_text()
    assert "Why nothing was stacked" in page and why.group(0) in page
    assert "OBSDB_DB from the environment is not used" in page
    assert not (out / "aligned").exists() or not list((out / "aligned").glob("stack_*.fits"))


def test_run_advice_to_accept_by_hand_gives_a_stack(tmp_path, copy_night):
    """Following the printed advice (accept by hand, run again) stacks the accepted frames."""
    import shlex

    night, out = tmp_path / "night", tmp_path / "out"
    truth = copy_night(night, seed=42, n_frames=6, bands=("V",), **QUIET)
    first = runner.invoke(app, ["run", str(night), "--out", str(out), "--min-stars", "100000"], terminal_width=300)
    assert first.exit_code == 3, first.output
    db = str(out / "obsdb.sqlite")
    advice = re.search(r"\(obsdb (--db \S+ tag \S+ accept) --reason WHY;.*then run `(.+)` again", first.output)
    assert advice, first.output
    tag = shlex.split(advice.group(1))
    assert tag[1] == db
    numbers = [str(f["number"]) for f in truth.frames[:3]]
    assert tag[3] in numbers  # the example names a frame of the band that gave no stack
    accepted = runner.invoke(app, [*tag[:3], ",".join(numbers), "accept", "--reason", "stack anyway"])
    assert accepted.exit_code == 0, accepted.output
    rerun = shlex.split(advice.group(2))
    assert rerun[:2] == ["obsdb", "run"] and "--min-stars" in rerun  # the same command, options included
    again = runner.invoke(app, rerun[1:], terminal_width=300)
    assert again.exit_code == 0, again.output
    assert "(existing, 6 frames)" in again.output and "nothing was stacked" not in again.output
    from astropy.io import fits

    with fits.open(out / "aligned" / "stack_V.fits") as stack:
        assert stack[0].header["NCOMBINE"] == 3


def test_run_on_a_partial_night_stacks_what_it_can_and_says_which_band_not(tmp_path, copy_night):
    """One band without an accepted frame: the other is stacked, exit 0, and the run and the report say
    which band gave no stack and why."""
    night, out = tmp_path / "night", tmp_path / "out"
    truth = copy_night(night, seed=43, n_frames=8, bands=("V", "R"), **QUIET)
    red = [f for f in truth.frames if f["band"] == "R"]
    assert red and len(red) < len(truth.frames)
    _starless(night, truth, red)
    result = runner.invoke(app, ["run", str(night), "--out", str(out)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert (out / "aligned" / "stack_V.fits").exists() and not (out / "aligned" / "stack_R.fits").exists()
    why = re.search(rf"R: 0 of {len(red)} frames? accepted \([a-z-]+ {len(red)}\): nothing to align or stack",
                    result.output)
    assert why and "not stacked:" in result.output, result.output
    assert "nothing was stacked" not in result.output
    page = (out / "report" / "index.html").read_text()
    assert "Bands not stacked" in page and why.group(0) in page and "Why nothing was stacked" not in page


def _catalog_facts(url: str) -> tuple[int, int]:
    """(frames, events) of a catalog."""
    from obsdb.api import Catalog

    catalog = Catalog.open(url)
    try:
        return sum(n["frames"] for n in catalog.nights()), len(catalog.log(limit=10_000))
    finally:
        catalog.close()


def test_run_ignores_an_exported_obsdb_db_and_says_so(tmp_path, catalog_url, copy_night):
    """OBSDB_DB left exported from an earlier exploration does not receive the new night: `run` writes
    OUT/obsdb.sqlite, says so first, and one line says OBSDB_DB was ignored and how to use it on purpose."""
    import hashlib

    old, new = tmp_path / "old", tmp_path / "new"
    copy_night(old, seed=44, n_frames=6, bands=("V",), **QUIET)
    copy_night(new, seed=45, n_frames=6, bands=("V",), object_name="OTHER", first_number=2001, **QUIET)
    for command in (["init"], ["ingest", str(old)], ["qa"]):
        assert runner.invoke(app, ["--db", catalog_url, *command]).exit_code == 0
    before = _catalog_facts(catalog_url)
    path = Path(catalog_url[len("sqlite:///"):]) if catalog_url.startswith("sqlite:///") else None
    if path is not None:
        stamp = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)

    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(new), "--out", str(out)], env={"OBSDB_DB": catalog_url},
                           terminal_width=300)
    assert result.exit_code == 0, result.output
    assert f"OBSDB_DB={catalog_url} is ignored" in result.output
    assert 'obsdb --db "$OBSDB_DB" run' in result.output
    assert f"catalog: {out / 'obsdb.sqlite'} (new)" in result.output.splitlines()
    assert _catalog_facts(catalog_url) == before
    if path is not None:
        assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == stamp
    assert _catalog_facts(f"sqlite:///{out / 'obsdb.sqlite'}")[0] == 6

    # OBSDB_DB naming the default catalog itself: nothing to say.
    again = runner.invoke(app, ["run", str(new), "--out", str(out)], env={"OBSDB_DB": str(out / "obsdb.sqlite")})
    assert again.exit_code == 0 and "is ignored" not in again.output and "(existing, 6 frames)" in again.output


def test_run_writes_the_catalog_given_with_db(tmp_path, catalog_url, copy_night):
    """`obsdb --db X run`: X is written (and named first), not OUT/obsdb.sqlite, even with OBSDB_DB set."""
    night, out = tmp_path / "night", tmp_path / "out"
    copy_night(night, seed=46, n_frames=6, bands=("V",), **QUIET)
    decoy = tmp_path / "decoy.sqlite"
    result = runner.invoke(app, ["--db", catalog_url, "run", str(night), "--out", str(out)],
                           env={"OBSDB_DB": str(decoy)}, terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "is ignored" not in result.output and not decoy.exists()
    first = result.output.splitlines()[0] if not result.output.startswith("»") else next(
        line for line in result.output.splitlines() if line.startswith("catalog: "))
    assert first.startswith("catalog: ") and first.endswith(("(new)", "(existing, 0 frames)")), first
    assert not (out / "obsdb.sqlite").exists()
    assert _catalog_facts(catalog_url)[0] == 6
    page = (out / "report" / "index.html").read_text()
    assert "Why nothing was stacked" not in page and "Bands not stacked" not in page


def test_run_on_the_real_focus_sequence_reports_every_step(tmp_path, real_data):
    """The real focus sequence (17 frames of one star): whatever QA makes of it, every step reports, a
    report is written, and a run that stacks nothing exits 3 with the reason per band in the report."""
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(real_data / "focus_seq"), "--out", str(out)], terminal_width=300)
    assert result.exit_code in (0, 3), result.output
    for step in ("catalog:", "ingest: 17 files", "qa: 17 frames assessed", "align:", "group:", "render:",
                 "report:"):
        assert step in result.output, (step, result.output)
    page = (out / "report" / "index.html").read_text()
    if result.exit_code == 3:
        assert "Why nothing was stacked" in page and "nothing was stacked:" in result.output
        assert f"obsdb --db {out / 'obsdb.sqlite'} rejected" in result.output
    else:
        assert list((out / "aligned").glob("stack_*.fits"))


def test_not_stacked_names_the_cause_of_each_band():
    """The per-band reasons: QA accepted nothing, registration failed, align or render found nothing;
    stacked bands are not listed; the exit code follows (3: no stack; with --no-render, nothing aligned)."""
    from obsdb.pipeline.run import NO_STACK_EXIT, RunSummary, not_stacked

    def row(band, frames, accepted, aligned, rejected_by=None, stack=None, reason=None):
        return {"band": band, "target": None, "frames": frames, "accepted": accepted, "aligned": aligned,
                "rejected_by": rejected_by or {}, "stack": stack, "unregistered_reason": reason}

    rows = [row("B", 5, 5, 5, stack="stack_B.fits"),
            row("V", 17, 0, 0, {"focus": 12, "few-stars": 5}),
            row("R", 4, 0, 0, {"unregistered": 3, "cloud": 1}, reason="too few stars (1 in frame, 1 in reference)"),
            row("I", 3, 3, 0),
            row("Ha", 2, 2, 2)]
    lines = not_stacked(rows, ["render: nothing to render: no selected frame has a shift"])
    assert lines == [
        ("qa", "V: 0 of 17 frames accepted (focus 12, few-stars 5): nothing to align or stack"),
        ("align", "R: 3 of 4 frames could not be registered onto the reference, e.g. too few stars (1 in frame, "
                  "1 in reference) (rejected otherwise: cloud 1): nothing to stack"),
        ("align", "I: 3 of 3 frames accepted, none aligned (registration failed for every one): nothing to stack"),
        ("render", "Ha: 2 of 2 frames aligned, none stacked (render: nothing to render: no selected frame has "
                   "a shift)")]
    assert not_stacked(rows[1:2], ["align: no frame with star metrics to choose a reference from"])[0][0] == "qa"
    stopped = not_stacked([row("I", 3, 3, 0)], ["align: no frame with star metrics to choose a reference from"])
    assert stopped == [("align", "I: 3 of 3 frames accepted, none aligned (align: no frame with star metrics to "
                                 "choose a reference from): nothing to stack")]

    table = [{"stack": None, "aligned": 0}]
    assert RunSummary(bands=table).exit_code == NO_STACK_EXIT
    assert RunSummary(bands=[{"stack": "s.fits", "aligned": 3}], failed_files=[("a", "b")]).exit_code == 1
    assert RunSummary(bands=[{"stack": None, "aligned": 3}], rendered=False).exit_code == 0
    assert RunSummary(bands=table, rendered=False).exit_code == NO_STACK_EXIT


def test_demo_writes_its_own_catalog_whatever_obsdb_db_says(tmp_path):
    """`obsdb demo` follows run's rule: OUT/obsdb.sqlite, OBSDB_DB from the environment ignored aloud."""
    other = tmp_path / "other.sqlite"
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--frames", "8", "--size", "192"],
                           env={"OBSDB_DB": str(other)}, terminal_width=300)
    assert result.exit_code == 0, result.output
    assert f"OBSDB_DB={other} is ignored" in result.output and not other.exists()
    assert f"catalog: {out / 'obsdb.sqlite'} (new)" in result.output.splitlines()
    assert f"try: obsdb --db {out / 'obsdb.sqlite'} rejected" in result.output
    assert (out / "report" / "index.html").exists()


def test_run_says_which_target_gave_no_stack(tmp_path, copy_night):
    """Two targets, one of them without a star: the other is stacked, and the empty one is named."""
    night, out = tmp_path / "night", tmp_path / "out"
    quiet = dict(QUIET, n_frames=5, bands=("V",))
    copy_night(night, seed=47, object_name="FIELD-A", first_number=1001, **quiet)
    empty = copy_night(night, seed=48, object_name="FIELD-B", first_number=2001, **quiet)
    _starless(night, empty)
    result = runner.invoke(app, ["run", str(night), "--out", str(out)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert re.search(r"FIELD-B V: 0 of 5 frames accepted \([a-z-]+ 5\): nothing to align or stack", result.output)
    assert "FIELD-A V" not in result.output.split("not stacked:")[1], result.output
