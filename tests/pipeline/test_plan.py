"""Plan files: the notebook's decisions applied to a renumbered night, and a staged run from a plan."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from obsdb.catalog.decisions import get_decision, list_groups
from obsdb.catalog.models import AlignmentRun, Frame, ShiftStep, Tag
from obsdb.catalog.queries import frame_records
from obsdb.config import IngestConfig
from obsdb.errors import ObsdbError
from obsdb.pipeline.plan import load_plan
from obsdb.simulate import FrameSpec

PLAN = Path(__file__).resolve().parents[2] / "examples" / "ngc3293-plan.toml"

# The notebook's own selection (cell In [43]): the plan must reproduce it exactly.
GOOD_IMAGES = {
    "B": list(range(3852, 3862)) + [3885, 3886, 3889, 3890, 3942, 3943, 3946, 3947, 3950, 3951],
    "V": list(range(3862, 3872)) + [3922, 3923] + list(range(3925, 3928)) + [4052, 4062, 4064, 4098, 4099],
    "R": list(range(3872, 3882)) + [3933, 3937, 4056, 4057, 4094, 4095],
}
NIGHT = {
    "B": list(range(3816, 3826)) + list(range(3852, 3862)) + list(range(3882, 3892)) + list(range(3942, 3952)),
    "V": list(range(3862, 3872)) + list(range(3920, 3930)) + [4052, 4053, 4058, 4059, 4062, 4063, 4064, 4065,
                                                              4098, 4099],
    "R": list(range(3872, 3882)) + [3930, 3933, 3937, 4056, 4057, 4060, 4094, 4095],
}


@pytest.fixture(scope="module")
def notebook_night(tmp_path_factory, simulated_nights):
    """The notebook's frame numbers and bands, simulated small (the plan's boxes need not fit)."""
    from obsdb.catalog.db import database_url, upgrade
    from obsdb.api import Catalog

    folder = tmp_path_factory.mktemp("ngc3293")
    specs = [FrameSpec(number=n, band=band) for band, numbers in NIGHT.items() for n in numbers]
    simulated_nights.copy(folder, sorted(specs, key=lambda s: s.number), seed=1, size=96, n_stars=20,
                          object_name="proc_NGC_3293")
    db = str(folder / "obsdb.sqlite")
    upgrade(database_url(db))
    catalog = Catalog.open(db)
    catalog.ingest([folder], config=IngestConfig(measure_quality=False))
    yield catalog
    catalog.close()


def test_notebook_plan_reproduces_its_selection(notebook_night):
    catalog = notebook_night
    plan = load_plan(PLAN)
    report = catalog.apply_plan(plan, user="tester")
    assert report.missing_frames == []
    with catalog.session() as session:
        records = [r.to_json() for r in frame_records(session)]
        for band, numbers in GOOD_IMAGES.items():
            accepted = sorted(r["number"] for r in records if r["band"] == band and r["status"] == "accepted")
            assert accepted == sorted(numbers), band
        rejected = {r["number"]: r["reasons"] for r in records if r["status"] == "rejected"}
        assert "tracking-big: V: big tracking errors in ds9" in rejected[3920]
        assert any(reason.startswith("focus-slight") for reason in rejected[3816])
        assert any(reason.startswith("tracking-slight") for reason in rejected[3816])
        authors = {t.author for t in session.scalars(select(Tag).where(Tag.source == "plan"))}
        assert authors == {"Nico", "Cedric"}
        assert get_decision(session, "reference_frame").value == {"frame": 4056}
        assert get_decision(session, "reference_star").value == {"frame": 4056, "x": 681.0, "y": 409.0}
        assert get_decision(session, "fine_box").value == {"box": [902, 942, 488, 527], "method": "2dg",
                                                           "reference": 3852, "background": "frame-median"}
        groups = {g["name"]: g for g in list_groups(session)}
    assert len(groups) == 11
    assert groups["group0"]["members"] == list(range(3852, 3862))
    assert groups["group0"]["box"] == [437, 485, 1171, 1204]
    assert groups["group6"]["reference"] == 4056 and groups["group6"]["ref_star"] == [681.0, 409.0]
    assert groups["group10"]["ref_star"] == [634.0, 466.0]
    # The notebook's stage-2 offsets follow from the positions: (681 - 631, 409 - 448) = (50, -39).
    assert (681 - groups["group0"]["ref_star"][0], 409 - groups["group0"]["ref_star"][1]) == (50, -39)

    again = catalog.apply_plan(plan, user="tester")
    assert again.tags_added == 0 and again.decisions == []


@pytest.mark.parametrize("text, message", [
    ("[plan]\nreference = 'x'\n", "plan.reference"),
    ("[[groups]]\nname = 'a'\nframes = '1'\nbox = '5:1,0:3'\n", "groups[0].box"),
    ("[fine]\nmethod = '2dg'\n", "fine"),
    ("[[tags]]\nframes = '1'\ntag = 'great'\n", "needs reason"),
    ("[surprise]\n", "unknown section"),
    ("not toml = = 3", "not valid TOML"),
])
def test_bad_plans_are_explained(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ObsdbError, match=re.escape(message)) as info:
        load_plan(path)
    assert str(path) in str(info.value)


def test_staged_run_from_a_plan_matches_truth(tmp_path, copy_night):
    """A plan written as a person would (boxes around stars, reference-star positions by group),
    applied and run stage by stage; the sub-pixel total matches the truth."""
    from obsdb.catalog.db import database_url, upgrade
    from obsdb.api import Catalog

    size = 384
    specs = ([FrameSpec(number=n, band="V", group=0, offset=(0.3 * (n - 201), -0.2 * (n - 201))) for n in (201, 202, 203)]
             + [FrameSpec(number=n, band="V", group=1, offset=(41.6 + 0.4 * (n - 301), -57.3 + 0.3 * (n - 301)))
                for n in (301, 302, 303)])
    truth = copy_night(tmp_path, specs, seed=9, size=size)
    x, y, flux = truth.sky_positions_in_frame(201, margin=80)
    bright = np.argsort(flux)[::-1]
    # A bright star with no bright neighbour within 12 px, unsaturated in the simulation.
    for k in bright[3:]:
        d = np.hypot(x - x[k], y - y[k])
        if np.sort(d)[1] > 12:
            star = (float(x[k]), float(y[k]))
            break
    group1_star = truth.map_to_reference(201, *star, reference=301)  # the star's place in group 1

    def box(cx, cy, h=9):
        return f"{int(cx) - h}:{int(cx) + h + 1},{int(cy) - h}:{int(cy) + h + 1}"

    plan_text = f"""
