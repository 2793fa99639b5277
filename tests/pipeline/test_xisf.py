"""XISF frames (PixInsight) ingested like FITS ones: the files are written here with the ``xisf``
package from a simulated night's FITS frames (pixels and every FITS keyword), and catalogued on
SQLite and PostgreSQL with the same header columns and measurements as the FITS originals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from obsdb import Catalog
from obsdb.imaging.fitsio import FitsReadError, read_fits_image
from obsdb.imaging.fitsio.xisf import _card_value, read_xisf_image

xisf = pytest.importorskip("xisf")


def fits_to_xisf(source, target, *, dtype=np.float32):
    """Write ``source``'s pixels and FITS keywords as an XISF file (XISF's FITSKeyword values are FITS
    value text: strings in quotes, T/F, numbers)."""
    with fits.open(source) as hdul:
        data, header = hdul[0].data.astype(dtype), hdul[0].header
    keywords: dict = {}
    for card in header.cards:
        if card.keyword in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", ""):
            continue
        value = card.value
        text = (f"'{value}'" if isinstance(value, str) else "T" if value is True else "F" if value is False
                else repr(value))
        keywords.setdefault(card.keyword, []).append({"value": text, "comment": card.comment})
    xisf.XISF.write(str(target), data[:, :, None], creator_app="obsdb tests",
                    image_metadata={"FITSKeywords": keywords})


def test_an_xisf_night_is_catalogued_as_its_fits_twin(catalog_url, tmp_path, copy_night):
    copy_night(tmp_path / "fits", seed=3, size=256, n_frames=6, bands=("V", "R"), n_groups=1)
    (tmp_path / "xisf").mkdir()
    for path in sorted((tmp_path / "fits").glob("*.fits")):
        fits_to_xisf(path, tmp_path / "xisf" / path.with_suffix(".xisf").name)
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "fits"])
        catalog.ingest([tmp_path / "xisf"])
        frames = catalog.frame_dicts(night="all")
        by_suffix = {(r["number"], r["path"].rsplit(".", 1)[1]): r for r in frames}
        # The XISF frames' FITS keywords are the header --where reads (the simulation's GAIN is 1.5).
        keyed = catalog.frame_dicts(night="all", where="OBJECT == 'NGC3293' and GAIN > 1 and bitpix == -32")
    assert len(frames) == 12 and not [r for r in frames if not r["readable"]]
    assert len(keyed) == 12
    for (number, suffix), xisf_record in by_suffix.items():
        if suffix != "xisf":
            continue
        twin = by_suffix[(number, "fits")]
        for key in ("band", "type", "object", "exptime", "date_obs", "shape"):
            assert xisf_record[key] == twin[key], key
        assert xisf_record["stats"]["median"] == pytest.approx(twin["stats"]["median"], rel=1e-6)
        assert xisf_record["metrics"]["n_stars"] == twin["metrics"]["n_stars"]
        assert xisf_record["metrics"]["fwhm"] == pytest.approx(twin["metrics"]["fwhm"], rel=1e-6)


def test_an_xisf_night_is_aligned_and_rendered_as_fits(tmp_path, copy_night, catalog):
    from obsdb.pipeline.calibrate import calibrated_name

    copy_night(tmp_path / "fits", seed=3, size=256, n_frames=6, bands=("V",), n_groups=1)
    (tmp_path / "xisf").mkdir()
    for path in sorted((tmp_path / "fits").glob("*.fits")):
        fits_to_xisf(path, tmp_path / "xisf" / path.with_suffix(".xisf").name)
    catalog.ingest([tmp_path / "xisf"])
    catalog.qa()
    catalog.align()
    report = catalog.render(tmp_path / "out", stack="median")
    assert report.frames and report.stacks
    written = sorted(p.name for p in (tmp_path / "out").glob("*.fits") if not p.name.startswith("stack"))
    assert written and all(name.endswith(".fits") for name in written)
    assert not list((tmp_path / "out").glob("*.xisf"))
    with fits.open(tmp_path / "out" / written[0]) as hdul:
        assert hdul[0].data.shape == (256, 256) and "OBSDB_DX" in hdul[0].header
    assert calibrated_name("M31_001.xisf") == "M31_001_cal.fits"
    # Siril 1.0 reads no XISF: its export holds FITS copies of the pixels, not links.
    exported = catalog.export_siril(tmp_path / "siril", night=catalog.night_names()[0])
    first = tmp_path / "siril" / "V" / "light_00001.fits"
    assert exported.folders[0]["frames"] > 0 and first.is_file() and not first.is_symlink()
    accepted = catalog.frame_dicts(status="accepted")
    with fits.open(first) as hdul:
        assert hdul[0].header["OBSDBFID"] == accepted[0]["id"]
        assert np.array_equal(hdul[0].data, read_fits_image(accepted[0]["path"], hash_mode="none").data)


def test_reader_keeps_keywords_types_and_refuses_what_it_cannot_read(tmp_path):
    data = np.arange(12, dtype=np.uint16).reshape(3, 4)
    keywords = {"FILTER": [{"value": "'Ha      '", "comment": "filter"}], "EXPTIME": [{"value": "300.", "comment": ""}],
                "XBINNING": [{"value": "2", "comment": ""}], "COOLER": [{"value": "T", "comment": ""}]}
    xisf.XISF.write(str(tmp_path / "a.xisf"), data[:, :, None], image_metadata={"FITSKeywords": keywords})
    image = read_fits_image(tmp_path / "a.xisf", hash_mode="inline")
    assert image.data.dtype == np.float32 and image.data.shape == (3, 4) and image.data[2, 3] == 11
    assert image.header["FILTER"] == "Ha" and image.header["EXPTIME"] == 300.0
    assert image.header["XBINNING"] == 2 and image.header["COOLER"] is True and image.header["BITPIX"] == 16
    assert image.sha256 == __import__("hashlib").sha256((tmp_path / "a.xisf").read_bytes()).hexdigest()
    assert (_card_value("'it''s'"), _card_value("-10.5"), _card_value("F")) == ("it's", -10.5, False)
    xisf.XISF.write(str(tmp_path / "rgb.xisf"), np.zeros((3, 4, 3), np.float32))
    with pytest.raises(FitsReadError, match="colour XISF image"):
        read_xisf_image(tmp_path / "rgb.xisf")
    (tmp_path / "fake.xisf").write_bytes(b"SIMPLE  = T" + b" " * 100)
    with pytest.raises(FitsReadError, match="not an XISF file"):
        read_fits_image(tmp_path / "fake.xisf")
    (tmp_path / "cut.xisf").write_bytes((tmp_path / "a.xisf").read_bytes()[:40])
    with pytest.raises(FitsReadError, match="damaged XISF file"):
        read_fits_image(tmp_path / "cut.xisf")


def test_the_xisf_package_is_imported_only_when_an_xisf_file_is_met(tmp_path):
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(tmp_path / "a.fits")
    code = ("import sys; from obsdb.imaging.fitsio import read_fits_image; "
            f"read_fits_image({str(tmp_path / 'a.fits')!r}); print('xisf' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr
