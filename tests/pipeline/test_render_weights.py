"""`render --stack mean --weight`: the weighted stack's noise, its header, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import mad_std
from typer.testing import CliRunner

from obsdb import Catalog
from obsdb.cli.app import app
from obsdb.errors import ObsdbError
from obsdb.simulate.model import FrameSpec

SKIES = (300.0, 3000.0, 800.0, 12000.0, 500.0, 6000.0)
"""Sky levels of the night's six V frames: their noise (sky photons and read noise) spans 16-120 ADU."""


@pytest.fixture(scope="module")
def noisy_night(tmp_path_factory, simulated_nights):
    """Six frames of one pointing whose sky noise differs eightfold, few stars (the stack's noise is
    measured between them), ingested, QA'd and aligned with every frame (the bright skies are tagged cloud)."""
    root = tmp_path_factory.mktemp("weights-night")
    specs = [FrameSpec(number=100 + i, band="V", group=0, kind="good", exptime=30.0, image_type="Light Frame",
                       offset=(0.0, 0.0), rotation_deg=0.0, fwhm=3.0, background=sky, transparency=1.0)
             for i, sky in enumerate(SKIES)]
    simulated_nights.copy(root / "frames", specs, seed=5, size=256, n_stars=40)
    catalog = Catalog.open(str(root / "c.sqlite"), create=True)
    catalog.ingest([root / "frames"])
    catalog.qa()
    catalog.align(status="any")
    yield catalog, root
    catalog.close()


def _noise(path) -> float:
    return float(mad_std(fits.getdata(path)[20:-20, 20:-20]))


def test_noise_weighted_stack_reaches_inverse_variance_noise_and_beats_the_plain_mean(noisy_night):
    catalog, root = noisy_night
    # Nearest-pixel resampling keeps each frame's noise as it was: the prediction is exact.
    plain = catalog.render(root / "plain", stack="mean", status="any", interpolation="nearest")
    weighted = catalog.render(root / "noise", stack="mean", status="any", interpolation="nearest", weight="noise")
    rms = np.array([r["stats"]["background_rms"] for r in catalog.frame_dicts()])
    assert len(rms) == 6 and rms.max() > 6 * rms.min()
    expected = np.sqrt(1.0 / np.sum(1.0 / rms**2))
    [stack] = weighted.stacks
    assert stack["frames"] == 6
    assert _noise(stack["path"]) == pytest.approx(expected, rel=0.03)
    assert _noise(plain.stacks[0]["path"]) == pytest.approx(np.sqrt(np.sum(rms**2)) / 6, rel=0.03)
    assert _noise(stack["path"]) < 0.5 * _noise(plain.stacks[0]["path"])
    header = fits.getheader(stack["path"])
    assert header["OBSDB_WT"] == "noise" and header["OBSDB_WX"] == "w_noise" and header["NCOMBINE"] == 6
    history = [str(h) for h in header["HISTORY"] if str(h).startswith("obsdb weight: ")]
    assert len(history) == 6
    stored = {r["file_name"][:40]: r["weights"]["noise"] for r in catalog.frame_dicts()}
    for line in history:
        name, value = line[len("obsdb weight: "):].rsplit(" w=", 1)
        assert float(value) == pytest.approx(stored[name], rel=1e-5)


def test_every_weight_ranks_the_frames_by_their_sky_noise(noisy_night):
    """Same stars, same seeing, skies from 300 to 12,000 ADU: the noise and S/N weights fall as the noise
    rises (the S/N over as many stars in every frame: the noisiest frame detects the fewest)."""
    catalog, _ = noisy_night
    records = sorted(catalog.frame_dicts(), key=lambda r: r["stats"]["background_rms"])
    for kind in ("noise", "snr"):
        values = [r["weights"][kind] for r in records]
        assert values == sorted(values, reverse=True), (kind, values)
    assert records[-1]["weights"]["snr"] < 0.1 < 2 < records[0]["weights"]["snr"]


def test_a_defined_weight_is_used_and_recorded_and_bad_requests_are_refused(noisy_night):
    catalog, root = noisy_night
    catalog.define_weight("clear", "w_noise * w_stars", author="ada")
    report = catalog.render(root / "clear", stack="mean", status="any", interpolation="nearest", weight="clear")
    header = fits.getheader(report.stacks[0]["path"])
    assert header["OBSDB_WT"] == "clear" and header["OBSDB_WX"] == "w_noise * w_stars"
    assert any("obsdb weight clear: w_noise * w_stars" in str(h) for h in header["HISTORY"])
    with pytest.raises(ObsdbError, match="weights are for --stack mean"):
        catalog.render(root / "median", stack="median", weight="noise")
    with pytest.raises(ObsdbError, match="not defined"):
        catalog.render(root / "unknown", stack="mean", weight="nosuch")
    assert not (root / "unknown").exists()
    result = CliRunner().invoke(app, ["--db", str(root / "c.sqlite"), "render", "--out", str(root / "cli"),
                                      "--stack", "sigma-clip", "--weight", "noise"])
    assert result.exit_code == 1 and "weights are for --stack mean" in result.output
    assert "Traceback" not in result.output
