"""The archive over nights: integration per target (names and aliases unified), trends with unusual
nights flagged, and stored frame weights, on simulated nights, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
from astropy.io import fits
from typer.testing import CliRunner

from obsdb import Catalog
from obsdb.cli.app import app
from obsdb.simulate.model import FrameSpec

runner = CliRunner()

NIGHTS = [
    # (night start, OBJECT as written, {band as written: frames}, FWHM px, sky ADU, exposure s)
    ("2026-03-14T20:00:00", "M80", {"V": 4, "Ha": 4}, 3.0, 400.0, 30.0),
    ("2026-04-02T20:00:00", "M 80", {"V": 4, "H-alpha": 4}, 3.2, 450.0, 30.0),
    ("2026-04-10T20:00:00", "Caldwell 80", {"V": 4}, 2.9, 420.0, 60.0),
    ("2026-04-20T20:00:00", "NGC5139", {"V": 5}, 3.1, 380.0, 60.0),
    # A bad night: bloated stars and a bright sky on every frame, so that QA, judging the night against
    # itself, keeps most of it; only the instrument's other nights show it is unusual.
    ("2026-05-01T20:00:00", "Messier 80", {"V": 4}, 6.5, 2500.0, 30.0),
]
"""Five nights of one instrument: two spellings of M 80 and Ha, an alias pair (Caldwell 80 = NGC 5139)."""


def _specs(bands: dict, fwhm: float, sky: float, exptime: float) -> list[FrameSpec]:
    specs, number = [], 1001
    for band, n in bands.items():
        for i in range(n):
            specs.append(FrameSpec(number=number, band=band, group=0, kind="good", exptime=exptime,
                                   image_type="Light Frame", offset=(1.5 * i, -0.7 * i), rotation_deg=0.0,
                                   fwhm=fwhm * (1 + 0.03 * i), background=sky * (1 + 0.05 * i), transparency=1.0))
            number += 1
    return specs


@pytest.fixture(scope="module")
def archive_files(tmp_path_factory, simulated_nights):
    """The five nights' files, each in its folder, with what their headers say (the truth of the totals)."""
    root = tmp_path_factory.mktemp("archive-totals")
    folders = []
    for i, (start, target, bands, fwhm, sky, exptime) in enumerate(NIGHTS):
        folder = root / f"night{i}"
        simulated_nights.copy(folder, _specs(bands, fwhm, sky, exptime), seed=40 + i, size=256, n_stars=80,
                              object_name=target, night_start=start)
        folders.append(folder)
    return folders


def _build(url: str, folders) -> Catalog:
    catalog = Catalog.open(url, create=True)
    catalog.ingest(folders)
    catalog.qa()
    catalog.add_alias("Caldwell 80", "NGC5139", author="ada")
    return catalog


def _headers(folders) -> list[dict]:
    out = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.fits")):
            header = fits.getheader(path)
            out.append({"object": header["OBJECT"], "filter": header["FILTER"], "exptime": header["EXPTIME"]})
    return out


