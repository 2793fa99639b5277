"""The static HTML report: a page that parses, images that exist, every rejection named."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import markupsafe
import pytest

MANUAL_REASON = 'double stars <seen> in ds9 & "confirmed"'
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PageParser(HTMLParser):
    """Collects tags, image sources and the text of each section; checks nesting as it goes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.section: str | None = None
        self.text: dict[str | None, list[str]] = {}
        self.ids: set[str] = set()
        self.count: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.count[tag] = self.count.get(tag, 0) + 1
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src"))
        if tag == "section":
            self.section = attrs.get("id")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()
        if tag == "section":
            self.section = None

    def handle_data(self, data):
        self.text.setdefault(self.section, []).append(data)

    def section_text(self, name: str) -> str:
        return " ".join(self.text.get(name, []))


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


@pytest.fixture(scope="module")
def night_catalog(tmp_path_factory, simulated_nights):
    """A 15-frame night with one unreadable file, ingested, QA'd, one frame tagged by hand."""
    from obsdb.catalog.db import database_url, upgrade
    from obsdb.api import Catalog
    from obsdb.catalog.selectors import select_frames
    from obsdb.catalog.tags import add_tags

    base = tmp_path_factory.mktemp("report")
    night = base / "night"
    truth = simulated_nights.copy(night, seed=11, size=256, n_frames=15)
    (night / "broken_2001.fits").write_bytes(b"SIMPLE  = T" + b" " * 60)
    db = base / "obsdb.sqlite"
    upgrade(database_url(str(db)))
    catalog = Catalog.open(str(db))
    catalog.ingest([night])
    catalog.qa()
    manual = truth.numbers[1]
    with catalog.session() as session:
        add_tags(session, select_frames(session, str(manual)), "tracking-big", reason=MANUAL_REASON,
                 source="manual", author="tester")
    yield catalog, base, manual, db
    catalog.close()


@pytest.fixture(scope="module")
def report(night_catalog):
    from obsdb.report.build import build_report

    catalog, base, _, _ = night_catalog
    result = build_report(catalog, base / "out")
    return result, parse(result.index_path)


def test_page_parses_with_balanced_structure(report):
    result, page = report
    assert result.index_path.name == "index.html"
    assert page.errors == []
    assert page.stack == []
    assert page.count.get("html") == 1 and page.count.get("body") == 1
    assert {"rejected", "quality", "shifts", "stacks", "frames"} <= page.ids


def test_every_image_exists_and_is_a_png(report):
    result, page = report
    assert page.images, "the page shows no image"
    assert result.n_images == len(set(page.images))
    for src in page.images:
        path = result.index_path.parent / src
        assert not Path(src).is_absolute() and ".." not in Path(src).parts
        assert path.is_file(), src
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src


def test_every_rejected_frame_is_named_with_its_reasons(night_catalog, report):
    from obsdb.catalog.queries import frame_records

    catalog = night_catalog[0]
    result, page = report
    with catalog.session() as session:
        rejected = [r.to_json() for r in frame_records(session, status="rejected")]
    assert len(rejected) >= 3  # the simulated defects, the manual tag, the unreadable file
    assert sorted(result.rejected_numbers) == sorted(r["number"] for r in rejected)
    table = page.section_text("rejected")
    for record in rejected:
        assert str(record["number"]) in table
        assert f"frame-{record['id']}" in page.ids
        for tag in record["tags"]:
            # The reason is shown without the tag it starts with ("trail" | "elongation 6.83 > 1.6").
            reason = tag["reason"].removeprefix(f"{tag['name']}: ")
            assert tag["name"] in table and reason in table and tag["source"] in table
            assert f"{tag['name']}: {reason}" not in table or not tag["reason"].startswith(tag["name"])
    assert "2001" in table and "unreadable" in table


def test_manual_reason_appears_escaped(night_catalog, report):
    result, page = report
    manual = night_catalog[2]
    raw = result.index_path.read_text(encoding="utf-8")
    # Escaped as the templates escape (markupsafe: quotes as &#34;), never raw.
    assert str(markupsafe.escape(MANUAL_REASON)) in raw
    assert "<seen>" not in raw and '"confirmed"' not in raw
    table = page.section_text("rejected")
    assert MANUAL_REASON in table and "tester" in table and "manual" in table
    assert str(manual) in table


