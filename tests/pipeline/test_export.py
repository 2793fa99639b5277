"""obsdb export: Siril sequences and script, WBPP tree, AstroBin CSV and verdicts, on simulated nights.

The Siril test runs Debian's ``siril-cli`` (1.0.6 here) on an exported night when it is installed
(``.ci/run`` installs it) and compares the stars of its stack with obsdb's own median stack.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from obsdb import Catalog
from obsdb.cli.app import app
from obsdb.errors import ObsdbError
from obsdb.pipeline.export import ASTROBIN_COLUMNS, MANIFEST, VERDICT_COLUMNS, astrobin_rows, pixel_scale

runner = CliRunner()
NIGHT = "2026-03-14"


def invoke(db, *args):
    return runner.invoke(app, ["--db", str(db), *args], terminal_width=200)


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def night(simulated_nights, tmp_path_factory):
    """One band, 12 frames (clouds, a trail, defocus among them): ingested and judged, on SQLite."""
    root = tmp_path_factory.mktemp("export")
    truth = simulated_nights.copy(root / "night", seed=3, size=256, n_frames=12, bands=("V",), n_groups=2,
                                  max_group_offset=30.0)
    db = root / "obsdb.sqlite"
    with Catalog.open(db, create=True) as catalog:
        catalog.ingest([root / "night"])
        catalog.qa()
    return root, db, truth


def _records(db, **filters):
    with Catalog.open(db) as catalog:
        return catalog.frame_dicts(**filters)


def test_siril_export_links_the_accepted_lights_in_order_and_writes_a_script(night, tmp_path):
    root, db, _ = night
    accepted = _records(db, status="accepted")
    rejected = _records(db, status="rejected")
    assert accepted and rejected
    before = {r["path"]: sha(r["path"]) for r in accepted + rejected}
    result = invoke(db, "export", "siril", NIGHT, "--out", str(tmp_path / "ex"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "ex" / "V"
    links = sorted(folder.glob("light_*.fits"))
    assert [os.readlink(p) for p in links] == [r["path"] for r in accepted]
    assert not {os.readlink(p) for p in links} & {r["path"] for r in rejected}
    script = (folder / "stack.ssf").read_text()
    assert "convert light -out=process" in script and "setref light 1\nregister light" in script
    assert "stack r_light med -norm=add -out=../stack_V" in script
    assert f"siril-cli -d {folder}" in result.output
    # Again: the links are left as they are, the script replaced (obsdb's own), the inputs untouched.
    again = invoke(db, "export", "siril", NIGHT, "--out", str(tmp_path / "ex"))
    assert again.exit_code == 0, again.output
    assert before == {path: sha(path) for path in before}


def test_an_export_never_replaces_a_file_it_did_not_write(night, tmp_path):
    _, db, _ = night
    out = tmp_path / "ex"
    (out / "V").mkdir(parents=True)
    (out / "V" / "stack.ssf").write_text("my own script\n")
    result = invoke(db, "export", "siril", NIGHT, "--out", str(out))
    assert result.exit_code == 1
    assert "stack.ssf: exists and was not written by obsdb export" in result.output
    assert (out / "V" / "stack.ssf").read_text() == "my own script\n"
    assert not list((out / "V").glob("light_*"))            # nothing written before the check failed
    # A file obsdb wrote and the user changed since is theirs now.
    (out / "V" / "stack.ssf").unlink()
    assert invoke(db, "export", "siril", NIGHT, "--out", str(out)).exit_code == 0
    (out / "V" / "stack.ssf").write_text("edited\n")
    result = invoke(db, "export", "siril", NIGHT, "--out", str(out))
    assert result.exit_code == 1 and "changed since" in result.output
    # A link of the user's in the sequence's place is not replaced either.
    (out / "V" / "stack.ssf").unlink()
    first = out / "V" / "light_00001.fits"
    first.unlink()
    first.symlink_to("/etc/hostname")
    result = invoke(db, "export", "siril", NIGHT, "--out", str(out))
    assert result.exit_code == 1 and "a link obsdb did not make" in result.output
    assert os.readlink(first) == "/etc/hostname"


def test_calibrated_lights_are_written_where_masters_apply(night, tmp_path):
    """A master bias: the export holds calibrated copies (OBSDBFID, the bias subtracted), not links."""
    root, db, _ = night
    shutil.copytree(root / "night", tmp_path / "night")
    db2 = tmp_path / "obsdb.sqlite"
    bias_dir = tmp_path / "bias"
    bias_dir.mkdir()
    header = fits.getheader(sorted((tmp_path / "night").glob("*.fits"))[0])
    for i in range(3):
        h = header.copy()     # the lights' camera and read-out (binning, gain), as a bias of theirs
        h.update({"IMAGETYP": "Bias Frame", "EXPTIME": 0.0, "EXPOSURE": 0.0, "DATE-OBS": f"{NIGHT}T19:0{i}:00"})
        for key in ("FILTER", "OBJECT", "AIRMASS"):
            h.remove(key, ignore_missing=True)
        fits.PrimaryHDU(np.full((256, 256), 100.0, np.float32), h).writeto(bias_dir / f"bias_{i:03d}.fits")
    with Catalog.open(db2, create=True) as catalog:
        catalog.ingest([tmp_path / "night", bias_dir])
        catalog.qa()
        catalog.calibrate(tmp_path / "masters")
        accepted = catalog.frame_dicts(status="accepted", image_type="light")
        report = catalog.export_siril(tmp_path / "ex", night=NIGHT, band="V")
    assert report.folders[0]["calibrated"] == len(accepted) > 0
    first = tmp_path / "ex" / "V" / "light_00001.fits"
    assert not first.is_symlink()
    with fits.open(first) as hdul:
        assert hdul[0].header["OBSDBFID"] == accepted[0]["id"]
        raw = fits.getdata(accepted[0]["path"]).astype(float)
        assert np.median(raw - hdul[0].data) == pytest.approx(100.0, abs=0.01)


def _stars(path, limit=40):
    from obsdb.imaging.stars import detect_stars

    data = fits.getdata(path).astype(np.float64)
    stars = detect_stars(data, nsigma=10.0)
    stars = stars[np.argsort(-stars["flux"])][:limit]
    return np.column_stack([stars["x"], stars["y"]])


def _siril():
    for candidate in (shutil.which("siril-cli"), "/usr/bin/siril-cli"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def test_siril_cli_stacks_an_exported_night_onto_obsdbs_stars(night, tmp_path):
    """siril-cli runs the exported script; after the offset between the two tools' reference frames
    (obsdb's shift of Siril's reference: none, as the script makes obsdb's reference Siril's), the stars
    of Siril's median stack lie within 0.1 px of those of obsdb's median stack."""
    siril = _siril()
    if siril is None:
        pytest.skip("siril-cli is not installed (apt-get install siril)")
    root, db, _ = night
    work = tmp_path / "db.sqlite"
    shutil.copyfile(db, work)
    with Catalog.open(work) as catalog:
        catalog.align()
        catalog.render(tmp_path / "render", stack="median")
        report = catalog.export_siril(tmp_path / "ex", night=NIGHT)
        shifts = {r["path"]: r["shift"] for r in catalog.frame_dicts(status="accepted")}
    folder = Path(report.folders[0]["folder"])
    done = subprocess.run([siril, "-d", str(folder), "-s", str(folder / "stack.ssf")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert "Script execution finished successfully" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Reference Image:" in done.stdout
    # Siril logs the file it read just before "Reference Image:": the one setref named.
    log = done.stdout.splitlines()
    read = [line for line in log[:log.index("log: Reference Image:")] if "Reading FITS: file" in line][-1]
    reference = report.folders[0]["reference"]
    assert f"light_{reference:05d}.fit" in read
    ref_shift = shifts[os.readlink(folder / f"light_{reference:05d}.fits")]
    assert ref_shift["dx"] == ref_shift["dy"] == 0.0                    # obsdb's reference frame
    # obsdb's stack: the frame's content moved by (dx, dy) onto obsdb's reference; Siril's stack holds
    # Siril's reference frame unmoved: a star at (x, y) in obsdb's stack is at (x - dx, y - dy) in Siril's.
    ours = _stars(tmp_path / "render" / "stack_V.fits") - [ref_shift["dx"], ref_shift["dy"]]
    theirs = _stars(report.folders[0]["stack"])
    distance = np.hypot(*(ours[:, None, :] - theirs[None, :, :]).transpose(2, 0, 1))
    nearest = distance.min(axis=1)
    matched = nearest[nearest < 2.0]
    print(f"\nsiril-cli vs obsdb median stacks: {len(matched)} stars, median distance {np.median(matched):.3f} px, "
          f"largest {matched.max():.3f} px")        # docs/interop.md quotes this line
    assert len(matched) >= 15, f"only {len(matched)} stars in common"
    assert np.median(matched) < 0.1, f"median distance {np.median(matched):.3f} px"


def test_wbpp_tree_names_session_filter_exposure_and_binning(night, tmp_path):
    _, db, _ = night
    result = invoke(db, "export", "wbpp", "--out", str(tmp_path / "wbpp"))
    assert result.exit_code == 0, result.output
    accepted = _records(db, status="accepted")
    with open(tmp_path / "wbpp" / "wbpp_files.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(accepted)
    for row in rows:
        link = tmp_path / "wbpp" / row["link"]
        assert link.is_symlink() and os.readlink(link) == row["path"]
        parts = Path(row["link"]).parts
        assert parts[1:5] == (f"SESSION_{NIGHT}", "FILTER_V", f"EXPTIME_{row['EXPTIME']}", "XBINNING_1")
    assert (tmp_path / "wbpp" / MANIFEST).is_file()


def _astrobin_night(folder: Path):
    """Lights in two filters with the cards AstroBin's columns come from, and bias, darks and flats."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    common = {"TELESCOP": "T", "INSTRUME": "C", "XBINNING": 2, "YBINNING": 2, "GAIN": 100, "XPIXSZ": 7.52,
              "FOCALLEN": 530.0}
    specs = [("Ha", 300.0, -10.2, 6), ("OIII", 300.0, -9.8, 4)]
    minute = 0
    for band, exptime, temp, count in specs:
        for i in range(count):
            minute += 6
            h = fits.Header({"IMAGETYP": "Light Frame", "FILTER": band, "EXPTIME": exptime, "CCD-TEMP": temp,
                             "OBJECT": "M 31", "DATE-OBS": f"{NIGHT}T2{minute // 60}:{minute % 60:02d}:00",
                             "AMBTEMP": 4.0, **common})
            data = rng.normal(1000, 10, (64, 64)).astype(np.float32)
            fits.PrimaryHDU(data, h).writeto(folder / f"{band}_{minute:04d}.fits")
    for kind, count, band in (("Bias Frame", 3, None), ("Dark Frame", 2, None), ("Flat Field", 5, "Ha"),
                              ("Flat Field", 1, "OIII")):
        for i in range(count):
            h = fits.Header({"IMAGETYP": kind, "EXPTIME": 300.0 if kind.startswith("Dark") else 1.0,
                             "DATE-OBS": f"{NIGHT}T19:{i:02d}:00", **common})
            if band:
                h["FILTER"] = band
            name = f"{kind.split()[0].lower()}_{band or ''}_{i:03d}.fits"
            fits.PrimaryHDU(rng.normal(500, 5, (64, 64)).astype(np.float32), h).writeto(folder / name)