[plan]
author = "tester"
reference = 201
[reference_star]
x = {round(star[0])}
y = {round(star[1])}
[fine]
box = "{box(*star, h=7)}"
[[groups]]
name = "near"
frames = "201-203"
box = "{box(*star)}"
reference_star = [{round(star[0])}, {round(star[1])}]
[[groups]]
name = "far"
frames = "301-303"
box = "{box(float(group1_star[0]), float(group1_star[1]))}"
reference_star = [{round(float(group1_star[0]))}, {round(float(group1_star[1]))}]
"""
    (tmp_path / "plan.toml").write_text(plan_text)
    db = str(tmp_path / "c.sqlite")
    upgrade(database_url(db))
    catalog = Catalog.open(db)
    try:
        catalog.ingest([tmp_path], config=IngestConfig(measure_quality=False))
        catalog.apply_plan(load_plan(tmp_path / "plan.toml"), user="tester")
        report = catalog.align_staged()
        assert not report.failures, [r.reason for r in report.failures]
        errors = np.array([(r.dx - truth.shift(r.number, reference=201)[0],
                            r.dy - truth.shift(r.number, reference=201)[1]) for r in report.results])
        assert np.sqrt((errors ** 2).mean()) < 0.05
        # Stage 2 is the by-eye offset (whole pixels here); stage 3 absorbs its rounding.
        with catalog.session() as session:
            steps = session.scalars(select(ShiftStep).where(ShiftStep.run_id == report.run_id)).all()
        stage2 = [s for s in steps if s.stage == 2 and s.parameters["group"] == "far"]
        assert all(float(s.dx).is_integer() for s in stage2)
        stage3 = [abs(s.dx) for s in steps if s.stage == 3 and s.parameters["box"]]
        assert max(stage3) < 1.0
        # The fine stage may refer to another frame (the notebook used its first frame): every
        # stage-3 step then names it, and the totals still agree with the truth.
        (tmp_path / "plan.toml").write_text(plan_text.replace("[fine]\n", "[fine]\nreference = 202\n"))
        catalog.apply_plan(load_plan(tmp_path / "plan.toml"), user="tester")
        other = catalog.align_staged()
        with catalog.session() as session:
            fine_refs = set(session.scalars(select(ShiftStep.reference_frame_id).where(
                ShiftStep.run_id == other.run_id, ShiftStep.stage == 3)))
            frame_202 = session.scalars(select(Frame.id).where(Frame.number == 202)).one()
        assert fine_refs == {frame_202}
        oerr = np.array([r.dx - truth.shift(r.number, reference=201)[0] for r in other.results])
        assert np.sqrt((oerr ** 2).mean()) < 0.05
        # The notebook's sky (the whole frame's median) is recorded with the run and lands close by.
        notebook_sky = catalog.align_staged(background="frame-median")
        with catalog.session() as session:
            run = session.get(AlignmentRun, notebook_sky.run_id)
            assert run.parameters["centroid_background"] == "frame-median"
        nerr = np.array([r.dx - truth.shift(r.number, reference=201)[0] for r in notebook_sky.results])
        assert np.sqrt((nerr ** 2).mean()) < 0.2
        with pytest.raises(ObsdbError, match="centroid background"):
            catalog.align_staged(background="sky")
        integer = catalog.align_staged(integer=True)
        ierr = np.array([(r.dx - truth.shift(r.number, reference=201)[0]) for r in integer.results])
        assert np.all(np.abs(ierr) <= 1.5)
    finally:
        catalog.close()


def test_cli_apply_groups_and_group_set(notebook_night, tmp_path):
    from typer.testing import CliRunner

    from obsdb.cli.app import app

    runner = CliRunner()
    db = notebook_night.url.replace("sqlite:///", "")
    applied = runner.invoke(app, ["--db", db, "apply", str(PLAN), "--author", "tester"])
    assert applied.exit_code == 0, applied.output
    assert "applied" in applied.output
    groups = {g["name"]: g for g in json.loads(
        runner.invoke(app, ["--db", db, "groups", "--format", "json"]).stdout)}
    assert groups["group8"]["members"] == [3922, 3923, 3925, 3926, 4098, 4099]
    assert groups["group8"]["box"] == [1292, 1354, 998, 1059] and groups["group8"]["source"] == "plan"
    moved = runner.invoke(app, ["--db", db, "group", "set", "mine", "3922,3923", "--box", "10:50,20:60",
                                "--ref-star", "30.5,40", "--author", "nico"])
    assert moved.exit_code == 0, moved.output
    groups = {g["name"]: g for g in json.loads(
        runner.invoke(app, ["--db", db, "groups", "--format", "json"]).stdout)}
    assert groups["mine"]["members"] == [3922, 3923] and groups["mine"]["author"] == "nico"
    assert 3922 not in groups["group8"]["members"]  # a frame is in one group at a time
    assert groups["mine"]["ref_star"] == [30.5, 40.0]
    for bad, message in ((["--box", "50:10,20:60"], "needs 0 <= X0 < X1"), (["--box", "1,2"], "expected X0:X1"),
                         (["--ref-star", "3"], "expected X,Y")):
        result = runner.invoke(app, ["--db", db, "group", "set", "bad", "3922", *bad])
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    missing = runner.invoke(app, ["--db", db, "apply", str(tmp_path / "none.toml")])
    assert missing.exit_code == 1 and "no such plan file" in missing.output
    # A box beyond the frames, and another group's reference taken away: errors, nothing changed.
    beyond = runner.invoke(app, ["--db", db, "group", "set", "mine", "3922,3923", "--box", "0:10,5000:5100"])
    assert beyond.exit_code == 1 and "reaches beyond the frames" in beyond.output, beyond.output
    owner = next(g for g in groups.values() if g.get("reference") is not None and g["name"] != "mine")
    taken = runner.invoke(app, ["--db", db, "group", "set", "thief", str(owner["reference"])])
    assert taken.exit_code == 1 and f"is the reference of group {owner['name']!r}" in taken.output, taken.output
    after = {g["name"]: g for g in json.loads(runner.invoke(app, ["--db", db, "groups", "--format", "json"]).stdout)}
    assert after == groups
    # untag of a tag no frame has: an error, not a silent success.
    none = runner.invoke(app, ["--db", db, "untag", "3922", "no-such-tag", "--reason", "tidy"])
    assert none.exit_code == 1 and "no active 'no-such-tag' tag on 3922: nothing retracted" in none.output


@pytest.mark.parametrize("text, message", [
    ("[plan]\nrefrence = 1002\n", "plan.refrence: unknown key (did you mean 'reference'?)"),
    ("[fine]\nbox = \"0:10,0:10\"\nmethd = \"com\"\n", "fine.methd: unknown key (did you mean 'method'?)"),
    ("[[groups]]\nname = \"A\"\nframes = \"1-3\"\nbox = \"0:inf,0:10\"\n", "groups[0].box"),
    ("[[groups]]\nname = [\"A\"]\nframes = \"1-3\"\n", "groups[0].name: must be text in quotes, got a list"),
    ("[[groups]]\nname = \"A\"\nframes = \"1-3\"\nband = [\"V\"]\n", "groups[0].band: must be text"),
    ("reference_star = \"681,409\"\n", "reference_star: must be a table"),
    ("[reference_star]\nx = inf\ny = 3\n", "reference_star.x: inf is not a pixel position"),
    ("[plan]\nreference = 99999999999999999999\n", "plan.reference: frame number 99999999999999999999 is out"),
    ("[plan]\nreference = 9999999999\n", "plan.reference: frame number 9999999999 is out of range"),
    ("[plan]\nreference = true\n", "plan.reference: must be a frame number, got true"),
    ("[[tags]]\nframes = \"1\"\ntag = \"great\"\nreason = \"ok\"\nauthr = \"me\"\n",
     "tags[0].authr: unknown key (did you mean 'author'?)"),
    ("[qa]\ncloud_background_ration = 3\n", "qa: unknown QA threshold"),
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", "not valid TOML"),
])
def test_a_bad_plan_is_one_sentence_naming_the_key(tmp_path, text, message):
    path = tmp_path / "plan.toml"
    path.write_text(text)
    with pytest.raises(ObsdbError) as caught:
        load_plan(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_plan_that_is_a_fifo_a_folder_or_binary_is_refused_without_reading_it(tmp_path):
    import os

    fifo = tmp_path / "plan.toml"
    os.mkfifo(fifo)
    with pytest.raises(ObsdbError, match="not a regular file"):
        load_plan(fifo)                           # would block forever if opened
    with pytest.raises(ObsdbError, match="is a folder"):
        load_plan(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00 junk")
    with pytest.raises(ObsdbError, match="not a text file"):
        load_plan(binary)