def test_integration_trends_and_weights_on_each_backend(catalog_url, archive_files, tmp_path):
    """Totals add up to the files' own headers, the bad night is flagged with its numbers, and every
    frame has its four weights of mean 1 over its set, the same on SQLite and PostgreSQL."""
    catalog = _build(catalog_url, archive_files)
    try:
        totals = {(r["target"], r["filter"]): r for r in catalog.targets(per_night=False)}
        assert set(totals) == {("M 80", "V"), ("M 80", "Ha"), ("NGC 5139", "V")}
        headers = _headers(archive_files)
        m80 = [h for h in headers if h["object"] in ("M80", "M 80", "Messier 80")]
        assert totals[("M 80", "V")]["frames"] == sum(h["filter"] == "V" for h in m80) == 12
        assert totals[("M 80", "Ha")]["frames"] == 8 and totals[("M 80", "Ha")]["nights"] == 2
        assert totals[("M 80", "Ha")]["objects"] == ["M 80", "M80"]
        assert totals[("M 80", "Ha")]["filters"] == ["H-alpha", "Ha"]
        assert totals[("M 80", "V")]["objects"] == ["M 80", "M80", "Messier 80"]
        omega = [h for h in headers if h["object"] in ("Caldwell 80", "NGC5139")]
        assert totals[("NGC 5139", "V")]["frames"] == 9
        assert totals[("NGC 5139", "V")]["hours"] == pytest.approx(sum(h["exptime"] for h in omega) / 3600)
        accepted = [r for r in catalog.frame_dicts(night="all", status="accepted")]
        assert sum(r["accepted"] for r in totals.values()) == len(accepted)
        per_night = catalog.targets()
        assert sum(r["frames"] for r in per_night) == len(headers) == 29
        assert {r["night"] for r in per_night if r["target"] == "NGC 5139"} == {"2026-04-10", "2026-04-20"}

        found = catalog.trends()
        assert found["transparency_source"].startswith("star-count proxy")
        v_rows = [r for r in found["rows"] if r["filter"] == "V"]
        assert [r["night"] for r in v_rows] == ["2026-03-14", "2026-04-02", "2026-04-10", "2026-04-20",
                                                "2026-05-01"]
        flagged = {r["night"]: r["flags"] for r in v_rows if r["flags"]}
        assert list(flagged) == ["2026-05-01"], flagged
        reasons = " ".join(flagged["2026-05-01"])
        assert re.search(r"FWHM [\d.]+ px is \d+ sigma above the usual [\d.]+ px \(median of the instrument's 5 nights "
                         r"in V; robust sigma [\d.]+ px, flagged beyond 3\)", reasons), reasons
        assert "background" in reasons
        bad = v_rows[-1]
        assert bad["fwhm"] > 1.7 * v_rows[0]["fwhm"] and bad["background"] > 4 * v_rows[0]["background"]
        # Ha has two nights: too few to call one unusual.
        assert all(not r["flags"] for r in found["rows"] if r["filter"] == "Ha")

        records = catalog.frame_dicts(night="all", light_only=True)
        assert all(r["weights"] and r["weights"]["algorithm"] == "weights-1" for r in records)
        sets: dict[tuple, list] = {}
        for r in records:
            sets.setdefault((r["night"], r["band"]), []).append(r["weights"])
        for members in sets.values():
            for kind in ("noise", "fwhm", "stars", "snr"):
                values = [w[kind] for w in members]
                assert sum(values) / len(values) == pytest.approx(1.0, abs=1e-9), kind
            # The sky rises 5 % a frame within each band: the noise weight falls frame by frame.
        for (night, band), members in sets.items():
            noise = [w["noise"] for w in members]
            assert noise == sorted(noise, reverse=True), (night, band, noise)
        chosen = catalog.frame_dicts(night="all", where="w_noise > 1 and w_fwhm >= 0")
        assert chosen and all(r["weights"]["noise"] > 1 for r in chosen)
        assert len(chosen) < len(records)
        # A defined weight with the set functions, evaluated in the database (norm() is a window function).
        catalog.define_weight("mixed", "sqrt(w_noise) * norm(n_stars) + abs(0 - w_snr) / 10", author="ada")
        values = {(v["night"], v["band"], v["label"]): v["weight"] for v in catalog.weight_values("mixed")}
        assert len(values) == len(records)
        by_key = {(r["night"], r["band"], r["label"]): r for r in records}
        for key, value in values.items():
            members = [r for r in records if (r["night"], r["band"]) == key[:2]]
            stars = [r["metrics"]["n_stars"] for r in members]
            r = by_key[key]
            spread = (max(stars) - min(stars)) or None
            norm = (r["metrics"]["n_stars"] - min(stars)) / spread if spread else None
            expected = None if norm is None else (r["weights"]["noise"] ** 0.5 * norm + r["weights"]["snr"] / 10)
            assert value == pytest.approx(expected), key
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def sqlite_archive(archive_files, tmp_path_factory):
    db = tmp_path_factory.mktemp("archive-db") / "c.sqlite"
    catalog = _build(f"sqlite:///{db}", archive_files)
    catalog.close()
    return db


def invoke(db, *args):
    return runner.invoke(app, ["--db", str(db), *args], terminal_width=80)


def test_targets_and_trends_print_tables_json_and_csv(sqlite_archive):
    db = sqlite_archive
    table = invoke(db, "targets", "--total")
    assert table.exit_code == 0, table.output
    assert all(len(line) <= 80 for line in table.stdout.splitlines())
    assert re.search(r"M 80\s+V\s+\d+\s+\d+/12", table.stdout), table.stdout
    csv = invoke(db, "targets", "--format", "csv").stdout.splitlines()
    assert csv[0] == "target,filter,night,nights,frames,accepted,hours,accepted_hours,objects,filters"
    assert len(csv) == 1 + 7
    rows = json.loads(invoke(db, "targets", "--format", "json").stdout)
    assert {r["night"] for r in rows if r["target"] == "M 80"} == {"2026-03-14", "2026-04-02", "2026-05-01"}
    trends = invoke(db, "trends", "--flagged")
    assert trends.exit_code == 0 and "2026-05-01" in trends.stdout and "2026-04-02" not in trends.stdout
    assert all(len(line) <= 80 for line in trends.stdout.splitlines())
    assert "star-count proxy" in trends.stderr
    document = json.loads(invoke(db, "trends", "--format", "json").stdout)
    assert [r["night"] for r in document["rows"] if r["flags"]] == ["2026-05-01"]
    trend_csv = invoke(db, "trends", "--format", "csv").stdout.splitlines()
    assert trend_csv[0].startswith("instrument,filter,night,frames,accepted,acceptance,fwhm,fwhm_arcsec")