def test_astrobin_csv_has_the_documented_columns_and_one_row_per_filter(catalog_url, tmp_path):
    _astrobin_night(tmp_path / "night")
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        report = catalog.export_astrobin(tmp_path / "acq.csv", status="any", filter_ids={"Ha": "4663"})
    text = (tmp_path / "acq.csv").read_text()
    assert text.splitlines()[0] == ",".join(ASTROBIN_COLUMNS)     # no spaces around the commas
    rows = list(csv.DictReader(text.splitlines()))
    assert report.rows == 2 and [r["filter"] for r in rows] == ["4663", ""]
    ha, oiii = rows
    assert (ha["date"], ha["number"], ha["duration"], ha["binning"], ha["gain"]) == (NIGHT, "6", "300", "2", "100")
    assert (ha["sensorCooling"], oiii["sensorCooling"]) == ("-10", "-10")
    assert (ha["darks"], ha["bias"], ha["flats"], oiii["flats"]) == ("2", "3", "5", "1")
    assert ha["temperature"] == "4.00"
    assert any("no AstroBin filter id for OIII" in note for note in report.notes)


def test_astrobin_mean_fwhm_is_in_arcsec_from_the_pixel_scale():
    cards = {"XPIXSZ": 3.76, "FOCALLEN": 400.0}
    assert pixel_scale(cards) == pytest.approx(1.939, abs=0.001)     # 206.265 * 3.76 / 400
    lights = [{"id": i, "night": NIGHT, "band": "L", "exptime": 60.0, "metrics": {"fwhm": f}}
              for i, f in enumerate((2.0, 3.0))]
    rows = astrobin_rows(lights, {0: cards, 1: cards}, {}, {}, {})
    assert rows[0]["meanFwhm"] == f"{1.939 * 2.5:.2f}"
    assert astrobin_rows(lights, {}, {}, {}, {})[0]["meanFwhm"] == ""   # no scale: no arcsec


