"""Frames listed in natural order (STAR_FOCUS_2 before STAR_FOCUS_10), on SQLite and PostgreSQL,
including frames catalogued before revision 0009 (its migration fills frame.sort_key in)."""

from __future__ import annotations

import numpy as np
from alembic import command
from astropy.io import fits
from sqlalchemy import text

from obsdb import Catalog
from obsdb.catalog.db import alembic_config
from obsdb.text import natural_key

NAMES = ["STAR_FOCUS_10.fits", "STAR_FOCUS_2.fits", "STAR_FOCUS_1.fits", "STAR_FOCUS_21.fits", "M31_0009.fits"]
NATURAL = ["STAR_FOCUS_1.fits", "STAR_FOCUS_2.fits", "STAR_FOCUS_10.fits", "STAR_FOCUS_21.fits"]


def _night(folder):
    folder.mkdir()
    for i, name in enumerate(NAMES):
        header = fits.Header({"IMAGETYP": "Light Frame", "FILTER": "V", "EXPTIME": 1.0,
                              "DATE-OBS": f"2026-03-14T20:{i:02d}:00"})
        fits.PrimaryHDU(np.full((16, 16), 100.0 + i, np.float32), header).writeto(folder / name)


def test_frames_without_numbers_are_listed_in_natural_order(catalog_url, tmp_path):
    _night(tmp_path / "night")
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
        names = [r["file_name"] for r in catalog.frame_dicts()]
    # M31_0009 has a number (4 digits): numbered frames first, by number; then the others, naturally.
    assert names == ["M31_0009.fits", *NATURAL]
    assert sorted(NAMES[:4]) != NATURAL          # plain text order would put _10 before _2


def test_the_migration_fills_the_key_of_frames_catalogued_before_it(catalog_url, tmp_path):
    _night(tmp_path / "night")
    with Catalog.open(catalog_url, create=True) as catalog:
        catalog.ingest([tmp_path / "night"])
    config = alembic_config(catalog_url)
    command.downgrade(config, "0008")          # the column goes: as a catalog of revision 0008 has it
    command.upgrade(config, "head")
    with Catalog.open(catalog_url) as catalog:
        with catalog.session() as session:
            keys = dict(session.execute(text("SELECT file_name, sort_key FROM frame")).all())
        assert keys == {name: natural_key(str(tmp_path.resolve() / "night" / name)) for name in NAMES}
        assert [r["file_name"] for r in catalog.frame_dicts()][1:] == NATURAL


def test_natural_key_pads_every_run_of_digits():
    assert natural_key("a2b10") == "a" + "2".zfill(20) + "b" + "10".zfill(20)
    assert sorted(["F_10", "F_9", "F_100", "G_1"], key=natural_key) == ["F_9", "F_10", "F_100", "G_1"]