def test_thumbnails_cover_every_light_frame(night_catalog, report):
    from obsdb.catalog.queries import frame_records

    catalog = night_catalog[0]
    result, page = report
    with catalog.session() as session:
        light = [r.to_json() for r in frame_records(session, image_type="light")]
    thumbs = [src for src in page.images if src.startswith("thumbs/")]
    assert len(thumbs) == len(light)
    assert "2001" in page.section_text("frames")  # the unreadable file has a placeholder


def test_without_runs_or_stacks_the_page_says_so(report):
    _, page = report
    assert "No alignment run yet" in page.section_text("shifts")
    assert "No stack recorded yet" in page.section_text("stacks")
    assert not any(src.startswith("stacks/") for src in page.images)
    assert not {"shift-track", "shifts-glance"} & page.ids


def test_header_names_catalog_version_and_counts(night_catalog, report):
    from obsdb import __version__

    _, page = report
    header = " ".join(page.text.get(None, []))
    assert str(night_catalog[3]) in header
    assert __version__ in header and "generated" in header
    for band in ("B", "V", "R"):
        assert band in header


def test_rebuild_reuses_thumbnails_and_redraws_a_changed_badge(night_catalog, tmp_path):
    from obsdb.catalog.queries import frame_records
    from obsdb.catalog.selectors import select_frames
    from obsdb.catalog.tags import add_tags
    from obsdb.report.build import build_report

    catalog, base, _, _ = night_catalog
    out = tmp_path / "again"
    first = build_report(catalog, out)
    assert first.n_thumbnails_drawn > 0
    second = build_report(catalog, out)
    assert second.n_thumbnails_drawn == 0
    with catalog.session() as session:
        accepted = frame_records(session, status="accepted", image_type="light")[0].to_json()
        frame = select_frames(session, str(accepted["number"]))
        add_tags(session, frame, "blurry-check", reason="free text, neither rejects nor accepts",
                 source="manual", author="tester")
        add_tags(session, frame, "focus-slight", reason="soft stars", source="manual", author="tester")
    third = build_report(catalog, out)
    assert third.n_thumbnails_drawn == 1
    assert accepted["number"] in third.rejected_numbers
    # The stale thumbnail of that frame is gone; the folder holds what the page shows.
    assert len(list((out / "thumbs").glob("*.png"))) == len(
        [s for s in parse(third.index_path).images if s.startswith("thumbs/")])


def test_alignment_runs_and_stacks_are_drawn(night_catalog, tmp_path):
    import re

    import numpy as np

    from obsdb.catalog.models import AlignmentRun, Frame, RenderOutput, ShiftStep
    from obsdb.report.build import build_report
    from tests.conftest import write_fits

    catalog, base, _, _ = night_catalog
    stack_path = write_fits(tmp_path / "stack_V.fits", np.random.default_rng(0).normal(100, 5, (64, 64)))
    with catalog.session() as session:
        frames = session.query(Frame).filter(Frame.readable.is_(True)).order_by(Frame.number).all()
        for method in ("auto", "staged"):
            run = AlignmentRun(method=method, reference_frame_id=frames[0].id, parameters={},
                               software_version="test", author="tester")
            session.add(run)
            session.flush()
            for i, frame in enumerate(frames):
                # Two steps per frame: the report must show their sum.
                session.add(ShiftStep(run_id=run.id, frame_id=frame.id, stage=1, kind="within-group",
                                      method="stars", dx=float(i), dy=-float(i)))
                session.add(ShiftStep(run_id=run.id, frame_id=frame.id, stage=2, kind="group-offset",
                                      method="stars", dx=0.5, dy=0.25))
        session.add(RenderOutput(kind="stack", band="V", path=str(stack_path), sha256="0" * 64,
                                 parameters={"method": "median"}))
        session.add(RenderOutput(kind="stack", band="B", path=str(tmp_path / "gone.fits"), sha256="0" * 64))
    result = build_report(catalog, tmp_path / "out", thumbnails=False)
    page = parse(result.index_path)
    assert page.errors == []
    # The shift track: an SVG figure in the page, a point per frame and axis, each linked to its frame's page.
    raw = result.index_path.read_text(encoding="utf-8")
    track = re.search(r"<figure class='plot' id='shift-track'>(.*?)</figure>", raw, re.S).group(1)
    linked = re.findall(r"<a href='(frames/[^']+)'><circle", track)
    assert len(linked) == 2 * len(frames) and all((result.index_path.parent / rel).is_file() for rel in linked)
    shifts = page.section_text("shifts")
    assert "staged" in shifts and "auto" in shifts and "No alignment run yet" not in shifts
    stacks = sorted({src for src in page.images if src.startswith("stacks/")})  # also shown at a glance
    assert len(stacks) == 1 and (result.index_path.parent / stacks[0]).is_file()
    # At a glance, under the header: the stack and the shift track, each linked to its section.
    html = result.index_path.read_text()
    glance = html[html.index('<div class="glance">'):html.index("<nav>")]
    assert f'<a href="#stacks"><img src="{stacks[0]}"' in glance
    assert "<figure class='plot' id='shifts-glance'><svg class='plot'" in glance
    assert '<a href="#shifts">shift track</a>' in glance
    assert "file not found" in page.section_text("stacks")
    assert any("gone.fits" in w for w in result.warnings)
    assert not any(src.startswith("thumbs/") for src in page.images)