def test_verdicts_csv_and_ecsv_carry_who_decided_and_when(catalog_url, tmp_path, copy_night):
    from astropy.table import Table

    copy_night(tmp_path / "night", seed=3, size=256, n_frames=12, bands=("V",), n_groups=2, max_group_offset=30.0)
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        catalog.qa()
        records = catalog.frame_dicts()
        target = next(r for r in records if r["status"] == "rejected")
        catalog.tag(str(target["number"]), "accept", reason="fine by eye", author="ana")
        catalog.export_verdicts(tmp_path / "v.csv")
        catalog.export_verdicts(tmp_path / "v.ecsv")
        with pytest.raises(ObsdbError, match="exists and was not written by obsdb export"):
            (tmp_path / "mine.csv").write_text("x\n")
            catalog.export_verdicts(tmp_path / "mine.csv")
    with open(tmp_path / "v.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == VERDICT_COLUMNS and len(rows) == len(records)
    row = next(r for r in rows if r["path"] == target["path"])
    assert (row["status"], row["decided_by"], row["author"]) == ("accepted", "person", "ana")
    assert row["time"].startswith("20") and row["sha256"] == sha(target["path"])
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert rejected and all(r["author"] == "obsdb" and r["reasons"] for r in rejected)
    table = Table.read(tmp_path / "v.ecsv", format="ascii.ecsv")
    assert list(table.colnames) == list(VERDICT_COLUMNS) and len(table) == len(rows)
    assert "SHA-256" in table["sha256"].description


def test_export_errors_are_one_line(night, tmp_path):
    _, db, _ = night
    result = invoke(db, "export", "siril", "1999-01-01", "--out", str(tmp_path / "x"))
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output
    result = invoke(db, "export", "astrobin", "--out", str(tmp_path), "--status", "any")
    assert result.exit_code == 1 and "is a folder" in result.output
    result = invoke(db, "export", "astrobin", "--out", str(tmp_path / "a.csv"), "--filter-id", "Ha")
    assert result.exit_code == 1 and "BAND=NUMBER" in result.output


def test_siril_and_wbpp_exports_read_the_same_on_each_backend(catalog_url, tmp_path, copy_night):
    """The exports' reads (frames, shifts and their runs' references, masters, header cards) on SQLite and
    PostgreSQL: the Siril sequence's reference is obsdb's, the links are the accepted frames in order."""
    copy_night(tmp_path / "night", seed=3, size=256, n_frames=12, bands=("V",), n_groups=2, max_group_offset=30.0)
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        catalog.qa()
        catalog.align()
        accepted = catalog.frame_dicts(status="accepted")
        siril = catalog.export_siril(tmp_path / "siril", night=NIGHT)
        wbpp = catalog.export_wbpp(tmp_path / "wbpp", calibration=False)
    links = sorted((tmp_path / "siril" / "V").glob("light_*.fits"))
    assert [os.readlink(p) for p in links] == [r["path"] for r in accepted]
    reference = siril.folders[0]["reference"]
    assert accepted[reference - 1]["shift"]["method"] == "reference"
    assert f"setref light {reference}\n" in (tmp_path / "siril" / "V" / "stack.ssf").read_text()
    assert wbpp.rows == len(accepted) and len(wbpp.written) == len(accepted) + 1
