"""A glance at a FITS file's first cards (obsdb.imaging.fitsio.peek) and the folder question `run`
asks with it."""

from __future__ import annotations

import gzip

import numpy as np
from astropy.io import fits

from obsdb.imaging.fitsio.peek import peek_cards


def _write(path, **cards):
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    fits.writeto(path, np.zeros((4, 4), np.float32), header)


def test_peek_reads_strings_numbers_and_quotes_as_astropy_does(tmp_path):
    _write(tmp_path / "a.fits", IMAGETYP="Flat Field", PICTTYPE=4, OBJECT="O'Brien's field")
    cards = peek_cards(tmp_path / "a.fits", ("IMAGETYP", "PICTTYPE", "OBJECT", "MISSING"))
    header = fits.getheader(tmp_path / "a.fits")
    assert cards == {"IMAGETYP": header["IMAGETYP"], "PICTTYPE": "4", "OBJECT": header["OBJECT"]}


def test_peek_reads_gzip_and_says_nothing_of_what_is_not_fits(tmp_path):
    _write(tmp_path / "b.fits", IMAGETYP="BIAS")
    (tmp_path / "b.fits.gz").write_bytes(gzip.compress((tmp_path / "b.fits").read_bytes()))
    assert peek_cards(tmp_path / "b.fits.gz", ("IMAGETYP",)) == {"IMAGETYP": "BIAS"}
    (tmp_path / "junk.fits").write_bytes(b"not a fits file at all" * 200)
    (tmp_path / "bad.fits.gz").write_bytes(b"\x1f\x8b broken")
    assert peek_cards(tmp_path / "junk.fits", ("IMAGETYP",)) == {}
    assert peek_cards(tmp_path / "bad.fits.gz", ("IMAGETYP",)) == {}
    assert peek_cards(tmp_path / "absent.fits", ("IMAGETYP",)) == {}


def test_a_folder_holds_calibration_frames_only_outside_the_excluded_folders(tmp_path):
    from obsdb.pipeline.run import holds_calibration_frames

    night = tmp_path / "night"
    (night / "out" / "masters").mkdir(parents=True)
    _write(night / "light1.fits", IMAGETYP="Light Frame")
    _write(night / "out" / "masters" / "master-bias.fits", IMAGETYP="BIAS")
    assert not holds_calibration_frames(night, [night / "out"])
    assert holds_calibration_frames(night, [])
    _write(night / "d1.fits", PICTTYPE=3)            # SBIG's numeric type: a dark
    assert holds_calibration_frames(night, [night / "out"])
    assert not holds_calibration_frames(tmp_path / "absent", [])
