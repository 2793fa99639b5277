"""One spelling per target and filter (obsdb/imaging/names.py)."""

import pytest

from obsdb.imaging.names import filter_key, target_key


@pytest.mark.parametrize("written, key", [
    ("M 80", "M 80"), ("M80", "M 80"), ("messier 80", "M 80"), ("M-080", "M 80"),
    ("NGC 3293", "NGC 3293"), ("ngc3293", "NGC 3293"), ("IC1396A", "IC 1396A"),
    ("Sh2-155", "Sh2-155"), ("Sh 2-155", "Sh2-155"), ("sh2_155", "Sh2-155"),
    ("Barnard 33", "B 33"), ("Cr 399", "Cr 399"), ("HD 209458", "HD 209458"),
    ("Pelican  Nebula", "Pelican Nebula"), ("WASP-10", "WASP-10"), ("C/2020 F3", "C/2020 F3"),
    ("", None), (None, None), ("   ", None),
])
def test_target_spellings_meet(written, key):
    assert target_key(written) == key


def test_different_objects_stay_apart():
    assert target_key("M 8") != target_key("M 80")
    assert target_key("NGC 7000") != target_key("IC 7000")
    assert target_key("M31 field 2") != target_key("M 31")     # a mosaic panel is its own target


@pytest.mark.parametrize("written, key", [
    ("H", "Ha"), ("Ha", "Ha"), ("H-alpha", "Ha"), ("H_ALPHA", "Ha"), ("OIII", "OIII"), ("O3", "OIII"),
    ("S2", "SII"), ("Lum", "L"), ("Luminance", "L"), ("V", "V"), ("VR", "VR"), ("Sloan  r'", "Sloan r'"),
    (None, None),
])
def test_filter_spellings_meet(written, key):
    assert filter_key(written) == key
