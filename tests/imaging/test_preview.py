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
