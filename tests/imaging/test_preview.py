"""PNG previews: written, readable, bounded in size, NaN shown."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from obsdb.imaging.preview import NAN_COLOUR, thumbnail_png, write_preview_png


def _field(shape=(300, 500), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(1000, 10, shape)
    image[100:104, 200:204] += 5000  # a "star"
    return image


def test_preview_written_and_bounded(tmp_path):
    path = write_preview_png(tmp_path / "p.png", _field(), max_size=128, title="frame 4056")
    assert path == tmp_path / "p.png"
    rgba = mpimg.imread(path)
    # 500 px long side -> factor 4 -> 125 x 75.
    assert rgba.shape[:2] == (75, 125)
    assert not list(tmp_path.glob(".*part"))  # no temporary left behind


def test_small_image_is_not_resized(tmp_path):
    rgba = mpimg.imread(write_preview_png(tmp_path / "s.png", _field((64, 80))))
    assert rgba.shape[:2] == (64, 80)


def test_nan_shown_in_neutral_colour(tmp_path):
    image = _field((256, 256))
    image[:, :64] = np.nan
    image[5, 200] = np.inf
    rgba = mpimg.imread(write_preview_png(tmp_path / "n.png", image))
    # Row 0 is drawn at the bottom: PNG row -1 is image row 0.
    np.testing.assert_allclose(rgba[-1, 10, :3], NAN_COLOUR, atol=2 / 255)
    np.testing.assert_allclose(rgba[-1 - 5, 200, :3], NAN_COLOUR, atol=2 / 255)
    data_px = rgba[:200, 100:, :3]
    assert np.allclose(data_px[..., 0], data_px[..., 1])  # grey where there is data
    assert data_px.std() > 0.05  # zscale stretched the noise


def test_all_nan_image(tmp_path):
    rgba = mpimg.imread(write_preview_png(tmp_path / "a.png", np.full((40, 40), np.nan)))
    np.testing.assert_allclose(rgba[20, 20, :3], NAN_COLOUR, atol=2 / 255)


def test_thumbnail_with_badge(tmp_path):
    image = np.full((512, 512), 1000.0)
    plain = mpimg.imread(thumbnail_png(tmp_path / "t0.png", image))
    badged = mpimg.imread(thumbnail_png(tmp_path / "t1.png", image, badge="cloud"))
    assert plain.shape[:2] == badged.shape[:2] == (256, 256)
    corner = badged[:60, 128:, :3]
    red = (corner[..., 0] > 0.7) & (corner[..., 1] < 0.3) & (corner[..., 2] < 0.3)
    assert red.sum() > 50
    assert not ((plain[..., 0] > 0.7) & (plain[..., 1] < 0.3)).any()


def test_overwrites_atomically(tmp_path):
    target = tmp_path / "same.png"
    write_preview_png(target, _field((50, 50)))
    write_preview_png(target, _field((60, 70)))
    assert mpimg.imread(target).shape[:2] == (60, 70)


def test_rejects_non_image(tmp_path):
    with pytest.raises(ValueError, match="2-D"):
        write_preview_png(tmp_path / "x.png", np.zeros(10))


def test_stack_preview_matches_the_frame_preview_without_matplotlib(tmp_path):
    """The stack preview (Pillow) has write_preview_png's pixels outside its title, NaN in NAN_COLOUR."""
    from PIL import Image

    from obsdb.imaging.preview import write_stack_preview_png

    image = _field((300, 260))
    image[:20, :30] = np.nan
    old = np.asarray(Image.open(write_preview_png(tmp_path / "old.png", image, max_size=128)))[..., :3]
    new = np.asarray(Image.open(write_stack_preview_png(tmp_path / "new.png", image, max_size=128)))
    assert new.shape == old.shape == (100, 87, 3)
    assert np.abs(new.astype(int) - old.astype(int)).max() <= 1
    # Row 0 at the bottom: the NaN corner is at the bottom left.
    assert tuple(new[-1, 0]) == tuple(int(c * 255) for c in NAN_COLOUR)
    titled = np.asarray(Image.open(write_stack_preview_png(tmp_path / "t.png", image, max_size=128,
                                                           title="R: median of 6 frames")))
    assert (titled[20:] == new[20:]).all() and (titled[:20] != new[:20]).any()
    with pytest.raises(ValueError):
        write_stack_preview_png(tmp_path / "x.png", np.zeros(10))


def _zscale_cases():
    rng = np.random.default_rng(25)
    sky = rng.normal(1000, 10, (300, 500))
    sky[100:104, 200:204] += 5000
    holes = sky.copy()
    holes[:, :64] = np.nan
    holes[5, 200] = np.inf
    clouds = rng.normal(20000, 400, (200, 200)).astype(np.float32)
    clouds[50:60, 50:60] = 65535  # saturated cores: rejected by the line fit
    counts = rng.poisson(30, (128, 128)).astype(np.uint16)
    ramp = np.linspace(-5, 5, 2500).reshape(50, 50) ** 3  # no line fits: the rejection stops early
    masked = np.ma.masked_greater(sky, 1040)
    return {"sky": sky, "holes": holes, "clouds float32": clouds, "counts uint16": counts, "ramp": ramp,
            "flat": np.full((40, 40), 7.0), "three values": np.array([3.0, 1.0, 2.0]), "one value": np.array([5.0]),
            "masked": masked}


@pytest.mark.parametrize("name", list(_zscale_cases()))
def test_zscale_limits_are_astropys_to_the_bit(name):
    # obsdb's copy exists so that render need not import astropy.visualization (and matplotlib):
    # the stacks' previews must not change by a bit.
    from astropy.visualization import ZScaleInterval

    from obsdb.imaging.preview import zscale_limits

    values = _zscale_cases()[name]
    ours, theirs = zscale_limits(values), ZScaleInterval().get_limits(values)
    assert [type(v) for v in ours] == [type(v) for v in theirs]
    assert [np.asarray(v).tobytes() for v in ours] == [np.asarray(v).tobytes() for v in theirs]


def test_asinh_stretch_is_astropys_to_the_bit():
    from astropy.visualization import AsinhStretch

    from obsdb.imaging.preview import ASINH_SOFTENING, asinh_stretch

    grey = np.random.default_rng(3).uniform(-0.2, 1.2, (64, 64))  # beyond [0, 1]: clipped by both
    ours = asinh_stretch(grey, ASINH_SOFTENING)
    assert ours.tobytes() == AsinhStretch(a=ASINH_SOFTENING)(grey, clip=True).tobytes()
    assert grey.min() < 0  # the input is left as it was
    with pytest.raises(ValueError, match="a must be > 0"):
        asinh_stretch(grey, 0.0)


def test_stack_preview_imports_no_astropy_visualization(tmp_path):
    # A fresh interpreter: what `obsdb render` pays for the stack's preview.
    import subprocess
    import sys

    code = ("import sys, numpy as np; from obsdb.imaging.preview import write_stack_preview_png; "
            f"write_stack_preview_png({str(tmp_path / 's.png')!r}, np.random.default_rng(1).normal(size=(64, 64)), "
            "title='V: median of 3 frames'); "
            "print(sorted(m for m in ('astropy.visualization', 'matplotlib', 'astropy.time') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "s.png").is_file()
