"""The catalog as an archive: nights, exact frame identity, per-night QA, stored stars, the front door."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from obsdb import Catalog
from obsdb.cli.app import app

runner = CliRunner()
NIGHT1, NIGHT2 = "2026-03-14", "2026-04-02"


def invoke(db, *args):
    return runner.invoke(app, ["--db", str(db), *args], terminal_width=300)


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory, simulated_nights):
    """Two simulated nights of the same numbers and bands, with different sky and seeing."""
    root = tmp_path_factory.mktemp("archive")
    simulated_nights.copy(root / "night1", seed=3, size=256, n_frames=12, bands=("B", "V", "R"), n_groups=2)
    simulated_nights.copy(root / "night2", seed=11, size=256, n_frames=12, bands=("B", "V", "R"), n_groups=2,
                          night_start="2026-04-02T21:30:00")
    return root


def _tags(db, night):
    records = json.loads(invoke(db, "frames", "--night", night, "--format", "json").stdout)
    return [(r["path"], r["status"], r["tags"], r["metrics"]["transparency"]) for r in records]


def test_second_night_leaves_the_first_nights_verdicts_byte_identical(two_nights, tmp_path):
    db = tmp_path / "c.sqlite"
    assert invoke(db, "init").exit_code == 0
    assert invoke(db, "ingest", str(two_nights / "night1")).exit_code == 0
    assert invoke(db, "qa").exit_code == 0
    before = _tags(db, NIGHT1)
    assert any(tags for _, _, tags, _ in before), "night 1 must have some automatic tags to keep"
    ingest = invoke(db, "ingest", str(two_nights / "night2"))
    assert ingest.exit_code == 0, ingest.output
    qa = invoke(db, "qa", "--night", NIGHT2)
    assert qa.exit_code == 0, qa.output
    assert _tags(db, NIGHT1) == before
    # QA over every night judges each on its own: night 1 is still exactly as it was.
    assert invoke(db, "qa").exit_code == 0
    assert _tags(db, NIGHT1) == before
    nights = json.loads(invoke(db, "nights", "--format", "json").stdout)
    assert [n["night"] for n in nights] == [NIGHT1, NIGHT2]
    assert all(n["frames"] == 12 and n["bands"] == ["B", "R", "V"] for n in nights)
    assert sum(n["accepted"] + n["rejected"] + n["pending"] for n in nights) == 24


def test_a_number_two_nights_share_is_refused_and_a_qualified_one_tags_one_frame(two_nights, tmp_path):
    db = tmp_path / "c.sqlite"
    invoke(db, "init")
    invoke(db, "ingest", str(two_nights / "night1"), str(two_nights / "night2"))
    refused = invoke(db, "tag", "1005", "great", "--reason", "fine")
    assert refused.exit_code == 1
    assert f"{NIGHT1}:1005" in refused.output and f"{NIGHT2}:1005" in refused.output
    assert "tagged" not in refused.output
    one = invoke(db, "tag", f"{NIGHT1}:1005", "great", "--reason", "fine")
    assert one.exit_code == 0 and "tagged 1 frame " in one.output, one.output
    narrowed = invoke(db, "tag", "1006", "okay", "--reason", "fine", "--night", NIGHT2)
    assert narrowed.exit_code == 0 and "tagged 1 frame " in narrowed.output, narrowed.output
    path = next((two_nights / "night2").glob("*_1007.fits"))
    by_path = invoke(db, "tag", str(path), "reject", "--reason", "satellite")
    assert by_path.exit_code == 0 and "tagged 1 frame " in by_path.output, by_path.output
    rejected = json.loads(invoke(db, "rejected", "--night", "all", "--format", "json").stdout)
    assert [r["path"] for r in rejected if any(t["name"] == "reject" for t in r["tags"])] == [str(path)]
    ranged = invoke(db, "frames", "--format", "json", "--where", f"night == {NIGHT2} and number <= 1003")
    assert [r["number"] for r in json.loads(ranged.stdout)] == [1001, 1002, 1003]
    assert invoke(db, "show", f"{NIGHT2}:1001-1003", "--format", "json").exit_code == 0
    mistyped = invoke(db, "frames", "--night", "2026-13-01")
    assert mistyped.exit_code == 1 and "no night '2026-13-01'" in mistyped.output
    # A date compared without quotes means the date (not 2026 - 3 - 14).
    dated = json.loads(invoke(db, "frames", "--format", "json", "--where", "date_obs > 2026-03-20").stdout)
    assert len(dated) == 12 and {r["night"] for r in dated} == {NIGHT2}


def test_align_on_a_stored_catalog_reads_no_pixels(two_nights, tmp_path, monkeypatch):
    import obsdb.imaging.fitsio as fitsio

    with Catalog.open(tmp_path / "c.sqlite", create=True) as cat:
        cat.ingest([two_nights / "night1"])
        cat.qa()

        def refuse(*args, **kwargs):
            raise AssertionError("align read a FITS file although the stored stars matched")

        monkeypatch.setattr(fitsio, "read_fits_image", refuse)
        reports = cat.align()
        assert len(reports) == 1
        report = reports[0]
        assert report.frames_read == 0
        ok = [r for r in report.results if r.ok]
        assert len(ok) >= 6 and all(r.method in ("stars", "reference") for r in ok)
        moved = max(ok, key=lambda r: abs(r.dx))
        pairs = cat.matched_stars(moved.frame_id, report.run_id)
        assert len(pairs) >= 6
        import numpy as np

        assert np.median([xr - x for x, y, xr, yr in pairs]) == pytest.approx(moved.dx, abs=0.05)


def test_stored_stars_are_the_registration_stars(tmp_path, copy_night):
    """One detection at ingest gives exactly the list registration would detect itself."""
    import numpy as np

    from obsdb.imaging.fitsio import read_fits_image
    from obsdb.imaging.register import detect_registration_stars
    from obsdb.pipeline.metrics import metrics_from_image

    copy_night(tmp_path, seed=5, size=256, n_frames=2, bands=("V",), n_groups=1)
    for path in sorted(tmp_path.glob("*.fits")):
        image = read_fits_image(path, hash_mode="none")
        direct = detect_registration_stars(image.data, saturation=65535.0)
        stored = metrics_from_image(image.data, 65535.0).stars
        assert len(direct) >= 20 and len(stored) == len(direct)
        for field in ("x", "y", "flux", "peak", "a", "b", "flag"):
            assert np.array_equal(stored[field], direct[field]), field


def test_each_instrument_is_judged_on_its_own(real_data, tmp_path):
    """Over the whole mixed real folder, no frame is rejected for focus or cloud against a yardstick
    measured on another camera or in another night."""
    db = tmp_path / "c.sqlite"
    invoke(db, "init")
    invoke(db, "ingest", "--recursive", str(real_data))
    qa = invoke(db, "qa", "--format", "json")
    assert qa.exit_code == 0, qa.output
    records = json.loads(invoke(db, "frames", "--night", "all", "--format", "json").stdout)
    by_id = {r["id"]: r for r in records}
    groups = {}
    for r in records:
        if r["readable"] and r["metrics"] and r["type"] in ("light", "unknown"):
            groups.setdefault((r["night"], r["instrument"], r["band"], r["object"]), []).append(r)
    for r in records:
        for t in r["tags"]:
            if t["name"] in ("focus", "cloud"):
                group = groups[(r["night"], r["instrument"], r["band"], r["object"])]
                yardstick = (t["evidence"] or {}).get("yardstick") or {}
                if yardstick.get("kind") == "instrument-history":
                    # Too small a night is judged against the same instrument's other nights only.
                    others = [o for o in records if o["night"] in yardstick["nights"] and o["id"] != r["id"]
                              and o["metrics"] and o["type"] in ("light", "unknown")]
                    assert others and {o["instrument"] for o in others} == {r["instrument"]}, t["reason"]
                    continue
                # The yardstick came from this frame's own group: there must be another frame in it.
                assert len(group) >= 2, (r["path"], t["reason"])
    dss = next(r for r in records if "M67_DSS" in r["path"])
    assert not any(t["name"] == "focus" for t in dss["tags"]), dss["tags"]
    assert len({r["instrument"] for r in by_id.values() if r["instrument"]}) >= 5


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_notebook_section_runs_and_prints_a_table(tmp_path, monkeypatch, capsys, copy_night):
    """The README's Python example is run as it is written (in a folder of its own)."""
    text = README.read_text()
    match = re.search(r"## From Python\n.*?```python\n(.*?)```", text, re.S)
    assert match, "README has no '## From Python' section with a python block"
    monkeypatch.chdir(tmp_path)

    copy_night(tmp_path / "night", seed=3, size=256, n_frames=9, bands=("V", "R"), n_groups=1)
    exec(compile(match.group(1), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "median" in out and "fwhm" in out and "status" in out
    assert re.search(r"^\s*night\s+number", out, re.M), out

    # docs/python.md's second block, on the archive the first one made: typed records and a FrameFilter.
    second = re.findall(r"```python\n(.*?)```", (README.parent / "docs" / "python.md").read_text(), re.S)[1]
    exec(compile(second, "docs/python.md", "exec"), {})
    label, fwhm, explain = capsys.readouterr().out.split(" ", 2)
    with Catalog.open(tmp_path / "archive.sqlite") as cat:
        accepted_v = [f for f in cat.frame_dicts(band="V", status="accepted")]
    softest = max(accepted_v, key=lambda r: r["metrics"]["fwhm"])
    assert (label, float(fwhm)) == (softest["label"], round(softest["metrics"]["fwhm"], 2))
    assert explain.startswith("accepted")


def test_render_and_report_take_one_night(two_nights, tmp_path):
    from obsdb.report.snapshot import read_snapshot

    with Catalog.open(tmp_path / "c.sqlite", create=True) as cat:
        cat.ingest([two_nights / "night1", two_nights / "night2"])
        cat.qa()
        cat.align()
        with pytest.raises(Exception, match="2026-03-14:1005"):
            cat.region_facts("1005")
        rendered = cat.render(tmp_path / "out", nights=[NIGHT2], status="any")
        night2_paths = {r.path for r in cat.frames(night=NIGHT2)}
        assert rendered.frames and all(Path(path).name in {Path(p).name for p in night2_paths}
                                       for _, path in rendered.frames)
        assert len(rendered.frames) <= len(night2_paths)
        snapshot = read_snapshot(cat, [NIGHT1])
        assert {r["night"] for r in snapshot.records} == {NIGHT1}
        assert len(snapshot.runs) == 1 and set(snapshot.run_shifts) == {snapshot.runs[0]["id"]}
        assert len(read_snapshot(cat).runs) == 2


def test_summaries_count_and_take_medians_in_sql_as_python_would(two_nights, catalog_url):
    # On each backend: PostgreSQL takes its medians with percentile_cont, SQLite with row numbers.
    import statistics

    with Catalog.open(catalog_url, create=True) as cat:
        cat.ingest([two_nights / "night1", two_nights / "night2"])
        cat.qa(night=NIGHT2)
        cat.tag(f"{NIGHT1}:1003", "reject", reason="satellite")
        records = cat.frame_dicts(night="all")
        nights = {n["night"]: n for n in cat.nights()}
        for name in (NIGHT1, NIGHT2):
            mine = [r for r in records if r["night"] == name]
            fwhms = [r["metrics"]["fwhm"] for r in mine if r["metrics"] and r["metrics"]["fwhm"] is not None]
            assert nights[name]["median_fwhm"] == pytest.approx(statistics.median(fwhms), rel=1e-12)
            assert nights[name]["frames"] == len(mine)
            for state in ("accepted", "rejected", "pending"):
                assert nights[name][state] == sum(r["status"] == state for r in mine), (name, state)
        assert nights[NIGHT1]["rejected"] >= 1 and nights[NIGHT2]["pending"] == 0
        for row in cat.summary(night=NIGHT2):
            mine = [r for r in records if r["night"] == NIGHT2 and r["band"] == row["band"]
                    and r["type"] == row["type"]]
            backgrounds = [r["stats"]["background"] for r in mine if r["stats"]]
            assert row["median_background"] == pytest.approx(statistics.median(backgrounds), rel=1e-12)
            assert row["frames"] == len(mine)


def test_status_condition_agrees_with_the_status_expression_on_every_frame(two_nights, tmp_path, catalog_url):
    import shutil

    from sqlalchemy import select

    from obsdb.catalog.models import Frame, FrameMetrics
    from obsdb.catalog.status import STATUSES, status_condition, status_expression

    night = tmp_path / "night1"
    shutil.copytree(two_nights / "night1", night)
    (night / "broken_1099.fits").write_bytes(b"SIMPLE  = T" + b" " * 100)
    with Catalog.open(catalog_url, create=True) as cat:
        cat.ingest([night, two_nights / "night2"])
        cat.qa(night=NIGHT2)
        rejected = [r.label for r in cat.frames(night=NIGHT2, status="rejected")]
        cat.tag(rejected[0], "accept", reason="fine by eye")
        cat.tag(f"{NIGHT1}:1002", "great", reason="sharp")
        cat.tag(f"{NIGHT1}:1003", "reject", reason="satellite")
        cat.tag(f"{NIGHT1}:1004", "okay", reason="fine")
        cat.tag(f"{NIGHT1}:1004", "trail", reason="trailed after all")
        with cat.session() as session:
            by_case = {s: set(session.scalars(select(Frame.id).where(status_expression() == s))) for s in STATUSES}
            by_condition = {s: set(session.scalars(select(Frame.id).where(status_condition(s)))) for s in STATUSES}
            # The form for queries that already join frame_metrics (summaries, listings).
            joined = select(Frame.id).outerjoin(FrameMetrics, FrameMetrics.frame_id == Frame.id)
            by_join = {s: set(session.scalars(joined.where(
                status_expression(assessed=FrameMetrics.assessed_at.is_not(None)) == s))) for s in STATUSES}
            everything = set(session.scalars(select(Frame.id)))
    assert by_condition == by_case
    assert by_join == by_case
    assert set().union(*by_case.values()) == everything and all(by_case.values())
    assert sum(len(v) for v in by_case.values()) == len(everything)


def test_where_selects_by_the_current_registrations_confidence(two_nights, tmp_path):
    with Catalog.open(tmp_path / "c.sqlite", create=True) as cat:
        cat.ingest([two_nights / "night1"])
        cat.qa()
        report = cat.align()[0]
        registered = {r.frame_id: r for r in report.results if r.ok}
        fewest = min(r.n_matched for r in registered.values() if r.method == "stars")
        selected = cat.frames(where=f"align_matches <= {fewest}")
        assert selected and all(registered[f.id].n_matched <= fewest for f in selected)
        assert {f.id for f in cat.frames(where="align_matches > 0")} == {
            i for i, r in registered.items() if r.n_matched > 0}
        moved = max(registered.values(), key=lambda r: abs(r.dx))
        hit = cat.frames(where=f"align_dx > {moved.dx - 1e-6} and align_dx < {moved.dx + 1e-6}")
        assert [f.id for f in hit] == [moved.frame_id]
        # The listing's current shift carries the same confidence (frames --format json, show).
        shifts = {r["id"]: r["shift"] for r in cat.frame_dicts() if r["shift"]}
        assert shifts.keys() == registered.keys()
        for frame_id, r in registered.items():
            assert shifts[frame_id]["matches"] == r.n_matched and shifts[frame_id]["method"] == r.method
