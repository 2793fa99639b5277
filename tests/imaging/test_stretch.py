"""The previews' zscale limits and asinh stretch are astropy's, without importing astropy.visualization."""

import subprocess
import sys

import numpy as np
import pytest

from obsdb.imaging.stretch import asinh_stretch, zscale_limits


def _images():
    rng = np.random.default_rng(11)
    sky = rng.normal(1000.0, 30.0, (300, 400))
    sky[rng.integers(0, 300, 80), rng.integers(0, 400, 80)] += rng.uniform(1e3, 6e4, 80)   # stars
    yield "sky with stars", sky
    yield "float32", sky.astype(np.float32)
    yield "integers", np.round(sky).astype(np.int32)
    yield "constant", np.full((50, 50), 7.0)
    yield "few values", np.array([3.0, 1.0, 2.0])
    yield "two levels", np.r_[np.zeros(600), np.ones(600)]
    yield "with NaN and inf", np.where(rng.random(sky.shape) < 0.1, np.nan, sky) + np.where(
        rng.random(sky.shape) < 0.01, np.inf, 0.0)
    yield "long tail", rng.lognormal(3.0, 1.5, 20_000)
    yield "small", rng.normal(0.0, 1.0, 7)


@pytest.mark.parametrize("name, values", list(_images()), ids=[name for name, _ in _images()])
def test_zscale_limits_are_astropys(name, values):
    from astropy.visualization import ZScaleInterval

    expected = ZScaleInterval().get_limits(values)
    assert zscale_limits(values) == pytest.approx(expected, rel=1e-12, abs=1e-12), name


def test_zscale_limits_on_real_frames_are_astropys(real_data):
    from astropy.io import fits
    from astropy.visualization import ZScaleInterval

    paths = sorted(p for p in real_data.rglob("*.fit*") if p.suffix in (".fits", ".fit", ".fts"))[:12]
    checked = 0
    for path in paths:
        with fits.open(path) as hdul:
            data = next((h.data for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) == 2), None)
        if data is None:
            continue
        assert zscale_limits(data) == pytest.approx(ZScaleInterval().get_limits(data), rel=1e-12), path
        checked += 1
    assert checked >= 5


def test_asinh_stretch_is_astropys():
    from astropy.visualization import AsinhStretch

    grey = np.linspace(-0.2, 1.2, 1001)
    for softening in (0.1, 0.02, 0.5):
        np.testing.assert_array_equal(asinh_stretch(grey, softening), AsinhStretch(a=softening)(grey, clip=True))
    assert asinh_stretch(grey, 0.1)[[0, -1]].tolist() == [0.0, 1.0]


def test_zscale_of_nothing_finite_is_an_error():
    with pytest.raises(ValueError, match="finite"):
        zscale_limits(np.array([np.nan, np.inf]))


def test_drawing_a_stack_preview_imports_no_matplotlib(tmp_path):
    """astropy.visualization imports matplotlib (0.3 s): render's stack preview must not need it."""
    code = ("import sys, numpy as np\n"
            "from obsdb.imaging.preview import write_stack_preview_png, write_preview_png\n"
            f"write_stack_preview_png({str(tmp_path / 'a.png')!r}, np.random.default_rng(1).normal(0, 1, (64, 64)), title='t')\n"
            f"write_preview_png({str(tmp_path / 'b.png')!r}, np.random.default_rng(1).normal(0, 1, (64, 64)), stretch='asinh')\n"
            "print(sorted(m for m in sys.modules if m.startswith(('matplotlib', 'astropy.visualization'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "b.png").stat().st_size > 0