def test_aliases_are_listed_replaced_removed_and_refused_when_circular(sqlite_archive, tmp_path):
    import shutil

    db = tmp_path / "c.sqlite"
    shutil.copy(sqlite_archive, db)
    listed = json.loads(invoke(db, "alias", "list", "--format", "json").stdout)
    assert [(a["alias"], a["target"]) for a in listed] == [("C 80", "NGC 5139")]
    loop = invoke(db, "alias", "add", "NGC 5139", "Caldwell 80")
    assert loop.exit_code == 1 and "loop" in loop.output and "Traceback" not in loop.output
    assert invoke(db, "alias", "add", "Messier 80", "Globular in Scorpius").exit_code == 0
    totals = json.loads(invoke(db, "targets", "--total", "--format", "json").stdout)
    assert {r["target"] for r in totals} == {"Globular in Scorpius", "NGC 5139"}
    assert invoke(db, "alias", "remove", "M80").exit_code == 0
    assert invoke(db, "alias", "remove", "M80").exit_code == 1
    totals = json.loads(invoke(db, "targets", "--total", "--format", "json").stdout)
    assert {r["target"] for r in totals} == {"M 80", "NGC 5139"}


def test_weights_are_defined_listed_shown_and_bad_ones_refused(sqlite_archive, tmp_path):
    import shutil

    db = tmp_path / "c.sqlite"
    shutil.copy(sqlite_archive, db)
    defined = invoke(db, "weight", "define", "sharp", "w_noise * norm(1 / fwhm)")
    assert defined.exit_code == 0 and "weight sharp = w_noise * norm(1 / fwhm)" in defined.stdout
    for name, expression, message in (("bad", "fwhm > 3", "is a condition"), ("bad", "3 * 2", "is a constant"),
                                      ("bad", "nosuch * 2", "unknown name"), ("noise", "fwhm", "built-in"),
                                      ("9lives", "fwhm", "a letter"), ("bad", "log(fwhm)", "unsupported function")):
        refused = invoke(db, "weight", "define", name, expression)
        assert refused.exit_code == 1 and message in refused.output, (expression, refused.output)
        assert "Traceback" not in refused.output
    listed = json.loads(invoke(db, "weight", "list", "--format", "json").stdout)
    assert [(w["name"], w["expression"]) for w in listed] == [("sharp", "w_noise * norm(1 / fwhm)")]
    shown = json.loads(invoke(db, "weight", "show", "sharp", "--night", "2026-03-14", "--band", "V",
                              "--format", "json").stdout)
    values = [f["weight"] for f in shown["frames"]]
    assert len(values) == 4 and min(values) == 0.0  # the broadest frame: norm() gives it 0
    frames = json.loads(invoke(db, "frames", "--night", "2026-03-14", "--band", "V", "--format", "json").stdout)
    by_label = {str(f["label"]): f for f in frames}
    fwhm = {label: f["metrics"]["fwhm"] for label, f in by_label.items()}
    widest = max(fwhm, key=fwhm.get)
    assert [f["weight"] for f in shown["frames"] if f["label"] == widest] == [0.0]
    sharpest = min(fwhm, key=fwhm.get)
    expected = by_label[sharpest]["weights"]["noise"]
    assert [f["weight"] for f in shown["frames"] if f["label"] == sharpest] == [pytest.approx(expected)]
    unknown = invoke(db, "weight", "show", "nosuch")
    assert unknown.exit_code == 1 and "not defined" in unknown.output and "sharp" in unknown.output
    columns = invoke(db, "frames", "--night", "2026-03-14", "--columns", "number,band,w_noise,w_fwhm,w_stars,w_snr")
    assert columns.exit_code == 0 and re.search(r"1001\s+V\s+\d+\.\d\d\s+\d+\.\d\d", columns.stdout), columns.stdout


def test_the_desk_shows_integration_and_trends_pages(sqlite_archive, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from obsdb.web.app import create_app

    catalog = Catalog.open(sqlite_archive)
    try:
        web = TestClient(create_app(catalog, cache_dir=tmp_path / "cache", author="ada"))
        page = web.get("/archive/targets")
        assert page.status_code == 200
        assert re.search(r"<td>M 80</td><td>Ha</td><td class='nowrap'><a href='/night/2026-03-14'>", page.text)
        total = web.get("/archive/targets?total=1").text
        assert re.search(r"<td>NGC 5139</td><td>V</td><td class='num'>2</td>", total)
        trends = web.get("/archive/trends").text
        flagged = re.findall(r"<tr class='rejected'>.*?</tr>", trends)
        assert len(flagged) == 1 and "2026-05-01" in flagged[0] and "sigma above the usual" in flagged[0]
        assert "star-count proxy" in trends
        for url in ("/archive", "/archive/targets", "/archive/trends"):
            assert "href='/archive/trends'" in web.get(url).text
    finally:
        catalog.close()