def test_summed_shift_steps_per_run(night_catalog):
    from obsdb.report.snapshot import read_snapshot

    snapshot = read_snapshot(night_catalog[0])
    for run in snapshot.runs:
        for dx, dy in snapshot.run_shifts.get(run["id"], {}).values():
            assert dx % 1 == 0.5 and dy % 1 == 0.25


def test_workers_draw_the_same_thumbnails(night_catalog, tmp_path):
    from obsdb.report.build import build_report

    catalog = night_catalog[0]
    one = build_report(catalog, tmp_path / "one")
    two = build_report(catalog, tmp_path / "two", workers=2)
    names = lambda r: sorted(p.name for p in (r.index_path.parent / "thumbs").glob("*.png"))  # noqa: E731
    assert names(one) == names(two) and two.n_thumbnails_drawn == len(names(two))


def test_cli_report_command(night_catalog, tmp_path):
    from typer.testing import CliRunner

    import obsdb.cli.report_cmds  # noqa: F401 - registers the command on the app
    from obsdb.cli.app import app

    db = night_catalog[3]
    runner = CliRunner()
    result = runner.invoke(app, ["--db", str(db), "report", "--out", str(tmp_path / "cli"), "--no-thumbnails"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "index.html").is_file()
    assert "report:" in result.stdout
    missing = runner.invoke(app, ["--db", str(db), "report"])
    assert missing.exit_code == 2
    helped = runner.invoke(app, ["report", "--help"], env={"COLUMNS": "200"})
    assert helped.exit_code == 0
    for option in ("--out", "--thumbnails", "--thumbnail-size", "--workers"):
        assert option in helped.stdout
    import typer

    command = typer.main.get_command(app).commands["report"]
    assert command.help and all(param.help for param in command.params)
    assert next(p for p in command.params if p.name == "out").required


def test_empty_catalog_gives_a_page_that_says_so(catalog, tmp_path):
    from obsdb.report.build import build_report

    result = build_report(catalog, tmp_path / "empty")
    page = parse(result.index_path)
    assert page.errors == [] and page.images == [] and result.rejected_numbers == []
    assert "no frames yet" in " ".join(page.text.get(None, []))
    assert "No frame is rejected" in page.section_text("rejected")


def test_bad_arguments_are_refused(catalog, tmp_path):
    from obsdb.report.build import build_report

    with pytest.raises(ValueError, match="workers"):
        build_report(catalog, tmp_path / "x", workers=0)
    with pytest.raises(ValueError, match="thumbnail size"):
        build_report(catalog, tmp_path / "x", thumbnail_size=4)


def test_the_report_deletes_and_replaces_only_its_own_files(night_catalog, tmp_path):
    """The user's PNGs in plots/ and thumbs/ survive; a changed or foreign file is refused; links are not followed."""
    import json

    from obsdb.errors import ObsdbError
    from obsdb.report.build import build_report
    from obsdb.report.files import MANIFEST

    catalog, *_ = night_catalog
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    mine = out / "plots" / "my-own-plot.png"
    mine.write_bytes(b"\x89PNG the user's")
    (out / "thumbs").mkdir()
    (out / "thumbs" / "sketch.png").write_bytes(b"\x89PNG another")
    first = build_report(catalog, out)
    second = build_report(catalog, out)
    assert mine.read_bytes() == b"\x89PNG the user's" and (out / "thumbs" / "sketch.png").exists()
    files = json.loads((out / MANIFEST).read_text())["files"]
    assert "index.html" in files and all(not rel.endswith("my-own-plot.png") for rel in files)
    assert second.n_images == first.n_images
    # An image the report wrote, edited by the user since: refused, left as it is.
    plot = next(rel for rel in files if rel.startswith("thumbs/"))
    (out / plot).write_bytes(b"\x89PNG annotated by hand")
    with pytest.raises(ObsdbError, match="changed since"):
        build_report(catalog, out)
    assert (out / plot).read_bytes() == b"\x89PNG annotated by hand"
    # A folder with the user's own index.html: refused before anything is written.
    theirs = tmp_path / "site"
    theirs.mkdir()
    (theirs / "index.html").write_text("<html>my home page</html>")
    with pytest.raises(ObsdbError, match="not written by obsdb report"):
        build_report(catalog, theirs)
    assert (theirs / "index.html").read_text() == "<html>my home page</html>"
    assert not (theirs / "plots").exists()
    # plots/ a link to a folder outside --out: refused, nothing written or deleted there.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "holiday.png").write_bytes(b"\x89PNG")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "plots").symlink_to(elsewhere)
    with pytest.raises(ObsdbError, match="symbolic link"):
        build_report(catalog, linked)
    assert [p.name for p in elsewhere.iterdir()] == ["holiday.png"]


def test_a_report_written_before_the_manifest_is_taken_as_the_reports_own(night_catalog, tmp_path):
    from obsdb.report.build import build_report
    from obsdb.report.files import MANIFEST

    catalog, *_ = night_catalog
    out = tmp_path / "old"
    build_report(catalog, out)
    (out / MANIFEST).unlink()                       # as an older obsdb left it
    (out / "thumbs" / "mine.png").write_bytes(b"\x89PNG")
    again = build_report(catalog, out)
    assert again.n_thumbnails_drawn == 0 and (out / "thumbs" / "mine.png").exists()


# -- issue 12: thresholds, header facts, frame pages, stack numbers ----------------------------------

def _star_field(shape=(200, 200), sigma=1.5, n=25, seed=3):
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    image = rng.normal(100.0, 2.0, shape)
    for x, y in rng.uniform(15, min(shape) - 15, (n, 2)):
        image += 3000.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    return image


def _limit_lines(svg: str) -> list[str]:
    """The labels of the dashed QA limit lines in an SVG figure."""
    import re

    return re.findall(r"<line [^>]*class='limit'><title>([^<]*)</title>", svg)


def test_quality_plots_draw_the_qa_thresholds_with_their_rule_names(night_catalog, report):
    import re

    from obsdb.pipeline.qa_rules import QaThresholds
    from obsdb.present.facts import threshold_lines
    from obsdb.present.figures import quality_figure
    from obsdb.report.snapshot import read_snapshot

    snapshot = read_snapshot(night_catalog[0])
    members = [r for r in snapshot.records if r["readable"] and r["type"] == "light" and r["band"] == "V"]
    lines = threshold_lines(members, snapshot.details)
    by_rule = {line["rule"]: line["value"] for line in lines}
    defaults = QaThresholds()
    assert {"cloud-background", "focus-fwhm", "trail-elongation", "cloud-transparency", "few-stars"} <= set(by_rule)
    assert by_rule["trail-elongation"] == defaults.trail_elongation
    # few-stars is relative: a fraction of the stars the band's richer frames show.
    counts = sorted(r["metrics"]["n_stars"] for r in members)
    assert defaults.few_stars_ratio * counts[0] <= by_rule["few-stars"] <= defaults.few_stars_ratio * counts[-1]
    # The yardstick is the band's clear background, as the rule computes it.
    clear = sorted(r["metrics"]["background"] for r in members)
    assert min(clear) * defaults.cloud_background_ratio <= by_rule["cloud-background"]
    assert by_rule["cloud-background"] <= max(clear) * defaults.cloud_background_ratio
    # The thresholds come from the QA run's event: another run's values move the lines.
    other = dict(snapshot.details, qa_events=[{"at": "2030-01-01T00:00:00", "nights": [members[0]["night"]],
                                               "band": None, "thresholds": {"trail_elongation": 2.5}}])
    assert {ln["rule"]: ln["value"] for ln in threshold_lines(members, other)}["trail-elongation"] == 2.5
    assert threshold_lines(members, dict(snapshot.details, qa_events=[])) == []
    # The lines are in the figure, each named by its rule with its value, and the caption names the rules.
    drawn = _limit_lines(quality_figure(members, lines, band="V", href=lambda r: None))
    assert _limit_lines(quality_figure(members, [], band="V", href=lambda r: None)) == []
    assert len(drawn) == len({(ln["rule"], round(ln["value"], 6)) for ln in lines})
    assert f"trail-elongation {defaults.trail_elongation:g}" in drawn
    assert any(label.startswith("cloud-background ") for label in drawn)
    report_quality = re.search(r"<figure class='plot' id='quality-V'>(.*?)</figure>",
                               report[0].index_path.read_text(encoding="utf-8"), re.S).group(1)
    assert sorted(_limit_lines(report_quality)) == sorted(drawn)
    quality = report[1].section_text("quality")
    assert "cloud-background" in quality and "trail-elongation" in quality and "thresholds" in quality


def test_pixel_scale_from_the_headers():
    from obsdb.present.facts import header_scale

    assert header_scale({"PIXSCALE": 1.25}) == 1.25
    assert header_scale({"CDELT1": -2.0 / 3600, "CDELT2": 2.0 / 3600}) == pytest.approx(2.0)
    assert header_scale({"CD1_1": 0.0, "CD1_2": 0.5 / 3600}) == pytest.approx(0.5)
    # 206.265 * 9 um / 1000 mm
    assert header_scale({"FOCALLEN": 1000, "XPIXSZ": 9.0}) == pytest.approx(1.856, abs=1e-3)
    assert header_scale({"FOCALLEN": 1000}, pixel_size=9.0) == pytest.approx(1.856, abs=1e-3)
    assert header_scale({"FOCALLEN": 1000}) is None
    assert header_scale({"CDELT1": 1.0}) is None            # a degree per pixel: not believed
    assert header_scale({"PIXSCALE": "n/a", "SECPIX": 0.8}) == 0.8


def test_header_names_night_telescope_and_observer(night_catalog, report):
    _, page = report
    header = " ".join(page.text.get(None, []))
    snapshot_night = night_catalog[0].nights()[0]["night"]
    assert "night" in header and snapshot_night in header
    assert "Simulated 0.6m f/8" in header and "SimCam" in header        # TELESCOP, INSTRUME
    assert "observer" in header and "obsdb" in header                   # OBSERVER
    assert "UTC" in header


def test_every_frame_has_a_page_that_links_back(night_catalog, report):
    import re

    from obsdb.report.pages import page_names

    result, page = report
    out = result.index_path.parent
    raw = result.index_path.read_text(encoding="utf-8")
    records = night_catalog[0].report_facts()["records"]
    linked = set(re.findall(r'href="(frames/[^"]+\.html)"', raw))
    assert result.n_frame_pages == len(records) and len(linked) == len(records)
    for rel in linked:
        frame_page = parse(out / rel)
        assert frame_page.errors == [] and frame_page.stack == []
        text = (out / rel).read_text(encoding="utf-8")
        assert 'href="../index.html"' in text
        assert {"images", "metrics", "tags", "steps", "files"} <= frame_page.ids
        for src in frame_page.images:
            assert src.startswith("../") and (out / "frames" / src).resolve().is_file(), (rel, src)
        for href in re.findall(r'href="(\.\./frames/[^"]+)"', text):
            assert (out / "frames" / href).resolve().is_file()
    manual = next(r for r in records if r["number"] == night_catalog[2])
    manual_page = parse(out / page_names(records)[manual["id"]])
    assert MANUAL_REASON in manual_page.section_text("tags") and "tracking-big" in manual_page.section_text("tags")
    # Frames with stored stars get a zoom on a few of them (drawn from the thumbnail's read).
    zooms = [src for rel in linked for src in parse(out / rel).images if src.startswith("../zooms/")]
    assert len(zooms) >= len(records) // 2


def test_frame_page_shows_retracted_tags_and_every_shift_step(night_catalog, tmp_path):
    from obsdb.catalog.models import AlignmentRun, Frame, ShiftStep
    from obsdb.report.build import build_report
    from obsdb.report.pages import page_names

    catalog, *_ = night_catalog
    accepted = [r for r in catalog.report_facts()["records"] if r["status"] == "accepted"]
    target = accepted[-1]
    catalog.tag(str(target["number"]), "halo-check", reason="a ghost near the star?", author="tester")
    catalog.untag(str(target["number"]), "halo-check", reason="only a reflection in the dome", author="tester")
    with catalog.session() as session:
        reference = session.get(Frame, accepted[0]["id"])
        run = AlignmentRun(method="staged", reference_frame_id=reference.id, parameters={},
                           software_version="test", author="tester")
        session.add(run)
        session.flush()
        # Sums with the fractions test_summed_shift_steps_per_run expects of every run (.5, .25).
        for stage, kind, dx, dy in ((1, "within-group", 1.0, 0.25), (2, "group-offset", -40.5, -2.0),
                                    (3, "fine", 0.0, 0.0)):
            session.add(ShiftStep(run_id=run.id, frame_id=target["id"], stage=stage, kind=kind, method="stars",
                                  dx=dx, dy=dy, reference_frame_id=reference.id))
        run_id = run.id
    result = build_report(catalog, tmp_path / "out")
    out = result.index_path.parent
    rel = out / page_names(catalog.report_facts()["records"])[target["id"]]
    frame_page = parse(rel)
    tags = frame_page.section_text("tags")
    assert "halo-check" in tags and "only a reflection in the dome" in tags and "a ghost near the star?" in tags
    steps = frame_page.section_text("steps")
    assert f"Run {run_id}" in steps and "within-group" in steps and "group-offset" in steps and "fine" in steps
    assert "dx -39.500, dy -1.750" in steps                        # the sum of the three steps
    # Beside its thumbnail, the reference's (it is a light frame with one).
    assert sum(src.startswith("../thumbs/") for src in frame_page.images) == 2
    # The FITS file is linked.
    assert Path(target["path"]).resolve().as_uri() in rel.read_text(encoding="utf-8")
    # Rebuilt unchanged, the pages are not rewritten.
    mtime = rel.stat().st_mtime_ns
    build_report(catalog, out)
    assert rel.stat().st_mtime_ns == mtime


def test_stack_shows_quality_numbers(night_catalog, tmp_path):
    from obsdb.catalog.models import RenderOutput
    from obsdb.report.build import build_report
    from obsdb.report.images import stack_quality
    from tests.conftest import write_fits

    quality = stack_quality(_star_field(sigma=1.5), {"NCOMBINE": 7, "EXPTIME": 210.0, "PIXSCALE": 0.5,
                                                      "MAGZP": 25.0})
    assert quality["ncombine"] == 7 and quality["exptime"] == 210.0
    assert quality["fwhm"] == pytest.approx(2.355 * 1.5, rel=0.2)
    assert quality["fwhm_arcsec"] == pytest.approx(quality["fwhm"] * 0.5)
    assert quality["n_stars"] >= 15 and quality["rms"] == pytest.approx(2.0, rel=0.3)
    assert quality["depth_adu"] > 0 and quality["depth_mag"] < 25.0
    catalog, *_ = night_catalog
    path = write_fits(tmp_path / "stack_R.fits", _star_field(), {"NCOMBINE": 7, "EXPTIME": 210.0})
    with catalog.session() as session:
        session.add(RenderOutput(kind="stack", band="R", path=str(path), sha256="0" * 64,
                                 parameters={"method": "median"}))
    result = build_report(catalog, tmp_path / "out", thumbnails=False)
    stacks = parse(result.index_path).section_text("stacks")
    assert "NCOMBINE" in stacks and "7" in stacks and "FWHM" in stacks and "depth" in stacks
    assert "210 s" in stacks


def test_shift_track_at_a_glance_is_drawn_at_the_size_shown(night_catalog, tmp_path):
    import re

    from obsdb.catalog.models import AlignmentRun, Frame, ShiftStep
    from obsdb.report.build import build_report
    from obsdb.report.pages import GLANCE_WIDTH

    catalog, *_ = night_catalog
    with catalog.session() as session:
        frames = session.query(Frame).filter(Frame.readable.is_(True)).order_by(Frame.number).all()
        run = AlignmentRun(method="auto", reference_frame_id=frames[0].id, parameters={}, software_version="test",
                           author="tester")
        session.add(run)
        session.flush()
        session.add_all(ShiftStep(run_id=run.id, frame_id=f.id, stage=1, kind="auto", method="stars",
                                  dx=i + 0.5, dy=0.25 - i) for i, f in enumerate(frames))
    result = build_report(catalog, tmp_path / "out", thumbnails=False)
    raw = result.index_path.read_text(encoding="utf-8")
    glance = raw[raw.index('<div class="glance">'):raw.index("<nav>")]
    # Drawn at the width it is shown (its viewBox is its size: no text scaled down), the full one wider.
    small = re.search(r"<svg class='plot'[^>]*viewBox='0 0 (\d+) (\d+)' width='(\d+)' height='(\d+)'", glance)
    assert small and small.group(1) == small.group(3) == str(GLANCE_WIDTH) and small.group(2) == small.group(4)
    full = re.search(r"<figure class='plot' id='shift-track'><svg class='plot'[^>]*width='(\d+)'", raw)
    assert full and int(full.group(1)) > GLANCE_WIDTH


def test_previews_stretch_and_star_zooms(tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    from obsdb.imaging.preview import write_preview_png, write_star_zooms_png

    image = _star_field()
    before = image.copy()
    zscale = mpimg.imread(write_preview_png(tmp_path / "z.png", image))
    asinh = mpimg.imread(write_preview_png(tmp_path / "a.png", image, stretch="asinh"))
    assert zscale.shape == asinh.shape and not np.allclose(zscale, asinh)
    with pytest.raises(ValueError, match="stretch"):
        write_preview_png(tmp_path / "x.png", image, stretch="log")
    zooms = mpimg.imread(write_star_zooms_png(tmp_path / "s.png", image, [(50, 60), (2, 3)], half=10, scale=5,
                                              labels=["a", "b"]))
    assert zooms.shape[1] == 2 * 21 * 5 + 3 * 10
    np.testing.assert_array_equal(image, before)
    with pytest.raises(ValueError, match="star"):
        write_star_zooms_png(tmp_path / "e.png", image, [])


def test_a_report_killed_half_way_is_finished_by_the_next(night_catalog, tmp_path, monkeypatch):
    """Files written before the kill are claimed in the manifest first: the next report replaces them."""
    import obsdb.report.pages as report_module
    from obsdb.report.build import build_report

    catalog, *_ = night_catalog
    out = tmp_path / "out"
    real = report_module.index_page

    def killed(*args, **kwargs):
        raise KeyboardInterrupt          # after the thumbnails and frame pages, before the page and the manifest

    monkeypatch.setattr(report_module, "index_page", killed)
    with pytest.raises(KeyboardInterrupt):
        build_report(catalog, out)
    assert list((out / "thumbs").glob("*.png"))
    monkeypatch.setattr(report_module, "index_page", real)
    again = build_report(catalog, out)
    assert again.index_path.is_file() and again.n_images > 0
