"""obsdb import nina: N.I.N.A.'s ImageMetaData.csv joined to a simulated night, on SQLite and PostgreSQL.

The CSV is written here from the published format: the columns, in order, of the Session Metadata
plugin's ``ImageMetaDataRecord`` (github.com/tcpalmer/nina.plugin.sessionmetadata,
SessionMetaDataWatcher.cs), one row per saved image, with CsvHelper's invariant-culture numbers;
the plugin writes a guiding RMS of 0 when nothing was guided.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from obsdb import Catalog
from obsdb.cli.app import app
from obsdb.errors import ObsdbError
from obsdb.pipeline.nina import base_name, parse_rows

runner = CliRunner()

NINA_COLUMNS = ["ExposureNumber", "FilePath", "FilterName", "ExposureStart", "Duration", "Binning", "CameraTemp",
                "CameraTargetTemp", "Gain", "Offset", "ADUStDev", "ADUMean", "ADUMedian", "ADUMin", "ADUMax",
                "DetectedStars", "HFR", "HFRStDev", "FWHM", "Eccentricity", "GuidingRMS", "GuidingRMSArcSec",
                "GuidingRMSRA", "GuidingRMSRAArcSec", "GuidingRMSDEC", "GuidingRMSDECArcSec", "FocuserPosition",
                "FocuserTemp", "RotatorPosition", "PierSide", "Airmass", "ExposureStartUTC", "MountRA", "MountDec",
                "ImageType"]
"""ImageMetaDataRecord's properties in declaration order: CsvHelper's header."""


def nina_row(number: int, file_path: str, band: str, start: datetime, *, hfr=2.1, stars=250, rms=0.6,
             focus=5000, camera_temp=-10.0):
    local = start + timedelta(hours=1)
    return {"ExposureNumber": number, "FilePath": file_path, "FilterName": band,
            "ExposureStart": local.strftime("%Y-%m-%dT%H:%M:%S"), "Duration": 30, "Binning": "1x1",
            "CameraTemp": camera_temp, "CameraTargetTemp": -10, "Gain": 100, "Offset": 10, "ADUStDev": 12.5,
            "ADUMean": 760.2, "ADUMedian": 755, "ADUMin": 600, "ADUMax": 65535, "DetectedStars": stars,
            "HFR": hfr, "HFRStDev": 0.35, "FWHM": "NaN", "Eccentricity": "NaN", "GuidingRMS": rms / 1.5,
            "GuidingRMSArcSec": rms, "GuidingRMSRA": rms / 2.1, "GuidingRMSRAArcSec": rms / 1.4,
            "GuidingRMSDEC": rms / 2.1, "GuidingRMSDECArcSec": rms / 1.4, "FocuserPosition": focus,
            "FocuserTemp": 4.5, "RotatorPosition": 0, "PierSide": "West", "Airmass": 1.52,
            "ExposureStartUTC": start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "MountRA": 153.9,
            "MountDec": -58.2, "ImageType": "LIGHT"}


def write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=NINA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture()
def night(catalog_url, tmp_path, copy_night):
    copy_night(tmp_path / "night", seed=3, size=256, n_frames=12, bands=("V",), n_groups=2, max_group_offset=30.0)
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        records = catalog.frame_dicts()
    return catalog_url, records


def _metadata(records, tmp_path):
    """A row per frame (Windows paths), one frame renamed since, one unguided, one row of a frame never
    catalogued, and two frames badly guided."""
    rows = []
    for i, record in enumerate(records, start=1):
        start = datetime.fromisoformat(record["date_obs"])
        name = record["file_name"] if i != 3 else "renamed_by_nina.fits"
        rms = 2.4 if i in (5, 6) else (0 if i == 7 else 0.6)
        rows.append(nina_row(i, f"C:\\Users\\obs\\Pictures\\NGC3293\\{name}", "V", start, hfr=2.0 + i / 10,
                             rms=rms, focus=5000 + 10 * i))
    rows.append(nina_row(99, "C:\\Users\\obs\\Pictures\\NGC3293\\never_saved.fits", "V",
                         datetime.fromisoformat(records[0]["date_obs"]) - timedelta(hours=3)))
    path = tmp_path / "ImageMetaData.csv"
    write_csv(path, rows)
    return path


def test_rows_join_by_file_name_or_time_and_are_usable_in_where(night, tmp_path):
    url, records = night
    path = _metadata(records, tmp_path)
    before = path.read_bytes()
    with Catalog.open(url) as catalog:
        report = catalog.import_nina(path)
        assert (report.matched, report.by_name, report.by_time) == (len(records), len(records) - 1, 1)
        assert [row for row, _, _ in report.unmatched] == [len(records) + 2]      # the row of never_saved.fits
        assert "never_saved.fits" in report.unmatched[0][1] and "within 2 s" in report.unmatched[0][2]
        badly_guided = {r["path"] for r in catalog.frame_dicts(where="guiding_rms > 1.5")}
        assert badly_guided == {records[4]["path"], records[5]["path"]}
        assert {r["path"] for r in catalog.frame_dicts(where="guiding_rms is None")} == {records[6]["path"]}
        third = catalog.frame_dicts(where="focuser_position == 5030 and nina_hfr > 2.25 and nina_stars == 250")
        assert [r["path"] for r in third] == [records[2]["path"]]            # joined by time, not by name
        assert len(catalog.frame_dicts(where="camera_temp < -9 and focuser_temp == 4.5")) == len(records)
        # Imported again: each frame keeps one row, the newest.
        write_csv(path, [nina_row(1, records[0]["file_name"], "V", datetime.fromisoformat(records[0]["date_obs"]),
                                  hfr=9.9)])
        assert catalog.import_nina(path).matched == 1
        assert [r["path"] for r in catalog.frame_dicts(where="nina_hfr > 9")] == [records[0]["path"]]
        assert len(catalog.frame_dicts(where="nina_hfr > 0")) == len(records)
        log = catalog.log(command="import nina")
    assert before != path.read_bytes() and len(log) == 2


def test_the_command_reports_what_joined_and_fails_in_one_line(night, tmp_path):
    url, records = night
    path = _metadata(records, tmp_path)
    result = runner.invoke(app, ["--db", url, "import", "nina", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["matched"] == len(records) and len(answer["unmatched"]) == 1
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["--db", url, "import", "nina", str(tmp_path / "other.csv")])
    assert result.exit_code == 1 and "not N.I.N.A.'s ImageMetaData.csv" in result.output
    result = runner.invoke(app, ["--db", url, "import", "nina", str(tmp_path / "missing.csv")])
    assert result.exit_code == 1 and "no such file" in result.output and "Traceback" not in result.output


def test_parsing_follows_the_plugin_conventions():
    assert base_name("C:\\a\\b\\M31_0001.fits") == base_name("/a/b/M31_0001.fits") == "M31_0001.fits"
    text = ",".join(NINA_COLUMNS) + "\n" + ",".join(
        str(nina_row(1, "x.fits", "Ha", datetime(2026, 3, 14, 20), rms=0, focus="")[c]) for c in NINA_COLUMNS)
    (row,) = parse_rows(text, "t.csv")
    assert row["guiding_rms_arcsec"] is None and row["focuser_position"] is None    # unguided, no focuser
    assert row["fwhm"] is None and row["hfr"] == 2.1 and row["camera_offset"] == 10
    assert row["exposure_start"].isoformat() == "2026-03-14T20:00:00+00:00"
    with pytest.raises(ObsdbError, match="no FilePath or ExposureStartUTC"):
        parse_rows("HFR,Stars\n1,2\n", "t.csv")


def test_a_focuser_position_from_nina_gives_the_focus_rule_its_evidence(catalog_url, tmp_path):
    """Frames without a focuser card: a defocused frame is only `soft` (seeing or focus cannot be told
    apart); with N.I.N.A.'s FocuserPosition joined (moved on the defocused frames), it is `focus`, and
    the reason names where the position came from."""
    from obsdb.simulate.scenarios import simulate_qa_night

    truth = simulate_qa_night(tmp_path / "night", seed=11, focuser=False)
    defocused = {f["file"] for f in truth.frames if f["qa_expect"] == "focus"}
    assert defocused
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        records = catalog.frame_dicts()
        rows = [nina_row(i, r["file_name"], "V", datetime.fromisoformat(r["date_obs"]),
                         focus=5400 if r["file_name"] in defocused else 5000) for i, r in enumerate(records, 1)]
        write_csv(tmp_path / "ImageMetaData.csv", rows)
        assert catalog.import_nina(tmp_path / "ImageMetaData.csv").matched == len(records)
        catalog.qa()
        tags = {r["file_name"]: r["tags"] for r in catalog.frame_dicts()}
    for name in defocused:
        (tag,) = [t for t in tags[name] if t["name"] in ("focus", "soft")]
        assert tag["name"] == "focus", tag["reason"]
        assert "N.I.N.A. FocuserPosition 5400 vs 5000 on the sharpest frames" in tag["reason"]
