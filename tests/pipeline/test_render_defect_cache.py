"""The night's detector-defect map is kept in the catalog: a second render reads it, a new version recomputes it."""

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from obsdb.api import Catalog
from obsdb.catalog.defect_maps import pack_indices, unpack_indices
from obsdb.catalog.models import DetectorDefectMap


@pytest.fixture()
def rendered(tmp_path, copy_night, catalog_url):
    """A 256 px night with hot pixels, ingested, QA'd, aligned and rendered once (spline3)."""
    folder = tmp_path / "frames"
    copy_night(folder, seed=5, size=256, n_frames=8, bands=("V",), n_groups=1, n_hot_pixels=40)
    catalog = Catalog.open(catalog_url, create=True)
    catalog.ingest([folder])
    catalog.qa()
    catalog.align()
    calls = []
    import obsdb.imaging.defects as defects

    real = defects.detector_defects

    def counting(frames, **kwargs):
        calls.append(len(frames))
        return real(frames, **kwargs)

    yield catalog, tmp_path, calls, counting
    catalog.close()


def _maps(catalog):
    with catalog.session() as session:
        return [(row.version, row.n_defects, unpack_indices(row.indices), row.sample)
                for row in session.scalars(select(DetectorDefectMap))]


def _pixels(folder):
    out = {}
    for path in sorted(folder.glob("*.fits")):
        with fits.open(path) as hdul:
            out[path.name] = (hdul[0].data.copy(), hdul[0].header.get("OBSDB_NDEFECT"))
    return out


def test_a_second_render_reads_the_stored_map_and_a_new_version_recomputes(rendered, monkeypatch):
    catalog, tmp_path, calls, counting = rendered
    monkeypatch.setattr("obsdb.imaging.defects.detector_defects", counting)
    catalog.render(tmp_path / "first", stack="median")
    assert calls and calls[0] >= 3  # the search ran, on several frames
    maps = _maps(catalog)
    assert len(maps) == 1
    version, n_defects, indices, _ = maps[0]
    assert version == "detector-1" and n_defects == indices.size > 0
    assert np.all(np.diff(indices) > 0) and indices.max() < 256 * 256

    # Second render: no search, and (the map being the same) the same pixels and defect counts.
    calls.clear()
    catalog.render(tmp_path / "second", stack="median")
    assert calls == []
    first, second = _pixels(tmp_path / "first"), _pixels(tmp_path / "second")
    assert first.keys() == second.keys() and len(first) >= 5
    for name in first:
        assert np.array_equal(first[name][0], second[name][0], equal_nan=True), name
        assert first[name][1] == second[name][1]
    assert len(_maps(catalog)) == 1

    # A new version of the search: computed again, and the row replaced (one per night and instrument).
    monkeypatch.setattr("obsdb.imaging.defects.DETECTOR_DEFECTS_VERSION", "detector-test")
    catalog.render(tmp_path / "third", stack="median")
    assert len(calls) == 1
    maps = _maps(catalog)
    assert [m[0] for m in maps] == ["detector-test"]
    assert np.array_equal(maps[0][2], indices)


def test_a_changed_sample_recomputes(rendered, monkeypatch):
    """Another selection of frames (one band of them here: fewer frames) is another sample."""
    catalog, tmp_path, calls, counting = rendered
    monkeypatch.setattr("obsdb.imaging.defects.detector_defects", counting)
    catalog.render(tmp_path / "all")
    sample = _maps(catalog)[0][3]
    calls.clear()
    numbers = sorted(n for n, _ in catalog.render(tmp_path / "again").frames)
    assert calls == []
    catalog.render(tmp_path / "some", where=f"number != {numbers[0]}")
    assert len(calls) == 1
    assert _maps(catalog)[0][3] != sample


def test_indices_pack_round_trip():
    values = np.array([0, 5, 6, 4_194_303, 2**40], dtype=np.int64)
    assert np.array_equal(unpack_indices(pack_indices(values)), values)
    assert unpack_indices(pack_indices(np.array([], dtype=np.int64))).size == 0
